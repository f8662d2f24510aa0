import Foundation
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// The live end of the log (`CommitFeed`) and the seq-ordered reads that
/// subscribers catch up with (`scanBySeq`).
@Suite("Commit feed and seq-ordered reads")
struct CommitFeedTests {
    static func options(_ directory: String, feedBytes: Int = 64 << 20) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.rowsPerBlock = 64
        options.liveFeedBytes = feedBytes
        options.sync = .never
        return options
    }

    /// Every matching event with a seq in (after, through], paged by seq.
    static func bySeq(_ store: ColumnarEventStore, _ filter: EventFilter, after: UInt64, through: UInt64, page: Int) async throws -> [AuditEvent] {
        var events: [AuditEvent] = []
        var position = after
        while true {
            let result = try await store.scanBySeq(filter: filter, after: position, through: through, limit: page)
            // The catch-up's path: the same page as protobuf bytes written from the columns.
            let encoded = try await store.scanBySeqEncoded(filter: filter, after: position, through: through, limit: page)
            #expect(try encoded.encodedEvents.map { try AuditEvent(serializedBytes: $0.bytes) } == result.events)
            #expect(encoded.encodedEvents.map(\.seq) == result.events.map(\.seq) && encoded.exhausted == result.exhausted)
            events += result.events
            if let last = result.events.last { position = last.seq }
            if result.exhausted { return events }
            #expect(!result.events.isEmpty, "a page that is not the last holds events")
            if result.events.isEmpty { return events }
        }
    }

    @Test("scanBySeq returns exactly the matching events of a seq range, in seq order, from parts and memory")
    func seqOrderedReads() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: Self.options(directory))
            let base = currentUnixNanos() - 86_400_000_000_000
            var stored: [AuditEvent] = []
            for batch in 0..<12 {
                // Occurred-at times out of seq order, tenants interleaved.
                let events = (0..<100).map { index in
                    engineEvent(
                        "u-\(index % 9)", tenant: ["acme", "globex"][(index + batch) % 2],
                        at: base + Int64((index * 7_919 + batch * 104_729) % 86_400) * 1_000_000_000,
                        action: index % 3 == 0 ? "auth.login" : "user.update")
                }
                let result = try await store.append(events, idempotencyKey: nil)
                for (offset, var event) in events.enumerated() {
                    event.seq = result.firstSeq + UInt64(offset)
                    stored.append(event)
                }
                if batch % 4 == 3 { try await store.flushNow() }
            }
            var message = Vigil_V1_Filter()
            message.tenants = ["acme"]
            message.actions = ["auth.*"]
            for filter in [everything, try EventFilter(message)] {
                for (after, through) in [(UInt64(0), UInt64(1_200)), (150, 1_100), (399, 401), (1_200, 1_200), (700, 650)] {
                    let expected = stored.filter { $0.seq > after && $0.seq <= through && filter.matches($0) }.map(\.seq)
                    for page in [1, 7, 1_000] {
                        let got = try await Self.bySeq(store, filter, after: after, through: through, page: page).map(\.seq)
                        #expect(got == expected, "after \(after) through \(through), pages of \(page)")
                    }
                }
            }
            try await store.close()
        }
    }

    @Test("a reader of the feed sees every batch once, whole and in seq order, while several tasks append")
    func liveReader() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: Self.options(directory))
            let feed = store.feed
            let registration = feed.addReader()
            let start = feed.head
            let total = 4 * 25 * 40
            let reader = Task { () -> [UInt64] in
                var seqs: [UInt64] = []
                var position = start
                while seqs.count < total {
                    switch feed.read(after: position) {
                    case .batches(let batches) where batches.isEmpty:
                        await feed.waitForNew(after: position)
                    case .batches(let batches):
                        for batch in batches {
                            for row in 0..<batch.count where batch.seq(at: row) > position { seqs.append(batch.seq(at: row)) }
                            position = batch.lastSeq
                        }
                    case .behind:
                        Issue.record("a reader fell behind a 64 MiB ring")
                        return seqs
                    }
                }
                return seqs
            }
            let base = currentUnixNanos() - 60_000_000_000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for batch in 0..<25 {
                            _ = try await store.append((0..<40).map { engineEvent("w\(writer)-\(batch)-\($0)", at: base) }, idempotencyKey: nil)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let seqs = await reader.value
            #expect(seqs == Array(start + 1...start + UInt64(total)))
            feed.removeReader(registration)
            try await store.close()
        }
    }

    @Test("a reader behind the ring is told so, and catches up from the store without a gap")
    func behindTheRing() async throws {
        try await withTemporaryDirectory { directory in
            // A ring of about two batches.
            let store = try ColumnarEventStore(options: Self.options(directory, feedBytes: 40_000))
            let feed = store.feed
            let reader = feed.addReader()
            let base = currentUnixNanos() - 60_000_000_000
            for batch in 0..<20 {
                _ = try await store.append((0..<100).map { engineEvent("b\(batch)-\($0)", at: base + Int64($0)) }, idempotencyKey: nil)
                if batch == 10 { try await store.flushNow() }
            }
            #expect(feed.oldestInRing > 1)
            guard case .behind(let head) = feed.read(after: 0) else {
                Issue.record("expected the reader at 0 to be behind")
                return
            }
            #expect(head == 2_000)
            let caughtUp = try await Self.bySeq(store, everything, after: 0, through: head, page: 333).map(\.seq)
            #expect(caughtUp == Array(1...2_000))
            // From the ring's start on, the feed serves the rest.
            guard case .batches(let batches) = feed.read(after: feed.oldestInRing - 1) else {
                Issue.record("expected batches from the ring's start")
                return
            }
            #expect(batches.last?.lastSeq == 2_000)
            // At most `limit` of them, the oldest first.
            guard case .batches(let first) = feed.read(after: feed.oldestInRing - 1, limit: 1) else {
                Issue.record("expected batches from the ring's start")
                return
            }
            #expect(first.map(\.firstSeq) == [feed.oldestInRing] && batches.count > 1)
            feed.removeReader(reader)
            #expect(feed.oldestInRing == feed.head + 1, "the ring empties when its last reader leaves")
            try await store.close()
        }
    }

    @Test("without readers nothing is kept; closing the store wakes a waiting reader")
    func noReadersAndClose() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: Self.options(directory))
            let feed = store.feed
            _ = try await store.append([engineEvent("a", at: currentUnixNanos() - 1_000)], idempotencyKey: nil)
            #expect(feed.head == 1)
            #expect(feed.oldestInRing == 2)
            let waiter = Task { await feed.waitForNew(after: feed.head) }
            try await store.close()
            await waiter.value
            #expect(feed.isClosed)
        }
    }

    @Test("an interrupt ends a reader's wait with false, or its next wait when it comes early; a publish, close or cancel end it with true")
    func interruptedWaits() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: Self.options(directory))
            let feed = store.feed
            let reader = feed.addReader()
            let base = currentUnixNanos() - 60_000_000_000
            // Early: the interrupt is kept for the next wait, and only for one.
            feed.interrupt(reader)
            #expect(await feed.waitForNew(after: feed.head, reader: reader) == false)
            // Late or early, a waiting reader's interrupt ends its wait with false.
            let interrupted = Task { await feed.waitForNew(after: feed.head, reader: reader) }
            feed.interrupt(reader)
            #expect(await interrupted.value == false)
            // A publish ends it with true.
            let head = feed.head
            let published = Task { await feed.waitForNew(after: head, reader: reader) }
            _ = try await store.append([engineEvent("p", at: base)], idempotencyKey: nil)
            #expect(await published.value == true)
            // Cancellation ends it with true: the caller looks again and sees it is cancelled.
            let cancelled = Task { await feed.waitForNew(after: feed.head, reader: reader) }
            cancelled.cancel()
            #expect(await cancelled.value == true)
            // Another reader's interrupt does not touch this one's wait; closing ends it.
            let other = feed.addReader()
            feed.interrupt(other)
            let closing = Task { await feed.waitForNew(after: feed.head, reader: reader) }
            try await store.close()
            #expect(await closing.value == true)
            #expect(await feed.waitForNew(after: feed.head, reader: other) == false, "the other reader's interrupt was kept for it")
            feed.removeReader(other)
            feed.removeReader(reader)
        }
    }

    @Test("waitUntilBehind returns once the ring no longer holds the batch after the position, or when the feed closes")
    func waitUntilBehind() async throws {
        try await withTemporaryDirectory { directory in
            // A ring of about two batches.
            let store = try ColumnarEventStore(options: Self.options(directory, feedBytes: 40_000))
            let feed = store.feed
            let reader = feed.addReader()
            let base = currentUnixNanos() - 60_000_000_000
            _ = try await store.append((0..<100).map { engineEvent("a\($0)", at: base) }, idempotencyKey: nil)
            let position = feed.head
            let watcher = Task { await feed.waitUntilBehind(position) }
            var batches = 0
            while feed.oldestInRing <= position + 1 {
                _ = try await store.append((0..<100).map { engineEvent("b\(batches)-\($0)", at: base) }, idempotencyKey: nil)
                batches += 1
            }
            await watcher.value
            #expect(batches >= 2, "the ring held the position for a batch or more")
            #expect(feed.oldestInRing > position + 1)
            // Behind already: returns at once.
            await feed.waitUntilBehind(position)
            // Held: returns when the feed closes.
            let held = Task { await feed.waitUntilBehind(feed.head) }
            try await store.close()
            await held.value
            #expect(feed.isClosed)
            feed.removeReader(reader)
        }
    }
}

