/// A 16-byte event identifier, written as a canonical UUID
/// (`0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f`). Stored as 16 raw bytes.
public struct EventID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the 36-character 8-4-4-4-12 hex form, either case. Nil for anything else.
    public init?(_ text: some StringProtocol) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var nibbles = 0
        var index = 0
        for byte in text.utf8 {
            defer { index += 1 }
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if nibbles < 16 {
                high = high << 4 | UInt64(value)
            } else {
                low = low << 4 | UInt64(value)
            }
            nibbles += 1
        }
        guard index == 36, nibbles == 32 else { return nil }
        self.init(high: high, low: low)
    }

    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(36)
        for (word, offset) in [(high, 0), (low, 16)] {
            for nibble in 0..<16 {
                let position = offset + nibble
                if position == 8 || position == 12 || position == 16 || position == 20 {
                    bytes.append(UInt8(ascii: "-"))
                }
                bytes.append(digits[Int(word >> UInt64(60 - nibble * 4) & 0xF)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func < (lhs: EventID, rhs: EventID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// Makes UUIDv7 ids (RFC 9562): a 48-bit millisecond time, then a 12-bit
/// counter that keeps ids from one generator strictly increasing within a
/// millisecond, then 62 random bits.
public struct UUIDv7Generator: Sendable {
    private var lastMillis: UInt64 = 0
    private var counter: UInt64 = 0

    public init() {}

    public mutating func next(unixNanos: UnixNanos) -> EventID {
        var millis = UInt64(max(0, unixNanos / 1_000_000))
        if millis <= lastMillis {
            // Same (or an earlier, after a clock step) millisecond: count up, and
            // borrow the next millisecond when the counter runs out.
            millis = lastMillis
            counter += 1
            if counter > 0xFFF {
                millis += 1
                counter = 0
            }
        } else {
            counter = 0
        }
        lastMillis = millis
        var random = SystemRandomNumberGenerator()
        let high = (millis & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | counter
        let low = (random.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
        return EventID(high: high, low: low)
    }
}
