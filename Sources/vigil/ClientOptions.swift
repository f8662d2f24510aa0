import ArgumentParser
import VigilClient
import VigilCore

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The server, HOST:PORT.", valueName: "host:port"))
    var server = "127.0.0.1:7700"

    @Option(name: .long, help: ArgumentHelp("API token (default: $VIGIL_TOKEN).", valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Seconds each call may take before it fails with DEADLINE_EXCEEDED.", valueName: "seconds"))
    var timeout = 60

    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    /// A bad --server is a mistake on the command line (64), not a server's answer.
    func validate() throws {
        do {
            _ = try VigilClient.Configuration(server: server)
        } catch {
            throw ValidationError("--server '\(server)' is not HOST:PORT, for example 127.0.0.1:7700 or [::1]:7700")
        }
    }

    /// Connects; `maxFrameSize` (when given) is the largest frame the server
    /// may send, which also caps the bytes of one query page.
    func connect(maxFrameSize: Int? = nil) async throws -> VigilClient {
        var configuration = try VigilClient.Configuration(server: server)
        if let maxFrameSize { configuration.maxFrameSize = maxFrameSize }
        configuration.token = token ?? environment("VIGIL_TOKEN") ?? ""
        configuration.clientName = "vigil-cli"
        configuration.tls = try tls.clientTLS()
        return try await VigilClient.connect(configuration)
    }

    var callTimeout: Duration { .seconds(timeout) }

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
