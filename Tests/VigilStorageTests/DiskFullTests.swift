import Foundation
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// What a store reported through `StorageOptions.eventHandler`.
final class StorageEventRecorder: Sendable {
    private let events = Mutex<[StorageEvent]>([])

    var handler: @Sendable (StorageEvent) -> Void {
        { event in self.events.withLock { $0.append(event) } }
    }

    var refusals: [String] {
        events.withLock { $0.compactMap { if case .writesRefused(let reason) = $0 { reason } else { nil } } }
    }

    var resumptions: Int {
        events.withLock { $0.filter { if case .writesResumed = $0 { true } else { false } }.count }
    }

    var unreadableParts: [String] {
        events.withLock { $0.compactMap { if case .partUnreadable(let path, _) = $0 { path } else { nil } } }
    }

    /// `.eventsExpired` as (events, parts, statements).
    var expirations: [(events: UInt64, parts: Int, statements: Int)] {
        events.withLock { $0.compactMap { if case .eventsExpired(let count, let parts, let statements) = $0 { (count, parts, statements) } else { nil } } }
    }

    var maintenanceFailures: [VigilError] {
        events.withLock { $0.compactMap { if case .maintenanceFailed(let error, _) = $0 { error } else { nil } } }
    }
}

/// A data directory on a small tmpfs that really fills up: ingest is refused
/// with a clear reason, queries go on, nothing acknowledged is lost, and the
/// store recovers by itself when space returns.
@Suite("A full or failing data disk", .serialized)
struct DiskFullTests {
    static let batchSize = 50

    func batch(_ tag: String) -> [AuditEvent] {
        let now = currentUnixNanos()
        return (0..<Self.batchSize).map { engineEvent("\(tag)/\($0)", at: now - Int64($0) * 1_000_000) }
    }

