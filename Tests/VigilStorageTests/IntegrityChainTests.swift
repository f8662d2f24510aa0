import Crypto
import Foundation
import SwiftProtobuf
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Shared by the integrity tests.
enum IntegrityTestSupport {
    static func options(_ directory: String, _ configure: (inout StorageOptions) -> Void = { _ in }) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        configure(&options)
        return options
    }

    /// `count` events an hour apart (so that a flush writes a part per day), ending `endingAgo` before now.
    static func events(_ count: Int, tag: String, endingAgo: Int64 = 3_600_000_000_000, tenant: String = "acme") -> [AuditEvent] {
        let end = currentUnixNanos() - endingAgo
        return (0..<count).map { index in
            var event = engineEvent("\(tag)-\(index)", tenant: tenant, at: end - Int64(count - index) * 3_600_000_000_000)
            event.traceID = String(format: "%016llx%016llx", UInt64.random(in: 0...UInt64.max), UInt64.random(in: 0...UInt64.max))
            event.metadata = index % 3 == 0 ? ["region": "eu-west", "team": "\(tag)"] : [:]
            return event
        }
    }

    static func verify(_ directory: String, _ configure: (inout VerificationOptions) -> Void = { _ in }) throws -> IntegrityReport {
        var options = VerificationOptions()
        options.checkpointDirectory = directory + "/checkpoints"
        configure(&options)
        return try DirectoryVerification.verify(directory: directory, options: options)
    }

    /// The problems of `kind`, by seq.
    static func problems(_ report: IntegrityReport, _ kind: IntegrityProblem.Kind) -> [IntegrityProblem] {
        report.problems.filter { $0.kind == kind }
    }

    static func describe(_ report: IntegrityReport) -> String {
        (report.problems.map(\.line) + report.notes.map { "note: " + $0 }).joined(separator: "\n")
    }

    /// Signs a checkpoint of the store's head into `<directory>/checkpoints`.
    static func checkpoint(_ store: ColumnarEventStore, key: CheckpointKey) async throws -> (seq: UInt64, head: ChainDigest) {
        let (seq, head) = try await store.chainHead()
        let checkpoint = try Checkpoints.sign(seq: seq, head: head, createdAt: currentUnixNanos(), key: key)
        try Checkpoints.write(checkpoint, to: store.options.directory + "/checkpoints")
        return (seq, head)
    }
}

