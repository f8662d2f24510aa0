import Foundation
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// A fresh directory, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-engine-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

func engineEvent(_ actor: String, tenant: String = "acme", at nanos: Int64, action: String = "user.update") -> AuditEvent {
    var event = AuditEvent()
    event.occurredAt = .init(unixNanos: nanos)
    event.tenant = tenant
    event.actor.id = actor
    event.actor.type = .user
    event.action = action
    event.outcome = .success
    event.resource.type = "doc"
    event.resource.id = "doc-\(actor.hashValue & 0xFF)"
    event.traceID = String(format: "%032x", actor.hashValue & 0x7FFF_FFFF)
    return event
}

let everything = try! EventFilter(Vigil_V1_Filter())

/// Every matching event, paging with cursors of `pageSize`.
func allEvents(_ store: ColumnarEventStore, filter: EventFilter = everything, order: Vigil_V1_Order = .newestFirst, pageSize: Int = 1000) async throws -> [AuditEvent] {
    var events: [AuditEvent] = []
    var cursor: QueryCursor?
    while true {
        let page = try await store.scan(filter: filter, order: order, after: cursor, limit: pageSize)
        events += page.events
        if let last = page.events.last {
            cursor = QueryCursor(order: order, occurredAt: last.occurredAt.unixNanos, seq: last.seq, filterFingerprint: filter.fingerprint)
        }
        if page.exhausted { return events }
        if page.events.isEmpty && cursor == nil { return events }
    }
}

