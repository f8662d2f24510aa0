/// The text form shared by query and subscription cursors: a header of bytes
/// and big-endian 64-bit words, as lowercase hex.
enum CursorText {
    static func encode(header: [UInt8], words: [UInt64]) -> String {
        var bytes = header
        for word in words {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
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
