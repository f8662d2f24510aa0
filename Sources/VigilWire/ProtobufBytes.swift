import NIOCore
import SwiftProtobuf

/// A `ByteBuffer` that swift-protobuf can decode from and encode into directly,
/// so payloads are not copied into an intermediate `[UInt8]`.
public struct ProtobufBytes: SwiftProtobufContiguousBytes, Sendable {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public init(repeating: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: repeating, count: count)
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    public var count: Int { buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension SwiftProtobuf.Message {
    /// The message in protobuf binary form, in a `ByteBuffer`.
    public func serializedBuffer() -> ByteBuffer {
        // Serialization fails only for messages with missing required fields,
        // which proto3 does not have.
        ((try? serializedBytes() as ProtobufBytes) ?? ProtobufBytes(ByteBuffer())).buffer
    }
}
