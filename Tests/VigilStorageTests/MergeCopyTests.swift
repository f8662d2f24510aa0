import Foundation
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Merges that copy, as they are stored, the blocks whose rows they take
/// whole and in order (`PartFileWriter.appendStored`), and decode the rest.
@Suite("Merges that copy blocks")
struct MergeCopyTests {
    static let day: Int64 = 86_400_000_000_000

    static func options(_ directory: String, _ configure: (inout StorageOptions) -> Void = { _ in }) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.rowsPerBlock = 64
        options.mergeFanIn = 3
        configure(&options)
        return options
    }

    /// `parts` parts flushed one after another, `perPart` events each, the
    /// tenants taking turns: each part holds every tenant's events of a later
    /// stretch of the day from `base`, as a busy day's flushes do.
    static func flushedParts(
        _ store: ColumnarEventStore, base: Int64, parts: Int = 3, perPart: Int = 2_000, tenants: [String], spacing: Int64 = 1_000_000
    ) async throws {
        for part in 0..<parts {
            let batch = (0..<perPart).map { offset in
                let index = part * perPart + offset
                return engineEvent("actor-\(index % 97)", tenant: tenants[index % tenants.count], at: base + Int64(index) * spacing)
            }
            _ = try await store.append(batch, idempotencyKey: nil)
            try await store.flushNow()
        }
    }

    /// Every block's stored bytes in the store's parts.
    static func storedBlocks(_ store: ColumnarEventStore) throws -> [[UInt8]] {
        try store.snapshot().parts.flatMap { part in try part.reader.blocks.indices.map { try part.reader.storedBytes(block: $0) } }
    }

    @Test("a merge copies the blocks it takes whole, byte for byte; the rows, their order and the chain are those of a merge that encodes every block", arguments: [true, false])
    func copiedBlocksKeepEverything(copies: Bool) async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) { $0.mergeCopiesBlocks = copies }
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() / Self.day * Self.day - Self.day
            try await Self.flushedParts(store, base: base, tenants: ["acme", "globex", "initech", "umbrella", "wayne"])
            #expect(store.statistics.parts == 3)
            let before = try await allEvents(store)
            let inputBlocks = try Self.storedBlocks(store)
            // 2,000 rows a part, 400 of each tenant, in blocks of 64: 32 blocks a part.
            #expect(inputBlocks.count == 96)
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            let copied = store.statistics.mergeCopiedBlocks
            let unchanged = try Self.storedBlocks(store).filter(Set(inputBlocks).contains).count
            if copies {
                // Blocks holding one tenant's rows come whole; those where a
                // tenant's stretch ends (a third of them) are decoded.
                #expect(copied >= 48 && copied < 96, "\(copied) blocks copied")
            } else {
                #expect(copied == 0)
            }
            // Every copied block is in the merged part exactly as stored; no
            // encoded one is (a merge compresses more than a flush).
            #expect(unchanged == copied)
            #expect(try await allEvents(store) == before)
            #expect(try await allEvents(store, order: .oldestFirst, pageSize: 37) == before.reversed())
            try await store.close()
            let report = try IntegrityTestSupport.verify(directory)
            #expect(report.intact, "\(report.problems)")
            let reopened = try ColumnarEventStore(options: options)
            #expect(try await allEvents(reopened) == before)
            try await reopened.close()
        }
    }

    @Test("parts whose rows interleave in time copy no block: every block is decoded, the rows come in order")
    func interleavedPartsCopyNothing() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) { $0.mergeFanIn = 2 }
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() / Self.day * Self.day - Self.day
            for part in 0..<2 {
                // Even milliseconds, then odd ones.
                let batch = (0..<1_000).map { engineEvent("u\($0)", at: base + Int64(2 * $0 + part) * 1_000_000) }
                _ = try await store.append(batch, idempotencyKey: nil)
                try await store.flushNow()
            }
            let before = try await allEvents(store)
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            #expect(store.statistics.mergeCopiedBlocks == 0)
            let after = try await allEvents(store)
            #expect(after == before)
            #expect(after.map(\.occurredAt.unixNanos) == after.map(\.occurredAt.unixNanos).sorted(by: >))
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
        }
    }

    @Test("a block that may hold expired rows is decoded, not copied: the merge drops those rows and copies the kept tenant's blocks")
    func blocksWithExpiredRowsAreDecoded() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) {
                $0.mergeFanIn = 2
                $0.tenantRetentionNanos = ["short": 10 * Self.day]
            }
            let store = try ColumnarEventStore(options: options)
            // A day 20 days ago: "short" keeps 10 days, "keep" everything.
            let base = currentUnixNanos() / Self.day * Self.day - 20 * Self.day
            try await Self.flushedParts(store, base: base, parts: 2, perPart: 1_000, tenants: ["keep", "short"])
            let kept = try await allEvents(store).filter { $0.tenant == "keep" }
            #expect(kept.count == 1_000)
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            #expect(store.statistics.partEvents == 1_000)
            #expect(store.statistics.mergeCopiedBlocks > 0)
            #expect(try await allEvents(store) == kept)
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
        }
    }

    @Test("a damaged chunk in a block the merge would copy stops the merge with DATA_LOSS naming the part; the parts stay as they were")
    func damagedBlockIsNotCopied() async throws {
        try await withTemporaryDirectory { directory in
            let recorder = StorageEventRecorder()
            let options = Self.options(directory) {
                $0.mergeFanIn = 2
                $0.eventHandler = recorder.handler
            }
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() / Self.day * Self.day - Self.day
            try await Self.flushedParts(store, base: base, parts: 2, perPart: 1_000, tenants: ["acme"])
            let second = try #require(store.snapshot().parts.max { $0.entry.path < $1.entry.path })
            // One byte of block 3's action chunk, which nothing has read.
            let chunk = try #require(second.reader.blocks[3].columns[.action])
            let path = directory + "/" + second.entry.path
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            try handle.seek(toOffset: UInt64(chunk.offset + chunk.storedLength / 2))
            let byte = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: UInt64(chunk.offset + chunk.storedLength / 2))
            try handle.write(contentsOf: [byte ^ 0xFF])
            try handle.close()
            try await store.mergeNow()
            // The blocks before it were copied; the damaged one was checked and refused.
            #expect(store.statistics.mergeCopiedBlocks >= 3)
            #expect(store.statistics.parts == 2)
            #expect(recorder.unreadableParts == [path])
            let files = try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts")
            #expect(files.filter { $0.hasSuffix(".tmp") }.isEmpty)
            try await store.close()
        }
    }

    @Test("closing the store while a merge copies blocks stops it between windows: its inputs stay, no file of it is left")
    func closeDuringCopyingMerge() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) {
                $0.mergeFanIn = 2
                $0.rowsPerBlock = 16
                $0.mergeIdleNanos = .max
            }
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() / Self.day * Self.day - Self.day
            try await Self.flushedParts(store, base: base, parts: 2, perPart: 3_000, tenants: ["acme"])
            try await PartMergeTests.closeInTheMiddleOfMerge(store, options)
            #expect(store.statistics.mergeCopiedBlocks > 0)
        }
    }

    @Test("copied rows count toward a merge's windows (8 for one encoded row): a segment sealed meanwhile is flushed between them, not after the merge")
    func copyingMergeYieldsBetweenWindows() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) {
                $0.mergeFanIn = 2
                $0.rowsPerBlock = 16
                $0.segmentMaxRows = 100
                $0.mergeIdleNanos = .max
            }
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() / Self.day * Self.day - Self.day
            try await Self.flushedParts(store, base: base, parts: 2, perPart: 3_000, tenants: ["acme"])
            #expect(store.statistics.parts == 2)
            // 100 events: the active segment reaches segmentMaxRows and is sealed.
            let late = (0..<100).map { engineEvent("late-\($0)", at: base + Self.day / 2 + Int64($0)) }
            let count = try await PartMergeTests.mergeSealingAtFirstWindow(store, late: late)
            // 6,000 rows, nearly all copied (one tenant, parts apart in time),
            // count as about 750 in windows of 16 × 8 rows: several windows.
            #expect(count >= 3)
            #expect(store.statistics.mergeCopiedBlocks >= 370)
            let events = try await allEvents(store)
            #expect(events.count == 6_100)
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
        }
    }
}
