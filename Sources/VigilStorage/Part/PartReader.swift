#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import VigilCore

/// Compressed and raw bytes of one column over a part (for `vigil inspect`).
public struct ColumnSize: Sendable, Hashable {
    public var compressed: Int
    public var raw: Int

    public init(compressed: Int, raw: Int) {
        self.compressed = compressed
        self.raw = raw
    }
}

/// A block's time and seq ranges (`BlockMetadata`'s), kept in an array.
struct BlockBounds: Sendable {
    var minOccurredAt: Int64
    var maxOccurredAt: Int64
    var minSeq: UInt64
    var maxSeq: UInt64

    init(_ block: BlockMetadata) {
        minOccurredAt = block.minOccurredAt
        maxOccurredAt = block.maxOccurredAt
        minSeq = block.minSeq
        maxSeq = block.maxSeq
    }
}

/// Reads a part file. Opening reads and verifies the header, trailer and
/// footer (so block metadata and statistics are in memory); chunks are read
/// with `pread` when asked for and verified against their CRC32C before they
/// are decompressed or decoded. Any damage is reported as DATA_LOSS
/// ("<path>: <what> at offset N"), never returned as data. Safe to use from
/// several threads at once.
public final class PartReader: Sendable {
    public let path: String
    /// Unique for the process's lifetime: the column cache's key for this part
    /// (a path can come back after a part is deleted; this never does).
    let cacheID: UInt64 = PartReader.nextCacheID.add(1, ordering: .relaxed).newValue
    public let metadata: PartMetadata
    public let blocks: [BlockMetadata]
    /// Each block's time and seq ranges, side by side: a query's planning
    /// looks at every block of every part, and a plain array of them costs
    /// no pointer chase and no reference count per block (12 µs of a
    /// 0.5 ms query over 2,469 blocks).
    let blockBounds: [BlockBounds]
    /// Decoded bytes of every column of every block: about what decoding
    /// the whole part takes (a merge's memory estimate, asked for every part
    /// of a day after each flush, so counted once here).
    public let rawColumnBytes: Int
    private let file: FileHandleDescriptor
    private let state = Mutex(State())
    private let inflaters = Mutex<[InflaterBox]>([])

    private struct State {
        var closed = false
        var readers = 0
        var descriptorClosed = false
    }

    /// Reads and verifies header, trailer and footer; keeps the file open.
    public init(path: String) throws(VigilError) {
        self.path = path
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        do throws(VigilError) {
            (metadata, blocks) = try Self.open(file, path: path)
        } catch {
            file.close()
            throw error
        }
        self.file = file
        blockBounds = blocks.map(BlockBounds.init)
        rawColumnBytes = blocks.reduce(0) { total, block in block.columns.values.reduce(total) { $0 + $1.rawLength } }
    }

    deinit {
        let close = state.withLock { state in
            defer { state.descriptorClosed = true }
            return !state.descriptorClosed
        }
        if close { file.close() }
    }

    /// Refuses further reads and closes the file (once reads in progress end).
    public func close() {
        let closeNow = state.withLock { state in
            state.closed = true
            if state.readers == 0 && !state.descriptorClosed {
                state.descriptorClosed = true
                return true
            }
            return false
        }
        if closeNow { file.close() }
    }

    private static let nextCacheID = Atomic<UInt64>(0)

    private static func dataLoss(_ path: String, _ error: PartFormatError) -> VigilError {
        VigilError(.dataLoss, "\(path): \(error.what) at offset \(error.offset)")
    }

