import Synchronization
import VigilCore
import VigilStorage

/// What the server knows about itself for `Health`, `/readyz` and
/// `vigil status`, beside the store: whether it is starting, serving or
/// draining; calls in flight; the ingest rate; the last checkpoint; where
/// each subscription stands.
final class ServerVitals: Sendable {
    enum Phase: Sendable {
        case starting, serving, draining
    }

    struct CheckpointMark: Sendable {
        var seq: UInt64
        var createdAt: UnixNanos
    }

    private let phase = Mutex(Phase.starting)
    private let activeCalls = Atomic<Int>(0)
    let ingestRate = IngestRateMeter()
    let startedAt = currentUnixNanos()
    private let checkpoint = Mutex<CheckpointMark?>(nil)
    private let positions = Mutex<(next: UInt64, seqs: [UInt64: AuditService.SubscriptionPosition])>((0, [:]))

    // MARK: Health

    func serving() { phase.withLock { if $0 == .starting { $0 = .serving } } }
    func draining() { phase.withLock { $0 = .draining } }

    /// The server's own reasons for not serving; the store adds its own.
    var problems: [String] {
        switch phase.withLock({ $0 }) {
        case .starting: ["starting: the protocol listener is not open yet"]
        case .serving: []
        case .draining: ["shutting down: draining connections, no new calls are accepted"]
        }
    }

    // MARK: Calls

    func callStarted() { activeCalls.add(1, ordering: .relaxed) }
    func callEnded() { activeCalls.subtract(1, ordering: .relaxed) }
    var callsInFlight: Int { activeCalls.load(ordering: .relaxed) }

    // MARK: Checkpoints

    func checkpointWritten(seq: UInt64, createdAt: UnixNanos) {
        checkpoint.withLock { mark in
            if mark == nil || mark!.seq <= seq { mark = CheckpointMark(seq: seq, createdAt: createdAt) }
        }
    }

    var lastCheckpoint: CheckpointMark? { checkpoint.withLock { $0 } }

    // MARK: Subscriptions

    /// Registers an open subscription's position (for its lag); returns the
    /// key to remove it with.
    func addSubscription(_ position: AuditService.SubscriptionPosition) -> UInt64 {
        positions.withLock { state in
            state.next += 1
            state.seqs[state.next] = position
            return state.next
        }
    }

    func removeSubscription(_ key: UInt64) {
        _ = positions.withLock { $0.seqs.removeValue(forKey: key) }
    }

    /// How far the subscription furthest behind is from `head` (0 without any).
    func subscriberLagMax(head: UInt64) -> UInt64 {
        let seqs = positions.withLock { Array($0.seqs.values) }
        return seqs.map { head > $0.seq ? head - $0.seq : 0 }.max() ?? 0
    }
}
