import Foundation
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Backups of a running store")
struct BackupEngineTests {
    static let day: Int64 = 86_400 * 1_000_000_000

    func options(_ directory: String, _ configure: (inout StorageOptions) -> Void = { _ in }) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        configure(&options)
        return options
    }

    @Test("a flush, a merge and retention that delete the pinned files mid-backup change nothing in it; it verifies and restores exactly")
    func pinnedAgainstMergeAndRetention() async throws {
        try await withTemporaryDirectory { root in
            let data = root + "/data"
            let backup = root + "/backup"
            let now = currentUnixNanos()
            let store = try ColumnarEventStore(options: options(data) {
                $0.mergeFanIn = 2
                $0.tenantRetentionNanos = ["old": 30 * Self.day]
            })
            var expected: [String: UInt64] = [:]
            func ingest(_ events: [AuditEvent]) async throws {
                let result = try await store.append(events, idempotencyKey: nil)
                for (index, event) in events.enumerated() { expected[event.actor.id] = result.firstSeq + UInt64(index) }
            }
            // Four parts of one day (a merge candidate), one part that retention will expire...
            for round in 0..<4 {
                try await ingest((0..<50).map { engineEvent("r\(round)-\($0)", at: now - 3_600_000_000_000 + Int64($0)) })
                try await store.flushNow()
            }
            try await ingest((0..<30).map { engineEvent("old-\($0)", tenant: "old", at: now - 40 * Self.day + Int64($0)) })
            try await store.flushNow()
            // ...and events only in the WAL.
            try await ingest((0..<20).map { engineEvent("wal-\($0)", at: now - 1_000_000_000 + Int64($0)) })
            #expect(store.statistics.parts == 5)
            #expect(store.statistics.memoryEvents == 20)
            let partsBefore = Set(store.manifest.withLock { $0.parts.map(\.path) })

            var request = BackupOptions(destination: backup)
            request.afterPinning = {
                // After the cut: more events, then a flush, a merge and a retention pass.
                _ = try? await store.append((0..<10).map { engineEvent("late-\($0)", at: now + Int64($0)) }, idempotencyKey: nil)
                try? await store.flushNow()
                try? await store.mergeNow()
                try? await store.retainNow(now: currentUnixNanos())
            }
            let result = try await store.backup(request)
            #expect(result.cutSeq == 250)
            // The maintenance really replaced what the backup had pinned.
            let partsAfter = Set(store.manifest.withLock { $0.parts.map(\.path) })
            #expect(partsBefore.isDisjoint(with: partsAfter), "merge and retention replaced every part: \(partsAfter)")
            for path in partsBefore { #expect(!FileManager.default.fileExists(atPath: data + "/" + path)) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: data).allSatisfy { !$0.hasPrefix(BackupPin.namePrefix) }, "the pin is removed")
            #expect(result.linkedFiles > 0, "same file system: parts are hard-linked")
            try await store.close()

            let manifest = try BackupManifestFile.read(from: backup)
            #expect(manifest.cutSeq == 250)
            #expect(manifest.files.contains { $0.path.hasPrefix("wal/") }, "the WAL cut holds the unflushed events")
            #expect(Set(manifest.files.filter { $0.path.hasPrefix("parts/") }.map(\.path)) == partsBefore)
            let report = try BackupVerification.verify(directory: backup, options: VerificationOptions())
            #expect(report.intact, "\(report.problems.map(\.line))")
            #expect(report.eventsChecked == 250)

            _ = try BackupRestore.restore(backup: backup, to: root + "/restored")
            let restored = try ColumnarEventStore(options: options(root + "/restored"))
            // It keeps the retention in force at the backup: tenant `old`'s events are past it, as they were there.
            #expect(restored.retentionSettings.current.tenantNanos == ["old": 30 * Self.day])
            let events = try await allEvents(restored)
            let kept = expected.filter { !$0.key.hasPrefix("old-") }
            #expect(events.count == kept.count)
            #expect(Dictionary(events.map { ($0.actor.id, $0.seq) }, uniquingKeysWith: { first, _ in first }) == kept)
            // It carries on after the cut.
            let next = try await restored.append([engineEvent("after-restore", at: now)], idempotencyKey: nil)
            #expect(next.firstSeq == 251)
            try await restored.close()
        }
    }

    @Test("a destination the server cannot write (a file where a directory must be) is FAILED_PRECONDITION, not a retryable UNAVAILABLE")
    func unwritableDestination() async throws {
        try await withTemporaryDirectory { root in
            let store = try ColumnarEventStore(options: options(root + "/data"))
            _ = try await store.append([engineEvent("e", at: currentUnixNanos())], idempotencyKey: nil)
            try Data("not a directory".utf8).write(to: URL(fileURLWithPath: root + "/file"))
            for destination in [root + "/file/backup", root + "/file/deeper/backup"] {
                do throws(VigilError) {
                    _ = try await store.backup(BackupOptions(destination: destination))
                    Issue.record("a backup into \(destination) succeeded")
                } catch {
                    #expect(error.code == .failedPrecondition, "\(destination): \(error)")
                }
            }
            try await store.close()
        }
    }

    @Test("a backup that fails part-way leaves nothing in its destination and says why; the store goes on")
    func failedBackupCleansUp() async throws {
        try await withTemporaryDirectory { root in
            let data = root + "/data"
            let store = try ColumnarEventStore(options: options(data))
            _ = try await store.append((0..<10).map { engineEvent("e\($0)", at: currentUnixNanos()) }, idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.append([engineEvent("in-wal", at: currentUnixNanos())], idempotencyKey: nil)
            var request = BackupOptions(destination: root + "/backup")
            request.afterPinning = {
                // The pin vanishes (as a full or failing disk might make a copy fail).
                for name in (try? FileManager.default.contentsOfDirectory(atPath: data)) ?? [] where name.hasPrefix(BackupPin.namePrefix) {
                    try? FileManager.default.removeItem(atPath: data + "/" + name)
                }
            }
            do throws(VigilError) {
                _ = try await store.backup(request)
                Issue.record("the backup succeeded without its files")
            } catch {
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.contains(BackupPin.namePrefix), "the failing file is named: \(error.message)")
            }
            #expect(!FileManager.default.fileExists(atPath: root + "/backup"), "the new destination is removed again")
            // An empty destination that existed stays, empty.
            try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
            request.destination = root + "/empty"
            await #expect(throws: VigilError.self) { try await store.backup(request) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/empty").isEmpty)
            // Without the sabotage it works.
            let result = try await store.backup(BackupOptions(destination: root + "/empty"))
            #expect(result.cutSeq == 11)
            try await store.close()
        }
    }

    @Test("destinations: relative or inside the data directory INVALID_ARGUMENT, non-empty or a file ALREADY_EXISTS; nothing is written")
    func refusedDestinations() async throws {
        try await withTemporaryDirectory { root in
            let data = root + "/data"
            let store = try ColumnarEventStore(options: options(data))
            _ = try await store.append([engineEvent("one", at: currentUnixNanos())], idempotencyKey: nil)
            try FileManager.default.createDirectory(atPath: root + "/full", withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/full/file"))
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/plain-file"))
            let cases: [(String, VigilError.Code, String)] = [
                ("relative/backup", .invalidArgument, "must be an absolute path on the server's host"),
                (data + "/backups/today", .invalidArgument, "overlaps the data directory"),
                (root, .invalidArgument, "overlaps the data directory"),
                (root + "/full", .alreadyExists, "exists and is not empty"),
                (root + "/plain-file", .alreadyExists, "exists and is not a directory"),
            ]
            for (destination, code, message) in cases {
                do throws(VigilError) {
                    _ = try await store.backup(BackupOptions(destination: destination))
                    Issue.record("\(destination) was accepted")
                } catch {
                    #expect(error.code == code, "\(destination): \(error)")
                    #expect(error.message.contains(message), "\(destination): \(error.message)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/backups"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/full") == ["file"])
            try await store.close()
        }
    }

    @Test("two backups to one destination at once: the second is refused with ALREADY_EXISTS and the first is whole")
    func concurrentBackupsToOneDestination() async throws {
        try await withTemporaryDirectory { root in
            let store = try ColumnarEventStore(options: options(root + "/data"))
            _ = try await store.append((0..<20).map { engineEvent("e\($0)", at: currentUnixNanos()) }, idempotencyKey: nil)
            let destination = root + "/backup"
            let second = Mutex<VigilError?>(nil)
            var request = BackupOptions(destination: destination)
            request.afterPinning = {
                // The first holds the destination now, with nothing of its own written yet.
                do throws(VigilError) {
                    _ = try await store.backup(BackupOptions(destination: destination))
                } catch {
                    second.withLock { $0 = error }
                }
            }
            let first = try await store.backup(request)
            let refusal = try #require(second.withLock { $0 }, "the second backup was accepted")
            #expect(refusal.code == .alreadyExists, "\(refusal)")
            #expect(refusal.message.contains("another backup is being written to \(destination)") || refusal.message.contains("exists and is not empty"), "\(refusal.message)")
            #expect(first.cutSeq == 20)
            try BackupCheck.run(directory: destination).requireIntact(destination)
            #expect(!FileManager.default.fileExists(atPath: destination + "/" + ColumnarEventStore.backupClaimName))
            try await store.close()
        }
    }

    @Test("a manifest signed again after naming a path outside the backup is DATA_LOSS; an unknown format version FAILED_PRECONDITION")
    func manifestRefusals() async throws {
        try await withTemporaryDirectory { root in
            let store = try ColumnarEventStore(options: options(root + "/data"))
            _ = try await store.append([engineEvent("one", at: currentUnixNanos())], idempotencyKey: nil)
            let backup = root + "/backup"
            _ = try await store.backup(BackupOptions(destination: backup))
            try await store.close()
            let good = try BackupManifestFile.read(from: backup)
            let cases: [(String, VigilError.Code, String, (inout Vigil_V1_BackupManifest) -> Void)] = [
                ("../outside", .dataLoss, "'../outside', which is not a plain path inside the backup", { $0.files[0].path = "../outside" }),
                ("/etc/passwd", .dataLoss, "which is not a plain path inside the backup", { $0.files[0].path = "/etc/passwd" }),
                ("a//b", .dataLoss, "which is not a plain path inside the backup", { $0.files[0].path = "a//b" }),
                ("version 2", .failedPrecondition, "has backup format version 2; this vigil reads version 1", { $0.formatVersion = 2 }),
            ]
            for (name, code, message, change) in cases {
                var manifest = good
                change(&manifest)
                try BackupManifestFile.write(manifest, to: backup)
                do throws(VigilError) {
                    _ = try BackupManifestFile.read(from: backup)
                    Issue.record("\(name): accepted")
                } catch {
                    #expect(error.code == code, "\(name): \(error)")
                    #expect(error.message.contains(message), "\(name): \(error.message)")
                }
                do throws(VigilError) {
                    _ = try BackupRestore.restore(backup: backup, to: root + "/restored-\(code)")
                    Issue.record("\(name): restored")
                } catch {
                    #expect(error.code == code, "\(name), restore: \(error)")
                }
            }
        }
    }
}

extension BackupEngineTests {
    @Test("a restored server keeps the retention the backed-up server ran with, whatever flags it starts with; an offline backup copies RETENTION only")
    func restoreKeepsRetentionInForce() async throws {
        try await withTemporaryDirectory { root in
            let data = root + "/data"
            let store = try ColumnarEventStore(options: options(data) {
                $0.retentionNanos = 3_650 * Self.day
                $0.tenantRetentionNanos = ["acme": 30 * Self.day]
            })
            _ = try await store.append([engineEvent("u-1", at: currentUnixNanos() - 200 * Self.day)], idempotencyKey: nil)
            _ = try await store.backup(BackupOptions(destination: root + "/online"))
            try await store.close()
            _ = try BackupRestore.restore(backup: root + "/online", to: root + "/restored")
            // Started with the defaults (90 days), as `vigil serve --data-dir` would be.
            let restored = try ColumnarEventStore(options: StorageOptions(directory: root + "/restored"))
            #expect(restored.retentionSettings.current == .init(defaultNanos: 3_650 * Self.day, tenantNanos: ["acme": 30 * Self.day]))
            try await restored.close()

            // Offline, the flags the server ran with are unknown: no RETENTION is made up.
            _ = try await ColumnarEventStore.backupOffline(directory: data, BackupOptions(destination: root + "/offline"))
            #expect(!FileManager.default.fileExists(atPath: root + "/offline/RETENTION"))
        }
    }
}

extension BackupEngineTests {
    @Test("a restore that fails part-way leaves only its marker: a store refuses the directory (FAILED_PRECONDITION) and a new restore into it works")
    func interruptedRestore() async throws {
        try await withTemporaryDirectory { root in
            let data = root + "/data"
            let store = try ColumnarEventStore(options: options(data))
            for index in 0..<5 {
                _ = try await store.append([engineEvent("u-\(index)", at: currentUnixNanos() - 1_000_000_000)], idempotencyKey: nil)
            }
            _ = try await store.backup(BackupOptions(destination: root + "/backup"))
            try await store.close()
            let manifest = try BackupManifestFile.read(from: root + "/backup")
            let last = root + "/backup/" + manifest.files.last!.path
            let original = try Data(contentsOf: URL(fileURLWithPath: last))
            // The last file changes after the check and before its copy: the copy's checksum fails.
            let error = #expect(throws: VigilError.self) {
                _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored") { report in
                    if report.filesDone == 1 { try? (original + Data([0])).write(to: URL(fileURLWithPath: last)) }
                }
            }
            #expect(error?.code == .dataLoss)
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: root + "/restored")) == [BackupRestore.inProgressName, "LOCK"])
            let refused = #expect(throws: VigilError.self) { _ = try ColumnarEventStore(options: options(root + "/restored")) }
            #expect(refused?.code == .failedPrecondition, "\(String(describing: refused))")

            // A restore killed part-way leaves files beside the marker; a new restore replaces them.
            try Data("half a part".utf8).write(to: URL(fileURLWithPath: root + "/restored/MANIFEST"))
            try original.write(to: URL(fileURLWithPath: last))
            _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored")
            #expect(!FileManager.default.fileExists(atPath: root + "/restored/" + BackupRestore.inProgressName))
            let restored = try ColumnarEventStore(options: options(root + "/restored"))
            #expect(try await allEvents(restored).count == 5)
            try await restored.close()
        }
    }
}

