import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

/// Backups while the server runs.
///
/// The snapshot is *pinned* first, in a moment: hard links to every file it
/// needs are made in a pin directory inside the data directory (the same
/// file system, so a link always works and costs no space), while the
/// maintenance lock keeps flushes, merges and retention from replacing or
/// deleting any of them. Ingest goes on meanwhile. The WAL cut is taken under
/// the store's own lock, where seqs are assigned and WAL records written: the
/// last seq assigned and each WAL segment's size then. Records up to the cut
/// are made durable before anything is copied, so every event acknowledged
/// before the backup began is in it, and nothing after the cut's seq is.
///
/// Then, without any lock, the pinned files are linked into the destination
/// (same file system) or copied, each is hashed, and `backup.json` is written
/// last. The pin directory is removed at the end (and by the next start, if
/// the server died meanwhile).
extension ColumnarEventStore {
    public func backup(_ request: BackupOptions) async throws(VigilError) -> BackupResult {
        do throws(VigilError) {
            return try await writeBackup(request)
        } catch {
            throw BackupFileOperations.permanentProblem(error)
        }
    }

    private func writeBackup(_ request: BackupOptions) async throws(VigilError) -> BackupResult {
        let directory = options.directory
        let destination = try Self.checkBackupDestination(request.destination, dataDirectory: directory)
        let existed = FileIO.exists(destination)
        try BackupFileOperations.makeEmptyDirectory(destination, what: "the backup destination")
        // Claimed with O_EXCL, so that of two backups racing to one empty
        // destination the second is refused and its cleanup cannot touch the first's files.
        let claim = destination + "/" + Self.backupClaimName
        do throws(VigilError) {
            try FileHandleDescriptor.open(claim, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600).close()
        } catch {
            guard error.metadata[FileIO.errnoKey] == "EEXIST" else { throw error }
            throw VigilError(.alreadyExists, "another backup is being written to \(destination); give another destination")
        }
        do throws(VigilError) {
            let result = try await writeBackup(request, to: destination)
            return result
        } catch {
            // A failed backup leaves nothing behind (the destination was new or empty).
            BackupFileOperations.removeContents(of: destination)
            if !existed { try? FileIO.removeDirectory(destination) }
            throw error
        }
    }

