import NIOCore
import Testing
import VigilCore
import VigilWire

@Suite("Oversized frames")
struct OversizedFrameTests {
    static let mebibyte = 1 << 20

    @Test("a 0xFFFFFFF0-byte frame is reported from its 10 header bytes, then skipped as it arrives")
    func hugeDeclaredLength() throws {
        let length: UInt32 = 0xFFFF_FFF0
        var decoder = FrameDecoder(maxFrameSize: Self.mebibyte)
        var buffer = ByteBuffer(bytes: vigilPreface + rawFrame(length: length, type: FrameType.message.rawValue, flags: 0x01, stream: 5))
        #expect(try decoder.decode(buffer: &buffer) == .preface(.vigil(.current)))
        let header = FrameHeader(length: length, type: .message, flags: .endStream, streamID: 5)
        #expect(try decoder.decode(buffer: &buffer) == .oversized(header))
        #expect(buffer.readableBytes == 0, "the header is consumed; nothing waits for the payload")
        #expect(try decoder.decode(buffer: &buffer) == nil)

        // Feed the whole declared payload, 1 MiB per read. The chunks share one
        // storage (copy-on-write), so this costs no copying: the decoder only
        // moves reader indices.
        let chunk = ByteBuffer(repeating: 0xAB, count: Self.mebibyte)
        var remaining = Int(length)
        var allConsumed = true
        var anythingDecoded = false
        while remaining > Self.mebibyte {
            var read = chunk
            if try decoder.decode(buffer: &read) != nil { anythingDecoded = true }
            if read.readableBytes != 0 { allConsumed = false }
            remaining -= Self.mebibyte
        }
        #expect(allConsumed)
        #expect(!anythingDecoded)
        #expect(remaining == 1_048_560)

        // The last payload bytes and the next frame arrive in one read.
        let next = Frame(type: .message, flags: .endStream, streamID: 7, payload: ByteBuffer(string: "after"))
        var last = ByteBuffer(repeating: 0xAB, count: remaining)
        next.write(to: &last)
        #expect(try decoder.decode(buffer: &last) == .frame(next))
        #expect(try decoder.decode(buffer: &last) == nil)
        #expect(last.readableBytes == 0)
    }

    @Test("only the declared length is skipped, however the bytes are split", arguments: [1, 2, 3, 7, 10, 99, 100, 101, 500])
    func skipsExactly(chunkSize: Int) throws {
        let declared = 100
        let next = Frame(type: .window, streamID: 3, payload: ByteBuffer(bytes: [0x08, 0x08]))
        var bytes = rawFrame(length: UInt32(declared), type: FrameType.message.rawValue, stream: 3)
        bytes += Array(repeating: 0x03, count: declared)  // looks like headers of type MESSAGE: must not be parsed
        bytes += try encode([.frame(next)])
        bytes += try encode([.frame(next)])

        var driver = DecoderDriver(maxFrameSize: 16, expectPreface: false)
        var decoded: [WireInbound] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkSize)
            decoded += try driver.feed(bytes[offset..<end])
            offset = end
            if offset == FrameHeader.size {
                #expect(decoded == [.oversized(FrameHeader(length: UInt32(declared), type: .message, streamID: 3))])
            }
        }
        #expect(decoded == [.oversized(FrameHeader(length: UInt32(declared), type: .message, streamID: 3)), .frame(next), .frame(next)])
        #expect(driver.buffer.readableBytes == 0)
    }

    @Test("the oversized header is still checked first: a bad header throws instead")
    func headerCheckedBeforeSize() {
        var driver = DecoderDriver(maxFrameSize: 16, expectPreface: false)
        expectVigilError(.invalidArgument) {
            _ = try driver.feed(rawFrame(length: 1_000_000, type: FrameType.message.rawValue, stream: 0))
        }
    }

    @Test("two oversized frames in a row")
    func twoInARow() throws {
        var bytes = rawFrame(length: 20, type: FrameType.message.rawValue, stream: 1, payload: Array(repeating: 1, count: 20))
        bytes += rawFrame(length: 17, type: FrameType.trailers.rawValue, stream: 1, payload: Array(repeating: 2, count: 17))
        bytes += rawFrame(length: 16, type: FrameType.trailers.rawValue, stream: 3, payload: Array(repeating: 3, count: 16))
        var driver = DecoderDriver(maxFrameSize: 16, expectPreface: false)
        let decoded = try driver.feed(bytes)
        #expect(decoded == [
            .oversized(FrameHeader(length: 20, type: .message, streamID: 1)),
            .oversized(FrameHeader(length: 17, type: .trailers, streamID: 1)),
            .frame(Frame(type: .trailers, streamID: 3, payload: ByteBuffer(bytes: Array(repeating: 3, count: 16)))),
        ])
    }
}
