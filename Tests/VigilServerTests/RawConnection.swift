import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization
import Testing
import VigilCore
import VigilProto
import VigilWire

/// Why a raw read failed. Thrown errors fail the test that threw them.
struct RawConnectionError: Error, CustomStringConvertible {
    var description: String
}

/// A queue between a channel's reader task and the test: items are pushed as
/// they arrive; `next(timeout:)` waits for one, but never longer than the timeout
/// (it then throws, so a test that waits for something that never comes fails
/// instead of hanging).
final class Inbox<Item: Sendable>: Sendable {
    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Item?, any Error>
        var timeout: Scheduled<Void>
    }

    private struct State {
        var items: [Item] = []
        var ended = false
        var endError: (any Error)?
        var waiter: Waiter?
        var nextWaiterID = 0
    }

    private enum Immediate { case item(Item), ended }

    private let state = Mutex(State())
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func push(_ item: Item) {
        let waiter = state.withLock { state -> Waiter? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(item)
            return nil
        }
        if let waiter {
            waiter.timeout.cancel()
            waiter.continuation.resume(returning: item)
        }
    }

    /// The producer is done; `error` is what ended it, if anything did.
    func finish(error: (any Error)? = nil) {
        let waiter = state.withLock { state -> Waiter? in
            state.ended = true
            state.endError = error
            defer { state.waiter = nil }
            return state.waiter
        }
        if let waiter {
            waiter.timeout.cancel()
            waiter.continuation.resume(returning: nil)
        }
    }

    /// The error the stream ended with, if it ended with one.
    var endError: (any Error)? { state.withLock { $0.endError } }

    /// The next item; nil once the stream has ended and every item was taken.
    /// Throws when nothing arrives within `timeout`.
    func next(timeout: TimeAmount, waitingFor what: @autoclosure () -> String) async throws -> Item? {
        let description = what()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Item?, any Error>) in
            let immediate = state.withLock { state -> Immediate? in
                if !state.items.isEmpty { return .item(state.items.removeFirst()) }
                if state.ended { return .ended }
                precondition(state.waiter == nil, "one reader at a time")
                let id = state.nextWaiterID
                state.nextWaiterID += 1
                let timer = eventLoop.scheduleTask(in: timeout) { [self] in
                    let expired = self.state.withLock { state -> CheckedContinuation<Item?, any Error>? in
                        guard let waiter = state.waiter, waiter.id == id else { return nil }
                        state.waiter = nil
                        return waiter.continuation
                    }
                    expired?.resume(throwing: RawConnectionError(
                        description: "timed out after \(timeout) waiting for \(description)"))
                }
                state.waiter = Waiter(id: id, continuation: continuation, timeout: timer)
                return nil
            }
            switch immediate {
            case .item(let item): continuation.resume(returning: item)
            case .ended: continuation.resume(returning: nil)
            case nil: break
            }
        }
    }
}

/// How long a raw read waits before it fails the test.
/// Generous: the suites run in parallel in one process, and under a full
/// run on 2 cores a server's answer can take seconds. It only bounds a failure.
let rawReadTimeout: TimeAmount = .seconds(30)

/// A test-only Vigil client that speaks the wire protocol frame by frame, so a
/// test can send anything (valid or not) and see exactly what the server answers.
struct RawConnection: Sendable {
    let channel: any Channel
    let outbound: NIOAsyncChannelOutboundWriter<WireOutbound>
    let inbox: Inbox<WireInbound>

