/// The lowercase hex digit of a nibble (0...15): cursors, event ids and
/// stored correlation ids are written with it.
@inlinable @inline(__always)
public func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble &+ (nibble < 10 ? UInt8(ascii: "0") : UInt8(ascii: "a") &- 10)
}
