#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import VigilCore
import VigilProto
@testable import VigilStorage

/// Part files through `PartReader`, and raw column chunks through the column
/// decoders.
///
/// Input: a control byte, then a part file or a chunk. Every check a part
/// carries — header, trailer, footer and chunk checksums — would stop almost
/// every mutation at the door, so the control byte picks how far the input is
/// helped past them:
/// - 0: the file as it is;
/// - 1: header, trailer and footer checksums recomputed (reaches the footer
///   and block index decoders);
/// - 2: as 1, and every chunk checksum recomputed through the decoded footer
///   (reaches the chunk decoders, and zlib for compressed chunks);
/// - 3: no file: the rest is one decoded chunk of the column that the control
///   byte's upper bits name, handed to both column decoders (events and query
///   form) as `PartReader` does after inflating it.
/// Opening and reading may only fail with DATA_LOSS (FAILED_PRECONDITION for a
/// well-formed file of another version); what reads must have the row
/// counts the block index promised.
enum PartFuzz {
    nonisolated(unsafe) static var path: String = {
        var template = Array("/tmp/vigil-fuzz-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let result = mkdtemp(buffer.baseAddress!) else { fatalError("mkdtemp failed") }
            return String(cString: result)
        }
        atexit { unlink(PartFuzz.path) }
        return directory + "/input.vprt"
    }()

