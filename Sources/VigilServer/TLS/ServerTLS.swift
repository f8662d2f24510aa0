import Foundation
import Logging
import NIOCore
import NIOSSL
import VigilCore
import VigilWire

/// TLS on the protocol port: the server's certificate and key and, for
/// mutual TLS, the certificate authorities a client's certificate must chain
/// to. The TLS context is built once, here, so a key that does not match its
/// certificate is refused before the server starts.
public struct ServerTLS: Sendable {
    /// True when every client must present a certificate signed by one of
    /// `clientCertificateAuthorities` (mutual TLS).
    public let requiresClientCertificate: Bool
    let context: NIOSSLContext

    /// Why a TLS setting cannot be used.
    public enum SetupError: Error, Sendable, Hashable, CustomStringConvertible {
        case emptyCertificateChain
        case keyDoesNotMatchCertificate
        case noClientCertificateAuthorities
        /// The server's certificate is outside its validity period at
        /// start: every client that checks it would refuse the handshake.
        case certificateExpired(notValidAfter: Int64)
        case certificateNotYetValid(notValidBefore: Int64)
        case other(String)

        public var description: String {
            switch self {
            case .emptyCertificateChain: "the certificate chain is empty"
            case .keyDoesNotMatchCertificate: "the private key does not match the certificate"
            case .noClientCertificateAuthorities: "mutual TLS needs at least one client CA certificate"
            case .certificateExpired(let end):
                "the certificate expired on \(Self.date(end)); every client that checks it would refuse to connect: renew it"
            case .certificateNotYetValid(let start):
                "the certificate is valid only from \(Self.date(start)); check the host's clock or the certificate"
            case .other(let text): text
            }
        }

        private static func date(_ seconds: Int64) -> String {
            Date(timeIntervalSince1970: TimeInterval(seconds)).ISO8601Format()
        }
    }

    /// - Parameters:
    ///   - certificateChain: the server's certificate first, then any intermediates.
    ///   - privateKey: the key of the first certificate.
    ///   - clientCertificateAuthorities: for mutual TLS, the CAs whose client
    ///     certificates are accepted; every client must then present one. nil: no
    ///     client certificates are asked for.
    public init(
        certificateChain: [NIOSSLCertificate],
        privateKey: NIOSSLPrivateKey,
        clientCertificateAuthorities: [NIOSSLCertificate]? = nil
    ) throws(SetupError) {
        guard !certificateChain.isEmpty else { throw .emptyCertificateChain }
        let now = Int64(currentUnixNanos() / 1_000_000_000)
        let leaf = certificateChain[0]
        guard Int64(leaf.notValidAfter) >= now else { throw .certificateExpired(notValidAfter: Int64(leaf.notValidAfter)) }
        guard Int64(leaf.notValidBefore) <= now else { throw .certificateNotYetValid(notValidBefore: Int64(leaf.notValidBefore)) }
        var configuration: TLSConfiguration
        if let authorities = clientCertificateAuthorities {
            guard !authorities.isEmpty else { throw .noClientCertificateAuthorities }
            // The client's chain is checked against these CAs only; a client has
            // no host name to check.
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: certificateChain.map { .certificate($0) },
                privateKey: .privateKey(privateKey),
                trustRoots: .certificates(authorities))
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration = .makeServerConfiguration(
                certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        }
        configuration.minimumTLSVersion = .tlsv12
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // The key was parsed already: BoringSSL refuses it only when it is not the certificate's.
            throw .keyDoesNotMatchCertificate
        } catch {
            throw .other("cannot set up TLS: \(error)")
        }
        requiresClientCertificate = clientCertificateAuthorities != nil
    }

    /// Adds TLS to the front of a new connection's pipeline.
    func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, logger: Logger) throws {
        try pipeline.addHandler(PlaintextOnTLSPortHandler(logger: logger))
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
        try pipeline.addHandler(TLSHandshakeLogger(logger: logger, requiresClientCertificate: requiresClientCertificate))
    }
}

