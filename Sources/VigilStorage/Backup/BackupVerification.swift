import VigilCore
import VigilProto

/// Verification of a backup: every file against the manifest (size and
/// SHA-256, nothing missing, nothing added), then the hash chain over the
/// backup's parts, WAL cut, chain files and checkpoints, as for a data
/// directory. Problems of both kinds go into one report.
public enum BackupVerification {
    /// NOT_FOUND when `directory` has no `backup.json`; a damaged manifest is
    /// a problem in the report, like a damaged file.
    public static func verify(directory: String, options: VerificationOptions) throws(VigilError) -> IntegrityReport {
        var backupProblems: [IntegrityProblem] = []
        var notes: [String] = []
        do throws(VigilError) {
            let check = try BackupCheck.run(directory: directory)
            for problem in check.problems {
                backupProblems.append(IntegrityProblem(.checksum, location: problem.path, "does not match the backup manifest: " + problem.detail))
            }
            let manifest = check.manifest
            notes.append(
                "a backup taken \(formatTime(manifest.createdAtNanos)) by vigil \(manifest.serverVersion) from \(manifest.sourceDirectory), "
                    + "through seq \(manifest.cutSeq); \(check.filesChecked) of \(manifest.files.count) files match \(BackupManifestFile.name)")
        } catch let error where error.code == .notFound {
            throw error
        } catch {
            backupProblems.append(IntegrityProblem(.checksum, location: BackupManifestFile.name, error.message))
        }
        var report: IntegrityReport
        do throws(VigilError) {
            report = try DirectoryVerification.verify(directory: directory, options: options)
        } catch {
            report = IntegrityReport()
            report.add(IntegrityProblem(.checksum, "the hash chain could not be verified: \(error.message)"), limit: options.maxProblems)
        }
        var combined = IntegrityReport()
        for problem in backupProblems + report.problems { combined.add(problem, limit: options.maxProblems) }
        combined.problemsTotal = UInt64(backupProblems.count) + report.problemsTotal
        combined.eventsChecked = report.eventsChecked
        combined.partsChecked = report.partsChecked
        combined.walRecordsChecked = report.walRecordsChecked
        combined.checkpointsChecked = report.checkpointsChecked
        combined.eventsExpired = report.eventsExpired
        combined.headSeq = report.headSeq
        combined.headHash = report.headHash
        combined.notes = notes + report.notes
        return combined
    }

    /// Whether `directory` holds a backup (its manifest) rather than a data directory.
    public static func isBackup(_ directory: String) -> Bool {
        FileIO.exists(directory + "/" + BackupManifestFile.name)
    }
}
