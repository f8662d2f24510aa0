/// A case-insensitive substring search, as the filter's `search` runs it.
///
/// An ASCII needle (the common case: names, e-mail addresses, ids) is
/// compared byte by byte with ASCII case folding, with no allocation per
/// value; UTF-8 never encodes a non-ASCII character with ASCII bytes, so this
/// cannot match inside a multi-byte character. A needle with other characters
/// is compared after Unicode lowercasing of both sides.
///
/// Both run in time linear in the haystack (Knuth–Morris–Pratt, its table
/// built once per search): a restart at every byte cost needle × text per
/// value, and a 255-byte needle against 4 KiB descriptions made of one
/// repeated letter held a query thread for about a millisecond per row.
public struct TextSearch: Sendable, Hashable {
    /// The needle, lowercased.
    public let needle: String
    private let bytes: [UInt8]
    /// For each prefix of `bytes`, the length of its longest proper prefix
    /// that is also its suffix: where a match resumes after a mismatch.
    private let fallback: [Int32]
    private let isASCII: Bool

    public init(_ text: String) {
        needle = text.lowercased()
        bytes = Array(needle.utf8)
        isASCII = bytes.allSatisfy { $0 < 0x80 }
        fallback = Self.fallbackTable(bytes)
    }

    /// Whether `haystack` contains the needle, ignoring case.
    public func matches(_ haystack: String) -> Bool {
        if bytes.isEmpty { return true }
        if isASCII {
            var copy = haystack
            return copy.withUTF8 { search($0, fold: true) }
        }
        var lowered = haystack.lowercased()
        return lowered.withUTF8 { search($0, fold: false) }
    }

    /// Whether UTF-8 `haystack` contains the needle, ignoring case.
    public func matches(utf8 haystack: UnsafeBufferPointer<UInt8>) -> Bool {
        if bytes.isEmpty { return true }
        if isASCII { return search(haystack, fold: true) }
        return matches(String(decoding: haystack, as: UTF8.self))
    }

    @inline(__always)
    private static func fold(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    private static func fallbackTable(_ needle: [UInt8]) -> [Int32] {
        var table = [Int32](repeating: 0, count: needle.count)
        var length = 0
        for index in needle.indices.dropFirst() {
            while length > 0 && needle[index] != needle[length] { length = Int(table[length - 1]) }
            if needle[index] == needle[length] { length += 1 }
            table[index] = Int32(length)
        }
        return table
    }

    /// `fold`: ASCII case folding of the haystack (the needle is lowercase).
    private func search(_ haystack: UnsafeBufferPointer<UInt8>, fold: Bool) -> Bool {
        let count = bytes.count
        guard haystack.count >= count else { return false }
        return bytes.withUnsafeBufferPointer { needle in
            fallback.withUnsafeBufferPointer { fallback in
                var matched = 0
                for var byte in haystack {
                    if fold { byte = Self.fold(byte) }
                    while matched > 0 && byte != needle[matched] { matched = Int(fallback[matched - 1]) }
                    if byte == needle[matched] {
                        matched += 1
                        if matched == count { return true }
                    }
                }
                return false
            }
        }
    }
}