@Suite("Tamper evidence: the hash chain, receipts and restarts")
struct IntegrityChainTests {
    @Test("canonical bytes are the same from memory, from a part and after WAL replay, for awkward and realistic events")
    func canonicalBytesRoundTrip() async throws {
        try await withTemporaryDirectory { directory in
            var rng = SplitMix64(seed: 7)
            var input = (0..<1_500).map { _ in PartEvents.random(&rng) }
            input += PartEvents.realistic(count: 1_500, seed: 9)
            var store: ColumnarEventStore? = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            var receipts: [UInt64: ChainDigest] = [:]
            for start in stride(from: 0, to: input.count, by: 250) {
                let result = try await store!.append(Array(input[start..<start + 250]), idempotencyKey: nil, wantReceipts: true)
                let receipt = try #require(result.receipt)
                for (offset, leaf) in receipt.leaves.enumerated() { receipts[result.firstSeq + UInt64(offset)] = leaf }
            }
            func memoryCanonical(_ store: ColumnarEventStore) -> [UInt64: [UInt8]] {
                var bytes: [UInt64: [UInt8]] = [:]
                for chunk in store.snapshot().chunks {
                    for row in 0..<chunk.count { bytes[chunk.seq(at: row)] = CanonicalEvent.bytes(of: chunk.event(at: row)) }
                }
                return bytes
            }
            let fromMemory = memoryCanonical(store!)
            for chunk in store!.snapshot().chunks {
                for row in 0..<chunk.count { #expect(CanonicalEvent.bytes(of: chunk.event(at: row)) == CanonicalEvent.reference(chunk.event(at: row))) }
            }
            #expect(fromMemory.count == input.count)
            for (seq, bytes) in fromMemory { #expect(HashChain.leaf(canonical: bytes) == receipts[seq], "receipt of seq \(seq)") }

            // A crash: the WAL is replayed into memory.
            try store!.abandon()
            store = nil
            store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            let replayed = memoryCanonical(store!)
            #expect(replayed == fromMemory, "WAL replay gives the same canonical bytes")

            // Flushed: the parts give the same bytes, and their stored leaves match.
            try await store!.flushNow()
            var fromParts: [UInt64: [UInt8]] = [:]
            for part in store!.snapshot().parts {
                for block in part.reader.blocks.indices {
                    let decoded = try part.reader.allColumns(block: block)
                    for row in 0..<decoded.rowCount {
                        let bytes = CanonicalEvent.bytes(of: decoded.event(at: row))
                        fromParts[decoded.seq![row]] = bytes
                        #expect(decoded.leaf?[row] == HashChain.leaf(canonical: bytes).truncated)
                    }
                }
            }
            #expect(fromParts == fromMemory, "parts give the same canonical bytes")
            // What the query path returns hashes the same.
            let queried = try await allEvents(store!, order: .oldestFirst)
            #expect(queried.count == input.count)
            for event in queried.prefix(500) { #expect(HashChain.leaf(of: event) == receipts[event.seq]) }
            try await store!.close()
        }
    }

    @Test("the canonical encoder writes what swift-protobuf's deterministic serialization writes, for every kind of event")
    func canonicalEncoderMatchesSwiftProtobuf() throws {
        var rng = SplitMix64(seed: 11)
        var events = (0..<5_000).map { _ in PartEvents.random(&rng) }
        events += PartEvents.realistic(count: 2_000, seed: 3)
        // Negative times, empty sub-messages, unrecognized enums, every string field, map entries with empty keys and values.
        var odd = AuditEvent()
        odd.occurredAt = .init(seconds: -5, nanos: 7)
        odd.receivedAt = .init()
        odd.actor = .init()
        odd.resource = .init()
        odd.targets = [.init(), .init()]
        odd.changes = [.init()]
        odd.category = .UNRECOGNIZED(-3)
        odd.outcome = .UNRECOGNIZED(Int(Int32.max))
        odd.metadata = ["": "", "k": ""]
        events.append(odd)
        for event in events {
            #expect(CanonicalEvent.bytes(of: event) == CanonicalEvent.reference(event))
        }
        // Unknown fields (possible inside targets and changes) go through swift-protobuf.
        var withUnknown = events[0]
        var target = Vigil_V1_Resource()
        target.id = "t"
        target.unknownFields = try Vigil_V1_Resource(serializedBytes: [0xA0, 0x06, 0x01]).unknownFields
        withUnknown.targets = [target]
        #expect(CanonicalEvent.bytes(of: withUnknown) == CanonicalEvent.reference(withUnknown))
        #expect(try AuditEvent(serializedBytes: CanonicalEvent.bytes(of: withUnknown)).targets == [target])
    }

    @Test("canonical bytes sort metadata keys by their UTF-8 bytes, as protobuf's deterministic mode does in Go and C++")
    func canonicalMetadataOrder() throws {
        var event = engineEvent("u", at: 1_780_000_000_000_000_000)
        event.seq = 5
        event.description_p = "d"
        event.metadata = ["b": "2", "a": "1", "region": "", "": "empty key"]
        // ASCII keys: the spliced encoding equals swift-protobuf's deterministic one.
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        #expect(CanonicalEvent.reference(event) == (try event.serializedBytes(options: options)))
        #expect(CanonicalEvent.bytes(of: event) == CanonicalEvent.reference(event))
        // Non-ASCII keys: byte order. Swift orders "e\u{301}" as "é" (after "f"); its bytes 65 CC 81 come before "f" (66).
        event.metadata = ["e\u{301}": "decomposed", "f": "plain", "é!": "precomposed"]
        let bytes = CanonicalEvent.bytes(of: event)
        let decoded = try AuditEvent(serializedBytes: bytes)
        #expect(decoded.metadata == event.metadata)
        let text = String(decoding: bytes, as: UTF8.self)
        let positions = ["decomposed", "plain", "precomposed"].map { text.range(of: $0)!.lowerBound }
        #expect(positions == positions.sorted(), "entries follow the byte order of their keys: e\u{301} (65…), f (66), é! (C3…)")
        // Every field still decodes, description last.
        #expect(decoded.description_p == "d" && decoded.seq == 5 && decoded.actor == event.actor)
    }

    @Test("the chain follows the documented formulas: zero head, 0x00 leaves, 0x01 steps")
    func chainFormulas() {
        let canonical: [UInt8] = [1, 2, 3]
        let leaf = HashChain.leaf(canonical: canonical)
        #expect(leaf.bytes == Array(SHA256.hash(data: [0x00] + canonical)))
        let head = HashChain.next(.zero, leaf)
        #expect(head.bytes == Array(SHA256.hash(data: [0x01] + [UInt8](repeating: 0, count: 32) + leaf.bytes)))
        #expect(leaf.truncated == UInt32(leaf.bytes[0]) << 24 | UInt32(leaf.bytes[1]) << 16 | UInt32(leaf.bytes[2]) << 8 | UInt32(leaf.bytes[3]))
        #expect(ChainDigest(hex: head.hex) == head)
        #expect(Checkpoints.signingBytes(seq: 1, head: head, createdAt: 2) == Array("vigil-checkpoint-v1".utf8) + [0, 0, 0, 0, 0, 0, 0, 1] + head.bytes + [0, 0, 0, 0, 0, 0, 0, 2])
    }

    @Test("receipts match what verify recomputes, online and offline; a replayed batch has none")
    func receiptsMatchVerify() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.segmentMaxRows = 120 })
            var results: [AppendResult] = []
            for batch in 0..<6 {
                results.append(try await store.append(IntegrityTestSupport.events(50, tag: "r\(batch)"), idempotencyKey: "k\(batch)", wantReceipts: true))
                if batch == 2 { try await store.flushNow() }
            }
            let replay = try await store.append(IntegrityTestSupport.events(50, tag: "r0"), idempotencyKey: "k0", wantReceipts: true)
            #expect(replay.replayed && replay.receipt == nil)
            // The head of every receipt is the chain recomputed through its last seq.
            for result in results {
                var options = VerificationOptions()
                options.toSeq = result.lastSeq
                let report = try await store.verify(options)
                #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
                #expect(report.headSeq == result.lastSeq)
                #expect(report.headHash == result.receipt?.head)
            }
            // Leaves: each event as stored.
            let stored = try await allEvents(store, order: .oldestFirst).sorted { $0.seq < $1.seq }
            let leaves = results.flatMap { $0.receipt!.leaves }
            #expect(stored.map { HashChain.leaf(of: $0) } == leaves)
            try await store.close()
            let offline = try IntegrityTestSupport.verify(directory)
            #expect(offline.intact, "\(IntegrityTestSupport.describe(offline))")
            #expect(offline.headSeq == 300 && offline.headHash == results.last?.receipt?.head)
            #expect(offline.eventsChecked == 300)
        }
    }

    @Test("a restart and a crash with WAL replay keep the chain continuous, and checkpoints signed before still hold")
    func restartAndCrashKeepTheChain() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            var store: ColumnarEventStore? = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.segmentMaxRows = 100 })
            var last: AppendResult?
            for batch in 0..<4 { last = try await store!.append(IntegrityTestSupport.events(40, tag: "a\(batch)"), idempotencyKey: nil, wantReceipts: true) }
            let signed = try await IntegrityTestSupport.checkpoint(store!, key: key)
            #expect(signed.seq == 160 && signed.head == last?.receipt?.head)
            // Graceful restart.
            try await store!.close()
            store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.segmentMaxRows = 100 })
            #expect(try await store!.chainHead() == (signed.seq, signed.head))
            for batch in 0..<3 { last = try await store!.append(IntegrityTestSupport.events(40, tag: "b\(batch)"), idempotencyKey: nil, wantReceipts: true) }
            // kill -9: nothing flushed; the WAL is replayed on the next start.
            try store!.abandon()
            store = nil
            store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.segmentMaxRows = 100 })
            #expect(store!.recovery.walEventsReplayed > 0)
            let head = try await store!.chainHead()
            #expect(head.seq == 280 && head.head == last?.receipt?.head, "the replayed batches chain to the receipts given before the crash")
            _ = try await IntegrityTestSupport.checkpoint(store!, key: key)
            let online = try await store!.verify({ var options = VerificationOptions(); options.checkpointDirectory = directory + "/checkpoints"; return options }())
            #expect(online.intact && online.checkpointsChecked == 2, "\(IntegrityTestSupport.describe(online))")
            try await store!.close()
            let offline = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(offline.intact, "\(IntegrityTestSupport.describe(offline))")
            #expect(offline.headSeq == 280 && offline.headHash == head.head && offline.checkpointsChecked == 2)
        }
    }

    @Test("verify runs beside ingest and flushes, and stops when cancelled")
    func verifyBesideIngest() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.segmentMaxRows = 200 })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for batch in 0..<20 {
                        _ = try await store.append(IntegrityTestSupport.events(30, tag: "c\(batch)"), idempotencyKey: nil)
                        if batch % 5 == 4 { try await store.maintain(retention: false) }
                    }
                }
                group.addTask {
                    for _ in 0..<5 {
                        let report = try await store.verify(VerificationOptions())
                        #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
                    }
                }
                try await group.waitForAll()
            }
            var cancelled = VerificationOptions()
            cancelled.isCancelled = { true }
            await #expect(throws: VigilError.self) { _ = try await store.verify(cancelled) }
            try await store.close()
        }
    }

    @Test("online verify lists the checkpoints before its snapshot: one the server signs while verify reads the memory segment is not reported as MISSING events")
    func checkpointSignedDuringVerify() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            _ = try await store.append(IntegrityTestSupport.events(10, tag: "a"), idempotencyKey: nil)
            _ = try await IntegrityTestSupport.checkpoint(store, key: key)
            // The first poll comes after the snapshot, before the memory segment
            // is hashed: it holds verify there while the server goes on.
            let (reached, arrived) = AsyncStream.makeStream(of: Void.self)
            let resume = DispatchSemaphore(value: 0)
            let polls = Mutex(0)
            var options = VerificationOptions()
            options.checkpointDirectory = directory + "/checkpoints"
            options.trustedKey = key.publicKey
            options.isCancelled = {
                let first = polls.withLock { count in
                    count += 1
                    return count == 1
                }
                if first {
                    arrived.yield()
                    resume.wait()
                }
                return false
            }
            async let verified = store.verify(options)
            for await _ in reached { break }
            _ = try await store.append(IntegrityTestSupport.events(10, tag: "b"), idempotencyKey: nil)
            let signed = try await IntegrityTestSupport.checkpoint(store, key: key)
            resume.signal()
            let report = try await verified
            #expect(signed.seq == 20)
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(IntegrityTestSupport.problems(report, .missing).isEmpty)
            #expect(report.headSeq == 10 && report.checkpointsChecked == 1)
            try await store.close()
        }
    }

    @Test("the chain file and expired-leaf files round trip; old anchors merge within the span limit")
    func ledgerFiles() throws {
        var ledger = ChainLedger()
        ledger.startSeq = 10
        ledger.startHead = HashChain.leaf(canonical: [9])
        ledger.expiredBeforeStart = 10
        for index in 1...(ChainLedger.maxAnchors + 100) {
            ledger.append(lastSeq: 10 + UInt64(index) * 100, head: HashChain.leaf(canonical: [UInt8(index & 0xFF)]))
        }
        #expect(ledger.anchors.count == ChainLedger.maxAnchors)
        #expect(ledger.endSeq == 10 + UInt64(ChainLedger.maxAnchors + 100) * 100)
        #expect(ledger.ranges.allSatisfy { $0.count <= ChainLedger.maxSpan })
        #expect(ledger.ranges.first?.first == 11)
        let decoded = try ChainLedger.decode(ledger.encode(), path: "x")
        #expect(decoded == ledger)
        var cut = ledger
        let boundary = ledger.anchors[3]
        cut.cut(at: boundary.lastSeq, expired: boundary.lastSeq - 10)
        #expect(cut.startSeq == boundary.lastSeq && cut.startHead == boundary.head && cut.anchors.count == ledger.anchors.count - 4)
        let expired = ExpiredLeaves(entries: [.init(seq: 7, leaf: .zero), .init(seq: 3, leaf: HashChain.leaf(canonical: []))])
        #expect(try ExpiredLeaves.decode(expired.encode(), path: "x") == expired)
        #expect(expired.entries.map(\.seq) == [3, 7])
        #expect(ChainFiles.parse("00000000000000ff.chain")! == (255, ".chain"))
        #expect(ChainFiles.parse("00000000000000ff.chain.tmp") == nil)
    }

    @Test("the start-up listing of checkpoints past the head reads only those its names put past it (and any it cannot tell)")
    func checkpointsNamedAbove() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            for seq: UInt64 in [1, 2, 3, 40, 41] {
                try Checkpoints.write(try Checkpoints.sign(seq: seq, head: .zero, createdAt: 1, key: key), to: directory)
            }
            try Data("junk".utf8).write(to: URL(fileURLWithPath: directory + "/latest.checkpoint"))
            let names = try Checkpoints.list(directory, namedAbove: 3).map(\.name)
            #expect(names == [Checkpoints.fileName(seq: 40), Checkpoints.fileName(seq: 41), "latest.checkpoint"])
            #expect(try Checkpoints.list(directory).count == 6)
        }
    }
}

