/// Where one column chunk of a block lies and how to read it.
public struct ChunkInfo: Sendable, Hashable {
    public var column: PartColumn
    public var encoding: ChunkEncoding
    public var codec: ChunkCodec
    /// Offset of the stored bytes in the file.
    public var offset: Int
    /// Bytes in the file.
    public var storedLength: Int
    /// Bytes once decompressed (equal to `storedLength` for `ChunkCodec.none`).
    public var rawLength: Int
    /// CRC32C of the stored bytes.
    public var checksum: UInt32

    /// Bytes of one chunk entry in the block index.
    static let encodedSize = 23
    /// The largest raw chunk the writer produces and the reader accepts: a
    /// decoded chunk is held in memory whole, so a corrupt length must not ask
    /// for more. Blocks are cut at `PartWriter.Options.maxBlockBytes` (8 MiB)
    /// long before a chunk comes near it.
    static let maxRawLength = 64 << 20
}

/// A block's statistics for one column, kept in the footer so that a reader
/// can skip blocks without reading them.
public enum ColumnStatistic: Sendable, Hashable {
    /// A bloom filter of the block's values (high-cardinality columns).
    case bloom(BloomFilter)
    /// Every distinct value of the block (low-cardinality string columns, at most 64).
    case values([String])
    /// Every distinct raw value of the block (enum columns, at most 64).
    case enumValues([Int32])
    /// Every distinct value with its number of rows (low-cardinality string
    /// columns and tenants, at most 64 values): counts and group-bys over
    /// whole blocks are answered from these without reading the block.
    case valueCounts([String], [UInt32])
    /// Every distinct raw value with its number of rows (enum columns, at most 64).
    case enumCounts([Int32], [UInt32])

    var kind: UInt8 {
        switch self {
        case .bloom: 1
        case .values: 2
        case .enumValues: 3
        case .valueCounts: 4
        case .enumCounts: 5
        }
    }

    /// The most values a value set holds: beyond that a set costs more footer
    /// than it saves and a column is better served by its chunk.
    static let maxValues = 64
}

/// One block of a part as its footer describes it: rows, key ranges, tenants,
/// where each column chunk lies, and the statistics that let a query skip it.
///
/// A class, not a struct: a query checks every block of every part against
/// its filter, and handing a shared reference around costs nothing where
/// copying a struct of arrays and dictionaries retains each of them.
public final class BlockMetadata: Sendable {
    /// The block's position in the part.
    public let index: Int
    public let rowCount: Int
    public let minOccurredAt: Int64
    public let maxOccurredAt: Int64
    public let minSeq: UInt64
    public let maxSeq: UInt64
    /// The block's tenants, as positions in the part's sorted tenant list.
    /// Rows are sorted by tenant, so they are a contiguous range.
    public let tenantIndexes: Range<Int>
    /// The block's tenants (byte order).
    public let tenants: [String]
    public let columns: [PartColumn: ChunkInfo]
    public let statistics: [PartColumn: ColumnStatistic]
    /// Where chunks of columns this version does not know lie (never read).
    let unknownChunks: [Range<Int>]
    /// The bloom filters of `statistics`, by column id, for lookups without hashing a dictionary key.
    private let blooms: [BloomFilter?]
    /// Those a query's planning probes, held in the block itself: through
    /// `blooms`, each probe first missed the CPU cache on the array (76% of
    /// the time `blockMayMatch` spent in Q3, which probes all 2,469 blocks).
    private let actorBloom: BloomFilter?
    private let resourceBloom: BloomFilter?
    private let traceBloom: BloomFilter?
    private let requestBloom: BloomFilter?
    private let addressBloom: BloomFilter?
    /// The enum value sets of `statistics` as bit masks, in the block
    /// itself: a query's planning asks one of every block it may read (Q3's
    /// outcome condition: 8% of its query thread's time through the dictionary).
    private let outcomeMask: EnumMask?
    private let categoryMask: EnumMask?
    private let actorTypeMask: EnumMask?

    /// Which raw values 0..<64 an enum column holds in the block, and any others.
    struct EnumMask: Sendable {
        var low: UInt64 = 0
        var others: [Int32] = []

        init(_ values: [Int32]) {
            for value in values {
                if value >= 0 && value < 64 { low |= 1 << UInt64(value) } else { others.append(value) }
            }
        }
    }