@Suite("The storage engine")
struct EngineTests {
    func options(_ directory: String, _ configure: (inout StorageOptions) -> Void = { _ in }) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        configure(&options)
        return options
    }

    @Test("events are read from memory, from parts after a flush, and after a reopen — the same, exactly once")
    func memoryPartsReopen() async throws {
        try await withTemporaryDirectory { directory in
            let base = currentUnixNanos() - 3_600_000_000_000
            var store: ColumnarEventStore? = try ColumnarEventStore(options: options(directory))
            var acked: [AppendResult] = []
            for batch in 0..<10 {
                let events = (0..<100).map { engineEvent("a\(batch)-\($0)", tenant: "t\($0 % 3)", at: base + Int64(($0 * 37 + batch) % 500) * 1_000_000) }
                acked.append(try await store!.append(events, idempotencyKey: batch % 2 == 0 ? "key-\(batch)" : nil))
            }
            let fromMemory = try await allEvents(store!, pageSize: 77)
            #expect(fromMemory.count == 1000)
            try await store!.flushNow()
            #expect(store!.statistics.memoryEvents == 0)
            #expect(store!.statistics.parts >= 1)
            let fromParts = try await allEvents(store!, pageSize: 77)
            #expect(fromParts == fromMemory)
            // More in memory on top of the parts.
            _ = try await store!.append([engineEvent("late", at: base + 1)], idempotencyKey: nil)
            let mixed = try await allEvents(store!, order: .oldestFirst, pageSize: 50)
            #expect(mixed.count == 1001)
            #expect(Set(mixed.map(\.id)).count == 1001)
            try await store!.close()
            store = nil

            let reopened = try ColumnarEventStore(options: options(directory))
            let again = try await allEvents(reopened, order: .oldestFirst, pageSize: 50)
            #expect(again == mixed)
            // Idempotency keys survive the flush and the restart (a retry names
            // the batch's tenants, t0...t2: keys are scoped by them).
            let retry = try await reopened.append(
                (0..<3).map { engineEvent("x\($0)", tenant: "t\($0)", at: base) }, idempotencyKey: "key-4")
            #expect(retry.replayed && retry.firstSeq == acked[4].firstSeq)
            let next = try await reopened.append([engineEvent("y", at: base)], idempotencyKey: nil)
            #expect(next.firstSeq == 1002, "seqs continue")
            // Get by server-assigned and client-supplied id.
            let some = again[500]
            #expect(try await reopened.get(id: try #require(EventID(some.id))) == some)
            var explicit = engineEvent("explicit", at: base)
            explicit.id = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
            _ = try await reopened.append([explicit], idempotencyKey: nil)
            try await reopened.flushNow()
            #expect(try await reopened.get(id: try #require(EventID(explicit.id)))?.actor.id == "explicit")
            #expect(try await reopened.get(id: EventID(high: 7, low: 7)) == nil)
            try await reopened.close()
        }
    }

    @Test("the WAL alone brings back everything acknowledged when the process dies before a flush")
    func replayWithoutClose() async throws {
        try await withTemporaryDirectory { directory in
            let base = currentUnixNanos() - 1_000_000_000
            do {
                let store = try ColumnarEventStore(options: options(directory))
                for batch in 0..<5 {
                    _ = try await store.append((0..<10).map { engineEvent("b\(batch)-\($0)", at: base + Int64($0)) }, idempotencyKey: "k\(batch)")
                }
                // No close: the files are left as a crash would leave them.
                try store.abandon()
            }
            let reopened = try ColumnarEventStore(options: options(directory))
            #expect(reopened.recovery.walEventsReplayed == 50)
            #expect(try await allEvents(reopened).count == 50)
            #expect(try await reopened.append([engineEvent("z", at: base)], idempotencyKey: "k3").replayed)
            try await reopened.close()
        }
    }

    @Test("a WAL segment lost from the middle of the log is DATA_LOSS at start, not a silent hole; --repair-wal cuts the log at the hole")
    func missingWALSegment() async throws {
        try await withTemporaryDirectory { directory in
            let base = currentUnixNanos() - 1_000_000_000
            // Segments of one record each: a segment ends once it holds a record.
            let small = options(directory) { $0.walSegmentBytes = 1 }
            do {
                let store = try ColumnarEventStore(options: small)
                for batch in 0..<5 {
                    _ = try await store.append((0..<10).map { engineEvent("b\(batch)-\($0)", at: base + Int64($0)) }, idempotencyKey: nil)
                }
                try store.abandon()
            }
            let wal = directory + "/wal"
            let segments = try FileIO.list(wal).compactMap(WALFormat.segmentNumber(ofFileName:)).sorted()
            #expect(segments.count == 5, "\(segments)")
            // The segment holding seqs 21...30 (the third batch) goes missing.
            let third = try WALTest.replay(wal).records.first { try Vigil_V1_WalBatch(serializedBytes: $0.payload).firstSeq == 21 }
            let lost = try #require(third?.location.segment)
            #expect(lost != segments.last, "later records follow it")
            try FileIO.remove(wal + "/" + WALFormat.fileName(of: lost))

            do {
                _ = try ColumnarEventStore(options: small)
                Issue.record("a log with a hole opened")
            } catch let error as VigilError {
                #expect(error.code == .dataLoss)
                #expect(error.message.contains("seqs 21…30 are missing"), "\(error.message)")
                #expect(error.message.contains("--repair-wal"), "\(error.message)")
            }

            var repairing = small
            repairing.repair = true
            let repaired = try ColumnarEventStore(options: repairing)
            #expect(repaired.recovery.walEventsReplayed == 20, "the two batches before the hole")
            #expect(try await allEvents(repaired).map(\.seq).sorted() == Array(1...20))
            #expect(try FileIO.list(wal).contains { $0.hasSuffix(WALFormat.corruptSuffix) }, "what follows the hole is kept aside")
            // New events continue after what was replayed.
            #expect(try await repaired.append([engineEvent("after", at: base)], idempotencyKey: nil).firstSeq == 21)
            try await repaired.close()
        }
    }

    @Test("a second process cannot open the same directory")
    func lockFile() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory))
            #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: options(directory)) }
            try await store.close()
        }
    }

    @Test("merging keeps every event exactly once, also for queries running during the merge")
    func merge() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory) { $0.mergeFanIn = 4; $0.rowsPerBlock = 64 })
            let base = currentUnixNanos() - 7_200_000_000_000
            for flush in 0..<6 {
                _ = try await store.append((0..<200).map { engineEvent("m\(flush)-\($0)", at: base + Int64($0 * 1000 + flush)) }, idempotencyKey: nil)
                try await store.flushNow()
            }
            #expect(store.statistics.parts == 6)
            let before = try await allEvents(store, pageSize: 97)
            #expect(before.count == 1200)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.mergeNow() }
                for _ in 0..<3 {
                    group.addTask {
                        let during = try await allEvents(store, pageSize: 97)
                        #expect(during.count == 1200)
                        #expect(Set(during.map(\.id)).count == 1200)
                    }
                }
                try await group.waitForAll()
            }
            #expect(store.statistics.parts < 6)
            let after = try await allEvents(store, pageSize: 97)
            #expect(after == before)
            try await store.close()
            let reopened = try ColumnarEventStore(options: options(directory))
            #expect(try await allEvents(reopened) == before)
            try await reopened.close()
        }
    }

    @Test("retention removes whole expired parts (or archives them), hides expired rows at once, and keeps the rest")
    func retention() async throws {
        try await withTemporaryDirectory { directory in
            let archive = directory + "-archive"
            defer { try? FileManager.default.removeItem(atPath: archive) }
            let day: Int64 = 86_400_000_000_000
            let now = currentUnixNanos()
            let store = try ColumnarEventStore(options: options(directory) {
                $0.retentionNanos = 30 * day
                $0.tenantRetentionNanos = ["short": 2 * day, "keep": Int64.max]
                $0.archiveDirectory = archive
            })
            _ = try await store.append([engineEvent("old", at: now - 40 * day)], idempotencyKey: nil)
            _ = try await store.append([engineEvent("old-kept", tenant: "keep", at: now - 40 * day + 1)], idempotencyKey: nil)
            _ = try await store.append([engineEvent("recent", at: now - 10 * day)], idempotencyKey: nil)
            _ = try await store.append([engineEvent("short-old", tenant: "short", at: now - 10 * day + 1)], idempotencyKey: nil)
            _ = try await store.append([engineEvent("short-new", tenant: "short", at: now - day)], idempotencyKey: nil)
            try await store.flushNow()
            #expect(store.statistics.parts == 3, "one part per day")
            // Expired rows are hidden before any file is touched.
            let visible = Set(try await allEvents(store).map(\.actor.id))
            #expect(visible == ["old-kept", "recent", "short-new"])
            try await store.retainNow(now: now)
            #expect(store.statistics.parts == 3, "every part still holds a live event")
            // An earlier pass that linked a part into the archive and then failed
            // before its commit left that link: the next pass keeps it and goes on.
            let livePaths = try FileManager.default.subpathsOfDirectory(atPath: directory).filter { $0.hasSuffix(".part") }
            let leftover = try #require(livePaths.first { $0.hasPrefix("parts/" + dayName(of: now - day)) })
            try FileManager.default.createDirectory(
                atPath: archive + "/" + (leftover as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileIO.link(directory + "/" + leftover, to: archive + "/" + leftover)
            // 60 days on, only "keep" survives.
            try await store.retainNow(now: now + 30 * day)
            #expect(Set(try await allEvents(store).map(\.actor.id)) == ["old-kept"])
            #expect(store.statistics.parts == 1, "the day holding a kept tenant's event stays")
            let archived = try FileManager.default.subpathsOfDirectory(atPath: archive).filter { $0.hasSuffix(".part") }
            #expect(archived.count == 2)
            // Archived parts left the data directory: one name each, in the archive.
            let live = try FileManager.default.subpathsOfDirectory(atPath: directory).filter { $0.hasSuffix(".part") }
            #expect(live.count == 1 && Set(live).isDisjoint(with: archived), "\(live) against \(archived)")
            for path in archived {
                let links = try FileManager.default.attributesOfItem(atPath: archive + "/" + path)[.referenceCount] as? Int
                #expect(links == 1, "\(path) has \(String(describing: links)) names")
            }
            try await store.close()
        }
    }

    @Test("a RETENTION line under 1 day (days written where nanoseconds are meant) is refused at open, naming the file and the line, with no part deleted; 1 day opens")
    func retentionFileFloor() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let store = try ColumnarEventStore(options: options(directory))
            _ = try await store.append([engineEvent("old", at: currentUnixNanos() - 3 * day)], idempotencyKey: nil)
            try await store.flushNow()
            // The store never writes what it would refuse at the next start.
            let error = await #expect(throws: VigilError.self) { try await store.setRetention(tenant: "acme", nanos: day - 1) }
            #expect(error?.code == .invalidArgument)
            try await store.close()
            let parts = try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts").filter { $0.hasSuffix(".part") }
            #expect(parts.count == 1)

            try "acme\tforever\n*\t90\n".write(toFile: directory + "/RETENTION", atomically: true, encoding: .utf8)
            let refused = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: options(directory)) }
            #expect(refused?.code == .failedPrecondition)
            #expect(
                refused?.message.hasPrefix("\(directory)/RETENTION line 2 sets the retention of every tenant (*) to 90 ns, under the minimum of 1 day") == true,
                "\(String(describing: refused))")
            #expect(try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts").filter { $0.hasSuffix(".part") } == parts)

            try "\n*\t\(day)\nacme\t\(day - 1)\n".write(toFile: directory + "/RETENTION", atomically: true, encoding: .utf8)
            let tenant = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: options(directory)) }
            #expect(tenant?.message.hasPrefix("\(directory)/RETENTION line 3 sets the retention of tenant acme to \(day - 1) ns") == true, "\(String(describing: tenant))")

            try "*\t\(day)\nacme\tforever\n".write(toFile: directory + "/RETENTION", atomically: true, encoding: .utf8)
            let reopened = try ColumnarEventStore(options: options(directory))
            #expect(reopened.retentionInForce?.defaultNanos == day && reopened.retentionInForce?.of("acme") == nil)
            try await reopened.close()
        }
    }

    @Test("memory stays bounded: without flushing, ingest is refused with RESOURCE_EXHAUSTED; with it, ingest goes on")
    func backpressure() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory) {
                $0.memoryBudgetBytes = 200_000
                $0.segmentMaxRows = 500
                $0.backpressureTimeout = .milliseconds(300)
            })
            let base = currentUnixNanos() - 1_000_000_000
            var refused: VigilError?
            for batch in 0..<100 {
                do {
                    _ = try await store.append((0..<100).map { engineEvent("p\(batch)-\($0)", at: base + Int64($0)) }, idempotencyKey: nil)
                } catch {
                    refused = error as? VigilError
                    break
                }
            }
            #expect(refused?.code == .resourceExhausted)
            #expect(refused?.metadata["vigil.retry-after-ms"] != nil)
            #expect(store.statistics.memoryBytes < 200_000 + 200_000, "bounded by the budget plus one segment")

            // With maintenance running, the same load completes and memory stays bounded.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.runMaintenance() }
                for batch in 0..<100 {
                    let events = (0..<100).map { engineEvent("q\(batch)-\($0)", at: base + Int64($0)) }
                    // As a client would: on RESOURCE_EXHAUSTED, retry.
                    while true {
                        do {
                            _ = try await store.append(events, idempotencyKey: "q\(batch)")
                            break
                        } catch let error as VigilError where error.code == .resourceExhausted {
                            continue
                        }
                    }
                    #expect(store.statistics.memoryBytes < 200_000 + 200_000)
                }
                group.cancelAll()
            }
            try await store.close()
        }
    }

    /// A store over its memory budget (200,000 bytes) with a sealed segment
    /// and no maintenance running: nothing will flush, so ingest waits (up
    /// to 600 s). Returns it and the time its events were given.
    func storeOverMemoryBudget(_ directory: String) async throws -> (ColumnarEventStore, Int64) {
        let store = try ColumnarEventStore(options: options(directory) {
            $0.memoryBudgetBytes = 200_000
            $0.segmentMaxRows = 500
            $0.backpressureTimeout = .seconds(600)
        })
        let base = currentUnixNanos() - 1_000_000_000
        var batch = 0
        while store.statistics.memoryBytes <= 200_000 || store.statistics.sealedSegments == 0 {
            _ = try await store.append((0..<100).map { engineEvent("fill\(batch)-\($0)", at: base + Int64($0)) }, idempotencyKey: nil)
            batch += 1
        }
        return (store, base)
    }

    @Test(
        "an ingest waiting for memory that is cancelled (a CANCEL, a deadline, a lost connection) ends at once with CANCELLED, storing nothing, while no flush comes",
        // Below the 600 s a parked batch would otherwise wait: the bound.
        .timeLimit(.minutes(5)))
    func cancelledWhileWaitingForMemory() async throws {
        try await withTemporaryDirectory { directory in
            let (store, base) = try await storeOverMemoryBudget(directory)
            let stored = store.statistics.memoryEvents
            let waiting = Task { try await store.append([engineEvent("late", at: base)], idempotencyKey: nil) }
            // Bounded polling of a condition: the call is parked on memory.
            let deadline = ContinuousClock.now + .seconds(30)
            while store.memoryWaiterCount == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(store.memoryWaiterCount == 1)
            waiting.cancel()
            let error = await #expect(throws: VigilError.self) { _ = try await waiting.value }
            #expect(error?.code == .cancelled)
            #expect(store.memoryWaiterCount == 0)
            #expect(store.statistics.memoryEvents == stored)
            try await store.close()
        }
    }

    // The time limit is below the 600 s a parked batch would wait: the bound.
    @Test("batches waiting for memory hold at most half the budget: past it, more are refused at once with RESOURCE_EXHAUSTED, not parked", .timeLimit(.minutes(5)))
    func waitingBatchesAreBounded() async throws {
        try await withTemporaryDirectory { directory in
            let (store, base) = try await storeOverMemoryBudget(directory)
            func batch(_ tag: String) -> [AuditEvent] { (0..<100).map { engineEvent("\(tag)-\($0)", at: base + Int64($0)) } }
            // A batch counts three times its WAL bytes against half the budget.
            let bytes = EncodedEvents(encoding: batch("probe")).bytes.count * 3
            let fit = max(1, 100_000 / bytes)
            let outcomes = await withTaskGroup(of: VigilError?.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        do throws(VigilError) {
                            _ = try await store.append(batch("late\(index)"), idempotencyKey: nil)
                            return nil
                        } catch {
                            return error
                        }
                    }
                }
                var refused: [VigilError] = []
                // The refused ones end at once; then the parked ones are let go of.
                while refused.count < 20 - fit, let outcome = await group.next() {
                    if let outcome { refused.append(outcome) }
                }
                // Bounded polling of a condition: the parked ones register their wait.
                let deadline = ContinuousClock.now + .seconds(20)
                while store.memoryWaiterCount < fit && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
                #expect(store.memoryWaiterCount == fit, "\(fit) batches of \(bytes) bytes fit in half the budget")
                group.cancelAll()
                return refused
            }
            #expect(outcomes.count == 20 - fit)
            #expect(outcomes.allSatisfy { $0.code == .resourceExhausted && $0.metadata["vigil.retry-after-ms"] == "1000" })
            try await store.close()
        }
    }

    @Test("a retry is recognised although another tenant sent more keys than the window holds since (keys are evicted from the tenants holding most)")
    func idempotencyWindowIsShared() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory) { $0.idempotencyMaxKeys = 10 })
            let base = currentUnixNanos() - 1_000_000_000
            let first = try await store.append([engineEvent("a", tenant: "acme", at: base)], idempotencyKey: "k")
            for index in 0..<50 {
                _ = try await store.append([engineEvent("o\(index)", tenant: "other", at: base)], idempotencyKey: "o\(index)")
            }
            let retry = try await store.append([engineEvent("a", tenant: "acme", at: base)], idempotencyKey: "k")
            #expect(retry.replayed && retry.firstSeq == first.firstSeq)
            #expect(store.statistics.memoryEvents == 51, "acme's batch is stored once")
            try await store.close()
        }
    }

    @Test("a flipped byte in a part is reported as DATA_LOSS, never returned as data")
    func corruptPart() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: options(directory))
            _ = try await store.append((0..<500).map { engineEvent("c\($0)", at: currentUnixNanos() - 1_000_000_000 + Int64($0)) }, idempotencyKey: nil)
            try await store.close()
            let day = try #require(try FileManager.default.contentsOfDirectory(atPath: directory + "/parts").first)
            let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory + "/parts/" + day).first)
            let path = directory + "/parts/\(day)/\(name)"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[bytes.count / 3] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let reopened = try ColumnarEventStore(options: options(directory))
                let error = await #expect(throws: VigilError.self) { _ = try await allEvents(reopened) }
                #expect(error?.code == .dataLoss)
                try await reopened.close()
            } catch let error as VigilError {
                #expect(error.code == .dataLoss)
            }
        }
    }
}

