import Foundation
import Synchronization
import VigilClient

/// A value delivered once, awaited by any number of tasks.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiters: [CheckedContinuation<Value, any Error>] = []
    }
    private let state = Mutex(State())

    /// Delivers the value; later calls are ignored.
    func fulfill(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result { return result }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// How to start `vigil serve`: which binary, with which extra flags.
struct ServerLauncher: Sendable {
    var binary: String
    /// Flags after `serve --listen 127.0.0.1:0 --data-dir DIR`.
    var arguments: [String]

    init(binary: String?, arguments: [String]) throws {
        let path = binary ?? Self.defaultBinary()
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchError("""
                no vigil binary at \(path): build it next to vigil-bench (swift build --product vigil, \
                with the same -c and --scratch-path) or pass --vigil PATH
                """)
        }
        self.binary = path
        self.arguments = arguments
    }

    /// This process's executable (through /proc/self/exe, else argv[0]).
    static func executablePath() -> String {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return resolved
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    /// The `vigil` binary next to this one.
    static func defaultBinary() -> String {
        (executablePath() as NSString).deletingLastPathComponent + "/vigil"
    }

    func start(dataDirectory: String) async throws -> ServerProcess {
        try await ServerProcess.start(
            binary: binary,
            // Without authentication: the harness measures storage and queries;
            // a token check is one hash per connection and a lookup per call.
            arguments: ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory, "--no-auth"] + arguments,
            dataDirectory: dataDirectory)
    }
}

/// A `vigil serve` child process. Its address is learned from the
/// "listening on HOST:PORT" line it logs once bound (it listens on port 0).
final class ServerProcess: @unchecked Sendable {  // `process` is only read after start; the rest is immutable or OneShot
    let host: String
    let port: Int
    let dataDirectory: String
    let pid: Int32
    private let process: Process
    private let exited: OneShot<Int32>
    /// The server's stderr (its last 256 KiB), once it closed.
    private let log: OneShot<String>

    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    private init(process: Process, host: String, port: Int, dataDirectory: String, exited: OneShot<Int32>, log: OneShot<String>) {
        self.process = process
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.pid = process.processIdentifier
        self.exited = exited
        self.log = log
    }

    static func start(binary: String, arguments: [String], dataDirectory: String, readyTimeout: Duration = .seconds(120)) async throws -> ServerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let exited = OneShot<Int32>()
        let ready = OneShot<(String, Int)>()
        let log = OneShot<String>()
        process.terminationHandler = { finished in
            ChildProcesses.remove(finished.processIdentifier)
            exited.fulfill(.success(finished.terminationStatus))
        }
        ChildProcesses.installSignalHandlers()
        try process.run()
        ChildProcesses.insert(process.processIdentifier)
        let reader = stderr.fileHandleForReading
        // Reads stderr to its end (the server's exit), so the pipe never fills.
        Thread.detachNewThread {
            var text = ""
            var announced = false
            let limit = 256 * 1024
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if !announced, let address = Self.listeningAddress(in: text) {
                    announced = true
                    ready.fulfill(.success(address))
                }
                if text.utf8.count > limit { text = String(text.suffix(limit / 2)) }
            }
            if !announced {
                ready.fulfill(.failure(BenchError("vigil serve exited before it listened; its log:\n\(text)")))
            }
            log.fulfill(.success(text))
        }
        let pid = process.processIdentifier
        let address: (String, Int)
        do {
            address = try await withThrowingTaskGroup(of: (String, Int)?.self) { group in
                group.addTask { try await ready.value }
                group.addTask {
                    try? await Task.sleep(for: readyTimeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let address = first else {
                    kill(pid, SIGKILL)
                    throw BenchError("vigil serve did not log its listening address within \(readyTimeout)")
                }
                return address
            }
        } catch {
            kill(pid, SIGKILL)
            _ = try? await exited.value
            throw error
        }
        return ServerProcess(process: process, host: address.0, port: address.1, dataDirectory: dataDirectory, exited: exited, log: log)
    }

    /// "… listening on 127.0.0.1:7700\n" → ("127.0.0.1", 7700), once the line is complete.
    static func listeningAddress(in text: String) -> (String, Int)? {
        guard let range = text.range(of: "listening on ") else { return nil }
        let rest = text[range.upperBound...]
        guard let end = rest.firstIndex(where: { $0 == "\n" || $0 == " " }) else { return nil }
        guard let configuration = try? VigilClient.Configuration(server: String(rest[..<end])) else { return nil }
        return (configuration.host, configuration.port)
    }

    var clientConfiguration: VigilClient.Configuration {
        var configuration = VigilClient.Configuration(host: host, port: port)
        configuration.clientName = "vigil-bench"
        return configuration
    }

    /// Resident memory now and at its peak, from /proc/<pid>/status (bytes).
    func memory() -> (resident: Int?, peak: Int?) {
        Self.memory(pid: pid)
    }

    static func memory(pid: Int32) -> (resident: Int?, peak: Int?) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (nil, nil) }
        func field(_ name: String) -> Int? {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
            return nil
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    /// User plus system CPU time the server has used so far, from /proc/<pid>/stat.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// SIGTERM (a graceful stop: calls finish, memory is flushed to parts), then
    /// waits for the exit; SIGKILL if it takes longer than `timeout`.
    @discardableResult
    func stop(timeout: Duration = .seconds(120)) async -> (status: Int32, log: String, timedOut: Bool) {
        kill(pid, SIGTERM)
        let exited = exited
        let pid = pid
        let (status, timedOut) = await withTaskGroup(of: Int32?.self) { group -> (Int32, Bool) in
            group.addTask { try? await exited.value }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let first = await group.next(), let status = first { return (status, false) }
            kill(pid, SIGKILL)
            return ((try? await exited.value) ?? -1, true)
        }
        let text = (try? await log.value) ?? ""
        return (status, text, timedOut)
    }

    /// SIGKILL, for cleaning up after a failure.
    func kill9() async {
        kill(pid, SIGKILL)
        _ = try? await exited.value
    }
}

