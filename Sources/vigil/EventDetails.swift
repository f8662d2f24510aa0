import VigilCore
import VigilProto

/// One event, every field on its own line, for a person to read
/// (`vigil query --show ID`).
enum EventDetails {
    static let labelWidth = 14

    static func render(_ event: AuditEvent) -> String {
        var lines: [String] = []
        func add(_ label: String, _ values: [String]) {
            let shown = values.isEmpty ? ["-"] : values
            for (index, value) in shown.enumerated() {
                lines.append((index == 0 ? label : "").padding(toLength: labelWidth) + value)
            }
        }
        func add(_ label: String, _ value: String) {
            // Multi-line text keeps its lines; control characters are shown as escapes.
            let parts = value.isEmpty ? [] : value.split(separator: "\n", omittingEmptySubsequences: false).map { String($0).forTerminal }
            add(label, parts)
        }
        func or(_ text: String, _ fallback: String) -> String { text.isEmpty ? fallback : text }

        add("id", event.id)
        add("seq", String(event.seq))
        add("occurred at", event.hasOccurredAt ? EventEncoding.time(event.occurredAt) : "")
        add("received at", event.hasReceivedAt ? EventEncoding.time(event.receivedAt) : "")
        add("tenant", event.tenant)
        add("actor id", event.actor.id)
        add("actor type", EventPrinter.name(event.actor.type))
        add("actor name", event.actor.name)
        add("actor email", event.actor.email)
        add("action", event.action)
        add("category", EventPrinter.name(event.category))
        add("resource", resource(event.resource))
        add("targets", event.targets.map { resource($0).forTerminal })
        add("outcome", EventPrinter.name(event.outcome))
        add("reason", event.reason)
        add("source ip", event.sourceIp)
        add("user agent", event.userAgent)
        add("trace id", event.traceID)
        add("request id", event.requestID)
        add("description", event.description_p)
        add("changes", event.changes.map { change in
            "\(change.field): \(or(change.old, "(empty)")) → \(or(change.new, "(empty)"))".forTerminal
        })
        add("metadata", event.metadata.keys.sorted().map { key in "\(key)=\(event.metadata[key] ?? "")".forTerminal })
        return lines.joined(separator: "\n")
    }

    /// "type id (name)", leaving out what is empty.
    static func resource(_ resource: Vigil_V1_Resource) -> String {
        var text = [resource.type, resource.id].filter { !$0.isEmpty }.joined(separator: " ")
        if !resource.name.isEmpty { text += (text.isEmpty ? "" : " ") + "(\(resource.name))" }
        return text
    }
}
