import SwiftProtobuf
import Synchronization
import VigilProto

/// A memory chunk's events in protobuf binary form, encoded once for every
/// live subscriber that delivers them rather than once per subscriber
/// (lives in `MemoryChunk.deliveryCache`). Filled only while the chunk is in
/// the commit feed's ring, and only while the ring's bytes (columns and
/// kept encodings together) stay within its capacity; emptied when the ring
/// lets the chunk go. A row that finds no room is encoded and sent, not kept.
struct DeliveryCache {
    /// The ring holding the chunk, whose bytes the kept rows count in; nil outside it.
    var ring: RingBytes?
    /// Per row: the encoded event, or empty when not kept (an event's
    /// encoding is never empty: it always holds an id and a seq). Only
    /// canonical bytes (`CanonicalEvent`) are kept, so that a flush can hash
    /// a kept row's leaf from them instead of writing them again.
    var rows: [[UInt8]] = []
    /// Bytes of the kept rows.
    var bytes = 0
}

/// The bytes a commit feed's ring holds — its batches' columns and their kept
/// encodings — against its capacity. Shared by the feed and the chunks in it.
final class RingBytes: Sendable {
    let capacity: Int
    private let total = Mutex(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    var value: Int { total.withLock { $0 } }

    func add(_ bytes: Int) {
        total.withLock { $0 += bytes }
    }

    /// Adds `bytes` if the total stays within the capacity.
    func reserve(_ bytes: Int) -> Bool {
        total.withLock { total in
            guard total + bytes <= capacity else { return false }
            total += bytes
            return true
        }
    }
}

extension MemoryChunk {
    /// The event at `row` in protobuf binary form (what `event(at:)` serializes to).
    public func encodedEvent(at row: Int) -> [UInt8] {
        var scratch = LeafScratch()
        return encodedEvent(at: row, scratch: &scratch)
    }

    /// The same, writing into `scratch` (reused from row to row).
    func encodedEvent(at row: Int, scratch: inout LeafScratch) -> [UInt8] {
        let cached = deliveryCache.withLock { $0.rows.isEmpty ? [] : $0.rows[row] }
        if !cached.isEmpty { return cached }
        // Encoded outside the lock: two subscribers may both encode a row, once.
        // The canonical bytes are a protobuf encoding of exactly `event(at:)`,
        // written from the columns at a fraction of swift-protobuf's cost.
        guard CanonicalEvent.write(row: row, of: self, layout: &scratch.layout, into: scratch.bytes) else {
            // Not canonical bytes (extras with unknown fields): sent, never kept.
            return (try? event(at: row).serializedBytes()) ?? []
        }
        let bytes = scratch.bytes.array
        deliveryCache.withLock { cache in
            guard let ring = cache.ring, cache.rows.isEmpty || cache.rows[row].isEmpty, ring.reserve(bytes.count) else { return }
            if cache.rows.isEmpty { cache.rows = Array(repeating: [], count: count) }
            cache.rows[row] = bytes
            cache.bytes += bytes.count
        }
        return bytes
    }

    /// The ring took the chunk: subscribers may share encodings, counted in `ring`.
    func enableDeliveryCache(_ ring: RingBytes) {
        deliveryCache.withLock { $0.ring = ring }
    }

    /// The ring let the chunk go: its encodings are freed (and uncounted).
    func dropDeliveryCache() {
        deliveryCache.withLock { cache in
            cache.ring?.add(-cache.bytes)
            cache = DeliveryCache()
        }
    }
}
