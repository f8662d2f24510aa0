import VigilCore
import VigilProto

/// A filter compiled once for a live subscription and run against each
/// committed batch's columns (`MemoryChunk`): conditions are decided per
/// distinct value of the batch's dictionaries, and only matching rows are
/// turned into events — no per-subscriber decoding of whole batches.
public struct LiveMatcher: Sendable {
    private let evaluation: FilterEvaluation

    public init(filter: EventFilter) {
        evaluation = FilterEvaluation(filter: filter, expiryCutoff: nil)
    }

    /// The matching events of `batch` with a seq above `after`, in seq order.
    public func events(in batch: MemoryChunk, after: UInt64) -> [AuditEvent] {
        rows(in: batch, after: after).map { batch.event(at: Int($0)) }
    }

    /// The same events in protobuf binary form, with their seqs: encoded
    /// once per batch row for all subscribers (`MemoryChunk.encodedEvents(rows:)`).
    public func encodedEvents(in batch: MemoryChunk, after: UInt64) -> [(seq: UInt64, bytes: [UInt8])] {
        encodedEvents(in: batch, rows: rows(in: batch, after: after)[...])
    }

    /// The events at `rows` of `batch` (rows `rows(in:after:)` returned), in
    /// protobuf binary form with their seqs: a subscriber that sends a
    /// batch's matches a part at a time encodes only that part.
    public func encodedEvents(in batch: MemoryChunk, rows: ArraySlice<Int32>) -> [(seq: UInt64, bytes: [UInt8])] {
        guard !rows.isEmpty else { return [] }
        let encoded = batch.encodedEvents(rows: Array(rows))
        return zip(rows, encoded).map { (batch.seq(at: Int($0)), $1) }
    }

    /// The rows of `batch` that match, with a seq above `after`, in seq order.
    public func rows(in batch: MemoryChunk, after: UInt64) -> [Int32] {
        var statistics = ScanStatistics()
        var bounds = FilterEvaluation.Bounds(low: .min, high: .max, visibleSeq: .max)
        bounds.afterSeq = after
        // A memory chunk's columns are in memory: nothing here can fail.
        return (try? evaluation.select(batch, bounds, statistics: &statistics)) ?? []
    }
}
