import Foundation
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Merges that read their parts a block at a time and write the merged part
/// a window at a time.
@Suite("Streaming merges")
struct PartMergeTests {
    static func writerOptions(rowsPerBlock: Int) -> PartWriter.Options {
        var options = PartWriter.Options()
        options.rowsPerBlock = rowsPerBlock
        options.createdAt = 1_780_000_000_000_000_000
        return options
    }

    /// Random events of every shape (awkward tenants, equal keys, no times)
    /// in the order a part holds them.
    static func sortedEvents(count: Int, seed: UInt64) -> [AuditEvent] {
        var rng = SplitMix64(seed: seed)
        return PartTestSupport.sortedLikePart((0..<count).map { _ in PartEvents.random(&rng, tenants: 12) })
    }

    @Test("a part written a window of whole tasks at a time, on one core or on all, is the part written at once, byte for byte")
    func windowsOfTasksWriteTheSameBytes() throws {
        let events = Self.sortedEvents(count: 2_000, seed: 7)
        let leaves = (0..<events.count).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        let options = Self.writerOptions(rowsPerBlock: 32)
        let window = PartFileWriter.windowRows(options)
        #expect(window == 256)
        try PartTestSupport.withDirectory { directory in
            _ = try PartWriter.write(rows: events, leaves: leaves, to: directory + "/once.part", options: options)
            let writer = try PartFileWriter(path: directory + "/windows.part", options: options)
            for start in stride(from: 0, to: events.count, by: window) {
                let range = start..<min(start + window, events.count)
                try writer.append(Array(events[range]), leaves: Array(leaves[range]))
            }
            let metadata = try writer.finish()
            // Windows of three tasks, each encoded on every core.
            let parallel = try PartFileWriter(path: directory + "/parallel.part", options: options)
            for start in stride(from: 0, to: events.count, by: 3 * window) {
                let range = start..<min(start + 3 * window, events.count)
                try parallel.append(Array(events[range]), leaves: Array(leaves[range]), parallel: true)
            }
            _ = try parallel.finish()
            let once = PartTestSupport.readFile(directory + "/once.part")
            #expect(PartTestSupport.readFile(directory + "/windows.part") == once)
            #expect(PartTestSupport.readFile(directory + "/parallel.part") == once)
            #expect(metadata.fileBytes == once.count)
            #expect(metadata.rowCount == events.count)
            #expect(!FileIO.exists(directory + "/windows.part.tmp"))
        }
    }

