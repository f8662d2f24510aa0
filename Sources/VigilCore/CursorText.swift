/// The text form shared by query and subscription cursors: a header of bytes
/// and big-endian 64-bit words, as lowercase hex.
enum CursorText {
    static func encode(header: [UInt8], words: [UInt64]) -> String {
        // Written straight into the string: a subscription sends a cursor
        // with every event, and building it through byte arrays cost five
        // allocations each time.
        String(unsafeUninitializedCapacity: (header.count + words.count * 8) * 2) { text in
            var index = 0
            func put(_ byte: UInt8) {
                text[index] = hexDigit(byte >> 4)
                text[index + 1] = hexDigit(byte & 0xF)
                index += 2
            }
            for byte in header { put(byte) }
            for word in words {
                for shift in stride(from: 56, through: 0, by: -8) { put(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
            }
            return index
        }
    }

    /// The bytes of `text`, or nil unless it is exactly `length` lowercase hex digits.
    static func decode(_ text: String, length: Int) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == length else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(length / 2)
        for pair in stride(from: 0, to: length, by: 2) {
            guard let high = hexValue(utf8[pair]), let low = hexValue(utf8[pair + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// The big-endian word at `offset` of `bytes`.
    static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        bytes[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
