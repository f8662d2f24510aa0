import VigilCore
import VigilProto

/// What `append` tells the caller about a stored batch.
public struct AppendResult: Sendable, Hashable {
    /// The batch's events hold seqs `firstSeq ... lastSeq`, in batch order.
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var count: Int
    /// The server time stamped on every event of the batch.
    public var receivedAt: UnixNanos
    /// True when this is the remembered answer to an earlier batch with the same idempotency key.
    public var replayed: Bool
    /// With `wantReceipts` (and not replayed): the batch's leaf hashes and the chain head after it.
    public var receipt: ChainReceipt?

    public init(firstSeq: UInt64, lastSeq: UInt64, count: Int, receivedAt: UnixNanos, replayed: Bool) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.count = count
        self.receivedAt = receivedAt
        self.replayed = replayed
    }
}

/// The proof that a batch is in the hash chain: each event's leaf hash, in
/// batch order, and the head after the batch's last event.
public struct ChainReceipt: Sendable, Hashable {
    public var leaves: [ChainDigest]
    public var head: ChainDigest

    public init(leaves: [ChainDigest], head: ChainDigest) {
        self.leaves = leaves
        self.head = head
    }
}

/// What a scan or an aggregate cost: reported to clients in trailers, and
/// the proof (in tests) that block statistics let the engine skip work.
public struct ScanStatistics: Sendable, Hashable {
    /// Part blocks and memory chunks whose columns were read.
    public var blocksScanned = 0
    /// Part blocks and memory chunks ruled out by their statistics (time
    /// range, tenants, value sets, bloom filters) without reading them.
    public var blocksSkipped = 0
    /// Part blocks answered from their statistics alone (counts).
    public var blocksFromStatistics = 0
    /// Rows whose values were compared against the filter.
    public var rowsExamined = 0
    /// Bytes inflated from compressed column chunks (cache hits cost none).
    public var bytesDecompressed = 0

    public init() {}

    public mutating func add(_ other: ScanStatistics) {
        blocksScanned += other.blocksScanned
        blocksSkipped += other.blocksSkipped
        blocksFromStatistics += other.blocksFromStatistics
        rowsExamined += other.rowsExamined
        bytesDecompressed += other.bytesDecompressed
    }

    /// The trailer metadata entries (`vigil.blocks-scanned`, …).
    public var trailerMetadata: [String: String] {
        [
            "vigil.blocks-scanned": String(blocksScanned),
            "vigil.blocks-skipped": String(blocksSkipped),
            "vigil.blocks-from-statistics": String(blocksFromStatistics),
            "vigil.rows-examined": String(rowsExamined),
            "vigil.bytes-decompressed": String(bytesDecompressed),
        ]
    }
}

/// One page of a scan and what it cost.
public struct ScanPage: Sendable {
    /// Matching events in the requested order, at most the requested count
    /// (none when the scan was asked for `encodedEvents` instead).
    public var events: [AuditEvent]
    /// The same events as their protobuf encoding, when the scan was asked
    /// for that (`EventStore.scanEncoded`); else empty.
    public var encodedEvents: [EncodedEvent] = []
    /// True when no matching event follows the last one returned.
    public var exhausted: Bool
    /// The highest seq the scan read: the cursor's `visibleSeq` when one was
    /// given, else the store's at the start of the scan. Later pages pass it
    /// back (in their cursor) to read the same snapshot.
    public var visibleSeq: UInt64
    public var statistics: ScanStatistics

    /// Rows the scan looked at to find these events.
    public var rowsExamined: Int { statistics.rowsExamined }

    public init(events: [AuditEvent], exhausted: Bool, visibleSeq: UInt64, statistics: ScanStatistics) {
        self.events = events
        self.exhausted = exhausted
        self.visibleSeq = visibleSeq
        self.statistics = statistics
    }
}

