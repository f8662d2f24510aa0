import NIOCore
import VigilCore
import VigilProto
import VigilWire

/// The client's end of a connection, on the channel's event loop: checks the
/// server's preface, completes the HELLO exchange, and routes each call's
/// MESSAGE and TRAILERS frames to the call's stream.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WireInbound
    typealias OutboundOut = WireOutbound

    /// What a call receives.
    enum CallEvent: Sendable {
        case message(Frame)
        case trailers(Vigil_V1_Status)
    }
    typealias CallContinuation = AsyncThrowingStream<CallEvent, any Error>.Continuation

    private let welcome: EventLoopPromise<Vigil_V1_Welcome>
    private var calls: [UInt32: CallContinuation] = [:]
    private var nextStreamID: UInt32
    /// The last odd id went out: the next call cannot be sent here.
    private var streamIDsUsedUp = false
    /// The Welcome's request limits, once it arrived.
    private var serverLimits: (maxFrameSize: Int, maxMessageSize: Int)?
    /// Set once the server sent GOAWAY or the connection failed: no new calls.
    private var closedReason: VigilError?
    private var context: ChannelHandlerContext?
    /// With calls open, a PING after this long without a byte from the
    /// server, and the connection failed when none comes for as long again;
    /// nil: never.
    private let keepalive: TimeAmount?
    private var lastRead = NIODeadline.now()
    private var pingSentAt: NIODeadline?
    private var keepaliveTimer: RepeatedTask?
    /// The answer to the newest PING, held while the connection is not
    /// writable (the server is not reading): one PONG, not one per PING.
    private var unsentPong: ByteBuffer?

    /// `firstStreamID`: 1, except in tests of running out of ids.
    init(welcome: EventLoopPromise<Vigil_V1_Welcome>, keepalive: TimeAmount? = nil, firstStreamID: UInt32 = 1) {
        self.welcome = welcome
        self.nextStreamID = firstStreamID
        self.keepalive = keepalive
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Opens a call: allocates its stream id and writes HEADERS and the request.
    /// Runs on the event loop, so stream ids go out in increasing order.
    func startCall(
        method: AuditMethod, headers: Vigil_V1_CallHeaders, request: ByteBuffer, compress: Bool,
        continuation: CallContinuation
    ) -> UInt32? {
        guard let context, closedReason == nil else {
            continuation.finish(throwing: closedReason ?? VigilError(.unavailable, "the connection is closed"))
            return nil
        }
        // Odd ids only, each used once: after 2^31 calls a connection has
        // none left (a new connection starts again at 1).
        guard !streamIDsUsedUp else {
            continuation.finish(throwing: VigilError(
                .unavailable, "this connection has used all its call ids; the call was not sent: connect again (a new connection starts over)"))
            return nil
        }
        var flags: FrameFlags = .endStream
        var payload = request
        if compress {
            flags.insert(.compressed)
            payload = MessageCompression.compress(request)
        }
        // The server refuses a larger request from its frame header, after
        // it crossed the network; said here, before anything is sent.
        if let limits = serverLimits {
            let tooLarge =
                payload.readableBytes > limits.maxFrameSize
                ? "\(payload.readableBytes) bytes, over the server's frame limit of \(limits.maxFrameSize)"
                : compress && request.readableBytes > limits.maxMessageSize
                    ? "\(request.readableBytes) bytes before compression, over the server's limit of \(limits.maxMessageSize)" : nil
            if let tooLarge {
                continuation.finish(throwing: VigilError(.resourceExhausted, "the request is \(tooLarge); it was not sent: send smaller batches"))
                return nil
            }
        }
        let streamID = nextStreamID
        if streamID >= UInt32.max - 1 { streamIDsUsedUp = true } else { nextStreamID += 2 }
        calls[streamID] = continuation
        if headers.timeoutMs > 0 {
            // The server ends the call at its deadline, but only once its work
            // returns (a write stuck in fsync does not): the client does not
            // wait past the deadline and a grace for its answer.
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let timeout = headers.timeoutMs
            let wait = TimeAmount.milliseconds(Int64(min(timeout, UInt64(Int64.max / 1_000_000) - 10_000))) + Self.deadlineGrace
            context.eventLoop.scheduleTask(in: wait) { handler.value.deadlinePassed(streamID: streamID, timeoutMilliseconds: timeout) }
        }
        context.write(wrapOutboundOut(.frame(Frame(type: .headers, streamID: streamID, message: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.frame(Frame(type: .message, flags: flags, streamID: streamID, payload: payload))), promise: nil)
        return streamID
    }

    /// How long past a call's deadline the client waits for the server's
    /// own DEADLINE_EXCEEDED before it gives up on the call.
    static let deadlineGrace = TimeAmount.seconds(2)

    /// A call's deadline and grace passed without its end: it fails with
    /// DEADLINE_EXCEEDED, and the server is told to stop (CANCEL).
    private func deadlinePassed(streamID: UInt32, timeoutMilliseconds: UInt64) {
        guard let call = calls.removeValue(forKey: streamID) else { return }
        call.finish(throwing: VigilError(
            .deadlineExceeded,
            "no answer within the call's deadline of \(timeoutMilliseconds) ms (and \(Self.deadlineGrace.nanoseconds / 1_000_000_000) s more): the server may have done it (retry an Ingest with the same idempotency key; it is then not stored twice)"))
        send(Frame(type: .cancel, streamID: streamID, message: Vigil_V1_Cancel()))
    }

    /// Sends a frame for a call (WINDOW, CANCEL).
    func send(_ frame: Frame) {
        context?.writeAndFlush(wrapOutboundOut(.frame(frame)), promise: nil)
    }

    /// Forgets a call whose consumer went away.
    func abandon(streamID: UInt32) {
        calls.removeValue(forKey: streamID)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.preface(.current)), promise: nil)
        if let keepalive {
            // A path that died silently (a host gone, a NAT mapping dropped)
            // shows no error: a call waiting on it would wait forever.
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let check = TimeAmount.nanoseconds(max(1_000_000, keepalive.nanoseconds / 4))
            keepaliveTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: check, delay: check) { _ in
                handler.value.checkKeepalive(keepalive)
            }
        }
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let payload = unsentPong {
            unsentPong = nil
            context.writeAndFlush(wrapOutboundOut(.frame(Frame(type: .pong, streamID: 0, payload: payload))), promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Any bytes, even part of a large frame, show the server is there.
        lastRead = .now()
        pingSentAt = nil
        context.fireChannelReadComplete()
    }

    private func checkKeepalive(_ keepalive: TimeAmount) {
        guard let context, !calls.isEmpty else { return }
        let now = NIODeadline.now()
        if let pingSentAt {
            if now - pingSentAt >= keepalive {
                fail(
                    VigilError(
                        .unavailable,
                        "the server sent nothing for \(Duration(now - lastRead)) and did not answer a PING: the connection is taken as lost"),
                    context: context)
            }
        } else if now - lastRead >= keepalive {
            pingSentAt = now
            context.writeAndFlush(wrapOutboundOut(.frame(Frame(type: .ping, streamID: 0, message: Vigil_V1_Ping()))), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .preface(.vigil(let preface)):
            if preface.major != Preface.current.major {
                fail(VigilError(.failedPrecondition, "the server speaks protocol version \(preface.major).\(preface.minor)"), context: context)
            }
        case .preface:
            // Not retryable: a client pointed at another service (the metrics
            // port, a web server) would retry it for ever.
            fail(VigilError(.failedPrecondition, "the server did not answer with the Vigil preface: is this a Vigil port?"), context: context)
        case .oversized(let header):
            fail(VigilError(.resourceExhausted, "the server sent a frame of \(header.length) bytes, over this client's limit"), context: context)
        case .frame(let frame):
            receive(frame, context: context)
        }
    }

    private func receive(_ frame: Frame, context: ChannelHandlerContext) {
        switch frame.type {
        case .hello:
            do {
                let answer = try frame.decode(Vigil_V1_Welcome.self)
                if answer.maxFrameSize > 0 {
                    serverLimits = (Int(answer.maxFrameSize), answer.maxMessageSize > 0 ? Int(answer.maxMessageSize) : Int.max)
                }
                welcome.succeed(answer)
            } catch {
                fail(error, context: context)
            }
        case .message:
            calls[frame.streamID]?.yield(.message(frame))
        case .trailers:
            guard let call = calls.removeValue(forKey: frame.streamID) else { return }
            do {
                call.yield(.trailers(try frame.decodeTrailers()))
                call.finish()
            } catch {
                call.finish(throwing: error)
            }
        case .cancel:
            calls.removeValue(forKey: frame.streamID)?.finish(throwing: VigilError(.cancelled, "the server cancelled the call"))
        case .ping:
            // A server that PINGs without reading would otherwise grow the
            // outbound buffer by a PONG per PING; the newest answers them all.
            if context.channel.isWritable {
                context.writeAndFlush(wrapOutboundOut(.frame(Frame(type: .pong, streamID: 0, payload: frame.payload))), promise: nil)
            } else {
                unsentPong = frame.payload
            }
        case .pong, .window, .headers:
            break
        case .goAway:
            let goAway = (try? frame.decode(Vigil_V1_GoAway.self)) ?? Vigil_V1_GoAway()
            let code = VigilError.Code(StatusCode(wireValue: goAway.code)) ?? .unavailable
            let reason = VigilError(code, goAway.message.isEmpty ? "the server closed the connection" : goAway.message)
            closedReason = reason
            welcome.fail(reason)
            // Calls the server will not answer fail now; the others finish normally.
            for (streamID, call) in calls where streamID > goAway.lastStreamID {
                calls.removeValue(forKey: streamID)
                call.finish(throwing: reason)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error as? VigilError ?? ClientTLSFailure.describe(error) ?? VigilError(.unavailable, "connection error: \(error)"), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        let reason = closedReason ?? VigilError(.unavailable, "the connection to the server was closed")
        closedReason = reason
        welcome.fail(reason)
        // The calls still open were accepted (a GOAWAY already failed those
        // it refused): the server may have done them. Not the GOAWAY's
        // reason, which tells a refused call that it never ran.
        let lost = VigilError(
            .unavailable,
            "the connection closed before the call's answer arrived: the server may have done it (retry an Ingest with the same idempotency key; it is then not stored twice)")
        for call in calls.values { call.finish(throwing: lost) }
        calls.removeAll()
        context.fireChannelInactive()
    }

    private func fail(_ error: VigilError, context: ChannelHandlerContext) {
        closedReason = closedReason ?? error
        welcome.fail(error)
        // The calls in flight were sent: the server may have done them. With
        // the connection's error (INVALID_ARGUMENT, RESOURCE_EXHAUSTED…) an
        // Ingest would read as refused, and an agent might drop the batch.
        let lost = VigilError(
            .unavailable,
            "the connection failed before the call's answer arrived (\(error.message)): the server may have done it (retry an Ingest with the same idempotency key; it is then not stored twice)")
        for call in calls.values { call.finish(throwing: lost) }
        calls.removeAll()
        context.close(promise: nil)
    }
}