    private static func open(_ file: FileHandleDescriptor, path: String) throws(VigilError) -> (PartMetadata, [BlockMetadata]) {
        let size = try file.size()
        guard size >= PartFormat.headerSize + PartFormat.trailerSize else {
            throw VigilError(.dataLoss, "\(path): the file of \(size) bytes is shorter than a part's header and trailer at offset 0")
        }
        let trailerOffset = size - PartFormat.trailerSize
        let trailerBytes = try file.read(count: PartFormat.trailerSize, at: trailerOffset)
        let trailer: PartFormat.Trailer
        do {
            trailer = try withBytes(trailerBytes) { (raw) throws(PartFormatError) in
                try PartFormat.readTrailer(raw, offset: trailerOffset)
            }
        } catch {
            throw dataLoss(path, error)
        }
        try checkVersion(trailer.version, flags: trailer.flags, path: path)
        guard trailer.footerOffset >= PartFormat.headerSize,
            trailer.footerOffset <= trailerOffset,
            trailer.footerLength == trailerOffset - trailer.footerOffset
        else {
            throw VigilError(.dataLoss, "\(path): the trailer places a footer of \(trailer.footerLength) bytes at \(trailer.footerOffset), which does not end at the trailer, at offset \(trailerOffset)")
        }
        guard trailer.footerLength <= PartFormat.maxFooterBytes else {
            throw VigilError(.dataLoss, "\(path): footer of \(trailer.footerLength) bytes exceeds the limit of \(PartFormat.maxFooterBytes) at offset \(trailerOffset)")
        }
        let headerBytes = try file.read(count: PartFormat.headerSize, at: 0)
        let header: (version: UInt16, flags: UInt16)
        do {
            header = try withBytes(headerBytes) { (raw) throws(PartFormatError) in try PartFormat.readHeader(raw) }
        } catch {
            throw dataLoss(path, error)
        }
        try checkVersion(header.version, flags: header.flags, path: path)
        guard header.version == trailer.version else {
            throw VigilError(.dataLoss, "\(path): header version \(header.version) differs from trailer version \(trailer.version) at offset 4")
        }
        let footerBytes = try file.read(count: trailer.footerLength, at: trailer.footerOffset)
        let checksum = CRC32C.checksum(footerBytes)
        guard checksum == trailer.footerChecksum else {
            throw VigilError(.dataLoss, "\(path): footer checksum mismatch (stored \(PartFormat.hex(trailer.footerChecksum)), computed \(PartFormat.hex(checksum))) at offset \(trailer.footerOffset)")
        }
        let footer: PartFooter
        do {
            footer = try withBytes(footerBytes) { (raw) throws(PartFormatError) in
                try PartFooter.decode(raw, offset: trailer.footerOffset, chunkArea: PartFormat.headerSize..<trailer.footerOffset)
            }
        } catch {
            throw dataLoss(path, error)
        }
        let metadata = PartMetadata(
            formatVersion: Int(trailer.version), rowCount: footer.rowCount,
            minOccurredAt: footer.minOccurredAt, maxOccurredAt: footer.maxOccurredAt,
            minSeq: footer.minSeq, maxSeq: footer.maxSeq, tenants: footer.tenants,
            createdAt: footer.createdAt, level: footer.level, generation: footer.generation,
            rowsPerBlock: footer.rowsPerBlock, blockCount: footer.blocks.count,
            fileBytes: size, footerBytes: trailer.footerLength)
        return (metadata, footer.blocks)
    }

    /// A well-formed file of another version: not damage, but not readable here.
    private static func checkVersion(_ version: UInt16, flags: UInt16, path: String) throws(VigilError) {
        guard version == PartFormat.version else {
            throw VigilError(.failedPrecondition, "\(path): part format version \(version) is not supported (this build reads version \(PartFormat.version))")
        }
        guard flags == 0 else {
            throw VigilError(.failedPrecondition, "\(path): part flags \(flags) name features this build does not support")
        }
    }

    /// Runs `body` with the file, unless the reader is closed.
    private func withFile<R>(_ body: (FileHandleDescriptor) throws(VigilError) -> R) throws(VigilError) -> R {
        let open = state.withLock { state in
            if state.closed { return false }
            state.readers += 1
            return true
        }
        guard open else { throw VigilError(.failedPrecondition, "\(path): the part reader is closed") }
        defer {
            let closeNow = state.withLock { state in
                state.readers -= 1
                if state.closed && state.readers == 0 && !state.descriptorClosed {
                    state.descriptorClosed = true
                    return true
                }
                return false
            }
            if closeNow { file.close() }
        }
        return try body(file)
    }

