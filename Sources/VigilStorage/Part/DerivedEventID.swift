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
    /// Eight digits at a time in a word (a flush formats every row's id to hash it).
    private static func write(_ id: EventID, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        precondition(buffer.count >= textLength)
        let out = UnsafeMutableRawPointer(buffer.baseAddress!)
        let a = hexDigits(UInt32(truncatingIfNeeded: id.high >> 32)), b = hexDigits(UInt32(truncatingIfNeeded: id.high))
        let c = hexDigits(UInt32(truncatingIfNeeded: id.low >> 32)), d = hexDigits(UInt32(truncatingIfNeeded: id.low))
        let dash = UInt8(ascii: "-")
        // 8-4-4-4-12: a, b's halves, c's halves, d.
        out.storeBytes(of: a.littleEndian, toByteOffset: 0, as: UInt64.self)
        out.storeBytes(of: dash, toByteOffset: 8, as: UInt8.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: b).littleEndian, toByteOffset: 9, as: UInt32.self)
        out.storeBytes(of: dash, toByteOffset: 13, as: UInt8.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: b >> 32).littleEndian, toByteOffset: 14, as: UInt32.self)
        out.storeBytes(of: dash, toByteOffset: 18, as: UInt8.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: c).littleEndian, toByteOffset: 19, as: UInt32.self)
        out.storeBytes(of: dash, toByteOffset: 23, as: UInt8.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: c >> 32).littleEndian, toByteOffset: 24, as: UInt32.self)
        out.storeBytes(of: d.littleEndian, toByteOffset: 28, as: UInt64.self)
        return textLength
    }

    /// The 8 lowercase hex digits of `value`, most significant first, as the
    /// bytes of a word from its lowest: each nibble is spread to a byte of
    /// its own, then turned into "0"..."9" or "a"..."f" all at once.
    @inline(__always)
    static func hexDigits(_ value: UInt32) -> UInt64 {
        var spread = UInt64(value)
        spread = ((spread & 0xFFFF_0000) << 16) | (spread & 0xFFFF)
        spread = ((spread & 0x0000_FF00_0000_FF00) << 8) | (spread & 0x0000_00FF_0000_00FF)
        spread = ((spread & 0x00F0_00F0_00F0_00F0) << 4) | (spread & 0x000F_000F_000F_000F)
        // Byte i now holds nibble i from the lowest; the text starts with the highest.
        spread = spread.byteSwapped
        // 1 in each byte whose nibble is 10 or more: 6 more carries it into bit 4.
        let letters = ((spread &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return spread &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
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
