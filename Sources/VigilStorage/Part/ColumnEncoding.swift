import SwiftProtobuf
import VigilCore
import VigilProto

/// Encoders and decoders of column chunks, in matching pairs: `encodeX`
/// appends a whole raw chunk (its encoding byte, its row count, its body) to a
/// `ByteWriter` and chooses the smallest encoding the column allows;
/// `decodeX` reads one back, checking every length and count it meets. The
/// layouts are documented byte by byte in the PartFormat article.
enum ColumnEncoding {
    /// Most rows in one block (so in one chunk). Keeps a dictionary code
    /// within two bytes and bounds what decoding a block allocates.
    static let maxRows = 65_536
    /// 10^0 ... 10^18, the scales of integer chunks.
    private static let powersOfTen: [Int64] = (0...18).map { exponent in
        (0..<exponent).reduce(Int64(1)) { product, _ in product * 10 }
    }

    // MARK: - Chunk header

    static func writeHeader(_ encoding: ChunkEncoding, rows: Int, into out: inout ByteWriter) {
        out.u8(encoding.rawValue)
        out.varint(rows)
    }

    /// Reads and checks a chunk's first bytes: an encoding the column allows
    /// and matching the block index, and the block's row count.
    static func readHeader(
        _ reader: inout ByteReader, column: PartColumn, expected: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> ChunkEncoding {
        let raw = try reader.u8("chunk encoding")
        guard let encoding = ChunkEncoding(rawValue: raw), column.allowedEncodings.contains(encoding) else {
            throw PartFormatError("unknown encoding \(raw) for column \(column.name)", at: reader.offset - 1)
        }
        guard encoding == expected else {
            throw PartFormatError("encoding \(raw) differs from the \(expected.rawValue) of the block index", at: reader.offset - 1)
        }
        let start = reader.offset
        let count = try reader.varint("chunk row count")
        guard count == UInt64(rows) else {
            throw PartFormatError("chunk holds \(count) rows, the block \(rows)", at: start)
        }
        return encoding
    }

    // MARK: - Integers (occurredAt, receivedAt, seq)

    /// Encodes Int64 values (seq as its bit pattern): the largest of 10^9,
    /// 10^6 and 10^3 dividing every value is factored out (times are often
    /// whole seconds, milliseconds or microseconds), then the first value and either the
    /// differences (`delta`) or the differences of differences
    /// (`deltaOfDelta`) follow as zigzag varints, whichever is shorter.
    /// Arithmetic wraps, so any Int64 sequence round trips.
    static func encodeIntegers(_ values: UnsafeBufferPointer<Int64>, into out: inout ByteWriter) -> ChunkEncoding {
        let count = values.count
        var exponent = 0
        if count > 0 {
            for candidate in [9, 6, 3] {
                let scale = powersOfTen[candidate]
                if values.allSatisfy({ $0 % scale == 0 }) {
                    exponent = candidate
                    break
                }
            }
        }
        let scale = powersOfTen[exponent]
        @inline(__always) func value(_ index: Int) -> Int64 {
            scale == 1 ? values[index] : values[index] / scale
        }
        // Sizes of both encodings in one pass.
        var deltaSize = 0
        var doubleSize = 0
        if count > 0 {
            let first = Varint.size(Varint.zigzag(value(0)))
            deltaSize = first
            doubleSize = first
            var previous = value(0)
            var previousDelta: Int64 = 0
            for index in 1..<max(count, 1) {
                let current = value(index)
                let delta = current &- previous
                deltaSize &+= Varint.size(Varint.zigzag(delta))
                doubleSize &+= Varint.size(Varint.zigzag(index == 1 ? delta : delta &- previousDelta))
                previous = current
                previousDelta = delta
            }
        }
        let encoding: ChunkEncoding = doubleSize < deltaSize ? .deltaOfDelta : .delta
        writeHeader(encoding, rows: count, into: &out)
        out.u8(UInt8(exponent))
        out.appendSpace(encoding == .delta ? deltaSize : doubleSize) { pointer in
            var position = 0
            var previous: Int64 = 0
            var previousDelta: Int64 = 0
            for index in 0..<count {
                let current = value(index)
                let delta = current &- previous
                let written: Int64
                if index == 0 {
                    written = current
                } else if encoding == .delta || index == 1 {
                    written = delta
                } else {
                    written = delta &- previousDelta
                }
                position &+= Varint.write(Varint.zigzag(written), to: pointer + position)
                previous = current
                previousDelta = delta
            }
        }
        return encoding
    }

    static func decodeIntegers(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> [Int64] {
        let exponentOffset = reader.offset
        let exponent = Int(try reader.u8("scale exponent"))
        guard exponent < powersOfTen.count else {
            throw PartFormatError("scale exponent \(exponent) is above 18", at: exponentOffset)
        }
        let scale = powersOfTen[exponent]
        var values = [Int64]()
        values.reserveCapacity(rows)
        var current: Int64 = 0
        var delta: Int64 = 0
        for index in 0..<rows {
            let read = try reader.zigzag("value of row \(index)")
            if index == 0 {
                current = read
            } else {
                if encoding == .delta || index == 1 {
                    delta = read
                } else {
                    delta = delta &+ read
                }
                current = current &+ delta
            }
            values.append(current &* scale)
        }
        try reader.expectEnd("the last value")
        return values
    }

    // MARK: - Enums (actorType, category, outcome, presence)

    /// Encodes protobuf enum raw values: a byte per row when all fit a byte,
    /// (value, run length) pairs when that is shorter, or a zigzag varint per
    /// row for values outside 0...255 (unknown enum values round trip too).
    static func encodeEnums(_ values: UnsafeBufferPointer<Int32>, into out: inout ByteWriter) -> ChunkEncoding {
        let count = values.count
        var fitsByte = true
        var varintSize = 0
        var runSize = 0
        var index = 0
        while index < count {
            let value = values[index]
            var end = index + 1
            while end < count && values[end] == value { end += 1 }
            let valueSize = Varint.size(Varint.zigzag(Int64(value)))
            runSize += valueSize + Varint.size(UInt64(end - index))
            varintSize += valueSize * (end - index)
            if value < 0 || value > 255 { fitsByte = false }
            index = end
        }
        let encoding: ChunkEncoding
        if fitsByte && count <= runSize {
            encoding = .byte
        } else if runSize < varintSize {
            encoding = .runLength
        } else {
            encoding = .varint
        }
        writeHeader(encoding, rows: count, into: &out)
        switch encoding {
        case .byte:
            out.appendSpace(count) { pointer in
                for index in 0..<count { pointer[index] = UInt8(truncatingIfNeeded: values[index]) }
            }
        case .runLength:
            out.appendSpace(runSize) { pointer in
                var position = 0
                var index = 0
                while index < count {
                    let value = values[index]
                    var end = index + 1
                    while end < count && values[end] == value { end += 1 }
                    position += Varint.write(Varint.zigzag(Int64(value)), to: pointer + position)
                    position += Varint.write(UInt64(end - index), to: pointer + position)
                    index = end
                }
            }
        default:
            out.appendSpace(varintSize) { pointer in
                var position = 0
                for index in 0..<count {
                    position += Varint.write(Varint.zigzag(Int64(values[index])), to: pointer + position)
                }
            }
        }
        return encoding
    }

    static func decodeEnums(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> [Int32] {
        var values = [Int32]()
        values.reserveCapacity(rows)
        @inline(__always) func readValue(_ reader: inout ByteReader, _ row: Int) throws(PartFormatError) -> Int32 {
            let start = reader.offset
            let value = try reader.zigzag("enum value of row \(row)")
            guard let narrow = Int32(exactly: value) else {
                throw PartFormatError("enum value \(value) does not fit 32 bits", at: start)
            }
            return narrow
        }
        switch encoding {
        case .byte:
            let bytes = try reader.bytes(rows, "enum bytes")
            for byte in bytes { values.append(Int32(byte)) }
        case .runLength:
            while values.count < rows {
                let value = try readValue(&reader, values.count)
                let length = try reader.count("run length", limit: rows - values.count)
                guard length > 0 else { throw reader.error("run of length 0") }
                values.append(contentsOf: repeatElement(value, count: length))
            }
        default:
            for row in 0..<rows { values.append(try readValue(&reader, row)) }
        }
        try reader.expectEnd("the last enum value")
        return values
    }

    // MARK: - Strings

    /// Buffers of the text encoder, reused from chunk to chunk. After
    /// `encodeStrings`, `table` holds the chunk's distinct values.
    struct TextScratch {
        var table = ByteStringTable()
        var codes: [Int32] = []
        var prefixes = ByteStringTable()
        var prefixCodes: [Int32] = []
        var digitCounts: [UInt8] = []
        var numbers: [UInt64] = []
    }

    /// The most digits of a numeric suffix: every 19-digit number fits a UInt64.
    static let maxSuffixDigits = 19

    /// Encodes text, compared by UTF-8 bytes, choosing by raw size among
    /// - plain: every length, then every value's bytes;
    /// - dictionary: the distinct values in order of first appearance, then
    ///   a 1- or 2-byte code per row;
    /// - prefixNumber: values split into a text prefix and a decimal suffix
    ///   (`user-1234` is `user-` and 1234): a dictionary of prefixes, a code
    ///   and a digit count per row, then the numbers as varints. Chosen only
    ///   when it is under half the size of the others, since binary numbers
    ///   compress less than text; it suits many distinct ids of a few kinds;
    /// - with `addresses`, ipDictionary: a dictionary whose entries are
    ///   canonical IPv4 or IPv6 addresses stored as 4 or 16 raw bytes.
    /// Leaves the chunk's distinct values in `scratch.table`.
    static func encodeStrings(
        _ rows: ByteRows, scratch: inout TextScratch, addresses: Bool = false, numbers: Bool = true, into out: inout ByteWriter
    ) -> ChunkEncoding {
        let count = rows.count
        precondition(count <= maxRows, "a chunk holds at most \(maxRows) rows")
        scratch.table.reset(capacity: count)
        scratch.codes.removeAll(keepingCapacity: true)
        var plainSize = 0
        var previous = -1
        for index in 0..<count {
            let bytes = rows[index]
            let code = previous >= 0 && scratch.table.equals(previous, bytes) ? previous : scratch.table.insert(bytes)
            scratch.codes.append(Int32(truncatingIfNeeded: code))
            previous = code
            plainSize &+= Varint.size(UInt64(bytes.count)) &+ bytes.count
        }
        let table = scratch.table
        let width = table.count <= 256 ? 1 : 2
        var dictionarySize = Varint.size(UInt64(table.count)) + count * width
        for entry in 0..<table.count {
            let length = table.length(of: entry)
            dictionarySize += Varint.size(UInt64(length)) + length
        }
        var addressEntries: [IPEntry] = []
        var addressSize = Int.max
        if addresses && table.count > 0 {
            addressSize = Varint.size(UInt64(table.count)) + count * width
            addressEntries.reserveCapacity(table.count)
            for entry in 0..<table.count {
                let parsed = table.withValue(entry) { IPEntry($0) }
                addressEntries.append(parsed)
                addressSize += parsed.encodedSize(textLength: table.length(of: entry))
            }
        }
        var best = min(plainSize, dictionarySize, addressSize)
        // Splitting off numbers pays only when most values are distinct.
        var numberSize = Int.max
        if numbers && table.count * 4 > count && count >= 16 {
            numberSize = splitNumbers(rows, scratch: &scratch)
        }
        let encoding: ChunkEncoding
        if numberSize < best / 2 {
            encoding = .prefixNumber
            best = numberSize
        } else if addressSize == best {
            encoding = .ipDictionary
        } else if dictionarySize == best && dictionarySize < plainSize {
            encoding = .dictionary
        } else {
            encoding = .plain
        }
        writeHeader(encoding, rows: count, into: &out)
        switch encoding {
        case .plain:
            writePlainLengths(count: count, into: &out) { rows.ends[$0] &- rows.start($0) }
            out.markBoundary()
            out.append(rows.all)
            return .plain
        case .prefixNumber:
            let prefixes = scratch.prefixes
            out.varint(prefixes.count)
            for entry in 0..<prefixes.count { out.varint(prefixes.length(of: entry)) }
            out.append(prefixes.arena)
            out.markBoundary()
            writeCodes(scratch.prefixCodes, width: prefixes.count <= 256 ? 1 : 2, into: &out)
            out.markBoundary()
            out.append(scratch.digitCounts)
            out.markBoundary()
            for (index, digits) in scratch.digitCounts.enumerated() where digits > 0 {
                out.varint(scratch.numbers[index])
            }
            return .prefixNumber
        case .dictionary:
            out.varint(table.count)
            for entry in 0..<table.count { out.varint(table.length(of: entry)) }
            out.append(table.arena)
        default:
            out.varint(table.count)
            for (entry, parsed) in addressEntries.enumerated() {
                table.withValue(entry) { parsed.write($0, into: &out) }
            }
        }
        // Entries are text, codes are binary: each gets Huffman codes of its own.
        out.markBoundary()
        writeCodes(scratch.codes, width: width, into: &out)
        return encoding
    }

    private static func writeCodes(_ codes: [Int32], width: Int, into out: inout ByteWriter) {
        let count = codes.count
        codes.withUnsafeBufferPointer { codes in
            out.appendSpace(count * width) { pointer in
                if width == 1 {
                    for index in 0..<count { pointer[index] = UInt8(truncatingIfNeeded: codes[index]) }
                } else {
                    for index in 0..<count {
                        pointer[2 * index] = UInt8(truncatingIfNeeded: codes[index] >> 8)
                        pointer[2 * index + 1] = UInt8(truncatingIfNeeded: codes[index])
                    }
                }
            }
        }
    }

    /// Splits every row into prefix and decimal suffix (up to 19 trailing
    /// digits, leading zeros kept by the digit count) into `scratch`;
    /// returns the prefixNumber body's size.
    private static func splitNumbers(_ rows: ByteRows, scratch: inout TextScratch) -> Int {
        let count = rows.count
        scratch.prefixes.reset(capacity: 64)
        scratch.prefixCodes.removeAll(keepingCapacity: true)
        scratch.digitCounts.removeAll(keepingCapacity: true)
        scratch.numbers.removeAll(keepingCapacity: true)
        var numberBytes = 0
        var previous = -1
        for index in 0..<count {
            let bytes = rows[index]
            var digits = 0
            var number: UInt64 = 0
            var scale: UInt64 = 1
            while digits < maxSuffixDigits && digits < bytes.count {
                let byte = bytes[bytes.count - 1 - digits]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { break }
                number &+= UInt64(byte &- UInt8(ascii: "0")) &* scale
                scale &*= 10
                digits += 1
            }
            let prefix = UnsafeRawBufferPointer(rebasing: bytes[0..<bytes.count - digits])
            let code = previous >= 0 && scratch.prefixes.equals(previous, prefix) ? previous : scratch.prefixes.insert(prefix)
            previous = code
            scratch.prefixCodes.append(Int32(truncatingIfNeeded: code))
            scratch.digitCounts.append(UInt8(digits))
            scratch.numbers.append(number)
            if digits > 0 { numberBytes &+= Varint.size(number) }
        }
        let prefixes = scratch.prefixes
        var size = Varint.size(UInt64(prefixes.count)) + count * (prefixes.count <= 256 ? 1 : 2) + count + numberBytes
        for entry in 0..<prefixes.count {
            let length = prefixes.length(of: entry)
            size += Varint.size(UInt64(length)) + length
        }
        return size
    }

    private static func writePlainLengths(count: Int, into out: inout ByteWriter, _ length: (Int) -> Int) {
        var size = 0
        for index in 0..<count { size &+= Varint.size(UInt64(length(index))) }
        out.appendSpace(size) { pointer in
            var position = 0
            for index in 0..<count { position &+= Varint.write(UInt64(length(index)), to: pointer + position) }
        }
    }

    /// Reads `rows` plain lengths and checks that their bytes follow.
    static func readPlainLengths(
        _ reader: inout ByteReader, rows: Int
    ) throws(PartFormatError) -> [Int] {
        var lengths = [Int]()
        lengths.reserveCapacity(rows)
        var total = 0
        for row in 0..<rows {
            let length = try reader.count("length of row \(row)", limit: reader.remaining)
            total += length
            lengths.append(length)
        }
        guard total == reader.remaining else {
            throw reader.error("lengths add up to \(total) bytes but \(reader.remaining) follow")
        }
        return lengths
    }

    /// Where each value of a plain or dictionary text body lies in the
    /// decoded chunk (offsets from its first byte), appended to `starts` and
    /// `lengths`; every length, count and code checked.
    static func readSpans(
        _ reader: inout ByteReader, dictionary: Bool, rows: Int, starts: inout [Int32], lengths: inout [Int32]
    ) throws(PartFormatError) {
        if !dictionary {
            let plain = try readPlainLengths(&reader, rows: rows)
            var position = reader.offset
            for length in plain {
                starts.append(Int32(position))
                lengths.append(Int32(length))
                position += length
            }
            try reader.skip(reader.remaining)
            return
        }
        let entryCount = try reader.count("dictionary size", limit: rows)
        guard entryCount > 0 || rows == 0 else { throw reader.error("empty dictionary for \(rows) rows") }
        var entryLengths: [Int] = []
        entryLengths.reserveCapacity(entryCount)
        for entry in 0..<entryCount {
            entryLengths.append(try reader.count("length of dictionary entry \(entry)", limit: reader.remaining))
        }
        var entryStarts: [Int] = []
        entryStarts.reserveCapacity(entryCount)
        for (entry, length) in entryLengths.enumerated() {
            entryStarts.append(reader.offset)
            try reader.skip(length, "dictionary entry \(entry)")
        }
        let width = entryCount <= 256 ? 1 : 2
        let codesOffset = reader.offset
        let codes = try reader.bytes(rows * width, "dictionary codes")
        for row in 0..<rows {
            let code = width == 1 ? Int(codes[row]) : Int(codes[2 * row]) << 8 | Int(codes[2 * row + 1])
            guard code < entryCount else {
                throw PartFormatError("dictionary code \(code) of row \(row) is not below \(entryCount)", at: codesOffset + row * width)
            }
            starts.append(Int32(entryStarts[code]))
            lengths.append(Int32(entryLengths[code]))
        }
        try reader.expectEnd("the dictionary codes")
    }

    /// Decodes a text chunk keeping its dictionary (plain and prefixNumber
    /// chunks come back with one value per row).
    static func decodeText(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> TextColumn {
        if encoding == .plain {
            var values = [String]()
            values.reserveCapacity(rows)
            let lengths = try readPlainLengths(&reader, rows: rows)
            for length in lengths {
                values.append(String(decoding: try reader.bytes(length), as: UTF8.self))
            }
            return TextColumn(identity: values)
        }
        let entryCount = try reader.count("dictionary size", limit: rows)
        guard entryCount > 0 || rows == 0 else { throw reader.error("empty dictionary for \(rows) rows") }
        if encoding == .prefixNumber {
            return TextColumn(identity: try decodePrefixNumbers(&reader, rows: rows, prefixCount: entryCount))
        }
        var entries = [String]()
        entries.reserveCapacity(entryCount)
        if encoding == .dictionary {
            var lengths = [Int]()
            lengths.reserveCapacity(entryCount)
            for entry in 0..<entryCount {
                lengths.append(try reader.count("length of dictionary entry \(entry)", limit: reader.remaining))
            }
            for (entry, length) in lengths.enumerated() {
                entries.append(String(decoding: try reader.bytes(length, "dictionary entry \(entry)"), as: UTF8.self))
            }
        } else {
            for entry in 0..<entryCount {
                entries.append(try IPEntry.read(&reader, entry: entry))
            }
        }
        let width = entryCount <= 256 ? 1 : 2
        let bytes = try reader.bytes(rows * width, "dictionary codes")
        var codes = [UInt16]()
        codes.reserveCapacity(rows)
        var largest = 0
        for row in 0..<rows {
            let code = width == 1 ? Int(bytes[row]) : Int(bytes[2 * row]) << 8 | Int(bytes[2 * row + 1])
            largest = max(largest, code)
            codes.append(UInt16(truncatingIfNeeded: code))
        }
        // `largest` is 0 for a chunk of no rows, whose dictionary may be empty too.
        if largest >= entryCount, let row = codes.firstIndex(where: { Int($0) >= entryCount }) {
            throw PartFormatError("dictionary code \(codes[row]) of row \(row) is not below \(entryCount)", at: reader.offset - bytes.count + row * width)
        }
        try reader.expectEnd("the dictionary codes")
        return TextColumn(values: entries, codes: .narrow(codes))
    }

    private static func decodePrefixNumbers(
        _ reader: inout ByteReader, rows: Int, prefixCount: Int
    ) throws(PartFormatError) -> [String] {
        var lengths = [Int]()
        lengths.reserveCapacity(prefixCount)
        for entry in 0..<prefixCount {
            lengths.append(try reader.count("length of prefix \(entry)", limit: reader.remaining))
        }
        var prefixes = [UnsafeRawBufferPointer]()
        prefixes.reserveCapacity(prefixCount)
        for (entry, length) in lengths.enumerated() {
            prefixes.append(try reader.bytes(length, "prefix \(entry)"))
        }
        let width = prefixCount <= 256 ? 1 : 2
        let codes = try reader.bytes(rows * width, "prefix codes")
        let codesOffset = reader.offset - codes.count
        let digitCounts = try reader.bytes(rows, "digit counts")
        var values = [String]()
        values.reserveCapacity(rows)
        for row in 0..<rows {
            let code = width == 1 ? Int(codes[row]) : Int(codes[2 * row]) << 8 | Int(codes[2 * row + 1])
            guard code < prefixCount else {
                throw PartFormatError("prefix code \(code) of row \(row) is not below \(prefixCount)", at: codesOffset + row * width)
            }
            let digits = Int(digitCounts[row])
            guard digits <= maxSuffixDigits else {
                throw PartFormatError("row \(row) has \(digits) digits; at most \(maxSuffixDigits)", at: codesOffset + codes.count + row)
            }
            let prefix = prefixes[code]
            guard digits > 0 else {
                values.append(String(decoding: prefix, as: UTF8.self))
                continue
            }
            let numberOffset = reader.offset
            var number = try reader.varint("number of row \(row)")
            if digits < maxSuffixDigits {
                var limit: UInt64 = 1
                for _ in 0..<digits { limit *= 10 }
                guard number < limit else {
                    throw PartFormatError("number \(number) of row \(row) has more than \(digits) digits", at: numberOffset)
                }
            } else if number >= 10_000_000_000_000_000_000 {
                throw PartFormatError("number \(number) of row \(row) has more than \(digits) digits", at: numberOffset)
            }
            values.append(String(unsafeUninitializedCapacity: prefix.count + digits) { buffer in
                if let base = prefix.baseAddress, prefix.count > 0 {
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(start: base, count: prefix.count))
                }
                var position = prefix.count + digits
                for _ in 0..<digits {
                    position -= 1
                    buffer[position] = UInt8(ascii: "0") + UInt8(number % 10)
                    number /= 10
                }
                return prefix.count + digits
            })
        }
        try reader.expectEnd("the last number")
        return values
    }

    // MARK: - Event ids

    enum IDMode: UInt8 {
        /// `derivedEventID(receivedAt:seq:)` of the row: no bytes.
        case derived = 0
        /// 16 raw bytes: high then low, big-endian.
        case explicit = 1
        /// The empty string: no bytes.
        case empty = 2
        /// Anything but canonical lowercase UUID text: a varint length and the bytes.
        case text = 3
    }

    /// Encodes ids: a mode byte per row, then the rows' payloads in order.
    /// Appends the XXH64 of every id that is not derived to `bloomHashes`
    /// (derived ids are found through their seq instead).
    /// `derived`, when not empty, says per row that its id is the one derived
    /// from its received-at and seq (its row in `ids` is then empty): a flush
    /// of memory chunks knows it, and need not format the id for this to parse it back.
    static func encodeEventIDs(
        _ ids: ByteRows, derived: UnsafeBufferPointer<Bool> = .init(start: nil, count: 0), receivedAt: UnsafeBufferPointer<Int64>,
        seq: UnsafeBufferPointer<UInt64>, into out: inout ByteWriter, bloomHashes: inout [UInt64]
    ) -> ChunkEncoding {
        let count = ids.count
        writeHeader(.eventID, rows: count, into: &out)
        let modes = out.count
        out.bytes.appendZeros(count)
        for index in 0..<count {
            let bytes = ids[index]
            let mode: IDMode
            if index < derived.count && derived[index] {
                mode = .derived
            } else if bytes.isEmpty {
                mode = .empty
            } else if let id = CanonicalEventID.parse(bytes) {
                if id == derivedEventID(receivedAt: receivedAt[index], seq: seq[index]) {
                    mode = .derived
                } else {
                    mode = .explicit
                    out.u64(id.high)
                    out.u64(id.low)
                }
            } else {
                mode = .text
                out.varint(bytes.count)
                out.append(bytes)
            }
            out.bytes[modes + index] = mode.rawValue
            if mode != .derived { bloomHashes.append(XXHash64.hash(bytes)) }
        }
        return .eventID
    }

    static func decodeEventIDs(
        _ reader: inout ByteReader, rows: Int, receivedAt: [Int64], seq: [UInt64]
    ) throws(PartFormatError) -> [String] {
        precondition(receivedAt.count == rows && seq.count == rows, "ids decode after receivedAt and seq")
        let modesOffset = reader.offset
        let modes = try reader.bytes(rows, "id modes")
        var values = [String]()
        values.reserveCapacity(rows)
        for row in 0..<rows {
            switch IDMode(rawValue: modes[row]) {
            case .derived:
                values.append(CanonicalEventID.format(derivedEventID(receivedAt: receivedAt[row], seq: seq[row])))
            case .explicit:
                let high = try reader.u64("id of row \(row)")
                let low = try reader.u64("id of row \(row)")
                values.append(CanonicalEventID.format(EventID(high: high, low: low)))
            case .empty:
                values.append("")
            case .text:
                let length = try reader.count("id length of row \(row)", limit: reader.remaining)
                values.append(String(decoding: try reader.bytes(length), as: UTF8.self))
            case nil:
                throw PartFormatError("unknown id mode \(modes[row]) of row \(row)", at: modesOffset + row)
            }
        }
        try reader.expectEnd("the last id")
        return values
    }

    // MARK: - Trace and request ids

    /// The kind byte of an empty correlation id.
    static let correlationEmpty: UInt8 = 0
    /// The kind byte of a correlation id stored as text.
    static let correlationText: UInt8 = 255
    /// Kinds 1...32: lowercase hex stored as that many raw bytes.
    static let maxHexBytes = 32

    /// Encodes trace or request ids: a kind byte per row (0 empty; n in
    /// 1...32: lowercase hex of 2n digits, stored as n raw bytes; 255: text),
    /// then the text rows' varint lengths and bytes in row order, then the hex
    /// rows' raw bytes in row order. The raw bytes come last because random
    /// ids do not compress: the writer stores that tail without deflating it.
    /// Returns the encoding and the length of that tail. Appends the XXH64 of
    /// every row's text to `bloomHashes`.
    static func encodeCorrelationIDs(
        _ rows: ByteRows, into out: inout ByteWriter, bloomHashes: inout [UInt64]
    ) -> (encoding: ChunkEncoding, rawTail: Int) {
        let count = rows.count
        writeHeader(.correlationID, rows: count, into: &out)
        let kinds = out.count
        out.bytes.appendZeros(count)
        var hexBytes = 0
        for index in 0..<count {
            let bytes = rows[index]
            bloomHashes.append(XXHash64.hash(bytes))
            if bytes.isEmpty { continue }  // kind 0 already written
            if isLowercaseHex(bytes) {
                out.bytes[kinds + index] = UInt8(truncatingIfNeeded: bytes.count / 2)
                hexBytes += bytes.count / 2
            } else {
                out.bytes[kinds + index] = correlationText
                out.varint(bytes.count)
                out.append(bytes)
            }
        }
        out.appendSpace(hexBytes) { pointer in
            var position = 0
            for index in 0..<count {
                let bytes = rows[index]
                guard let base = bytes.baseAddress, bytes.count >= 2, isLowercaseHex(bytes) else { continue }
                for byte in 0..<bytes.count / 2 {
                    let high = HexDigits.decode(base.load(fromByteOffset: 2 * byte, as: UInt8.self)).value
                    let low = HexDigits.decode(base.load(fromByteOffset: 2 * byte + 1, as: UInt8.self)).value
                    pointer[position] = high << 4 | low
                    position += 1
                }
            }
        }
        return (.correlationID, hexBytes)
    }

    /// Lowercase hex of an even length from 2 to 64 digits.
    @inline(__always)
    static func isLowercaseHex(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 2, bytes.count <= 2 * maxHexBytes, bytes.count % 2 == 0, let base = bytes.baseAddress
        else { return false }
        var invalid: UInt8 = 0
        for index in 0..<bytes.count {
            invalid |= HexDigits.decode(base.load(fromByteOffset: index, as: UInt8.self)).invalid
        }
        return invalid == 0
    }

    static func decodeCorrelationIDs(_ reader: inout ByteReader, rows: Int) throws(PartFormatError) -> [String] {
        // One layout, one reader: decode as stored rows over a copy of the chunk, then make every value.
        let owner = Array(reader.bytes)
        let stored = try withBytes(owner) { (raw) throws(PartFormatError) -> StoredTextRows in
            var copy = ByteReader(raw, base: reader.base)
            copy.position = reader.position
            return try decodeCorrelationRows(&copy, rows: rows, owner: owner)
        }
        reader.position = reader.bytes.count
        return (0..<rows).map { stored.value(at: $0) }
    }

    // MARK: - Extras (plain bytes)

    /// Encodes opaque byte strings plain: every length, then every row's bytes.
    static func encodePlainBytes(_ rows: ByteRows, into out: inout ByteWriter) -> ChunkEncoding {
        writeHeader(.plain, rows: rows.count, into: &out)
        writePlainLengths(count: rows.count, into: &out) { rows.ends[$0] &- rows.start($0) }
        out.markBoundary()
        out.append(rows.all)
        return .plain
    }

    /// Decodes plain byte strings, calling `body` with each row's bytes.
    static func decodePlainBytes(
        _ reader: inout ByteReader, rows: Int,
        _ body: (Int, UnsafeRawBufferPointer) throws(PartFormatError) -> Void
    ) throws(PartFormatError) {
        let lengths = try readPlainLengths(&reader, rows: rows)
        for (row, length) in lengths.enumerated() {
            try body(row, try reader.bytes(length))
        }
    }

    /// The extras of an event: the protobuf bytes of an `AuditEvent` holding
    /// only its targets, changes and metadata (map entries in the UTF-8 byte
    /// order of their keys, each writing its key and value, so that equal
    /// events give equal bytes); empty when all three are empty.
    ///
    /// Written field by field: swift-protobuf's serializer (a sizing pass,
    /// then generic visitors) took a fifth of the cost of taking a batch in.
    /// Unknown fields inside a target or change follow its known fields, as
    /// swift-protobuf writes them.
    static func extrasBytes(of event: AuditEvent) -> [UInt8] {
        let targets = event.targets, changes = event.changes, metadata = event.metadata
        if targets.isEmpty && changes.isEmpty && metadata.isEmpty { return [] }
        typealias Writer = CanonicalEvent.Writer
        var writer = Writer()
        for target in targets {
            writer.stringTriple(10, target.type, target.id, target.name, unknown: Array(target.unknownFields.data))
        }
        for change in changes {
            writer.stringTriple(17, change.field, change.old, change.new, unknown: Array(change.unknownFields.data))
        }
        let entries = metadata.count > 1 ? metadata.sorted { utf8Less($0.key, $1.key) } : Array(metadata)
        for (key, value) in entries {
            writer.messageHeader(18, size: Writer.stringSize(1, key, always: true) + Writer.stringSize(2, value, always: true))
            writer.string(1, key, always: true)
            writer.string(2, value, always: true)
        }
        return writer.out
    }

    /// Decodes an extras chunk into partial events (only targets, changes and
    /// metadata set; the shared empty event for rows without extras).
    static func decodeExtras(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> [AuditEvent] {
        var values = [AuditEvent]()
        values.reserveCapacity(rows)
        let start = reader.offset
        func append(_ row: Int, _ bytes: UnsafeRawBufferPointer) throws(PartFormatError) {
            if bytes.isEmpty {
                values.append(AuditEvent())
                return
            }
            do {
                let partial = try AuditEvent(serializedBytes: [UInt8](bytes))
                values.append(partial)
            } catch {
                throw PartFormatError("extras of row \(row) are not a valid protobuf message (\(error))", at: start)
            }
        }
        if encoding == .extrasColumns {
            // Offsets count from the chunk's first byte, as in the reader.
            let owner = Array(UnsafeRawBufferPointer(rebasing: reader.bytes[0...]))
            let lists = try ExtrasColumns.decodeLists(&reader, rows: rows, owner: owner)
            for row in 0..<rows {
                try withBytes(lists.bytes(of: row)) { (bytes) throws(PartFormatError) in try append(row, bytes) }
            }
            return values
        }
        try decodePlainBytes(&reader, rows: rows, append)
        return values
    }

    /// Each row's extras bytes as the part stores them: what `decodeExtras`
    /// parses, and what `extrasBytes(of:)` gives back for the parsed event.
    static func decodeExtrasBytes(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int
    ) throws(PartFormatError) -> [[UInt8]] {
        if encoding == .extrasColumns {
            // Offsets count from the chunk's first byte, as in the reader.
            let owner = Array(UnsafeRawBufferPointer(rebasing: reader.bytes[0...]))
            let lists = try ExtrasColumns.decodeLists(&reader, rows: rows, owner: owner)
            return (0..<rows).map { lists.bytes(of: $0) }
        }
        // Plain rows (the rare chunk whose rows do not round trip as lists)
        // go through `decodeExtras`: the same bad bytes fail the same way, and
        // the bytes kept are those the parsed event gives back.
        return try decodeExtras(&reader, encoding: encoding, rows: rows).map(extrasBytes(of:))
    }

    // MARK: - Fixed 32-bit values (truncated leaf hashes)

    /// Encodes one UInt32 per row, big-endian.
    static func encodeFixed32(_ values: [UInt32], into out: inout ByteWriter) -> ChunkEncoding {
        writeHeader(.fixed32, rows: values.count, into: &out)
        for value in values { out.u32(value) }
        return .fixed32
    }

    static func decodeFixed32(_ reader: inout ByteReader, rows: Int) throws(PartFormatError) -> [UInt32] {
        try reader.need(rows * 4, "\(rows) 4-byte values")
        var values: [UInt32] = []
        values.reserveCapacity(rows)
        for _ in 0..<rows { values.append(try reader.u32()) }
        return values
    }
}
