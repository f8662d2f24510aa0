import Foundation
import Testing

@Suite("SIGHUP reloads the configuration of a running vigil serve")
struct ReloadTests {
    static func event(action: String, occurredAt: Date, actor: String = "u-1") -> String {
        #"{"occurredAt":"\#(occurredAt.ISO8601Format())","tenant":"acme","actor":{"id":"\#(actor)"},"action":"\#(action)"}"#
    }

    static func rules(threshold: Int) -> String {
        #"{"rules": [{"name": "logins", "filter": {"actions": ["auth.login"]}, "threshold": \#(threshold), "window": "1h"}]}"#
    }

    @Test("a server without the key on signed retention settings: a retention change on SIGHUP is refused until a restart, and the next SIGHUP still says so rather than reporting it applied")
    func refusedRetentionReload() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload-refused")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try VigilBinary.run(["keygen", "--out", directory + "/key"]).status == 0)
        let config = directory + "/vigil.toml"
        func write(_ tenantRetention: String, key: Bool) throws {
            try """
                data-dir = "\(directory)/data"
                checkpoint-dir = "\(directory)/checkpoints"
                no-auth = true
                retention = "90d"
                tenant-retention = [\(tenantRetention)]
                \(key ? "checkpoint-key = \"\(directory)/key\"" : "")
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }
        // Signed once with the key, then served without it.
        try write("", key: true)
        let signing = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        #expect(signing.stop() == 0)
        try FileManager.default.removeItem(atPath: directory + "/server.log")
        try write("", key: false)
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        try write("\"globex=7d\"", key: false)
        server.signal(SIGHUP)
        let first = try server.waitForLog("the reload") { $0.contains("reloaded: ") }
        #expect(first.contains("this server runs without --checkpoint-key"), "\(first)")
        #expect(first.contains("vigil.needs-restart=tenant-retention"), "\(first)")
        server.signal(SIGHUP)
        let second = try server.waitForLog("the second reload") { $0.components(separatedBy: "reloaded: ").count > 2 }
        let lines = second.split(separator: "\n").filter { $0.contains("reloaded: ") }
        #expect(lines.count == 2 && lines[1].contains("reloaded: nothing to change") && lines[1].contains("vigil.needs-restart=tenant-retention"), "\(lines)")
        #expect(!lines[1].contains("tenant-retention: []"), "not reported as applied: \(lines)")
        #expect(server.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: directory + "/data/RETENTION"))
    }

    @Test("log level, retention and a rule change on SIGHUP; a max-connections change is logged as needing a restart; a bad file changes nothing")
    func reloadEndToEnd() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.toml"
        let rulesPath = directory + "/rules.json"
        try Self.rules(threshold: 3).write(toFile: rulesPath, atomically: true, encoding: .utf8)
        try """
            data-dir = "\(directory)/data"
            no-auth = true
            log-level = "info"
            retention = "90d"
            rules = "\(rulesPath)"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        func vigil(_ arguments: [String], input: String? = nil) throws -> VigilBinary.Output {
            try VigilBinary.run(arguments + ["--server", server.address], input: input)
        }

        // An event 40 days old: kept under 90d.
        let old = try vigil(["ingest", "-"], input: Self.event(action: "user.update", occurredAt: Date().addingTimeInterval(-40 * 86_400)) + "\n")
        #expect(old.status == 0, "\(old.stderr)")
        #expect(try vigil(["count", "--tenant", "acme"]).stdout.contains("1 event"))
        #expect(!server.log.contains("call finished"), "OK calls are logged at debug, and the level is info")

        try """
            data-dir = "\(directory)/data"
            no-auth = true
            log-level = "debug"
            retention = "30d"
            tenant-retention = ["globex=7d"]
            rules = "\(rulesPath)"
            max-connections = 100
            """.write(toFile: config, atomically: true, encoding: .utf8)
        try Self.rules(threshold: 2).write(toFile: rulesPath, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        let log = try server.waitForLog("the reload") { $0.contains("reloaded: ") }
        let reloaded = try #require(log.split(separator: "\n").first { $0.contains("reloaded: ") })
        #expect(reloaded.contains("log-level: info -> debug"), "\(reloaded)")
        #expect(reloaded.contains("retention: 90d -> 30d"), "\(reloaded)")
        #expect(reloaded.contains("tenant-retention: [] -> [globex=7d]"), "\(reloaded)")
        #expect(reloaded.contains("alert rules: changed logins; 0 unchanged"), "\(reloaded)")
        #expect(reloaded.contains("vigil.needs-restart=max-connections"), "\(reloaded)")
        #expect(log.contains("max-connections changed in the configuration; it takes effect after a restart"), "\(log)")
        // Recorded in _system as the API's changes are, by the server itself.
        let system = try vigil(["query", "--tenant", "_system", "--format", "json"])
        #expect(system.status == 0, "\(system.stderr)")
        let changes = system.stdout.split(separator: "\n").filter { $0.contains("retention.update") }
        #expect(changes.count == 2, "the default and globex's: \(system.stdout)")
        #expect(changes.allSatisfy { $0.contains("SIGHUP") && $0.contains("SYSTEM") }, "\(changes)")
        #expect(changes.contains { $0.contains("\"after\":\"30d\"") || $0.contains("\"after\": \"30d\"") }, "\(changes)")

        // The new behaviour: the 40-day-old event is past the new retention;
        // OK calls are logged; two logins now fire the rule.
        let count = try vigil(["count", "--tenant", "acme", "--format", "json"])
        #expect(count.status == 0, "\(count.stderr)")
        let counted = try #require(try JSONSerialization.jsonObject(with: Data(count.stdout.utf8)) as? [String: Any], "\(count.stdout)")
        #expect((counted["count"] as? NSNumber)?.intValue == 0 || counted["count"] as? String == "0", "\(count.stdout)")
        try server.waitForLog("a call at debug") { $0.contains("call finished") }
        let logins = (1...2).map { Self.event(action: "auth.login", occurredAt: Date(), actor: "u-\($0)") }.joined(separator: "\n")
        #expect(try vigil(["ingest", "-"], input: logins + "\n").status == 0)
        try server.waitForLog("the alert") { $0.contains("alert fired") }

        // A bad file: refused with its problem named, nothing applied.
        try "log-level = \"error\"\nmax-frame-size = \"big\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        let refused = try server.waitForLog("the refusal") { $0.contains("reload refused") }
        #expect(refused.contains("max-frame-size must be an integer, not a string"), "\(refused)")
        let callsBefore = server.log.components(separatedBy: "call finished").count
        #expect(try vigil(["count", "--tenant", "acme"]).status == 0)
        try server.waitForLog("a call still at debug") { $0.components(separatedBy: "call finished").count > callsBefore }
        #expect(server.process.isRunning)
        #expect(server.stop() == 0)
    }

    @Test("SIGHUP re-reads the tokens file: a token restored from an older copy works, one missing from it stops")
    func reloadTokens() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload-tokens")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        let data = directory + "/data"
        let server = try LoggedServer(
            arguments: ["--data-dir", data, "--listen", "127.0.0.1:0", "--admin-token-file", tokenFile], directory: directory)
        let admin = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let withAdmin = try Data(contentsOf: URL(fileURLWithPath: data + "/tokens"))
        let created = try VigilBinary.run([
            "token", "create", "--name", "agent", "--scope", "read", "--quiet", "--server", server.address, "--token", admin,
        ])
        #expect(created.status == 0, "\(created.stderr)")
        let agent = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try VigilBinary.run(["count", "--server", server.address, "--token", agent]).status == 0)