    init(
        index: Int, rowCount: Int, minOccurredAt: Int64, maxOccurredAt: Int64, minSeq: UInt64, maxSeq: UInt64,
        tenantIndexes: Range<Int>, tenants: [String], columns: [PartColumn: ChunkInfo],
        statistics: [PartColumn: ColumnStatistic], unknownChunks: [Range<Int>] = []
    ) {
        self.index = index
        self.rowCount = rowCount
        self.minOccurredAt = minOccurredAt
        self.maxOccurredAt = maxOccurredAt
        self.minSeq = minSeq
        self.maxSeq = maxSeq
        self.tenantIndexes = tenantIndexes
        self.tenants = tenants
        self.columns = columns
        self.statistics = statistics
        self.unknownChunks = unknownChunks
        var blooms = [BloomFilter?](repeating: nil, count: Int(PartColumn.allCases.map(\.rawValue).max()!) + 1)
        for (column, statistic) in statistics {
            if case .bloom(let filter) = statistic { blooms[Int(column.rawValue)] = filter }
        }
        self.blooms = blooms
        actorBloom = blooms[Int(PartColumn.actorID.rawValue)]
        resourceBloom = blooms[Int(PartColumn.resourceID.rawValue)]
        traceBloom = blooms[Int(PartColumn.traceID.rawValue)]
        requestBloom = blooms[Int(PartColumn.requestID.rawValue)]
        addressBloom = blooms[Int(PartColumn.sourceIP.rawValue)]
        func mask(_ column: PartColumn) -> EnumMask? {
            switch statistics[column] {
            case .enumValues(let values), .enumCounts(let values, _): EnumMask(values)
            default: nil
            }
        }
        outcomeMask = mask(.outcome)
        categoryMask = mask(.category)
        actorTypeMask = mask(.actorType)
    }

    /// The same block as block `index` of a part, its chunks `offset` bytes
    /// further into the file (a task's blocks joining the part), its tenants
    /// `tenantsFrom` places further into the part's list (a window's blocks
    /// joining a part written a window at a time).
    func moved(toIndex index: Int, offsetBy offset: Int, tenantsFrom tenantBase: Int = 0) -> BlockMetadata {
        BlockMetadata(
            index: index, rowCount: rowCount, minOccurredAt: minOccurredAt, maxOccurredAt: maxOccurredAt,
            minSeq: minSeq, maxSeq: maxSeq,
            tenantIndexes: (tenantIndexes.lowerBound + tenantBase)..<(tenantIndexes.upperBound + tenantBase), tenants: tenants,
            columns: columns.mapValues { chunk in
                var chunk = chunk
                chunk.offset += offset
                return chunk
            },
            statistics: statistics,
            unknownChunks: unknownChunks.map { ($0.lowerBound + offset)..<($0.upperBound + offset) })
    }

    /// Where the block's chunks lie in the file, when they lie back to back
    /// (as every writer lays them) and are all of known columns: the bytes a
    /// merge may copy as they are (`PartReader.storedBytes(block:)`). nil
    /// otherwise: chunks of unknown columns have no entry this version could
    /// write into another footer.
    var storedSpan: Range<Int>? {
        guard unknownChunks.isEmpty, !columns.isEmpty else { return nil }
        let chunks = columns.values.sorted { $0.offset < $1.offset }
        var end = chunks[0].offset
        for chunk in chunks {
            guard chunk.offset == end else { return nil }
            end += chunk.storedLength
        }
        return chunks[0].offset..<end
    }

    /// Whether the block may hold a row whose `column` equals `value`
    /// (compared by UTF-8 bytes). False only when its statistics rule it out:
    /// the tenant list, a value set, or a bloom filter; for `id`, a derived id
    /// whose seq lies outside the block, and the bloom filter of the ids that
    /// were not derived. Enum columns take the raw value as decimal text.
    /// True for columns without statistics.
    public func mayContain(_ column: PartColumn, _ value: String) -> Bool {
        switch column {
        case .tenant:
            return tenants.contains { sameUTF8($0, value) }
        case .actorType, .category, .outcome:
            guard let number = Int(value) else { return true }
            return mayContain(column, enumValue: number)
        case .id:
            if let id = CanonicalEventID.parse(value), id.high & 0xFFFF == 0x7000, id.low >> 62 == 2 {
                // Perhaps a derived id of one of these rows: its seq is in its low bits.
                let seq = id.low & 0x3FFF_FFFF_FFFF_FFFF
                if maxSeq > 0x3FFF_FFFF_FFFF_FFFF || (minSeq...maxSeq).contains(seq) { return true }
            }
            return statisticAllows(column, value)
        default:
            return statisticAllows(column, value)
        }
    }

