import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

/// The filter conditions added for the query engine (issue 5): every
/// malformed input is refused with INVALID_ARGUMENT naming the field as JSON
/// spells it, and `matches(_:)` — the reference every storage evaluation must
/// agree with — means what `audit.proto` says.
extension EventFilterTests {
    /// An event with every field the new conditions look at.
    func richEvent(
        email: String = "bob@acme.test", name: String = "Bob", actorType: Vigil_V1_ActorType = .user,
        category: Vigil_V1_Category = .update, resourceName: String = "alice", outcome: Vigil_V1_Outcome = .success,
        sourceIP: String = "203.0.113.9", traceID: String = "4bf92f3577b34da6a3ce929d0e0e4736", requestID: String = "req-981",
        metadata: [String: String] = [:], description: String = ""
    ) -> AuditEvent {
        var result = self.event(outcome: outcome)
        result.actor.email = email
        result.actor.name = name
        result.actor.type = actorType
        result.category = category
        result.resource.name = resourceName
        result.sourceIp = sourceIP
        result.traceID = traceID
        result.requestID = requestID
        result.metadata = metadata
        result.description_p = description
        return result
    }

    // MARK: - Compile errors of the new fields

    /// The JSON names of every list of `Filter`, and a way to fill it with
    /// `count` valid, distinct entries.
    static let listFields: [String] = [
        "tenants", "actorIds", "actions", "resourceTypes", "resourceIds", "outcomes", "actorEmails", "actorNames",
        "actorTypes", "categories", "resourceNames", "excludeOutcomes", "sourceIps", "traceIds", "requestIds", "metadata",
    ]

    static func fill(_ field: String, count: Int, into message: inout Vigil_V1_Filter) {
        let texts = (0..<count).map { "v\($0)" }
        switch field {
        case "tenants": message.tenants = texts
        case "actorIds": message.actorIds = texts
        case "actions": message.actions = texts.map { "a.\($0)" }
        case "resourceTypes": message.resourceTypes = texts
        case "resourceIds": message.resourceIds = texts
        case "outcomes": message.outcomes = (0..<count).map { _ in .failure }
        case "actorEmails": message.actorEmails = texts.map { "\($0)@acme.test" }
        case "actorNames": message.actorNames = texts
        case "actorTypes": message.actorTypes = (0..<count).map { _ in .user }
        case "categories": message.categories = (0..<count).map { _ in .read }
        case "resourceNames": message.resourceNames = texts
        case "excludeOutcomes": message.excludeOutcomes = (0..<count).map { _ in .denied }
        case "sourceIps": message.sourceIps = (0..<count).map { "10.\($0 / 256).\($0 % 256).0/24" }
        case "traceIds": message.traceIds = texts
        case "requestIds": message.requestIds = texts
        case "metadata": message.metadata = texts.map { "k=\($0)" }
        default: Issue.record("unknown list field \(field)")
        }
    }

    @Test("every list holds at most 1,000 entries: 1,001 are refused naming the list, 1,000 compile", arguments: listFields)
    func listLimit(field: String) throws {
        expectInvalid(field) { Self.fill(field, count: EventFilter.maxListEntries + 1, into: &$0) }
        var message = Vigil_V1_Filter()
        Self.fill(field, count: EventFilter.maxListEntries, into: &message)
        _ = try EventFilter(message)
    }

    @Test("unknown enum values are refused for actorTypes, categories and excludeOutcomes")
    func unknownEnums() throws {
        expectInvalid("actorTypes") { $0.actorTypes = [.user, .UNRECOGNIZED(6)] }
        expectInvalid("actorTypes") { $0.actorTypes = [.UNRECOGNIZED(-1)] }
        expectInvalid("categories") { $0.categories = [.UNRECOGNIZED(11)] }
        expectInvalid("categories") { $0.categories = [.read, .UNRECOGNIZED(1_000)] }
        expectInvalid("excludeOutcomes") { $0.excludeOutcomes = [.UNRECOGNIZED(4)] }
        expectInvalid("excludeOutcomes") { $0.excludeOutcomes = [.success, .UNRECOGNIZED(-7)] }
        // The unspecified values are values like any other.
        let filter = try compile {
            $0.actorTypes = [.unspecified, .anonymous]
            $0.categories = [.unspecified, .other]
            $0.excludeOutcomes = [.unspecified]
        }
        #expect(filter.actorTypes == [0, 5])
        #expect(filter.categories == [0, 10])
        #expect(filter.excludedOutcomes == [0])
    }

