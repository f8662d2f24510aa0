/// LEB128 varints and zigzag mapping, as used inside part column chunks and
/// the part footer: 7 bits per byte, least significant group first, the high
/// bit set on every byte but the last. A `UInt64` takes 1 to 10 bytes.
enum Varint {
    /// The most bytes a varint of a `UInt64` takes.
    static let maxBytes = 10

    /// Bytes `value` takes as a varint.
    @inline(__always)
    static func size(_ value: UInt64) -> Int {
        // 1 byte per started group of 7 bits; 0 still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Maps signed to unsigned so that small magnitudes stay small:
    /// 0 → 0, -1 → 1, 1 → 2, -2 → 3, …
    @inline(__always)
    static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    @inline(__always)
    static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    /// Writes `value` at `pointer`, which must have room for `size(value)`
    /// bytes. Returns the bytes written.
    @inline(__always)
    static func write(_ value: UInt64, to pointer: UnsafeMutablePointer<UInt8>) -> Int {
        var value = value
        var count = 0
        while value >= 0x80 {
            pointer[count] = UInt8(truncatingIfNeeded: value) | 0x80
            value >>= 7
            count += 1
        }
        pointer[count] = UInt8(truncatingIfNeeded: value)
        return count + 1
    }
}
