import Synchronization
import VigilCore

/// What one call shares between the connection's read loop (which sees the
/// client's WINDOW and CANCEL frames) and the task that runs the call.
final class CallContext: Sendable {
    enum Ending: Sendable {
        /// The client sent CANCEL: the call ends without TRAILERS.
        case cancelledByClient
        /// The call's deadline passed: it ends with DEADLINE_EXCEEDED.
        case deadlineExceeded
        /// The client broke the call's rules: it ends with this error.
        case failed(VigilError)
    }

    private struct State {
        var credit: Int
        var creditWaiter: CheckedContinuation<Void, any Error>?
        var creditWaitCancelled = false
        var ending: Ending?
        var endingWaiter: CheckedContinuation<Ending?, Never>?
        var endingWaitCancelled = false
    }

    let streamID: UInt32
    private let state: Mutex<State>
    /// The timer that ends the call at its deadline, cancelled when the call
    /// finishes: left armed, every finished call's timer (and the context it
    /// holds) stayed in the event loop until the deadline, about 2 KB per call
    /// for as long as the client's timeout (vigil-bench's queries: 600 s).
    private let deadline = Mutex<(cancel: (@Sendable () -> Void)?, disarmed: Bool)>((nil, false))
    /// The trailers' metadata should the deadline end the call (`setEndingMetadata`).
    private let endingMetadataSource = Mutex<(@Sendable () -> [String: String])?>(nil)

    init(streamID: UInt32, initialCredit: Int) {
        self.streamID = streamID
        self.state = Mutex(State(credit: initialCredit))
    }

    /// Keeps what cancels the call's deadline timer, to call it when the
    /// call finishes (at once when it has finished already).
    func armDeadline(cancel: @escaping @Sendable () -> Void) {
        let finished = deadline.withLock { deadline in
            if !deadline.disarmed { deadline.cancel = cancel }
            return deadline.disarmed
        }
        if finished { cancel() }
    }

    /// The call finished: its deadline timer is cancelled.
    func disarmDeadline() {
        let cancel = deadline.withLock { deadline in
            defer { deadline = (nil, true) }
            return deadline.cancel
        }
        cancel?()
    }

    /// Keeps what gives the trailers' metadata when the call is ended from
    /// outside its task (its deadline), replacing what was kept before.
    func setEndingMetadata(_ metadata: @escaping @Sendable () -> [String: String]) {
        endingMetadataSource.withLock { $0 = metadata }
    }

    /// The trailers' metadata for an ending from outside the call's task
    /// (empty when the call kept none): asked once that task has finished.
    func endingMetadata() -> [String: String] {
        endingMetadataSource.withLock { $0 }?() ?? [:]
    }

    /// A WINDOW frame: `messages` more response messages may be sent.
    func addCredit(_ messages: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            // Saturate: absurd credit only means "unlimited".
            state.credit = state.credit > Int.max - messages ? Int.max : state.credit + messages
            guard state.credit > 0, let waiter = state.creditWaiter else { return nil }
            state.credit -= 1
            state.creditWaiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// The credit there is now: messages the client may be sent without waiting.
    var credit: Int { state.withLock { max($0.credit, 0) } }

    /// Takes up to `wanted` units of the credit there is now, without waiting; returns how many.
    func takeCredit(upTo wanted: Int) -> Int {
        state.withLock { state in
            let taken = min(max(state.credit, 0), max(wanted, 0))
            state.credit -= taken
            return taken
        }
    }

    /// Takes one unit of credit, suspending until the client grants some.
    /// Throws `CancellationError` if the task is cancelled while it waits.
    func acquireCredit() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if state.creditWaitCancelled { return .failure(CancellationError()) }
                    if state.credit > 0 {
                        state.credit -= 1
                        return .success(())
                    }
                    state.creditWaiter = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                state.creditWaitCancelled = true
                defer { state.creditWaiter = nil }
                return state.creditWaiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Ends the call from outside its task (CANCEL frame, deadline). The first ending wins.
    func end(_ ending: Ending) {
        let waiter = state.withLock { state -> CheckedContinuation<Ending?, Never>? in
            guard state.ending == nil else { return nil }
            state.ending = ending
            defer { state.endingWaiter = nil }
            return state.endingWaiter
        }
        waiter?.resume(returning: ending)
    }

    var ending: Ending? { state.withLock { $0.ending } }

    /// Suspends until `end` is called; returns nil if the task is cancelled first.
    func waitForEnding() async -> Ending? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Ending?, Never>) in
                let immediate = state.withLock { state -> Ending?? in
                    if let ending = state.ending { return .some(ending) }
                    if state.endingWaitCancelled { return .some(nil) }
                    state.endingWaiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Ending?, Never>? in
                state.endingWaitCancelled = true
                defer { state.endingWaiter = nil }
                return state.endingWaiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
