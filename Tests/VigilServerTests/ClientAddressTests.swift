import NIOCore
import NIOPosix
import Testing
@testable import VigilClient
import VigilCore

/// A name that resolves to several addresses, as `localhost` does where
/// /etc/hosts maps both ::1 and 127.0.0.1 to it.
@Suite("Client: names with several addresses")
struct ClientAddressTests {
    /// Resolves every name to 127.0.0.2 (where nothing listens: refused),
    /// then 127.0.0.1 (the server).
    struct RefusedFirstResolver: Resolver, Sendable {
        let loop: any EventLoop
        let port: Int

        func initiateAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
            loop.makeCompletedFuture {
                [try SocketAddress(ipAddress: "127.0.0.2", port: self.port), try SocketAddress(ipAddress: "127.0.0.1", port: self.port)]
            }
        }

        func initiateAAAAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
            loop.makeSucceededFuture([])
        }

        func cancelQueries() {}
    }

    @Test("the client keeps the connection of the address that answered, not the first one tried: its calls work")
    func secondAddressConnects() async throws {
        try await withTestServer { server in
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let client = try await VigilClient.connect(
                .init(host: "vigil.test", port: server.port), eventLoopGroup: loop,
                resolver: RefusedFirstResolver(loop: loop, port: server.port))
            // Before, the client held the handler of the refused attempt: every call
            // failed with UNAVAILABLE "the connection is closed".
            _ = try await client.health()
            let answer = try await client.ingest([makeTestEvent()])
            #expect(answer.count == 1)
            await client.close()
        }
    }
}
