import NIOCore
import VigilStorage

/// A call's request buffer as the bytes a batch's WAL record is written
/// from, in place: the buffer stays alive as long as the batch does.
struct RequestBytes: ByteOwner {
    let buffer: ByteBuffer

    init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }
}
