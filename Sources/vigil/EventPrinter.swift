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
    static let csvColumns = [
        "id", "seq", "occurred_at", "received_at", "tenant", "actor_id", "actor_type", "actor_name", "actor_email",
        "action", "category", "resource_type", "resource_id", "resource_name", "outcome", "reason", "source_ip",
        "user_agent", "trace_id", "request_id", "description", "metadata",
    ]
    /// Widest a table column gets; longer values are cut with an ellipsis.
    static let maxColumnWidth = 40

    mutating func print(_ events: [AuditEvent]) {
        switch format {
        case .json:
            for event in events {
                Swift.print((try? event.jsonString()) ?? "{}")
            }
        case .csv:
            if !headerPrinted {
                Swift.print(Self.csvColumns.joined(separator: ","))
                headerPrinted = true
            }
            for event in events {
                Swift.print(csvRow(event).map(Self.csvField).joined(separator: ","))
            }
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
        ]
    }

    private func csvRow(_ event: AuditEvent) -> [String] {
        let metadata = event.metadata.isEmpty
            ? "" : (try? Google_Protobuf_Struct(fields: event.metadata.mapValues { Google_Protobuf_Value(stringValue: $0) }).jsonString()) ?? ""
        return [
            event.id, String(event.seq), Self.time(event.occurredAt), Self.time(event.receivedAt), event.tenant,
            event.actor.id, Self.name(event.actor.type), event.actor.name, event.actor.email, event.action,
            Self.name(event.category), event.resource.type, event.resource.id, event.resource.name, Self.name(event.outcome),
            event.reason, event.sourceIp, event.userAgent, event.traceID, event.requestID, event.description_p, metadata,
        ]
    }

    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        ((try? timestamp.jsonString()) ?? "").trimmingQuotes
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

    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingAll("\"", with: "\"\"") + "\""
    }
}

extension String {
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
