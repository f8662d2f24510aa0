import Foundation
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// A query page's events are written as protobuf bytes straight from the
/// columns of part blocks and memory chunks; these hold that path to the
/// events the store rebuilds.
@Suite("Query pages encoded from columns")
struct EncodedQueryEventsTests {
    @Test("a part block's rows written from its columns are the canonical bytes of the events the block rebuilds, in either form of extras")
    func partRowsAreCanonicalEvents() throws {
        try PartTestSupport.withDirectory { directory in
            var rows = MemoryChunkRows()
            var leaves: [UInt32] = []
            var scratch = LeafScratch()
            for chunk in MemoryFlushTests.chunks() {
                for row in 0..<chunk.count {
                    rows.add(chunk, row: row)
                    leaves.append(chunk.leaf(at: row, scratch: &scratch).truncated)
                }
            }
            var options = PartWriter.Options()
            options.rowsPerBlock = 333
            let path = directory + "/rows.part"
            _ = try PartWriter.write(rows: rows, leaves: leaves, to: path, options: options)
            let reader = try PartReader(path: path)
            let cache = ColumnCache(capacityBytes: 64 << 20)
            var rebuiltExtrasBlocks = 0, plainExtrasBlocks = 0
            var fromColumns = 0, fromEvents = 0
            var layout = ExtrasLayout()
            let canonical = CanonicalScratch(capacity: 16)
            for block in reader.blocks {
                let source = PartBlockSource(reader: reader, block: block, cache: cache)
                // Newest first, as a page asks for them: not in block order.
                let picked = (0..<block.rowCount).reversed().map(Int32.init)
                let encoded = try source.pageEvents(rows: picked)
                #expect(encoded.count == picked.count)
                let columns = try EncodedColumns(source)
                var extrasScratch: [UInt8] = []  // reused from row to row, as pages do
                for (row, bytes) in zip(picked, encoded) {
                    let event = try source.event(at: Int(row))
                    #expect(try AuditEvent(serializedBytes: bytes) == event, "row \(row) of block \(block.index)")
                    if CanonicalEvent.write(row: Int(row), of: columns, layout: &layout, extrasScratch: &extrasScratch, into: canonical) {
                        fromColumns += 1
                        #expect(canonical.array == CanonicalEvent.bytes(of: event), "row \(row) of block \(block.index)")
                        #expect(bytes == CanonicalEvent.bytes(of: event))
                    } else {
                        fromEvents += 1
                    }
                }
                if try source.extras().withBytes(at: 0, scratch: &extrasScratch, { $1 }) { rebuiltExtrasBlocks += 1 } else { plainExtrasBlocks += 1 }
            }
            #expect(fromColumns + fromEvents == rows.rowCount)
            // Only the row whose target carries unknown fields takes the event path.
            #expect(fromEvents == 1)
            #expect(rebuiltExtrasBlocks > 0 && plainExtrasBlocks > 0, "\(rebuiltExtrasBlocks) blocks rebuild extras, \(plainExtrasBlocks) keep them as rows")
        }
    }

    @Test("a stored row's bytes written out in every form are its value's UTF-8 bytes")
    func storedRowBytesInEveryForm() {
        // Rows: text, hex, a derived id, an explicit id, empty, text with non-ASCII, hex of no bytes.
        let id: [UInt8] = [0x01, 0x8F, 0x3A, 0x00, 0x7C, 0x22, 0x70, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A]
        let text = Array("alice".utf8), accented = Array("Café ✓".utf8), trace: [UInt8] = [0x4B, 0xF9, 0x2F, 0x35, 0x00, 0xFF]
        let bytes = text + trace + id + accented
        let forms: [StoredTextRows.Form] = [.text, .hex, .derivedID, .explicitID, .empty, .text, .hex]
        let starts = [0, text.count, 0, text.count + trace.count, 0, text.count + trace.count + id.count, 0]
        let lengths = [text.count, trace.count, 0, id.count, 0, accented.count, 0]
        let rows = StoredTextRows(
            forms: forms.map(\.rawValue), starts: starts.map(Int32.init), lengths: lengths.map(Int32.init), bytes: bytes,
            receivedAt: Array(repeating: 1_780_000_000_123_456_789, count: forms.count), seq: (1...UInt64(forms.count)).map { $0 * 1_000_003 })
        let derived = CanonicalEventID.format(derivedEventID(receivedAt: 1_780_000_000_123_456_789, seq: 3 * 1_000_003))
        let expected = ["alice", "4bf92f3500ff", derived, "018f3a00-7c22-7000-8000-00000000002a", "", "Café ✓", ""]
        let column = TextColumn(stored: rows)
        for row in 0..<forms.count {
            let written = column.withBytes(at: row) { Array($0) }
            #expect(written == Array(expected[row].utf8), "row \(row), \(forms[row])")
            #expect(rows.value(at: row) == expected[row], "row \(row), \(forms[row])")
        }
        #expect(derived.count == 36)
    }
}
