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

/// A free port on 127.0.0.1 below Linux's ephemeral range (32768–60999 by
/// default), for a test that restarts a server on the same port. A port the
/// kernel handed out for port 0 may, once the first server is gone, become
/// the local port of any other test's outgoing connection, and the restart
/// then fails with EADDRINUSE; ports below the range are never handed out so.
func portBelowEphemeralRange() throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { break }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    throw POSIXError(.EADDRINUSE)
}
