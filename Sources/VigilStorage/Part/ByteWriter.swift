/// An append-only byte buffer for building column chunks and the footer.
/// Integers are big-endian; varints are LEB128 (see `Varint`). Reused across
/// blocks with `removeAll()`, which keeps the capacity.
struct ByteWriter {
    var bytes: [UInt8]
    /// Offsets where a chunk changes from one kind of content to another
    /// (dictionary entries, then codes): the compressor starts a new deflate
    /// block at each, so that each part gets Huffman codes of its own. Not
    /// part of the format; any zlib stream is valid.
    private(set) var boundaries: [Int] = []

    init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        boundaries.removeAll(keepingCapacity: true)
    }

    /// Marks the current end as a boundary between kinds of content.
    mutating func markBoundary() {
        if let last = boundaries.last, last == bytes.count { return }
        if bytes.isEmpty { return }
        boundaries.append(bytes.count)
    }

    /// Appends another writer's bytes with its boundaries, and marks one before and after.
    mutating func append(section other: ByteWriter) {
        markBoundary()
        let base = bytes.count
        bytes.append(contentsOf: other.bytes)
        for boundary in other.boundaries { boundaries.append(base + boundary) }
        markBoundary()
    }

    @inline(__always)
    mutating func u8(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func u32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }

    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    mutating func varint(_ value: Int) { varint(UInt64(value)) }

    @inline(__always)
    mutating func zigzag(_ value: Int64) { varint(Varint.zigzag(value)) }

    mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    mutating func append(_ other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    /// Appends the UTF-8 bytes of `text`.
    mutating func append(utf8 text: String) {
        withUTF8Bytes(text) { bytes.append(contentsOf: $0) }
    }

    /// Overwrites four bytes at `offset` with `value`, big-endian.
    mutating func patchU32(_ value: UInt32, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value >> 24)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

/// Calls `body` with the UTF-8 bytes of `text`, without copying when the
/// string is stored as contiguous UTF-8 (always, for native Swift strings).
/// Strings are compared and hashed by these bytes throughout the part format:
/// `String`'s `==` treats canonically equivalent strings ("é" and "e\u{301}")
/// as equal, which would merge distinct values.
@inline(__always)
func withUTF8Bytes<R>(_ text: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let result = text.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
        return result
    }
    var copy = text
    return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}

/// Whether two strings have the same UTF-8 bytes (not `==`, which compares
/// canonical equivalence).
@inline(__always)
func sameUTF8(_ a: String, _ b: String) -> Bool {
    withUTF8Bytes(a) { a in
        withUTF8Bytes(b) { b in
            memoryEqual(a, b)
        }
    }
}

/// Whether two byte strings are the same bytes.
@inline(__always)
func memoryEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
}

/// Byte-wise lexicographic order of the UTF-8 bytes (the order of Unicode
/// scalar values), the order of tenants in a part.
@inline(__always)
func utf8Less(_ a: String, _ b: String) -> Bool {
    withUTF8Bytes(a) { a in withUTF8Bytes(b) { b in memoryLess(a, b) } }
}

/// Byte-wise lexicographic order of two byte strings (a prefix first).
@inline(__always)
func memoryLess(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    let common = min(a.count, b.count)
    if common > 0 {
        let order = memcmp(a.baseAddress!, b.baseAddress!, common)
        if order != 0 { return order < 0 }
    }
    return a.count < b.count
}

/// Calls `body` with the bytes of `array`, passing a typed error through
/// (`Array.withUnsafeBytes` only rethrows untyped errors).
@inline(__always)
func withBytes<T, Failure: Error>(
    _ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(Failure) -> T
) throws(Failure) -> T {
    let result: Result<T, Failure> = array.withUnsafeBytes { raw in
        Result { () throws(Failure) -> T in try body(raw) }
    }
    return try result.get()
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ByteWriter {
    /// Appends `count` bytes written by `body` through a pointer (for hot
    /// loops that know their exact size: no per-byte capacity checks).
    @inline(__always)
    mutating func appendSpace(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) {
        guard count > 0 else { return }
        let start = bytes.count
        bytes.appendZeros(count)
        bytes.withUnsafeMutableBufferPointer { body($0.baseAddress! + start) }
    }
}

/// 64 KiB of zeros to append from: appending `repeatElement(0, count:)`
/// copies byte by byte, appending slices of this is a memcpy.
private let zeros = [UInt8](repeating: 0, count: 1 << 16)

extension Array where Element == UInt8 {
    /// Appends `count` zero bytes.
    @inline(__always)
    mutating func appendZeros(_ count: Int) {
        var remaining = count
        while remaining > 0 {
            let piece = Swift.min(remaining, zeros.count)
            append(contentsOf: zeros[0..<piece])
            remaining -= piece
        }
    }
}
