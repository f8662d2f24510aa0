import VigilCore

/// What a part's footer says about the whole part.
public struct PartMetadata: Sendable, Hashable {
    /// The format version of the file (1).
    public var formatVersion: Int
    public var rowCount: Int
    /// Occurred-at and seq ranges over all rows (all 0 for an empty part).
    public var minOccurredAt: Int64
    public var maxOccurredAt: Int64
    public var minSeq: UInt64
    public var maxSeq: UInt64
    /// Every tenant with rows in the part, in UTF-8 byte order.
    public var tenants: [String]
    /// When the writer made the part (Unix nanoseconds).
    public var createdAt: Int64
    /// The merger's level of the part (0 for a part flushed from the WAL).
    public var level: UInt8
    /// Free for the merger (for example, a sequence number of merges).
    public var generation: UInt64
    /// The block size the writer was asked for.
    public var rowsPerBlock: Int
    public var blockCount: Int
    /// The size of the file.
    public var fileBytes: Int
    /// The size of the footer (metadata, block index and statistics).
    public var footerBytes: Int
}

/// The fixed parts of the file: header, trailer, and the footer's layout.
enum PartFormat {
    static let magic: [UInt8] = Array("VPRT".utf8)
    static let version: UInt16 = 1
    /// Header: magic, version, flags, CRC32C of the first 8 bytes.
    static let headerSize = 12
    /// Trailer: footer offset, footer length, footer CRC32C, version, flags,
    /// CRC32C of the first 20 bytes, magic.
    static let trailerSize = 28
    /// The largest footer the reader loads: it is read whole into memory at
    /// open. At ~6 bytes of index and filters per row this allows parts of
    /// tens of millions of rows; the merger keeps parts far smaller.
    static let maxFooterBytes = 256 << 20
    /// Longest tenant name in the footer (EventLimits allows 128 bytes).
    static let maxTenantBytes = Int(UInt16.max)

    static func header(flags: UInt16 = 0) -> [UInt8] {
        var out = ByteWriter(capacity: headerSize)
        out.append(magic)
        out.u16(version)
        out.u16(flags)
        out.u32(CRC32C.checksum(out.bytes))
        return out.bytes
    }

    static func trailer(footerOffset: Int, footerLength: Int, footerChecksum: UInt32) -> [UInt8] {
        var out = ByteWriter(capacity: trailerSize)
        out.u64(UInt64(footerOffset))
        out.u32(UInt32(footerLength))
        out.u32(footerChecksum)
        out.u16(version)
        out.u16(0)
        out.u32(CRC32C.checksum(out.bytes))
        out.append(magic)
        return out.bytes
    }

    struct Trailer {
        var footerOffset: Int
        var footerLength: Int
        var footerChecksum: UInt32
        var version: UInt16
        var flags: UInt16
    }

    /// Reads the trailer at `offset` (the file's last 28 bytes). Throws
    /// `PartFormatError` for damage; the caller checks version and flags.
    static func readTrailer(_ bytes: UnsafeRawBufferPointer, offset: Int) throws(PartFormatError) -> Trailer {
        var reader = ByteReader(bytes, base: offset)
        guard bytes.count == trailerSize, Array(bytes[24..<28]) == magic else {
            throw PartFormatError("no part trailer (magic VPRT) in the last \(trailerSize) bytes", at: offset + 24)
        }
        let expected = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<20]))
        let footerOffset = try reader.u64()
        let footerLength = try reader.u32()
        let footerChecksum = try reader.u32()
        let version = try reader.u16()
        let flags = try reader.u16()
        let stored = try reader.u32()
        guard stored == expected else {
            throw PartFormatError("trailer checksum mismatch (stored \(hex(stored)), computed \(hex(expected)))", at: offset + 20)
        }
        guard footerOffset <= UInt64(Int.max) else { throw PartFormatError("footer offset \(footerOffset) is impossible", at: offset) }
        return Trailer(
            footerOffset: Int(footerOffset), footerLength: Int(footerLength), footerChecksum: footerChecksum,
            version: version, flags: flags)
    }

    /// Reads the header; returns its version and flags.
    static func readHeader(_ bytes: UnsafeRawBufferPointer) throws(PartFormatError) -> (version: UInt16, flags: UInt16) {
        var reader = ByteReader(bytes, base: 0)
        guard bytes.count == headerSize, Array(bytes[0..<4]) == magic else {
            throw PartFormatError("no part header (magic VPRT)", at: 0)
        }
        try reader.skip(4)
        let version = try reader.u16()
        let flags = try reader.u16()
        let stored = try reader.u32()
        let expected = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<8]))
        guard stored == expected else {
            throw PartFormatError("header checksum mismatch (stored \(hex(stored)), computed \(hex(expected)))", at: 8)
        }
        return (version, flags)
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// The footer: part metadata, then the block index with its statistics.
struct PartFooter {
    var rowCount: Int
    var minOccurredAt: Int64
    var maxOccurredAt: Int64
    var minSeq: UInt64
    var maxSeq: UInt64
    var createdAt: Int64
    var level: UInt8
    var generation: UInt64
    var rowsPerBlock: Int
    var tenants: [String]
    var blocks: [BlockMetadata]

    /// Bytes of the fixed fields before the tenant list.
    static let fixedSize = 8 + 8 + 8 + 8 + 8 + 8 + 1 + 8 + 4

    func encode() -> [UInt8] {
        var out = ByteWriter(capacity: 4096)
        out.u64(UInt64(rowCount))
        out.i64(minOccurredAt)
        out.i64(maxOccurredAt)
        out.u64(minSeq)
        out.u64(maxSeq)
        out.i64(createdAt)
        out.u8(level)
        out.u64(generation)
        out.u32(UInt32(rowsPerBlock))
        out.u32(UInt32(tenants.count))
        for tenant in tenants {
            out.u16(UInt16(tenant.utf8.count))
            out.append(utf8: tenant)
        }
        out.u32(UInt32(blocks.count))
        for block in blocks { block.encode(into: &out) }
        return out.bytes
    }

