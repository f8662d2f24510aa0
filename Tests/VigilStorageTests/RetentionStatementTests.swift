import Foundation
import Synchronization
import Testing
import VigilCore
import VigilProto

@testable import VigilStorage

/// Signed retention statements: once checkpoints are signed, events leave
/// the chain only with the server's signed word that retention removed them.
@Suite("Retention statements: removals signed, deletions told apart")
struct RetentionStatementTests {
    static let day: Int64 = 86_400_000_000_000

    /// A store whose retention (10 days) removes seqs 1…30 whole (the cut
    /// moves the chain's start to 30) and 31…60 from parts that keep
    /// 61…90 (an expired-leaves file), with checkpoints signed by `key`.
    /// `signer`: whether the store signs its removals.
    static func retainedStore(_ directory: String, key: CheckpointKey, signer: Bool, events: StorageEventRecorder? = nil) async throws {
        let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
            $0.retentionNanos = 10 * day
            if signer { $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints") }
            if let events { $0.eventHandler = events.handler }
        })
        _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * day), idempotencyKey: nil)
        try await store.flushNow()
        _ = try await store.append(IntegrityTestSupport.events(30, tag: "older", endingAgo: 30 * day), idempotencyKey: nil)
        _ = try await store.append(IntegrityTestSupport.events(30, tag: "new"), idempotencyKey: nil)
        try await store.flushNow()
        _ = try await IntegrityTestSupport.checkpoint(store, key: key)
        try await store.retainNow(now: currentUnixNanos())
        #expect(store.chainCut()?.seq == 30)
        try await store.close()
    }

    /// The statements of removals (not `begin.retention`, not the settings').
    static func statements(_ directory: String) throws -> [String] {
        try RetentionStatements.names(in: directory + "/checkpoints").filter {
            $0 != RetentionStatements.beginFileName && !$0.hasPrefix("settings-")
        }
    }

    static func reason(_ path: String) throws -> Vigil_V1_RetentionStatement.Reason {
        let signed = try Vigil_V1_SignedRetentionStatement(serializedBytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        return try Vigil_V1_RetentionStatement(serializedBytes: signed.statement).reason
    }

    @Test("a signing store attests each removal before it commits: verify is intact and says so; the log counts the statements")
    func attested() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let events = StorageEventRecorder()
            try await Self.retainedStore(directory, key: key, signer: true, events: events)
            let names = try Self.statements(directory)
            #expect(names.count == 2, "\(names)")
            #expect(try Self.reason(directory + "/checkpoints/" + RetentionStatements.beginFileName) == .begin)
            #expect(names.contains { $0.hasPrefix("start-000000000000001e-") }, "the chain's new start, after seq 30: \(names)")
            #expect(names.contains { $0.hasPrefix("expired-") }, "\(names)")
            for name in names { #expect(try Self.reason(directory + "/checkpoints/" + name) == .retention) }
            let expired = events.expirations
            // As many parts as days those events an hour apart span (2 to 4, by the time of day).
            #expect(expired.count == 1 && expired.first!.events == 60 && expired.first!.parts >= 2 && expired.first!.statements == 2, "\(expired)")

            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact && report.eventsExpired == 60, "\(IntegrityTestSupport.describe(report))")
            #expect(report.notes.contains("2 removal(s) of events (the chain's start, expired-leaves files) attested by signed retention statements"), "\(report.notes)")
        }
    }

    @Test("a store from before statements: its removals are noted as unattested; the first start with the key signs them as found (ADOPTED) and begins statements")
    func upgradeAdopts() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.retainedStore(directory, key: key, signer: false)
            #expect(try RetentionStatements.names(in: directory + "/checkpoints").isEmpty)
            let before = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(before.intact, "\(IntegrityTestSupport.describe(before))")
            #expect(before.notes.contains(
                "2 removal(s) of events (the chain's start, expired-leaves files) are not attested: signed retention statements have not begun in checkpoints/ (no begin.retention); a server started with its --checkpoint-key signs them as found and begins them"),
                "\(before.notes)")

            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            #expect(reopened.recovery.retentionAdopted.count == 2, "\(reopened.recovery)")
            #expect(reopened.recovery.description.contains("signed 2 retention statement(s) marked ADOPTED for removals found without a valid one"))
            try await reopened.close()
            for name in try Self.statements(directory) { #expect(try Self.reason(directory + "/checkpoints/" + name) == .adopted) }
            #expect(try Self.reason(directory + "/checkpoints/" + RetentionStatements.beginFileName) == .begin)
            let adopted = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(adopted.intact, "\(IntegrityTestSupport.describe(adopted))")
            #expect(adopted.notes.count { $0.contains("which signed it as found (ADOPTED) before statements began") } == 2, "\(adopted.notes)")

            // Adopted once: the next start finds them signed.
            let again = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            #expect(again.recovery.retentionAdopted.isEmpty && again.recovery.retentionUnattested.isEmpty)
            try await again.close()
        }
    }

    @Test("once statements have begun, removals made without the key (a deletion passed off as retention) are CHECKPOINT problems, and a restart with the key does not sign them")
    func restartDoesNotLaunder() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let signing = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            try await signing.close()
            #expect(FileIO.exists(directory + "/checkpoints/" + RetentionStatements.beginFileName))
            try await Self.retainedStore(directory, key: key, signer: false)
            func expectTwoProblems(sourceLocation: SourceLocation = #_sourceLocation) throws {
                let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
                let problems = IntegrityTestSupport.problems(report, .checkpoint)
                #expect(report.problems.count == 2 && problems.count == 2, "\(IntegrityTestSupport.describe(report))", sourceLocation: sourceLocation)
                let chainFile = try #require(try FileIO.list(directory + "/chain").first { $0.hasSuffix(".chain") }, sourceLocation: sourceLocation)
                let expiredFile = try #require(try FileIO.list(directory + "/chain").first { $0.hasSuffix(".expired") }, sourceLocation: sourceLocation)
                let start = try #require(problems.first { $0.location == "chain/" + chainFile }, sourceLocation: sourceLocation)
                #expect(start.seq == 30 && start.lastSeq == nil, sourceLocation: sourceLocation)
                #expect(start.detail.hasPrefix("the chain starts after seq 30 (30 events removed at or below it), but no signed retention statement attests it (checkpoints/start-000000000000001e-"), sourceLocation: sourceLocation)
                #expect(start.detail.hasSuffix(".retention is missing), though statements began (checkpoints/begin.retention): the events may have been deleted rather than expired"), sourceLocation: sourceLocation)
                let leaves = try #require(problems.first { $0.location == "chain/" + expiredFile }, sourceLocation: sourceLocation)
                #expect(leaves.seq == 31 && leaves.lastSeq == 60, sourceLocation: sourceLocation)
                #expect(leaves.detail.hasPrefix("30 events removed (seqs 31…60), their leaves kept here, but no signed retention statement attests it"), sourceLocation: sourceLocation)
            }
            try expectTwoProblems()

            let restarted = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            #expect(restarted.recovery.retentionAdopted.isEmpty)
            #expect(restarted.recovery.retentionUnattested.count == 2, "\(restarted.recovery)")
            #expect(restarted.recovery.description.contains("; 2 removal(s) without a valid signed retention statement ("))
            try await restarted.close()
            #expect(try Self.statements(directory).isEmpty)
            try expectTwoProblems()
        }
    }

    @Test("statements of removals that never committed are withdrawn when the commit fails, and set aside at the next start when a crash left them")
    func uncommittedStatements() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let signer = RetentionStatements.Signer(key: key, directory: directory + "/checkpoints")
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.retentionSigner = signer
            })
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * Self.day), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "new"), idempotencyKey: nil)
            try await store.flushNow()
            // The MANIFEST cannot be replaced: the pass signs, then fails to commit.
            try FileManager.default.createDirectory(atPath: directory + "/MANIFEST.tmp", withIntermediateDirectories: false)
            await #expect(throws: VigilError.self) { try await store.retainNow(now: currentUnixNanos()) }
            #expect(store.chainCut() == nil)
            #expect(try Self.statements(directory).isEmpty, "the statement of the cut that did not happen is withdrawn")
            try FileManager.default.removeItem(atPath: directory + "/MANIFEST.tmp")
            try await store.close()

            // What a crash between a statement and its commit leaves: one for a cut past the live start.
            let ledger = try ChainLedger.read(from: directory + "/chain/" + (try FileIO.list(directory + "/chain").first { $0.hasSuffix(".chain") })!)
            #expect(ledger.endSeq == 60)
            let stray = RetentionStatements.Fact.chainStart(seq: 60, head: ledger.endHead, eventsRemoved: 60)
            try RetentionStatements.attest(stray, reason: .retention, retention: "*\t1\n", signer: signer)
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.retentionSigner = signer })
            #expect(reopened.recovery.retentionStatementsSetAside == 1, "\(reopened.recovery)")
            try await reopened.close()
            #expect(try Self.statements(directory).isEmpty)
            let sets = try FileIO.list(directory + "/checkpoints/superseded")
            #expect(sets.count == 1 && sets[0].hasSuffix("-unused-retention-statements"), "\(sets)")
            #expect(try FileIO.list(directory + "/checkpoints/superseded/" + sets[0]) == [stray.fileName])
            // Verify says they are there, and that they attest nothing.
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(report.notes.contains(
                "1 retention statement(s) in checkpoints/superseded/\(sets[0]) were set aside at a start: signed for removals that never committed (a retention pass or merge interrupted or failed, or a restore's lost future), so they attest nothing"),
                "\(report.notes)")
        }
    }

    @Test("a statement altered, signed by another key, or attesting another removal: CHECKPOINT naming the statement")
    func tamperedStatements() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.retainedStore(directory, key: key, signer: true)
            let folder = directory + "/checkpoints"
            let start = try #require(try Self.statements(directory).first { $0.hasPrefix("start-") })
            let expired = try #require(try Self.statements(directory).first { $0.hasPrefix("expired-") })
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/" + start)))
            func only(_ detail: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
                let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
                #expect(report.problems.count == 1, "\(IntegrityTestSupport.describe(report))", sourceLocation: sourceLocation)
                let problem = try #require(report.problems.first, sourceLocation: sourceLocation)
                #expect(problem.kind == .checkpoint && problem.location == "checkpoints/" + start && problem.seq == 30, sourceLocation: sourceLocation)
                #expect(problem.detail == detail, sourceLocation: sourceLocation)
            }

            var altered = original
            altered[altered.count - 1] ^= 0x01
            try Data(altered).write(to: URL(fileURLWithPath: folder + "/" + start))
            try only("the retention statement of the chain's start at seq 30 (30 events removed at or below it) cannot be trusted: its signature does not verify (the statement was altered or forged)")

            // Signed, but by a key that is not the server's.
            let other = CheckpointKey.generate()
            let scratch = directory + "/other"
            let ledger = try ChainLedger.read(from: directory + "/chain/" + (try FileIO.list(directory + "/chain").first { $0.hasSuffix(".chain") })!)
            try FileIO.remove(folder + "/" + start)
            try RetentionStatements.attest(
                .chainStart(seq: 30, head: ledger.startHead, eventsRemoved: 30), reason: .retention, retention: "*\t1\n",
                signer: .init(key: other, directory: scratch))
            try FileIO.rename(scratch + "/" + start, to: folder + "/" + start)
            try only("the retention statement of the chain's start at seq 30 (30 events removed at or below it) cannot be trusted: it is signed by key \(other.publicKey.hex), not by the trusted key \(key.publicKey.hex)")

            // The server's genuine statement of another removal, under this one's name.
            try FileIO.remove(folder + "/" + start)
            try FileIO.link(folder + "/" + expired, to: folder + "/" + start)
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let problem = try #require(report.problems.first)
            #expect(report.problems.count == 1 && problem.kind == .checkpoint, "\(IntegrityTestSupport.describe(report))")
            #expect(problem.detail.hasPrefix("the retention statement of the chain's start at seq 30 (30 events removed at or below it) cannot be trusted: it attests chain/"))

            try FileIO.remove(folder + "/" + start)
            try Data(original).write(to: URL(fileURLWithPath: folder + "/" + start))
            #expect(try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }.intact)
        }
    }

    @Test("an expired-leaves file rewritten with its checksum right no longer matches its statement's digest")
    func expiredFileRewritten() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.retainedStore(directory, key: key, signer: true)
            let path = "chain/" + (try FileIO.list(directory + "/chain").first { $0.hasSuffix(".expired") })!
            var file = try ExpiredLeaves.read(from: directory + "/" + path)
            // An entry dropped, the checksum recomputed (its event then also reads as missing).
            file.entries.removeLast()
            try file.write(to: directory + "/" + path)
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let problem = try #require(IntegrityTestSupport.problems(report, .checkpoint).first { $0.location == path }, "\(IntegrityTestSupport.describe(report))")
            #expect(problem.seq == 31 && problem.lastSeq == 59)
            #expect(problem.detail.hasPrefix("29 events removed (seqs 31…59), their leaves kept here, but no signed retention statement attests it"))
        }
    }

    @Test("a file planted under the name of a removal's statement (the names are predictable) is replaced by the signed statement")
    func plantedFileReplaced() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let folder = directory + "/checkpoints"
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.retentionSigner = .init(key: key, directory: folder)
            })
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * Self.day), idempotencyKey: nil)
            try await store.flushNow()
            let (seq, head) = try await store.chainHead()
            #expect(seq == 30)
            let fact = RetentionStatements.Fact.chainStart(seq: 30, head: head, eventsRemoved: 30)
            try FileIO.makeDirectory(folder)
            try Data("planted".utf8).write(to: URL(fileURLWithPath: folder + "/" + fact.fileName))
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "new"), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await IntegrityTestSupport.checkpoint(store, key: key)
            try await store.retainNow(now: currentUnixNanos())
            #expect(store.chainCut()?.seq == 30)
            try await store.close()
            guard case .success(let checked)? = RetentionStatements.check(fact, in: folder, trusted: key.publicKey) else {
                Issue.record("the planted file was kept")
                return
            }
            #expect(checked.reason == .retention)
            #expect(try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }.intact)
        }
    }

    @Test("a merge that drops expired rows signs their file (reason MERGE)")
    func mergeAttested() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.mergeFanIn = 2
                $0.tenantRetentionNanos = ["brief": 2 * Self.day]
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            for batch in 0..<3 {
                var events = IntegrityTestSupport.events(4, tag: "keep\(batch)", endingAgo: 5 * Self.day)
                events += IntegrityTestSupport.events(4, tag: "drop\(batch)", endingAgo: 5 * Self.day, tenant: "brief")
                _ = try await store.append(events, idempotencyKey: nil)
                try await store.flushNow()
            }
            _ = try await IntegrityTestSupport.checkpoint(store, key: key)
            try await store.mergeNow()
            let names = try Self.statements(directory)
            #expect(!names.isEmpty && names.allSatisfy { $0.hasPrefix("expired-") }, "\(names)")
            for name in names { #expect(try Self.reason(directory + "/checkpoints/" + name) == .merge) }
            let online = try await store.verify({
                var options = VerificationOptions()
                options.checkpointDirectory = directory + "/checkpoints"
                options.trustedKey = key.publicKey
                return options
            }())
            #expect(online.intact && online.eventsExpired == 12, "\(IntegrityTestSupport.describe(online))")
            try await store.close()
            #expect(try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }.intact)
        }
    }

    @Test("a statement that cannot be written stops the removal: nothing is removed, and the next pass does it")
    func unwritableStatement() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            // A file where the statements' directory would be.
            let blocked = directory + "/blocked"
            try FileIO.makeDirectory(directory)
            try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocked))
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.retentionSigner = .init(key: key, directory: blocked + "/checkpoints")
            })
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "old", endingAgo: 20 * Self.day), idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append(IntegrityTestSupport.events(30, tag: "new"), idempotencyKey: nil)
            try await store.flushNow()
            let parts = store.snapshot().parts.count
            do {
                try await store.retainNow(now: currentUnixNanos())
                Issue.record("the pass removed events it could not attest")
            } catch let error as VigilError {
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.hasPrefix("cannot write the signed retention statement of the chain's start at seq 30 (30 events removed at or below it) into \(blocked)/checkpoints: "))
                #expect(error.message.hasSuffix(". Nothing is removed until it can be written"))
            }
            #expect(store.chainCut() == nil && store.snapshot().parts.count == parts)
            #expect(store.snapshot().parts.reduce(0) { $0 + $1.entry.rows } == 60)

            try FileIO.remove(blocked)
            try await store.retainNow(now: currentUnixNanos())
            #expect(store.chainCut()?.seq == 30)
            #expect(store.snapshot().parts.reduce(0) { $0 + $1.entry.rows } == 30)
            try await store.close()
            #expect(try RetentionStatements.names(in: blocked + "/checkpoints").count == 1)
        }
    }

    @Test("a removal found at start that cannot be signed (the checkpoint directory unwritable) does not stop the start; it is reported, and signed at the next start")
    func adoptionFailure() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.retainedStore(directory, key: key, signer: false)
            let blocked = directory + "/blocked"
            try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocked))
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: blocked + "/checkpoints")
            })
            #expect(store.recovery.retentionAdopted.isEmpty)
            let failure = try #require(store.recovery.retentionAdoptionFailure)
            #expect(failure.hasPrefix("cannot sign the chain's start at seq 30 (30 events removed at or below it) into \(blocked)/checkpoints: mkdir "), "\(failure)")
            #expect(store.recovery.description.contains("; " + failure + "; "))
            // The settings cannot be signed either; they are said last.
            let settingsFailure = try #require(store.recovery.retentionSettings.failure)
            #expect(settingsFailure.hasPrefix("cannot sign the retention settings into \(blocked)/checkpoints: mkdir "), "\(settingsFailure)")
            #expect(store.recovery.description.hasSuffix("; " + settingsFailure))
            _ = try await store.append(IntegrityTestSupport.events(3, tag: "after"), idempotencyKey: nil)
            try await store.close()

            try FileIO.remove(blocked)
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: blocked + "/checkpoints")
            })
            #expect(reopened.recovery.retentionAdopted.count == 2 && reopened.recovery.retentionAdoptionFailure == nil)
            try await reopened.close()
        }
    }

    @Test("an expired-leaves file the chain's start has passed (its delete failed) is garbage: verify ignores it, the next start deletes it")
    func passedExpiredFile() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.retainedStore(directory, key: key, signer: true)
            let stray = "chain/0000000000000001.expired"
            try ExpiredLeaves(entries: [.init(seq: 5, leaf: HashChain.leaf(canonical: [1, 2, 3]))]).write(to: directory + "/" + stray)
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            let reopened = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            #expect(reopened.recovery.garbageRemoved == [stray])
            #expect(reopened.recovery.retentionUnattested.isEmpty)
            try await reopened.close()
            #expect(!FileIO.exists(directory + "/" + stray))
        }
    }

    @Test("a backup carries the statements, and verifies with them")
    func backupCarriesStatements() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate()
            let directory = root + "/data"
            try await Self.retainedStore(directory, key: key, signer: true)
            // A set of statements a start set aside: the record goes with the backup.
            let set = "2026-12-07T010000Z-unused-retention-statements"
            let stray = RetentionStatements.Fact.chainStart(seq: 90, head: ChainDigest(bytes: Array(repeating: 7, count: 32))!, eventsRemoved: 90)
            try RetentionStatements.attest(
                stray, reason: .retention, retention: "*\t1\n", signer: .init(key: key, directory: directory + "/checkpoints/superseded/" + set))
            // With its key, as `vigil serve` has it: the settings in force, which
            // the backup records as its RETENTION, are signed at start.
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            var request = BackupOptions(destination: root + "/backup")
            request.checkpointDirectory = directory + "/checkpoints"
            _ = try await store.backup(request)
            try await store.close()
            // And one settings statement of its own: the settings in force it records as RETENTION.
            let carried = try RetentionStatements.names(in: root + "/backup/checkpoints")
            let own = try RetentionStatements.names(in: directory + "/checkpoints")
            #expect(Set(own).isSubset(of: carried) && carried.count == own.count + 1, "\(carried) \(own)")
            var options = VerificationOptions()
            options.checkpointDirectory = root + "/backup/checkpoints"
            options.trustedKey = key.publicKey
            let report = try BackupVerification.verify(directory: root + "/backup", options: options)
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(report.notes.contains { $0.hasPrefix("1 retention statement(s) in checkpoints/superseded/\(set) were set aside at a start") }, "\(report.notes)")
            #expect(FileIO.exists(root + "/backup/checkpoints/superseded/\(set)/" + stray.fileName))
        }
    }
}
