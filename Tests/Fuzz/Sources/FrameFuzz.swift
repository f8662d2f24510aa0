import NIOCore
import NIOEmbedded
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire

/// The frame decoder and COMPRESSED payloads.
///
/// Input: a control byte (preface expected or not, the frame size limit, the
/// message size limit, and whether the rest is a byte stream or one zlib
/// payload), a split count and that many chunk lengths, then the bytes.
///
/// The stream is decoded twice: whole, by `NIOSingleStepByteToMessageProcessor`,
/// and in the chunks the input chose, through `ByteToMessageHandler` in an
/// `EmbeddedChannel` as a server connection does. Both must give the same
/// prefaces, frames and error; every frame must respect the size limit and
/// pass the header checks, and every payload must decode (or be refused)
/// as its frame type's message.
enum FrameFuzz {
    static let frameSizes = [0, 16, 100, 4_096, 1 << 20, 16, 100, 4_096]
    // Int.max: `decompress` takes any limit (`vigil serve --max-message-size`).
    static let messageSizes = [0, 1, 64, 65_536, 1 << 20, 64, Int.max, 1 << 20]

    struct Outcome: Equatable {
        var items: [WireInbound] = []
        var error: VigilError?
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let control = input.byte()
        let expectPreface = control & 0x01 == 0
        let maxFrameSize = frameSizes[Int(control >> 1) & 0x07]
        let maxMessageSize = messageSizes[Int(control >> 4) & 0x07]
        let splitCount = Int(input.byte() & 0x0F)
        let chunkLengths = (0..<splitCount).map { _ in Int(input.byte()) }
        let stream = input.rest()

        if control & 0x80 != 0 {
            checkCompressed(ByteBuffer(bytes: stream), maxMessageSize: maxMessageSize)
            return
        }
        let whole = decodeWhole(stream, maxFrameSize: maxFrameSize, expectPreface: expectPreface)
        let pieces = decodeInChunks(stream, chunkLengths, maxFrameSize: maxFrameSize, expectPreface: expectPreface)
        guard whole == pieces else {
            fatalError("decoding in chunks \(chunkLengths) differs from decoding whole:\n\(whole)\n\(pieces)")
        }
        if let error = whole.error, error.code != .invalidArgument {
            fatalError("the frame decoder threw \(error); protocol violations are INVALID_ARGUMENT")
        }
        for (index, item) in whole.items.enumerated() {
            switch item {
            case .preface:
                precondition(index == 0 && expectPreface, "a preface at item \(index)")
            case .oversized(let header):
                precondition(Int(header.length) > maxFrameSize, "frame of \(header.length) bytes reported oversized under a limit of \(maxFrameSize)")
            case .frame(let frame):
                precondition(frame.payload.readableBytes <= maxFrameSize, "frame of \(frame.payload.readableBytes) bytes passed a limit of \(maxFrameSize)")
                do {
                    try FrameDecoder.check(frame.header)
                } catch {
                    fatalError("decoded frame \(frame) fails the header check: \(error)")
                }
                checkPayload(frame, maxMessageSize: maxMessageSize)
            }
        }
    }

