import NIOCore
import NIOEmbedded
import Testing
import VigilCore
import VigilWire

@Suite("FrameDecoder and WireEncoder in a channel pipeline")
struct ChannelPipelineTests {
    func makeDecodingChannel(maxFrameSize: Int = 1 << 20) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize)))
        return channel
    }

    func readAllInbound(_ channel: EmbeddedChannel) throws -> [WireInbound] {
        var out: [WireInbound] = []
        while let item = try channel.readInbound(as: WireInbound.self) {
            out.append(item)
        }
        return out
    }

    @Test("ByteToMessageHandler delivers the preface and every frame, in small reads")
    func decodeThroughHandler() throws {
        let channel = try makeDecodingChannel(maxFrameSize: 512)
        let frames = sampleFrames()
        var bytes = vigilPreface
        for frame in frames { bytes += try encode([.frame(frame)]) }
        bytes += rawFrame(length: 600, type: FrameType.message.rawValue, stream: 11, payload: Array(repeating: 0, count: 600))

        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 13)
            try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
        }
        let expected: [WireInbound] = [.preface(.vigil(.current))] + frames.map { .frame($0) }
            + [.oversized(FrameHeader(length: 600, type: .message, streamID: 11))]
        #expect(try readAllInbound(channel) == expected)
        #expect(try channel.finish().isClean)
    }

    @Test("a protocol error surfaces as the VigilError the decoder threw")
    func errorThroughHandler() throws {
        let channel = try makeDecodingChannel()
        try channel.writeInbound(ByteBuffer(bytes: vigilPreface))
        #expect(try readAllInbound(channel) == [.preface(.vigil(.current))])
        let error = #expect(throws: VigilError.self) {
            try channel.writeInbound(ByteBuffer(bytes: rawFrame(length: 0, type: 0x7F, stream: 1)))
        }
        #expect(error?.code == .invalidArgument)
        _ = try? channel.finish()
    }

    @Test("after an HTTP request line nothing more is delivered")
    func httpThroughHandler() throws {
        let channel = try makeDecodingChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: localhost:7070\r\n"))
        try channel.writeInbound(ByteBuffer(bytes: vigilPreface + (try encode([.frame(Frame(type: .ping, streamID: 0))]))))
        #expect(try readAllInbound(channel) == [.preface(.http)])
        #expect(try channel.finish().isClean)
    }

    @Test("MessageToByteHandler(WireEncoder) output decodes back to what was written")
    func encoderToDecoder() throws {
        let encoding = EmbeddedChannel()
        try encoding.pipeline.syncOperations.addHandler(MessageToByteHandler(WireEncoder()))
        let frames = sampleFrames()
        try encoding.writeOutbound(WireOutbound.preface(.current))
        for frame in frames {
            try encoding.writeOutbound(WireOutbound.frame(frame))
        }
        let decoding = try makeDecodingChannel()
        while let bytes = try encoding.readOutbound(as: ByteBuffer.self) {
            try decoding.writeInbound(bytes)
        }
        #expect(try readAllInbound(decoding) == [.preface(.vigil(.current))] + frames.map { .frame($0) })
        #expect(try encoding.finish().isClean)
        #expect(try decoding.finish().isClean)
    }
}
