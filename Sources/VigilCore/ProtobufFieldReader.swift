/// Steps through the fields of a protobuf message's bytes without decoding
/// it: for the few places that need one or two fields of many messages, or
/// a message's fields byte for byte (the WAL's copy of a request's events,
/// leaf hashes from stored extras, vigil-bench's subscribers).
public struct ProtobufFieldReader {
    public let bytes: UnsafeRawBufferPointer
    /// The next byte to read.
    public var position: Int { next }
    public let end: Int
    /// Refuse varints with needless continuation bytes, which no encoder writes:
    /// for readers that copy payloads and promise the bytes an encoder would write.
    public let minimalVarints: Bool
    // The reading methods are inlinable: the ingest decoder, in another
    // module, calls them dozens of times per event, and across modules each
    // was a function call.
    @usableFromInline var next: Int

    /// Reads `range` of `bytes` (all of them by default).
    public init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>? = nil, minimalVarints: Bool = false) {
        self.bytes = bytes
        next = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
        self.minimalVarints = minimalVarints
    }

    @inlinable
    public var atEnd: Bool { next >= end }

    /// Nil when the bytes end first (or, with `minimalVarints`, for a padded varint).
    @inlinable
    public mutating func varint() -> UInt64? {
        // One byte: most tags and lengths.
        if next < end {
            let byte = bytes[next]
            if byte < 0x80 {
                next += 1
                return UInt64(byte)
            }
        }
        return longVarint()
    }

    @usableFromInline
    mutating func longVarint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while next < end && shift < 64 {
            let byte = bytes[next]
            next += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return minimalVarints && byte == 0 && shift > 0 ? nil : value }
            shift += 7
        }
        return nil
    }

    /// The next field's number (1 ..< 2^29) and wire type.
    @inlinable
    public mutating func tag() -> (field: Int, wireType: Int)? {
        guard let tag = varint(), tag >> 3 > 0, tag >> 3 < 1 << 29 else { return nil }
        return (Int(tag >> 3), Int(tag & 7))
    }

    /// A length-delimited value's range; nil when it runs past the end.
    @inlinable
    public mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - next) else { return nil }
        let start = next
        next += Int(length)
        return start..<next
    }

    /// Skips a value of `wireType`; false for groups, unknown types, or bytes that end first.
    @inlinable
    public mutating func skip(wireType: Int) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1: next += 8
        case 2: return lengthDelimited() != nil
        case 5: next += 4
        default: return false  // groups (3, 4) and invalid wire types
        }
        return next <= end
    }
}

extension ProtobufFieldReader {
    /// A `map<string, string>` entry at `range` of `bytes`: its key (field 1)
    /// and value (field 2), each empty when left out, the last given winning.
    /// Nil for anything else in it (another field or wire type, text that is
    /// not UTF-8, bytes that end early): the caller then leaves the message
    /// to swift-protobuf.
    public static func stringMapEntry(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> (key: String, value: String)? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var key = "", value = ""
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag(), wireType == 2, let payload = reader.lengthDelimited(),
                let text = validUTF8String(UnsafeRawBufferPointer(rebasing: bytes[payload]))
            else { return nil }
            switch field {
            case 1: key = text
            case 2: value = text
            default: return nil
            }
        }
        return (key, value)
    }
}
