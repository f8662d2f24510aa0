import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// The query engine against the brute-force reference: for random events
/// (in parts, merged parts and memory) and random filters, `scan` pages and
/// `aggregate` counts must be exactly what `EventFilter.matches` selects.
///
/// Every failure names its seed and filter; replay one with
/// `VIGIL_QUERY_SEEDS=<seed> swift test --filter QueryReferenceTests`.
@Suite("Query engine against the reference")
struct QueryReferenceTests {
    static let seeds = QueryReference.seeds(default: [1, 2, 3, 0xC0FFEE])
    static let filtersPerSeed = 30
    static let widths: [Int64] = [QueryReference.hour, QueryReference.day, (7 * 60 + 13) * QueryReference.second, QueryReference.second, 7 * QueryReference.hour]

    /// Ingests random batches, flushing (so that several parts per day exist)
    /// and merging along the way, and leaves the last batches in memory.
    /// Returns every event as stored.
    static func populate(
        _ store: ColumnarEventStore, _ generator: inout QueryEventGenerator, batches: Int = 24, sizes: ClosedRange<Int> = 1...50
    ) async throws -> [AuditEvent] {
        var stored: [AuditEvent] = []
        var merged = false
        var flushes = 0
        for batch in 0..<batches {
            stored += try await QueryReference.append(generator.batch(generator.int(sizes)), to: store)
            guard batch < batches - 3 else { continue }  // the last batches stay in memory
            guard batch % 3 == 2 || generator.chance(10) else { continue }
            try await store.flushNow()
            flushes += 1
            // Every third flush gives each day the three parts a merge waits for.
            if flushes % 3 == 0 {
                let before = store.statistics.parts
                try await store.mergeNow()
                merged = merged || store.statistics.parts < before
            }
        }
        let statistics = store.statistics
        #expect(statistics.parts >= 3, "events in several parts")
        #expect(statistics.memoryEvents > 0, "events in memory too")
        #expect(merged, "merges happened")
        return stored
    }

    /// Compiles a generated filter; a generated `until` that ends up before
    /// the start of a `last` is dropped.
    static func compile(_ message: inout Vigil_V1_Filter, anchor: Int64) throws -> EventFilter {
        do {
            return try EventFilter(message, anchor: anchor)
        } catch where error.message.hasPrefix("filter.until ") {
            message.clearUntil()
            return try EventFilter(message, anchor: anchor)
        }
    }

    static func pageSize(for count: Int, _ generator: inout QueryEventGenerator) -> Int {
        let size = generator.pick([1, 2, 3, 7, 16, 50, 1_000, max(1, count / 3), max(1, count), count + 1])
        // At most about 12 pages, to keep the suite quick.
        return max(size, count / 12 + 1)
    }

    /// Both orders, paged, against the reference.
    static func checkScan(
        _ store: ColumnarEventStore, _ filter: EventFilter, anchor: Int64, reference oldestFirst: [AuditEvent],
        _ generator: inout QueryEventGenerator, label: String
    ) async throws {
        for order in [Vigil_V1_Order.oldestFirst, .newestFirst] {
            let reference = order == .oldestFirst ? oldestFirst : oldestFirst.reversed()
            let size = pageSize(for: reference.count, &generator)
            let paged = try await QueryReference.page(
                store, filter, order: order, pageSize: size, anchor: anchor, maxPages: reference.count + 3)
            let problems = QueryReference.compare(paged, with: reference)
            #expect(problems.isEmpty, "\(label)\n\(order), pages of \(size):\n\(problems.joined(separator: "\n"))")
            // Nothing ingests meanwhile: every page was read as bytes too.
            #expect(paged.encodedPagesCompared == paged.pages)
        }
    }

