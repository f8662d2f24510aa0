import CoreMetrics
import Prometheus
import Synchronization
import VigilCore
import VigilProto
import VigilStorage

/// One server's metrics: its own Prometheus registry (so that several
/// servers in one process, as in the tests, keep apart), the swift-metrics
/// factory over it (which the storage engine records through), and the
/// handles the server records into.
///
/// Recording is per call or per batch, never per event: counters are atomic,
/// and a lock is taken once per batch (per tenant in it) to find its counters.
/// Values that can be read at any time (connections, memory, parts) are
/// sampled when scraped (`sample`), costing nothing in between.
public final class VigilMetrics: Sendable {
    /// Default for `maxTenantLabels`: enough for most deployments' tenants to
    /// be told apart, few enough to keep a scrape small.
    public static let defaultMaxTenantLabels = 100

    public let registry: PrometheusCollectorRegistry
    /// swift-metrics over `registry`, with the catalog's help texts and buckets.
    public let factory: any MetricsFactory
    /// What the storage engine records; put it in `StorageOptions.metrics`.
    public let storage: StorageMetrics
    let tenantLabels: TenantLabels

    private struct IngestKey: Hashable {
        var tenant: String
        var code: StatusCode
    }
    private let ingestCounters = Mutex<[IngestKey: (events: CoreMetrics.Counter, batches: CoreMetrics.Counter)]>([:])
    private let ingestAckDuration: CoreMetrics.Timer
    private struct QueryHandles: Sendable {
        let duration: CoreMetrics.Timer
        let blocksScanned: CoreMetrics.Counter
        let blocksSkipped: CoreMetrics.Counter
    }
    private let queries: [AuditMethod: QueryHandles]
    private let rejectedCalls: [StatusCode: CoreMetrics.Counter]
    private let rejectedConnections: [StatusCode: CoreMetrics.Counter]

    private let connections: CoreMetrics.Gauge
    private let callsInFlight: CoreMetrics.Gauge
    private let subscribers: CoreMetrics.Gauge
    private let subscriberLagMax: CoreMetrics.Gauge
    private let memoryEvents: CoreMetrics.Gauge
    private let memoryBytes: CoreMetrics.Gauge
    private let mergeBacklog: CoreMetrics.Gauge
    private let storedEvents: CoreMetrics.Gauge
    private let diskUsage: CoreMetrics.Gauge
    private let serving: CoreMetrics.Gauge
    private let startTime: CoreMetrics.Gauge
    private let checkpointLast: CoreMetrics.Gauge
    private let checkpointFailures: CoreMetrics.Counter
    /// Open alert groups the per-rule bound dropped, by rule (a rule's series appears with its first drop).
    private let alertGroupsDropped = Mutex<[String: CoreMetrics.Counter]>([:])
    /// Parts by level; a level that empties keeps its series, at 0.
    private let partsByLevel = Mutex<[UInt32: CoreMetrics.Gauge]>([:])

    /// The methods whose latency is measured (the others are admin calls or,
    /// for Subscribe, last as long as the subscriber wants).
    static let queryMethods: [AuditMethod] = [.query, .aggregate, .get]