    /// Decodes the named columns of one block (verifying each chunk's CRC).
    /// Decoding `id` also decodes `receivedAt` and `seq`, which derived ids
    /// are rebuilt from.
    /// With `extrasAsBytes`, the extras column comes as each row's stored
    /// bytes (`DecodedBlock.extrasBytes`), not as events.
    public func readColumns(block index: Int, _ columns: Set<PartColumn>, extrasAsBytes: Bool = false) throws(VigilError) -> DecodedBlock {
        guard blocks.indices.contains(index) else {
            throw VigilError(.outOfRange, "\(path): block \(index) does not exist; the part has \(blocks.count)")
        }
        let block = blocks[index]
        var wanted = columns
        if wanted.contains(.id) {
            wanted.insert(.receivedAt)
            wanted.insert(.seq)
        }
        // A keyed or copied column decodes with its key column, which comes
        // first in column order (and may itself need its own: resourceName,
        // resourceID, actorID).
        for column in PartColumn.allCases.reversed() where wanted.contains(column) {
            if let key = column.keyColumn, block.columns[column]?.encoding.readsKeyColumn == true { wanted.insert(key) }
        }
        // Column order puts seq and receivedAt before id. Only `leaf` may be
        // absent (parts written before tamper evidence): it stays nil.
        let chunks = wanted.sorted().compactMap { block.columns[$0] }
        var result = DecodedBlock(rowCount: block.rowCount)
        result.wantsExtrasBytes = extrasAsBytes
        guard !chunks.isEmpty else { return result }

        // One read for the whole span when the chunks lie close together.
        let lowest = chunks.map(\.offset).min()!
        let highest = chunks.map { $0.offset + $0.storedLength }.max()!
        let needed = chunks.reduce(0) { $0 + $1.storedLength }
        let span: [UInt8]? =
            highest - lowest <= needed * 2 + 65_536
            ? try withFile { (file) throws(VigilError) in try file.read(count: highest - lowest, at: lowest) } : nil

        let inflater = takeInflater()
        defer { returnInflater(inflater) }
        var scratch: [UInt8] = []
        for chunk in chunks {
            let stored: [UInt8]
            if let span {
                stored = Array(span[chunk.offset - lowest..<chunk.offset - lowest + chunk.storedLength])
            } else {
                stored = try withFile { (file) throws(VigilError) in try file.read(count: chunk.storedLength, at: chunk.offset) }
            }
            try decode(chunk, block: block, stored: stored, scratch: &scratch, inflater: inflater.inflater, into: &result)
        }
        return result
    }