    @Test("windows of any size make a part that reads back as its rows, each block's tenants where the part's list says", arguments: [1, 37, 97, 500])
    func windowsOfAnySize(window: Int) throws {
        let events = Self.sortedEvents(count: 1_500, seed: UInt64(window))
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.vprt"
            let writer = try PartFileWriter(path: path, options: Self.writerOptions(rowsPerBlock: 64))
            for start in stride(from: 0, to: events.count, by: window) {
                try writer.append(Array(events[start..<min(start + window, events.count)]), leaves: nil)
            }
            let written = try writer.finish()
            let reader = try PartReader(path: path)
            defer { reader.close() }
            #expect(reader.metadata == written)
            #expect(try PartTestSupport.readAll(path) == events)
            let tenants = events.map(\.tenant).reduce(into: [String]()) { list, tenant in
                if list.last.map({ !sameUTF8($0, tenant) }) ?? true { list.append(tenant) }
            }
            #expect(written.tenants.count == tenants.count)
            #expect(zip(written.tenants, tenants).allSatisfy { sameUTF8($0, $1) })
            for block in reader.blocks {
                let listed = Array(written.tenants[block.tenantIndexes])
                #expect(listed.count == block.tenants.count && zip(listed, block.tenants).allSatisfy { sameUTF8($0, $1) })
                let rows = try reader.events(block: block.index).map(\.tenant)
                #expect(sameUTF8(rows.first!, block.tenants.first!) && sameUTF8(rows.last!, block.tenants.last!))
            }
        }
    }

    @Test("a window that sorts before the rows already written is refused with INTERNAL; no file is left")
    func windowsOutOfOrder() throws {
        let events = Self.sortedEvents(count: 300, seed: 3)
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.vprt"
            let writer = try PartFileWriter(path: path, options: Self.writerOptions(rowsPerBlock: 64))
            try writer.append(Array(events[150...]), leaves: nil)
            #expect(FileIO.exists(path + ".tmp"))
            let error = #expect(throws: VigilError.self) { try writer.append(Array(events[..<150]), leaves: nil) }
            #expect(error?.code == .internal)
            #expect(!FileIO.exists(path + ".tmp") && !FileIO.exists(path))
            // Nothing more is taken.
            #expect(throws: VigilError.self) { try writer.append(Array(events[299...]), leaves: nil) }
            let finished = #expect(throws: VigilError.self) { _ = try writer.finish() }
            #expect(finished?.code == .internal)
            #expect(!FileIO.exists(path))
        }
    }

    @Test("leaves in some windows and not in others are refused with INTERNAL; leaves that do not match the rows with INVALID_ARGUMENT")
    func windowsWithAndWithoutLeaves() throws {
        let events = Self.sortedEvents(count: 200, seed: 5)
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.vprt"
            let mixed = try PartFileWriter(path: path, options: Self.writerOptions(rowsPerBlock: 64))
            try mixed.append(Array(events[..<100]), leaves: [UInt32](repeating: 1, count: 100))
            let missing = #expect(throws: VigilError.self) { try mixed.append(Array(events[100...]), leaves: nil) }
            #expect(missing?.code == .internal)
            #expect(!FileIO.exists(path + ".tmp"))

            let miscounted = try PartFileWriter(path: path, options: Self.writerOptions(rowsPerBlock: 64))
            let short = #expect(throws: VigilError.self) { try miscounted.append(events, leaves: [1, 2, 3]) }
            #expect(short?.code == .invalidArgument)
            #expect(!FileIO.exists(path + ".tmp"))
        }
    }

    @Test("a writer given up on removes its temporary file; options out of range are refused with INVALID_ARGUMENT")
    func abandonedWriter() throws {
        let events = Self.sortedEvents(count: 100, seed: 9)
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/part.vprt"
            do {
                let writer = try PartFileWriter(path: path, options: Self.writerOptions(rowsPerBlock: 64))
                try writer.append(events, leaves: nil)
                #expect(FileIO.exists(path + ".tmp"))
            }
            #expect(!FileIO.exists(path + ".tmp") && !FileIO.exists(path))
            var options = Self.writerOptions(rowsPerBlock: 0)
            let rows = #expect(throws: VigilError.self) { _ = try PartFileWriter(path: path, options: options) }
            #expect(rows?.code == .invalidArgument)
            options.rowsPerBlock = 64
            options.compressionLevel = 10
            let level = #expect(throws: VigilError.self) { _ = try PartFileWriter(path: path, options: options) }
            #expect(level?.code == .invalidArgument)
            #expect(!FileIO.exists(path + ".tmp"))
        }
    }

    @Test("parts merged run by run give every row once, in part order, in runs that never pass another part's next row", arguments: [1, 7, 1_000])
    func runsInPartOrder(maxRows: Int) throws {
        var rng = SplitMix64(seed: UInt64(maxRows))
        // Five parts: overlapping tenants and times, one with a tenant of its own, one empty.
        var inputs = (0..<4).map { _ in (0..<Int.random(in: 50...600, using: &rng)).map { _ in PartEvents.random(&rng, tenants: 6) } }
        inputs[2] += (0..<40).map { _ in
            var event = PartEvents.random(&rng)
            event.tenant = "only-in-part-2"
            return event
        }
        inputs.append([])
        let (merged, runCount) = try Self.mergeRuns(of: inputs, rowsPerBlock: 33, maxRows: maxRows)
        let expected = PartTestSupport.sortedLikePart(inputs.flatMap { $0 })
        #expect(merged.count == expected.count)
        #expect(merged == expected)
        #expect(runCount >= (merged.count + maxRows - 1) / maxRows)
    }

    /// Writes each of `inputs` as a part and merges them run by run; checks
    /// every run's size. Returns the rows in the order the runs gave them.
    static func mergeRuns(of inputs: [[AuditEvent]], rowsPerBlock: Int, maxRows: Int) throws -> (events: [AuditEvent], runs: Int) {
        let (events, runs, _) = try mergeSteps(of: inputs, rowsPerBlock: rowsPerBlock, maxRows: maxRows, wholeBlocks: false)
        return (events, runs)
    }

    /// As `mergeRuns`, taking every block that may come whole when
    /// `wholeBlocks`; such a block's rows are read from its part. Returns
    /// the rows in the order the steps gave them, the runs and the whole blocks.
    static func mergeSteps(
        of inputs: [[AuditEvent]], rowsPerBlock: Int, maxRows: Int, wholeBlocks: Bool
    ) throws -> (events: [AuditEvent], runs: Int, wholeBlocks: Int) {
        try PartTestSupport.withDirectory { directory in
            let readers = try inputs.enumerated().map { index, events in
                let path = directory + "/in-\(index).vprt"
                _ = try PartWriter.write(events, to: path, options: writerOptions(rowsPerBlock: rowsPerBlock))
                return try PartReader(path: path)
            }
            defer { readers.forEach { $0.close() } }
            var runs = PartMergeRuns(readers)
            var merged: [AuditEvent] = []
            var runCount = 0
            var wholeCount = 0
            while let step = try runs.next(maxRows: maxRows, takesWhole: { _, _ in wholeBlocks }) {
                switch step {
                case .rows(let run):
                    #expect(!run.rows.isEmpty && run.rows.count <= maxRows)
                    merged += run.rows.map(run.block.event(at:))
                    runCount += 1
                case .block(let part, let index, let first, let last):
                    #expect(wholeBlocks, "a whole block, which was not asked for")
                    let rows = try readers[part].events(block: index)
                    #expect(first.tenant == rows.first?.tenant && first.seq == rows.first?.seq)
                    #expect(first.occurredAt == rows.first?.occurredAt.unixNanos)
                    #expect(last.tenant == rows.last?.tenant && last.seq == rows.last?.seq)
                    #expect(last.occurredAt == rows.last?.occurredAt.unixNanos)
                    merged += try readers[part].events(block: index)
                    wholeCount += 1
                }
            }
            #expect(try runs.next(maxRows: maxRows) == nil)
            return (merged, runCount, wholeCount)
        }
    }

    @Test("taking every block that may come whole, the rows still come once each in part order: a block comes whole only when all of it precedes every other part's next row", arguments: [1, 2, 3])
    func wholeBlocksInPartOrder(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        // Four parts of three tenants' events of successive stretches of
        // time that overlap a little (a part's last 200 ms and the next
        // part's first), awkward events among them, and an empty part.
        var seq: UInt64 = 0
        var inputs: [[AuditEvent]] = (0..<4).map { part in
            ["acme", "globex", "initech"].flatMap { tenant in
                (0..<Int.random(in: 100...400, using: &rng)).map { _ in
                    var event = engineEvent("u\(rng.next() % 50)", tenant: tenant, at: Int64(part * 1_000 + Int(rng.next() % 1_200)) * 1_000_000)
                    seq += 1
                    event.seq = seq
                    return event
                }
            }
        }
        inputs[1] += (0..<30).map { _ in PartEvents.random(&rng, tenants: 6) }
        inputs.append([])
        let expected = PartTestSupport.sortedLikePart(inputs.flatMap { $0 })
        for maxRows in [7, 1_000] {
            let (merged, _, wholeCount) = try Self.mergeSteps(of: inputs, rowsPerBlock: 16, maxRows: maxRows, wholeBlocks: true)
            #expect(merged == expected)
            #expect(wholeCount > 0)
            // Nothing comes whole from parts that overlap everywhere: rows
            // taken in turns, 16 × 2k of them, so that each part's last block
            // is full and meets the other part's rows too.
            let alternate = Array(expected.prefix(expected.count / 32 * 32))
            let (_, _, none) = try Self.mergeSteps(
                of: [alternate.enumerated().filter { $0.offset % 2 == 0 }.map(\.element), alternate.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)],
                rowsPerBlock: 16, maxRows: maxRows, wholeBlocks: true)
            #expect(none == 0)
        }
    }

    @Test("parts flushed one after another (each tenant's events of successive stretches of time) merge in a run per tenant, part and block")
    func flushedPartsMergeInLongRuns() throws {
        let tenants = ["acme", "globex", "initech", "umbrella"]
        let inputs = (0..<3).map { part in
            tenants.flatMap { tenant in
                (0..<50).map { index in engineEvent("u\(index)", tenant: tenant, at: Int64(part * 1_000 + index)) }
            }
        }
        let (merged, runCount) = try Self.mergeRuns(of: inputs, rowsPerBlock: 64, maxRows: 10_000)
        #expect(merged == PartTestSupport.sortedLikePart(inputs.flatMap { $0 }))
        // 200 rows a part in blocks of 64: the 12 (tenant, part) stretches, cut where 3 blocks end inside them.
        #expect(runCount == 12 + 3 * 3)
    }

    @Test("a part whose rows go back in time (edited by hand) stops the merge with DATA_LOSS naming it, whether its block is decoded or would be copied whole", arguments: [false, true])
    func rowsOutOfOrder(wholeBlocks: Bool) throws {
        var events = Self.sortedEvents(count: 200, seed: 13)
        for index in events.indices {
            events[index].tenant = "acme"
            events[index].occurredAt = PartTestSupport.timestamp(1_780_000_000_000_000_000 + Int64(index))
        }
        events.swapAt(150, 151)
        let error = try Self.mergeError(writtenInInputOrder: events, as: "moved.vprt", wholeBlocks: wholeBlocks)
        #expect(error?.code == .dataLoss)
        #expect(error?.message.contains("moved.vprt is out of its order at block 0 row 151") == true, "\(String(describing: error))")
    }

    /// What merging the part `events` make, written in their order as given
    /// (sorted or not), throws.
    static func mergeError(writtenInInputOrder events: [AuditEvent], as name: String, wholeBlocks: Bool) throws -> VigilError? {
        try PartTestSupport.withDirectory { directory in
            try PartTestSupport.writeInInputOrder(events, to: directory + "/" + name)
            return try mergeError(reading: directory + "/" + name, wholeBlocks: wholeBlocks)
        }
    }

    /// What merging the part at `path` on its own throws.
    static func mergeError(reading path: String, wholeBlocks: Bool) throws -> VigilError? {
        let reader = try PartReader(path: path)
        defer { reader.close() }
        return #expect(throws: VigilError.self) {
            var runs = PartMergeRuns([reader])
            while try runs.next(maxRows: 100, takesWhole: { _, _ in wholeBlocks }) != nil {}
        }
    }

    @Test("a block whose rows lie outside the times its footer gives (edited, checksums made right) stops the merge with DATA_LOSS naming it, decoded or to be copied whole", arguments: [false, true])
    func rowsOutsideTheirRanges(wholeBlocks: Bool) throws {
        let start: Int64 = 1_780_000_000_000_000_000
        let events = (0..<100).map { index in
            var event = engineEvent("u\(index)", at: start + Int64(index))
            event.seq = UInt64(index + 1)
            return event
        }
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/edited.vprt"
            _ = try PartWriter.write(events, to: path, options: Self.writerOptions(rowsPerBlock: 64))
            // Block 1 (rows 64…99) said to hold block 0's times, earlier than
            // its rows': a merge would place it by them.
            let original = try PartReader(path: path)
            let zero = original.blocks[0]
            original.close()
            try Tamper.editBlockEntry(path, block: 1) { Tamper.block($0, statistics: $0.statistics, occurredAt: zero.minOccurredAt...zero.maxOccurredAt) }
            let error = try Self.mergeError(reading: path, wholeBlocks: wholeBlocks)
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains("block 1 of part \(path) holds a row (0) outside the time and seq ranges its metadata gives") == true, "\(String(describing: error))")
        }
    }

    @Test("a block whose footer entry lists a tenant its rows do not hold (edited, checksums made right) stops the merge with DATA_LOSS naming it, decoded or to be copied whole", arguments: [false, true])
    func tenantListWiderThanTheRows(wholeBlocks: Bool) throws {
        let start: Int64 = 1_780_000_000_000_000_000
        // 64 rows of "a" (block 0), then 36 of "b" (block 1).
        let events = (0..<100).map { index in
            var event = engineEvent("u\(index)", tenant: index < 64 ? "a" : "b", at: start + Int64(index))
            event.seq = UInt64(index + 1)
            return event
        }
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/edited.vprt"
            _ = try PartWriter.write(events, to: path, options: Self.writerOptions(rowsPerBlock: 64))
            let original = try PartReader(path: path)
            #expect(original.blocks[0].tenants == ["a"])
            original.close()
            // Block 0 said to hold "a" and "b".
            try Tamper.editBlockEntry(path, block: 0) { first in
                BlockMetadata(
                    index: 0, rowCount: first.rowCount, minOccurredAt: first.minOccurredAt, maxOccurredAt: first.maxOccurredAt,
                    minSeq: first.minSeq, maxSeq: first.maxSeq, tenantIndexes: 0..<2, tenants: ["a", "b"], columns: first.columns,
                    statistics: first.statistics.filter { $0.key != .tenant })
            }
            let edited = try PartReader(path: path)
            #expect(edited.blocks[0].tenants == ["a", "b"])
            edited.close()
            let error = try Self.mergeError(reading: path, wholeBlocks: wholeBlocks)
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains("block 0 of part \(path) lists tenants its rows do not begin and end with") == true, "\(String(describing: error))")
        }
    }

    @Test("a block whose tenants disagree with its part's tenant list stops the merge with DATA_LOSS, whether decoded or to be copied whole", arguments: [false, true])
    func tenantsOutOfOrder(wholeBlocks: Bool) throws {
        var events = Self.sortedEvents(count: 50, seed: 11)
        for index in events.indices { events[index].tenant = index % 2 == 0 ? "a" : "b" }
        // Written in input order, so rows go a, b, a, b: out of the part's order.
        let error = try Self.mergeError(writtenInInputOrder: events, as: "unsorted.vprt", wholeBlocks: wholeBlocks)
        #expect(error?.code == .dataLoss)
        #expect(error?.message.contains("holds tenant 'a' at row 2") == true, "\(String(describing: error))")
    }

    // MARK: In the store

    static func storeOptions(_ directory: String, _ configure: (inout StorageOptions) -> Void) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.mergeFanIn = 2
        configure(&options)
        return options
    }

    /// `count` events of one day, `batch` a call, flushed into a part.
    static func addPart(_ store: ColumnarEventStore, count: Int, first: Int, base: Int64) async throws {
        for start in stride(from: first, to: first + count, by: 1_000) {
            let batch = (start..<min(start + 1_000, first + count)).map { index in
                engineEvent("actor-\(index % 97)", tenant: "tenant-\(index % 5)", at: base + Int64(index) * 1_000_000)
            }
            _ = try await store.append(batch, idempotencyKey: nil)
        }
        try await store.flushNow()
    }

    /// A store in `options.directory` holding two parts of 300 events of
    /// yesterday (`base`: its midnight), each flushed on its own.
    static func storeWithTwoParts(_ options: StorageOptions) async throws -> (store: ColumnarEventStore, base: Int64) {
        let base = currentUnixNanos() / 86_400_000_000_000 * 86_400_000_000_000 - 86_400_000_000_000
        let store = try ColumnarEventStore(options: options)
        try await addPart(store, count: 300, first: 0, base: base)
        try await addPart(store, count: 300, first: 300, base: base)
        return (store, base)
    }

    /// Closes `store`, verifies its directory's chain, and checks that a
    /// reopened store reads `events` back.
    static func closeVerifyReopen(_ store: ColumnarEventStore, _ options: StorageOptions, expecting events: [AuditEvent]) async throws {
        try await store.close()
        #expect(try IntegrityTestSupport.verify(options.directory).intact)
        let reopened = try ColumnarEventStore(options: options)
        #expect(try await allEvents(reopened) == events)
        try await reopened.close()
    }

    @Test(
        "parts too large to hold in memory together are merged a block at a time, on one core or (without ingest) on all; the merged part keeps every event and the chain",
        arguments: [false, true])
    func partsLargerThanTheMergeMemory(idle: Bool) async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.storeOptions(directory) {
                $0.memoryBudgetBytes = 16 << 20
                $0.rowsPerBlock = 256
                $0.mergeIdleNanos = idle ? 0 : .max
            }
            let base = currentUnixNanos() / 86_400_000_000_000 * 86_400_000_000_000 - 86_400_000_000_000
            let store = try ColumnarEventStore(options: options)
            try await Self.addPart(store, count: 9_000, first: 0, base: base)
            try await Self.addPart(store, count: 9_000, first: 9_000, base: base)
            #expect(store.statistics.parts == 2)
            // What holding both parts' rows at once would take: more than a merge may use.
            let parts = store.snapshot().parts
            let allRows = parts.reduce(0) { $0 + Int($1.entry.rows) * 512 + $1.reader.rawColumnBytes * 2 }
            #expect(allRows > max(8 << 20, options.memoryBudgetBytes / 2))
            let before = try await allEvents(store)
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            #expect(store.snapshot().parts.first?.entry.level == 1)
            #expect(try await allEvents(store) == before)
            try await Self.closeVerifyReopen(store, options, expecting: before)
        }
    }

    @Test("a segment sealed in the middle of a merge is flushed between the merge's windows, not after the merge")
    func flushBetweenWindows() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.storeOptions(directory) {
                $0.rowsPerBlock = 16
                $0.segmentMaxRows = 100
                // Windows of encoded rows (MergeCopyTests counts copied ones).
                $0.mergeCopiesBlocks = false
            }
            let (store, base) = try await Self.storeWithTwoParts(options)
            // 100 events: the active segment reaches segmentMaxRows and is sealed.
            let late = (600..<700).map { engineEvent("late-\($0)", tenant: "tenant-\($0 % 5)", at: base + Int64($0) * 1_000_000) }
            let count = try await Self.mergeSealingAtFirstWindow(store, late: late)
            // 600 rows in windows of 16 × 8 rows (× the cores while nothing is in
            // memory): at least two windows and a last one.
            #expect(count >= 2)
            #expect(store.statistics.memoryEvents == 0)
            let levels = try await store.statistics().partLevels
            #expect(levels.map(\.level) == [0, 1])
            #expect(levels.map(\.events) == [100, 600])
            let events = try await allEvents(store)
            #expect(events.count == 700 && Set(events.map(\.seq)).count == 700)
            try await Self.closeVerifyReopen(store, options, expecting: events)
        }
    }

    /// Merges `store`'s parts, appending `late` (a segment's worth, sealed
    /// at once) at the merge's first window; checks that every later window
    /// found it flushed. Returns the windows the merge made.
    static func mergeSealingAtFirstWindow(_ store: ColumnarEventStore, late: [AuditEvent]) async throws -> Int {
        let windows = Mutex(0)
        let memoryAtLaterWindows = Mutex<[Int]>([])
        store.afterMergeWindow.withLock {
            $0 = { @Sendable in
                let first = windows.withLock { count in
                    count += 1
                    return count == 1
                }
                guard first else {
                    memoryAtLaterWindows.withLock { $0.append(store.statistics.memoryEvents) }
                    return
                }
                _ = try? await store.append(late, idempotencyKey: nil)
                #expect(store.statistics.sealedSegments == 1)
            }
        }
        try await store.mergeNow()
        let count = windows.withLock { $0 }
        #expect(memoryAtLaterWindows.withLock { $0 } == Array(repeating: 0, count: count - 1))
        return count
    }

    @Test("closing the store in the middle of a merge stops the merge: its inputs stay, no file of it is left")
    func closeDuringMerge() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.storeOptions(directory) {
                $0.rowsPerBlock = 16
                // Windows of encoded rows (copied blocks count for less).
                $0.mergeCopiesBlocks = false
            }
            let (store, _) = try await Self.storeWithTwoParts(options)
            try await Self.closeInTheMiddleOfMerge(store, options)
        }
    }

    /// Merges `store`'s two parts and closes it at the merge's first window;
    /// checks that the merge stopped there: its inputs stay, as they read
    /// before, and no file of it is left.
    static func closeInTheMiddleOfMerge(_ store: ColumnarEventStore, _ options: StorageOptions) async throws {
        let before = try await allEvents(store)
        let closing = Mutex<Task<Void, any Error>?>(nil)
        store.afterMergeWindow.withLock {
            $0 = { @Sendable in
                guard closing.withLock({ $0 }) == nil else { return }
                // close() marks the store closed before it waits for maintenance.
                let task = Task { try await store.close() }
                closing.withLock { $0 = task }
                while !store.isClosed { await Task.yield() }
            }
        }
        try await store.mergeNow()
        try await #require(closing.withLock { $0 }).value
        let files = try FileManager.default.subpathsOfDirectory(atPath: options.directory + "/parts")
        #expect(files.filter { $0.hasSuffix(".part") }.count == 2)
        #expect(files.filter { $0.hasSuffix(".tmp") }.isEmpty)
        let reopened = try ColumnarEventStore(options: options)
        #expect(reopened.statistics.parts == 2)
        #expect(try await allEvents(reopened) == before)
        try await reopened.close()
    }

    @Test("a backup asked for in the middle of a merge pins its files between two windows, not after the merge")
    func backupBetweenWindows() async throws {
        try await withTemporaryDirectory { directory in
            let destination = directory + "-backup"
            defer { try? FileManager.default.removeItem(atPath: destination) }
            let options = Self.storeOptions(directory) {
                $0.rowsPerBlock = 16
                // Windows of encoded rows (copied blocks count for less).
                $0.mergeCopiesBlocks = false
            }
            let (store, _) = try await Self.storeWithTwoParts(options)
            let before = try await allEvents(store)
            let backup = Mutex<Task<BackupResult, any Error>?>(nil)
            let waitingAtSecondWindow = Mutex<Int?>(nil)
            store.afterMergeWindow.withLock {
                $0 = { @Sendable in
                    if backup.withLock({ $0 }) == nil {
                        let request = BackupOptions(destination: destination)
                        let task = Task { try await store.backup(request) }
                        backup.withLock { $0 = task }
                        // Until the backup waits for the maintenance lock the merge holds.
                        while store.maintenanceLock.waiterCount == 0 { await Task.yield() }
                    } else if waitingAtSecondWindow.withLock({ $0 }) == nil {
                        waitingAtSecondWindow.withLock { $0 = store.maintenanceLock.waiterCount }
                    }
                }
            }
            try await store.mergeNow()
            // By the second window the backup had had the lock (it would still wait without the yield).
            #expect(waitingAtSecondWindow.withLock { $0 } == 0)
            let result = try await #require(backup.withLock { $0 }).value
            #expect(result.cutSeq == 600)
            #expect(store.statistics.parts == 1)
            try await store.close()
            // The backup holds the two input parts: it was taken before the merge's commit.
            let pinnedParts = try FileManager.default.subpathsOfDirectory(atPath: destination).filter { $0.hasSuffix(".part") }
            #expect(pinnedParts.count == 2)
            let restored = try ColumnarEventStore(options: Self.storeOptions(destination) { _ in })
            #expect(try await allEvents(restored) == before)
            try await restored.close()
        }
    }

    @Test("retention that removes a merge's input while the merge is paused: the merge commits nothing, the expired rows do not come back")
    func retentionBetweenWindows() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let options = Self.storeOptions(directory) {
                $0.rowsPerBlock = 16
                $0.tenantRetentionNanos = ["short": 10 * day]
                // Windows of encoded rows (copied blocks count for less).
                $0.mergeCopiesBlocks = false
            }
            let base = currentUnixNanos() / day * day - day
            let store = try ColumnarEventStore(options: options)
            _ = try await store.append((0..<300).map { engineEvent("s\($0)", tenant: "short", at: base + Int64($0)) }, idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append((0..<300).map { engineEvent("k\($0)", tenant: "keep", at: base + Int64($0)) }, idempotencyKey: nil)
            try await store.flushNow()
            let retention = Mutex<Task<Void, any Error>?>(nil)
            store.afterMergeWindow.withLock {
                $0 = { @Sendable in
                    guard retention.withLock({ $0 }) == nil else { return }
                    // 20 days on: every "short" event has expired, so its whole part goes.
                    let task = Task { try await store.retainNow(now: base + 20 * day) }
                    retention.withLock { $0 = task }
                    while store.maintenanceLock.waiterCount == 0 { await Task.yield() }
                }
            }
            try await store.mergeNow()
            try await #require(retention.withLock { $0 }).value
            let parts = store.snapshot().parts
            #expect(parts.count == 1 && parts.first?.entry.level == 0 && parts.first?.entry.rows == 300)
            let kept = try await allEvents(store)
            #expect(kept.count == 300 && kept.allSatisfy { $0.tenant == "keep" })
            try await store.close()
            let files = try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts")
            #expect(files.filter { $0.hasSuffix(".part") }.count == 1)
            #expect(files.filter { $0.hasSuffix(".tmp") }.isEmpty)
            let reopened = try ColumnarEventStore(options: options)
            #expect(try await allEvents(reopened) == kept)
            try await reopened.close()
        }
    }

    @Test("the merge backlog counts the parts a merge can still take, not those too large to merge with any other")
    func mergeBacklog() async throws {
        try await withTemporaryDirectory { directory in
            func options(maxRows: Int) -> StorageOptions {
                Self.storeOptions(directory) {
                    $0.rowsPerBlock = 16
                    $0.mergeMaxRows = maxRows
                }
            }
            let (store, base) = try await Self.storeWithTwoParts(options(maxRows: 350))
            try await Self.addPart(store, count: 100, first: 600, base: base)
            // 300 + 100 rows is over 350: no part merges with any other.
            #expect(try await store.statistics().mergeBacklogParts == 0)
            try await store.mergeNow()
            #expect(store.statistics.parts == 3)
            try await store.close()

            let roomier = try ColumnarEventStore(options: options(maxRows: 400))
            // 300 + 100 fits, 300 + 300 does not: each 300 can take the 100.
            #expect(try await roomier.statistics().mergeBacklogParts == 3)
            try await roomier.mergeNow()
            #expect(roomier.statistics.parts == 2)
            #expect(try await roomier.statistics().mergeBacklogParts == 0)
            try await roomier.close()
        }
    }
}

