import Synchronization
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Cursor paging while ingest, flushes and merges go on: the pages of one
/// query add up to exactly the result as of the first page — the events with
/// seq <= its visibleSeq — with no repeat and no gap, even for events stored
/// meanwhile that occurred long ago or at the cursor's very time.
@Suite("Query cursors under concurrent ingest and merge")
struct QueryReferenceCursorTests {
    final class Stop: Sendable {
        private let flag = Atomic<Bool>(false)
        func set() { flag.store(true, ordering: .releasing) }
        var isSet: Bool { flag.load(ordering: .acquiring) }
    }

    static let filters: [(name: String, configure: @Sendable (inout Vigil_V1_Filter) -> Void)] = [
        ("everything", { _ in }),
        ("two tenants, not successes", {
            $0.tenants = ["acme", "globex"]
            $0.excludeOutcomes = [.success]
        }),
        ("auth.* or user.*, from day 2", {
            $0.actions = ["auth.*", "user.*"]
            $0.since = .init(unixNanos: QueryReference.start + QueryReference.day)
        }),
    ]

    @Test("a cursor whose visibleSeq lies inside a batch reads that batch up to it, in memory and in parts", arguments: [Vigil_V1_Order.oldestFirst, .newestFirst])
    func visibleSeqInsideBatch(order: Vigil_V1_Order) async throws {
        try await QueryReference.withStore(rowsPerBlock: 8) { store in
            var generator = QueryEventGenerator(seed: 21)
            var stored: [AuditEvent] = []
            for _ in 0..<3 { stored += try await QueryReference.append(generator.batch(30), to: store) }
            // A cursor from before the first event, reading seqs up to the middle of the second batch.
            let visible = stored[44].seq
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                for message in [Vigil_V1_Filter(), { var m = Vigil_V1_Filter(); m.excludeOutcomes = [.denied]; return m }()] {
                    let filter = try EventFilter(message)
                    let start = QueryCursor(
                        order: order, occurredAt: order == .oldestFirst ? .min : .max, seq: order == .oldestFirst ? 0 : .max,
                        filterFingerprint: filter.fingerprint, visibleSeq: visible)
                    let reference = QueryReference.expected(stored, filter, order: order, visibleSeq: visible)
                    let paged = try await QueryReference.page(store, filter, order: order, pageSize: 4, maxPages: 100, from: start)
                    #expect(paged.visibleSeq == visible, "from \(place): a page reads the cursor's visibleSeq")
                    let problems = QueryReference.compare(paged, with: reference)
                    #expect(problems.isEmpty, "from \(place), \(QueryReference.json(message)):\n\(problems.joined(separator: "\n"))")
                }
            }
        }
    }

    static let arguments: [(UInt64, Vigil_V1_Order, Int)] = [
        (11, .oldestFirst, 0), (12, .newestFirst, 0), (13, .oldestFirst, 1), (14, .newestFirst, 1),
        (15, .oldestFirst, 2), (16, .newestFirst, 2),
    ]

    @Test("pages add up to exactly the result as of the first page", arguments: arguments)
    func pagingUnderIngest(seed: UInt64, order: Vigil_V1_Order, filterIndex: Int) async throws {
        try await QueryReference.withStore(rowsPerBlock: 16, mergeFanIn: 3) { store in
            var generator = QueryEventGenerator(seed: seed)
            // Some of it in parts, some in memory.
            var stored: [AuditEvent] = []
            for batch in 0..<8 {
                stored += try await QueryReference.append(generator.batch(50), to: store)
                if batch % 2 == 1 && batch < 6 { try await store.flushNow() }
            }
            let preloadedThrough = stored.last!.seq
            var message = Vigil_V1_Filter()
            Self.filters[filterIndex].configure(&message)
            let filter = try EventFilter(message)
            let label = "seed \(seed), \(order), \(Self.filters[filterIndex].name)"

            // Another task keeps storing (old times included), flushing and merging until the pages are read.
            let stop = Stop()
            let writer = Task { [generator = QueryEventGenerator(seed: seed &* 31 &+ 7)] () async throws -> (events: [AuditEvent], flushes: Int) in
                var generator = generator
                var written: [AuditEvent] = []
                var flushes = 0
                for batch in 0..<200 where !stop.isSet {
                    written += try await QueryReference.append(generator.batch(generator.int(1...8)), to: store)
                    if batch % 4 == 3 {
                        try await store.flushNow()
                        flushes += 1
                    }
                    if batch % 9 == 8 { try await store.mergeNow() }
                    await Task.yield()
                }
                return (written, flushes)
            }

            // Between pages, this task too stores events — some at the very
            // time of the cursor, some long before it — and flushes and merges.
            var inline: [AuditEvent] = []
            let paged: QueryReference.Paged
            do {
                paged = try await QueryReference.page(store, filter, order: order, pageSize: 7, maxPages: 2_000) { pages, last in
                    var batch = generator.batch(generator.int(1...4))
                    for index in batch.indices {
                        switch generator.int(0...2) {
                        case 0: batch[index].occurredAt = last.occurredAt
                        case 1: batch[index].occurredAt = .init(unixNanos: QueryReference.start + Int64(generator.int(0...1_000)))
                        default: break
                        }
                    }
                    inline += try await QueryReference.append(batch, to: store)
                    if pages % 5 == 0 { try await store.flushNow() }
                    if pages % 11 == 0 { try await store.mergeNow() }
                }
            } catch {
                stop.set()
                _ = try? await writer.value
                throw error
            }
            stop.set()
            let (written, flushes) = try await writer.value

            let everything = stored + inline + written
            #expect(Set(everything.map(\.seq)).count == everything.count)
            let snapshot = paged.visibleSeq
            #expect(snapshot >= preloadedThrough, "\(label): the first page sees everything acknowledged before it")
            let reference = QueryReference.expected(everything, filter, order: order, visibleSeq: snapshot)
            let problems = QueryReference.compare(paged, with: reference)
            #expect(problems.isEmpty, "\(label), visibleSeq \(snapshot):\n\(problems.joined(separator: "\n"))")
            // The test means something: matching events arrived after the snapshot.
            let now = QueryReference.expected(everything, filter, order: order)
            #expect(now.count > reference.count, "\(label): events stored while paging match the filter")
            #expect(paged.pages > 10)
            #expect(flushes > 0 || written.isEmpty)
            // And a new query sees all of them, exactly once.
            let fresh = try await QueryReference.page(store, filter, order: order, pageSize: 97, maxPages: 1_000)
            let freshProblems = QueryReference.compare(fresh, with: now)
            #expect(freshProblems.isEmpty, "\(label), a new query afterwards:\n\(freshProblems.joined(separator: "\n"))")
        }
    }
}
