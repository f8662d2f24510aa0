/// The distinct values of one string column of one block, keyed by their
/// UTF-8 bytes (never by `String ==`, which merges canonically equivalent
/// strings), each with its XXH64 hash: the dictionary of dictionary encoding,
/// and the input of the block's bloom filter and value set. Open addressing
/// with linear probing; reused across blocks with `reset`.
struct ByteStringTable {
    /// The distinct values' bytes, back to back, in order of first appearance.
    private(set) var arena: [UInt8] = []
    /// `ends[i]` is where value i ends in `arena` (it starts at `ends[i - 1]`, or 0).
    private(set) var ends: [Int] = []
    private(set) var hashes: [UInt64] = []
    private var slots: [Int32] = []
    private var mask = 0

    var count: Int { hashes.count }

    /// Empties the table, sized for up to `capacity` distinct values.
    mutating func reset(capacity: Int) {
        arena.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        if slots.count != size {
            slots = [Int32](repeating: -1, count: size)
        } else {
            slots.withUnsafeMutableBufferPointer { $0.update(repeating: -1) }
        }
        mask = size - 1
    }

    func range(of index: Int) -> Range<Int> {
        (index == 0 ? 0 : ends[index - 1])..<ends[index]
    }

    func length(of index: Int) -> Int {
        ends[index] - (index == 0 ? 0 : ends[index - 1])
    }

    /// Calls `body` with the bytes of value `index`.
    func withValue<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let range = range(of: index)
        return arena.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    func string(_ index: Int) -> String {
        withValue(index) { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether value `index` has exactly the bytes `bytes`.
    @inline(__always)
    func equals(_ index: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let start = index == 0 ? 0 : ends[index - 1]
        let length = ends[index] - start
        guard length == bytes.count else { return false }
        if length == 0 { return true }
        return arena.withUnsafeBytes { memcmp($0.baseAddress! + start, bytes.baseAddress!, length) == 0 }
    }

    /// The index of `bytes`, inserting it when new.
    @inline(__always)
    mutating func insert(_ bytes: UnsafeRawBufferPointer) -> Int {
        insert(bytes, hash: XXHash64.hash(bytes))
    }

    mutating func insert(_ bytes: UnsafeRawBufferPointer, hash: UInt64) -> Int {
        if hashes.count * 2 >= slots.count { grow() }
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let index = Int(slots[slot])
            if index < 0 { break }
            if hashes[index] == hash && equals(index, bytes) { return index }
            slot = (slot + 1) & mask
        }
        let index = hashes.count
        slots[slot] = Int32(index)
        hashes.append(hash)
        arena.append(contentsOf: bytes)
        ends.append(arena.count)
        return index
    }

    private mutating func grow() {
        let size = max(16, slots.count * 2)
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for (index, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(index)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