    private func writeBackup(_ request: BackupOptions, to destination: String) async throws(VigilError) -> BackupResult {
        let directory = options.directory
        let createdAt = currentUnixNanos()
        let pin = BackupPin(directory: directory + "/" + BackupPin.namePrefix + hex16(UInt64(createdAt)))
        try FileIO.makeDirectory(pin.directory)
        defer { pin.remove() }

        // Checkpoints before the cut: one listed now signs a seq at or below it.
        if let checkpoints = request.checkpointDirectory {
            for name in try FileIO.list(checkpoints) where name.hasSuffix(Checkpoints.fileExtension) {
                try pin.add(checkpoints + "/" + name, as: "checkpoints/" + name)
            }
            // What restores and unfinished removals set aside: the record of
            // a loss, which verify notes, goes with the backup too.
            let superseded = Checkpoints.supersededDirectory
            for set in Checkpoints.supersededSets(in: checkpoints) {
                for name in try FileIO.list(checkpoints + "/" + superseded + "/" + set.name)
                where name.hasSuffix(Checkpoints.fileExtension) || name.hasSuffix(RetentionStatements.fileExtension) {
                    try pin.add(checkpoints + "/" + superseded + "/" + set.name + "/" + name, as: "checkpoints/\(superseded)/\(set.name)/\(name)")
                }
            }
        }
        let cut = try await maintenanceLock.withLock { () async throws(VigilError) -> WALCutPosition in
            let manifest = self.manifest.withLock { $0 }
            for name in ["MANIFEST", "tokens", "alerts.progress"] where FileIO.exists(directory + "/" + name) {
                try pin.add(directory + "/" + name, as: name)
            }
            // The settings and their signed statements together, between
            // changes: a restore must find its RETENTION signed.
            try retentionSettings.writer.withLock { _ throws(VigilError) in
                // A server without the key on signed settings cannot sign
                // them as its RETENTION: it copies the file, signed as it is.
                let keyless = retentionSettings.signer == nil && retentionSettings.settingsDirectory != nil
                if request.recordsRetentionInForce && !keyless {
                    // Without it a restored server applies its own flags (90 days
                    // by default) on its first retention pass, a second after it
                    // starts: a server kept for years would lose most of them.
                    let inForce = RetentionSettings.fileBytes(retentionSettings.current)
                    try pin.add(contents: inForce, as: "RETENTION")
                    if request.checkpointDirectory != nil, let pinned = try retentionSettings.pinnedByBackup(inForce, takenAt: createdAt) {
                        try pin.add(contents: pinned.bytes, as: "checkpoints/" + pinned.name)
                    }
                } else if FileIO.exists(directory + "/RETENTION") {
                    try pin.add(directory + "/RETENTION", as: "RETENTION")
                }
                if let checkpoints = request.checkpointDirectory {
                    for (name, _) in try RetentionStatements.settingsNames(in: checkpoints) {
                        try pin.add(checkpoints + "/" + name, as: "checkpoints/" + name)
                    }
                }
            }
            for part in manifest.parts { try pin.add(directory + "/" + part.path, as: part.path) }
            for name in manifest.idempotencyFiles { try pin.add(directory + "/keys/" + name, as: "keys/" + name) }
            let chainFiles = chain.withLock { state in (state.ledgerPath.map { [$0] } ?? []) + state.expiredFiles.map(\.path) }
            for path in chainFiles { try pin.add(directory + "/" + path, as: path) }
            // The statements of those chain files' removals: listed under the
            // lock, which a removal holds until it commits.
            if let checkpoints = request.checkpointDirectory {
                for name in try RetentionStatements.names(in: checkpoints) where RetentionStatements.settingsGeneration(ofFileName: name) == nil {
                    try pin.add(checkpoints + "/" + name, as: "checkpoints/" + name)
                }
            }
            var cut = try walCut()
            cut.flushedThroughSeq = manifest.flushedThroughSeq
            // Segments are deleted only by a flush, which waits for this lock.
            for segment in cut.segments {
                try pin.add(directory + "/wal/" + segment.name, as: "wal/" + segment.name, length: segment.bytes)
            }
            return cut
        }
        if let last = cut.lastWrite { try await wal.waitDurable(last) }
        if let afterPinning = request.afterPinning { await afterPinning() }

        let executor = try BlockingWorkExecutor(threads: 1)
        defer { executor.shutdown() }
        let retention = retentionSettings.current
        return try await withTaskExecutorPreference(executor) { () async throws(VigilError) -> BackupResult in
            var written = try pin.write(to: destination, progress: request.progress)
            var manifest = Vigil_V1_BackupManifest()
            manifest.formatVersion = BackupManifestFile.formatVersion
            manifest.createdAtNanos = createdAt
            manifest.serverVersion = request.serverVersion
            manifest.sourceDirectory = BackupFileOperations.realPath(directory) ?? directory
            manifest.cutSeq = cut.seq
            manifest.flushedThroughSeq = cut.flushedThroughSeq
            manifest.files = written.files
            manifest.retention = Self.describe(retention)
            try FileIO.remove(destination + "/" + Self.backupClaimName)
            try BackupManifestFile.write(manifest, to: destination)
            try FileIO.syncDirectory(FileIO.directoryName(of: destination))
            written.result.destination = destination
            written.result.cutSeq = cut.seq
            written.result.createdAtNanos = createdAt
            return written.result
        }
    }

    /// The file that marks a destination as taken while a backup is written there.
    static let backupClaimName = ".backup-in-progress"

