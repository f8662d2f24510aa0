#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib
import Dispatch
import Foundation
import Synchronization
import VigilCore
import VigilProto

/// Writes immutable part files (see the PartFormat article).
public struct PartWriter {
    public struct Options: Sendable {
        /// Rows per block, 1...65,536: the unit a reader skips or decodes.
        public var rowsPerBlock = 4096
        /// zlib level of the chunks, -1 (zlib's default) or 0 (store) ... 9.
        public var compressionLevel: Int32 = 6
        /// The merger's level of the part.
        public var level: UInt8 = 0
        /// Free for the merger.
        public var generation: UInt64 = 0
        /// A block ends early once its rows hold about this many bytes of text
        /// and extras, so that no chunk comes near the 64 MiB a reader accepts
        /// and decoding one block stays cheap however large the events are.
        public var maxBlockBytes = 8 << 20
        /// The footer's creation time; nil for now. Set, equal rows give byte-identical parts.
        public var createdAt: Int64?
        /// Whether a large part is encoded on every core (see `encodeBlocks`):
        /// for a flush that writes one part while ingest waits for it.
        var parallelTasks = false
        /// Blocks per task when `parallelTasks`. Also how often the other text
        /// encodings are tried (in the first block of every `blocksPerTask`),
        /// so that one task and many write the same bytes.
        var blocksPerTask = 8

        public init() {}
    }

    /// Writes `events` (which the writer sorts by (tenant, occurredAt, seq) if
    /// they are not) to `path` durably: a temporary file `path + ".tmp"`,
    /// fsync, rename, fsync of the directory. Returns the metadata.
    /// `leaves`, when given, holds each event's truncated leaf hash (same
    /// order as `events`) for the `leaf` column; without it the part has none.
    ///
    /// Throws INVALID_ARGUMENT for options out of range or an event the format
    /// cannot hold (an enum raw value outside Int32, a tenant over 65,535
    /// bytes, a single event of more than 64 MiB); UNAVAILABLE or
    /// RESOURCE_EXHAUSTED when the disk fails. On any error no file is left
    /// at `path` or `path + ".tmp"`.
    public static func write(
        _ events: [AuditEvent], leaves: [UInt32]? = nil, to path: String, options: Options = .init()
    ) throws(VigilError) -> PartMetadata {
        try write(rows: events, leaves: leaves, to: path, options: options)
    }

    /// `write(_:leaves:to:options:)` from any row source.
    static func write<Rows: PartRowSource>(
        rows events: Rows, leaves: [UInt32]? = nil, to path: String, options: Options = .init()
    ) throws(VigilError) -> PartMetadata {
        let writer = try PartFileWriter(path: path, options: options)
        try writer.append(events, leaves: leaves)
        return try writer.finish()
    }

