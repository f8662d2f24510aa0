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
