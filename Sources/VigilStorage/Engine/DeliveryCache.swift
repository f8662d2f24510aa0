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
        encodedEvents(rows: [Int32(row)])[0]
    }

    /// The same for each of `rows`. The cache is read once and written once
    /// for all of them, with one reservation in the ring: a hundred
    /// subscribers on two cores each took the chunk's lock twice and the
    /// ring's once per row they sent. The scratch the rows are written in
    /// is made only when one is not kept yet (for the first subscriber).
    /// Without `keep` (a query page), rows kept already are used and new ones
    /// are not kept: the ring's room is for the subscribers' batches.
    func encodedEvents(rows: [Int32], keep: Bool = true) -> [[UInt8]] {
        var encoded = deliveryCache.withLock { cache in
            cache.rows.isEmpty ? [[UInt8]](repeating: [], count: rows.count) : rows.map { cache.rows[Int($0)] }
        }
        // Encoded outside the lock: two subscribers may both encode a row, once.
        // The canonical bytes are a protobuf encoding of exactly `event(at:)`,
        // written from the columns at a fraction of swift-protobuf's cost.
        var fresh: [Int] = []
        var freshBytes = 0
        var scratch: LeafScratch?
        for index in rows.indices where encoded[index].isEmpty {
            let row = Int(rows[index])
            if scratch == nil {
                scratch = LeafScratch()
                fresh.reserveCapacity(rows.count - index)
            }
            guard CanonicalEvent.write(row: row, of: self, layout: &scratch!.layout, into: scratch!.bytes) else {
                // Not canonical bytes (extras with unknown fields): sent, never kept.
                encoded[index] = (try? event(at: row).serializedBytes()) ?? []
                continue
            }
            encoded[index] = scratch!.bytes.array
            fresh.append(index)
            freshBytes += encoded[index].count
        }
        guard keep, !fresh.isEmpty else { return encoded }
        deliveryCache.withLock { cache in
            guard let ring = cache.ring else { return }
            // Rows another subscriber kept meanwhile stay as they are.
            let adding = cache.rows.isEmpty ? fresh : fresh.filter { cache.rows[Int(rows[$0])].isEmpty }
            let bytes = adding.count == fresh.count ? freshBytes : adding.reduce(0) { $0 + encoded[$1].count }
            // All at once when they fit; else as many as fit, one by one.
            let all = ring.reserve(bytes)
            for index in adding {
                if !all && !ring.reserve(encoded[index].count) { continue }
                if cache.rows.isEmpty { cache.rows = Array(repeating: [], count: count) }
                cache.rows[Int(rows[index])] = encoded[index]
                cache.bytes += encoded[index].count
            }
        }
        return encoded
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