    /// Encodes every block into `sink`; returns the footer (without createdAt).
    ///
    /// With `Options.parallelTasks`, a large part is encoded on every core:
    /// its rows are cut into tasks of `Options.blocksPerTask` blocks, each
    /// encoded into memory by its own `BlockEncoder`, then appended to the
    /// file in order with their offsets moved. A task always starts a block,
    /// so the bytes never depend on the number of cores (and are those of one
    /// task unless a block was cut by `maxBlockBytes`).
    static func encodeBlocks<Rows: PartRowSource>(
        _ events: Rows, leaves: [UInt32]? = nil, plan: SortPlan, options: Options, sink: inout ChunkSink
    ) throws(VigilError) -> PartFooter {
        let count = events.rowCount
        // Leaves in row order, like the plan's keys: taken in input order, a
        // flush's rows (by tenant, from every batch) missed the caches on each.
        let leaves = leaves.map { leaves in plan.order.map { $0.map { leaves[Int($0)] } } ?? leaves }
        let taskRows = options.rowsPerBlock.multipliedReportingOverflow(by: max(1, options.blocksPerTask))
        let rowsPerTask = options.parallelTasks && !taskRows.overflow ? taskRows.partialValue : Int.max
        var blocks: [BlockMetadata] = []
        if count <= rowsPerTask {
            var encoder = BlockEncoder()
            blocks = try encoder.encode(events, positions: 0..<count, leaves: leaves, plan: plan, options: options, sink: &sink)
        } else {
            let tasks = stride(from: 0, to: count, by: rowsPerTask).map { $0..<min($0 + rowsPerTask, count) }
            // A wave of a task per core at a time: what waits in memory for the
            // file stays a few tasks' compressed bytes.
            let width = max(1, ProcessInfo.processInfo.activeProcessorCount)
            let level = sink.level
            let compressing = sink.deflater != nil
            for waveStart in stride(from: 0, to: tasks.count, by: width) {
                let wave = Array(tasks[waveStart..<min(waveStart + width, tasks.count)])
                let results = Mutex([Result<(bytes: [UInt8], blocks: [BlockMetadata]), VigilError>?](repeating: nil, count: wave.count))
                DispatchQueue.concurrentPerform(iterations: wave.count) { index in
                    let result: Result<(bytes: [UInt8], blocks: [BlockMetadata]), VigilError>
                    do throws(VigilError) {
                        var taskSink = ChunkSink(output: PartOutput(), level: level, deflater: compressing ? try ZlibDeflater() : nil)
                        var encoder = BlockEncoder()
                        let encoded = try encoder.encode(
                            events, positions: wave[index], leaves: leaves, plan: plan, options: options, sink: &taskSink)
                        result = .success((taskSink.output.takeBytes(), encoded))
                    } catch {
                        result = .failure(error)
                    }
                    results.withLock { $0[index] = result }
                }
                for result in results.withLock({ $0 }) {
                    guard let (bytes, encoded) = try result?.get() else {
                        throw VigilError(.internal, "a task of the part was not encoded")
                    }
                    let base = sink.output.offset
                    try sink.output.write(bytes)
                    for block in encoded { blocks.append(block.moved(toIndex: blocks.count, offsetBy: base)) }
                }
            }
        }
        return PartFooter(
            rowCount: count,
            minOccurredAt: blocks.lazy.map(\.minOccurredAt).min() ?? 0,
            maxOccurredAt: blocks.lazy.map(\.maxOccurredAt).max() ?? 0,
            minSeq: blocks.lazy.map(\.minSeq).min() ?? 0,
            maxSeq: blocks.lazy.map(\.maxSeq).max() ?? 0,
            createdAt: 0, level: options.level, generation: options.generation,
            rowsPerBlock: options.rowsPerBlock, tenants: plan.tenants, blocks: blocks)
    }

    static func bloom(of hashes: [UInt64]) -> BloomFilter {
        var filter = BloomFilter(expectedCount: hashes.count)
        for hash in hashes { filter.insert(hash: hash) }
        return filter
    }
}

/// The scratch one task reuses from block to block while it encodes rows
/// into a sink.
struct BlockEncoder {
    var columns = BlockColumns()
    var raw = ByteWriter(capacity: 1 << 16)
    var text = ColumnEncoding.TextScratch()
    var keyTable = ByteStringTable()
    var alternative = ByteWriter(capacity: 1 << 16)
    var copiedRaw = ByteWriter(capacity: 1 << 16)
    var usualRaw = ByteWriter(capacity: 1 << 16)
    var valueTable = ByteStringTable()
    var usualScratch = ColumnEncoding.TextScratch()
    var hashes: [UInt64] = []
    /// Per text column with other encodings to try: the one that stored the
    /// smallest chunk in the last block that tried them all. Trying them is
    /// encoding and compressing the column two or three times: 5% of the
    /// server's CPU under ingest, for 2.3 bytes/event of the 60.
    var winners: [PartColumn: ChunkEncoding] = [:]
    /// How many rows ahead of the one appended each `PartRowSource.prefetch`
    /// stage is asked for.
    static let prefetchDistances = [12, 8, 4]

