import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto
@testable import VigilStorage

/// `vigil verify`, `vigil keygen` and `vigil serve --checkpoint-key` with real
/// processes, over data directories tampered with on disk.
@Suite("Tamper evidence with real processes", .serialized)
struct IntegrityCLITests {
    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-integrity-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `count` events an hour apart, ending an hour ago, as JSON lines (a part per day).
    func eventLines(_ count: Int, tag: String) -> String {
        let end = Date().addingTimeInterval(-3600)
        let formatter = ISO8601DateFormatter()
        return (0..<count).map { index in
            let time = formatter.string(from: end.addingTimeInterval(-Double(count - index) * 3600))
            let trace = String(format: "%016llx%016llx", UInt64.random(in: 0...UInt64.max), UInt64.random(in: 0...UInt64.max))
            return #"{"occurredAt":"\#(time)","tenant":"acme","actor":{"id":"\#(tag)-\#(index)","type":"USER"},"action":"user.update","resource":{"type":"doc","id":"d-\#(index % 7)"},"outcome":"SUCCESS","traceId":"\#(trace)"}"#
        }.joined(separator: "\n") + "\n"
    }

    func events(_ count: Int, tag: String) -> [AuditEvent] {
        let now = currentUnixNanos()
        return (0..<count).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: now - Int64(count - index) * 60_000_000_000)
            event.tenant = "acme"
            event.actor.id = "\(tag)-\(index)"
            event.action = "user.login"
            return event
        }
    }

    func keygen(_ path: String) throws -> String {
        let result = try VigilBinary.run(["keygen", "--out", path])
        #expect(result.status == 0, "\(result.stderr)")
        return String(result.stdout.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("vigil verify names a byte edited (CRCs made right), an event deleted, two swapped and one inserted, and exits 1")
    func tamperedParts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        let publicKey = try keygen(directory + "/key")
        let server = try ServerProcess(dataDir: data, extraArguments: ["--checkpoint-key", directory + "/key"])
        try eventLines(400, tag: "p").write(toFile: directory + "/events.jsonl", atomically: true, encoding: .utf8)
        let ingest = try VigilBinary.run(["ingest", "--server", server.address, directory + "/events.jsonl"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let (status, log) = server.stop()
        #expect(status == 0 && log.contains("signed checkpoint"), "the last checkpoint is signed on shutdown: \(log)")

        let clean = try VigilBinary.run(["verify", "--data-dir", data, "--public-key", directory + "/key.pub"])
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        #expect(clean.stdout.contains("intact; 400 events checked"), "\(clean.stdout)")
        #expect(clean.stdout.contains("1 checkpoint;"), "\(clean.stdout)")

        // Four parts (days), one change each.
        let parts = try Tamper.parts(data).map { data + "/" + $0 }.filter { try Tamper.seqs($0).joined().count >= 10 }
        try #require(parts.count >= 4)
        let altered = try Tamper.flipTraceIDBit(parts[0], block: 0, row: 2)
        let deleted = try Tamper.seqs(parts[1])[0][5]
        try Tamper.delete(parts[1], seq: deleted)
        let (a, b) = (try Tamper.seqs(parts[2])[0][1], try Tamper.seqs(parts[2])[0][3])
        try Tamper.swap(parts[2], a, b)
        let duplicated = try Tamper.seqs(parts[3])[0][4]
        let intruder = try Tamper.insert(parts[3], seq: duplicated, copying: duplicated)

        let result = try VigilBinary.run(["verify", "--data-dir", data, "--public-key", publicKey])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        func line(_ prefix: String) -> String? { lines.first { $0.hasPrefix(prefix) } }
        #expect(line("ALTERED seq \(altered) id ")?.contains(" in parts/") == true, "\(result.stdout)")
        #expect(line("MISSING seq \(deleted):") != nil, "\(result.stdout)")
        #expect(line("REORDERED seq \(a) ") != nil || line("REORDERED seq \(b) ") != nil, "\(result.stdout)")
        #expect(line("INSERTED seq \(duplicated) id \(intruder) in parts/") != nil, "\(result.stdout)")
        // With an event missing the signed head cannot be recomputed: said, but not counted twice.
        #expect(line("note: checkpoint checkpoints/0000000000000190.checkpoint (seq 400) cannot be confirmed: events are missing from seq \(deleted)") != nil, "\(result.stdout)")
        #expect(lines.last?.hasPrefix("NOT INTACT: 4 problem(s) (ALTERED 1, INSERTED 1, MISSING 1, REORDERED 1); 400 events checked") == true, "\(result.stdout)")

        let json = try VigilBinary.run(["verify", "--data-dir", data, "--format", "json"])
        #expect(json.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["intact"] == nil || object["intact"] as? Bool == false)
        let kinds = (object["details"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(Set(kinds) == ["ALTERED", "MISSING", "REORDERED", "INSERTED"], "\(json.stdout)")

        // The byte edit alone: the signed checkpoint is not reached.
        try Tamper.insert(parts[1], seq: deleted, copying: try Tamper.seqs(parts[1])[0][0])
        let restored = try VigilBinary.run(["verify", "--data-dir", data, "--public-key", publicKey])
        #expect(restored.stdout.contains("CHECKPOINT seq 400 in checkpoints/0000000000000190.checkpoint: the chain recomputed from the stored events reaches head"), "\(restored.stdout)")
    }

    @Test("receipts, kill -9 and WAL replay: the chain continues, online and offline verify agree with the receipts")
    func receiptsAcrossCrash() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        _ = try keygen(directory + "/key")
        var server = try ServerProcess(dataDir: data, extraArguments: ["--checkpoint-key", directory + "/key"])
        var client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        var last = Vigil_V1_IngestResponse()
        for batch in 0..<5 {
            let batchEvents = events(30, tag: "a\(batch)")
            last = try await client.ingest(batchEvents, idempotencyKey: "a\(batch)", wantReceipts: true)
            #expect(last.leafHashes.count == 30 && last.chainHead.count == 32)
        }
        await client.close()
        let head = ChainDigest(bytes: Array(last.chainHead))!
        server.kill9()

        let offline = try VigilBinary.run(["verify", "--data-dir", data])
        #expect(offline.status == 0, "\(offline.stdout)\(offline.stderr)")
        #expect(offline.stdout.contains("0 parts, 5 WAL records"), "\(offline.stdout)")
        #expect(offline.stdout.contains("head at seq 150: \(head.hex)"), "\(offline.stdout)")

        // The WAL is replayed; the chain goes on from the receipts' head.
        server = try ServerProcess(dataDir: data, extraArguments: ["--checkpoint-key", directory + "/key"])
        let online = try VigilBinary.run(["verify", "--server", server.address])
        #expect(online.status == 0 && online.stdout.contains("head at seq 150: \(head.hex)"), "\(online.stdout)\(online.stderr)")
        // Notes come through the call too: no checkpoint was signed before the kill.
        #expect(online.stdout.hasPrefix("note: no signed checkpoints: this proves the stored events and the chain agree"), "\(online.stdout)")
        client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        let more = try await client.ingest(events(30, tag: "b"), wantReceipts: true)
        let replayed = try await client.ingest(events(30, tag: "a0"), idempotencyKey: "a0", wantReceipts: true)
        #expect(replayed.replayed && replayed.leafHashes.isEmpty)
        let report = try await client.verify()
        #expect(report.intact && report.headSeq == 180 && report.headHash == ChainDigest(bytes: Array(more.chainHead))!.hex, "\(report)")
        let stored = try await client.get(id: derivedEventID(receivedAt: more.receivedAt.unixNanos, seq: 170).description)
        #expect(HashChain.leaf(of: stored).bytes == Array(more.leafHashes[19]), "a receipt is the leaf of the event as stored")
        await client.close()
        #expect(server.stop().0 == 0)
        let final = try VigilBinary.run(["verify", "--data-dir", data, "--public-key", directory + "/key.pub"])
        #expect(final.status == 0 && final.stdout.contains("head at seq 180: \(report.headHash)"), "\(final.stdout)")
        #expect(final.stdout.contains("1 checkpoint;"), "the shutdown checkpoint: \(final.stdout)")
    }

    @Test("a WAL record changed on disk is CHECKSUM, a checkpoint changed is CHECKPOINT; exit 1")
    func walAndCheckpoint() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        _ = try keygen(directory + "/key")
        let server = try ServerProcess(dataDir: data, extraArguments: ["--checkpoint-key", directory + "/key"])
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        for batch in 0..<4 { _ = try await client.ingest(events(10, tag: "w\(batch)")) }
        await client.close()
        server.kill9()
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: data + "/wal").sorted().last { $0.hasSuffix(".wal") })
        let offset = try Tamper.corruptWALRecord(data + "/wal/" + segment, index: 1)
        let wal = try VigilBinary.run(["verify", "--data-dir", data])
        #expect(wal.status == 1, "\(wal.stdout)\(wal.stderr)")
        #expect(wal.stdout.contains("CHECKSUM in wal/\(segment) offset \(offset): the WAL record fails its check"), "\(wal.stdout)")
        #expect(wal.stdout.contains("MISSING seqs 11…20"), "\(wal.stdout)")

        // A signed checkpoint whose head was changed.
        let checkpoints = data + "/checkpoints"
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        let key = try CheckpointKey.load(path: directory + "/key", dataDirectory: data)
        var checkpoint = try Checkpoints.sign(seq: 10, head: HashChain.leaf(canonical: []), createdAt: 1, key: key)
        checkpoint.head[0] ^= 1
        let bytes: [UInt8] = try checkpoint.serializedBytes()
        try Data(bytes).write(to: URL(fileURLWithPath: checkpoints + "/" + Checkpoints.fileName(seq: 10)))
        let forged = try VigilBinary.run(["verify", "--data-dir", data])
        #expect(forged.stdout.contains("CHECKPOINT seq 10 in checkpoints/000000000000000a.checkpoint: its signature does not verify"), "\(forged.stdout)")
    }

    @Test("after retention removed parts, vigil verify is intact and counts the expired events")
    func retention() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let day: Int64 = 86_400_000_000_000
        var options = StorageOptions(directory: directory)
        options.retentionNanos = 10 * day
        let store = try ColumnarEventStore(options: options)
        var old = events(20, tag: "old")
        for index in old.indices { old[index].occurredAt = .init(unixNanos: currentUnixNanos() - 20 * day + Int64(index)) }
        _ = try await store.append(old, idempotencyKey: nil)
        try await store.flushNow()
        _ = try await store.append(events(20, tag: "new"), idempotencyKey: nil)
        try await store.flushNow()
        try await store.retainNow(now: currentUnixNanos())
        try await store.close()
        let result = try VigilBinary.run(["verify", "--data-dir", directory])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("intact; 20 events checked, 20 removed by retention"), "\(result.stdout)")
    }

    @Test("vigil serve --checkpoint-key signs its retention passes; a removal made without the key is signed as found at start, with a warning; verify is intact and says so")
    func signedRetention() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let day: Int64 = 86_400_000_000_000
        let data = directory + "/data"
        let checkpoints = directory + "/checkpoints"
        let publicKey = try keygen(directory + "/key")
        // Seqs 1…20 a month old, 21…40 twenty days old, 41…60 new; a
        // retention pass made without the key removes the first 20.
        var options = StorageOptions(directory: data)
        options.retentionNanos = nil
        let store = try ColumnarEventStore(options: options)
        for (tag, age) in [("month", 30 * day), ("weeks", 20 * day), ("new", 0)] {
            var batch = events(20, tag: tag)
            for index in batch.indices where age > 0 { batch[index].occurredAt = .init(unixNanos: currentUnixNanos() - age + Int64(index)) }
            _ = try await store.append(batch, idempotencyKey: nil)
            try await store.flushNow()
        }
        try await store.close()
        options.retentionNanos = 25 * day
        let retaining = try ColumnarEventStore(options: options)
        try await retaining.retainNow(now: currentUnixNanos())
        #expect(retaining.chainCut()?.seq == 20)
        try await retaining.close()

        let server = try LoggedServer(
            arguments: ["--listen", "127.0.0.1:0", "--data-dir", data, "--no-auth", "--retention", "10d",
                        "--checkpoint-key", directory + "/key", "--checkpoint-dir", checkpoints],
            directory: directory)
        let log = try server.waitForLog("the retention pass") { $0.contains("retention removed 20 expired event(s) (1 whole part(s)); signed 1 retention statement(s)") }
        #expect(log.contains("found 1 removal(s) of events without a valid signed retention statement in a checkpoint directory where statements had not begun, and signed them as found (ADOPTED)"), "\(log)")
        #expect(server.stop() == 0)
        let statements = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.hasPrefix("start-") }.sorted()
        #expect(statements.count == 2 && statements[0].hasPrefix("start-0000000000000014-") && statements[1].hasPrefix("start-0000000000000028-"), "\(statements)")

        let result = try VigilBinary.run(["verify", "--data-dir", data, "--checkpoint-dir", checkpoints, "--public-key", publicKey])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("intact; 20 events checked, 40 removed by retention"), "\(result.stdout)")
        #expect(result.stdout.contains("1 removal(s) of events (the chain's start, expired-leaves files) attested by signed retention statements"), "\(result.stdout)")

        // The statement removed: the chain's start is no longer attested (exit 1).
        try FileManager.default.removeItem(atPath: checkpoints + "/" + statements[1])
        let unattested = try VigilBinary.run(["verify", "--data-dir", data, "--checkpoint-dir", checkpoints, "--public-key", publicKey])
        #expect(unattested.status == 1, "\(unattested.stdout)\(unattested.stderr)")
        #expect(unattested.stdout.contains("CHECKPOINT seq 40 in chain/"), "\(unattested.stdout)")
        #expect(unattested.stdout.contains(": the chain starts after seq 40 (40 events removed at or below it), but no signed retention statement attests it (\(checkpoints)/\(statements[1]) is missing)"), "\(unattested.stdout)")
    }

    @Test("a legal hold taken out of RETENTION while the server was stopped: verify exits 1 naming RETENTION; the next vigil serve puts the signed settings back, logs the error, records it in _system, and verify is intact")
    func signedRetentionSettings() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        let checkpoints = directory + "/checkpoints"
        let publicKey = try keygen(directory + "/key")
        let arguments = [
            "--listen", "127.0.0.1:0", "--data-dir", data, "--no-auth", "--retention", "30d",
            "--checkpoint-key", directory + "/key", "--checkpoint-dir", checkpoints,
        ]
        let server = try LoggedServer(arguments: arguments, directory: directory)
        let hold = try VigilBinary.run(["retention", "forever", "--tenant", "globex", "--server", server.address])
        #expect(hold.status == 0, "\(hold.stdout)\(hold.stderr)")
        #expect(server.stop() == 0)
        #expect(server.log.contains("signed the retention settings (*=30d) as generation 1: found at the first start with the checkpoint key"), "\(server.log)")
        let signed = try String(contentsOfFile: data + "/RETENTION", encoding: .utf8)
        #expect(signed == "*\t\(30 * 86_400_000_000_000)\nglobex\tforever\n")

        try "*\t\(30 * 86_400_000_000_000)\n".write(toFile: data + "/RETENTION", atomically: true, encoding: .utf8)
        let verify = ["verify", "--data-dir", data, "--checkpoint-dir", checkpoints, "--public-key", publicKey]
        let changed = try VigilBinary.run(verify)
        #expect(changed.status == 1, "\(changed.stdout)\(changed.stderr)")
        #expect(changed.stdout.contains("CHECKPOINT in RETENTION: it holds *=30d, not the settings generation 2, signed on "), "\(changed.stdout)")

        try FileManager.default.removeItem(atPath: directory + "/server.log")
        let restarted = try LoggedServer(arguments: arguments, directory: directory)
        #expect(restarted.log.contains("RETENTION in the data directory (*=30d) is not the file signed as generation 2 on "), "\(restarted.log)")
        #expect(restarted.log.contains("Find out who changed it; change the retention only through the server (vigil retention), which signs it"), "\(restarted.log)")
        let system = try VigilBinary.run(["query", "--tenant", "_system", "--format", "json", "--server", restarted.address])
        #expect(system.stdout.contains("\"action\":\"retention.restore\""), "\(system.stdout)")
        #expect(restarted.stop() == 0)
        #expect(try String(contentsOfFile: data + "/RETENTION", encoding: .utf8) == signed)
        let intact = try VigilBinary.run(verify)
        #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
        #expect(intact.stdout.contains("is a RETENTION file that was changed without the server; a start set it aside and put the signed settings back"), "\(intact.stdout)")

        // Without the key: RETENTION is still checked and put back, and a
        // change (which the next start with the key would undo) is refused.
        try "*\t\(30 * 86_400_000_000_000)\n".write(toFile: data + "/RETENTION", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: directory + "/server.log")
        let keyless = try LoggedServer(
            arguments: ["--listen", "127.0.0.1:0", "--data-dir", data, "--no-auth", "--retention", "30d", "--checkpoint-dir", checkpoints],
            directory: directory)
        let refused = try VigilBinary.run(["retention", "40d", "--server", keyless.address])
        #expect(refused.status == 1, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stderr.contains("FAILED_PRECONDITION"), "\(refused.stderr)")
        #expect(refused.stderr.contains("this server runs without --checkpoint-key: the next start with the key would put the signed settings back over a change made now. Restart the server with --checkpoint-key to change the retention"), "\(refused.stderr)")
        #expect(keyless.log.contains("RETENTION in the data directory (*=30d) is not the file signed as generation 2 on "), "\(keyless.log)")
        #expect(keyless.stop() == 0)
        #expect(try String(contentsOfFile: data + "/RETENTION", encoding: .utf8) == signed)
    }

    @Test("vigil serve refuses a checkpoint key inside the data directory, readable by others, or not a key, before opening anything")
    func keyRefusals() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        func serve(_ key: String, _ extra: [String] = []) throws -> VigilBinary.Output {
            try VigilBinary.run(["serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--checkpoint-key", key] + extra)
        }
        _ = try keygen(data + "/inside.key")
        var result = try serve(data + "/inside.key")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--checkpoint-key \(data)/inside.key is inside the data directory \(data); keep the signing key outside it, so that whoever can change the data cannot also sign checkpoints"), "\(result.stderr)")

        _ = try keygen(directory + "/open.key")
        chmod(directory + "/open.key", 0o644)
        result = try serve(directory + "/open.key")
        #expect(result.stderr.contains("--checkpoint-key \(directory)/open.key may be read or written by group or others (mode 644); make it private: chmod 600 \(directory)/open.key"), "\(result.stderr)")

        try "not a key".write(toFile: directory + "/junk.key", atomically: true, encoding: .utf8)
        chmod(directory + "/junk.key", 0o600)
        result = try serve(directory + "/junk.key")
        #expect(result.stderr.contains("--checkpoint-key \(directory)/junk.key is not an Ed25519 private key (PEM from `vigil keygen` or `openssl genpkey -algorithm ed25519`, or 32 raw bytes)"), "\(result.stderr)")

        result = try serve(directory + "/absent.key")
        #expect(result.stderr.contains("--checkpoint-key \(directory)/absent.key: No such file or directory"), "\(result.stderr)")

        _ = try keygen(directory + "/good.key")
        result = try serve(directory + "/good.key", ["--checkpoint-interval", "soon"])
        #expect(result.stderr.contains("--checkpoint-interval 'soon' is not a duration: give a whole number and a unit"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/MANIFEST"), "nothing was opened")

        let again = try VigilBinary.run(["keygen", "--out", directory + "/good.key"])
        #expect(again.status != 0 && again.stderr.contains("cannot create \(directory)/good.key: it already exists (a key is never overwritten)"), "\(again.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/good.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test("vigil verify exits 2 when it cannot run: a server holds the directory, no data directory, a bad public key; without a key the server warns")
    func verifyRefusals() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/data"
        let server = try ServerProcess(dataDir: data)
        var result = try VigilBinary.run(["verify", "--data-dir", data])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(data) is in use by a running server (its LOCK is held); verify through the server instead: vigil verify --server HOST:PORT"), "\(result.stderr)")
        #expect(server.startupLog.contains("no --checkpoint-key: no signed checkpoints are written"), "\(server.startupLog)")
        _ = server.stop()

        result = try VigilBinary.run(["verify", "--data-dir", directory + "/nothing"])
        #expect(result.status == 2 && result.stderr.contains("is not a Vigil data directory"), "\(result.stderr)")
        result = try VigilBinary.run(["verify", "--data-dir", data, "--public-key", "abc"])
        #expect(result.status == 2 && result.stderr.contains("--public-key abc is neither an Ed25519 public key file (PEM) nor 64 hex digits"), "\(result.stderr)")
        result = try VigilBinary.run(["verify", "--server", "127.0.0.1:1"])
        #expect(result.status == 2 && result.stderr.contains("UNAVAILABLE"), "\(result.stderr)")
    }
}