    /// Decodes and cross-checks a footer: counts against the bytes that hold
    /// them, tenants in strictly increasing byte order, blocks whose rows add
    /// up, whose ranges lie within the part's and whose chunks tile the chunk
    /// area exactly (so that every byte of the file is covered by a checksum).
    static func decode(_ bytes: UnsafeRawBufferPointer, offset: Int, chunkArea: Range<Int>) throws(PartFormatError) -> PartFooter {
        var reader = ByteReader(bytes, base: offset)
        let rowCountAt = reader.offset
        let rowCount = try reader.u64("row count")
        guard rowCount <= UInt64(Int32.max) * UInt64(ColumnEncoding.maxRows) else {
            throw PartFormatError("row count \(rowCount) is impossible", at: rowCountAt)
        }
        let minOccurredAt = try reader.i64()
        let maxOccurredAt = try reader.i64()
        let minSeq = try reader.u64()
        let maxSeq = try reader.u64()
        let createdAt = try reader.i64()
        let level = try reader.u8()
        let generation = try reader.u64()
        let rowsPerBlock = Int(try reader.u32())
        let tenantCountAt = reader.offset
        let tenantCount = Int(try reader.u32("tenant count"))
        // Each tenant takes at least its 2-byte length.
        guard tenantCount <= reader.remaining / 2, UInt64(tenantCount) <= rowCount else {
            throw PartFormatError("tenant count \(tenantCount) is impossible", at: tenantCountAt)
        }
        var tenants: [String] = []
        // Not all at once: a footer whose checksum holds (a crafted file in
        // a restored backup) may claim millions, and a String takes 8 times
        // the 2 bytes each claimed tenant is checked against.
        tenants.reserveCapacity(min(tenantCount, 4_096))
        for index in 0..<tenantCount {
            let at = reader.offset
            let length = Int(try reader.u16("tenant length"))
            let tenant = String(decoding: try reader.bytes(length, "tenant"), as: UTF8.self)
            if let last = tenants.last, !utf8Less(last, tenant) {
                throw PartFormatError("tenant \(index) is not after tenant \(index - 1) in byte order", at: at)
            }
            tenants.append(tenant)
        }
        let blockCountAt = reader.offset
        let blockCount = Int(try reader.u32("block count"))
        // Each block entry takes at least its fixed fields and one chunk entry per column.
        let minimumEntry = 4 + 32 + 8 + 1 + PartColumn.required.count * ChunkInfo.encodedSize + 1
        guard blockCount <= reader.remaining / minimumEntry, UInt64(blockCount) <= rowCount else {
            throw PartFormatError("block count \(blockCount) is impossible", at: blockCountAt)
        }
        var blocks: [BlockMetadata] = []
        blocks.reserveCapacity(blockCount)
        var rows: UInt64 = 0
        for index in 0..<blockCount {
            let at = reader.offset
            let block = try BlockMetadata.decode(&reader, index: index, partTenants: tenants, chunkArea: chunkArea)
            guard block.minOccurredAt >= minOccurredAt, block.maxOccurredAt <= maxOccurredAt,
                block.minSeq >= minSeq, block.maxSeq <= maxSeq
            else {
                throw PartFormatError("block \(index)'s ranges lie outside the part's", at: at)
            }
            if let previous = blocks.last, block.tenantIndexes.lowerBound < previous.tenantIndexes.upperBound - 1 {
                throw PartFormatError("block \(index)'s tenants come before block \(index - 1)'s", at: at)
            }
            rows += UInt64(block.rowCount)
            blocks.append(block)
        }
        try reader.expectEnd("the block index")
        guard rows == rowCount else {
            throw PartFormatError("blocks hold \(rows) rows, the part \(rowCount)", at: rowCountAt)
        }
        if rowCount == 0 {
            guard tenants.isEmpty, chunkArea.isEmpty else {
                throw PartFormatError("an empty part with tenants or chunks", at: rowCountAt)
            }
        } else {
            guard minOccurredAt <= maxOccurredAt, minSeq <= maxSeq else {
                throw PartFormatError("the part's minimum lies above its maximum", at: rowCountAt + 8)
            }
            guard blocks.first?.tenantIndexes.lowerBound == 0, blocks.last?.tenantIndexes.upperBound == tenants.count else {
                throw PartFormatError("the blocks do not cover the tenant list", at: tenantCountAt)
            }
        }
        // Chunks follow each other without gaps or overlaps from the header to the footer.
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(blockCount * PartColumn.allCases.count)
        for block in blocks {
            for chunk in block.columns.values { ranges.append(chunk.offset..<chunk.offset + chunk.storedLength) }
            ranges.append(contentsOf: block.unknownChunks)
        }
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var expected = chunkArea.lowerBound
        for range in ranges {
            guard range.lowerBound == expected else {
                throw PartFormatError("the chunks leave a gap or overlap", at: expected)
            }
            expected = range.upperBound
        }
        guard expected == chunkArea.upperBound else {
            throw PartFormatError("the chunks end at \(expected), not at the footer", at: offset)
        }
        return PartFooter(
            rowCount: Int(rowCount), minOccurredAt: minOccurredAt, maxOccurredAt: maxOccurredAt,
            minSeq: minSeq, maxSeq: maxSeq, createdAt: createdAt, level: level, generation: generation,
            rowsPerBlock: rowsPerBlock, tenants: tenants, blocks: blocks)
    }
}
