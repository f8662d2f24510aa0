import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Part statistics")
struct PartStatisticsTests {
    /// Writes `events` and returns each block's metadata with its decoded events.
    static func blocks(_ events: [AuditEvent], rowsPerBlock: Int) throws -> [(BlockMetadata, [AuditEvent])] {
        try PartTestSupport.withDirectory { directory in
            var options = PartWriter.Options()
            options.rowsPerBlock = rowsPerBlock
            _ = try PartWriter.write(events, to: directory + "/p", options: options)
            let reader = try PartReader(path: directory + "/p")
            defer { reader.close() }
            return try reader.blocks.map { ($0, try reader.events(block: $0.index)) }
        }
    }

    @Test("block ranges, row counts and tenants describe the block's rows")
    func ranges() throws {
        var rng = SplitMix64(seed: 12)
        let events = (0..<3000).map { _ in PartEvents.random(&rng, tenants: 30) }
        let blocks = try Self.blocks(events, rowsPerBlock: 250)
        #expect(blocks.count == 12)
        var previousLast: Int?
        for (block, rows) in blocks {
            #expect(block.rowCount == rows.count)
            #expect(block.minOccurredAt == rows.map { $0.occurredAt.unixNanos }.min())
            #expect(block.maxOccurredAt == rows.map { $0.occurredAt.unixNanos }.max())
            #expect(block.minSeq == rows.map(\.seq).min())
            #expect(block.maxSeq == rows.map(\.seq).max())
            var tenants: [String] = []
            for row in rows where !(tenants.last.map { sameUTF8($0, row.tenant) } ?? false) { tenants.append(row.tenant) }
            #expect(block.tenants.count == tenants.count && zip(block.tenants, tenants).allSatisfy { sameUTF8($0, $1) })
            #expect(block.tenantIndexes.count == tenants.count)
            if let previousLast { #expect(block.tenantIndexes.lowerBound >= previousLast) }
            previousLast = block.tenantIndexes.upperBound - 1
            #expect(Set(block.columns.keys) == Set(PartColumn.required))
        }
    }

    @Test("statistics have no false negatives")
    func noFalseNegatives() throws {
        var rng = SplitMix64(seed: 13)
        let events = (0..<4000).map { _ in PartEvents.random(&rng, tenants: 20) } + PartEvents.realistic(count: 4000)
        for (block, rows) in try Self.blocks(events, rowsPerBlock: 700) {
            for row in rows {
                #expect(block.mayContain(.tenant, row.tenant))
                #expect(block.mayContain(.actorID, row.actor.id))
                #expect(block.mayContain(.resourceID, row.resource.id))
                #expect(block.mayContain(.traceID, row.traceID))
                #expect(block.mayContain(.requestID, row.requestID))
                #expect(block.mayContain(.sourceIP, row.sourceIp))
                #expect(block.mayContain(.id, row.id))
                #expect(block.mayContain(.action, row.action))
                #expect(block.mayContain(.resourceType, row.resource.type))
                #expect(block.mayContain(.outcome, enumValue: row.outcome.rawValue))
                #expect(block.mayContain(.category, enumValue: row.category.rawValue))
                #expect(block.mayContain(.actorType, enumValue: row.actor.type.rawValue))
                #expect(block.mayContain(.outcome, "\(row.outcome.rawValue)"))
                // Columns without statistics never rule anything out.
                #expect(block.mayContain(.userAgent, "anything"))
            }
        }
    }

    @Test("a block's enum value masks answer as its value sets do, values outside 0..<64 included")
    func enumMasks() {
        var rng = SplitMix64(seed: 29)
        let universe = Array(Int32(-5)..<80)
        for _ in 0..<300 {
            let held = universe.filter { _ in rng.next() % 8 == 0 }
            let kept: ColumnStatistic = rng.next() % 2 == 0 ? .enumValues(held) : .enumCounts(held, held.map { _ in 1 })
            let block = BlockMetadata(
                index: 0, rowCount: 1, minOccurredAt: 0, maxOccurredAt: 0, minSeq: 1, maxSeq: 1, tenantIndexes: 0..<1,
                tenants: ["t"], columns: [:], statistics: [.outcome: kept])
            let allowed = Set(universe.filter { _ in rng.next() % 4 == 0 })
            let mask = allowed.reduce(UInt64(0)) { mask, value in value >= 0 && value < 64 ? mask | 1 << UInt64(value) : mask }
            #expect(
                block.mayHoldEnum(.outcome, allowed: mask, allows: allowed.contains) == held.contains(where: allowed.contains),
                "held \(held), allowed \(allowed.sorted())")
            // A column the block keeps no set for rules nothing out.
            #expect(block.mayHoldEnum(.category, allowed: 0, allows: { _ in false }))
        }
    }

