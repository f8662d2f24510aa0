import ArgumentParser
import Foundation
import VigilClient
import VigilCore
import VigilProto
import VigilServer
import VigilStorage

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a consistent backup of a server's data while it keeps ingesting.",
        discussion: """
            The server writes the backup itself, to DEST on its own host (an absolute path \
            that does not exist or is an empty directory); an admin token of every tenant \
            is needed:
              vigil backup --server 127.0.0.1:7700 --token-file /etc/vigil/admin-token \\
                  /backups/vigil-2026-12-03
            On the data directory's file system, parts are hard-linked (instant, no extra \
            space); elsewhere they are copied. The backup holds every event acknowledged \
            before it began — through the "cut" seq it reports — and nothing after. \
            Offline, for a stopped server (refused while a server holds the LOCK):
              vigil backup --data-dir ./vigil-data /backups/vigil-2026-12-03
            Check a backup with `vigil verify --backup DEST`; restore it with \
            `vigil restore DEST NEW_DATA_DIR`.
            """
    )

    @Argument(help: ArgumentHelp("Where the backup goes: a new or empty directory (on the server's host with --server).", valueName: "dest"))
    var destination: String

    @Option(name: .long, help: ArgumentHelp("Back up this data directory directly (offline; its server must be stopped).", valueName: "path"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("Offline: signed checkpoints to include (default: <data-dir>/checkpoints).", valueName: "path"))
    var checkpointDir: String?

    @Flag(name: .long, help: "Show progress on stderr even when it is not a terminal.")
    var progress = false

    @OptionGroup var client: ClientOptions

    func validate() throws {
        if dataDir == nil && checkpointDir != nil {
            throw ValidationError("--checkpoint-dir is for --data-dir; the server includes its own checkpoints")
        }
    }

    func run() async throws {
        let display = TransferProgress(verb: "backup", forced: progress)
        let summary: Vigil_V1_BackupSummary
        if let dataDir {
            summary = try await backupOffline(dataDir, display: display)
        } else {
            summary = try await client.withClient { connection in
                // No deadline by default: a large backup takes as long as its copies.
                try await connection.backup(destination: destination, timeout: client.explicitTimeout) { message in
                    display.show(
                        filesDone: message.filesDone, filesTotal: message.filesTotal, bytesDone: message.bytesDone, bytesTotal: message.bytesTotal,
                        force: message.hasSummary)
                }
            }
        }
        display.finish()
        print("""
            backup complete: \(summary.destination)
              cut at seq \(summary.cutSeq): every event through it is in the backup, none after
              \(summary.files) files, \(TransferProgress.size(summary.bytes)) (\(summary.linkedFiles) hard-linked, \(summary.copiedFiles) copied)
            check it:   vigil verify --backup \(summary.destination)
            restore it: vigil restore \(summary.destination) NEW_DATA_DIR
            """)
    }

    private func backupOffline(_ dataDir: String, display: TransferProgress) async throws -> Vigil_V1_BackupSummary {
        let absolute = destination.hasPrefix("/") ? destination : FileManager.default.currentDirectoryPath + "/" + destination
        var options = BackupOptions(destination: absolute)
        options.checkpointDirectory = checkpointDir ?? dataDir + "/checkpoints"
        options.serverVersion = vigilVersion
        options.progress = { report in
            display.show(
                filesDone: UInt64(report.filesDone), filesTotal: UInt64(report.filesTotal), bytesDone: report.bytesDone, bytesTotal: report.bytesTotal)
        }
        let result: BackupResult
        do {
            result = try await ColumnarEventStore.backupOffline(directory: dataDir, options)
        } catch {
            throw CLIError(error)
        }
        return Vigil_V1_BackupSummary(result)
    }
}