    static func decodeWhole(_ stream: [UInt8], maxFrameSize: Int, expectPreface: Bool) -> Outcome {
        var outcome = Outcome()
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maxFrameSize: maxFrameSize, expectPreface: expectPreface))
        do {
            try processor.process(buffer: ByteBuffer(bytes: stream)) { outcome.items.append($0) }
        } catch let error as VigilError {
            outcome.error = error
            return outcome
        } catch {
            fatalError("the frame decoder threw \(error), not a VigilError")
        }
        // End of stream: whatever is left is an incomplete frame, never an item or a crash.
        var last: [WireInbound] = []
        do {
            try processor.finishProcessing(seenEOF: true) { last.append($0) }
        } catch {
            fatalError("decodeLast threw \(error) after decode had returned everything")
        }
        precondition(last.isEmpty, "decodeLast produced \(last) after decode had returned everything")
        return outcome
    }

    static func decodeInChunks(_ stream: [UInt8], _ lengths: [Int], maxFrameSize: Int, expectPreface: Bool) -> Outcome {
        var outcome = Outcome()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize, expectPreface: expectPreface)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var offset = 0
        var chunks: [ArraySlice<UInt8>] = []
        for length in lengths where offset < stream.count {
            let end = min(stream.count, offset + length)
            chunks.append(stream[offset..<end])
            offset = end
        }
        chunks.append(stream[offset...])
        for chunk in chunks {
            do {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
            } catch let error as VigilError {
                outcome.error = error
            } catch {
                fatalError("the frame decoder threw \(error), not a VigilError")
            }
            do {
                while let item = try channel.readInbound(as: WireInbound.self) { outcome.items.append(item) }
            } catch {
                fatalError("reading decoded items failed: \(error)")
            }
            if outcome.error != nil { break }
        }
        return outcome
    }

    /// A frame's payload as the server or client reads it: MESSAGE payloads
    /// inflated when COMPRESSED, the others decoded as their message type.
    static func checkPayload(_ frame: Frame, maxMessageSize: Int) {
        switch frame.type {
        case .message:
            if frame.flags.contains(.compressed) {
                checkCompressed(frame.payload, maxMessageSize: maxMessageSize)
            } else {
                checkRoundTrip(frame.payload)
            }
        case .hello:
            decode(frame, Vigil_V1_Hello.self)
            decode(frame, Vigil_V1_Welcome.self)
        case .headers: decode(frame, Vigil_V1_CallHeaders.self)
        case .trailers:
            if let status = decode(frame, Vigil_V1_Status.self) {
                _ = VigilError(status: status)?.description
            }
        case .cancel: decode(frame, Vigil_V1_Cancel.self)
        case .window: decode(frame, Vigil_V1_Window.self)
        case .ping, .pong: decode(frame, Vigil_V1_Ping.self)
        case .goAway: decode(frame, Vigil_V1_GoAway.self)
        }
    }

    @discardableResult
    static func decode<M: SwiftProtobuf.Message>(_ frame: Frame, _ type: M.Type) -> M? {
        do {
            let message = try frame.decode(M.self)
            // What decodes must encode and decode to the same message.
            let again = try frame.decode(M.self)
            precondition(message.isEqualTo(message: again))
            let reencoded = try message.serializedBuffer().decodeMessage(M.self)
            precondition(reencoded.isEqualTo(message: message), "\(M.self) does not round trip")
            return message
        } catch {
            precondition(error.code == .invalidArgument, "decoding \(M.self) threw \(error)")
            return nil
        }
    }

    /// Inflates `payload` under `maxMessageSize`: the result fits, or the
    /// error is INVALID_ARGUMENT (not zlib) or RESOURCE_EXHAUSTED (too big).
    static func checkCompressed(_ payload: ByteBuffer, maxMessageSize: Int) {
        do {
            let inflated = try MessageCompression.decompress(payload, maxSize: maxMessageSize)
            precondition(inflated.readableBytes <= maxMessageSize, "inflated \(inflated.readableBytes) bytes under a limit of \(maxMessageSize)")
            checkRoundTrip(inflated)
        } catch {
            precondition(
                error.code == .invalidArgument || error.code == .resourceExhausted,
                "decompress threw \(error)")
        }
    }

    /// compress then decompress gives the bytes back; a limit one byte short is refused.
    static func checkRoundTrip(_ bytes: ByteBuffer) {
        let compressed = MessageCompression.compress(bytes)
        do {
            let restored = try MessageCompression.decompress(compressed, maxSize: bytes.readableBytes)
            precondition(restored == bytes, "compress/decompress does not round trip \(bytes.readableBytes) bytes")
        } catch {
            fatalError("decompressing what compress wrote threw \(error)")
        }
        guard bytes.readableBytes > 0 else { return }
        do {
            _ = try MessageCompression.decompress(compressed, maxSize: bytes.readableBytes - 1)
            fatalError("\(bytes.readableBytes) bytes inflated under a limit of \(bytes.readableBytes - 1)")
        } catch {
            precondition(error.code == .resourceExhausted, "a limit one byte short threw \(error)")
        }
    }
}
