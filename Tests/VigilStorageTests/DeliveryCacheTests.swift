import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

@Suite("Encoded events shared by live subscribers")
struct DeliveryCacheTests {
    static func chunk(firstSeq: UInt64 = 1, count: Int = 50) -> MemoryChunk {
        MemoryChunk(columns: .init(PartEvents.realistic(count: count, seed: firstSeq)), firstSeq: firstSeq, receivedAt: 1_780_000_000_000_000_000, idempotencyKey: "")
    }

    static func cachedRows(_ chunk: MemoryChunk) -> Int {
        chunk.deliveryCache.withLock { $0.rows.filter { !$0.isEmpty }.count }
    }

    @Test("a row's encoded event decodes to exactly the event, for awkward events too")
    func encodedEventsDecodeToTheEvents() throws {
        for chunk in MemoryFlushTests.chunks() {
            for row in 0..<chunk.count {
                let event = chunk.event(at: row)
                let decoded = try AuditEvent(serializedBytes: chunk.encodedEvent(at: row))
                #expect(decoded == event, "row \(row) of the chunk at seq \(chunk.firstSeq)")
                #expect(decoded.hasActor == event.hasActor && decoded.hasResource == event.hasResource && decoded.hasOccurredAt)
            }
        }
    }

    @Test("a row's encoded event is kept only while the feed's ring holds the chunk")
    func cachedOnlyInRing() throws {
        let chunk = Self.chunk()
        for row in 0..<chunk.count {
            #expect(try AuditEvent(serializedBytes: chunk.encodedEvent(at: row)) == chunk.event(at: row))
        }
        #expect(Self.cachedRows(chunk) == 0, "not in a ring: nothing kept")

        let feed = CommitFeed(head: 0, capacityBytes: 1 << 30)
        let reader = feed.addReader()
        feed.publish([chunk])
        let first = chunk.encodedEvent(at: 3)
        #expect(Self.cachedRows(chunk) == 1)
        #expect(chunk.encodedEvent(at: 3) == first)
        feed.removeReader(reader)
        #expect(Self.cachedRows(chunk) == 0, "the last reader left: the ring and its encodings are gone")
    }

    @Test("a chunk leaving the ring frees its encodings, and a subscriber still holding it keeps none")
    func evictionDropsCache() {
        let first = Self.chunk(firstSeq: 1)
        let second = Self.chunk(firstSeq: 51)
        // Room for one chunk and a few encodings, not for two chunks.
        let feed = CommitFeed(head: 0, capacityBytes: first.estimatedBytes + 4_000)
        #expect(second.estimatedBytes > 4_000)
        let reader = feed.addReader()
        feed.publish([first])
        _ = first.encodedEvent(at: 0)
        #expect(Self.cachedRows(first) == 1)
        feed.publish([second])
        #expect(feed.oldestInRing == 51, "the first chunk left the ring")
        #expect(Self.cachedRows(first) == 0)
        _ = first.encodedEvent(at: 1)
        #expect(Self.cachedRows(first) == 0, "out of the ring: encoded, not kept")
        _ = second.encodedEvent(at: 1)
        #expect(Self.cachedRows(second) == 1)
        feed.removeReader(reader)
    }

    @Test("encodings are kept only while the ring's columns and kept encodings fit its capacity")
    func encodingsBoundedByCapacity() throws {
        let chunk = Self.chunk(count: 200)
        let room = 3_000
        let feed = CommitFeed(head: 0, capacityBytes: chunk.estimatedBytes + room)
        let reader = feed.addReader()
        feed.publish([chunk])
        var kept = 0
        for row in 0..<chunk.count {
            let bytes = chunk.encodedEvent(at: row)
            #expect(try AuditEvent(serializedBytes: bytes) == chunk.event(at: row), "rows without room are still encoded right")
            kept = chunk.deliveryCache.withLock { $0.bytes }
            #expect(kept <= room)
        }
        #expect(Self.cachedRows(chunk) > 0 && Self.cachedRows(chunk) < chunk.count)
        feed.removeReader(reader)
        #expect(chunk.deliveryCache.withLock { $0.bytes } == 0)
    }

