import Foundation
import Testing
import VigilClient
import VigilCore

#if canImport(Glibc)
import Glibc
#endif

/// How the Swift client connects: its timeouts as given, and a server that
/// never answers.
@Suite("The Swift client's connect and timeouts")
struct ClientConnectTests {
    @Test("a connect timeout under a second is used as given, not cut to zero")
    func subSecondConnectTimeout() async throws {
        try await withTestServer { server in
            var configuration = server.clientConfiguration
            configuration.connectTimeout = .milliseconds(900)
            let client = try await VigilClient.connect(configuration)
            #expect(try await client.health().status == .serving)
            await client.close()
        }
    }

    @Test("a server that accepts the connection but never answers HELLO fails the connect with UNAVAILABLE after the timeout")
    func silentServer() async throws {
        // A listening socket nobody accepts from: the kernel completes the
        // TCP handshake, and nothing ever answers.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(listener, 8) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))
        configuration.connectTimeout = .milliseconds(300)
        let started = ContinuousClock.now
        do {
            _ = try await VigilClient.connect(configuration)
            Issue.record("connected to a server that never answered")
        } catch let error as VigilError {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.message.contains("no answer to HELLO"), "\(error.message)")
        }
        // The bound of the wait, not its timing: without the timeout the connect never returns.
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test("timeouts too long to count in nanoseconds are taken as none, not a crash")
    func hugeTimeouts() async throws {
        var policy = ReconnectPolicy()
        policy.initialDelay = .seconds(Int64.max / 2)
        policy.maxDelay = .seconds(Int64.max / 2)
        var generator = SystemRandomNumberGenerator()
        #expect(policy.delay(afterFailures: 3, using: &generator) > .seconds(3_600))
        try await withTestServer { server in
            let client = try await server.connect()
            #expect(try await client.health(timeout: .seconds(Int64.max)).status == .serving)
            await client.close()
        }
    }
}
