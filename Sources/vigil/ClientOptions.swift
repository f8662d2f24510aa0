import ArgumentParser
import Foundation
import VigilClient
import VigilCore

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The server, HOST:PORT.", valueName: "host:port"))
    var server = "127.0.0.1:7700"

    @Option(name: .long, help: ArgumentHelp(
        "API token (default: $VIGIL_TOKEN). Visible to other users in `ps` and kept in shell history: prefer --token-file or $VIGIL_TOKEN.",
        valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp(
        "Read the API token from this file, mode 600 (default: $VIGIL_TOKEN_FILE); a trailing newline is ignored.", valueName: "file"))
    var tokenFile: String?

    @Option(name: .long, help: ArgumentHelp(
        "Seconds each call may take before it fails with DEADLINE_EXCEEDED (default: 60; export and backup: no limit unless given); it also bounds connecting and the handshake (default: 10).",
        valueName: "seconds"))
    var timeout: Int?

    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    /// A bad --server is a mistake on the command line (64), not a server's answer.
    func validate() throws {
        if token != nil && tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        if let timeout, !(1...86_400).contains(timeout) { throw ValidationError("--timeout must be 1 to 86400 seconds, not \(timeout)") }
        _ = try checkedHostPort(server, flag: "--server", example: "127.0.0.1:7700")
    }

    /// Connects; `maxFrameSize` (when given) is the largest frame the server
    /// may send, which also caps the bytes of one query page.
    func connect(maxFrameSize: Int? = nil) async throws -> VigilClient {
        var configuration = try clientConfiguration()
        if let maxFrameSize { configuration.maxFrameSize = maxFrameSize }
        return try await VigilClient.connect(configuration)
    }

    /// The client's configuration: server, token, TLS, and an explicit
    /// --timeout as the bound of connecting and the HELLO exchange too.
    func clientConfiguration() throws -> VigilClient.Configuration {
        var configuration = try VigilClient.Configuration(server: server)
        configuration.token = try resolvedToken()
        configuration.clientName = "vigil-cli"
        configuration.tls = try tls.clientTLS()
        if let timeout { configuration.connectTimeout = .seconds(timeout) }
        return configuration
    }

    /// Each call's deadline: --timeout, 60 s by default.
    var callTimeout: Duration { .seconds(timeout ?? 60) }

    /// The deadline of a call that may rightly run for hours (an export, a
    /// backup): none unless --timeout was given.
    var explicitTimeout: Duration? { timeout.map { .seconds($0) } }

    /// The token: --token, --token-file, $VIGIL_TOKEN, $VIGIL_TOKEN_FILE, the
    /// first that is set; "" for none.
    func resolvedToken() throws -> String {
        if let token { return token }
        if let tokenFile { return try Self.readToken(tokenFile, source: "--token-file") }
        if let token = environment("VIGIL_TOKEN"), !token.isEmpty { return token }
        if let path = environment("VIGIL_TOKEN_FILE"), !path.isEmpty { return try Self.readToken(path, source: "$VIGIL_TOKEN_FILE") }
        return ""
    }

    /// A token file's content without the trailing newline. One others may
    /// read is used, with a warning: refusing it would only send people back to --token.
    static func readToken(_ path: String, source: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read; check its permissions" : "does not exist"
            throw CLIFailure.noInput("\(source) \(path) \(reason)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw CLIFailure.noInput("\(source) \(path) is empty; it should hold the token") }
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
            printError("warning: \(source) \(path) may be read by group or others (mode \(String(status.st_mode & 0o777, radix: 8))); make it private: chmod 600 \(path)")
        }
        return token
    }

    /// Connects, runs `body`, closes; a `VigilError` becomes the CLI's error.
    func withClient<R>(maxFrameSize: Int? = nil, _ body: (VigilClient) async throws -> R) async throws -> R {
        let connection: VigilClient
        do {
            connection = try await connect(maxFrameSize: maxFrameSize)
        } catch let error as VigilError {
            throw CLIError(error)
        }
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch let error as VigilError {
            await connection.close()
            throw CLIError(error)
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// HOST:PORT for `flag`, or a `ValidationError` that says how to write it:
/// without a scheme, IPv6 in brackets.
func checkedHostPort(_ text: String, flag: String, example: String) throws -> (host: String, port: Int) {
    if let scheme = text.range(of: "://") {
        throw ValidationError("\(flag) '\(text)' is HOST:PORT, without a scheme such as \(text[..<scheme.upperBound]): for example \(example)")
    }
    // `::1:7701` would be read as a host without a port.
    if !text.hasPrefix("["), text.utf8.filter({ $0 == UInt8(ascii: ":") }).count > 1 {
        let lastColon = text.lastIndex(of: ":")!
        let port = text[text.index(after: lastColon)...]
        let suggestion = !port.isEmpty && port.allSatisfy(\.isNumber) ? "[\(text[..<lastColon])]:\(port)" : "[\(text)]:PORT"
        throw ValidationError("\(flag) '\(text)': write an IPv6 address in brackets, \(suggestion)")
    }
    guard let address = try? parseHostPort(text) else {
        throw ValidationError("\(flag) '\(text)' is not HOST:PORT, for example \(example) or [::1]:\(example.split(separator: ":").last ?? "7700")")
    }
    return address
}

func parseHostPort(_ text: String) throws -> (host: String, port: Int) {
    let configuration = try VigilClient.Configuration(server: text, allowPortZero: true)
    return (configuration.host, configuration.port)
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// Prints a line to standard error.
func printError(_ text: String) {
    writeStandardError(text + "\n")
}

/// Writes to file descriptor 2 directly (the C `stderr` global is not concurrency-safe).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
