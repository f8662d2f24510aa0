import VigilCore
import VigilProto

/// What a backup is asked to do.
public struct BackupOptions: Sendable {
    /// An absolute path that does not exist or is an empty directory.
    public var destination: String
    /// Signed checkpoints to include (as `checkpoints/`), wherever they are.
    public var checkpointDirectory: String?
    /// Recorded in the manifest.
    public var serverVersion = ""
    /// Called as files are written (often; cheap to call).
    public var progress: (@Sendable (BackupProgressReport) -> Void)?
    /// Whether the store's retention settings are the ones in force (a
    /// running server's, from its flags and `RETENTION`): the backup then
    /// holds them as its `RETENTION`, so that a restored server keeps them
    /// whatever flags it starts with. An offline backup opens the directory
    /// without the server's flags, so it copies `RETENTION` as it is.
    var recordsRetentionInForce = true
    /// Runs once the snapshot is pinned and before anything is copied (tests:
    /// a flush, merge or retention pass that deletes pinned files meanwhile).
    var afterPinning: (@Sendable () async -> Void)?

    public init(destination: String) {
        self.destination = destination
    }
}

/// How far a backup (or restore) is.
public struct BackupProgressReport: Sendable, Equatable {
    public var filesDone = 0
    public var filesTotal = 0
    public var bytesDone: UInt64 = 0
    public var bytesTotal: UInt64 = 0

    public init() {}
}

/// A finished backup.
public struct BackupResult: Sendable {
    public var destination: String
    /// Every event with a seq at or below it is in the backup, none above it.
    public var cutSeq: UInt64
    public var files: Int
    public var bytes: UInt64
    public var linkedFiles: Int
    public var copiedFiles: Int
    public var createdAtNanos: Int64
}

extension Vigil_V1_BackupSummary {
    /// What the `Backup` call's last message and `vigil backup` report of a finished backup.
    public init(_ result: BackupResult) {
        self.init()
        destination = result.destination
        cutSeq = result.cutSeq
        files = UInt64(result.files)
        bytes = result.bytes
        linkedFiles = UInt64(result.linkedFiles)
        copiedFiles = UInt64(result.copiedFiles)
        createdAt = .init(unixNanos: result.createdAtNanos)
    }
}
