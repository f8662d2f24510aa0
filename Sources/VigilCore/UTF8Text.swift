/// Whether `bytes` are valid UTF-8 (what protobuf requires of a string field).
@inlinable
public func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    isASCII(bytes) || String(validating: bytes, as: UTF8.self) != nil
}

/// `bytes` as a String when they are valid UTF-8. ASCII (most of an audit
/// event's text) takes `String(decoding:as:)`, several times faster than
/// `String(validating:as:)`, whose generic code looks up type metadata at
/// run time on every call.
@inlinable
public func validUTF8String(_ bytes: UnsafeRawBufferPointer) -> String? {
    if bytes.isEmpty { return "" }
    if isASCII(bytes) { return String(decoding: bytes, as: UTF8.self) }
    return String(validating: bytes, as: UTF8.self)
}

/// Whether every byte is below 0x80, eight at a time.
@inlinable
public func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var index = 0
    var high: UInt64 = 0
    while index + 8 <= bytes.count {
        high |= bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        index += 8
    }
    while index < bytes.count {
        high |= UInt64(bytes[index])
        index += 1
    }
    return high & 0x8080_8080_8080_8080 == 0
}
