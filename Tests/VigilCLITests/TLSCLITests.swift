import Foundation
import Testing

/// `vigil serve` with TLS flags and client commands with theirs, as real processes.
@Suite("vigil serve and client commands over TLS (CLITests)", .serialized)
struct TLSCLITests {
    /// The certificates the server tests use (`VigilServerTests/Fixtures/make-test-certs.sh`).
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("VigilServerTests/Fixtures/tls").path

    static func fixture(_ name: String) -> String { "\(fixtures)/\(name)" }

    static let serverTLS = ["--tls-cert", fixture("server.pem"), "--tls-key", fixture("server-key.pem")]

    let event = """
        {"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u-42","type":"USER"},"action":"user.create","outcome":"SUCCESS"}
        """

    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-tls-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("serve --tls-cert --tls-key; ingest and query --tls-ca; a plain client is told the port speaks TLS")
    func tlsRoundTrip() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var server = try ServerProcess(dataDir: directory + "/data", extraArguments: Self.serverTLS)

        let ingest = try VigilBinary.run(["ingest", "--server", server.address, "--tls-ca", Self.fixture("ca.pem"), "-"], input: event)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stderr.contains("ingested 1 event"), "\(ingest.stderr)")

        let query = try VigilBinary.run(["query", "--server", server.address, "--tls-ca", Self.fixture("ca.pem"), "--format", "json"])
        #expect(query.status == 0, "\(query.stderr)")
        #expect(query.stdout.contains("\"user.create\""), "\(query.stdout)")

        // By name: localhost is in the certificate.
        let byName = try VigilBinary.run(["count", "--server", "localhost:\(server.port)", "--tls-ca", Self.fixture("ca.pem")])
        #expect(byName.status == 0, "\(byName.stderr)")

        let plain = try VigilBinary.run(["query", "--server", server.address])
        #expect(plain.status != 0)
        #expect(plain.stderr.contains("over TLS") && plain.stderr.contains("--tls"), "\(plain.stderr)")

        let untrusted = try VigilBinary.run(["query", "--server", server.address, "--tls"])
        #expect(untrusted.status != 0)
        #expect(untrusted.stderr.contains("not trusted"), "\(untrusted.stderr)")

        // From the environment.
        let fromEnvironment = try runVigil(["query", "--server", server.address], environment: ["VIGIL_TLS_CA": Self.fixture("ca.pem")])
        #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")

        let (status, log) = server.stop()
        #expect(status == 0, "\(log)")
        #expect(log.contains("refused a plain-text client on the TLS port"), "\(log)")
        server = try ServerProcess(dataDir: directory + "/data2")
        let tlsOnPlain = try VigilBinary.run(["query", "--server", server.address, "--tls-ca", Self.fixture("ca.pem")])
        #expect(tlsOnPlain.status != 0)
        #expect(tlsOnPlain.stderr.contains("does not speak TLS on this port"), "\(tlsOnPlain.stderr)")
        _ = server.stop()
    }

    @Test("serve --tls-client-ca: a client with a certificate from that CA gets in, others are refused")
    func mutualTLS() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(
            dataDir: directory + "/data", extraArguments: Self.serverTLS + ["--tls-client-ca", Self.fixture("ca.pem")])
        let common = ["--server", server.address, "--tls-ca", Self.fixture("ca.pem")]

        let ingest = try VigilBinary.run(
            ["ingest"] + common + ["--tls-cert", Self.fixture("client.pem"), "--tls-key", Self.fixture("client-key.pem"), "-"], input: event)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let get = try VigilBinary.run(
            ["query"] + common + ["--tls-cert", Self.fixture("client.pem"), "--tls-key", Self.fixture("client-key.pem"), "--format", "json"])
        #expect(get.status == 0, "\(get.stderr)")
        #expect(get.stdout.contains("\"user.create\""))

        let without = try VigilBinary.run(["query"] + common)
        #expect(without.status != 0)
        #expect(without.stderr.contains("requires a client certificate"), "\(without.stderr)")

        let wrongCA = try VigilBinary.run(
            ["query"] + common + ["--tls-cert", Self.fixture("other-client.pem"), "--tls-key", Self.fixture("other-client-key.pem")])
        #expect(wrongCA.status != 0)
        #expect(wrongCA.stderr.contains("refused this client's TLS certificate"), "\(wrongCA.stderr)")
        let (status, log) = server.stop()
        #expect(status == 0, "\(log)")
        #expect(log.contains("TLS handshake failed"), "the refused certificates are logged: \(log)")
    }

    /// Each bad TLS file makes `vigil serve` exit at once, naming the flag and the problem.
    @Test("serve refuses bad TLS files before it opens anything", arguments: [
        (["--tls-cert", "MISSING", "--tls-key", "server-key.pem"], "--tls-cert", "does not exist"),
        (["--tls-cert", "server.pem", "--tls-key", "MISSING"], "--tls-key", "does not exist"),
        (["--tls-cert", "DIRECTORY", "--tls-key", "server-key.pem"], "--tls-cert", "cannot be read"),
        (["--tls-cert", "TEXT", "--tls-key", "server-key.pem"], "--tls-cert", "is not a PEM file"),
        (["--tls-cert", "server.pem", "--tls-key", "TEXT"], "--tls-key", "is not a PEM file"),
        (["--tls-cert", "server-key.pem", "--tls-key", "server-key.pem"], "--tls-cert", "not a certificate"),
        (["--tls-cert", "server.pem", "--tls-key", "server.pem"], "--tls-key", "not a private key"),
        (["--tls-cert", "server.pem", "--tls-key", "client-key.pem"], "--tls-key", "does not match the certificate"),
        (["--tls-cert", "server.pem"], "--tls-cert", "needs --tls-key"),
        (["--tls-key", "server-key.pem"], "--tls-key", "needs --tls-cert"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca", "needs --tls-cert"),
        (["--tls-cert", "server.pem", "--tls-key", "server-key.pem", "--tls-client-ca", "MISSING"], "--tls-client-ca", "does not exist"),
    ])
    func badServerFiles(arguments: [String], flag: String, problem: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "not a certificate\n".write(toFile: directory + "/text.pem", atomically: true, encoding: .utf8)
        let resolved = arguments.map { argument -> String in
            switch argument {
            case "MISSING": directory + "/missing.pem"
            case "DIRECTORY": directory
            case "TEXT": directory + "/text.pem"
            case let name where name.hasSuffix(".pem"): Self.fixture(name)
            default: argument
            }
        }
        let dataDir = directory + "/data"
        let result = try VigilBinary.run(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir] + resolved)
        #expect(result.status != 0)
        #expect(result.stderr.contains(flag) && result.stderr.contains(problem), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dataDir), "nothing is opened before the flags are checked")
    }

    @Test("client commands refuse bad TLS files, naming the flag")
    func badClientFiles() throws {
        let missing = "/nonexistent/ca.pem"
        let query = try VigilBinary.run(["query", "--server", "127.0.0.1:1", "--tls-ca", missing])
        #expect(query.status != 0)
        #expect(query.stderr.contains("--tls-ca '\(missing)' does not exist"), "\(query.stderr)")

        let tail = try VigilBinary.run(["tail", "--server", "127.0.0.1:1", "--tls-cert", Self.fixture("client.pem")])
        #expect(tail.status != 0)
        #expect(tail.stderr.contains("--tls-cert needs --tls-key"), "\(tail.stderr)")

        let mismatch = try VigilBinary.run([
            "ingest", "--server", "127.0.0.1:1", "--tls-cert", Self.fixture("client.pem"), "--tls-key", Self.fixture("server-key.pem"), "-",
        ], input: "")
        #expect(mismatch.status != 0)
        #expect(mismatch.stderr.contains("does not match the certificate"), "\(mismatch.stderr)")

        let fromEnvironment = try runVigil(["count", "--server", "127.0.0.1:1"], environment: ["VIGIL_TLS_CA": missing])
        #expect(fromEnvironment.status != 0)
        #expect(fromEnvironment.stderr.contains("$VIGIL_TLS_CA '\(missing)' does not exist"), "\(fromEnvironment.stderr)")
    }

    @Test("serve --help explains the TLS flags with an example")
    func serveHelp() throws {
        let help = try VigilBinary.run(["serve", "--help"])
        for text in ["--tls-cert", "--tls-key", "--tls-client-ca", "vigil serve --listen 0.0.0.0:7700 --tls-cert server.pem", "--tls-client-ca clients-ca.pem"] {
            #expect(help.stdout.contains(text), "\(text) in \(help.stdout)")
        }
        let client = try VigilBinary.run(["query", "--help"])
        for text in ["--tls ", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"] {
            #expect(client.stdout.contains(text), "\(text) in \(client.stdout)")
        }
    }

    /// `vigil ARGS` with extra environment variables; no standard input.
    func runVigil(_ arguments: [String], environment: [String: String]) throws -> VigilBinary.Output {
        let process = Process()
        process.executableURL = VigilBinary.url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let errData = ReadAll(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return VigilBinary.Output(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.wait(), as: UTF8.self))
    }
}