extension BackupEngineTests {
    @Test("the directories Vigil makes (a data directory, a backup, a restore) and the files in them are its owner's only: audit events are not for every user of the host")
    func directoriesAreOwnerOnly() async throws {
        try await withTemporaryDirectory { root in
            let store = try ColumnarEventStore(options: options(root + "/data"))
            _ = try await store.append([engineEvent("u-1", at: currentUnixNanos() - 1_000_000_000)], idempotencyKey: nil)
            try await store.flushNow()
            _ = try await store.backup(BackupOptions(destination: root + "/backup"))
            try await store.close()
            _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored")
            for directory in ["data", "data/parts", "data/wal", "backup", "backup/parts", "restored", "restored/parts"] {
                let mode = try FileManager.default.attributesOfItem(atPath: root + "/" + directory)[.posixPermissions] as? Int
                #expect(mode == 0o700, "\(directory): \(String(format: "%o", mode ?? 0))")
            }
            // And the files in them: events, keys, the chain, the manifest, the lock.
            for top in ["data", "backup", "restored"] {
                let files = try FileManager.default.subpathsOfDirectory(atPath: root + "/" + top).filter { path in
                    var isDirectory: ObjCBool = false
                    return FileManager.default.fileExists(atPath: root + "/" + top + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
                }
                #expect(files.count > 3, "\(top): \(files)")
                for file in files {
                    let mode = try FileManager.default.attributesOfItem(atPath: root + "/" + top + "/" + file)[.posixPermissions] as? Int
                    #expect(mode == 0o600, "\(top)/\(file): \(String(format: "%o", mode ?? 0))")
                }
            }
        }
    }
}
