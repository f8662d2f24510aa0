import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Part corruption")
struct PartCorruptionTests {
    /// A small multi-block part and its bytes.
    static func makePart(_ directory: String) throws -> (path: String, bytes: [UInt8], reader: PartReader) {
        var rng = SplitMix64(seed: 31)
        let events = (0..<1200).map { _ in PartEvents.random(&rng, tenants: 8) } + PartEvents.realistic(count: 800)
        var options = PartWriter.Options()
        options.rowsPerBlock = 500
        let path = directory + "/good.vprt"
        _ = try PartWriter.write(events, to: path, options: options)
        return (path, PartTestSupport.readFile(path), try PartReader(path: path))
    }

    /// Opens `bytes` as a part and reads every block; returns the error, or nil when all of it read.
    static func openAndReadAll(_ bytes: [UInt8], at path: String) -> (error: VigilError?, events: [AuditEvent]) {
        PartTestSupport.writeFile(path, bytes)
        do throws(VigilError) {
            let reader = try PartReader(path: path)
            defer { reader.close() }
            var events: [AuditEvent] = []
            for block in reader.blocks.indices { events += try reader.events(block: block) }
            return (nil, events)
        } catch {
            return (error, [])
        }
    }

    @Test("a flipped byte anywhere makes open or read throw DATA_LOSS")
    func flippedBytes() throws {
        try PartTestSupport.withDirectory { directory in
            let (_, bytes, reader) = try Self.makePart(directory)
            let trailer = bytes.count - PartFormat.trailerSize
            let footerStart = trailer - reader.metadata.footerBytes
            var offsets = Set(0..<PartFormat.headerSize)
            offsets.formUnion(trailer..<bytes.count)
            for block in reader.blocks {
                for chunk in block.columns.values {
                    offsets.formUnion([chunk.offset, chunk.offset + chunk.storedLength / 2, chunk.offset + chunk.storedLength - 1])
                }
            }
            offsets.formUnion(stride(from: footerStart, to: trailer, by: max(1, (trailer - footerStart) / 300)))
            offsets.formUnion([footerStart, footerStart + 1, trailer - 1])
            #expect(offsets.count > 500)
            let path = directory + "/damaged.vprt"
            for (round, offset) in offsets.sorted().enumerated() {
                var damaged = bytes
                damaged[offset] ^= [0x01, 0x80, 0xFF, 0x10][round % 4]
                let (error, _) = Self.openAndReadAll(damaged, at: path)
                guard let error else {
                    Issue.record("a flipped byte at offset \(offset) went unnoticed")
                    continue
                }
                #expect(error.code == .dataLoss, "offset \(offset): \(error)")
                #expect(error.message.hasPrefix(path + ": "), "\(error.message)")
                #expect(error.message.contains(" at offset "), "\(error.message)")
            }
        }
    }

    @Test("a truncated or extended file throws DATA_LOSS")
    func truncated() throws {
        try PartTestSupport.withDirectory { directory in
            let (_, bytes, _) = try Self.makePart(directory)
            let path = directory + "/short.vprt"
            for length in [0, 1, 4, 11, 12, 39, 40, 41, bytes.count / 3, bytes.count / 2, bytes.count - 29, bytes.count - 28, bytes.count - 4, bytes.count - 1] {
                let (error, _) = Self.openAndReadAll(Array(bytes.prefix(length)), at: path)
                #expect(error?.code == .dataLoss, "length \(length): \(String(describing: error))")
            }
            for extra in [[UInt8(0)], Array(repeating: 0, count: 28), Array(bytes.suffix(28))] {
                let (error, _) = Self.openAndReadAll(bytes + extra, at: path)
                #expect(error?.code == .dataLoss)
            }
        }
    }

    /// Replaces the footer with `footer`, with correct checksums in the trailer.
    static func withFooter(_ bytes: [UInt8], _ modify: (inout [UInt8]) -> Void) -> [UInt8] {
        let trailer = bytes.count - PartFormat.trailerSize
        let parsed = try! withBytes(Array(bytes[trailer...])) { (raw) throws(PartFormatError) in
            try PartFormat.readTrailer(raw, offset: trailer)
        }
        var footer = Array(bytes[parsed.footerOffset..<trailer])
        modify(&footer)
        return Array(bytes[..<parsed.footerOffset]) + footer
            + PartFormat.trailer(footerOffset: parsed.footerOffset, footerLength: footer.count, footerChecksum: CRC32C.checksum(footer))
    }

