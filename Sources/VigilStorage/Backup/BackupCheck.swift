import VigilCore
import VigilProto

/// Checks a backup's files against its manifest: each listed file is there,
/// has its size and its SHA-256, and no file is there that it does not list.
public struct BackupCheck: Sendable {
    public struct Problem: Sendable, CustomStringConvertible {
        /// Relative to the backup directory.
        public var path: String
        public var detail: String
        public var description: String { "\(path): \(detail)" }
    }

    public var manifest: Vigil_V1_BackupManifest
    public var problems: [Problem]
    public var filesChecked = 0
    public var bytesChecked: UInt64 = 0

    /// Reads the manifest (throwing when it is missing or damaged) and checks
    /// every file; `progress` gets the bytes read.
    public static func run(directory: String, progress: (Int) -> Void = { _ in }) throws(VigilError) -> BackupCheck {
        let manifest = try BackupManifestFile.read(from: directory)
        var check = BackupCheck(manifest: manifest, problems: [])
        var listed = Set<String>()
        for file in manifest.files {
            listed.insert(file.path)
            let path = directory + "/" + file.path
            guard let size = try BackupFileOperations.size(of: path) else {
                check.problems.append(.init(path: file.path, detail: "missing (the manifest lists it, \(file.size) bytes)"))
                continue
            }
            guard UInt64(size) == file.size else {
                check.problems.append(.init(path: file.path, detail: "is \(size) bytes; the manifest says \(file.size)"))
                continue
            }
            let digest = try BackupFileOperations.digest(path, progress: progress)
            check.filesChecked += 1
            check.bytesChecked += UInt64(digest.size)
            if digest.sha256 != file.sha256 {
                check.problems.append(.init(path: file.path, detail: "its SHA-256 \(digest.sha256) differs from the manifest's \(file.sha256)"))
            }
        }
        for path in try BackupFileOperations.listFiles(under: directory)
        where path != BackupManifestFile.name && !listed.contains(path) {
            check.problems.append(.init(path: path, detail: "is not listed in the manifest (added after the backup was written)"))
        }
        return check
    }

    /// Throws DATA_LOSS naming the first problem, if any.
    public func requireIntact(_ directory: String) throws(VigilError) {
        guard let first = problems.first else { return }
        let more = problems.count > 1 ? " (and \(problems.count - 1) more problem(s))" : ""
        throw VigilError(
            .dataLoss,
            "the backup \(directory) is damaged: \(first)\(more); `vigil verify --backup \(directory)` lists every problem. Restore from another backup")
    }
}
