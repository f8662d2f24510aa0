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
    }

    /// The address the server listens on, once `run` has bound it.
    public var listeningAddress: SocketAddress {
        get async throws { try await address.futureResult.get() }
    }

    public func run() async throws {
        let configuration = configuration
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
            throw VigilError(.unavailable, "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        let local = serverChannel.channel.localAddress!
        address.succeed(local)
        let printable = local.ipAddress.map { local.protocol == .inet6 ? "[\($0)]" : $0 } ?? "\(local)"
        logger.info("listening on \(printable):\(local.port ?? 0)")
        if let tls = configuration.tls {
            logger.info(tls.requiresClientCertificate ? "TLS on, client certificates required (mutual TLS)" : "TLS on")
        }

        let service = AuditService(store: store, configuration: configuration, logger: logger)
        let logger = logger
        let store = store
        let checkpointer = configuration.checkpoints.flatMap { checkpoints in
            checkpoints.key.map { Checkpointer(key: $0, configuration: checkpoints, store: store, logger: logger) }
        }
        // Flushing, merging and retention run beside the connections, and stop
        // only after the last connection has drained.
        try await withThrowingTaskGroup(of: Void.self) { maintenance in
            maintenance.addTask { try await store.runMaintenance() }
            if let checkpointer { maintenance.addTask { await checkpointer.run() } }
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
                for try await connection in connections.cancelOnGracefulShutdown() {
                    var connectionLogger = logger
                    connectionLogger[metadataKey: "vigil.peer"] = "\(connection.channel.remoteAddress.map { "\($0)" } ?? "?")"
                    guard let slot = service.access.connections.admit() else {
                        // Full: say so in the protocol, so the client's error is clear.
                        connectionLogger.info("refused a connection: the server has \(configuration.maxConnections) connections, its limit")
                        group.addTask { await Self.refuseFull(connection, limit: configuration.maxConnections) }
                        continue
                    }
                    connectionLogger[metadataKey: "vigil.connection"] = "\(slot)"
                    let handler = ConnectionHandler(
                        channel: connection, service: service, configuration: configuration, logger: connectionLogger, slot: slot)
                    group.addTask {
                        defer { service.access.connections.remove(slot) }
                        await handler.run()
                    }
                }
            }
            logger.info("stopped accepting connections; draining")
        }
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
