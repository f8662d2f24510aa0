import CZlib
import NIOCore
import VigilCore

/// zlib (RFC 1950) compression of MESSAGE payloads with the `COMPRESSED` flag.
public enum MessageCompression {
    /// Compresses `input` at zlib's default level.
    public static func compress(_ input: ByteBuffer) -> ByteBuffer {
        var source = Array(input.readableBytesView)
        if source.isEmpty { source = [0] }  // a valid pointer; the length below stays 0
        let inputSize = input.readableBytes
        let bound = Int(compressBound(uLong(inputSize)))
        var output = ByteBuffer()
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
            var destinationLength = uLongf(destination.count)
            let status = source.withUnsafeBufferPointer { source in
                compress2(
                    destination.baseAddress!.assumingMemoryBound(to: Bytef.self), &destinationLength,
                    source.baseAddress!, uLong(inputSize), Z_DEFAULT_COMPRESSION)
            }
            precondition(status == Z_OK, "compress2 failed with \(status) into a buffer of compressBound size")
            return Int(destinationLength)
        }
        return output
    }

    /// Decompresses `input`, refusing output larger than `maxSize` before it
    /// is produced (a small frame must not inflate into gigabytes).
    public static func decompress(_ input: ByteBuffer, maxSize: Int) throws(VigilError) -> ByteBuffer {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw VigilError(.internal, "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var output = ByteBuffer()
        let chunk = 64 * 1024
        var result: Int32 = Z_OK
        // zlib only reads `next_in`; its C type lacks the const.
        let outcome: VigilError? = input.withUnsafeReadableBytes { source -> VigilError? in
            stream.next_in = source.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self)) }
            stream.avail_in = uInt(source.count)
            while true {
                // Room for one byte past the limit, so that going over it is seen.
                // (The loop goes on only while the output is within the limit, so
                // this does not overflow, even for a limit of Int.max.)
                let room = min(chunk - 1, maxSize - output.readableBytes) + 1
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { destination in
                    stream.next_out = destination.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(room)
                    result = inflate(&stream, Z_NO_FLUSH)
                    return room - Int(stream.avail_out)
                }
                switch result {
                case Z_STREAM_END:
                    if stream.avail_in != 0 {
                        return VigilError(.invalidArgument, "compressed message has bytes after the end of its zlib stream")
                    }
                    if output.readableBytes > maxSize {
                        return VigilError(.resourceExhausted, "compressed message inflates to more than the limit of \(maxSize) bytes")
                    }
                    return nil
                case Z_OK where output.readableBytes > maxSize, Z_BUF_ERROR where output.readableBytes > maxSize:
                    return VigilError(.resourceExhausted, "compressed message inflates to more than the limit of \(maxSize) bytes")
                case Z_OK:
                    if stream.avail_in == 0 && stream.avail_out != 0 {
                        return VigilError(.invalidArgument, "compressed message ends before its zlib stream does")
                    }
                    continue
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 {
                        return VigilError(.invalidArgument, "compressed message ends before its zlib stream does")
                    }
                    continue
                default:
                    return VigilError(.invalidArgument, "COMPRESSED payload is not valid zlib data")
                }
            }
        }
        if let outcome { throw outcome }
        return output
    }
}
