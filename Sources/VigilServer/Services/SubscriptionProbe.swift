import Synchronization

/// What subscriptions build and hold, for tests (`ServerConfiguration.subscriptionProbe`):
/// the bounds on a subscriber's memory are checked against these.
final class SubscriptionProbe: Sendable {
    private struct State {
        var largestLiveTurnBytes = 0
        var catchUpPagesHeld = 0
        var mostCatchUpPagesHeld = 0
    }

    private let state = Mutex(State())

    init() {}

    /// The most bytes of messages one turn of live delivery built.
    var largestLiveTurnBytes: Int { state.withLock { $0.largestLiveTurnBytes } }
    /// Catch-up pages read from the store and not yet sent, at most at once.
    var mostCatchUpPagesHeld: Int { state.withLock { $0.mostCatchUpPagesHeld } }

    func liveTurnBuilt(bytes: Int) {
        state.withLock { $0.largestLiveTurnBytes = max($0.largestLiveTurnBytes, bytes) }
    }

    func catchUpPageRead() {
        state.withLock { state in
            state.catchUpPagesHeld += 1
            state.mostCatchUpPagesHeld = max(state.mostCatchUpPagesHeld, state.catchUpPagesHeld)
        }
    }

    func catchUpPageSent() {
        state.withLock { $0.catchUpPagesHeld -= 1 }
    }
}
