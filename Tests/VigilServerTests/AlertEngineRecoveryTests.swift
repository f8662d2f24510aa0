import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import VigilCore
import VigilProto
import VigilServer
import VigilStorage

/// The alert engine across restarts and failures, and how it groups.
@Suite("Alert engine: restarts, failures and groups")
struct AlertEngineRecoveryTests {
    static let minute: Int64 = 60_000_000_000

    static func rules() throws -> [AlertRule] {
        let path = try AlertRuleTests.writeRules(AlertRuleTests.rulesJSON)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try AlertRule.load(path: path)
    }

    /// A store in a new temporary directory, retention off.
    static func storeOptions() -> StorageOptions {
        var options = StorageOptions(directory: FileManager.default.temporaryDirectory.appendingPathComponent("vigil-alerts-\(UUID().uuidString)").path)
        options.retentionNanos = nil
        return options
    }

    /// Runs the engine over `store` in a ServiceGroup during `body`, then shuts it down gracefully.
    static func withEngine(
        _ store: any EventStore, _ rules: [AlertRule], progress: String?, maxGroupsPerRule: Int = AlertEngine.defaultMaxGroupsPerRule,
        metrics: VigilMetrics? = nil, _ body: () async throws -> Void
    ) async throws {
        var logger = Logger(label: "vigil.test.alerts")
        logger.logLevel = .critical
        let engine = AlertEngine(
            rules: rules, store: store, logger: logger, progressPath: progress, maxGroupsPerRule: maxGroupsPerRule, metrics: metrics)
        let group = ServiceGroup(services: [engine], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func failedLogins(_ actor: String, tenant: String = "acme", _ count: Int, at start: Int64) -> [AuditEvent] {
        (0..<count).map { makeEvent(tenant: tenant, actor: actor, action: "auth.login", at: start + Int64($0), outcome: .failure) }
    }

    /// The start of the current 5-minute window, a second back so that events in it are not in the future.
    static func currentWindow() -> Int64 {
        (currentUnixNanos() - 1_000_000_000) / (5 * minute) * 5 * minute
    }

    @Test("events stored while the engine was stopped (after it stopped, before the restart) are evaluated when it starts again")
    func evaluatesWhatWasStoredWhileStopped() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let progress = options.directory + "/alerts.progress"
        let rules = try Self.rules()
        var store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
        }
        // The engine has stopped (as it does first at a graceful shutdown); the server still takes these.
        _ = try await store.append([makeEvent(actor: "late", action: "user_role.assign")], idempotencyKey: nil)
        _ = try await store.append(Self.failedLogins("u-7", 5, at: Self.currentWindow()), idempotencyKey: nil)
        try await store.close()

        store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 3)
            let fired = try await AlertRuleTests.alerts(store)
            #expect(fired.filter { $0.hasPrefix("role-assign/") }.count == 3, "\(fired)")
            #expect(fired.filter { $0.hasPrefix("failed-logins/u-7/") }.count == 1, "\(fired)")
        }
        try await store.close()
    }

    @Test("after a stop longer than two windows, a window's events from before the stop still count with those stored during the stop: it fires once")
    func longStopKeepsTheWindowsOpenAtTheStop() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let progress = options.directory + "/alerts.progress"
        let path = try AlertRuleTests.writeRules("""
            {"rules": [
              {"name": "failed-logins", "filter": {"actions": ["auth.login"], "outcomes": ["FAILURE"]},
               "threshold": 5, "window": "2s", "groupBy": "actor"},
              {"name": "role-assign", "filter": {"actions": ["user_role.assign"]}}
            ]}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rules = try AlertRule.load(path: path)
        let second: Int64 = 1_000_000_000
        let window = (currentUnixNanos() - second) / (2 * second) * (2 * second)
        var store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            _ = try await store.append(Self.failedLogins("u-9", 4, at: window), idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
        }
        // Stored during the shutdown's drain, after the engine stopped: the fifth of the window.
        _ = try await store.append(Self.failedLogins("u-9", 1, at: window + 10), idempotencyKey: nil)
        try await store.close()
        // The stop lasts longer than two windows (time passing, not synchronization).
        try await Task.sleep(for: .seconds(5))

        store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 2)
            let fired = try await AlertRuleTests.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/u-9/") }.count == 1, "\(fired)")
        }
        try await store.close()
    }

    @Test("a window that fired does not fire again at a restart, even once the store has forgotten the alert's idempotency key")
    func firedWindowStaysFiredWithoutItsKey() async throws {
        var options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        options.idempotencyMaxKeys = 10
        let progress = options.directory + "/alerts.progress"
        let rules = try Self.rules()
        var store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            _ = try await store.append(Self.failedLogins("u-1", 5, at: Self.currentWindow()), idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 2)
            #expect(try await AlertRuleTests.alerts(store).filter { $0.hasPrefix("failed-logins/u-1/") }.count == 1)
        }
        // Twenty keyed batches push the alert's key out of a window of ten.
        for index in 0..<20 {
            _ = try await store.append([makeEvent(actor: "k", action: "user.update")], idempotencyKey: "batch-\(index)")
        }
        try await store.close()

        store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, rules, progress: progress) {
            try await AlertRuleTests.barrier(store, "m-2", roleAlerts: 3)
            let fired = try await AlertRuleTests.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/") }.count == 1, "\(fired)")
        }
        try await store.close()
    }

    @Test("an alert the store refuses to take (memory or disk full) is stored once it takes it; the engine goes on")
    func refusedAlertIsRetried() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let store = try ColumnarEventStore(options: options)
        let flaky = AlertRefusingStore(store, refusals: 3)
        try await Self.withEngine(flaky, try Self.rules(), progress: options.directory + "/alerts.progress") {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 2)
            #expect(flaky.refused == 3)
        }
        try await store.close()
    }

    @Test("groups are per tenant: the same actor id in two tenants counts as two actors")
    func groupsArePerTenant() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, try Self.rules(), progress: nil) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            let window = Self.currentWindow()
            _ = try await store.append(
                Self.failedLogins("admin", 3, at: window) + Self.failedLogins("admin", tenant: "globex", 2, at: window + 10),
                idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 2)
            #expect(try await AlertRuleTests.alerts(store).filter { $0.hasPrefix("failed-logins/") }.isEmpty)
            _ = try await store.append(Self.failedLogins("admin", 2, at: window + 20), idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-2", roleAlerts: 3)
            let fired = try await AlertRuleTests.alerts(store)
            #expect(fired.filter { $0.hasPrefix("failed-logins/") } .count == 1, "\(fired)")
            #expect(fired.contains { $0.hasPrefix("failed-logins/admin/") }, "\(fired)")
        }
        try await store.close()
    }

    @Test("a rule without a window alerts once per stored event, also for two tenants' events that share an id")
    func everyEventAlertsWhateverItsID() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, try Self.rules(), progress: nil) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            let shared = UUID().uuidString.lowercased()
            var first = makeEvent(tenant: "acme", actor: "a", action: "user_role.assign")
            first.id = shared
            var second = makeEvent(tenant: "globex", actor: "a", action: "user_role.assign")
            second.id = shared
            _ = try await store.append([first], idempotencyKey: nil)
            _ = try await store.append([second], idempotencyKey: nil)
            // m-0, the two assignments, m-1.
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 4)
        }
        try await store.close()
    }
}

/// A store that refuses the first `refusals` alert writes with
/// RESOURCE_EXHAUSTED, as a store with its memory budget full does.
final class AlertRefusingStore: EventStore {
    let base: ColumnarEventStore
    private let state: Mutex<(left: Int, refused: Int)>

    init(_ base: ColumnarEventStore, refusals: Int) {
        self.base = base
        state = Mutex((refusals, 0))
    }

    var refused: Int { state.withLock { $0.refused } }

    func append(_ events: [AuditEvent], idempotencyKey: String?, wantReceipts: Bool) async throws(VigilError) -> AppendResult {
        let refuse = state.withLock { state in
            guard events.first?.tenant == AlertRule.alertTenant, state.left > 0 else { return false }
            state.left -= 1
            state.refused += 1
            return true
        }
        if refuse { throw VigilError(.resourceExhausted, "the memory budget is full") }
        return try await base.append(events, idempotencyKey: idempotencyKey, wantReceipts: wantReceipts)
    }

    func append(_ events: [AuditEvent], encoded: EncodedEvents?, idempotencyKey: String?, wantReceipts: Bool) async throws(VigilError) -> AppendResult {
        try await append(events, idempotencyKey: idempotencyKey, wantReceipts: wantReceipts)
    }

    func append(_ batch: WireIngestBatch) async throws(VigilError) -> AppendResult { try await base.append(batch) }
    func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage {
        try await base.scan(filter: filter, order: order, after: cursor, limit: limit)
    }
    func scanEncoded(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage {
        try await base.scanEncoded(filter: filter, order: order, after: cursor, limit: limit)
    }
    func aggregate(_ query: AggregateQuery) async throws(VigilError) -> AggregateResult { try await base.aggregate(query) }
    func scanBySeq(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage {
        try await base.scanBySeq(filter: filter, after: after, through: through, limit: limit)
    }
    func scanBySeqEncoded(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage {
        try await base.scanBySeqEncoded(filter: filter, after: after, through: through, limit: limit)
    }
    var feed: CommitFeed { base.feed }
    func get(id: EventID) async throws(VigilError) -> AuditEvent? { try await base.get(id: id) }
    func get(id: EventID, tenantAllowed: @Sendable (String) -> Bool) async throws(VigilError) -> AuditEvent? {
        try await base.get(id: id, tenantAllowed: tenantAllowed)
    }
    func runMaintenance() async throws { try await base.runMaintenance() }
    func close() async throws(VigilError) { try await base.close() }
    func chainHead() async throws(VigilError) -> (seq: UInt64, head: ChainDigest) { try await base.chainHead() }
    func chainCut() -> (seq: UInt64, head: ChainDigest)? { base.chainCut() }
    func verify(_ options: VerificationOptions) async throws(VigilError) -> IntegrityReport { try await base.verify(options) }
    func setRetention(tenant: String?, nanos: Int64?) async throws(VigilError) -> (before: Int64?, after: Int64?) {
        try await base.setRetention(tenant: tenant, nanos: nanos)
    }
    func statistics() async throws(VigilError) -> StoreStatistics { try await base.statistics() }
    var healthProblems: [String] { base.healthProblems }
    func backup(_ options: BackupOptions) async throws(VigilError) -> BackupResult { try await base.backup(options) }
}

extension AlertEngineRecoveryTests {
    @Test("a burst of events that each fire (a bulk import of role assignments) stores exactly one alert per event")
    func burstOfAlerts() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let store = try ColumnarEventStore(options: options)
        try await Self.withEngine(store, try Self.rules(), progress: nil) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            let burst = (0..<300).map { makeEvent(actor: "bulk-\($0)", action: "user_role.assign") }
            _ = try await store.append(burst, idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 302)
            let fired = try await AlertRuleTests.alerts(store).filter { $0.hasPrefix("role-assign/") }
            #expect(fired.count == 302)
            var message = Vigil_V1_Filter()
            message.tenants = [AlertRule.alertTenant]
            let page = try await store.scan(filter: try EventFilter(message), order: .oldestFirst, after: nil, limit: 1_000)
            let ids = page.events.compactMap { $0.metadata["event_ids"] }
            #expect(Set(ids).count == ids.count, "an event fired twice")
            #expect(Set(burst.map(\.actor.id)).count == 300)
        }
        try await store.close()
    }
}

extension AlertEngineRecoveryTests {
    @Test("a damaged progress file does not stop the engine: it counts from the store's head, and records its progress anew")
    func damagedProgressFile() async throws {
        let options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let progress = options.directory + "/alerts.progress"
        let store = try ColumnarEventStore(options: options)
        try Data("not a progress file".utf8).write(to: URL(fileURLWithPath: progress))
        try await Self.withEngine(store, try Self.rules(), progress: progress) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: progress))
        #expect(bytes.prefix(4) == Data("VALP".utf8), "the progress was not recorded again")
        try await store.close()
    }
}

extension AlertEngineRecoveryTests {
    @Test("one tenant flooding a rule with distinct groups drops its own, not another tenant's: that tenant's window fires exactly once")
    func floodingTenantDoesNotEvictOthers() async throws {
        var options = Self.storeOptions()
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        // Small enough that the alert's idempotency key is gone when the window fills up again.
        options.idempotencyMaxKeys = 10
        let store = try ColumnarEventStore(options: options)
        let metrics = VigilMetrics()
        // A bound of 1,000 groups (the default is 100,000), so that a flood of 5,000 passes it several times.
        try await Self.withEngine(store, try Self.rules(), progress: nil, maxGroupsPerRule: 1_000, metrics: metrics) {
            try await AlertRuleTests.barrier(store, "m-0", roleAlerts: 1)
            let window = Self.currentWindow()
            func flood(_ round: Int) async throws {
                for batch in 0..<5 {
                    let events = (0..<1_000).map {
                        makeEvent(tenant: "acme", actor: "spoof-\(round)-\(batch)-\($0)", action: "auth.login", at: window + Int64($0), outcome: .failure)
                    }
                    _ = try await store.append(events, idempotencyKey: nil)
                }
            }
            _ = try await store.append(Self.failedLogins("victim", tenant: "globex", 4, at: window), idempotencyKey: nil)
            try await flood(0)
            _ = try await store.append(Self.failedLogins("victim", tenant: "globex", 1, at: window + 10), idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-1", roleAlerts: 2)
            var fired = try await AlertRuleTests.alerts(store).filter { $0.hasPrefix("failed-logins/") }
            #expect(fired.count == 1 && fired.allSatisfy { $0.hasPrefix("failed-logins/victim/") }, "\(fired)")

            // Another flood, the alert's key pushed out of the store's memory, then five more
            // failures in the same window: the window fired already and stays fired.
            try await flood(1)
            for index in 0..<20 {
                _ = try await store.append([makeEvent(actor: "k", action: "user.update")], idempotencyKey: "batch-\(index)")
            }
            _ = try await store.append(Self.failedLogins("victim", tenant: "globex", 5, at: window + 20), idempotencyKey: nil)
            try await AlertRuleTests.barrier(store, "m-2", roleAlerts: 3)
            fired = try await AlertRuleTests.alerts(store).filter { $0.hasPrefix("failed-logins/") }
            #expect(fired.count == 1, "\(fired)")
        }
        try await store.close()
        // The drops were counted.
        var text: [UInt8] = []
        metrics.registry.emit(into: &text)
        let line = String(decoding: text, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(#"vigil_alert_groups_dropped_total{rule="failed-logins"}"#) }
        let dropped = try #require(line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }, "no drops counted")
        #expect(dropped >= 9_000, "\(dropped) groups dropped of 10,000 spoofed")
    }
}
