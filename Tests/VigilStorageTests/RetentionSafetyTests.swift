import Foundation
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// Retention removes parts by their index (MANIFEST entry and footer), which
/// is checksummed, not signed: before a part goes, its rows must be expired
/// and the events a cut summarises must verify against the chain.
@Suite("Retention trusts rows and the chain, not the index")
struct RetentionSafetyTests {
    static let day: Int64 = 86_400_000_000_000

    /// Seqs 1…30 twenty days old (an hour apart: a part per day they span),
    /// 31…60 an hour old (one part), in a store with a 10-day retention.
    static func store(_ directory: String, recorder: StorageEventRecorder) async throws -> (ColumnarEventStore, recent: String) {
        let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
            $0.retentionNanos = 10 * day
            $0.eventHandler = recorder.handler
        })
        _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * day), idempotencyKey: nil)
        try await store.flushNow()
        _ = try await store.append((0..<30).map { engineEvent("new/\($0)", at: currentUnixNanos() - 3_600_000_000_000 + Int64($0)) }, idempotencyKey: nil)
        try await store.flushNow()
        let recent = try #require(store.snapshot().parts.first { $0.entry.minSeq == 31 }).entry.path
        return (store, recent)
    }

    @Test("a part whose index was edited to look expired (footer and MANIFEST entry, checksums right) is kept and reported; the expired part goes")
    func forgedIndex() async throws {
        try await withTemporaryDirectory { directory in
            let (store, recent) = try await Self.store(directory, recorder: StorageEventRecorder())
            try await store.close()
            // The index says twenty days old; the rows still say an hour.
            let old = currentUnixNanos() - 20 * Self.day
            let path = directory + "/" + recent
            let reader = try PartReader(path: path)
            let file = try Tamper.readFile(path)
            let trailerAt = file.count - PartFormat.trailerSize
            let trailer = try withBytes(Array(file[trailerAt...])) { (raw) throws(PartFormatError) in try PartFormat.readTrailer(raw, offset: trailerAt) }
            let metadata = reader.metadata
            let footer = PartFooter(
                rowCount: metadata.rowCount, minOccurredAt: old, maxOccurredAt: old + 1, minSeq: metadata.minSeq, maxSeq: metadata.maxSeq,
                createdAt: metadata.createdAt, level: metadata.level, generation: metadata.generation, rowsPerBlock: metadata.rowsPerBlock,
                tenants: metadata.tenants, blocks: reader.blocks.map { Tamper.block($0, statistics: $0.statistics, occurredAt: old...(old + 1)) })
            reader.close()
            let footerBytes = footer.encode()
            try Tamper.writeFile(
                path,
                Array(file[..<trailer.footerOffset]) + footerBytes
                    + PartFormat.trailer(footerOffset: trailer.footerOffset, footerLength: footerBytes.count, footerChecksum: CRC32C.checksum(footerBytes)))
            var manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: directory + "/MANIFEST")
            let index = try #require(manifest.parts.firstIndex { $0.path == recent })
            manifest.parts[index].minOccurredAt = old
            manifest.parts[index].maxOccurredAt = old + 1
            try ChecksummedFile.write(manifest, magic: ColumnarEventStore.manifestMagic, to: directory + "/MANIFEST")

            let recorder = StorageEventRecorder()
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.eventHandler = recorder.handler
            })
            try await reopened.retainNow(now: currentUnixNanos())
            #expect(reopened.snapshot().parts.map(\.entry.path) == [recent], "the old part goes, the forged one stays")
            #expect(reopened.chainCut()?.seq == 30)
            #expect(recorder.unreadableParts == [path])
            try await reopened.close()
        }
    }

    @Test("events rewritten to look expired (their stored leaves kept) are not removed: the chain they would leave does not verify")
    func alteredEvents() async throws {
        try await withTemporaryDirectory { directory in
            let (store, recent) = try await Self.store(directory, recorder: StorageEventRecorder())
            try await store.close()
            let old = currentUnixNanos() - 20 * Self.day
            try Tamper.rewrite(directory + "/" + recent) { events, _ in
                for index in events.indices { events[index].occurredAt = .init(unixNanos: old + Int64(index)) }
            }
            let recorder = StorageEventRecorder()
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.eventHandler = recorder.handler
            })
            try await reopened.retainNow(now: currentUnixNanos())
            #expect(reopened.snapshot().parts.map(\.entry.path) == [recent], "the altered part stays for verify to name")
            #expect(reopened.chainCut()?.seq == 30, "the genuine old part still goes")
            #expect(recorder.unreadableParts == [directory + "/" + recent])
            try await reopened.close()
            let report = try IntegrityTestSupport.verify(directory)
            #expect(!IntegrityTestSupport.problems(report, .altered).isEmpty, "\(IntegrityTestSupport.describe(report))")
        }
    }
}