    /// Encodes the rows at sorted `positions` as blocks into `sink`; returns
    /// them, numbered from 0, with offsets in `sink`.
    mutating func encode<Rows: PartRowSource>(
        _ events: Rows, positions: Range<Int>, leaves: [UInt32]?, plan: SortPlan, options: PartWriter.Options,
        sink: inout ChunkSink
    ) throws(VigilError) -> [BlockMetadata] {
        var blocks: [BlockMetadata] = []
        var position = positions.lowerBound
        while position < positions.upperBound {
            columns.removeAll()
            let first = position
            while position < positions.upperBound {
                for (stage, ahead) in Self.prefetchDistances.enumerated() where position + ahead < positions.upperBound {
                    events.prefetch(plan.eventIndex(at: position + ahead), stage: stage)
                }
                try events.appendRow(
                    plan.eventIndex(at: position), to: &columns, tenant: plan.tenants[Int(plan.tenantRank[position])],
                    occurredAt: plan.occurredAt[position], seq: plan.seq[position])
                if let leaves { columns.leaf.append(leaves[position]) }
                position += 1
                if columns.rowCount == options.rowsPerBlock || columns.rowBytes >= options.maxBlockBytes { break }
            }
            let blockIndex = blocks.count
            // A block that tries the other encodings starts afresh: a column that
            // takes none of them here (keyed, say) must not carry an older choice
            // into the blocks after, which a task starting here would not have.
            let tries = blockIndex % max(1, options.blocksPerTask) == 0
            if tries { winners.removeAll(keepingCapacity: true) }
            var chunks: [PartColumn: ChunkInfo] = [:]
            var statistics: [PartColumn: ColumnStatistic] = [:]
            for column in PartColumn.allCases {
                if column == .leaf && leaves == nil { continue }
                raw.removeAll()
                var encoding: ChunkEncoding
                // Set when the column's chunk is already stored (chosen among encodings by compressed size).
                var chosen: ChunkInfo?
                var rawTail = 0
                switch column.kind {
                case .integer:
                    let values: [Int64]
                    switch column {
                    case .occurredAt: values = columns.occurredAt
                    case .receivedAt: values = columns.receivedAt
                    default: values = columns.seqBits
                    }
                    encoding = values.withUnsafeBufferPointer { ColumnEncoding.encodeIntegers($0, into: &raw) }
                case .enumeration:
                    let values: [Int32]
                    switch column {
                    case .actorType: values = columns.actorType
                    case .category: values = columns.category
                    case .outcome: values = columns.outcome
                    default: values = columns.presence
                    }
                    if column.keyRelation == .keyed, let key = column.keyColumn,
                        values.withUnsafeBufferPointer({ values in
                            columns.text[BlockColumns.slot(key)].withRows { keys in
                                KeyedText.encode(enums: values, keys: keys, table: &keyTable, into: &raw)
                            }
                        })
                    {
                        encoding = .keyed
                    } else {
                        encoding = values.withUnsafeBufferPointer { ColumnEncoding.encodeEnums($0, into: &raw) }
                    }
                    if PartColumn.valueSetColumns.contains(column) {
                        var distinct: [Int32] = []
                        var counts: [UInt32] = []
                        for value in values {
                            if let at = distinct.firstIndex(of: value) {
                                counts[at] += 1
                            } else {
                                distinct.append(value)
                                counts.append(1)
                                if distinct.count > ColumnStatistic.maxValues { break }
                            }
                        }
                        if distinct.count <= ColumnStatistic.maxValues { statistics[column] = .enumCounts(distinct, counts) }
                    }
                case .string:
                    let rows = columns.text[BlockColumns.slot(column)]
                    if column.keyRelation == .keyed, let key = column.keyColumn,
                        rows.withRows({ rows in
                            columns.text[BlockColumns.slot(key)].withRows { keys in
                                KeyedText.encode(rows, keys: keys, table: &keyTable, into: &raw)
                            }
                        })
                    {
                        encoding = .keyed
                        // resourceType keeps its value counts: the table and codes
                        // this leaves are what the statistics below read. (The
                        // other keyed columns carry no statistics.)
                        if PartColumn.valueSetColumns.contains(column) {
                            alternative.removeAll()
                            _ = rows.withRows { ColumnEncoding.encodeStrings($0, scratch: &text, into: &alternative) }
                        }
                    } else {
                        encoding = rows.withRows {
                            ColumnEncoding.encodeStrings($0, scratch: &text, addresses: column == .sourceIP, into: &raw)
                        }
                        // The other encodings are tried (each encoded and compressed) in
                        // the first block of every task; the rest of the task's blocks,
                        // rows of the same part in the same order, take the encoding that won.
                        let wanted = tries ? nil : winners[column]
                        var candidates: [(ChunkEncoding, ByteWriter)] = []
                        if encoding == .dictionary && text.table.count > 256, wanted == nil || wanted == .plain {
                            // Two-byte codes of many distinct values often compress
                            // worse than the values written out, which zlib matches
                            // itself (resource ids: 5.3 against 4.7 bytes per event).
                            alternative.removeAll()
                            _ = rows.withRows { ColumnEncoding.encodePlainBytes($0, into: &alternative) }
                            candidates.append((.plain, alternative))
                        }
                        if column.keyRelation == .copied, let key = column.keyColumn, wanted == nil || wanted == .copied {
                            copiedRaw.removeAll()
                            let copied = rows.withRows { rows in
                                columns.text[BlockColumns.slot(key)].withRows { keys in CopiedText.encode(rows, keys: keys, into: &copiedRaw) }
                            }
                            if copied { candidates.append((.copied, copiedRaw)) }
                        }
                        if column.keyRelation == .usual, let key = column.keyColumn, wanted == nil || wanted == .usual {
                            usualRaw.removeAll()
                            rows.withRows { rows in
                                columns.text[BlockColumns.slot(key)].withRows { keys in
                                    UsualText.encode(
                                        rows, keys: keys, keyTable: &keyTable, valueTable: &valueTable, scratch: &usualScratch, into: &usualRaw)
                                }
                            }
                            candidates.append((.usual, usualRaw))
                        }
                        if wanted == nil {
                            if !candidates.isEmpty {
                                chosen = try sink.emitSmallest(column, [(encoding, raw)] + candidates, block: blockIndex)
                            }
                            winners[column] = chosen?.encoding ?? encoding
                        } else if let (only, bytes) = candidates.first {
                            // The winner, when this block can take it (else the first encoding).
                            chosen = try sink.emit(column, only, bytes.bytes, boundaries: bytes.boundaries, block: blockIndex)
                        }
                    }
                    let table = text.table
                    if (PartColumn.valueSetColumns.contains(column) || column == .tenant) && table.count <= ColumnStatistic.maxValues {
                        var counts = [UInt32](repeating: 0, count: table.count)
                        for code in text.codes { counts[Int(code)] += 1 }
                        statistics[column] = .valueCounts((0..<table.count).map { table.string($0) }, counts)
                    } else if PartColumn.bloomColumns.contains(column) {
                        var filter = BloomFilter(expectedCount: table.count)
                        for hash in table.hashes { filter.insert(hash: hash) }
                        statistics[column] = .bloom(filter)
                    }
                case .eventID:
                    hashes.removeAll(keepingCapacity: true)
                    encoding = columns.text[BlockColumns.slot(.id)].withRows { ids in
                        columns.derivedID.withUnsafeBufferPointer { derived in
                            columns.receivedAt.withUnsafeBufferPointer { receivedAt in
                                columns.seq.withUnsafeBufferPointer { seq in
                                    ColumnEncoding.encodeEventIDs(
                                        ids, derived: derived, receivedAt: receivedAt, seq: seq, into: &raw, bloomHashes: &hashes)
                                }
                            }
                        }
                    }
                    statistics[column] = .bloom(PartWriter.bloom(of: hashes))
                case .correlationID:
                    hashes.removeAll(keepingCapacity: true)
                    (encoding, rawTail) = columns.text[BlockColumns.slot(column)].withRows {
                        ColumnEncoding.encodeCorrelationIDs($0, into: &raw, bloomHashes: &hashes)
                    }
                    statistics[column] = .bloom(PartWriter.bloom(of: hashes))
                case .bytes:
                    encoding = columns.extras.withRows { rows in
                        ExtrasColumns.encode(rows, canonical: columns.extrasCanonical, into: &raw) ? .extrasColumns : ColumnEncoding.encodePlainBytes(rows, into: &raw)
                    }
                case .fixed32:
                    encoding = ColumnEncoding.encodeFixed32(columns.leaf, into: &raw)
                }
                if let chosen {
                    chunks[column] = chosen
                } else {
                    chunks[column] = try sink.emit(column, encoding, raw.bytes, rawTail: rawTail, boundaries: raw.boundaries, block: blockIndex)
                }
            }
            let firstRank = Int(plan.tenantRank[first])
            let lastRank = Int(plan.tenantRank[position - 1])
            blocks.append(BlockMetadata(
                index: blockIndex, rowCount: columns.rowCount,
                minOccurredAt: columns.occurredAt.min()!, maxOccurredAt: columns.occurredAt.max()!,
                minSeq: columns.seq.min()!, maxSeq: columns.seq.max()!,
                tenantIndexes: firstRank..<lastRank + 1, tenants: Array(plan.tenants[firstRank...lastRank]),
                columns: chunks, statistics: statistics))
        }
        return blocks
    }
}

