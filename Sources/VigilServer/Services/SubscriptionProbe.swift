import Synchronization

/// What subscriptions build and hold, for tests (`ServerConfiguration.subscriptionProbe`):
/// the bounds on a subscriber's memory are checked against these.
final class SubscriptionProbe: Sendable {
    private struct State {
        var largestLiveTurnBytes = 0
    }

    private let state = Mutex(State())

    init() {}

    /// The most bytes of messages one turn of live delivery built.
    var largestLiveTurnBytes: Int { state.withLock { $0.largestLiveTurnBytes } }

    func liveTurnBuilt(bytes: Int) {
        state.withLock { $0.largestLiveTurnBytes = max($0.largestLiveTurnBytes, bytes) }
    }
}
