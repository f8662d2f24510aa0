import NIOCore
import Testing
import VigilCore
import VigilWire

@Suite("MessageCompression")
struct CompressionTests {
    static let mebibyte = 1 << 20

    struct Input: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var testDescription: String { name }
    }

    static let inputs: [Input] = [
        Input(name: "empty", bytes: []),
        Input(name: "one byte", bytes: [0x42]),
        Input(name: "small text", bytes: Array("{\"tenant\":\"acme\",\"action\":\"user.create\"}".utf8)),
        Input(name: "64 KiB repetitive", bytes: Array(String(repeating: "audit event ", count: 5_462).utf8.prefix(65_536))),
        Input(name: "1 MiB random", bytes: randomBytes(mebibyte, seed: 2024)),
        Input(name: "1 MiB zeros", bytes: Array(repeating: 0, count: mebibyte)),
    ]

    @Test("compress/decompress round trip", arguments: inputs)
    func roundTrip(_ input: Input) throws {
        let compressed = MessageCompression.compress(ByteBuffer(bytes: input.bytes))
        #expect(compressed.readableBytes > 0)
        #expect(compressed.getInteger(at: compressed.readerIndex, as: UInt8.self).map { $0 & 0x0F } == 8, "zlib header: deflate")
        let restored = try MessageCompression.decompress(compressed, maxSize: 4 * Self.mebibyte)
        #expect(restored == ByteBuffer(bytes: input.bytes))
    }

    @Test("a message exactly maxSize long is accepted", arguments: inputs.filter { !$0.bytes.isEmpty })
    func exactlyMaxSize(_ input: Input) throws {
        let compressed = MessageCompression.compress(ByteBuffer(bytes: input.bytes))
        let restored = try MessageCompression.decompress(compressed, maxSize: input.bytes.count)
        #expect(restored.readableBytes == input.bytes.count)
        #expect(restored == ByteBuffer(bytes: input.bytes))
    }

    @Test("an empty message is accepted with maxSize 0")
    func emptyMessageWithZeroLimit() throws {
        let compressed = MessageCompression.compress(ByteBuffer())
        #expect(try MessageCompression.decompress(compressed, maxSize: 1).readableBytes == 0)
        let restored = try MessageCompression.decompress(compressed, maxSize: 0)
        #expect(restored.readableBytes == 0)
    }

    @Test("one byte over maxSize is refused with RESOURCE_EXHAUSTED", arguments: inputs.filter { !$0.bytes.isEmpty })
    func oneByteOverMaxSize(_ input: Input) {
        let compressed = MessageCompression.compress(ByteBuffer(bytes: input.bytes))
        expectVigilError(.resourceExhausted) {
            _ = try MessageCompression.decompress(compressed, maxSize: input.bytes.count - 1)
        }
    }

    @Test("a zip bomb (50 MiB of zeros) is refused against a 1 MiB limit")
    func zipBomb() {
        let bomb = MessageCompression.compress(ByteBuffer(repeating: 0, count: 50 * Self.mebibyte))
        #expect(bomb.readableBytes < 100_000, "50 MiB of zeros compress to \(bomb.readableBytes) bytes")
        expectVigilError(.resourceExhausted) {
            _ = try MessageCompression.decompress(bomb, maxSize: Self.mebibyte)
        }
        expectVigilError(.resourceExhausted) {
            _ = try MessageCompression.decompress(bomb, maxSize: 0)
        }
    }

    @Test(
        "bytes that are not zlib are refused with INVALID_ARGUMENT",
        arguments: [
            Array("this is not zlib at all".utf8), [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00],  // gzip
            [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF], [0x78, 0x00], [0x00], [],
        ] as [[UInt8]])
    func notZlib(bytes: [UInt8]) {
        expectVigilError(.invalidArgument) {
            _ = try MessageCompression.decompress(ByteBuffer(bytes: bytes), maxSize: Self.mebibyte)
        }
    }

    @Test("a stream with a corrupted checksum is refused")
    func corruptedChecksum() {
        var compressed = Array(MessageCompression.compress(ByteBuffer(string: "hello, audit log")).readableBytesView)
        compressed[compressed.count - 1] ^= 0xFF
        expectVigilError(.invalidArgument) {
            _ = try MessageCompression.decompress(ByteBuffer(bytes: compressed), maxSize: Self.mebibyte)
        }
    }

    @Test("every truncation of a zlib stream is refused with INVALID_ARGUMENT")
    func truncated() {
        let original = Array(String(repeating: "truncate me ", count: 40).utf8)
        let compressed = Array(MessageCompression.compress(ByteBuffer(bytes: original)).readableBytesView)
        var wrongOutcomes: [Int] = []
        for length in 0..<compressed.count {
            do {
                _ = try MessageCompression.decompress(ByteBuffer(bytes: compressed.prefix(length)), maxSize: Self.mebibyte)
                wrongOutcomes.append(length)
            } catch {
                if error.code != .invalidArgument { wrongOutcomes.append(length) }
            }
        }
        #expect(wrongOutcomes.isEmpty, "prefix lengths not refused as INVALID_ARGUMENT: \(wrongOutcomes)")
    }

    @Test("a large stream cut short is refused, even when the cut falls on the output limit")
    func truncatedLarge() {
        let original = randomBytes(Self.mebibyte, seed: 5)
        let compressed = MessageCompression.compress(ByteBuffer(bytes: original))
        for cut in [1, 4, 5, 100, compressed.readableBytes / 2] {
            expectVigilError(.invalidArgument) {
                _ = try MessageCompression.decompress(compressed.getSlice(at: 0, length: compressed.readableBytes - cut)!, maxSize: 2 * Self.mebibyte)
            }
        }
    }

    @Test("bytes after the end of the zlib stream are refused", arguments: [[UInt8](arrayLiteral: 0), [0xFF, 0xFF], Array("trailing".utf8)])
    func trailingGarbage(garbage: [UInt8]) {
        var compressed = MessageCompression.compress(ByteBuffer(string: "hello"))
        compressed.writeBytes(garbage)
        expectVigilError(.invalidArgument) {
            _ = try MessageCompression.decompress(compressed, maxSize: Self.mebibyte)
        }
    }

    @Test("two concatenated zlib streams are refused")
    func twoStreams() {
        var compressed = MessageCompression.compress(ByteBuffer(string: "one"))
        var second = MessageCompression.compress(ByteBuffer(string: "two"))
        compressed.writeBuffer(&second)
        expectVigilError(.invalidArgument) {
            _ = try MessageCompression.decompress(compressed, maxSize: Self.mebibyte)
        }
    }

    @Test("decompress reads only the readable bytes of a slice")
    func slice() throws {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        var compressed = MessageCompression.compress(ByteBuffer(string: "sliced"))
        buffer.writeBuffer(&compressed)
        buffer.moveReaderIndex(forwardBy: 3)
        #expect(try MessageCompression.decompress(buffer, maxSize: 100) == ByteBuffer(string: "sliced"))
    }

    @Test("Frame.messagePayload inflates COMPRESSED payloads only")
    func messagePayload() throws {
        let text = ByteBuffer(string: String(repeating: "payload ", count: 100))
        let compressed = Frame(type: .message, flags: [.compressed, .endStream], streamID: 1, payload: MessageCompression.compress(text))
        #expect(try compressed.messagePayload(maxMessageSize: Self.mebibyte) == text)
        expectVigilError(.resourceExhausted) {
            _ = try compressed.messagePayload(maxMessageSize: 10)
        }
        let plain = Frame(type: .message, flags: .endStream, streamID: 1, payload: text)
        #expect(try plain.messagePayload(maxMessageSize: 10) == text, "the limit applies to inflation only")

        let notZlib = Frame(type: .message, flags: .compressed, streamID: 1, payload: text)
        expectVigilError(.invalidArgument) {
            _ = try notZlib.messagePayload(maxMessageSize: Self.mebibyte)
        }
    }
}