extension EngineTests {
    @Test("a retention pass that keeps failing (an archive that refuses the part) does not hold back the flushes ingest waits for")
    func failingRetentionKeepsFlushing() async throws {
        try await withTemporaryDirectory { directory in
            let archive = directory + "-archive"
            defer { try? FileManager.default.removeItem(atPath: archive) }
            // `parts` a file: every archiving fails.
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            try Data().write(to: URL(fileURLWithPath: archive + "/parts"))
            let day: Int64 = 86_400_000_000_000
            let recorder = StorageEventRecorder()
            let store = try ColumnarEventStore(options: options(directory) {
                $0.retentionNanos = 30 * day
                $0.archiveDirectory = archive
                $0.segmentMaxAge = .milliseconds(200)
                $0.eventHandler = recorder.handler
            })
            _ = try await store.append([engineEvent("old", at: currentUnixNanos() - 40 * day)], idempotencyKey: nil)
            try await store.flushNow()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.runMaintenance() }
                // Bounded polling of conditions. Four failed passes: a shared backoff would now be 8 s.
                var deadline = ContinuousClock.now + .seconds(60)
                while recorder.maintenanceFailures.count < 4 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(recorder.maintenanceFailures.count >= 4)
                _ = try await store.append([engineEvent("new", at: currentUnixNanos())], idempotencyKey: nil)
                deadline = ContinuousClock.now + .seconds(6)
                while store.statistics.memoryEvents > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(store.statistics.memoryEvents == 0, "the new event waited for the failing retention's backoff")
                group.cancelAll()
            }
            try await store.close()
        }
    }
}

