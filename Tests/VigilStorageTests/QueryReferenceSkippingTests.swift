import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Block skipping: with events in parts of many small blocks, a selective
/// filter reports blocks it ruled out by their statistics (tenants, time
/// range, blooms) — and still returns exactly the reference's events.
@Suite("Query engine block skipping")
struct QueryReferenceSkippingTests {
    static let rowsPerBlock = 32
    static let tenants = ["tenant-0", "tenant-1", "tenant-2", "tenant-3"]
    static let sharedTrace = "5ba5ed0000000000000000000000cafe"

    /// 2,400 events of one UTC day in three parts (no memory), each part
    /// of ~25 blocks of 32 rows: unique trace and request ids (but for a
    /// few sharing one trace across tenants), 300 resource ids.
    static func events(seed: UInt64) -> [[AuditEvent]] {
        var rng = SplitMix64(seed: seed)
        let dayStart = QueryReference.start + QueryReference.day
        return (0..<3).map { _ in
            (0..<800).map { _ in
                var event = AuditEvent()
                event.occurredAt = .init(unixNanos: dayStart + Int64.random(in: 0..<QueryReference.day, using: &rng))
                event.tenant = tenants[Int.random(in: 0..<tenants.count, using: &rng)]
                event.actor.id = "u-\(Int.random(in: 0..<50, using: &rng))"
                event.actor.type = .user
                event.action = ["document.read", "document.update", "auth.login"][Int.random(in: 0..<3, using: &rng)]
                event.category = .read
                event.outcome = .success
                event.resource.type = "document"
                event.resource.id = "res-\(Int.random(in: 0..<300, using: &rng))"
                event.traceID = Int.random(in: 0..<100, using: &rng) == 0 ? sharedTrace : PartEvents.hex(16, &rng)
                event.requestID = "req-\(PartEvents.hex(8, &rng))"
                event.sourceIp = "10.\(Int.random(in: 0..<4, using: &rng)).\(Int.random(in: 0..<256, using: &rng)).\(Int.random(in: 1..<255, using: &rng))"
                return event
            }
        }
    }

    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var expectSkipping: Bool
        var configure: @Sendable (inout Vigil_V1_Filter, [AuditEvent]) -> Void
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "one tenant", expectSkipping: true) { filter, _ in filter.tenants = ["tenant-2"] },
        Case(name: "one trace id", expectSkipping: true) { filter, events in filter.traceIds = [events[1_234].traceID] },
        Case(name: "a trace id nobody has", expectSkipping: true) { filter, _ in filter.traceIds = ["00000000000000000000000000000bad"] },
        Case(name: "one resource id", expectSkipping: true) { filter, events in filter.resourceIds = [events[321].resource.id] },
        Case(name: "a one-hour time range", expectSkipping: true) { filter, _ in
            filter.since = .init(unixNanos: QueryReference.start + QueryReference.day + 5 * QueryReference.hour)
            filter.until = .init(unixNanos: QueryReference.start + QueryReference.day + 6 * QueryReference.hour)
        },
        Case(name: "one tenant in a two-hour range", expectSkipping: true) { filter, _ in
            filter.tenants = ["tenant-1"]
            filter.since = .init(unixNanos: QueryReference.start + QueryReference.day + 12 * QueryReference.hour)
            filter.until = .init(unixNanos: QueryReference.start + QueryReference.day + 14 * QueryReference.hour)
        },
        // Correctness only: values in many blocks, or columns the brief leaves to the engine.
        Case(name: "a trace id shared across tenants", expectSkipping: false) { filter, _ in filter.traceIds = [sharedTrace] },
        Case(name: "one request id", expectSkipping: false) { filter, events in filter.requestIds = [events[2_000].requestID] },
        Case(name: "one source address", expectSkipping: false) { filter, events in filter.sourceIps = [events[77].sourceIp] },
        Case(name: "one actor of one tenant", expectSkipping: false) { filter, events in
            filter.tenants = [events[5].tenant]
            filter.actorIds = [events[5].actor.id]
        },
    ]

    @Test("a selective filter skips blocks and still returns exactly the reference's events", arguments: cases)
    func selectiveFilters(_ testCase: Case) async throws {
        try await QueryReference.withStore(rowsPerBlock: Self.rowsPerBlock, mergeFanIn: 8) { store in
            var stored: [AuditEvent] = []
            for batch in Self.events(seed: 0xB10C) {
                stored += try await QueryReference.append(batch, to: store)
                try await store.flushNow()
            }
            #expect(store.statistics.memoryEvents == 0)
            #expect(store.statistics.partEvents == 2_400)
            var message = Vigil_V1_Filter()
            testCase.configure(&message, stored)
            let filter = try EventFilter(message)
            let label = "\(testCase.name): \(QueryReference.json(message))"
            let reference = QueryReference.expected(stored, filter, order: .oldestFirst)
            #expect(reference.count < stored.count / 2, "\(label): selective")

            for order in [Vigil_V1_Order.oldestFirst, .newestFirst] {
                let expected = order == .oldestFirst ? reference : reference.reversed()
                // One page holding everything.
                let page = try await store.scan(filter: filter, order: order, after: nil, limit: 10_000)
                #expect(page.exhausted, "\(label)")
                #expect(
                    page.events.map(\.seq) == expected.map(\.seq),
                    "\(label), \(order): \(QueryReference.difference(got: page.events.map(\.seq), want: expected.map(\.seq)))")
                if testCase.expectSkipping {
                    #expect(page.statistics.blocksSkipped > 0, "\(label), \(order): statistics \(page.statistics)")
                }
                // Small pages (at most about ten).
                let size = max(3, expected.count / 10)
                let paged = try await QueryReference.page(store, filter, order: order, pageSize: size, maxPages: expected.count + 3)
                let problems = QueryReference.compare(paged, with: expected)
                #expect(problems.isEmpty, "\(label), \(order), pages of \(size):\n\(problems.joined(separator: "\n"))")
            }
            let counted = try await store.aggregate(AggregateQuery(filter: filter, groupBy: .tenant))
            #expect(counted.count == UInt64(reference.count), "\(label): count")
            #expect(QueryReference.groups(of: counted.groups) == QueryReference.groups(reference, .tenant), "\(label): groups")
        }
    }
}
