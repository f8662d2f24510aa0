import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire

/// Decodes the messages that carry events (`QueryResponse`,
/// `SubscribeResponse`) field by field
/// into `AuditEvent`s, instead of through swift-protobuf's generic decoder:
/// for a page of 100 events, swift-protobuf's decoding was the largest cost
/// of a `Query` call end to end (`perf` of vigil-bench query Q1: about 60% of
/// the client's CPU, much of it in runtime lookups of generic metadata and
/// in the metadata map).
///
/// Only what this version of the protocol defines is decoded here; a message
/// holding anything else (a field a newer server added, a sub-message given
/// twice, bytes that are not UTF-8) returns nil, and the caller decodes it
/// with swift-protobuf, which keeps unknown fields and reports errors.
enum EventDecoding {
    /// The `QueryResponse` in `buffer`, or nil (see above).
    static func queryResponse(_ buffer: ByteBuffer) -> Vigil_V1_QueryResponse? {
        buffer.withUnsafeReadableBytes { bytes -> Vigil_V1_QueryResponse? in
            var reader = ProtobufFieldReader(bytes)
            var response = Vigil_V1_QueryResponse()
            var events: [AuditEvent] = []
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag(), wireType == 2, let payload = reader.lengthDelimited() else { return nil }
                switch field {
                case 1:
                    guard let event = event(bytes, payload) else { return nil }
                    events.append(event)
                case 2:
                    guard let cursor = string(bytes, payload) else { return nil }
                    response.cursor = cursor
                default:
                    return nil
                }
            }
            response.events = events
            return response
        }
    }

    /// The `SubscribeResponse` in `buffer` when it carries an event (what
    /// nearly all of them carry); nil for a heartbeat, or see above.
    static func subscribeResponse(_ buffer: ByteBuffer) -> Vigil_V1_SubscribeResponse? {
        buffer.withUnsafeReadableBytes { bytes -> Vigil_V1_SubscribeResponse? in
            var reader = ProtobufFieldReader(bytes)
            var response = Vigil_V1_SubscribeResponse()
            var hasEvent = false
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag(), wireType == 2, let payload = reader.lengthDelimited() else { return nil }
                switch field {
                case 1:
                    // A oneof's message given twice merges in protobuf.
                    guard !hasEvent, let event = event(bytes, payload) else { return nil }
                    response.event = event
                    hasEvent = true
                case 3:
                    guard let cursor = string(bytes, payload) else { return nil }
                    response.cursor = cursor
                default:
                    return nil
                }
            }
            return hasEvent ? response : nil
        }
    }

    /// How many more times `field` occurs after `reader`'s position (a
    /// count only: a malformed rest counts what came before it).
    private static func remainingEntries(of field: Int, after reader: ProtobufFieldReader) -> Int {
        var reader = reader
        var count = 0
        while !reader.atEnd {
            guard let (next, wireType) = reader.tag(), reader.skip(wireType: wireType) else { break }
            if next == field { count += 1 }
        }
        return count
    }

    /// The `AuditEvent` in `range` of `bytes`, or nil.
    static func event(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> AuditEvent? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var event = AuditEvent()
        var seen: UInt32 = 0
        var metadata: [String: String] = [:]
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            // Singular sub-messages given twice merge in protobuf: rare
            // enough to leave to swift-protobuf.
            if field == 3 || field == 4 || field == 6 || field == 9 {
                guard seen & (1 << field) == 0 else { return nil }
                seen |= 1 << field
            }
            switch (field, wireType) {
            case (2, 0):
                guard let value = reader.varint() else { return nil }
                event.seq = value
            case (8, 0):
                guard let value = enumValue(&reader) else { return nil }
                event.category = Vigil_V1_Category(rawValue: value) ?? .UNRECOGNIZED(value)
            case (11, 0):
                guard let value = enumValue(&reader) else { return nil }
                event.outcome = Vigil_V1_Outcome(rawValue: value) ?? .UNRECOGNIZED(value)
            case (_, 2):
                guard let payload = reader.lengthDelimited() else { return nil }
                switch field {
                case 3:
                    guard let time = timestamp(bytes, payload) else { return nil }
                    event.occurredAt = time
                case 4:
                    guard let time = timestamp(bytes, payload) else { return nil }
                    event.receivedAt = time
                case 6:
                    guard let actor = actor(bytes, payload) else { return nil }
                    event.actor = actor
                case 9:
                    guard let resource = resource(bytes, payload) else { return nil }
                    event.resource = resource
                case 10:
                    guard let target = resource(bytes, payload) else { return nil }
                    event.targets.append(target)
                case 17:
                    guard let change = change(bytes, payload) else { return nil }
                    event.changes.append(change)
                case 18:
                    guard let (key, value) = ProtobufFieldReader.stringMapEntry(bytes, payload) else { return nil }
                    // Sized once for all its entries: grown from one, a map of
                    // four was allocated and rehashed three times.
                    if metadata.isEmpty { metadata.reserveCapacity(1 + remainingEntries(of: field, after: reader)) }
                    metadata[key] = value
                default:
                    guard let text = string(bytes, payload) else { return nil }
                    switch field {
                    case 1: event.id = text
                    case 5: event.tenant = text
                    case 7: event.action = text
                    case 12: event.reason = text
                    case 13: event.sourceIp = text
                    case 14: event.userAgent = text
                    case 15: event.traceID = text
                    case 16: event.requestID = text
                    case 19: event.description_p = text
                    default: return nil
                    }
                }
            default:
                return nil
            }
        }
        if !metadata.isEmpty { event.metadata = metadata }
        return event
    }

    private static func actor(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Vigil_V1_Actor? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var actor = Vigil_V1_Actor()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            if field == 2 && wireType == 0 {
                guard let value = enumValue(&reader) else { return nil }
                actor.type = Vigil_V1_ActorType(rawValue: value) ?? .UNRECOGNIZED(value)
                continue
            }
            guard wireType == 2, let payload = reader.lengthDelimited(), let text = string(bytes, payload) else { return nil }
            switch field {
            case 1: actor.id = text
            case 3: actor.name = text
            case 4: actor.email = text
            default: return nil
            }
        }
        return actor
    }

    private static func resource(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Vigil_V1_Resource? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var resource = Vigil_V1_Resource()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag(), wireType == 2, let payload = reader.lengthDelimited(),
                let text = string(bytes, payload)
            else { return nil }
            switch field {
            case 1: resource.type = text
            case 2: resource.id = text
            case 3: resource.name = text
            default: return nil
            }
        }
        return resource
    }

    private static func change(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Vigil_V1_Change? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var change = Vigil_V1_Change()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag(), wireType == 2, let payload = reader.lengthDelimited(),
                let text = string(bytes, payload)
            else { return nil }
            switch field {
            case 1: change.field = text
            case 2: change.old = text
            case 3: change.new = text
            default: return nil
            }
        }
        return change
    }

    private static func timestamp(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Google_Protobuf_Timestamp? {
        var reader = ProtobufFieldReader(bytes, range: range)
        var time = Google_Protobuf_Timestamp()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag(), wireType == 0, let value = reader.varint() else { return nil }
            switch field {
            case 1: time.seconds = Int64(bitPattern: value)
            case 2: time.nanos = Int32(truncatingIfNeeded: value)
            default: return nil
            }
        }
        return time
    }

    /// An enum's value: an int32 on the wire (negative ones sign-extended to ten bytes).
    @inline(__always)
    private static func enumValue(_ reader: inout ProtobufFieldReader) -> Int? {
        reader.varint().map { Int(Int32(truncatingIfNeeded: $0)) }
    }

    /// The UTF-8 text in `range`; nil when it is not valid UTF-8.
    @inline(__always)
    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        validUTF8String(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }
}