    static let badSourceIPs: [String] = [
        "", "10.0.0", "10.0.0.256", "256.0.0.0/8", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "1.2.3.4/8/9", "/8",
        "::/129", "2001:db8::/", "2001:db8::g/32", "2001:db8::/-1", "host.example.com", " 10.0.0.1", "10.0.0.1 ",
        "10.0.0.0/ 8", "10.0.0.0/+8", "10.0.0.0/0x8", "10.0.0.0/abc", "10.0.0.0/1000", "fe80::1%eth0", "10.0.0.1\u{0}",
        "10.0.0.0\\8", "10.0.0.0/8/", "1.2.3.4/32/",
    ]

    @Test("sourceIps entries that are not an address or a CIDR block are refused", arguments: badSourceIPs)
    func badSourceIP(text: String) {
        expectInvalid("sourceIps") { $0.sourceIps = ["10.0.0.0/8", text] }
    }

    @Test("sourceIps: addresses and CIDR blocks of both families compile; single addresses are also kept as canonical text")
    func sourceIPsCompile() throws {
        let filter = try compile {
            $0.sourceIps = ["10.0.0.0/8", "2001:DB8:0::1", "192.168.1.7/32", "2001:db8::/32", "::/0", "0.0.0.0/0", "2001:db8::5/128"]
        }
        #expect(filter.sourceNetworks.count == 7)
        #expect(filter.sourceAddresses == ["2001:db8::1", "192.168.1.7", "2001:db8::5"])
    }

    @Test("traceIds and requestIds entries must be 1-128 bytes")
    func correlationIDLengths() throws {
        let longest = String(repeating: "a", count: 128)
        let tooLong = String(repeating: "a", count: 129)
        expectInvalid("traceIds") { $0.traceIds = ["abc", ""] }
        expectInvalid("traceIds") { $0.traceIds = [tooLong] }
        expectInvalid("traceIds") { $0.traceIds = [String(repeating: "é", count: 65)] }  // 130 bytes
        expectInvalid("requestIds") { $0.requestIds = [""] }
        expectInvalid("requestIds") { $0.requestIds = ["req-1", tooLong] }
        let filter = try compile {
            $0.traceIds = [longest, "x"]
            $0.requestIds = [longest]
        }
        #expect(filter.traceIDs == [longest, "x"])
        #expect(filter.requestIDs == [longest])
    }

    static let badMetadata: [String] = [
        "region", "", "=eu", "bad key=v", "k\u{e9}y=v", "key!=v", "\(String(repeating: "k", count: 65))=v", "k/1=v",
        " region=eu", "región=eu",
    ]

    @Test("metadata entries must be key=value with a 1-64 byte key of letters, digits, '.', '_' or '-'", arguments: badMetadata)
    func badMetadataEntry(entry: String) {
        expectInvalid("metadata") { $0.metadata = ["env=prod", entry] }
    }

    @Test("metadata: an empty value, '=' inside a value, the longest key; entries grouped by key")
    func metadataCompile() throws {
        let key64 = String(repeating: "k", count: 64)
        let filter = try compile {
            $0.metadata = ["env=prod", "env=staging", "note=", "expr=a=b", "\(key64)=x", "Team.name_1-x=Ünï"]
        }
        #expect(filter.metadata == ["env": ["prod", "staging"], "note": [""], "expr": ["a=b"], key64: ["x"], "Team.name_1-x": ["Ünï"]])
    }

    @Test("search: at most 256 bytes (counted in UTF-8); empty means no condition")
    func searchLength() throws {
        expectInvalid("search") { $0.search = String(repeating: "a", count: 257) }
        expectInvalid("search") { $0.search = String(repeating: "é", count: 129) }  // 258 bytes
        _ = try compile { $0.search = String(repeating: "a", count: 256) }
        _ = try compile { $0.search = String(repeating: "é", count: 128) }
        #expect(try compile { $0.search = "" }.search == nil)
        #expect(try compile { $0.search = "Alice" }.search?.needle == "alice")
    }

    @Test("last cannot be combined with since")
    func lastWithSince() {
        expectInvalid("last") {
            $0.since = .init(unixNanos: Self.t0)
            $0.last = .init(seconds: 3600)
        }
    }

    static let badLasts: [(Int64, Int32)] = [
        (0, 0), (0, 999_999_999), (0, 1), (-1, 0), (-3600, 0), (1, -1),
        (3_653 * 86_400, 1), (3_653 * 86_400 + 1, 0), (100 * 365 * 86_400, 0), (Int64.max, 0), (Int64.max / 1_000_000_000 + 1, 0),
        (Int64.min, 0),
    ]

