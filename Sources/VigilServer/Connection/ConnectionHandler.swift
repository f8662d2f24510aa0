import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire

/// The state machine of one connection behind a lock, shared by the read loop,
/// the calls' tasks and timers.
final class ConnectionState: Sendable {
    let machine: Mutex<ConnectionStateMachine>
    init(_ machine: ConnectionStateMachine) { self.machine = Mutex(machine) }
    func with<R>(_ body: (inout ConnectionStateMachine) -> R) -> R { machine.withLock { body(&$0) } }
}

/// Who is on the other end, once HELLO is answered; and when the connection
/// last did anything (for the idle timeout).
final class ConnectionIdentity: Sendable {
    private let caller: Mutex<Caller>
    private let lastActivity = Mutex(ContinuousClock.now)

    init(peerIP: String?) {
        caller = Mutex(Caller(principal: .anonymous, peerIP: peerIP))
    }

    var current: Caller { caller.withLock { $0 } }
    func authenticated(as principal: Principal) { caller.withLock { $0.principal = principal } }

    func touch() { lastActivity.withLock { $0 = .now } }
    var lastActive: ContinuousClock.Instant { lastActivity.withLock { $0 } }
}

/// Serves one connection: reads frames, asks the state machine what to do,
/// and does it — writes frames, runs calls as child tasks, closes.
struct ConnectionHandler: Sendable {
    typealias Outbound = NIOAsyncChannelOutboundWriter<WireOutbound>

    let channel: NIOAsyncChannel<WireInbound, WireOutbound>
    let service: AuditService
    let configuration: ServerConfiguration
    let logger: Logger
    /// The connection's slot in `LiveConnections`.
    let slot: UInt64

