#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Testing
@testable import VigilStorage

@Suite("Part output")
struct PartOutputTests {
    @Test("writeback starts every few MiB as a part is written, and the file holds exactly what was written")
    func writeBehind() throws {
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.tmp"
            let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
            defer { file.close() }
            var output = PartOutput(file: file)
            var expected: [UInt8] = []
            // Small writes gathered in the buffer, then one larger than the buffer (written at once).
            for round in 0..<(PartOutput.writeBehindBytes / 30_000 + 50) {
                let piece = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) }
                try output.write(piece)
                expected += piece
            }
            #expect(output.writebackFrom >= PartOutput.writeBehindBytes)
            let large = [UInt8](repeating: 7, count: PartOutput.bufferSize + 123)
            try output.write(large)
            expected += large
            try output.flush()
            #expect(output.writebackFrom <= output.offset)
            #expect(output.offset - output.writebackFrom < PartOutput.writeBehindBytes)
            try file.sync()
            #expect(PartTestSupport.readFile(path) == expected)
        }
    }

    @Test("the kernel takes a writeback request for a regular file and refuses one for a pipe")
    func startWriteback() throws {
        try PartTestSupport.withDirectory { directory in
            let file = try FileHandleDescriptor.open(directory + "/file", flags: O_WRONLY | O_CREAT | O_TRUNC)
            defer { file.close() }
            try [UInt8](repeating: 1, count: 1 << 16).withUnsafeBytes { try file.write($0, at: 0) }
            #expect(file.startWriteback(offset: 0, count: 1 << 16))
            var ends: [Int32] = [0, 0]
            #expect(pipe(&ends) == 0)
            defer {
                close(ends[0])
                close(ends[1])
            }
            #expect(!FileHandleDescriptor(fd: ends[1], path: "pipe").startWriteback(offset: 0, count: 1))
        }
    }
}
