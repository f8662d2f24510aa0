#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A string compared and hashed by its UTF-8 bytes.
///
/// Swift's `String` equality is canonical equivalence: "Café" spelled with a
/// precomposed é equals "Café" spelled with e + U+0301. An audit log must
/// give back exactly the bytes it was given and must filter on exactly the
/// bytes asked for (as the part format's blooms and value sets do), so
/// dictionaries and sets of event values key on these instead.
public struct ExactString: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public static func == (a: ExactString, b: ExactString) -> Bool {
        // Lengths first, then the bytes in one memcmp: the generic
        // `utf8.elementsEqual` walked them one at a time, and dictionary-coding
        // the columns of every ingested batch compares a great many.
        guard a.value.utf8.count == b.value.utf8.count else { return false }
        var left = a.value
        var right = b.value
        return left.withUTF8 { l in
            right.withUTF8 { r in l.count == 0 || memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        var copy = value
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    public var description: String { value }
}

/// A set of strings with byte-exact membership (see `ExactString`).
///
/// A set of a few strings also keeps them in an array and answers by
/// comparing bytes: a live subscription to one tenant asks about each
/// tenant of every batch, and hashing each (SipHash over its bytes) cost
/// more than comparing lengths and, rarely, bytes.
public struct ExactStringSet: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral {
    private var members: Set<ExactString>
    /// The members while there are at most `ExactStringSetLimits.few` of them; nil beyond.
    private var few: [ExactString]?

    public init() {
        members = []
        few = []
    }

    public init(_ strings: some Sequence<String>) {
        members = Set(strings.lazy.map(ExactString.init))
        few = members.count <= ExactStringSetLimits.few ? Array(members) : nil
    }

    public init(arrayLiteral elements: String...) {
        self.init(elements)
    }

    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }

    /// Whether `value`'s exact bytes are in the set.
    public func contains(_ value: String) -> Bool {
        let exact = ExactString(value)
        if let few { return few.contains(exact) }
        return members.contains(exact)
    }

    public mutating func insert(_ value: String) {
        let (inserted, member) = members.insert(ExactString(value))
        guard inserted else { return }
        if members.count > ExactStringSetLimits.few { few = nil } else { few?.append(member) }
    }

    public func makeIterator() -> some IteratorProtocol<String> {
        members.lazy.map(\.value).makeIterator()
    }

    // The members alone decide (the array's order is the order of insertion).
    public static func == (a: ExactStringSet, b: ExactStringSet) -> Bool { a.members == b.members }
    public func hash(into hasher: inout Hasher) { hasher.combine(members) }
}

/// Sizes of `ExactStringSet`.
public enum ExactStringSetLimits {
    /// Sets up to this size also keep their members in an array and answer by comparing bytes.
    public static let few = 4
}
