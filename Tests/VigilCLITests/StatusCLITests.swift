import Foundation
import Testing

/// `vigil status` and `vigil serve --metrics-listen` with real processes.
@Suite("vigil status and the metrics listener, with real processes", .serialized)
struct StatusCLITests {
    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-status-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Polls until `body` returns a value (no sleeping as synchronization: a
    /// condition with a generous deadline).
    static func eventually<R>(timeout: Duration = .seconds(60), _ body: () throws -> R?) throws -> R {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let result = try body() { return result }
            guard ContinuousClock.now < deadline else { throw CLITestError("the condition did not hold within \(timeout)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    @Test("vigil status (text and JSON) against vigil serve with a token, checkpoints and --metrics-listen")
    func statusAgainstARealServer() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        let key = try VigilBinary.run(["keygen", "--out", directory + "/key"])
        #expect(key.status == 0, "\(key.stderr)")
        let server = try ServerProcess(
            dataDir: directory + "/data",
            extraArguments: [
                "--admin-token-file", tokenFile, "--metrics-listen", "127.0.0.1:0",
                "--checkpoint-key", directory + "/key", "--checkpoint-interval", "1s",
            ],
            authenticated: true)
        // Stopped at the end; a failure before that leaves it to `ServerProcess.deinit` (SIGKILL).
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let metricsPort = try #require(
            server.startupLog.range(of: "metrics on http://127.0.0.1:").map { Int(server.startupLog[$0.upperBound...].prefix { $0.isNumber }) } ?? nil,
            "the metrics address is logged before 'listening on': \(server.startupLog)")
        #expect(metricsPort != server.port)

        let events = (0..<3).map { index in
            #"{"occurredAt":"2026-11-20T10:1\#(index):00Z","tenant":"acme","actor":{"id":"u-\#(index)","type":"USER"},"action":"user.create","outcome":"SUCCESS"}"#
        }.joined(separator: "\n") + "\n"
        let ingest = try VigilBinary.run(["ingest", "--server", server.address, "--token", token, "-"], input: events)
        #expect(ingest.status == 0, "\(ingest.stderr)")

        // The checkpointer signs within a second or so of the ingest.
        let text = try Self.eventually { () -> String? in
            let status = try VigilBinary.run(["status", "--server", server.address, "--token", token])
            #expect(status.status == 0, "\(status.stderr)")
            return status.stdout.contains("last checkpoint seq 3 at ") ? status.stdout : nil
        }
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "Vigil at \(server.address)")
        func row(_ label: String) -> String? {
            lines.first { $0.hasPrefix("  " + label.padding(toLength: 16, withPad: " ", startingAt: 0)) }
                .map { String($0.dropFirst(18)) }
        }
        #expect(row("version") == "0.1.0")
        #expect(row("uptime")?.contains("(since 20") == true, "\(text)")
        #expect(row("events stored") == "3 (last seq 3)")
        #expect(row("ingest rate")?.hasSuffix(" events/s (last minute)") == true)
        #expect(row("ingest rate")?.hasPrefix("0.0 ") == false, "3 events in the last minute: \(text)")
        #expect(row("disk use")?.isEmpty == false)
        #expect(row("in memory") != nil)
        #expect(row("parts") != nil)
        // The status call itself (the ingest's connection may not be gone yet).
        #expect(row("connections")?.hasSuffix(" (1 call in flight)") == true, "\(text)")
        #expect(row("subscribers") == "0")
        #expect(row("health") == "serving")
        #expect(lines.count == 12, "one screen: a title and eleven rows\n\(text)")

        let json = try VigilBinary.run(["status", "--server", server.address, "--token", token, "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)")
        #expect(object["version"] as? String == "0.1.0")
        #expect(object["events_stored"] as? Int == 3)
        #expect(object["last_seq"] as? Int == 3)
        #expect(object["serving"] as? Bool == true)
        #expect((object["health_reasons"] as? [Any])?.isEmpty == true)
        #expect((object["connections"] as? Int).map { $0 >= 1 } == true)
        #expect(object["subscribers"] as? Int == 0)
        #expect((object["uptime_seconds"] as? Int).map { $0 >= 0 } == true)
        #expect((object["ingest_events_per_second"] as? Double).map { $0 > 0 } == true)
        let checkpoint = try #require(object["last_checkpoint"] as? [String: Any])
        #expect(checkpoint["seq"] as? Int == 3)
        #expect((checkpoint["created_at"] as? String)?.hasSuffix("Z") == true)
        for key in ["started_at", "disk_bytes", "memory_events", "memory_bytes", "parts", "merge_backlog_parts", "calls_in_flight"] {
            #expect(object[key] != nil, "\(key) missing")
        }

        // Without a token: refused, with the reason.
        let anonymous = try VigilBinary.run(["status", "--server", server.address], input: nil)
        #expect(anonymous.status == 1)
        #expect(anonymous.stderr.contains("UNAUTHENTICATED"), "\(anonymous.stderr)")

        // The process's metrics listener answers (curl is the scraper here).
        let scrape = Process()
        scrape.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        scrape.arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(metricsPort)/metrics"]
        let out = Pipe()
        scrape.standardOutput = out
        try scrape.run()
        let body = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        scrape.waitUntilExit()
        #expect(body.hasSuffix("\n200"), "\(body.suffix(200))")
        #expect(body.contains("vigil_ingest_events_total{tenant=\"acme\",status=\"OK\"} 3"), "\(body)")

        let (exit, log) = server.stop()
        #expect(exit == 0, "\(log)")
    }

    @Test(
        "vigil serve refuses a bad --metrics-listen or --metrics-tenant-labels with its message",
        arguments: [
            (["--metrics-listen", "localhost"], "Error: --metrics-listen 'localhost' is not HOST:PORT, for example 127.0.0.1:7701"),
            (["--metrics-listen", "127.0.0.1:99999"], "Error: --metrics-listen '127.0.0.1:99999' is not HOST:PORT, for example 127.0.0.1:7701"),
            (["--listen", "127.0.0.1:7700", "--metrics-listen", "127.0.0.1:7700"],
             "Error: --metrics-listen must use another port than --listen (7700), for example 7701"),
            (["--metrics-tenant-labels", "10001"], "Error: --metrics-tenant-labels must be 0 to 10000"),
        ])
    func badMetricsFlags(_ flags: [String], _ message: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-flags-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try VigilBinary.run(["serve", "--data-dir", directory] + flags)
        #expect(result.status == 64, "a usage error: \(result.stderr)")
        #expect(result.stderr.hasPrefix(message), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/MANIFEST"), "nothing was opened")
    }

    @Test("vigil status --format yaml is refused with the choices")
    func badFormat() throws {
        let result = try VigilBinary.run(["status", "--format", "yaml"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("yaml"), "\(result.stderr)")
        #expect(result.stderr.contains("text") && result.stderr.contains("json"), "\(result.stderr)")
    }
}
