import NIOCore
import VigilCore

/// What the decoder reads off a connection.
public enum WireInbound: Sendable, Hashable {
    /// The peer's first 8 bytes.
    case preface(Preface.Classification)
    case frame(Frame)
    /// A frame whose declared length is over the limit. Its payload is skipped
    /// as it arrives, never buffered; the header says which call it was for.
    case oversized(FrameHeader)
}

/// Splits a byte stream into a preface and then frames. The length in each
/// header is checked against `maxFrameSize` before any payload is buffered.
///
/// Protocol violations that make the rest of the stream meaningless (an unknown
/// frame type, flags the type does not allow, a frame on the wrong stream)
/// throw a `VigilError`; the connection then sends GOAWAY and closes.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = WireInbound

    private enum State {
        case awaitingPreface
        case frames
        /// Skipping the payload of an oversized frame: bytes still to skip.
        case discarding(remaining: Int)
        /// The preface was not Vigil's: everything after it is ignored.
        case rejected
    }

    public let maxFrameSize: Int
    private var state: State

    /// - Parameter expectPreface: false for a decoder placed after the preface was read.
    public init(maxFrameSize: Int, expectPreface: Bool = true) {
        self.maxFrameSize = maxFrameSize
        self.state = expectPreface ? .awaitingPreface : .frames
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> WireInbound? {
        while true {
            switch state {
            case .awaitingPreface:
                guard let bytes = buffer.readBytes(length: Preface.size) else { return nil }
                let classification = Preface.classify(bytes)
                if case .vigil = classification { state = .frames } else { state = .rejected }
                return .preface(classification)

            case .rejected:
                buffer.moveReaderIndex(to: buffer.writerIndex)
                return nil

            case .discarding(let remaining):
                let skip = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skip)
                if skip < remaining {
                    state = .discarding(remaining: remaining - skip)
                    return nil
                }
                state = .frames
                continue

            case .frames:
                guard buffer.readableBytes >= FrameHeader.size else { return nil }
                let start = buffer.readerIndex
                let header = FrameHeader.read(from: &buffer)!
                try Self.check(header)
                if Int(header.length) > maxFrameSize {
                    state = .discarding(remaining: Int(header.length))
                    return .oversized(header)
                }
                guard let payload = buffer.readSlice(length: Int(header.length)) else {
                    buffer.moveReaderIndex(to: start)
                    return nil
                }
                return .frame(Frame(type: header.type!, flags: header.flags, streamID: header.streamID, payload: payload))
            }
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> WireInbound? {
        try decode(buffer: &buffer)
    }

    /// Checks what a header alone can show to be wrong.
    public static func check(_ header: FrameHeader) throws(VigilError) {
        guard let type = header.type else {
            throw VigilError(.invalidArgument, "unknown frame type 0x\(String(header.typeByte, radix: 16))")
        }
        let unknownFlags = header.flags.subtracting(type.allowedFlags)
        guard unknownFlags.isEmpty else {
            throw VigilError(.invalidArgument, "\(type) frame carries flags 0x\(String(unknownFlags.rawValue, radix: 16)) that it does not allow")
        }
        if type.isConnectionLevel && header.streamID != 0 {
            throw VigilError(.invalidArgument, "\(type) frame must be on stream 0, not stream \(header.streamID)")
        }
        if !type.isConnectionLevel && header.streamID == 0 {
            throw VigilError(.invalidArgument, "\(type) frame must be on a call's stream, not stream 0")
        }
    }
}

/// What goes out on a connection.
public enum WireOutbound: Sendable, Hashable {
    case preface(Preface)
    case frame(Frame)
    /// Raw bytes: the HTTP refusal, or frames already written back to back
    /// (a streaming call's batch of messages, sent as one write).
    case raw(ByteBuffer)
}

/// Writes prefaces and frames.
public struct WireEncoder: MessageToByteEncoder {
    public typealias OutboundIn = WireOutbound

    public init() {}

    public func encode(data: WireOutbound, out: inout ByteBuffer) throws {
        switch data {
        case .preface(let preface): preface.write(to: &out)
        case .frame(let frame): frame.write(to: &out)
        case .raw(var bytes): out.writeBuffer(&bytes)
        }
    }
}
