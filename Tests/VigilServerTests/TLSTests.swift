import Foundation
import NIOSSL
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilServer
import VigilWire

/// The committed certificates of `Fixtures/tls` (made by `Fixtures/make-test-certs.sh`).
enum TLSFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tls").path

    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    static func certificates(_ name: String) throws -> [NIOSSLCertificate] {
        try PEMFile.certificates(at: path("\(name).pem"))
    }

    static func key(_ name: String) throws -> NIOSSLPrivateKey {
        try PEMFile.privateKey(at: path("\(name)-key.pem"))
    }

    /// The server's TLS: the `localhost` certificate (or `certificate`); with `clientCA`, mutual TLS.
    static func server(certificate: String = "server", clientCA: String? = nil) throws -> ServerTLS {
        try ServerTLS(
            certificateChain: certificates(certificate), privateKey: key(certificate),
            clientCertificateAuthorities: clientCA.map(certificates))
    }

    /// A client's TLS trusting `ca`, presenting `client`'s certificate if given.
    static func client(ca: String = "ca", client: String? = nil, serverName: String? = nil) throws -> VigilClient.TLS {
        try VigilClient.TLS(
            trustRoots: .certificates(certificates(ca)), serverName: serverName,
            certificateChain: client.map(certificates) ?? [], privateKey: client.map(key))
    }
}

/// Connects with `tls` and expects the connection to be refused with a
/// `VigilError` whose message contains `words`: an answer, which a handshake
/// that timed out (60 s here) would not give.
private func expectRefused(
    port: Int, tls: VigilClient.TLS?, code: VigilError.Code, saying words: String,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    var configuration = VigilClient.Configuration(host: "127.0.0.1", port: port)
    configuration.tls = tls
    do {
        let client = try await VigilClient.connect(configuration)
        // With TLS 1.3 the client finishes its handshake before the server has
        // checked its certificate: the refusal may only reach the first call.
        _ = try await client.get(id: "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
        await client.close()
        Issue.record("the connection was not refused", sourceLocation: sourceLocation)
    } catch let error as VigilError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(words), "\(error)", sourceLocation: sourceLocation)
    }
}

@Suite("TLS and mutual TLS", .timeLimit(.minutes(2)))
struct TLSTests {
    /// Ingests two events and reads them back through `client`.
    private func roundTrip(_ client: VigilClient) async throws {
        let ack = try await client.ingest([makeEvent(action: "tls.one"), makeEvent(action: "tls.two")], idempotencyKey: "tls-batch")
        #expect(ack.count == 2)
        let events = try await collect(client, queryRequest { $0.filter.tenants = ["acme"] })
        #expect(Set(events.map(\.action)) == ["tls.one", "tls.two"])
        #expect(try await client.get(id: events[0].id).action == events[0].action)
    }

    @Test("TLS round trip: ingest, query and get through the Swift client")
    func tlsRoundTrip() async throws {
        let tls = try TLSFixtures.server()
        try await withTestServer(configure: { $0.tls = tls }) { server in
            var configuration = server.clientConfiguration
            configuration.tls = try TLSFixtures.client()
            let client = try await VigilClient.connect(configuration)
            try await roundTrip(client)
            await client.close()
        }
    }

    @Test("TLS by host name: the host connected to is the name verified and sent as SNI")
    func tlsByHostName() async throws {
        let tls = try TLSFixtures.server()
        try await withTestServer(configure: { $0.tls = tls }) { server in
            var configuration = VigilClient.Configuration(host: "localhost", port: server.port)
            configuration.tls = try TLSFixtures.client()
            let client = try await VigilClient.connect(configuration)
            #expect(try await client.ingest([makeEvent()]).count == 1)
            await client.close()
        }
    }

    @Test("mutual TLS round trip: a client certificate signed by the server's client CA")
    func mutualTLSRoundTrip() async throws {
        let tls = try TLSFixtures.server(clientCA: "ca")
        #expect(tls.requiresClientCertificate)
        try await withTestServer(configure: { $0.tls = tls }) { server in
            var configuration = server.clientConfiguration
            configuration.tls = try TLSFixtures.client(client: "client")
            let client = try await VigilClient.connect(configuration)
            try await roundTrip(client)
            await client.close()
        }
    }

