import VigilCore
import VigilProto

/// Rebuilds a data directory from a backup. Every file is checked against
/// the manifest before anything is written, so a damaged backup is refused
/// (naming the file) rather than restored; then the files are copied (never
/// linked: the restored server changes its directory, the backup must not
/// change with it), fsynced, and their directories fsynced. A server started
/// on the result opens it as after a clean stop and replays the WAL cut.
public enum BackupRestore {
    /// Restores `backup` into `dataDirectory`, which must not exist or be
    /// empty (ALREADY_EXISTS otherwise). Returns the backup's manifest.
    public static func restore(
        backup: String, to dataDirectory: String, progress: ((BackupProgressReport) -> Void)? = nil
    ) throws(VigilError) -> Vigil_V1_BackupManifest {
        var target = dataDirectory
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        // Refuse a non-empty target before reading a large backup.
        try BackupFileOperations.requireAbsentOrEmpty(target, what: "the data directory")
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
        try BackupFileOperations.makeEmptyDirectory(target, what: "the data directory")
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
        return manifest
    }
}
