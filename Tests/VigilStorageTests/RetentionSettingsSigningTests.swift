import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import VigilCore
import VigilProto

@testable import VigilStorage

/// Signed retention settings: with a checkpoint key, `RETENTION` edited in
/// the data directory does not decide what retention deletes.
@Suite("Retention settings: signed before written, put back when changed behind the server")
struct RetentionSettingsSigningTests {
    static let day: Int64 = 86_400_000_000_000
    static let tenDays = "*\t\(10 * day)\n"

    static func open(_ directory: String, key: CheckpointKey, retentionDays: Int64 = 10, signerDirectory: String? = nil) throws -> ColumnarEventStore {
        try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
            $0.retentionNanos = retentionDays * day
            $0.retentionSigner = .init(key: key, directory: signerDirectory ?? directory + "/checkpoints")
        })
    }

    static func file(_ path: String) throws -> String? {
        FileIO.exists(path) ? String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self) : nil
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func signed(_ directory: String, generation: UInt64, key: CheckpointKey) throws -> RetentionStatements.SignedSettings {
        try RetentionStatements.readSettings(
            directory + "/checkpoints/" + RetentionStatements.settingsFileName(generation: generation), trusted: key.publicKey
        ).get()
    }

    /// A store whose tenant globex is on legal hold (forever; signed as
    /// generation 2) with `old` events of globex 20 days old, past the
    /// default retention of 10 days. Closed.
    static func heldStore(_ directory: String, key: CheckpointKey, old: Int = 20) async throws {
        let store = try open(directory, key: key)
        _ = try await store.setRetention(tenant: "globex", nanos: .max)
        _ = try await store.append(IntegrityTestSupport.events(old, tag: "held", endingAgo: 20 * day, tenant: "globex"), idempotencyKey: nil)
        _ = try await store.append(IntegrityTestSupport.events(10, tag: "recent"), idempotencyKey: nil)
        try await store.flushNow()
        try await store.close()
    }

    static let held = "*\t\(10 * day)\nglobex\tforever\n"

    @Test("the first start with the key signs the settings found; each change is signed before RETENTION is written; verify says which generation is in force")
    func signedChanges() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let store = try Self.open(directory, key: key)
            #expect(
                store.recovery.retentionSettings.signed
                    == "signed the retention settings (*=10d) as generation 1: found at the first start with the checkpoint key (no RETENTION file: the flags decide)")
            let first = try Self.signed(directory, generation: 1, key: key)
            #expect(first.file == nil && first.inForce == Array(Self.tenDays.utf8))
            _ = try await store.setRetention(tenant: "globex", nanos: .max)
            let second = try Self.signed(directory, generation: 2, key: key)
            #expect(second.file == Array(Self.held.utf8) && second.inForce == second.file)
            #expect(second.cause == "set the retention of tenant globex from 10d to forever")
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
            try await store.close()

            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            #expect(report.notes.contains { $0.hasPrefix("the retention settings are the ones signed as generation 2, signed on ") && $0.hasSuffix(" (*=10d, globex=forever)") }, "\(report.notes)")

            // Nothing changed: nothing to sign.
            let reopened = try Self.open(directory, key: key)
            #expect(reopened.recovery.retentionSettings == .init())
            try await reopened.close()
            #expect(try RetentionStatements.settingsNames(in: directory + "/checkpoints").map(\.generation) == [2, 1])
        }
    }

    @Test("a legal hold removed from RETENTION behind the server: verify reports it (CHECKPOINT); the next start puts the signed file back, sets the edited one aside, and retention keeps the held events")
    func editedFileIsPutBack() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let edited = Self.tenDays
            try Self.write(edited, to: directory + "/RETENTION")

            let before = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            let problems = IntegrityTestSupport.problems(before, .checkpoint)
            #expect(problems.count == 1 && before.problems.count == 1, "\(IntegrityTestSupport.describe(before))")
            #expect(problems.first?.location == "RETENTION")
            let detail = problems.first?.detail ?? ""
            #expect(detail.hasPrefix("it holds *=10d, not the settings generation 2, signed on "), "\(detail)")
            #expect(detail.hasSuffix(
                " (*=10d, globex=forever): the retention was changed without the server. A start with the checkpoint key puts the signed settings back and sets this file aside"),
                "\(detail)")

            let store = try Self.open(directory, key: key)
            let check = store.recovery.retentionSettings
            let restored = try #require(check.restored)
            #expect(restored.hasPrefix("RETENTION in the data directory (*=10d) is not the file signed as generation 2 on "), "\(restored)")
            #expect(restored.contains(
                " (*=10d, globex=forever: set the retention of tenant globex from 10d to forever): it was changed without the server. The signed settings are in force; the file found was kept as \(directory)/RETENTION.unsigned-"),
                "\(restored)")
            #expect(check.signed == nil && check.failure == nil)
            let aside = try #require(check.setAside)
            #expect(try Self.file(aside) == edited)
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
            #expect(store.retentionSettings.current.of("globex") == nil)
            try await store.retainNow(now: currentUnixNanos())
            #expect(try await store.statistics().eventsStored == 30, "the held events stay")
            try await store.close()

            let after = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(after.intact, "\(IntegrityTestSupport.describe(after))")
            let asideName = String(aside.split(separator: "/").last!)
            #expect(after.notes.contains(
                "\(asideName) is a RETENTION file that was changed without the server; a start set it aside and put the signed settings back"),
                "\(after.notes)")
        }
    }

    @Test("a file kept aside before under the same second's name is not written over: the next is numbered")
    func setAsideNamesDoNotClash() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let now = currentUnixNanos()
            let earlier = directory + "/RETENTION.unsigned-" + Checkpoints.supersededTime(at: now)
            try Self.write("kept before\n", to: earlier)
            try Self.write(Self.tenDays, to: directory + "/RETENTION")
            let settings = try RetentionSettings(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.retentionSigner = .init(key: key, directory: directory + "/checkpoints")
            })
            let check = try settings.reconcile(now: now)
            #expect(check.setAside == earlier + "-2", "\(check)")
            #expect(try Self.file(earlier) == "kept before\n")
            #expect(try Self.file(earlier + "-2") == Self.tenDays)
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
        }
    }

    @Test("without the key the edited file is obeyed: the held events go (what the signing prevents)")
    func unsignedStoreObeysTheFile() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            try Self.write(Self.tenDays, to: directory + "/RETENTION")
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.retentionNanos = 10 * Self.day })
            try await store.retainNow(now: currentUnixNanos())
            #expect(try await store.statistics().eventsStored == 10)
            try await store.close()
        }
    }

    @Test("RETENTION deleted where one was signed is written back; one planted where none was signed is set aside, and the flags decide")
    func deletedAndPlantedFiles() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate()
            let held = root + "/held"
            try await Self.heldStore(held, key: key)
            try FileIO.remove(held + "/RETENTION")
            let store = try Self.open(held, key: key)
            let restored = try #require(store.recovery.retentionSettings.restored)
            #expect(restored.hasPrefix("RETENTION in the data directory (none) is not the file signed as generation 2 on "), "\(restored)")
            // Generation 1 had no file either.
            #expect(restored.hasSuffix(
                ": it was changed without the server (it holds generation 1's settings: a crash between signing generation 2 and writing it leaves that, as does putting older settings back by hand). The signed settings are in force"),
                "\(restored)")
            #expect(store.recovery.retentionSettings.setAside == nil)
            #expect(try Self.file(held + "/RETENTION") == Self.held)
            #expect(store.retentionSettings.current.of("globex") == nil)
            try await store.close()

            let plain = root + "/plain"
            try await Self.open(plain, key: key).close()
            try Self.write("*\t\(Self.day)\n", to: plain + "/RETENTION")
            let planted = try Self.open(plain, key: key)
            let text = try #require(planted.recovery.retentionSettings.restored)
            #expect(text.hasPrefix("RETENTION in the data directory (*=1d) is not the file signed as generation 1 on "), "\(text)")
            #expect(text.contains(" (none: found at the first start with the checkpoint key (no RETENTION file: the flags decide)): it was changed"), "\(text)")
            #expect(!FileIO.exists(plain + "/RETENTION"))
            #expect(try Self.file(try #require(planted.recovery.retentionSettings.setAside)) == "*\t\(Self.day)\n")
            #expect(planted.retentionSettings.current.defaultNanos == 10 * Self.day)
            try await planted.close()
        }
    }

    @Test("flags changed between starts are signed as a new generation, not reported")
    func changedFlagsAreSigned() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.open(directory, key: key).close()
            let store = try Self.open(directory, key: key, retentionDays: 20)
            #expect(store.recovery.retentionSettings.signed == "signed the retention settings (*=20d) as generation 2: the flags changed")
            #expect(store.recovery.retentionSettings.restored == nil)
            try await store.close()
            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
        }
    }

    @Test("a statement signed but its file never written (a crash between them): the next start puts the signed settings in force and says the file holds the generation before")
    func crashBetweenStatementAndFile() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let next = Array("*\t\(10 * Self.day)\nglobex\tforever\ninitech\tforever\n".utf8)
            try RetentionStatements.signSettings(
                generation: 3, file: next, inForce: next, cause: "set the retention of tenant initech from 10d to forever",
                signer: .init(key: key, directory: directory + "/checkpoints"))
            let store = try Self.open(directory, key: key)
            let restored = try #require(store.recovery.retentionSettings.restored)
            #expect(restored.contains(
                "(it holds generation 2's settings: a crash between signing generation 3 and writing it leaves that, as does putting older settings back by hand)"),
                "\(restored)")
            #expect(store.retentionSettings.current.of("initech") == nil)
            #expect(try Self.file(directory + "/RETENTION") == String(decoding: next, as: UTF8.self))
            try await store.close()
        }
    }

    @Test("a change that cannot be signed is refused (UNAVAILABLE) and not made; one whose file cannot be written withdraws its statement")
    func unsignableChanges() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let checkpoints = directory + "/checkpoints"
            let store = try Self.open(directory, key: key)
            // The checkpoint directory becomes a file: nothing can be signed.
            try FileManager.default.removeItem(atPath: checkpoints)
            try Self.write("not a directory", to: checkpoints)
            let error = try await #require(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("cannot sign the new retention settings into \(checkpoints): "), "\(error.message)")
            #expect(error.message.hasSuffix(". The retention is unchanged; retry once the checkpoint directory is writable"))
            #expect(!FileIO.exists(directory + "/RETENTION"))
            #expect(store.retentionSettings.current.of("globex") == 10 * Self.day)

            try FileIO.remove(checkpoints)
            try FileIO.makeDirectory(checkpoints)
            // RETENTION cannot be replaced: a directory stands in its place.
            try FileIO.makeDirectory(directory + "/RETENTION")
            await #expect(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(try RetentionStatements.settingsNames(in: checkpoints).isEmpty, "the statement is withdrawn")
            #expect(store.retentionSettings.current.of("globex") == 10 * Self.day)

            try FileIO.removeDirectory(directory + "/RETENTION")
            _ = try await store.setRetention(tenant: "globex", nanos: .max)
            #expect(try RetentionStatements.settingsNames(in: checkpoints).map(\.generation) == [2])
            try await store.close()
        }
    }

    @Test("signed settings that cannot be read at start: retention is suspended, and changes are refused (FAILED_PRECONDITION) rather than numbered blindly")
    func unreadableStatements() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let blocked = directory + "/blocked"
            try FileIO.makeDirectory(directory)
            try Self.write("not a directory", to: blocked)
            // A file where the checkpoint directory should be: it cannot be listed.
            let store = try Self.open(directory, key: key, signerDirectory: blocked)
            let suspended = try #require(store.recovery.retentionSettings.suspended)
            #expect(suspended.hasPrefix("the signed retention settings in \(blocked) cannot be read ("), "\(suspended)")
            #expect(suspended.hasSuffix("), so nothing shows which retention was set. Retention is suspended: nothing is removed or hidden. Make the checkpoint directory readable and restart"), "\(suspended)")
            #expect(store.retentionSettings.current.keepsEverything)
            let error = try await #require(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(error.code == .failedPrecondition)
            #expect(
                error.message
                    == "the signed retention settings in \(blocked) could not be read when the server started, so a change would not know its generation; fix what the start logged and restart")
            try await store.close()
        }
    }

    @Test("a latest statement that cannot be trusted: CHECKPOINT in verify; the start suspends retention (nothing removed) and sets the unchecked file aside; a change signs the flags' settings with it above the untrusted generation and ends the suspension")
    func untrustedLatestStatement() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let path = directory + "/checkpoints/" + RetentionStatements.settingsFileName(generation: 2)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 1] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: path))
            let planted = "*\t\(Self.day)\n"
            try Self.write(planted, to: directory + "/RETENTION")

            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.problems.map(\.line) == [
                "CHECKPOINT in checkpoints/settings-0000000000000002.retention: the retention settings statement cannot be trusted: its signature does not verify (the statement was altered or forged)"
            ], "\(IntegrityTestSupport.describe(report))")

            let store = try Self.open(directory, key: key)
            let check = store.recovery.retentionSettings
            let left = try Self.file(directory + "/RETENTION")
            #expect(check.setAside == nil && left == planted, "left as found, for a start that can check it")
            #expect(
                check.suspended
                    == "the latest retention settings statement, \(directory)/checkpoints/settings-0000000000000002.retention, cannot be trusted (its signature does not verify (the statement was altered or forged)), so nothing shows which retention was set. Retention is suspended: nothing is removed or hidden. The settings are the flags' now, not RETENTION's: set each retention you need with vigil retention (the first change signs them, overwrites RETENTION and ends the suspension), or put back a valid statement and restart")
            #expect(store.retentionSettings.current.keepsEverything)
            try await store.retainNow(now: currentUnixNanos())
            #expect(try await store.statistics().eventsStored == 30, "nothing removed while suspended")
            // The change builds on the flags, not on the unchecked file (which said 1 day).
            _ = try await store.setRetention(tenant: "globex", nanos: .max)
            let signed = try Self.signed(directory, generation: 3, key: key)
            #expect(signed.file == Array(Self.held.utf8) && signed.cause == "set the retention of tenant globex from 10d to forever")
            #expect(store.retentionSettings.current == .init(defaultNanos: 10 * Self.day, tenantNanos: ["globex": .max]))
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
            try await store.close()
        }
    }

    @Test("online verify compares RETENTION with the generation in force when it read it, so a change signed meanwhile is not a false CHECKPOINT; offline, the highest generation decides")
    func onlineVerifyUsesTheGenerationInForce() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let store = try Self.open(directory, key: key)
            _ = try await store.setRetention(tenant: "globex", nanos: .max)
            // The next generation, signed as a change would sign it before writing its file.
            let next = Array("*\t\(10 * Self.day)\nglobex\tforever\ninitech\tforever\n".utf8)
            try RetentionStatements.signSettings(
                generation: 3, file: next, inForce: next, cause: "in flight", signer: .init(key: key, directory: directory + "/checkpoints"))
            var options = VerificationOptions()
            options.checkpointDirectory = directory + "/checkpoints"
            options.trustedKey = key.publicKey
            let online = try await store.verify(options)
            #expect(online.intact, "\(IntegrityTestSupport.describe(online))")
            #expect(online.notes.contains { $0.hasPrefix("the retention settings are the ones signed as generation 2, ") }, "\(online.notes)")
            try await store.close()
            let offline = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(IntegrityTestSupport.problems(offline, .checkpoint).map(\.location) == ["RETENTION"], "\(IntegrityTestSupport.describe(offline))")
        }
    }

    @Test("a generation signed by another server since this one started (a restore into its checkpoint directory): a change is refused with FAILED_PRECONDITION, not retried as UNAVAILABLE")
    func generationTakenElsewhere() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            let store = try Self.open(directory, key: key)
            let other = Array("*\t\(20 * Self.day)\n".utf8)
            try RetentionStatements.signSettings(
                generation: 2, file: other, inForce: other, cause: "a restored server's", signer: .init(key: key, directory: directory + "/checkpoints"))
            let error = try await #require(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(error.code == .failedPrecondition)
            #expect(error.message.hasPrefix("another server signed retention settings in \(directory)/checkpoints since this one started ("), "\(error.message)")
            #expect(error.message.hasSuffix("The retention is unchanged; restart this server to take up the latest settings"))
            #expect(!FileIO.exists(directory + "/RETENTION"))
            try await store.close()
        }
    }

    @Test("RETENTION.tmp planted as a symbolic link into the checkpoint directory: putting the signed file back writes a new file, not through the link")
    func plantedTemporaryLink() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let target = directory + "/checkpoints/" + RetentionStatements.settingsFileName(generation: 5)
            try FileManager.default.createSymbolicLink(atPath: directory + "/RETENTION.tmp", withDestinationPath: target)
            try Self.write(Self.tenDays, to: directory + "/RETENTION")
            let store = try Self.open(directory, key: key)
            #expect(store.recovery.retentionSettings.restored != nil && store.recovery.retentionSettings.failure == nil)
            #expect(!FileIO.exists(target), "nothing was written through the link")
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
            var info = stat()
            #expect(lstat(directory + "/RETENTION", &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
            try await store.close()
        }
    }

    @Test("a RETENTION that does not parse, or is a FIFO, where settings are signed: put back, not a refused (or hung) start")
    func unusableFilesArePutBack() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate()
            let malformed = root + "/malformed"
            try await Self.heldStore(malformed, key: key)
            try Self.write("*\t90\n", to: malformed + "/RETENTION")
            let store = try Self.open(malformed, key: key)
            let restored = try #require(store.recovery.retentionSettings.restored)
            #expect(restored.hasPrefix("RETENTION in the data directory (unreadable: \"*\t90\\n\") is not the file signed as generation 2 on "), "\(restored)")
            #expect(try Self.file(malformed + "/RETENTION") == Self.held)
            try await store.close()

            let fifo = root + "/fifo"
            try await Self.heldStore(fifo, key: key)
            try FileIO.remove(fifo + "/RETENTION")
            #expect(mkfifo(fifo + "/RETENTION", 0o600) == 0)
            let opened = try Self.open(fifo, key: key)
            let text = try #require(opened.recovery.retentionSettings.restored)
            #expect(text.hasPrefix("RETENTION in the data directory (unusable: \(fifo)/RETENTION is not a regular file; remove it) is not the file signed as generation 2 on "), "\(text)")
            let aside = try #require(opened.recovery.retentionSettings.setAside)
            var info = stat()
            #expect(lstat(aside, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO)
            #expect(try Self.file(fifo + "/RETENTION") == Self.held)
            try await opened.close()
        }
    }

    @Test("restored into the server's own checkpoint directory, whose settings changed after the backup: alignRestored writes the latest signed settings, and the restored server starts without an alarm")
    func restoreIntoNewerSettings() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate()
            let checkpoints = root + "/checkpoints"
            let store = try Self.open(root + "/data", key: key, signerDirectory: checkpoints)
            _ = try await store.append(IntegrityTestSupport.events(5, tag: "kept"), idempotencyKey: nil)
            var request = BackupOptions(destination: root + "/backup")
            request.checkpointDirectory = checkpoints
            _ = try await store.backup(request)
            _ = try await store.setRetention(tenant: "globex", nanos: .max)
            try await store.close()

            _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored")
            #expect(try Self.file(root + "/restored/RETENTION") == Self.tenDays)
            let line = try RetentionSettings.alignRestored(dataDirectory: root + "/restored", checkpointDirectory: checkpoints, trusted: key.publicKey)
            #expect(line?.hasPrefix("retention: \(checkpoints) holds settings signed after the backup (generation 2 on ") == true, "\(line ?? "nil")")
            #expect(line?.hasSuffix(": *=10d, globex=forever); they replace the backup's RETENTION (*=10d)") == true, "\(line ?? "nil")")
            #expect(try RetentionSettings.alignRestored(dataDirectory: root + "/restored", checkpointDirectory: checkpoints, trusted: key.publicKey) == nil)
            let restored = try Self.open(root + "/restored", key: key, signerDirectory: checkpoints)
            #expect(restored.recovery.retentionSettings == .init())
            #expect(restored.retentionSettings.current.of("globex") == nil)
            try await restored.close()
        }
    }

    @Test("a store told to refuse changes (serve without the key, signed settings in its checkpoint directory) refuses them with FAILED_PRECONDITION")
    func changesRefused() async throws {
        try await withTemporaryDirectory { directory in
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) { $0.retentionChangesRefused = "signed elsewhere" })
            let error = try await #require(throws: VigilError.self) { try await store.setRetention(tenant: nil, nanos: 30 * Self.day) }
            #expect(error.code == .failedPrecondition && error.message == "signed elsewhere")
            #expect(!FileIO.exists(directory + "/RETENTION"))
            try await store.close()
        }
    }

    @Test("an online backup records the settings in force as its RETENTION and signs them so in its own copy of the statements (not the server's); restored, they are the signed ones, whatever flags the restored server has")
    func restoredBackupIsSigned() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate()
            let directory = root + "/data"
            let store = try Self.open(directory, key: key)
            _ = try await store.append(IntegrityTestSupport.events(5, tag: "kept"), idempotencyKey: nil)
            var request = BackupOptions(destination: root + "/backup")
            request.checkpointDirectory = directory + "/checkpoints"
            _ = try await store.backup(request)
            try await store.close()
            #expect(!FileIO.exists(directory + "/RETENTION"), "the flags decide in the original")
            #expect(try RetentionStatements.settingsNames(in: directory + "/checkpoints").map(\.generation) == [1], "the server's own directory is untouched")
            let pinned = try RetentionStatements.readSettings(
                root + "/backup/checkpoints/" + RetentionStatements.settingsFileName(generation: 2), trusted: key.publicKey
            ).get()
            #expect(pinned.file == Array(Self.tenDays.utf8) && pinned.cause.hasPrefix("the settings in force, recorded as RETENTION by a backup taken on "))

            _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored")
            #expect(try Self.file(root + "/restored/RETENTION") == Self.tenDays)
            let report = try IntegrityTestSupport.verify(root + "/restored") { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            let restored = try Self.open(root + "/restored", key: key, retentionDays: 90)
            #expect(restored.recovery.retentionSettings == .init(), "nothing to put back, nothing to sign")
            #expect(restored.retentionSettings.current.defaultNanos == 10 * Self.day)
            try await restored.close()
        }
    }

    @Test("RETENTION written by hand as the settings in force (pinning today's flags over tomorrow's) is put back like any other change")
    func pinnedByHandIsPutBack() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.open(directory, key: key).close()
            #expect(try Self.signed(directory, generation: 1, key: key).inForce == Array(Self.tenDays.utf8))
            try Self.write(Self.tenDays, to: directory + "/RETENTION")
            let store = try Self.open(directory, key: key, retentionDays: 30)
            let restored = try #require(store.recovery.retentionSettings.restored)
            #expect(restored.hasPrefix("RETENTION in the data directory (*=10d) is not the file signed as generation 1 on "), "\(restored)")
            #expect(!FileIO.exists(directory + "/RETENTION"))
            #expect(store.retentionSettings.current.defaultNanos == 30 * Self.day, "the flags decide, as signed")
            #expect(store.recovery.retentionSettings.signed == "signed the retention settings (*=30d) as generation 2: the flags changed")
            try await store.close()
        }
    }

    @Test("a server without the key, on a checkpoint directory with signed settings, still puts the signed RETENTION back (checking each statement under the key it carries), and signs nothing")
    func keylessStorePutsBack() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            try Self.write(Self.tenDays, to: directory + "/RETENTION")
            let store = try ColumnarEventStore(options: IntegrityTestSupport.options(directory) {
                $0.retentionNanos = 10 * Self.day
                $0.retentionSettingsDirectory = directory + "/checkpoints"
                $0.retentionChangesRefused = "signed"
            })
            #expect(store.recovery.retentionSettings.restored?.hasPrefix("RETENTION in the data directory (*=10d) is not the file signed as generation 2 on ") == true)
            #expect(store.recovery.retentionSettings.signed == nil)
            #expect(store.retentionSettings.current.of("globex") == nil)
            try await store.retainNow(now: currentUnixNanos())
            #expect(try await store.statistics().eventsStored == 30)
            try await store.close()
            #expect(try Self.file(directory + "/RETENTION") == Self.held)
            #expect(try RetentionStatements.settingsNames(in: directory + "/checkpoints").map(\.generation) == [2, 1])
        }
    }

    @Test("a restore copies a backup's settings statements into the server's directory only when they verify under its key (or --public-key)")
    func restoreCopiesOnlyTrustedSettings() async throws {
        try await withTemporaryDirectory { root in
            let key = CheckpointKey.generate(), forger = CheckpointKey.generate()
            let server = root + "/server", backup = root + "/backup"
            try RetentionStatements.signSettings(generation: 1, file: nil, inForce: Array(Self.tenDays.utf8), cause: "first", signer: .init(key: key, directory: server))
            let oneDay = Array("*\t\(Self.day)\n".utf8)
            try RetentionStatements.signSettings(generation: 2, file: oneDay, inForce: oneDay, cause: "forged", signer: .init(key: forger, directory: backup))
            #expect(try RetentionStatements.copyAll(from: backup, to: server) == 0)
            #expect(try RetentionStatements.copyAll(from: backup, to: server, trusted: forger.publicKey) == 1, "a key given is the one trusted")
            try FileIO.remove(server + "/" + RetentionStatements.settingsFileName(generation: 2))
            try FileIO.remove(backup + "/" + RetentionStatements.settingsFileName(generation: 2))
            try RetentionStatements.signSettings(generation: 2, file: oneDay, inForce: oneDay, cause: "genuine", signer: .init(key: key, directory: backup))
            #expect(try RetentionStatements.copyAll(from: backup, to: server) == 1)

            // The server's latest damaged: whose key to check with is unknown, so none is copied.
            let path = server + "/" + RetentionStatements.settingsFileName(generation: 2)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 1] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: path))
            try RetentionStatements.signSettings(generation: 3, file: oneDay, inForce: oneDay, cause: "next", signer: .init(key: key, directory: backup))
            #expect(try RetentionStatements.copyAll(from: backup, to: server) == 0)
            // A fresh directory takes them: the server's start checks them under its key.
            #expect(try RetentionStatements.copyAll(from: backup, to: root + "/fresh") == 2)
        }
    }
}
