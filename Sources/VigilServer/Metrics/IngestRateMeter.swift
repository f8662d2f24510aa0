import Synchronization

/// Events acknowledged per second over the last minute, for `vigil status`:
/// sixty one-second buckets in a ring, one lock per acknowledged batch.
final class IngestRateMeter: Sendable {
    static let window = 60

    private struct Ring {
        /// Events per second; `seconds[i]` says which second bucket i holds.
        var events = [UInt64](repeating: 0, count: IngestRateMeter.window)
        var seconds = [Int64](repeating: -1, count: IngestRateMeter.window)
    }

    private let ring = Mutex(Ring())
    private let started: ContinuousClock.Instant

    init(now: ContinuousClock.Instant = .now) {
        started = now
    }

    private func second(of instant: ContinuousClock.Instant) -> Int64 {
        (instant - started).components.seconds
    }

    func record(_ events: Int, at instant: ContinuousClock.Instant = .now) {
        let second = second(of: instant)
        let slot = Int(second % Int64(Self.window))
        ring.withLock { ring in
            if ring.seconds[slot] != second {
                ring.seconds[slot] = second
                ring.events[slot] = 0
            }
            ring.events[slot] += UInt64(events)
        }
    }

    /// The average over the last `window` seconds, or over the time since
    /// start when that is shorter (at least one second).
    func eventsPerSecond(at instant: ContinuousClock.Instant = .now) -> Double {
        let now = second(of: instant)
        let oldest = now - Int64(Self.window) + 1
        let total = ring.withLock { ring in
            zip(ring.events, ring.seconds).reduce(UInt64(0)) { sum, bucket in
                bucket.1 >= oldest && bucket.1 <= now ? sum + bucket.0 : sum
            }
        }
        let span = min(Double(Self.window), max(1, (instant - started) / .seconds(1)))
        return Double(total) / span
    }
}
