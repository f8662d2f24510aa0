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
        Frame(type: .trailers, streamID: streamID, payload: trailersPayload(status))
    }

    /// A status's protobuf encoding. Every call ends with one, most with a
    /// few metadata entries (a query's statistics): written here, field by
    /// field, metadata in key order; swift-protobuf (its map encoding
    /// generic and slow) only for what else a status may hold.
    static func trailersPayload(_ status: Vigil_V1_Status) -> ByteBuffer {
        guard status.eventErrors.isEmpty, status.unknownFields.data.isEmpty else { return status.serializedBuffer() }
        var buffer = ByteBuffer()
        if status.code != 0 {
            buffer.writeInteger(UInt8(1 << 3))
            buffer.writeProtobufVarint(UInt64(status.code))
        }
        if !status.message.isEmpty {
            buffer.writeProtobufFieldHeader(field: 2, count: status.message.utf8.count)
            buffer.writeString(status.message)
        }
        for key in status.metadata.keys.sorted() {
            let value = status.metadata[key] ?? ""
            let keyBytes = key.utf8.count, valueBytes = value.utf8.count
            // Map entries as swift-protobuf writes them: key and value always present.
            buffer.writeProtobufFieldHeader(
                field: 4, count: ByteBuffer.protobufFieldSize(count: keyBytes) + ByteBuffer.protobufFieldSize(count: valueBytes))
            buffer.writeProtobufFieldHeader(field: 1, count: keyBytes)
            buffer.writeString(key)
            buffer.writeProtobufFieldHeader(field: 2, count: valueBytes)
            buffer.writeString(value)
        }
        return buffer
    }

    /// A TRAILERS frame's status. Code, message and metadata are read field
    /// by field (every call's answer ends with one, and swift-protobuf
    /// decodes the metadata map through generic code: 5% of a small query's
    /// round trip in the client); swift-protobuf for anything else a status
    /// may hold (event errors, unknown fields, text that is not UTF-8).
    public func decodeTrailers() throws(VigilError) -> Vigil_V1_Status {
        if let status = payload.withUnsafeReadableBytes(Self.statusFieldByField) { return status }
        return try decode(Vigil_V1_Status.self)
    }

    static func statusFieldByField(_ bytes: UnsafeRawBufferPointer) -> Vigil_V1_Status? {
        var reader = ProtobufFieldReader(bytes)
        var status = Vigil_V1_Status()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, 0):
                guard let code = reader.varint(), code <= UInt64(UInt32.max) else { return nil }
                status.code = UInt32(code)
            case (2, 2):
                guard let range = reader.lengthDelimited(), let message = validUTF8String(UnsafeRawBufferPointer(rebasing: bytes[range]))
                else { return nil }
                status.message = message
            case (4, 2):
                guard let range = reader.lengthDelimited(), let entry = ProtobufFieldReader.stringMapEntry(bytes, range) else { return nil }
                status.metadata[entry.key] = entry.value
            default:
                return nil
            }
        }
        return status
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
