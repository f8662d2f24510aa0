/// A structural problem found while decoding part bytes: what is wrong and
/// the offset where it was found. `PartReader` turns it into
/// `VigilError(.dataLoss, "<path>: <what> at offset N")`.
struct PartFormatError: Error, Sendable {
    var what: String
    var offset: Int

    init(_ what: String, at offset: Int) {
        self.what = what
        self.offset = offset
    }
}

/// Bounds-checked reads over bytes that came from disk. Every read that would
/// pass the end throws `PartFormatError` instead of trapping, and every count
/// read from the bytes is checked against a limit before it sizes anything.
/// `base` is the offset of the first byte in the file (or 0 inside a decoded
/// chunk), so errors name a useful position.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    let base: Int

    init(_ bytes: UnsafeRawBufferPointer, base: Int = 0) {
        self.bytes = bytes
        self.base = base
    }

    var remaining: Int { bytes.count - position }
    var isAtEnd: Bool { position == bytes.count }
    /// The file offset (or decoded offset) of the next byte.
    var offset: Int { base + position }

    func error(_ what: String) -> PartFormatError {
        PartFormatError(what, at: base + position)
    }

    @inline(__always)
    func need(_ count: Int, _ what: @autoclosure () -> String) throws(PartFormatError) {
        guard count <= bytes.count - position else {
            throw error("\(what()) needs \(count) bytes but only \(bytes.count - position) remain")
        }
    }

    @inline(__always)
    mutating func u8(_ what: @autoclosure () -> String = "byte") throws(PartFormatError) -> UInt8 {
        try need(1, what())
        let value = bytes[position]
        position += 1
        return value
    }

    mutating func u16(_ what: @autoclosure () -> String = "u16") throws(PartFormatError) -> UInt16 {
        try need(2, what())
        let value = UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
        position += 2
        return value
    }

    mutating func u32(_ what: @autoclosure () -> String = "u32") throws(PartFormatError) -> UInt32 {
        try need(4, what())
        var value: UInt32 = 0
        for index in 0..<4 { value = value << 8 | UInt32(bytes[position + index]) }
        position += 4
        return value
    }

    mutating func u64(_ what: @autoclosure () -> String = "u64") throws(PartFormatError) -> UInt64 {
        try need(8, what())
        var value: UInt64 = 0
        for index in 0..<8 { value = value << 8 | UInt64(bytes[position + index]) }
        position += 8
        return value
    }

    mutating func i32(_ what: @autoclosure () -> String = "i32") throws(PartFormatError) -> Int32 {
        Int32(bitPattern: try u32(what()))
    }

    mutating func i64(_ what: @autoclosure () -> String = "i64") throws(PartFormatError) -> Int64 {
        Int64(bitPattern: try u64(what()))
    }

    /// A LEB128 varint of at most 10 bytes whose value fits 64 bits.
    @inline(__always)
    mutating func varint(_ what: @autoclosure () -> String = "varint") throws(PartFormatError) -> UInt64 {
        // Fast path: one byte.
        if position < bytes.count {
            let first = bytes[position]
            if first < 0x80 {
                position += 1
                return UInt64(first)
            }
        }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        while true {
            guard position < bytes.count else {
                position = start
                throw error("\(what()) runs past the end")
            }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 {
                position = start
                throw error("\(what()) overflows 64 bits")
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    @inline(__always)
    mutating func zigzag(_ what: @autoclosure () -> String = "varint") throws(PartFormatError) -> Int64 {
        Varint.unzigzag(try varint(what()))
    }

    /// A varint count or length, refused when above `limit`: counts size
    /// allocations, so a corrupt count must not ask for unbounded memory.
    @inline(__always)
    mutating func count(_ what: @autoclosure () -> String, limit: Int) throws(PartFormatError) -> Int {
        let start = position
        let value = try varint(what())
        guard value <= UInt64(limit) else {
            position = start
            throw error("\(what()) \(value) exceeds the limit of \(limit)")
        }
        return Int(value)
    }

    /// The next `count` bytes, without copying.
    @inline(__always)
    mutating func bytes(_ count: Int, _ what: @autoclosure () -> String = "bytes") throws(PartFormatError) -> UnsafeRawBufferPointer {
        try need(count, what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
        position += count
        return slice
    }

    mutating func skip(_ count: Int, _ what: @autoclosure () -> String = "bytes") throws(PartFormatError) {
        try need(count, what())
        position += count
    }

    /// Throws unless every byte was consumed.
    func expectEnd(_ what: @autoclosure () -> String) throws(PartFormatError) {
        guard isAtEnd else { throw error("\(remaining) unexpected bytes after \(what())") }
    }
}