extension CommitFeedTests {
    @Test("under an fsync interval a batch is acknowledged and queryable at once, and given to subscribers only after the fsync that covers it")
    func intervalPublishesAfterFsync() async throws {
        try await withTemporaryDirectory { directory in
            var options = Self.options(directory)
            options.sync = .interval(milliseconds: 20)
            let store = try ColumnarEventStore(options: options)
            let reader = store.feed.addReader()  // the feed keeps batches for its readers
            defer { store.feed.removeReader(reader) }
            store.wal.pauseSyncThread(true)
            let result = try await store.append([engineEvent("u-1", at: currentUnixNanos() - 1_000_000_000)], idempotencyKey: nil)
            #expect(try await allEvents(store).map(\.seq) == [result.firstSeq])
            // Bounded polling of a condition: the batch's wait for its fsync registers.
            let deadline = ContinuousClock.now + .seconds(30)
            while store.wal.pendingWaiters == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(store.wal.pendingWaiters == 1)
            #expect(store.feed.head == 0, "published before an fsync covered it")
            // Nor is it under the chain head a checkpoint signs.
            #expect(try await store.chainHead().seq == 0, "a checkpoint would sign an event a crash may take back")
            store.wal.pauseSyncThread(false)
            while store.feed.head < result.lastSeq && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(store.feed.head == result.lastSeq)
            guard case .batches(let batches) = store.feed.read(after: 0) else {
                Issue.record("the feed has no batch")
                return
            }
            #expect(batches.map(\.lastSeq) == [result.lastSeq])
            #expect(try await store.chainHead().seq == result.lastSeq)
            try await store.close()
        }
    }
}
