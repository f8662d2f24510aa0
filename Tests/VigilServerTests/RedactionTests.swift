import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilServer

@Suite("Privacy redaction at ingest")
struct RedactionTests {
    static func writeRules(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-redaction-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let key = String(repeating: "k", count: 32)

    @Test("rules drop, hash and mask what they name, for their tenants only; nothing else changes")
    func appliedThroughTheServer() async throws {
        let path = try Self.writeRules("""
            {"rules": [
              {"tenants": ["acme"], "dropMetadata": ["password"], "mask": ["actor.name", "changes.ssn"]},
              {"hash": ["actor.email", "sourceIp", "metadata.card"]},
              {"tenants": ["globex"], "mask": ["sourceIp", "actor.email", "description"]}
            ]}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let policy = try RedactionPolicy.load(path: path, environment: ["VIGIL_REDACTION_KEY": Self.key])
        try await withTestServer(configure: { $0.redaction = policy }) { server in
            let client = try await server.connect()
            func event(_ tenant: String, _ index: Int) -> AuditEvent {
                var event = makeTestEvent(index: index, tenant: tenant)
                event.actor.name = "Bob Jones"
                event.actor.email = "bob@example.test"
                event.sourceIp = "203.0.113.9"
                event.metadata = ["password": "hunter2", "card": "4111111111111111", "region": "eu"]
                var change = Vigil_V1_Change()
                change.field = "ssn"
                change.old = "123-45-6789"
                change.new = "987-65-4321"
                event.changes = [change]
                event.description_p = "Bob did it"
                return event
            }
            _ = try await client.ingest([event("acme", 0), event("acme", 1), event("globex", 2), event("initech", 3)])
            var query = Vigil_V1_QueryRequest()
            query.order = .oldestFirst
            var stored: [AuditEvent] = []
            for try await event in client.query(query) { stored.append(event) }
            try #require(stored.count == 4)
            let (acme, acmeAgain, globex, initech) = (stored[0], stored[1], stored[2], stored[3])

            #expect(acme.metadata["password"] == nil)
            #expect(acme.metadata["region"] == "eu")
            #expect(acme.actor.name == "B***")
            #expect(acme.changes[0].old == "1***" && acme.changes[0].new == "9***")
            // A keyed hash: equal values stay equal, and nothing of them is left.
            #expect(acme.actor.email.hasPrefix("hmac:") && acme.actor.email.count == 37)
            #expect(acme.actor.email == acmeAgain.actor.email)
            #expect(acme.metadata["card"] == acmeAgain.metadata["card"])
            #expect(acme.metadata["card"]!.hasPrefix("hmac:"))
            let hashedIP = try #require(IPAddress(acme.sourceIp))
            #expect(hashedIP.bytes.count == 16 && hashedIP.bytes[0] == 0xfd)
            #expect(acme.sourceIp == acmeAgain.sourceIp)
            #expect(acme.description_p == "Bob did it")

            // globex: hashed by the all-tenant rule first, then masked.
            #expect(globex.metadata["password"] == "hunter2", "the acme rule does not apply")
            #expect(globex.actor.name == "Bob Jones")
            #expect(globex.description_p == "B***")
            #expect(globex.actor.email == "h***")
            #expect(globex.sourceIp.hasPrefix("fd"), "\(globex.sourceIp)")

            // A tenant no tenant-specific rule names gets only the all-tenant rule.
            #expect(initech.actor.email == acme.actor.email)
            #expect(initech.changes[0].old == "123-45-6789")
            await client.close()
        }
    }

    @Test("masking keeps an e-mail's domain and an address's network")
    func masks() throws {
        let path = try Self.writeRules(#"{"rules": [{"mask": ["actor.email", "sourceIp"]}]}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let policy = try RedactionPolicy.load(path: path, environment: [:])
        var event = AuditEvent()
        event.actor.email = "alice@acme.test"
        event.sourceIp = "203.0.113.77"
        policy.apply(to: &event)
        #expect(event.actor.email == "a***@acme.test")
        #expect(event.sourceIp == "203.0.113.0")
        event.sourceIp = "2001:db8:1234:5678::9"
        policy.apply(to: &event)
        #expect(event.sourceIp == "2001:db8:1234::")
    }

    @Test(
        "a bad rules file is refused with a message naming what is wrong",
        arguments: [
            (#"{"rules": [], "extra": 1}"#, "unknown key 'extra'"),
            (#"{"rules": [{"hash": ["actor.shoe"]}]}"#, "'actor.shoe' is not a field"),
            (#"{"rules": [{"tenants": ["acme"]}]}"#, "does nothing"),
            (#"{"rules": [{"mask": ["description"], "when": 1}]}"#, "unknown key 'when'"),
            (#"{"rules": [{"hash": ["sourceIp"]}]}"#, "a key is needed"),
            (#"{"rules": "all"}"#, "must be a list"),
            ("not json", "is not a JSON object"),
        ])
    func badFiles(_ json: String, _ message: String) throws {
        let path = try Self.writeRules(json)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: RedactionPolicy.LoadError.self) { try RedactionPolicy.load(path: path, environment: [:]) }
        #expect(error?.description.contains(message) == true, "\(error?.description ?? "")")
    }

    @Test("a hash key shorter than 32 bytes is refused")
    func shortKey() throws {
        let path = try Self.writeRules(#"{"rules": [{"hash": ["actor.email"]}]}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: RedactionPolicy.LoadError.self) {
            try RedactionPolicy.load(path: path, environment: ["VIGIL_REDACTION_KEY": "short"])
        }
        #expect(error?.description.contains("at least 32") == true)
    }
}
