/// A bloom filter over the UTF-8 bytes of a block's values of one column:
/// `mayContain` is false only for values the block certainly does not hold.
///
/// Sized at 9.6 bits per value with 7 probes, about 1% false positives. The
/// probes are derived from one XXH64 hash `h` of the value (Kirsch and
/// Mitzenmacher's double hashing): with `h1` its low 32 bits and `h2` its high
/// 32 bits, probe i (0 ≤ i < k) sets bit `((h1 + i·h2) mod 2³²) · m >> 32` of
/// the `m`-bit array, where bit b is bit `b % 8` (least significant first) of
/// byte `b / 8`. This is part of the file format.
public struct BloomFilter: Sendable, Hashable {
    /// Probes per value (k).
    public let hashCount: Int
    /// Bits in the filter (m): a positive multiple of 8.
    public let bitCount: Int
    private(set) var bits: [UInt8]

    /// Tenths of a bit per expected value: 9.6 bits and 7 probes give ~1%.
    static let tenthBitsPerValue = 96
    static let defaultHashCount = 7
    /// The smallest filter, also the one of a block without values.
    static let minBitCount = 64
    /// The most probes a filter read from disk may ask for.
    static let maxHashCount = 32

    /// An empty filter for about `expectedCount` values.
    init(expectedCount: Int) {
        let wanted = (expectedCount * Self.tenthBitsPerValue + 9) / 10
        bitCount = max(Self.minBitCount, (wanted + 7) / 8 * 8)
        hashCount = Self.defaultHashCount
        bits = [UInt8](repeating: 0, count: bitCount / 8)
    }

    /// A filter read from disk (sizes checked by the caller).
    init(hashCount: Int, bits: [UInt8]) {
        self.hashCount = hashCount
        self.bitCount = bits.count * 8
        self.bits = bits
    }

    @inline(__always)
    private func probe(_ hash: UInt64, _ index: Int) -> Int {
        let low = UInt32(truncatingIfNeeded: hash)
        let high = UInt32(truncatingIfNeeded: hash >> 32)
        let mixed = low &+ UInt32(truncatingIfNeeded: index) &* high
        return Int((UInt64(mixed) &* UInt64(bitCount)) >> 32)
    }

    mutating func insert(hash: UInt64) {
        for index in 0..<hashCount {
            let bit = probe(hash, index)
            bits[bit >> 3] |= 1 << UInt8(bit & 7)
        }
    }

    func mayContain(hash: UInt64) -> Bool {
        for index in 0..<hashCount {
            let bit = probe(hash, index)
            if bits[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
        }
        return true
    }

    /// False only when `value` (compared by its UTF-8 bytes) was never inserted.
    public func mayContain(_ value: String) -> Bool {
        mayContain(hash: XXHash64.hash(value))
    }

    /// The filter's bytes as stored.
    public var bytes: [UInt8] { bits }
}