/// First in a TLS port's pipeline: lets a TLS handshake through to the TLS
/// handler and removes itself; answers a plain-text Vigil client with its
/// preface and a GOAWAY that says this port speaks TLS (so the client reports
/// that, instead of a bare hang-up), an HTTP request with a 400 that says the
/// same, and closes anything else.
final class PlaintextOnTLSPortHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let refusal = "this port speaks the Vigil protocol over TLS: connect with TLS (vigil: --tls, or --tls-ca FILE for a private CA)"

    static let httpRefusal: String = {
        let body = "This port speaks the Vigil audit-log protocol over TLS (a binary protocol), not HTTP. Use a Vigil client with TLS, for example `vigil query --server HOST:PORT --tls`.\n"
        return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }()

    private var buffered: ByteBuffer?
    private var refused = false
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var bytes = unwrapInboundIn(data)
        if buffered == nil {
            buffered = bytes
        } else {
            buffered!.writeBuffer(&bytes)
        }
        let buffer = buffered!
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        // Content type 22: a TLS handshake record, the ClientHello.
        if first == 0x16 {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(buffer))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        guard let start = buffer.getBytes(at: buffer.readerIndex, length: Preface.size) else { return }
        refused = true
        buffered = nil
        var answer = context.channel.allocator.buffer(capacity: 256)
        switch Preface.classify(start) {
        case .vigil:
            logger.info("refused a plain-text client on the TLS port")
            Preface.current.write(to: &answer)
            Frame.goAway(lastStreamID: 0, code: .failedPrecondition, message: Self.refusal).write(to: &answer)
        case .http:
            logger.info("refused a plain-text HTTP request on the TLS port")
            answer.writeString(Self.httpRefusal)
        case .tls, .garbage:
            logger.debug("closing a connection that speaks neither TLS nor the protocol on the TLS port")
            context.close(promise: nil)
            return
        }
        // Then only the sending side is closed: the client reads the answer and
        // hangs up. A full close with its HELLO unread would reset the connection
        // and could lose the answer; the handshake timeout cuts a client that stays.
        context.writeAndFlush(wrapOutboundOut(answer)).assumeIsolated().whenComplete { result in
            switch result {
            case .success: context.close(mode: .output, promise: nil)
            case .failure: context.close(promise: nil)
            }
        }
    }
}

/// After the TLS handler: logs failed handshakes (a refused client
/// certificate, a client that does not trust the server's) and, at debug, the
/// verified client certificate's subject.
final class TLSHandshakeLogger: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let logger: Logger
    private let requiresClientCertificate: Bool
    private var handshakeCompleted = false

    init(logger: Logger, requiresClientCertificate: Bool) {
        self.logger = logger
        self.requiresClientCertificate = requiresClientCertificate
    }

    /// Decrypted bytes arrive only once the handshake is complete.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !handshakeCompleted {
            handshakeCompleted = true
            if requiresClientCertificate,
               let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
               let certificate = handler.peerCertificate {
                logger.debug("TLS client certificate verified", metadata: ["vigil.tls.client": "\(certificate.subjectText)"])
            }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeCompleted, case NIOSSLError.handshakeFailed(let reason) = error {
            if case .sslError(let stack) = reason, stack == [.eofDuringHandshake] {
                // A port check, or a client that gave up: nothing an operator must act on.
                logger.debug("the client hung up during the TLS handshake")
            } else {
                logger.info("TLS handshake failed", metadata: ["vigil.reason": "\(Self.explain(reason))"])
            }
        }
        context.fireErrorCaught(error)
    }

    /// What a handshake failure means, from BoringSSL's reason names
    /// (`error:…:SSL routines:OPENSSL_internal:NAME at file:line`).
    static func explain(_ error: BoringSSLError) -> String {
        let text = "\(error)"
        let names = text.split(separator: "OPENSSL_internal:").dropFirst().map { $0.prefix { $0 != " " && $0 != "]" } }
        let name = names.first.map(String.init) ?? text
        let meaning: String? = switch name {
        case "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client presented no certificate (mutual TLS requires one)"
        case "CERTIFICATE_VERIFY_FAILED": "the client's certificate is not signed by a --tls-client-ca CA, or has expired"
        case "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN":
            "the client does not trust this server's certificate"
        case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNSUPPORTED_PROTOCOL":
            "the client does not speak a TLS version this server accepts (1.2 or 1.3)"
        case "NO_SHARED_CIPHER", "NO_SHARED_GROUP": "the client shares no cipher or group with this server"
        default: nil
        }
        return meaning.map { "\($0) (\(name))" } ?? name
    }
}

extension NIOSSLCertificate {
    /// The subject as `CN=…, O=…`.
    var subjectText: String {
        subjectName.map { name in
            let key: String = switch name.type {
            case .commonName: "CN"
            case .organization: "O"
            case .organizationalUnit: "OU"
            case .country: "C"
            case .state: "ST"
            case .city: "L"
            case .emailAddress: "emailAddress"
            case .userId: "UID"
            default: "?"
            }
            return "\(key)=\(name.value)"
        }.joined(separator: ", ")
    }
}