    static func putU32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
    }

    /// The footer offset of the first block entry.
    static func firstBlockOffset(_ footer: [UInt8]) -> Int {
        var position = PartFooter.fixedSize
        let tenants = Int(footer[position]) << 24 | Int(footer[position + 1]) << 16 | Int(footer[position + 2]) << 8 | Int(footer[position + 3])
        position += 4
        for _ in 0..<tenants { position += 2 + (Int(footer[position]) << 8 | Int(footer[position + 1])) }
        return position + 4
    }

    @Test("checksummed but inconsistent footers are refused before anything is allocated")
    func inconsistentFooters() throws {
        try PartTestSupport.withDirectory { directory in
            let (_, bytes, _) = try Self.makePart(directory)
            let path = directory + "/crafted.vprt"
            var footer: [UInt8] = []
            _ = Self.withFooter(bytes) { footer = $0 }
            let block = Self.firstBlockOffset(footer)
            let edits: [(String, (inout [UInt8]) -> Void)] = [
                ("huge row count", { Self.putU32(0xFFFF_FFFF, at: 0, in: &$0); Self.putU32(0xFFFF_FFFF, at: 4, in: &$0) }),
                ("huge tenant count", { Self.putU32(0xFFFF_FFFF, at: PartFooter.fixedSize, in: &$0) }),
                ("huge block count", { Self.putU32(0xFFFF_FFFF, at: block - 4, in: &$0) }),
                ("block of 70,000 rows", { Self.putU32(70_000, at: block, in: &$0) }),
                ("block of no rows", { Self.putU32(0, at: block, in: &$0) }),
                ("block tenants outside the list", { Self.putU32(1_000, at: block + 36, in: &$0) }),
                // The first chunk entry: column, encoding, codec, offset (8), stored (4), raw (4), crc.
                ("chunk beyond the file", { Self.putU32(0x7FFF_FFFF, at: block + 45 + 3, in: &$0) }),
                ("chunk of 1 GiB raw", { Self.putU32(1 << 30, at: block + 45 + 15, in: &$0) }),
                ("unknown codec", { $0[block + 45 + 2] = 9 }),
                ("unknown encoding", { $0[block + 45 + 1] = 200 }),
                ("duplicate column", { $0[block + 45 + 23] = $0[block + 45] }),
                ("trailing bytes", { $0.append(0) }),
            ]
            for (name, edit) in edits {
                let (error, _) = Self.openAndReadAll(Self.withFooter(bytes, edit), at: path)
                #expect(error?.code == .dataLoss, "\(name): \(String(describing: error))")
            }
        }
    }

    @Test("random damage to a checksummed footer is refused or harmless, never a crash")
    func fuzzedFooters() throws {
        try PartTestSupport.withDirectory { directory in
            let (path, bytes, _) = try Self.makePart(directory)
            let original = try PartTestSupport.readAll(path)
            let damagedPath = directory + "/fuzzed.vprt"
            var rng = SplitMix64(seed: 5150)
            var refused = 0
            for _ in 0..<300 {
                let damaged = Self.withFooter(bytes) { footer in
                    for _ in 0..<Int.random(in: 1...3, using: &rng) {
                        footer[Int.random(in: 0..<footer.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
                let (error, events) = Self.openAndReadAll(damaged, at: damagedPath)
                if let error {
                    #expect(error.code == .dataLoss || error.code == .failedPrecondition, "\(error)")
                    refused += 1
                } else {
                    // Statistics, createdAt or the like changed: the rows themselves cannot.
                    #expect(events.count == original.count)
                }
            }
            #expect(refused > 0)
        }
    }

    @Test("another format version is FAILED_PRECONDITION, not damage")
    func otherVersion() throws {
        try PartTestSupport.withDirectory { directory in
            let (_, bytes, _) = try Self.makePart(directory)
            var future = bytes
            future[5] = 2  // header version 2, with its checksum
            let headerChecksum = CRC32C.checksum(future[0..<8])
            Self.putU32(headerChecksum, at: 8, in: &future)
            let trailer = future.count - PartFormat.trailerSize
            future[trailer + 17] = 2  // trailer version 2, with its checksum
            Self.putU32(CRC32C.checksum(future[trailer..<trailer + 20]), at: trailer + 20, in: &future)
            let path = directory + "/future.vprt"
            PartTestSupport.writeFile(path, future)
            PartTestSupport.expectError(.failedPrecondition) { _ = try PartReader(path: path) }
        }
    }
}
