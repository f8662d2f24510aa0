import ArgumentParser
import Foundation
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto
import VigilStorage

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute the hash chain over the stored events and report every problem.",
        discussion: """
            Offline, over a data directory no server has open (it is refused while a \
            server holds its LOCK; ask that server instead):
              vigil verify --data-dir ./vigil-data --public-key checkpoint.key.pub
            Online, through the server's Verify call (--server, --token, --timeout):
              vigil verify --server 127.0.0.1:7700
            A backup made by `vigil backup`: every file against the backup's manifest (size \
            and SHA-256; none missing, none added), then the hash chain over its contents:
              vigil verify --backup /backups/vigil-2026-12-03
            Reports each altered, missing, inserted or reordered event by seq, event id and \
            file, each part or WAL record that fails its checksum, and each signed checkpoint \
            that is forged or that the recomputed chain does not reach.
            Exit status: 0 intact, 1 problems found, 2 verification could not run.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(name: .long, help: ArgumentHelp("Verify this data directory directly (offline).", valueName: "path"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("Verify this backup (from vigil backup): its files against its manifest, then its hash chain.", valueName: "path"))
    var backup: String?

    @Option(name: .long, help: ArgumentHelp("Offline: where the signed checkpoints are (default: <data-dir>/checkpoints).", valueName: "path"))
    var checkpointDir: String?

    @Option(name: .long, help: ArgumentHelp("Offline: the key checkpoints must be signed with: a .pub file from vigil keygen, or 64 hex digits.", valueName: "file|hex"))
    var publicKey: String?

    @Option(name: .long, help: "First seq to check (0: the first).")
    var from: UInt64 = 0

    @Option(name: .long, help: "Last seq to check (0: the last).")
    var to: UInt64 = 0

    @Option(name: .long, help: "Output: text (a line per problem, then a summary) or json.")
    var format: Format = .text

    @Flag(name: .long, help: "Show progress on stderr even when it is not a terminal.")
    var progress = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let response: Vigil_V1_VerifyResponse
        do {
            guard to == 0 || from <= to else { throw VigilError(.invalidArgument, "--from \(from) is after --to \(to)") }
            if let backup {
                guard dataDir == nil else { throw VigilError(.invalidArgument, "give --backup or --data-dir, not both") }
                response = try verifyOffline(backup, isBackup: true).proto
            } else if let dataDir {
                // A backup given as a data directory is verified as a backup.
                response = try verifyOffline(dataDir, isBackup: BackupVerification.isBackup(dataDir)).proto
            } else {
                guard publicKey == nil, checkpointDir == nil else {
                    throw VigilError(.invalidArgument, "--public-key and --checkpoint-dir are for --data-dir; the server checks its checkpoints with its own key")
                }
                var request = Vigil_V1_VerifyRequest()
                request.fromSeq = from
                request.toSeq = to
                response = try await client.withClient { connection in
                    try await connection.verify(request, timeout: client.callTimeout)
                }
            }
        } catch let error as CLIError {
            printError("vigil verify: \(error)")
            throw ExitCode(2)
        } catch let error as VigilError {
            printError("vigil verify: \(error)")
            throw ExitCode(2)
        }
        switch format {
        case .json:
            var options = JSONEncodingOptions()
            options.alwaysPrintInt64sAsNumbers = true
            print(try response.jsonString(options: options))
        case .text:
            for line in response.problems { print(line) }
            if response.problemsTotal > UInt64(response.problems.count) {
                print("… and \(response.problemsTotal - UInt64(response.problems.count)) more problems")
            }
            // Online too (a server older than the notes field sends none).
            for note in response.notes { print("note: \(note)") }
            print(summary(response))
        }
        if !response.intact { throw ExitCode(1) }
    }

    private func verifyOffline(_ directory: String, isBackup: Bool = false) throws(VigilError) -> IntegrityReport {
        var options = VerificationOptions()
        options.fromSeq = from
        options.toSeq = to
        options.checkpointDirectory = checkpointDir ?? directory + "/checkpoints"
        if let publicKey { options.trustedKey = try CheckpointPublicKey(argument: publicKey) }
        if progress || isatty(STDERR_FILENO) == 1 {
            let started = ContinuousClock.now
            options.progress = { checked, expected in
                guard ContinuousClock.now - started > .seconds(1) else { return }
                writeStandardError("\rverified \(checked) of about \(expected) events…")
            }
        }
        let report = isBackup
            ? try BackupVerification.verify(directory: directory, options: options)
            : try DirectoryVerification.verify(directory: directory, options: options)
        if progress || isatty(STDERR_FILENO) == 1 { writeStandardError("\r\u{1B}[K") }
        return report
    }

    private func summary(_ response: Vigil_V1_VerifyResponse) -> String {
        var text = response.intact ? "intact" : "NOT INTACT: \(response.problemsTotal) problem(s)"
        if !response.intact {
            var counts: [String: Int] = [:]
            for detail in response.details { counts["\(detail.kind)".uppercased(), default: 0] += 1 }
            text += " (" + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
        }
        text += "; \(counted(response.eventsChecked, "event")) checked"
        if response.eventsExpired > 0 { text += ", \(response.eventsExpired) removed by retention" }
        text += "; \(counted(response.partsChecked, "part")), \(counted(response.walRecordsChecked, "WAL record")), \(counted(response.checkpointsChecked, "checkpoint"))"
        text += "; head at seq \(response.headSeq): \(response.headHash)"
        return text
    }
}

extension CheckpointPublicKey {
    /// `--public-key`'s value: a `.pub` file from `vigil keygen`, or 64 hex digits.
    init(argument: String) throws(VigilError) {
        let text = FileManager.default.fileExists(atPath: argument)
            ? ((try? String(contentsOfFile: argument, encoding: .utf8)) ?? "") : argument
        guard let key = CheckpointPublicKey(text: text) else {
            throw VigilError(.invalidArgument, "--public-key \(argument) is neither an Ed25519 public key file (PEM) nor 64 hex digits")
        }
        self = key
    }
}