/// The order rows are written in: by tenant (UTF-8 byte order), then
/// occurred-at, then seq, then input position. Computed once; when the input
/// is already in order no permutation is built.
///
/// Each row's sort key is kept in row order, so that writing the rows reads
/// it in sequence: read by input position, a flush's rows (a tenant's, from
/// each of hundreds of batches) missed the caches on each of the three
/// arrays (`perf annotate`: about 3% of the server's CPU under ingest).
struct SortPlan {
    /// Tenants in byte order.
    var tenants: [String]
    /// Per row, in row order: its tenant's position in `tenants`.
    var tenantRank: [Int32]
    /// Per row, in row order: occurred-at in nanoseconds.
    var occurredAt: [Int64]
    /// Per row, in row order: its seq.
    var seq: [UInt64]
    /// Input positions in row order; nil when the input is in order.
    private(set) var order: [Int32]?

    private struct Key: Comparable {
        var rank: Int32
        var occurredAt: Int64
        var seq: UInt64
        var index: Int32
        static func < (a: Key, b: Key) -> Bool {
            (a.rank, a.occurredAt, a.seq, a.index) < (b.rank, b.occurredAt, b.seq, b.index)
        }
    }

    /// The plan for `events`; with `inputOrder`, one that keeps them in
    /// input order whatever their keys (a test writing a part out of order).
    init<Rows: PartRowSource>(_ events: Rows, inputOrder: Bool = false) throws(VigilError) {
        let count = events.rowCount
        guard count <= Int(Int32.max) else {
            throw VigilError(.invalidArgument, "a part holds at most \(Int32.max) events")
        }
        var table = ByteStringTable()
        table.reset(capacity: 64)
        var codes = [Int32]()
        codes.reserveCapacity(count)
        occurredAt = []
        occurredAt.reserveCapacity(count)
        seq = []
        seq.reserveCapacity(count)
        var previous = -1
        for index in 0..<count {
            let (tenant, time, number) = events.sortKey(at: index)
            occurredAt.append(time)
            seq.append(number)
            let code = withUTF8Bytes(tenant) { bytes in
                previous >= 0 && table.equals(previous, bytes) ? previous : table.insert(bytes)
            }
            previous = code
            codes.append(Int32(code))
        }
        var byBytes = Array(0..<table.count)
        let names = (0..<table.count).map { table.string($0) }
        for name in names where name.utf8.count > PartFormat.maxTenantBytes {
            throw VigilError(.invalidArgument, "tenant '\(name.prefix(64))…' is \(name.utf8.count) bytes; a part holds tenants of at most \(PartFormat.maxTenantBytes)")
        }
        byBytes.sort { a, b in
            table.withValue(a) { a in
                table.withValue(b) { b in
                    let common = min(a.count, b.count)
                    let order = common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common)
                    return order != 0 ? order < 0 : a.count < b.count
                }
            }
        }
        var rankOfCode = [Int32](repeating: 0, count: table.count)
        for (rank, code) in byBytes.enumerated() { rankOfCode[code] = Int32(rank) }
        tenants = byBytes.map { names[$0] }
        tenantRank = codes.map { rankOfCode[Int($0)] }

