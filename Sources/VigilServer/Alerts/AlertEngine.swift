import Crypto
import Foundation
import Logging
import ServiceLifecycle
import VigilCore
import VigilProto
import VigilStorage

/// Evaluates alert rules on the live stream and stores an alert event in
/// `_alerts` when a rule fires.
///
/// Each alert is stored with the idempotency key
/// `alert:<rule>:<window start>:<group hash>` (`alert:<rule>:event:<seq>`
/// without a window). With a progress file (`alerts.progress` in the data
/// directory, `AlertProgress`) a restart resumes counting where the engine
/// got to, so what was stored while it was down is evaluated too; the open
/// windows' counts are rebuilt from the stored events before that point
/// without firing again (they fired then). Where the engine counts again
/// past what it had stored (up to a second's worth after a crash), the keys
/// keep an alert from being stored twice.
///
/// A failure to read the store or to store an alert (memory or disk full,
/// say) is retried with backoff, the alert kept until it is stored; the
/// engine never ends the server.
public struct AlertEngine: Service {
    /// The rules, which a reload may replace while the engine runs.
    let ruleSet: AlertRuleSet
    let store: any EventStore
    let logger: Logger
    /// Where the engine records how far it got; nil: nowhere (it starts at
    /// the store's head, as for a data directory it has never run on).
    let progressPath: String?

    /// Groups tracked per rule: bounds memory when a rule groups by a
    /// high-cardinality key; the oldest windows are dropped first.
    static let maxTrackedGroups = 100_000
    /// How often the progress file is rewritten while the engine moves.
    static let progressInterval: Duration = .seconds(1)
    /// Alerts stored at once (each its own append, with its own idempotency key).
    static let concurrentAlertWrites = 64
    /// The longest wait between retries after a failure.
    static let maxRetryDelay: Duration = .seconds(30)

    public init(rules: [AlertRule], store: any EventStore, logger: Logger, progressPath: String? = nil) {
        self.init(ruleSet: AlertRuleSet(rules), store: store, logger: logger, progressPath: progressPath)
    }

    public init(ruleSet: AlertRuleSet, store: any EventStore, logger: Logger, progressPath: String? = nil) {
        self.ruleSet = ruleSet
        self.store = store
        self.logger = logger
        self.progressPath = progressPath
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
        /// The last seq this rule counted: counting is retried after a
        /// failure, and an event is counted once.
        var counted: UInt64 = 0
    }

    /// An alert a count called for, kept until it is stored.
    struct PendingAlert: Sendable {
        var rule: AlertRule
        var group: String
        var start: Int64
        var ids: [String]
        var tenants: [String]
        var count: Int
        var key: String
    }

    /// What the engine knows between steps.
    struct State {
        var generation: UInt64
        var rules: [AlertRule]
        var matchers: [LiveMatcher]
        var windows: [Windows]
        /// Every event through this seq is counted by every rule, and its alerts are stored.
        var position: UInt64
        var pending: [PendingAlert] = []
    }

    public func run() async throws {
        let feed = store.feed
        let reader = feed.addReader()
        defer { feed.removeReader(reader) }
        try await cancelWhenGracefulShutdown {
            var failures = 0
            var state: State?
            var saved: AlertProgress?
            var savedAt = ContinuousClock.now
            while !Task.isCancelled && !feed.isClosed {
                do {
                    if state == nil {
                        let started = try await start()
                        state = started
                        saved = progress(of: started)
                        logger.info(
                            "alert rules running",
                            metadata: ["vigil.rules": "\(started.rules.map(\.name).joined(separator: ","))", "vigil.seq": "\(started.position)"])
                    }
                    try await step(&state!)
                    failures = 0
                } catch {
                    if Task.isCancelled || feed.isClosed { break }
                    failures += 1
                    let delay = min(Self.maxRetryDelay, .milliseconds(100) * (1 << min(failures, 10)))
                    logger.warning(
                        "alert rules: \(error); retrying in \(delay)",
                        metadata: ["vigil.failures": "\(failures)", "vigil.seq": "\(state?.position ?? 0)"])
                    try? await Task.sleep(for: delay)
                }
                if let current = state, ContinuousClock.now - savedAt >= Self.progressInterval {
                    savedAt = .now
                    save(progress(of: current), over: &saved)
                }
            }
            if let state { save(progress(of: state), over: &saved) }
        }
    }

