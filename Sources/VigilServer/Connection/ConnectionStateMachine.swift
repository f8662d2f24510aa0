import NIOCore
import VigilCore
import VigilProto
import VigilWire

/// The protocol rules of one server-side connection, as a value: it is told
/// what arrived (or what happened) and answers with the action to carry out.
/// It does no I/O, so every rule is testable without a socket.
struct ConnectionStateMachine {
    struct Limits {
        var maxConcurrentCalls: Int
        var defaultWindow: Int
        /// The smallest frame a client may ask the server to stay under.
        var minClientFrameSize: Int = 131_072
        /// The largest HELLO or HEADERS payload. They hold a token, a method
        /// name, a deadline and a little free-form metadata; without a bound
        /// below the frame limit (4 MiB), 128 calls waiting for their request
        /// could pin gigabytes of decoded metadata on one connection.
        var maxControlFrameBytes: Int = 16_384
    }

    enum Phase: Equatable {
        case awaitingPreface
        case awaitingHello
        /// HELLO arrived; its token is being checked.
        case authenticating
        case active
        /// GOAWAY sent: calls up to `lastStreamID` finish, no new ones start.
        case draining(lastStreamID: UInt32)
        /// The output is finished; nothing more is sent.
        case closed
    }

    enum CallPhase {
        /// HEADERS seen; waiting for the request MESSAGE.
        case awaitingRequest
        /// The request arrived and a task runs the call.
        case running
    }

    struct Call {
        var method: AuditMethod
        /// The HEADERS' deadline, for the message when it passes (0: none).
        /// The rest of the HEADERS (its metadata) is not kept.
        var timeoutMilliseconds: UInt64
        var phase: CallPhase
        var context: CallContext
    }

    enum Action {
        case none
        /// A Vigil preface: answer with the server's preface.
        case sendPreface
        /// A Vigil preface of another major version: answer with the server's
        /// preface (so the client learns which version it speaks), then
        /// GOAWAY FAILED_PRECONDITION, and close.
        case refuseVersion(message: String)
        /// An HTTP request on this port: answer with the 400 text and close.
        case refuseHTTP
        /// Close without a word (TLS hello, garbage).
        case close
        /// HELLO arrived: check its token, then report `authenticated()` or
        /// `authenticationFailed(_:)`.
        case authenticate(token: String, clientName: String)
        case sendWelcome(maxFrameSize: Int, clientName: String)
        case sendPong(ByteBuffer)
        /// A fatal error: GOAWAY with this code and message, then close.
        case goAwayAndClose(lastStreamID: UInt32, code: StatusCode, message: String)
        /// A graceful GOAWAY, then TRAILERS with UNAVAILABLE for the calls
        /// still waiting for their request (`waiting`): each written, the
        /// handler reports `goAwaySent()` and `trailersSent()`. The connection
        /// closes once `phase` is `.closed`.
        case goAway(lastStreamID: UInt32, waiting: [UInt32])
        /// The token was revoked: end these running calls with `error`, send
        /// GOAWAY with it and `error`'s TRAILERS for the calls still waiting
        /// for their request (reported written as for `goAway`), close once
        /// they are done.
        case revoke(lastStreamID: UInt32, contexts: [CallContext], waiting: [UInt32], error: VigilError)
        /// A call was opened: arm its deadline.
        case armDeadline(CallContext, timeoutMilliseconds: UInt64)
        /// End a call that has no task (yet) with TRAILERS.
        case endCall(streamID: UInt32, status: VigilError)
        /// End a running call: its task stops and reports the ending.
        case endRunningCall(CallContext, CallContext.Ending)
        /// The request arrived: run the call.
        case startCall(Call, request: Frame)
        case addCredit(CallContext, Int)
    }

    private(set) var phase: Phase = .awaitingPreface
    private(set) var calls: [UInt32: Call] = [:]
    private(set) var highestStreamID: UInt32 = 0
    private(set) var clientFrameSize: Int = 0
    private(set) var clientName = ""
    /// Calls that finished but whose TRAILERS are not written yet.
    private(set) var pendingTrailers = 0
    /// A draining connection's GOAWAY is not written yet: the connection
    /// must not close before it is, or the client would see the end of the
    /// stream instead of the reason.
    private(set) var goAwayPending = false
    /// The handler began closing the connection (`takeClose()`).
    private var closeTaken = false
    /// Why the connection drains, for calls refused meanwhile.
    private(set) var drainReason = VigilError(.unavailable, "the server is shutting down; retry on a new connection")
    let limits: Limits

    init(limits: Limits) {
        self.limits = limits
    }

