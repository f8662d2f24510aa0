/// The on-disk format of WAL segments (see the WALFormat article for the
/// byte-by-byte layout and the reasons behind each limit). Big-endian throughout.
enum WALFormat {
    /// "VWAL".
    static let magic: [UInt8] = [0x56, 0x57, 0x41, 0x4C]
    static let version: UInt16 = 1
    /// magic(4) version(2) reserved(2) segment(8) crc32c(4).
    static let headerSize = 20
    /// length(4) crc32c(4).
    static let recordHeaderSize = 8
    /// The largest payload; a longer length field is corruption.
    static let maximumPayload = 64 * 1024 * 1024
    static let fileExtension = ".wal"
    static let corruptSuffix = ".corrupt"
    /// The first segment of an empty log.
    static let firstSegment: UInt64 = 1
    /// How many payload bytes `laterRecord` checksums at most while deciding
    /// whether a bad record is a torn tail. Past it, nothing is decided, and
    /// the bad record counts as corruption: a crash tears only the last
    /// write, which is far smaller, so a search this long means a damaged
    /// length field with acknowledged records behind it.
    static let resyncBudgetBytes = 1 << 30

    /// What follows a bad record.
    enum LaterRecord: Equatable {
        /// No valid record: the bad one is a torn tail.
        case none
        /// A valid record starts here: the bad one is corruption.
        case at(Int)
        /// The search ran out of its budget before it could tell.
        case undecided
    }

    // MARK: Names

