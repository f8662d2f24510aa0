import VigilCore

/// The id the server assigns to an event that arrived without one: a UUIDv7
/// whose time is `receivedAt` in milliseconds and whose remaining bits are the
/// event's `seq` (unique server-wide), so that parts need not store it: a
/// part stores one mode byte for such a row and rebuilds the id from the
/// row's `receivedAt` and `seq`.
///
///     high = (receivedAt / 1_000_000 & 0xFFFF_FFFF_FFFF) << 16 | 0x7000
///     low  = 0x8000_0000_0000_0000 | (seq & 0x3FFF_FFFF_FFFF_FFFF)
///
/// A negative `receivedAt` (never stamped by the server) contributes its
/// two's-complement bits rather than trapping.
public func derivedEventID(receivedAt: Int64, seq: UInt64) -> EventID {
    let millis = UInt64(bitPattern: receivedAt / 1_000_000) & 0xFFFF_FFFF_FFFF
    return EventID(high: millis << 16 | 0x7000, low: 0x8000_0000_0000_0000 | (seq & 0x3FFF_FFFF_FFFF_FFFF))
}

/// Canonical event-id text, the only text the part format stores as 16 raw bytes.
enum CanonicalEventID {
    /// Parses exactly the canonical form: 36 characters, 8-4-4-4-12 groups of
    /// lowercase hex. Nil for anything else (including uppercase), which is
    /// then stored as text so that it round trips byte for byte.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> EventID? {
        guard bytes.count == textLength, let base = bytes.baseAddress else { return nil }
        guard base.load(fromByteOffset: 8, as: UInt8.self) == UInt8(ascii: "-"),
            base.load(fromByteOffset: 13, as: UInt8.self) == UInt8(ascii: "-"),
            base.load(fromByteOffset: 18, as: UInt8.self) == UInt8(ascii: "-"),
            base.load(fromByteOffset: 23, as: UInt8.self) == UInt8(ascii: "-")
        else { return nil }
        // Branch-free per digit: random hex digits would mispredict a branch on every other one.
        var invalid: UInt8 = 0
        @inline(__always) func digits(_ start: Int, _ count: Int, into word: inout UInt64) {
            for index in start..<start &+ count {
                let (value, bad) = HexDigits.decode(base.load(fromByteOffset: index, as: UInt8.self))
                word = word &<< 4 | UInt64(value)
                invalid |= bad
            }
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        digits(0, 8, into: &high)
        digits(9, 4, into: &high)
        digits(14, 4, into: &high)
        digits(19, 4, into: &low)
        digits(24, 12, into: &low)
        return invalid == 0 ? EventID(high: high, low: low) : nil
    }

    static func parse(_ text: String) -> EventID? {
        withUTF8Bytes(text) { parse($0) }
    }

    /// The length of the canonical text (8-4-4-4-12 hex digits).
    static let textLength = 36

    /// The canonical lowercase text (one allocation).
    static func format(_ id: EventID) -> String {
        String(unsafeUninitializedCapacity: textLength) { write(id, into: $0) }
    }

    /// Calls `body` with the canonical text's bytes, formatted on the stack (no allocation).
    static func withFormatted<R>(_ id: EventID, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: textLength) { buffer in
            let count = write(id, into: buffer)
            return body(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<count]))
        }
    }

    /// Writes the canonical text into `buffer`; returns its length, `textLength`.
    private static func write(_ id: EventID, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var position = 0
        for nibble in 0..<32 {
            if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                buffer[position] = UInt8(ascii: "-")
                position += 1
            }
            let word = nibble < 16 ? id.high : id.low
            buffer[position] = hexDigit(UInt8(truncatingIfNeeded: word >> UInt64(60 - (nibble & 15) * 4)) & 0xF)
            position += 1
        }
        return textLength
    }
}

enum HexDigits {
    /// The value of a lowercase hex digit, and 1 in `invalid` for any other byte.
    @inline(__always)
    static func decode(_ byte: UInt8) -> (value: UInt8, invalid: UInt8) {
        let digit = byte &- UInt8(ascii: "0")
        let letter = byte &- UInt8(ascii: "a")
        let isDigit = digit < 10
        let isLetter = letter < 6
        let value = isDigit ? digit : letter &+ 10
        let invalid: UInt8 = (isDigit ? 0 : 1) & (isLetter ? 0 : 1)
        return (value & 0xF, invalid)
    }
}
