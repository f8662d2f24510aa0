import Foundation
import Testing
@testable import vigil

/// Durations and numeric settings that used to overflow into a trap (a crash
/// of the CLI, or of a running server on SIGHUP) or were taken out of range.
@Suite("durations and numeric settings: bounded, never a trap")
struct NumericLimitTests {
    @Test("the duration parser refuses signs, non-digits and anything over 100 years instead of overflowing")
    func durationParser() {
        #expect(DurationText.seconds("90s") == .success(90))
        #expect(DurationText.seconds("2w") == .success(1_209_600))
        #expect(DurationText.seconds("36500d") == .success(36_500 * 86_400))
        for tooLong in ["36501d", "300000d", "99999999999s", "99999999999999999999d", "999999999999w"] {
            #expect(DurationText.seconds(tooLong) == .failure(.tooLong), "\(tooLong)")
        }
        for bad in ["", "d", "5", "5x", "+5d", "-5d", "0d", " 5d", "5 d", "٥d", "5.5h"] {
            #expect(DurationText.seconds(bad) == .failure(.notADuration), "\(bad)")
        }
    }

    @Test("every duration flag refuses an overflowing value with exit 64 and a message, instead of crashing")
    func durationFlagsDoNotTrap() throws {
        let cases: [(arguments: [String], message: String)] = [
            (["serve", "--retention", "200000d"], "--retention: '200000d' is longer than 100 years; keeping events for ever is 'forever'"),
            (["serve", "--tenant-retention", "acme=200000d"], "--tenant-retention acme=200000d: '200000d' is longer than 100 years"),
            (["serve", "--checkpoint-interval", "99999999999s"], "--checkpoint-interval '99999999999s' is longer than 100 years"),
            (["tail", "--since", "99999999999d"], "--since '99999999999d' is longer than 100 years"),
            (["query", "--last", "99999999999999999999d"], "--last '99999999999999999999d' is longer than 100 years"),
            (["retention", "200000d", "--server", "127.0.0.1:1"], "'200000d' is not a duration of at most 100 years"),
        ]
        for (arguments, message) in cases {
            let result = try VigilBinary.run(arguments + (arguments[0] == "serve" ? ["--data-dir", "/nonexistent/never"] : []))
            #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("runtime failure"), "\(result.stderr)")
        }
    }

    @Test("serve's numeric settings out of range are refused by flag (64) and by vigil config check (78), each named")
    func rangesAreChecked() throws {
        let flags: [(arguments: [String], message: String)] = [
            (["--max-clock-skew=-3600"], "--max-clock-skew must be 0 to 86400 seconds, not -3600"),
            (["--max-clock-skew", "99999999999"], "--max-clock-skew must be 0 to 86400 seconds, not 99999999999"),
            (["--memory-budget-mb", "99999999999999"], "--memory-budget-mb must be 1 to 1048576 (MiB), not 99999999999999"),
            (["--max-event-bytes", "5000000000"], "--max-event-bytes (5000000000) must be at most --max-frame-size (4194304)"),
            (["--max-event-bytes=-1"], "--max-event-bytes must be at least 1024, not -1"),
            (["--max-concurrent-calls", "4294967296"], "--max-concurrent-calls must be 1 to 4294967295, not 4294967296"),
            (["--max-batch-events", "4294967296"], "--max-batch-events must be 1 to 4294967295, not 4294967296"),
            (["--handshake-timeout", "0"], "--handshake-timeout must be 1 to 86400 seconds, not 0"),
            (["--shutdown-timeout=-1"], "--shutdown-timeout must be 1 to 86400 seconds, not -1"),
            (["--segment-max-events", "0"], "--segment-max-events must be 1 to 1000000000, not 0"),
        ]
        for (arguments, message) in flags {
            let result = try VigilBinary.run(["serve", "--data-dir", "/nonexistent/never"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }

        let directory = try ConfigFileTests.temporaryDirectory("numeric-ranges")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vigil.toml"
        try """
            handshake-timeout = 0
            shutdown-timeout = -1
            max-clock-skew = -5
            segment-max-events = 0
            memory-budget-mb = 99999999999999
            max-event-bytes = 0
            retention = "300000d"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try VigilBinary.run(["config", "check", path])
        #expect(check.status == 78, "\(check.stdout)\(check.stderr)")
        for fragment in [
            "has 7 problems",
            "handshake-timeout must be 1 to 86400 seconds, not 0", "shutdown-timeout must be 1 to 86400 seconds, not -1",
            "max-clock-skew must be 0 to 86400 seconds, not -5", "segment-max-events must be 1 to 1000000000, not 0",
            "memory-budget-mb must be 1 to 1048576 (MiB), not 99999999999999", "max-event-bytes must be at least 1024, not 0",
            "retention: '300000d' is longer than 100 years",
        ] {
            #expect(check.stderr.contains(fragment), "\(fragment)\n\(check.stderr)")
        }
        #expect(!check.stderr.contains("runtime failure"), "\(check.stderr)")
    }

    @Test("a configuration typo that used to overflow, then SIGHUP: the reload is refused and logged, the server keeps serving")
    func reloadDoesNotTrap() throws {
        let directory = try ConfigFileTests.temporaryDirectory("numeric-reload")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.toml"
        func write(_ lines: String) throws {
            try "data-dir = \"\(directory)/data\"\nno-auth = true\n\(lines)\n".write(toFile: config, atomically: true, encoding: .utf8)
        }
        try write("retention = \"90d\"")
        let server = try LoggedServer(arguments: ["--config", config, "--listen", "127.0.0.1:0"], directory: directory)
        try write("retention = \"300000d\"")
        server.signal(SIGHUP)
        let log = try server.waitForLog("the first refusal") { $0.contains("reload refused") }
        #expect(log.contains("retention: '300000d' is longer than 100 years"), "\(log)")

        try write("retention = \"90d\"\nmax-clock-skew = -5")
        server.signal(SIGHUP)
        let second = try server.waitForLog("the second refusal") { $0.components(separatedBy: "reload refused").count == 3 }
        #expect(second.contains("max-clock-skew must be 0 to 86400 seconds, not -5"), "\(second)")
        #expect(server.process.isRunning)
        let count = try VigilBinary.run(["count", "--server", server.address])
        #expect(count.status == 0, "\(count.stderr)")
        #expect(server.stop() == 0)
    }
}
