import VigilStorage

/// Every metric Vigil exports: its name, type, help text and (histograms)
/// buckets. One list, so that the factory gives every metric its HELP line
/// and buckets whoever creates it (the server, or the storage engine through
/// swift-metrics), and the README can be checked against it.
///
/// Names follow Prometheus conventions: a `vigil_` prefix, base units
/// (seconds, bytes) in the name, `_total` on counters.
enum MetricCatalog {
    enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    struct Entry: Sendable {
        let name: String
        let kind: Kind
        let help: String
        /// Upper bounds of a histogram's buckets (seconds for durations).
        var buckets: [Double] = []
    }

    /// Latencies from half a millisecond (a batch acked by a shared fsync on
    /// a fast disk) to ten seconds (the backpressure timeout).
    static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Batches per fsync: powers of two up to far more than a busy server shares.
    static let groupSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    static let ingestEvents = "vigil_ingest_events_total"
    static let ingestBatches = "vigil_ingest_batches_total"
    static let ingestAckDuration = "vigil_ingest_ack_duration_seconds"
    static let queryDuration = "vigil_query_duration_seconds"
    static let queryBlocksScanned = "vigil_query_blocks_scanned_total"
    static let queryBlocksSkipped = "vigil_query_blocks_skipped_total"
    static let rejectedCalls = "vigil_rejected_calls_total"
    static let rejectedConnections = "vigil_rejected_connections_total"
    static let connections = "vigil_connections"
    static let callsInFlight = "vigil_calls_in_flight"
    static let subscribers = "vigil_subscribers"
    static let subscriberLagMax = "vigil_subscriber_lag_max_events"
    static let memoryEvents = "vigil_memory_events"
    static let memoryBytes = "vigil_memory_bytes"
    static let parts = "vigil_parts"
    static let mergeBacklog = "vigil_merge_backlog_parts"
    static let storedEvents = "vigil_stored_events"
    static let diskUsage = "vigil_disk_usage_bytes"
    static let serving = "vigil_serving"
    static let startTime = "vigil_start_time_seconds"
    static let buildInfo = "vigil_build_info"
    static let checkpointLast = "vigil_checkpoint_last_seconds"
    static let checkpointFailures = "vigil_checkpoint_failures_total"
    static let alertGroupsDropped = "vigil_alert_groups_dropped_total"

    static let entries: [Entry] = [
        Entry(name: ingestEvents, kind: .counter, help: "Events received in Ingest calls, by tenant and the call's status code (a refused batch stores none)."),
        Entry(name: ingestBatches, kind: .counter, help: "Ingest calls, counted once under each tenant the batch holds events of, by the call's status code."),
        Entry(name: ingestAckDuration, kind: .histogram, help: "Time from an Ingest call's start to its acknowledgement (events durable), for successful calls.", buckets: latencyBuckets),
        Entry(name: StorageMetrics.Name.walFsyncDuration, kind: .histogram, help: "Duration of each write-ahead-log fsync.", buckets: latencyBuckets),
        Entry(name: StorageMetrics.Name.walFsyncBatches, kind: .histogram, help: "Ingest batches made durable by one write-ahead-log fsync (group commit size).", buckets: groupSizeBuckets),
        Entry(name: StorageMetrics.Name.maintenanceFailures, kind: .counter, help: "Failed background rounds, each retried with its own backoff: flushes (task=\"flush\"; events wait in memory and the WAL), merges (task=\"merge\"; parts accumulate) and retention passes (task=\"retention\"; expired events stay)."),
        Entry(name: StorageMetrics.Name.writtenBytes, kind: .counter, help: "Bytes written to the write-ahead log (file=\"wal\") and to part files by flushes and merges (file=\"part\")."),
        Entry(name: queryDuration, kind: .histogram, help: "Duration of successful Query, Aggregate and Get calls, by method.", buckets: latencyBuckets),
        Entry(name: queryBlocksScanned, kind: .counter, help: "Part blocks and memory chunks whose columns Query and Aggregate calls read, by method."),
        Entry(name: queryBlocksSkipped, kind: .counter, help: "Part blocks and memory chunks Query and Aggregate calls ruled out by their statistics without reading them, by method."),
        Entry(name: rejectedCalls, kind: .counter, help: "Calls that ended with a status other than OK, by status code name."),
        Entry(name: rejectedConnections, kind: .counter, help: "Connections refused (too many connections, failed authentication), by status code name."),
        Entry(name: connections, kind: .gauge, help: "Protocol connections open."),
        Entry(name: callsInFlight, kind: .gauge, help: "Calls being served (subscriptions included)."),
        Entry(name: subscribers, kind: .gauge, help: "Subscriptions open."),
        Entry(name: subscriberLagMax, kind: .gauge, help: "Events committed after the position of the subscription furthest behind (0 without subscriptions)."),
        Entry(name: memoryEvents, kind: .gauge, help: "Events in memory segments, not yet flushed to parts."),
        Entry(name: memoryBytes, kind: .gauge, help: "Approximate bytes of the events in memory segments."),
        Entry(name: parts, kind: .gauge, help: "Parts on disk by merge level (0: as flushed)."),
        Entry(name: mergeBacklog, kind: .gauge, help: "Parts waiting to be merged (in days that reached the merge fan-in)."),
        Entry(name: storedEvents, kind: .gauge, help: "Events stored, in memory and in parts."),
        Entry(name: diskUsage, kind: .gauge, help: "Bytes of parts and write-ahead log on disk."),
        Entry(name: serving, kind: .gauge, help: "1 while the server is serving, 0 while it is not (see /readyz for why)."),
        Entry(name: startTime, kind: .gauge, help: "When the server started, in seconds since the Unix epoch."),
        Entry(name: checkpointLast, kind: .gauge, help: "When the newest signed checkpoint this server wrote was made, in seconds since the Unix epoch (0: none yet, or checkpoints are off)."),
        Entry(name: checkpointFailures, kind: .counter, help: "Signed checkpoints that could not be written (the next interval tries again)."),
        Entry(name: alertGroupsDropped, kind: .counter, help: "Open groups (a group's count in one window) an alert rule stopped tracking because it tracks at most 100,000, dropped from the tenants with the most; such a group counts from zero again, so it may not fire."),
        Entry(name: buildInfo, kind: .gauge, help: "Always 1; the version label says which Vigil this is."),
    ]

    static let byName: [String: Entry] = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
}