    /// `mayContain(_:_:)` for a bloom-filtered column, with the value's XXH64
    /// computed once by the caller rather than once per block.
    func mayContain(_ column: PartColumn, hash: UInt64) -> Bool {
        switch column {
        case .actorID: actorBloom?.mayContain(hash: hash) ?? true
        case .resourceID: resourceBloom?.mayContain(hash: hash) ?? true
        case .traceID: traceBloom?.mayContain(hash: hash) ?? true
        case .requestID: requestBloom?.mayContain(hash: hash) ?? true
        case .sourceIP: addressBloom?.mayContain(hash: hash) ?? true
        default: blooms[Int(column.rawValue)]?.mayContain(hash: hash) ?? true
        }
    }

    private func statisticAllows(_ column: PartColumn, _ value: String) -> Bool {
        switch statistics[column] {
        case .bloom(let filter):
            return filter.mayContain(value)
        case .values(let values), .valueCounts(let values, _):
            return values.contains { sameUTF8($0, value) }
        case .enumValues, .enumCounts, nil:
            return true
        }
    }

    /// Whether the block may hold a row whose enum `column` has raw value `enumValue`.
    public func mayContain(_ column: PartColumn, enumValue: Int) -> Bool {
        guard let values = distinctEnumValues(of: column) else { return true }
        return values.contains { Int($0) == enumValue }
    }

    /// Every distinct value of a string column in this block, when the block
    /// keeps them (tenants always; action and resourceType when at most 64).
    public func distinctValues(of column: PartColumn) -> [String]? {
        if column == .tenant { return tenants }
        switch statistics[column] {
        case .values(let values), .valueCounts(let values, _): return values
        default: return nil
        }
    }

    /// Whether the block may hold a row whose enum `column` (outcome,
    /// category, actor type) has a raw value that `allowed` (bit v for v in
    /// 0..<64) or, for other values, `allows` takes; true when the block
    /// keeps no value set.
    func mayHoldEnum(_ column: PartColumn, allowed: UInt64, allows: (Int32) -> Bool) -> Bool {
        let mask: EnumMask?
        switch column {
        case .outcome: mask = outcomeMask
        case .category: mask = categoryMask
        case .actorType: mask = actorTypeMask
        default: mask = nil
        }
        guard let mask else { return true }
        return mask.low & allowed != 0 || mask.others.contains(where: allows)
    }

    /// Every distinct raw value of an enum column in this block, when kept.
    public func distinctEnumValues(of column: PartColumn) -> [Int32]? {
        switch statistics[column] {
        case .enumValues(let values), .enumCounts(let values, _): return values
        default: return nil
        }
    }

    /// Rows per distinct value of a string column (tenant included), when kept.
    public func valueCounts(of column: PartColumn) -> (values: [String], counts: [UInt32])? {
        if column == .tenant && tenants.count == 1 { return (tenants, [UInt32(rowCount)]) }
        guard case .valueCounts(let values, let counts) = statistics[column] else { return nil }
        return (values, counts)
    }

    /// Rows per distinct raw value of an enum column, when kept.
    public func enumCounts(of column: PartColumn) -> (values: [Int32], counts: [UInt32])? {
        guard case .enumCounts(let values, let counts) = statistics[column] else { return nil }
        return (values, counts)
    }

    // MARK: - Block index entry

    func encode(into out: inout ByteWriter) {
        out.u32(UInt32(rowCount))
        out.i64(minOccurredAt)
        out.i64(maxOccurredAt)
        out.u64(minSeq)
        out.u64(maxSeq)
        out.u32(UInt32(tenantIndexes.lowerBound))
        out.u32(UInt32(tenantIndexes.count))
        let chunks = columns.values.sorted { $0.offset < $1.offset }
        out.u8(UInt8(chunks.count))
        for chunk in chunks {
            out.u8(chunk.column.rawValue)
            out.u8(chunk.encoding.rawValue)
            out.u8(chunk.codec.rawValue)
            out.u64(UInt64(chunk.offset))
            out.u32(UInt32(chunk.storedLength))
            out.u32(UInt32(chunk.rawLength))
            out.u32(chunk.checksum)
        }
        let stats = statistics.sorted { $0.key < $1.key }
        out.u8(UInt8(stats.count))
        for (column, statistic) in stats {
            out.u8(column.rawValue)
            out.u8(statistic.kind)
            let lengthAt = out.count
            out.u32(0)
            switch statistic {
            case .bloom(let filter):
                out.u8(UInt8(filter.hashCount))
                out.u32(UInt32(filter.bitCount))
                out.append(filter.bytes)
            case .values(let values):
                out.u8(UInt8(values.count))
                for value in values {
                    out.u16(UInt16(value.utf8.count))
                    out.append(utf8: value)
                }
            case .enumValues(let values):
                out.u8(UInt8(values.count))
                for value in values { out.i32(value) }
            case .valueCounts(let values, let counts):
                out.u8(UInt8(values.count))
                for (value, count) in zip(values, counts) {
                    out.u16(UInt16(value.utf8.count))
                    out.append(utf8: value)
                    out.u32(count)
                }
            case .enumCounts(let values, let counts):
                out.u8(UInt8(values.count))
                for (value, count) in zip(values, counts) {
                    out.i32(value)
                    out.u32(count)
                }
            }
            out.patchU32(UInt32(out.count - lengthAt - 4), at: lengthAt)
        }
    }

