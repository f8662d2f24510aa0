#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `vigil serve` raises its soft limit on open files to the hard one: it keeps
/// a descriptor per live part file, WAL segment and connection.
@Suite("Open file limit")
struct OpenFileLimitTests {
    /// The soft and hard "Max open files" of process `pid`.
    static func openFileLimits(pid: Int32) throws -> (soft: Int, hard: Int) {
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let numbers = line.dropFirst("Max open files".count).split(separator: " ").compactMap { Int($0) }
        try #require(numbers.count >= 2)
        return (numbers[0], numbers[1])
    }

    /// A fresh directory for `body`, removed afterwards.
    static func withDirectory(_ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-nofile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    static var hardLimit: Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_max)
    }

    // Both need a hard limit above the soft one they start with (any machine Vigil runs on).
    @Test("started with a soft limit of 256, the server raises it to the hard limit and says so", .enabled(if: hardLimit > 256))
    func raisedToTheHardLimit() throws {
        let hard = Self.hardLimit
        try Self.withDirectory { directory in
            let server = try LoggedServer(
                arguments: ["--listen", "127.0.0.1:0", "--data-dir", directory + "/data", "--no-auth"], directory: directory,
                openFiles: (256, nil))
            defer { server.stop() }
            let limits = try Self.openFileLimits(pid: server.process.processIdentifier)
            #expect(limits.soft == hard && limits.hard == hard)
            #expect(server.log.contains("raised the open file limit from 256 to \(hard)"), "\(server.log)")
        }
    }

    @Test("with a hard limit of 512 the server raises the soft limit to it and warns that it is low, naming the fix", .enabled(if: hardLimit >= 512))
    func lowHardLimit() throws {
        try Self.withDirectory { directory in
            let server = try LoggedServer(
                arguments: ["--listen", "127.0.0.1:0", "--data-dir", directory + "/data", "--no-auth"], directory: directory,
                openFiles: (256, 512))
            defer { server.stop() }
            let limits = try Self.openFileLimits(pid: server.process.processIdentifier)
            #expect(limits.soft == 512 && limits.hard == 512)
            let log = server.log
            #expect(log.contains("raised the open file limit from 256 to 512"), "\(log)")
            #expect(log.contains("only 512 open files allowed (hard limit 512)") && log.contains("LimitNOFILE=65536"), "\(log)")
        }
    }
}
