import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VigilCore
import VigilStorage
import VigilWire

/// The Vigil server as a `Service`: it listens, serves connections, and on
/// graceful shutdown stops accepting, sends GOAWAY on every connection, lets
/// calls in flight finish, then closes the store.
public final class VigilServer: Service, Sendable {
    public let configuration: ServerConfiguration
    private let store: any EventStore
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let address: EventLoopPromise<SocketAddress>
    /// The server's metrics (its own registry: several servers in one process keep apart).
    public let metrics: VigilMetrics
    let vitals = ServerVitals()
    private let metricsAddress: EventLoopPromise<SocketAddress?>

    public init(
        configuration: ServerConfiguration,
        store: any EventStore,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.address = eventLoopGroup.next().makePromise()
        self.metrics = configuration.metrics ?? VigilMetrics()
        self.metricsAddress = eventLoopGroup.next().makePromise()
    }

    /// The metrics listener's address once `run` has bound it; nil when
    /// `configuration.metricsListen` is nil.
    public var metricsListeningAddress: SocketAddress? {
        get async throws { try await metricsAddress.futureResult.get() }
    }

    /// Why the server is not serving (empty: it is): its own reasons, then
    /// the store's. What `Health` and `/readyz` answer.
    public var healthProblems: [String] {
        vitals.problems + store.healthProblems
    }

    /// The address the server listens on, once `run` has bound it.
    public var listeningAddress: SocketAddress {
        get async throws { try await address.futureResult.get() }
    }

    public func run() async throws {
        // Draining starts the moment shutdown is asked for, so /readyz turns
        // a load balancer away while calls in flight finish.
        try await withGracefulShutdownHandler {
            try await runListeners()
        } onGracefulShutdown: { [vitals] in
            vitals.draining()
        }
    }

    private func runListeners() async throws {
        let configuration = configuration
        // Logged before "listening on", so that whoever waits for that line has this one too.
        if let checkpoints = configuration.checkpoints, checkpoints.key != nil {
            await Checkpointer.warnOfCheckpointsPastTheHead(directory: checkpoints.directory, store: store, logger: logger)
        }
        var metricsListener: MetricsListener.Listener?
        if let endpoint = configuration.metricsListen {
            do {
                let listener = try await MetricsListener.bind(host: endpoint.host, port: endpoint.port, group: eventLoopGroup)
                // Logged before "listening on", so that whoever waits for that line has this one too.
                logger.info("metrics on http://\(listener.channel.localAddress.map(Self.printable) ?? "?")/metrics (and /healthz, /readyz)")
                metricsListener = listener
            } catch {
                let failure = VigilError(.unavailable, "cannot listen for metrics on \(endpoint.host):\(endpoint.port): \(error)")
                address.fail(failure)
                metricsAddress.fail(failure)
                throw failure
            }
        }
        let serverChannel: NIOAsyncChannel<NIOAsyncChannel<WireInbound, WireOutbound>, Never>
        do {
            serverChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls = configuration.tls {
                            var tlsLogger = self.logger
                            tlsLogger[metadataKey: "vigil.peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
                            try tls.addHandlers(to: channel.pipeline.syncOperations, logger: tlsLogger)
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameDecoder(maxFrameSize: configuration.maxFrameSize)))
                        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireEncoder()))
                        return try NIOAsyncChannel<WireInbound, WireOutbound>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            address.fail(error)
            metricsAddress.fail(error)
            try? await metricsListener?.channel.close()
            throw VigilError(.unavailable, "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        let local = serverChannel.channel.localAddress!
        address.succeed(local)
        logger.info("listening on \(Self.printable(local))")
        if let tls = configuration.tls {
            logger.info(tls.requiresClientCertificate ? "TLS on, client certificates required (mutual TLS)" : "TLS on")
        }

        let service = AuditService(store: store, configuration: configuration, logger: logger, metrics: metrics, vitals: vitals)
        let logger = logger
        let store = store
        let vitals = vitals
        let checkpointer = configuration.checkpoints.flatMap { checkpoints in
            checkpoints.key.map { Checkpointer(key: $0, configuration: checkpoints, store: store, logger: logger, vitals: vitals, metrics: metrics) }
        }
        let metricsServer = metricsListener.map { listener in
            (listener, MetricsListener(responder: metricsResponder(service: service), logger: logger))
        }
        metricsAddress.succeed(metricsListener?.channel.localAddress)
        vitals.serving()
        // Flushing, merging and retention run beside the connections, and stop
        // only after the last connection has drained.
        try await withThrowingTaskGroup(of: Void.self) { maintenance in
            maintenance.addTask { try await store.runMaintenance() }
            if let checkpointer { maintenance.addTask { await checkpointer.run() } }
            // Up while connections drain (so /readyz says why), stopped after.
            if let metricsServer { maintenance.addTask { await metricsServer.1.serve(metricsServer.0) } }
            defer { maintenance.cancelAll() }
            try await serve(serverChannel, service: service, logger: logger)
            // Every call has drained: the last checkpoint covers every acknowledged event.
            await checkpointer?.writeIfMoved()
        }
        try await store.close()
        logger.info("stopped")
    }