    @Test("last must lie between 1 second and 10 years", arguments: badLasts)
    func lastOutOfRange(seconds: Int64, nanos: Int32) {
        expectInvalid("last") { $0.last = .init(seconds: seconds, nanos: nanos) }
    }

    @Test("last: 1 second and 10 years (3,653 days) are the bounds; since = anchor - last, inclusive")
    func lastResolves() throws {
        let anchor = Self.t0
        for (seconds, nanos) in [(Int64(1), Int32(0)), (3_653 * 86_400, 0), (86_400, 500)] {
            var message = Vigil_V1_Filter()
            message.last = .init(seconds: seconds, nanos: nanos)
            let filter = try EventFilter(message, anchor: anchor)
            let length = seconds * 1_000_000_000 + Int64(nanos)
            #expect(filter.since == anchor - length)
            #expect(filter.matches(event(at: anchor - length)))
            #expect(!filter.matches(event(at: anchor - length - 1)))
            #expect(filter.matches(event(at: anchor - 1)))
        }
        // The anchor decides, not the clock: a cursor's anchor from long ago keeps its range.
        var message = Vigil_V1_Filter()
        message.last = .init(seconds: 3600)
        let old = try EventFilter(message, anchor: 1_000 * 1_000_000_000_000)
        #expect(old.since == 1_000 * 1_000_000_000_000 - 3_600_000_000_000)
        let now = try EventFilter(message)
        #expect(now.since > old.since)
        #expect(old.fingerprint == now.fingerprint, "the fingerprint is of the filter as sent, not of the resolved range")
    }