    /// - Parameter maxTenantLabels: distinct tenants that get their own
    ///   `tenant` label value; later ones are counted as `_other`.
    public init(maxTenantLabels: Int = VigilMetrics.defaultMaxTenantLabels) {
        let registry = PrometheusCollectorRegistry()
        let factory = CatalogMetricsFactory(registry: registry)
        self.registry = registry
        self.factory = factory
        storage = StorageMetrics(factory: factory)
        tenantLabels = TenantLabels(limit: maxTenantLabels)
        ingestAckDuration = CoreMetrics.Timer(label: MetricCatalog.ingestAckDuration, factory: factory)
        var queries: [AuditMethod: QueryHandles] = [:]
        for method in Self.queryMethods {
            let dimensions = [("method", method.shortName)]
            queries[method] = QueryHandles(
                duration: CoreMetrics.Timer(label: MetricCatalog.queryDuration, dimensions: dimensions, factory: factory),
                blocksScanned: CoreMetrics.Counter(label: MetricCatalog.queryBlocksScanned, dimensions: dimensions, factory: factory),
                blocksSkipped: CoreMetrics.Counter(label: MetricCatalog.queryBlocksSkipped, dimensions: dimensions, factory: factory))
        }
        self.queries = queries
        // Every code up front: a series that exists at 0 lets `rate()` see its first increment.
        var rejectedCalls: [StatusCode: CoreMetrics.Counter] = [:]
        for code in StatusCode.allCases where code != .ok {
            rejectedCalls[code] = CoreMetrics.Counter(label: MetricCatalog.rejectedCalls, dimensions: [("code", code.name)], factory: factory)
        }
        self.rejectedCalls = rejectedCalls
        var rejectedConnections: [StatusCode: CoreMetrics.Counter] = [:]
        for code in [StatusCode.resourceExhausted, .unauthenticated] {
            rejectedConnections[code] = CoreMetrics.Counter(
                label: MetricCatalog.rejectedConnections, dimensions: [("code", code.name)], factory: factory)
        }
        self.rejectedConnections = rejectedConnections
        func gauge(_ name: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: name, factory: factory) }
        connections = gauge(MetricCatalog.connections)
        callsInFlight = gauge(MetricCatalog.callsInFlight)
        subscribers = gauge(MetricCatalog.subscribers)
        subscriberLagMax = gauge(MetricCatalog.subscriberLagMax)
        memoryEvents = gauge(MetricCatalog.memoryEvents)
        memoryBytes = gauge(MetricCatalog.memoryBytes)
        mergeBacklog = gauge(MetricCatalog.mergeBacklog)
        storedEvents = gauge(MetricCatalog.storedEvents)
        diskUsage = gauge(MetricCatalog.diskUsage)
        serving = gauge(MetricCatalog.serving)
        startTime = gauge(MetricCatalog.startTime)
        checkpointLast = gauge(MetricCatalog.checkpointLast)
        checkpointFailures = CoreMetrics.Counter(label: MetricCatalog.checkpointFailures, factory: factory)
        CoreMetrics.Gauge(label: MetricCatalog.buildInfo, dimensions: [("version", vigilVersion)], factory: factory).record(1)
    }

    // MARK: Recording

    /// A batch's tenants in order of first appearance, each with its events.
    static func tenantCounts(of events: [AuditEvent]) -> [(tenant: String, events: Int)] {
        if let first = events.first?.tenant, events.allSatisfy({ $0.tenant == first }) {
            return [(first, events.count)]
        }
        var order: [String] = []
        var counts: [String: Int] = [:]
        for event in events {
            if counts[event.tenant] == nil { order.append(event.tenant) }
            counts[event.tenant, default: 0] += 1
        }
        return order.map { ($0, counts[$0]!) }
    }

    /// One Ingest call that ended with `code`: its events by tenant, the
    /// batch once under each of its tenants, and (when OK) its latency.
    func recordIngest(_ tenantCounts: [(tenant: String, events: Int)], code: StatusCode, duration: Duration?) {
        var byLabel: [String: Int] = [:]
        let admit = code == .ok
        for (tenant, count) in tenantCounts { byLabel[tenantLabels.label(for: tenant, admit: admit), default: 0] += count }
        if byLabel.isEmpty { byLabel[TenantLabels.invalid] = 0 }
        for (label, count) in byLabel {
            let counters = ingestCounters(tenant: label, code: code)
            counters.events.increment(by: count)
            counters.batches.increment()
        }
        if let duration { ingestAckDuration.recordNanoseconds(duration.wholeNanoseconds) }
    }

    private func ingestCounters(tenant: String, code: StatusCode) -> (events: CoreMetrics.Counter, batches: CoreMetrics.Counter) {
        let key = IngestKey(tenant: tenant, code: code)
        return ingestCounters.withLock { counters in
            if let existing = counters[key] { return existing }
            let dimensions = [("tenant", tenant), ("status", code.name)]
            let made = (
                events: CoreMetrics.Counter(label: MetricCatalog.ingestEvents, dimensions: dimensions, factory: factory),
                batches: CoreMetrics.Counter(label: MetricCatalog.ingestBatches, dimensions: dimensions, factory: factory))
            counters[key] = made
            return made
        }
    }

    /// A successful Query, Aggregate or Get: its duration and, from its
    /// trailer metadata, the blocks it read and skipped.
    func recordQuery(_ method: AuditMethod, duration: Duration, trailers: [String: String]) {
        guard let handles = queries[method] else { return }
        handles.duration.recordNanoseconds(duration.wholeNanoseconds)
        if let scanned = trailers["vigil.blocks-scanned"].flatMap(Int.init) { handles.blocksScanned.increment(by: scanned) }
        if let skipped = trailers["vigil.blocks-skipped"].flatMap(Int.init) { handles.blocksSkipped.increment(by: skipped) }
    }

    /// A call ended with a status other than OK.
    func recordRejectedCall(_ code: StatusCode) {
        rejectedCalls[code]?.increment()
    }

    /// A signed checkpoint that could not be written.
    func recordCheckpointFailure() {
        checkpointFailures.increment()
    }

    /// Open groups of an alert rule dropped by its bound on them (`AlertEngine.defaultMaxGroupsPerRule`).
    func recordAlertGroupsDropped(rule: String, _ groups: Int) {
        let counter = alertGroupsDropped.withLock { counters in
            if let existing = counters[rule] { return existing }
            let made = CoreMetrics.Counter(label: MetricCatalog.alertGroupsDropped, dimensions: [("rule", rule)], factory: factory)
            counters[rule] = made
            return made
        }
        counter.increment(by: groups)
    }

    /// A connection refused before any call.
    func recordRejectedConnection(_ code: StatusCode) {
        rejectedConnections[code]?.increment()
    }

    // MARK: Sampling

    /// What a scrape reads from the server and its store.
    struct Sample: Sendable {
        var connections = 0
        var callsInFlight = 0
        var subscribers = 0
        var subscriberLagMax: UInt64 = 0
        var serving = true
        var startedAt: UnixNanos = 0
        /// When the newest checkpoint this server wrote was made (nil: none).
        var lastCheckpointAt: UnixNanos?
        var store: StoreStatistics?
    }

    func update(from sample: Sample) {
        connections.record(sample.connections)
        callsInFlight.record(sample.callsInFlight)
        subscribers.record(sample.subscribers)
        subscriberLagMax.record(sample.subscriberLagMax)
        serving.record(sample.serving ? 1 : 0)
        startTime.record(Double(sample.startedAt) / 1_000_000_000)
        checkpointLast.record(Double(sample.lastCheckpointAt ?? 0) / 1_000_000_000)
        guard let store = sample.store else { return }
        memoryEvents.record(store.memoryEvents)
        memoryBytes.record(store.memoryBytes)
        mergeBacklog.record(store.mergeBacklogParts)
        storedEvents.record(store.eventsStored)
        diskUsage.record(store.bytesOnDisk)
        partsByLevel.withLock { gauges in
            let present = Dictionary(uniqueKeysWithValues: store.partLevels.map { ($0.level, $0.parts) })
            for level in Set(gauges.keys).union(present.keys) {
                let gauge = gauges[level] ?? CoreMetrics.Gauge(
                    label: MetricCatalog.parts, dimensions: [("level", String(level))], factory: factory)
                gauges[level] = gauge
                gauge.record(present[level] ?? 0)
            }
        }
    }

    /// The registry in the Prometheus text exposition format.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
