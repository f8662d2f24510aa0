import SwiftProtobuf
import VigilProto

/// A memory chunk's events in protobuf binary form, encoded once for every
/// live subscriber that delivers them rather than once per subscriber
/// (lives in `MemoryChunk.deliveryCache`). Filled only while the chunk is in
/// the commit feed's ring, which counts room for it in its byte bound, and
/// emptied when the ring lets the chunk go: a subscriber still holding the
/// chunk then encodes for itself, and nothing pins the bytes.
struct DeliveryCache {
    /// Whether rows may be kept (the chunk is in the ring).
    var enabled = false
    /// Per row: the encoded event, or empty when not encoded yet (an event's
    /// encoding is never empty: it always holds an id and a seq).
    var rows: [[UInt8]] = []
}

extension MemoryChunk {
    /// The event at `row` in protobuf binary form (what `event(at:)` serializes to).
    public func encodedEvent(at row: Int) -> [UInt8] {
        let cached = deliveryCache.withLock { $0.rows.isEmpty ? [] : $0.rows[row] }
        if !cached.isEmpty { return cached }
        // Encoded outside the lock: two subscribers may both encode a row, once.
        // The canonical bytes are a protobuf encoding of exactly `event(at:)`,
        // written from the columns at a fraction of swift-protobuf's cost.
        var bytes: [UInt8] = []
        if !CanonicalEvent.write(row: row, of: self, into: &bytes) {
            bytes = (try? event(at: row).serializedBytes()) ?? []
        }
        deliveryCache.withLock { cache in
            guard cache.enabled else { return }
            if cache.rows.isEmpty { cache.rows = Array(repeating: [], count: count) }
            cache.rows[row] = bytes
        }
        return bytes
    }

    /// The ring took the chunk: subscribers may share encodings.
    func enableDeliveryCache() {
        deliveryCache.withLock { $0.enabled = true }
    }

    /// The ring let the chunk go: its encodings are freed.
    func dropDeliveryCache() {
        deliveryCache.withLock { $0 = DeliveryCache() }
    }
}
