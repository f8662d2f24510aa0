import VigilCore
import VigilProto

/// One page of a query over a snapshot. Sources (memory chunks and part
/// blocks) that cannot match are skipped by their statistics; the rest are
/// visited best-first — newest first by their newest row, or oldest first by
/// their oldest — so that the scan stops as soon as no unvisited source can
/// hold an event that belongs in the page. Only the keys of matching rows
/// are collected; the events themselves are materialized for the page alone.
struct QueryExecution {
    let snapshot: ColumnarEventStore.Snapshot
    let evaluation: FilterEvaluation
    let cache: ColumnCache
    let newestFirst: Bool
    let cursor: QueryCursor?
    let limit: Int
    /// Checked between sources: a cancelled call stops promptly.
    let isCancelled: @Sendable () -> Bool

    typealias Key = FilterEvaluation.Key

    func run() throws(VigilError) -> ScanPage {
        let filter = evaluation.filter
        var statistics = ScanStatistics()
        // The time range a row must lie in, narrowed by the cursor.
        var low = filter.since
        var high = filter.until == .max ? Int64.max : filter.until - 1  // inclusive
        if let cursor {
            if newestFirst { high = min(high, cursor.occurredAt) } else { low = max(low, cursor.occurredAt) }
        }
        let visibleSeq = snapshot.visibleSeq
        guard low <= high else {
            return ScanPage(events: [], exhausted: true, visibleSeq: visibleSeq, statistics: statistics)
        }
        let plan = SourcePlan(snapshot: snapshot, evaluation: evaluation, cache: cache, low: low, high: high, statistics: &statistics)
        var sources = plan.sources
        sources.sort { newestFirst ? $0.newest > $1.newest : $0.oldest < $1.oldest }

        var bounds = FilterEvaluation.Bounds(low: low, high: high, visibleSeq: visibleSeq, newestFirst: newestFirst)
        bounds.after = cursor.map { Key(time: $0.occurredAt, seq: $0.seq) }
        var found: [(key: Key, source: Int, row: Int32)] = []
        let wanted = limit + 1  // one more than the page, to know whether more follow
        var stoppedEarly = false
        var opened: [Int: any RowSource] = [:]

        for (index, candidate) in sources.enumerated() {
            if found.count >= wanted {
                sortAndTrim(&found, to: wanted)
                let worst = found[wanted - 1].key.time
                // Every row of this source (and of the ones after it) is worse.
                if newestFirst ? candidate.newest < worst : candidate.oldest > worst {
                    stoppedEarly = true
                    statistics.blocksSkipped += sources.count - index
                    break
                }
            }
            if isCancelled() { throw VigilError(.cancelled, "the query was cancelled") }
            let source = candidate.open()
            statistics.blocksScanned += 1
            let rows = try evaluation.select(source, bounds, statistics: &statistics)
            statistics.bytesDecompressed += source.inflatedBytes
            guard !rows.isEmpty else { continue }
            let times = try source.times()
            let seqs = try source.seqs()
            for row in rows {
                found.append((Key(time: times[Int(row)], seq: seqs[Int(row)]), index, row))
            }
            opened[index] = source
            if found.count > wanted * 4 { sortAndTrim(&found, to: wanted) }
        }
        sortAndTrim(&found, to: wanted)
        let more = found.count > limit || stoppedEarly
        var events: [AuditEvent] = []
        events.reserveCapacity(min(limit, found.count))
        for entry in found.prefix(limit) {
            let source = opened[entry.source]!
            let before = source.inflatedBytes
            events.append(try source.event(at: Int(entry.row)))
            statistics.bytesDecompressed += source.inflatedBytes - before
        }
        return ScanPage(events: events, exhausted: !more, visibleSeq: visibleSeq, statistics: statistics)
    }

    private func sortAndTrim(_ found: inout [(key: Key, source: Int, row: Int32)], to count: Int) {
        if newestFirst { found.sort { $0.key > $1.key } } else { found.sort { $0.key < $1.key } }
        if found.count > count { found.removeLast(found.count - count) }
    }
}

/// The sources of a snapshot that may hold a match in a time window, after
/// skipping by statistics (counted in `blocksSkipped`).
struct SourcePlan {
    struct Candidate: Sendable {
        var newest: Int64
        var oldest: Int64
        var block: BlockMetadata?
        var open: @Sendable () -> any RowSource
    }

    var sources: [Candidate] = []

    init(
        snapshot: ColumnarEventStore.Snapshot, evaluation: FilterEvaluation, cache: ColumnCache,
        low: Int64, high: Int64, statistics: inout ScanStatistics
    ) {
        let visibleSeq = snapshot.visibleSeq
        for chunk in snapshot.chunks {
            guard chunk.maxOccurredAt >= low, chunk.minOccurredAt <= high, chunk.firstSeq <= visibleSeq,
                evaluation.chunkMayMatch(chunk)
            else {
                statistics.blocksSkipped += 1
                continue
            }
            sources.append(Candidate(newest: chunk.maxOccurredAt, oldest: chunk.minOccurredAt, block: nil, open: { chunk }))
        }
        for part in snapshot.parts {
            let reader = part.reader
            guard part.entry.maxOccurredAt >= low, part.entry.minOccurredAt <= high, part.entry.minSeq <= visibleSeq else {
                statistics.blocksSkipped += reader.blocks.count
                continue
            }
            for block in reader.blocks {
                guard block.maxOccurredAt >= low, block.minOccurredAt <= high, block.minSeq <= visibleSeq,
                    evaluation.blockMayMatch(block)
                else {
                    statistics.blocksSkipped += 1
                    continue
                }
                sources.append(
                    Candidate(
                        newest: block.maxOccurredAt, oldest: block.minOccurredAt, block: block,
                        open: { PartBlockSource(reader: reader, block: block, cache: cache) }))
            }
        }
    }
}
