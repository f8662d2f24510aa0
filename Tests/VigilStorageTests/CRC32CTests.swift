import Testing
@testable import VigilStorage

@Suite("CRC-32C: the CPU's instruction and the tables agree")
struct CRC32CTests {
    @Test("the standard check value, and the empty input")
    func checkValue() {
        // CRC-32C of "123456789" (RFC 3720, appendix B.4).
        let digits = Array("123456789".utf8)
        #expect(digits.withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        #expect(digits.withUnsafeBytes { CRC32C.tableChecksum($0) } == 0xE306_9283)
        #expect([UInt8]().withUnsafeBytes { CRC32C.checksum($0, continuing: 0x1234) } == 0x1234)
        // 32 zero bytes (RFC 3720, appendix B.4).
        #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes { CRC32C.checksum($0) } == 0x8A91_36AA)
    }

    @Test("every length and alignment up to 70 bytes, and continued checksums, give the tables' value")
    func agreesWithTables() {
        var rng = SplitMix64(seed: 32)
        let bytes = (0..<4_096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in 0...70 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    #expect(CRC32C.checksum(slice) == CRC32C.tableChecksum(slice), "start \(start), length \(length)")
                }
            }
            // In pieces, as a WAL record's header is computed.
            let whole = CRC32C.checksum(all)
            let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[0..<1_000]))
            #expect(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[1_000...]), continuing: first) == whole)
            #expect(whole == CRC32C.tableChecksum(all))
        }
        print("CRC-32C by the CPU's instruction: \(CRC32C.hardware)")
    }
}