        // The operator restores the older tokens file (without the agent's token).
        try withAdmin.write(to: URL(fileURLWithPath: data + "/tokens"))
        server.signal(SIGHUP)
        let log = try server.waitForLog("the token reload") { $0.contains("reloaded: ") }
        #expect(log.contains("tokens: 1 active, no longer active: tok_"), "\(log)")
        let system = try VigilBinary.run(["query", "--tenant", "_system", "--format", "json", "--server", server.address, "--token", admin])
        #expect(system.stdout.split(separator: "\n").contains { $0.contains("token.revoke") && $0.contains("SIGHUP") }, "\(system.stdout)")
        let refused = try VigilBinary.run(["count", "--server", server.address, "--token", agent])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("UNAUTHENTICATED"), "\(refused.stderr)")
        #expect(try VigilBinary.run(["count", "--server", server.address, "--token", admin]).status == 0)
        #expect(!server.log.contains(agent) && !server.log.contains(admin), "no secret in the log")

        // A missing tokens file is a mistake, not "no tokens": refused, the tokens stay.
        try FileManager.default.removeItem(atPath: data + "/tokens")
        server.signal(SIGHUP)
        let refused2 = try server.waitForLog("the refusal") { $0.contains("reload refused") }
        #expect(refused2.contains("tokens is missing; restore it"), "\(refused2)")
        #expect(try VigilBinary.run(["count", "--server", server.address, "--token", admin]).status == 0)
        #expect(server.stop() == 0)
    }
}

