import Crypto
import Foundation
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage
@testable import vigil

/// Retention set by flag, configuration file or SIGHUP has SetRetention's
/// floor of one day: `12m` meant as months would hide nearly every event.
@Suite("vigil serve's retention is at least 1d, as SetRetention's")
struct RetentionFloorTests {
    static func problem(_ arguments: [String]) -> String? {
        do {
            _ = try ServeCommand.parse(arguments)
            return nil
        } catch {
            return ServeCommand.message(for: error)
        }
    }

    @Test("--retention and --tenant-retention under 1d are refused, naming the value; 1d and forever are taken")
    func flagsHaveTheFloor() throws {
        #expect(Self.problem(["--retention", "12m"]) == "--retention: retention must be at least 1d (was 12m; 'm' is minutes)")
        #expect(Self.problem(["--retention", "23h"]) == "--retention: retention must be at least 1d (was 23h)")
        #expect(Self.problem(["--tenant-retention", "acme=36h", "--tenant-retention", "globex=1s"])
            == "--tenant-retention globex=1s: retention must be at least 1d (was 1s)")
        #expect(Self.problem(["--retention", "1d", "--tenant-retention", "acme=forever"]) == nil)
        #expect(Self.problem(["--retention", "86400s"]) == nil)

        let serve = try VigilBinary.run(["serve", "--retention", "12m", "--data-dir", "/nonexistent/never-created"])
        #expect(serve.status == 64, "\(serve.stderr)")
        #expect(serve.stderr.contains("retention must be at least 1d (was 12m; 'm' is minutes)"), "\(serve.stderr)")
    }

    /// Runs `vigil serve ARGS`, which should exit: its status and log. One
    /// that starts listening instead is stopped, and its start is recorded
    /// as an issue.
    static func serveExpectingExit(_ arguments: [String], log: String) throws -> (status: Int32, log: String) {
        let process = Process()
        process.executableURL = VigilBinary.url
        process.arguments = ["serve", "--listen", "127.0.0.1:0", "--no-auth"] + arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        var text = ""
        while process.isRunning && Date() < deadline {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.contains("listening on") { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if process.isRunning {
            Issue.record("vigil serve started: \(text)")
            process.terminate()
        }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// A data directory holding one flushed part.
    static func dataDirectoryWithAPart(_ path: String) async throws -> [String] {
        var options = StorageOptions(directory: path)
        options.retentionNanos = nil
        let store = try ColumnarEventStore(options: options)
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: currentUnixNanos() - 3_600_000_000_000)
        event.tenant = "acme"
        event.actor.id = "alice"
        event.action = "user.login"
        _ = try await store.append([event], idempotencyKey: nil)
        try await store.flushNow()
        try await store.close()
        return try Self.parts(path)
    }

    static func parts(_ path: String) throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: path + "/parts").filter { $0.hasSuffix(".part") }.sorted()
    }

    /// Replaces a file of a backup and signs its manifest again, as whoever
    /// can edit a backup can.
    static func replace(_ file: String, in backup: String, with text: String) throws {
        try text.write(toFile: backup + "/" + file, atomically: true, encoding: .utf8)
        var manifest = try BackupManifestFile.read(from: backup)
        let index = try #require(manifest.files.firstIndex { $0.path == file })
        manifest.files[index].size = UInt64(text.utf8.count)
        manifest.files[index].sha256 = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
        try BackupManifestFile.write(manifest, to: backup)
    }

    @Test("a RETENTION file under 1d (days written where nanoseconds are meant) stops vigil serve with exit 78, naming the file and the line, before any part is deleted")
    func retentionFileHasTheFloor() async throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-floor-file")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        let parts = try await Self.dataDirectoryWithAPart(data)
        try "*\t90\n".write(toFile: data + "/RETENTION", atomically: true, encoding: .utf8)
        let serve = try Self.serveExpectingExit(["--data-dir", data], log: directory + "/serve.log")
        #expect(serve.status == 78, "\(serve.log)")
        #expect(serve.log.contains("Error: \(data)/RETENTION line 1 sets the retention of every tenant (*) to 90 ns, under the minimum of 1 day"), "\(serve.log)")
        #expect(!serve.log.contains("Usage:"), "\(serve.log)")
        #expect(try Self.parts(data) == parts, "no part was deleted")
    }

    @Test("vigil restore prints the retention of the RETENTION file it restored, not the manifest's description of it; one under 1d is restored but exits 78, and vigil serve refuses it")
    func restoredRetentionFile() async throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-floor-restore")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        _ = try await Self.dataDirectoryWithAPart(data)
        let day: Int64 = 86_400_000_000_000
        try "*\t\(60 * day)\nacme\tforever\n".write(toFile: data + "/RETENTION", atomically: true, encoding: .utf8)
        let backup = try VigilBinary.run(["backup", "--data-dir", data, directory + "/backup"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(try BackupManifestFile.read(from: directory + "/backup").retention == ["*\t60d", "acme\tforever"])

        // The file a restored server obeys says 400 days; the manifest still says 60.
        try Self.replace("RETENTION", in: directory + "/backup", with: "*\t\(400 * day)\n")
        let restore = try VigilBinary.run(["restore", directory + "/backup", directory + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("retention: * 400d (from the backup's RETENTION"), "\(restore.stdout)")
        #expect(!restore.stdout.contains("60d"), "\(restore.stdout)")

        try Self.replace("RETENTION", in: directory + "/backup", with: "*\t90\n")
        let bad = try VigilBinary.run(["restore", directory + "/backup", directory + "/restored-bad"])
        #expect(bad.status == 78, "\(bad.stderr)")
        #expect(bad.stdout.contains("restored "), "\(bad.stdout)")
        #expect(!bad.stdout.contains("start it"), "\(bad.stdout)")
        #expect(bad.stderr.contains("Error: \(directory)/restored-bad/RETENTION line 1 sets the retention of every tenant (*) to 90 ns"), "\(bad.stderr)")
        #expect(bad.stderr.contains("The files are restored, but vigil serve refuses to start on"), "\(bad.stderr)")
        let serve = try Self.serveExpectingExit(["--data-dir", directory + "/restored-bad"], log: directory + "/serve.log")
        #expect(serve.status == 78, "\(serve.log)")
    }

    @Test("vigil config check refuses retention and tenant-retention under 1d with exit 78, naming the keys")
    func configCheckHasTheFloor() throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-floor")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try "retention = \"12m\"\ntenant-retention = [\"acme=1s\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        let check = try VigilBinary.run(["config", "check", path])
        #expect(check.status == 78, "\(check.stdout)\(check.stderr)")
        #expect(check.stderr.contains("retention must be at least 1d (was 12m; 'm' is minutes)"), "\(check.stderr)")
        #expect(!check.stdout.contains("is valid"), "\(check.stdout)")
    }

    @Test("a SIGHUP with retention under 1d is refused and logged; the server keeps running with its retention")
    func reloadHasTheFloor() throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-floor-reload")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.toml"
        func write(_ retention: String) throws {
            try "data-dir = \"\(directory)/data\"\nno-auth = true\nretention = \"\(retention)\"\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try write("90d")
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        try write("12m")
        server.signal(SIGHUP)
        let log = try server.waitForLog("the refusal") { $0.contains("reload refused") }
        #expect(log.contains("retention must be at least 1d (was 12m; 'm' is minutes)"), "\(log)")
        #expect(!log.contains("reloaded: retention"), "\(log)")
        #expect(server.process.isRunning)
        #expect(!FileManager.default.fileExists(atPath: directory + "/data/RETENTION"), "nothing was stored")
        #expect(server.stop() == 0)
    }
}
