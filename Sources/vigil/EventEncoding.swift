import SwiftProtobuf
import VigilCore
import VigilProto

/// Events as CSV rows (RFC 4180 quoting) and JSON lines, appended to a byte
/// buffer: what `export` writes, and `query --format csv`.
enum EventEncoding {
    /// Every field of an event, one column each; `targets`, `changes` and
    /// `metadata` hold JSON text (empty when the event has none).
    static let csvColumns = [
        "id", "seq", "occurred_at", "received_at", "tenant", "actor_id", "actor_type", "actor_name", "actor_email",
        "action", "category", "resource_type", "resource_id", "resource_name", "outcome", "reason", "source_ip",
        "user_agent", "trace_id", "request_id", "description", "targets", "changes", "metadata",
    ]

    static func appendCSVHeader(to buffer: inout [UInt8], lineEnding: [UInt8]) {
        for (index, column) in csvColumns.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(contentsOf: column.utf8)
        }
        buffer.append(contentsOf: lineEnding)
    }

    static func appendCSVRow(_ event: AuditEvent, to buffer: inout [UInt8], lineEnding: [UInt8]) {
        var scratch: [UInt8] = []
        func field(_ text: String) {
            appendCSVField(text, to: &buffer)
            buffer.append(UInt8(ascii: ","))
        }
        field(event.id)
        buffer.append(contentsOf: String(event.seq).utf8)
        buffer.append(UInt8(ascii: ","))
        appendTime(event.hasOccurredAt ? event.occurredAt : nil, to: &buffer)
        buffer.append(UInt8(ascii: ","))
        appendTime(event.hasReceivedAt ? event.receivedAt : nil, to: &buffer)
        buffer.append(UInt8(ascii: ","))
        field(event.tenant)
        field(event.actor.id)
        field(EventPrinter.name(event.actor.type))
        field(event.actor.name)
        field(event.actor.email)
        field(event.action)
        field(EventPrinter.name(event.category))
        field(event.resource.type)
        field(event.resource.id)
        field(event.resource.name)
        field(EventPrinter.name(event.outcome))
        field(event.reason)
        field(event.sourceIp)
        field(event.userAgent)
        field(event.traceID)
        field(event.requestID)
        field(event.description_p)
        scratch.removeAll(keepingCapacity: true)
        appendTargetsJSON(event.targets, to: &scratch)
        appendCSVField(scratch, to: &buffer)
        buffer.append(UInt8(ascii: ","))
        scratch.removeAll(keepingCapacity: true)
        appendChangesJSON(event.changes, to: &scratch)
        appendCSVField(scratch, to: &buffer)
        buffer.append(UInt8(ascii: ","))
        scratch.removeAll(keepingCapacity: true)
        appendMetadataJSON(event.metadata, to: &scratch)
        appendCSVField(scratch, to: &buffer)
        buffer.append(contentsOf: lineEnding)
    }

    /// The event in the protobuf JSON form (`vigil ingest` reads it back), and a newline.
    static func appendJSONLine(_ event: AuditEvent, to buffer: inout [UInt8]) throws {
        let bytes: [UInt8] = try event.jsonUTF8Bytes()
        buffer.append(contentsOf: bytes)
        buffer.append(UInt8(ascii: "\n"))
    }

    // MARK: CSV fields

    /// RFC 4180: a field holding a comma, a quote, CR or LF is quoted, quotes doubled.
    static func appendCSVField(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendCSVField($0, to: &buffer) }
    }

    static func appendCSVField(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        let needsQuotes = bytes.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else {
            buffer.append(contentsOf: bytes)
            return
        }
        buffer.append(UInt8(ascii: "\""))
        for byte in bytes {
            if byte == UInt8(ascii: "\"") { buffer.append(byte) }
            buffer.append(byte)
        }
        buffer.append(UInt8(ascii: "\""))
    }

    // MARK: Nested fields as JSON (protobuf JSON names; empty fields left out)

    static func appendTargetsJSON(_ targets: [Vigil_V1_Resource], to buffer: inout [UInt8]) {
        guard !targets.isEmpty else { return }
        buffer.append(UInt8(ascii: "["))
        for (index, target) in targets.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            appendObject([("type", target.type), ("id", target.id), ("name", target.name)], to: &buffer)
        }
        buffer.append(UInt8(ascii: "]"))
    }

    static func appendChangesJSON(_ changes: [Vigil_V1_Change], to buffer: inout [UInt8]) {
        guard !changes.isEmpty else { return }
        buffer.append(UInt8(ascii: "["))
        for (index, change) in changes.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            appendObject([("field", change.field), ("old", change.old), ("new", change.new)], to: &buffer)
        }
        buffer.append(UInt8(ascii: "]"))
    }

    /// Keys sorted, every entry kept (an empty value too).
    static func appendMetadataJSON(_ metadata: [String: String], to buffer: inout [UInt8]) {
        guard !metadata.isEmpty else { return }
        buffer.append(UInt8(ascii: "{"))
        for (index, key) in metadata.keys.sorted().enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            appendJSONString(key, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            appendJSONString(metadata[key] ?? "", to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    private static func appendObject(_ members: [(String, String)], to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        var first = true
        for (name, value) in members where !value.isEmpty {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            appendJSONString(name, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            appendJSONString(value, to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    /// A JSON string: quotes, backslashes and control characters escaped,
    /// everything else (non-ASCII too) as its UTF-8 bytes.
    static func appendJSONString(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): buffer.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: buffer.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: buffer.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: buffer.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                buffer.append(contentsOf: Array("\\u00".utf8))
                buffer.append(hex[Int(byte >> 4)])
                buffer.append(hex[Int(byte & 0xF)])
            default: buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    // MARK: Times

    /// UTC RFC 3339 with as many fractional digits as the time needs (none,
    /// 3, 6 or 9: the protobuf JSON form); nothing for an unset time.
    static func appendTime(_ timestamp: Google_Protobuf_Timestamp?, to buffer: inout [UInt8]) {
        guard let timestamp else { return }
        var days = timestamp.seconds / 86_400
        var secondOfDay = timestamp.seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

        func digits(_ value: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                buffer.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4)
        buffer.append(UInt8(ascii: "-"))
        digits(month, 2)
        buffer.append(UInt8(ascii: "-"))
        digits(day, 2)
        buffer.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3_600, 2)
        buffer.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2)
        buffer.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2)
        let nanos = Int64(timestamp.nanos)
        if nanos > 0 {
            buffer.append(UInt8(ascii: "."))
            if nanos % 1_000_000 == 0 {
                digits(nanos / 1_000_000, 3)
            } else if nanos % 1_000 == 0 {
                digits(nanos / 1_000, 6)
            } else {
                digits(nanos, 9)
            }
        }
        buffer.append(UInt8(ascii: "Z"))
    }

    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        var bytes: [UInt8] = []
        appendTime(timestamp, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
