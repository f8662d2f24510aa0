import VigilCore
import VigilProto
import VigilStorage

/// Backup: the server writes a consistent backup of its data directory to a
/// directory on its own host while ingest goes on (as ClickHouse's
/// `BACKUP … TO Disk` does): it alone can take the WAL cut and keep the files
/// it copies from being merged or expired away meanwhile. Progress goes to
/// the client as the backup runs, at most a few messages a second; the last
/// message carries the summary.
extension AuditService {
    /// The least time between two progress messages.
    static let backupProgressInterval: Duration = .milliseconds(250)

    func backup(_ request: Vigil_V1_BackupRequest, sender: some ResponseSender, caller: Caller) async throws -> [String: String] {
        // authorization: server admin
        var options = BackupOptions(destination: request.destination)
        options.checkpointDirectory = configuration.checkpoints?.directory
        options.serverVersion = vigilVersion
        // Only the newest report waits: a client slow to grant credit never holds up the backup.
        let (reports, continuation) = AsyncStream.makeStream(of: BackupProgressReport.self, bufferingPolicy: .bufferingNewest(1))
        options.progress = { continuation.yield($0) }
        let store = store
        let backupOptions = options
        async let outcome: Result<BackupResult, VigilError> = {
            defer { continuation.finish() }
            do throws(VigilError) { return .success(try await store.backup(backupOptions)) } catch { return .failure(error) }
        }()
        var lastSent: ContinuousClock.Instant?
        for await report in reports {
            if let lastSent, ContinuousClock.now - lastSent < Self.backupProgressInterval { continue }
            lastSent = .now
            try await sender.send(Vigil_V1_BackupProgress(report))
        }
        let result = try await outcome.get()
        await access.systemLog.record(
            .init(
                action: "backup.create", category: .create, resourceType: "backup", resourceID: result.destination,
                metadata: ["cut_seq": String(result.cutSeq), "files": String(result.files), "bytes": String(result.bytes)],
                description: "\(caller.principal.displayName) backed up the data directory to \(result.destination) (through seq \(result.cutSeq))"),
            by: caller.principal, peerIP: caller.peerIP)
        var last = Vigil_V1_BackupProgress()
        last.filesDone = UInt64(result.files)
        last.filesTotal = UInt64(result.files)
        last.bytesDone = result.bytes
        last.bytesTotal = result.bytes
        last.summary.destination = result.destination
        last.summary.cutSeq = result.cutSeq
        last.summary.files = UInt64(result.files)
        last.summary.bytes = result.bytes
        last.summary.linkedFiles = UInt64(result.linkedFiles)
        last.summary.copiedFiles = UInt64(result.copiedFiles)
        last.summary.createdAt = .init(unixNanos: result.createdAtNanos)
        try await sender.send(last)
        return ["vigil.cut-seq": String(result.cutSeq)]
    }
}

extension Vigil_V1_BackupProgress {
    init(_ report: BackupProgressReport) {
        self.init()
        filesDone = UInt64(report.filesDone)
        filesTotal = UInt64(report.filesTotal)
        bytesDone = report.bytesDone
        bytesTotal = report.bytesTotal
    }
}
