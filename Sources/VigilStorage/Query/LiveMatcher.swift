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
        let matches = rows(in: batch, after: after)
        guard !matches.isEmpty else { return [] }
        let encoded = batch.encodedEvents(rows: matches)
        return matches.indices.map { (batch.seq(at: Int(matches[$0])), encoded[$0]) }
    }

    private func rows(in batch: MemoryChunk, after: UInt64) -> [Int32] {
        var statistics = ScanStatistics()
        var bounds = FilterEvaluation.Bounds(low: .min, high: .max, visibleSeq: .max)
        bounds.afterSeq = after
        // A memory chunk's columns are in memory: nothing here can fail.
        return (try? evaluation.select(batch, bounds, statistics: &statistics)) ?? []
    }
}
