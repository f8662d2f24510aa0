import Foundation
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// A flush writes parts and hashes leaves from the memory chunks' columns,
/// never rebuilding the events; these hold that path to the one that does.
@Suite("Flushing from memory columns")
struct MemoryFlushTests {
    /// Chunks of random (awkward) and realistic events, 200 to a chunk.
    static func chunks() -> [MemoryChunk] {
        var rng = SplitMix64(seed: 21)
        var events = (0..<2_000).map { _ in PartEvents.random(&rng) }
        events += PartEvents.realistic(count: 2_000, seed: 5)
        // Empty targets and changes, metadata with empty keys and values, a target with unknown fields.
        var odd = events[0]
        odd.targets = [.init(), .init()]
        odd.changes = [.init()]
        odd.metadata = ["": "", "k": "", "e\u{301}": "y", "z": "\u{10FFFF}", "\u{10FFFF}": ""]
        events.append(odd)
        var withUnknown = events[1]
        var target = Vigil_V1_Resource()
        target.id = "t"
        target.unknownFields = (try? Vigil_V1_Resource(serializedBytes: [0xA0, 0x06, 0x01]))?.unknownFields ?? .init()
        withUnknown.targets = [target]
        events.append(withUnknown)
        // Rows far larger than the 1,024 bytes a `CanonicalScratch` starts
        // with: it grows in the middle of a row, in a string and in the extras.
        var long = events[10]
        long.description_p = String(repeating: "d", count: 5_000)
        events.append(long)
        var entries = events[11]
        entries.metadata = Dictionary(uniqueKeysWithValues: (0..<300).map { ("key \($0)", String(repeating: "v", count: $0 % 40)) })
        events.append(entries)
        // Sub-messages with a single field set: each decides presence alone.
        for field in 0..<7 {
            var event = events[2 + field]
            event.actor = .init()
            event.resource = .init()
            switch field {
            case 0: event.actor.type = .user
            case 1: event.actor.id = "a"
            case 2: event.actor.name = "n"
            case 3: event.actor.email = "e"
            case 4: event.resource.type = "t"
            case 5: event.resource.id = "r"
            default: event.resource.name = "n"
            }
            events.append(event)
        }
        var chunks: [MemoryChunk] = []
        var seq: UInt64 = 1
        for start in stride(from: 0, to: events.count, by: 200) {
            let batch = Array(events[start..<min(start + 200, events.count)])
            let receivedAt = 1_780_000_000_000_000_000 + Int64(start) * 1_000_003
            chunks.append(MemoryChunk(columns: .init(batch), firstSeq: seq, receivedAt: receivedAt, idempotencyKey: ""))
            seq += UInt64(batch.count)
        }
        return chunks
    }

    @Test("a row's canonical bytes and leaf from the columns are those of the event rebuilt from the chunk")
    func canonicalBytesFromColumns() {
        var scratch: [UInt8] = []
        // Reused from row to row, as a flush does: rows without extras follow rows with them.
        var leafScratch = LeafScratch()
        var direct = 0, rows = 0
        for chunk in Self.chunks() {
            for row in 0..<chunk.count {
                rows += 1
                let event = chunk.event(at: row)
                if CanonicalEvent.write(row: row, of: chunk, into: &scratch) {
                    direct += 1
                    #expect(scratch == CanonicalEvent.bytes(of: event), "row \(row) of the chunk at seq \(chunk.firstSeq)")
                }
                #expect(chunk.leaf(at: row, scratch: &leafScratch) == HashChain.leaf(of: event))
            }
        }
        // Only the row whose target carries unknown fields takes the event path.
        #expect(direct == rows - 1)
    }

    @Test("rows hashed two at a time give each row's leaf: in a pair, beside a row only the event path writes, and the odd row last")
    func leavesInPairs() {
        let chunks = Self.chunks()
        // 4,011 events: the last chunk holds 11 (an odd row at the end), and the row with unknown fields is in a pair.
        #expect(chunks.last?.count == 11)
        var scratch = LeafScratch()
        for chunk in chunks {
            let expected = (0..<chunk.count).map { HashChain.leaf(of: chunk.event(at: $0)) }
            var leaves: [ChainDigest] = []
            chunk.forEachLeaf(kept: [], scratch: &scratch) { leaves.append($0) }
            #expect(leaves == expected, "the chunk at seq \(chunk.firstSeq)")
            #expect(chunk.leaves() == expected)
        }
    }