    /// Decodes one column of one block in the form queries use (text keeps its
    /// dictionary). Returns the values and the bytes inflated to get them.
    /// `id` needs the block's `receivedAt` and `seq` (bit patterns) values.
    func readColumn(
        block index: Int, _ column: PartColumn, receivedAt: [Int64]? = nil, seq: [Int64]? = nil, key: TextColumn? = nil
    ) throws(VigilError) -> (ColumnValues, inflated: Int) {
        guard blocks.indices.contains(index) else {
            throw VigilError(.outOfRange, "\(path): block \(index) does not exist; the part has \(blocks.count)")
        }
        let block = blocks[index]
        guard let chunk = block.columns[column] else {
            throw VigilError(.dataLoss, "\(path): block \(index) has no chunk of column \(column.name)")
        }
        if chunk.encoding.readsKeyColumn && key == nil, let keyColumn = column.keyColumn {
            // Read the key column first (the caller may pass it from its cache instead).
            let (keyValues, keyInflated) = try readColumn(block: index, keyColumn)
            guard case .text(let keys) = keyValues else { preconditionFailure("key columns are text") }
            let (values, inflated) = try readColumn(block: index, column, key: keys)
            return (values, inflated + keyInflated)
        }
        let stored = try withFile { (file) throws(VigilError) in try file.read(count: chunk.storedLength, at: chunk.offset) }
        let name = "block \(block.index) column \(column.name)"
        try withBytes(stored) { (bytes) throws(VigilError) in try checkStored(bytes, of: chunk, block: block.index) }
        let rows = block.rowCount
        // `owner` holds the decoded chunk from its first byte; the rows of
        // stored columns point into it.
        func decode(_ owner: [UInt8], count: Int) throws(VigilError) -> ColumnValues {
            do throws(PartFormatError) {
                return try withBytes(owner) { (whole) throws(PartFormatError) -> ColumnValues in
                    var reader = ByteReader(UnsafeRawBufferPointer(rebasing: whole[0..<count]))
                    let encoding = try ColumnEncoding.readHeader(&reader, column: column, expected: chunk.encoding, rows: rows)
                    switch column.kind {
                    case .integer:
                        return .integers(try ColumnEncoding.decodeIntegers(&reader, encoding: encoding, rows: rows))
                    case .enumeration:
                        if encoding == .keyed {
                            guard let key else { throw PartFormatError("keyed column \(column.name) needs its key column", at: 0) }
                            return .enums(try KeyedText.decodeEnums(&reader, rows: rows, keys: key))
                        }
                        return .enums(try ColumnEncoding.decodeEnums(&reader, encoding: encoding, rows: rows))
                    case .string:
                        if column == .description && encoding == .plain {
                            return .text(TextColumn(stored: try ColumnEncoding.decodePlainRows(&reader, rows: rows, owner: owner)))
                        }
                        if encoding.readsKeyColumn {
                            guard let key else { throw PartFormatError("column \(column.name) needs its key column", at: 0) }
                            switch encoding {
                            case .keyed: return .text(try KeyedText.decode(&reader, rows: rows, keys: key))
                            case .copied: return .text(try CopiedText.decode(&reader, rows: rows, keys: key))
                            default: return .text(try UsualText.decode(&reader, rows: rows, keys: key))
                            }
                        }
                        return .text(try ColumnEncoding.decodeText(&reader, encoding: encoding, rows: rows))
                    case .correlationID:
                        return .text(TextColumn(stored: try ColumnEncoding.decodeCorrelationRows(&reader, rows: rows, owner: owner)))
                    case .eventID:
                        let receivedAt = receivedAt ?? []
                        let seq = (seq ?? []).map { UInt64(bitPattern: $0) }
                        guard receivedAt.count == rows, seq.count == rows else {
                            throw PartFormatError("ids need the block's receivedAt and seq", at: 0)
                        }
                        return .text(
                            TextColumn(stored: try ColumnEncoding.decodeEventIDRows(&reader, rows: rows, receivedAt: receivedAt, seq: seq, owner: owner)))
                    case .bytes:
                        return .extras(try ColumnEncoding.decodeExtrasRows(&reader, encoding: encoding, rows: rows, owner: owner))
                    case .fixed32:
                        return .enums(try ColumnEncoding.decodeFixed32(&reader, rows: rows).map { Int32(bitPattern: $0) })
                    }
                }
            } catch {
                throw VigilError(.dataLoss, "\(path): \(name): \(error.what) (byte \(error.offset) of the decoded chunk) at offset \(chunk.offset)")
            }
        }
        switch chunk.codec {
        case .none:
            return (try decode(stored, count: stored.count), 0)
        case .zlib:
            var scratch = [UInt8](repeating: 0, count: chunk.rawLength)
            let inflater = takeInflater()
            let problem: String? = stored.withUnsafeBytes { input in
                scratch.withUnsafeMutableBytes { output in inflater.inflater.decompress(input, into: output) }
            }
            returnInflater(inflater)
            if let problem {
                throw VigilError(.dataLoss, "\(path): \(name): \(problem) at offset \(chunk.offset)")
            }
            return (try decode(scratch, count: chunk.rawLength), chunk.rawLength)
        }
    }

