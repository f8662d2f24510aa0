import CoreMetrics

/// What the storage engine measures as it works: WAL fsyncs and the bytes it
/// writes. Recorded through swift-metrics' `CoreMetrics` with the factory the
/// caller passes (the server's Prometheus registry), so the engine knows
/// nothing of Prometheus or networking, and two stores in one process (tests)
/// keep apart. Counts and sizes that can be read at any time (memory
/// segment, parts) are not here: `statistics()` reports them when asked.
///
/// Every measurement is per fsync, per batch or per file, never per event.
public struct StorageMetrics: Sendable {
    /// The metric names (Prometheus conventions: base units, `_total` counters).
    public enum Name {
        public static let walFsyncDuration = "vigil_wal_fsync_duration_seconds"
        public static let walFsyncBatches = "vigil_wal_fsync_batches"
        public static let writtenBytes = "vigil_written_bytes_total"
        public static let maintenanceFailures = "vigil_maintenance_failures_total"
    }

    /// How long each WAL fsync took.
    let walFsyncDuration: Timer
    /// Ingest batches one fsync made durable: the group commit's size.
    let walFsyncBatches: Recorder
    /// Bytes appended to the WAL (records with their headers).
    let walBytesWritten: Counter
    /// Bytes of part files written by flushes and merges.
    let partBytesWritten: Counter
    /// Failed rounds of background flushing (task="flush"), merging
    /// (task="merge") and retention (task="retention"). Each is retried with a
    /// backoff and logged, but a log line is easy to miss: a failing flush
    /// keeps events in memory until ingest is refused, a failing merge leaves
    /// queries ever more parts to read, a failing retention keeps data the
    /// operator meant to be gone.
    let flushFailures: Counter
    let mergeFailures: Counter
    let retentionFailures: Counter

    public init(factory: any MetricsFactory) {
        walFsyncDuration = Timer(label: Name.walFsyncDuration, dimensions: [], factory: factory)
        walFsyncBatches = Recorder(label: Name.walFsyncBatches, dimensions: [], aggregate: true, factory: factory)
        walBytesWritten = Counter(label: Name.writtenBytes, dimensions: [("file", "wal")], factory: factory)
        partBytesWritten = Counter(label: Name.writtenBytes, dimensions: [("file", "part")], factory: factory)
        flushFailures = Counter(label: Name.maintenanceFailures, dimensions: [("task", "flush")], factory: factory)
        mergeFailures = Counter(label: Name.maintenanceFailures, dimensions: [("task", "merge")], factory: factory)
        retentionFailures = Counter(label: Name.maintenanceFailures, dimensions: [("task", "retention")], factory: factory)
    }

    /// Records nothing: the default, for tools and tests that do not look.
    public static let disabled = StorageMetrics(factory: NOOPMetricsHandler.instance)
}
