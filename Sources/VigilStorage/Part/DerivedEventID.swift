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
        guard bytes.count == 36 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        var nibbles = 0
        for index in 0..<36 {
            let byte = bytes[index]
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            if nibbles < 16 {
                words.0 = words.0 << 4 | UInt64(value)
            } else {
                words.1 = words.1 << 4 | UInt64(value)
            }
            nibbles += 1
        }
        return EventID(high: words.0, low: words.1)
    }

    static func parse(_ text: String) -> EventID? {
        withUTF8Bytes(text) { parse($0) }
    }

    /// The canonical lowercase text (one allocation).
    static func format(_ id: EventID) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in
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
            return 36
        }
    }
}

/// The lowercase hex digit of a nibble.
@inline(__always)
func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? nibble &+ UInt8(ascii: "0") : nibble &+ (UInt8(ascii: "a") &- 10)
}