    @Test("last with until: until must be later than the start of the range")
    func lastWithUntil() throws {
        let anchor = Self.t0
        var message = Vigil_V1_Filter()
        message.last = .init(seconds: 3600)
        message.until = .init(unixNanos: anchor - 3_600_000_000_000)
        do {
            _ = try EventFilter(message, anchor: anchor)
            Issue.record("until at the start of last compiled")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("filter.until "), "\(error)")
        }
        message.until = .init(unixNanos: anchor - 3_600_000_000_000 + 1)
        let filter = try EventFilter(message, anchor: anchor)
        #expect(filter.matches(event(at: anchor - 3_600_000_000_000)))
        #expect(!filter.matches(event(at: anchor - 3_600_000_000_000 + 1)))
    }

    // MARK: - Matching the new conditions

    @Test("actorEmails compare ASCII case-insensitively, and only ASCII")
    func actorEmails() throws {
        let filter = try compile { $0.actorEmails = ["Bob@Acme.TEST", "ÄLICE@x.test"] }
        #expect(filter.actorEmails == ["bob@acme.test", "Älice@x.test"])
        #expect(filter.matches(richEvent(email: "bob@acme.test")))
        #expect(filter.matches(richEvent(email: "BOB@ACME.TEST")))
        #expect(filter.matches(richEvent(email: "bOb@aCmE.tEsT")))
        #expect(!filter.matches(richEvent(email: "bob@acme.test.evil")))
        #expect(!filter.matches(richEvent(email: "bob@acme.tes")))
        #expect(!filter.matches(richEvent(email: "")))
        // Non-ASCII letters are compared as they are.
        #expect(filter.matches(richEvent(email: "ÄLICE@X.TEST")))
        #expect(filter.matches(richEvent(email: "Älice@x.test")))
        #expect(!filter.matches(richEvent(email: "älice@x.test")))
        #expect(filter.allowsActorEmail("BOB@acme.test"))
    }

    @Test("actorNames and resourceNames match exactly, case and all")
    func names() throws {
        let actors = try compile { $0.actorNames = ["Bob", "Ünïcode Ölaf"] }
        #expect(actors.matches(richEvent(name: "Bob")))
        #expect(actors.matches(richEvent(name: "Ünïcode Ölaf")))
        #expect(!actors.matches(richEvent(name: "bob")))
        #expect(!actors.matches(richEvent(name: "Bobby")))
        #expect(!actors.matches(richEvent(name: "ünïcode ölaf")))
        #expect(!actors.matches(richEvent(name: "")))

        let resources = try compile { $0.resourceNames = ["alice", ""] }
        #expect(resources.matches(richEvent(resourceName: "alice")))
        #expect(resources.matches(richEvent(resourceName: "")), "an empty entry selects events without a name")
        #expect(!resources.matches(richEvent(resourceName: "Alice")))
    }

    @Test("actorTypes and categories, including the unspecified values")
    func enums() throws {
        let types = try compile { $0.actorTypes = [.service, .unspecified] }
        #expect(types.matches(richEvent(actorType: .service)))
        #expect(types.matches(richEvent(actorType: .unspecified)))
        #expect(!types.matches(richEvent(actorType: .user)))
        #expect(!types.matches(richEvent(actorType: .anonymous)))

        let categories = try compile { $0.categories = [.login, .logout] }
        #expect(categories.matches(richEvent(category: .login)))
        #expect(categories.matches(richEvent(category: .logout)))
        #expect(!categories.matches(richEvent(category: .unspecified)))
        #expect(!categories.matches(richEvent(category: .other)))

        let unspecified = try compile { $0.categories = [.unspecified] }
        #expect(unspecified.matches(richEvent(category: .unspecified)))
        #expect(!unspecified.matches(richEvent(category: .read)))
    }

    @Test("excludeOutcomes: [SUCCESS] selects everything that did not succeed, unspecified included; with outcomes, both hold")
    func excludeOutcomes() throws {
        let notSuccess = try compile { $0.excludeOutcomes = [.success] }
        #expect(!notSuccess.matches(richEvent(outcome: .success)))
        #expect(notSuccess.matches(richEvent(outcome: .failure)))
        #expect(notSuccess.matches(richEvent(outcome: .denied)))
        #expect(notSuccess.matches(richEvent(outcome: .unspecified)))

        let both = try compile {
            $0.outcomes = [.success, .failure]
            $0.excludeOutcomes = [.failure]
        }
        #expect(both.matches(richEvent(outcome: .success)))
        #expect(!both.matches(richEvent(outcome: .failure)))
        #expect(!both.matches(richEvent(outcome: .denied)))
        #expect(!both.matches(richEvent(outcome: .unspecified)))
        #expect(both.allowsOutcome(1) && !both.allowsOutcome(2))
    }

    @Test("sourceIps: addresses, v4 and v6 blocks; never across families; events without an IP never match")
    func sourceIPs() throws {
        let filter = try compile { $0.sourceIps = ["10.0.0.0/8", "2001:DB8::1", "192.168.1.7"] }
        #expect(filter.matches(richEvent(sourceIP: "10.1.2.3")))
        #expect(filter.matches(richEvent(sourceIP: "10.255.255.255")))
        #expect(!filter.matches(richEvent(sourceIP: "11.0.0.1")))
        #expect(filter.matches(richEvent(sourceIP: "2001:db8::1")))
        #expect(filter.matches(richEvent(sourceIP: "2001:0db8:0:0::1")), "non-canonical event text still compares as an address")
        #expect(!filter.matches(richEvent(sourceIP: "2001:db8::2")))
        #expect(filter.matches(richEvent(sourceIP: "192.168.1.7")))
        #expect(!filter.matches(richEvent(sourceIP: "192.168.1.70")))
        #expect(!filter.matches(richEvent(sourceIP: "::ffff:10.1.2.3")), "an IPv4-mapped IPv6 address is not in an IPv4 block")
        #expect(!filter.matches(richEvent(sourceIP: "::ffff:192.168.1.7")))
        #expect(!filter.matches(richEvent(sourceIP: "")))
        #expect(!filter.matches(richEvent(sourceIP: "not-an-ip")))

        let all = try compile { $0.sourceIps = ["0.0.0.0/0", "::/0"] }
        #expect(all.matches(richEvent(sourceIP: "1.2.3.4")))
        #expect(all.matches(richEvent(sourceIP: "::1")))
        #expect(all.matches(richEvent(sourceIP: "::ffff:1.2.3.4")))
        #expect(!all.matches(richEvent(sourceIP: "")), "no source IP is in no network, not even /0")

        let v4Only = try compile { $0.sourceIps = ["0.0.0.0/0"] }
        #expect(!v4Only.matches(richEvent(sourceIP: "2001:db8::1")))
        let mapped = try compile { $0.sourceIps = ["::ffff:0:0/96"] }
        #expect(mapped.matches(richEvent(sourceIP: "::ffff:10.1.2.3")))
        #expect(!mapped.matches(richEvent(sourceIP: "10.1.2.3")))
        let hostBits = try compile { $0.sourceIps = ["10.9.9.9/8"] }
        #expect(hostBits.matches(richEvent(sourceIP: "10.0.0.1")), "host bits below the prefix are cleared")
        #expect(hostBits.sourceAddresses.isEmpty)
    }

    @Test("traceIds and requestIds match exactly")
    func correlationIDs() throws {
        let filter = try compile {
            $0.traceIds = ["4bf92f3577b34da6a3ce929d0e0e4736", "other"]
            $0.requestIds = ["req-981"]
        }
        #expect(filter.matches(richEvent()))
        #expect(!filter.matches(richEvent(traceID: "4BF92F3577B34DA6A3CE929D0E0E4736")))
        #expect(!filter.matches(richEvent(traceID: "4bf92f3577b34da6a3ce929d0e0e473")))
        #expect(!filter.matches(richEvent(traceID: "")))
        #expect(filter.matches(richEvent(traceID: "other")))
        #expect(!filter.matches(richEvent(requestID: "req-98")))
        #expect(!filter.matches(richEvent(requestID: "")))
    }

    @Test("metadata: entries with one key are alternatives, different keys must all hold; empty values and '=' in values")
    func metadata() throws {
        let filter = try compile { $0.metadata = ["project=alpha", "env=prod", "env=staging"] }
        #expect(filter.matches(richEvent(metadata: ["project": "alpha", "env": "prod"])))
        #expect(filter.matches(richEvent(metadata: ["project": "alpha", "env": "staging", "extra": "x"])))
        #expect(!filter.matches(richEvent(metadata: ["project": "alpha", "env": "dev"])))
        #expect(!filter.matches(richEvent(metadata: ["project": "alpha"])))
        #expect(!filter.matches(richEvent(metadata: ["env": "prod"])))
        #expect(!filter.matches(richEvent(metadata: ["project": "Alpha", "env": "prod"])))
        #expect(!filter.matches(richEvent(metadata: [:])))

        let empty = try compile { $0.metadata = ["note="] }
        #expect(empty.matches(richEvent(metadata: ["note": ""])))
        #expect(!empty.matches(richEvent(metadata: [:])), "an empty value asks for the key to be present")
        #expect(!empty.matches(richEvent(metadata: ["note": "x"])))

        let equals = try compile { $0.metadata = ["expr=a=b"] }
        #expect(equals.matches(richEvent(metadata: ["expr": "a=b"])))
        #expect(!equals.matches(richEvent(metadata: ["expr": "a"])))
        #expect(!equals.matches(richEvent(metadata: ["expr=a": "b"])))
    }

    @Test("values compare by their exact bytes: two spellings of \"Café\" (é, and e + U+0301) are two values")
    func exactBytes() throws {
        let composed = "Caf\u{E9}"
        let decomposed = "Cafe\u{301}"
        #expect(composed == decomposed, "Swift's == calls them equal; the filter must not")
        func spelled(_ text: String) -> AuditEvent {
            var event = richEvent(email: text + "@x.test", name: text, resourceName: text, traceID: "t-" + text, requestID: "q-" + text, metadata: ["k": text])
            event.actor.id = "u-" + text
            event.resource.type = text
            event.resource.id = "r-" + text
            event.description_p = text
            return event
        }
        let conditions: [(String, (inout Vigil_V1_Filter) -> Void)] = [
            ("actorIds", { $0.actorIds = ["u-" + composed] }), ("actorNames", { $0.actorNames = [composed] }),
            ("actorEmails", { $0.actorEmails = [composed + "@X.TEST"] }), ("resourceTypes", { $0.resourceTypes = [composed] }),
            ("resourceIds", { $0.resourceIds = ["r-" + composed] }), ("resourceNames", { $0.resourceNames = [composed] }),
            ("traceIds", { $0.traceIds = ["t-" + composed] }), ("requestIds", { $0.requestIds = ["q-" + composed] }),
            ("metadata", { $0.metadata = ["k=" + composed] }), ("search", { $0.search = composed }),
        ]
        for (name, configure) in conditions {
            let filter = try compile(configure)
            #expect(filter.matches(spelled(composed)), "\(name): the same bytes match")
            #expect(!filter.matches(spelled(decomposed)), "\(name): other bytes do not, however Swift compares them")
        }
    }

    @Test("search looks case-insensitively in actor name and e-mail, resource name and id, action and description — nowhere else")
    func searchFields() throws {
        let filter = try compile { $0.search = "NeedLe" }
        func with(_ change: (inout AuditEvent) -> Void) -> AuditEvent {
            var event = richEvent()
            change(&event)
            return event
        }
        #expect(!filter.matches(richEvent()))
        #expect(filter.matches(with { $0.actor.name = "a needle here" }))
        #expect(filter.matches(with { $0.actor.email = "NEEDLE@acme.test" }))
        #expect(filter.matches(with { $0.resource.name = "xneedlex" }))
        #expect(filter.matches(with { $0.resource.id = "doc-needle" }))
        #expect(filter.matches(with { $0.action = "needle.thread" }))
        #expect(filter.matches(with { $0.description_p = "found the Needle" }))
        // Fields search does not look in.
        #expect(!filter.matches(with { $0.tenant = "needle" }))
        #expect(!filter.matches(with { $0.actor.id = "needle" }))
        #expect(!filter.matches(with { $0.resource.type = "needle" }))
        #expect(!filter.matches(with { $0.reason = "needle" }))
        #expect(!filter.matches(with { $0.userAgent = "needle" }))
        #expect(!filter.matches(with { $0.traceID = "needle" }))
        #expect(!filter.matches(with { $0.requestID = "needle" }))
        #expect(!filter.matches(with { $0.metadata = ["needle": "needle"] }))
        #expect(!filter.matches(with { $0.sourceIp = "needle" }))
        var target = Vigil_V1_Resource()
        target.id = "needle"
        #expect(!filter.matches(with { $0.targets = [target] }))

        let unicode = try compile { $0.search = "ÜNÏ" }
        #expect(unicode.matches(with { $0.description_p = "some ünïcode text" }))
        #expect(unicode.matches(with { $0.actor.name = "ÜNÏCODE" }))
        #expect(!unicode.matches(with { $0.actor.name = "UNICODE" }))
    }

    @Test("every new condition makes a filter more than time and tenant; only those two keep it time-and-tenant only")
    func timeAndTenantOnly() throws {
        #expect(try compile { _ in }.isTimeAndTenantOnly)
        #expect(try compile {
            $0.tenants = ["acme"]
            $0.since = .init(unixNanos: Self.t0)
            $0.until = .init(unixNanos: Self.t0 + 1)
        }.isTimeAndTenantOnly)
        #expect(try compile { $0.last = .init(seconds: 60) }.isTimeAndTenantOnly)
        let conditions: [(String, (inout Vigil_V1_Filter) -> Void)] = [
            ("actorIds", { $0.actorIds = ["u"] }), ("actions", { $0.actions = ["a.*"] }),
            ("resourceTypes", { $0.resourceTypes = ["t"] }), ("resourceIds", { $0.resourceIds = ["r"] }),
            ("outcomes", { $0.outcomes = [.success] }), ("actorEmails", { $0.actorEmails = ["a@b"] }),
            ("actorNames", { $0.actorNames = ["n"] }), ("actorTypes", { $0.actorTypes = [.user] }),
            ("categories", { $0.categories = [.read] }), ("resourceNames", { $0.resourceNames = ["n"] }),
            ("excludeOutcomes", { $0.excludeOutcomes = [.success] }), ("sourceIps", { $0.sourceIps = ["10.0.0.0/8"] }),
            ("traceIds", { $0.traceIds = ["t"] }), ("requestIds", { $0.requestIds = ["r"] }),
            ("metadata", { $0.metadata = ["k=v"] }), ("search", { $0.search = "s" }),
        ]
        for (name, configure) in conditions {
            let filter = try compile(configure)
            #expect(!filter.isTimeAndTenantOnly, "\(name)")
        }
    }

    @Test("every new field changes the fingerprint")
    func fingerprintOfNewFields() throws {
        let base = try compile { _ in }
        var fingerprints: Set<UInt64> = [base.fingerprint]
        let variants: [(inout Vigil_V1_Filter) -> Void] = [
            { $0.actorEmails = ["a@b"] }, { $0.actorNames = ["n"] }, { $0.actorTypes = [.user] }, { $0.categories = [.read] },
            { $0.resourceNames = ["n"] }, { $0.excludeOutcomes = [.success] }, { $0.sourceIps = ["10.0.0.0/8"] },
            { $0.traceIds = ["t"] }, { $0.requestIds = ["r"] }, { $0.metadata = ["k=v"] }, { $0.search = "s" },
            { $0.search = "S" }, { $0.last = .init(seconds: 60) }, { $0.last = .init(seconds: 61) },
        ]
        for variant in variants {
            fingerprints.insert(try compile(variant).fingerprint)
        }
        #expect(fingerprints.count == variants.count + 1)
    }
}
