import VigilCore
import VigilProto

/// An `EventFilter` applied to storage: first to whole blocks, by their
/// statistics (time range, tenants, value sets, bloom filters), then to the
/// rows of the sources that remain, column by column — each condition
/// decodes only its column, text conditions are decided once per distinct
/// value, and the cheapest, most selective conditions run first so that
/// later columns are never decoded for a source with no candidate left.
/// Must agree with `EventFilter.matches(_:)` on every event.
struct FilterEvaluation: Sendable {
    let filter: EventFilter
    /// Per tenant, the occurred-at time before which its events have expired
    /// (retention hides them before maintenance deletes them); nil when
    /// nothing expires.
    let expiryCutoff: (@Sendable (String) -> Int64?)?
    /// XXH64 of the values the bloom-filtered conditions name, computed once per query.
    private let actorHashes: [UInt64]
    private let resourceHashes: [UInt64]
    private let traceHashes: [UInt64]
    private let requestHashes: [UInt64]
    private let addressHashes: [UInt64]?
    private let outcomeTable: EnumTable?
    private let categoryTable: EnumTable?
    private let actorTypeTable: EnumTable?

    init(filter: EventFilter, expiryCutoff: (@Sendable (String) -> Int64?)?) {
        self.filter = filter
        self.expiryCutoff = expiryCutoff
        actorHashes = filter.actorIDs.map(XXHash64.hash)
        resourceHashes = filter.resourceIDs.map(XXHash64.hash)
        traceHashes = filter.traceIDs.map(XXHash64.hash)
        requestHashes = filter.requestIDs.map(XXHash64.hash)
        // Networks rule blocks out only when every one is a single address.
        addressHashes =
            !filter.sourceNetworks.isEmpty && filter.sourceNetworks.allSatisfy(\.isSingleAddress)
            ? filter.sourceAddresses.map(XXHash64.hash) : nil
        outcomeTable = filter.outcomes.isEmpty && filter.excludedOutcomes.isEmpty ? nil : EnumTable(filter.allowsOutcome)
        categoryTable = filter.categories.isEmpty ? nil : EnumTable(filter.categories.contains)
        actorTypeTable = filter.actorTypes.isEmpty ? nil : EnumTable(filter.actorTypes.contains)
    }

    /// An enum condition as a table over the raw values 0...255 (every
    /// value the schema defines); other raw values ask the condition itself.
    struct EnumTable: Sendable {
        let table: [Bool]
        let condition: @Sendable (Int32) -> Bool
        /// Bit v set when raw value v (0..<64) is allowed, for blocks' value masks.
        let lowMask: UInt64

        init(_ condition: @escaping @Sendable (Int32) -> Bool) {
            self.condition = condition
            let table = (0..<256).map { condition(Int32($0)) }
            self.table = table
            lowMask = (0..<64).reduce(0) { mask, value in table[value] ? mask | 1 << UInt64(value) : mask }
        }

        @inline(__always)
        func allows(_ raw: Int32) -> Bool {
            raw >= 0 && raw < 256 ? table[Int(raw)] : condition(raw)
        }
    }

    /// The sort key of an event: (occurred_at, seq).
    struct Key: Comparable, Hashable {
        var time: Int64
        var seq: UInt64
        static func < (a: Key, b: Key) -> Bool { (a.time, a.seq) < (b.time, b.seq) }
    }

    /// What rows a selection may return besides the filter: a time window
    /// (inclusive), a seq ceiling (the snapshot), and a cursor to be after.
    struct Bounds {
        var low: Int64
        var high: Int64
        var visibleSeq: UInt64
        var after: Key? = nil
        var newestFirst = true
        /// Only rows with a seq above this (seq-ordered reads).
        var afterSeq: UInt64? = nil
    }

    // MARK: Whole blocks

    /// Whether a part block may hold a match, by its statistics alone.
    func blockMayMatch(_ block: BlockMetadata) -> Bool {
        let f = filter
        if !f.tenants.isEmpty && !block.tenants.contains(where: f.tenants.contains) { return false }
        if !tenantsMayHaveLiveRows(block.tenants, newest: block.maxOccurredAt) { return false }
        if !traceHashes.isEmpty && !traceHashes.contains(where: { block.mayContain(.traceID, hash: $0) }) { return false }
        if !requestHashes.isEmpty && !requestHashes.contains(where: { block.mayContain(.requestID, hash: $0) }) { return false }
        if !resourceHashes.isEmpty && !resourceHashes.contains(where: { block.mayContain(.resourceID, hash: $0) }) { return false }
        if !actorHashes.isEmpty && !actorHashes.contains(where: { block.mayContain(.actorID, hash: $0) }) { return false }
        if let addressHashes, !addressHashes.contains(where: { block.mayContain(.sourceIP, hash: $0) }) { return false }
        if !f.resourceTypes.isEmpty, let values = block.distinctValues(of: .resourceType), !values.contains(where: f.resourceTypes.contains) {
            return false
        }
        if f.hasActionCondition, let values = block.distinctValues(of: .action),
            !values.contains(where: f.matchesAction)
        {
            return false
        }
        if let outcomeTable, !block.mayHoldEnum(.outcome, allowed: outcomeTable.lowMask, allows: outcomeTable.allows) { return false }
        if let categoryTable, !block.mayHoldEnum(.category, allowed: categoryTable.lowMask, allows: categoryTable.allows) { return false }
        if let actorTypeTable, !block.mayHoldEnum(.actorType, allowed: actorTypeTable.lowMask, allows: actorTypeTable.allows) { return false }
        return true
    }

