import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto

extension Frame {
    /// A frame whose payload is `message` in protobuf binary form.
    public init(type: FrameType, flags: FrameFlags = [], streamID: UInt32, message: some SwiftProtobuf.Message) {
        self.init(type: type, flags: flags, streamID: streamID, payload: message.serializedBuffer())
    }

    /// Decodes the payload as `M`, or throws INVALID_ARGUMENT naming the frame.
    public func decode<M: SwiftProtobuf.Message>(_: M.Type = M.self) throws(VigilError) -> M {
        do {
            return try M(serializedBytes: ProtobufBytes(payload))
        } catch {
            throw VigilError(.invalidArgument, "\(type) payload is not a valid \(M.protoMessageName) protobuf message")
        }
    }

    /// A MESSAGE payload ready to decode: inflated when the frame says COMPRESSED.
    public func messagePayload(maxMessageSize: Int) throws(VigilError) -> ByteBuffer {
        guard flags.contains(.compressed) else { return payload }
        return try MessageCompression.decompress(payload, maxSize: maxMessageSize)
    }

    public static func trailers(streamID: UInt32, status: Vigil_V1_Status) -> Frame {
        Frame(type: .trailers, streamID: streamID, message: status)
    }

    public static func goAway(lastStreamID: UInt32, code: StatusCode, message: String) -> Frame {
        var goAway = Vigil_V1_GoAway()
        goAway.lastStreamID = lastStreamID
        goAway.code = code.rawValue
        goAway.message = message
        return Frame(type: .goAway, streamID: 0, message: goAway)
    }
}

extension ByteBuffer {
    /// Decodes the readable bytes as protobuf message `M`.
    public func decodeMessage<M: SwiftProtobuf.Message>(_: M.Type = M.self) throws(VigilError) -> M {
        do {
            return try M(serializedBytes: ProtobufBytes(self))
        } catch {
            throw VigilError(.invalidArgument, "message is not a valid \(M.protoMessageName) protobuf message")
        }
    }
}
