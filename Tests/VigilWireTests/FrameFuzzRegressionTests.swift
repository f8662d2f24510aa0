import NIOCore
import Testing
import VigilCore
import VigilWire

/// Inputs the `frame` fuzz target (Tests/Fuzz/run.sh) crashed on, each kept as
/// a file under Tests/Fuzz/regressions/frame/ (fuzz runs replay them) and
/// checked here for the exact outcome.
@Suite("Frame fuzz regressions")
struct FrameFuzzRegressionTests {
    /// regressions/frame/decompress-limit-int-max: an empty COMPRESSED payload
    /// under a limit of Int.max (`vigil serve --max-message-size` takes any
    /// Int). Sizing the output chunk as `maxSize + 1 - produced` overflowed
    /// and trapped before zlib saw a byte.
    @Test("a limit of Int.max does not overflow")
    func limitIntMax() throws {
        do {
            _ = try MessageCompression.decompress(ByteBuffer(), maxSize: .max)
            Issue.record("an empty payload inflated")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "compressed message ends before its zlib stream does")
        }
        let message = ByteBuffer(bytes: Array("{\"tenant\":\"acme\",\"action\":\"user.create\"}".utf8))
        let restored = try MessageCompression.decompress(MessageCompression.compress(message), maxSize: .max)
        #expect(restored == message)
    }
}