    /// Whether a memory chunk may hold a match (its tenants are in its dictionary).
    func chunkMayMatch(_ chunk: MemoryChunk) -> Bool {
        let tenants = chunk.tenantsPresent
        if !filter.tenants.isEmpty && !tenants.contains(where: filter.tenants.contains) { return false }
        return tenantsMayHaveLiveRows(tenants, newest: chunk.maxOccurredAt)
    }

    /// False when every tenant's retention has expired everything up to `newest`.
    private func tenantsMayHaveLiveRows(_ tenants: [String], newest: Int64) -> Bool {
        guard let expiryCutoff else { return true }
        return tenants.contains { tenant in
            guard let cutoff = expiryCutoff(tenant) else { return true }
            return newest >= cutoff
        }
    }

    /// Whether every row of the source passes the tenant and retention
    /// conditions (so that block statistics can stand for its rows).
    func allRowsPassTenantAndRetention(_ tenants: [String], oldest: Int64) -> Bool {
        tenants.allSatisfy { tenant in
            if !filter.tenants.isEmpty && !filter.tenants.contains(tenant) { return false }
            if let cutoff = expiryCutoff?(tenant), oldest < cutoff { return false }
            return true
        }
    }

    // MARK: Rows

    /// The rows of `source` that match, in row order.
    func select(_ source: some RowSource, _ bounds: Bounds, statistics: inout ScanStatistics) throws(VigilError) -> [Int32] {
        let f = filter
        let low = max(bounds.low, f.since)
        let high = f.until == .max ? bounds.high : min(bounds.high, f.until - 1)
        guard low <= high, source.maxOccurredAt >= low, source.minOccurredAt <= high, source.minSeq <= bounds.visibleSeq,
            bounds.afterSeq.map({ source.maxSeq > $0 }) ?? true
        else {
            return []
        }
        statistics.rowsExamined += source.rowCount
        var rows: [Int32]
        let times = try source.times()
        // Tenants and retention: a verdict per tenant of the source (nil: its
        // rows are out; else the oldest time kept).
        let tenants = source.tenantsPresent
        let tenantMatters = !f.tenants.isEmpty && !tenants.allSatisfy(f.tenants.contains)
        let cutoffs = expiryCutoff.map { tenants.map($0) } ?? []
        let retentionMatters = cutoffs.contains { $0.map { $0 > source.minOccurredAt } ?? false }
        let tenantsMatter = tenantMatters || retentionMatters
        func tenantVerdicts() throws(VigilError) -> (column: TextColumn, allowed: [Int64?]) {
            let column = try source.text(.tenant)
            let allowed = column.values.map { tenant -> Int64? in
                if !f.tenants.isEmpty && !f.tenants.contains(tenant) { return nil }
                return expiryCutoff?(tenant) ?? .min
            }
            return (column, allowed)
        }
        var tenantsApplied = false
        if source.minOccurredAt >= low && source.maxOccurredAt <= high {
            if tenantsMatter {
                // Every row is in the time range (a live batch, say): the
                // tenants decide in one pass over their codes, and a source
                // without an allowed tenant costs no pass at all.
                let (column, allowed) = try tenantVerdicts()
                guard allowed.contains(where: { $0 != nil }) else { return [] }
                rows = []
                for row in 0..<times.count {
                    if let cutoff = allowed[column.code(at: row)], times[row] >= cutoff { rows.append(Int32(row)) }
                }
                tenantsApplied = true
            } else {
                rows = Array(unsafeUninitializedCapacity: source.rowCount) { buffer, count in
                    // Not `Array(0..<n)`: its generic copy was 8% of a trace id query's time.
                    for row in 0..<buffer.count { buffer[row] = Int32(truncatingIfNeeded: row) }
                    count = buffer.count
                }
            }
        } else {
            rows = []
            rows.reserveCapacity(source.rowCount)
            for row in 0..<times.count where times[row] >= low && times[row] <= high {
                rows.append(Int32(row))
            }
        }
        // The snapshot and the cursor: seqs only where they decide.
        let cursorTime = bounds.after?.time
        let needsSeq =
            source.maxSeq > bounds.visibleSeq
            || (cursorTime.map { $0 >= source.minOccurredAt && $0 <= source.maxOccurredAt } ?? false)
            || (bounds.afterSeq.map { source.minSeq <= $0 } ?? false)
        if needsSeq && !rows.isEmpty {
            let seqs = try source.seqs()
            let visible = bounds.visibleSeq
            if let afterSeq = bounds.afterSeq {
                rows = rows.filter { seqs[Int($0)] > afterSeq && seqs[Int($0)] <= visible }
            } else if let after = bounds.after {
                let newestFirst = bounds.newestFirst
                rows = rows.filter { row in
                    let seq = seqs[Int(row)]
                    guard seq <= visible else { return false }
                    let time = times[Int(row)]
                    guard time == after.time else { return true }
                    return newestFirst ? seq < after.seq : seq > after.seq
                }
            } else {
                rows = rows.filter { seqs[Int($0)] <= visible }
            }
        }
        // Tenants and retention, where the time range did not already take them.
        if tenantsMatter && !tenantsApplied && !rows.isEmpty {
            let (column, allowed) = try tenantVerdicts()
            rows = rows.filter { row in
                guard let cutoff = allowed[column.code(at: Int(row))] else { return false }
                return times[Int(row)] >= cutoff
            }
        }
        // Identifiers first: the most selective conditions, compared as bytes.
        if !f.traceIDs.isEmpty && !rows.isEmpty { rows = try source.text(.traceID).filter(rows, in: f.traceIDs) }
        if !f.requestIDs.isEmpty && !rows.isEmpty { rows = try source.text(.requestID).filter(rows, in: f.requestIDs) }
        if !f.actorIDs.isEmpty && !rows.isEmpty { rows = try source.text(.actorID).filter(rows, in: f.actorIDs) }
        if !f.resourceIDs.isEmpty && !rows.isEmpty { rows = try source.text(.resourceID).filter(rows, in: f.resourceIDs) }
        // Enums, by a table of allowed raw values.
        func keepEnums(_ column: PartColumn, _ table: EnumTable?) throws(VigilError) {
            guard let table, !rows.isEmpty else { return }
            let values = try source.enums(column)
            rows = rows.filter { table.allows(values[Int($0)]) }
        }
        try keepEnums(.outcome, outcomeTable)
        try keepEnums(.category, categoryTable)
        try keepEnums(.actorType, actorTypeTable)
        // Text columns, one verdict per distinct value.
        func keep(_ column: PartColumn, _ allowed: (String) -> Bool) throws(VigilError) {
            guard !rows.isEmpty else { return }
            rows = try source.text(column).filter(rows, allowed)
        }
        if f.hasActionCondition { try keep(.action, f.matchesAction) }
        if !f.resourceTypes.isEmpty && !rows.isEmpty { rows = try source.text(.resourceType).filter(rows, in: f.resourceTypes) }
        if !f.actorEmails.isEmpty { try keep(.actorEmail, f.allowsActorEmail) }
        if !f.actorNames.isEmpty { try keep(.actorName, f.actorNames.contains) }
        if !f.resourceNames.isEmpty { try keep(.resourceName, f.resourceNames.contains) }
        if !f.sourceNetworks.isEmpty { try keep(.sourceIP, f.allowsSourceIP) }
        if let search = f.search, !rows.isEmpty {
            rows = try searchRows(source, rows, search)
        }
        if !f.metadata.isEmpty && !rows.isEmpty {
            let metadata = try source.metadataReader()
            rows = rows.filter { f.allowsMetadata(metadata(Int($0))) }
        }
        return rows
    }