    mutating func prefaceReceived(_ classification: Preface.Classification) -> Action {
        guard phase == .awaitingPreface else { return .none }
        switch classification {
        case .vigil(let preface) where preface.major == Preface.current.major:
            phase = .awaitingHello
            return .sendPreface
        case .vigil(let preface):
            phase = .closed
            return .refuseVersion(
                message: "protocol version \(preface.major).\(preface.minor) is not supported; this server speaks \(Preface.current.major).x")
        case .http:
            phase = .closed
            return .refuseHTTP
        case .tls, .garbage:
            phase = .closed
            return .close
        }
    }

    mutating func frameReceived(_ frame: Frame) -> Action {
        switch phase {
        case .awaitingPreface, .closed:
            return .none
        case .awaitingHello:
            guard frame.type == .hello else {
                return fatal(.unauthenticated, "the first frame must be HELLO, not \(frame.type)")
            }
            guard frame.payload.readableBytes <= limits.maxControlFrameBytes else {
                return fatal(.resourceExhausted, "a HELLO of \(frame.payload.readableBytes) bytes exceeds the limit of \(limits.maxControlFrameBytes) bytes")
            }
            let hello: Vigil_V1_Hello
            do { hello = try frame.decode() } catch { return fatal(.invalidArgument, error.message) }
            if hello.maxFrameSize != 0 && Int(hello.maxFrameSize) < limits.minClientFrameSize {
                return fatal(.invalidArgument, "Hello.max_frame_size must be 0 or at least \(limits.minClientFrameSize)")
            }
            phase = .authenticating
            clientFrameSize = Int(hello.maxFrameSize)
            // Only for the logs: a name is not worth more than this.
            clientName = String(hello.clientName.prefix(256))
            return .authenticate(token: hello.authToken, clientName: clientName)
        case .authenticating:
            // The read loop waits for the token check before it reads on.
            return fatal(.unauthenticated, "a \(frame.type) frame arrived before the HELLO was answered")
        case .active, .draining:
            break
        }

        switch frame.type {
        case .hello:
            return fatal(.invalidArgument, "HELLO may be sent only once")
        case .ping:
            return .sendPong(frame.payload)
        case .pong:
            return .none
        case .goAway:
            // The client opens no new calls; those in flight continue.
            return .none
        case .trailers:
            return fatal(.invalidArgument, "TRAILERS are sent by the server only")
        case .headers:
            return headersReceived(frame)
        case .message:
            return messageReceived(frame)
        case .window:
            guard let call = calls[frame.streamID] else { return unknownStream(frame) }
            let window: Vigil_V1_Window
            do { window = try frame.decode() } catch { return fatal(.invalidArgument, error.message) }
            return .addCredit(call.context, Int(window.messages))
        case .cancel:
            guard let call = calls[frame.streamID] else { return unknownStream(frame) }
            if call.phase == .awaitingRequest {
                forget(call)
                return closeIfDrained(or: .none)
            }
            return .endRunningCall(call.context, .cancelledByClient)
        }
    }

    private mutating func headersReceived(_ frame: Frame) -> Action {
        let streamID = frame.streamID
        guard streamID % 2 == 1 else {
            return fatal(.invalidArgument, "calls must use odd stream ids; \(streamID) is even")
        }
        guard streamID > highestStreamID else {
            return fatal(.invalidArgument, "stream id \(streamID) was already used; each call needs a new, larger odd id")
        }
        highestStreamID = streamID
        if case .draining = phase {
            return .endCall(streamID: streamID, status: drainReason)
        }
        guard frame.payload.readableBytes <= limits.maxControlFrameBytes else {
            return .endCall(
                streamID: streamID,
                status: VigilError(
                    .resourceExhausted,
                    "HEADERS of \(frame.payload.readableBytes) bytes exceed the limit of \(limits.maxControlFrameBytes) bytes; send less call metadata"))
        }
        let headers: Vigil_V1_CallHeaders
        do { headers = try frame.decode() } catch {
            return .endCall(streamID: streamID, status: error)
        }
        guard let method = AuditMethod(rawValue: headers.method) else {
            return .endCall(
                streamID: streamID,
                status: VigilError(.unimplemented, "unknown method '\(headers.method.prefix(128))'; methods are named like vigil.v1.Audit/Query"))
        }
        guard calls.count < limits.maxConcurrentCalls else {
            return .endCall(
                streamID: streamID,
                status: VigilError(.resourceExhausted, "this connection already has \(limits.maxConcurrentCalls) calls in flight; wait for one to finish"))
        }
        // A finished call leaves the count before its TRAILERS are written (so
        // that a client answering them at once is not refused), and its task
        // waits in that write while the client does not read. Without a bound
        // here, a client that pipelines calls and never reads had the server
        // start a task for each, without end.
        guard pendingTrailers < limits.maxConcurrentCalls else {
            return .endCall(
                streamID: streamID,
                status: VigilError(
                    .resourceExhausted,
                    "this connection has \(pendingTrailers) finished calls whose answers it has not read; read them before opening more"))
        }
        let credit = headers.hasInitialWindow ? Int(headers.initialWindow) : limits.defaultWindow
        let context = CallContext(streamID: streamID, initialCredit: credit)
        calls[streamID] = Call(method: method, timeoutMilliseconds: headers.timeoutMs, phase: .awaitingRequest, context: context)
        return headers.timeoutMs > 0 ? .armDeadline(context, timeoutMilliseconds: headers.timeoutMs) : .none
    }