    /// Where to start: the recorded progress (the rules it names rebuild
    /// their windows without firing), or the store's head when opened.
    private func start() async throws -> State {
        let (generation, rules) = ruleSet.snapshot
        var recorded: AlertProgress?
        if let progressPath {
            do {
                recorded = try AlertProgress.read(from: progressPath)
            } catch {
                logger.error("alert rules: \(error.message); counting from the store's head instead (events stored while the engine was down are not evaluated)")
            }
        }
        let head = store.feed.initialHead
        // A recorded seq past the log (a data directory restored from an older backup): start afresh.
        if let seq = recorded?.throughSeq, seq > head { recorded = nil }
        let position = recorded?.throughSeq ?? head
        var state = State(generation: generation, rules: rules, matchers: rules.map { LiveMatcher(filter: $0.filter) }, windows: [], position: position)
        for rule in rules {
            let counted = recorded?.rules.contains(rule.definitionFingerprint) ?? false
            state.windows.append(try await rebuild(rule, through: position, firing: !counted, pending: &state.pending))
        }
        try await firePending(&state.pending)
        return state
    }

    /// One turn: take up a reload, then count what the feed (or, behind it, the store) holds next.
    private func step(_ state: inout State) async throws {
        try await firePending(&state.pending)
        let current = ruleSet.snapshot
        if current.generation != state.generation {
            // A reload: a rule defined as before keeps its windows; a new
            // or changed one counts its open windows from the store.
            var next: [Windows] = []
            for rule in current.rules {
                if let old = state.rules.firstIndex(where: { $0.sameDefinition(as: rule) }) {
                    next.append(state.windows[old])
                } else {
                    next.append(try await rebuild(rule, through: state.position, firing: true, pending: &state.pending))
                }
            }
            (state.generation, state.rules, state.windows) = (current.generation, current.rules, next)
            state.matchers = state.rules.map { LiveMatcher(filter: $0.filter) }
            try await firePending(&state.pending)
        }
        switch store.feed.read(after: state.position) {
        case .batches(let batches) where batches.isEmpty:
            await store.feed.waitForNew(after: state.position)
        case .batches(let batches):
            for batch in batches {
                for index in state.rules.indices {
                    for event in state.matchers[index].events(in: batch, after: state.position) {
                        count(event, rule: state.rules[index], windows: &state.windows[index], pending: &state.pending)
                    }
                }
                try await firePending(&state.pending)
                state.position = batch.lastSeq
            }
        case .behind(let head):
            // Fell out of the live window (a burst, or a restart with events
            // stored since the recorded progress): read the store in seq order.
            for index in state.rules.indices {
                var after = max(state.position, state.windows[index].counted)
                while after < head {
                    let page = try await store.scanBySeq(filter: state.rules[index].filter, after: after, through: head, limit: 5_000)
                    for event in page.events {
                        count(event, rule: state.rules[index], windows: &state.windows[index], pending: &state.pending)
                    }
                    try await firePending(&state.pending)
                    guard let last = page.events.last, !page.exhausted else { break }
                    after = last.seq
                }
            }
            state.position = head
        }
    }

    /// The open windows of `rule`, counted from the stored events through
    /// `position`; with `firing`, the windows that reached the threshold
    /// fire (a rule new to these events), otherwise they only count as fired.
    private func rebuild(_ rule: AlertRule, through position: UInt64, firing: Bool, pending: inout [PendingAlert]) async throws -> Windows {
        var windows = Windows()
        guard let window = rule.window else {
            windows.counted = position
            return windows
        }
        var filter = rule.filter
        filter.since = max(filter.since, currentUnixNanos() - 2 * window)
        var after: UInt64 = 0
        var unfired: [PendingAlert] = []
        while true {
            let page = try await store.scanBySeq(filter: filter, after: after, through: position, limit: 5_000)
            for event in page.events { count(event, rule: rule, windows: &windows, pending: &unfired) }
            guard let last = page.events.last, !page.exhausted else { break }
            after = last.seq
        }
        if firing { pending += unfired }
        windows.counted = position
        return windows
    }