/// Runs `body` with a started server, and stops the server whatever happens.
func withServer<R: Sendable>(
    _ launcher: ServerLauncher, dataDirectory: String, _ body: (ServerProcess) async throws -> R
) async throws -> R {
    let server = try await launcher.start(dataDirectory: dataDirectory)
    let result: R
    do {
        result = try await body(server)
    } catch {
        await server.kill9()
        throw error
    }
    try await server.stopChecked()
    return result
}

extension ServerProcess {
    /// A graceful stop that must end with status 0.
    func stopChecked(timeout: Duration = .seconds(120)) async throws {
        let (status, log, timedOut) = await stop(timeout: timeout)
        if timedOut {
            throw BenchError("vigil serve did not stop within \(timeout) of SIGTERM (killed it); its log:\n\(log.suffix(4000))")
        }
        if status != 0 { throw BenchError("vigil serve exited with status \(status); its log:\n\(log.suffix(4000))") }
    }
}

/// A fresh directory under the temporary directory.
func temporaryDirectory(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(label)-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Bytes of every regular file under `path`.
func diskBytes(under path: String) -> Int {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total = 0
    while let relative = enumerator.nextObject() as? String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + relative)
        if attributes?[.type] as? FileAttributeType == .typeRegular {
            total += (attributes?[.size] as? NSNumber)?.intValue ?? 0
        }
    }
    return total
}

/// CPU time (user + system) this process has used.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// The servers this process started and that are still running: killed if
/// vigil-bench itself is interrupted or terminated, so none outlives it.
enum ChildProcesses {
    private static let pids = Mutex<Set<Int32>>([])
    private static let handlers = Mutex<[any DispatchSourceSignal]>([])

    static func insert(_ pid: Int32) { pids.withLock { _ = $0.insert(pid) } }
    static func remove(_ pid: Int32) { pids.withLock { _ = $0.remove(pid) } }

    /// On SIGINT or SIGTERM: SIGKILL every running server, then exit (128 + the signal).
    static func installSignalHandlers() {
        handlers.withLock { handlers in
            guard handlers.isEmpty else { return }
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler {
                    for pid in pids.withLock({ $0 }) { kill(pid, SIGKILL) }
                    FileHandle.standardError.write(Data("vigil-bench: interrupted; stopped the servers it started\n".utf8))
                    exit(128 + signalNumber)
                }
                source.resume()
                handlers.append(source)
            }
        }
    }
}