    /// The stored bytes of block `index`'s chunks, read at once as they lie
    /// in the file (`BlockMetadata.storedSpan`), each chunk's CRC32C checked:
    /// what a merge copies into its part for a block whose rows it takes
    /// whole, without inflating or decoding it. Throws DATA_LOSS for a
    /// damaged chunk, as decoding would; INVALID_ARGUMENT for a block whose
    /// chunks do not lie back to back.
    func storedBytes(block index: Int) throws(VigilError) -> [UInt8] {
        guard blocks.indices.contains(index) else {
            throw VigilError(.outOfRange, "\(path): block \(index) does not exist; the part has \(blocks.count)")
        }
        let block = blocks[index]
        guard let span = block.storedSpan else {
            throw VigilError(.invalidArgument, "\(path): block \(index)'s chunks do not lie back to back; it cannot be copied")
        }
        let stored = try withFile { (file) throws(VigilError) in try file.read(count: span.count, at: span.lowerBound) }
        try withBytes(stored) { (bytes) throws(VigilError) in
            for chunk in block.columns.values {
                let start = chunk.offset - span.lowerBound
                try checkStored(UnsafeRawBufferPointer(rebasing: bytes[start..<start + chunk.storedLength]), of: chunk, block: index)
            }
        }
        return stored
    }

    /// Throws DATA_LOSS, naming the chunk, when `stored` is not what its CRC32C says.
    private func checkStored(_ stored: UnsafeRawBufferPointer, of chunk: ChunkInfo, block: Int) throws(VigilError) {
        let checksum = CRC32C.checksum(stored)
        guard checksum == chunk.checksum else {
            throw VigilError(
                .dataLoss,
                "\(path): block \(block) column \(chunk.column.name): checksum mismatch (stored \(PartFormat.hex(chunk.checksum)), computed \(PartFormat.hex(checksum))) at offset \(chunk.offset)")
        }
    }

    /// Every event of one block, in stored order.
    public func events(block index: Int) throws(VigilError) -> [AuditEvent] {
        try readColumns(block: index, Set(PartColumn.required)).events()
    }

    /// Every column of one block, `leaf` included when the part has it.
    public func allColumns(block index: Int, extrasAsBytes: Bool = false) throws(VigilError) -> DecodedBlock {
        try readColumns(block: index, Set(PartColumn.allCases), extrasAsBytes: extrasAsBytes)
    }

    /// Whether every block stores the truncated leaf hashes of its events.
    public var hasLeaves: Bool { blocks.allSatisfy { $0.columns[.leaf] != nil } }

    /// Compressed and raw bytes per column over all blocks (for `vigil inspect`).
    public func columnSizes() -> [PartColumn: ColumnSize] {
        var sizes: [PartColumn: ColumnSize] = [:]
        for block in blocks {
            for (column, chunk) in block.columns {
                sizes[column, default: ColumnSize(compressed: 0, raw: 0)].compressed += chunk.storedLength
                sizes[column, default: ColumnSize(compressed: 0, raw: 0)].raw += chunk.rawLength
            }
        }
        return sizes
    }

    private func decode(
        _ chunk: ChunkInfo, block: BlockMetadata, stored: [UInt8], scratch: inout [UInt8],
        inflater: ZlibInflater, into result: inout DecodedBlock
    ) throws(VigilError) {
        let name = "block \(block.index) column \(chunk.column.name)"
        try withBytes(stored) { (bytes) throws(VigilError) in try checkStored(bytes, of: chunk, block: block.index) }
        func decodeRaw(_ raw: UnsafeRawBufferPointer) throws(VigilError) {
            do {
                try Self.decodeColumn(raw, chunk: chunk, rows: block.rowCount, into: &result)
            } catch {
                throw VigilError(.dataLoss, "\(path): \(name): \(error.what) (byte \(error.offset) of the decoded chunk) at offset \(chunk.offset)")
            }
        }
        switch chunk.codec {
        case .none:
            try withBytes(stored, decodeRaw)
        case .zlib:
            if scratch.count < chunk.rawLength {
                scratch.appendZeros(chunk.rawLength - scratch.count)
            }
            let problem: String? = stored.withUnsafeBytes { input in
                scratch.withUnsafeMutableBytes { output in
                    inflater.decompress(input, into: UnsafeMutableRawBufferPointer(rebasing: output[0..<chunk.rawLength]))
                }
            }
            if let problem {
                throw VigilError(.dataLoss, "\(path): \(name): \(problem) at offset \(chunk.offset)")
            }
            try withBytes(scratch) { (raw) throws(VigilError) in
                try decodeRaw(UnsafeRawBufferPointer(rebasing: raw[0..<chunk.rawLength]))
            }
        }
    }

