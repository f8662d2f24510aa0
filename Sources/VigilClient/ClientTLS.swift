import NIOCore
import NIOSSL
import VigilCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension VigilClient {
    /// TLS for a client connection: whom to trust, which name the server's
    /// certificate must carry, and (for mutual TLS) this client's certificate.
    /// The TLS context is built once, here, and shared by every connection
    /// made with it.
    public struct TLS: Sendable {
        /// The certificate authorities the server's certificate must chain to.
        public enum TrustRoots: Sendable {
            /// The operating system's trust store.
            case system
            /// These certificates only (a private CA).
            case certificates([NIOSSLCertificate])
        }

        /// The name the server's certificate must carry, also sent as SNI; nil:
        /// the host connected to. An IP address is checked against the
        /// certificate's IP address entries and not sent as SNI.
        public let serverName: String?
        /// True when this client presents a certificate (mutual TLS).
        public let presentsCertificate: Bool
        let context: NIOSSLContext

        /// - Parameters:
        ///   - trustRoots: whom to trust for the server's certificate.
        ///   - serverName: the name to verify (and send as SNI) instead of the host.
        ///   - certificateChain: this client's certificate (then its intermediates), for
        ///     a server that requires client certificates; empty for none.
        ///   - privateKey: the key of `certificateChain`'s first certificate.
        public init(
            trustRoots: TrustRoots = .system,
            serverName: String? = nil,
            certificateChain: [NIOSSLCertificate] = [],
            privateKey: NIOSSLPrivateKey? = nil
        ) throws(VigilError) {
            guard certificateChain.isEmpty == (privateKey == nil) else {
                throw VigilError(.invalidArgument, "a client certificate needs its private key, and a private key its certificate")
            }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.certificateVerification = .fullVerification
            switch trustRoots {
            case .system: configuration.trustRoots = .default
            case .certificates(let certificates): configuration.trustRoots = .certificates(certificates)
            }
            configuration.certificateChain = certificateChain.map { .certificate($0) }
            configuration.privateKey = privateKey.map { .privateKey($0) }
            do {
                context = try NIOSSLContext(configuration: configuration)
            } catch {
                throw VigilError(.invalidArgument, certificateChain.isEmpty
                    ? "cannot set up TLS: \(error)"
                    : "cannot set up TLS: the client private key does not match the client certificate (\(error))")
            }
            self.serverName = serverName
            self.presentsCertificate = !certificateChain.isEmpty
        }

        /// TLS from PEM files, as `vigil`'s `--tls-ca`, `--tls-cert` and `--tls-key` give them.
        /// - Parameters:
        ///   - caFile: the CA certificates to trust; nil for the system's trust store.
        ///   - certificateFile: this client's certificate chain, for mutual TLS.
        ///   - keyFile: the private key of `certificateFile`.
        public init(
            caFile: String?, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil
        ) throws(VigilError) {
            guard (certificateFile == nil) == (keyFile == nil) else {
                throw VigilError(.invalidArgument, certificateFile == nil
                    ? "a client private key was given without its certificate"
                    : "a client certificate was given without its private key")
            }
            do {
                let roots: TrustRoots = try caFile.map { .certificates(try PEMFile.certificates(at: $0)) } ?? .system
                let chain = try certificateFile.map { try PEMFile.certificates(at: $0) } ?? []
                let key = try keyFile.map { try PEMFile.privateKey(at: $0) }
                try self.init(trustRoots: roots, serverName: serverName, certificateChain: chain, privateKey: key)
            } catch let error as PEMFile.LoadError {
                let role = error.path == caFile ? "CA file" : error.path == certificateFile ? "client certificate" : "client key"
                throw VigilError(.invalidArgument, "TLS \(role) \(error)")
            } catch let error as VigilError {
                throw error
            } catch {
                throw VigilError(.invalidArgument, "cannot set up TLS: \(error)")
            }
        }

        /// The handler that runs TLS on a new connection to `host`.
        func makeHandler(host: String) throws(VigilError) -> NIOSSLClientHandler {
            let name = serverName ?? host
            // SNI carries host names only: an address is verified against the
            // peer's address, which is the address connected to.
            let sniName = Self.isIPAddress(name) ? nil : name
            do {
                return try NIOSSLClientHandler(context: context, serverHostname: sniName)
            } catch {
                throw VigilError(.invalidArgument, "'\(name)' cannot be used as the TLS server name: \(error)")
            }
        }

        static func isIPAddress(_ text: String) -> Bool {
            var v4 = in_addr()
            var v6 = in6_addr()
            return text.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
        }
    }
}

/// Turns the errors TLS fails a connection with into what happened, in words
/// that say what to do.
enum ClientTLSFailure {
    /// A `VigilError` for a TLS error, or nil when `error` is not one.
    static func describe(_ error: any Error) -> VigilError? {
        switch error {
        case NIOSSLError.handshakeFailed(let reason):
            if case .sslError(let stack) = reason, stack == [.eofDuringHandshake] {
                // Not retried (as UNAVAILABLE would be): a new connection meets the same port.
                return VigilError(.failedPrecondition,
                    "the server does not speak TLS on this port (it hung up during the TLS handshake): connect without TLS, or to its TLS port")
            }
            return describeAlert(reason) ?? VigilError(.unavailable, "TLS handshake failed: \(reason)")
        case let error as BoringSSLError:
            return describeAlert(error) ?? VigilError(.unavailable, "TLS error: \(error)")
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            // FAILED_PRECONDITION, not UNAVAILABLE: a retry meets the same certificate.
            return VigilError(.failedPrecondition,
                "the server's TLS certificate is not valid for this name (\(error)); use --tls-server-name with a name the certificate carries")
        case let error as NIOSSLError:
            if case .uncleanShutdown = error {
                // The peer went away without a TLS close: as a plain connection's hang-up.
                return VigilError(.unavailable, "the connection to the server was closed")
            }
            return VigilError(.unavailable, "TLS error: \(error)")
        default:
            return nil
        }
    }

    /// The server's or this client's verdict on a certificate, from the
    /// BoringSSL error names.
    private static func describeAlert(_ error: BoringSSLError) -> VigilError? {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            // Not retried either: it takes a CA or a new certificate, not time.
            return VigilError(.failedPrecondition,
                "the server's TLS certificate is not trusted (not signed by a CA this client trusts, or expired): give the CA that signed it with --tls-ca")
        }
        if text.contains("ALERT_CERTIFICATE_REQUIRED") || text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return VigilError(.unauthenticated,
                "the server requires a client certificate (mutual TLS): give one with --tls-cert and --tls-key")
        }
        if text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_BAD_CERTIFICATE")
            || text.contains("ALERT_CERTIFICATE_UNKNOWN") || text.contains("ALERT_CERTIFICATE_EXPIRED")
            || text.contains("ALERT_UNSUPPORTED_CERTIFICATE") || text.contains("ALERT_ACCESS_DENIED") {
            return VigilError(.unauthenticated,
                "the server refused this client's TLS certificate: it is not signed by a CA the server trusts (--tls-client-ca), or has expired")
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("RECORD_TOO_LARGE") {
            return VigilError(.failedPrecondition, "the server does not speak TLS on this port: connect without TLS, or to its TLS port")
        }
        return nil
    }
}
