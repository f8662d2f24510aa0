import Foundation
import Testing
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
        try await store.setRetention(tenant: "globex", nanos: .max)
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
            try await store.setRetention(tenant: "globex", nanos: .max)
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
            // The edit put back the settings in force before the hold (generation 1's).
            #expect(restored.contains(
                " (*=10d, globex=forever: set the retention of tenant globex from 10d to forever): it was changed without the server (it holds generation 1's settings: a crash between signing generation 2 and writing it leaves that, as does putting older settings back by hand). The signed settings are in force; the file found was moved to \(directory)/RETENTION.unsigned-"),
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
            let blocked = directory + "/blocked"
            try FileIO.makeDirectory(directory)
            try Self.write("not a directory", to: blocked)
            let store = try Self.open(directory, key: key, signerDirectory: blocked + "/checkpoints")
            let failure = try #require(store.recovery.retentionSettings.failure)
            #expect(failure.hasPrefix("cannot sign the retention settings into \(blocked)/checkpoints: mkdir "), "\(failure)")
            let error = try await #require(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("cannot sign the new retention settings into \(blocked)/checkpoints: mkdir "), "\(error.message)")
            #expect(error.message.hasSuffix(". The retention is unchanged; retry once the checkpoint directory is writable"))
            #expect(!FileIO.exists(directory + "/RETENTION"))
            #expect(store.retentionSettings.current.of("globex") == 10 * Self.day)

            try FileIO.remove(blocked)
            // RETENTION cannot be replaced: a directory stands in its place.
            try FileIO.makeDirectory(directory + "/RETENTION")
            await #expect(throws: VigilError.self) { try await store.setRetention(tenant: "globex", nanos: .max) }
            #expect(try RetentionStatements.settingsNames(in: blocked + "/checkpoints").isEmpty, "the statement is withdrawn")
            #expect(store.retentionSettings.current.of("globex") == 10 * Self.day)

            try FileIO.removeDirectory(directory + "/RETENTION")
            try await store.setRetention(tenant: "globex", nanos: .max)
            #expect(try RetentionStatements.settingsNames(in: blocked + "/checkpoints").map(\.generation) == [1])
            try await store.close()
        }
    }

    @Test("a latest statement that cannot be trusted: CHECKPOINT in verify; the start keeps RETENTION as found rather than an older generation, and signs the next change above it")
    func untrustedLatestStatement() async throws {
        try await withTemporaryDirectory { directory in
            let key = CheckpointKey.generate()
            try await Self.heldStore(directory, key: key)
            let path = directory + "/checkpoints/" + RetentionStatements.settingsFileName(generation: 2)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 1] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: path))

            let report = try IntegrityTestSupport.verify(directory) { $0.trustedKey = key.publicKey }
            #expect(report.problems.map(\.line) == [
                "CHECKPOINT in checkpoints/settings-0000000000000002.retention: the retention settings statement cannot be trusted: its signature does not verify (the statement was altered or forged)"
            ], "\(IntegrityTestSupport.describe(report))")

            let store = try Self.open(directory, key: key)
            #expect(
                store.recovery.retentionSettings.failure
                    == "the latest retention settings statement, \(directory)/checkpoints/settings-0000000000000002.retention, cannot be trusted (its signature does not verify (the statement was altered or forged)); RETENTION is used as found, unchecked, and the next change is signed as generation 3")
            #expect(store.retentionSettings.current.of("globex") == nil)
            try await store.setRetention(tenant: "initech", nanos: 30 * Self.day)
            #expect(try Self.signed(directory, generation: 3, key: key).cause == "set the retention of tenant initech from 10d to 30d")
            try await store.close()
        }
    }

    @Test("an online backup records the settings in force as its RETENTION; restored, they are the signed ones, not a change")
    func restoredBackupIsAccepted() async throws {
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

            _ = try BackupRestore.restore(backup: root + "/backup", to: root + "/restored")
            #expect(try Self.file(root + "/restored/RETENTION") == Self.tenDays)
            let report = try IntegrityTestSupport.verify(root + "/restored") { $0.trustedKey = key.publicKey }
            #expect(report.intact, "\(IntegrityTestSupport.describe(report))")
            let restored = try Self.open(root + "/restored", key: key, retentionDays: 90)
            #expect(restored.recovery.retentionSettings.restored == nil)
            #expect(
                restored.recovery.retentionSettings.signed
                    == "signed the retention settings (*=10d) as generation 2: RETENTION holds the settings in force of generation 1, as a backup records them")
            #expect(restored.retentionSettings.current.defaultNanos == 10 * Self.day)
            try await restored.close()
        }
    }
}
