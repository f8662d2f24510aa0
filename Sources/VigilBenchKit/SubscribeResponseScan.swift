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
            var response = WireScan(bytes: bytes, position: 0, end: bytes.count)
            while !response.atEnd {
                guard let (field, wireType) = response.tag() else { return false }
                if field == 1 && wireType == 2 {
                    guard let event = response.lengthDelimited() else { return false }
                    var fields = WireScan(bytes: bytes, position: event.lowerBound, end: event.upperBound)
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
                            guard fields.skip(type) else { return false }
                        }
                    }
                } else {
                    guard response.skip(wireType) else { return false }
                }
            }
            return true
        }()
        guard parsed else { return nil }
    }
}

/// Steps through protobuf fields.
private struct WireScan {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    var atEnd: Bool { position >= end }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end && shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    mutating func tag() -> (Int, Int)? {
        guard let tag = varint() else { return nil }
        return (Int(tag >> 3), Int(tag & 7))
    }

    mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - position) else { return nil }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Skips a field's value of `wireType`.
    mutating func skip(_ wireType: Int) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1: position += 8
        case 2: return lengthDelimited() != nil
        case 5: position += 4
        default: return false
        }
        return position <= end
    }
}
