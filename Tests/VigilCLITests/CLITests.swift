import Foundation
import Testing

/// Runs the real `vigil` executable (or another of the package's, all built
/// next to the test bundle).
enum VigilBinary {
    static var url: URL { url(of: "vigil") }

    static func url(of executable: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(executable)
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `vigil ARGS` (or `executable ARGS`) to completion, feeding `input` to its stdin;
    /// `environment` is added to this process's.
    static func run(_ arguments: [String], input: String? = nil, executable: String = "vigil", environment: [String: String] = [:]) throws -> Output {
        let process = Process()
        process.executableURL = url(of: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        let stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        // Read both pipes to the end before waiting, so a full pipe cannot block the child.
        let errData = ReadAll(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.wait(), as: UTF8.self))
    }
}

/// Reads a pipe to its end on a background thread.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

/// A `vigil serve` process on a free port with its own data directory.
final class ServerProcess {
    let process = Process()
    let port: Int
    let dataDir: String
    /// What the server logged up to "listening on".
    let startupLog: String
    private let stderrReader: ReadAll

    /// Without `authenticated`, the server runs with `--no-auth` (most tests
    /// are about something else); with it, `adminToken` is its admin token.
    init(
        dataDir: String, extraArguments: [String] = [], authenticated: Bool = false, environment: [String: String]? = nil,
        stdoutPath: String? = nil
    ) throws {
        self.dataDir = dataDir
        process.executableURL = VigilBinary.url
        // A long handshake timeout: on a loaded 2-core machine running the
        // whole suite in parallel, a client can be descheduled for seconds.
        process.arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--handshake-timeout", "120"]
            + (authenticated ? [] : ["--no-auth"]) + extraArguments
        if let environment { process.environment = environment }
        let err = Pipe()
        process.standardError = err
        if let stdoutPath {
            _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        // The server logs "listening on 127.0.0.1:PORT" once it is bound: read up to it.
        var seen = ""
        let handle = err.fileHandleForReading
        var port: Int?
        while port == nil {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let range = seen.range(of: "listening on 127.0.0.1:") {
                let digits = seen[range.upperBound...].prefix { $0.isNumber }
                if seen[range.upperBound...].dropFirst(digits.count).first != nil { port = Int(digits) }
            }
        }
        guard let port else {
            process.terminate()
            throw CLITestError("the server did not start: \(seen)")
        }
        self.port = port
        startupLog = seen
        stderrReader = ReadAll(handle)
    }

    var address: String { "127.0.0.1:\(port)" }

    deinit {
        // A test that failed half-way must not leave its server running.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// kill -9: no shutdown, no flush.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        _ = stderrReader.wait()
    }

    /// What the server logged after it started listening, once it has exited;
    /// tests print it when something fails.
    var exitedLog: String? {
        guard !process.isRunning else { return nil }
        return "exit status \(process.terminationStatus) (\(process.terminationReason == .uncaughtSignal ? "signal" : "exit")):\n" + String(decoding: stderrReader.wait(), as: UTF8.self)
    }

    /// The resident memory now, from /proc, in bytes.
    var residentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// The peak resident memory so far, from /proc, in bytes.
    var peakResidentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// SIGTERM, then wait: returns the exit status and what it logged after starting.
    func stop() -> (Int32, String) {
        process.terminate()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderrReader.wait(), as: UTF8.self))
    }
}

struct CLITestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite("vigil command line against a real server process", .serialized)
struct CLITests {
    let events = """
        {"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u-42","type":"USER","email":"bob@acme.test"},"action":"user.create","category":"CREATE","resource":{"type":"user","id":"u-77","name":"alice"},"outcome":"SUCCESS","sourceIp":"203.0.113.9"}
        {"occurredAt":"2026-11-20T10:16:00Z","tenant":"acme","actor":{"id":"u-42","type":"USER"},"action":"auth.login","outcome":"FAILURE","sourceIp":"2001:DB8::1","metadata":{"region":"eu, west"}}

        {"occurredAt":"2026-11-20T10:17:00Z","tenant":"globex","actor":{"id":"svc-1","type":"SERVICE"},"action":"pod.restart","resource":{"type":"pod","id":"p-1"},"outcome":"SUCCESS"}
        """

    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("ingest a file, query it in every format, get one event, survive a restart")
    func ingestThenQuery() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/events.jsonl"
        try events.write(toFile: file, atomically: true, encoding: .utf8)
        var server = try ServerProcess(dataDir: directory + "/data")

