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

    public init(firstSeq: UInt64, lastSeq: UInt64, count: Int, receivedAt: UnixNanos, replayed: Bool) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.count = count
        self.receivedAt = receivedAt
        self.replayed = replayed
    }
}

/// One page of a scan and what it cost.
public struct ScanPage: Sendable {
    /// Matching events in the requested order, at most the requested count.
    public var events: [AuditEvent]
    /// True when no matching event follows the last one returned.
    public var exhausted: Bool
    /// Rows the scan looked at to find these events.
    public var rowsExamined: Int

    public init(events: [AuditEvent], exhausted: Bool, rowsExamined: Int) {
        self.events = events
        self.exhausted = exhausted
        self.rowsExamined = rowsExamined
    }
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
    /// nothing and returns the first answer with `replayed` set.
    func append(_ events: [AuditEvent], idempotencyKey: String?) async throws(VigilError) -> AppendResult

    /// Up to `limit` events that match `filter`, in `order`, strictly after
    /// `cursor` when one is given.
    func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage

    /// The event with this id, if stored.
    func get(id: EventID) async throws(VigilError) -> AuditEvent?

    /// Background work (flushing, merging, retention) until cancelled.
    func runMaintenance() async throws

    /// Flushes and releases what the store holds; called once on shutdown,
    /// after `runMaintenance` has ended.
    func close() async throws(VigilError)
}

extension EventStore {
    public func runMaintenance() async throws {}
}
