import VigilCore

/// How the storage engine behaves. Every limit bounds memory, disk or time,
/// and says why it has its default.
public struct StorageOptions: Sendable {
    /// The data directory (created if missing). Holds MANIFEST, wal/, parts/, keys/.
    public var directory: String
    /// When an ingest is acknowledged relative to its WAL fsync.
    public var sync: SyncPolicy = .always
    /// WAL segment size: a flushed segment's WAL is deleted whole, so smaller
    /// segments free disk sooner; larger ones mean fewer files.
    public var walSegmentBytes = 64 * 1024 * 1024
    /// The memory segment is sealed (and flushed to parts) at this many rows...
    public var segmentMaxRows = 500_000
    /// ...or this many bytes of column data...
    public var segmentMaxBytes = 128 * 1024 * 1024
    /// ...or when its oldest batch is this old, so that the WAL to replay after
    /// a crash stays short.
    public var segmentMaxAge: Duration = .seconds(60)
    /// A sealed segment is flushed in the background — on threads at a low
    /// priority (nice 10), so that acks, live deliveries and queries take the
    /// cores first — when it took at least this long to fill and a background
    /// flush of it, at the wall time per row the last one took, would end
    /// within half the time it took to fill (vigil-bench subscribe, 100
    /// subscribers at 50,000 events/s: delivery p99 7–12 ms, not 240–660; at
    /// 75,000, 2.9 ms, not 0.11–0.43 s, once segments that filled in 4.6 s
    /// qualified). Other flushes run at normal priority: ingest that fast
    /// would outrun a flush that yields to it, fill the memory budget and
    /// then wait for that flush (vigil-bench ingest with every flush in the
    /// background: ack p99 1.3 s, not 0.2).
    public var backgroundFlushFillTime: Duration = .seconds(2)
    /// The wall time per row a background flush is assumed to take before
    /// one has been timed: about what one took on the 2-core machine of the
    /// README beside 100 subscribers at 75,000 events/s.
    var backgroundFlushAssumedNanosPerRow: Int64 = 5_000
    /// Memory for unflushed events (the active segment plus sealed ones waiting
    /// for their flush). Past it, ingest waits for a flush (backpressure), and
    /// after `backpressureTimeout` answers RESOURCE_EXHAUSTED.
    public var memoryBudgetBytes = 512 * 1024 * 1024
    public var backpressureTimeout: Duration = .seconds(10)
    /// Rows per block in parts: large enough for compression to pay, small
    /// enough that a point lookup decodes little.
    public var rowsPerBlock = 4096
    /// A day with this many parts has them merged into one.
    public var mergeFanIn = 8
    /// The most rows one merge rewrites: a bound on the parts merges make
    /// and on the work of one merge, not on memory (a merge reads its parts
    /// a block at a time; what it holds, a decoded block of each input and
    /// the window it writes, is bounded by half of `memoryBudgetBytes`).
    public var mergeMaxRows = 2_000_000
    /// Whether a merge copies, as they are stored, the blocks whose rows it
    /// takes whole and in order (`PartFileWriter.appendStored`), rather than
    /// decoding and encoding them again (tests and `vigil-bench merge
    /// --no-copy-blocks` compare the two).
    public var mergeCopiesBlocks = true
    /// How long without an appended batch before a merge encodes on every
    /// core instead of one (tests set 0 or `.max`).
    var mergeIdleNanos: Int64 = 1_000_000_000
    /// How long events are kept (by occurred_at); nil keeps them forever.
    public var retentionNanos: Int64? = 90 * 86_400 * 1_000_000_000
    /// Per-tenant overrides of `retentionNanos`.
    public var tenantRetentionNanos: [String: Int64] = [:]
    /// Expired parts are moved here instead of deleted.
    public var archiveDirectory: String?
    /// Signs a retention statement for every removal of events before it
    /// commits (`RetentionStatements`); nil: removals are not attested.
    public var retentionSigner: RetentionStatements.Signer?
    /// When set, changes of retention are refused (FAILED_PRECONDITION)
    /// with this reason: a server without the key whose checkpoint
    /// directory holds signed settings, which the next start with the key
    /// would put back over its changes.
    public var retentionChangesRefused: String?
    /// A checkpoint directory with signed retention settings, for a store
    /// without `retentionSigner`: its start checks `RETENTION` against them
    /// (under the key each carries) and puts the signed one back, as a
    /// signing store does, without signing anything.
    public var retentionSettingsDirectory: String?
    /// Start even when the WAL is corrupt in the middle, cutting it at the last good record.
    public var repair = false
    /// Decoded block columns kept for queries: repeated and paged queries
    /// over the same blocks skip reading and inflating them again. Counted
    /// apart from `memoryBudgetBytes` (it holds no unflushed events).
    public var queryCacheBytes = 256 * 1024 * 1024
    /// Committed batches kept in memory for live subscribers (`CommitFeed`),
    /// counting their columns and their events encoded once for delivery:
    /// a subscriber further behind than this reads the store instead, so the
    /// slowest subscriber costs no more memory than this.
    public var liveFeedBytes = 64 * 1024 * 1024
    /// How long idempotency keys are remembered.
    public var idempotencyWindowNanos: Int64 = 24 * 3600 * 1_000_000_000
    /// Most idempotency keys remembered.
    public var idempotencyMaxKeys = 1_000_000
    /// Where the engine records its measurements (WAL fsyncs, bytes
    /// written); the server passes its registry's factory.
    public var metrics: StorageMetrics = .disabled

    /// Ingest is refused (UNAVAILABLE, "the data disk is full") while the
    /// data directory's file system has less than this free, so that the
    /// flushes, merges, checkpoints and retention that free or need space can
    /// still finish. 64 MiB holds the part of a full memory segment (about
    /// 75 bytes per event for 500,000 events) plus its metadata. 0: no
    /// reserve, ingest stops only when a write fails with ENOSPC.
    public var minFreeDiskBytes = 64 * 1024 * 1024
    /// Told about refusals starting and ending and about failed maintenance
    /// (the server logs them). Called on the thread that noticed the change:
    /// it must return quickly and must not call back into the store.
    public var eventHandler: (@Sendable (StorageEvent) -> Void)?

    public init(directory: String) {
        self.directory = directory
    }

    /// The retention of `tenant`, or nil for forever.
    func retention(of tenant: String) -> Int64? {
        tenantRetentionNanos[tenant] ?? retentionNanos
    }
}