extension ScanPage {
    /// The page with its `events` moved into `encodedEvents`, encoded by swift-protobuf.
    func encodingEvents() throws(VigilError) -> ScanPage {
        var page = self
        do {
            page.encodedEvents = try events.map { event in
                EncodedEvent(bytes: try event.serializedBytes(), occurredAt: event.occurredAt.unixNanos, seq: event.seq)
            }
        } catch {
            throw VigilError(.internal, "a stored event does not encode: \(error)")
        }
        page.events = []
        return page
    }
}

/// A stored event as protobuf bytes (`AuditEvent`'s encoding, canonical
/// unless the event holds unknown fields), with the keys a query cursor is
/// made of: what a query page sends, without building the event.
public struct EncodedEvent: Sendable, Equatable {
    public var bytes: [UInt8]
    /// occurred_at in nanoseconds since the epoch.
    public var occurredAt: Int64
    public var seq: UInt64

    public init(bytes: [UInt8], occurredAt: Int64, seq: UInt64) {
        self.bytes = bytes
        self.occurredAt = occurredAt
        self.seq = seq
    }
}

/// The field an aggregate groups by.
public enum GroupField: Sendable, Hashable, CaseIterable {
    case action, actorID, resourceType, outcome, tenant, category, sourceIP
}

/// What to count.
public struct AggregateQuery: Sendable {
    public var filter: EventFilter
    public var groupBy: GroupField?
    /// Histogram bucket width in nanoseconds; buckets start at multiples of it.
    public var histogramWidth: Int64?
    /// Refuse (INVALID_ARGUMENT) a histogram that would have more buckets than
    /// this, before counting: the buckets are held in memory while counting.
    public var maxHistogramBuckets: Int?
    /// Refuse (RESOURCE_EXHAUSTED) a group-by that finds more distinct values
    /// than this, as soon as it does: every group is held in memory (per
    /// counting lane) until the answer is built, and an actor, address or
    /// id column over millions of events has millions of them.
    public var maxGroups: Int?

    public init(filter: EventFilter, groupBy: GroupField? = nil, histogramWidth: Int64? = nil) {
        self.filter = filter
        self.groupBy = groupBy
        self.histogramWidth = histogramWidth
    }
}

/// The counts of an aggregate.
public struct AggregateResult: Sendable {
    /// Matching events.
    public var count: UInt64 = 0
    /// With `groupBy`: every group's count, keyed by the field's value (enums
    /// by their protobuf name, `SUCCESS`; an empty value by ""), compared by
    /// bytes so that canonically equivalent spellings stay separate groups.
    public var groups: [ExactString: UInt64] = [:]
    /// With `histogramWidth`: count per bucket, keyed by the bucket's start.
    /// Only buckets holding a match appear.
    public var histogram: [Int64: UInt64] = [:]
    public var statistics = ScanStatistics()

    public init() {}
}

/// The storage engine as the server sees it. Events are ordered by
/// (occurred_at, seq), a key no two events share; pages are asked for "after
/// this key", so a result can be paged through while ingest goes on without a
/// repeat or a gap.
public protocol EventStore: Sendable {
    /// Stores validated events atomically: all of them or, on a thrown error,
    /// none. Assigns each event's seq, its id when empty, and received_at.
    /// Returns only once the events are durable and visible to `scan` and `get`.
    /// With an idempotency key seen before (within the store's window), stores
    /// nothing and returns the first answer with `replayed` set. With
    /// `wantReceipts`, a new batch's result carries its `receipt`.
    func append(_ events: [AuditEvent], idempotencyKey: String?, wantReceipts: Bool) async throws(VigilError) -> AppendResult

    /// `append`, given the events' protobuf encoding as well (taken from the
    /// request), which a store that logs them may write instead of encoding
    /// them again. `encoded` must hold exactly `events`.
    func append(
        _ events: [AuditEvent], encoded: EncodedEvents?, idempotencyKey: String?, wantReceipts: Bool
    ) async throws(VigilError) -> AppendResult

