import Crypto
import Foundation
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Tamper evidence: verify names every change")
struct IntegrityTamperTests {
    /// A closed store of `batches` × `size` events, flushed into parts (several per
    /// flush: the events span days), with a signed checkpoint of its head.
    func populate(_ directory: String, batches: Int = 4, size: Int = 60, key: CheckpointKey? = nil) async throws -> ChainDigest {
        let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
        for batch in 0..<batches {
            _ = try await store.append(IntegrityTestSupport.events(size, tag: "t\(batch)"), idempotencyKey: nil)
            try await store.flushNow()
        }
        let head = try await store.chainHead().head
        if let key { _ = try await IntegrityTestSupport.checkpoint(store, key: key) }
        try await store.close()
        return head
    }

    /// The largest part and its seqs.
    func largestPart(_ directory: String) throws -> (path: String, seqs: [[UInt64]]) {
        let parts = try Tamper.parts(directory).map { (path: directory + "/" + $0, seqs: try Tamper.seqs(directory + "/" + $0)) }
        return parts.max { $0.seqs.joined().count < $1.seqs.joined().count }!
    }

    @Test("an untouched directory is intact")
    func intact() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let head = try await populate(directory, key: key)
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(report.eventsChecked == 240 && report.headSeq == 240 && report.headHash == head)
            #expect(report.checkpointsChecked == 1 && report.partsChecked > 4)
        }
    }

    @Test("a bit flipped in an event's column bytes, every CRC recomputed: ALTERED, naming the seq, the id and the part")
    func byteEdit() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            _ = try await populate(directory, key: key)
            let part = try largestPart(directory)
            let seq = try Tamper.flipTraceIDBit(part.path, block: 0, row: 1)
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let altered = IntegrityTestSupport.problems(report, .altered)
            #expect(altered.count == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(altered.first?.seq == seq)
            #expect(altered.first?.eventID?.count == 36)
            #expect(altered.first?.location?.hasPrefix(String(part.path.dropFirst(directory.count + 1))) == true)
            #expect(IntegrityTestSupport.problems(report, .checksum).isEmpty, "the CRCs were made right")
            #expect(IntegrityTestSupport.problems(report, .checkpoint).count == 1, "the signed head is not reached")
        }
    }

    @Test("an event and its stored leaf both changed: the range's anchor names the range, the checkpoint the head")
    func editWithLeaf() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            _ = try await populate(directory, key: key)
            let part = try largestPart(directory)
            let seq = part.seqs[0][2]
            try Tamper.rewrite(part.path) { events, leaves in
                let index = events.firstIndex { $0.seq == seq }!
                events[index].action = "user.delete"
                leaves[index] = HashChain.leaf(of: events[index]).truncated
            }
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let altered = IntegrityTestSupport.problems(report, .altered)
            #expect(altered.count == 1, "\(IntegrityTestSupport.describe(report))")
            let range = try #require(altered.first)
            #expect(range.seq! <= seq && seq <= range.lastSeq!, "the range holds the changed event")
            #expect(range.location?.hasPrefix("chain/") == true)
            #expect(IntegrityTestSupport.problems(report, .checkpoint).count == 1)
        }
    }

    @Test("an event deleted from a part: MISSING, naming its seq")
    func deleted() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            let part = try largestPart(directory)
            let seq = part.seqs[0][3]
            try Tamper.delete(part.path, seq: seq)
            let report = try IntegrityTestSupport.verify(directory)
            #expect(report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            let missing = try #require(IntegrityTestSupport.problems(report, .missing).first)
            #expect(missing.seq == seq && (missing.lastSeq == nil || missing.lastSeq == seq))
        }
    }

    @Test("two events' seqs swapped: REORDERED, naming both")
    func swapped() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            let part = try largestPart(directory)
            let (a, b) = (part.seqs[0][1], part.seqs[0][4])
            try Tamper.swap(part.path, a, b)
            let report = try IntegrityTestSupport.verify(directory)
            #expect(report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            let reordered = try #require(IntegrityTestSupport.problems(report, .reordered).first)
            #expect(Set([reordered.seq!]).isSubset(of: [a, b]))
            #expect(reordered.detail.contains("seq \(reordered.seq == a ? b : a)"))
        }
    }

    @Test("rows moved within a part break its sort order: REORDERED")
    func rowsMoved() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            let part = try largestPart(directory)
            // The first two rows change places (each keeps its stored leaf): the chain is intact.
            let reader = try PartReader(path: part.path)
            let decoded = try reader.allColumns(block: 0)
            reader.close()
            var events = decoded.events()
            var leaves = decoded.leaf!
            events.swapAt(0, 1)
            leaves.swapAt(0, 1)
            // Written block by block in the given (now wrong) order.
            try PartTestSupport.writeInInputOrder(events, leaves: leaves, to: part.path + ".x")
            try FileIO.rename(part.path + ".x", to: part.path)
            let report = try IntegrityTestSupport.verify(directory)
            let reordered = IntegrityTestSupport.problems(report, .reordered)
            #expect(reordered.count == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(reordered.first?.detail.contains("order") == true)
            #expect(report.problemsTotal == 1, "the events themselves are intact: \(IntegrityTestSupport.describe(report))")
        }
    }

    @Test("an event inserted with a seq another holds, and one past the chain: INSERTED, naming each")
    func inserted() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            let part = try largestPart(directory)
            let duplicated = part.seqs[0][2]
            let id = try Tamper.insert(part.path, seq: duplicated, copying: duplicated)
            let report = try IntegrityTestSupport.verify(directory)
            let inserted = IntegrityTestSupport.problems(report, .inserted)
            #expect(report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(inserted.count == 1)
            #expect(inserted.first?.seq == duplicated && inserted.first?.eventID == id)

            try Tamper.insert(part.path, seq: 10_000, copying: part.seqs[0][0])
            let again = try IntegrityTestSupport.verify(directory)
            let both = IntegrityTestSupport.problems(again, .inserted)
            #expect(Set(both.compactMap(\.seq)) == [duplicated, 10_000], "\(IntegrityTestSupport.describe(again))")
        }
    }

    @Test("a WAL record whose bytes changed: CHECKSUM, naming the segment and offset; the records after it still verify")
    func walRecordCorrupt() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            for batch in 0..<4 { _ = try await store.append(IntegrityTestSupport.events(20, tag: "w\(batch)"), idempotencyKey: nil) }
            try store.abandon()  // a crash: everything is in the WAL
            let segment = try #require(try FileIO.list(directory + "/wal").first { $0.hasSuffix(".wal") })
            let offset = try Tamper.corruptWALRecord(directory + "/wal/" + segment, index: 1)
            let report = try IntegrityTestSupport.verify(directory)
            let checksum = IntegrityTestSupport.problems(report, .checksum)
            #expect(checksum.count == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.location == "wal/\(segment) offset \(offset)")
            #expect(report.walRecordsChecked == 3)
            let missing = try #require(IntegrityTestSupport.problems(report, .missing).first)
            #expect(missing.seq == 21 && missing.lastSeq == 40, "the damaged record's events")
        }
    }

    @Test("checkpoints: a forged head, a foreign key and a head the chain does not reach are each CHECKPOINT")
    func checkpoints() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            _ = try await populate(directory, key: key)
            let folder = directory + "/checkpoints"
            let name = try #require(try FileIO.list(folder).first)
            var genuine = try Vigil_V1_SignedCheckpoint(serializedBytes: try Tamper.readFile(folder + "/" + name))

            // A head changed after signing.
            var forged = genuine
            forged.head = Data(HashChain.leaf(canonical: [1]).bytes)
            try Tamper.writeFile(folder + "/" + name, try forged.serializedBytes())
            var report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(IntegrityTestSupport.problems(report, .checkpoint).first?.detail.contains("signature") == true, "\(IntegrityTestSupport.describe(report))")
            #expect(report.problemsTotal == 1)

            // A checkpoint signed by someone else's key, with the server's key pinned.
            let intruder = CheckpointKey.generate()
            let other = try Checkpoints.sign(seq: genuine.seq, head: ChainDigest(bytes: Array(genuine.head))!, createdAt: 5, key: intruder)
            try Tamper.writeFile(folder + "/" + name, try other.serializedBytes())
            report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(IntegrityTestSupport.problems(report, .checkpoint).first?.detail.contains("not by the trusted key") == true, "\(IntegrityTestSupport.describe(report))")

            // Correctly signed, but for a head the stored events do not give.
            genuine = try Checkpoints.sign(seq: 100, head: HashChain.leaf(canonical: [2]), createdAt: 6, key: key)
            try Tamper.writeFile(folder + "/" + name, try genuine.serializedBytes())
            report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let mismatch = try #require(IntegrityTestSupport.problems(report, .checkpoint).first)
            #expect(mismatch.seq == 100 && mismatch.detail.contains("recomputed"), "\(IntegrityTestSupport.describe(report))")

            // A checkpoint past the end: the events after the last one stored are missing.
            genuine = try Checkpoints.sign(seq: 250, head: HashChain.leaf(canonical: [3]), createdAt: 7, key: key)
            try Tamper.writeFile(folder + "/" + name, try genuine.serializedBytes())
            report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let tail = try #require(IntegrityTestSupport.problems(report, .missing).first)
            #expect(tail.seq == 241 && tail.lastSeq == 250, "\(IntegrityTestSupport.describe(report))")
        }
    }

    /// Two flushes of 10 events (anchors at 10 and 20) with checkpoints
    /// signed at 10 (and at 20 when `signEnd`); event 3 then edited with its
    /// stored leaf. Returns the head at 10.
    func flushedTwice(_ directory: String, key: CheckpointKey, signEnd: Bool) async throws -> ChainDigest {
        let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
        _ = try await store.append(IntegrityTestSupport.events(10, tag: "a"), idempotencyKey: nil)
        try await store.flushNow()
        let first = try await IntegrityTestSupport.checkpoint(store, key: key)
        _ = try await store.append(IntegrityTestSupport.events(10, tag: "b"), idempotencyKey: nil)
        try await store.flushNow()
        if signEnd { _ = try await IntegrityTestSupport.checkpoint(store, key: key) }
        try await store.close()
        let part = try Tamper.parts(directory).first { try Tamper.seqs(directory + "/" + $0).joined().contains(3) }!
        try Tamper.rewrite(directory + "/" + part) { events, leaves in
            let index = events.firstIndex { $0.seq == 3 }!
            events[index].action = "user.delete"
            leaves[index] = HashChain.leaf(of: events[index]).truncated
        }
        #expect(first.seq == 10)
        return first.head
    }

    @Test("a chain start marked 'predates the chain' with a head other than zero: CHECKSUM on the chain file, and the store refuses to open it (DATA_LOSS)")
    func predatingStartWithAHead() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let head = try await flushedTwice(directory, key: key, signEnd: true)
            // Every signed checkpoint still matches: only the impossible head tells.
            let path = try Tamper.rewriteLedger(directory) { ledger in
                ledger.startSeq = 10
                ledger.startHead = head
                ledger.startReason = .predatesChain
                ledger.anchors.removeAll { $0.lastSeq <= 10 }
            }
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let checksum = IntegrityTestSupport.problems(report, .checksum)
            #expect(checksum.count == 1 && report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.location == path && checksum.first?.detail.contains("zero head") == true)
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.hasPrefix("\(directory)/\(path): ") == true, "\(String(describing: error))")
            #expect(error?.message.contains("Restore the data directory from a backup") == true, "\(String(describing: error))")
        }
    }

    @Test("a chain start moved past a signed checkpoint and marked 'predates the chain': CHECKSUM on the chain file, offline and online")
    func predatingStartAboveACheckpoint() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            _ = try await flushedTwice(directory, key: key, signEnd: false)
            // The zero head the engine would write, and no checkpoint above the start to contradict it.
            let path = try Tamper.rewriteLedger(directory) { ledger in
                ledger.startSeq = 20
                ledger.startHead = .zero
                ledger.startReason = .predatesChain
                ledger.anchors = []
            }
            let offline = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let checksum = IntegrityTestSupport.problems(offline, .checksum)
            #expect(checksum.count == 1 && offline.problemsTotal == 1, "\(IntegrityTestSupport.describe(offline))")
            #expect(checksum.first?.location == path && checksum.first?.detail.contains("seq 10") == true)

            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            var options = VerificationOptions()
            options.checkpointDirectory = directory + "/checkpoints"
            options.trustedKey = key.publicKey
            let online = try await store.verify(options)
            try await store.close()
            #expect(IntegrityTestSupport.problems(online, .checksum).map(\.location) == [path], "\(IntegrityTestSupport.describe(online))")
        }
    }

    @Test("a chain file that ends past the seq MANIFEST says the parts hold is refused at open (DATA_LOSS, naming the file); it wedged every flush")
    func chainEndPastManifest() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory, batches: 2, size: 10)
            let path = try Tamper.rewriteLedger(directory) { ledger in
                ledger.anchors.append(.init(lastSeq: 1 << 40, head: HashChain.leaf(canonical: [7])))
            }
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(
                error?.message.hasPrefix("\(directory)/\(path): the hash chain ends at seq \(1 << 40), but the MANIFEST says the parts hold the events through seq 20") == true,
                "\(String(describing: error))")
        }
    }

    @Test("verify reports a chain file that ends past MANIFEST's flushed seq as CHECKSUM and checks the parts without its anchors, in bounded memory")
    func verifyChainEndPastManifest() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory, batches: 2, size: 10)
            let path = try Tamper.rewriteLedger(directory) { ledger in
                ledger.anchors.append(.init(lastSeq: Self.farAnchor, head: HashChain.leaf(canonical: [7])))
            }
            let report = try IntegrityTestSupport.verify(directory)
            let checksum = IntegrityTestSupport.problems(report, .checksum)
            #expect(checksum.map(\.location) == [path] && report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.detail.contains("the chain ends at seq \(Self.farAnchor), past seq 20") == true)
            #expect(report.eventsChecked == 20)
        }
    }

    /// Far past any seq a walk could hold a table for.
    static let farSeq: UInt64 = 1 << 50
    /// Far past any range a window could hold.
    static let farAnchor: UInt64 = 1 << 40

    @Test("a signed checkpoint far past every stored event: one MISSING run up to it, counted, not walked (bounded memory); an event stored in between is INSERTED")
    func checkpointFarPastTheEvents() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            _ = try await populate(directory, key: key)
            let far = try Checkpoints.sign(seq: Self.farSeq, head: HashChain.leaf(canonical: [5]), createdAt: currentUnixNanos(), key: key)
            try Checkpoints.write(far, to: directory + "/checkpoints")
            let part = try largestPart(directory)
            try Tamper.insert(part.path, seq: 1_000, copying: part.seqs[0][0])
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let missing = IntegrityTestSupport.problems(report, .missing)
            #expect(missing.count == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(missing.first?.seq == 241 && missing.first?.lastSeq == Self.farSeq)
            let inserted = IntegrityTestSupport.problems(report, .inserted)
            #expect(inserted.map(\.seq) == [1_000] && inserted.first?.detail.contains("no anchor covers this seq") == true)
            #expect(report.problemsTotal == 2 && report.checkpointsChecked == 2 && report.headSeq == 240)
            #expect(report.notes.contains { $0.contains("(seq \(Self.farSeq)) cannot be confirmed") }, "\(report.notes)")
        }
    }

    @Test("a MANIFEST entry whose time range no longer matches its part's footer (retention would delete the part): refused at open (DATA_LOSS, naming the part), CHECKSUM in verify")
    func manifestEntryDisagreesWithFooter() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory, batches: 1, size: 10)
            let path = directory + "/MANIFEST"
            var manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: path)
            let part = manifest.parts[0].path
            manifest.parts[0].maxOccurredAt = 1
            try ChecksummedFile.write(manifest, magic: ColumnarEventStore.manifestMagic, to: path)
            let error = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: IntegrityTestSupport.options(directory)) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.hasPrefix("\(path): the entry of \(part) disagrees with the part's footer (the entry says occurred_at ") == true, "\(String(describing: error))")
            let report = try IntegrityTestSupport.verify(directory)
            let checksum = IntegrityTestSupport.problems(report, .checksum)
            #expect(checksum.count == 1 && report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.location == "MANIFEST" && checksum.first?.detail.contains(part) == true)
        }
    }

    /// How a block's footer entry is edited: each one hides rows from queries
    /// (or changes counts) while every row still matches the chain.
    enum BlockEntryEdit: String, CaseIterable, Sendable {
        case actionLeftOut = "the action value set names another action"
        case traceBloomEmptied = "the trace id bloom filter emptied"
        case outcomeCountMoved = "one row's outcome counted as another outcome"
        case timeRangeNarrowed = "the time range narrowed to its last row"
    }

    @Test(
        "a block's footer entry edited with its checksum recomputed (statistics or ranges that no longer describe its rows): CHECKSUM naming the block",
        arguments: BlockEntryEdit.allCases)
    func blockEntryEdited(_ edit: BlockEntryEdit) async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            #expect(try IntegrityTestSupport.verify(directory).intact)
            let part = try largestPart(directory)
            try Tamper.editBlockEntry(part.path, block: 0) { block in
                var statistics = block.statistics
                var occurredAt: ClosedRange<Int64>?
                switch edit {
                case .actionLeftOut:
                    guard case .valueCounts(_, let counts) = statistics[.action] else { preconditionFailure("action counts") }
                    statistics[.action] = .valueCounts(["user.delete"], [counts.reduce(0, +)])
                case .traceBloomEmptied:
                    guard case .bloom(let filter) = statistics[.traceID] else { preconditionFailure("trace bloom") }
                    statistics[.traceID] = .bloom(BloomFilter(hashCount: filter.hashCount, bits: [UInt8](repeating: 0, count: filter.bytes.count)))
                case .outcomeCountMoved:
                    // The counts still add up to the block's rows (the reader checks that).
                    guard case .enumCounts(let values, var counts) = statistics[.outcome], values.count == 1 else {
                        preconditionFailure("one outcome")
                    }
                    counts[0] -= 1
                    statistics[.outcome] = .enumCounts(values + [values[0] + 1], counts + [1])
                case .timeRangeNarrowed:
                    occurredAt = block.maxOccurredAt...block.maxOccurredAt
                }
                return Tamper.block(block, statistics: statistics, occurredAt: occurredAt)
            }
            let report = try IntegrityTestSupport.verify(directory)
            let checksum = IntegrityTestSupport.problems(report, .checksum)
            #expect(checksum.count == 1 && report.problemsTotal == 1, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.location == String(part.path.dropFirst(directory.count + 1)) + " block 0")
            #expect(checksum.first?.detail.hasPrefix("the footer does not describe the block's rows") == true, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.first?.seq == part.seqs[0].min() && checksum.first?.lastSeq == part.seqs[0].max())
            if edit == .actionLeftOut {
                // What the edit does: the block's events drop out of a query for their action.
                let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
                var filter = Vigil_V1_Filter()
                filter.actions = ["user.update"]
                let found = try await allEvents(store, filter: try EventFilter(filter))
                try await store.close()
                #expect(found.count == 240 - part.seqs[0].count)
            }
        }
    }

    @Test("a part whose chunk fails its CRC: CHECKSUM naming the part and block, its events MISSING")
    func partChecksum() async throws {
        try await withTemporaryDirectory { directory in
            _ = try await populate(directory)
            let part = try largestPart(directory)
            let reader = try PartReader(path: part.path)
            let chunk = reader.blocks[0].columns[.action]!
            reader.close()
            var bytes = try Tamper.readFile(part.path)
            bytes[chunk.offset] ^= 0xFF
            try Tamper.writeFile(part.path, bytes)
            let report = try IntegrityTestSupport.verify(directory)
            let checksum = try #require(IntegrityTestSupport.problems(report, .checksum).first, "\(IntegrityTestSupport.describe(report))")
            #expect(checksum.location == String(part.path.dropFirst(directory.count + 1)) + " block 0")
            #expect(IntegrityTestSupport.problems(report, .missing).reduce(0) { $0 + Int(($1.lastSeq ?? $1.seq!) - $1.seq! + 1) } == part.seqs[0].count)
        }
    }

    @Test("retention removes whole parts, yet what remains verifies: the cut moves the start, scattered removals keep their leaves")
    func retention() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let day: Int64 = 86_400_000_000_000
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * day
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            // Old events alone (seqs 1…30), then a flush mixing old and new (31…90), then new ones.
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * day), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "older", endingAgo: 30 * day), idempotencyKey: nil)
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "new"), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await IntegrityTestSupport.checkpoint(store, key: key)
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "newer"), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await IntegrityTestSupport.checkpoint(store, key: key)

            try await store.retainNow(now: currentUnixNanos())
            #expect(store.chainCut()?.seq == 30, "every event up to seq 30 is gone")
            let online = try await store.verify({ var options = VerificationOptions(); options.checkpointDirectory = directory + "/checkpoints"; options.trustedKey = key.publicKey; return options }())
            #expect(online.intact, "\(IntegrityTestSupport.describe(online))")
            #expect(online.eventsExpired == 60, "30 below the cut, 30 removed from a range that keeps events")
            #expect(online.eventsChecked == 60)
            try await store.close()
            let offline = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(offline.intact && offline.eventsExpired == 60 && offline.headSeq == 120, "\(IntegrityTestSupport.describe(offline))")
            #expect(try FileIO.list(directory + "/chain").contains { $0.hasSuffix(".expired") })

            // Reopened, the chain's start and the expired leaves are read back.
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            try await reopened.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
        }
    }

    @Test("a merge that drops expired rows records their leaves: the day still verifies")
    func mergeDropsExpired() async throws {
        try await withTemporaryDirectory { directory in
            let day: Int64 = 86_400_000_000_000
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.mergeFanIn = 2
                $0.tenantRetentionNanos = ["brief": 2 * day]
            })
            for batch in 0..<3 {
                var events = IntegrityTestSupport.events(4, tag: "keep\(batch)", endingAgo: 5 * day)
                events += IntegrityTestSupport.events(4, tag: "drop\(batch)", endingAgo: 5 * day, tenant: "brief")
                _ = try await store.append(events, idempotencyKey: nil)
                try await store.flushNow()
            }
            try await store.mergeNow()
            let report = try await store.verify(VerificationOptions())
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(report.eventsExpired == 12 && report.eventsChecked == 12)
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
        }
    }

    @Test("offline verify refuses a directory a store holds open, and one that is not a data directory")
    func refusals() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory))
            #expect(throws: VigilError.self) { _ = try IntegrityTestSupport.verify(directory) }
            do {
                _ = try IntegrityTestSupport.verify(directory)
            } catch let error as VigilError {
                #expect(error.code == .failedPrecondition)
                #expect(error.message == "\(directory) is in use by a running server (its LOCK is held); verify through the server instead: vigil verify --server HOST:PORT")
            }
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory).intact)
            do {
                _ = try IntegrityTestSupport.verify(directory + "/parts")
                Issue.record("a folder without MANIFEST or wal/ is refused")
            } catch let error as VigilError {
                #expect(error.code == .notFound)
            }
        }
    }
}