    /// An absolute destination outside the data directory, without a trailing slash.
    static func checkBackupDestination(_ path: String, dataDirectory: String) throws(VigilError) -> String {
        guard path.hasPrefix("/") else {
            throw VigilError(
                .invalidArgument,
                "the backup destination must be an absolute path on the server's host (the server writes it), not '\(path.prefix(200))'")
        }
        var destination = path
        while destination.count > 1 && destination.hasSuffix("/") { destination.removeLast() }
        // Compare real paths: the data directory may have been given relative or through a link.
        var existing = destination
        var rest = ""
        while BackupFileOperations.realPath(existing) == nil && existing != "/" {
            rest = "/" + (existing.split(separator: "/").last.map(String.init) ?? "") + rest
            existing = FileIO.directoryName(of: existing)
        }
        let resolved = (BackupFileOperations.realPath(existing) ?? existing) + rest
        if let data = BackupFileOperations.realPath(dataDirectory), resolved == data || resolved.hasPrefix(data + "/") || data.hasPrefix(resolved + "/") {
            throw VigilError(
                .invalidArgument,
                "the backup destination \(destination) overlaps the data directory \(data); put backups outside it (ideally on another disk)")
        }
        return destination
    }

    static func describe(_ retention: RetentionSettings.Values) -> [String] {
        let text = RetentionSettings.Values.text
        return ["*\t" + text(retention.defaultNanos)] + retention.tenantNanos.sorted { $0.key < $1.key }.map { "\($0.key)\t" + text($0.value) }
    }
}

/// The WAL up to a durable position: what a backup needs of it.
struct WALCutPosition: Sendable {
    struct Segment: Sendable {
        var name: String
        var bytes: Int
    }

    /// The last seq assigned when the cut was taken.
    var seq: UInt64
    /// The last record written then (nil: none since the store opened).
    var lastWrite: WALLocation?
    /// Every segment with records, and its size then.
    var segments: [Segment]
    var flushedThroughSeq: UInt64 = 0
}

/// Hard links to the files of a snapshot, kept in one flat directory inside
/// the data directory until they are written out: the engine may delete or
/// replace the originals meanwhile.
struct BackupPin: Sendable {
    /// Pin directories are named `.backup-pin-<16 hex>`; a start removes leftovers.
    static let namePrefix = ".backup-pin-"

    struct Entry: Sendable {
        var pinned: String
        /// Where it goes, relative to the backup.
        var path: String
        /// Only this many bytes (the WAL cut); nil for the whole file.
        var length: Int?
        var bytes: Int
    }

    let directory: String
    private let entries = EntryList()

    init(directory: String) {
        self.directory = directory
    }

    /// Links `source` into the pin (copies it when it is on another file system: a checkpoint directory elsewhere).
    func add(_ source: String, as path: String, length: Int? = nil) throws(VigilError) {
        let pinned = directory + "/" + String(entries.count)
        if try !BackupFileOperations.link(source, to: pinned) {
            _ = try BackupFileOperations.copy(source, to: pinned)
        }
        var bytes = length ?? 0
        if length == nil { bytes = try BackupFileOperations.size(of: pinned) ?? 0 }
        entries.append(Entry(pinned: pinned, path: path, length: length, bytes: bytes))
    }

    /// A file made for the backup (not a copy of one in the data directory).
    func add(contents: [UInt8], as path: String) throws(VigilError) {
        let pinned = directory + "/" + String(entries.count)
        try FileIO.writeAtomically(contents, to: pinned, syncDirectory: false)
        entries.append(Entry(pinned: pinned, path: path, length: nil, bytes: contents.count))
    }

