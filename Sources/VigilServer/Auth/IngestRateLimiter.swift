import Synchronization
import VigilCore

/// Per-token ingest rate limits: a token bucket per token holding one second
/// of its rate. A batch is admitted while the bucket is not in debt and is
/// charged in full (it may drive the bucket negative), so a batch larger than
/// one second's worth still gets through — then the token waits it off.
final class IngestRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updatedAt: ContinuousClock.Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    /// Tokens with no rate of their own get this; nil means no limit.
    let defaultEventsPerSecond: UInt64?

    init(defaultEventsPerSecond: UInt64?) {
        self.defaultEventsPerSecond = defaultEventsPerSecond
    }

    /// Charges `events` to the principal. Returns nil when admitted, or the
    /// milliseconds to wait before retrying.
    func admit(_ principal: Principal, events: Int, now: ContinuousClock.Instant = .now) -> UInt64? {
        guard let tokenID = principal.tokenID,
            let rate = principal.ingestEventsPerSecond ?? defaultEventsPerSecond, rate > 0
        else { return nil }
        let perSecond = Double(rate)
        return buckets.withLock { buckets -> UInt64? in
            var bucket = buckets[tokenID] ?? Bucket(tokens: perSecond, updatedAt: now)
            let elapsed = (now - bucket.updatedAt) / .seconds(1)
            bucket.tokens = min(perSecond, bucket.tokens + elapsed * perSecond)
            bucket.updatedAt = now
            defer { buckets[tokenID] = bucket }
            guard bucket.tokens >= 0 else {
                return max(1, UInt64((-bucket.tokens / perSecond * 1000).rounded(.up)))
            }
            bucket.tokens -= Double(events)
            return nil
        }
    }

    /// Gives back what `admit` charged for a batch that stored nothing (the
    /// store refused it, or it was a retry answered from the idempotency
    /// window): a token must not be slowed down for events it never wrote.
    func refund(_ principal: Principal, events: Int) {
        guard let tokenID = principal.tokenID,
            let rate = principal.ingestEventsPerSecond ?? defaultEventsPerSecond, rate > 0
        else { return }
        buckets.withLock { buckets in
            guard var bucket = buckets[tokenID] else { return }
            bucket.tokens = min(Double(rate), bucket.tokens + Double(events))
            buckets[tokenID] = bucket
        }
    }
}