    @Test("a part written from memory chunk rows is byte for byte the part written from their events")
    func partFromRowsEqualsPartFromEvents() throws {
        try PartTestSupport.withDirectory { directory in
            let chunks = Self.chunks()
            var rows = MemoryChunkRows()
            var events: [AuditEvent] = []
            var leaves: [UInt32] = []
            var scratch = LeafScratch()
            for chunk in chunks {
                for row in 0..<chunk.count {
                    rows.add(chunk, row: row)
                    events.append(chunk.event(at: row))
                    leaves.append(chunk.leaf(at: row, scratch: &scratch).truncated)
                }
            }
            // The last: blocks cut by size, where a derived id must count as its text would.
            for (rowsPerBlock, maxBlockBytes) in [(4096, PartWriter.Options().maxBlockBytes), (333, PartWriter.Options().maxBlockBytes), (4096, 60_000)] {
                var options = PartWriter.Options()
                options.rowsPerBlock = rowsPerBlock
                options.maxBlockBytes = maxBlockBytes
                options.createdAt = 1_780_000_000_000_000_000
                let fromRows = try PartWriter.write(rows: rows, leaves: leaves, to: directory + "/rows.part", options: options)
                let fromEvents = try PartWriter.write(events, leaves: leaves, to: directory + "/events.part", options: options)
                #expect(fromRows.rowCount == events.count)
                #expect(fromRows.fileBytes == fromEvents.fileBytes)
                let a = PartTestSupport.readFile(directory + "/rows.part"), b = PartTestSupport.readFile(directory + "/events.part")
                let firstDifference = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? (a.count == b.count ? nil : min(a.count, b.count))
                #expect(firstDifference == nil, "\(rowsPerBlock) rows, \(maxBlockBytes) bytes per block: the files differ from byte \(firstDifference ?? 0)")
                if maxBlockBytes < 1 << 20 { #expect(fromRows.blockCount > events.count / rowsPerBlock + 1, "blocks were cut by size") }
            }
        }
    }

    @Test("a part encoded in tasks on several cores is byte for byte the part encoded as one task")
    func partInTasksEqualsPartInOneTask() throws {
        try PartTestSupport.withDirectory { directory in
            var rows = MemoryChunkRows()
            for chunk in Self.chunks() {
                for row in 0..<chunk.count { rows.add(chunk, row: row) }
            }
            let leaves = (0..<rows.rowCount).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
            for rowsPerBlock in [100, 333] {
                // 1 block per task: 41 or 13 tasks, in waves of a task per core; 3: 14 or 5 tasks, the last one short.
                for blocksPerTask in [1, 3] {
                    var options = PartWriter.Options()
                    options.rowsPerBlock = rowsPerBlock
                    options.createdAt = 1_780_000_000_000_000_000
                    // One task tries other text encodings every `blocksPerTask` blocks, as the tasks do.
                    options.blocksPerTask = blocksPerTask
                    _ = try PartWriter.write(rows: rows, leaves: leaves, to: directory + "/one.part", options: options)
                    let one = PartTestSupport.readFile(directory + "/one.part")
                    options.parallelTasks = true
                    let metadata = try PartWriter.write(rows: rows, leaves: leaves, to: directory + "/tasks.part", options: options)
                    #expect(metadata.blockCount == (rows.rowCount + rowsPerBlock - 1) / rowsPerBlock)
                    let tasks = PartTestSupport.readFile(directory + "/tasks.part")
                    let firstDifference = zip(one, tasks).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        ?? (one.count == tasks.count ? nil : min(one.count, tasks.count))
                    #expect(firstDifference == nil, "\(rowsPerBlock) rows per block, \(blocksPerTask) per task: the files differ from byte \(firstDifference ?? 0)")
                }
            }
        }
    }

    @Test("blocks cut by size inside tasks: every row comes back, in order, with its leaf")
    func partInTasksWithBlocksCutBySize() throws {
        try PartTestSupport.withDirectory { directory in
            let events = Self.chunks().flatMap { chunk in (0..<chunk.count).map(chunk.event(at:)) }
            let leaves = events.map { HashChain.leaf(of: $0).truncated }
            var options = PartWriter.Options()
            options.rowsPerBlock = 500
            options.maxBlockBytes = 20_000
            options.parallelTasks = true
            options.blocksPerTask = 2
            let metadata = try PartWriter.write(events, leaves: leaves, to: directory + "/cut.part", options: options)
            // Cut by size far more often than every 500 rows.
            #expect(metadata.blockCount > 2 * events.count / 500)
            let reader = try PartReader(path: directory + "/cut.part")
            defer { reader.close() }
            var read: [AuditEvent] = [], readLeaves: [UInt32] = []
            for block in 0..<metadata.blockCount {
                let decoded = try reader.allColumns(block: block)
                read += decoded.events()
                readLeaves += decoded.leaf ?? []
            }
            let order = PartTestSupport.sortedLikePart(events)
            #expect(read == order)
            let leafOf = Dictionary(uniqueKeysWithValues: zip(events.map(\.seq), leaves))
            #expect(readLeaves == order.map { leafOf[$0.seq]! })
        }
    }

    @Test("extras bytes decode to the event's targets, changes and metadata, and are swift-protobuf's deterministic encoding where it orders keys by bytes too")
    func extrasBytesMatchSwiftProtobuf() throws {
        var rng = SplitMix64(seed: 4)
        var events = (0..<3_000).map { _ in PartEvents.random(&rng) }
        events += PartEvents.realistic(count: 1_000, seed: 8)
        for chunk in Self.chunks() { events += (0..<chunk.count).map(chunk.event(at:)) }
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        var compared = 0
        for event in events {
            let bytes = ColumnEncoding.extrasBytes(of: event)
            let decoded = try AuditEvent(serializedBytes: bytes)
            #expect(decoded.targets == event.targets && decoded.changes == event.changes && decoded.metadata == event.metadata)
            guard event.metadata.keys.allSatisfy({ $0.utf8.allSatisfy { $0 < 0x80 } }) else { continue }
            var partial = AuditEvent()
            partial.targets = event.targets
            partial.changes = event.changes
            partial.metadata = event.metadata
            #expect(bytes == (try partial.serializedBytes(options: options)))
            compared += 1
        }
        #expect(compared > 4_000)
    }

    @Test("memory columns code each distinct byte string once, and keep canonically equivalent spellings apart")
    func dictionaryColumns() {
        let tenants = ["a", "b", "a", "\u{E9}", "e\u{301}", "a", "", "e\u{301}", String(repeating: "long-", count: 20)]
        let events = tenants.map { tenant -> AuditEvent in
            var event = AuditEvent()
            event.tenant = tenant
            return event
        }
        let column = MemoryChunk.Columns(events).tenant
        #expect(column.values.count == 6)
        guard case .wide(let codes) = column.codes else {
            Issue.record("a memory chunk's tenant column has a dictionary")
            return
        }
        #expect(codes == [0, 1, 0, 2, 3, 0, 4, 3, 5])
        for (row, tenant) in tenants.enumerated() { #expect(Array(column.value(at: row).utf8) == Array(tenant.utf8)) }
    }

    @Test("an extras value that is not plain targets, changes and metadata is left to the event path")
    func unusualExtrasAreRefused() {
        func parses(_ bytes: [UInt8]) -> Bool {
            var layout = ExtrasLayout()
            return bytes.withUnsafeBufferPointer { layout.parse($0) }
        }
        #expect(parses([0x52, 0x03, 0x0A, 0x01, 0x61]))  // a target of type "a"
        #expect(parses([0x92, 0x01, 0x02, 0x0A, 0x00]))  // a metadata entry with an empty key
        #expect(!parses([0x52, 0x03, 0x12, 0x01, 0x61, 0x0A]))  // bytes that end early
        #expect(!parses([0x52, 0x02, 0x0A, 0x00]))  // an empty string written out
        #expect(!parses([0x52, 0x06, 0x12, 0x01, 0x61, 0x0A, 0x01, 0x62]))  // fields out of order
        #expect(!parses([0x52, 0x03, 0x22, 0x01, 0x61]))  // an unknown field in a target
        #expect(!parses([0x52, 0x04, 0x0A, 0x81, 0x00, 0x61]))  // a length written in two bytes
        #expect(!parses([0x58, 0x01]))  // a varint field
        #expect(!parses([0x92, 0x01, 0x03, 0x0A, 0x01, 0x61, 0x92, 0x01, 0x03, 0x0A, 0x01, 0x61]))  // one key twice
    }
}
