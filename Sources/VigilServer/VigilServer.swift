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

        let service = AuditService(store: store, configuration: configuration)
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
                    let handler = ConnectionHandler(
                        channel: connection, service: service, configuration: configuration, logger: connectionLogger)
                    group.addTask { await handler.run() }
                }
            }
            logger.info("stopped accepting connections; draining")
        }
    }
}