extension EngineTests {
    @Test("a tenant's events past its retention leave the disk although longer-kept tenants' events share their parts; the chain still verifies; a second pass rewrites nothing")
    func tenantRetentionRewritesSharedParts() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let now = currentUnixNanos()
            let store = try ColumnarEventStore(options: options(directory) {
                $0.tenantRetentionNanos = ["acme": 30 * day]
                $0.rowsPerBlock = 4
            })
            // 40 days ago: acme and globex (kept for ever) in one part, in
            // blocks of 4 rows: of acme only, of globex only, and one of both.
            var old = (0..<10).map { engineEvent("acme-old-\($0)", tenant: "acme", at: now - 40 * day + Int64($0)) }
            old += (0..<10).map { engineEvent("globex-\($0)", tenant: "globex", at: now - 40 * day + Int64($0)) }
            _ = try await store.append(old, idempotencyKey: nil)
            _ = try await store.append((0..<5).map { engineEvent("acme-new-\($0)", tenant: "acme", at: now - day + Int64($0)) }, idempotencyKey: nil)
            try await store.flushNow()
            #expect(store.statistics.partEvents == 25)

            try await store.retainNow(now: now)
            #expect(store.statistics.partEvents == 15, "acme's 10 old events are gone from disk, not only hidden")
            let oldDay = try #require(store.snapshot().parts.first { $0.entry.minOccurredAt < now - 30 * day })
            #expect(oldDay.reader.metadata.tenants == ["globex"])
            #expect(Set(try await allEvents(store).map(\.actor.id)) == Set((0..<10).map { "globex-\($0)" } + (0..<5).map { "acme-new-\($0)" }))
            let report = try await store.verify(VerificationOptions())
            #expect(report.intact && report.eventsExpired == 10, "\(report.problems.map(\.line))")

