import Foundation
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// Actor and resource columns of a decoded batch: a dictionary while their
/// values repeat, stored rows once the first rows show them mostly distinct.
/// Either way, the same values, the same part, the same leaves.
@Suite("Adaptive text columns")
struct AdaptiveTextBuilderTests {
    static func build(_ values: [String]) -> (TextColumn, Bool) {
        // Beside another column of the same table, as the decoder fills them.
        var shared = StoredTextRows.SharedBuilder(columns: 2, rows: values.count)
        var builder = AdaptiveTextBuilder(capacity: values.count, sharedColumn: 1)
        for (row, value) in values.enumerated() {
            let taken = withUTF8Bytes(value) { builder.append(bytes: $0, shared: &shared) }
            #expect(taken)
            withUTF8Bytes("other-\(row)") { shared.set(row: row, column: 0, $0) }
        }
        let table = shared.finish()
        let column = builder.column(in: table)
        let other = table.rows(column: 0)
        #expect((0..<values.count).allSatisfy { other.value(at: $0) == "other-\($0)" })
        if case .stored = column.codes { return (column, true) }
        return (column, false)
    }

    @Test("mostly distinct values in the sampled rows make stored rows; repeating ones keep a dictionary")
    func decision() {
        let sample = AdaptiveTextBuilder.sampleRows, limit = AdaptiveTextBuilder.storedAbove
        // The sampled rows: `distinct` values, the rest of the sample repeating the first; then 200 more rows.
        func values(distinct: Int) -> [String] {
            (0..<sample).map { $0 < distinct ? "user-\($0)@example.com" : "user-0@example.com" } + (0..<200).map { "later-\($0 % 7)" }
        }
        for (distinct, expected) in [(limit + 1, true), (limit, false), (sample, true), (1, false)] {
            let input = values(distinct: distinct)
            let (column, stored) = Self.build(input)
            #expect(stored == expected, "\(distinct) distinct of \(sample)")
            #expect(column.count == input.count)
            #expect((0..<input.count).allSatisfy { column.value(at: $0) == input[$0] }, "\(distinct) distinct: values")
        }
        // A batch smaller than the sample stays a dictionary, however distinct.
        let small = (0..<sample - 1).map { "r-\($0)" }
        #expect(Self.build(small).1 == false)
        // Empty values, before and after the switch, read back empty.
        let withEmpty = (0..<300).map { $0 % 5 == 0 ? "" : "id-\($0)" }
        let (column, stored) = Self.build(withEmpty)
        #expect(stored)
        #expect((0..<300).allSatisfy { column.value(at: $0) == withEmpty[$0] })
    }

    @Test("invalid UTF-8 is refused before and after the switch")
    func invalidUTF8() {
        let bad: [UInt8] = [0x61, 0xFF, 0x62]
        for rowsBefore in [3, AdaptiveTextBuilder.sampleRows + 10] {
            var shared = StoredTextRows.SharedBuilder(columns: 1, rows: 100)
            var builder = AdaptiveTextBuilder(capacity: 100, sharedColumn: 0)
            for index in 0..<rowsBefore {
                _ = withUTF8Bytes("value-\(index)") { builder.append(bytes: $0, shared: &shared) }
            }
            #expect(bad.withUnsafeBytes { builder.append(bytes: $0, shared: &shared) } == false, "after \(rowsBefore) rows")
        }
    }

    /// Realistic events (actor and resource values mostly distinct within a
    /// batch), as a client sends them: no id, seq or received_at.
    static func sentEvents(_ count: Int) -> [AuditEvent] {
        PartEvents.realistic(count: count, seed: 77).map { event in
            var sent = event
            sent.id = ""
            sent.seq = 0
            sent.clearReceivedAt()
            return sent
        }
    }

    @Test("chunks decoded from the wire with stored rows flush to the part and leaves of dictionary chunks")
    func storedChunksFlushAlike() throws {
        let events = Self.sentEvents(2_000)
        var decoded: [MemoryChunk] = []
        var general: [MemoryChunk] = []
        var seq: UInt64 = 1
        for start in stride(from: 0, to: events.count, by: 500) {
            let batch = Array(events[start..<start + 500])
            var request = Vigil_V1_IngestRequest()
            request.events = batch
            let bytes: [UInt8] = try request.serializedBytes()
            let now: UnixNanos = 1_790_000_000_000_000_000
            let wire = try #require(IngestWireDecoder.decode(bytes, limits: .default, now: now))
            var stored = 0
            for column in [wire.columns.actorID, wire.columns.actorEmail, wire.columns.resourceID] {
                if case .stored = column.codes { stored += 1 }
            }
            #expect(stored == 3, "the batch's mostly distinct columns are stored rows")
            #expect(wire.columns.firstDifference(from: MemoryChunk.Columns(batch)) == nil)
            if case .stored = wire.columns.tenant.codes { Issue.record("the tenant column (50 values) is stored rows") }
            let receivedAt = now - 1_000_000_000 + Int64(start)
            decoded.append(MemoryChunk(columns: wire.columns, firstSeq: seq, receivedAt: receivedAt, idempotencyKey: ""))
            general.append(MemoryChunk(columns: .init(batch), firstSeq: seq, receivedAt: receivedAt, idempotencyKey: ""))
            seq += UInt64(batch.count)
        }
        try PartTestSupport.withDirectory { directory in
            var files: [[UInt8]] = []
            var leafSets: [[ChainDigest]] = []
            for (name, chunks) in [("decoded", decoded), ("general", general)] {
                var rows = MemoryChunkRows()
                var leaves: [ChainDigest] = []
                var scratch = LeafScratch()
                for chunk in chunks {
                    for row in 0..<chunk.count {
                        rows.add(chunk, row: row)
                        leaves.append(chunk.leaf(at: row, scratch: &scratch))
                    }
                }
                var options = PartWriter.Options()
                options.createdAt = 1_790_000_000_000_000_000
                _ = try PartWriter.write(rows: rows, leaves: leaves.map(\.truncated), to: directory + "/\(name).part", options: options)
                files.append(PartTestSupport.readFile(directory + "/\(name).part"))
                leafSets.append(leaves)
            }
            let firstDifference = zip(files[0], files[1]).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? (files[0].count == files[1].count ? nil : min(files[0].count, files[1].count))
            #expect(firstDifference == nil, "the parts differ from byte \(firstDifference ?? 0)")
            #expect(leafSets[0] == leafSets[1], "the leaves differ")
            // And both are the leaves of the events as the store returns them.
            #expect(leafSets[1] == general.flatMap { chunk in (0..<chunk.count).map { HashChain.leaf(of: chunk.event(at: $0)) } })
        }
    }
}
