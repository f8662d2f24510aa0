import CSHA256
import Crypto
import SwiftProtobuf
import VigilCore
import VigilProto

/// 32 bytes of SHA-256: a leaf hash or a chain head.
public struct ChainDigest: Sendable, Hashable, CustomStringConvertible {
    /// Four words, big-endian: word 0 holds bytes 0...7.
    var words: (UInt64, UInt64, UInt64, UInt64)

    /// The head before the first event: 32 zero bytes.
    public static let zero = ChainDigest(words: (0, 0, 0, 0))

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// Exactly 32 bytes, or nil.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var values: [UInt64] = [0, 0, 0, 0]
        for (index, byte) in bytes.enumerated() { values[index / 8] = values[index / 8] << 8 | UInt64(byte) }
        words = (values[0], values[1], values[2], values[3])
    }

    /// 64 hex digits (either case), or nil.
    public init?(hex text: some StringProtocol) {
        let digits = Array(text.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = 0
        while index < 64 {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes: bytes)
    }

    init(_ digest: SHA256.Digest) {
        words = digest.withUnsafeBytes { raw in
            (
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            )
        }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        appendBytes(to: &out)
        return out
    }

    func appendBytes(to out: inout [UInt8]) {
        var bigEndian = (words.0.bigEndian, words.1.bigEndian, words.2.bigEndian, words.3.bigEndian)
        withUnsafeBytes(of: &bigEndian) { out.append(contentsOf: $0) }
    }

    /// The first 4 bytes, big-endian: what a part stores per event.
    public var truncated: UInt32 { UInt32(truncatingIfNeeded: words.0 >> 32) }

    /// Lowercase hex, 64 digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    /// From SHA-256's eight state words (`CSHA256`'s output).
    init(state: HashChain.StateWords) {
        words = (
            UInt64(state.0) << 32 | UInt64(state.1), UInt64(state.2) << 32 | UInt64(state.3),
            UInt64(state.4) << 32 | UInt64(state.5), UInt64(state.6) << 32 | UInt64(state.7)
        )
    }

    /// As SHA-256's eight state words (`CSHA256`'s input).
    var state: HashChain.StateWords {
        (
            UInt32(truncatingIfNeeded: words.0 >> 32), UInt32(truncatingIfNeeded: words.0),
            UInt32(truncatingIfNeeded: words.1 >> 32), UInt32(truncatingIfNeeded: words.1),
            UInt32(truncatingIfNeeded: words.2 >> 32), UInt32(truncatingIfNeeded: words.2),
            UInt32(truncatingIfNeeded: words.3 >> 32), UInt32(truncatingIfNeeded: words.3)
        )
    }

    public static func == (a: ChainDigest, b: ChainDigest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

private func hexValue(_ digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// The hash chain over events in seq order (README, "Tamper evidence"):
///
///     leaf(e)  = SHA-256(0x00 || canonical(e))
///     head(0)  = 32 zero bytes
///     head(s)  = SHA-256(0x01 || head(s-1) || leaf(event s))
///
/// The prefixes keep a leaf from ever being mistaken for a head (RFC 6962's
/// domain separation).
public enum HashChain {
    /// The leaf hash of an event's canonical bytes.
    public static func leaf(canonical bytes: [UInt8]) -> ChainDigest {
        bytes.withUnsafeBytes { leaf(canonical: $0) }
    }

    /// The same, from bytes in place.
    public static func leaf(canonical bytes: UnsafeRawBufferPointer) -> ChainDigest {
        withUnsafeBytes(of: leafPrefix) { sha256($0, bytes) }
    }

    /// The leaf hashes of two events' canonical bytes, computed side by side
    /// (a flush hashes its rows in pairs): the same digests as two `leaf`
    /// calls, in about 70% of their time with the SHA extensions
    /// (`vigil-bench chain`).
    public static func leaves(canonical first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> (ChainDigest, ChainDigest) {
        guard hardware else { return (leaf(canonical: first), leaf(canonical: second)) }
        var stateA: StateWords = (0, 0, 0, 0, 0, 0, 0, 0)
        var stateB: StateWords = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &stateA) { a in
            withUnsafeMutableBytes(of: &stateB) { b in
                vigil_sha256_hardware_pair(
                    leafPrefix, first.baseAddress?.assumingMemoryBound(to: UInt8.self), first.count,
                    second.baseAddress?.assumingMemoryBound(to: UInt8.self), second.count,
                    a.baseAddress!.assumingMemoryBound(to: UInt32.self), b.baseAddress!.assumingMemoryBound(to: UInt32.self))
            }
        }
        return (ChainDigest(state: stateA), ChainDigest(state: stateB))
    }

    /// The leaf hash of an event as the store returns it.
    public static func leaf(of event: AuditEvent) -> ChainDigest {
        leaf(canonical: CanonicalEvent.bytes(of: event))
    }

    /// The same, encoding into `scratch` (reused from event to event).
    public static func leaf(of event: AuditEvent, scratch: inout [UInt8]) -> ChainDigest {
        CanonicalEvent.write(event, into: &scratch)
        return leaf(canonical: scratch)
    }

    /// The head after appending `leaf` to `head`.
    public static func next(_ head: ChainDigest, _ leaf: ChainDigest) -> ChainDigest {
        if hardware {
            // The two blocks laid out in C from the digests' words.
            var headState = head.state
            var leafState = leaf.state
            var state: StateWords = (0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeBytes(of: &headState) { head in
                withUnsafeBytes(of: &leafState) { leaf in
                    withUnsafeMutableBytes(of: &state) { out in
                        vigil_sha256_hardware_digests(
                            headPrefix, head.baseAddress!.assumingMemoryBound(to: UInt32.self),
                            leaf.baseAddress!.assumingMemoryBound(to: UInt32.self), out.baseAddress!.assumingMemoryBound(to: UInt32.self))
                    }
                }
            }
            return ChainDigest(state: state)
        }
        let words = (
            head.words.0.bigEndian, head.words.1.bigEndian, head.words.2.bigEndian, head.words.3.bigEndian,
            leaf.words.0.bigEndian, leaf.words.1.bigEndian, leaf.words.2.bigEndian, leaf.words.3.bigEndian
        )
        return withUnsafeBytes(of: headPrefix) { prefix in withUnsafeBytes(of: words) { sha256(prefix, $0) } }
    }

    /// The head after appending every leaf in order.
    public static func extend(_ head: ChainDigest, with leaves: some Sequence<ChainDigest>) -> ChainDigest {
        var head = head
        for leaf in leaves { head = next(head, leaf) }
        return head
    }

    /// SHA-256's state, eight words (the digest once done).
    typealias StateWords = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

    private static let leafPrefix: UInt8 = 0x00
    private static let headPrefix: UInt8 = 0x01

    /// Whether the CPU has the SHA extensions (asked once).
    static let hardware = vigil_sha256_hardware_available() != 0

    /// SHA-256 of `first` followed by `second`: by the SHA extensions when the
    /// CPU has them (`CSHA256`, one call per hash, no allocation), otherwise
    /// by swift-crypto (`softwareSHA256`; the tests hold the two equal).
    static func sha256(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> ChainDigest {
        guard hardware else { return softwareSHA256(first, second) }
        var state: StateWords = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &state) { out in
            vigil_sha256_hardware(
                first.baseAddress?.assumingMemoryBound(to: UInt8.self), first.count,
                second.baseAddress?.assumingMemoryBound(to: UInt8.self), second.count,
                out.baseAddress!.assumingMemoryBound(to: UInt32.self))
        }
        return ChainDigest(state: state)
    }

    /// `sha256` by swift-crypto, whatever the CPU.
    static func softwareSHA256(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> ChainDigest {
        var hasher = SHA256()
        hasher.update(bufferPointer: first)
        hasher.update(bufferPointer: second)
        return ChainDigest(hasher.finalize())
    }
}