        var sorted = true
        for index in 1..<max(count, 1) where !inputOrder {
            let a = (tenantRank[index - 1], occurredAt[index - 1], seq[index - 1])
            let b = (tenantRank[index], occurredAt[index], seq[index])
            if b < a {
                sorted = false
                break
            }
        }
        if sorted {
            order = nil
            return
        }
        // Tenants first, by counting (stable: each tenant's rows stay in input
        // order), then each tenant's rows by time, seq and input position. A
        // flush's input is in seq order with tenants interleaved: one sort of
        // everything met no runs, while a tenant's rows are nearly in time order.
        var starts = [Int](repeating: 0, count: tenants.count + 1)
        for rank in tenantRank { starts[Int(rank) + 1] += 1 }
        for rank in 0..<tenants.count { starts[rank + 1] += starts[rank] }
        var keys = [Key](unsafeUninitializedCapacity: count) { buffer, initialized in
            var next = starts
            for index in 0..<count {
                let rank = tenantRank[index]
                (buffer.baseAddress! + next[Int(rank)]).initialize(
                    to: Key(rank: rank, occurredAt: occurredAt[index], seq: seq[index], index: Int32(index)))
                next[Int(rank)] += 1
            }
            initialized = count
        }
        for rank in 0..<tenants.count {
            let rows = starts[rank]..<starts[rank + 1]
            var inOrder = true
            for position in rows.dropFirst() where keys[position] < keys[position - 1] {
                inOrder = false
                break
            }
            if !inOrder { keys[rows].sort() }
        }
        order = keys.map(\.index)
        tenantRank = keys.map(\.rank)
        occurredAt = keys.map(\.occurredAt)
        seq = keys.map(\.seq)
    }

    @inline(__always)
    func eventIndex(at position: Int) -> Int {
        if let order { return Int(order[position]) }
        return position
    }
}