    func run() async {
        let state = ConnectionState(ConnectionStateMachine(limits: .init(
            maxConcurrentCalls: configuration.maxConcurrentCalls, defaultWindow: configuration.defaultWindow)))
        let identity = ConnectionIdentity(peerIP: channel.channel.remoteAddress?.ipAddress)
        do {
            try await channel.executeThenClose { inbound, outbound in
                let io = IO(
                    channel: channel.channel, outbound: outbound, state: state, configuration: configuration, logger: logger,
                    subscriptions: SubscriptionSlots(limit: configuration.maxSubscriptionsPerConnection),
                    identity: identity, access: service.access, slot: slot,
                    pages: OutputGate(permits: configuration.pagesInFlightPerConnection),
                    metrics: service.metrics)
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        // Preface and HELLO must arrive in time; a silent peer is cut.
                        try await Task.sleep(for: configuration.handshakeTimeout)
                        await io.perform(state.with { $0.handshakeTimedOut() })
                    }
                    if let idleTimeout = configuration.idleTimeout {
                        group.addTask {
                            // Wakes when the connection could have been idle
                            // for the timeout; closes it if it was.
                            var wakeAt = identity.lastActive + idleTimeout
                            while true {
                                try await Task.sleep(until: wakeAt)
                                let idleSince = identity.lastActive
                                if ContinuousClock.now >= idleSince + idleTimeout {
                                    let action = state.with { $0.idleTimedOut(after: idleTimeout) }
                                    if case .goAwayAndClose = action {
                                        await io.perform(action)
                                        return
                                    }
                                    // Calls are open: not idle. Look again a timeout from now.
                                    wakeAt = .now + idleTimeout
                                } else {
                                    wakeAt = idleSince + idleTimeout
                                }
                            }
                        }
                    }
                    if let stall = configuration.writeStallTimeout {
                        let channel = channel.channel
                        group.addTask {
                            // Sampled: a peer that reads now and then makes the
                            // channel writable again between samples and stays.
                            let interval = max(stall / 4, .milliseconds(10))
                            var unwritableSince: ContinuousClock.Instant?
                            while true {
                                try await Task.sleep(for: interval)
                                if channel.isWritable {
                                    unwritableSince = nil
                                    continue
                                }
                                let since = unwritableSince ?? .now
                                unwritableSince = since
                                guard ContinuousClock.now - since >= stall else { continue }
                                // No GOAWAY: nothing more can reach a peer that does not read.
                                logger.info(
                                    "closing a connection whose peer has not read what it was sent for \(stall.components.seconds) s",
                                    metadata: ["vigil.peer": "\(identity.current.peerIP ?? "?")"])
                                try? await channel.close()
                                return
                            }
                        }
                    }
                    group.addTask {
                        // Graceful shutdown: GOAWAY, let calls in flight finish.
                        try await gracefulShutdown()
                        logger.debug("connection draining for shutdown")
                        await io.perform(state.with { $0.shutdownRequested() })
                    }
                    do {
                        for try await item in inbound {
                            let action: ConnectionStateMachine.Action = state.with { machine in
                                switch item {
                                case .preface(let classification): machine.prefaceReceived(classification)
                                case .frame(let frame): machine.frameReceived(frame)
                                case .oversized(let header): machine.oversizedReceived(header, maxFrameSize: configuration.maxFrameSize)
                                }
                            }
                            await io.perform(action, group: &group, service: service)
                        }
                    } catch let error as VigilError {
                        logger.info("protocol error", metadata: ["vigil.error": "\(error)"])
                        await io.perform(state.with { $0.protocolError(error) })
                    }
                    // The peer hung up (or we closed): calls in flight have nobody to answer.
                    group.cancelAll()
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["vigil.error": "\(error)"])
        }
        // Calls that never got their request have no task to cancel their deadline timers.
        for context in state.with({ $0.openContexts }) { context.disarmDeadline() }
    }

    /// Carries out actions. Shared by the read loop, the calls and the timers.
    struct IO: Sendable {
        let channel: any Channel
        let outbound: Outbound
        let state: ConnectionState
        let configuration: ServerConfiguration
        let logger: Logger
        /// The connection's open subscriptions.
        let subscriptions: SubscriptionSlots
        let identity: ConnectionIdentity
        let access: AccessControl
        let slot: UInt64
        /// Pages being built on this connection (see `OutputGate`).
        let pages: OutputGate
        /// Counts refused calls and connections.
        let metrics: VigilMetrics

        func write(_ frame: Frame) async {
            do {
                try await outbound.write(.frame(frame))
            } catch {
                logger.debug("write failed", metadata: ["vigil.error": "\(error)"])
            }
        }

        /// After a GOAWAY was written: reports it, and ends the calls that
        /// were still waiting for their request with `error`'s TRAILERS.
        private func endWaiting(_ streamIDs: [UInt32], with error: VigilError) async {
            _ = state.with { $0.goAwaySent() }
            for streamID in streamIDs {
                metrics.recordRejectedCall(error.code.status)
                await write(.trailers(streamID: streamID, status: error.status))
                _ = state.with { $0.trailersSent() }
            }
        }

        /// Carries out an action that starts no call.
        func perform(_ action: ConnectionStateMachine.Action) async {
            // A peer that does not speak the protocol gets a short grace: under
            // a flood of such peers, slots must come back fast.
            var grace = configuration.closeGracePeriod
            switch action {
            case .none:
                break
            case .sendPreface:
                try? await outbound.write(.preface(.current))
            case .refuseVersion(let message):
                logger.info("refused a client of another protocol version", metadata: ["vigil.reason": "\(message)"])
                try? await outbound.write(.preface(.current))
                await write(.goAway(lastStreamID: 0, code: .failedPrecondition, message: message))
            case .refuseHTTP:
                logger.info("refused an HTTP request on the protocol port")
                try? await outbound.write(.raw(ByteBuffer(string: Preface.httpRefusal)))
                grace = .milliseconds(250)
            case .close:
                grace = .milliseconds(250)
                logger.debug("closing a connection that does not speak the protocol")
            case .authenticate(let token, let clientName):
                switch access.authenticate(token) {
                case .success(let principal):
                    identity.authenticated(as: principal)
                    if let tokenID = principal.tokenID {
                        let io = self
                        access.connections.authenticated(slot, tokenID: tokenID) {
                            Task { await io.perform(io.state.with { $0.tokenRevoked() }) }
                        }
                    }
                    await perform(state.with { $0.authenticated() })
                case .failure(let error):
                    logger.info("authentication failed", metadata: ["vigil.client": "\(clientName.prefix(128))", "vigil.reason": "\(error.message)"])
                    metrics.recordRejectedConnection(.unauthenticated)
                    await perform(state.with { $0.authenticationFailed(error.message) })
                }
            case .revoke(let lastStreamID, let contexts, let waiting, let error):
                logger.info("closing a connection whose token was revoked", metadata: ["vigil.calls": "\(contexts.count + waiting.count)"])
                for context in contexts { context.end(.failed(error)) }
                await write(.goAway(lastStreamID: lastStreamID, code: .unauthenticated, message: error.message))
                await endWaiting(waiting, with: error)
            case .sendWelcome(let maxFrameSize, let clientName):
                var welcome = Vigil_V1_Welcome()
                welcome.serverName = configuration.serverName
                welcome.serverVersion = vigilVersion
                welcome.majorVersion = UInt32(Preface.current.major)
                welcome.minorVersion = UInt32(Preface.current.minor)
                // Clamped: a configuration out of u32's range (an embedding
                // library's, or one a check missed) must not trap the whole server.
                welcome.maxFrameSize = UInt32(clamping: configuration.maxFrameSize)
                welcome.maxMessageSize = UInt32(clamping: configuration.maxMessageSize)
                welcome.maxConcurrentCalls = UInt32(clamping: configuration.maxConcurrentCalls)
                welcome.maxBatchEvents = UInt32(clamping: configuration.eventLimits.maxBatchEvents)
                welcome.maxEventBytes = UInt32(clamping: configuration.eventLimits.maxEventBytes)
                let principal = identity.current.principal
                welcome.principal = principal.displayName
                welcome.scopes = principal.scopes.sorted().map(\.proto)
                welcome.tenants = principal.tenants.list
                logger.debug("hello", metadata: ["vigil.client": "\(clientName)", "vigil.client.max-frame": "\(maxFrameSize)"])
                await write(Frame(type: .hello, streamID: 0, message: welcome))
            case .sendPong(let payload):
                await write(Frame(type: .pong, streamID: 0, payload: payload))
            case .goAwayAndClose(let lastStreamID, let code, let message):
                logger.info("closing connection", metadata: ["vigil.code": "\(code.name)", "vigil.reason": "\(message)"])
                await write(.goAway(lastStreamID: lastStreamID, code: code, message: message))
            case .goAway(let lastStreamID, let waiting):
                await write(.goAway(lastStreamID: lastStreamID, code: .unavailable, message: "the server is shutting down; calls in flight finish, open new ones elsewhere or later"))
                await endWaiting(waiting, with: VigilError(.unavailable, "the server is shutting down before this call's request arrived; retry on a new connection"))
            case .armDeadline(let context, let milliseconds):
                let state = state
                let io = self
                let timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(min(milliseconds, UInt64(Int64.max / 1_000_000))))) {
                    switch state.with({ $0.deadlineExpired(streamID: context.streamID) }) {
                    case .endRunningCall(let context, let ending):
                        context.end(ending)
                    case .endCall(let streamID, let status):
                        io.metrics.recordRejectedCall(status.code.status)
                        // No task exists for this call yet, so nothing else writes on its stream.
                        // Counted as pending until written (see `deadlineExpired`).
                        channel.writeAndFlush(WireOutbound.frame(.trailers(streamID: streamID, status: status.status))).whenComplete { _ in
                            _ = state.with { $0.trailersSent() }
                            io.closeIfNeeded()
                        }
                    default:
                        break
                    }
                }
                context.armDeadline { timer.cancel() }
            case .endCall(let streamID, let status):
                metrics.recordRejectedCall(status.code.status)
                await write(.trailers(streamID: streamID, status: status.status))
            case .endRunningCall(let context, let ending):
                context.end(ending)
            case .addCredit(let context, let messages):
                context.addCredit(messages)
            case .startCall:
                preconditionFailure("calls are started by the read loop")
            }
            closeIfNeeded(grace: grace)
        }

        /// Carries out an action of the read loop, which may start a call.
        func perform(
            _ action: ConnectionStateMachine.Action,
            group: inout ThrowingDiscardingTaskGroup<any Error>,
            service: AuditService
        ) async {
            guard case .startCall(let call, let request) = action else {
                await perform(action)
                return
            }
            // A call is activity; PINGs and stray frames are not, or a
            // client pinging now and then would hold its slot for ever.
            identity.touch()
            let io = self
            switch call.method {
            case .query, .aggregate, .get, .health:
                // Short reads stay on the connection's event loop (their
                // storage work runs on the store's own threads). Not
                // `addTask(executorPreference: nil)`: `perf` showed such
                // tasks on the shared pool, not the loop.
                group.addTask {
                    await io.runCall(call, request: request, service: service)
                }
            default:
                group.addTask(executorPreference: globalConcurrentExecutor) {
                    await io.runCall(call, request: request, service: service)
                }
            }
        }

        /// When the state machine has closed the connection: finish the output
        /// (a half-close after every queued frame is written), and cut the
        /// connection if the peer does not hang up within the grace period.
        func closeIfNeeded(grace: Duration? = nil) {
            guard state.with({ $0.takeClose() }) else { return }
            // Finished on the event loop, behind what is queued there: a write
            // made off the loop (a subscription's TRAILERS) returns once it is
            // queued on the loop, and a finish made on the loop (the GOAWAY's
            // writer finding that call done) would end the output before it.
            let outbound = outbound
            channel.eventLoop.execute { outbound.finish() }
            let channel = channel
            let grace = grace ?? configuration.closeGracePeriod
            channel.eventLoop.scheduleTask(in: .nanoseconds(grace.wholeNanoseconds)) {
                channel.close(promise: nil)
            }
        }

        /// One line per finished call: debug when it succeeded (an audit server
        /// takes 100k+ calls a second), info when it failed. Carries the token's
        /// id, never its secret.
        func logFinished(_ call: ConnectionStateMachine.Call, status: Vigil_V1_Status?, duration: Duration, tenants: CallTenants) {
            let failed = status.map { $0.code != 0 } ?? false
            logger.log(level: failed ? .info : .debug, "call finished", metadata: {
                var metadata: Logger.Metadata = [
                    "vigil.stream": "\(call.context.streamID)",
                    "vigil.method": "\(call.method.rawValue)",
                    "vigil.status": "\(status.map { StatusCode(wireValue: $0.code).name } ?? "CANCELLED")",
                    "vigil.duration_ms": "\(Self.milliseconds(duration))",
                ]
                if let tenant = tenants.describe() { metadata["vigil.tenant"] = "\(tenant)" }
                if let tokenID = identity.current.principal.tokenID { metadata["vigil.token_id"] = "\(tokenID)" }
                if let status, status.code != 0 { metadata["vigil.reason"] = "\(status.message.prefix(500))" }
                if status == nil { metadata["vigil.reason"] = "cancelled by the client" }
                return metadata
            }())
        }

        /// A duration in milliseconds with microsecond precision: "12.345".
        static func milliseconds(_ duration: Duration) -> String {
            let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
            let fraction = String(micros % 1_000)
            return "\(micros / 1_000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
        }

        func runCall(_ call: ConnectionStateMachine.Call, request: Frame, service: AuditService) async {
            service.vitals.callStarted()
            let context = call.context
            let streamID = context.streamID
            let clientFrameSize = state.with { $0.clientFrameSize }
            let sender = FrameSender(
                streamID: streamID, outbound: outbound, context: context,
                streaming: call.method.isServerStreaming,
                maxFrameSize: clientFrameSize == 0 ? configuration.maxFrameSize : min(clientFrameSize, configuration.maxFrameSize),
                subscriptions: subscriptions, pages: pages)
            let callLogger = logger
            let started = ContinuousClock.now
            let tenants = CallTenants()

            enum Outcome: Sendable {
                case finished(Result<[String: String], VigilError>)
                case ended(CallContext.Ending)
            }
            let outcome: Outcome? = await withTaskGroup(of: Outcome?.self) { group in
                group.addTask {
                    do {
                        let payload = try request.messagePayload(maxMessageSize: configuration.maxMessageSize)
                        let metadata = try await service.handle(
                            call.method, request: payload, sender: sender, caller: identity.current, tenants: tenants)
                        return .finished(.success(metadata))
                    } catch let error as VigilError {
                        return .finished(.failure(error))
                    } catch is CancellationError {
                        return .finished(.failure(VigilError(.cancelled, "the call was cancelled")))
                    } catch {
                        callLogger.error("call failed", metadata: ["vigil.method": "\(call.method.rawValue)", "vigil.error": "\(error)"])
                        return .finished(.failure(VigilError(.internal, "the server failed to complete the call; see its log")))
                    }
                }
                group.addTask {
                    await context.waitForEnding().map { .ended($0) }
                }
                for await result in group {
                    if let result {
                        group.cancelAll()
                        return result
                    }
                }
                return nil
            }

            context.disarmDeadline()
            var status: Vigil_V1_Status?
            switch outcome {
            case .finished(.success(let metadata)):
                var ok = Vigil_V1_Status()
                ok.code = StatusCode.ok.rawValue
                ok.metadata = metadata
                status = ok
            case .finished(.failure(let error)):
                status = error.status
            case .ended(.deadlineExceeded):
                // The call's task is cancelled and its answer dropped: what it
                // kept for this ending (a subscription's cursor) goes in the trailers.
                status = VigilError(
                    .deadlineExceeded, "the call's deadline of \(call.timeoutMilliseconds) ms passed", metadata: context.endingMetadata()
                ).status
            case .ended(.failed(let error)):
                status = error.status
            case .ended(.cancelledByClient), nil:
                status = nil
            }
            // Free the call's slot before its TRAILERS go out, so a client that
            // opens its next call on seeing them is not refused for the limit
            // (and is not counted in flight by what it asks next).
            service.vitals.callEnded()
            let finished = state.with { $0.callFinished(streamID: streamID, trailersPending: status != nil) }
            identity.touch()
            logFinished(call, status: status, duration: ContinuousClock.now - started, tenants: tenants)
            if let status {
                if status.code != 0 { metrics.recordRejectedCall(StatusCode(wireValue: status.code)) }
                await write(.trailers(streamID: streamID, status: status))
            }
            await perform(finished)
            if status != nil { await perform(state.with { $0.trailersSent() }) }
        }
    }
}