    private mutating func messageReceived(_ frame: Frame) -> Action {
        guard var call = calls[frame.streamID] else { return unknownStream(frame) }
        switch call.phase {
        case .awaitingRequest:
            guard frame.flags.contains(.endStream) else {
                forget(call)
                return closeIfDrained(or: .endCall(
                    streamID: frame.streamID,
                    status: VigilError(.invalidArgument, "\(call.method.rawValue) takes one request message: send it in one MESSAGE frame with END_STREAM")))
            }
            call.phase = .running
            calls[frame.streamID] = call
            return .startCall(call, request: frame)
        case .running:
            // The request was complete; anything more is a client bug. The
            // call's task sees the cancellation and the trailers say why.
            return .endRunningCall(
                call.context,
                .failed(VigilError(.invalidArgument, "the request was already complete (END_STREAM); no more MESSAGE frames may follow")))
        }
    }

    /// A frame for a stream that is not open: closed calls are forgotten at
    /// once, so a frame racing a call's end is ignored; a frame for a stream
    /// that was never opened is a protocol error.
    /// A call stream the client opened once and that has ended since (its
    /// late frames are ignored; a stream never opened is a protocol error).
    private func isEndedStream(_ streamID: UInt32) -> Bool {
        streamID <= highestStreamID && streamID % 2 == 1 && calls[streamID] == nil
    }

    private mutating func unknownStream(_ frame: Frame) -> Action {
        if isEndedStream(frame.streamID) { return .none }
        return fatal(.invalidArgument, "\(frame.type) frame for stream \(frame.streamID), which no HEADERS opened")
    }

    /// An oversized frame was skipped without being read.
    mutating func oversizedReceived(_ header: FrameHeader, maxFrameSize: Int) -> Action {
        let message = "a \(header.type?.description ?? "frame") of \(header.length) bytes exceeds the maximum frame size of \(maxFrameSize) bytes; send smaller batches"
        if header.type == .message, phase == .active || isDraining, let call = calls[header.streamID] {
            let error = VigilError(.resourceExhausted, message)
            if call.phase == .running { return .endRunningCall(call.context, .failed(error)) }
            forget(call)
            return closeIfDrained(or: .endCall(streamID: header.streamID, status: error))
        }
        // A call that already ended (its deadline passed while the client was
        // still sending a large request): skipped, as its other frames are,
        // rather than ending every call of the connection.
        if header.type == .message, phase == .active || isDraining, isEndedStream(header.streamID) {
            return .none
        }
        return fatal(.resourceExhausted, message)
    }

    /// Drops a call that never started (it has no task, so nothing else
    /// would): its deadline timer is cancelled too, or it would hold the
    /// call until the deadline. The one place with a side effect: cancelling
    /// is safe from any thread and in any order (`CallContext`).
    private mutating func forget(_ call: Call) {
        calls[call.context.streamID] = nil
        call.context.disarmDeadline()
    }

    /// The contexts of the calls still open, for the connection's end: those
    /// that never started have deadline timers nothing else cancels.
    var openContexts: [CallContext] { calls.values.map(\.context) }

    /// The call's task ended (it sent its trailers, or nothing for a client cancel).
    /// With `trailersPending`, the handler writes the call's TRAILERS next and
    /// then reports `trailersSent()`: until then a shutdown or revocation
    /// must not finish the output, or the TRAILERS (and a subscription's
    /// resume cursor) would be lost.
    mutating func callFinished(streamID: UInt32, trailersPending: Bool = false) -> Action {
        calls[streamID] = nil
        if trailersPending { pendingTrailers += 1 }
        return closeIfDrained(or: .none)
    }

    /// The TRAILERS announced by `callFinished(streamID:trailersPending:)` were written.
    mutating func trailersSent() -> Action {
        pendingTrailers -= 1
        return closeIfDrained(or: .none)
    }

    /// The GOAWAY of `.goAway` or `.revoke` was written.
    mutating func goAwaySent() -> Action {
        goAwayPending = false
        return closeIfDrained(or: .none)
    }

