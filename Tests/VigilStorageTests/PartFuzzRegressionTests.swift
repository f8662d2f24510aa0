import Testing
import VigilCore
@testable import VigilStorage

/// Inputs the `part` fuzz target (Tests/Fuzz/run.sh) crashed on, each kept as
/// a file under Tests/Fuzz/regressions/part/ (fuzz runs replay them) and
/// checked here for the exact error.
@Suite("Part fuzz regressions")
struct PartFuzzRegressionTests {
    /// The chunk of a fuzz input: its first byte is the fuzz target's control byte.
    static func decodeStoredColumn(_ raw: [UInt8], column: PartColumn, rows: Int) throws(PartFormatError) -> DecodedBlock {
        var block = DecodedBlock(rowCount: rows)
        let chunk = ChunkInfo(
            column: column, encoding: ChunkEncoding(rawValue: raw[0])!, codec: .none, offset: 0,
            storedLength: raw.count, rawLength: raw.count, checksum: 0)
        try withBytes(raw) { (bytes) throws(PartFormatError) in
            try PartReader.decodeColumn(bytes, chunk: chunk, rows: rows, into: &block)
        }
        return block
    }

    /// regressions/part/empty-dictionary-chunk: a dictionary chunk of no rows
    /// with an empty dictionary, then junk. Building the "code is not below the
    /// dictionary size" error trapped (index out of range) looking for the
    /// offending code among no codes; the junk is what is wrong.
    @Test("an empty dictionary chunk followed by junk throws, does not trap")
    func emptyDictionaryChunk() throws {
        let raw: [UInt8] = [0x07, 0x00, 0x00, 0x02, 0x0D, 0x00] + Array("vOptional".utf8)
        do {
            _ = try Self.decodeStoredColumn(raw, column: .userAgent, rows: 0)
            Issue.record("a chunk with junk after its codes decoded")
        } catch {
            #expect(error.what == "12 unexpected bytes after the dictionary codes")
            #expect(error.offset == 3)
        }
        // Without the junk, an empty chunk of an empty dictionary is simply empty.
        let block = try Self.decodeStoredColumn([0x07, 0x00, 0x00], column: .userAgent, rows: 0)
        #expect(block.userAgent == [])
    }
}
