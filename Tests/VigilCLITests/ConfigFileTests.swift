import Foundation
import Testing
@testable import vigil

@Suite("vigil serve --config: the configuration file and vigil config")
struct ConfigFileTests {
    static func temporaryDirectory(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Valid values, other than the default, for the flags whose default is
    /// text; every other flag gets one made from its kind (true, default + 1,
    /// a path). A new flag with a text default needs an entry here: the test
    /// says so.
    static let samples: [String: [String]] = [
        "listen": ["0.0.0.0:7799"],
        "data-dir": ["/srv/vigil-data"],
        "fsync": ["interval:50"],
        "retention": ["30d"],
        "tenant-retention": ["acme=7d", "globex=forever"],
        "checkpoint-interval": ["1m"],
        "log-level": ["debug"],
        "log-format": ["json"],
        "metrics-listen": ["127.0.0.1:7701"],
    ]

    static func sample(for option: ServeOption) -> [String]? {
        if let sample = samples[option.key] { return sample }
        switch option.valueType {
        case .boolean: return ["true"]
        case .integer: return option.defaultValue.flatMap(Int.init).map { [String($0 + 1)] }
        case .stringOrInteger: return ["/tmp/vigil-sample/\(option.key)"]
        case .string, .array: return nil
        }
    }

    static func toml(_ option: ServeOption, _ values: [String]) -> String {
        switch option.valueType {
        case .boolean, .integer: "\(option.key) = \(values[0])"
        case .array: "\(option.key) = [" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .string, .stringOrInteger: "\(option.key) = \"\(values[0])\""
        }
    }

    static func flags(_ option: ServeOption, _ values: [String]) -> [String] {
        option.kind == .flag ? [option.flag] : values.flatMap { [option.flag, $0] }
    }

    /// A parsed command without its --config, as text: equal texts, equal settings.
    static func settingsText(_ command: ServeCommand) -> String {
        var command = command
        command.config = nil
        return String(reflecting: command)
    }

    @Test("the keys are vigil serve's flags, read from its ArgumentParser definition")
    func keysComeFromTheDefinition() {
        let keys = ServeOption.all.map(\.key)
        let help = ServeCommand.helpMessage(columns: 200)
        for key in keys { #expect(help.contains("--\(key)"), "\(key) is a flag of vigil serve") }
        for flag in ["listen", "data-dir", "fsync", "tenant-retention", "no-auth", "tls-cert", "tls-client-ca", "checkpoint-key", "log-format"] {
            #expect(keys.contains(flag))
        }
        #expect(!keys.contains("config") && !keys.contains("help"))
        #expect(ServeOption.named("tenant-retention")?.kind == .repeating)
        #expect(ServeOption.named("no-auth")?.valueType == .boolean)
        #expect(ServeOption.named("max-frame-size")?.valueType == .integer)
    }

    @Test("every key round-trips: a file setting it gives the same command as the flag")
    func everyKeyRoundTrips() throws {
        let directory = try Self.temporaryDirectory("config-roundtrip")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let defaults = Self.settingsText(try ServeCommand.parse([]))
        for option in ServeOption.all {
            guard let values = Self.sample(for: option) else {
                Issue.record("add a sample value for '\(option.key)' to ConfigFileTests.samples")
                continue
            }
            let path = directory + "/\(option.key).toml"
            try (Self.toml(option, values) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            guard let fromFlag = try? ServeCommand.parse(Self.flags(option, values)) else {
                Issue.record("the sample \(values) is not valid for --\(option.key): give a valid one in ConfigFileTests.samples")
                continue
            }
            let fromFile = try ServeCommand.resolve(["--config", path]).command
            #expect(Self.settingsText(fromFile) == Self.settingsText(fromFlag), "\(option.key)")
            #expect(Self.settingsText(fromFile) != defaults, "\(option.key): the sample must differ from the default")
        }
    }

    @Test("a table is a prefix: [tls] cert is tls-cert, [checkpoint] interval is checkpoint-interval")
    func tablesArePrefixes() throws {
        let directory = try Self.temporaryDirectory("config-tables")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try """
            listen = "0.0.0.0:7701"
            [tls]
            cert = "/etc/vigil/server.pem"
            key = "/etc/vigil/server-key.pem"
            [checkpoint]
            interval = "2m"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let fromFile = try ServeCommand.resolve(["--config", path]).command
        let fromFlags = try ServeCommand.parse([
            "--listen", "0.0.0.0:7701", "--tls-cert", "/etc/vigil/server.pem", "--tls-key", "/etc/vigil/server-key.pem",
            "--checkpoint-interval", "2m",
        ])
        #expect(Self.settingsText(fromFile) == Self.settingsText(fromFlags))
    }

    @Test("flags on the command line win over the file; a repeated flag replaces the file's list")
    func flagsOverrideTheFile() throws {
        let directory = try Self.temporaryDirectory("config-override")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try """
            listen = "127.0.0.1:7701"
            retention = "30d"
            tenant-retention = ["acme=7d", "globex=14d"]
            log-level = "debug"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let (command, settings) = try ServeCommand.resolve([
            "--config", path, "--listen=127.0.0.1:7702", "--tenant-retention", "initech=1d", "--log-level", "error",
        ])
        #expect(command.listen == "127.0.0.1:7702")
        #expect(command.tenantRetention == ["initech=1d"])
        #expect(command.logLevel == .error)
        #expect(command.retention == "30d", "what the command line leaves alone comes from the file")
        #expect(settings.toml.contains(#"retention = "30d""#))
        #expect(settings.toml.contains(#"listen = "127.0.0.1:7702"  # command line"#))

        // A real server: the file says port 1; --listen 127.0.0.1:0 on the command line wins.
        try "listen = \"127.0.0.1:1\"\nno-auth = true\n".write(toFile: path, atomically: true, encoding: .utf8)
        let server = try LoggedServer(arguments: ["--config", path, "--listen", "127.0.0.1:0", "--data-dir", directory + "/data"], directory: directory)
        #expect(server.port != 1)
        #expect(server.log.contains("authentication is off"), "no-auth came from the file")
        #expect(server.stop() == 0)
    }

    @Test("vigil config check lists every problem, each naming its key; exit status 78")
    func checkReportsEveryProblem() throws {
        let directory = try Self.temporaryDirectory("config-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try """
            data_dir = "/srv/vigil"
            max-frame-size = "big"
            no-auth = "yes"
            log-level = "loud"
            listen = "127.0.0.1:99999"
            max-connections = 0
            tenant-retention = "acme=30d"
            retention = "soon"
            ingest-rate-limit = -1
            colour = "blue"
            [tls]
            certificate = "x.pem"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try VigilBinary.run(["config", "check", path])
        #expect(result.status == 78, "\(result.stderr)")
        let expected = [
            "has 11 problems",
            "unknown key 'data_dir'; did you mean 'data-dir'?",
            "max-frame-size must be an integer, not a string",
            "no-auth must be a boolean (true or false), not a string",
            #"log-level = "loud" is not valid: expected a string, one of trace, debug, info, notice, warning, error, critical"#,
            "listen '127.0.0.1:99999' is not HOST:PORT",
            "max-connections must be at least 1",
            "tenant-retention must be an array of strings, not a string",
            "retention 'soon' is not a duration such as 90d or 36h, or 'forever'",
            "ingest-rate-limit = -1 is not valid: expected an integer",
            "unknown key 'colour'; `vigil serve --help` lists the keys",
            "unknown key 'tls-certificate'; did you mean 'tls-cert'?",
        ]
        for fragment in expected { #expect(result.stderr.contains(fragment), "\(fragment)\n\(result.stderr)") }
        #expect(result.stdout.isEmpty)

        try "listen = \"127.0.0.1:7700\"\nretention = \n".write(toFile: path, atomically: true, encoding: .utf8)
        let syntax = try VigilBinary.run(["config", "check", path])
        #expect(syntax.status == 78)
        #expect(syntax.stderr.contains("\(path): line 2, column"), "\(syntax.stderr)")

        let missing = try VigilBinary.run(["config", "check", directory + "/none.toml"])
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("the configuration file does not exist"), "\(missing.stderr)")

        // Files the settings name are read too.
        try "rules = \"\(directory)/no-rules.json\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let rules = try VigilBinary.run(["config", "check", path])
        #expect(rules.status == 78)
        #expect(rules.stderr.contains("rules: \(directory)/no-rules.json: cannot read the rules file"), "\(rules.stderr)")
    }

    @Test("a combination the flags refuse is named with the file's keys")
    func combinationProblems() throws {
        let directory = try Self.temporaryDirectory("config-combination")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try "no-auth = true\nadmin-token-file = \"/etc/vigil/admin.token\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try VigilBinary.run(["config", "check", path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("admin-token-file has no use with no-auth"), "\(result.stderr)")
    }

    @Test("vigil serve refuses a bad configuration file before it opens anything")
    func serveRefusesABadFile() throws {
        let directory = try Self.temporaryDirectory("config-serve-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try "data-dir = \"\(directory)/data\"\nfsync = \"sometimes\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try VigilBinary.run(["serve", "--config", path, "--listen", "127.0.0.1:0"])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("fsync 'sometimes' is not always, never or interval:<milliseconds>"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/data"), "nothing was opened")
    }

    @Test("vigil config check prints the effective settings of a good file")
    func checkPrintsSettings() throws {
        let directory = try Self.temporaryDirectory("config-good")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try """
            data-dir = "/srv/vigil"
            tenant-retention = ["acme=30d"]
            max-connections = 100
            no-auth = true
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try VigilBinary.run(["config", "check", path])
        #expect(result.status == 0, "\(result.stderr)")
        for line in [
            #"data-dir = "/srv/vigil""#, #"tenant-retention = ["acme=30d"]"#, "max-connections = 100", "no-auth = true",
            #"listen = "127.0.0.1:7700"  # default"#, "# archive-dir is not set",
        ] {
            #expect(result.stdout.contains(line + "\n"), "\(line)\n\(result.stdout)")
        }
    }

    @Test("vigil config example is a valid file, and the README shows exactly it")
    func exampleIsValidAndDocumented() throws {
        let example = try VigilBinary.run(["config", "example"])
        #expect(example.status == 0)
        for option in ServeOption.all { #expect(example.stdout.contains("# \(option.key) = "), "\(option.key)") }
        let directory = try Self.temporaryDirectory("config-example")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try example.stdout.write(toFile: directory + "/vigil.toml", atomically: true, encoding: .utf8)
        let check = try VigilBinary.run(["config", "check", directory + "/vigil.toml"])
        #expect(check.status == 0, "\(check.stderr)")

        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md").standardized
        let text = try String(contentsOf: readme, encoding: .utf8)
        #expect(
            text.contains("```toml\n" + example.stdout + "```\n"),
            "README.md's example configuration file must be exactly what `vigil config example` prints: paste it in")
    }
}
