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
        var reader = ProtobufFieldReader(message)
        while !reader.atEnd {
            let start = reader.position
            guard let (field, wireType) = reader.tag(), reader.skip(wireType: wireType) else { return nil }
            if field == 1 && wireType == 2 { entries.append(contentsOf: UnsafeRawBufferPointer(rebasing: message[start..<reader.position])) }
        }
        bytes = entries
    }

    /// Field-1 entries already gathered (by `IngestWireDecoder`).
    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Encodes `events` (what the store does when it is given no bytes).
    public init(encoding events: [AuditEvent]) {
        var batch = Vigil_V1_WalBatch()
        batch.events = events
        bytes = (try? batch.serializedBytes()) ?? []
    }
}
