import NIOCore
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilServer
import VigilWire

/// The connection's protocol rules as a plain value: no channel, no socket.
@Suite("ConnectionStateMachine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    typealias Action = ConnectionStateMachine.Action

    // MARK: Helpers

    static func machine(maxConcurrentCalls: Int = 4, defaultWindow: Int = 8) -> Machine {
        Machine(limits: .init(maxConcurrentCalls: maxConcurrentCalls, defaultWindow: defaultWindow))
    }

    static func hello(maxFrameSize: UInt32 = 0, clientName: String = "state-machine-tests") -> Frame {
        var hello = Vigil_V1_Hello()
        hello.majorVersion = 1
        hello.clientName = clientName
        hello.maxFrameSize = maxFrameSize
        return Frame(type: .hello, streamID: 0, message: hello)
    }

    static func headers(_ streamID: UInt32, method: String = AuditMethod.ingest.rawValue, timeoutMs: UInt64 = 0, initialWindow: UInt32? = nil) -> Frame {
        RawConnection.headers(streamID: streamID, method: method, timeoutMs: timeoutMs, initialWindow: initialWindow)
    }

    static func request(_ streamID: UInt32, flags: FrameFlags = .endStream) -> Frame {
        Frame(type: .message, flags: flags, streamID: streamID, message: Vigil_V1_IngestRequest())
    }

    /// A machine past the preface and HELLO.
    static func activeMachine(maxConcurrentCalls: Int = 4, defaultWindow: Int = 8) -> Machine {
        var machine = machine(maxConcurrentCalls: maxConcurrentCalls, defaultWindow: defaultWindow)
        _ = machine.prefaceReceived(.vigil(.current))
        _ = machine.frameReceived(hello())
        _ = machine.authenticated()
        precondition(machine.phase == .active)
        return machine
    }

    /// Opens a call on `streamID` and, when `running`, delivers its request too.
    static func open(_ streamID: UInt32, on machine: inout Machine, running: Bool = true, method: AuditMethod = .ingest) {
        let opened = machine.frameReceived(headers(streamID, method: method.rawValue))
        guard case .none = opened else {
            Issue.record("opening stream \(streamID) answered \(opened)")
            return
        }
        if running {
            let started = machine.frameReceived(request(streamID))
            guard case .startCall(let call, _) = started, call.context.streamID == streamID else {
                Issue.record("the request on stream \(streamID) answered \(started)")
                return
            }
        }
    }

    static func expectGoAwayAndClose(
        _ action: Action, code: StatusCode, lastStreamID: UInt32 = 0, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .goAwayAndClose(let last, let actual, let message) = action else {
            Issue.record("expected goAwayAndClose(\(code)), got \(action)", sourceLocation: sourceLocation)
            return
        }
        #expect(actual == code, "\(message)", sourceLocation: sourceLocation)
        #expect(last == lastStreamID, sourceLocation: sourceLocation)
        #expect(!message.isEmpty, "the GOAWAY must say why", sourceLocation: sourceLocation)
    }

    static func expectEndCall(
        _ action: Action, streamID: UInt32, code: VigilError.Code, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .endCall(let actualStream, let status) = action else {
            Issue.record("expected endCall(\(streamID), \(code)), got \(action)", sourceLocation: sourceLocation)
            return
        }
        #expect(actualStream == streamID, sourceLocation: sourceLocation)
        #expect(status.code == code, "\(status)", sourceLocation: sourceLocation)
        #expect(!status.message.isEmpty, sourceLocation: sourceLocation)
    }

    static func expectNone(_ action: Action, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .none = action else {
            Issue.record("expected no action, got \(action)", sourceLocation: sourceLocation)
            return
        }
    }

    // MARK: Preface

    enum PrefaceOutcome: Sendable { case sendPreface, refuseHTTP, close, goAwayFailedPrecondition }

    @Test(
        "the preface's classification decides the first action",
        arguments: [
            (Preface.Classification.vigil(Preface(major: 1, minor: 0)), PrefaceOutcome.sendPreface),
            (.vigil(Preface(major: 1, minor: 7)), .sendPreface),
            (.vigil(Preface(major: 2, minor: 0)), .goAwayFailedPrecondition),
            (.vigil(Preface(major: 0, minor: 9)), .goAwayFailedPrecondition),
            (.http, .refuseHTTP),
            (.tls, .close),
            (.garbage, .close),
        ])
    func prefaceClassification(_ classification: Preface.Classification, _ expected: PrefaceOutcome) {
        var machine = Self.machine()
        let action = machine.prefaceReceived(classification)
        switch expected {
        case .sendPreface:
            guard case .sendPreface = action else {
                Issue.record("expected sendPreface, got \(action)")
                return
            }
            #expect(machine.phase == .awaitingHello)
        case .refuseHTTP:
            guard case .refuseHTTP = action else {
                Issue.record("expected refuseHTTP, got \(action)")
                return
            }
            #expect(machine.phase == .closed)
        case .close:
            guard case .close = action else {
                Issue.record("expected close, got \(action)")
                return
            }
            #expect(machine.phase == .closed)
        case .goAwayFailedPrecondition:
            guard case .refuseVersion(let message) = action else {
                Issue.record("expected refuseVersion, got \(action)")
                return
            }
            #expect(message.contains("not supported"))
            #expect(machine.phase == .closed)
        }
        // Whatever comes next is ignored once the preface was handled.
        Self.expectNone(machine.prefaceReceived(.vigil(.current)))
    }

    @Test("frames after a refused preface are ignored")
    func framesAfterRefusedPreface() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.garbage)
        Self.expectNone(machine.frameReceived(Self.hello()))
        Self.expectNone(machine.frameReceived(Self.headers(1)))
        #expect(machine.phase == .closed)
    }

    // MARK: HELLO

    @Test("a first frame other than HELLO is refused with UNAUTHENTICATED", arguments: [
        Frame(type: .headers, streamID: 1, message: Vigil_V1_CallHeaders.with { $0.method = AuditMethod.get.rawValue }),
        Frame(type: .ping, streamID: 0, message: Vigil_V1_Ping.with { $0.opaque = 1 }),
        Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer()),
    ])
    func firstFrameMustBeHello(_ frame: Frame) {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        Self.expectGoAwayAndClose(machine.frameReceived(frame), code: .unauthenticated)
        #expect(machine.phase == .closed)
    }

    @Test("HELLO with max_frame_size below 131,072 is refused with INVALID_ARGUMENT", arguments: [UInt32(1), 1024, 131_071])
    func helloFrameSizeTooSmall(_ size: UInt32) {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        Self.expectGoAwayAndClose(machine.frameReceived(Self.hello(maxFrameSize: size)), code: .invalidArgument)
        #expect(machine.phase == .closed)
    }

    @Test("HELLO with max_frame_size 0 or at least 131,072 is welcomed", arguments: [UInt32(0), 131_072, 16 << 20])
    func helloFrameSizeAccepted(_ size: UInt32) {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        let hello = machine.frameReceived(Self.hello(maxFrameSize: size))
        guard case .authenticate(_, let name) = hello else {
            Issue.record("expected authenticate, got \(hello)")
            return
        }
        #expect(name == "state-machine-tests")
        #expect(machine.phase == .authenticating)
        let action = machine.authenticated()
        guard case .sendWelcome(let maxFrameSize, let clientName) = action else {
            Issue.record("expected sendWelcome, got \(action)")
            return
        }
        #expect(maxFrameSize == Int(size))
        #expect(clientName == "state-machine-tests")
        #expect(machine.phase == .active)
        #expect(machine.clientFrameSize == Int(size))
    }

    @Test("HELLO that is not a Hello message is refused with INVALID_ARGUMENT")
    func helloMalformed() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        let frame = Frame(type: .hello, streamID: 0, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
        Self.expectGoAwayAndClose(machine.frameReceived(frame), code: .invalidArgument)
    }

    @Test("HELLO whose token fails is answered with GOAWAY UNAUTHENTICATED")
    func helloUnauthenticated() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        _ = machine.frameReceived(Self.hello())
        Self.expectGoAwayAndClose(machine.authenticationFailed("the API token is not valid"), code: .unauthenticated)
        #expect(machine.phase == .closed)
    }

    @Test("a frame before HELLO is answered is refused with UNAUTHENTICATED")
    func frameWhileAuthenticating() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        _ = machine.frameReceived(Self.hello())
        Self.expectGoAwayAndClose(machine.frameReceived(Self.headers(1)), code: .unauthenticated)
    }

    @Test("a revoked token ends running calls and those waiting for their request, refuses new ones and closes once all is written")
    func tokenRevoked() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: true)
        Self.open(3, on: &machine, running: false)
        let action = machine.tokenRevoked()
        guard case .revoke(_, let contexts, let waiting, let error) = action else {
            Issue.record("expected revoke, got \(action)")
            return
        }
        #expect(contexts.map(\.streamID) == [1])
        #expect(waiting == [3], "the call without its request gets TRAILERS too, not silence")
        #expect(machine.pendingTrailers == 1)
        #expect(error.code == .unauthenticated)
        #expect(machine.isDraining)
        guard case .endCall(_, let status) = machine.frameReceived(Self.headers(5)) else {
            Issue.record("expected the new call to be refused")
            return
        }
        #expect(status.code == .unauthenticated)
        _ = machine.callFinished(streamID: 1)
        #expect(machine.isDraining, "the GOAWAY and stream 3's TRAILERS are not written yet")
        _ = machine.goAwaySent()
        _ = machine.trailersSent()
        #expect(machine.phase == .closed)
    }

    @Test("shutdown between a call's end and its TRAILERS waits for the TRAILERS before it closes")
    func shutdownWaitsForPendingTrailers() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: true)
        Self.expectNone(machine.callFinished(streamID: 1, trailersPending: true))
        guard case .goAway = machine.shutdownRequested() else {
            Issue.record("expected GOAWAY")
            return
        }
        #expect(machine.isDraining, "the TRAILERS are still to be written")
        _ = machine.goAwaySent()
        _ = machine.trailersSent()
        #expect(machine.phase == .closed)
    }

    @Test("an idle connection closes with UNAVAILABLE only when no call is open")
    func idleTimeout() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: true)
        Self.expectNone(machine.idleTimedOut(after: .seconds(5)))
        _ = machine.callFinished(streamID: 1)
        Self.expectGoAwayAndClose(machine.idleTimedOut(after: .seconds(5)), code: .unavailable, lastStreamID: 1)
    }

    @Test("calls still waiting for their request do not keep a connection from being idle")
    func idleWithWaitingCalls() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: false)
        Self.open(3, on: &machine, running: false)
        Self.expectGoAwayAndClose(machine.idleTimedOut(after: .seconds(5)), code: .unavailable, lastStreamID: 3)
    }

    @Test("HEADERS over 16 KiB end their call with RESOURCE_EXHAUSTED; the connection goes on")
    func largeHeaders() {
        var machine = Self.activeMachine()
        var headers = Vigil_V1_CallHeaders()
        headers.method = AuditMethod.ingest.rawValue
        for key in 0..<2_000 { headers.metadata["key-\(key)"] = "value" }
        let frame = Frame(type: .headers, streamID: 1, message: headers)
        #expect(frame.payload.readableBytes > machine.limits.maxControlFrameBytes)
        Self.expectEndCall(machine.frameReceived(frame), streamID: 1, code: .resourceExhausted)
        #expect(machine.calls.isEmpty, "nothing of it is kept")
        #expect(machine.phase == .active)
        Self.open(3, on: &machine, running: true)
    }

    @Test("a HELLO over 16 KiB is refused with GOAWAY RESOURCE_EXHAUSTED")
    func largeHello() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        Self.expectGoAwayAndClose(machine.frameReceived(Self.hello(clientName: String(repeating: "x", count: 20_000))), code: .resourceExhausted)
        #expect(machine.phase == .closed)
    }

    @Test("a long client name is kept to 256 characters")
    func longClientName() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        guard case .authenticate(_, let name) = machine.frameReceived(Self.hello(clientName: String(repeating: "n", count: 5_000))) else {
            Issue.record("the HELLO was not taken")
            return
        }
        #expect(name.count == 256)
        #expect(machine.clientName.count == 256)
    }

    @Test("a second HELLO is a protocol error")
    func secondHello() {
        var machine = Self.activeMachine()
        Self.expectGoAwayAndClose(machine.frameReceived(Self.hello()), code: .invalidArgument)
        #expect(machine.phase == .closed)
    }

    // MARK: Stream ids

    @Test("HEADERS on an even stream id closes the connection with INVALID_ARGUMENT", arguments: [UInt32(2), 4, 1_000])
    func evenStreamID(_ streamID: UInt32) {
        var machine = Self.activeMachine()
        Self.expectGoAwayAndClose(machine.frameReceived(Self.headers(streamID)), code: .invalidArgument)
        #expect(machine.phase == .closed)
    }

    @Test("a reused stream id closes the connection with INVALID_ARGUMENT")
    func reusedStreamID() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        _ = machine.callFinished(streamID: 1)
        Self.expectGoAwayAndClose(machine.frameReceived(Self.headers(1)), code: .invalidArgument, lastStreamID: 1)
        #expect(machine.phase == .closed)
    }

    @Test("a stream id lower than one already used closes the connection with INVALID_ARGUMENT")
    func decreasingStreamID() {
        var machine = Self.activeMachine()
        Self.open(5, on: &machine)
        Self.expectGoAwayAndClose(machine.frameReceived(Self.headers(3)), code: .invalidArgument, lastStreamID: 5)
        #expect(machine.phase == .closed)
    }

    @Test("stream ids may skip odd numbers as long as they increase")
    func skippingStreamIDs() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        Self.open(7, on: &machine)
        Self.open(101, on: &machine)
        #expect(machine.highestStreamID == 101)
        #expect(machine.calls.count == 3)
    }

    // MARK: Calls

    @Test("an unknown method ends the call with UNIMPLEMENTED and the connection stays up")
    func unknownMethod() {
        var machine = Self.activeMachine()
        Self.expectEndCall(
            machine.frameReceived(Self.headers(1, method: "vigil.v1.Audit/Nope")), streamID: 1, code: .unimplemented)
        #expect(machine.phase == .active)
        #expect(machine.calls.isEmpty)
        // The next call works.
        Self.open(3, on: &machine)
        #expect(machine.calls.count == 1)
    }

    @Test("HEADERS that do not decode end the call with INVALID_ARGUMENT")
    func malformedHeaders() {
        var machine = Self.activeMachine()
        let frame = Frame(type: .headers, streamID: 1, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
        Self.expectEndCall(machine.frameReceived(frame), streamID: 1, code: .invalidArgument)
        #expect(machine.phase == .active)
    }

    @Test("one call more than maxConcurrentCalls is refused with RESOURCE_EXHAUSTED")
    func tooManyCalls() {
        var machine = Self.activeMachine(maxConcurrentCalls: 2)
        Self.open(1, on: &machine)
        Self.open(3, on: &machine, running: false)
        Self.expectEndCall(machine.frameReceived(Self.headers(5)), streamID: 5, code: .resourceExhausted)
        #expect(machine.calls.count == 2)
        #expect(machine.phase == .active)
        // Once one finishes there is room again.
        Self.expectNone(machine.callFinished(streamID: 1))
        Self.open(7, on: &machine)
        #expect(Set(machine.calls.keys) == [3, 7])
    }

    @Test("a request MESSAGE without END_STREAM ends the call with INVALID_ARGUMENT")
    func messageWithoutEndStream() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: false)
        Self.expectEndCall(machine.frameReceived(Self.request(1, flags: [])), streamID: 1, code: .invalidArgument)
        #expect(machine.calls.isEmpty)
        #expect(machine.phase == .active)
    }

    @Test("the request MESSAGE starts the call with the window from its HEADERS")
    func startCall() {
        var machine = Self.activeMachine(defaultWindow: 8)
        Self.expectNone(machine.frameReceived(Self.headers(1, method: AuditMethod.query.rawValue, initialWindow: 0)))
        let action = machine.frameReceived(Self.request(1))
        guard case .startCall(let call, let request) = action else {
            Issue.record("expected startCall, got \(action)")
            return
        }
        #expect(call.method == .query)
        #expect(call.context.streamID == 1)
        #expect(request.flags.contains(.endStream))
        #expect(machine.calls[1]?.phase == .running)
    }

    @Test("a second MESSAGE on a running call ends it with INVALID_ARGUMENT")
    func messageAfterEndStream() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        let action = machine.frameReceived(Self.request(1))
        guard case .endRunningCall(let context, .failed(let error)) = action else {
            Issue.record("expected endRunningCall(.failed), got \(action)")
            return
        }
        #expect(context.streamID == 1)
        #expect(error.code == .invalidArgument)
    }

    @Test("MESSAGE, WINDOW and CANCEL for a stream no HEADERS opened are protocol errors")
    func framesForUnopenedStream() {
        for frame in [
            Self.request(9),
            Frame(type: .window, streamID: 9, message: Vigil_V1_Window.with { $0.messages = 1 }),
            Frame(type: .cancel, streamID: 9, message: Vigil_V1_Cancel()),
        ] {
            var machine = Self.activeMachine()
            Self.open(1, on: &machine)
            Self.expectGoAwayAndClose(machine.frameReceived(frame), code: .invalidArgument, lastStreamID: 1)
        }
    }

    @Test("WINDOW and CANCEL for a call that already ended are ignored")
    func framesForFinishedStream() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        _ = machine.callFinished(streamID: 1)
        Self.expectNone(machine.frameReceived(Frame(type: .window, streamID: 1, message: Vigil_V1_Window.with { $0.messages = 1 })))
        Self.expectNone(machine.frameReceived(Frame(type: .cancel, streamID: 1, message: Vigil_V1_Cancel())))
        #expect(machine.phase == .active)
    }

    @Test("WINDOW adds credit to its call; CANCEL ends a running call without trailers")
    func windowAndCancel() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        let window = machine.frameReceived(Frame(type: .window, streamID: 1, message: Vigil_V1_Window.with { $0.messages = 3 }))
        guard case .addCredit(let context, 3) = window, context.streamID == 1 else {
            Issue.record("expected addCredit(3), got \(window)")
            return
        }
        let cancel = machine.frameReceived(Frame(type: .cancel, streamID: 1, message: Vigil_V1_Cancel()))
        guard case .endRunningCall(let cancelled, .cancelledByClient) = cancel, cancelled.streamID == 1 else {
            Issue.record("expected endRunningCall(.cancelledByClient), got \(cancel)")
            return
        }
    }

    @Test("CANCEL before the request forgets the call")
    func cancelBeforeRequest() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: false)
        Self.expectNone(machine.frameReceived(Frame(type: .cancel, streamID: 1, message: Vigil_V1_Cancel())))
        #expect(machine.calls.isEmpty)
    }

    @Test("a call dropped before its request cancels its deadline timer: CANCEL, a MESSAGE without END_STREAM, an oversized MESSAGE, a revoked token")
    func droppedCallsCancelTheirDeadlines() {
        enum Drop: CaseIterable { case cancel, unfinishedMessage, oversized, revoked }
        for drop in Drop.allCases {
            var machine = Self.activeMachine()
            let armed = machine.frameReceived(Self.headers(1, timeoutMs: 600_000))
            guard case .armDeadline(let context, let milliseconds) = armed, milliseconds == 600_000 else {
                Issue.record("\(drop): HEADERS with a timeout answered \(armed)")
                continue
            }
            let cancelled = Mutex(0)
            context.armDeadline { cancelled.withLock { $0 += 1 } }
            switch drop {
            case .cancel: _ = machine.frameReceived(Frame(type: .cancel, streamID: 1, message: Vigil_V1_Cancel()))
            case .unfinishedMessage: _ = machine.frameReceived(Self.request(1, flags: []))
            case .oversized: _ = machine.oversizedReceived(FrameHeader(length: 10_000_000, type: .message, streamID: 1), maxFrameSize: 131_072)
            case .revoked: _ = machine.tokenRevoked()
            }
            #expect(machine.calls.isEmpty, "\(drop)")
            #expect(cancelled.withLock { $0 } == 1, "\(drop): the deadline timer was cancelled once")
        }
        // One still waiting when the connection ends is reachable for the handler to cancel.
        var machine = Self.activeMachine()
        _ = machine.frameReceived(Self.headers(3, timeoutMs: 1_000))
        #expect(machine.openContexts.map(\.streamID) == [3])
    }

    @Test("PING is answered with a PONG carrying the same payload")
    func ping() {
        var machine = Self.activeMachine()
        let payload = Vigil_V1_Ping.with { $0.opaque = 0xDEAD_BEEF_0123_4567 }.serializedBuffer()
        let action = machine.frameReceived(Frame(type: .ping, streamID: 0, payload: payload))
        guard case .sendPong(let echoed) = action else {
            Issue.record("expected sendPong, got \(action)")
            return
        }
        #expect(echoed == payload)
    }

    @Test("TRAILERS from the client are a protocol error")
    func trailersFromClient() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        Self.expectGoAwayAndClose(
            machine.frameReceived(Frame.trailers(streamID: 1, status: Vigil_V1_Status())), code: .invalidArgument, lastStreamID: 1)
    }

    // MARK: Shutdown

    @Test("shutdown sends GOAWAY and drains: HEADERS get UNAVAILABLE; the last call's end closes")
    func shutdownDrains() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        Self.open(3, on: &machine)

        let goAway = machine.shutdownRequested()
        guard case .goAway(let lastStreamID, let waiting) = goAway else {
            Issue.record("expected goAway, got \(goAway)")
            return
        }
        #expect(lastStreamID == 3)
        #expect(waiting.isEmpty)
        #expect(machine.phase == .draining(lastStreamID: 3))
        #expect(machine.isDraining)
        _ = machine.goAwaySent()

        // A new call is refused; the connection keeps draining.
        Self.expectEndCall(machine.frameReceived(Self.headers(5)), streamID: 5, code: .unavailable)
        #expect(machine.phase == .draining(lastStreamID: 3))
        // Calls in flight still get their credit.
        let window = machine.frameReceived(Frame(type: .window, streamID: 1, message: Vigil_V1_Window.with { $0.messages = 1 }))
        guard case .addCredit = window else {
            Issue.record("expected addCredit while draining, got \(window)")
            return
        }

        Self.expectNone(machine.callFinished(streamID: 1))
        #expect(machine.isDraining)
        Self.expectNone(machine.callFinished(streamID: 3))
        #expect(machine.phase == .closed)
        // A second shutdown request changes nothing.
        Self.expectNone(machine.shutdownRequested())
    }

    @Test("shutdown of an idle connection sends GOAWAY and closes once it is written")
    func shutdownIdle() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        _ = machine.callFinished(streamID: 1)
        let goAway = machine.shutdownRequested()
        guard case .goAway(let lastStreamID, _) = goAway else {
            Issue.record("expected goAway, got \(goAway)")
            return
        }
        #expect(lastStreamID == 1)
        #expect(machine.takeClose() == false, "closing before the GOAWAY is written would lose it")
        _ = machine.goAwaySent()
        #expect(machine.phase == .closed, "nothing is in flight, so the connection closes after the GOAWAY")
    }

    @Test("the last call ending between shutdown and the GOAWAY's write does not close the connection before the GOAWAY")
    func goAwayOutlivesTheLastCall() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        guard case .goAway = machine.shutdownRequested() else {
            Issue.record("expected GOAWAY")
            return
        }
        _ = machine.callFinished(streamID: 1)
        #expect(machine.isDraining && machine.takeClose() == false)
        _ = machine.goAwaySent()
        #expect(machine.phase == .closed)
    }

    @Test("shutdown before the handshake completed just closes")
    func shutdownDuringHandshake() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        guard case .close = machine.shutdownRequested() else {
            Issue.record("expected close")
            return
        }
        #expect(machine.phase == .closed)
    }

    @Test("shutdown ends the calls still waiting for their request with UNAVAILABLE; their late frames change nothing")
    func shutdownEndsWaitingCalls() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: false)
        Self.open(3, on: &machine, running: true)
        let goAway = machine.shutdownRequested()
        guard case .goAway(let lastStreamID, let waiting) = goAway else {
            Issue.record("expected goAway, got \(goAway)")
            return
        }
        #expect(lastStreamID == 3)
        #expect(waiting == [1], "a request that may never come does not hold the drain")
        #expect(machine.calls.keys.sorted() == [3] && machine.pendingTrailers == 1)
        // The ended call's request, CANCEL and deadline come too late: nothing starts, nothing is written.
        Self.expectNone(machine.frameReceived(Self.request(1)))
        Self.expectNone(machine.frameReceived(Frame(type: .cancel, streamID: 1, message: Vigil_V1_Cancel())))
        Self.expectNone(machine.deadlineExpired(streamID: 1))
        _ = machine.goAwaySent()
        _ = machine.trailersSent()
        #expect(machine.isDraining, "call 3 still runs")
        _ = machine.callFinished(streamID: 3)
        #expect(machine.phase == .closed)
    }

    @Test("a deadline's TRAILERS before the request count as pending until written, against the limit and for draining")
    func deadlineTrailersArePending() {
        var machine = Self.activeMachine(maxConcurrentCalls: 1)
        _ = machine.frameReceived(Self.headers(1, timeoutMs: 1))
        Self.expectEndCall(machine.deadlineExpired(streamID: 1), streamID: 1, code: .deadlineExceeded)
        #expect(machine.pendingTrailers == 1)
        Self.expectEndCall(machine.frameReceived(Self.headers(3, timeoutMs: 1)), streamID: 3, code: .resourceExhausted)
        guard case .goAway = machine.shutdownRequested() else {
            Issue.record("expected GOAWAY")
            return
        }
        _ = machine.goAwaySent()
        #expect(machine.isDraining, "the deadline's TRAILERS are still to be written")
        _ = machine.trailersSent()
        #expect(machine.phase == .closed)
    }

    @Test("an oversized MESSAGE for a call that already ended is skipped; for a stream never opened it ends the connection")
    func oversizedMessageForEndedCall() {
        var machine = Self.activeMachine()
        _ = machine.frameReceived(Self.headers(1, timeoutMs: 1))
        Self.expectEndCall(machine.deadlineExpired(streamID: 1), streamID: 1, code: .deadlineExceeded)
        Self.open(3, on: &machine)
        let oversized = FrameHeader(length: 10_000_000, type: .message, streamID: 1)
        Self.expectNone(machine.oversizedReceived(oversized, maxFrameSize: 131_072))
        #expect(machine.phase == .active && machine.calls.count == 1, "the other call goes on")
        Self.expectGoAwayAndClose(
            machine.oversizedReceived(FrameHeader(length: 10_000_000, type: .message, streamID: 5), maxFrameSize: 131_072),
            code: .resourceExhausted, lastStreamID: 3)
    }

    @Test("a closed connection is handed to the handler to close once, however many frames follow")
    func closeTakenOnce() {
        var machine = Self.activeMachine()
        let whileActive = machine.takeClose()
        #expect(!whileActive, "an active connection is not closed")
        _ = machine.shutdownRequested()
        _ = machine.goAwaySent()
        #expect(machine.phase == .closed)
        let first = machine.takeClose()
        #expect(first)
        Self.expectNone(machine.frameReceived(Frame(type: .ping, streamID: 0, message: Vigil_V1_Ping())))
        let again = machine.takeClose()
        #expect(!again)
    }

    @Test("a deadline that passes while the call runs tells the call to end")
    func deadlineWhileRunning() {
        var machine = Self.activeMachine()
        _ = machine.frameReceived(Self.headers(1, timeoutMs: 100))
        _ = machine.frameReceived(Self.request(1))
        let action = machine.deadlineExpired(streamID: 1)
        guard case .endRunningCall(let context, .deadlineExceeded) = action, context.streamID == 1 else {
            Issue.record("expected endRunningCall(.deadlineExceeded), got \(action)")
            return
        }
    }

    @Test("a deadline of a call that already finished does nothing")
    func deadlineAfterFinish() {
        var machine = Self.activeMachine()
        _ = machine.frameReceived(Self.headers(1, timeoutMs: 100))
        _ = machine.frameReceived(Self.request(1))
        _ = machine.callFinished(streamID: 1)
        Self.expectNone(machine.deadlineExpired(streamID: 1))
    }

    @Test("no deadline is armed without timeout_ms")
    func noDeadline() {
        var machine = Self.activeMachine()
        Self.expectNone(machine.frameReceived(Self.headers(1, timeoutMs: 0)))
    }

    @Test("a handshake that does not finish in time: silent peer closed, missing HELLO gets GOAWAY")
    func handshakeTimeout() {
        var silent = Self.machine()
        guard case .close = silent.handshakeTimedOut() else {
            Issue.record("expected close")
            return
        }
        var noHello = Self.machine()
        _ = noHello.prefaceReceived(.vigil(.current))
        Self.expectGoAwayAndClose(noHello.handshakeTimedOut(), code: .deadlineExceeded)
        var done = Self.activeMachine()
        Self.expectNone(done.handshakeTimedOut())
    }

    // MARK: Oversized frames

    @Test("an oversized MESSAGE for an open call ends that call with RESOURCE_EXHAUSTED; the connection stays up")
    func oversizedMessage() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine, running: false)
        let header = FrameHeader(length: 10_000_000, type: .message, flags: .endStream, streamID: 1)
        Self.expectEndCall(machine.oversizedReceived(header, maxFrameSize: 131_072), streamID: 1, code: .resourceExhausted)
        #expect(machine.calls.isEmpty)
        #expect(machine.phase == .active)
    }

    @Test("an oversized MESSAGE for a running call tells the call to end with RESOURCE_EXHAUSTED")
    func oversizedMessageRunning() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        let header = FrameHeader(length: 10_000_000, type: .message, streamID: 1)
        let action = machine.oversizedReceived(header, maxFrameSize: 131_072)
        guard case .endRunningCall(let context, .failed(let error)) = action else {
            Issue.record("expected endRunningCall(.failed), got \(action)")
            return
        }
        #expect(context.streamID == 1)
        #expect(error.code == .resourceExhausted)
    }

    @Test("an oversized HELLO is fatal: GOAWAY RESOURCE_EXHAUSTED")
    func oversizedHello() {
        var machine = Self.machine()
        _ = machine.prefaceReceived(.vigil(.current))
        let header = FrameHeader(length: 10_000_000, type: .hello, streamID: 0)
        Self.expectGoAwayAndClose(machine.oversizedReceived(header, maxFrameSize: 131_072), code: .resourceExhausted)
        #expect(machine.phase == .closed)
    }

    @Test("an oversized frame that belongs to no open call is fatal: GOAWAY RESOURCE_EXHAUSTED")
    func oversizedOther() {
        var machine = Self.activeMachine()
        Self.open(1, on: &machine)
        Self.expectGoAwayAndClose(
            machine.oversizedReceived(FrameHeader(length: 10_000_000, type: .headers, streamID: 3), maxFrameSize: 131_072),
            code: .resourceExhausted, lastStreamID: 1)
    }

    @Test("a decoding error is fatal with its own code")
    func protocolError() {
        var machine = Self.activeMachine()
        Self.expectGoAwayAndClose(machine.protocolError(VigilError(.invalidArgument, "unknown frame type 0x7f")), code: .invalidArgument)
        Self.expectNone(machine.protocolError(VigilError(.invalidArgument, "again")))
    }
}