    /// The rows where any searched field contains the text: each column is
    /// read only for the rows no earlier column has matched.
    private func searchRows(_ source: some RowSource, _ rows: [Int32], _ search: TextSearch) throws(VigilError) -> [Int32] {
        var hit = [Bool](repeating: false, count: rows.count)
        var remaining = rows.count
        for column in [PartColumn.action, .actorName, .actorEmail, .resourceName, .resourceID, .description] where remaining > 0 {
            let text = try source.text(column)
            if case .stored(let stored) = text.codes {
                for (index, row) in rows.enumerated() where !hit[index] && stored.matches(Int(row), search) {
                    hit[index] = true
                    remaining -= 1
                }
            } else if text.isPerRow {
                for (index, row) in rows.enumerated() where !hit[index] && search.matches(text.value(at: Int(row))) {
                    hit[index] = true
                    remaining -= 1
                }
            } else {
                // Verdicts only for the codes still asked about.
                var verdicts = [UInt8](repeating: 0, count: text.values.count)  // 0 unknown, 1 no, 2 yes
                for (index, row) in rows.enumerated() where !hit[index] {
                    let code = text.code(at: Int(row))
                    if verdicts[code] == 0 { verdicts[code] = search.matches(text.values[code]) ? 2 : 1 }
                    if verdicts[code] == 2 {
                        hit[index] = true
                        remaining -= 1
                    }
                }
            }
        }
        var kept: [Int32] = []
        kept.reserveCapacity(rows.count - remaining)
        for (index, row) in rows.enumerated() where hit[index] { kept.append(row) }
        return kept
    }
}
