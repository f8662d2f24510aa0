import Foundation
import SwiftProtobuf
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilStorage

/// Runs `vigil ARGS` on a thread of its own, so that the test's tasks (the
/// ingesters) keep running on the cooperative pool meanwhile.
func runVigilDetached(_ arguments: [String]) async throws -> VigilBinary.Output {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try VigilBinary.run(arguments) })
        }
    }
}

/// `vigil backup`, `vigil restore` and `vigil verify --backup` against real
/// server processes and real files.
@Suite("Backup and restore with real processes", .serialized)
struct BackupCLITests {
    /// Acknowledged events: client-chosen id → the seq the server gave it.
    final class Acknowledged: Sendable {
        let seqs = Mutex<[String: UInt64]>([:])
        let stopped = Atomic<Bool>(false)
        var snapshot: [String: UInt64] { seqs.withLock { $0 } }
        var count: Int { seqs.withLock { $0.count } }
    }

    static func temporaryDirectory(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func batch(_ tag: String, size: Int) -> [AuditEvent] {
        let now = currentUnixNanos()
        return (0..<size).map { index in
            var event = AuditEvent()
            event.id = UUID().uuidString.lowercased()
            event.occurredAt = .init(unixNanos: now - Int64(index) * 1_000_000)
            event.tenant = "backup"
            event.actor.id = "\(tag)/\(index)"
            event.action = "backup.test"
            return event
        }
    }

    /// Every event of tenant `backup` on the server: id → seq.
    static func stored(_ address: String) async throws -> [String: UInt64] {
        let client = try await VigilClient.connect(VigilClient.Configuration(server: address))
        var request = Vigil_V1_QueryRequest()
        request.pageSize = 5_000
        request.filter.tenants = ["backup"]
        var events: [String: UInt64] = [:]
        for try await event in client.query(request) {
            #expect(events.updateValue(event.seq, forKey: event.id) == nil, "\(event.id) is stored once")
        }
        await client.close()
        return events
    }

    static func cutSeq(of output: VigilBinary.Output) throws -> UInt64 {
        let range = try #require(output.stdout.range(of: "cut at seq "), "\(output.stdout)")
        return try #require(UInt64(output.stdout[range.upperBound...].prefix { $0.isNumber }), "\(output.stdout)")
    }

    @Test("four connections ingest through a backup; the restored server holds exactly the acknowledged events through the cut, by id")
    func backupDuringIngestRestoresTheAckedSet() async throws {
        let root = try Self.temporaryDirectory("backup-ingest")
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Small memory segments: flushes (and merges of their parts) go on during the backup.
        let server = try ServerProcess(dataDir: root + "/data", extraArguments: ["--segment-max-events", "1000"])
        let address = server.address
        let acknowledged = Acknowledged()
        let (progress, signal) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))

