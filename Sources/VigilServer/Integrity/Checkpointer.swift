import Logging
import Synchronization
import VigilCore
import VigilStorage

/// Signed checkpoints: where they go and how often.
public struct CheckpointConfiguration: Sendable {
    /// The signing key; nil: no checkpoints are written (Verify still checks
    /// those in `directory`).
    public var key: CheckpointKey?
    public var directory: String
    /// A checkpoint is written this often when the chain's head moved, and
    /// on graceful shutdown.
    public var interval: Duration = .seconds(300)

    public init(key: CheckpointKey?, directory: String, interval: Duration = .seconds(300)) {
        self.key = key
        self.directory = directory
        self.interval = interval
    }
}

/// Writes a signed checkpoint of the chain head every `interval` when the
/// head moved, one at the retention cut (so that the chain's new start is
/// attested), and a last one on graceful shutdown.
final class Checkpointer: Sendable {
    let key: CheckpointKey
    let configuration: CheckpointConfiguration
    let store: any EventStore
    let logger: Logger
    /// The seq of the last checkpoint written (or found).
    private let lastSeq = Mutex<UInt64?>(nil)
    /// Told of every checkpoint written, for `vigil status`.
    let vitals: ServerVitals?
    /// Counts checkpoints that could not be written.
    let metrics: VigilMetrics?

    init(
        key: CheckpointKey, configuration: CheckpointConfiguration, store: any EventStore, logger: Logger,
        vitals: ServerVitals? = nil, metrics: VigilMetrics? = nil
    ) {
        self.key = key
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.vitals = vitals
        self.metrics = metrics
    }

    /// Until cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.interval)
            } catch {
                return
            }
            await writeIfMoved()
        }
    }

    /// Writes a checkpoint of the current head unless the last one has it.
    func writeIfMoved() async {
        do {
            if let cut = store.chainCut() { try write(seq: cut.seq, head: cut.head) }
            let (seq, head) = try await store.chainHead()
            guard seq > 0, lastSeq.withLock({ $0 }) != seq else { return }
            try write(seq: seq, head: head)
        } catch {
            metrics?.recordCheckpointFailure()
            logger.error("cannot write a signed checkpoint", metadata: ["vigil.error": "\(error)", "vigil.checkpoint-dir": "\(configuration.directory)"])
        }
    }

    private func write(seq: UInt64, head: ChainDigest) throws(VigilError) {
        let checkpoint = try Checkpoints.sign(seq: seq, head: head, createdAt: currentUnixNanos(), key: key)
        if try Checkpoints.write(checkpoint, to: configuration.directory) {
            logger.info("signed checkpoint", metadata: ["vigil.seq": "\(seq)", "vigil.head": "\(head.hex)"])
        }
        lastSeq.withLock { $0 = max($0 ?? 0, seq) }
        vitals?.checkpointWritten(seq: seq, createdAt: checkpoint.createdAtNanos)
    }
}
