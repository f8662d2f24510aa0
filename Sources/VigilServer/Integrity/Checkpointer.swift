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

import Foundation

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

    /// Checkpoints past the store's head were signed for events it does not
    /// hold: a data directory restored from a backup while the checkpoint
    /// directory kept the lost future's checkpoints, or events removed from
    /// the end. Verify reports them; the server says so when it starts,
    /// since it cannot sign those seqs again.
    static func warnOfCheckpointsPastTheHead(directory: String, store: any EventStore, logger: Logger) async {
        guard let (head, _) = try? await store.chainHead(), let stored = try? Checkpoints.list(directory, namedAbove: head) else { return }
        let past = stored.compactMap { try? $0.checkpoint.get().seq }.filter { $0 > head }
        guard let first = past.min(), let last = past.max() else { return }
        logger.warning(
            "the checkpoint directory holds \(past.count) checkpoint(s) past this store's last event (seq \(head)), at seqs \(first)…\(last): they were signed for events this store does not hold. After a restore from a backup, set them aside with vigil restore --checkpoint-dir; otherwise run vigil verify",
            metadata: ["vigil.checkpoint-dir": "\(directory)"])
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
        } else if let existing = try? Checkpoints.read(configuration.directory + "/" + Checkpoints.fileName(seq: seq)),
            existing.head != Data(head.bytes)
        {
            // Not replaced: it may be the evidence of events this store lost or had changed.
            throw VigilError(
                .failedPrecondition,
                "\(configuration.directory) already holds a checkpoint of seq \(seq) with another head (\(ChainDigest(bytes: Array(existing.head))?.hex ?? "?")): "
                    + "it was signed for events this store does not hold. After a restore from a backup, vigil restore --checkpoint-dir sets such checkpoints aside; otherwise run vigil verify")
        }
        lastSeq.withLock { $0 = max($0 ?? 0, seq) }
        vitals?.checkpointWritten(seq: seq, createdAt: checkpoint.createdAtNanos)
    }
}
