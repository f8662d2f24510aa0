import NIOCore
import Testing
import VigilCore
import VigilWire

@Suite("Protocol errors")
struct ProtocolErrorTests {
    /// Feeds a preface and then `frameBytes` to a fresh decoder.
    func decodeAfterPreface(_ frameBytes: [UInt8]) throws -> [WireInbound] {
        var driver = DecoderDriver()
        return try driver.feed(vigilPreface + frameBytes)
    }

    @Test("unknown frame types throw INVALID_ARGUMENT", arguments: [UInt8(0x7F), 0x00, 0x0A, 0xFF])
    func unknownType(typeByte: UInt8) {
        let bytes = rawFrame(length: 4, type: typeByte, stream: 1, payload: [1, 2, 3, 4])
        let error = #expect(throws: VigilError.self) {
            try decodeAfterPreface(bytes)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("unknown frame type") == true)
    }

    @Test("the header alone is enough to refuse: the payload need not have arrived")
    func refusedFromHeaderAlone() {
        var decoder = FrameDecoder(maxFrameSize: 1 << 20, expectPreface: false)
        var buffer = ByteBuffer(bytes: rawFrame(length: 1_000, type: 0x7F, stream: 1))
        let error = #expect(throws: VigilError.self) {
            try decoder.decode(buffer: &buffer)
        }
        #expect(error?.code == .invalidArgument)
    }

    struct FlagsCase: Sendable, CustomTestStringConvertible {
        var type: FrameType
        var flags: UInt8
        var testDescription: String { "\(type) flags 0x\(String(flags, radix: 16))" }
    }

    static let badFlags: [FlagsCase] =
        [FlagsCase(type: .headers, flags: 0x01), FlagsCase(type: .message, flags: 0x80), FlagsCase(type: .message, flags: 0x04),
         FlagsCase(type: .message, flags: 0x83), FlagsCase(type: .message, flags: 0xFF)]
        + FrameType.allCases.filter { $0 != .message }.flatMap { type in
            [0x01, 0x02, 0x40].map { FlagsCase(type: type, flags: $0) }
        }

    @Test("flags a type does not allow throw INVALID_ARGUMENT", arguments: badFlags)
    func disallowedFlags(_ flagsCase: FlagsCase) {
        let stream: UInt32 = flagsCase.type.isConnectionLevel ? 0 : 1
        let bytes = rawFrame(length: 0, type: flagsCase.type.rawValue, flags: flagsCase.flags, stream: stream)
        let error = #expect(throws: VigilError.self) {
            try decodeAfterPreface(bytes)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("flags") == true)
    }

    @Test("connection-level frames must be on stream 0", arguments: FrameType.allCases.filter(\.isConnectionLevel))
    func connectionFrameOnCallStream(type: FrameType) {
        for stream: UInt32 in [1, 2, 0xFFFF_FFFF] {
            let error = #expect(throws: VigilError.self) {
                try decodeAfterPreface(rawFrame(length: 0, type: type.rawValue, stream: stream))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("stream 0") == true)
        }
    }

    @Test("call frames must not be on stream 0", arguments: FrameType.allCases.filter { !$0.isConnectionLevel })
    func callFrameOnStreamZero(type: FrameType) {
        let error = #expect(throws: VigilError.self) {
            try decodeAfterPreface(rawFrame(length: 0, type: type.rawValue, stream: 0))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("stream 0") == true)
    }

    @Test("FrameDecoder.check accepts every valid header")
    func checkAcceptsValid() throws {
        for type in FrameType.allCases {
            let stream: UInt32 = type.isConnectionLevel ? 0 : 1
            try FrameDecoder.check(FrameHeader(length: 0, type: type, streamID: stream))
        }
        try FrameDecoder.check(FrameHeader(length: .max, type: .message, flags: [.endStream, .compressed], streamID: .max))
    }

    @Test("frames before the error are delivered; the error comes at the bad frame")
    func errorAfterGoodFrames() throws {
        let ping = Frame(type: .ping, streamID: 0, payload: ByteBuffer(bytes: [8, 1]))
        var driver = DecoderDriver()
        #expect(try driver.feed(vigilPreface + (try encode([.frame(ping)]))) == [.preface(.vigil(.current)), .frame(ping)])
        expectVigilError(.invalidArgument) {
            _ = try driver.feed(rawFrame(length: 0, type: FrameType.headers.rawValue, flags: 0x01, stream: 1))
        }
    }
}