    static func decodeColumn(
        _ raw: UnsafeRawBufferPointer, chunk: ChunkInfo, rows: Int, into result: inout DecodedBlock
    ) throws(PartFormatError) {
        var reader = ByteReader(raw)
        let column = chunk.column
        let encoding = try ColumnEncoding.readHeader(&reader, column: column, expected: chunk.encoding, rows: rows)
        switch column.kind {
        case .integer:
            let values = try ColumnEncoding.decodeIntegers(&reader, encoding: encoding, rows: rows)
            switch column {
            case .occurredAt: result.occurredAt = values
            case .receivedAt: result.receivedAt = values
            default: result.seq = values.map { UInt64(bitPattern: $0) }
            }
        case .enumeration:
            let values: [Int32]
            if encoding == .keyed {
                guard let key = column.keyColumn, let keys = result.keyText(key) else {
                    throw reader.error("keyed column \(column.name) needs its key column decoded first")
                }
                values = try KeyedText.decodeEnums(&reader, rows: rows, keys: keys)
            } else {
                values = try ColumnEncoding.decodeEnums(&reader, encoding: encoding, rows: rows)
            }
            switch column {
            case .actorType: result.actorType = values
            case .category: result.category = values
            case .outcome: result.outcome = values
            default:
                var bits: [UInt8] = []
                bits.reserveCapacity(rows)
                for (row, value) in values.enumerated() {
                    guard value >= 0 && value <= Int32(PartPresence.all) else {
                        throw PartFormatError("presence bits \(value) of row \(row) are unknown", at: 0)
                    }
                    bits.append(UInt8(value))
                }
                result.presence = bits
            }
        case .string:
            let text: TextColumn
            if encoding.readsKeyColumn {
                guard let key = column.keyColumn, let keys = result.keyText(key) else {
                    throw reader.error("column \(column.name) needs its key column decoded first")
                }
                switch encoding {
                case .keyed: text = try KeyedText.decode(&reader, rows: rows, keys: keys)
                case .copied: text = try CopiedText.decode(&reader, rows: rows, keys: keys)
                default: text = try UsualText.decode(&reader, rows: rows, keys: keys)
                }
            } else {
                text = try ColumnEncoding.decodeText(&reader, encoding: encoding, rows: rows)
            }
            // Key columns stay in dictionary form too, for the columns keyed to them.
            if PartColumn.keyColumns.contains(column) { result.keyTexts[column] = text }
            result.setStrings(column, text.allValues)
        case .eventID:
            result.id = try ColumnEncoding.decodeEventIDs(
                &reader, rows: rows, receivedAt: result.receivedAt!, seq: result.seq!)
        case .correlationID:
            result.setStrings(column, try ColumnEncoding.decodeCorrelationIDs(&reader, rows: rows))
        case .bytes:
            if result.wantsExtrasBytes {
                result.extrasBytes = try ColumnEncoding.decodeExtrasBytes(&reader, encoding: encoding, rows: rows)
            } else {
                result.extras = try ColumnEncoding.decodeExtras(&reader, encoding: encoding, rows: rows)
            }
        case .fixed32:
            result.leaf = try ColumnEncoding.decodeFixed32(&reader, rows: rows)
        }
    }

    private func takeInflater() -> InflaterBox {
        inflaters.withLock { $0.popLast() } ?? InflaterBox()
    }

    private func returnInflater(_ box: InflaterBox) {
        inflaters.withLock { pool in
            if pool.count < 8 { pool.append(box) }
        }
    }
}

/// A pooled inflater; only one thread uses it at a time (taken from and
/// returned to the reader's pool under its lock).
private final class InflaterBox: @unchecked Sendable {
    let inflater = ZlibInflater()
}
