import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

/// Rebuilds a data directory from a backup. Every file is checked against
/// the manifest before anything is written, so a damaged backup is refused
/// (naming the file) rather than restored; then the files are copied (never
/// linked: the restored server changes its directory, the backup must not
/// change with it), fsynced, and their directories fsynced. A server started
/// on the result opens it as after a clean stop and replays the WAL cut.
public enum BackupRestore {
    /// Restores `backup` into `dataDirectory`, which must not exist or be
    /// empty (ALREADY_EXISTS otherwise), or be one a restore did not finish
    /// (it holds `inProgressName`; what that restore copied is replaced). Returns the backup's manifest. Until it returns, the
    /// directory holds `inProgressName`, which a store refuses to open; a
    /// restore that fails removes what it copied and leaves that marker.
    public static func restore(
        backup: String, to dataDirectory: String, progress: ((BackupProgressReport) -> Void)? = nil
    ) throws(VigilError) -> Vigil_V1_BackupManifest {
        var target = dataDirectory
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        // Refuse a non-empty target before reading a large backup, unless it
        // is what a restore that did not finish left (it holds the marker).
        let leftByFailure: Set<String> = [Self.inProgressName, "LOCK"]
        let unfinished = FileIO.exists(target + "/" + Self.inProgressName)
        if !unfinished { try BackupFileOperations.requireAbsentOrEmpty(target, what: "the data directory") }
        let manifest = try BackupManifestFile.read(from: backup)
        var report = BackupProgressReport()
        // Files count as they are written; bytes as they are checked and again as they are written.
        report.filesTotal = manifest.files.count
        report.bytesTotal = manifest.files.reduce(0) { $0 + $1.size } * 2
        let check = try BackupCheck.run(directory: backup) { bytes in
            report.bytesDone += UInt64(bytes)
            progress?(report)
        }
        try check.requireIntact(backup)
        if !unfinished { try BackupFileOperations.makeEmptyDirectory(target, what: "the data directory") }
        // Until the last file is in, a server must not open the directory: a
        // restore cut short (a full disk, a kill) would otherwise open as a
        // store missing the end of its WAL, and hand the lost seqs out again.
        // The LOCK keeps a server off meanwhile; the marker, after a crash.
        let lock = Glibc.open(target + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw FileIO.error("open", target + "/LOCK") }
        defer { Glibc.close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            throw VigilError(.failedPrecondition, "\(target) is in use by a Vigil process (its LOCK is held); stop it, or restore elsewhere")
        }
        try FileIO.writeAtomically([], to: target + "/" + Self.inProgressName)
        // What an earlier restore that was killed copied.
        if unfinished { BackupFileOperations.removeContents(of: target, keeping: leftByFailure) }
        do throws(VigilError) {
            try copyFiles(of: manifest, from: backup, to: target, report: &report, progress: progress)
        } catch {
            // Back to the marker alone: `vigil serve` refuses it, a new restore takes it.
            BackupFileOperations.removeContents(of: target, keeping: leftByFailure)
            throw error
        }
        try FileIO.remove(target + "/" + Self.inProgressName)
        try FileIO.syncDirectory(target)
        return manifest
    }

    /// The file that marks a data directory as being restored into (or a
    /// restore that did not finish): `ColumnarEventStore` refuses to open it.
    public static let inProgressName = ".restore-in-progress"

    private static func copyFiles(
        of manifest: Vigil_V1_BackupManifest, from backup: String, to target: String, report: inout BackupProgressReport,
        progress: ((BackupProgressReport) -> Void)?
    ) throws(VigilError) {
        var directories: Set<String> = [target]
        for file in manifest.files {
            let destination = target + "/" + file.path
            try BackupFileOperations.makeParent(of: destination, under: target, recordingIn: &directories)
            let copied = try BackupFileOperations.copy(backup + "/" + file.path, to: destination) { bytes in
                report.bytesDone += UInt64(bytes)
                progress?(report)
            }
            // Checked once already; this catches a change between the check and the copy.
            guard copied.sha256 == file.sha256 else {
                throw VigilError(.dataLoss, "\(backup)/\(file.path) changed while it was restored (its SHA-256 no longer matches the manifest); restore again")
            }
            report.filesDone += 1
            progress?(report)
        }
        for directory in directories.sorted(by: { $0.count > $1.count }) { try FileIO.syncDirectory(directory) }
        try FileIO.syncDirectory(FileIO.directoryName(of: target))
    }
}
