/// One block's values of a text or bytes column as their bytes back to back
/// with end offsets: what the encoders read. Gathering copies each value's
/// UTF-8 bytes once, so the encoders work on raw memory (no `String` per row
/// to retain, hash or compare) and the buffers are reused from block to block.
struct ByteColumn {
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