    static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let control = input.byte()
        switch control & 0x03 {
        case 0: readPart(input.rest())
        case 1: readPart(fixingChecksums(input.rest(), chunks: false))
        case 2: readPart(fixingChecksums(input.rest(), chunks: true))
        default:
            let columns = PartColumn.allCases
            decodeChunk(input.rest(), column: columns[Int(control >> 2) % columns.count])
        }
    }

    // MARK: - Whole parts

    static func readPart(_ bytes: [UInt8]) {
        writeFile(bytes)
        let reader: PartReader
        do {
            reader = try PartReader(path: path)
        } catch {
            precondition(error.code == .dataLoss || error.code == .failedPrecondition, "opening threw \(error)")
            precondition(error.message.hasPrefix(path + ": "), "the error does not name the file: \(error)")
            return
        }
        defer { reader.close() }
        precondition(reader.metadata.blockCount == reader.blocks.count)
        precondition(reader.blocks.reduce(0) { $0 + $1.rowCount } == reader.metadata.rowCount, "blocks do not add up to the part's rows")
        _ = reader.columnSizes()
        for (index, block) in reader.blocks.enumerated().prefix(16) {
            precondition(block.index == index)
            for column in PartColumn.allCases {
                _ = block.mayContain(column, "tenant-1")
                _ = block.mayContain(column, "")
                _ = block.mayContain(column, enumValue: 1)
                _ = block.distinctValues(of: column)
                _ = block.distinctEnumValues(of: column)
                if let (values, counts) = block.valueCounts(of: column) { precondition(values.count == counts.count) }
                if let (values, counts) = block.enumCounts(of: column) { precondition(values.count == counts.count) }
            }
            do {
                let events = try reader.events(block: index)
                precondition(events.count == block.rowCount, "block \(index) decoded \(events.count) of \(block.rowCount) rows")
            } catch {
                precondition(error.code == .dataLoss, "events(block:) threw \(error)")
            }
            readQueryColumns(reader, block: block)
        }
    }

    /// Every column of a block in the form queries read it.
    static func readQueryColumns(_ reader: PartReader, block: BlockMetadata) {
        do {
            guard case .integers(let receivedAt) = try reader.readColumn(block: block.index, .receivedAt).0,
                case .integers(let seq) = try reader.readColumn(block: block.index, .seq).0
            else { fatalError("integer columns decoded as something else") }
            for column in PartColumn.allCases {
                let (values, _) = try reader.readColumn(block: block.index, column, receivedAt: receivedAt, seq: seq)
                materialize(values, rows: block.rowCount)
            }
        } catch {
            precondition(error.code == .dataLoss, "readColumn threw \(error)")
        }
    }

    static func materialize(_ values: ColumnValues, rows: Int) {
        switch values {
        case .integers(let values): precondition(values.count == rows)
        case .enums(let values): precondition(values.count == rows)
        case .text(let column):
            precondition(column.count == rows, "a text column of \(column.count) rows in a block of \(rows)")
            for row in 0..<rows { _ = column.value(at: row) }
            let all = (0..<Int32(rows)).map { $0 }
            _ = column.filter(all, in: ["tenant-1", "", "4bf92f3577b34da6a3ce929d0e0e4736"])
            if case .stored(let stored) = column.codes {
                for row in 0..<rows { _ = stored.matches(row, TextSearch("e")) }
            }
        case .extras(let extras):
            precondition(extras.count == rows)
            for row in 0..<rows { _ = extras.partial(at: row) }
        }
    }

    /// Recomputes the header, trailer and footer checksums (and with `chunks`,
    /// those of every chunk the footer names, re-encoding the footer) so that
    /// a mutation reaches the decoders behind them.
    static func fixingChecksums(_ original: [UInt8], chunks: Bool) -> [UInt8] {
        var bytes = original
        guard bytes.count >= PartFormat.headerSize + PartFormat.trailerSize else { return bytes }
        put(CRC32C.checksum(bytes[0..<8]), at: 8, in: &bytes)
        let trailerOffset = bytes.count - PartFormat.trailerSize
        let footerOffset = bytes[trailerOffset..<trailerOffset + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let footerLength = bytes[trailerOffset + 8..<trailerOffset + 12].reduce(0) { $0 << 8 | Int($1) }
        if footerOffset >= UInt64(PartFormat.headerSize), footerOffset <= UInt64(trailerOffset),
            footerLength == trailerOffset - Int(footerOffset)
        {
            let footerRange = Int(footerOffset)..<trailerOffset
            if chunks, let rebuilt = rebuildingFooter(bytes, footer: footerRange) { return rebuilt }
            put(CRC32C.checksum(bytes[footerRange]), at: trailerOffset + 12, in: &bytes)
        }
        put(CRC32C.checksum(bytes[trailerOffset..<trailerOffset + 20]), at: trailerOffset + 20, in: &bytes)
        return bytes
    }

    /// The file with every chunk checksum recomputed and the footer and trailer
    /// written anew; nil when the footer does not decode.
    static func rebuildingFooter(_ bytes: [UInt8], footer range: Range<Int>) -> [UInt8]? {
        let footerBytes = Array(bytes[range])
        guard
            let footer = try? footerBytes.withUnsafeBytes({ (raw) throws(PartFormatError) in
                try PartFooter.decode(raw, offset: range.lowerBound, chunkArea: PartFormat.headerSize..<range.lowerBound)
            })
        else { return nil }
        var fixed = footer
        fixed.blocks = footer.blocks.map { block in
            var columns = block.columns
            for (column, chunk) in columns {
                columns[column]!.checksum = CRC32C.checksum(bytes[chunk.offset..<chunk.offset + chunk.storedLength])
            }
            return BlockMetadata(
                index: block.index, rowCount: block.rowCount, minOccurredAt: block.minOccurredAt,
                maxOccurredAt: block.maxOccurredAt, minSeq: block.minSeq, maxSeq: block.maxSeq,
                tenantIndexes: block.tenantIndexes, tenants: block.tenants, columns: columns,
                statistics: block.statistics, unknownChunks: block.unknownChunks)
        }
        let encoded = fixed.encode()
        return Array(bytes[..<range.lowerBound]) + encoded
            + PartFormat.trailer(footerOffset: range.lowerBound, footerLength: encoded.count, footerChecksum: CRC32C.checksum(encoded))
    }

    static func put(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
    }

    static func writeFile(_ bytes: [UInt8]) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(descriptor >= 0, "cannot create \(path)")
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            precondition(count > 0, "cannot write \(path)")
            written += count
        }
    }

    // MARK: - Chunks

    /// One decoded chunk of `column` through `PartReader.decodeColumn` (the
    /// events path) and the query-form decoders. The chunk's own header names
    /// the encoding and row count the block index would have given.
    static func decodeChunk(_ raw: [UInt8], column: PartColumn) {
        guard let encodingByte = raw.first, let encoding = ChunkEncoding(rawValue: encodingByte) else { return }
        let rows = raw.withUnsafeBytes { bytes -> Int in
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
            guard let count = try? reader.varint(), count <= UInt64(ColumnEncoding.maxRows) else { return 0 }
            return Int(count)
        }
        let chunk = ChunkInfo(
            column: column, encoding: encoding, codec: .none, offset: 0, storedLength: raw.count, rawLength: raw.count, checksum: 0)
        // Ids decode after receivedAt and seq.
        let receivedAt = (0..<rows).map { Int64($0) &* 1_000_000_007 }
        let seq = (0..<rows).map { UInt64($0) + 1 }
        var block = DecodedBlock(rowCount: rows)
        block.receivedAt = receivedAt
        block.seq = seq
        do throws(PartFormatError) {
            try withBytes(raw) { (bytes) throws(PartFormatError) in
                try PartReader.decodeColumn(bytes, chunk: chunk, rows: rows, into: &block)
            }
            let decoded = column == .presence ? block.presence?.count : block.count(of: column)
            precondition(decoded == nil || decoded == rows, "column \(column.name) decoded \(decoded!) of \(rows) rows")
        } catch {
            _ = error.what
        }
        // Keyed, copied and usual chunks decode against a key column: one with a few distinct keys.
        let keys = TextColumn(identity: (0..<rows).map { "key-\($0 % 3)" })
        var keyed = DecodedBlock(rowCount: rows)
        keyed.actorID = keys.allValues
        keyed.action = keys.allValues
        keyed.resourceID = keys.allValues
        keyed.receivedAt = receivedAt
        keyed.seq = seq
        do throws(PartFormatError) {
            try withBytes(raw) { (bytes) throws(PartFormatError) in
                try PartReader.decodeColumn(bytes, chunk: chunk, rows: rows, into: &keyed)
            }
        } catch {
            _ = error.what
        }
        do throws(PartFormatError) {
            let values = try withBytes(raw) { (whole) throws(PartFormatError) -> ColumnValues in
                var reader = ByteReader(whole)
                let encoding = try ColumnEncoding.readHeader(&reader, column: column, expected: encoding, rows: rows)
                switch column.kind {
                case .integer:
                    return .integers(try ColumnEncoding.decodeIntegers(&reader, encoding: encoding, rows: rows))
                case .enumeration:
                    if encoding == .keyed {
                        return .enums(try KeyedText.decodeEnums(&reader, rows: rows, keys: keys))
                    }
                    return .enums(try ColumnEncoding.decodeEnums(&reader, encoding: encoding, rows: rows))
                case .string:
                    switch encoding {
                    case .keyed: return .text(try KeyedText.decode(&reader, rows: rows, keys: keys))
                    case .copied: return .text(try CopiedText.decode(&reader, rows: rows, keys: keys))
                    case .usual: return .text(try UsualText.decode(&reader, rows: rows, keys: keys))
                    default: break
                    }
                    if column == .description && encoding == .plain {
                        return .text(TextColumn(stored: try ColumnEncoding.decodePlainRows(&reader, rows: rows, owner: raw)))
                    }
                    return .text(try ColumnEncoding.decodeText(&reader, encoding: encoding, rows: rows))
                case .correlationID:
                    return .text(TextColumn(stored: try ColumnEncoding.decodeCorrelationRows(&reader, rows: rows, owner: raw)))
                case .eventID:
                    return .text(TextColumn(stored: try ColumnEncoding.decodeEventIDRows(
                        &reader, rows: rows, receivedAt: receivedAt, seq: seq, owner: raw)))
                case .bytes:
                    return .extras(try ColumnEncoding.decodeExtrasRows(&reader, encoding: encoding, rows: rows, owner: raw))
                case .fixed32:
                    // The truncated leaves of the hash chain.
                    return .integers(try ColumnEncoding.decodeFixed32(&reader, rows: rows).map { Int64($0) })
                }
            }
            materialize(values, rows: rows)
        } catch {
            _ = error.what
        }
    }
}

extension DecodedBlock {
    /// Rows decoded for `column`, or nil when it was not decoded.
    func count(of column: PartColumn) -> Int? {
        switch column {
        case .occurredAt: occurredAt?.count
        case .seq: seq?.count
        case .receivedAt: receivedAt?.count
        case .actorType: actorType?.count
        case .category: category?.count
        case .outcome: outcome?.count
        case .extras: extras?.count
        case .presence: presence?.count
        default: strings(column)?.count
        }
    }
}