        let (output, ackedBefore) = try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in 0..<4 {
                group.addTask {
                    do {
                        let client = try await VigilClient.connect(VigilClient.Configuration(server: address))
                        var number = 0
                        while !acknowledged.stopped.load(ordering: .relaxed) {
                            let events = Self.batch("c\(connection)b\(number)", size: 25)
                            let response = try await client.ingest(events, idempotencyKey: "c\(connection)b\(number)")
                            acknowledged.seqs.withLock { seqs in
                                for (index, event) in events.enumerated() { seqs[event.id] = response.firstSeq + UInt64(index) }
                            }
                            signal.yield(acknowledged.count)
                            number += 1
                        }
                        await client.close()
                    } catch {
                        signal.finish()  // never leave the test waiting for acknowledgements
                        throw error
                    }
                }
            }
            // Events before the backup, then the backup while ingest goes on, then more after it.
            var counts = progress.makeAsyncIterator()
            while let count = await counts.next(), count < 2_000 {}
            let ackedBefore = acknowledged.snapshot
            let output = try await runVigilDetached(["backup", "--server", address, "--progress", root + "/backup"])
            let afterBackup = acknowledged.count
            while let count = await counts.next(), count < afterBackup + 1_000 {}
            acknowledged.stopped.store(true, ordering: .relaxed)
            try await group.waitForAll()
            return (output, ackedBefore)
        }
        #expect(output.status == 0, "\(output.stderr)")
        let cut = try Self.cutSeq(of: output)
        #expect(output.stderr.contains("backup: "), "progress is shown: \(output.stderr)")
        #expect(!ackedBefore.isEmpty)
        #expect(ackedBefore.values.allSatisfy { $0 <= cut }, "every event acknowledged before the backup began is before the cut")
        let all = acknowledged.snapshot
        let expected = all.filter { $0.value <= cut }
        #expect(expected.count < all.count, "some events were acknowledged after the cut")
        #expect(!expected.isEmpty)
        _ = server.stop()

        let verify = try VigilBinary.run(["verify", "--backup", root + "/backup"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("intact"), "\(verify.stdout)")

        let restore = try VigilBinary.run(["restore", root + "/backup", root + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("events through seq \(cut)"), "\(restore.stdout)")

        let restored = try ServerProcess(dataDir: root + "/restored")
        let events = try await Self.stored(restored.address)
        _ = restored.stop()
        #expect(events.count == expected.count)
        #expect(events == expected, "exactly the acknowledged events through the cut, with their seqs")
        #expect(events.values.allSatisfy { $0 <= cut })
        #expect(Set(events.keys).isSubset(of: Set(all.keys)), "nothing that was not acknowledged")
    }

    @Test("a damaged backup — a flipped byte in a part, a deleted file, an edited manifest, an added file — is refused by verify (exit 1) and restore (DATA_LOSS), naming the file")
    func corruptedBackupsAreRefused() async throws {
        let root = try Self.temporaryDirectory("backup-corrupt")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try ServerProcess(dataDir: root + "/data", extraArguments: ["--segment-max-events", "100"])
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        // 250 events: flushed parts of 100, and 50 in the WAL only.
        for number in 0..<5 { _ = try await client.ingest(Self.batch("b\(number)", size: 50)) }
        await client.close()
        let backup = try VigilBinary.run(["backup", "--server", server.address, root + "/good"])
        #expect(backup.status == 0, "\(backup.stderr)")
        _ = server.stop()
        let manifestText = try String(contentsOfFile: root + "/good/backup.json", encoding: .utf8)
        let manifest = try Vigil_V1_BackupManifest(jsonString: manifestText)
        let part = try #require(manifest.files.first { $0.path.hasPrefix("parts/") }?.path)
        let wal = try #require(manifest.files.first { $0.path.hasPrefix("wal/") }?.path)

        typealias Damage = (name: String, file: String, message: String, damage: (String) throws -> Void)
        let damages: [Damage] = [
            ("flipped byte in a part", part, "SHA-256", { backup in
                guard let handle = FileHandle(forUpdatingAtPath: backup + "/" + part) else { throw CLITestError("cannot open \(part)") }
                try handle.seek(toOffset: 100)
                let byte = try #require(try handle.read(upToCount: 1)).first ?? 0
                try handle.seek(toOffset: 100)
                try handle.write(contentsOf: Data([byte ^ 0x01]))
                try handle.close()
            }),
            ("deleted WAL segment", wal, "missing", { backup in try FileManager.default.removeItem(atPath: backup + "/" + wal) }),
            ("edited manifest", "backup.json", "changed after the backup was written", { backup in
                var edited = manifest
                edited.cutSeq += 1
                var options = JSONEncodingOptions()
                options.preserveProtoFieldNames = true
                try Data(try edited.jsonString(options: options).utf8).write(to: URL(fileURLWithPath: backup + "/backup.json"))
            }),
            ("added file", "parts/extra.part", "not listed in the manifest", { backup in
                try Data("extra".utf8).write(to: URL(fileURLWithPath: backup + "/parts/extra.part"))
            }),
        ]
        for (index, damage) in damages.enumerated() {
            let copy = root + "/damaged-\(index)"
            try FileManager.default.copyItem(atPath: root + "/good", toPath: copy)
            try damage.damage(copy)

            let verify = try VigilBinary.run(["verify", "--backup", copy])
            #expect(verify.status == 1, "\(damage.name): \(verify.stdout)\(verify.stderr)")
            #expect(verify.stdout.contains("NOT INTACT"), "\(damage.name): \(verify.stdout)")
            #expect(verify.stdout.contains("CHECKSUM in \(damage.file)"), "\(damage.name): \(verify.stdout)")
            #expect(verify.stdout.contains(damage.message), "\(damage.name): \(verify.stdout)")
            // The same when it is given as a data directory: the manifest is noticed.
            let asDataDir = try VigilBinary.run(["verify", "--data-dir", copy])
            #expect(asDataDir.status == 1, "\(damage.name): \(asDataDir.stdout)")

            let target = root + "/restored-\(index)"
            let restore = try VigilBinary.run(["restore", copy, target])
            #expect(restore.status == 1, "\(damage.name): \(restore.stderr)")
            #expect(restore.stderr.contains("DATA_LOSS"), "\(damage.name): \(restore.stderr)")
            #expect(restore.stderr.contains(damage.file), "\(damage.name): \(restore.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target), "\(damage.name): nothing was written")
        }

        // The undamaged backup still verifies and restores.
        let verify = try VigilBinary.run(["verify", "--backup", root + "/good"])
        #expect(verify.status == 0, "\(verify.stdout)")
        let restore = try VigilBinary.run(["restore", root + "/good", root + "/restored-good"])
        #expect(restore.status == 0, "\(restore.stderr)")
    }

    @Test("refusals with exact codes: relative, non-empty and in-data-dir destinations, a non-empty restore target, not a backup, an offline backup of a running server, non-admin tokens")
    func refusals() async throws {
        let root = try Self.temporaryDirectory("backup-refusals")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let tokenFile = root + "/admin.token"
        let server = try ServerProcess(dataDir: root + "/data", extraArguments: ["--admin-token-file", tokenFile], authenticated: true)
        defer { _ = server.stop() }
        let admin = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func backup(_ destination: String, token: String = admin) throws -> VigilBinary.Output {
            try VigilBinary.run(["backup", "--server", server.address, "--token", token, destination])
        }
        try FileManager.default.createDirectory(atPath: root + "/full", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/full/notes.txt"))

        let relative = try backup("backups/today")
        #expect(relative.status == 1)
        #expect(relative.stderr.contains("INVALID_ARGUMENT") && relative.stderr.contains("must be an absolute path on the server's host"), "\(relative.stderr)")
        let nonEmpty = try backup(root + "/full")
        #expect(nonEmpty.status == 1)
        #expect(nonEmpty.stderr.contains("ALREADY_EXISTS") && nonEmpty.stderr.contains("\(root)/full exists and is not empty"), "\(nonEmpty.stderr)")
        let inside = try backup(root + "/data/backup")
        #expect(inside.status == 1)
        #expect(inside.stderr.contains("INVALID_ARGUMENT") && inside.stderr.contains("overlaps the data directory"), "\(inside.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/data/backup"))

        // Tokens: only an admin of every tenant may back up the whole server.
        for (name, scopes, tenants) in [("reader", ["read"], [String]()), ("tenant-admin", ["admin"], ["acme"])] {
            let created = try VigilBinary.run(
                ["token", "create", "--server", server.address, "--token", admin, "--name", name, "--quiet"]
                    + scopes.flatMap { ["--scope", $0] } + tenants.flatMap { ["--tenant", $0] })
            #expect(created.status == 0, "\(created.stderr)")
            let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let refused = try backup(root + "/by-\(name)", token: token)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("PERMISSION_DENIED"), "\(name): \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: root + "/by-\(name)"), "\(name): nothing was written")
        }
        let noToken = try VigilBinary.run(["backup", "--server", server.address, "--token", "vgl_tok_0000000000000000_nope", root + "/by-nobody"])
        #expect(noToken.status != 0)
        #expect(noToken.stderr.contains("UNAUTHENTICATED"), "\(noToken.stderr)")

        // Offline while the server holds the LOCK.
        let offline = try VigilBinary.run(["backup", "--data-dir", root + "/data", root + "/offline"])
        #expect(offline.status == 1)
        #expect(offline.stderr.contains("FAILED_PRECONDITION") && offline.stderr.contains("vigil backup --server"), "\(offline.stderr)")

        // A good backup, then restore refusals.
        let good = try backup(root + "/good")
        #expect(good.status == 0, "\(good.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/good/tokens"), "the tokens file (hashes only) is in the backup")
        let intoFull = try VigilBinary.run(["restore", root + "/good", root + "/full"])
        #expect(intoFull.status == 1)
        #expect(intoFull.stderr.contains("ALREADY_EXISTS") && intoFull.stderr.contains("\(root)/full exists and is not empty"), "\(intoFull.stderr)")
        let notBackup = try VigilBinary.run(["restore", root + "/full", root + "/restored"])
        #expect(notBackup.status == 1)
        #expect(notBackup.stderr.contains("NOT_FOUND") && notBackup.stderr.contains("is not a Vigil backup"), "\(notBackup.stderr)")
        let verifyNotBackup = try VigilBinary.run(["verify", "--backup", root + "/full"])
        #expect(verifyNotBackup.status == 2, "\(verifyNotBackup.stderr)")
        #expect(verifyNotBackup.stderr.contains("NOT_FOUND"), "\(verifyNotBackup.stderr)")

        // The restored tokens work: the same admin token on a server started on the restore.
        let restore = try VigilBinary.run(["restore", root + "/good", root + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        let restored = try ServerProcess(dataDir: root + "/restored", authenticated: true)
        let list = try VigilBinary.run(["token", "list", "--server", restored.address, "--token", admin])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("reader") && list.stdout.contains("tenant-admin"), "\(list.stdout)")
        _ = restored.stop()
    }

    @Test("offline: vigil backup --data-dir of a stopped server's directory, then restore; the same events")
    func offlineBackup() async throws {
        let root = try Self.temporaryDirectory("backup-offline")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try ServerProcess(dataDir: root + "/data")
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        for number in 0..<4 { _ = try await client.ingest(Self.batch("o\(number)", size: 30)) }
        await client.close()
        let before = try await Self.stored(server.address)
        server.kill9()  // not even a clean stop: the events are in the WAL only

        let backup = try VigilBinary.run(["backup", "--data-dir", root + "/data", root + "/backup"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(try Self.cutSeq(of: backup) == 120)
        let restore = try VigilBinary.run(["restore", root + "/backup", root + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        let restored = try ServerProcess(dataDir: root + "/restored")
        let after = try await Self.stored(restored.address)
        _ = restored.stop()
        #expect(after == before)
        #expect(after.count == 120)
    }

    @Test("signed retention settings through backup and restore: an online backup signs the settings in force it records; restored into the server's own checkpoint directory after the flags changed, RETENTION gives way to the latest signed settings and the restored server starts without an alarm")
    func restoreFollowsTheLatestSignedSettings() async throws {
        let root = try Self.temporaryDirectory("backup-signed-settings")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try VigilBinary.run(["keygen", "--out", root + "/key"]).status == 0)
        let external = root + "/secure-checkpoints"
        let signing = ["--checkpoint-key", root + "/key", "--checkpoint-dir", external]
        let server = try ServerProcess(dataDir: root + "/data", extraArguments: signing + ["--retention", "10d"])
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        _ = try await client.ingest(Self.batch("kept", size: 20))
        await client.close()
        let backup = try VigilBinary.run(["backup", "--server", server.address, root + "/backup"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(server.stop().0 == 0)
        // The backup records the flags' 10 days as its RETENTION, signed as generation 2 in its own copy only.
        #expect(try String(contentsOfFile: root + "/backup/RETENTION", encoding: .utf8) == "*\t\(10 * 86_400_000_000_000)\n")
        #expect(FileManager.default.fileExists(atPath: root + "/backup/checkpoints/settings-0000000000000002.retention"))
        #expect(!FileManager.default.fileExists(atPath: external + "/settings-0000000000000002.retention"))

        // The server's flags change: its generation 2 signs 20 days, with no RETENTION.
        let changed = try ServerProcess(dataDir: root + "/data", extraArguments: signing + ["--retention", "20d"])
        #expect(changed.startupLog.contains("signed the retention settings (*=20d) as generation 2: the flags changed"), "\(changed.startupLog)")
        #expect(changed.stop().0 == 0)

        let restore = try VigilBinary.run(["restore", "--checkpoint-dir", external, root + "/backup", root + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains(
            "retention: \(external) holds settings signed after the backup (generation 2 on "), "\(restore.stdout)")
        #expect(restore.stdout.contains(
            ": no RETENTION, so the restored RETENTION is removed and the flags decide (they made *=20d then: start the restored server with the same retention flags)); they replace the backup's RETENTION (*=10d)"),
            "\(restore.stdout)")
        #expect(!FileManager.default.fileExists(atPath: root + "/restored/RETENTION"))
        let restored = try ServerProcess(dataDir: root + "/restored", extraArguments: signing + ["--retention", "20d"])
        #expect(!restored.startupLog.contains("is not the file signed"), "no alarm: \(restored.startupLog)")
        #expect(!restored.startupLog.contains("signed the retention settings"), "nothing to sign: \(restored.startupLog)")
        #expect(restored.stop().0 == 0)
    }

    @Test("restore --checkpoint-dir sets aside the checkpoints a server kept outside its data directory past the backup: the restored server signs its own, and verify is intact and says what was lost")
    func restoreWithExternalCheckpoints() async throws {
        let root = try Self.temporaryDirectory("backup-external-checkpoints")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try VigilBinary.run(["keygen", "--out", root + "/key"]).status == 0)
        let external = root + "/secure-checkpoints"
        let signing = ["--checkpoint-key", root + "/key", "--checkpoint-dir", external]
        func run(_ dataDir: String, _ tag: String, log: Bool = false) async throws -> String {
            let server = try ServerProcess(dataDir: dataDir, extraArguments: signing)
            let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
            _ = try await client.ingest(Self.batch(tag, size: 40))
            await client.close()
            let (status, log) = server.stop()  // signs the last checkpoint
            #expect(status == 0, "\(log)")
            return server.startupLog + log
        }
        _ = try await run(root + "/data", "before")
        let backup = try VigilBinary.run(["backup", "--data-dir", root + "/data", "--checkpoint-dir", external, root + "/backup"])
        #expect(try Self.cutSeq(of: backup) == 40, "\(backup.stderr)")
        // The future the restore loses: seqs 41…80, signed at 80.
        _ = try await run(root + "/data", "lost")
        #expect(FileManager.default.fileExists(atPath: external + "/" + Checkpoints.fileName(seq: 80)))

        // Restored without the directory: the server says what it finds there.
        #expect(try VigilBinary.run(["restore", root + "/backup", root + "/unadopted"]).status == 0)
        let unadopted = try ServerProcess(dataDir: root + "/unadopted", extraArguments: signing)
        #expect(unadopted.startupLog.contains("holds 1 checkpoint(s) past this store's last event (seq 40), at seqs 80…80"), "\(unadopted.startupLog)")
        // Its own seq 80 collides with the lost one's, which is not replaced: that is said too.
        let writer = try await VigilClient.connect(VigilClient.Configuration(server: unadopted.address))
        _ = try await writer.ingest(Self.batch("unadopted", size: 40))
        await writer.close()
        let (_, unadoptedLog) = unadopted.stop()
        #expect(unadoptedLog.contains("already holds a checkpoint of seq 80 with another head"), "\(unadoptedLog)")

        let restore = try VigilBinary.run(["restore", "--checkpoint-dir", external, root + "/backup", root + "/restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("checkpoints: 0 of the backup's copied into \(external); 1 past seq 40 (seqs 80…80, signed for events this restore does not bring back) moved into \(external)/superseded/"), "\(restore.stdout)")
        #expect(!FileManager.default.fileExists(atPath: external + "/" + Checkpoints.fileName(seq: 80)))
        let sets = Checkpoints.supersededSets(in: external)
        #expect(sets.count == 1 && sets.first?.checkpoints == 1 && sets.first.map { $0.name.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{6}Z-after-seq-40/) != nil } == true, "\(sets)")

        // The restored server goes on from seq 40 and signs seq 80 for its own events.
        let log = try await run(root + "/restored", "after")
        #expect(!log.contains("past this store's last event"), "\(log)")
        let verify = try VigilBinary.run(["verify", "--data-dir", root + "/restored", "--checkpoint-dir", external, "--public-key", root + "/key.pub"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("note: 1 checkpoint(s) in \(external)/superseded/\(sets.first?.name ?? "?") were set aside by vigil restore"), "\(verify.stdout)")
        #expect(verify.stdout.contains("2 checkpoints;"), "seqs 40 and 80: \(verify.stdout)")
    }

    @Test("restore --public-key verifies the backup against its signed checkpoints first: the server's key restores, another key or no checkpoint restores nothing")
    func restoreVerifiesSignedCheckpoints() async throws {
        let root = try Self.temporaryDirectory("backup-signed")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["key", "other"] {
            let keygen = try VigilBinary.run(["keygen", "--out", root + "/" + name])
            #expect(keygen.status == 0, "\(keygen.stderr)")
        }
        let server = try ServerProcess(dataDir: root + "/data", extraArguments: ["--checkpoint-key", root + "/key"])
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        for number in 0..<3 { _ = try await client.ingest(Self.batch("s\(number)", size: 40)) }
        await client.close()
        let (status, _) = server.stop()  // signs the last checkpoint
        #expect(status == 0)
        let backup = try VigilBinary.run(["backup", "--data-dir", root + "/data", root + "/backup"])
        #expect(backup.status == 0, "\(backup.stderr)")

        let wrongKey = try VigilBinary.run(["restore", "--public-key", root + "/other.pub", root + "/backup", root + "/wrong"])
        #expect(wrongKey.status == 1, "\(wrongKey.stderr)")
        #expect(wrongKey.stderr.contains("does not verify against the key"), "\(wrongKey.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/wrong"), "nothing was written")

        let right = try VigilBinary.run(["restore", "--public-key", root + "/key.pub", root + "/backup", root + "/restored"])
        #expect(right.status == 0, "\(right.stderr)")
        #expect(right.stderr.contains("verified 120 events"), "\(right.stderr)")

        // A backup without checkpoints proves nothing against a key.
        let unsigned = try ServerProcess(dataDir: root + "/unsigned")
        let writer = try await VigilClient.connect(VigilClient.Configuration(server: unsigned.address))
        _ = try await writer.ingest(Self.batch("u", size: 10))
        await writer.close()
        _ = unsigned.stop()
        #expect(try VigilBinary.run(["backup", "--data-dir", root + "/unsigned", root + "/unsigned-backup"]).status == 0)
        let none = try VigilBinary.run(["restore", "--public-key", root + "/key.pub", root + "/unsigned-backup", root + "/none"])
        #expect(none.status == 1, "\(none.stderr)")
        #expect(none.stderr.contains("holds no signed checkpoint"), "\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/none"))
    }
}
