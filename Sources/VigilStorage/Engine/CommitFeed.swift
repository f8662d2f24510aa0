import Synchronization
import VigilCore

/// The live end of the log: every committed batch, once durable, in seq
/// order — published once, read by any number of subscribers, each at its
/// own position. While anyone reads, recent batches stay in a ring bounded
/// by bytes; a reader whose position has fallen out of the ring reads the
/// store instead (`ColumnarEventStore.scanBySeq`), so one slow reader never
/// holds memory. With no reader the ring stays empty. The ring's bytes count
/// its batches' columns and their events encoded once for all subscribers
/// (`DeliveryCache`), which are kept only while there is room.
public final class CommitFeed: Sendable {
    /// What a reader finds after its position.
    public enum Read: Sendable {
        /// Batches holding seqs after the position, in order (empty when
        /// nothing newer is committed yet).
        case batches([MemoryChunk])
        /// The position is older than the ring: read the store up to `head`.
        case behind(head: UInt64)
    }

    private struct State {
        var ring: [MemoryChunk] = []
        /// The last seq published (or stored before the feed began).
        var head: UInt64
        var closed = false
        var readers = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    /// Bytes of batches the ring keeps.
    public let capacityBytes: Int
    /// The head when the store opened: everything after it was stored by this process.
    public let initialHead: UInt64
    private let state: Mutex<State>
    /// The ring's columns and kept encodings, against `capacityBytes`.
    private let ringBytes: RingBytes

    init(head: UInt64, capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        ringBytes = RingBytes(capacity: capacityBytes)
        initialHead = head
        state = Mutex(State(head: head))
    }

    /// The last seq readers can see.
    public var head: UInt64 { state.withLock { $0.head } }

    /// The first seq the ring still holds (head + 1 when empty).
    public var oldestInRing: UInt64 { state.withLock { $0.ring.first?.firstSeq ?? $0.head + 1 } }

    /// Appends durable batches (consecutive, in seq order) and wakes readers.
    func publish(_ batches: [MemoryChunk]) {
        guard !batches.isEmpty else { return }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            for batch in batches where batch.firstSeq > state.head {
                if state.readers > 0 {
                    batch.enableDeliveryCache(ringBytes)
                    state.ring.append(batch)
                    ringBytes.add(batch.estimatedBytes)
                }
                state.head = batch.lastSeq
            }
            // Keep at least the newest batch, however large.
            while ringBytes.value > capacityBytes && state.ring.count > 1 {
                let leaving = state.ring.removeFirst()
                ringBytes.add(-leaving.estimatedBytes)
                leaving.dropDeliveryCache()
            }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Registers a reader: from now on published batches are kept for it.
    public func addReader() {
        state.withLock { $0.readers += 1 }
    }

    /// Unregisters a reader; the last one leaving empties the ring.
    public func removeReader() {
        state.withLock { state in
            state.readers -= 1
            if state.readers == 0 {
                for batch in state.ring {
                    ringBytes.add(-batch.estimatedBytes)
                    batch.dropDeliveryCache()
                }
                state.ring.removeAll()
            }
        }
    }

    /// The batches after `position`, or `.behind` when the ring no longer
    /// holds the next seq.
    public func read(after position: UInt64) -> Read {
        state.withLock { state in
            guard position < state.head else { return .batches([]) }
            guard let first = state.ring.first, first.firstSeq <= position + 1 else {
                return .behind(head: state.head)
            }
            // Batches are in seq order: find the first one that ends after the position.
            var low = 0
            var high = state.ring.count
            while low < high {
                let middle = (low + high) / 2
                if state.ring[middle].lastSeq <= position { low = middle + 1 } else { high = middle }
            }
            return .batches(Array(state.ring[low...]))
        }
    }

    /// Suspends until a batch after `position` is published, the feed closes,
    /// or the task is cancelled.
    public func waitForNew(after position: UInt64) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.closed || state.head > position || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Whether `close()` was called (the store is shutting down).
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Wakes every reader for good.
    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}