    @Test("statistics prune blocks that cannot match")
    func pruning() throws {
        let events = PartEvents.realistic(count: 20_000)
        let blocks = try Self.blocks(events, rowsPerBlock: 1000)
        // Actors belong to tenants: blocks of other tenants rule out tenant-0's actors.
        let actor = events.first { $0.tenant == "tenant-0" && $0.actor.type == .user }!.actor.id
        let others = blocks.filter { !$0.0.tenants.contains("tenant-0") }
        #expect(others.count > 10)
        let ruledOut = others.filter { !$0.0.mayContain(.actorID, actor) }.count
        #expect(Double(ruledOut) >= 0.9 * Double(others.count), "\(ruledOut) of \(others.count)")
        // Tenants are exact.
        #expect(blocks.filter { $0.0.mayContain(.tenant, "tenant-7") }.count <= 3)
        #expect(blocks.allSatisfy { !$0.0.mayContain(.tenant, "tenant-999") })
        // Value sets are exact: an action no event has is ruled out everywhere.
        #expect(blocks.allSatisfy { !$0.0.mayContain(.action, "user.teleport") })
        #expect(blocks.allSatisfy { $0.0.mayContain(.action, "user.create") })
        #expect(blocks.allSatisfy { $0.0.distinctValues(of: .action)!.count == 60 })
        #expect(blocks.allSatisfy { !$0.0.mayContain(.resourceType, "spaceship") })
        #expect(blocks.allSatisfy { !$0.0.mayContain(.actorType, enumValue: Vigil_V1_ActorType.anonymous.rawValue) })
        #expect(blocks.allSatisfy { $0.0.distinctEnumValues(of: .outcome).map(Set.init) == [1, 2, 3] })
        // Random trace ids and explicit ids that were never stored: about 1% false positives.
        var rng = SplitMix64(seed: 77)
        var hits = 0
        var probes = 0
        for _ in 0..<200 {
            let trace = PartEvents.hex(16, &rng)
            let id = EventID(high: rng.next(), low: rng.next()).description
            for (block, _) in blocks {
                probes += 2
                if block.mayContain(.traceID, trace) { hits += 1 }
                if block.mayContain(.id, id) { hits += 1 }
            }
        }
        #expect(Double(hits) / Double(probes) < 0.02, "\(hits) of \(probes)")
        // A derived id is found through the seq range of its block.
        let row = blocks[3].1[17]
        #expect(blocks[3].0.mayContain(.id, row.id))
        let outside = derivedEventID(receivedAt: 0, seq: blocks.map(\.0.maxSeq).max()! + 1).description
        #expect(blocks.allSatisfy { !$0.0.mayContain(.id, outside) })
    }

    @Test("value sets are kept only for up to 64 values")
    func valueSetLimit() throws {
        var events: [AuditEvent] = []
        for index in 0..<200 {
            var event = AuditEvent()
            event.tenant = "t"
            event.seq = UInt64(index)
            event.action = index < 100 ? "action.\(index)" : "action.\(index % 64)"
            event.occurredAt = PartTestSupport.timestamp(Int64(index))
            events.append(event)
        }
        let blocks = try Self.blocks(events, rowsPerBlock: 100)
        #expect(blocks[0].0.distinctValues(of: .action) == nil)
        #expect(blocks[0].0.mayContain(.action, "action.never"))
        #expect(blocks[1].0.distinctValues(of: .action)?.count == 64)
        #expect(!blocks[1].0.mayContain(.action, "action.99"))
        #expect(blocks[1].0.distinctValues(of: .tenant) == ["t"])
    }
}
