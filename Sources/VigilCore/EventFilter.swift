import SwiftProtobuf
import VigilProto

/// A validated, compiled `Filter`: the conditions a query or subscription puts
/// on events, in a form that is cheap to evaluate per event.
public struct EventFilter: Sendable {
    /// Occurred-at bounds: `since` inclusive, `until` exclusive.
    public var since: UnixNanos
    public var until: UnixNanos
    public var tenants: Set<String>
    public var actorIDs: Set<String>
    public var exactActions: Set<String>
    /// From `auth.*`: the prefix `auth.`.
    public var actionPrefixes: [String]
    public var resourceTypes: Set<String>
    public var resourceIDs: Set<String>
    public var outcomes: Set<Vigil_V1_Outcome>
    /// A stable hash of the filter as sent, so that a cursor is refused for a different query.
    public var fingerprint: UInt64

    /// Most entries in any one list of a filter: a filter is evaluated per
    /// event, so its size bounds the cost of every row scanned.
    public static let maxListEntries = 1_000

    /// Compiles `message`, or throws INVALID_ARGUMENT naming the bad field.
    public init(_ message: Vigil_V1_Filter) throws(VigilError) {
        func invalid(_ field: String, _ reason: String) -> VigilError {
            VigilError(.invalidArgument, "filter.\(field) \(reason)")
        }
        since = message.hasSince ? message.since.unixNanos : .min
        until = message.hasUntil ? message.until.unixNanos : .max
        if message.hasSince && message.hasUntil && since >= until {
            throw invalid("until", "must be later than filter.since")
        }
        for (name, count) in [
            ("tenants", message.tenants.count), ("actorIds", message.actorIds.count),
            ("actions", message.actions.count), ("resourceTypes", message.resourceTypes.count),
            ("resourceIds", message.resourceIds.count), ("outcomes", message.outcomes.count),
        ] where count > Self.maxListEntries {
            throw invalid(name, "has \(count) entries; the limit is \(Self.maxListEntries)")
        }
        for tenant in message.tenants {
            if let problem = EventValidator.tenantProblem(tenant, allowReserved: true) {
                throw invalid("tenants", "'\(tenant.prefix(64))' \(problem)")
            }
        }
        tenants = Set(message.tenants)
        actorIDs = Set(message.actorIds)
        var exact = Set<String>()
        var prefixes: [String] = []
        for action in message.actions {
            if action.hasSuffix(".*") {
                let stem = action.dropLast(2)
                guard EventValidator.isDotNotation(String(stem)) else {
                    throw invalid("actions", "'\(action.prefix(64))' is not an action or a prefix such as auth.*")
                }
                prefixes.append(stem + ".")
            } else if EventValidator.isDotNotation(action) {
                exact.insert(action)
            } else {
                throw invalid("actions", "'\(action.prefix(64))' is not an action or a prefix such as auth.*")
            }
        }
        exactActions = exact
        actionPrefixes = prefixes
        resourceTypes = Set(message.resourceTypes)
        resourceIDs = Set(message.resourceIds)
        for outcome in message.outcomes {
            if case .UNRECOGNIZED(let value) = outcome {
                throw invalid("outcomes", "has an unknown outcome \(value)")
            }
        }
        outcomes = Set(message.outcomes)
        fingerprint = Self.fingerprint(of: message)
    }

    /// Whether `event` satisfies every condition.
    public func matches(_ event: AuditEvent) -> Bool {
        let time = event.occurredAt.unixNanos
        guard time >= since, time < until else { return false }
        if !tenants.isEmpty && !tenants.contains(event.tenant) { return false }
        if !actorIDs.isEmpty && !actorIDs.contains(event.actor.id) { return false }
        if !matchesAction(event.action) { return false }
        if !resourceTypes.isEmpty && !resourceTypes.contains(event.resource.type) { return false }
        if !resourceIDs.isEmpty && !resourceIDs.contains(event.resource.id) { return false }
        if !outcomes.isEmpty && !outcomes.contains(event.outcome) { return false }
        return true
    }

    public func matchesAction(_ action: String) -> Bool {
        if exactActions.isEmpty && actionPrefixes.isEmpty { return true }
        if exactActions.contains(action) { return true }
        return actionPrefixes.contains { action.hasPrefix($0) }
    }

    /// FNV-1a over the filter's deterministic binary encoding.
    static func fingerprint(of message: Vigil_V1_Filter) -> UInt64 {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = (try? message.serializedBytes(options: options)) ?? []
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