    @Test("mutual TLS: a client certificate from the wrong CA is refused")
    func wrongCARefused() async throws {
        let tls = try TLSFixtures.server(clientCA: "ca")
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(client: "other-client"),
                code: .unauthenticated, saying: "refused this client's TLS certificate")
            // The server goes on serving good clients.
            var configuration = server.clientConfiguration
            configuration.tls = try TLSFixtures.client(client: "client")
            let client = try await VigilClient.connect(configuration)
            #expect(try await client.ingest([makeEvent()]).count == 1)
            await client.close()
        }
    }

    @Test("mutual TLS: a client without a certificate is refused")
    func noClientCertificateRefused() async throws {
        let tls = try TLSFixtures.server(clientCA: "ca")
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(),
                code: .unauthenticated, saying: "requires a client certificate")
        }
    }

    @Test("a server certificate from a CA the client does not trust is refused")
    func untrustedServerRefused() async throws {
        let tls = try TLSFixtures.server()
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(ca: "other-ca"),
                code: .failedPrecondition, saying: "certificate is not trusted")
        }
    }

    @Test("the server name: the certificate must carry it; serverName stands in for the host connected to")
    func serverName() async throws {
        // A certificate for vigil.test only, no address.
        let tls = try TLSFixtures.server(certificate: "named")
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(), code: .failedPrecondition, saying: "not valid for this name")
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(serverName: "other.test"), code: .failedPrecondition, saying: "not valid for this name")
            var configuration = server.clientConfiguration
            configuration.tls = try TLSFixtures.client(serverName: "vigil.test")
            let client = try await VigilClient.connect(configuration)
            #expect(try await client.ingest([makeEvent()]).count == 1)
            await client.close()
        }
    }

    @Test("a plain-text client on the TLS port fails at once, told that the port speaks TLS")
    func plainClientOnTLSPort() async throws {
        let tls = try TLSFixtures.server()
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(port: server.port, tls: nil, code: .failedPrecondition, saying: "over TLS: connect with TLS")
        }
    }

    @Test("on the TLS port, a plain Vigil preface gets the preface and GOAWAY FAILED_PRECONDITION, HTTP a 400, other bytes a bare close")
    func plainBytesOnTLSPort() async throws {
        let tls = try TLSFixtures.server()
        try await withTestServer(configure: { $0.tls = tls; $0.handshakeTimeout = .seconds(60) }) { server in
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array(Preface.current.bytes.readableBytesView))
                let reply = try await connection.readUntilClosed()
                try #require(reply.count > Preface.size)
                #expect(Array(reply.prefix(Preface.size)) == Array(Preface.current.bytes.readableBytesView))
                let (frames, leftover) = try ConnectionTests.frames(in: Array(reply.dropFirst(Preface.size)))
                #expect(leftover == 0)
                let goAway = try #require(frames.first)
                #expect(goAway.type == .goAway)
                let message = try goAway.decode(Vigil_V1_GoAway.self)
                #expect(message.code == StatusCode.failedPrecondition.rawValue)
                #expect(message.message.contains("TLS"))
            }
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                let reply = String(decoding: try await connection.readUntilClosed(), as: UTF8.self)
                #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(reply)")
                #expect(reply.contains("over TLS"), "\(reply)")
            }
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array(repeating: 0x42, count: 16))
                let reply = try await connection.readUntilClosed()
                #expect(reply.isEmpty)
            }
        }
    }

    @Test("a TLS client on a plain port fails at once, told that the server does not speak TLS there")
    func tlsClientOnPlainPort() async throws {
        try await withTestServer(configure: { $0.handshakeTimeout = .seconds(60) }) { server in
            try await expectRefused(
                port: server.port, tls: TLSFixtures.client(),
                code: .failedPrecondition, saying: "the server does not speak TLS on this port")
        }
    }

    @Test("a server certificate outside its validity period is refused when the TLS setting is made, naming the date")
    func certificateDates() throws {
        let expired = #expect(throws: ServerTLS.SetupError.self) {
            try ServerTLS(certificateChain: TLSFixtures.certificates("expired"), privateKey: TLSFixtures.key("expired"))
        }
        #expect(expired == .certificateExpired(notValidAfter: 1_580_515_200), "2020-02-01")
        #expect(expired?.description.contains("2020-02-01") == true, "\(String(describing: expired))")
        let future = #expect(throws: ServerTLS.SetupError.self) {
            try ServerTLS(certificateChain: TLSFixtures.certificates("future"), privateKey: TLSFixtures.key("future"))
        }
        #expect(future == .certificateNotYetValid(notValidBefore: 3_786_912_000), "2090-01-01")
        _ = try ServerTLS(certificateChain: TLSFixtures.certificates("server"), privateKey: TLSFixtures.key("server"))
    }

    @Test("a key that is not the certificate's is refused when the TLS setting is made")
    func mismatchedKey() throws {
        #expect(throws: ServerTLS.SetupError.keyDoesNotMatchCertificate) {
            try ServerTLS(certificateChain: TLSFixtures.certificates("server"), privateKey: TLSFixtures.key("client"))
        }
        #expect(throws: VigilError.self) {
            try VigilClient.TLS(
                trustRoots: .system, certificateChain: TLSFixtures.certificates("client"), privateKey: TLSFixtures.key("server"))
        }
    }

    @Test("PEM files: each problem is told apart")
    func pemProblems() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-pem-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "not a certificate\n".write(toFile: "\(directory)/text.pem", atomically: true, encoding: .utf8)
        let damaged = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
        try damaged.write(toFile: "\(directory)/damaged.pem", atomically: true, encoding: .utf8)

        func reason(_ body: () throws -> Void) -> PEMFile.LoadError.Reason? {
            do { try body() } catch { return (error as? PEMFile.LoadError)?.reason }
            return nil
        }
        #expect(reason { _ = try PEMFile.certificates(at: "\(directory)/missing.pem") } == .missing)
        if case .unreadable = reason({ _ = try PEMFile.certificates(at: directory) }) {} else {
            Issue.record("a directory is unreadable")
        }
        #expect(reason { _ = try PEMFile.certificates(at: "\(directory)/text.pem") } == .notPEM)
        #expect(reason { _ = try PEMFile.privateKey(at: "\(directory)/text.pem") } == .notPEM)
        if case .wrongContent = reason({ _ = try PEMFile.certificates(at: TLSFixtures.path("server-key.pem")) }) {} else {
            Issue.record("a key is not a certificate")
        }
        if case .wrongContent = reason({ _ = try PEMFile.privateKey(at: TLSFixtures.path("server.pem")) }) {} else {
            Issue.record("a certificate is not a key")
        }
        if case .invalid = reason({ _ = try PEMFile.certificates(at: "\(directory)/damaged.pem") }) {} else {
            Issue.record("a damaged certificate is invalid")
        }
        #expect(try PEMFile.certificates(at: TLSFixtures.path("server.pem")).count == 1)
    }
}
