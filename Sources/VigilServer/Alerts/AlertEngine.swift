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
    /// Open groups each rule tracks (`defaultMaxGroupsPerRule`).
    let maxGroupsPerRule: Int
    /// Counts groups dropped by that bound.
    let metrics: VigilMetrics?

    /// Open groups (a group in a window) one rule tracks, across tenants:
    /// bounds memory when a rule groups by a high-cardinality key. A group
    /// holds its key (up to ~450 bytes), up to `listedIDs` ids (16 bytes each)
    /// and its table entry: at most ~1 KB, so ~100 MB per rule at the bound,
    /// far less for short keys or thresholds. Past it, groups are dropped
    /// fairly (`Windows.sweep`): one tenant's flood of distinct keys drops
    /// its own groups, not other tenants'.
    public static let defaultMaxGroupsPerRule = 100_000
    /// Ids an alert can list: as many as fit in its 1,024 bytes of
    /// `event_ids` (36 characters and a comma each); more are never shown.
    static let listedIDs = 27
    /// At most one log line a minute per rule about dropped groups (the
    /// metric counts every one).
    static let droppedGroupsLogInterval: Duration = .seconds(60)
    /// How often the progress file is rewritten while the engine moves.
    static let progressInterval: Duration = .seconds(1)
    /// Alerts stored at once (each its own append, with its own idempotency key).
    static let concurrentAlertWrites = 64
    /// The longest wait between retries after a failure.
    static let maxRetryDelay: Duration = .seconds(30)

    public init(
        rules: [AlertRule], store: any EventStore, logger: Logger, progressPath: String? = nil,
        maxGroupsPerRule: Int = AlertEngine.defaultMaxGroupsPerRule, metrics: VigilMetrics? = nil
    ) {
        self.init(
            ruleSet: AlertRuleSet(rules), store: store, logger: logger, progressPath: progressPath, maxGroupsPerRule: maxGroupsPerRule,
            metrics: metrics)
    }

    public init(
        ruleSet: AlertRuleSet, store: any EventStore, logger: Logger, progressPath: String? = nil,
        maxGroupsPerRule: Int = AlertEngine.defaultMaxGroupsPerRule, metrics: VigilMetrics? = nil
    ) {
        self.ruleSet = ruleSet
        self.store = store
        self.logger = logger
        self.progressPath = progressPath
        self.maxGroupsPerRule = max(maxGroupsPerRule, 8)
        self.metrics = metrics
    }

    /// The open windows of one rule, by the tenant each group belongs to
    /// ("" for a rule without `groupBy`, whose one group a window spans
    /// tenants), so that the bound on them can be shared fairly.
    struct Windows {
        struct Key: Hashable {
            var group: String
            var start: Int64
        }
        struct Tally {
            var count = 0
            /// The first events' ids, as many as the alert can list; let go once it fired.
            var eventIDs: [EventID] = []
            /// The events' tenants, for a rule without `groupBy` (the others' is the tenant it is filed under).
            var tenants: Set<String> = []
            var fired = false
        }
        var tallies: [String: [Key: Tally]] = [:]
        /// Groups in `tallies`, all tenants'.
        var count = 0
        /// Groups added since the last `sweep`: sweeps are paced by these,
        /// so that their cost, linear in `count`, is spread over that many events.
        var addedSinceSweep = 0
        var newest: Int64 = .min
        /// The last seq this rule counted: counting is retried after a
        /// failure, and an event is counted once.
        var counted: UInt64 = 0
        /// Open groups the bound dropped and not yet logged, and when that was last logged.
        var droppedUnlogged = 0
        var droppedLoggedAt: ContinuousClock.Instant?

        /// What a sweep dropped of groups whose windows were still open.
        struct Dropped {
            var groups = 0
            /// Of which had fired: refilled, such a group fires again, and
            /// only the alert's idempotency key (24 hours) keeps it from being stored twice.
            var fired = 0
            /// The tenant that lost the most, and how many.
            var most: (tenant: String, groups: Int)?
        }

        /// Forgets windows that ended before `horizon`; then, past `limit`
        /// groups, drops groups down to 7/8 of it, fairly: the tenants are
        /// given equal shares, the smallest first keeping all they have and
        /// leaving the rest of their share to the larger ones (max-min
        /// fairness), so that a tenant flooding the rule with distinct keys
        /// loses its own groups and one with a few loses none. Within a
        /// tenant, those furthest from the threshold go first, those that
        /// fired last. Linear in `count`, plus a sort of each tenant that
        /// loses groups; callers pace it by `addedSinceSweep`.
        mutating func sweep(horizon: Int64, limit: Int) -> Dropped {
            addedSinceSweep = 0
            for tenant in Array(tallies.keys) {
                // Taken out first, so the filtered copy does not double the tenant's memory for long.
                guard let groups = tallies.removeValue(forKey: tenant) else { continue }
                let open = groups.filter { $0.key.start >= horizon }
                count -= groups.count - open.count
                if !open.isEmpty { tallies[tenant] = open }
            }
            var dropped = Dropped()
            guard count > limit else { return dropped }
            var left = limit - limit / 8
            let sizes = tallies.map { (tenant: $0.key, groups: $0.value.count) }.sorted { $0.groups < $1.groups }
            for (index, entry) in sizes.enumerated() {
                let share = min(entry.groups, left / (sizes.count - index))
                left -= share
                guard share < entry.groups, var groups = tallies.removeValue(forKey: entry.tenant) else { continue }
                let doomed = groups.sorted { a, b in
                    if a.value.fired != b.value.fired { return !a.value.fired }
                    if a.value.count != b.value.count { return a.value.count < b.value.count }
                    return a.key.start < b.key.start
                }.prefix(entry.groups - share)
                for (key, tally) in doomed {
                    groups.removeValue(forKey: key)
                    if tally.fired { dropped.fired += 1 }
                }
                count -= doomed.count
                dropped.groups += doomed.count
                if doomed.count > dropped.most?.groups ?? 0 { dropped.most = (entry.tenant, doomed.count) }
                if !groups.isEmpty { tallies[entry.tenant] = groups }
            }
            return dropped
        }
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
                    if try await step(&state!) {
                        // Caught up. What was counted is recorded before a
                        // long wait (a quiet hour must not leave it unrecorded
                        // for a kill -9 to recount), but at most once an
                        // interval: under steady ingest the engine catches up
                        // after nearly every commit, and each record is two fsyncs.
                        let position = state!.position
                        let sinceSaved = ContinuousClock.now - savedAt
                        if sinceSaved >= Self.progressInterval {
                            savedAt = .now
                            save(progress(of: state!), over: &saved)
                            await store.feed.waitForNew(after: position)
                        } else if progress(of: state!) != saved {
                            // Back when the next record is due, if nothing comes first.
                            await withTaskGroup(of: Void.self) { group in
                                group.addTask { await store.feed.waitForNew(after: position) }
                                group.addTask { try? await Task.sleep(for: Self.progressInterval - sinceSaved) }
                                await group.next()
                                group.cancelAll()
                            }
                        } else {
                            await store.feed.waitForNew(after: position)
                        }
                    }
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
            state.windows.append(
                try await rebuild(rule, through: position, firing: !counted, uncountedThrough: head, pending: &state.pending))
        }
        try await firePending(&state.pending)
        return state
    }

    /// One turn: take up a reload, then count what the feed (or, behind it,
    /// the store) holds next. True when there was nothing new: the caller
    /// waits for the feed.
    private func step(_ state: inout State) async throws -> Bool {
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
            return true
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
        return false
    }

    /// The open windows of `rule`, counted from the stored events through
    /// `position`; with `firing`, the windows that reached the threshold
    /// fire (a rule new to these events), otherwise they only count as fired.
    /// `uncountedThrough`: the events after `position` through it are counted
    /// next (at a start, those stored while the engine was down): the
    /// windows they fall in are rebuilt too.
    private func rebuild(
        _ rule: AlertRule, through position: UInt64, firing: Bool, uncountedThrough: UInt64? = nil, pending: inout [PendingAlert]
    ) async throws -> Windows {
        var windows = Windows()
        guard let window = rule.window else {
            windows.counted = position
            return windows
        }
        // The open windows, and those the uncounted events fall in: after a
        // long stop, events stored during the shutdown's drain fall in
        // windows whose earlier events are older than two windows before now.
        var floor = currentUnixNanos() &- 2 * window
        if let uncountedThrough, let oldest = try await oldestOccurred(rule.filter, after: position, through: uncountedThrough) {
            floor = min(floor, oldest &- window)
        }
        var filter = rule.filter
        filter.since = max(filter.since, floor)
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

    /// The oldest occurred_at of the events matching `filter` after `seq`
    /// through `through` (nil: none).
    private func oldestOccurred(_ filter: EventFilter, after seq: UInt64, through: UInt64) async throws -> Int64? {
        var oldest: Int64?
        var after = seq
        while after < through {
            let page = try await store.scanBySeq(filter: filter, after: after, through: through, limit: 5_000)
            for event in page.events { oldest = min(oldest ?? .max, event.occurredAt.unixNanos) }
            guard let last = page.events.last, !page.exhausted else { break }
            after = last.seq
        }
        return oldest
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
        let tenant = rule.groupBy == nil ? "" : event.tenant
        let key = Windows.Key(group: group.key, start: start)
        // Taken out and put back: the tenant's table is changed in place, not copied.
        let existing = windows.tallies[tenant]?.removeValue(forKey: key)
        var tally = existing ?? Windows.Tally()
        tally.count += 1
        if !tally.fired {
            if tally.eventIDs.count < min(rule.threshold, Self.listedIDs), let id = EventID(event.id) { tally.eventIDs.append(id) }
            if rule.groupBy == nil { tally.tenants.insert(event.tenant) }
        }
        if tally.count >= rule.threshold && !tally.fired {
            tally.fired = true
            pending.append(
                PendingAlert(
                    rule: rule, group: group.value, start: start, ids: tally.eventIDs.map(\.description),
                    tenants: rule.groupBy == nil ? tally.tenants.sorted() : [event.tenant], count: tally.count,
                    key: "\(start):\(Self.hash(group.key))"))
            // A fired group only needs to stay fired.
            tally.eventIDs = []
            tally.tenants = []
        }
        windows.tallies[tenant, default: [:]][key] = tally
        guard existing == nil else { return }
        windows.count += 1
        windows.addedSinceSweep += 1
        // Forget windows long closed, and, past the bound, groups fairly:
        // every eighth of the groups added, so that a sweep's cost is spread
        // over the events that made it due, not paid for each of them.
        if windows.count > maxGroupsPerRule || windows.addedSinceSweep >= max(1_024, windows.count / 8) {
            let dropped = windows.sweep(horizon: windows.newest - 2 * window, limit: maxGroupsPerRule)
            if dropped.groups > 0 { reportDropped(dropped, rule: rule, windows: &windows) }
        }
    }

    /// Counts and logs open groups the bound dropped: the first time at
    /// once, then at most once a `droppedGroupsLogInterval` per rule.
    private func reportDropped(_ dropped: Windows.Dropped, rule: AlertRule, windows: inout Windows) {
        metrics?.recordAlertGroupsDropped(rule: rule.name, dropped.groups)
        windows.droppedUnlogged += dropped.groups
        let now = ContinuousClock.now
        if let last = windows.droppedLoggedAt, now - last < Self.droppedGroupsLogInterval { return }
        windows.droppedLoggedAt = now
        var metadata: Logger.Metadata = ["vigil.rule": "\(rule.name)", "vigil.dropped": "\(windows.droppedUnlogged)"]
        if let most = dropped.most { metadata["vigil.tenant"] = "\(most.tenant)" }
        if dropped.fired > 0 { metadata["vigil.dropped-fired"] = "\(dropped.fired)" }
        logger.warning(
            "alert rule \(rule.name) tracks at most \(maxGroupsPerRule) open groups: \(windows.droppedUnlogged) dropped, most from the tenant with the most groups; a dropped group counts from zero again",
            metadata: metadata)
        windows.droppedUnlogged = 0
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
