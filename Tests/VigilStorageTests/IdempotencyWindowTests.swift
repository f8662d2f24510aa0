import Testing
import VigilCore

@testable import VigilStorage

/// The idempotency window as a value: keys expire by age, and past its key
/// limit the scopes (tenants) holding the most keys give up their oldest.
@Suite("Idempotency window")
struct IdempotencyWindowTests {
    func result(_ seq: UInt64) -> AppendResult {
        AppendResult(firstSeq: seq, lastSeq: seq, count: 1, receivedAt: 0, replayed: false)
    }

    func key(_ tenant: String, _ name: String) -> String { IdempotencyWindow.scoped(name, tenants: [tenant]) }

    @Test("one tenant sending a key with every batch past the limit takes the others' keys only down to an equal share")
    func floodingTenantEvictsItsOwnKeys() {
        var window = IdempotencyWindow(maxKeys: 100, maxAge: .max)
        for index in 0..<10 { window.remember(result(UInt64(index)), for: key("acme", "a\(index)"), now: 1) }
        for index in 0..<10_000 { window.remember(result(UInt64(1_000 + index)), for: key("other", "o\(index)"), now: 2) }
        #expect(window.count <= 100)
        for index in 0..<10 { #expect(window.answer(for: key("acme", "a\(index)"), now: 3)?.firstSeq == UInt64(index)) }
        // The flooding scope keeps its newest keys.
        #expect(window.answer(for: key("other", "o9999"), now: 3) != nil)
        #expect(window.answer(for: key("other", "o0"), now: 3) == nil)
    }

    @Test("several scopes over the limit are cut to one level; the smaller ones keep every key")
    func scopesAreCutToOneLevel() {
        var window = IdempotencyWindow(maxKeys: 64, maxAge: .max)
        var seq: UInt64 = 0
        for (tenant, count) in [("small", 5), ("mid", 30), ("big", 60)] {
            for index in 0..<count {
                seq += 1
                window.remember(result(seq), for: key(tenant, "k\(index)"), now: 1)
            }
        }
        #expect(window.count <= 64)
        for index in 0..<5 { #expect(window.answer(for: key("small", "k\(index)"), now: 1) != nil) }
        let mid = (0..<30).count { window.answer(for: key("mid", "k\($0)"), now: 1) != nil }
        let big = (0..<60).count { window.answer(for: key("big", "k\($0)"), now: 1) != nil }
        #expect(abs(mid - big) <= 1, "mid \(mid), big \(big)")
        #expect(window.answer(for: key("big", "k59"), now: 1) != nil, "the newest stay")
    }

    @Test("past the limit with a scope per key (batches of mixed tenants), only the oldest keys go, and the age queue stays bounded")
    func oneKeyPerScope() {
        var window = IdempotencyWindow(maxKeys: 640, maxAge: .max)
        for index in 0..<20_000 { window.remember(result(UInt64(index)), for: key("t\(index)", "k"), now: 1) }
        #expect(window.count >= 630 && window.count <= 640, "\(window.count) keys kept")
        #expect(window.answer(for: key("t19999", "k"), now: 1) != nil)
        #expect(window.answer(for: key("t0", "k"), now: 1) == nil)
        #expect(window.ageQueueCount <= 2 * 640 + 1024 + 640)
    }

    @Test("keys expire by age, oldest first, whichever scope; a key forgotten and stored again lives its new life")
    func ageAndReinsertion() {
        var window = IdempotencyWindow(maxKeys: 10, maxAge: 100)
        window.remember(result(1), for: key("acme", "a"), now: 0)
        window.remember(result(2), for: key("globex", "g"), now: 50)
        #expect(window.answer(for: key("acme", "a"), now: 120) == nil)
        #expect(window.answer(for: key("globex", "g"), now: 120)?.firstSeq == 2)
        // Evicted by count, then stored again: the stale entry must not take the new one with it.
        for index in 0..<20 { window.remember(result(10 + UInt64(index)), for: key("globex", "x\(index)"), now: 130) }
        #expect(window.answer(for: key("globex", "x0"), now: 130) == nil)
        window.remember(result(99), for: key("globex", "x0"), now: 140)
        #expect(window.answer(for: key("globex", "x0"), now: 235)?.firstSeq == 99, "130's entry expired, 140's not")
        #expect(window.answer(for: key("globex", "x0"), now: 241) == nil)
        #expect(window.count == 0)
    }
}
