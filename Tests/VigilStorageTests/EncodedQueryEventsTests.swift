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
                let encoded = try source.encodedEvents(rows: picked)
                #expect(encoded.count == picked.count)
                let columns = try EncodedColumns(source)
                for (row, bytes) in zip(picked, encoded) {
                    let event = try source.event(at: Int(row))
                    #expect(try AuditEvent(serializedBytes: bytes) == event, "row \(row) of block \(block.index)")
                    if CanonicalEvent.write(row: Int(row), of: columns, layout: &layout, into: canonical) {
                        fromColumns += 1
                        #expect(canonical.array == CanonicalEvent.bytes(of: event), "row \(row) of block \(block.index)")
                        #expect(bytes == CanonicalEvent.bytes(of: event))
                    } else {
                        fromEvents += 1
                    }
                }
                if try source.extras().withBytes(at: 0, { $1 }) { rebuiltExtrasBlocks += 1 } else { plainExtrasBlocks += 1 }
            }
            #expect(fromColumns + fromEvents == rows.rowCount)
            // Only the row whose target carries unknown fields takes the event path.
            #expect(fromEvents == 1)
            #expect(rebuiltExtrasBlocks > 0 && plainExtrasBlocks > 0, "\(rebuiltExtrasBlocks) blocks rebuild extras, \(plainExtrasBlocks) keep them as rows")
        }
    }
}
