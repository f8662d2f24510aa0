import VigilCore
import VigilProto

/// One page of a query over a snapshot. Sources (memory chunks and part
/// blocks) that cannot match are skipped by their statistics; the rest are
/// visited best-first — newest first by their newest row, oldest first by
/// their oldest, or (for subscriptions' catch-up) by their lowest seq — so
/// that the scan stops as soon as no unvisited source can hold an event that
/// belongs in the page. Only the keys of matching rows are collected; the
/// events themselves are materialized for the page alone.
struct QueryExecution: Sendable {
    /// The order of a page.
    enum Ordering: Sendable {
        /// By (occurred_at, seq), after a query cursor.
        case time(newestFirst: Bool, cursor: QueryCursor?)
        /// By seq, after this seq.
        case seq(after: UInt64)
    }

    let snapshot: ColumnarEventStore.Snapshot
    let evaluation: FilterEvaluation
    let cache: ColumnCache
    let ordering: Ordering
    let limit: Int
    /// Checked between sources: a cancelled call stops promptly.
    let isCancelled: @Sendable () -> Bool

    typealias Key = FilterEvaluation.Key

    /// Concurrent lanes for scans over many sources.
    let threads: Int

    /// Whether the page's events come as `AuditEvent`s or as their protobuf
    /// bytes (`ScanPage.encodedEvents`).
    var encoded = false

    /// One source's matching rows.
    private struct Evaluated: @unchecked Sendable {
        // The source is made and read by one task, then handed over whole.
        var index: Int
        var source: any RowSource
        var rows: [Int32]
        var statistics: ScanStatistics
    }

