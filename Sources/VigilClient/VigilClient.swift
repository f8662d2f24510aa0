import NIOCore
import NIOPosix
import Synchronization
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connection to a Vigil server. Calls may be made concurrently from many
/// tasks: they are multiplexed (and unary calls pipelined) on the one
/// connection. Errors are `VigilError`s carrying the server's status code.
public final class VigilClient: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 7700
        /// The API token sent in HELLO; empty for none.
        public var token = ""
        public var clientName = "vigil-swift/\(vigilClientVersion)"
        /// zlib-compress request messages (worth it for large batches on slow links).
        public var compressRequests = false
        /// The first call's stream id: 1, except in tests of running out of ids.
        var firstStreamID: UInt32 = 1
        /// How long the TCP connect may take, and then again the handshake
        /// (TLS, HELLO and the server's Welcome): a server that accepts
        /// connections but never answers (hung, or not a Vigil server) fails
        /// the connect with UNAVAILABLE instead of hanging it.
        public var connectTimeout: Duration = .seconds(10)
        /// While calls are open: a PING after this long without a byte from
        /// the server, and the connection is failed (UNAVAILABLE, which a
        /// `ResilientSubscription` resumes from) when nothing comes for as
        /// long again. A server that is there always answers a PING; a path
        /// that died silently never errors by itself. nil: never.
        public var keepalive: Duration? = .seconds(30)
        /// The largest frame this client accepts from the server.
        public var maxFrameSize = 16 * 1024 * 1024
        /// TLS (and mutual TLS); nil for plain TCP.
        public var tls: TLS?

        public init(host: String = "127.0.0.1", port: Int = 7700) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT`, `[V6]:PORT`, or a bare `HOST` (port 7700).
        /// `allowPortZero` is for listening addresses, where 0 means "any free port".
        public init(server: String, allowPortZero: Bool = false) throws(VigilError) {
            var host = server
            var port = 7700
            if server.hasPrefix("["), let close = server.firstIndex(of: "]") {
                host = String(server[server.index(after: server.startIndex)..<close])
                let rest = server[server.index(after: close)...]
                if rest.hasPrefix(":") {
                    guard let parsed = Int(rest.dropFirst()) else { throw Self.badServer(server) }
                    port = parsed
                }
            } else if let colon = server.lastIndex(of: ":"), server.firstIndex(of: ":") == colon {
                host = String(server[..<colon])
                guard let parsed = Int(server[server.index(after: colon)...]) else { throw Self.badServer(server) }
                port = parsed
            }
            guard !host.isEmpty, ((allowPortZero ? 0 : 1)...65535).contains(port) else { throw Self.badServer(server) }
            self.init(host: host, port: port)
        }

        private static func badServer(_ server: String) -> VigilError {
            VigilError(.invalidArgument, "'\(server)' is not HOST:PORT (for example 127.0.0.1:7700 or [::1]:7700)")
        }
    }

    /// What the server said in its HELLO: its limits and who it takes us for.
    public let welcome: Vigil_V1_Welcome
    private let channel: any Channel
    private let handler: NIOLoopBound<ClientConnectionHandler>
    private let configuration: Configuration

    /// The connection's own thread, for a task that makes calls one after
    /// another and wants each answer soonest: under
    /// `withTaskExecutorPreference(client.executor) { … }` a call's request
    /// leaves, and its answer is taken up, without a hand-off between
    /// threads (about 0.1 ms of a small query's round trip on a 2-core
    /// virtual machine). Keep heavy work out of such a task: it runs on the
    /// thread that reads every call's answers.
    public let executor: EventLoopTaskExecutor

    private init(channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>, welcome: Vigil_V1_Welcome, configuration: Configuration) {
        self.channel = channel
        self.executor = EventLoopTaskExecutor(channel.eventLoop)
        self.handler = handler
        self.welcome = welcome
        self.configuration = configuration
    }

    /// Connects, exchanges prefaces and HELLO, and returns a ready client.
    public static func connect(
        _ configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> VigilClient {
        try await connect(configuration, eventLoopGroup: eventLoopGroup, resolver: nil)
    }

    /// One connection attempt: its handler and the Welcome it waits for.
    private struct Attempt: Sendable {
        let handler: NIOLoopBound<ClientConnectionHandler>
        let welcome: EventLoopPromise<Vigil_V1_Welcome>
    }

    /// The attempts of one connect, by channel.
    private final class Attempts: Sendable {
        let byChannel = Mutex<[ObjectIdentifier: Attempt]>([:])
    }

    /// `resolver`: tests give names that resolve to several addresses.
    static func connect(
        _ configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        resolver: (any Resolver & Sendable)?
    ) async throws -> VigilClient {
        let loop = eventLoopGroup.next()
        // A name with several addresses (localhost: ::1 and 127.0.0.1) makes a
        // channel, and so a handler, per address tried: the client must keep
        // the one of the channel that connected. Taken as each is made (a
        // server that closes right after its Welcome leaves no pipeline to
        // look the handler up in).
        let attempts = Attempts()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .resolver(resolver)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls = configuration.tls { try sync.addHandler(tls.makeHandler(host: configuration.host)) }
                        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: configuration.maxFrameSize)))
                        try sync.addHandler(MessageToByteHandler(WireEncoder()))
                        let welcome = channel.eventLoop.makePromise(of: Vigil_V1_Welcome.self)
                        let handler = ClientConnectionHandler(
                            welcome: welcome, keepalive: configuration.keepalive.map { TimeAmount($0) }, firstStreamID: configuration.firstStreamID)
                        try sync.addHandler(handler)
                        let attempt = Attempt(handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), welcome: welcome)
                        attempts.byChannel.withLock { $0[ObjectIdentifier(channel)] = attempt }
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            Self.failAttempts(attempts, except: nil, error)
            if let error = error as? VigilError { throw error }
            throw VigilError(.unavailable, Self.connectFailure(error, host: configuration.host, port: configuration.port, timeout: configuration.connectTimeout))
        }
        let connected = attempts.byChannel.withLock { $0[ObjectIdentifier(channel)] }
        // The attempts that lost are closed by NIO; their Welcomes never come.
        Self.failAttempts(attempts, except: channel, VigilError(.unavailable, "another address of \(configuration.host) connected first"))
        guard let connected else {
            try? await channel.close()
            throw VigilError(.internal, "the connection to \(configuration.host):\(configuration.port) was made without its handler")
        }
        let welcome = connected.welcome
        var hello = Vigil_V1_Hello()
        hello.majorVersion = UInt32(Preface.current.major)
        hello.minorVersion = UInt32(Preface.current.minor)
        hello.clientName = configuration.clientName
        hello.authToken = configuration.token
        hello.maxFrameSize = UInt32(configuration.maxFrameSize)
        channel.writeAndFlush(WireOutbound.frame(Frame(type: .hello, streamID: 0, message: hello)), promise: nil)
        // A promise completes once: the timer's failure is ignored after a Welcome.
        let handshakeTimer = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
            welcome.fail(VigilError(
                .unavailable,
                "no answer to HELLO from \(configuration.host):\(configuration.port) within \(configuration.connectTimeout); is a Vigil server listening there, and is it overloaded?"))
        }
        defer { handshakeTimer.cancel() }
        do {
            let answer = try await welcome.futureResult.get()
            return VigilClient(channel: channel, handler: connected.handler, welcome: answer, configuration: configuration)
        } catch {
            try? await channel.close()
            throw error as? VigilError ?? VigilError(.unavailable, "HELLO failed: \(error)")
        }
    }

    /// Fails the Welcome promises of the attempts other than `channel`'s (a
    /// promise completes once: one already answered stays as it was).
    private static func failAttempts(_ attempts: Attempts, except channel: (any Channel)?, _ error: any Error) {
        let kept = channel.map { ObjectIdentifier($0) }
        let others = attempts.byChannel.withLock { all in all.filter { $0.key != kept }.map(\.value) }
        for attempt in others { attempt.welcome.fail(error) }
    }

    /// A failed connect as a sentence that says what to check, not NIO's
    /// nested error values.
    static func connectFailure(_ error: any Error, host: String, port: Int, timeout: Duration) -> String {
        let address = "\(host):\(port)"
        var causes: [any Error] = [error]
        if let failure = error as? NIOConnectionError {
            causes = failure.connectionErrors.map(\.error)
            // Neither an A nor an AAAA record: nothing was tried.
            if causes.isEmpty, failure.dnsAError != nil || failure.dnsAAAAError != nil {
                return "unknown host '\(host)': it does not resolve to an address; check the host of --server"
            }
        }
        if error is SocketAddressError { return "unknown host '\(host)': it does not resolve to an address; check the host of --server" }
        let codes = causes.compactMap { ($0 as? IOError)?.errnoCode }
        if codes.contains(ECONNREFUSED) { return "connection refused: is `vigil serve` running at \(address)?" }
        if codes.contains(ENETUNREACH) || codes.contains(EHOSTUNREACH) {
            return "no route to \(address): the network or host cannot be reached from here"
        }
        let timedOut = causes.contains { cause in
            if case ChannelError.connectTimeout = cause { return true }
            return (cause as? IOError)?.errnoCode == ETIMEDOUT
        }
        if timedOut { return "no answer from \(address) within \(timeout): is the host up, and does a firewall drop the port?" }
        return "cannot connect to \(address): \(error); is `vigil serve` running there?"
    }

    /// A client dropped without `close()` would otherwise keep its socket,
    /// and the server's connection slot, until the server's idle timeout.
    /// Every call and sequence that uses the connection holds the client, so
    /// none is still running here.
    deinit {
        channel.close(promise: nil)
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        try? await channel.close()
    }

    /// Starts closing the connection without waiting (for owners that go
    /// away without a chance to await, such as an iterator being dropped).
    func closeSoon() {
        channel.close(promise: nil)
    }

    // MARK: Calls

    /// Opens a call and returns its stream of MESSAGE and TRAILERS events.
    func openCall(
        _ method: AuditMethod, request: some SwiftProtobuf.Message, timeout: Duration?, initialWindow: UInt32?
    ) async throws -> (streamID: UInt32, events: AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>) {
        try await openCall(method, payload: request.serializedBuffer(), timeout: timeout, initialWindow: initialWindow)
    }

    /// Opens a call whose request is already serialized (protobuf binary).
    func openCall(
        _ method: AuditMethod, payload: ByteBuffer, timeout: Duration?, initialWindow: UInt32?
    ) async throws -> (streamID: UInt32, events: AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>) {
        var headers = Vigil_V1_CallHeaders()
        headers.method = method.rawValue
        if let timeout {
            // Whole milliseconds, at least 1; a timeout too long to count in them is none at all.
            let milliseconds = TimeAmount(timeout).nanoseconds / 1_000_000
            if milliseconds < Int64.max / 1_000_000 { headers.timeoutMs = UInt64(max(1, milliseconds)) }
        }
        if let initialWindow { headers.initialWindow = initialWindow }
        let headersToSend = headers
        let (events, continuation) = AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>.makeStream()
        let handler = handler
        let compress = configuration.compressRequests
        let streamID = try await channel.eventLoop.submit {
            handler.value.startCall(method: method, headers: headersToSend, request: payload, compress: compress, continuation: continuation)
        }.get()
        guard let streamID else {
            // The handler finished the stream with the reason.
            for try await _ in events {}
            throw VigilError(.unavailable, "the connection is closed")
        }
        continuation.onTermination = { [channel] termination in
            if case .cancelled = termination {
                // The consumer went away: tell the server to stop work on the call.
                channel.eventLoop.execute {
                    handler.value.abandon(streamID: streamID)
                    handler.value.send(Frame(type: .cancel, streamID: streamID, message: Vigil_V1_Cancel()))
                }
            }
        }
        return (streamID, events)
    }

    func grantWindow(streamID: UInt32, messages: UInt32) {
        let window = Vigil_V1_Window.with { $0.messages = messages }
        let handler = handler
        channel.eventLoop.execute {
            handler.value.send(Frame(type: .window, streamID: streamID, message: window))
        }
    }

    /// A call with one request and one response.
    public func unary<Response: SwiftProtobuf.Message>(
        _ method: AuditMethod, _ request: some SwiftProtobuf.Message, timeout: Duration? = nil,
        as: Response.Type = Response.self
    ) async throws -> Response {
        let (_, events) = try await openCall(method, request: request, timeout: timeout, initialWindow: nil)
        return try await unaryAnswer(method, events, as: Response.self).response
    }

    /// The response and OK trailers' metadata of a unary call. An answer
    /// that arrived whole is returned even when the task was cancelled
    /// meanwhile: an acknowledged Ingest thrown away as a cancellation
    /// would be retried, and without a key stored twice.
    func unaryAnswer<Response: SwiftProtobuf.Message>(
        _ method: AuditMethod, _ events: AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>, as: Response.Type
    ) async throws -> (response: Response, trailers: [String: String]) {
        var response: Response?
        var trailers: [String: String]?
        for try await event in events {
            switch event {
            case .message(let frame):
                response = try frame.messagePayload(maxMessageSize: maxMessageSize).decodeMessage(Response.self)
            case .trailers(let status):
                if let error = VigilError(status: status) { throw error }
                trailers = status.metadata
            }
        }
        if let response, let trailers { return (response, trailers) }
        // The stream ended without the answer: the task was cancelled, or the server said nothing.
        try Task.checkCancellation()
        throw VigilError(.internal, "the server ended \(method.rawValue) without a response")
    }

    /// Stores a batch of events (atomically: all or none). With an
    /// idempotency key, a retry after an error or a dropped connection never
    /// stores the batch twice.
    /// With `wantReceipts`, the response carries each event's leaf hash and
    /// the hash-chain head after the batch (`leafHashes`, `chainHead`).
    public func ingest(
        _ events: [AuditEvent], idempotencyKey: String? = nil, wantReceipts: Bool = false, timeout: Duration? = nil
    ) async throws -> Vigil_V1_IngestResponse {
        var request = Vigil_V1_IngestRequest()
        request.events = events
        request.idempotencyKey = idempotencyKey ?? ""
        request.wantReceipts = wantReceipts
        return try await unary(.ingest, request, timeout: timeout)
    }

    /// Asks the server to recompute its hash chain and report every problem.
    public func verify(_ request: Vigil_V1_VerifyRequest = .init(), timeout: Duration? = nil) async throws -> Vigil_V1_VerifyResponse {
        try await unary(.verify, request, timeout: timeout)
    }

    /// One event by id; throws NOT_FOUND when there is none.
    public func get(id: String, timeout: Duration? = nil) async throws -> AuditEvent {
        var request = Vigil_V1_GetRequest()
        request.id = id
        let response: Vigil_V1_GetResponse = try await unary(.get, request, timeout: timeout)
        return response.event
    }

    /// The pages of a query, each with the cursor that resumes after it.
    /// `window` pages may be in flight; more are asked for as pages are consumed.
    public func queryPages(_ request: Vigil_V1_QueryRequest, window: UInt32 = 4, timeout: Duration? = nil) -> QueryPages {
        QueryPages(client: self, request: request, window: max(1, window), timeout: timeout)
    }

    /// The events of a query, in order, fetched page by page under flow control.
    public func query(_ request: Vigil_V1_QueryRequest, window: UInt32 = 4, timeout: Duration? = nil) -> QueryEvents {
        QueryEvents(pages: queryPages(request, window: window, timeout: timeout))
    }

    var maxMessageSize: Int { configuration.maxFrameSize }
}

/// The version of this client library.
public let vigilClientVersion = "0.1.0"