@Suite("A data directory whose chain file is gone")
struct MissingChainFileTests {
    @Test("parts written with leaf hashes but no chain file: the store refuses to open (DATA_LOSS) instead of starting a new chain after them")
    func missingChainFileIsRefused() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            _ = try await store.append(IntegrityTestSupport.events(20, tag: "a"), idempotencyKey: nil)
            try await store.flushNow()
            try await store.close()
            for name in try FileManager.default.contentsOfDirectory(atPath: directory + "/chain") where name.hasSuffix(".chain") {
                try FileManager.default.removeItem(atPath: directory + "/chain/" + name)
            }
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains("leaf hashes") == true, "\(String(describing: error))")
        }
    }
}

@Suite("A data directory whose MANIFEST is gone")
struct MissingManifestTests {
    @Test("after a flush, a lost MANIFEST is refused (DATA_LOSS) and no part is deleted; a first flush that never committed still opens with every event")
    func missingManifest() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            _ = try await store.append(IntegrityTestSupport.events(20, tag: "a"), idempotencyKey: nil)
            try await store.flushNow()
            try await store.close()
            try FileManager.default.removeItem(atPath: directory + "/MANIFEST")
            let parts = try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts").filter { $0.hasSuffix(".part") }
            #expect(!parts.isEmpty)
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains("MANIFEST is missing") == true, "\(String(describing: error))")
            #expect(try FileManager.default.subpathsOfDirectory(atPath: directory + "/parts").filter { $0.hasSuffix(".part") } == parts, "nothing deleted")
        }
        try await withTemporaryDirectory { directory in
            // A first flush that wrote its part and died before the MANIFEST:
            // the WAL still holds everything from its first segment.
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            _ = try await store.append(IntegrityTestSupport.events(20, tag: "b"), idempotencyKey: nil)
            try FileManager.default.createDirectory(atPath: directory + "/parts/2026-12-06", withIntermediateDirectories: true)
            try Data("an uncommitted part".utf8).write(to: URL(fileURLWithPath: directory + "/parts/2026-12-06/0000000000000001.part"))
            try store.abandon()
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            #expect(reopened.recovery.walEventsReplayed == 20)
            #expect(reopened.recovery.garbageRemoved == ["parts/2026-12-06/0000000000000001.part"])
            try await reopened.close()
        }
    }
}

@Suite("A WAL record that does not decode")
struct UndecodableWALRecordTests {
    @Test("a record with a valid checksum that is not a batch is corruption: refused (DATA_LOSS), and --repair-wal cuts it and opens with the records before it")
    func undecodableRecord() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            _ = try await store.append(IntegrityTestSupport.events(5, tag: "a"), idempotencyKey: nil)
            try store.abandon()
            let wal = try WALTest.open(directory + "/wal")
            _ = try WALTest.replay(wal)
            _ = try wal.write([0xFF, 0xFF, 0xFF])
            try wal.close()
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains("does not decode") == true, "\(String(describing: error))")
            var repair = IntegrityTestSupport.options(directory)
            repair.repair = true
            let repaired = try ColumnarEventStore(options: repair)
            #expect(repaired.recovery.walEventsReplayed == 5)
            try await repaired.close()
        }
    }
}
