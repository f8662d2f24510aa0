import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// A part's rows are in (tenant bytes, occurred-at, seq, input position)
/// order; `SortPlan` gets there by tenant first, then each tenant's rows.
@Suite("The order a part's rows are written in")
struct SortPlanTests {
    static func events(count: Int, tenants: [String], seed: UInt64, timeSpread: Int64, seqSpread: UInt64) -> [AuditEvent] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { index in
            var event = AuditEvent()
            event.tenant = tenants[Int(rng.next() % UInt64(tenants.count))]
            // Mostly rising, with jitter that reorders and ties.
            event.occurredAt = .init(unixNanos: Int64(index) * 10 + Int64(rng.next() % UInt64(timeSpread)))
            event.seq = seqSpread == 0 ? UInt64(index + 1) : rng.next() % seqSpread
            return event
        }
    }

    /// Each event's sort key: its tenant's rank in `tenants`, its time and seq.
    static func keys(_ events: [AuditEvent], tenants: [String]) -> [(rank: Int32, time: Int64, seq: UInt64)] {
        let rankOfTenant = Dictionary(uniqueKeysWithValues: tenants.enumerated().map { (Array($1.utf8), Int32($0)) })
        return events.map { (rankOfTenant[Array($0.tenant.utf8)]!, $0.occurredAt.unixNanos, $0.seq) }
    }

    /// The order one sort of every row by (tenant rank, occurred-at, seq,
    /// input position) gives: what the plan's `order` must be.
    static func referenceOrder(_ events: [AuditEvent], _ plan: SortPlan) -> [Int32] {
        let keys = keys(events, tenants: plan.tenants)
        return (0..<Int32(events.count)).sorted { a, b in
            (keys[Int(a)].rank, keys[Int(a)].time, keys[Int(a)].seq, a) < (keys[Int(b)].rank, keys[Int(b)].time, keys[Int(b)].seq, b)
        }
    }

    /// Whether the plan's per-row keys are those of the rows in its order.
    static func keysInRowOrder(_ events: [AuditEvent], _ plan: SortPlan) -> Bool {
        let keys = keys(events, tenants: plan.tenants)
        let order = plan.order ?? (0..<Int32(events.count)).map { $0 }
        return order.indices.allSatisfy { row in
            let key = keys[Int(order[row])]
            return plan.tenantRank[row] == key.rank && plan.occurredAt[row] == key.time && plan.seq[row] == key.seq
        }
    }

    @Test(
        "the plan's order is that of one sort of every row by tenant bytes, time, seq and input position",
        arguments: [
            (200, 1, Int64(1), UInt64(0)), (5_000, 7, 40, 0), (5_000, 7, 1, 3), (5_000, 50, 100_000, 0), (3_000, 3, 2, 2),
        ])
    func orderMatchesOneSort(count: Int, tenantCount: Int, timeSpread: Int64, seqSpread: UInt64) throws {
        // Byte order, not String order: "e\u{301}" and "é" are different tenants; "" sorts first.
        let names = ["b", "a", "é", "e\u{301}", "", "acme", "Z"] + (0..<50).map { "tenant-\($0)" }
        let tenants = Array(names.prefix(tenantCount))
        let events = Self.events(count: count, tenants: tenants, seed: UInt64(count + tenantCount), timeSpread: timeSpread, seqSpread: seqSpread)
        let plan = try SortPlan(events)
        let order = plan.order ?? (0..<Int32(count)).map { $0 }
        #expect(order == Self.referenceOrder(events, plan))
        #expect(Self.keysInRowOrder(events, plan))
        let present = Set(events.map { Array($0.tenant.utf8) })
        #expect(plan.tenants.map { Array($0.utf8) } == present.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test("rows already in order need no order; one row out of place is moved")
    func inputInOrder() throws {
        var events = Self.events(count: 1_000, tenants: ["t"], seed: 1, timeSpread: 1, seqSpread: 0)
        let inOrder = try SortPlan(events)
        #expect(inOrder.order == nil && Self.keysInRowOrder(events, inOrder))
        events.swapAt(10, 11)
        let plan = try SortPlan(events)
        #expect(plan.order == Self.referenceOrder(events, plan))
        #expect(plan.order?[10] == 11 && plan.order?[11] == 10)
        #expect(Self.keysInRowOrder(events, plan))
        // Kept in input order on request: order nil, keys as given.
        let asGiven = try SortPlan(events, inputOrder: true)
        #expect(asGiven.order == nil && Self.keysInRowOrder(events, asGiven))
    }
}