    /// Reads one block index entry, checking it against the part: its
    /// tenants within the tenant list, its chunks within the chunk area, its
    /// encodings allowed for their columns, its statistics well formed.
    static func decode(
        _ reader: inout ByteReader, index: Int, partTenants: [String], chunkArea: Range<Int>
    ) throws(PartFormatError) -> BlockMetadata {
        let start = reader.offset
        let rowCount = Int(try reader.u32("block row count"))
        guard rowCount >= 1 && rowCount <= ColumnEncoding.maxRows else {
            throw PartFormatError("block \(index) has \(rowCount) rows; blocks hold 1 to \(ColumnEncoding.maxRows)", at: start)
        }
        let rangesAt = reader.offset
        let minOccurredAt = try reader.i64()
        let maxOccurredAt = try reader.i64()
        let minSeq = try reader.u64()
        let maxSeq = try reader.u64()
        guard minOccurredAt <= maxOccurredAt, minSeq <= maxSeq else {
            throw PartFormatError("block \(index) has a minimum above its maximum", at: rangesAt)
        }
        let tenantsAt = reader.offset
        let firstTenant = Int(try reader.u32())
        let tenantCount = Int(try reader.u32())
        guard tenantCount >= 1, firstTenant <= partTenants.count, tenantCount <= partTenants.count - firstTenant,
            tenantCount <= rowCount
        else {
            throw PartFormatError("block \(index) names tenants \(firstTenant)+\(tenantCount) of \(partTenants.count)", at: tenantsAt)
        }
        let tenantIndexes = firstTenant..<firstTenant + tenantCount

        var columns: [PartColumn: ChunkInfo] = [:]
        var unknown: [Range<Int>] = []
        let chunkCount = Int(try reader.u8("chunk count"))
        try reader.need(chunkCount * ChunkInfo.encodedSize, "block \(index)'s chunk entries")
        for _ in 0..<chunkCount {
            let entryAt = reader.offset
            let columnID = try reader.u8()
            let encodingID = try reader.u8()
            let codecID = try reader.u8()
            let offset = try reader.u64()
            let stored = Int(try reader.u32())
            let raw = Int(try reader.u32())
            let checksum = try reader.u32()
            guard let codec = ChunkCodec(rawValue: codecID) else {
                throw PartFormatError("block \(index) has a chunk with unknown codec \(codecID)", at: entryAt)
            }
            guard offset >= UInt64(chunkArea.lowerBound), offset <= UInt64(chunkArea.upperBound),
                stored <= chunkArea.upperBound - Int(offset)
            else {
                throw PartFormatError("block \(index) has a chunk at \(offset)+\(stored) outside the chunk area \(chunkArea)", at: entryAt)
            }
            guard raw <= ChunkInfo.maxRawLength, codec != .none || raw == stored, codec != .zlib || stored > 0 else {
                throw PartFormatError("block \(index) has a chunk of \(stored) stored and \(raw) raw bytes", at: entryAt)
            }
            guard let column = PartColumn(rawValue: columnID) else {
                // A column of a later writer: its bytes are accounted for, its values ignored.
                unknown.append(Int(offset)..<Int(offset) + stored)
                continue
            }
            guard let encoding = ChunkEncoding(rawValue: encodingID), column.allowedEncodings.contains(encoding) else {
                throw PartFormatError("block \(index) column \(column.name) has unknown encoding \(encodingID)", at: entryAt)
            }
            guard columns[column] == nil else {
                throw PartFormatError("block \(index) has two chunks of column \(column.name)", at: entryAt)
            }
            columns[column] = ChunkInfo(
                column: column, encoding: encoding, codec: codec, offset: Int(offset),
                storedLength: stored, rawLength: raw, checksum: checksum)
        }
        for column in PartColumn.required where columns[column] == nil {
            throw PartFormatError("block \(index) has no chunk of column \(column.name)", at: start)
        }

        var statistics: [PartColumn: ColumnStatistic] = [:]
        let statCount = Int(try reader.u8("statistics count"))
        for _ in 0..<statCount {
            let statAt = reader.offset
            let columnID = try reader.u8()
            let kind = try reader.u8()
            let length = Int(try reader.u32("statistic length"))
            var payload = ByteReader(try reader.bytes(length, "statistic"), base: reader.offset - length)
            guard let column = PartColumn(rawValue: columnID) else { continue }
            // A value set or count of the wrong kind would be read as an answer: refuse it.
            let fits: Bool
            switch kind {
            case 2, 4: fits = column.kind == .string
            case 3, 5: fits = column.kind == .enumeration
            default: fits = true
            }
            guard fits else {
                throw PartFormatError("block \(index) column \(column.name) has a statistic of kind \(kind), which does not fit the column", at: statAt)
            }
            let statistic: ColumnStatistic
            switch kind {
            case 1:
                let hashCount = Int(try payload.u8("bloom probes"))
                let bitCount = Int(try payload.u32("bloom size"))
                guard hashCount >= 1, hashCount <= BloomFilter.maxHashCount, bitCount > 0, bitCount % 8 == 0,
                    bitCount / 8 == payload.remaining
                else {
                    throw PartFormatError("block \(index) column \(column.name) has a bloom filter of \(bitCount) bits, \(hashCount) probes in \(length) bytes", at: statAt)
                }
                statistic = .bloom(BloomFilter(hashCount: hashCount, bits: Array(try payload.bytes(bitCount / 8))))
            case 2:
                let count = Int(try payload.u8("value count"))
                guard count <= ColumnStatistic.maxValues else {
                    throw PartFormatError("block \(index) column \(column.name) lists \(count) values", at: statAt)
                }
                var values: [String] = []
                for _ in 0..<count {
                    let valueLength = Int(try payload.u16("value length"))
                    values.append(String(decoding: try payload.bytes(valueLength, "value"), as: UTF8.self))
                }
                statistic = .values(values)
            case 3:
                let count = Int(try payload.u8("value count"))
                guard count <= ColumnStatistic.maxValues else {
                    throw PartFormatError("block \(index) column \(column.name) lists \(count) values", at: statAt)
                }
                var values: [Int32] = []
                for _ in 0..<count { values.append(try payload.i32()) }
                statistic = .enumValues(values)
            case 4, 5:
                let count = Int(try payload.u8("value count"))
                guard count <= ColumnStatistic.maxValues else {
                    throw PartFormatError("block \(index) column \(column.name) lists \(count) values", at: statAt)
                }
                var counts: [UInt32] = []
                var total = 0
                if kind == 4 {
                    var values: [String] = []
                    for _ in 0..<count {
                        let valueLength = Int(try payload.u16("value length"))
                        values.append(String(decoding: try payload.bytes(valueLength, "value"), as: UTF8.self))
                        counts.append(try payload.u32())
                    }
                    statistic = .valueCounts(values, counts)
                } else {
                    var values: [Int32] = []
                    for _ in 0..<count {
                        values.append(try payload.i32())
                        counts.append(try payload.u32())
                    }
                    statistic = .enumCounts(values, counts)
                }
                for value in counts { total += Int(value) }
                guard total == rowCount else {
                    throw PartFormatError("block \(index) column \(column.name) counts \(total) rows of \(rowCount)", at: statAt)
                }
            default:
                continue  // a statistic of a later writer
            }
            try payload.expectEnd("block \(index) column \(column.name)'s statistic")
            guard statistics.updateValue(statistic, forKey: column) == nil else {
                throw PartFormatError("block \(index) has two statistics of column \(column.name)", at: statAt)
            }
        }
        return BlockMetadata(
            index: index, rowCount: rowCount, minOccurredAt: minOccurredAt, maxOccurredAt: maxOccurredAt,
            minSeq: minSeq, maxSeq: maxSeq, tenantIndexes: tenantIndexes,
            tenants: Array(partTenants[tenantIndexes]), columns: columns, statistics: statistics,
            unknownChunks: unknown)
    }
}
