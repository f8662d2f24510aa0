#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Testing
import VigilCore
@testable import VigilStorage

@Suite("WAL: torn tails, corruption, repair")
struct WALRecoveryTests {
    /// A closed log of `count` records of 100..<300 random bytes in 1 KiB segments.
    static func writeLog(_ directory: String, count: Int = 40, seed: UInt64 = 7) throws -> [(payload: [UInt8], location: WALLocation)] {
        var random = WALTestBytes(seed: seed)
        let wal = try WALTest.open(directory, segmentBytes: 1024)
        var records: [(payload: [UInt8], location: WALLocation)] = []
        for _ in 0..<count {
            let payload = random.bytes(random.size(in: 100..<300))
            records.append((payload, try wal.write(payload)))
        }
        try wal.close()
        return records
    }

    static func start(of record: (payload: [UInt8], location: WALLocation)) -> Int {
        record.location.offset - WALFormat.recordHeaderSize - record.payload.count
    }

    @Test func tornTailAtEveryOffsetOfTheLastRecord() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let last = try #require(records.last)
            let path = WALTest.segmentPath(directory, last.location.segment)
            let full = try WALTest.readFile(path)
            let start = Self.start(of: last)
            #expect(full.count == last.location.offset)
            for cut in start + 1..<full.count {
                try WALTest.writeFile(path, Array(full[..<cut]))
                let replayed = try WALTest.replay(directory)
                #expect(replayed.payloads == records.dropLast().map(\.payload), "cut at \(cut)")
                let tail = try #require(replayed.report.truncatedTail, "cut at \(cut)")
                #expect(tail.segment == last.location.segment && tail.offset == start && tail.droppedBytes == cut - start)
                #expect(try WALTest.fileSize(path) == start)
            }