/// One block's rows split into columns; reused from block to block.
struct BlockColumns {
    var rowCount = 0
    /// Approximate bytes of the rows' text and extras, to cut large blocks.
    var rowBytes = 0
    var occurredAt: [Int64] = []
    var receivedAt: [Int64] = []
    var seq: [UInt64] = []
    var seqBits: [Int64] = []
    var actorType: [Int32] = []
    var category: [Int32] = []
    var outcome: [Int32] = []
    var presence: [Int32] = []
    var leaf: [UInt32] = []
    /// Per row, when gathered from memory chunks: whether its id is derived
    /// from its received-at and seq (its `id` text is then empty). Empty
    /// when the rows came as events (their ids are text).
    var derivedID: [Bool] = []
    /// Text columns by `slot(_:)`.
    var text: [ByteColumn] = Array(repeating: ByteColumn(), count: 15)
    var extras = ByteColumn()
    /// Whether every row's extras came from chunks that hold them in the form
    /// `extrasColumns` rebuilds (`MemoryChunk.Columns.extrasCanonical`).
    var extrasCanonical = true

    static func slot(_ column: PartColumn) -> Int {
        switch column {
        case .tenant: 0
        case .actorID: 1
        case .actorName: 2
        case .actorEmail: 3
        case .action: 4
        case .resourceType: 5
        case .resourceID: 6
        case .resourceName: 7
        case .reason: 8
        case .sourceIP: 9
        case .userAgent: 10
        case .description: 11
        case .id: 12
        case .traceID: 13
        case .requestID: 14
        default: preconditionFailure("\(column.name) is not a text column")
        }
    }

    mutating func removeAll() {
        rowCount = 0
        rowBytes = 0
        occurredAt.removeAll(keepingCapacity: true)
        receivedAt.removeAll(keepingCapacity: true)
        seq.removeAll(keepingCapacity: true)
        seqBits.removeAll(keepingCapacity: true)
        actorType.removeAll(keepingCapacity: true)
        category.removeAll(keepingCapacity: true)
        outcome.removeAll(keepingCapacity: true)
        presence.removeAll(keepingCapacity: true)
        leaf.removeAll(keepingCapacity: true)
        derivedID.removeAll(keepingCapacity: true)
        for slot in text.indices { text[slot].removeAll() }
        extras.removeAll()
        extrasCanonical = true
    }

    /// Bytes of text and extras gathered so far.
    var totalBytes: Int {
        var total = extras.bytes.count
        for column in text { total += column.bytes.count }
        return total
    }

    private static func enumValue(_ raw: Int, _ field: String) throws(VigilError) -> Int32 {
        guard let value = Int32(exactly: raw) else {
            throw VigilError(.invalidArgument, "\(field) has raw value \(raw), outside protobuf's 32-bit enums")
        }
        return value
    }

