import NIOCore
import Testing
import VigilCore
import VigilProto
import VigilWire

@Suite("Frame codec")
struct FrameCodecTests {
    static func frame(of type: FrameType, flags: FrameFlags = []) -> Frame {
        let streamID: UInt32 = type.isConnectionLevel ? 0 : 0x7FFF_FFFF
        return Frame(type: type, flags: flags, streamID: streamID, payload: ByteBuffer(string: "payload of \(type)"))
    }

    @Test("every frame type round trips through WireEncoder and FrameDecoder", arguments: FrameType.allCases)
    func roundTripEveryType(type: FrameType) throws {
        let frame = Self.frame(of: type)
        let bytes = try encode([.preface(.current), .frame(frame)])
        var driver = DecoderDriver()
        let decoded = try driver.feed(bytes)
        #expect(decoded == [.preface(.vigil(.current)), .frame(frame)])
        #expect(driver.buffer.readableBytes == 0)
    }

    @Test("every frame type round trips through Frame.write, without a preface", arguments: FrameType.allCases)
    func roundTripFrameWrite(type: FrameType) throws {
        let frame = Self.frame(of: type)
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        #expect(buffer.readableBytes == FrameHeader.size + frame.payload.readableBytes)
        var decoder = FrameDecoder(maxFrameSize: 1 << 20, expectPreface: false)
        #expect(try decoder.decode(buffer: &buffer) == .frame(frame))
        #expect(try decoder.decode(buffer: &buffer) == nil)
    }

    @Test(
        "MESSAGE carries END_STREAM and COMPRESSED in any combination",
        arguments: [FrameFlags(), .endStream, .compressed, [.endStream, .compressed]])
    func messageFlags(flags: FrameFlags) throws {
        let frame = Self.frame(of: .message, flags: flags)
        var driver = DecoderDriver(expectPreface: false)
        let decoded = try driver.feed(try encode([.frame(frame)]))
        #expect(decoded == [.frame(frame)])
        guard case .frame(let got) = decoded.first else { return }
        #expect(got.flags == flags)
        #expect(got.flags.contains(.endStream) == flags.contains(.endStream))
        #expect(got.flags.contains(.compressed) == flags.contains(.compressed))
    }

    @Test("the header is u32 length, u8 type, u8 flags, u32 stream id, big-endian")
    func headerLayout() throws {
        let frame = Frame(type: .message, flags: [.endStream, .compressed], streamID: 0x0102_0304, payload: ByteBuffer(bytes: [0xAA, 0xBB, 0xCC]))
        #expect(try encode([.frame(frame)]) == [0, 0, 0, 3, 0x03, 0x03, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB, 0xCC])
        #expect(frame.header == FrameHeader(length: 3, type: .message, flags: [.endStream, .compressed], streamID: 0x0102_0304))

        var buffer = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xF0, 0x7F, 0x80, 0x80, 0, 0, 1, 0x42])
        let header = try #require(FrameHeader.read(from: &buffer))
        #expect(header.length == 0xFFFF_FFF0)
        #expect(header.typeByte == 0x7F)
        #expect(header.type == nil)
        #expect(header.flags.rawValue == 0x80)
        #expect(header.streamID == 0x8000_0001)
        #expect(buffer.readableBytes == 1)

        var short = ByteBuffer(bytes: [0, 0, 0, 0, 1, 0, 0, 0, 0])
        #expect(FrameHeader.read(from: &short) == nil)
        #expect(short.readableBytes == 9, "a short header leaves the buffer alone")
    }

    @Test("frame type bytes are the protocol's")
    func typeBytes() {
        #expect(FrameType.allCases.map(\.rawValue) == Array(1...9))
        #expect(FrameType.allCases.filter(\.isConnectionLevel) == [.hello, .ping, .pong, .goAway])
        #expect(FrameType.allCases.map(\.description) == ["HELLO", "HEADERS", "MESSAGE", "TRAILERS", "CANCEL", "WINDOW", "PING", "PONG", "GOAWAY"])
        #expect(FrameFlags.endStream.rawValue == 0x01)
        #expect(FrameFlags.compressed.rawValue == 0x02)
    }

    @Test("a stream of sample frames of every kind round trips")
    func sampleStream() throws {
        let frames = sampleFrames()
        #expect(Set(frames.map(\.type)) == Set(FrameType.allCases))
        let bytes = try encode([.preface(.current)] + frames.map { .frame($0) })
        var driver = DecoderDriver()
        #expect(try driver.feed(bytes) == [.preface(.vigil(.current))] + frames.map { .frame($0) })
    }

    @Test("WireEncoder writes raw bytes verbatim")
    func rawOutbound() throws {
        let refusal = Preface.httpRefusal
        #expect(try encode([.raw(ByteBuffer(string: refusal))]) == Array(refusal.utf8))
        #expect(refusal.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        // Content-Length matches the body.
        let parts = refusal.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 2)
        #expect(refusal.contains("Content-Length: \(parts[1].utf8.count)\r\n"))
    }

    @Test("a frame whose payload has not fully arrived waits without consuming")
    func incompletePayload() throws {
        let frame = Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: Array(repeating: 7, count: 100)))
        let bytes = try encode([.frame(frame)])
        var decoder = FrameDecoder(maxFrameSize: 1 << 20, expectPreface: false)
        var buffer = ByteBuffer(bytes: bytes.prefix(60))
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 60, "the header is read again once the payload is there")
        buffer.writeBytes(bytes.dropFirst(60))
        #expect(try decoder.decode(buffer: &buffer) == .frame(frame))
    }

    @Test("a frame exactly maxFrameSize long is delivered, not oversized")
    func exactlyMaxFrameSize() throws {
        let frame = Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: Array(repeating: 1, count: 64)))
        var driver = DecoderDriver(maxFrameSize: 64, expectPreface: false)
        #expect(try driver.feed(try encode([.frame(frame)])) == [.frame(frame)])
    }
}