    /// Links (same file system) or copies every pinned file into `destination`, hashing each.
    func write(
        to destination: String, progress: (@Sendable (BackupProgressReport) -> Void)?
    ) throws(VigilError) -> (files: [Vigil_V1_BackupFile], result: BackupResult) {
        let all = entries.all
        var report = BackupProgressReport()
        report.filesTotal = all.count
        report.bytesTotal = all.reduce(0) { $0 + UInt64($1.bytes) }
        progress?(report)
        var result = BackupResult(destination: destination, cutSeq: 0, files: 0, bytes: 0, linkedFiles: 0, copiedFiles: 0, createdAtNanos: 0)
        var files: [Vigil_V1_BackupFile] = []
        var directories = Set<String>()
        for entry in all {
            let target = destination + "/" + entry.path
            try BackupFileOperations.makeParent(of: target, under: destination, recordingIn: &directories)
            let digest: (size: Int, sha256: String)
            let count: (Int) -> Void = { bytes in
                report.bytesDone += UInt64(bytes)
                progress?(report)
            }
            if entry.length == nil, try BackupFileOperations.link(entry.pinned, to: target) {
                digest = try BackupFileOperations.digest(target, progress: count)
                result.linkedFiles += 1
            } else {
                digest = try BackupFileOperations.copy(entry.pinned, to: target, length: entry.length, progress: count)
                result.copiedFiles += 1
            }
            var file = Vigil_V1_BackupFile()
            file.path = entry.path
            file.size = UInt64(digest.size)
            file.sha256 = digest.sha256
            files.append(file)
            result.files += 1
            result.bytes += UInt64(digest.size)
            report.filesDone += 1
            progress?(report)
        }
        for directory in directories.sorted(by: { $0.count > $1.count }) { try FileIO.syncDirectory(directory) }
        try FileIO.syncDirectory(destination)
        return (files, result)
    }

    /// Removes the pin; failures only leave garbage that the next start removes.
    func remove() {
        for name in (try? FileIO.list(directory)) ?? [] { try? FileIO.remove(directory + "/" + name) }
        try? FileIO.removeDirectory(directory)
    }

    /// Removes pin directories a dead process left in `dataDirectory`; returns their names.
    static func removeLeftovers(in dataDirectory: String) throws(VigilError) -> [String] {
        var removed: [String] = []
        for name in try FileIO.list(dataDirectory) where name.hasPrefix(namePrefix) {
            BackupPin(directory: dataDirectory + "/" + name).remove()
            removed.append(name)
        }
        return removed
    }
}

/// The pin's entries, appended to under the maintenance lock and read after it.
private final class EntryList: Sendable {
    private let entries = Mutex<[BackupPin.Entry]>([])
    var count: Int { entries.withLock { $0.count } }
    var all: [BackupPin.Entry] { entries.withLock { $0 } }
    func append(_ entry: BackupPin.Entry) { entries.withLock { $0.append(entry) } }
}

import Synchronization

extension ColumnarEventStore {
    /// Backs up a data directory no server has open: opens it as a server
    /// would (recovering it), backs it up the same way, and closes it without
    /// flushing. FAILED_PRECONDITION while a server holds its LOCK.
    public static func backupOffline(directory: String, _ request: BackupOptions) async throws(VigilError) -> BackupResult {
        guard FileIO.exists(directory + "/MANIFEST") || FileIO.exists(directory + "/wal") else {
            throw VigilError(.notFound, "\(directory) is not a Vigil data directory (it has no MANIFEST and no wal/)")
        }
        // Asked first, as `verify(directory:)` does, so that only a held LOCK gets this advice.
        let lock = Glibc.open(directory + "/LOCK", O_RDONLY | O_CLOEXEC)
        let held = lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0
        if lock >= 0 { Glibc.close(lock) }
        if held {
            throw VigilError(
                .failedPrecondition,
                "\(directory) is in use by a running server (its LOCK is held); back it up through the server instead: vigil backup --server HOST:PORT DEST")
        }
        let store = try ColumnarEventStore(options: StorageOptions(directory: directory))
        defer { try? store.abandon() }
        var request = request
        request.recordsRetentionInForce = false
        return try await store.backup(request)
    }
}
