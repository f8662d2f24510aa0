import Foundation
import Testing

/// Exit statuses: 64 (and the command's usage) only for mistakes on the
/// command line; 1, 66 and 78 for work that failed, without a usage dump.
@Suite("exit statuses: 1 failures, 64 usage, 66 unreadable input, 78 configuration")
struct ExitCodeTests {
    static func expect(
        _ result: VigilBinary.Output, status: Int32, _ message: String, usage: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.status == status, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains("Usage:") == usage, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Usage: vigil <subcommand>"), "never the root command's usage: \(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test("client commands: a missing input file 66, an unwritable export 1, a bad --tls-ca 1 or 66, a bad --server 64")
    func clientFailures() throws {
        let directory = try ConfigFileTests.temporaryDirectory("exit-codes")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let down = ["--server", "127.0.0.1:1"]
        Self.expect(try VigilBinary.run(["ingest", directory + "/none.jsonl"] + down), status: 66,
                    "Error: cannot open '\(directory)/none.jsonl': No such file or directory")
        Self.expect(try VigilBinary.run(["export", "-o", directory + "/missing/x.csv"] + down), status: 1,
                    "Error: cannot open '\(directory)/missing/x.csv' for writing: No such file or directory")
        try "not a certificate\n".write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        Self.expect(try VigilBinary.run(["query", "--tls-ca", directory + "/ca.pem"] + down), status: 1, "Error: --tls-ca ")
        Self.expect(try VigilBinary.run(["query", "--tls-ca", directory + "/no-ca.pem"] + down), status: 66, "Error: --tls-ca ")
        Self.expect(try VigilBinary.run(["query", "--server", "127.0.0.1:99999"]), status: 64,
                    "Error: --server '127.0.0.1:99999' is not HOST:PORT", usage: true)
        Self.expect(try VigilBinary.run(["retention", "2x"] + down), status: 64, "'2x' is not a duration", usage: true)
        Self.expect(try VigilBinary.run(["backup", "/tmp/b", "--checkpoint-dir", directory] + down), status: 64,
                    "--checkpoint-dir is for --data-dir", usage: true)
    }

    @Test("vigil ingest: a line that is not an event exits 1 without a usage line")
    func ingestBadLine() throws {
        let directory = try ConfigFileTests.temporaryDirectory("exit-codes-ingest")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let input = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u"},"action":"a.b"}"# + "\n{\"occurredAt\": bad}\n"
        let result = try VigilBinary.run(["ingest", "-", "--server", server.address], input: input)
        Self.expect(result, status: 1, "line 2: not an event")
    }

    @Test("vigil serve: files named by flag or by the configuration that cannot be used exit 78, the file's with their keys")
    func serveConfigurationFailures() throws {
        let directory = try ConfigFileTests.temporaryDirectory("exit-codes-serve")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.toml"
        try """
            listen = "127.0.0.1:0"
            data-dir = "\(directory)/data"
            tls-cert = "/nonexistent.pem"
            tls-key = "/nonexistent-key.pem"
            rules = "\(directory)/no-rules.json"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let fromFile = try VigilBinary.run(["serve", "--config", config])
        Self.expect(fromFile, status: 78, "\(config) has 2 problems")
        #expect(fromFile.stderr.contains("tls-cert '/nonexistent.pem'"), "\(fromFile.stderr)")
        #expect(fromFile.stderr.contains("rules: \(directory)/no-rules.json"), "\(fromFile.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/data"), "nothing was opened")

        let base = ["serve", "--listen", "127.0.0.1:0", "--data-dir", directory + "/data"]
        Self.expect(try VigilBinary.run(base + ["--rules", directory + "/no-rules.json"]), status: 78, "Error: --rules: ")
        Self.expect(try VigilBinary.run(base + ["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem"]), status: 78,
                    "Error: --tls-cert '/nonexistent.pem'")
        let empty = directory + "/empty.token"
        #expect(FileManager.default.createFile(atPath: empty, contents: Data(), attributes: [.posixPermissions: 0o600]))
        Self.expect(try VigilBinary.run(base + ["--admin-token-file", empty]), status: 78, "Error: --admin-token-file \(empty): ")
    }
}
