import NIOCore
import NIOPosix
import Testing
@testable import VigilClient
import VigilCore

/// The client's connection at its edges: a name that resolves to several
/// addresses (as `localhost` does where /etc/hosts maps both ::1 and
/// 127.0.0.1 to it), and a connection that runs out of call ids.
@Suite("Client: names with several addresses, call ids used up")
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

    @Test("a connection that used its last call id fails the next call with UNAVAILABLE, not sent; it neither traps nor reuses an id")
    func streamIDsUsedUp() async throws {
        try await withTestServer { server in
            var configuration = server.clientConfiguration
            configuration.firstStreamID = UInt32.max - 2
            let client = try await VigilClient.connect(configuration)
            _ = try await client.health()  // id 2^32 - 3
            _ = try await client.health()  // id 2^32 - 1, the last
            do {
                _ = try await client.health()
                Issue.record("a call went out without an id")
            } catch let error as VigilError {
                #expect(error.code == .unavailable)
                #expect(error.message.contains("used all its call ids"), "\(error.message)")
            }
            await client.close()
            // The server is fine, and a new connection starts over.
            let again = try await server.connect()
            _ = try await again.health()
            await again.close()
        }
    }

    @Test("a request over the server's frame limit is refused by the client (RESOURCE_EXHAUSTED), not sent; the connection goes on")
    func requestOverTheServersFrameLimit() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 131_072 }) { server in
            let client = try await server.connect()
            #expect(client.welcome.maxFrameSize == 131_072)
            var big = makeTestEvent()
            big.description_p = String(repeating: "d", count: 4_000)
            let error = await expectVigilError(.resourceExhausted) { _ = try await client.ingest(Array(repeating: big, count: 40)) }
            #expect(error?.message.contains("not sent") == true && error?.message.contains("131072") == true, "\(String(describing: error))")
            // The connection was not touched: the next call works.
            _ = try await client.ingest([makeTestEvent()])
            #expect(try await collect(client, queryRequest()).count == 1, "the large batch was not stored")
            await client.close()
        }
    }
}