    /// Connects to 127.0.0.1:`port`, runs `body`, then closes the connection.
    /// - Parameter expectPreface: whether the server's first 8 bytes are decoded as a preface.
    static func with<R: Sendable>(
        port: Int,
        maxFrameSize: Int = 64 * 1024 * 1024,
        expectPreface: Bool = true,
        _ body: (RawConnection) async throws -> R
    ) async throws -> R {
        let asyncChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize, expectPreface: expectPreface)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireEncoder()))
                    return try NIOAsyncChannel<WireInbound, WireOutbound>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = asyncChannel.channel
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let inbox = Inbox<WireInbound>(eventLoop: channel.eventLoop)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await item in inbound { inbox.push(item) }
                        inbox.finish()
                    } catch {
                        inbox.finish(error: error)
                    }
                }
                let connection = RawConnection(channel: channel, outbound: outbound, inbox: inbox)
                do {
                    let result = try await body(connection)
                    try? await channel.close()
                    try await group.waitForAll()
                    return result
                } catch {
                    try? await channel.close()
                    try? await group.waitForAll()
                    throw error
                }
            }
        }
    }

    // MARK: Sending

    func send(bytes: some Sequence<UInt8>) async throws {
        try await outbound.write(.raw(ByteBuffer(bytes: bytes)))
    }

    func send(buffer: ByteBuffer) async throws {
        try await outbound.write(.raw(buffer))
    }

    func sendPreface(major: UInt8 = Preface.current.major, minor: UInt8 = Preface.current.minor) async throws {
        try await outbound.write(.preface(Preface(major: major, minor: minor)))
    }

    func send(_ frame: Frame) async throws {
        try await outbound.write(.frame(frame))
    }

    /// Writes every frame in one go (one flush), as a pipelining client would.
    func send(_ frames: [Frame]) async throws {
        try await outbound.write(contentsOf: frames.map { .frame($0) })
    }

    /// A HEADERS frame opening a call.
    static func headers(
        streamID: UInt32, method: String, timeoutMs: UInt64 = 0, initialWindow: UInt32? = nil
    ) -> Frame {
        var headers = Vigil_V1_CallHeaders()
        headers.method = method
        headers.timeoutMs = timeoutMs
        if let initialWindow { headers.initialWindow = initialWindow }
        headers.metadata = ["request-id": "raw-\(streamID)"]
        return Frame(type: .headers, streamID: streamID, message: headers)
    }

    /// The two frames of a call: HEADERS, then the request in one MESSAGE with END_STREAM.
    static func call(
        streamID: UInt32, method: AuditMethod, request: some SwiftProtobuf.Message,
        timeoutMs: UInt64 = 0, initialWindow: UInt32? = nil
    ) -> [Frame] {
        [
            headers(streamID: streamID, method: method.rawValue, timeoutMs: timeoutMs, initialWindow: initialWindow),
            Frame(type: .message, flags: .endStream, streamID: streamID, message: request),
        ]
    }

    func startCall(
        streamID: UInt32, method: AuditMethod, request: some SwiftProtobuf.Message,
        timeoutMs: UInt64 = 0, initialWindow: UInt32? = nil
    ) async throws {
        try await send(Self.call(
            streamID: streamID, method: method, request: request, timeoutMs: timeoutMs, initialWindow: initialWindow))
    }

    func sendWindow(streamID: UInt32, messages: UInt32) async throws {
        try await send(Frame(type: .window, streamID: streamID, message: Vigil_V1_Window.with { $0.messages = messages }))
    }

    // MARK: Reading

    /// The next thing the server sent; nil when the connection closed.
    /// Throws when nothing arrives within `timeout`.
    func read(timeout: TimeAmount = rawReadTimeout) async throws -> WireInbound? {
        try await inbox.next(timeout: timeout, waitingFor: "the server to send something or close")
    }

    /// The next frame. Throws if the server closes, sends something else, or
    /// sends nothing within `timeout`.
    func readFrame(timeout: TimeAmount = rawReadTimeout, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Frame {
        switch try await inbox.next(timeout: timeout, waitingFor: "a frame (\(sourceLocation))") {
        case .frame(let frame):
            return frame
        case nil:
            throw RawConnectionError(
                description: "the connection closed while a frame was expected (\(sourceLocation))"
                    + (inbox.endError.map { "; error: \($0)" } ?? ""))
        case let other?:
            throw RawConnectionError(description: "expected a frame, got \(other) (\(sourceLocation))")
        }
    }

    /// Reads frames until one of `type` on `streamID` arrives; returns it and the frames before it.
    func readUntil(
        _ type: FrameType, streamID: UInt32, timeout: TimeAmount = rawReadTimeout,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (frame: Frame, before: [Frame]) {
        var before: [Frame] = []
        while true {
            let frame = try await readFrame(timeout: timeout, sourceLocation: sourceLocation)
            if frame.type == type && frame.streamID == streamID { return (frame, before) }
            before.append(frame)
        }
    }

    /// Reads frames until the TRAILERS of `streamID`; returns its status and the
    /// MESSAGE payloads of that stream before it. Frames of other streams fail the read.
    func readCall(
        streamID: UInt32, timeout: TimeAmount = rawReadTimeout, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (status: Vigil_V1_Status, messages: [Frame]) {
        var messages: [Frame] = []
        while true {
            let frame = try await readFrame(timeout: timeout, sourceLocation: sourceLocation)
            guard frame.streamID == streamID else {
                throw RawConnectionError(description: "expected frames of stream \(streamID), got \(frame) (\(sourceLocation))")
            }
            switch frame.type {
            case .message:
                #expect(frame.flags == [], "server MESSAGE frames carry no flags: \(frame)", sourceLocation: sourceLocation)
                messages.append(frame)
            case .trailers:
                return (try frame.decode(Vigil_V1_Status.self), messages)
            default:
                throw RawConnectionError(description: "unexpected \(frame) on stream \(streamID) (\(sourceLocation))")
            }
        }
    }

    /// Everything the server sends until it closes the connection.
    /// Throws if it is still open after `timeout`.
    func readUntilClosed(timeout: TimeAmount = rawReadTimeout, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [WireInbound] {
        var items: [WireInbound] = []
        while let item = try await inbox.next(timeout: timeout, waitingFor: "the server to close the connection (\(sourceLocation))") {
            items.append(item)
        }
        return items
    }

    /// Sends a PING and reads up to its PONG: everything the server sent before
    /// the PONG is returned. Since the server answers a PING as soon as it reads
    /// it, this shows what arrived in the meantime without sleeping.
    func pingBarrier(opaque: UInt64 = .random(in: 1 ... .max), sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Frame] {
        let ping = Vigil_V1_Ping.with { $0.opaque = opaque }
        try await send(Frame(type: .ping, streamID: 0, message: ping))
        var before: [Frame] = []
        while true {
            let frame = try await readFrame(sourceLocation: sourceLocation)
            if frame.type == .pong, let pong = try? frame.decode(Vigil_V1_Ping.self), pong.opaque == opaque {
                return before
            }
            before.append(frame)
        }
    }

    /// Preface exchange and HELLO; returns the server's Welcome.
    @discardableResult
    func handshake(maxFrameSize: UInt32 = 0, token: String = "", sourceLocation: SourceLocation = #_sourceLocation) async throws -> Vigil_V1_Welcome {
        try await sendPreface()
        let preface = try await inbox.next(timeout: rawReadTimeout, waitingFor: "the server's preface")
        guard preface == .preface(.vigil(.current)) else {
            throw RawConnectionError(description: "expected the server's Vigil 1.0 preface, got \(String(describing: preface)) (\(sourceLocation))")
        }
        var hello = Vigil_V1_Hello()
        hello.majorVersion = UInt32(Preface.current.major)
        hello.minorVersion = UInt32(Preface.current.minor)
        hello.clientName = "raw-test-client"
        hello.maxFrameSize = maxFrameSize
        hello.authToken = token
        try await send(Frame(type: .hello, streamID: 0, message: hello))
        let answer = try await readFrame(sourceLocation: sourceLocation)
        guard answer.type == .hello, answer.streamID == 0 else {
            throw RawConnectionError(description: "expected HELLO on stream 0, got \(answer) (\(sourceLocation))")
        }
        return try answer.decode(Vigil_V1_Welcome.self)
    }

    /// Ingests `events` as one call on `streamID`; expects OK and returns the response.
    func ingest(_ events: [AuditEvent], streamID: UInt32, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Vigil_V1_IngestResponse {
        let request = Vigil_V1_IngestRequest.with { $0.events = events }
        try await startCall(streamID: streamID, method: .ingest, request: request)
        let (status, messages) = try await readCall(streamID: streamID, sourceLocation: sourceLocation)
        guard status.code == StatusCode.ok.rawValue, messages.count == 1 else {
            throw RawConnectionError(description: "ingest failed: \(status) after \(messages.count) messages (\(sourceLocation))")
        }
        return try messages[0].payload.decodeMessage(Vigil_V1_IngestResponse.self)
    }
}

/// A test-only connection that sees bytes only: for peers that do not speak
/// Vigil (HTTP, TLS, garbage) and for answers that are not frames.
struct RawByteConnection: Sendable {
    let channel: any Channel
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let inbox: Inbox<ByteBuffer>

    static func with<R: Sendable>(port: Int, _ body: (RawByteConnection) async throws -> R) async throws -> R {
        let asyncChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = asyncChannel.channel
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let inbox = Inbox<ByteBuffer>(eventLoop: channel.eventLoop)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await bytes in inbound { inbox.push(bytes) }
                        inbox.finish()
                    } catch {
                        inbox.finish(error: error)
                    }
                }
                let connection = RawByteConnection(channel: channel, outbound: outbound, inbox: inbox)
                do {
                    let result = try await body(connection)
                    try? await channel.close()
                    try await group.waitForAll()
                    return result
                } catch {
                    try? await channel.close()
                    try? await group.waitForAll()
                    throw error
                }
            }
        }
    }

    func send(bytes: some Sequence<UInt8>) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    /// Every byte the server sends until it closes the connection. Throws if it
    /// is still open after `timeout`.
    func readUntilClosed(timeout: TimeAmount = rawReadTimeout, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await inbox.next(timeout: timeout, waitingFor: "the server to close the connection (\(sourceLocation))") {
            bytes += chunk.readableBytesView
        }
        return bytes
    }
}

extension Vigil_V1_Status {
    var statusCode: StatusCode { StatusCode(wireValue: code) }
}

/// An event that passes the server's validation.
func makeTestEvent(index: Int = 0, tenant: String = "acme") -> AuditEvent {
    var event = AuditEvent()
    event.occurredAt = .init(unixNanos: currentUnixNanos() - 60_000_000_000 + Int64(index) * 1_000_000)
    event.tenant = tenant
    event.actor.id = "u-\(index)"
    event.actor.type = .user
    event.action = "user.create"
    event.category = .create
    event.resource.type = "user"
    event.resource.id = "r-\(index)"
    event.outcome = .success
    event.sourceIp = "203.0.113.9"
    return event
}

/// A random UUID in canonical text form (no event has it).
func randomEventID() -> String {
    EventID(high: .random(in: .min ... .max), low: .random(in: .min ... .max)).description
}
