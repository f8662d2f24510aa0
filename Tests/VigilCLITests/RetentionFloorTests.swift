import Foundation
import Testing
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
