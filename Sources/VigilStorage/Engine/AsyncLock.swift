import Synchronization
import VigilCore

/// Mutual exclusion for async work (flush, merge, retention, close), which
/// awaits the WAL and so cannot run under a `Mutex`. Waiters go first come,
/// first served.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func withLock<R>(_ body: () async throws(VigilError) -> R) async throws(VigilError) -> R {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty {
                    state.locked = false
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }

    /// Tasks waiting for the lock now.
    var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// For the holder, inside `withLock`: lets the tasks waiting now run
    /// their locked work first, then returns holding the lock again (a merge
    /// of millions of rows lets a backup or a verification in between its
    /// windows). Returns false, without yielding, when `stop()` is true;
    /// `stop` is asked while no task can join the waiters, so a task that set
    /// what it reads before asking for the lock is never yielded to.
    func yieldToWaiters(unless stop: () -> Bool) async -> Bool {
        var stopped = false
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if stop() {
                    stopped = true
                    return nil
                }
                guard !state.waiters.isEmpty else { return nil }
                // The holder goes to the back of the queue; the first waiter gets the lock.
                state.waiters.append(continuation)
                return state.waiters.removeFirst()
            }
            if let next {
                next.resume()
            } else {
                continuation.resume()
            }
        }
        return !stopped
    }
}