    mutating func append(_ event: AuditEvent, tenant: String, occurredAt time: Int64, seq number: UInt64) throws(VigilError) {
        let before = totalBytes
        // The has… getters copy the sub-message, so they are asked only when
        // the value read is the default, the one case they tell apart.
        let received = event.receivedAt.unixNanos
        occurredAt.append(time)
        receivedAt.append(received)
        seq.append(number)
        seqBits.append(Int64(bitPattern: number))
        category.append(try Self.enumValue(event.category.rawValue, "category"))
        outcome.append(try Self.enumValue(event.outcome.rawValue, "outcome"))
        var bits: UInt8 = 0
        if time != 0 || event.hasOccurredAt { bits |= PartPresence.occurredAt }
        if received != 0 || event.hasReceivedAt { bits |= PartPresence.receivedAt }
        let actor = event.actor
        let actorTypeValue = try Self.enumValue(actor.type.rawValue, "actor.type")
        actorType.append(actorTypeValue)
        text[1].append(actor.id)
        text[2].append(actor.name)
        text[3].append(actor.email)
        if actorTypeValue != 0 || !actor.id.isEmpty || !actor.name.isEmpty || !actor.email.isEmpty || event.hasActor {
            bits |= PartPresence.actor
        }
        let resource = event.resource
        text[5].append(resource.type)
        text[6].append(resource.id)
        text[7].append(resource.name)
        if !resource.type.isEmpty || !resource.id.isEmpty || !resource.name.isEmpty || event.hasResource {
            bits |= PartPresence.resource
        }
        presence.append(Int32(bits))
        text[0].append(tenant)
        text[4].append(event.action)
        text[8].append(event.reason)
        text[9].append(event.sourceIp)
        text[10].append(event.userAgent)
        text[11].append(event.description_p)
        text[12].append(event.id)
        text[13].append(event.traceID)
        text[14].append(event.requestID)
        extras.append(bytes: ColumnEncoding.extrasBytes(of: event))
        extrasCanonical = false
        try noteRow(bytesSince: before)
    }

    /// Counts the row just appended, whose text and extras took the bytes
    /// after `before`; refuses one too large for a chunk.
    mutating func noteRow(bytesSince before: Int) throws(VigilError) {
        let bytes = totalBytes - before + 64
        guard bytes < ChunkInfo.maxRawLength / 2 else {
            throw VigilError(.invalidArgument, "an event of \(bytes) bytes is too large for a part")
        }
        rowBytes += bytes
        rowCount += 1
    }
}

/// Buffered sequential output to the part's temporary file.
struct PartOutput {
    /// nil: everything stays in memory, for `takeBytes()`.
    let file: FileHandleDescriptor?
    /// Bytes written so far, buffered or not: the offset of the next byte.
    private(set) var offset = 0
    private var flushed = 0
    private var buffer: [UInt8] = []
    static let bufferSize = 1 << 20
    /// Bytes before this offset have been handed to the disk (`startWriteback`).
    private(set) var writebackFrom = 0
    /// How much written data waits before its writeback is started. The
    /// fsync at `finish()` otherwise found the whole part (tens of MiB after
    /// a flush) still in the page cache and waited for all of it, while
    /// ingest, held by the full memory budget, waited for the flush: both
    /// cores idle for ~11 ms per flush on that wait alone, 2–3 ms with
    /// writeback started as the part is written (`perf sched timehist`).
    static let writeBehindBytes = 4 << 20

    init(file: FileHandleDescriptor) {
        self.file = file
        buffer.reserveCapacity(Self.bufferSize)
    }

    /// Output kept in memory (a task of a part encoded on several cores).
    init() {
        file = nil
    }

    /// Everything written to an output kept in memory.
    mutating func takeBytes() -> [UInt8] {
        precondition(file == nil, "takeBytes() is for output kept in memory")
        defer { buffer = [] }
        return buffer
    }