    func options(_ directory: String, recorder: StorageEventRecorder, _ configure: (inout StorageOptions) -> Void = { _ in }) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.minFreeDiskBytes = 0
        options.eventHandler = recorder.handler
        configure(&options)
        return options
    }

    /// Every stored event's actor id.
    func storedActors(_ store: ColumnarEventStore) async throws -> [String] {
        try await allEvents(store, pageSize: 5_000).map(\.actor.id)
    }

    func expectExactly(_ batches: [String], in actors: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = batches.flatMap { tag in (0..<Self.batchSize).map { "\(tag)/\($0)" } }
        #expect(actors.count == expected.count, "every acknowledged event exactly once", sourceLocation: sourceLocation)
        #expect(Set(actors) == Set(expected), sourceLocation: sourceLocation)
    }

    /// Files that no MANIFEST lists, or that an unfinished write left behind.
    func strayFiles(_ directory: String) throws -> [String] {
        var manifest = Vigil_V1_Manifest()
        manifest.nextPartNumber = 1
        if FileIO.exists(directory + "/MANIFEST") {
            manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: directory + "/MANIFEST")
        }
        var stray: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: directory + "/" + relative, isDirectory: &isDirectory)
            if isDirectory.boolValue { continue }
            if relative.hasSuffix(".tmp") { stray.append(relative) }
            if relative.hasPrefix("parts/") && !manifest.parts.contains(where: { $0.path == relative }) { stray.append(relative) }
            if relative.hasPrefix("keys/") && !manifest.idempotencyFiles.contains(String(relative.dropFirst(5))) { stray.append(relative) }
            if relative.hasPrefix("chain/") {
                let number = ChainFiles.parse(String(relative.dropFirst(6)))?.number
                if number.map({ $0 >= manifest.nextPartNumber }) ?? true { stray.append(relative) }
            }
        }
        return stray
    }

    /// Appends `tag` until the store refuses it; returns the refusal. Batches
    /// that still fit (a WAL page had room) are acknowledged and added to `acked`.
    func appendUntilRefused(_ store: ColumnarEventStore, tag: String, acked: inout [String]) async throws -> VigilError {
        let deadline = ContinuousClock.now + .seconds(60)
        var attempt = 0
        while ContinuousClock.now < deadline {
            let name = "\(tag)-\(attempt)"
            attempt += 1
            let batch = batch(name)
            if let error = await WALTest.asyncVigilError({ _ = try await store.append(batch, idempotencyKey: name, wantReceipts: false) }) {
                return error
            }
            acked.append(name)
        }
        throw TmpfsError("the store kept accepting batches on a full disk")
    }

    /// Appends `tag` until the store takes it (it probes about once a second).
    func appendUntilAccepted(_ store: ColumnarEventStore, tag: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        let batch = batch(tag)
        var last: VigilError?
        while ContinuousClock.now < deadline {
            last = await WALTest.asyncVigilError { _ = try await store.append(batch, idempotencyKey: tag, wantReceipts: false) }
            if last == nil { return }
            try await Task.sleep(for: .milliseconds(50))  // a polling interval, not synchronization
        }
        throw TmpfsError("ingest did not resume within 60 s after space returned: \(last.map { "\($0)" } ?? "")")
    }

    @Test("ENOSPC from the WAL: refused with UNAVAILABLE and the reason, queries work, resumes by itself, nothing lost after a reopen")
    func walWriteFillsTheDisk() async throws {
        let disk = try TmpfsDisk(megabytes: 8)
        defer { disk.unmount() }
        let directory = disk.path + "/data"
        let recorder = StorageEventRecorder()
        var store: ColumnarEventStore? = try ColumnarEventStore(options: options(directory, recorder: recorder))
        var acked: [String] = []
        for number in 0..<10 {
            _ = try await store!.append(batch("a\(number)"), idempotencyKey: "a\(number)", wantReceipts: false)
            acked.append("a\(number)")
        }
        let filler = try disk.fill()

        let refused = try await appendUntilRefused(store!, tag: "full", acked: &acked)
        #expect(refused.code == .unavailable)
        #expect(refused.message.hasPrefix("the data disk is full: write \(directory)/wal/"), "\(refused.message)")
        #expect(refused.message.hasSuffix(
            ".wal: No space left on device; free space under \(directory) or lower retention; ingest resumes by itself"), "\(refused.message)")
        #expect(refused.metadata["vigil.retry-after-ms"] == "1000")
        #expect(store!.writeUnavailableReason == refused.message)
        #expect(store!.healthProblems == [refused.message], "health says why")
        // A refused call right after gets the same answer (without touching the disk until the next probe).
        let again = await WALTest.asyncVigilError { _ = try await store!.append(batch("refused"), idempotencyKey: "refused", wantReceipts: false) }
        #expect(again == refused)

        // Queries keep working, and see every acknowledged event.
        expectExactly(acked, in: try await storedActors(store!))
        // A flush cannot finish either, but leaves nothing behind and loses nothing.
        let flush = await WALTest.asyncVigilError { try await store!.flushNow() }
        #expect(flush.map(FileIO.isDiskFull) == true, "\(String(describing: flush))")
        #expect(try strayFiles(directory) == [])
        expectExactly(acked, in: try await storedActors(store!))

        // Space returns: the next probe succeeds, with no restart.
        try FileManager.default.removeItem(atPath: filler)
        try await appendUntilAccepted(store!, tag: "b0")
        acked.append("b0")
        #expect(store!.writeUnavailableReason == nil)
        #expect(store!.healthProblems == [])
        _ = try await store!.append(batch("b1"), idempotencyKey: "b1", wantReceipts: false)
        acked.append("b1")
        #expect(recorder.refusals == [refused.message], "entering the state is reported once")
        #expect(recorder.resumptions == 1, "leaving it is reported once")
        try await store!.flushNow()
        #expect(store!.statistics.parts > 0)
        expectExactly(acked, in: try await storedActors(store!))

        // Reopened: every acknowledged event exactly once, none of the refused.
        try await store!.close()
        store = nil
        let reopened = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()))
        let actors = try await storedActors(reopened)
        expectExactly(acked, in: actors)
        #expect(!actors.contains { $0.hasPrefix("refused/") })
        try await reopened.close()
    }

    @Test("free space under the reserve: ingest refused while flushes still run, resumed when space returns")
    func reserveRefusesIngestFirst() async throws {
        let disk = try TmpfsDisk(megabytes: 16)
        defer { disk.unmount() }
        let directory = disk.path + "/data"
        let recorder = StorageEventRecorder()
        let store = try ColumnarEventStore(options: options(directory, recorder: recorder) { $0.minFreeDiskBytes = 8 << 20 })
        var acked: [String] = []
        for number in 0..<5 {
            _ = try await store.append(batch("a\(number)"), idempotencyKey: "a\(number)", wantReceipts: false)
            acked.append("a\(number)")
        }
        // 4.5 MiB: the batches that still fit before the next free-space check leave "4 MiB free".
        let filler = try disk.fill(leaving: (4 << 20) + (512 << 10))
        let refused = try await appendUntilRefused(store, tag: "low", acked: &acked)
        #expect(refused.code == .unavailable)
        // Refused calls write nothing: what is free now is what the check saw.
        let freeMiB = disk.freeBytes / 1_048_576
        #expect((3...4).contains(freeMiB))
        #expect(refused.message == """
            the data disk is full: \(freeMiB) MiB free, under the 8 MiB kept free for flushes, merges and retention \
            (--min-free-disk-mb); free space under \(directory) or lower retention; ingest resumes by itself
            """)
        #expect(store.writeUnavailableReason == refused.message)
        // The reserve is what lets the flush finish.
        try await store.flushNow()
        #expect(store.statistics.memoryEvents == 0)
        expectExactly(acked, in: try await storedActors(store))

        try FileManager.default.removeItem(atPath: filler)
        try await appendUntilAccepted(store, tag: "b0")
        acked.append("b0")
        #expect(store.writeUnavailableReason == nil)
        #expect(recorder.refusals == [refused.message])
        #expect(recorder.resumptions == 1)
        expectExactly(acked, in: try await storedActors(store))
        try await store.close()
    }

    @Test("a refusal ends when space returns although no ingest comes (a load balancer following /readyz sends none): after ENOSPC and under the reserve", arguments: [false, true])
    func refusalEndsWithoutIngest(underReserve: Bool) async throws {
        let disk = try TmpfsDisk(megabytes: 16)
        defer { disk.unmount() }
        let directory = disk.path + "/data"
        let recorder = StorageEventRecorder()
        let store = try ColumnarEventStore(options: options(directory, recorder: recorder) {
            if underReserve { $0.minFreeDiskBytes = 8 << 20 }
        })
        _ = try await store.append(batch("a0"), idempotencyKey: "a0", wantReceipts: false)
        let filler = try underReserve ? disk.fill(leaving: (4 << 20) + (512 << 10)) : disk.fill()
        var acked: [String] = []
        _ = try await appendUntilRefused(store, tag: "full", acked: &acked)
        #expect(store.writeUnavailableReason != nil)
        try FileManager.default.removeItem(atPath: filler)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.runMaintenance() }
            // Bounded polling of a condition; no ingest call meanwhile.
            let deadline = ContinuousClock.now + .seconds(30)
            while store.writeUnavailableReason != nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(store.writeUnavailableReason == nil, "still refused without an ingest call")
            #expect(store.healthProblems == [])
            #expect(recorder.resumptions == 1)
            group.cancelAll()
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/" + ColumnarEventStore.spaceProbeName), "the probe file is removed")
        _ = try await store.append(batch("b0"), idempotencyKey: "b0", wantReceipts: false)
        try await store.close()
    }

    @Test("a flush that hits ENOSPC keeps its events queryable, leaves no file, and is retried by maintenance")
    func failedFlushIsRetried() async throws {
        let disk = try TmpfsDisk(megabytes: 16)
        defer { disk.unmount() }
        let directory = disk.path + "/data"
        let recorder = StorageEventRecorder()
        let store = try ColumnarEventStore(options: options(directory, recorder: recorder) { $0.segmentMaxAge = .milliseconds(200) })
        var acked: [String] = []
        for number in 0..<40 {
            _ = try await store.append(batch("a\(number)"), idempotencyKey: "a\(number)", wantReceipts: false)
            acked.append("a\(number)")
        }
        // Room for the next WAL segment's first page, not for the part (2,000 events).
        let filler = try disk.fill(leaving: 8192)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.runMaintenance() }
            let deadline = ContinuousClock.now + .seconds(60)
            while recorder.maintenanceFailures.isEmpty {
                guard ContinuousClock.now < deadline else { throw TmpfsError("maintenance did not fail on a full disk") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let failure = try #require(recorder.maintenanceFailures.first)
            #expect(FileIO.isDiskFull(failure), "\(failure)")
            #expect(store.writeUnavailableReason?.hasPrefix("the data disk is full: ") == true)
            // Still in memory, still queryable, and no half-written part or temporary file.
            expectExactly(acked, in: try await storedActors(store))
            #expect(store.statistics.parts == 0)
            #expect(try strayFiles(directory) == [])

            try FileManager.default.removeItem(atPath: filler)
            while store.statistics.parts == 0 || store.statistics.memoryEvents > 0 {
                guard ContinuousClock.now < deadline else { throw TmpfsError("maintenance did not retry the flush after space returned") }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(store.writeUnavailableReason == nil, "a flush that succeeds ends the refusal")
            group.cancelAll()
        }
        expectExactly(acked, in: try await storedActors(store))
        #expect(try strayFiles(directory) == [])
        try await store.close()
        let reopened = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()))
        expectExactly(acked, in: try await storedActors(reopened))
        try await reopened.close()
    }

    @Test("a retention rewrite without room for what it keeps leaves the part whole, refuses no ingest, and rewrites once space returns")
    func rewriteHitsENOSPC() async throws {
        let disk = try TmpfsDisk(megabytes: 16)
        defer { disk.unmount() }
        let directory = disk.path + "/data"
        let recorder = StorageEventRecorder()
        let day: Int64 = 86_400_000_000_000
        let store = try ColumnarEventStore(options: options(directory, recorder: recorder) { $0.tenantRetentionNanos = ["brief": 2 * day] })
        // One part, one day, two tenants: "brief"'s events are past its 2 days, "acme"'s are kept for ever.
        // Random descriptions, so that the part does not compress to nothing.
        let start = currentUnixNanos() - 5 * day
        var events: [AuditEvent] = []
        for index in 0..<2_000 {
            var event = engineEvent(index % 2 == 0 ? "keep/\(index)" : "brief/\(index)", tenant: index % 2 == 0 ? "acme" : "brief", at: start + Int64(index) * 1_000_000)
            event.description_p = (0..<32).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
            events.append(event)
        }
        _ = try await store.append(events, idempotencyKey: nil)
        try await store.flushNow()
        let part = try #require(store.snapshot().parts.first)
        #expect(store.snapshot().parts.count == 1 && part.entry.bytes > 512 << 10, "\(part.entry.bytes) bytes")

        // Room for neither the rewritten part (half the events) nor much else.
        let filler = try disk.fill(leaving: 64 << 10)
        try await store.retainNow(now: currentUnixNanos())
        #expect(store.snapshot().parts.map(\.entry.path) == [part.entry.path], "the part stays whole")
        #expect(store.writeUnavailableReason == nil, "a rewrite refuses no ingest")
        #expect(recorder.maintenanceFailures.isEmpty)
        #expect(try strayFiles(directory) == [], "the unfinished rewrite leaves no file")
        #expect(store.snapshot().parts.first?.entry.rows == 2_000)
        #expect(try await storedActors(store).count == 1_000, "queries hide expired events, rewritten or not")

        try FileManager.default.removeItem(atPath: filler)
        try await store.retainNow(now: currentUnixNanos())
        let actors = try await storedActors(store)
        #expect(actors.count == 1_000 && actors.allSatisfy { $0.hasPrefix("keep/") })
        #expect(recorder.expirations.map(\.events) == [1_000], "the rewrite's merge dropped brief's 1,000 events")
        #expect(try strayFiles(directory) == [])
        try await store.close()
    }

    @Test("a flush whose MANIFEST cannot be replaced removes the parts, keys and chain file it wrote, and succeeds when retried")
    func failedCommitRemovesItsFiles() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()))
            var acked: [String] = []
            for number in 0..<5 {
                // Two days, so that the flush writes two parts before it fails.
                var events = batch("a\(number)")
                for index in events.indices where index % 2 == 0 { events[index].occurredAt = .init(unixNanos: events[index].occurredAt.unixNanos - 86_400_000_000_000) }
                _ = try await store.append(events, idempotencyKey: "a\(number)", wantReceipts: false)
                acked.append("a\(number)")
            }
            // A directory where the MANIFEST's temporary file goes: it cannot be removed to make a new one (EISDIR).
            try FileManager.default.createDirectory(atPath: directory + "/MANIFEST.tmp", withIntermediateDirectories: false)
            let failure = try #require(await WALTest.asyncVigilError { try await store.flushNow() })
            #expect(failure.message.hasPrefix("unlink \(directory)/MANIFEST.tmp: Is a directory"), "\(failure)")
            let leftovers = (try FileIO.list(directory + "/parts")).flatMap { day in ((try? FileIO.list(directory + "/parts/" + day)) ?? []) }
            #expect(leftovers == [], "the parts written before the failed commit are gone")
            #expect(try FileIO.list(directory + "/keys") == [])
            #expect(try FileIO.list(directory + "/chain") == [])
            #expect(store.writeUnavailableReason == nil, "a failure that is not a full disk refuses nothing; maintenance retries it")
            expectExactly(acked, in: try await storedActors(store))

            try FileManager.default.removeItem(atPath: directory + "/MANIFEST.tmp")
            try await store.flushNow()
            #expect(store.statistics.parts == 2)
            #expect(try strayFiles(directory) == [])
            expectExactly(acked, in: try await storedActors(store))
            try await store.close()
            let reopened = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()))
            expectExactly(acked, in: try await storedActors(reopened))
            #expect(reopened.recovery.garbageRemoved == [])
            try await reopened.close()
        }
    }

    @Test("a merge whose MANIFEST cannot be replaced removes its output and keeps its inputs; the retry merges")
    func failedMergeKeepsItsInputs() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()) { $0.mergeFanIn = 3 })
            var acked: [String] = []
            for number in 0..<3 {
                _ = try await store.append(batch("a\(number)"), idempotencyKey: "a\(number)", wantReceipts: false)
                acked.append("a\(number)")
                try await store.flushNow()
            }
            let inputs = Set((try FileIO.list(directory + "/parts")).flatMap { day in (try? FileIO.list(directory + "/parts/" + day)) ?? [] })
            #expect(inputs.count == 3)
            try FileManager.default.createDirectory(atPath: directory + "/MANIFEST.tmp", withIntermediateDirectories: false)
            #expect(await WALTest.asyncVigilError { try await store.mergeNow() } != nil)
            let after = Set((try FileIO.list(directory + "/parts")).flatMap { day in (try? FileIO.list(directory + "/parts/" + day)) ?? [] })
            #expect(after == inputs, "the merged part is removed, the inputs are untouched")
            #expect(store.statistics.parts == 3)
            expectExactly(acked, in: try await storedActors(store))

            try FileManager.default.removeItem(atPath: directory + "/MANIFEST.tmp")
            try await store.mergeNow()
            #expect(store.statistics.parts == 1)
            #expect(try strayFiles(directory) == [])
            expectExactly(acked, in: try await storedActors(store))
            try await store.close()
        }
    }

    @Test("a failed WAL fsync: not acknowledged, writes refused until restart (health says why), queries work, the restart replays")
    func failedFsyncRefusesUntilRestart() async throws {
        try await withTemporaryDirectory { directory in
            let recorder = StorageEventRecorder()
            var store: ColumnarEventStore? = try ColumnarEventStore(options: options(directory, recorder: recorder))
            var acked: [String] = []
            for number in 0..<5 {
                _ = try await store!.append(batch("a\(number)"), idempotencyKey: "a\(number)", wantReceipts: false)
                acked.append("a\(number)")
            }
            let injected = VigilError(.unavailable, "fsync \(directory)/wal/x.wal: Input/output error", metadata: [FileIO.errnoKey: "EIO"])
            store!.wal.injectSyncFailure(injected)
            let failed = await WALTest.asyncVigilError { _ = try await store!.append(batch("unacked"), idempotencyKey: "unacked", wantReceipts: false) }
            #expect(failed == injected, "the batch whose fsync failed is not acknowledged")
            let reason = """
                writes are refused after an I/O error on the data disk (fsync \(directory)/wal/x.wal: Input/output error): \
                after a failed write or fsync it is uncertain what the disk holds; check the disk (dmesg, SMART), then \
                restart vigil serve, which replays the WAL from the disk
                """
            #expect(store!.writeUnavailableReason == reason)
            store!.wal.injectSyncFailure(nil)
            let refused = await WALTest.asyncVigilError { _ = try await store!.append(batch("later"), idempotencyKey: "later", wantReceipts: false) }
            #expect(refused == VigilError(.unavailable, reason), "refused even though fsync works again: only a restart clears it")
            #expect(recorder.refusals == [reason])
            // Queries answer (the unacknowledged batch may show: it is in the WAL, only its fsync failed).
            let actors = try await storedActors(store!)
            #expect(Set(acked.flatMap { tag in (0..<Self.batchSize).map { "\(tag)/\($0)" } }).isSubset(of: Set(actors)))
            // Maintenance writes nothing either.
            #expect(await WALTest.asyncVigilError { try await store!.flushNow() } == VigilError(.unavailable, reason))

            // Closing cannot flush (writes are refused) and reports the fsync failure; the WAL keeps everything.
            #expect(await WALTest.asyncVigilError { try await store!.close() } != nil)
            store = nil
            let reopened = try ColumnarEventStore(options: options(directory, recorder: StorageEventRecorder()))
            #expect(reopened.writeUnavailableReason == nil)
            let replayed = try await storedActors(reopened)
            let unacked = Set((0..<Self.batchSize).map { "unacked/\($0)" })
            expectExactly(acked, in: replayed.filter { !unacked.contains($0) })
            #expect(!replayed.contains { $0.hasPrefix("later/") })
            _ = try await reopened.append(batch("after"), idempotencyKey: "after", wantReceipts: false)
            try await reopened.close()
        }
    }

    @Test("a WAL record cut short by ENOSPC is cut away: later records follow it, and replay finds exactly the written ones")
    func walStaysReplayableAfterENOSPC() async throws {
        let disk = try TmpfsDisk(megabytes: 1)
        defer { disk.unmount() }
        let directory = disk.path + "/wal"
        let wal = try WALTest.open(directory, sync: .always)
        var written: [[UInt8]] = []
        var bytes = WALTestBytes(seed: 7)
        var last = WALLocation(segment: 0, offset: 0)
        for _ in 0..<4 {
            written.append(bytes.bytes(3000))
            last = try await wal.append(written.last!)
        }
        let filler = try disk.fill()
        var failure: VigilError?
        for _ in 0..<100 {
            let record = bytes.bytes(3000)
            do throws(VigilError) {
                last = try await wal.append(record)
                written.append(record)
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the WAL kept writing on a full disk")
        #expect(error.code == .resourceExhausted)
        #expect(FileIO.isDiskFull(error))
        #expect(try WALTest.fileSize(WALTest.segmentPath(directory, last.segment)) == last.offset, "the partial record is cut away")
        #expect(wal.failure == nil, "a failed write does not poison the log")

        try FileManager.default.removeItem(atPath: filler)
        for _ in 0..<3 { written.append(bytes.bytes(3000)); _ = try await wal.append(written.last!) }
        try wal.close()
        let replayed = try WALTest.replay(directory)
        #expect(replayed.report.truncatedTail == nil)
        #expect(replayed.payloads == written)
    }
}
