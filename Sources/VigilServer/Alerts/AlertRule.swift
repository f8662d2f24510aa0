import Foundation
import SwiftProtobuf
import VigilCore
import VigilProto

/// One alert rule: when `threshold` events that `filter` selects fall in
/// one `window` (for the same `groupBy` value), an alert event is stored in
/// the `_alerts` tenant. Windows are aligned to multiples of their length
/// since the Unix epoch, by occurred_at, so "the same window" means the same
/// thing after a restart: each (rule, group, window) fires at most once.
public struct AlertRule: Sendable {
    public enum GroupKey: String, Sendable, CaseIterable {
        case actor, tenant, resource, action, sourceIp
    }

    public var name: String
    public var filter: EventFilter
    public var threshold: Int
    /// Window length in nanoseconds; nil with a threshold of 1 (every event alerts).
    public var window: Int64?
    public var groupBy: GroupKey?

    /// The tenant alerts are stored in.
    public static let alertTenant = "_alerts"
    /// Longest window: a restart counts the windows that ended up to one
    /// window length ago again from the stored events, and the alert's
    /// idempotency key, which the store remembers for 24 hours, keeps a
    /// window a new rule fires from being stored twice.
    public static let maxWindowNanos: Int64 = 86_400 * 1_000_000_000

    public init(name: String, filter: EventFilter, threshold: Int, window: Int64?, groupBy: GroupKey?) {
        self.name = name
        self.filter = filter
        self.threshold = threshold
        self.window = window
        self.groupBy = groupBy
    }

    /// The group an event counts in (`key`) and the value its alert names
    /// (`value`); nil for an event with nothing to group by (no source
    /// address), which such a rule does not count. Groups are per tenant:
    /// actor `42` of one tenant is not actor `42` of another. The parts of a
    /// key are joined by NUL, which no value holds, so no two groups share one.
    public func group(of event: AuditEvent) -> (key: String, value: String)? {
        switch groupBy {
        case .actor: ("\(event.tenant)\0\(event.actor.id)", event.actor.id)
        case .tenant: (event.tenant, event.tenant)
        case .resource:
            ("\(event.tenant)\0\(event.resource.type)\0\(event.resource.id)", "\(event.resource.type):\(event.resource.id)")
        case .action: ("\(event.tenant)\0\(event.action)", event.action)
        case .sourceIp: event.sourceIp.isEmpty ? nil : ("\(event.tenant)\0\(event.sourceIp)", event.sourceIp)
        case nil: ("", "")
        }
    }

