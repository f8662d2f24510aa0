import Foundation
import Logging
import Testing
@testable import vigil

@Suite("vigil serve's logs: JSON lines, request metadata, no secrets")
struct StructuredLogTests {
    static let event = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u-1"},"action":"user.update"}"#

    static func jsonLines(_ log: String) throws -> [[String: Any]] {
        try log.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "\(line)")
        }
    }

    @Test("--log-format json: every line is one JSON object; each call logs its connection, stream, method, tenant, duration, status and token id")
    func jsonLinesCarryRequestMetadata() throws {
        let directory = try ConfigFileTests.temporaryDirectory("json-log")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        let server = try LoggedServer(
            arguments: [
                "--data-dir", directory + "/data", "--listen", "127.0.0.1:0", "--admin-token-file", tokenFile,
                "--log-format", "json", "--log-level", "debug",
            ],
            directory: directory)
        let admin = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let ingest = try VigilBinary.run(["ingest", "--server", server.address, "--token", admin, "-"], input: Self.event + "\n")
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let query = try VigilBinary.run(["query", "--server", server.address, "--token", admin, "--tenant", "acme", "--tenant", "globex"])
        #expect(query.status == 0, "\(query.stderr)")
        let missing = try VigilBinary.run(["get", "--server", server.address, "--token", admin, "00000000-0000-7000-8000-000000000000"])
        #expect(missing.status != 0)
        try server.waitForLog("three calls") { $0.components(separatedBy: "call finished").count >= 4 }
        #expect(server.stop() == 0)

        let lines = try Self.jsonLines(server.log)
        for line in lines {
            let timestamp = try #require(line["timestamp"] as? String)
            #expect(timestamp.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil, "RFC 3339 with fractional seconds: \(timestamp)")
            #expect(line["level"] is String && line["label"] as? String == "vigil" && line["message"] is String)
        }
        let calls = lines.filter { $0["message"] as? String == "call finished" }
        let ok = try #require(calls.first { $0["vigil.method"] as? String == "vigil.v1.Audit/Ingest" }, "\(calls)")
        #expect(ok["level"] as? String == "debug")
        #expect(ok["vigil.status"] as? String == "OK")
        #expect(ok["vigil.tenant"] as? String == "acme")
        #expect((ok["vigil.token_id"] as? String)?.hasPrefix("tok_") == true)
        #expect(ok["vigil.stream"] as? String == "1")
        #expect((ok["vigil.connection"] as? String).flatMap(Int.init) != nil)
        #expect((ok["vigil.peer"] as? String)?.contains("127.0.0.1") == true)
        #expect((ok["vigil.duration_ms"] as? String)?.wholeMatch(of: /\d+\.\d{3}/) != nil, "\(ok)")
        let queried = try #require(calls.first { $0["vigil.method"] as? String == "vigil.v1.Audit/Query" }, "\(calls)")
        #expect(queried["vigil.tenant"] as? String == "acme,globex")
        #expect(queried["level"] as? String == "debug")
        let failed = try #require(calls.first { $0["vigil.method"] as? String == "vigil.v1.Audit/Get" }, "\(calls)")
        #expect(failed["level"] as? String == "info", "failed calls are logged at info")
        #expect(failed["vigil.status"] as? String == "NOT_FOUND")
        #expect((failed["vigil.reason"] as? String)?.contains("no event has id") == true)
        #expect(failed["vigil.tenant"] == nil, "Get names no tenant")
        #expect(ok["vigil.connection"] as? String != failed["vigil.connection"] as? String, "each connection has its own id")
    }

    @Test("JSON lines escape quotes, backslashes, newlines and control characters; nested metadata is flattened")
    func jsonEscaping() throws {
        let message = "say \"hi\"\\ \n\t\u{01}\u{7F} ünïcode \u{2028}"
        let line = JSONLogLine.render(
            timestamp: JSONLogLine.now(), level: .warning, label: "vigil", message: message,
            metadata: ["vigil.a": "x\"y", "vigil.tls": ["client": "CN=a"], "vigil.list": ["1", "2"], "message": "not mine"])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == message)
        #expect(object["level"] as? String == "warning")
        #expect(object["vigil.a"] as? String == "x\"y")
        #expect(object["vigil.tls.client"] as? String == "CN=a")
        #expect(object["vigil.list"] as? [String] == ["1", "2"])
    }

    @Test("at --log-level trace, creating tokens and authenticating never puts a secret in the server's output")
    func noSecretsInTheLog() throws {
        let directory = try ConfigFileTests.temporaryDirectory("secrets")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        for format in ["text", "json"] {
            let server = try LoggedServer(
                arguments: [
                    "--data-dir", directory + "/data-\(format)", "--listen", "127.0.0.1:0", "--admin-token-file", tokenFile,
                    "--log-level", "trace", "--log-format", format,
                ],
                directory: directory)
            let admin = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            func vigil(_ arguments: [String], token: String, input: String? = nil) throws -> VigilBinary.Output {
                try VigilBinary.run(arguments + ["--server", server.address, "--token", token], input: input)
            }
            let created = try vigil(["token", "create", "--name", "agent", "--scope", "ingest", "--tenant", "acme", "--quiet"], token: admin)
            #expect(created.status == 0, "\(created.stderr)")
            let agent = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try vigil(["ingest", "-"], token: agent, input: Self.event + "\n").status == 0)
            let wrong = "vgl_0123456789abcdef_" + String(repeating: "A", count: 43)
            #expect(try vigil(["count"], token: wrong).status != 0)
            let revoked = try vigil(["token", "list", "--format", "json"], token: admin)
            #expect(revoked.status == 0)
            try server.waitForLog("the calls") { $0.contains("authentication failed") && $0.components(separatedBy: "call finished").count >= 4 }
            #expect(server.stop() == 0)
            let output = server.log + server.output
            for secret in [admin, agent, wrong] {
                #expect(!output.contains(secret), "\(format): a secret reached the log")
                // Nor its random part alone.
                #expect(!output.contains(String(secret.suffix(43))), "\(format)")
            }
            #expect(output.contains("tok_"), "token ids (not secrets) are logged")
            try FileManager.default.removeItem(atPath: tokenFile)
        }
    }

    @Test("the log level control reaches loggers made before a change")
    func levelControl() {
        let control = LogLevelControl(.info)
        let handler = VigilLogHandler(label: "vigil", format: .json, control: control)
        #expect(handler.logLevel == .info)
        control.current = .debug
        #expect(handler.logLevel == .debug)
        var own = handler
        own.logLevel = .error
        #expect(own.logLevel == .error && handler.logLevel == .debug)
    }
}

extension StructuredLogTests {
    @Test("text shaped like a token secret is masked before it is written")
    func secretsAreMasked() {
        let secret = "vgl_0123456789abcdef_" + String(repeating: "x", count: 43)
        #expect(SecretMask.mask("token \(secret) refused") == "token vgl_<redacted> refused")
        let masked = SecretMask.masked(["vigil.a": "\(secret)", "vigil.b": ["n": .string(secret)]])
        #expect(!"\(masked)".contains(secret))
    }
}
