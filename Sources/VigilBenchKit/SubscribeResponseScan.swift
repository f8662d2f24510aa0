import VigilCore

/// The few fields of a `SubscribeResponse` the subscribe workload checks —
/// the event's seq, tenant and action, or that it is a heartbeat — read
/// straight from the protobuf bytes. Decoding each whole event with
/// swift-protobuf cost vigil-bench's 100 subscribers half a core, taken from
/// the server they measure on the same two cores.
public struct SubscribeResponseScan: Sendable {
    /// Nil for a heartbeat (or a message without an event).
    public var seq: UInt64?
    public var tenant = ""
    public var action = ""

    /// Nil when the bytes are not a well-formed message.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        let parsed: Bool = {
            var response = ProtobufFieldReader(bytes)
            while !response.atEnd {
                guard let (field, wireType) = response.tag() else { return false }
                if field == 1 && wireType == 2 {
                    guard let event = response.lengthDelimited() else { return false }
                    var fields = ProtobufFieldReader(bytes, range: event)
                    seq = 0
                    while !fields.atEnd {
                        guard let (number, type) = fields.tag() else { return false }
                        switch (number, type) {
                        case (2, 0):
                            guard let value = fields.varint() else { return false }
                            seq = value
                        case (5, 2), (7, 2):
                            guard let range = fields.lengthDelimited() else { return false }
                            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                            if number == 5 { tenant = text } else { action = text }
                        default:
                            guard fields.skip(wireType: type) else { return false }
                        }
                    }
                } else {
                    guard response.skip(wireType: wireType) else { return false }
                }
            }
            return true
        }()
        guard parsed else { return nil }
    }
}
