import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Strings that Swift's `==` calls equal but whose bytes differ (canonically
/// equivalent: precomposed "é" U+00E9 and decomposed "e" + U+0301). Parts
/// key their dictionaries, value sets and blooms by bytes; everything else a
/// query touches must treat such strings the same way the reference does, and
/// no event may come back with other bytes than it was stored with.
@Suite("Query engine and canonically equivalent strings")
struct QueryReferenceUnicodeTests {
    static let composed = "Caf\u{E9}"  // "Café", 5 bytes
    static let decomposed = "Cafe\u{301}"  // "Café", 6 bytes

    static func event(_ text: String, tenant: String, at offset: Int64) -> AuditEvent {
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: QueryReference.start + offset * QueryReference.second)
        event.tenant = tenant
        event.actor.id = "u-" + text
        event.actor.type = .user
        event.actor.name = text
        event.actor.email = text + "@example.com"
        event.action = "document.read"
        event.resource.type = text
        event.resource.id = "r-" + text
        event.resource.name = text
        event.outcome = .success
        event.reason = text
        event.userAgent = text
        event.traceID = "t-" + text
        event.requestID = "q-" + text
        event.description_p = text
        return event
    }

    /// The text fields of an event, by name, as UTF-8 bytes.
    static func fields(_ event: AuditEvent) -> [(String, [UInt8])] {
        [
            ("actor.id", event.actor.id), ("actor.name", event.actor.name), ("actor.email", event.actor.email),
            ("resource.type", event.resource.type), ("resource.id", event.resource.id), ("resource.name", event.resource.name),
            ("reason", event.reason), ("userAgent", event.userAgent), ("traceId", event.traceID), ("requestId", event.requestID),
            ("description", event.description_p),
        ].map { ($0.0, Array($0.1.utf8)) }
    }

    static func expectSameBytes(_ got: [AuditEvent], _ stored: [AuditEvent], _ place: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got.map(\.seq) == stored.map(\.seq), "\(place)", sourceLocation: sourceLocation)
        for (event, original) in zip(got, stored) {
            let altered = zip(fields(event), fields(original)).filter { $0.0.1 != $0.1.1 }.map { "\($0.0.0) \($0.1.1) came back as \($0.0.1)" }
            #expect(altered.isEmpty, "\(place), seq \(event.seq): \(altered.joined(separator: "; "))", sourceLocation: sourceLocation)
        }
    }

    @Test("one batch holding both spellings: each event comes back with its own bytes, from memory and from parts")
    func sameBatchRoundTrip() async throws {
        try await QueryReference.withStore { store in
            let batch = [Self.event(Self.composed, tenant: "acme", at: 1), Self.event(Self.decomposed, tenant: "acme", at: 2)]
            let stored = try await QueryReference.append(batch, to: store)
            let everything = try EventFilter(Vigil_V1_Filter())
            let fromMemory = try await store.scan(filter: everything, order: .oldestFirst, after: nil, limit: 10)
            Self.expectSameBytes(fromMemory.events, stored, "from memory")
            try await store.flushNow()
            let fromParts = try await store.scan(filter: everything, order: .oldestFirst, after: nil, limit: 10)
            Self.expectSameBytes(fromParts.events, stored, "from parts")
            for original in stored {
                let got = try await store.get(id: try #require(EventID(original.id)))
                Self.expectSameBytes(got.map { [$0] } ?? [], [original], "get \(original.seq)")
            }
        }
    }

    @Test("group keys keep the two spellings apart, from memory and from parts", arguments: [GroupField.actorID, .resourceType, .tenant])
    func groupsKeepSpellingsApart(field: GroupField) async throws {
        try await QueryReference.withStore(rowsPerBlock: 8) { store in
            var stored: [AuditEvent] = []
            for round in 0..<2 {
                // Both spellings in one batch, and batches of one spelling.
                stored += try await QueryReference.append(
                    [Self.event(Self.composed, tenant: "acme", at: Int64(round * 10)), Self.event(Self.decomposed, tenant: "acme", at: Int64(round * 10 + 1))],
                    to: store)
                stored += try await QueryReference.append(
                    (0..<5).map { Self.event(Self.decomposed, tenant: "globex", at: Int64(round * 10 + 2 + $0)) }, to: store)
            }
            let everything = try EventFilter(Vigil_V1_Filter())
            let reference = QueryReference.groups(stored, field)
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                let counted = try await store.aggregate(AggregateQuery(filter: everything, groupBy: field))
                let got = QueryReference.groups(of: counted.groups)
                #expect(got == reference, "\(field) from \(place):\n  got  \(QueryReference.describe(got))\n  want \(QueryReference.describe(reference))")
            }
        }
    }

    /// Conditions naming one spelling, over events holding both.
    static let conditions: [(name: String, configure: @Sendable (inout Vigil_V1_Filter, String) -> Void)] = [
        ("actorIds", { $0.actorIds = ["u-" + $1] }),
        ("actorNames", { $0.actorNames = [$1] }),
        ("actorEmails", { $0.actorEmails = [$1 + "@example.com"] }),
        ("resourceTypes", { $0.resourceTypes = [$1] }),
        ("resourceIds", { $0.resourceIds = ["r-" + $1] }),
        ("resourceNames", { $0.resourceNames = [$1] }),
        ("traceIds", { $0.traceIds = ["t-" + $1] }),
        ("requestIds", { $0.requestIds = ["q-" + $1] }),
        ("search", { $0.search = $1 }),
    ]

    @Test(
        "a condition naming one spelling selects what EventFilter.matches selects, from memory and from parts",
        arguments: conditions.indices, [true, false])
    func conditionAgreesWithReference(condition: Int, composedInFilter: Bool) async throws {
        let (name, configure) = Self.conditions[condition]
        try await QueryReference.withStore(rowsPerBlock: 8) { store in
            // Separate batches (memory chunks) and separate tenants (part blocks) for the two spellings.
            var stored: [AuditEvent] = []
            for round in 0..<3 {
                stored += try await QueryReference.append(
                    (0..<8).map { Self.event(Self.composed, tenant: "acme", at: Int64(round * 100 + $0)) }, to: store)
                stored += try await QueryReference.append(
                    (0..<8).map { Self.event(Self.decomposed, tenant: "globex", at: Int64(round * 100 + 50 + $0)) }, to: store)
            }
            var message = Vigil_V1_Filter()
            configure(&message, composedInFilter ? Self.composed : Self.decomposed)
            let filter = try EventFilter(message)
            let reference = QueryReference.expected(stored, filter, order: .newestFirst)
            let spelled = composedInFilter ? "composed" : "decomposed"
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                let page = try await store.scan(filter: filter, order: .newestFirst, after: nil, limit: 1_000)
                #expect(
                    page.events.map(\.seq) == reference.map(\.seq),
                    "\(name) with the \(spelled) spelling, from \(place): the reference selects \(reference.count) events, the store \(page.events.count)")
                let counted = try await store.aggregate(AggregateQuery(filter: filter, groupBy: .resourceType))
                #expect(counted.count == UInt64(reference.count), "\(name) with the \(spelled) spelling, from \(place): count")
                #expect(
                    QueryReference.groups(of: counted.groups) == QueryReference.groups(reference, .resourceType),
                    "\(name) with the \(spelled) spelling, from \(place): groups")
            }
        }
    }
}