            let paths = store.snapshot().parts.map(\.entry.path)
            try await store.retainNow(now: now)
            #expect(store.snapshot().parts.map(\.entry.path) == paths, "nothing left to rewrite")
            try await store.close()
            // Reopened: the same.
            let reopened = try ColumnarEventStore(options: options(directory) { $0.tenantRetentionNanos = ["acme": 30 * day] })
            #expect(reopened.statistics.partEvents == 15)
            try await reopened.close()
        }
    }

    @Test("an expired part whose blocks cannot be read stays and is reported; retention removes the other expired parts all the same")
    func unreadableExpiredPartDoesNotStopRetention() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let now = currentUnixNanos()
            let old = now - 3 * day
            let recorder = StorageEventRecorder()
            func configure(_ options: inout StorageOptions) {
                options.tenantRetentionNanos = ["acme": day]
                options.eventHandler = recorder.handler
            }
            let first = try ColumnarEventStore(options: options(directory, configure))
            // Seqs 1-10 (acme, 3 days ago), 11-20 (globex, today, kept for ever), 21-30 (acme, 3 days ago again):
            // the third part's leaves lie above the chain's cut, so retention must read them.
            _ = try await first.append((0..<10).map { engineEvent("a\($0)", at: old + Int64($0)) }, idempotencyKey: nil)
            try await first.flushNow()
            _ = try await first.append((0..<10).map { engineEvent("g\($0)", tenant: "globex", at: now - 1_000_000_000 + Int64($0)) }, idempotencyKey: nil)
            try await first.flushNow()
            _ = try await first.append((0..<10).map { engineEvent("late\($0)", at: old + 100 + Int64($0)) }, idempotencyKey: nil)
            try await first.flushNow()
            let late = try #require(first.snapshot().parts.first { $0.entry.minSeq == 21 }).entry.path
            try await first.close()
            let path = directory + "/" + late
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[40] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))

            let store = try ColumnarEventStore(options: options(directory, configure))
            try await store.retainNow(now: now)
            #expect(store.snapshot().parts.map(\.entry.path).sorted() == [late, try #require(store.snapshot().parts.first { $0.entry.minSeq == 11 }).entry.path].sorted(),
                "the readable expired part is gone, the damaged one stays")
            #expect(recorder.unreadableParts == [path])
            try await store.close()
        }
    }

    @Test("a part a merge cannot read is reported once and left out of merges from then on; its day's other parts merge without it, and flushes go on")
    func damagedPartIsLeftOutOfMerges() async throws {
        try await withTemporaryDirectory { directory in
            let first = try ColumnarEventStore(options: options(directory) { $0.mergeFanIn = 100 })
            for part in 0..<3 {
                _ = try await first.append((0..<200).map { engineEvent("p\(part)-\($0)", at: currentUnixNanos() - 1_000_000_000) }, idempotencyKey: nil)
                try await first.flushNow()
            }
            try await first.close()
            // A byte of the first chunk of one part: opening reads only footers, a merge reads every chunk.
            let day = try #require(try FileManager.default.contentsOfDirectory(atPath: directory + "/parts").first)
            let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory + "/parts/" + day).sorted().first)
            let path = directory + "/parts/\(day)/\(name)"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[40] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))

            let recorder = StorageEventRecorder()
            let store = try ColumnarEventStore(options: options(directory) {
                $0.mergeFanIn = 2
                $0.segmentMaxAge = .milliseconds(200)
                $0.eventHandler = recorder.handler
            })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.runMaintenance() }
                // Bounded polling of conditions: the two good parts merge into
                // one, and the damaged one is reported (before or after).
                var deadline = ContinuousClock.now + .seconds(60)
                while (store.snapshot().parts.map(\.entry.level).max() != 1 || recorder.unreadableParts.isEmpty) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let parts = store.snapshot().parts
                #expect(parts.count == 2 && parts.contains { $0.entry.path.hasSuffix(name) && $0.entry.level == 0 }, "\(parts.map(\.entry.path))")
                #expect(recorder.unreadableParts == [path], "reported once")
                #expect(store.writeUnavailableReason == nil, "a failing merge refuses no ingest")
                _ = try await store.append([engineEvent("new", at: currentUnixNanos())], idempotencyKey: nil)
                deadline = ContinuousClock.now + .seconds(6)
                while store.statistics.memoryEvents > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(store.statistics.memoryEvents == 0)
                group.cancelAll()
            }
            #expect(recorder.maintenanceFailures.isEmpty, "\(recorder.maintenanceFailures)")
            try await store.close()
        }
    }
}

extension EngineTests {
    static var sharedMemoryIsAnotherFileSystem: Bool {
        guard let shm = try? FileIO.device(ofDirectory: "/dev/shm"),
            let temporary = try? FileIO.device(ofDirectory: FileManager.default.temporaryDirectory.path)
        else { return false }
        return shm != temporary
    }

    @Test(
        "an archive directory on another file system is refused at start (FAILED_PRECONDITION), not when the first part expires",
        .enabled(if: sharedMemoryIsAnotherFileSystem, "needs /dev/shm on another file system than the temporary directory"))
    func archiveOnAnotherFileSystem() async throws {
        try await withTemporaryDirectory { directory in
            let archive = "/dev/shm/vigil-archive-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: archive) }
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: options(directory) { $0.archiveDirectory = archive }) }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains("same file system") == true, "\(String(describing: error))")
        }
    }
}