    /// Counts one matching event; a window that reaches the threshold adds its alert to `pending`.
    func count(_ event: AuditEvent, rule: AlertRule, windows: inout Windows, pending: inout [PendingAlert]) {
        guard event.seq > windows.counted else { return }
        windows.counted = event.seq
        guard event.tenant != AlertRule.alertTenant, let group = rule.group(of: event) else { return }
        guard let window = rule.window else {
            pending.append(
                PendingAlert(
                    rule: rule, group: group.value, start: event.occurredAt.unixNanos, ids: [event.id], tenants: [event.tenant], count: 1,
                    key: "event:\(event.seq)"))
            return
        }
        let time = event.occurredAt.unixNanos
        let start = time - ((time % window) + window) % window
        // Not past now: one event from a skewed clock would otherwise move
        // the horizon below past the windows still being counted.
        windows.newest = max(windows.newest, min(time, currentUnixNanos()))
        let key = Windows.Key(group: group.key, start: start)
        var tally = windows.tallies[key] ?? Windows.Tally()
        tally.count += 1
        if tally.eventIDs.count < min(rule.threshold, 50) { tally.eventIDs.append(event.id) }
        tally.tenants.insert(event.tenant)
        if tally.count >= rule.threshold && !tally.fired {
            tally.fired = true
            pending.append(
                PendingAlert(
                    rule: rule, group: group.value, start: start, ids: tally.eventIDs, tenants: tally.tenants.sorted(), count: tally.count,
                    key: "\(start):\(Self.hash(group.key))"))
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

    /// Stores the pending alerts, up to `concurrentAlertWrites` at a time
    /// so that they share fsyncs (a bulk import of role assignments fires
    /// thousands at once; one after another, each waited for its own).
    /// Those that fail stay first in line, and the first failure is thrown.
    private func firePending(_ pending: inout [PendingAlert]) async throws {
        while !pending.isEmpty {
            let wave = Array(pending.prefix(Self.concurrentAlertWrites))
            let failures = await withTaskGroup(of: (Int, (any Error)?).self) { group in
                for (index, alert) in wave.enumerated() {
                    group.addTask {
                        do {
                            try await fire(alert)
                            return (index, nil)
                        } catch {
                            return (index, error)
                        }
                    }
                }
                var failures: [(index: Int, error: any Error)] = []
                for await (index, error) in group { if let error { failures.append((index, error)) } }
                return failures.sorted { $0.index < $1.index }
            }
            pending = failures.map { wave[$0.index] } + pending.dropFirst(wave.count)
            if let first = failures.first { throw first.error }
        }
    }

    private func fire(_ pending: PendingAlert) async throws {
        let rule = pending.rule
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
        let listed = Self.fitting(pending.ids, within: 1_024)
        var metadata = [
            "rule": rule.name, "threshold": String(rule.threshold), "count": String(pending.count),
            "tenants": Self.fitting(pending.tenants, within: 1_024).joined(separator: ","),
            "event_ids": listed.joined(separator: ","),
        ]
        if listed.count < pending.count { metadata["event_ids_listed"] = String(listed.count) }
        if let groupBy = rule.groupBy {
            metadata["group_by"] = groupBy.rawValue
            metadata["group"] = String(pending.group.prefix(1_024))
        }
        if let window = rule.window {
            metadata["window_start"] = Date(timeIntervalSince1970: Double(pending.start) / 1e9).ISO8601Format()
            metadata["window_seconds"] = String(window / 1_000_000_000)
        }
        alert.metadata = metadata
        let scope = rule.groupBy.map { " for \($0.rawValue) \(pending.group.prefix(200))" } ?? ""
        alert.description_p =
            rule.window.map { "\(pending.count) events matched rule \(rule.name)\(scope) within \($0 / 1_000_000_000) s" }
            ?? "an event matched rule \(rule.name)\(scope)"
        let result = try await store.append([alert], idempotencyKey: "alert:\(rule.name):\(pending.key)")
        if !result.replayed {
            logger.notice(
                "alert fired", metadata: ["vigil.rule": "\(rule.name)", "vigil.group": "\(pending.group.prefix(200))", "vigil.seq": "\(result.firstSeq)"])
        }
    }

    /// The leading `items` whose comma-joined text fits in `limit` bytes: whole ids, never a cut one.
    static func fitting(_ items: [String], within limit: Int) -> [String] {
        var length = 0
        var kept: [String] = []
        for item in items {
            length += item.utf8.count + (kept.isEmpty ? 0 : 1)
            guard length <= limit else { break }
            kept.append(item)
        }
        return kept
    }

    /// A group's key in an alert's idempotency key: 128 bits of SHA-256, so
    /// that no one choosing actor ids can make another group's key and keep
    /// its alert from being stored.
    static func hash(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// What to record; nil while alerts wait to be stored (a rule a reload
    /// added counts as having fired only once they are).
    private func progress(of state: State) -> AlertProgress? {
        guard state.pending.isEmpty else { return nil }
        return AlertProgress(throughSeq: state.position, rules: Set(state.rules.map(\.definitionFingerprint)))
    }

    private func save(_ progress: AlertProgress?, over saved: inout AlertProgress?) {
        guard let progressPath, let progress, progress != saved else { return }
        do {
            try progress.write(to: progressPath)
            saved = progress
        } catch {
            logger.warning("alert rules: cannot record their progress: \(error.message); a restart would count from the last recorded seq")
        }
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
