import Synchronization
import VigilCore
import VigilProto

/// The interim store of the walking skeleton: every event in memory, ordered
/// by (occurred_at, seq), and — when given a journal — every batch appended to
/// it and fsynced before `append` returns, so acknowledged events survive a
/// restart. The columnar engine replaces it behind the same `EventStore`
/// protocol.
public final class MemoryEventStore: EventStore {
    private struct Key: Comparable {
        var time: UnixNanos
        var seq: UInt64
        static func < (a: Key, b: Key) -> Bool { (a.time, a.seq) < (b.time, b.seq) }
    }

    private struct State {
        /// Sorted by key.
        var keys: [Key] = []
        var events: [AuditEvent] = []
        var keyByID: [EventID: Key] = [:]
        var lastSeq: UInt64 = 0
        var ids = UUIDv7Generator()
        var idempotency = IdempotencyWindow()
        var journal: Journal?
    }

    /// Most events held; beyond it `append` answers RESOURCE_EXHAUSTED rather
    /// than growing without bound.
    public let capacity: Int
    private let state: Mutex<State>

    /// - Parameters:
    ///   - journalPath: a file to append batches to and replay on open; nil keeps
    ///     events in memory only.
    public init(journalPath: String? = nil, capacity: Int = 10_000_000) throws(VigilError) {
        self.capacity = capacity
        var initial = State()
        if let journalPath {
            let journal = try Journal(path: journalPath)
            for batch in try journal.replay() {
                Self.insert(batch.events, into: &initial)
                if !batch.idempotencyKey.isEmpty, let first = batch.events.first, let last = batch.events.last {
                    let result = AppendResult(
                        firstSeq: first.seq, lastSeq: last.seq, count: batch.events.count,
                        receivedAt: first.receivedAt.unixNanos, replayed: true)
                    initial.idempotency.remember(result, for: batch.idempotencyKey, now: result.receivedAt)
                }
            }
            initial.journal = journal
        }
        state = Mutex(initial)
    }

    public func append(_ events: [AuditEvent], idempotencyKey: String?) async throws(VigilError) -> AppendResult {
        try state.withLock { state throws(VigilError) -> AppendResult in
            let now = currentUnixNanos()
            if let key = idempotencyKey, !key.isEmpty, var earlier = state.idempotency.answer(for: key, now: now) {
                earlier.replayed = true
                return earlier
            }
            guard state.events.count + events.count <= capacity else {
                throw VigilError(.resourceExhausted, "the store holds its limit of \(capacity) events")
            }
            var stamped = events
            let firstSeq = state.lastSeq + 1
            for index in stamped.indices {
                stamped[index].seq = firstSeq + UInt64(index)
                if stamped[index].id.isEmpty {
                    stamped[index].id = state.ids.next(unixNanos: now).description
                }
                stamped[index].receivedAt = .init(unixNanos: now)
            }
            if let journal = state.journal {
                var record = Vigil_V1_IngestRequest()
                record.events = stamped
                record.idempotencyKey = idempotencyKey ?? ""
                try journal.append(record)
            }
            Self.insert(stamped, into: &state)
            let result = AppendResult(
                firstSeq: firstSeq, lastSeq: state.lastSeq, count: stamped.count, receivedAt: now, replayed: false)
            if let key = idempotencyKey, !key.isEmpty {
                state.idempotency.remember(result, for: key, now: now)
            }
            return result
        }
    }

    private static func insert(_ events: [AuditEvent], into state: inout State) {
        for event in events {
            let key = Key(time: event.occurredAt.unixNanos, seq: event.seq)
            // Mostly in time order: appending is the common case.
            let position: Int
            if let last = state.keys.last, key < last {
                position = lowerBound(state.keys, key)
            } else {
                position = state.keys.count
            }
            state.keys.insert(key, at: position)
            state.events.insert(event, at: position)
            if let id = EventID(event.id) { state.keyByID[id] = key }
            state.lastSeq = max(state.lastSeq, event.seq)
        }
    }

    private static func lowerBound(_ keys: [Key], _ key: Key) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    public func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage {
        state.withLock { state in
            var matches: [AuditEvent] = []
            var examined = 0
            let newestFirst = order != .oldestFirst
            // Positions strictly after the cursor, in the scan's order.
            var index: Int
            if newestFirst {
                index = cursor.map { Self.lowerBound(state.keys, Key(time: $0.occurredAt, seq: $0.seq)) - 1 } ?? state.keys.count - 1
                // Skip what lies at or after `until` without examining it.
                index = min(index, Self.lowerBound(state.keys, Key(time: filter.until, seq: 0)) - 1)
            } else {
                index = cursor.map { Self.lowerBound(state.keys, Key(time: $0.occurredAt, seq: $0.seq &+ 1)) } ?? 0
                index = max(index, Self.lowerBound(state.keys, Key(time: filter.since, seq: 0)))
            }
            while index >= 0 && index < state.keys.count {
                let key = state.keys[index]
                if newestFirst ? key.time < filter.since : key.time >= filter.until { break }
                examined += 1
                if filter.matches(state.events[index]) {
                    if matches.count == limit {
                        return ScanPage(events: matches, exhausted: false, rowsExamined: examined)
                    }
                    matches.append(state.events[index])
                }
                index += newestFirst ? -1 : 1
            }
            return ScanPage(events: matches, exhausted: true, rowsExamined: examined)
        }
    }

    public func get(id: EventID) async throws(VigilError) -> AuditEvent? {
        state.withLock { state in
            guard let key = state.keyByID[id] else { return nil }
            let position = Self.lowerBound(state.keys, key)
            return position < state.keys.count && state.keys[position] == key ? state.events[position] : nil
        }
    }

    public func close() async throws(VigilError) {
        state.withLock { $0.journal?.close() }
    }
}
