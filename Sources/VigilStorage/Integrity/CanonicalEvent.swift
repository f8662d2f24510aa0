import SwiftProtobuf
import VigilCore
import VigilProto

/// The canonical bytes of an event: its protobuf encoding with every field in
/// field-number order, no unknown fields, default proto3 values left out,
/// present sub-messages written even when empty, and `metadata` entries
/// sorted by the UTF-8 bytes of their keys (each entry writing its key and its
/// value) — what protobuf's deterministic serialization gives in Go and C++ —
/// of the event exactly as the store returns it (seq, received_at and id set).
///
/// Written here field by field rather than by swift-protobuf, which takes
/// several times longer (a sizing pass per nested message, then the
/// encoding) and sorts map keys as Swift strings. `reference(_:)` is the
/// same through swift-protobuf; the tests hold the two equal.
public enum CanonicalEvent {
    public static func bytes(of event: AuditEvent) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        write(event, into: &out)
        return out
    }

    /// Replaces the contents of `out` (keeping its capacity) with the
    /// canonical bytes of `event`: a caller hashing many events reuses one buffer.
    public static func write(_ event: AuditEvent, into out: inout [UInt8]) {
        // Unknown fields cannot come out of the store's columns, except inside
        // targets and changes (kept as protobuf bytes): leave those to swift-protobuf.
        guard event.unknownFields.data.isEmpty,
            event.targets.allSatisfy({ $0.unknownFields.data.isEmpty }),
            event.changes.allSatisfy({ $0.unknownFields.data.isEmpty })
        else {
            out = reference(event)
            return
        }
        var writer = Writer()
        out.removeAll(keepingCapacity: true)
        swap(&writer.out, &out)
        defer { swap(&writer.out, &out) }
        writer.string(1, event.id)
        writer.uint64(2, event.seq)
        if event.hasOccurredAt { writer.timestamp(3, event.occurredAt) }
        if event.hasReceivedAt { writer.timestamp(4, event.receivedAt) }
        writer.string(5, event.tenant)
        if event.hasActor {
            let actor = event.actor
            let type = Int64(actor.type.rawValue)
            writer.messageHeader(6, size: Writer.stringSize(1, actor.id) + Writer.enumSize(2, type) + Writer.stringSize(3, actor.name) + Writer.stringSize(4, actor.email))
            writer.string(1, actor.id)
            writer.enumeration(2, type)
            writer.string(3, actor.name)
            writer.string(4, actor.email)
        }
        writer.string(7, event.action)
        writer.enumeration(8, Int64(event.category.rawValue))
        if event.hasResource { writer.resource(9, event.resource) }
        for target in event.targets { writer.resource(10, target) }
        writer.enumeration(11, Int64(event.outcome.rawValue))
        writer.string(12, event.reason)
        writer.string(13, event.sourceIp)
        writer.string(14, event.userAgent)
        writer.string(15, event.traceID)
        writer.string(16, event.requestID)
        for change in event.changes { writer.stringTriple(17, change.field, change.old, change.new) }
        let metadata = event.metadata
        if !metadata.isEmpty {
            for (key, value) in metadata.sorted(by: { utf8Less($0.key, $1.key) }) {
                writer.messageHeader(18, size: Writer.stringSize(1, key, always: true) + Writer.stringSize(2, value, always: true))
                writer.string(1, key, always: true)
                writer.string(2, value, always: true)
            }
        }
        writer.string(19, event.description_p)
    }

    /// The same bytes through swift-protobuf's deterministic serialization,
    /// with the metadata entries (field 18) written in UTF-8 byte order of
    /// their keys (swift-protobuf orders them as Swift strings, which
    /// differs for keys that are not in NFC).
    public static func reference(_ event: AuditEvent) -> [UInt8] {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        if event.metadata.keys.allSatisfy({ key in key.utf8.allSatisfy { $0 < 0x80 } }) {
            return (try? event.serializedBytes(options: options)) ?? []
        }
        // Fields 1...17, then the metadata by key bytes, then description (19) and unknown fields.
        var head = event
        head.metadata = [:]
        head.description_p = ""
        head.unknownFields = UnknownStorage()
        var writer = Writer()
        writer.out = (try? head.serializedBytes(options: options)) ?? []
        for (key, value) in event.metadata.sorted(by: { utf8Less($0.key, $1.key) }) {
            writer.messageHeader(18, size: Writer.stringSize(1, key, always: true) + Writer.stringSize(2, value, always: true))
            writer.string(1, key, always: true)
            writer.string(2, value, always: true)
        }
        writer.string(19, event.description_p)
        writer.out += Array(event.unknownFields.data)
        return writer.out
    }

    /// Appends protobuf fields.
    struct Writer {
        var out: [UInt8] = []

        @inline(__always)
        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                out.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            out.append(UInt8(value))
        }

        @inline(__always)
        static func varintSize(_ value: UInt64) -> Int {
            value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
        }

        /// Field number and wire type 2 (length-delimited), then the length.
        mutating func messageHeader(_ field: Int, size: Int) {
            varint(UInt64(field << 3 | 2))
            varint(UInt64(size))
        }

        /// A string field; an empty one is left out unless `always` (map entries).
        mutating func string(_ field: Int, _ text: String, always: Bool = false) {
            withUTF8Bytes(text) { string(field, bytes: $0, always: always) }
        }

        /// A string field from its UTF-8 bytes, as `string(_:_:always:)` writes it.
        mutating func string(_ field: Int, bytes: UnsafeRawBufferPointer, always: Bool = false) {
            guard always || !bytes.isEmpty else { return }
            varint(UInt64(field << 3 | 2))
            varint(UInt64(bytes.count))
            out.append(contentsOf: bytes)
        }

        static func stringSize(_ field: Int, _ text: String, always: Bool = false) -> Int {
            let count = text.utf8.count
            guard always || count > 0 else { return 0 }
            return varintSize(UInt64(field << 3)) + varintSize(UInt64(count)) + count
        }

        mutating func uint64(_ field: Int, _ value: UInt64) {
            guard value != 0 else { return }
            varint(UInt64(field << 3))
            varint(value)
        }

        /// An enum or int32/int64: negative values take ten bytes (sign-extended).
        mutating func enumeration(_ field: Int, _ value: Int64) {
            guard value != 0 else { return }
            varint(UInt64(field << 3))
            varint(UInt64(bitPattern: value))
        }

        static func enumSize(_ field: Int, _ value: Int64) -> Int {
            value == 0 ? 0 : varintSize(UInt64(field << 3)) + varintSize(UInt64(bitPattern: value))
        }

        mutating func timestamp(_ field: Int, _ time: Google_Protobuf_Timestamp) {
            let seconds = time.seconds
            let nanos = Int64(time.nanos)
            messageHeader(field, size: Self.enumSize(1, seconds) + Self.enumSize(2, nanos))
            enumeration(1, seconds)
            enumeration(2, nanos)
        }

        mutating func resource(_ field: Int, _ resource: Vigil_V1_Resource) {
            stringTriple(field, resource.type, resource.id, resource.name)
        }

        /// A message whose fields 1, 2 and 3 are strings (a resource, a
        /// change), then `unknown` fields as they are (swift-protobuf's order).
        mutating func stringTriple(_ field: Int, _ first: String, _ second: String, _ third: String, unknown: [UInt8] = []) {
            messageHeader(field, size: Self.stringSize(1, first) + Self.stringSize(2, second) + Self.stringSize(3, third) + unknown.count)
            string(1, first)
            string(2, second)
            string(3, third)
            out.append(contentsOf: unknown)
        }
    }
}