    mutating func write(_ bytes: [UInt8]) throws(VigilError) {
        guard let file else {
            buffer.append(contentsOf: bytes)
            offset += bytes.count
            return
        }
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try withBytes(bytes) { (raw) throws(VigilError) in try file.write(raw, at: flushed) }
            flushed += bytes.count
            startWritebackIfDue(file)
        } else {
            buffer.append(contentsOf: bytes)
        }
        offset += bytes.count
    }

    mutating func flush() throws(VigilError) {
        guard !buffer.isEmpty, let file else { return }
        let at = flushed
        try withBytes(buffer) { (raw) throws(VigilError) in try file.write(raw, at: at) }
        flushed += buffer.count
        buffer.removeAll(keepingCapacity: true)
        startWritebackIfDue(file)
    }

    private mutating func startWritebackIfDue(_ file: FileHandleDescriptor) {
        guard flushed - writebackFrom >= Self.writeBehindBytes else { return }
        file.startWriteback(offset: writebackFrom, count: flushed - writebackFrom)
        writebackFrom = flushed
    }
}

/// Compresses raw chunks (when that makes them smaller), checksums them and
/// appends them to the file.
struct ChunkSink {
    var output: PartOutput
    let level: Int32
    let deflater: ZlibDeflater?
    var compressed: [UInt8] = []

    init(output: PartOutput, level: Int32, deflater: ZlibDeflater?) {
        self.output = output
        self.level = level
        self.deflater = deflater
    }

    /// Stores whichever raw chunk of one column is smallest once compressed
    /// (the earliest of equals). Each candidate is compressed once; the
    /// winner's compressed bytes are the ones stored.
    mutating func emitSmallest(
        _ column: PartColumn, _ candidates: [(ChunkEncoding, ByteWriter)], block: Int
    ) throws(VigilError) -> ChunkInfo {
        var best = 0
        var bestSize = Int.max
        var bestCompressed: [UInt8] = []
        for (index, candidate) in candidates.enumerated() {
            compress(candidate.1.bytes, encoding: candidate.0, boundaries: candidate.1.boundaries)
            let size = deflater == nil ? candidate.1.count : min(compressed.count, candidate.1.count)
            if size < bestSize {
                best = index
                bestSize = size
                swap(&bestCompressed, &compressed)
            }
        }
        swap(&bestCompressed, &compressed)
        return try store(column, candidates[best].0, candidates[best].1.bytes, block: block)
    }

    /// Stores one raw chunk. `rawTail` bytes at its end are incompressible
    /// (random ids) and go into stored zlib blocks.
    mutating func emit(
        _ column: PartColumn, _ encoding: ChunkEncoding, _ raw: [UInt8], rawTail: Int = 0, boundaries: [Int] = [], block: Int
    ) throws(VigilError) -> ChunkInfo {
        compress(raw, encoding: encoding, rawTail: rawTail, boundaries: boundaries)
        return try store(column, encoding, raw, block: block)
    }

    /// Compresses `raw` into `compressed` (nothing for stored parts and for
    /// hashes, which are random: zlib could not make them smaller).
    private mutating func compress(_ raw: [UInt8], encoding: ChunkEncoding, rawTail: Int = 0, boundaries: [Int]) {
        compressed.removeAll(keepingCapacity: true)
        guard let deflater, encoding != .fixed32 else { return }
        let strategy = encoding.isBinary ? Z_RLE : Z_DEFAULT_STRATEGY
        raw.withUnsafeBytes {
            deflater.compress($0, level: level, strategy: strategy, storedTail: rawTail, boundaries: boundaries, into: &compressed)
        }
    }

    /// Writes `raw`, or `compressed` (its zlib form) when that is smaller.
    private mutating func store(_ column: PartColumn, _ encoding: ChunkEncoding, _ raw: [UInt8], block: Int) throws(VigilError) -> ChunkInfo {
        guard raw.count <= ChunkInfo.maxRawLength else {
            throw VigilError(.invalidArgument, "column \(column.name) of block \(block) would hold \(raw.count) bytes, over the limit of \(ChunkInfo.maxRawLength); lower maxBlockBytes")
        }
        let codec: ChunkCodec = !compressed.isEmpty && compressed.count < raw.count ? .zlib : .none
        let stored = codec == .zlib ? compressed : raw
        let offset = output.offset
        try output.write(stored)
        return ChunkInfo(
            column: column, encoding: encoding, codec: codec, offset: offset, storedLength: stored.count,
            rawLength: raw.count, checksum: CRC32C.checksum(stored))
    }
}
