/// Values of a text or bytes column as their bytes back to back with end
/// offsets. A block's gathered columns are kept so: the encoders work on raw
/// memory (no `String` per row to retain, hash or compare) and the buffers
/// are reused from block to block. So are a memory chunk's extras: one
/// allocation per batch, not one per event.
struct ByteColumn: Sendable {
    var bytes: [UInt8] = []
    /// `ends[i]`: where row i ends in `bytes` (it starts at `ends[i - 1]`, or 0).
    var ends: [Int] = []

    init() {}

    init(_ values: [String]) {
        for value in values { append(value) }
    }

    init(bytes values: [[UInt8]]) {
        for value in values { append(bytes: value) }
    }

    var count: Int { ends.count }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func append(_ value: String) {
        withUTF8Bytes(value) { bytes.append(contentsOf: $0) }
        ends.append(bytes.count)
    }

    mutating func append(bytes value: [UInt8]) {
        bytes.append(contentsOf: value)
        ends.append(bytes.count)
    }

    mutating func append(raw value: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: value)
        ends.append(bytes.count)
    }

    /// Calls `body` with row `row`'s bytes.
    @inline(__always)
    func withRow<R>(_ row: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let start = row == 0 ? 0 : ends[row - 1]
        return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<ends[row]])) }
    }

    /// Row `row`'s bytes, copied.
    func row(_ row: Int) -> [UInt8] {
        withRow(row) { Array($0) }
    }

    /// Calls `body` with pointer access to the rows.
    func withRows<R>(_ body: (ByteRows) -> R) -> R {
        bytes.withUnsafeBytes { bytes in
            ends.withUnsafeBufferPointer { ends in
                body(ByteRows(base: bytes.baseAddress, ends: ends))
            }
        }
    }
}

/// Pointer access to the rows of a `ByteColumn`, valid inside `withRows`.
struct ByteRows {
    let base: UnsafeRawPointer?
    let ends: UnsafeBufferPointer<Int>

    var count: Int { ends.count }
    /// Bytes of all rows together.
    var totalBytes: Int { ends.last ?? 0 }

    @inline(__always)
    func start(_ row: Int) -> Int { row == 0 ? 0 : ends[row &- 1] }

    @inline(__always)
    subscript(row: Int) -> UnsafeRawBufferPointer {
        let start = start(row)
        return UnsafeRawBufferPointer(start: base.map { $0 + start }, count: ends[row] &- start)
    }

    /// All rows' bytes together.
    var all: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: totalBytes)
    }
}
