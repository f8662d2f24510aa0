import VigilCore
import VigilProto

/// Counts, groups and a histogram of the events a filter selects, over a
/// snapshot. A part block that lies wholly inside the time range, holds only
/// selected tenants, and whose remaining conditions and group-by touch only
/// one counted column (`valueCounts` / `enumCounts` statistics) is answered
/// from its footer statistics without reading a byte of it; every other
/// source is filtered column by column and counted from its columns.
struct AggregateExecution: Sendable {
    let snapshot: ColumnarEventStore.Snapshot
    let evaluation: FilterEvaluation
    let cache: ColumnCache
    let query: AggregateQuery
    let isCancelled: @Sendable () -> Bool

    /// Sources below this many are counted on one thread: splitting costs
    /// more than it saves on small scans.
    static let parallelThreshold = 32

    /// Plans the sources and counts them, split over up to `threads`
    /// concurrent tasks (each on the query executor) when there are many.
    func run(threads: Int) async throws(VigilError) -> AggregateResult {
        let filter = evaluation.filter
        var result = AggregateResult()
        let low = filter.since
        let high = filter.until == .max ? Int64.max : filter.until - 1
        guard low <= high else { return result }
        let plan = SourcePlan(snapshot: snapshot, evaluation: evaluation, low: low, high: high, statistics: &result.statistics)
        let sources = plan.sources
        // The histogram's span (first to last non-empty bucket) is checked by
        // the caller once counted. Not here from the candidates' time span:
        // a narrow filter (one trace, one action) was refused because other
        // events of the same blocks spread over months. While counting, more
        // non-empty buckets than the limit already mean a span over it, and
        // stop the count before its buckets grow without bound.
        let lanes = sources.count >= Self.parallelThreshold ? max(1, threads) : 1
        if lanes == 1 {
            try count(sources[...], into: &result)
            return result
        }
        // Interleaved lanes, so that each gets a similar mix of old and new blocks.
        let partials = await withTaskGroup(of: Result<AggregateResult, VigilError>.self) { group in
            for lane in 0..<lanes {
                let share = stride(from: lane, to: sources.count, by: lanes).map { sources[$0] }
                group.addTask {
                    var partial = AggregateResult()
                    do throws(VigilError) {
                        try count(share[...], into: &partial)
                        return .success(partial)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Result<AggregateResult, VigilError>] = []
            for await partial in group {
                all.append(partial)
                if case .failure = partial { group.cancelAll() }  // the answer is an error now: stop the other lanes
            }
            return all
        }
        for partial in partials {
            let counted = try partial.get()
            result.count += counted.count
            for (key, value) in counted.groups { result.groups[key, default: 0] += value }
            try checkGroups(result.groups)
            for (key, value) in counted.histogram { result.histogram[key, default: 0] += value }
            try checkHistogram(result.histogram)
            result.statistics.add(counted.statistics)
        }
        return result
    }

    private func checkHistogram(_ histogram: [Int64: UInt64]) throws(VigilError) {
        guard let limit = query.maxHistogramBuckets, histogram.count > limit else { return }
        throw VigilError(
            .invalidArgument,
            "the histogram would have more than \(limit) buckets; choose a wider histogram_interval or a narrower time range")
    }

    private func checkGroups(_ groups: [ExactString: UInt64]) throws(VigilError) {
        guard let limit = query.maxGroups, groups.count > limit, let field = query.groupBy else { return }
        throw VigilError(
            .resourceExhausted,
            "counting by \(field.column.name) found more than \(limit) distinct values; narrow the filter (tenants, a time range) or count by a field with fewer values")
    }

    private func count(_ sources: ArraySlice<SourcePlan.Candidate>, into result: inout AggregateResult) throws(VigilError) {
        let filter = evaluation.filter
        let low = filter.since
        let high = filter.until == .max ? Int64.max : filter.until - 1
        let bounds = FilterEvaluation.Bounds(low: low, high: high, visibleSeq: snapshot.visibleSeq)
        let shortcut = StatisticsShortcut(filter: filter, query: query)

        for candidate in sources {
            if isCancelled() { throw VigilError(.cancelled, "the aggregate was cancelled") }
            if let block = candidate.block, let shortcut,
                block.maxSeq <= snapshot.visibleSeq, block.minOccurredAt >= low, block.maxOccurredAt <= high,
                evaluation.allRowsPassTenantAndRetention(block.tenants, oldest: block.minOccurredAt),
                shortcut.answer(block, into: &result)
            {
                result.statistics.blocksFromStatistics += 1
                try checkHistogram(result.histogram)
                continue
            }
            let source = candidate.open(cache)
            result.statistics.blocksScanned += 1
            let rows = try evaluation.select(source, bounds, statistics: &result.statistics)
            result.count += UInt64(rows.count)
            if !rows.isEmpty {
                if let field = query.groupBy {
                    try group(source, rows, by: field, into: &result.groups)
                    try checkGroups(result.groups)
                }
                if let width = query.histogramWidth {
                    let times = try source.times()
                    for row in rows {
                        result.histogram[Self.bucket(times[Int(row)], width: width), default: 0] += 1
                    }
                    try checkHistogram(result.histogram)
                }
            }
            result.statistics.bytesDecompressed += source.inflatedBytes
        }
    }

    /// The start of the bucket holding `time`: a multiple of `width`.
    static func bucket(_ time: Int64, width: Int64) -> Int64 {
        let remainder = time % width
        if remainder >= 0 { return time - remainder }
        // Before the epoch the floor is one width lower (clamped at the bottom of the range).
        let (start, overflow) = (time - remainder).subtractingReportingOverflow(width)
        return overflow ? .min : start
    }

    private func group(_ source: some RowSource, _ rows: [Int32], by field: GroupField, into groups: inout [ExactString: UInt64]) throws(VigilError) {
        let column = field.column
        if let name = field.enumName {
            let values = try source.enums(column)
            var counts: [Int32: UInt64] = [:]
            for row in rows { counts[values[Int(row)], default: 0] += 1 }
            for (raw, count) in counts { groups[ExactString(name(raw)), default: 0] += count }
            return
        }
        let text = try source.text(column)
        if text.isPerRow {
            for row in rows { groups[ExactString(text.value(at: Int(row))), default: 0] += 1 }
            return
        }
        var counts = [UInt64](repeating: 0, count: text.values.count)
        for row in rows { counts[text.code(at: Int(row))] += 1 }
        for (code, count) in counts.enumerated() where count > 0 { groups[ExactString(text.values[code]), default: 0] += count }
    }
}

extension GroupField {
    /// The part column holding the field.
    var column: PartColumn {
        switch self {
        case .action: .action
        case .actorID: .actorID
        case .resourceType: .resourceType
        case .outcome: .outcome
        case .tenant: .tenant
        case .category: .category
        case .sourceIP: .sourceIP
        }
    }

    /// For enum fields, how a raw value is named in a group key.
    var enumName: ((Int32) -> String)? {
        switch self {
        case .outcome: EnumNames.outcome
        case .category: EnumNames.category
        default: nil
        }
    }
}

/// When a whole block's counts follow from its statistics: the filter's
/// conditions other than time and tenant name at most one column, that
/// column has per-value counts, and the group-by (if any) is that column or
/// any counted column when there are no other conditions.
struct StatisticsShortcut {
    /// The one conditioned column and its verdict per value, if any.
    let condition: (column: PartColumn, text: ((String) -> Bool)?, enumeration: ((Int32) -> Bool)?)?
    let query: AggregateQuery

    init?(filter: EventFilter, query: AggregateQuery) {
        self.query = query
        var conditions: [(PartColumn, ((String) -> Bool)?, ((Int32) -> Bool)?)] = []
        if filter.hasActionCondition { conditions.append((.action, filter.matchesAction, nil)) }
        if !filter.resourceTypes.isEmpty { conditions.append((.resourceType, filter.resourceTypes.contains, nil)) }
        if !filter.outcomes.isEmpty || !filter.excludedOutcomes.isEmpty { conditions.append((.outcome, nil, filter.allowsOutcome)) }
        if !filter.categories.isEmpty { conditions.append((.category, nil, filter.categories.contains)) }
        if !filter.actorTypes.isEmpty { conditions.append((.actorType, nil, filter.actorTypes.contains)) }
        let others =
            !filter.actorIDs.isEmpty || !filter.actorEmails.isEmpty || !filter.actorNames.isEmpty || !filter.resourceIDs.isEmpty
            || !filter.resourceNames.isEmpty || !filter.sourceNetworks.isEmpty || !filter.traceIDs.isEmpty
            || !filter.requestIDs.isEmpty || !filter.metadata.isEmpty || filter.search != nil
        guard !others, conditions.count <= 1 else { return nil }
        if let only = conditions.first {
            if let field = query.groupBy, field.column != only.0 { return nil }
            condition = only
        } else {
            condition = nil
        }
        if let field = query.groupBy, field == .actorID || field == .sourceIP { return nil }
    }

    /// Adds the block's counts to `result`, or returns false when its
    /// statistics cannot answer (too many distinct values, a histogram bucket
    /// boundary inside the block).
    func answer(_ block: BlockMetadata, into result: inout AggregateResult) -> Bool {
        var bucket: Int64?
        if let width = query.histogramWidth {
            let first = AggregateExecution.bucket(block.minOccurredAt, width: width)
            guard first == AggregateExecution.bucket(block.maxOccurredAt, width: width) else { return false }
            bucket = first
        }
        // The column whose counts decide: the condition's, else the group-by's.
        let column = condition?.column ?? query.groupBy?.column
        var matching = UInt64(block.rowCount)
        var groups: [(String, UInt64)] = []
        if let column {
            if let counts = block.valueCounts(of: column) {
                matching = 0
                if condition != nil && condition?.text == nil { return false }  // counts of the wrong kind: read the block
                for (value, count) in zip(counts.values, counts.counts) where condition?.text?(value) ?? true {
                    matching += UInt64(count)
                    groups.append((value, UInt64(count)))
                }
            } else if let counts = block.enumCounts(of: column) {
                matching = 0
                let name = query.groupBy?.enumName ?? { String($0) }
                if condition != nil && condition?.enumeration == nil { return false }
                for (value, count) in zip(counts.values, counts.counts) where condition?.enumeration?(value) ?? true {
                    matching += UInt64(count)
                    groups.append((name(value), UInt64(count)))
                }
            } else {
                return false
            }
        }
        result.count += matching
        if query.groupBy != nil {
            for (key, count) in groups { result.groups[ExactString(key), default: 0] += count }
        }
        if let bucket, matching > 0 { result.histogram[bucket, default: 0] += matching }
        return true
    }
}
