import SwiftProtobuf
import VigilCore
import VigilProto

/// Prints events as an aligned table, JSON lines or CSV (RFC 4180).
struct EventPrinter {
    let format: QueryCommand.Format
    private var widths: [Int]?
    private var headerPrinted = false

    init(format: QueryCommand.Format) {
        self.format = format
    }

    static let tableColumns = ["TIME", "TENANT", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "SOURCE IP", "ID"]
    /// Widest a table column gets; longer values are cut with an ellipsis.
    static let maxColumnWidth = 40

    mutating func print(_ events: [AuditEvent]) {
        switch format {
        case .json:
            for event in events {
                Swift.print((try? event.jsonString()) ?? "{}")
            }
        case .csv:
            var bytes: [UInt8] = []
            if !headerPrinted {
                EventEncoding.appendCSVHeader(to: &bytes, lineEnding: [0x0A])
                headerPrinted = true
            }
            for event in events {
                EventEncoding.appendCSVRow(event, to: &bytes, lineEnding: [0x0A])
            }
            Swift.print(String(decoding: bytes, as: UTF8.self), terminator: "")
        case .table:
            let rows = events.map(tableRow)
            // Widths come from the first page, so output streams page by page.
            if widths == nil {
                widths = Self.tableColumns.indices.map { column in
                    min(Self.maxColumnWidth, max(Self.tableColumns[column].count, rows.map { $0[column].count }.max() ?? 0))
                }
            }
            if !headerPrinted {
                printRow(Self.tableColumns)
                headerPrinted = true
            }
            rows.forEach(printRow)
        }
    }

    mutating func finish() {
        if format == .table && !headerPrinted {
            Swift.print("(no events match)")
        }
    }

    private func printRow(_ row: [String]) {
        guard let widths else { return }
        var line = ""
        for (column, value) in row.enumerated() {
            var cell = value
            if cell.count > widths[column] { cell = String(cell.prefix(widths[column] - 1)) + "…" }
            line += column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2)
        }
        Swift.print(line)
    }

    private func tableRow(_ event: AuditEvent) -> [String] {
        let actor = event.actor.email.isEmpty ? event.actor.id : event.actor.email
        var resource = event.resource.type
        if !event.resource.id.isEmpty { resource += resource.isEmpty ? event.resource.id : ":" + event.resource.id }
        return [
            Self.time(event.occurredAt), event.tenant, actor, event.action, resource,
            Self.name(event.outcome), event.sourceIp, event.id,
        ].map(\.forTerminal)
    }

    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        EventEncoding.time(timestamp)
    }

    /// The protobuf JSON names of the enums, empty for the unspecified value.
    static func name(_ value: Vigil_V1_Outcome) -> String {
        switch value {
        case .success: "SUCCESS"
        case .failure: "FAILURE"
        case .denied: "DENIED"
        case .unspecified: ""
        case .UNRECOGNIZED(let raw): String(raw)
        }
    }

    static func name(_ value: Vigil_V1_ActorType) -> String {
        switch value {
        case .user: "USER"
        case .service: "SERVICE"
        case .apiToken: "API_TOKEN"
        case .system: "SYSTEM"
        case .anonymous: "ANONYMOUS"
        case .unspecified: ""
        case .UNRECOGNIZED(let raw): String(raw)
        }
    }

    static func name(_ value: Vigil_V1_Category) -> String {
        switch value {
        case .unspecified: ""
        case .UNRECOGNIZED(let raw): String(raw)
        default: String(describing: value).uppercased()
        }
    }

}

extension Unicode.Scalar {
    /// C0 and C1 controls and DEL.
    var isControlCharacter: Bool { value < 0x20 || (0x7F...0x9F).contains(value) }
}

extension String {
    /// The text with control characters (which could move a terminal's cursor
    /// or recolour it: an audit log holds what attackers typed) shown as
    /// escapes: \n, \t, \u{1B}.
    var forTerminal: String {
        guard unicodeScalars.contains(where: \.isControlCharacter) else { return self }
        var text = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.isControlCharacter: text += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text
    }

    var trimmingQuotes: String {
        var text = Substring(self)
        if text.hasPrefix("\"") { text = text.dropFirst() }
        if text.hasSuffix("\"") { text = text.dropLast() }
        return String(text)
    }

    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
