import ArgumentParser
import VigilCore
import VigilProto
import VigilStorage

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Rebuild a data directory from a backup made by `vigil backup`.",
        discussion: """
            Checks every file of the backup against its manifest first (a damaged backup is \
            refused, naming the file, and nothing is written), then copies the files into \
            DATA_DIR — which must not exist or be empty — and makes them durable. Then start \
            a server on it; it replays the backup's WAL cut like after a clean stop:
              vigil restore /backups/vigil-2026-12-03 ./vigil-data-restored
              vigil serve --data-dir ./vigil-data-restored
            The tokens file (hashes of the tokens, never the tokens themselves) comes back \
            with the data, so the same tokens work. Signed checkpoints go to \
            DATA_DIR/checkpoints. A server that keeps them elsewhere (serve --checkpoint-dir) \
            has signed checkpoints past the backup's last event there too, for events this \
            restore does not bring back; its verify would report them and it would not sign \
            those seqs again. Give that directory with --checkpoint-dir: the backup's \
            checkpoints are copied into it, and those past the backup are moved into \
            DIR/superseded/, kept as the record of what the restore lost:
              vigil restore --checkpoint-dir /srv/ckpt /backups/2026-12-03 ./restored
            The manifest's hashes catch accidents, not edits (whoever can edit a backup can \
            hash it again). With --public-key, the backup's hash chain is first verified \
            against its checkpoints signed with the server's key, and nothing is restored \
            unless it is intact:
              vigil restore --public-key checkpoint.key.pub /backups/2026-12-03 ./restored
            """
    )

    @Argument(help: ArgumentHelp("The backup directory.", valueName: "backup"))
    var backup: String

    @Argument(help: ArgumentHelp("The data directory to create (new or empty).", valueName: "data-dir"))
    var dataDir: String

    @Option(name: .long, help: ArgumentHelp(
        "Verify the backup against its checkpoints signed with this key before restoring anything: a .pub file from vigil keygen, or 64 hex digits.",
        valueName: "file|hex"))
    var publicKey: String?

    @Option(name: .long, help: ArgumentHelp(
        "The server's checkpoint directory, when it is not DATA_DIR/checkpoints: the backup's checkpoints are copied into it, and those past the backup's last event are moved into its superseded/ directory.",
        valueName: "dir"))
    var checkpointDir: String?

    @Flag(name: .long, help: "Show progress on stderr even when it is not a terminal.")
    var progress = false

    func run() throws {
        if let publicKey { try verifySignedBackup(publicKey) }
        let display = TransferProgress(verb: "restore (check, then copy)", forced: progress)
        let manifest: Vigil_V1_BackupManifest
        do {
            manifest = try BackupRestore.restore(backup: backup, to: dataDir) { report in
                display.show(
                    filesDone: UInt64(report.filesDone), filesTotal: UInt64(report.filesTotal), bytesDone: report.bytesDone, bytesTotal: report.bytesTotal)
            }
        } catch {
            display.finish()
            throw CLIError(error)
        }
        let bytes = manifest.files.reduce(0) { $0 + $1.size }
        let files = UInt64(manifest.files.count)
        display.show(filesDone: files, filesTotal: files, bytesDone: bytes * 2, bytesTotal: bytes * 2, force: true)
        display.finish()
        print("restored \(manifest.files.count) files (\(TransferProgress.size(bytes))) into \(dataDir): events through seq \(manifest.cutSeq)")
        print(try retentionNote(manifest))
        if let checkpointDir {
            do {
                let trusted = try publicKey.map { argument throws(VigilError) in try CheckpointPublicKey(argument: argument) }
                print(try Self.adoptCheckpoints(
                    from: dataDir + "/checkpoints", into: checkpointDir, cutSeq: manifest.cutSeq, trusted: trusted, now: currentUnixNanos()))
                if let line = try RetentionSettings.alignRestored(dataDirectory: dataDir, checkpointDirectory: checkpointDir, trusted: trusted) {
                    print(line)
                }
            } catch {
                throw CLIFailure.runtime(
                    "\(error.message). The data is restored into \(dataDir); the checkpoint directory \(checkpointDir) is as it was, or partly set aside (see superseded/ there)")
            }
            print("start it:  vigil serve --data-dir \(dataDir) --checkpoint-dir \(checkpointDir) --checkpoint-key KEY")
        } else {
            print("start it:  vigil serve --data-dir \(dataDir)")
        }
    }

    /// Makes `directory` (a server's external checkpoint directory) fit the
    /// restored store: the backup's checkpoints (`restored`) are copied in
    /// where missing, and those past `cutSeq`, signed for events the restore
    /// loses, are moved into `superseded/<time>-after-seq-<cut>/`. There they
    /// stay the record of the loss (verify notes them) instead of reading as
    /// tampering, and the restored server can sign those seqs for its own
    /// events. Returns what it did, as a line to print.
    static func adoptCheckpoints(
        from restored: String, into directory: String, cutSeq: UInt64, trusted: CheckpointPublicKey? = nil, now: Int64
    ) throws(VigilError) -> String {
        var copied = 0
        for stored in try Checkpoints.list(restored) {
            guard case .success(let checkpoint) = stored.checkpoint else { continue }
            if try Checkpoints.write(checkpoint, to: directory) { copied += 1 }
        }
        let past = try Checkpoints.list(directory).compactMap { stored -> (name: String, seq: UInt64)? in
            guard case .success(let checkpoint) = stored.checkpoint, checkpoint.seq > cutSeq else { return nil }
            return (stored.name, checkpoint.seq)
        }
        let statements = try RetentionStatements.copyAll(from: restored, to: directory, trusted: trusted)
        var line = "checkpoints: \(copied) of the backup's copied into \(directory)"
        if statements > 0 { line += " (and \(statements) signed retention statement(s))" }
        guard let first = past.map(\.seq).min(), let last = past.map(\.seq).max() else {
            return line + "; none there past seq \(cutSeq)"
        }
        let superseded = directory + "/" + Checkpoints.supersededDirectory
        let destination = superseded + "/" + Checkpoints.supersededName(at: now, cutSeq: cutSeq)
        try FileIO.makeDirectory(superseded)
        try FileIO.makeDirectory(destination)
        for file in past { try FileIO.rename(directory + "/" + file.name, to: destination + "/" + file.name) }
        try FileIO.syncDirectory(destination)
        try FileIO.syncDirectory(superseded)
        try FileIO.syncDirectory(directory)
        line += "; \(past.count) past seq \(cutSeq) (seqs \(first)…\(last), signed for events this restore does not bring back) moved into \(destination)"
        return line
    }

    /// The retention the restored server applies: read from the RETENTION
    /// file restored, the one it obeys (the manifest's `retention` only
    /// describes it, and can say 730d of a file that says 1 ns). One the
    /// server would refuse to start with is a configuration failure (78).
    private func retentionNote(_ manifest: Vigil_V1_BackupManifest) throws -> String {
        guard manifest.files.contains(where: { $0.path == RetentionSettings.fileName }) else {
            let described = manifest.retention.map { $0.replacingAll("\t", with: " ") }.joined(separator: ", ")
            return "retention: the backup holds none; the server applies its own --retention (90d by default) at once. The source had: \(described)"
        }
        let lines: [RetentionSettings.FileLine]
        do {
            lines = try RetentionSettings.readFile(dataDir + "/" + RetentionSettings.fileName) ?? []
        } catch {
            throw CLIFailure.configuration("\(error.message). The files are restored, but vigil serve refuses to start on \(dataDir) until that is done")
        }
        var settings = lines.map { "\($0.tenant ?? "*") \(RetentionSettings.Values.text($0.nanos))" }.joined(separator: ", ")
        if !lines.contains(where: { $0.tenant == nil }) {
            settings += (lines.isEmpty ? "" : ", ") + "* from the server's --retention (90d by default)"
        }
        return "retention: \(settings) (from the backup's RETENTION, which wins over --retention flags)"
    }

    /// Verifies the backup's files, hash chain and checkpoints against `key`
    /// before a byte is copied: a backup that does not verify, or that holds
    /// no checkpoint this key signed, is not restored.
    private func verifySignedBackup(_ argument: String) throws {
        var options = VerificationOptions()
        options.checkpointDirectory = backup + "/checkpoints"
        do {
            options.trustedKey = try CheckpointPublicKey(argument: argument)
        } catch {
            throw CLIFailure.noInput(error.message)
        }
        let report: IntegrityReport
        do {
            report = try BackupVerification.verify(directory: backup, options: options)
        } catch {
            throw CLIFailure.runtime("cannot verify \(backup): \(error.message); nothing was restored")
        }
        guard report.intact else {
            for problem in report.problems { printError(problem.line) }
            throw CLIFailure.runtime(
                "\(backup) does not verify against the key (\(report.problemsTotal) problems, listed above); nothing was restored")
        }
        guard report.checkpointsChecked > 0 else {
            throw CLIFailure.runtime(
                "\(backup) holds no signed checkpoint, so nothing shows its events are what the server stored; restore without --public-key to take it as it is")
        }
        printError("verified \(report.eventsChecked) events of \(backup) against \(report.checkpointsChecked) signed checkpoints")
    }
}