    /// Evaluates the sources of `wave`, concurrently when there are several.
    private func evaluate(
        _ sources: [SourcePlan.Candidate], _ wave: Range<Int>, _ bounds: FilterEvaluation.Bounds
    ) async throws(VigilError) -> [Evaluated] {
        let evaluation = evaluation
        let cache = cache
        @Sendable func one(_ index: Int) throws(VigilError) -> Evaluated {
            let source = sources[index].open(cache)
            var statistics = ScanStatistics()
            statistics.blocksScanned = 1
            let rows = try evaluation.select(source, bounds, statistics: &statistics)
            statistics.bytesDecompressed += source.inflatedBytes
            return Evaluated(index: index, source: source, rows: rows, statistics: statistics)
        }
        let lanes = min(threads, wave.count)
        if lanes <= 1 { return try wave.map { (index) throws(VigilError) in try one(index) } }
        // One task per thread, each taking every lanes-th source of the wave.
        let results = await withTaskGroup(of: Result<[Evaluated], VigilError>.self) { group in
            for lane in 0..<lanes {
                let share = Array(stride(from: wave.lowerBound + lane, to: wave.upperBound, by: lanes))
                group.addTask {
                    do throws(VigilError) {
                        return .success(try share.map { (index) throws(VigilError) in try one(index) })
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Result<[Evaluated], VigilError>] = []
            for await result in group {
                all.append(result)
                if case .failure = result { group.cancelAll() }
            }
            return all
        }
        var evaluated: [Evaluated] = []
        for result in results { evaluated += try result.get() }
        return evaluated.sorted { $0.index < $1.index }
    }

    func run() async throws(VigilError) -> ScanPage {
        let filter = evaluation.filter
        var statistics = ScanStatistics()
        // The time range a row must lie in, narrowed by the cursor.
        var low = filter.since
        var high = filter.until == .max ? Int64.max : filter.until - 1  // inclusive
        var newestFirst = false
        var afterSeq: UInt64?
        switch ordering {
        case .time(let newest, let cursor):
            newestFirst = newest
            if let cursor {
                if newestFirst { high = min(high, cursor.occurredAt) } else { low = max(low, cursor.occurredAt) }
            }
        case .seq(let after):
            afterSeq = after
        }
        let visibleSeq = snapshot.visibleSeq
        guard low <= high, afterSeq.map({ $0 < visibleSeq }) ?? true else {
            return ScanPage(events: [], exhausted: true, visibleSeq: visibleSeq, statistics: statistics)
        }
        let plan = SourcePlan(
            snapshot: snapshot, evaluation: evaluation, low: low, high: high, afterSeq: afterSeq ?? 0, statistics: &statistics)
        var sources = plan.sources
        switch ordering {
        case .time: sources.sort { newestFirst ? $0.newest > $1.newest : $0.oldest < $1.oldest }
        case .seq: sources.sort { $0.minSeq < $1.minSeq }
        }

        var bounds = FilterEvaluation.Bounds(low: low, high: high, visibleSeq: visibleSeq, newestFirst: newestFirst)
        if case .time(_, let cursor?) = ordering { bounds.after = Key(time: cursor.occurredAt, seq: cursor.seq) }
        bounds.afterSeq = afterSeq
        var found: [(key: Key, source: Int, row: Int32)] = []
        let wanted = limit + 1  // one more than the page, to know whether more follow
        var opened: [Int: any RowSource] = [:]

        var index = 0
        var waveSize = 1
        while index < sources.count {
            if found.count >= wanted {
                sortAndTrim(&found, to: wanted)
                let worst = found[wanted - 1].key
                // Every row of this source (and of the ones after it) is worse.
                let candidate = sources[index]
                let worse: Bool
                switch ordering {
                case .time: worse = newestFirst ? candidate.newest < worst.time : candidate.oldest > worst.time
                case .seq: worse = candidate.minSeq > worst.seq
                }
                if worse { break }
                waveSize = 1
            }
            if isCancelled() { throw VigilError(.cancelled, "the query was cancelled") }
            // The first source alone (a point query is often done after it);
            // then, while matches are scarce, one source per thread at a time.
            let wave = index..<min(sources.count, index + waveSize)
            let results = try await evaluate(sources, wave, bounds)
            for result in results {
                statistics.add(result.statistics)
                guard !result.rows.isEmpty else { continue }
                let times = try result.source.times()
                let seqs = try result.source.seqs()
                for row in result.rows {
                    found.append((Key(time: times[Int(row)], seq: seqs[Int(row)]), result.index, row))
                }
                opened[result.index] = result.source
            }
            if found.count > wanted * 4 {
                sortAndTrim(&found, to: wanted)
                // Let go of sources none of the kept rows come from (and their decoded columns).
                let kept = Set(found.map(\.source))
                opened = opened.filter { kept.contains($0.key) }
            }
            index = wave.upperBound
            // Matches are scarce: a wave per thread, several sources each,
            // so that thread hand-offs stay few.
            if found.count < wanted { waveSize = threads * 4 }
        }
        sortAndTrim(&found, to: wanted)
        let more = found.count > limit  // also after an early stop, which needs a full page and one more
        if encoded {
            var page = ScanPage(events: [], exhausted: !more, visibleSeq: visibleSeq, statistics: statistics)
            page.encodedEvents = try encodedEvents(found.prefix(limit), opened: opened, statistics: &page.statistics)
            return page
        }
        var events: [AuditEvent] = []
        events.reserveCapacity(min(limit, found.count))
        for entry in found.prefix(limit) {
            guard let source = opened[entry.source] else { preconditionFailure("a found row's source was opened") }
            let before = source.inflatedBytes
            events.append(try source.event(at: Int(entry.row)))
            statistics.bytesDecompressed += source.inflatedBytes - before
        }
        return ScanPage(events: events, exhausted: !more, visibleSeq: visibleSeq, statistics: statistics)
    }

    /// The page's rows as protobuf bytes, in page order: each source writes
    /// its rows together (its columns looked up once).
    private func encodedEvents(
        _ page: ArraySlice<(key: Key, source: Int, row: Int32)>, opened: [Int: any RowSource], statistics: inout ScanStatistics
    ) throws(VigilError) -> [EncodedEvent] {
        var positions: [Int: [Int]] = [:]
        for (position, entry) in zip(0..., page) { positions[entry.source, default: []].append(position) }
        var encoded = [EncodedEvent](repeating: EncodedEvent(bytes: [], occurredAt: 0, seq: 0), count: page.count)
        for (sourceIndex, sourcePositions) in positions {
            guard let source = opened[sourceIndex] else { preconditionFailure("a found row's source was opened") }
            let before = source.inflatedBytes
            let rows = sourcePositions.map { page[page.startIndex + $0].row }
            let bytes = try source.pageEvents(rows: rows)
            for (position, eventBytes) in zip(sourcePositions, bytes) {
                let key = page[page.startIndex + position].key
                // Every stored event has a seq at least: no bytes means it did not encode.
                guard !eventBytes.isEmpty else { throw VigilError(.internal, "the event at seq \(key.seq) did not encode") }
                encoded[position] = EncodedEvent(bytes: eventBytes, occurredAt: key.time, seq: key.seq)
            }
            statistics.bytesDecompressed += source.inflatedBytes - before
        }
        return encoded
    }

    private func sortAndTrim(_ found: inout [(key: Key, source: Int, row: Int32)], to count: Int) {
        switch ordering {
        case .time(newestFirst: true, _): found.sort { $0.key > $1.key }
        case .time(newestFirst: false, _): found.sort { $0.key < $1.key }
        case .seq: found.sort { $0.key.seq < $1.key.seq }
        }
        if found.count > count { found.removeLast(found.count - count) }
    }
}

/// The sources of a snapshot that may hold a match in a time window, after
/// skipping by statistics (counted in `blocksSkipped`).
struct SourcePlan {
    struct Candidate: Sendable {
        var newest: Int64
        var oldest: Int64
        var minSeq: UInt64
        var origin: Origin

        enum Origin: Sendable {
            case chunk(MemoryChunk)
            case block(PartReader, Int)
        }

        /// The part block's metadata (nil for a memory chunk).
        var block: BlockMetadata? {
            guard case .block(let reader, let index) = origin else { return nil }
            return reader.blocks[index]
        }

        func open(_ cache: ColumnCache) -> any RowSource {
            switch origin {
            case .chunk(let chunk): chunk
            case .block(let reader, let index): PartBlockSource(reader: reader, block: reader.blocks[index], cache: cache)
            }
        }
    }

    var sources: [Candidate] = []

    init(
        snapshot: ColumnarEventStore.Snapshot, evaluation: FilterEvaluation,
        low: Int64, high: Int64, afterSeq: UInt64 = 0, statistics: inout ScanStatistics
    ) {
        let visibleSeq = snapshot.visibleSeq
        for chunk in snapshot.chunks {
            guard chunk.maxOccurredAt >= low, chunk.minOccurredAt <= high, chunk.firstSeq <= visibleSeq, chunk.lastSeq > afterSeq,
                evaluation.chunkMayMatch(chunk)
            else {
                statistics.blocksSkipped += 1
                continue
            }
            sources.append(
                Candidate(newest: chunk.maxOccurredAt, oldest: chunk.minOccurredAt, minSeq: chunk.firstSeq, origin: .chunk(chunk)))
        }
        for part in snapshot.parts {
            let reader = part.reader
            guard part.entry.maxOccurredAt >= low, part.entry.minOccurredAt <= high, part.entry.minSeq <= visibleSeq,
                part.entry.maxSeq > afterSeq
            else {
                statistics.blocksSkipped += reader.blocks.count
                continue
            }
            reader.blockBounds.withUnsafeBufferPointer { bounds in
                for (index, block) in bounds.enumerated() {
                    guard block.maxOccurredAt >= low, block.minOccurredAt <= high, block.minSeq <= visibleSeq, block.maxSeq > afterSeq,
                        evaluation.blockMayMatch(reader.blocks[index])
                    else {
                        statistics.blocksSkipped += 1
                        continue
                    }
                    sources.append(
                        Candidate(
                            newest: block.maxOccurredAt, oldest: block.minOccurredAt, minSeq: block.minSeq, origin: .block(reader, index)))
                }
            }
        }
    }
}
