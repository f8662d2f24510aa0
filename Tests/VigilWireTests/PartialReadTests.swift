import NIOCore
import Testing
import VigilCore
import VigilProto
import VigilWire

@Suite("Partial reads")
struct PartialReadTests {
    /// Preface, then frames of every type (one oversized, to check that
    /// skipping works across splits too).
    static let maxFrameSize = 512

    static func stream() throws -> (bytes: [UInt8], expected: [WireInbound]) {
        var frames = sampleFrames()
        let big = Frame(type: .message, streamID: 7, payload: ByteBuffer(bytes: randomBytes(maxFrameSize, seed: 9)))
        frames.append(big)
        var bytes = vigilPreface
        var expected: [WireInbound] = [.preface(.vigil(.current))]
        for frame in frames {
            bytes += try encode([.frame(frame)])
            expected.append(.frame(frame))
        }
        // An oversized frame (one byte over), then one more frame.
        let oversized = rawFrame(length: UInt32(maxFrameSize + 1), type: FrameType.message.rawValue, stream: 9, payload: randomBytes(maxFrameSize + 1, seed: 10))
        bytes += oversized
        expected.append(.oversized(FrameHeader(length: UInt32(maxFrameSize + 1), type: .message, streamID: 9)))
        let last = Frame(type: .cancel, streamID: 9)
        bytes += try encode([.frame(last)])
        expected.append(.frame(last))
        return (bytes, expected)
    }

    @Test("the stream decodes in one piece")
    func wholeStream() throws {
        let (bytes, expected) = try Self.stream()
        var driver = DecoderDriver(maxFrameSize: Self.maxFrameSize)
        #expect(try driver.feed(bytes) == expected)
        #expect(driver.buffer.readableBytes == 0)
    }

    @Test("split into two chunks at every byte position")
    func everySplit() throws {
        let (bytes, expected) = try Self.stream()
        var failures: [Int] = []
        for split in 0...bytes.count {
            var driver = DecoderDriver(maxFrameSize: Self.maxFrameSize)
            var decoded = try driver.feed(bytes[..<split])
            decoded += try driver.feed(bytes[split...])
            if decoded != expected || driver.buffer.readableBytes != 0 {
                failures.append(split)
            }
        }
        #expect(failures.isEmpty, "splits that decoded differently: \(failures.prefix(20))")
    }

    @Test("one byte at a time")
    func oneByteAtATime() throws {
        let (bytes, expected) = try Self.stream()
        var driver = DecoderDriver(maxFrameSize: Self.maxFrameSize)
        var decoded: [WireInbound] = []
        for byte in bytes {
            decoded += try driver.feed(CollectionOfOne(byte))
        }
        #expect(decoded == expected)
        #expect(driver.buffer.readableBytes == 0)
    }

    @Test("irregular chunk sizes, with a fresh buffer per read as a channel would deliver")
    func randomChunks() throws {
        let (bytes, expected) = try Self.stream()
        var generator = SplitMix64(seed: 42)
        for _ in 0..<50 {
            var driver = DecoderDriver(maxFrameSize: Self.maxFrameSize)
            var decoded: [WireInbound] = []
            var offset = 0
            while offset < bytes.count {
                let size = Int.random(in: 1...97, using: &generator)
                let end = min(bytes.count, offset + size)
                decoded += try driver.feed(bytes[offset..<end])
                offset = end
            }
            #expect(decoded == expected)
        }
    }

    @Test("a decoded payload stays intact while the decoder's buffer is reused")
    func decodedPayloadsAreStable() throws {
        let first = Frame(type: .message, streamID: 1, payload: ByteBuffer(string: "stable"))
        let second = Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: Array(repeating: 0xEE, count: 4_096)))
        let secondBytes = try encode([.frame(second)])
        var driver = DecoderDriver(expectPreface: false)
        let decoded = try driver.feed(try encode([.frame(first)]) + secondBytes.prefix(5))
        #expect(try driver.feed(secondBytes.dropFirst(5)) == [.frame(second)])
        #expect(decoded == [.frame(first)])
    }
}
