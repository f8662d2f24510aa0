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

    /// Scrapers hold a connection or two; more at once is a misbehaving client.
    static let maxConnections = 64
    /// A connection that sends nothing for this long is closed.
    static let idleTimeout = TimeAmount.seconds(60)

    let responder: MetricsResponder
    let logger: Logger

    /// Binds `host:port`; the returned channel's `localAddress` says where.
    static func bind(host: String, port: Int, group: any EventLoopGroup) async throws -> Listener {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdleHandler())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
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
                        guard open.admit() else {
                            logger.info("metrics listener: refused a connection over its limit of \(Self.maxConnections)")
                            try? await connection.channel.close()
                            continue
                        }
                        group.addTask {
                            defer { open.remove() }
                            await handle(connection)
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

    private func handle(_ connection: Connection) async {
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

/// Counts the listener's connections against its limit.
private final class OpenConnections: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    func admit() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func remove() { count.withLock { $0 -= 1 } }
}

/// Closes a connection on the `IdleStateHandler`'s read timeout.
private final class CloseWhenIdleHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
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