    /// `<16 lowercase hex digits>.wal`.
    static func fileName(of segment: UInt64) -> String {
        let digits = String(segment, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits + fileExtension
    }

    /// The segment number of a live segment file's name, or nil for any other name.
    static func segmentNumber(ofFileName name: String) -> UInt64? {
        guard name.utf8.count == 16 + fileExtension.utf8.count, name.hasSuffix(fileExtension) else { return nil }
        return hexNumber(Array(name.utf8.prefix(16)))
    }

    /// The number a name claims, for live segments and for the `.corrupt` (and
    /// other) files derived from them: new segments are numbered above all of these,
    /// so that a number is never used twice.
    static func claimedNumber(ofFileName name: String) -> UInt64? {
        let utf8 = name.utf8
        guard utf8.count >= 16 + fileExtension.utf8.count,
            utf8.dropFirst(16).starts(with: fileExtension.utf8)
        else { return nil }
        return hexNumber(Array(utf8.prefix(16)))
    }

    private static func hexNumber(_ digits: [UInt8]) -> UInt64? {
        var value: UInt64 = 0
        for digit in digits {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt64(digit - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt64(digit - UInt8(ascii: "a") + 10)
            default: return nil
            }
        }
        return value
    }

    // MARK: Segment header

    static func header(segment: UInt64) -> [UInt8] {
        var bytes = magic
        bytes.reserveCapacity(headerSize)
        appendBigEndian(version, to: &bytes)
        appendBigEndian(UInt16(0), to: &bytes)
        appendBigEndian(segment, to: &bytes)
        appendBigEndian(CRC32C.checksum(bytes), to: &bytes)
        return bytes
    }

    /// Why `bytes` (a whole segment file) does not start with the header of
    /// `segment`, or nil when it does.
    static func headerProblem(_ bytes: UnsafeRawBufferPointer, segment: UInt64) -> String? {
        guard bytes.count >= headerSize else { return "the file is \(bytes.count) bytes, shorter than the \(headerSize)-byte header" }
        let stored = readUInt32(bytes, at: 16)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<16]))
        guard stored == computed else { return "header checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))" }
        guard bytes.prefix(4).elementsEqual(magic) else { return "bad magic (not a Vigil WAL segment)" }
        let version = UInt16(bytes[4]) << 8 | UInt16(bytes[5])
        guard version == self.version else { return "unsupported format version \(version) (this build reads version \(self.version))" }
        guard bytes[6] == 0, bytes[7] == 0 else { return "reserved header bytes are not zero" }
        let number = readUInt64(bytes, at: 8)
        guard number == segment else { return "the header names segment \(number), not \(segment)" }
        return nil
    }

    // MARK: Records

    /// The 8-byte record header for the payload `pieces` joined: its length,
    /// then the CRC-32C of (the 4 length bytes + the payload).
    static func recordHeader(pieces: [UnsafeRawBufferPointer]) -> [UInt8] {
        let length = UInt32(pieces.reduce(0) { $0 + $1.count })
        let lengthCRC = withUnsafeBytes(of: length.bigEndian) { CRC32C.checksum($0) }
        let crc = pieces.reduce(lengthCRC) { crc, piece in CRC32C.checksum(piece, continuing: crc) }
        var header: [UInt8] = []
        header.reserveCapacity(recordHeaderSize)
        appendBigEndian(length, to: &header)
        appendBigEndian(crc, to: &header)
        return header
    }

    enum Parsed {
        /// A valid record: its payload's bytes and the offset just past it.
        case record(payload: Range<Int>, end: Int)
        /// The segment ends exactly here.
        case end
        /// No valid record starts here.
        case bad(String)
    }

    /// The record at `offset` of a segment file's bytes.
    static func parseRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Parsed {
        let size = bytes.count
        if offset == size { return .end }
        guard size - offset >= recordHeaderSize else {
            return .bad("a record header is cut short (\(size - offset) of \(recordHeaderSize) bytes)")
        }
        let length = Int(readUInt32(bytes, at: offset))
        let stored = readUInt32(bytes, at: offset + 4)
        if length == 0 && stored == 0 { return .bad("a zero-filled record header") }
        guard length <= maximumPayload else {
            return .bad("a record length of \(length) bytes, above the \(maximumPayload)-byte limit")
        }
        let end = offset + recordHeaderSize + length
        guard end <= size else {
            return .bad("a \(length)-byte record runs past the end of the file (\(size) bytes)")
        }
        let computed = checksum(bytes, recordAt: offset, length: length)
        guard computed == stored else {
            return .bad("a \(length)-byte record fails its checksum (stored \(hex(stored)), computed \(hex(computed)))")
        }
        return .record(payload: offset + recordHeaderSize..<end, end: end)
    }

    private static func checksum(_ bytes: UnsafeRawBufferPointer, recordAt offset: Int, length: Int) -> UInt32 {
        let lengthCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]))
        let start = offset + recordHeaderSize
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[start..<start + length]), continuing: lengthCRC)
    }

    /// The CRC-32C of an empty record (length 0): its only valid header is
    /// `00000000 48674bc7`, so a zero-filled header is never a record.
    static let emptyRecordCRC: UInt32 = withUnsafeBytes(of: UInt32(0)) { CRC32C.checksum($0) }

    /// Where a valid record starts after the bad one at `offset`, or nil when
    /// none does: then the bad record is a torn tail (what a crash mid-write
    /// leaves), not corruption in the middle of the log.
    ///
    /// Looks first where the bad record's own length says the next one starts,
    /// then at every later byte offset (a corrupt length field hides where the
    /// next record is). Candidates are filtered cheaply — their length must fit
    /// in the file, and what follows them must be the end, a cut-short header
    /// or a plausible length — before their checksum is computed; at most
    /// `resyncBudgetBytes` are checksummed, after which it is `undecided`.
    static func laterRecord(_ bytes: UnsafeRawBufferPointer, after offset: Int) -> LaterRecord {
        let size = bytes.count
        if bytes[offset...].allSatisfy({ $0 == 0 }) { return .none }
        if size - offset >= recordHeaderSize {
            let length = Int(readUInt32(bytes, at: offset))
            let next = offset + recordHeaderSize + length
            if length <= maximumPayload, next < size, case .record = parseRecord(bytes, at: next) { return .at(next) }
        }
        var budget = resyncBudgetBytes
        var candidate = offset + 1
        while candidate + recordHeaderSize <= size {
            defer { candidate += 1 }
            let length = Int(readUInt32(bytes, at: candidate))
            guard length <= maximumPayload, candidate + recordHeaderSize + length <= size else { continue }
            let stored = readUInt32(bytes, at: candidate + 4)
            if length == 0 {
                if stored == emptyRecordCRC { return .at(candidate) }
                continue
            }
            let next = candidate + recordHeaderSize + length
            if size - next >= 4 && Int(readUInt32(bytes, at: next)) > maximumPayload { continue }
            budget -= length
            if budget < 0 { return .undecided }
            if checksum(bytes, recordAt: candidate, length: length) == stored { return .at(candidate) }
        }
        return .none
    }

    // MARK: Bytes

    static func readUInt32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    static func readUInt64(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(readUInt32(bytes, at: offset)) << 32 | UInt64(readUInt32(bytes, at: offset + 4))
    }

    static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