    @Test("a subscriber's rows are encoded and kept together; with room for only some, as many as fit are kept")
    func rowsEncodedTogether() throws {
        let chunk = Self.chunk(count: 200)
        let rows: [Int32] = Array(stride(from: 0, to: 200, by: 3))
        // Without a ring: encoded right, nothing kept.
        let unkept = chunk.encodedEvents(rows: rows)
        #expect(try unkept.map { try AuditEvent(serializedBytes: $0) } == rows.map { chunk.event(at: Int($0)) })
        #expect(Self.cachedRows(chunk) == 0)
        // In a ring with room for all: every row kept, counted once in the chunk and in the ring.
        let feed = CommitFeed(head: 0, capacityBytes: 1 << 30)
        let reader = feed.addReader()
        feed.publish([chunk])
        let kept = chunk.encodedEvents(rows: rows)
        #expect(kept == unkept)
        #expect(Self.cachedRows(chunk) == rows.count)
        let keptBytes = kept.reduce(0) { $0 + $1.count }
        #expect(chunk.deliveryCache.withLock { $0.bytes } == keptBytes)
        // A query page reads what is kept and keeps nothing new: the ring's room is the subscribers'.
        let page: [Int32] = [0, 1, 3, 4]
        let pageEvents = chunk.pageEvents(rows: page)
        #expect(try pageEvents.map { try AuditEvent(serializedBytes: $0) } == page.map { chunk.event(at: Int($0)) })
        #expect(pageEvents[0] == kept[0] && pageEvents[2] == kept[1])
        #expect(Self.cachedRows(chunk) == rows.count)
        #expect(chunk.deliveryCache.withLock { $0.bytes } == keptBytes)
        // A second subscriber asking for some of the same rows and others: the kept ones come back, the others join them.
        let more: [Int32] = [0, 1, 2, 3]
        let again = chunk.encodedEvents(rows: more)
        #expect(try again.map { try AuditEvent(serializedBytes: $0) } == more.map { chunk.event(at: Int($0)) })
        #expect(Self.cachedRows(chunk) == rows.count + 2)
        #expect(chunk.deliveryCache.withLock { $0.bytes } == keptBytes + again[1].count + again[2].count)
        feed.removeReader(reader)

        // A ring with room for a few rows only: the batch does not fit at once, the rows that fit are kept.
        let small = Self.chunk(firstSeq: 1_000, count: 200)
        let room = 3 * unkept[0].count
        let tight = CommitFeed(head: 999, capacityBytes: small.estimatedBytes + room)
        let tightReader = tight.addReader()
        tight.publish([small])
        let partial = small.encodedEvents(rows: rows)
        #expect(try partial.map { try AuditEvent(serializedBytes: $0) } == rows.map { small.event(at: Int($0)) })
        let partialBytes = small.deliveryCache.withLock { $0.bytes }
        #expect(Self.cachedRows(small) > 0 && Self.cachedRows(small) < rows.count)
        #expect(partialBytes <= room)
        tight.removeReader(tightReader)

        // No room at all: encoded right, nothing kept, not even the table of rows.
        let full = Self.chunk(firstSeq: 2_000, count: 200)
        let noRoom = CommitFeed(head: 1_999, capacityBytes: full.estimatedBytes)
        let noRoomReader = noRoom.addReader()
        noRoom.publish([full])
        #expect(full.deliveryCache.withLock { $0.ring != nil }, "the chunk is in the ring")
        #expect(try full.encodedEvents(rows: rows).map { try AuditEvent(serializedBytes: $0) } == rows.map { full.event(at: Int($0)) })
        #expect(full.deliveryCache.withLock { $0.rows.isEmpty && $0.bytes == 0 })
        noRoom.removeReader(noRoomReader)
    }

    @Test("live matching returns each match's seq and encoded event")
    func matcherEncodedEvents() throws {
        let chunk = Self.chunk(count: 200)
        var filter = EventFilter()
        filter.tenants = ExactStringSet([chunk.columns.tenant.value(at: 0)])
        let matcher = LiveMatcher(filter: filter)
        let events = matcher.events(in: chunk, after: 10)
        let encoded = matcher.encodedEvents(in: chunk, after: 10)
        #expect(!events.isEmpty)
        #expect(encoded.map(\.seq) == events.map(\.seq))
        #expect(try encoded.map { try AuditEvent(serializedBytes: $0.bytes) } == events)
    }

    @Test("a flush hashes a kept row from its kept bytes, to the leaf of the columns; a row that is not canonical is never kept")
    func keptRowsGiveTheSameLeaves() {
        Self.withPublishedChunks(Self.checkKeptRows)
    }

    /// `MemoryFlushTests.chunks()`, published to a commit feed with a reader
    /// (so that their rows' encoded events are kept) while `body` runs.
    private static func withPublishedChunks(_ body: ([MemoryChunk]) throws -> Void) rethrows {
        let chunks = MemoryFlushTests.chunks()
        let feed = CommitFeed(head: 0, capacityBytes: 1 << 30)
        let reader = feed.addReader()
        defer { feed.removeReader(reader) }
        feed.publish(chunks)
        try body(chunks)
    }

    private static func checkKeptRows(_ chunks: [MemoryChunk]) {
        var notCanonical = 0
        var scratch = LeafScratch()
        for chunk in chunks {
            for row in 0..<chunk.count { _ = chunk.encodedEvent(at: row) }
            let kept = chunk.deliveryCache.withLock { $0.rows }
            for row in 0..<chunk.count {
                var canonical: [UInt8] = []
                if !CanonicalEvent.write(row: row, of: chunk, into: &canonical) {
                    notCanonical += 1
                    #expect(kept[row].isEmpty, "row \(row) of the chunk at seq \(chunk.firstSeq): bytes that are not canonical were kept")
                } else {
                    #expect(kept[row] == canonical)
                }
                let expected = HashChain.leaf(of: chunk.event(at: row))
                #expect(chunk.leaf(at: row, kept: kept, scratch: &scratch) == expected, "row \(row) of the chunk at seq \(chunk.firstSeq)")
            }
        }
        #expect(notCanonical == 1, "the chunks hold one row whose target has unknown fields")
    }

    @Test("rows hashed in pairs take kept bytes where a subscriber left them and write the others: every leaf as the event's")
    func pairsOfKeptAndWrittenRows() {
        Self.withPublishedChunks { chunks in
            var scratch = LeafScratch()
            for chunk in chunks {
                // Every third row kept: pairs of kept and written rows, both ways round, and of two written rows.
                for row in stride(from: 0, to: chunk.count, by: 3) { _ = chunk.encodedEvent(at: row) }
                let kept = chunk.deliveryCache.withLock { $0.rows }
                #expect(kept.contains { !$0.isEmpty })
                var leaves: [ChainDigest] = []
                chunk.forEachLeaf(kept: kept, scratch: &scratch) { leaves.append($0) }
                #expect(leaves == (0..<chunk.count).map { HashChain.leaf(of: chunk.event(at: $0)) }, "the chunk at seq \(chunk.firstSeq)")
            }
        }
    }
}
