/// A case-insensitive substring search, as the filter's `search` runs it.
///
/// An ASCII needle (the common case: names, e-mail addresses, ids) is
/// compared byte by byte with ASCII case folding, with no allocation per
/// value; UTF-8 never encodes a non-ASCII character with ASCII bytes, so this
/// cannot match inside a multi-byte character. A needle with other characters
/// is compared after Unicode lowercasing of both sides.
public struct TextSearch: Sendable, Hashable {
    /// The needle, lowercased.
    public let needle: String
    private let bytes: [UInt8]
    private let isASCII: Bool

    public init(_ text: String) {
        needle = text.lowercased()
        bytes = Array(needle.utf8)
        isASCII = bytes.allSatisfy { $0 < 0x80 }
    }

    /// Whether `haystack` contains the needle, ignoring case.
    public func matches(_ haystack: String) -> Bool {
        if bytes.isEmpty { return true }
        if isASCII {
            var copy = haystack
            return copy.withUTF8 { Self.containsFolded($0, bytes) }
        }
        var lowered = haystack.lowercased()
        return lowered.withUTF8 { Self.contains($0, bytes) }
    }

    /// Whether UTF-8 `haystack` contains the needle, ignoring case.
    public func matches(utf8 haystack: UnsafeBufferPointer<UInt8>) -> Bool {
        if bytes.isEmpty { return true }
        if isASCII { return Self.containsFolded(haystack, bytes) }
        return matches(String(decoding: haystack, as: UTF8.self))
    }

    @inline(__always)
    private static func fold(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    private static func containsFolded(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        let count = needle.count
        guard haystack.count >= count else { return false }
        let first = needle[0]
        return needle.withUnsafeBufferPointer { needle in
            var start = 0
            let last = haystack.count - count
            while start <= last {
                if fold(haystack[start]) == first {
                    var index = 1
                    while index < count && fold(haystack[start + index]) == needle[index] { index += 1 }
                    if index == count { return true }
                }
                start += 1
            }
            return false
        }
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        let count = needle.count
        guard haystack.count >= count else { return false }
        var start = 0
        while start <= haystack.count - count {
            var index = 0
            while index < count && haystack[start + index] == needle[index] { index += 1 }
            if index == count { return true }
            start += 1
        }
        return false
    }
}
