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
        // A client that goes away does not stop the backup (nothing cancels
        // it midway), so its end is awaited and logged either way.
        var sendFailure: (any Error)?
        for await report in reports where sendFailure == nil {
            if let lastSent, ContinuousClock.now - lastSent < Self.backupProgressInterval { continue }
            lastSent = .now
            do { try await sender.send(Vigil_V1_BackupProgress(report)) } catch { sendFailure = error }
        }
        let finished = await outcome
        await access.systemLog.record(Self.logEntry(finished, destination: request.destination, by: caller.principal), by: caller.principal, peerIP: caller.peerIP)
        if let sendFailure { throw sendFailure }
        let result = try finished.get()
        var last = Vigil_V1_BackupProgress()
        last.filesDone = UInt64(result.files)
        last.filesTotal = UInt64(result.files)
        last.bytesDone = result.bytes
        last.bytesTotal = result.bytes
        last.summary = Vigil_V1_BackupSummary(result)
        try await sender.send(last)
        return ["vigil.cut-seq": String(result.cutSeq)]
    }
}

extension AuditService {
    /// `backup.create` in the system tenant: a backup copies every tenant's events.
    static func logEntry(_ outcome: Result<BackupResult, VigilError>, destination: String, by principal: Principal) -> SystemAuditLog.Entry {
        switch outcome {
        case .success(let result):
            return .init(
                action: "backup.create", category: .create, resourceType: "backup", resourceID: result.destination,
                metadata: ["cut_seq": String(result.cutSeq), "files": String(result.files), "bytes": String(result.bytes)],
                description: "\(principal.displayName) backed up the data directory to \(result.destination) (through seq \(result.cutSeq))")
        case .failure(let error):
            return .init(
                action: "backup.create", category: .create, outcome: .failure, resourceType: "backup",
                resourceID: String(destination.prefix(1_024)),
                description: "\(principal.displayName) tried to back up the data directory to \(destination.prefix(1_024))",
                reason: "\(error.code.status.name): \(error.message)")
        }
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
