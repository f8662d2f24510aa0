import Synchronization

/// Bounds the response pages one connection builds at once. A page is built
/// (events read and encoded) only while holding a permit, and the permit is
/// held until the page is written — so a client that stops reading its socket
/// pins at most `permits` pages of server memory, however many calls it opens.
final class OutputGate: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    init(permits: Int) {
        state = Mutex(State(available: permits))
    }

    /// Waits for a permit (FIFO). Throws `CancellationError` if the task is
    /// cancelled while waiting.
    func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // A task cancelled before this point ran `onCancel` already,
                // finding no waiter to remove: it must not become one, or it
                // waits for another page's release (a deadline or CANCEL
                // that did not end the call). Checked under the lock that
                // `onCancel` takes, so one of the two always sees the other.
                let granted = state.withLock { state -> Bool? in
                    if Task.isCancelled { return nil }
                    if state.available > 0 && state.waiters.isEmpty {
                        state.available -= 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                switch granted {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume()
                case false?: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
