import Foundation
import Logging
import ServiceLifecycle
import Testing
import VigilCore
import VigilProto
import VigilServer
import VigilStorage

@Suite("Alert rules")
struct AlertRuleTests {
    static let rulesJSON = """
        {"rules": [
          {"name": "failed-logins", "filter": {"actions": ["auth.login"], "outcomes": ["FAILURE"]},
           "threshold": 5, "window": "5m", "groupBy": "actor"},
          {"name": "mass-delete", "filter": {"actions": ["*.delete"]}, "threshold": 50, "window": "1m", "groupBy": "actor"},
          {"name": "role-assign", "filter": {"actions": ["user_role.assign"]}}
        ]}
        """

    static func writeRules(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rules-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(
        "a bad rules file is refused with a message naming the rule and the field",
        arguments: [
            (#"{"rules": [{"name": "x", "threshold": 5}]}"#, "'x'.window is required"),
            (#"{"rules": [{"name": "x", "groupBy": "colour"}]}"#, "'x'.groupBy must be one of"),
            (#"{"rules": [{"name": "x", "filter": {"actions": ["not an action"]}}]}"#, "filter.actions"),
            (#"{"rules": [{"name": "x", "filter": {"since": "2026-01-01T00:00:00Z"}}]}"#, "must not set since"),
            (#"{"rules": [{"name": "x"}, {"name": "x"}]}"#, "used twice"),
            (#"{"rules": [{"name": "x", "colour": 1}]}"#, "unknown key 'colour'"),
            (#"{"rules": [{"name": "x", "threshold": 2, "window": "25h"}]}"#, "'x'.window must be"),
            (#"{"rules": [{"name": "x y"}]}"#, "rules[0].name"),
            (#"{"rule": []}"#, "unknown key 'rule'"),
            (#"[1, 2]"#, "not a JSON object"),
            // Serializing a filter that is not an object or a list trapped (JSONSerialization's fatalError).
            (#"{"rules": [{"name": "x", "filter": null}]}"#, "'x'.filter must be a JSON object (a Filter, such as {\"actions\": [\"auth.login\"]}), not null"),
            (#"{"rules": [{"name": "x", "filter": "auth.login"}]}"#, #"'x'.filter must be a JSON object (a Filter, such as {"actions": ["auth.login"]}), not "auth.login""#),
            (#"{"rules": [{"name": "x", "filter": 1}]}"#, "'x'.filter must be a JSON object (a Filter, such as {\"actions\": [\"auth.login\"]}), not 1"),
            (#"{"rules": [{"name": "x", "filter": ["auth.login"]}]}"#, "'x'.filter must be a JSON object"),
            // Each of these was read as the default threshold, 1: an alert on every event.
            (#"{"rules": [{"name": "x", "threshold": "50", "window": "5m"}]}"#, #"'x'.threshold must be an integer from 1 to 1000000, not "50""#),
            (#"{"rules": [{"name": "x", "threshold": 50.5, "window": "5m"}]}"#, "'x'.threshold must be an integer from 1 to 1000000, not 50.5"),
            (#"{"rules": [{"name": "x", "threshold": true, "window": "5m"}]}"#, "'x'.threshold must be an integer from 1 to 1000000, not true"),
            (#"{"rules": [{"name": "x", "threshold": null, "window": "5m"}]}"#, "'x'.threshold must be an integer from 1 to 1000000, not null"),
            (#"{"rules": [{"name": "x", "threshold": 0, "window": "5m"}]}"#, "'x'.threshold must be an integer from 1 to 1000000, not 0"),
            (#"{"rules": [{"name": "x", "threshold": 5, "window": 300}]}"#, "'x'.window must be a duration from 1s to 24h such as 90s, 5m or 1h, not 300"),
            (#"{"rules": [{"name": "x", "threshold": 5, "window": "2.5m"}]}"#, #"'x'.window must be a duration from 1s to 24h such as 90s, 5m or 1h, not "2.5m""#),
            (#"{"rules": [{"name": "x", "threshold": 5, "window": true}]}"#, "'x'.window must be a duration from 1s to 24h such as 90s, 5m or 1h, not true"),
        ])
    func badRules(_ text: String, _ expected: String) throws {
        let path = try Self.writeRules(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: AlertRule.RuleError.self) { try AlertRule.load(path: path) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }

    static func event(_ actor: String, _ action: String, at time: Int64, outcome: Vigil_V1_Outcome = .success) -> AuditEvent {
        var event = makeEvent(tenant: "acme", actor: actor, action: action, at: time, outcome: outcome)
        event.resource.type = "user"
        return event
    }

    /// Alerts stored so far, by rule and group.
    static func alerts(_ store: ColumnarEventStore) async throws -> [String] {
        var message = Vigil_V1_Filter()
        message.tenants = [AlertRule.alertTenant]
        var result: [String] = []
        var cursor: QueryCursor?
        let filter = try EventFilter(message)
        while true {
            let page = try await store.scan(filter: filter, order: .oldestFirst, after: cursor, limit: 1_000)
            result += page.events.map { "\($0.metadata["rule"] ?? "?")/\($0.metadata["group"] ?? "")/\($0.metadata["window_start"] ?? "")" }
            guard let last = page.events.last, !page.exhausted else { return result }
            cursor = QueryCursor(order: .oldestFirst, occurredAt: last.occurredAt.unixNanos, seq: last.seq, filterFingerprint: filter.fingerprint, visibleSeq: page.visibleSeq)
        }
    }

    /// Stores a role assignment and waits until it is the `n`th role-assignment alert: every
    /// event stored before it has then been counted (the engine reads the feed in seq order).
    static func barrier(_ store: ColumnarEventStore, _ marker: String, roleAlerts n: Int) async throws {
        _ = try await store.append([event(marker, "user_role.assign", at: currentUnixNanos() - 1_000_000)], idempotencyKey: nil)
        // Only a failure bound: at the start of a full run on 2 cores the engine can lag for long.
        let deadline = ContinuousClock.now + .seconds(90)
        while try await alerts(store).filter({ $0.hasPrefix("role-assign/") }).count < n {
            guard ContinuousClock.now < deadline else {
                Issue.record("the alert for \(marker) never came")
                return
            }
            try await Task.sleep(for: .milliseconds(20))  // polling a condition with a deadline, not ordering
        }
    }

    /// Runs the engine in a ServiceGroup during `body`, then shuts it down gracefully.
    static func withEngine(_ store: ColumnarEventStore, _ rules: [AlertRule], _ body: () async throws -> Void) async throws {
        var logger = Logger(label: "vigil.test.alerts")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [AlertEngine(rules: rules, store: store, logger: logger)], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("each kind of rule fires exactly once per qualifying window, also across a restart")
    func firesOncePerWindow() async throws {
        let path = try Self.writeRules(Self.rulesJSON)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rules = try AlertRule.load(path: path)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-alerts-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        let minute: Int64 = 60_000_000_000
        // The current 5-minute window (B) and the one before (A): both open, as a restart sees them.
        let windowB = (currentUnixNanos() - 1_000_000_000) / (5 * minute) * 5 * minute
        let windowA = windowB - 5 * minute

        var store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules) {
            // The engine follows the feed once this first alert is stored.
            try await Self.barrier(store, "m-0", roleAlerts: 1)
            // u-1: 6 failed logins in window A (one alert), 4 in window B (none yet); u-2: 4 (none).
            var events = (0..<6).map { Self.event("u-1", "auth.login", at: windowA + Int64($0) * minute / 2, outcome: .failure) }
            events += (0..<4).map { Self.event("u-1", "auth.login", at: windowB + Int64($0), outcome: .failure) }
            events += (0..<4).map { Self.event("u-2", "auth.login", at: windowA + Int64($0), outcome: .failure) }
            events += (0..<9).map { Self.event("u-3", "auth.login", at: windowA + Int64($0), outcome: .success) }
            // 50 deletes by u-4 in one minute (user.delete and acl.entry.delete): one alert; 49 by u-5: none.
            events += (0..<50).map { Self.event("u-4", $0 % 2 == 0 ? "user.delete" : "acl.entry.delete", at: windowA + Int64($0) * 1_000_000) }
            events += (0..<49).map { Self.event("u-5", "user.delete", at: windowA + Int64($0)) }
            for start in stride(from: 0, to: events.count, by: 7) {
                _ = try await store.append(Array(events[start..<min(events.count, start + 7)]), idempotencyKey: nil)
            }
            try await Self.barrier(store, "m-1", roleAlerts: 2)
            let fired = try await Self.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/") }.count == 1, "\(fired)")
            #expect(fired.contains { $0.hasPrefix("failed-logins/u-1/") }, "\(fired)")
            #expect(fired.filter { $0.hasPrefix("mass-delete/") } == fired.filter { $0.hasPrefix("mass-delete/u-4/") })
            #expect(fired.filter { $0.hasPrefix("mass-delete/") }.count == 1, "\(fired)")
        }
        try await store.close()

        // Restart: the engine counts the open windows again from the store, and fires nothing twice.
        store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules) {
            try await Self.barrier(store, "m-2", roleAlerts: 3)
            var fired = try await Self.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/") }.count == 1, "\(fired)")
            #expect(fired.filter { $0.hasPrefix("mass-delete/") }.count == 1, "\(fired)")
            // A fifth failure in window B completes it: a second alert, for that window.
            _ = try await store.append([Self.event("u-1", "auth.login", at: windowB + 10, outcome: .failure)], idempotencyKey: nil)
            try await Self.barrier(store, "m-3", roleAlerts: 4)
            fired = try await Self.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/u-1/") }.count == 2, "\(fired)")
            #expect(fired.filter { $0.hasPrefix("role-assign/") }.count == 4, "one per assignment: \(fired)")
        }
        try await store.close()
    }
}
