import Synchronization
import VigilCore
import VigilProto

/// One decoded column of one block, as queries read it.
enum ColumnValues: Sendable {
    /// occurredAt, receivedAt, and seq (as its bit pattern).
    case integers([Int64])
    /// Enum raw values and presence bits.
    case enums([Int32])
    /// Text columns, correlation ids and event ids.
    case text(TextColumn)
    /// Per row, the stored targets, changes and metadata.
    case extras(StoredExtras)

    var estimatedBytes: Int {
        switch self {
        case .integers(let values): 32 + values.count * 8
        case .enums(let values): 32 + values.count * 4
        case .text(let column): column.estimatedBytes
        case .extras(let extras): extras.estimatedBytes
        }
    }
}

/// Decoded block columns, kept so that a repeated or paged query does not
/// read and inflate the same chunks again. Bounded by bytes; when full, the
/// least recently used quarter is dropped. Entries of deleted parts are never
/// hit again and age out the same way. Safe to use from several threads.
final class ColumnCache: Sendable {
    struct Key: Hashable, Sendable {
        var part: UInt64
        var block: Int32
        var column: PartColumn
    }

    private struct Entry {
        var values: ColumnValues
        var bytes: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    let capacityBytes: Int
    private let state = Mutex(State())

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    func get(_ key: Key) -> ColumnValues? {
        state.withLock { state in
            state.clock &+= 1
            guard var entry = state.entries[key] else { return nil }
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.values
        }
    }

    func put(_ key: Key, _ values: ColumnValues) {
        let bytes = values.estimatedBytes
        // A column larger than a quarter of the cache would evict too much to be worth keeping.
        guard bytes <= capacityBytes / 4 else { return }
        state.withLock { state in
            state.clock &+= 1
            if let old = state.entries.updateValue(Entry(values: values, bytes: bytes, lastUse: state.clock), forKey: key) {
                state.bytes -= old.bytes
            }
            state.bytes += bytes
            if state.bytes > capacityBytes { Self.evict(&state, to: capacityBytes * 3 / 4) }
        }
    }

    private static func evict(_ state: inout State, to target: Int) {
        let byAge = state.entries.sorted { $0.value.lastUse < $1.value.lastUse }
        for (key, entry) in byAge {
            if state.bytes <= target { break }
            state.entries.removeValue(forKey: key)
            state.bytes -= entry.bytes
        }
    }

}
