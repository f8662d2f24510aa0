import NIOCore

/// The type byte of a frame header.
public enum FrameType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Stream 0. Client: `Hello`; server: `Welcome`.
    case hello = 0x01
    /// Opens a call on a new odd stream id: `CallHeaders`.
    case headers = 0x02
    /// One request or response message.
    case message = 0x03
    /// Server: the call's final `Status`.
    case trailers = 0x04
    /// Either side abandons a call: `Cancel`.
    case cancel = 0x05
    /// Client: credit for more response messages on a streaming call: `Window`.
    case window = 0x06
    /// Stream 0: `Ping`, answered by `PONG` with the same payload.
    case ping = 0x07
    case pong = 0x08
    /// Stream 0: `GoAway`.
    case goAway = 0x09

    /// Frames about the connection travel on stream 0; frames about a call on its stream.
    public var isConnectionLevel: Bool {
        switch self {
        case .hello, .ping, .pong, .goAway: true
        case .headers, .message, .trailers, .cancel, .window: false
        }
    }

    /// Flag bits this frame type may carry; any other bit is a protocol error.
    public var allowedFlags: FrameFlags {
        self == .message ? [.endStream, .compressed] : []
    }

    public var description: String {
        switch self {
        case .hello: "HELLO"
        case .headers: "HEADERS"
        case .message: "MESSAGE"
        case .trailers: "TRAILERS"
        case .cancel: "CANCEL"
        case .window: "WINDOW"
        case .ping: "PING"
        case .pong: "PONG"
        case .goAway: "GOAWAY"
        }
    }
}

/// The flags byte of a frame header.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// On MESSAGE: the sender sends nothing more on this call (half-close).
    public static let endStream = FrameFlags(rawValue: 0x01)
    /// On MESSAGE: the payload is zlib-compressed (RFC 1950).
    public static let compressed = FrameFlags(rawValue: 0x02)
}

/// The 10-byte frame header: `u32 length`, `u8 type`, `u8 flags`, `u32 stream id`,
/// big-endian. `length` counts payload bytes only.
public struct FrameHeader: Sendable, Hashable {
    public static let size = 10

    public var length: UInt32
    /// The raw type byte; `type` is nil when this version does not know it.
    public var typeByte: UInt8
    public var flags: FrameFlags
    public var streamID: UInt32

    public var type: FrameType? { FrameType(rawValue: typeByte) }

    public init(length: UInt32, type: FrameType, flags: FrameFlags = [], streamID: UInt32) {
        self.init(length: length, typeByte: type.rawValue, flags: flags, streamID: streamID)
    }

    public init(length: UInt32, typeByte: UInt8, flags: FrameFlags, streamID: UInt32) {
        self.length = length
        self.typeByte = typeByte
        self.flags = flags
        self.streamID = streamID
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(length)
        buffer.writeInteger(typeByte)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(streamID)
    }

    /// Reads a header if 10 bytes are there; leaves the buffer alone otherwise.
    public static func read(from buffer: inout ByteBuffer) -> FrameHeader? {
        guard let (length, typeByte, flags, streamID) = buffer.readMultipleIntegers(as: (UInt32, UInt8, UInt8, UInt32).self)
        else { return nil }
        return FrameHeader(length: length, typeByte: typeByte, flags: FrameFlags(rawValue: flags), streamID: streamID)
    }
}

/// One whole frame.
public struct Frame: Sendable, Hashable, CustomStringConvertible {
    public var type: FrameType
    public var flags: FrameFlags
    public var streamID: UInt32
    public var payload: ByteBuffer

    public init(type: FrameType, flags: FrameFlags = [], streamID: UInt32, payload: ByteBuffer = ByteBuffer()) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.payload = payload
    }

    public var header: FrameHeader {
        FrameHeader(length: UInt32(payload.readableBytes), type: type, flags: flags, streamID: streamID)
    }

    public func write(to buffer: inout ByteBuffer) {
        header.write(to: &buffer)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    public var description: String {
        "\(type) stream=\(streamID) flags=0x\(String(flags.rawValue, radix: 16)) length=\(payload.readableBytes)"
    }
}