        let ingest = try VigilBinary.run(["ingest", "--server", server.address, file])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stderr.contains("ingested 3 events"), "\(ingest.stderr)")

        let table = try VigilBinary.run(["query", "--server", server.address])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines.first?.hasPrefix("TIME") == true)
        #expect(lines.dropFirst().first?.contains("pod.restart") == true, "newest first")
        // Aligned: every row starts its ACTION column at the same offset.
        let offsets = lines.compactMap { $0.range(of: lines[0].contains("ACTION") ? "ACTION" : "")?.lowerBound }
        #expect(!offsets.isEmpty)

        let json = try VigilBinary.run(["query", "--server", server.address, "--format", "json", "--tenant", "acme", "--oldest-first"])
        let jsonLines = json.stdout.split(separator: "\n").map(String.init)
        #expect(jsonLines.count == 2)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(jsonLines[0].utf8)) as? [String: Any])
        #expect(first["action"] as? String == "user.create")
        #expect(first["occurredAt"] as? String == "2026-11-20T10:15:00Z")
        #expect((first["id"] as? String)?.count == 36)

        let csv = try VigilBinary.run(["query", "--server", server.address, "--format", "csv", "--action", "auth.*"])
        let csvLines = csv.stdout.split(separator: "\n")
        #expect(csvLines.count == 2)
        #expect(csvLines.first?.hasPrefix("id,seq,occurred_at") == true)
        #expect(csv.stdout.contains("2001:db8::1"))
        #expect(csv.stdout.contains("\"{\"\"region\"\":\"\"eu, west\"\"}\""), "a field with a comma and quotes is quoted")

        let id = try #require(first["id"] as? String)
        let get = try VigilBinary.run(["get", "--server", server.address, id])
        #expect(get.status == 0)
        #expect(get.stdout.contains("\"user.create\""))
        let missing = try VigilBinary.run(["get", "--server", server.address, "00000000-0000-7000-8000-000000000000"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("NOT_FOUND"))

        // The JSON output feeds back into ingest.
        let roundTrip = try VigilBinary.run(["ingest", "--server", server.address, "-"], input: json.stdout)
        #expect(roundTrip.status == 0, "\(roundTrip.stderr)")
        #expect(roundTrip.stderr.contains("ingested 2 events"))

        // The same file again: every batch is an idempotent retry.
        let again = try VigilBinary.run(["ingest", "--server", server.address, file])
        #expect(again.status == 0)
        #expect(again.stderr.contains("3 were already stored"), "\(again.stderr)")

        let (status, log) = server.stop()
        #expect(status == 0, "SIGTERM is a graceful shutdown: \(log)")
        #expect(log.contains("stopped"))

        server = try ServerProcess(dataDir: directory + "/data")
        let afterRestart = try VigilBinary.run(["query", "--server", server.address, "--format", "json", "--limit", "0"])
        #expect(afterRestart.stdout.split(separator: "\n").count == 5, "every acknowledged event survives a restart")
        _ = server.stop()
    }

    @Test("bad input: a malformed line, an invalid event, bad flags, no server")
    func badInput() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        defer { _ = server.stop() }

        let malformed = try VigilBinary.run(["ingest", "--server", server.address, "-"], input: events + "\n{not json\n")
        #expect(malformed.status != 0)
        #expect(malformed.stderr.contains("line 5"), "\(malformed.stderr)")

        let invalid = try VigilBinary.run(["ingest", "--server", server.address, "-"], input: #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u"},"action":"bad action"}"# + "\n")
        #expect(invalid.status != 0)
        #expect(invalid.stderr.contains("INVALID_ARGUMENT"))
        #expect(invalid.stderr.contains("line 1"))
        #expect(invalid.stderr.contains("action"))

        let badFlag = try VigilBinary.run(["query", "--server", server.address, "--last", "yesterday"])
        #expect(badFlag.status != 0)
        #expect(badFlag.stderr.contains("--last"))

        let noServer = try VigilBinary.run(["query", "--server", "127.0.0.1:1"])
        #expect(noServer.status != 0)
        #expect(noServer.stderr.contains("UNAVAILABLE"))

        let help = try VigilBinary.run(["serve", "--help"])
        #expect(help.stdout.contains("--data-dir"))
        #expect(help.stdout.contains("--max-frame-size"))
    }

    @Test(
        "vigil serve refuses bad limits (64) and a bad rules file (78) before it starts, naming the flag",
        arguments: [
            (["--query-cache-mb=-1"], "--query-cache-mb must be 0 to 1048576 (MiB)", Int32(64)),
            (["--live-feed-mb", "0"], "--live-feed-mb", 64),
            (["--heartbeat-interval", "0"], "--heartbeat-interval", 64),
            (["--rules", "/nonexistent/rules.json"], "--rules", 78),
            (["--max-connections", "0"], "--max-connections", 64),
            (["--max-message-size", "8589934592"], "--max-message-size", 64),
            (["--idle-timeout=-1"], "--idle-timeout must be 0 (never) or a number of seconds", 64),
            (["--write-stall-timeout=-1"], "--write-stall-timeout must be 0 (never) or 1 to 86400 seconds, not -1", 64),
            (["--write-stall-timeout=86401"], "--write-stall-timeout must be 0 (never) or 1 to 86400 seconds, not 86401", 64),
            (["--no-auth", "--admin-token-file", "/tmp/x"], "--admin-token-file", 64),
            (["--redaction-rules", "/nonexistent/redaction.json"], "--redaction-rules", 78),
        ] as [([String], String, Int32)])
    func badServeFlags(_ flags: [String], _ named: String, _ status: Int32) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-flags-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try VigilBinary.run(["serve", "--listen", "127.0.0.1:0", "--data-dir", directory] + flags)
        #expect(result.status == status, "\(result.stderr)")
        #expect(result.stderr.contains(named), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/MANIFEST"), "nothing was opened")
    }
}
