#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A dictionary entry of an `ipDictionary` chunk (the sourceIP column): a
/// canonical IPv4 address as 4 raw bytes (kind 4), a canonical IPv6 address
/// as 16 raw bytes (kind 6), or anything else as text (kind 0: a varint
/// length and the bytes). "Canonical" means the text is exactly what the
/// address formats back to, so every value round trips byte for byte.
enum IPEntry {
    case v4(UInt32)
    case v6(in6_addr)
    case text

    static let kindText: UInt8 = 0
    static let kindV4: UInt8 = 4
    static let kindV6: UInt8 = 6

    init(_ bytes: UnsafeRawBufferPointer) {
        if let address = Self.parseIPv4(bytes) {
            self = .v4(address)
        } else if let address = Self.parseIPv6(bytes) {
            self = .v6(address)
        } else {
            self = .text
        }
    }

    func encodedSize(textLength: Int) -> Int {
        switch self {
        case .v4: 1 + 4
        case .v6: 1 + 16
        case .text: 1 + Varint.size(UInt64(textLength)) + textLength
        }
    }

    func write(_ text: UnsafeRawBufferPointer, into out: inout ByteWriter) {
        switch self {
        case .v4(let address):
            out.u8(Self.kindV4)
            out.u32(address)
        case .v6(var address):
            out.u8(Self.kindV6)
            withUnsafeBytes(of: &address) { out.append($0) }
        case .text:
            out.u8(Self.kindText)
            out.varint(text.count)
            out.append(text)
        }
    }

    static func read(_ reader: inout ByteReader, entry: Int) throws(PartFormatError) -> String {
        let at = reader.offset
        switch try reader.u8("address kind") {
        case kindV4:
            return formatIPv4(try reader.u32("IPv4 address"))
        case kindV6:
            let raw = try reader.bytes(16, "IPv6 address")
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: raw) }
            return formatIPv6(address)
        case kindText:
            let length = try reader.count("length of dictionary entry \(entry)", limit: reader.remaining)
            return String(decoding: try reader.bytes(length), as: UTF8.self)
        case let kind:
            throw PartFormatError("unknown address kind \(kind) of dictionary entry \(entry)", at: at)
        }
    }

    /// Dotted-quad text without leading zeros ("10.0.0.1", not "010.0.0.1").
    static func parseIPv4(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard bytes.count >= 7, bytes.count <= 15 else { return nil }
        var address: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var dots = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                address = address << 8 | part
                part = 0
                digits = 0
                dots += 1
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if digits > 0 && part == 0 { return nil }  // a leading zero
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return address << 8 | part
    }

    static func formatIPv4(_ address: UInt32) -> String {
        String(unsafeUninitializedCapacity: 15) { buffer in
            var position = 0
            for shift in stride(from: 24, through: 0, by: -8) {
                let part = Int(address >> UInt32(shift) & 0xFF)
                if part >= 100 {
                    buffer[position] = UInt8(ascii: "0") + UInt8(part / 100)
                    position += 1
                }
                if part >= 10 {
                    buffer[position] = UInt8(ascii: "0") + UInt8(part / 10 % 10)
                    position += 1
                }
                buffer[position] = UInt8(ascii: "0") + UInt8(part % 10)
                position += 1
                if shift > 0 {
                    buffer[position] = UInt8(ascii: ".")
                    position += 1
                }
            }
            return position
        }
    }

    /// IPv6 text that is exactly the system's canonical form of its address (RFC 5952).
    static func parseIPv6(_ bytes: UnsafeRawBufferPointer) -> in6_addr? {
        guard bytes.count >= 2, bytes.count <= 45, bytes.contains(UInt8(ascii: ":")) else { return nil }
        var text = [CChar](repeating: 0, count: 48)
        for (index, byte) in bytes.enumerated() {
            guard byte != 0 else { return nil }
            text[index] = CChar(bitPattern: byte)
        }
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        let canonical = formatIPv6(address)
        let same = canonical.utf8.count == bytes.count && zip(canonical.utf8, bytes).allSatisfy { $0 == $1 }
        return same ? address : nil
    }

    static func formatIPv6(_ address: in6_addr) -> String {
        var address = address
        var buffer = [CChar](repeating: 0, count: 64)
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
