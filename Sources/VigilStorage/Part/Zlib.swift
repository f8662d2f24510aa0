import CZlib
import VigilCore

/// A reusable zlib compressor for column chunks: one deflate state for a whole
/// part (`deflateReset` between chunks), so that a chunk costs no setup. The
/// `z_stream` lives at a fixed heap address because zlib's state points back
/// at it.
final class ZlibDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init() throws(VigilError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = deflateInit_(stream, Z_DEFAULT_COMPRESSION, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            throw VigilError(.internal, "zlib could not be initialised (status \(status))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Compresses `input` into `output` (replacing its contents) as one zlib
    /// stream, at `level` with `strategy`, except that the last `storedTail`
    /// bytes (known to be incompressible) go into stored blocks, which costs
    /// a copy instead of a search.
    /// With `boundaries` (increasing offsets within the input), a new deflate
    /// block starts at each (`Z_BLOCK`), with Huffman codes of its own.
    func compress(
        _ input: UnsafeRawBufferPointer, level: Int32, strategy: Int32, storedTail: Int = 0,
        boundaries: [Int] = [], into output: inout [UInt8]
    ) {
        precondition(storedTail >= 0 && storedTail <= input.count, "the stored tail lies within the input")
        precondition(storedTail == 0 || boundaries.isEmpty, "boundaries and a stored tail do not mix")
        deflateReset(stream)
        var status = deflateParams(stream, level, strategy)
        precondition(status == Z_OK, "deflateParams(\(level), \(strategy)) returned \(status)")
        // deflateBound plus the framing of stored blocks (5 bytes per block of
        // at most 64 KiB), plus a block's end and header per boundary.
        let bound = Int(deflateBound(stream, uLong(input.count))) + input.count / 8_192 + 256 + boundaries.count * 64
        if output.count < bound {
            // Within the capacity kept from earlier chunks: no reallocation.
            output.appendZeros(bound - output.count)
        }
        var dummy: UInt8 = 0
        let produced: Int = output.withUnsafeMutableBytes { destination in
            withUnsafeMutablePointer(to: &dummy) { dummyPointer in
                // zlib only reads `next_in`; its C type lacks the const.
                let source = input.baseAddress.map {
                    UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
                } ?? dummyPointer
                let head = input.count - storedTail
                stream.pointee.next_in = source
                stream.pointee.next_out = destination.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(destination.count)
                var fed = 0
                for boundary in boundaries where boundary > fed && boundary < head {
                    stream.pointee.avail_in = uInt(boundary - fed)
                    status = deflate(stream, Z_BLOCK)
                    precondition(status == Z_OK && stream.pointee.avail_in == 0, "deflate(Z_BLOCK) returned \(status)")
                    fed = boundary
                }
                stream.pointee.avail_in = uInt(head - fed)
                if storedTail > 0 {
                    status = deflate(stream, Z_NO_FLUSH)
                    precondition(status == Z_OK || status == Z_BUF_ERROR, "deflate returned \(status)")
                    // Flushes what came before at the old level, then stores.
                    status = deflateParams(stream, 0, Z_DEFAULT_STRATEGY)
                    precondition(status == Z_OK, "deflateParams(0) returned \(status)")
                    stream.pointee.next_in = source + head
                    stream.pointee.avail_in = uInt(storedTail)
                }
                status = deflate(stream, Z_FINISH)
                precondition(status == Z_STREAM_END, "deflate into a buffer of deflateBound size returned \(status)")
                return destination.count - Int(stream.pointee.avail_out)
            }
        }
        output.removeSubrange(produced...)
    }
}

/// A reusable zlib decompressor that inflates a chunk into exactly its
/// recorded raw length, refusing a stream that is longer, shorter, followed
/// by other bytes, or damaged.
final class ZlibInflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateInit_(stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "zlib could not be initialised (status \(status))")
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates `input` into `output[0..<rawLength]`; returns a description of
    /// the problem, or nil on success.
    func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> String? {
        inflateReset(stream)
        guard let source = input.baseAddress else { return "a zlib chunk of 0 bytes" }
        var spare: UInt8 = 0
        return withUnsafeMutablePointer(to: &spare) { sparePointer -> String? in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: source.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(input.count)
            stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self) ?? sparePointer
            stream.pointee.avail_out = uInt(output.count)
            let status = inflate(stream, Z_FINISH)
            switch status {
            case Z_STREAM_END:
                if stream.pointee.avail_out != 0 {
                    return "zlib data inflates to \(output.count - Int(stream.pointee.avail_out)) bytes, not the \(output.count) recorded"
                }
                if stream.pointee.avail_in != 0 {
                    return "\(stream.pointee.avail_in) bytes follow the end of the zlib stream"
                }
                return nil
            case Z_BUF_ERROR, Z_OK:
                if stream.pointee.avail_out == 0 {
                    return "zlib data inflates to more than the \(output.count) bytes recorded"
                }
                return "zlib stream ends early"
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
                return "zlib data is damaged (\(message))"
            }
        }
    }
}
