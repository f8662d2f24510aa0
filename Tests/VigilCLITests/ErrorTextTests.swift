import Foundation
import Testing

@Suite("connect, listen and ingest errors read as sentences")
struct ErrorTextTests {
    @Test("a refused connection and an unknown host are named as such, without NIO's error values")
    func connectErrors() throws {
        let refused = try VigilBinary.run(["query", "--server", "127.0.0.1:1"])
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr == "Error: UNAVAILABLE: connection refused: is `vigil serve` running at 127.0.0.1:1?\n", "\(refused.stderr)")
        let unknown = try VigilBinary.run(["query", "--server", "no-such-host.invalid:7700"])
        #expect(unknown.status == 1, "\(unknown.stderr)")
        #expect(unknown.stderr.contains("unknown host 'no-such-host.invalid'"), "\(unknown.stderr)")
        #expect(!unknown.stderr.contains("SocketAddressError") && !unknown.stderr.contains("NIOConnectionError"), "\(unknown.stderr)")
    }

    @Test("a scheme or an unbracketed IPv6 address in --server, --listen or --metrics-listen is a usage error saying how to write it")
    func addressForms() throws {
        let cases: [(arguments: [String], message: String)] = [
            (["query", "--server", "http://127.0.0.1:7700"], "--server 'http://127.0.0.1:7700' is HOST:PORT, without a scheme such as http://: for example 127.0.0.1:7700"),
            (["query", "--server", "::1:7700"], "--server '::1:7700': write an IPv6 address in brackets, [::1]:7700"),
            (["serve", "--listen", "::1:7700"], "--listen '::1:7700': write an IPv6 address in brackets, [::1]:7700"),
            (["serve", "--metrics-listen", "::1:7701"], "--metrics-listen '::1:7701': write an IPv6 address in brackets, [::1]:7701"),
            (["serve", "--metrics-listen", "http://127.0.0.1:7701"], "--metrics-listen 'http://127.0.0.1:7701' is HOST:PORT, without a scheme"),
        ]
        for (arguments, message) in cases {
            let result = try VigilBinary.run(arguments + (arguments[0] == "serve" ? ["--data-dir", "/nonexistent/never"] : []))
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    @Test("a port in use is said in a sentence naming ss, before the data directory is opened")
    func addressInUse() throws {
        let directory = try ConfigFileTests.temporaryDirectory("address-in-use")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/first")
        let second = try VigilBinary.run(["serve", "--no-auth", "--listen", server.address, "--data-dir", directory + "/second"])
        #expect(second.status == 1, "\(second.stderr)")
        #expect(second.stderr.contains(
            "Error: --listen \(server.address): address already in use: another process listens on \(server.address) (`ss -ltnp 'sport = :\(server.port)'` shows which)"),
            "\(second.stderr)")
        #expect(!second.stderr.contains("errno"), "\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/second"), "nothing was opened")
    }

    @Test("a bad ingest line: no Swift enum case names, and the unsent lines are named")
    func ingestBadLine() throws {
        let directory = try ConfigFileTests.temporaryDirectory("ingest-bad-line")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let good = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u"},"action":"a.b"}"#
        let input = [good, good, #"{"occurredAt": bad}"#, good].joined(separator: "\n") + "\n"
        let result = try VigilBinary.run(["ingest", "-", "--server", server.address], input: input)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(
            "line 3: not an event in protobuf JSON form (not valid JSON, or a field holds a value of the wrong kind); lines 1-3 and every line after were not sent"),
            "\(result.stderr)")
        #expect(!result.stderr.contains("malformed"), "\(result.stderr)")
        let unknown = try VigilBinary.run(["ingest", "-", "--server", server.address], input: #"{"occurredAt":"2026-11-20T10:15:00Z","colour":"red"}"# + "\n")
        #expect(unknown.stderr.contains("line 1: not an event in protobuf JSON form (unknown field 'colour'); line 1 and every line after were not sent"), "\(unknown.stderr)")
    }
}
