import VigilCore

/// Remembers the answers to batches sent with an idempotency key, so a retry
/// (say, after a dropped connection) gets the first answer and stores nothing
/// twice. Bounded both ways: keys older than `maxAge` or beyond `maxKeys`
/// (oldest first) are forgotten, and the README documents the window.
public struct IdempotencyWindow: Sendable {
    public var maxKeys: Int
    public var maxAge: Int64

    private var answers: [String: AppendResult] = [:]
    /// Keys in the order they were stored, with when.
    private var order: [(key: String, at: UnixNanos)] = []
    private var orderStart = 0

    /// Defaults: one million keys (about 100 MB at most with 128-byte keys) and 24 hours.
    public init(maxKeys: Int = 1_000_000, maxAge: Int64 = 24 * 3600 * 1_000_000_000) {
        self.maxKeys = maxKeys
        self.maxAge = maxAge
    }

    public mutating func answer(for key: String, now: UnixNanos) -> AppendResult? {
        expire(now: now)
        return answers[key]
    }

    public mutating func remember(_ result: AppendResult, for key: String, now: UnixNanos) {
        answers[key] = result
        order.append((key, now))
        expire(now: now)
    }

    private mutating func expire(now: UnixNanos) {
        while orderStart < order.count,
            answers.count > maxKeys || now - order[orderStart].at > maxAge
        {
            answers.removeValue(forKey: order[orderStart].key)
            orderStart += 1
        }
        // Compact the consumed prefix now and then, so `order` stays bounded.
        if orderStart > 1024 && orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }
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