    /// `append` of a batch decoded straight into columns (`IngestWireDecoder`).
    func append(_ batch: WireIngestBatch) async throws(VigilError) -> AppendResult

    /// The answer `append` would give a retry of the batch of `tenants` sent
    /// with `idempotencyKey` (`replayed` set, once that batch is durable),
    /// or nil when no such batch is remembered: lets the server answer a
    /// retry before charging its rate limit.
    func earlierAnswer(idempotencyKey: String, tenants: some Sequence<String>) async throws(VigilError) -> AppendResult?

    /// Up to `limit` events that match `filter`, in `order`, strictly after
    /// `cursor` when one is given — and then only events with a seq up to the
    /// cursor's `visibleSeq`, so that every page reads the first page's snapshot.
    func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage

    /// `scan`, with the page's events in `encodedEvents` (as protobuf bytes)
    /// instead of `events`: what the Query call sends.
    func scanEncoded(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage

    /// Counts the events `query.filter` selects, grouped and bucketed as
    /// asked. Ends with CANCELLED promptly when the calling task is cancelled.
    func aggregate(_ query: AggregateQuery) async throws(VigilError) -> AggregateResult

    /// Up to `limit` matching events with `after < seq <= through`, in seq
    /// order (how a subscriber catches up).
    func scanBySeq(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage

    /// `scanBySeq`, with the page's events in `encodedEvents` instead of `events`:
    /// what a subscription's catch-up sends.
    func scanBySeqEncoded(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage

    /// Durable batches as they commit, for live subscribers.
    var feed: CommitFeed { get }

    /// The event with this id, if stored.
    func get(id: EventID) async throws(VigilError) -> AuditEvent?

    /// The event with this id among those of tenants `tenantAllowed` accepts.
    /// Client-chosen ids are unique only within a batch, so another tenant's
    /// event may carry the same id: skipped, it must not hide the caller's.
    func get(id: EventID, tenantAllowed: @Sendable (String) -> Bool) async throws(VigilError) -> AuditEvent?

    /// Background work (flushing, merging, retention) until cancelled.
    func runMaintenance() async throws

    /// Flushes and releases what the store holds; called once on shutdown,
    /// after `runMaintenance` has ended.
    func close() async throws(VigilError)

    /// The hash chain's head through every durable event (for checkpoints).
    func chainHead() async throws(VigilError) -> (seq: UInt64, head: ChainDigest)

    /// Where the chain starts after retention removed every event up to
    /// `seq` (nil when it starts at the beginning): the checkpoint at the cut.
    func chainCut() -> (seq: UInt64, head: ChainDigest)?

    /// Recomputes the chain over what is stored and reports every problem.
    func verify(_ options: VerificationOptions) async throws(VigilError) -> IntegrityReport

    /// Sets how long `tenant`'s events are kept (nil tenant: the default).
    /// For a tenant, nil removes its own setting; for the default, nil keeps
    /// everything. Returns the retention in effect for it before and after
    /// (nil: forever).
    func setRetention(tenant: String?, nanos: Int64?) async throws(VigilError) -> (before: Int64?, after: Int64?)

    /// The retention the store applies now; nil when it applies none.
    var retentionInForce: RetentionSettings.Values? { get }

    /// Counts and sizes for `GetStats`.
    func statistics() async throws(VigilError) -> StoreStatistics

    /// Why the store cannot serve right now, one sentence each (empty: it
    /// can). The server's `Health` call and `/readyz` report them.
    var healthProblems: [String] { get }

    /// Writes a consistent backup to `options.destination` while ingest goes on.
    func backup(_ options: BackupOptions) async throws(VigilError) -> BackupResult
}

/// What `GetStats` reports of the store.
public struct StoreStatistics: Sendable {
    /// Events held (including any that retention hides but has not deleted yet).
    public var eventsStored: UInt64 = 0
    public var lastSeq: UInt64 = 0
    /// Parts and WAL.
    public var bytesOnDisk: UInt64 = 0
    public var parts = 0
    /// Events (and their approximate bytes) in memory, not yet in parts.
    public var memoryEvents: UInt64 = 0
    public var memoryBytes: UInt64 = 0
    /// Parts by merge level (0: as flushed), levels without parts left out.
    public var partLevels: [PartLevelStatistics] = []
    /// Parts waiting for a merge: those of days that reached the merge
    /// fan-in, but for parts too large to merge with any other of their day.
    public var mergeBacklogParts: UInt64 = 0

    public init() {}
}

/// The parts at one merge level.
public struct PartLevelStatistics: Sendable, Hashable {
    public var level: UInt32
    public var parts: UInt64 = 0
    public var events: UInt64 = 0
    public var bytes: UInt64 = 0

    public init(level: UInt32) {
        self.level = level
    }
}

extension EventStore {
    public func runMaintenance() async throws {}

    /// A store that remembers no keys apart from `append` knows of none.
    public func earlierAnswer(idempotencyKey: String, tenants: some Sequence<String>) async throws(VigilError) -> AppendResult? { nil }

    /// A store that keeps one event per id answers with it, if allowed.
    public func get(id: EventID, tenantAllowed: @Sendable (String) -> Bool) async throws(VigilError) -> AuditEvent? {
        guard let event = try await get(id: id), tenantAllowed(event.tenant) else { return nil }
        return event
    }

    /// A store without a column path encodes the events `scan` builds.
    public func scanEncoded(
        filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int
    ) async throws(VigilError) -> ScanPage {
        try await scan(filter: filter, order: order, after: cursor, limit: limit).encodingEvents()
    }

    /// A store without a column path encodes the events `scanBySeq` builds.
    public func scanBySeqEncoded(
        filter: EventFilter, after: UInt64, through: UInt64, limit: Int
    ) async throws(VigilError) -> ScanPage {
        try await scanBySeq(filter: filter, after: after, through: through, limit: limit).encodingEvents()
    }

    /// A store without a column path takes the batch's events, decoded again.
    public func append(_ batch: WireIngestBatch) async throws(VigilError) -> AppendResult {
        let events: [AuditEvent]
        do {
            events = try Vigil_V1_WalBatch(serializedBytes: batch.encoded.bytes).events
        } catch {
            throw VigilError(.internal, "the decoded batch's events do not decode again: \(error)")
        }
        return try await append(
            events, encoded: batch.encoded, idempotencyKey: batch.idempotencyKey.isEmpty ? nil : batch.idempotencyKey,
            wantReceipts: batch.wantReceipts)
    }

    public func setRetention(tenant: String?, nanos: Int64?) async throws(VigilError) -> (before: Int64?, after: Int64?) {
        throw VigilError(.unimplemented, "this store does not support changing retention")
    }

    public func statistics() async throws(VigilError) -> StoreStatistics {
        throw VigilError(.unimplemented, "this store keeps no statistics")
    }

    public var retentionInForce: RetentionSettings.Values? { nil }

    public var healthProblems: [String] { [] }

    public func backup(_ options: BackupOptions) async throws(VigilError) -> BackupResult {
        throw VigilError(.unimplemented, "this store cannot be backed up")
    }

    public func append(
        _ events: [AuditEvent], encoded: EncodedEvents?, idempotencyKey: String?, wantReceipts: Bool
    ) async throws(VigilError) -> AppendResult {
        try await append(events, idempotencyKey: idempotencyKey, wantReceipts: wantReceipts)
    }

    /// `append` without receipts.
    public func append(_ events: [AuditEvent], idempotencyKey: String?) async throws(VigilError) -> AppendResult {
        try await append(events, idempotencyKey: idempotencyKey, wantReceipts: false)
    }
}
