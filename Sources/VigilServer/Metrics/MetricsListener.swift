import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The optional HTTP/1.1 listener beside the protocol port (`vigil serve
/// --metrics-listen`): Prometheus scrapes and orchestrator probes, nothing
/// else. Plain HTTP without authentication, so it belongs on a loopback or
/// internal address; it reveals counts and tenant names, never events.
struct MetricsListener: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    typealias Listener = NIOAsyncChannel<Connection, Never>

    /// Scrapers hold a connection or two; more at once is a misbehaving
    /// client. Past it, the connection waiting longest for its next request
    /// is closed to make room: a probe must get its answer even while
    /// something holds every slot open without asking anything.
    static let maxConnections = 64
    /// A connection must send a whole request within this time of opening,
    /// or of its previous answer, or it is closed: a request dribbled a byte
    /// at a time does not hold a slot for ever (the read-idle timeout alone
    /// restarted with every byte).
    static let requestTimeout = TimeAmount.seconds(10)

    let responder: MetricsResponder
    let logger: Logger

    /// Binds `host:port`; the returned channel's `localAddress` says where.
    static func bind(host: String, port: Int, group: any EventLoopGroup, requestTimeout: TimeAmount = requestTimeout) async throws -> Listener {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RequestDeadlineHandler(timeout: requestTimeout))
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Answers requests until the task is cancelled.
    func serve(_ listener: Listener) async {
        let open = OpenConnections(limit: Self.maxConnections)
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        let (id, evicted, warn) = open.admit(connection.channel)
                        if let evicted {
                            evicted.close(promise: nil)
                            if warn {
                                logger.warning(
                                    "metrics listener: \(Self.maxConnections) connections open, its limit; closing those that wait longest for a request (logged at most once a minute)")
                            }
                        }
                        guard let id else {
                            try? await connection.channel.close()
                            continue
                        }
                        group.addTask {
                            defer { open.remove(id) }
                            await handle(connection, id: id, open: open)
                        }
                    }
                }
            }
        } catch {
            if !(error is CancellationError) {
                logger.debug("metrics listener stopped", metadata: ["vigil.error": "\(error)"])
            }
        }
    }

    private func handle(_ connection: Connection, id: UInt64, open: OpenConnections) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        // Nothing here takes a body; the decoder streams it, so it costs no memory.
                        break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        // Answering: not the one to close to make room.
                        open.setBusy(id, true)
                        defer { open.setBusy(id, false) }
                        let response = await responder.respond(method: request.method, uri: request.uri)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: response.contentType)
                        headers.add(name: "Content-Length", value: String(response.body.count))
                        headers.add(name: "Cache-Control", value: "no-store")
                        for (name, value) in response.headers { headers.add(name: name, value: value) }
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers)))
                        if request.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await outbound.write(.end(nil))
                        if !request.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended", metadata: ["vigil.error": "\(error)"])
        }
    }
}

/// The listener's connections, against its limit: when it is reached, the
/// connection that has waited longest for a request makes room.
private final class OpenConnections: Sendable {
    private struct Entry {
        let channel: any Channel
        var busy = false
        /// When it last began to wait for a request (a tick of `State.clock`).
        var idleSince: UInt64
    }

    private struct State {
        var nextID: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
        /// Counts admissions and answers: orders the idle connections by how long they have waited.
        var clock: UInt64 = 0
        var lastWarning: ContinuousClock.Instant?
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// Registers `channel`; returns its id (nil: every connection is
    /// answering a request, so this one is refused), the connection to close
    /// to make room, and whether to log that (once a minute at most).
    func admit(_ channel: any Channel) -> (id: UInt64?, evicted: (any Channel)?, warn: Bool) {
        state.withLock { state in
            var evicted: (any Channel)?
            var warn = false
            if state.entries.count >= limit {
                guard let oldest = state.entries.filter({ !$0.value.busy }).min(by: { $0.value.idleSince < $1.value.idleSince })?.key
                else { return (nil, nil, false) }
                evicted = state.entries.removeValue(forKey: oldest)?.channel
                let now = ContinuousClock.now
                if state.lastWarning.map({ now - $0 >= .seconds(60) }) ?? true {
                    state.lastWarning = now
                    warn = true
                }
            }
            state.nextID += 1
            state.clock += 1
            state.entries[state.nextID] = Entry(channel: channel, idleSince: state.clock)
            return (state.nextID, evicted, warn)
        }
    }

    func setBusy(_ id: UInt64, _ busy: Bool) {
        state.withLock { state in
            state.entries[id]?.busy = busy
            if !busy {
                state.clock += 1
                state.entries[id]?.idleSince = state.clock
            }
        }
    }

    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }
}

/// Closes a connection that has not sent a whole request within `timeout`
/// of opening or of the end of its previous answer.
private final class RequestDeadlineHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            // A whole request: the clock stops while it is answered.
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
}

/// What the metrics listener answers, by path and method; no networking, so
/// it reads as the endpoint's specification.
struct MetricsResponder: Sendable {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType = "text/plain; charset=utf-8"
        var headers: [(String, String)] = []
        var body: [UInt8]
    }

    /// The Prometheus text exposition format, version 0.0.4.
    static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"
    static let paths = ["/metrics", "/healthz", "/readyz"]

    /// Samples the server and renders the registry.
    let metrics: @Sendable () async -> [UInt8]
    /// Why the server is not ready (empty: it is).
    let readiness: @Sendable () -> [String]

    func respond(method: HTTPMethod, uri: String) async -> Response {
        let path = String(uri.prefix { $0 != "?" })
        guard Self.paths.contains(path) else {
            return Response(status: .notFound, body: Array("not found: this listener serves \(Self.paths.joined(separator: ", "))\n".utf8))
        }
        guard method == .GET || method == .HEAD else {
            return Response(
                status: .methodNotAllowed, headers: [("Allow", "GET, HEAD")],
                body: Array("method \(method) not allowed: \(path) answers GET and HEAD\n".utf8))
        }
        switch path {
        case "/metrics":
            return Response(status: .ok, contentType: Self.prometheusContentType, body: await metrics())
        case "/healthz":
            // The process runs and its event loop answers: that is all liveness means.
            return Response(status: .ok, body: Array("ok\n".utf8))
        default:
            let reasons = readiness()
            guard !reasons.isEmpty else { return Response(status: .ok, body: Array("ready\n".utf8)) }
            return Response(status: .serviceUnavailable, body: Array(("not ready:\n" + reasons.map { "- \($0)\n" }.joined()).utf8))
        }
    }
}
