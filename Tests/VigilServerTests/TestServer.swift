import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VigilClient
import VigilCore
import VigilServer
import VigilStorage

/// A real server on 127.0.0.1, port 0, run in a `ServiceGroup` for the
/// duration of `body`, then shut down gracefully.
struct TestServer: Sendable {
    let server: VigilServer
    let group: ServiceGroup
    let port: Int
    let store: any EventStore

    var clientConfiguration: VigilClient.Configuration {
        VigilClient.Configuration(host: "127.0.0.1", port: port)
    }

    func connect() async throws -> VigilClient {
        try await VigilClient.connect(clientConfiguration)
    }

    /// Starts graceful shutdown (GOAWAY to every connection).
    func shutDown() async {
        await group.triggerGracefulShutdown()
    }
}

func withTestServer<R: Sendable>(
    configure: (inout ServerConfiguration) -> Void = { _ in },
    store: (any EventStore)? = nil,
    _ body: (TestServer) async throws -> R
) async throws -> R {
    var configuration = ServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    var logger = Logger(label: "vigil.test")
    logger.logLevel = .critical
    // The real engine, in a fresh directory, with small segments so that
    // tests read across memory and parts.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var storage = StorageOptions(directory: directory)
    storage.segmentMaxRows = 2_000
    storage.retentionNanos = nil
    if let metrics = configuration.metrics { storage.metrics = metrics.storage }
    let store = try store ?? ColumnarEventStore(options: storage)
    let server = VigilServer(configuration: configuration, store: store, logger: logger)
    let group = ServiceGroup(services: [server], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let address = try await server.listeningAddress
        let testServer = TestServer(server: server, group: group, port: address.port!, store: store)
        do {
            let result = try await body(testServer)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            tasks.cancelAll()
            throw error
        }
    }
}
