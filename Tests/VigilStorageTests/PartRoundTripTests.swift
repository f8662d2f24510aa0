#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import PropertyBased
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Part round trips")
struct PartRoundTripTests {
    static func options(rowsPerBlock: Int, level: Int32 = 6) -> PartWriter.Options {
        var options = PartWriter.Options()
        options.rowsPerBlock = rowsPerBlock
        options.compressionLevel = level
        return options
    }

    /// Writes, reads back, and checks events, order and part metadata.
    static func roundTrip(_ events: [AuditEvent], options: PartWriter.Options) throws {
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.vprt"
            let written = try PartWriter.write(events, to: path, options: options)
            let reader = try PartReader(path: path)
            defer { reader.close() }
            let expected = PartTestSupport.sortedLikePart(events)
            var read: [AuditEvent] = []
            for block in reader.blocks.indices { read += try reader.events(block: block) }
            #expect(read.count == expected.count)
            for (index, (got, want)) in zip(read, expected).enumerated() where got != want {
                Issue.record("row \(index) differs:\nread \(got)\nwrote \(want)")
                break
            }
            let metadata = reader.metadata
            #expect(metadata == written)
            #expect(metadata.rowCount == events.count)
            #expect(metadata.blockCount == reader.blocks.count)
            #expect(metadata.fileBytes == PartTestSupport.readFile(path).count)
            let tenants = expected.map(\.tenant).reduce(into: [String]()) { list, tenant in
                if list.last.map({ !sameUTF8($0, tenant) }) ?? true { list.append(tenant) }
            }
            #expect(metadata.tenants.count == tenants.count)
            #expect(zip(metadata.tenants, tenants).allSatisfy { sameUTF8($0, $1) })
            if !events.isEmpty {
                let times = events.map { $0.occurredAt.unixNanos }
                #expect(metadata.minOccurredAt == times.min() && metadata.maxOccurredAt == times.max())
                #expect(metadata.minSeq == events.map(\.seq).min() && metadata.maxSeq == events.map(\.seq).max())
            }
            #expect(reader.blocks.allSatisfy { $0.rowCount <= options.rowsPerBlock })
            #expect(!FileIO.exists(path + ".tmp"))
        }
    }

    @Test(
        "a merge's rows written column by column from decoded blocks make the part their events make, byte for byte",
        arguments: [false, true])
    func decodedBlockRowsWriteTheEventsPart(extrasAsBytes: Bool) throws {
        var rng = SplitMix64(seed: 31)
        // Three parts' worth of events of every shape (unknown enum values, empty
        // actors and resources, no times, extras with unknown fields), as a merge reads them.
        let inputs = (0..<3).map { _ in (0..<700).map { _ in PartEvents.random(&rng) } }
        try PartTestSupport.withDirectory { directory in
            var rows = DecodedBlockRows()
            for (index, events) in inputs.enumerated() {
                let path = directory + "/in-\(index).vprt"
                _ = try PartWriter.write(events, to: path, options: Self.options(rowsPerBlock: 97))
                let reader = try PartReader(path: path)
                defer { reader.close() }
                for block in reader.blocks.indices {
                    let decoded = try reader.allColumns(block: block, extrasAsBytes: extrasAsBytes)
                    #expect(DecodedBlockRows.canWrite(from: decoded))
                    #expect((decoded.extrasBytes != nil) == extrasAsBytes)
                    rows.add(decoded)
                    // Every other row, as if the rest had expired.
                    for row in 0..<decoded.rowCount where row % 2 == 0 || index == 1 { rows.add(row: row) }
                }
            }
            let events = (0..<rows.rowCount).map(rows.event(at:))
            let leaves = (0..<rows.rowCount).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
            var options = Self.options(rowsPerBlock: 128)
            options.createdAt = 1_780_000_000_000_000_000
            _ = try PartWriter.write(rows: rows, leaves: leaves, to: directory + "/columns.vprt", options: options)
            _ = try PartWriter.write(rows: events, leaves: leaves, to: directory + "/events.vprt", options: options)
            let fromColumns = PartTestSupport.readFile(directory + "/columns.vprt")
            let fromEvents = PartTestSupport.readFile(directory + "/events.vprt")
            #expect(fromColumns.count == fromEvents.count)
            #expect(fromColumns.elementsEqual(fromEvents), "the two parts differ")
            let reader = try PartReader(path: directory + "/columns.vprt")
            defer { reader.close() }
            let read = try reader.blocks.indices.flatMap { try reader.events(block: $0) }
            #expect(read == PartTestSupport.sortedLikePart(events))
        }
    }

    @Test("random events of every shape round trip exactly (property)")
    func randomParts() async throws {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1500), Gen.int(in: 1...700), Gen.uint64()) { count, rowsPerBlock, seed in
            var rng = SplitMix64(seed: seed)
            let events = (0..<count).map { _ in PartEvents.random(&rng, tenants: Int.random(in: 1...40, using: &rng)) }
            try Self.roundTrip(events, options: Self.options(rowsPerBlock: rowsPerBlock))
        }
    }

    @Test("empty part, single event, one row per block")
    func smallParts() throws {
        try Self.roundTrip([], options: .init())
        var rng = SplitMix64(seed: 1)
        try Self.roundTrip([PartEvents.random(&rng)], options: .init())
        try Self.roundTrip((0..<50).map { _ in PartEvents.random(&rng) }, options: Self.options(rowsPerBlock: 1))
        try PartTestSupport.withDirectory { directory in
            let metadata = try PartWriter.write([], to: directory + "/empty.vprt")
            #expect(metadata.rowCount == 0 && metadata.blockCount == 0 && metadata.tenants.isEmpty)
            #expect(metadata.fileBytes == PartFormat.headerSize + metadata.footerBytes + PartFormat.trailerSize)
            let reader = try PartReader(path: directory + "/empty.vprt")
            #expect(reader.blocks.isEmpty)
            #expect(throws: VigilError.self) { try reader.events(block: 0) }
        }
    }

    @Test("many tenants over many blocks, with and without compression")
    func manyTenants() throws {
        var rng = SplitMix64(seed: 5)
        var events: [AuditEvent] = []
        for index in 0..<6000 {
            var event = PartEvents.random(&rng)
            event.tenant = "tenant-\(index % 2500)"
            events.append(event)
        }
        try Self.roundTrip(events, options: Self.options(rowsPerBlock: 333))
        try Self.roundTrip(events, options: Self.options(rowsPerBlock: 4096, level: 0))
        try Self.roundTrip(events, options: Self.options(rowsPerBlock: 65_536, level: 9))
        try Self.roundTrip(events.shuffled(using: &rng), options: Self.options(rowsPerBlock: 1000, level: 1))
    }

    @Test("extreme values: times, seqs, enums, ids, huge and odd strings")
    func extremes() throws {
        var events: [AuditEvent] = []
        let times: [Int64] = [.min, .max, 0, -1, 1, -1_000_000_001, 1_780_000_000_999_999_999]
        let seqs: [UInt64] = [0, 1, .max, .max - 1, 1 << 63, 1 << 62]
        for (index, time) in times.enumerated() {
            var event = AuditEvent()
            event.tenant = index % 2 == 0 ? "t" : "🦤"
            event.occurredAt = PartTestSupport.timestamp(time)
            event.receivedAt = PartTestSupport.timestamp(times[(index + 3) % times.count])
            event.seq = seqs[index % seqs.count]
            event.id = index % 3 == 0 ? derivedEventID(receivedAt: event.receivedAt.unixNanos, seq: event.seq).description : ""
            var actor = Vigil_V1_Actor()
            actor.type = .UNRECOGNIZED([Int(Int32.min), Int(Int32.max), 256, -1, 6, 99, 1][index])
            actor.id = String(repeating: "x", count: 256)
            event.actor = actor
            event.category = .UNRECOGNIZED(Int(Int32.max) - index)
            event.outcome = .UNRECOGNIZED(-index - 1)
            event.description_p = String(repeating: "e\u{301}🦤\0", count: 1_000)
            event.reason = String(repeating: "r", count: 1_024)
            event.traceID = ["ABCD", "abcd", String(repeating: "a", count: 64), String(repeating: "a", count: 128), "", "0", "00"][index]
            events.append(event)
        }
        var huge = AuditEvent()
        huge.tenant = "huge"
        huge.description_p = String(repeating: "big ", count: 1 << 20)
        events.append(huge)
        try Self.roundTrip(events, options: .init())
        // An absent sub-message and a present but empty one stay apart.
        var absent = AuditEvent()
        absent.tenant = "p"
        var empty = absent
        empty.actor = Vigil_V1_Actor()
        empty.resource = Vigil_V1_Resource()
        empty.occurredAt = PartTestSupport.timestamp(0)
        empty.receivedAt = PartTestSupport.timestamp(0)
        try Self.roundTrip([absent, empty], options: .init())
    }

    @Test("the realistic data set round trips over several block sizes")
    func realistic() throws {
        let events = PartEvents.realistic(count: 12_000)
        try Self.roundTrip(events, options: Self.options(rowsPerBlock: 4096))
        try Self.roundTrip(events, options: Self.options(rowsPerBlock: 1000))
    }

    @Test("blocks are cut by bytes as well as by rows")
    func blockBytes() throws {
        var rng = SplitMix64(seed: 8)
        let events = (0..<400).map { _ -> AuditEvent in
            var event = PartEvents.random(&rng)
            event.description_p = String(repeating: "d", count: Int.random(in: 0...10_000, using: &rng))
            return event
        }
        var options = PartWriter.Options()
        options.maxBlockBytes = 50_000
        try Self.roundTrip(events, options: options)
        try PartTestSupport.withDirectory { directory in
            let metadata = try PartWriter.write(events, to: directory + "/p", options: options)
            #expect(metadata.blockCount > 400 * 5_000 / 50_000 / 2)
        }
    }

    @Test("reading a subset of columns builds partial events")
    func columnSubsets() throws {
        var rng = SplitMix64(seed: 21)
        let events = PartTestSupport.sortedLikePart((0..<300).map { _ in PartEvents.random(&rng) })
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part"
            _ = try PartWriter.write(events, to: path, options: Self.options(rowsPerBlock: 300))
            let reader = try PartReader(path: path)
            let block = try reader.readColumns(block: 0, [.tenant, .actorID, .outcome])
            #expect(block.rowCount == 300)
            #expect(block.tenant?.count == 300 && block.actorID?.count == 300 && block.outcome?.count == 300)
            #expect(block.occurredAt == nil && block.traceID == nil && block.extras == nil && block.id == nil)
            for row in 0..<300 {
                let event = block.event(at: row)
                #expect(event.tenant == events[row].tenant)
                #expect(event.actor.id == events[row].actor.id)
                #expect(event.outcome == events[row].outcome)
                #expect(event.action.isEmpty && !event.hasOccurredAt)
            }
            // The id needs receivedAt and seq, which come along.
            let ids = try reader.readColumns(block: 0, [.id])
            #expect(ids.id == events.map(\.id))
            #expect(ids.seq == events.map(\.seq))
            #expect(try reader.readColumns(block: 0, []).rowCount == 300)
            // Sizes add up to the file.
            let sizes = reader.columnSizes()
            #expect(Set(sizes.keys) == Set(PartColumn.required))
            let chunkBytes = sizes.values.reduce(0) { $0 + $1.compressed }
            #expect(PartFormat.headerSize + chunkBytes + reader.metadata.footerBytes + PartFormat.trailerSize == reader.metadata.fileBytes)
            // The decoded bytes a merge estimates its memory from, counted once when the part opens.
            #expect(reader.rawColumnBytes == sizes.values.reduce(0) { $0 + $1.raw } && reader.rawColumnBytes > 0)
            #expect(throws: VigilError.self) { try reader.readColumns(block: 1, [.tenant]) }
            #expect(throws: VigilError.self) { try reader.readColumns(block: -1, [.tenant]) }
        }
    }

    @Test("a closed reader refuses reads; concurrent readers agree")
    func closeAndConcurrency() async throws {
        let events = PartEvents.realistic(count: 5_000)
        let directory = PartTestSupport.makeDirectory()
        defer { PartTestSupport.removeDirectory(directory) }
        let path = directory + "/part"
        _ = try PartWriter.write(events, to: path, options: Self.options(rowsPerBlock: 500))
        let reader = try PartReader(path: path)
        let expected = try PartTestSupport.readAll(path)
        let results = try await withThrowingTaskGroup(of: [AuditEvent].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var events: [AuditEvent] = []
                    for block in reader.blocks.indices { events += try reader.events(block: block) }
                    return events
                }
            }
            var all: [[AuditEvent]] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.allSatisfy { $0 == expected })
        reader.close()
        reader.close()
        PartTestSupport.expectError(.failedPrecondition) { _ = try reader.events(block: 0) }
    }

    @Test("writing leaves no temporary file, replaces the target, and cleans up after errors")
    func durableWrite() throws {
        var rng = SplitMix64(seed: 4)
        let events = (0..<100).map { _ in PartEvents.random(&rng) }
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/p.vprt"
            _ = try PartWriter.write(events, to: path)
            #expect(try FileIO.list(directory) == ["p.vprt"])
            // A leftover temporary file from a crash is replaced, then renamed away.
            PartTestSupport.writeFile(path + ".tmp", [1, 2, 3])
            _ = try PartWriter.write(Array(events.prefix(10)), to: path)
            #expect(try FileIO.list(directory) == ["p.vprt"])
            #expect(try PartReader(path: path).metadata.rowCount == 10)
            // Refused options write nothing.
            for change: (inout PartWriter.Options) -> Void in [
                { $0.rowsPerBlock = 0 }, { $0.rowsPerBlock = 65_537 }, { $0.compressionLevel = 10 },
                { $0.compressionLevel = -2 }, { $0.maxBlockBytes = 0 },
            ] {
                var options = PartWriter.Options()
                change(&options)
                PartTestSupport.expectError(.invalidArgument) {
                    _ = try PartWriter.write(events, to: directory + "/refused", options: options)
                }
            }
            // An unrepresentable event is refused and its temporary file removed.
            var bad = events[0]
            bad.outcome = .UNRECOGNIZED(Int(Int32.max) + 1)
            PartTestSupport.expectError(.invalidArgument) { _ = try PartWriter.write(events + [bad], to: directory + "/bad") }
            #expect(try FileIO.list(directory) == ["p.vprt"])
        }
        // A directory that does not exist: UNAVAILABLE, nothing created.
        PartTestSupport.expectError(.unavailable) {
            _ = try PartWriter.write(events, to: "/tmp/vigil-no-such-directory-\(getpid())/p")
        }
    }
}