    private func serve(
        _ serverChannel: NIOAsyncChannel<NIOAsyncChannel<WireInbound, WireOutbound>, Never>,
        service: AuditService, logger: Logger
    ) async throws {
        let configuration = configuration
        try await withThrowingDiscardingTaskGroup { group in
            try await serverChannel.executeThenClose { connections in
                // Shutdown closes the listener, which ends `connections` after the
                // ones accepted by then. Those are closed each through its
                // `executeThenClose`: a connection dropped unfinished (as
                // `cancelOnGracefulShutdown()` left those still in the stream)
                // traps in NIO ("Deinited NIOAsyncWriter without calling
                // finish()"), which took the server down under a burst of
                // connections at shutdown.
                let listener = serverChannel.channel
                try await withGracefulShutdownHandler {
                    for try await connection in connections {
                        guard !Task.isShuttingDownGracefully else {
                            group.addTask { try? await connection.executeThenClose { _, _ in } }
                            continue
                        }
                        var connectionLogger = logger
                        connectionLogger[metadataKey: "vigil.peer"] = "\(connection.channel.remoteAddress.map { "\($0)" } ?? "?")"
                        guard let slot = service.access.connections.admit() else {
                            // Full: say so in the protocol, so the client's error is clear.
                            connectionLogger.info("refused a connection: the server has \(configuration.maxConnections) connections, its limit")
                            service.metrics.recordRejectedConnection(.resourceExhausted)
                            group.addTask { await Self.refuseFull(connection, limit: configuration.maxConnections) }
                            continue
                        }
                        connectionLogger[metadataKey: "vigil.connection"] = "\(slot)"
                        let handler = ConnectionHandler(
                            channel: connection, service: service, configuration: configuration, logger: connectionLogger, slot: slot)
                        group.addTask(executorPreference: EventLoopTaskExecutor(connection.channel.eventLoop)) {
                            defer { service.access.connections.remove(slot) }
                            await handler.run()
                        }
                    }
                } onGracefulShutdown: {
                    listener.close(promise: nil)
                }
            }
            logger.info("stopped accepting connections; draining")
        }
    }

    /// The metrics listener's answers: a scrape samples the server and the
    /// store, then renders the registry; readiness is `healthProblems`.
    private func metricsResponder(service: AuditService) -> MetricsResponder {
        MetricsResponder(
            metrics: { [self] in
                metrics.update(from: await sample(service))
                return metrics.exposition()
            },
            readiness: { [self] in healthProblems })
    }

    /// What the gauges show, read now.
    func sample(_ service: AuditService) async -> VigilMetrics.Sample {
        var sample = VigilMetrics.Sample()
        sample.connections = service.access.connections.count
        sample.callsInFlight = vitals.callsInFlight
        sample.subscribers = service.subscriptions.count
        sample.subscriberLagMax = vitals.subscriberLagMax(head: store.feed.head)
        sample.serving = healthProblems.isEmpty
        sample.startedAt = vitals.startedAt
        sample.lastCheckpointAt = vitals.lastCheckpoint?.createdAt
        sample.store = try? await store.statistics()
        return sample
    }

    /// HOST:PORT, with brackets around an IPv6 host.
    static func printable(_ address: SocketAddress) -> String {
        let host = address.ipAddress.map { address.protocol == .inet6 ? "[\($0)]" : $0 } ?? "\(address)"
        return "\(host):\(address.port ?? 0)"
    }

    /// Answers a connection over the limit with the server preface and GOAWAY
    /// RESOURCE_EXHAUSTED, then closes it without reading what it sent.
    private static func refuseFull(_ connection: NIOAsyncChannel<WireInbound, WireOutbound>, limit: Int) async {
        try? await connection.executeThenClose { _, outbound in
            try await outbound.write(.preface(.current))
            try await outbound.write(.frame(.goAway(
                lastStreamID: 0, code: .resourceExhausted,
                message: "the server has \(limit) connections open, its limit (--max-connections); retry later")))
            outbound.finish()
        }
    }
}
