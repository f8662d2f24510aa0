import Foundation
import Logging
import ServiceLifecycle
import VigilCore
import VigilProto
import VigilStorage

/// Evaluates alert rules on the live stream and stores an alert event in
/// `_alerts` when a rule fires. Each alert is stored with the idempotency key
/// `alert:<rule>:<window start>:<group hash>`, so a window fires once even
/// when the engine counts it again after a restart (it rebuilds its counts
/// from the stored events of the open windows before it follows the feed).
public struct AlertEngine: Service {
    /// The rules, which a reload may replace while the engine runs.
    let ruleSet: AlertRuleSet
    let store: any EventStore
    let logger: Logger

    /// Groups tracked per rule: bounds memory when a rule groups by a
    /// high-cardinality key; the oldest windows are dropped first.
    static let maxTrackedGroups = 100_000

    public init(rules: [AlertRule], store: any EventStore, logger: Logger) {
        self.init(ruleSet: AlertRuleSet(rules), store: store, logger: logger)
    }

    public init(ruleSet: AlertRuleSet, store: any EventStore, logger: Logger) {
        self.ruleSet = ruleSet
        self.store = store
        self.logger = logger
    }

    /// The open windows of one rule.
    struct Windows {
        struct Key: Hashable {
            var group: String
            var start: Int64
        }
        struct Tally {
            var count = 0
            var eventIDs: [String] = []
            var tenants: Set<String> = []
            var fired = false
        }
        var tallies: [Key: Tally] = [:]
        var newest: Int64 = .min
    }

    public func run() async throws {
        let feed = store.feed
        let reader = feed.addReader()
        defer { feed.removeReader(reader) }
        let (generation, rules) = ruleSet.snapshot
        // From what the store held when it opened: whatever was stored since
        // (before this service got going) is read back from the store below.
        let position = feed.initialHead
        var windows: [Windows] = []
        for rule in rules { windows.append(try await rebuild(rule, through: position)) }
        logger.info("alert rules running", metadata: ["vigil.rules": "\(rules.map(\.name).joined(separator: ","))"])
        let start = position
        let rebuilt = windows
        try await cancelWhenGracefulShutdown {
            var position = start
            var windows = rebuilt
            var generation = generation
            var rules = rules
            var matchers = rules.map { LiveMatcher(filter: $0.filter) }
            while !Task.isCancelled && !feed.isClosed {
                let current = ruleSet.snapshot
                if current.generation != generation {
                    // A reload: a rule defined as before keeps its windows; a new
                    // or changed one counts its open windows from the store.
                    var next: [Windows] = []
                    for rule in current.rules {
                        if let old = rules.firstIndex(where: { $0.sameDefinition(as: rule) }) {
                            next.append(windows[old])
                        } else {
                            next.append(try await rebuild(rule, through: position))
                        }
                    }
                    (generation, rules, windows) = (current.generation, current.rules, next)
                    matchers = rules.map { LiveMatcher(filter: $0.filter) }
                }
                switch feed.read(after: position) {
                case .batches(let batches) where batches.isEmpty:
                    await feed.waitForNew(after: position)
                case .batches(let batches):
                    for batch in batches {
                        for (index, rule) in rules.enumerated() {
                            for event in matchers[index].events(in: batch, after: position) {
                                try await count(event, rule: rule, windows: &windows[index])
                            }
                        }
                        position = batch.lastSeq
                    }
                case .behind(let head):
                    // Fell out of the live window (a burst): read the store in seq order.
                    for (index, rule) in rules.enumerated() {
                        var after = position
                        while true {
                            let page = try await store.scanBySeq(filter: rule.filter, after: after, through: head, limit: 5_000)
                            for event in page.events { try await count(event, rule: rule, windows: &windows[index]) }
                            guard let last = page.events.last, !page.exhausted else { break }
                            after = last.seq
                        }
                    }
                    position = head
                }
            }
        }
    }

    /// The open windows of `rule`, counted from the stored events through `position`.
    private func rebuild(_ rule: AlertRule, through position: UInt64) async throws -> Windows {
        var windows = Windows()
        guard let window = rule.window else { return windows }
        var filter = rule.filter
        filter.since = max(filter.since, currentUnixNanos() - 2 * window)
        var after: UInt64 = 0
        while true {
            let page = try await store.scanBySeq(filter: filter, after: after, through: position, limit: 5_000)
            for event in page.events { try await count(event, rule: rule, windows: &windows) }
            guard let last = page.events.last, !page.exhausted else { break }
            after = last.seq
        }
        return windows
    }

