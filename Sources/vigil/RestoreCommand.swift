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
            DATA_DIR/checkpoints; move them if the server uses another --checkpoint-dir.
            """
    )

    @Argument(help: ArgumentHelp("The backup directory.", valueName: "backup"))
    var backup: String

    @Argument(help: ArgumentHelp("The data directory to create (new or empty).", valueName: "data-dir"))
    var dataDir: String

    @Flag(name: .long, help: "Show progress on stderr even when it is not a terminal.")
    var progress = false

    func run() throws {
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
        let retention = manifest.retention.map { $0.replacingAll("\t", with: " ") }.joined(separator: ", ")
        let retentionNote =
            manifest.files.contains { $0.path == "RETENTION" }
            ? "retention: \(retention) (from the backup's RETENTION, which wins over --retention flags)"
            : "retention: the backup holds none; the server applies its own --retention (90d by default) at once. The source had: \(retention)"
        print("""
            restored \(manifest.files.count) files (\(TransferProgress.size(bytes))) into \(dataDir): events through seq \(manifest.cutSeq)
            \(retentionNote)
            start it:  vigil serve --data-dir \(dataDir)
            """)
    }
}
