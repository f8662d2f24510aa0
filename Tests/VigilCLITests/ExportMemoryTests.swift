import Foundation
import NIOCore
import SwiftProtobuf
import Testing
import VigilClient
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

/// A child process whose peak resident memory is measured: its VmHWM (the
/// high-water mark of its own address space) read from /proc while it
/// streams, the last time just before its output ends.
///
/// Not `ru_maxrss` from wait4: posix_spawn starts the child in the parent's
/// address space (vfork), and on exec Linux folds that address space's peak
/// into the child's `ru_maxrss`, so it would report the test process's memory.
struct MeasuredProcess {
    struct Result {
        var status: Int32
        /// The highest VmHWM seen.
        var peakResidentBytes: Int
        /// `ru_maxrss`, for the record (includes the parent's RSS at spawn, see above).
        var maxRSSBytes: Int
        var stdoutLines: Int
        var stdoutBytes: Int
        var stderr: String
        /// User plus system CPU time of the child.
        var cpuSeconds: Double
    }

    /// Runs `vigil ARGS`, counting the lines of its standard output as they stream by (nothing is kept).
    static func run(_ arguments: [String]) throws -> Result {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw CLITestError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], STDERR_FILENO)
        for descriptor in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, descriptor) }
        let path = VigilBinary.url.path
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw CLITestError("posix_spawn failed: \(spawned)")
        }
        let errors = ReadAll(FileHandle(fileDescriptor: errPipe[0], closeOnDealloc: true))
        var lines = 0
        var bytes = 0
        var peak = 0
        var nextSample = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += count
            for index in 0..<count where buffer[index] == 0x0A { lines += 1 }
            if bytes >= nextSample {
                peak = max(peak, highWaterMark(pid) ?? 0)
                nextSample = bytes + (1 << 20)
            }
        }
        peak = max(peak, highWaterMark(pid) ?? 0)  // usually gone by now (output ends at exit); harmless
        close(outPipe[0])
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(
            status: exitStatus, peakResidentBytes: peak, maxRSSBytes: Int(usage.ru_maxrss) * 1024, stdoutLines: lines, stdoutBytes: bytes,
            stderr: String(decoding: errors.wait(), as: UTF8.self),
            cpuSeconds: Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6)
    }

    /// VmHWM of a running process, in bytes.
    static func highWaterMark(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }
}

@Suite("Export memory stays bounded with a real process")
struct ExportMemoryTests {
    static let events = 1_000_000
    static let batchSize = 10_000

    @Test("exporting 1,000,000 events streams them: every line comes out and the export's peak memory stays small")
    func millionEvents() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-export-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory)
        defer { _ = server.stop() }

        // One batch, encoded once and sent 100 times: the server assigns every event its own id and seq.
        // Few string fields: in a debug build, decoding strings is most of the work on both sides.
        let start = currentUnixNanos() - Int64(Self.events) * 1_000 - 3_600_000_000_000
        var request = Vigil_V1_IngestRequest()
        request.events = (0..<Self.batchSize).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: start + Int64(index) * 1_000)
            event.tenant = "bulk"
            event.actor = .with { $0.id = "u\(index % 100)"; $0.type = .user }
            event.action = "auth.login"
            event.outcome = index % 10 == 0 ? .failure : .success
            return event
        }
        let bytes: [UInt8] = try request.serializedBytes()
        let payload = ByteBuffer(bytes: bytes)
        let ingestStart = ContinuousClock.now
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for _ in stride(from: worker, to: Self.events / Self.batchSize, by: 4) {
                        while true {
                            do {
                                _ = try await client.ingest(preencoded: payload)
                                break
                            } catch let error as VigilError where error.code == .resourceExhausted {
                                // The server's memory budget pushes back: wait the hinted time (pacing, not synchronization).
                                try await Task.sleep(for: .milliseconds(Int(error.metadata["vigil.retry-after-ms"] ?? "") ?? 50))
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        await client.close()
        let ingestTime = ContinuousClock.now - ingestStart

        let exportStart = ContinuousClock.now
        let result = try MeasuredProcess.run(["export", "--server", server.address, "--tenant", "bulk", "--format", "csv"])
        let exportTime = ContinuousClock.now - exportStart
        print("export of \(Self.events) events: ingest \(ingestTime), export \(exportTime), \(result.stdoutBytes / 1_048_576) MiB of CSV, peak RSS (VmHWM) \(result.peakResidentBytes / 1_048_576) MiB (ru_maxrss \(result.maxRSSBytes / 1_048_576) MiB), export CPU \(result.cpuSeconds) s")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == Self.events + 1, "a header and one line per event")
        #expect(result.stderr.contains("export complete: 1,000,000 events written"), "\(result.stderr)")
        #expect(result.peakResidentBytes > 0, "VmHWM was read while the export ran")
        // About 30 MiB in practice. 100 MiB is far below what holding the result would take
        // (146 MiB of CSV text alone, several times that as decoded events).
        #expect(result.peakResidentBytes < 100 * 1_048_576, "the export's peak resident memory was \(result.peakResidentBytes / 1_048_576) MiB")
    }
}