extension PartMergeTests {
    @Test("with an archive, a merge keeps a tenant's expired events (hidden from queries) so that they reach the archive with their part")
    func mergeKeepsExpiredRowsForTheArchive() async throws {
        try await withTemporaryDirectory { directory in
            let archive = directory + "-archive"
            defer { try? FileManager.default.removeItem(atPath: archive) }
            let day: Int64 = 86_400_000_000_000
            let now = currentUnixNanos()
            let base = (now - 3 * day) / day * day
            let store = try ColumnarEventStore(options: Self.storeOptions(directory) {
                $0.retentionNanos = 30 * day
                $0.tenantRetentionNanos = ["short": day]
                $0.archiveDirectory = archive
            })
            _ = try await store.append([engineEvent("s-1", tenant: "short", at: base + 1), engineEvent("a-1", tenant: "acme", at: base + 2)], idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append([engineEvent("s-2", tenant: "short", at: base + 3), engineEvent("a-2", tenant: "acme", at: base + 4)], idempotencyKey: nil)
            try await store.flushNow()
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            #expect(Set(try await allEvents(store).map(\.actor.id)) == ["a-1", "a-2"], "expired rows stay hidden")
            // Forty days on, the whole part expires and goes to the archive, short's events with it.
            try await store.retainNow(now: now + 40 * day)
            let archived = try FileManager.default.subpathsOfDirectory(atPath: archive).filter { $0.hasSuffix(".part") }
            #expect(archived.count == 1)
            let reader = try PartReader(path: archive + "/" + archived[0])
            let actors = try (0..<reader.blocks.count).flatMap { try reader.events(block: $0) }.map(\.actor.id)
            #expect(Set(actors) == ["s-1", "s-2", "a-1", "a-2"])
            try await store.close()
        }
    }

    @Test("a merge whose rows mostly expired holds only the blocks of rows it keeps, not every block it read; the kept rows and the chain survive")
    func mergeOfMostlyExpiredRowsStaysSmall() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let base = (currentUnixNanos() - 20 * day) / day * day
            let options = Self.storeOptions(directory) {
                $0.retentionNanos = nil
                $0.tenantRetentionNanos = ["short": day]
                $0.rowsPerBlock = 64
            }
            let store = try ColumnarEventStore(options: options)
            // Two parts of one day 20 days ago: 3,200 expired rows of "short"
            // (50 blocks each) and 5 rows of "keep", kept for ever.
            for part in 0..<2 {
                var batch = (0..<3_200).map { engineEvent("s-\(part)-\($0)", tenant: "short", at: base + Int64($0) * 1_000_000) }
                batch += (0..<5).map { engineEvent("k-\(part)-\($0)", tenant: "keep", at: base + Int64($0) * 1_000_000) }
                _ = try await store.append(batch, idempotencyKey: nil)
                try await store.flushNow()
            }
            #expect(store.statistics.parts == 2)
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            // A block is held once per run of rows taken from it: the 10 kept
            // rows alternate between the parts (10 runs); the 6,400 expired
            // rows came in 6,400 runs of 100 blocks.
            #expect(store.mergeWindowBlocksPeak.withLock { $0 } <= 10)
            #expect(Set(try await allEvents(store).map(\.actor.id)) == Set((0..<2).flatMap { part in (0..<5).map { "k-\(part)-\($0)" } }))
            let report = try await store.verify(VerificationOptions())
            #expect(report.intact && report.eventsExpired == 6_400, "\(report.problems.map(\.line))")
            try await store.close()
        }
    }
}
