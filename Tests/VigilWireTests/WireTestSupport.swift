import NIOCore
import Testing
import VigilCore
import VigilProto
import VigilWire

/// Drives a `FrameDecoder` the way `ByteToMessageHandler` does: bytes are
/// appended to one cumulation buffer, then `decode` is called until it
/// returns nil.
struct DecoderDriver {
    var decoder: FrameDecoder
    var buffer = ByteBuffer()

    init(maxFrameSize: Int = 1 << 20, expectPreface: Bool = true) {
        decoder = FrameDecoder(maxFrameSize: maxFrameSize, expectPreface: expectPreface)
    }

    mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [WireInbound] {
        buffer.writeBytes(bytes)
        return try drain()
    }

    mutating func feed(_ bytes: ByteBuffer) throws -> [WireInbound] {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
        return try drain()
    }

    mutating func drain() throws -> [WireInbound] {
        var out: [WireInbound] = []
        while let item = try decoder.decode(buffer: &buffer) {
            out.append(item)
        }
        buffer.discardReadBytes()
        return out
    }
}

/// The bytes of `items`, written by `WireEncoder`.
func encode(_ items: [WireOutbound]) throws -> [UInt8] {
    let encoder = WireEncoder()
    var out = ByteBuffer()
    for item in items {
        try encoder.encode(data: item, out: &out)
    }
    return Array(out.readableBytesView)
}

/// Bytes of a frame header (plus optional payload) built by hand.
func rawFrame(length: UInt32, type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8] = []) -> [UInt8] {
    var buffer = ByteBuffer()
    buffer.writeInteger(length)
    buffer.writeInteger(type)
    buffer.writeInteger(flags)
    buffer.writeInteger(stream)
    buffer.writeBytes(payload)
    return Array(buffer.readableBytesView)
}

let vigilPreface: [UInt8] = Array(Preface.current.bytes.readableBytesView)

/// A deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    var bytes = [UInt8]()
    bytes.reserveCapacity(count + 8)
    while bytes.count < count {
        withUnsafeBytes(of: generator.next()) { bytes.append(contentsOf: $0) }
    }
    return Array(bytes.prefix(count))
}

/// A frame of every type, each with a payload its type carries.
func sampleFrames() -> [Frame] {
    var hello = Vigil_V1_Hello()
    hello.majorVersion = 1
    hello.clientName = "vigil-tests"
    hello.authToken = "vgl_secret"
    hello.maxFrameSize = 1 << 20
    var headers = Vigil_V1_CallHeaders()
    headers.method = AuditMethod.ingest.rawValue
    headers.timeoutMs = 5_000
    headers.initialWindow = 0
    headers.metadata = ["request-id": "r-1"]
    var status = Vigil_V1_Status()
    status.code = StatusCode.invalidArgument.rawValue
    status.message = "bad"
    status.eventErrors = [.init(index: 1, field: "tenant", reason: "is required")]
    var cancel = Vigil_V1_Cancel()
    cancel.reason = "user pressed ^C"
    var window = Vigil_V1_Window()
    window.messages = 8
    var ping = Vigil_V1_Ping()
    ping.opaque = 0x0123_4567_89ab_cdef
    var goAway = Vigil_V1_GoAway()
    goAway.lastStreamID = 7
    goAway.code = StatusCode.unavailable.rawValue
    goAway.message = "shutting down"
    return [
        Frame(type: .hello, streamID: 0, message: hello),
        Frame(type: .headers, streamID: 1, message: headers),
        Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: randomBytes(300, seed: 1))),
        Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer(string: "last")),
        Frame(type: .message, flags: [.endStream, .compressed], streamID: 3,
              payload: MessageCompression.compress(ByteBuffer(string: String(repeating: "audit ", count: 50)))),
        Frame(type: .message, streamID: 5),  // empty payload
        Frame(type: .trailers, streamID: 1, message: status),
        Frame(type: .cancel, streamID: 3, message: cancel),
        Frame(type: .window, streamID: 5, message: window),
        Frame(type: .ping, streamID: 0, message: ping),
        Frame(type: .pong, streamID: 0, message: ping),
        Frame(type: .goAway, streamID: 0, message: goAway),
    ]
}

/// Expects `body` to throw a `VigilError` with `code`.
func expectVigilError(
    _ code: VigilError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected a VigilError \(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as VigilError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a VigilError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}