/// Writes one call's response messages, under WINDOW credit for streaming calls.
struct FrameSender: ResponseSender {
    let streamID: UInt32
    let outbound: NIOAsyncChannelOutboundWriter<WireOutbound>
    let context: CallContext
    let streaming: Bool
    let maxFrameSize: Int
    let subscriptions: SubscriptionSlots
    let pages: OutputGate

    func send(_ message: some SwiftProtobuf.Message) async throws {
        try await send(serialized: message.serializedBuffer())
    }

    var credit: Int { streaming ? context.credit : .max }

    func waitForCredit() async throws {
        guard streaming else { return }
        // Taken, then given back for `send` to take.
        try await context.acquireCredit()
        context.addCredit(1)
    }

    func withPageSlot<R>(_ body: () async throws -> R) async throws -> R {
        // Wait for the client's credit before building anything.
        try await waitForCredit()
        try await pages.acquire()
        defer { pages.release() }
        return try await body()
    }

    func setEndingMetadata(_ metadata: @escaping @Sendable () -> [String: String]) {
        context.setEndingMetadata(metadata)
    }

    func send(serialized: ByteBuffer) async throws {
        try fitsClientFrames(serialized)
        if streaming { try await context.acquireCredit() }
        try Task.checkCancellation()
        try await outbound.write(.frame(Frame(type: .message, streamID: streamID, payload: serialized)))
    }