            // After the cut, the log takes new records, and replays them after the old ones.
            let wal = try WALTest.open(directory, sync: .always)
            #expect(try WALTest.replay(wal).report.truncatedTail == nil)
            _ = try await wal.append([42])
            try wal.close()
            let replayed = try WALTest.replay(directory)
            #expect(replayed.payloads == records.dropLast().map(\.payload) + [[42]])
            #expect(replayed.report.truncatedTail == nil)
        }
    }

    @Test func flippedByteInTheLastRecordIsATornTail() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let last = try #require(records.last)
            let path = WALTest.segmentPath(directory, last.location.segment)
            let full = try WALTest.readFile(path)
            let start = Self.start(of: last)
            // Any byte of the last record: its length, its checksum, its payload.
            for offset in start..<full.count {
                var bytes = full
                bytes[offset] ^= 0x20
                try WALTest.writeFile(path, bytes)
                let replayed = try WALTest.replay(directory)
                #expect(replayed.payloads == records.dropLast().map(\.payload), "flip at \(offset)")
                #expect(replayed.report.truncatedTail?.offset == start, "flip at \(offset)")
                #expect(replayed.report.truncatedTail?.droppedBytes == full.count - start, "flip at \(offset)")
                #expect(replayed.report.repaired.isEmpty)
            }
        }
    }

    @Test func zeroFilledTailIsATornTail() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let last = try #require(records.last)
            let path = WALTest.segmentPath(directory, last.location.segment)
            let full = try WALTest.readFile(path)
            // Preallocated or never-written pages read back as zeros.
            try WALTest.writeFile(path, full + [UInt8](repeating: 0, count: 4096))
            let replayed = try WALTest.replay(directory)
            #expect(replayed.payloads == records.map(\.payload))
            #expect(replayed.report.truncatedTail?.offset == full.count)
            #expect(replayed.report.truncatedTail?.droppedBytes == 4096)
            #expect(try WALTest.readFile(path) == full)
        }
    }

    @Test(arguments: [0, 7, 19, 20, 4096])
    func segmentTornWhileBeingCreated(size: Int) async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let next = records.last!.location.segment + 1
            // A crash between creating the file and its header reaching the disk:
            // a prefix of the header, or zeros.
            let header = WALFormat.header(segment: next)
            let bytes = size < header.count ? Array(header.prefix(size)) : [UInt8](repeating: 0, count: size)
            try WALTest.writeFile(WALTest.segmentPath(directory, next), bytes)
            let replayed = try WALTest.replay(directory)
            #expect(replayed.payloads == records.map(\.payload))
            #expect(replayed.report.truncatedTail?.segment == next)
            #expect(replayed.report.truncatedTail?.offset == 0)
            #expect(replayed.report.truncatedTail?.droppedBytes == size)
            #expect(!FileIO.exists(WALTest.segmentPath(directory, next)))
        }
    }

    @Test func corruptionInAnEarlierSegmentIsDataLoss() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let segments = Array(Set(records.map(\.location.segment))).sorted()
            #expect(segments.count >= 4)
            // A middle record of the second segment.
            let inSecond = records.indices.filter { records[$0].location.segment == segments[1] }
            #expect(inSecond.count >= 3)
            let victim = inSecond[1]
            let path = WALTest.segmentPath(directory, segments[1])
            var bytes = try WALTest.readFile(path)
            let flipped = Self.start(of: records[victim]) + WALFormat.recordHeaderSize + 10
            bytes[flipped] ^= 0x01
            try WALTest.writeFile(path, bytes)

            var delivered = 0
            let wal = try WALTest.open(directory)
            let error = WALTest.vigilError {
                _ = try wal.replay(repair: false) { (_, _) throws(VigilError) in
                    delivered += 1
                    return .replayed
                }
            }
            try wal.close()
            let dataLoss = try #require(error)
            #expect(dataLoss.code == .dataLoss)
            #expect(dataLoss.message.contains(path))
            #expect(dataLoss.message.contains("offset \(Self.start(of: records[victim]))"))
            #expect(dataLoss.message.contains("repair"))
            #expect(dataLoss.metadata["vigil.wal-segment"] == path)
            #expect(delivered == victim)
            // Nothing was changed on disk without the repair flag.
            #expect(try WALTest.readFile(path) == bytes)
            #expect(WALTest.vigilError { _ = try WALTest.replay(directory) }?.code == .dataLoss)
        }
    }

    @Test func repairCutsTheLogAtTheCorruption() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let segments = Array(Set(records.map(\.location.segment))).sorted()
            let inSecond = records.indices.filter { records[$0].location.segment == segments[1] }
            let victim = inSecond[1]
            let path = WALTest.segmentPath(directory, segments[1])
            var bytes = try WALTest.readFile(path)
            let cut = Self.start(of: records[victim])
            bytes[cut + WALFormat.recordHeaderSize + 10] ^= 0x01
            try WALTest.writeFile(path, bytes)

            let wal = try WALTest.open(directory, sync: .always)
            let replayed = try WALTest.replay(wal, repair: true)
            #expect(replayed.payloads == records[..<victim].map(\.payload))
            #expect(replayed.locations == records[..<victim].map(\.location))
            #expect(replayed.report.truncatedTail == nil)
            #expect(replayed.report.repaired.count == 1 + segments.count - 2)
            // The later segments are set aside first (newest first), the cut last:
            // the other way round, a crash between them left a clean, shorter
            // segment followed by replayable later ones, a hole in the log.
            #expect(replayed.report.repaired.last?.contains("offset \(cut)") == true, "\(replayed.report.repaired)")
            let renamed = replayed.report.repaired.dropLast().map { String($0.prefix(while: { $0 != " " })) }
            #expect(renamed.allSatisfy { $0 == "renamed" } && replayed.report.repaired.dropLast().first?.contains(WALFormat.fileName(of: segments.last!)) == true)
            // The segment is cut at its last good record; the cut bytes and later segments are kept.
            #expect(try WALTest.fileSize(path) == cut)
            let kept = try WALTest.readFile(path + ".\(cut).corrupt")
            #expect(kept == Array(bytes[cut...]))
            for segment in segments.dropFirst(2) {
                #expect(!FileIO.exists(WALTest.segmentPath(directory, segment)))
                #expect(FileIO.exists(WALTest.segmentPath(directory, segment) + ".corrupt"))
            }
            #expect(wal.segmentNumbers == Array(segments.prefix(2)))
            // New records go to a segment numbered above the .corrupt ones.
            let location = try await wal.append([9])
            #expect(location.segment == segments.last! + 1)
            try wal.close()

            // The repaired log replays cleanly, without the flag.
            let again = try WALTest.replay(directory)
            #expect(again.payloads == records[..<victim].map(\.payload) + [[9]])
            #expect(again.report.repaired.isEmpty && again.report.truncatedTail == nil)
        }
    }

    @Test(arguments: [0, 3, 5, WALFormat.recordHeaderSize + 50])
    func badRecordFollowedByGoodOnesInTheLastSegmentIsDataLoss(byteInRecord: Int) async throws {
        try await WALTest.withDirectory { directory in
            // One segment: every record is in the last one.
            var random = WALTestBytes(seed: 3)
            let wal = try WALTest.open(directory)
            var records: [(payload: [UInt8], location: WALLocation)] = []
            for _ in 0..<20 {
                let payload = random.bytes(random.size(in: 100..<300))
                records.append((payload, try wal.write(payload)))
            }
            try wal.close()
            let path = WALTest.segmentPath(directory, 1)
            var bytes = try WALTest.readFile(path)
            // Record 10: a byte of its length (high, low), of its checksum, or of its payload.
            let start = Self.start(of: records[10])
            bytes[start + byteInRecord] ^= 0x04
            try WALTest.writeFile(path, bytes)

            let error = WALTest.vigilError { _ = try WALTest.replay(directory) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("offset \(start)") == true)
            #expect(try WALTest.readFile(path) == bytes)

            let repaired = try WALTest.replay(directory, repair: true)
            #expect(repaired.payloads == records[..<10].map(\.payload))
            #expect(try WALTest.fileSize(path) == start)
        }
    }

    @Test("a damaged length in the last segment, with more bytes behind it than the search for the next record may checksum, is corruption (DATA_LOSS), not a torn tail to cut")
    func damagedLengthBeforeManyRecordsIsDataLoss() async throws {
        try await WALTest.withDirectory { directory in
            // 48 records of 1 MiB of random bytes: many offsets read as lengths
            // that fit, and checksumming them uses up the search's budget long
            // before the real next record. It used to count as torn, and the
            // 47 acknowledged records behind it were cut.
            var random = WALTestBytes(seed: 11)
            let wal = try WALTest.open(directory)
            var records: [(payload: [UInt8], location: WALLocation)] = []
            for _ in 0..<48 {
                let payload = random.bytes(1 << 20)
                records.append((payload, try wal.write(payload)))
            }
            try wal.close()
            let path = WALTest.segmentPath(directory, 1)
            var bytes = try WALTest.readFile(path)
            let start = Self.start(of: records[0])
            bytes[start + 1] ^= 0x02  // the length grows by 128 KiB: its "next record" is garbage
            try WALTest.writeFile(path, bytes)

            let error = WALTest.vigilError { _ = try WALTest.replay(directory) }
            #expect(error?.code == .dataLoss, "\(String(describing: error))")
            #expect(error?.message.contains("offset \(start)") == true)
            #expect(try WALTest.readFile(path) == bytes, "nothing was cut")
        }
    }

    @Test func badSegmentHeaderIsDataLoss() async throws {
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory)
            let segments = Array(Set(records.map(\.location.segment))).sorted()
            // The magic of the first segment; the checksum of the last one's header;
            // a header copied from another segment (its number does not match).
            let first = WALTest.segmentPath(directory, segments[0])
            var bytes = try WALTest.readFile(first)
            bytes[0] = UInt8(ascii: "X")
            try WALTest.writeFile(first, bytes)
            var error = WALTest.vigilError { _ = try WALTest.replay(directory) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains(first) == true)
            #expect(error?.message.contains("header") == true)

            bytes[0] = UInt8(ascii: "V")
            try WALTest.writeFile(first, bytes)
            let lastPath = WALTest.segmentPath(directory, segments.last!)
            let last = try WALTest.readFile(lastPath)
            var corrupt = last
            corrupt[17] ^= 0xFF
            try WALTest.writeFile(lastPath, corrupt)
            error = WALTest.vigilError { _ = try WALTest.replay(directory) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains(lastPath) == true)

            try WALTest.writeFile(lastPath, Array(bytes[..<WALFormat.headerSize]) + last[WALFormat.headerSize...])
            error = WALTest.vigilError { _ = try WALTest.replay(directory) }
            #expect(error?.code == .dataLoss)

            // Repair: a segment with a bad header has no good record; it is kept as .corrupt.
            let repaired = try WALTest.replay(directory, repair: true)
            #expect(repaired.payloads == records.filter { $0.location.segment != segments.last! }.map(\.payload))
            #expect(FileIO.exists(lastPath + ".corrupt"))
            #expect(!FileIO.exists(lastPath))
        }
    }

    @Test func randomCorruptionNeverReplaysABadRecord() async throws {
        // Flip one random byte anywhere in the log, many times: replay either
        // returns a prefix of the records (cut at the flipped record) or throws
        // DATA_LOSS; it never returns a record that was not written.
        try await WALTest.withDirectory { directory in
            let records = try Self.writeLog(directory, count: 30, seed: 11)
            let segments = Array(Set(records.map(\.location.segment))).sorted()
            let originals = try segments.map { try WALTest.readFile(WALTest.segmentPath(directory, $0)) }
            var random = WALTestBytes(seed: 99)
            for _ in 0..<200 {
                let which = Int(random.next() % UInt64(segments.count))
                var bytes = originals[which]
                let offset = Int(random.next() % UInt64(bytes.count))
                bytes[offset] ^= UInt8(1 + random.next() % 255)
                for (index, segment) in segments.enumerated() {
                    try WALTest.writeFile(WALTest.segmentPath(directory, segment), index == which ? bytes : originals[index])
                }
                do {
                    let replayed = try WALTest.replay(directory)
                    #expect(replayed.payloads == records.prefix(replayed.records.count).map(\.payload))
                    // Only a flip in the last segment can be taken for a torn tail.
                    #expect(which == segments.count - 1)
                    #expect(replayed.report.truncatedTail != nil)
                } catch let error as VigilError {
                    #expect(error.code == .dataLoss)
                }
            }
        }
    }
}