    /// A fingerprint of what the rule counts and when it fires (its name
    /// included), stable across builds: `AlertProgress` records which rules
    /// have counted the events up to its seq.
    public var definitionFingerprint: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let text = "\(name)\0\(threshold)\0\(window ?? 0)\0\(groupBy?.rawValue ?? "")\0\(filter.fingerprint)"
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// Reads a rules file: JSON, `{"rules": [{"name": …, "filter": {…}, "threshold": 5, "window": "5m", "groupBy": "actor"}]}`,
    /// where `filter` is a `Filter` in its protobuf JSON form (as `vigil query --format json` prints
    /// events). Throws a message naming the rule and the field for anything wrong.
    public static func load(path: String) throws -> [AlertRule] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RuleError("\(path): cannot read the rules file")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuleError("\(path): not a JSON object; expected {\"rules\": [...]}")
        }
        for key in root.keys where key != "rules" { throw RuleError("\(path): unknown key '\(key)'; the file holds only \"rules\"") }
        guard let list = root["rules"] as? [Any] else { throw RuleError("\(path): \"rules\" must be a list") }
        var rules: [AlertRule] = []
        for (index, item) in list.enumerated() {
            let at = "\(path): rules[\(index)]"
            guard let object = item as? [String: Any] else { throw RuleError("\(at) is not an object") }
            for key in object.keys where !["name", "filter", "threshold", "window", "groupBy"].contains(key) {
                throw RuleError("\(at): unknown key '\(key)' (known: name, filter, threshold, window, groupBy)")
            }
            guard let name = object["name"] as? String, !name.isEmpty, name.utf8.count <= 64,
                name.utf8.allSatisfy({ $0 < 0x80 && ($0 == 0x2D || $0 == 0x2E || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)) })
            else { throw RuleError("\(at).name must be 1-64 letters, digits, '.', '_' or '-'") }
            let named = "\(path): rule '\(name)'"
            guard !rules.contains(where: { $0.name == name }) else { throw RuleError("\(named): the name is used twice") }
            var message = Vigil_V1_Filter()
            if let filter = object["filter"] {
                // Checked before it is serialized: on Linux, JSONSerialization
                // traps (fatalError, which no `try` catches) on a top-level
                // value that is not an object or a list, such as the null a
                // YAML template writes for an empty `filter:`.
                guard let filter = filter as? [String: Any] else {
                    throw RuleError("\(named).filter must be a JSON object (a Filter, such as {\"actions\": [\"auth.login\"]}), not \(jsonKind(filter))")
                }
                guard let filterData = try? JSONSerialization.data(withJSONObject: filter),
                    let decoded = try? Vigil_V1_Filter(jsonUTF8Data: filterData)
                else { throw RuleError("\(named).filter is not a Filter in JSON form (fields such as actions, outcomes, tenants)") }
                message = decoded
            }
            guard !message.hasSince, !message.hasUntil, !message.hasLast else {
                throw RuleError("\(named).filter must not set since, until or last: rules run on the live stream")
            }
            let filter: EventFilter
            do {
                filter = try EventFilter(message)
            } catch {
                throw RuleError("\(named): \(error.message)")
            }
            var threshold = 1
            if let value = object["threshold"] {
                // Not `as? Int`: that takes true as 1, and reading anything else as the default 1 alerts on every event.
                guard let number = integer(value), number >= 1 && number <= 1_000_000 else {
                    throw RuleError("\(named).threshold must be an integer from 1 to 1000000, not \(jsonKind(value))")
                }
                threshold = number
            }
            var window: Int64?
            if let text = object["window"] {
                guard let text = text as? String, let nanos = parseWindow(text), nanos >= 1_000_000_000, nanos <= maxWindowNanos else {
                    throw RuleError("\(named).window must be a duration from 1s to 24h such as 90s, 5m or 1h, not \(jsonKind(text))")
                }
                window = nanos
            } else if threshold > 1 {
                throw RuleError("\(named).window is required when threshold is over 1")
            }
            var groupBy: GroupKey?
            if let text = object["groupBy"] {
                guard let text = text as? String, let key = GroupKey(rawValue: text) else {
                    throw RuleError("\(named).groupBy must be one of \(GroupKey.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                groupBy = key
            }
            rules.append(AlertRule(name: name, filter: filter, threshold: threshold, window: window, groupBy: groupBy))
        }
        return rules
    }

    /// A JSON number with no fraction, as an `Int`; nil for anything else,
    /// booleans included (JSONSerialization gives them as NSNumbers, and
    /// `as? Int` takes true as 1).
    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        return value as? Int
    }

    /// What a JSON value is, for a message: `null`, `true`, `"5m"`, `50.5`, a list, an object.
    static func jsonKind(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case let text as String: return "\"\(text.prefix(64))\"" + (text.count > 64 ? "…" : "")
        case let number as NSNumber where String(cString: number.objCType) == "c": return number.boolValue ? "true" : "false"
        case let number as NSNumber: return "\(number)"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        default: return "\(type(of: value))"
        }
    }

    static func parseWindow(_ text: String) -> Int64? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number > 0 else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1_000_000_000
        case "m": scale = 60_000_000_000
        case "h": scale = 3_600_000_000_000
        default: return nil
        }
        let (nanos, overflow) = number.multipliedReportingOverflow(by: scale)
        return overflow ? nil : nanos
    }

    public struct RuleError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