    /// A message larger than the client's frames would break its connection
    /// instead of saying why (possible for an event only with
    /// --max-event-bytes raised past the smallest frame limit, 128 KiB).
    private func fitsClientFrames(_ message: ByteBuffer) throws {
        guard message.readableBytes <= maxFrameSize else {
            throw Self.largerThanClientFrames(bytes: message.readableBytes, maxFrameSize: maxFrameSize)
        }
    }

    /// The error for an event the client's frames cannot hold. Not
    /// RESOURCE_EXHAUSTED: resuming clients take that for "fell behind" and
    /// retry, meeting the same event again, for ever. Only a larger
    /// HELLO max_frame_size helps, so FAILED_PRECONDITION, which none retries.
    static func largerThanClientFrames(bytes: Int, maxFrameSize: Int, seq: UInt64? = nil) -> VigilError {
        VigilError(
            .failedPrecondition,
            "\(seq.map { "the event at seq \($0)" } ?? "an event") takes \(bytes) bytes, larger than this connection's max frame size of \(maxFrameSize) bytes: connect with a larger max frame size (HELLO max_frame_size) to read it")
    }

    func sendSome(serialized messages: ArraySlice<ByteBuffer>) async throws -> Int {
        guard let first = messages.first else { return 0 }
        // Only the message that goes out first is checked here: the ones
        // before a message too large go out, and it ends the call when it is first.
        try fitsClientFrames(first)
        var count = messages.count
        if streaming {
            try await context.acquireCredit()
            count = 1 + context.takeCredit(upTo: messages.count - 1)
        }
        if let tooLarge = messages.prefix(count).firstIndex(where: { $0.readableBytes > maxFrameSize }) {
            let fitting = tooLarge - messages.startIndex
            if streaming { context.addCredit(count - fitting) }
            count = fitting
        }
        try Task.checkCancellation()
        let sending = messages.prefix(count)
        if sending.count == 1, let only = sending.first {
            try await outbound.write(.frame(Frame(type: .message, streamID: streamID, payload: only)))
            return count
        }
        // The frames written into one buffer, one write: per write the
        // pipeline's encoder allocates a buffer and the channel queues an
        // item, which a subscriber's many small messages made most of the
        // sending's cost.
        var frames = ByteBuffer()
        frames.reserveCapacity(sending.reduce(0) { $0 + FrameHeader.size + $1.readableBytes })
        for message in sending { Frame(type: .message, streamID: streamID, payload: message).write(to: &frames) }
        try await outbound.write(.raw(frames))
        return count
    }
}