    /// Count, groups and histogram against the reference.
    static func checkAggregate(
        _ store: ColumnarEventStore, _ filter: EventFilter, reference: [AuditEvent], groupBy: GroupField?, width: Int64?, label: String
    ) async throws {
        let result = try await store.aggregate(AggregateQuery(filter: filter, groupBy: groupBy, histogramWidth: width))
        let what = "group by \(groupBy.map { "\($0)" } ?? "nothing"), histogram \(width.map { "\($0) ns" } ?? "none")"
        #expect(result.count == UInt64(reference.count), "\(label)\n\(what): count")
        let groups = groupBy.map { QueryReference.groups(reference, $0) } ?? [:]
        let got = QueryReference.groups(of: result.groups)
        #expect(
            got == groups,
            "\(label)\n\(what): groups\n  got  \(QueryReference.describe(got))\n  want \(QueryReference.describe(groups))")
        let histogram = width.map { QueryReference.histogram(reference, width: $0) } ?? [:]
        #expect(result.histogram == histogram, "\(label)\n\(what): histogram")
    }

    @Test("random filters: scan pages in both orders and aggregates equal EventFilter.matches over every event", arguments: seeds)
    func randomFilters(seed: UInt64) async throws {
        try await QueryReference.withStore { store in
            var generator = QueryEventGenerator(seed: seed)
            var stored = try await Self.populate(store, &generator)

            // Get by id, from parts and memory.
            for _ in 0..<15 {
                let original = generator.pick(stored)
                let got = try await store.get(id: try #require(EventID(original.id)))
                #expect(got.map { QueryReference.sameBytes($0, original) } == true, "seed \(seed): get \(original.id) (seq \(original.seq))")
            }
            #expect(try await store.get(id: EventID(high: 0x0123_4567_89ab_7000, low: 0x8000_0000_0000_0001)) == nil)

            var selecting = 0
            for index in 0..<Self.filtersPerSeed {
                if index == Self.filtersPerSeed / 2 {
                    // Halfway, the parts change under the queries (and any cache of them).
                    stored += try await QueryReference.append(generator.batch(40), to: store)
                    try await store.flushNow()
                    try await store.mergeNow()
                    stored += try await QueryReference.append(generator.batch(10), to: store)
                }
                var (message, anchor) = generator.filter(from: stored)
                let filter = try Self.compile(&message, anchor: anchor)
                let label = "seed \(seed) (replay: VIGIL_QUERY_SEEDS=\(seed)), filter #\(index) \(QueryReference.json(message)), anchor \(anchor)"
                let reference = QueryReference.expected(stored, filter, order: .oldestFirst)
                if !reference.isEmpty && reference.count < stored.count { selecting += 1 }
                try await Self.checkScan(store, filter, anchor: anchor, reference: reference, &generator, label: label)
                let field = GroupField.allCases[index % GroupField.allCases.count]
                let width = index % 3 == 0 ? nil : Self.widths[index % Self.widths.count]
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: field, width: width, label: label)
                if index % 4 == 0 {
                    try await Self.checkAggregate(store, filter, reference: reference, groupBy: nil, width: nil, label: label)
                }
            }
            // The generator draws values from the data: most filters select some events, not all.
            #expect(selecting >= Self.filtersPerSeed / 3, "seed \(seed): only \(selecting) filters select some but not all events")
        }
    }

    @Test(
        "counts, groups and histograms that block statistics can answer: everything, tenant and time ranges, one counted column",
        arguments: seeds.prefix(2))
    func groupsAndStatisticsCounts(seed: UInt64) async throws {
        try await QueryReference.withStore { store in
            var generator = QueryEventGenerator(seed: seed ^ 0x5A5A)
            var stored = try await Self.populate(store, &generator)
            // A dense cluster: blocks of one tenant within one hour (and one
            // 7-minute bucket, sometimes), which statistics can count whole.
            var dense = generator.batch(240)
            for index in dense.indices {
                dense[index].tenant = index % 4 == 0 ? "globex" : "acme"
                dense[index].occurredAt = .init(unixNanos: QueryReference.start + QueryReference.day + 600 * QueryReference.second + Int64(index) * 100_000_000)
            }
            stored += try await QueryReference.append(dense, to: store)
            try await store.flushNow()
            stored += try await QueryReference.append(generator.batch(20), to: store)

            let everything = try EventFilter(Vigil_V1_Filter())
            let all = QueryReference.expected(stored, everything, order: .oldestFirst)
            #expect(all.count == stored.count)
            let counted = try await store.aggregate(AggregateQuery(filter: everything))
            #expect(counted.count == UInt64(stored.count))
            #expect(counted.statistics.blocksFromStatistics > 0, "a count of everything uses block statistics (so that this test tests them): \(counted.statistics)")
            for field in [GroupField?.none] + GroupField.allCases.map(Optional.some) {
                for width in [nil] + Self.widths {
                    try await Self.checkAggregate(store, everything, reference: all, groupBy: field, width: width, label: "seed \(seed), everything")
                }
            }

            // Tenants and time only.
            for index in 0..<12 {
                var message = Vigil_V1_Filter()
                if index % 3 != 2 { message.tenants = Array(Set((0..<generator.int(1...2)).map { _ in generator.pick(QueryEventGenerator.tenants) })).sorted() }
                let a = generator.pick(stored).occurredAt.unixNanos
                let b = generator.pick(stored).occurredAt.unixNanos
                switch index % 4 {
                case 0: message.since = .init(unixNanos: min(a, b))
                case 1: message.until = .init(unixNanos: max(a, b))
                case 2:
                    message.since = .init(unixNanos: min(a, b))
                    message.until = .init(unixNanos: max(a, b) + 1)
                default:
                    // Whole days: the ranges parts and their blocks fit in.
                    message.since = .init(unixNanos: QueryReference.start + QueryReference.day)
                    message.until = .init(unixNanos: QueryReference.start + 2 * QueryReference.day)
                }
                let filter = try EventFilter(message)
                #expect(filter.isTimeAndTenantOnly)
                let label = "seed \(seed), tenant/time filter #\(index) \(QueryReference.json(message))"
                let reference = QueryReference.expected(stored, filter, order: .oldestFirst)
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: nil, width: nil, label: label)
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: .tenant, width: QueryReference.hour, label: label)
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: .outcome, width: nil, label: label)
                try await Self.checkScan(store, filter, anchor: 0, reference: reference, &generator, label: label)
            }

            // One condition on a column whose blocks keep value counts, grouped by it or not.
            var single: [(Vigil_V1_Filter, GroupField?)] = []
            var message = Vigil_V1_Filter()
            message.actions = ["auth.*"]
            single.append((message, .action))
            message = Vigil_V1_Filter()
            message.actions = ["user.create", "document.read", "Doc.Read"]
            single.append((message, .action))
            message = Vigil_V1_Filter()
            message.resourceTypes = ["document", ""]
            single.append((message, .resourceType))
            message = Vigil_V1_Filter()
            message.outcomes = [.failure, .denied]
            single.append((message, .outcome))
            message = Vigil_V1_Filter()
            message.excludeOutcomes = [.success]
            single.append((message, .outcome))
            message = Vigil_V1_Filter()
            message.outcomes = [.success, .failure]
            message.excludeOutcomes = [.failure]
            single.append((message, .outcome))
            message = Vigil_V1_Filter()
            message.categories = [.read, .unspecified]
            single.append((message, .category))
            message = Vigil_V1_Filter()
            message.actorTypes = [.user, .unspecified]
            single.append((message, nil))
            for (condition, field) in single {
                for tenants in [[], ["acme"], ["acme", "globex"]] {
                    var message = condition
                    message.tenants = tenants
                    if !tenants.isEmpty {
                        message.since = .init(unixNanos: QueryReference.start + QueryReference.day)
                        message.until = .init(unixNanos: QueryReference.start + 2 * QueryReference.day)
                    }
                    let filter = try EventFilter(message)
                    let reference = QueryReference.expected(stored, filter, order: .oldestFirst)
                    let label = "seed \(seed), one counted column \(QueryReference.json(message))"
                    for groupBy in Set([field, nil, .tenant]) {
                        for width in [nil, QueryReference.hour, QueryReference.day] {
                            try await Self.checkAggregate(store, filter, reference: reference, groupBy: groupBy, width: width, label: label)
                        }
                    }
                }
            }
        }
    }

    @Test("expired events are neither returned nor counted, also where block statistics alone could count them")
    func retentionHidesExpired() async throws {
        let day = QueryReference.day
        try await QueryReference.withStore(configure: {
            $0.retentionNanos = 30 * day
            $0.tenantRetentionNanos = ["short": 2 * day, "keep": Int64.max]
        }) { store in
            let now = currentUnixNanos()
            var rng = SplitMix64(seed: 99)
            var stored: [AuditEvent] = []
            // Days on both sides of the retention boundaries (2 days for short,
            // 30 for acme) and across them, but never within a minute of one,
            // so that the clock moving on while the test runs changes nothing.
            let cutoffs = [now - 2 * day, now - 30 * day]
            for (index, age) in [40, 10, 1, 30, 2, 40, 10, 1, 30, 2].enumerated() {
                let batch = (0..<60).map { row -> AuditEvent in
                    var event = AuditEvent()
                    var time = now - Int64(age) * day + Int64.random(in: -6 * QueryReference.hour...6 * QueryReference.hour, using: &rng)
                    if cutoffs.contains(where: { abs($0 - time) < 60 * QueryReference.second }) { time += 120 * QueryReference.second }
                    event.occurredAt = .init(unixNanos: time)
                    event.tenant = ["acme", "short", "keep"][row % 3]
                    event.actor.id = "u-\(row % 7)"
                    event.action = "user.update"
                    event.outcome = row % 5 == 0 ? .failure : .success
                    return event
                }
                stored += try await QueryReference.append(batch, to: store, now: now)
                if index == 4 { try await store.flushNow() }  // the first half in parts, the second in memory
            }
            func kept(_ event: AuditEvent) -> Bool {
                let retention: Int64 = switch event.tenant { case "short": 2 * day; case "keep": .max; default: 30 * day }
                return event.occurredAt.unixNanos >= now &- retention
            }
            let visible = stored.filter(kept)
            #expect(visible.count > 0 && visible.count < stored.count)
            var filters: [Vigil_V1_Filter] = [Vigil_V1_Filter()]
            var tenants = Vigil_V1_Filter()
            tenants.tenants = ["acme", "keep"]
            filters.append(tenants)
            var range = Vigil_V1_Filter()
            range.since = .init(unixNanos: now - 50 * day)
            range.until = .init(unixNanos: now)
            filters.append(range)
            var outcome = Vigil_V1_Filter()
            outcome.outcomes = [.failure]
            filters.append(outcome)
            for message in filters {
                let filter = try EventFilter(message)
                let reference = QueryReference.expected(visible, filter, order: .oldestFirst)
                let label = "retention, filter \(QueryReference.json(message))"
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: .tenant, width: day, label: label)
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: nil, width: nil, label: label)
                let paged = try await QueryReference.page(store, filter, order: .newestFirst, pageSize: 45, maxPages: 100)
                let problems = QueryReference.compare(paged, with: reference.reversed())
                #expect(problems.isEmpty, "\(label):\n\(problems.joined(separator: "\n"))")
            }
        }
    }

    @Test("a relative range (last) compiled with a fixed anchor selects [anchor - last, until) in scans and counts")
    func lastWithFixedAnchor() async throws {
        try await QueryReference.withStore { store in
            var generator = QueryEventGenerator(seed: 77)
            let stored = try await Self.populate(store, &generator, batches: 12)
            let anchor = QueryReference.start + 2 * QueryReference.day + 5 * QueryReference.hour
            for (hours, tenants) in [(20, [String]()), (1, []), (30, ["acme", "globex"])] {
                var message = Vigil_V1_Filter()
                message.last = .init(seconds: Int64(hours) * 3_600)
                message.tenants = tenants
                let filter = try EventFilter(message, anchor: anchor)
                #expect(filter.since == anchor - Int64(hours) * QueryReference.hour)
                let reference = QueryReference.expected(stored, filter, order: .oldestFirst)
                #expect(!reference.isEmpty && reference.count < stored.count, "the range selects some events, not all")
                #expect(reference.allSatisfy { $0.occurredAt.unixNanos >= anchor - Int64(hours) * QueryReference.hour })
                let label = "last \(hours)h at anchor \(anchor), tenants \(tenants)"
                try await Self.checkScan(store, filter, anchor: anchor, reference: reference, &generator, label: label)
                try await Self.checkAggregate(store, filter, reference: reference, groupBy: .outcome, width: QueryReference.hour, label: label)
            }
        }
    }
}
