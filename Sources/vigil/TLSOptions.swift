import ArgumentParser
import Foundation
import NIOSSL
import VigilClient
import VigilCore
import VigilServer

/// `vigil serve`'s TLS flags.
struct ServerTLSOptions: ParsableArguments {
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp(
        "Serve TLS with this certificate (PEM; the server's certificate first, then any intermediates). Needs --tls-key.",
        valueName: "file"))
    var certificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The private key of --tls-cert (PEM, unencrypted).", valueName: "file"))
    var key: String?

    @Option(name: .customLong("tls-client-ca"), help: ArgumentHelp(
        "Mutual TLS: every client must present a certificate signed by a CA in this file (PEM). Needs --tls-cert.",
        valueName: "file"))
    var clientCA: String?

    /// The server's TLS, loaded and checked; nil without --tls-cert. Every
    /// problem names the flag and the file.
    func serverTLS() throws -> ServerTLS? {
        guard let certificate else {
            if key != nil { throw ValidationError("--tls-key needs --tls-cert (the certificate it belongs to)") }
            if clientCA != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)") }
            return nil
        }
        guard let key else { throw ValidationError("--tls-cert needs --tls-key (the certificate's private key)") }
        let chain = try load("--tls-cert") { () throws(PEMFile.LoadError) in try PEMFile.certificates(at: certificate) }
        let privateKey = try load("--tls-key") { () throws(PEMFile.LoadError) in try PEMFile.privateKey(at: key) }
        let authorities = try clientCA.map { path in
            try load("--tls-client-ca") { () throws(PEMFile.LoadError) in try PEMFile.certificates(at: path) }
        }
        do {
            return try ServerTLS(certificateChain: chain, privateKey: privateKey, clientCertificateAuthorities: authorities)
        } catch .keyDoesNotMatchCertificate {
            throw ValidationError("--tls-key '\(key)' does not match the certificate in --tls-cert '\(certificate)'")
        } catch {
            throw ValidationError("--tls-cert/--tls-key: \(error)")
        }
    }
}

/// The TLS flags every client command shares.
struct ClientTLSOptions: ParsableArguments {
    @Flag(name: .customLong("tls"), help: "Connect with TLS, trusting the system's certificate authorities (the other --tls flags imply it).")
    var enabled = false

    @Option(name: .customLong("tls-ca"), help: ArgumentHelp(
        "Trust the CA certificates in this file (PEM) for the server's certificate, instead of the system's (default: $VIGIL_TLS_CA).",
        valueName: "file"))
    var ca: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp(
        "Mutual TLS: present this client certificate (PEM); needs --tls-key (default: $VIGIL_TLS_CERT).", valueName: "file"))
    var certificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp(
        "The private key of --tls-cert (PEM, unencrypted; default: $VIGIL_TLS_KEY).", valueName: "file"))
    var key: String?

    @Option(name: .customLong("tls-server-name"), help: ArgumentHelp(
        "The name the server's certificate must carry, when it is not the host of --server (default: $VIGIL_TLS_SERVER_NAME).",
        valueName: "name"))
    var serverName: String?

    /// --tls-cert without --tls-key (or the other way round) is a mistake on the command line.
    func validate() throws {
        let certificate = setting(certificate, flag: "--tls-cert", variable: "VIGIL_TLS_CERT")
        let key = setting(key, flag: "--tls-key", variable: "VIGIL_TLS_KEY")
        if let certificate, key == nil { throw ValidationError("\(certificate.source) needs --tls-key (the certificate's private key)") }
        if let key, certificate == nil { throw ValidationError("\(key.source) needs --tls-cert (the certificate it belongs to)") }
    }

    /// The client's TLS, or nil for plain TCP. Flags win over the environment.
    func clientTLS() throws -> VigilClient.TLS? {
        let ca = setting(ca, flag: "--tls-ca", variable: "VIGIL_TLS_CA")
        let certificate = setting(certificate, flag: "--tls-cert", variable: "VIGIL_TLS_CERT")
        let key = setting(key, flag: "--tls-key", variable: "VIGIL_TLS_KEY")
        let serverName = setting(serverName, flag: "--tls-server-name", variable: "VIGIL_TLS_SERVER_NAME")
        guard enabled || ca != nil || certificate != nil || key != nil || serverName != nil else { return nil }
        if let certificate, key == nil { throw ValidationError("\(certificate.source) needs --tls-key (the certificate's private key)") }
        if let key, certificate == nil { throw ValidationError("\(key.source) needs --tls-cert (the certificate it belongs to)") }

        let roots: VigilClient.TLS.TrustRoots = try ca.map { ca in
            .certificates(try loadInput(ca) { () throws(PEMFile.LoadError) in try PEMFile.certificates(at: ca.value) })
        } ?? .system
        var chain: [NIOSSLCertificate] = []
        var privateKey: NIOSSLPrivateKey?
        if let certificate, let key {
            chain = try loadInput(certificate) { () throws(PEMFile.LoadError) in try PEMFile.certificates(at: certificate.value) }
            privateKey = try loadInput(key) { () throws(PEMFile.LoadError) in try PEMFile.privateKey(at: key.value) }
        }
        do {
            return try VigilClient.TLS(trustRoots: roots, serverName: serverName?.value, certificateChain: chain, privateKey: privateKey)
        } catch {
            if let certificate, let key {
                throw CLIFailure.runtime("\(key.source) '\(key.value)' does not match the certificate in \(certificate.source) '\(certificate.value)' (\(error.message))")
            }
            throw CLIError(error)
        }
    }

    /// A value and where it came from, for messages.
    struct Setting {
        var value: String
        var source: String
    }

    private func setting(_ flag: String?, flag name: String, variable: String) -> Setting? {
        if let flag { return Setting(value: flag, source: name) }
        if let value = environment(variable), !value.isEmpty { return Setting(value: value, source: "$\(variable)") }
        return nil
    }
}

/// Loads a client's PEM file; a problem names the flag (or variable) and the
/// file: 66 (EX_NOINPUT) when it cannot be read, 1 when it is not what it should be.
private func loadInput<T>(_ setting: ClientTLSOptions.Setting, _ body: () throws(PEMFile.LoadError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        let readable = FileManager.default.isReadableFile(atPath: setting.value)
        throw readable ? CLIFailure.runtime("\(setting.source) \(error)") : CLIFailure.noInput("\(setting.source) \(error)")
    }
}

/// Loads a PEM file for a flag; a problem names the flag and the file.
private func load<T>(_ flag: String, _ body: () throws(PEMFile.LoadError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw ValidationError("\(flag) \(error)")
    }
}
