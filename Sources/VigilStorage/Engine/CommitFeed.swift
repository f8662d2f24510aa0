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
        /// `waitForNew` calls, resumed with true by a publish (or close), with
        /// false by `interrupt`.
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// Interrupts that came while their reader was not waiting: its next wait returns at once.
        var pendingInterrupts: Set<UInt64> = []
        /// `waitUntilBehind` calls: the position each waits to fall out of the ring.
        var behindWaiters: [UInt64: (position: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextWaiter: UInt64 = 0

        var oldestInRing: UInt64 { ring.first?.firstSeq ?? head + 1 }

        /// Takes the `waitUntilBehind` calls whose position the ring no longer holds.
        mutating func takeBehindWaiters() -> [CheckedContinuation<Void, Never>] {
            guard !behindWaiters.isEmpty else { return [] }
            let oldest = oldestInRing
            var due: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in behindWaiters where waiter.position + 1 < oldest {
                due.append(waiter.continuation)
                behindWaiters[id] = nil
            }
            return due
        }
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
    public var oldestInRing: UInt64 { state.withLock { $0.oldestInRing } }

    /// Appends durable batches (consecutive, in seq order) and wakes readers.
    func publish(_ batches: [MemoryChunk]) {
        publishWakingLater(batches).resume()
    }

    /// The readers a publish wakes, to be woken by the caller once it has
    /// let go of its own lock: the store publishes under the lock that
    /// ingest takes for every batch, and waking thousands of subscribers
    /// there would hold every ingest back.
    struct Wakeups: Sendable {
        fileprivate var waiters: [CheckedContinuation<Bool, Never>] = []
        fileprivate var behind: [CheckedContinuation<Void, Never>] = []

        func resume() {
            for waiter in waiters { waiter.resume(returning: true) }
            for waiter in behind { waiter.resume() }
        }
    }

    /// `publish`, leaving the wake-ups to the caller (`Wakeups.resume()`).
    func publishWakingLater(_ batches: [MemoryChunk]) -> Wakeups {
        guard !batches.isEmpty else { return Wakeups() }
        let (waiters, behind) = state.withLock { state -> ([CheckedContinuation<Bool, Never>], [CheckedContinuation<Void, Never>]) in
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
            return (Array(state.waiters.values), state.takeBehindWaiters())
        }
        return Wakeups(waiters: waiters, behind: behind)
    }

    /// Registers a reader: from now on published batches are kept for it.
    /// Its name is for `waitForNew(after:reader:)` and `interrupt(_:)`.
    @discardableResult
    public func addReader() -> Reader {
        state.withLock { state in
            state.readers += 1
            state.nextWaiter += 1
            return Reader(id: state.nextWaiter)
        }
    }

    /// Unregisters a reader; the last one leaving empties the ring.
    public func removeReader(_ reader: Reader) {
        let behind = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.pendingInterrupts.remove(reader.id)
            state.readers -= 1
            guard state.readers == 0 else { return [] }
            for batch in state.ring {
                ringBytes.add(-batch.estimatedBytes)
                batch.dropDeliveryCache()
            }
            state.ring.removeAll()
            return state.takeBehindWaiters()
        }
        for waiter in behind { waiter.resume() }
    }

    /// The batches after `position` (the first `limit` of them), or
    /// `.behind` when the ring no longer holds the next seq.
    public func read(after position: UInt64, limit: Int = .max) -> Read {
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
            return .batches(Array(state.ring[low..<(low + min(limit, state.ring.count - low))]))
        }
    }

    /// Suspends until a batch after `position` is published, the feed closes,
    /// or the task is cancelled.
    public func waitForNew(after position: UInt64) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        _ = await waitForNew(after: position, id: id)
    }

    /// A reader of the feed (`addReader()`), named so that its waits can be interrupted.
    public struct Reader: Sendable {
        let id: UInt64
    }

    /// `waitForNew(after:)` that `interrupt(reader)` can end early: true when
    /// something was published after `position` (or the feed closed, or the
    /// task was cancelled), false when interrupted. An interrupt that comes
    /// while the reader is not waiting ends its next wait at once.
    public func waitForNew(after position: UInt64, reader: Reader) async -> Bool {
        await waitForNew(after: position, id: reader.id)
    }

    /// Ends `reader`'s wait with false, or its next one if it is not waiting.
    public func interrupt(_ reader: Reader) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard let waiter = state.waiters.removeValue(forKey: reader.id) else {
                state.pendingInterrupts.insert(reader.id)
                return nil
            }
            return waiter
        }
        waiter?.resume(returning: false)
    }

    private func waitForNew(after position: UInt64, id: UInt64) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let ready = state.withLock { state -> Bool? in
                    if state.pendingInterrupts.remove(id) != nil { return false }
                    if state.closed || state.head > position || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: true)
        }
    }

    /// Suspends until the ring no longer holds the batch after `position` (a
    /// reader there would have to read the store), the feed closes, or the
    /// task is cancelled. A reader that stops taking batches (no credit) is
    /// watched this way: its watcher wakes when it falls out, not at every batch.
    public func waitUntilBehind(_ position: UInt64) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.closed || position + 1 < state.oldestInRing || Task.isCancelled { return true }
                    state.behindWaiters[id] = (position, continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.behindWaiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }

    /// Whether `close()` was called (the store is shutting down).
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Wakes every reader for good.
    func close() {
        let (waiters, behind) = state.withLock { state -> ([CheckedContinuation<Bool, Never>], [CheckedContinuation<Void, Never>]) in
            state.closed = true
            defer {
                state.waiters.removeAll()
                state.behindWaiters.removeAll()
            }
            return (Array(state.waiters.values), state.behindWaiters.values.map(\.continuation))
        }
        for waiter in waiters { waiter.resume(returning: true) }
        for waiter in behind { waiter.resume() }
    }
}
