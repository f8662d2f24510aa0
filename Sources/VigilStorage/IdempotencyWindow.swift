import VigilCore

/// Remembers the answers to batches sent with an idempotency key, so a retry
/// (say, after a dropped connection) gets the first answer and stores nothing
/// twice. Bounded both ways: keys older than `maxAge` are forgotten, and
/// beyond `maxKeys` keys the oldest of the scopes (tenants, see `scoped`)
/// holding the most are: one tenant sending a key with every small batch
/// must not push the others' keys out of the window, so that their retries
/// would be stored twice. The README documents the window.
public struct IdempotencyWindow: Sendable {
    public var maxKeys: Int
    public var maxAge: Int64

    /// Keys in the order they were stored: when, and under which serial (a
    /// key forgotten and stored again is a new entry; the old one is stale).
    private struct Queue: Sendable {
        var entries: [(key: String, at: UnixNanos, serial: UInt64)] = []
        var start = 0
        var count: Int { entries.count - start }
        var first: (key: String, at: UnixNanos, serial: UInt64)? { start < entries.count ? entries[start] : nil }

        mutating func append(_ entry: (key: String, at: UnixNanos, serial: UInt64)) { entries.append(entry) }

        mutating func removeFirst() {
            start += 1
            // Compact the consumed prefix now and then, so the array stays bounded.
            if start > 1024 && start * 2 > entries.count {
                entries.removeFirst(start)
                start = 0
            }
        }
    }

    private var answers: [String: (result: AppendResult, serial: UInt64)] = [:]
    private var serial: UInt64 = 0
    /// Every key, for expiry by age.
    private var order = Queue()
    /// Each scope's keys, for eviction by count.
    private var scopes: [Substring: Queue] = [:]

    /// Defaults: one million keys (about 100 MB at most with 128-byte keys) and 24 hours.
    public init(maxKeys: Int = 1_000_000, maxAge: Int64 = 24 * 3600 * 1_000_000_000) {
        self.maxKeys = maxKeys
        self.maxAge = maxAge
    }

    public var count: Int { answers.count }

    public mutating func answer(for key: String, now: UnixNanos) -> AppendResult? {
        expire(now: now)
        return answers[key]?.result
    }

    public mutating func remember(_ result: AppendResult, for key: String, now: UnixNanos) {
        if let known = answers[key] {
            answers[key] = (result, known.serial)
        } else {
            serial += 1
            answers[key] = (result, serial)
            order.append((key, now, serial))
            scopes[Self.scope(of: key), default: Queue()].append((key, now, serial))
        }
        expire(now: now)
        if answers.count > maxKeys { evictLargestScopes() }
    }

    /// The part of a scoped key before its NUL: the tenant, or the hash of a tenant set.
    static func scope(of key: String) -> Substring {
        key.prefix { $0 != "\u{0}" }
    }

    private func isLive(_ entry: (key: String, at: UnixNanos, serial: UInt64)) -> Bool {
        answers[entry.key]?.serial == entry.serial
    }

    /// Forgets keys older than `maxAge`, oldest first.
    private mutating func expire(now: UnixNanos) {
        while let oldest = order.first, now - oldest.at > maxAge {
            order.removeFirst()
            guard isLive(oldest) else { continue }  // evicted by count already
            answers.removeValue(forKey: oldest.key)
            let scope = Self.scope(of: oldest.key)
            guard var queue = scopes[scope] else { continue }
            while let first = queue.first, !isLive(first) { queue.removeFirst() }
            scopes[scope] = queue.count == 0 ? nil : queue
        }
    }

    /// Brings the keys under `maxKeys` with room for 1/64 more (so that this
    /// runs once in many batches, not with each): every scope is cut to one
    /// level, the highest that fits, dropping its oldest keys, so that the
    /// scopes holding the most give theirs up and the small ones keep all.
    private mutating func evictLargestScopes() {
        let target = maxKeys - maxKeys / 64
        let sizes = scopes.values.map(\.count).sorted()
        // The level L with sum(min(size, L)) <= target, the highest such.
        var level = sizes.last ?? 0
        var below = 0
        for (index, size) in sizes.enumerated() {
            let remaining = sizes.count - index
            if below + size * remaining > target {
                level = max(0, (target - below) / remaining)
                break
            }
            below += size
        }
        // Cut to one above the level (the level is rounded down: cut to it,
        // 1,000,001 scopes of one key each would all be emptied), then one
        // more key from as many of those as it takes to reach the target.
        for scope in Array(scopes.keys) { trim(scope, to: level + 1) }
        if answers.count > target {
            // Those whose oldest key is oldest first.
            let candidates = scopes.filter { $0.value.count == level + 1 }.map { ($0.key, $0.value.first?.serial ?? 0) }.sorted { $0.1 < $1.1 }
            for (scope, _) in candidates where answers.count > target { trim(scope, to: level) }
        }
        // The age queue still holds the keys evicted by count: let go of
        // them once they are most of it, so that it stays bounded by the
        // key limit, not by every keyed batch of the window's age.
        if order.count > 2 * answers.count + 1024 {
            order = Queue(entries: order.entries[order.start...].filter { isLive($0) }, start: 0)
        }
    }

    /// Forgets the oldest keys of `scope` until it holds `count`.
    private mutating func trim(_ scope: Substring, to count: Int) {
        guard var queue = scopes[scope], queue.count > count else { return }
        while queue.count > count, let first = queue.first {
            if isLive(first) { answers.removeValue(forKey: first.key) }
            queue.removeFirst()
        }
        scopes[scope] = queue.count == 0 ? nil : queue
    }

    /// Entries of the age queue, evicted ones included (tests).
    var ageQueueCount: Int { order.count }
}

extension IdempotencyWindow {
    /// A client's idempotency key as the store keeps it: within the batch's
    /// tenants. Keys are the clients' own names for their batches, and two
    /// tenants' agents may well pick the same one ("batch-42"): kept
    /// server-wide, the second batch was answered with the first's seqs and
    /// silently not stored, and a tenant could learn whether another had used
    /// a key, and when, and for how many events. A retry of a batch names the
    /// same tenants, and a token writes only batches of tenants it may ingest
    /// into, so the scope is exactly what may see the answer.
    ///
    /// One tenant (the usual batch): `<tenant> NUL <key>`. Several: the first
    /// 32 hex digits of SHA-256 over the sorted names (NUL-separated) in
    /// braces, then NUL and the key, so that the scope stays short however many tenants a
    /// batch holds. A tenant name never starts with `{`, so the two forms
    /// never meet. Empty keys stay empty (no idempotency asked).
    public static func scoped(_ key: String, tenants: some Sequence<String>) -> String {
        guard !key.isEmpty else { return key }
        let names = Set(tenants).sorted()
        if names.count == 1 { return names[0] + "\u{0}" + key }
        let joined = Array(names.joined(separator: "\u{0}").utf8)
        let digest = joined.withUnsafeBytes { HashChain.sha256($0, UnsafeRawBufferPointer(start: nil, count: 0)) }
        return "{" + hex16(digest.words.0) + hex16(digest.words.1) + "}" + "\u{0}" + key
    }
}
