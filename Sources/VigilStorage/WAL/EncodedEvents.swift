import VigilCore
import VigilProto

/// A batch's events in protobuf form, as a WAL record holds them: the
/// `events` entries (field 1, length-delimited) of a `WalBatch`.
///
/// `IngestRequest.events` is field 1 as well, so the entries can be copied
/// from the bytes the client sent instead of encoding the decoded events
/// again (about a tenth of the server's CPU under ingest). That is only
/// right while the events are exactly what was decoded: the caller passes
/// them only when validation rewrote nothing and no redaction applies.
/// Lives in: WAL records (see <doc:WALFormat>), between decoding and the
/// store's append.
public struct EncodedEvents: Sendable, Equatable {
    public let bytes: [UInt8]

    /// The field-1 entries of a serialized message, in order, byte for byte
    /// (every other field is left out); nil when the bytes are not a
    /// well-formed message (a group, a truncated field).
    public init?(eventsOf message: UnsafeRawBufferPointer) {
        var entries: [UInt8] = []
        entries.reserveCapacity(message.count)
        var offset = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while offset < message.count, shift < 64 {
                let byte = message[offset]
                offset += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            return nil
        }
        while offset < message.count {
            let start = offset
            guard let tag = varint() else { return nil }
            switch tag & 7 {
            case 0: guard varint() != nil else { return nil }
            case 1: offset += 8
            case 2:
                guard let length = varint(), length <= UInt64(message.count - offset) else { return nil }
                offset += Int(length)
            case 5: offset += 4
            default: return nil  // groups (3, 4) and invalid wire types
            }
            guard offset <= message.count else { return nil }
            if tag == 1 << 3 | 2 { entries.append(contentsOf: UnsafeRawBufferPointer(rebasing: message[start..<offset])) }
        }
        bytes = entries
    }

    /// Encodes `events` (what the store does when it is given no bytes).
    public init(encoding events: [AuditEvent]) {
        var batch = Vigil_V1_WalBatch()
        batch.events = events
        bytes = (try? batch.serializedBytes()) ?? []
    }
}