    /// Counts one matching event; fires the rule when its window reaches the threshold.
    private func count(_ event: AuditEvent, rule: AlertRule, windows: inout Windows) async throws {
        guard event.tenant != AlertRule.alertTenant else { return }
        let group = rule.group(of: event)
        guard let window = rule.window else {
            try await fire(rule, group: group, start: event.occurredAt.unixNanos, ids: [event.id], tenants: [event.tenant], count: 1, key: "event:\(event.id)")
            return
        }
        let time = event.occurredAt.unixNanos
        let start = time - ((time % window) + window) % window
        windows.newest = max(windows.newest, time)
        let key = Windows.Key(group: group, start: start)
        var tally = windows.tallies[key] ?? Windows.Tally()
        tally.count += 1
        if tally.eventIDs.count < min(rule.threshold, 50) { tally.eventIDs.append(event.id) }
        tally.tenants.insert(event.tenant)
        if tally.count >= rule.threshold && !tally.fired {
            tally.fired = true
            try await fire(
                rule, group: group, start: start, ids: tally.eventIDs, tenants: tally.tenants.sorted(), count: tally.count,
                key: "\(start):\(Self.hash(group))")
        }
        windows.tallies[key] = tally
        // Forget windows long closed, and the oldest ones past the bound.
        if windows.tallies.count > Self.maxTrackedGroups || windows.tallies.count % 1_024 == 0 {
            let horizon = windows.newest - 2 * window
            windows.tallies = windows.tallies.filter { $0.key.start >= horizon }
            if windows.tallies.count > Self.maxTrackedGroups {
                let keep = windows.tallies.sorted { $0.key.start > $1.key.start }.prefix(Self.maxTrackedGroups / 2)
                windows.tallies = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
            }
        }
    }

    private func fire(
        _ rule: AlertRule, group: String, start: Int64, ids: [String], tenants: [String], count: Int, key: String
    ) async throws {
        var alert = AuditEvent()
        alert.occurredAt = .init(unixNanos: currentUnixNanos())
        alert.tenant = AlertRule.alertTenant
        alert.actor.id = "vigil"
        alert.actor.type = .system
        alert.actor.name = "Vigil alert rules"
        alert.action = "alert.fired"
        alert.category = .other
        alert.resource.type = "alert_rule"
        alert.resource.id = rule.name
        alert.resource.name = rule.name
        alert.outcome = .success
        var metadata = [
            "rule": rule.name, "threshold": String(rule.threshold), "count": String(count),
            "tenants": String(tenants.joined(separator: ",").prefix(1_024)),
            "event_ids": String(ids.joined(separator: ",").prefix(1_024)),
        ]
        if let groupBy = rule.groupBy {
            metadata["group_by"] = groupBy.rawValue
            metadata["group"] = String(group.prefix(1_024))
        }
        if let window = rule.window {
            metadata["window_start"] = Date(timeIntervalSince1970: Double(start) / 1e9).ISO8601Format()
            metadata["window_seconds"] = String(window / 1_000_000_000)
        }
        alert.metadata = metadata
        let scope = rule.groupBy.map { " for \($0.rawValue) \(group.prefix(200))" } ?? ""
        alert.description_p =
            rule.window.map { "\(count) events matched rule \(rule.name)\(scope) within \($0 / 1_000_000_000) s" }
            ?? "an event matched rule \(rule.name)\(scope)"
        let result = try await store.append([alert], idempotencyKey: "alert:\(rule.name):\(key)")
        if !result.replayed {
            logger.notice("alert fired", metadata: ["vigil.rule": "\(rule.name)", "vigil.group": "\(group.prefix(200))", "vigil.seq": "\(result.firstSeq)"])
        }
    }

    /// FNV-1a of a group value, in hex: keeps idempotency keys short whatever the group.
    static func hash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return String(hash, radix: 16)
    }
}

/// Runs `body` until it ends or graceful shutdown begins (then cancels it).
private func cancelWhenGracefulShutdown(_ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await body() }
        group.addTask { try await gracefulShutdown() }
        _ = try await group.next()
        group.cancelAll()
    }
}
