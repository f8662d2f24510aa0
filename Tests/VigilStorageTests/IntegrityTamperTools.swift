#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import VigilCore
import VigilProto
@testable import VigilStorage

// What an attacker with write access to the data directory can do to it.
// Shared by the storage tests and the CLI tests (which see this file through
// a symbolic link).

/// Tampering with the files of a data directory the way an attacker would:
/// every checksum is made right again, so that only the hash chain can tell.
enum Tamper {
    /// Every listed part, by relative path.
    static func parts(_ directory: String) throws -> [String] {
        let manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: directory + "/MANIFEST")
        return manifest.parts.map(\.path)
    }

    /// The seqs a part holds, in row order, block by block.
    static func seqs(_ path: String) throws -> [[UInt64]] {
        let reader = try PartReader(path: path)
        defer { reader.close() }
        return try reader.blocks.map { try reader.readColumns(block: $0.index, [.seq]).seq! }
    }

    /// Flips a bit of the trace id of one row, in the bytes of its chunk,
    /// and rewrites the part with every CRC recomputed. Returns the seq of
    /// the event changed. Needs rows whose trace ids are 32 hex digits.
    @discardableResult
    static func flipTraceIDBit(_ path: String, block: Int, row: Int) throws -> UInt64 {
        let reader = try PartReader(path: path)
        let seq = try reader.readColumns(block: block, [.seq]).seq![row]
        let rows = reader.blocks[block].rowCount
        reader.close()
        try editChunk(path, block: block, column: .traceID) { raw in
            // Header: encoding byte, varint row count; then a kind per row; the hex bytes come last.
            var headerLength = 1
            while raw[headerLength] & 0x80 != 0 { headerLength += 1 }
            headerLength += 1
            precondition(raw[headerLength..<headerLength + rows].allSatisfy { $0 == 16 }, "every trace id is 32 hex digits")
            raw[raw.count - 16 * (rows - row) + 5] ^= 0x01
        }
        return seq
    }

    /// Rewrites a part with `transform` applied to the raw (inflated) bytes of
    /// one chunk; that chunk is stored uncompressed, and every offset and
    /// checksum (chunk, footer, trailer) is recomputed.
    static func editChunk(_ path: String, block target: Int, column: PartColumn, _ transform: (inout [UInt8]) -> Void) throws {
        let reader = try PartReader(path: path)
        defer { reader.close() }
        let file = try readFile(path)
        var out = PartFormat.header()
        var blocks: [BlockMetadata] = []
        for block in reader.blocks {
            var columns: [PartColumn: ChunkInfo] = [:]
            for (id, chunk) in block.columns.sorted(by: { $0.value.offset < $1.value.offset }) {
                var stored = Array(file[chunk.offset..<chunk.offset + chunk.storedLength])
                var info = chunk
                if block.index == target && id == column {
                    var raw = stored
                    if chunk.codec == .zlib {
                        raw = [UInt8](repeating: 0, count: chunk.rawLength)
                        let problem = stored.withUnsafeBytes { input in
                            raw.withUnsafeMutableBytes { ZlibInflater().decompress(input, into: $0) }
                        }
                        precondition(problem == nil, "the chunk inflates")
                    }
                    transform(&raw)
                    stored = raw
                    info.codec = .none
                    info.rawLength = raw.count
                }
                info.offset = out.count
                info.storedLength = stored.count
                info.checksum = CRC32C.checksum(stored)
                out += stored
                columns[id] = info
            }
            blocks.append(BlockMetadata(
                index: block.index, rowCount: block.rowCount, minOccurredAt: block.minOccurredAt, maxOccurredAt: block.maxOccurredAt,
                minSeq: block.minSeq, maxSeq: block.maxSeq, tenantIndexes: block.tenantIndexes, tenants: block.tenants,
                columns: columns, statistics: block.statistics))
        }
        let metadata = reader.metadata
        let footer = PartFooter(
            rowCount: metadata.rowCount, minOccurredAt: metadata.minOccurredAt, maxOccurredAt: metadata.maxOccurredAt,
            minSeq: metadata.minSeq, maxSeq: metadata.maxSeq, createdAt: metadata.createdAt, level: metadata.level,
            generation: metadata.generation, rowsPerBlock: metadata.rowsPerBlock, tenants: metadata.tenants, blocks: blocks)
        let footerBytes = footer.encode()
        let footerOffset = out.count
        out += footerBytes
        out += PartFormat.trailer(footerOffset: footerOffset, footerLength: footerBytes.count, footerChecksum: CRC32C.checksum(footerBytes))
        try writeFile(path, out)
        // The rewritten part must still pass every checksum.
        let check = try PartReader(path: path)
        for block in check.blocks.indices { _ = try check.allColumns(block: block) }
        check.close()
    }

    /// Rewrites a part's footer with block `target`'s entry as `change`
    /// makes it (its chunks untouched), the footer and trailer checksums
    /// made right: what a query plans with, edited so that the part still opens.
    static func editBlockEntry(_ path: String, block target: Int, _ change: (BlockMetadata) -> BlockMetadata) throws {
        let reader = try PartReader(path: path)
        defer { reader.close() }
        let file = try readFile(path)
        let trailerAt = file.count - PartFormat.trailerSize
        let trailer = try withBytes(Array(file[trailerAt...])) { (raw) throws(PartFormatError) in
            try PartFormat.readTrailer(raw, offset: trailerAt)
        }
        let metadata = reader.metadata
        let footer = PartFooter(
            rowCount: metadata.rowCount, minOccurredAt: metadata.minOccurredAt, maxOccurredAt: metadata.maxOccurredAt,
            minSeq: metadata.minSeq, maxSeq: metadata.maxSeq, createdAt: metadata.createdAt, level: metadata.level,
            generation: metadata.generation, rowsPerBlock: metadata.rowsPerBlock, tenants: metadata.tenants,
            blocks: reader.blocks.map { $0.index == target ? change($0) : $0 })
        let footerBytes = footer.encode()
        try writeFile(
            path,
            Array(file[..<trailer.footerOffset]) + footerBytes
                + PartFormat.trailer(footerOffset: trailer.footerOffset, footerLength: footerBytes.count, footerChecksum: CRC32C.checksum(footerBytes)))
        // The part still opens and reads: only its index lies.
        let check = try PartReader(path: path)
        for block in check.blocks.indices { _ = try check.allColumns(block: block) }
        check.close()
    }

    /// `block` with other statistics (and, when given, another time range).
    static func block(_ block: BlockMetadata, statistics: [PartColumn: ColumnStatistic], occurredAt: ClosedRange<Int64>? = nil) -> BlockMetadata {
        BlockMetadata(
            index: block.index, rowCount: block.rowCount,
            minOccurredAt: occurredAt?.lowerBound ?? block.minOccurredAt, maxOccurredAt: occurredAt?.upperBound ?? block.maxOccurredAt,
            minSeq: block.minSeq, maxSeq: block.maxSeq, tenantIndexes: block.tenantIndexes, tenants: block.tenants,
            columns: block.columns, statistics: statistics)
    }

    /// Decodes a part whole (events and their stored truncated leaves),
    /// lets `change` edit them, and writes it again with the part writer.
    static func rewrite(_ path: String, _ change: (inout [AuditEvent], inout [UInt32]) -> Void) throws {
        let reader = try PartReader(path: path)
        var events: [AuditEvent] = []
        var leaves: [UInt32] = []
        for block in reader.blocks.indices {
            let decoded = try reader.allColumns(block: block)
            events += decoded.events()
            leaves += decoded.leaf!
        }
        reader.close()
        change(&events, &leaves)
        let metadata = try PartWriter.write(events, leaves: leaves, to: path)
        // MANIFEST's entry follows the part (a store refuses an entry that disagrees with its footer).
        let split = path.range(of: "/parts/", options: .backwards)!
        let directory = String(path[..<split.lowerBound])
        let manifestPath = directory + "/MANIFEST"
        var manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: manifestPath)
        let index = manifest.parts.firstIndex { $0.path == "parts/" + path[split.upperBound...] }!
        manifest.parts[index].rows = UInt64(metadata.rowCount)
        manifest.parts[index].minSeq = metadata.minSeq
        manifest.parts[index].maxSeq = metadata.maxSeq
        manifest.parts[index].minOccurredAt = metadata.minOccurredAt
        manifest.parts[index].maxOccurredAt = metadata.maxOccurredAt
        try ChecksummedFile.write(manifest, magic: ColumnarEventStore.manifestMagic, to: manifestPath)
    }

    /// Removes the event holding `seq` (and its stored leaf).
    static func delete(_ path: String, seq: UInt64) throws {
        try rewrite(path) { events, leaves in
            let index = events.firstIndex { $0.seq == seq }!
            events.remove(at: index)
            leaves.remove(at: index)
        }
    }

    /// Exchanges the seqs of two events of the part (each keeps its stored leaf).
    static func swap(_ path: String, _ a: UInt64, _ b: UInt64) throws {
        try rewrite(path) { events, _ in
            let x = events.firstIndex { $0.seq == a }!
            let y = events.firstIndex { $0.seq == b }!
            events[x].seq = b
            events[y].seq = a
        }
    }

    /// Adds a made-up event holding `seq`, with a correctly computed stored
    /// leaf (an attacker who knows the format). Returns its id.
    @discardableResult
    static func insert(_ path: String, seq: UInt64, copying template: UInt64) throws -> String {
        var id = ""
        try rewrite(path) { events, leaves in
            var event = events.first { $0.seq == template }!
            event.seq = seq
            event.actor.id = "intruder"
            event.id = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
            id = event.id
            events.append(event)
            leaves.append(HashChain.leaf(of: event).truncated)
        }
        return id
    }

    /// Rewrites the live chain file with `change` applied (its CRC made right).
    /// Returns its path relative to the directory.
    @discardableResult
    static func rewriteLedger(_ directory: String, _ change: (inout ChainLedger) -> Void) throws -> String {
        let manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: directory + "/MANIFEST")
        let path = try ChainFiles.list(directory, nextPartNumber: manifest.nextPartNumber).ledger!
        var ledger = try ChainLedger.read(from: directory + "/" + path)
        change(&ledger)
        try ledger.write(to: directory + "/" + path)
        return path
    }

    /// Corrupts one byte of the WAL record at `index` (in the segment file's
    /// order) of `segment` without fixing its checksum. Returns its offset.
    @discardableResult
    static func corruptWALRecord(_ segmentPath: String, index: Int) throws -> Int {
        var bytes = try readFile(segmentPath)
        var offset = 20
        for _ in 0..<index {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            offset += 8 + length
        }
        bytes[offset + 8 + 10] ^= 0x40
        try writeFile(segmentPath, bytes)
        return offset
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        return try file.read(count: try file.size(), at: 0)
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { file.close() }
        try withBytes(bytes) { (raw) throws(VigilError) in try file.write(raw, at: 0) }
    }
}
