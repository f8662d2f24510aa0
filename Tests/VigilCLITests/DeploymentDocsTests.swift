import Foundation
import Testing

/// The README's "Deploying" section is a recipe people paste: its vigil.toml
/// must pass `vigil config check` and serve, and its systemd unit must start,
/// reload and stop `vigil serve` the way the server expects.
@Suite("The README's deployment recipe")
struct DeploymentDocsTests {
    static var readme: String {
        get throws {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md").standardized
            return try String(contentsOf: url, encoding: .utf8)
        }
    }

    /// The body of the first fenced block of `language` after `marker` in the README.
    static func block(_ language: String, after marker: String) throws -> String {
        let text = try readme
        let start = try #require(text.range(of: marker), "the README no longer says \(marker)")
        let fence = try #require(text.range(of: "```\(language)\n", range: start.upperBound..<text.endIndex))
        let end = try #require(text.range(of: "\n```\n", range: fence.upperBound..<text.endIndex))
        return String(text[fence.upperBound..<end.lowerBound])
    }

    static func configuration() throws -> String { try block("toml", after: "A minimal `/etc/vigil/vigil.toml`") }
    static func unit() throws -> String { try block("ini", after: "**The systemd unit**") }

    /// `key=value` lines of the unit, in order (a key may repeat).
    static func directives(_ unit: String) -> [(key: String, value: String)] {
        unit.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.hasPrefix("["), let equals = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        }
    }

    @Test("its vigil.toml, moved under a temporary root, passes vigil config check, serves, reloads on SIGHUP and stops cleanly on SIGTERM")
    func configurationServes() throws {
        let root = try ConfigFileTests.temporaryDirectory("deploy")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let etc = root + "/etc/vigil"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        let configuration = try Self.configuration()
            .replacingOccurrences(of: "\"/etc/vigil/", with: "\"\(root)/etc/vigil/")
            .replacingOccurrences(of: "\"/var/lib/", with: "\"\(root)/var/lib/")
        #expect(!configuration.contains("\"/etc/") && !configuration.contains("\"/var/"), "every path of the example is moved under the test's root: \(configuration)")
        let path = etc + "/vigil.toml"
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)

        // The setup steps of the recipe: an admin token, a checkpoint key.
        let generated = try VigilBinary.run(["token", "generate"])
        #expect(generated.status == 0)
        let adminToken = generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(FileManager.default.createFile(atPath: etc + "/admin-token", contents: Data(generated.stdout.utf8), attributes: [.posixPermissions: 0o600]))
        let keygen = try VigilBinary.run(["keygen", "--out", etc + "/checkpoint.key"])
        #expect(keygen.status == 0, "\(keygen.stderr)")

        let check = try VigilBinary.run(["config", "check", path])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

        // As the unit runs it (ExecStart), on ports of its own.
        let server = try LoggedServer(
            arguments: ["--config", path, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], directory: root)
        #expect(server.log.contains(#""level":"info""#), "log-format = \"json\" is in effect: \(server.log)")
        let event = #"{"occurredAt":"\#(Date().ISO8601Format())","tenant":"acme","actor":{"id":"u-1"},"action":"user.create"}"# + "\n"
        let ingest = try VigilBinary.run(["ingest", "--server", server.address, "--token", adminToken, "-"], input: event)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let status = try VigilBinary.run(["status", "--server", server.address, "--token", adminToken])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("health          serving"), "\(status.stdout)")

        // ExecReload: SIGHUP with an unchanged file changes nothing.
        server.signal(SIGHUP)
        try server.waitForLog("the reload") { $0.contains("reloaded: nothing to change") }

        // systemctl stop: SIGTERM; a clean exit, and the shutdown checkpoint lands in checkpoint-dir.
        #expect(server.stop() == 0, "\(server.log)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: root + "/var/lib/vigil-checkpoints")
        #expect(checkpoints.contains { $0.hasSuffix(".checkpoint") }, "\(checkpoints)")
        #expect(FileManager.default.fileExists(atPath: root + "/var/lib/vigil/MANIFEST"))
    }

    @Test("its systemd unit runs that file, reloads with SIGHUP, outwaits the shutdown timeout and owns the directories")
    func unitMatchesTheServer() throws {
        let unit = try Self.unit()
        let directives = Self.directives(unit)
        func values(_ key: String) -> [String] { directives.filter { $0.key == key }.map(\.value) }

        #expect(values("ExecStart") == ["/usr/local/bin/vigil serve --config /etc/vigil/vigil.toml"])
        #expect(values("ExecReload") == ["/bin/kill -HUP $MAINPID"])
        #expect(values("Type") == ["exec"], "vigil serve does not fork and sends no sd_notify")
        #expect(values("KillSignal") == ["SIGTERM"])

        // The stop timeout must leave the drain its shutdown-timeout, and more.
        let configuration = try Self.configuration()
        let shutdownLine = try #require(configuration.split(separator: "\n").first { $0.hasPrefix("shutdown-timeout = ") })
        let shutdownTimeout = try #require(Int(shutdownLine.dropFirst("shutdown-timeout = ".count)))
        let stopTimeout = try #require(values("TimeoutStopSec").first.flatMap { Int($0) })
        #expect(stopTimeout >= shutdownTimeout + 30, "TimeoutStopSec \(stopTimeout) leaves the flush after a \(shutdownTimeout) s drain too little time")

        // Every directory the server writes is one systemd creates for it, or a ReadWritePaths entry.
        let stateDirectories = values("StateDirectory").flatMap { $0.split(separator: " ").map { "/var/lib/\($0)" } }
        for key in ["data-dir", "checkpoint-dir"] {
            let line = try #require(configuration.split(separator: "\n").first { $0.hasPrefix("\(key) = ") })
            let directory = line.dropFirst("\(key) = ".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            #expect(stateDirectories.contains(directory), "\(key) \(directory) is not a StateDirectory of the unit")
        }
        #expect(values("ReadWritePaths") == ["/var/backups/vigil"], "the backup destination of the recipe")
        #expect(values("ProtectSystem") == ["strict"])

        // systemd's own reading of the unit, where systemd is installed: no
        // unknown key, no value it cannot parse (it warns and exits 0).
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: FileManager.default.isExecutableFile) else { return }
        let directory = try ConfigFileTests.temporaryDirectory("deploy-unit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let unitPath = directory + "/vigil.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/vigil", with: VigilBinary.url.path).write(toFile: unitPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", unitPath]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let messages = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && messages.isEmpty, "systemd-analyze verify: \(messages)")
    }
}
