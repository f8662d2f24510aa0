import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// An aggregate holds every group in memory while it counts: past
/// `AggregateQuery.maxGroups` distinct values it stops with RESOURCE_EXHAUSTED.
@Suite("Aggregate group limit")
struct AggregateLimitTests {
    static func event(actor: Int, at offset: Int64) -> AuditEvent {
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: QueryReference.start + offset * QueryReference.second)
        event.tenant = "acme"
        event.actor.id = "u-\(actor)"
        event.actor.type = .user
        event.action = "document.read"
        event.outcome = .success
        return event
    }

    @Test("more distinct groups than the limit: RESOURCE_EXHAUSTED, from memory and from parts, over one lane or several")
    func groupLimit() async throws {
        // Blocks of 8 rows: 400 events make 50 sources, enough for the parallel lanes once flushed.
        try await QueryReference.withStore(rowsPerBlock: 8) { store in
            _ = try await QueryReference.append((0..<400).map { Self.event(actor: $0 % 40, at: Int64($0)) }, to: store)
            let everything = try EventFilter(Vigil_V1_Filter())
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                var query = AggregateQuery(filter: everything, groupBy: .actorID)
                query.maxGroups = 40
                let counted = try await store.aggregate(query)
                #expect(counted.groups.count == 40 && counted.count == 400, "\(place)")
                query.maxGroups = 39
                do {
                    _ = try await store.aggregate(query)
                    Issue.record("\(place): 40 actors counted under a limit of 39")
                } catch let error as VigilError {
                    #expect(error.code == .resourceExhausted, "\(place): \(error)")
                    #expect(error.message.contains("more than 39 distinct values"), "\(error.message)")
                }
                // The limit is on groups: counting without one is not limited.
                query.groupBy = nil
                #expect(try await store.aggregate(query).count == 400)
            }
        }
    }
}