extension ReloadTests {
    @Test("a retention change SIGHUP could not store is logged as not applied, and the next SIGHUP applies it")
    func failedRetentionChangeIsRetried() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload-retention")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.toml"
        func write(_ tenants: String) throws {
            try """
                data-dir = "\(directory)/data"
                no-auth = true
                retention = "90d"
                tenant-retention = [\(tenants)]
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }
        try write(#""acme=30d""#)
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        // RETENTION cannot be replaced while its temporary name is a directory.
        try FileManager.default.createDirectory(atPath: directory + "/data/RETENTION.tmp", withIntermediateDirectories: false)
        try write(#""globex=7d""#)
        server.signal(SIGHUP)
        let failed = try server.waitForLog("the failed change") { $0.contains("not (or not wholly) applied") }
        #expect(failed.contains("tenant-retention"), "\(failed)")
        #expect(!failed.contains("reloaded: tenant-retention"), "\(failed)")
        try FileManager.default.removeItem(atPath: directory + "/data/RETENTION.tmp")
        server.signal(SIGHUP)
        let log = try server.waitForLog("the retried change") { $0.contains("reloaded: tenant-retention") }
        #expect(log.contains("tenant-retention: [acme=30d] -> [globex=7d]"), "\(log)")
        let file = try String(contentsOfFile: directory + "/data/RETENTION", encoding: .utf8)
        #expect(file.contains("globex\t604800000000000") && !file.contains("acme"), "\(file)")
        #expect(server.stop() == 0)
    }
}

extension ReloadTests {
    @Test("a start whose RETENTION overrides --retention says so, naming the configured and the kept value")
    func retentionOverrideIsLogged() throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-override")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = ["--data-dir", directory + "/data", "--no-auth", "--retention", "30d", "--listen", "127.0.0.1:0"]
        var server = try LoggedServer(arguments: arguments, directory: directory)
        #expect(!server.log.contains("overrides the configured retention"), "\(server.log)")
        let set = try VigilBinary.run(["retention", "60d", "--server", server.address])
        #expect(set.status == 0, "\(set.stderr)")
        #expect(server.stop() == 0)
        try FileManager.default.removeItem(atPath: directory + "/server.log")
        server = try LoggedServer(arguments: arguments, directory: directory)
        #expect(server.log.contains("RETENTION overrides the configured retention: --retention 30d (in force: 60d)"), "\(server.log)")
        #expect(server.stop() == 0)
    }

    @Test("a SIGHUP checks the files only a restart reads: a TLS certificate replaced by an expired one, or redaction rules made unreadable, are logged; the server goes on serving")
    func filesForTheNextStartAreChecked() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload-files")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["server.pem", "server-key.pem", "ca.pem"] {
            try FileManager.default.copyItem(atPath: TLSCLITests.fixture(name), toPath: directory + "/" + name)
        }
        try #"{"rules": [{"mask": ["actor.email"]}]}"#.write(toFile: directory + "/redaction.json", atomically: true, encoding: .utf8)
        let server = try LoggedServer(
            arguments: [
                "--data-dir", directory + "/data", "--listen", "127.0.0.1:0", "--no-auth",
                "--tls-cert", directory + "/server.pem", "--tls-key", directory + "/server-key.pem",
                "--redaction-rules", directory + "/redaction.json",
            ],
            directory: directory)
        // A renewal gone wrong: the expired certificate and its key; broken rules.
        try FileManager.default.removeItem(atPath: directory + "/server.pem")
        try FileManager.default.removeItem(atPath: directory + "/server-key.pem")
        try FileManager.default.copyItem(atPath: TLSCLITests.fixture("expired.pem"), toPath: directory + "/server.pem")
        try FileManager.default.copyItem(atPath: TLSCLITests.fixture("expired-key.pem"), toPath: directory + "/server-key.pem")
        try "not json".write(toFile: directory + "/redaction.json", atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        let log = try server.waitForLog("the checks") { $0.contains("redaction.json would not load at the next start") }
        #expect(log.contains("TLS files the configuration names would not load at the next start"), "\(log)")
        #expect(log.contains("expired"), "\(log)")
        let count = try VigilBinary.run(["count", "--server", server.address, "--tls-ca", directory + "/ca.pem"])
        #expect(count.status == 0, "the running server keeps its certificate: \(count.stderr)")
        #expect(server.stop() == 0)
    }
}

extension ReloadTests {
    @Test("a rule whose filter is not a JSON object (null, text, a number) is a rules error naming the rule and the field: vigil config check and vigil serve exit 78, a SIGHUP is refused and the server goes on")
    func filterThatIsNotAnObject() throws {
        let directory = try ConfigFileTests.temporaryDirectory("reload-rule-filter")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rulesPath = directory + "/rules.json"
        let config = directory + "/vigil.toml"
        try """
            data-dir = "\(directory)/data"
            no-auth = true
            rules = "\(rulesPath)"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        // Each of these trapped in JSONSerialization: a signal, not a message and 78.
        for filter in ["null", #""auth.login""#, "5"] {
            try #"{"rules": [{"name": "logins", "filter": \#(filter)}]}"#.write(toFile: rulesPath, atomically: true, encoding: .utf8)
            let check = try VigilBinary.run(["config", "check", config])
            #expect(check.status == 78, "filter \(filter): \(check.stderr)")
            #expect(check.stderr.contains("rules: \(rulesPath): rule 'logins'.filter must be a JSON object"), "filter \(filter): \(check.stderr)")
            let serve = try VigilBinary.run(["serve", "--config", config, "--listen", "127.0.0.1:0"])
            #expect(serve.status == 78, "filter \(filter): \(serve.stderr)")
            #expect(serve.stderr.contains("rule 'logins'.filter must be a JSON object"), "filter \(filter): \(serve.stderr)")
        }

        try Self.rules(threshold: 2).write(toFile: rulesPath, atomically: true, encoding: .utf8)
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        try #"{"rules": [{"name": "logins", "filter": null}]}"#.write(toFile: rulesPath, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        let refused = try server.waitForLog("the refusal") { $0.contains("reload refused") }
        #expect(refused.contains("rule 'logins'.filter must be a JSON object"), "\(refused)")
        // The rules in force are the ones it started with: two logins fire.
        let logins = (1...2).map { Self.event(action: "auth.login", occurredAt: Date(), actor: "u-\($0)") }.joined(separator: "\n")
        let ingest = try VigilBinary.run(["ingest", "-", "--server", server.address], input: logins + "\n")
        #expect(ingest.status == 0, "\(ingest.stderr)")
        try server.waitForLog("the alert") { $0.contains("alert fired") }
        #expect(server.process.isRunning)
        #expect(server.stop() == 0)
    }
}
