import Synchronization
import VigilCore

/// The chain's head as far as it has been computed: the last flushed anchor,
/// or further, through batches still in memory, when a receipt or a
/// checkpoint needed it. Ingest never waits for it: leaves are computed at
/// flush, or on demand here (a receipt pays for the batches before its own
/// that nobody hashed yet).
final class ChainTracker: Sendable {
    struct Position: Sendable, Hashable {
        var seq: UInt64
        var head: ChainDigest
    }

    /// One advance at a time (they hash outside any `Mutex`).
    let lock = AsyncLock()
    private let position: Mutex<Position>

    init(seq: UInt64, head: ChainDigest) {
        position = Mutex(Position(seq: seq, head: head))
    }

    var current: Position { position.withLock { $0 } }

    /// Moves to `target` if it is further: a flush computed it.
    func flushed(through target: Position) {
        position.withLock { position in
            if target.seq > position.seq { position = target }
        }
    }

    /// Chains `chunks` (consecutive batches, durable, in seq order) from the
    /// current position; batches at or below it are skipped. `known` gives
    /// leaves already computed for a batch (by its first seq). Call under `lock`.
    func advance(through chunks: [MemoryChunk], known: [UInt64: [ChainDigest]] = [:]) throws(VigilError) -> Position {
        var current = self.current
        for chunk in chunks where chunk.lastSeq > current.seq {
            guard chunk.firstSeq == current.seq + 1 else {
                throw VigilError(.internal, "the hash chain is at seq \(current.seq) but the next batch in memory starts at \(chunk.firstSeq)")
            }
            if let mark = chunk.chainMark.withLock({ $0 }) {
                current = Position(seq: chunk.lastSeq, head: mark.headAfter)
                continue
            }
            let leaves = known[chunk.firstSeq] ?? chunk.leaves()
            let head = HashChain.extend(current.head, with: leaves)
            chunk.chainMark.withLock { $0 = ChainMark(truncated: leaves.map(\.truncated), headAfter: head) }
            current = Position(seq: chunk.lastSeq, head: head)
        }
        position.withLock { position in
            if current.seq > position.seq { position = current }
        }
        return current
    }
}