    /// Ends the calls still waiting for their request, whose TRAILERS the
    /// handler writes (counted pending until then). They have no task, and a
    /// draining connection would otherwise wait for a request that may
    /// never come, up to the drain limit.
    private mutating func endWaitingCalls() -> [UInt32] {
        let waiting = calls.values.filter { $0.phase == .awaitingRequest }
        for call in waiting { forget(call) }
        pendingTrailers += waiting.count
        return waiting.map(\.context.streamID).sorted()
    }

    /// The deadline of a call passed.
    mutating func deadlineExpired(streamID: UInt32) -> Action {
        guard let call = calls[streamID] else { return .none }
        if call.phase == .awaitingRequest {
            calls[streamID] = nil
            // The timer writes these TRAILERS itself, outside the read loop's
            // backpressure: counted until `trailersSent()`, as a call's are.
            pendingTrailers += 1
            return .endCall(streamID: streamID, status: VigilError(.deadlineExceeded, "the deadline passed before the request arrived"))
        }
        // A running call ends itself with DEADLINE_EXCEEDED once told.
        return .endRunningCall(call.context, .deadlineExceeded)
    }

    /// The token checked out.
    mutating func authenticated() -> Action {
        guard phase == .authenticating else { return .none }
        phase = .active
        return .sendWelcome(maxFrameSize: clientFrameSize, clientName: clientName)
    }

    /// The token is unknown, revoked or missing.
    mutating func authenticationFailed(_ message: String) -> Action {
        guard phase == .authenticating else { return .none }
        return fatal(.unauthenticated, message)
    }

    /// The connection's token was revoked: every running call ends with
    /// UNAUTHENTICATED, no new call starts, and the connection closes once
    /// they have.
    mutating func tokenRevoked() -> Action {
        let error = VigilError(.unauthenticated, "the connection's token was revoked, or its permissions changed; connect again with a valid token")
        switch phase {
        case .active, .draining:
            let contexts = calls.values.filter { $0.phase == .running }.map(\.context)
            let waiting = endWaitingCalls()
            drainReason = error
            goAwayPending = true
            phase = .draining(lastStreamID: highestStreamID)
            return .revoke(lastStreamID: highestStreamID, contexts: contexts, waiting: waiting, error: error)
        case .awaitingPreface, .awaitingHello, .authenticating:
            return fatal(.unauthenticated, error.message)
        case .closed:
            return .none
        }
    }

    /// The connection had no call for the idle timeout.
    /// Calls still waiting for their request do not count: a client that
    /// opens calls and never sends them would otherwise hold its slot for ever.
    mutating func idleTimedOut(after timeout: Duration) -> Action {
        guard phase == .active, !calls.values.contains(where: { $0.phase == .running }) else { return .none }
        return fatal(.unavailable, "closing the connection after \(timeout.components.seconds) s without a call; reconnect when needed")
    }

    /// No call open and no TRAILERS or GOAWAY about to be written.
    private var isQuiet: Bool { calls.isEmpty && pendingTrailers == 0 && !goAwayPending }

    /// Graceful shutdown began: no new calls, finish those in flight.
    mutating func shutdownRequested() -> Action {
        switch phase {
        case .active:
            // With no call in flight, the connection closes once the GOAWAY is written.
            let waiting = endWaitingCalls()
            goAwayPending = true
            phase = .draining(lastStreamID: highestStreamID)
            return .goAway(lastStreamID: highestStreamID, waiting: waiting)
        case .awaitingPreface, .awaitingHello, .authenticating:
            phase = .closed
            return .close
        case .draining, .closed:
            return .none
        }
    }

    /// The handshake did not complete in time.
    mutating func handshakeTimedOut() -> Action {
        switch phase {
        case .awaitingPreface:
            phase = .closed
            return .close
        case .awaitingHello, .authenticating:
            return fatal(.deadlineExceeded, "no HELLO arrived in time")
        default:
            return .none
        }
    }

    /// A decoding error the stream cannot recover from.
    mutating func protocolError(_ error: VigilError) -> Action {
        if phase == .closed { return .none }
        return fatal(error.code.status, error.message)
    }

    var isDraining: Bool {
        if case .draining = phase { return true }
        return false
    }

    private mutating func fatal(_ code: StatusCode, _ message: String) -> Action {
        phase = .closed
        return .goAwayAndClose(lastStreamID: highestStreamID, code: code, message: message)
    }

    /// Whether the handler should start closing the connection now: once,
    /// when it is closed. Every frame read after that still passes through
    /// the handler, and each scheduled another close timer.
    mutating func takeClose() -> Bool {
        guard phase == .closed, !closeTaken else { return false }
        closeTaken = true
        return true
    }

    private mutating func closeIfDrained(or action: Action) -> Action {
        // The handler carries out `action`, then closes when it sees `.closed`.
        guard case .draining = phase, isQuiet else { return action }
        phase = .closed
        return action
    }
}
