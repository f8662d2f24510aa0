import Crypto
import Testing
@testable import VigilStorage

@Suite("SHA-256: the CPU's SHA extensions and swift-crypto agree")
struct SHA256Tests {
    private static func sha256(_ first: [UInt8], _ second: [UInt8]) -> ChainDigest {
        first.withUnsafeBytes { a in second.withUnsafeBytes { b in HashChain.sha256(a, b) } }
    }

    @Test("the standard test vectors (FIPS 180-2, NIST CAVS), split at every point")
    func testVectors() {
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
            ),
        ]
        for (message, expected) in vectors {
            let bytes = Array(message.utf8)
            for split in 0...bytes.count {
                let digest = Self.sha256(Array(bytes[..<split]), Array(bytes[split...]))
                #expect(digest.hex == expected, "'\(message)' split at \(split)")
            }
        }
        // One million 'a' (FIPS 180-2, appendix B.3): many whole blocks straight from the input.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(Self.sha256([], million).hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(Self.sha256(Array(million[..<1]), Array(million[1...])).hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("every length up to 300 bytes, every split of the first 130, and every alignment, give swift-crypto's digest")
    func agreesWithSwiftCrypto() {
        var rng = SplitMix64(seed: 256)
        let bytes = (0..<4_096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for length in 0...300 {
                for start in [0, 1, 7] {
                    let message = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    let splits = length <= 130 ? Array(0...length) : [0, 1, 55, 56, 63, 64, 65, length / 2, length]
                    for split in splits {
                        let first = UnsafeRawBufferPointer(rebasing: message[..<split])
                        let second = UnsafeRawBufferPointer(rebasing: message[split...])
                        let digest = HashChain.sha256(first, second)
                        #expect(digest == HashChain.softwareSHA256(first, second), "length \(length), start \(start), split \(split)")
                        #expect(digest.bytes == Array(SHA256.hash(data: Array(message))), "length \(length), split \(split)")
                    }
                }
            }
            // A long message, and both parts longer than a block.
            let first = UnsafeRawBufferPointer(rebasing: all[..<1_000])
            let second = UnsafeRawBufferPointer(rebasing: all[1_000...])
            #expect(HashChain.sha256(first, second) == HashChain.softwareSHA256(first, second))
        }
        print("SHA-256 by the CPU's SHA extensions: \(HashChain.hardware)")
    }

    @Test("two leaves hashed side by side are the leaves hashed one at a time, for every pair of lengths around the block edges")
    func leavesInPairs() {
        var rng = SplitMix64(seed: 512)
        let bytes = (0..<4_096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        // Around 0, 55/56 (one block or two for the tail), 63/64 (the first whole block) and 119/120, 127/128, then longer.
        let lengths = Array(0...140) + [190, 191, 247, 248, 255, 256, 389, 1_000, 2_000]
        bytes.withUnsafeBytes { all in
            for first in lengths {
                for second in lengths where (first + second) % 5 == 0 || second == first || second == 0 {
                    for start in [0, 3] {
                        let a = UnsafeRawBufferPointer(rebasing: all[start..<start + first])
                        let b = UnsafeRawBufferPointer(rebasing: all[2_000 + start..<2_000 + start + second])
                        let pair = HashChain.leaves(canonical: a, b)
                        let expected = [UInt8(0)].withUnsafeBytes { prefix in (HashChain.softwareSHA256(prefix, a), HashChain.softwareSHA256(prefix, b)) }
                        #expect(pair.0 == expected.0 && pair.1 == expected.1, "lengths \(first) and \(second), start \(start)")
                    }
                }
            }
        }
    }

    @Test("leaves and chain steps are the same through either implementation")
    func chainThroughEither() {
        var rng = SplitMix64(seed: 7)
        var head = ChainDigest.zero
        var softwareHead = ChainDigest.zero
        for length in stride(from: 0, to: 2_000, by: 37) {
            let canonical = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let leaf = HashChain.leaf(canonical: canonical)
            let softwareLeaf = canonical.withUnsafeBytes { bytes in [UInt8(0)].withUnsafeBytes { HashChain.softwareSHA256($0, bytes) } }
            #expect(leaf == softwareLeaf, "length \(length)")
            head = HashChain.next(head, leaf)
            softwareHead = Array(softwareHead.bytes + softwareLeaf.bytes).withUnsafeBytes { pair in
                [UInt8(1)].withUnsafeBytes { HashChain.softwareSHA256($0, pair) }
            }
            #expect(head == softwareHead, "after length \(length)")
        }
    }
}
