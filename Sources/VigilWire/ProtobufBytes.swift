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

/// Protobuf's building blocks written straight into a `ByteBuffer`, for the
/// messages the server frames by hand (query pages, subscription events,
/// TRAILERS).
extension ByteBuffer {
    /// A base-128 varint.
    public mutating func writeProtobufVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        writeInteger(UInt8(value))
    }

    /// The tag (wire type 2) and length of a length-delimited field below
    /// number 16; its `count` bytes follow.
    public mutating func writeProtobufFieldHeader(field: Int, count: Int) {
        writeInteger(UInt8(field << 3 | 2))
        writeProtobufVarint(UInt64(count))
    }

    /// Bytes of a varint.
    public static func protobufVarintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// Bytes of a length-delimited field below number 16 holding `count` bytes.
    public static func protobufFieldSize(count: Int) -> Int {
        1 + protobufVarintSize(UInt64(count)) + count
    }
}
