import SwiftProtobuf
import VigilProto

/// A validated, compiled `Filter`: the conditions a query, count or
/// subscription puts on events, in a form that is cheap to evaluate — per
/// event here (`matches(_:)`), and per distinct column value by the storage
/// engine, which must agree with `matches(_:)` on every event. Values are
/// compared by their exact UTF-8 bytes (`ExactStringSet`), never by Swift's
/// canonical equivalence: two spellings of "Café" are two values.
public struct EventFilter: Sendable {
    /// Occurred-at bounds: `since` inclusive, `until` exclusive (`last`
    /// already resolved against the anchor time).
    public var since: UnixNanos
    public var until: UnixNanos
    public var tenants: ExactStringSet
    public var actorIDs: ExactStringSet
    /// Lowercased (ASCII) e-mail addresses.
    public var actorEmails: ExactStringSet
    public var actorNames: ExactStringSet
    /// Raw values of `ActorType`.
    public var actorTypes: Set<Int32>
    public var exactActions: ExactStringSet
    /// From `auth.*`: the prefix `auth.`.
    public var actionPrefixes: [String]
    /// From `*.delete`: the suffix `.delete`.
    public var actionSuffixes: [String]
    /// Raw values of `Category`.
    public var categories: Set<Int32>
    public var resourceTypes: ExactStringSet
    public var resourceIDs: ExactStringSet
    public var resourceNames: ExactStringSet
    /// Raw values of `Outcome` that are allowed (empty: any) and excluded.
    public var outcomes: Set<Int32>
    public var excludedOutcomes: Set<Int32>
    /// Source networks; single addresses among them also in `sourceAddresses`
    /// (canonical text), which block bloom filters can answer.
    public var sourceNetworks: [IPNetwork]
    public var sourceAddresses: ExactStringSet
    public var traceIDs: ExactStringSet
    public var requestIDs: ExactStringSet
    /// Metadata conditions: every key must be present with one of its values.
    public var metadata: [String: ExactStringSet]
    public var search: TextSearch?
    /// A stable hash of the filter as sent, so that a cursor is refused for a different query.
    public var fingerprint: UInt64

    /// Most entries in any one list of a filter: a filter is evaluated per
    /// distinct value and per event, so its size bounds the cost of every row scanned.
    public static let maxListEntries = 1_000
    /// Longest `search` text: longer needles are not what people type, and the
    /// scan's cost grows with the needle.
    public static let maxSearchBytes = 256
    /// `last` may span 1 second to 10 years.
    public static let lastRange: ClosedRange<Int64> = 1_000_000_000...(3_653 * 86_400 * 1_000_000_000)
    /// Longest correlation id a filter may name (the event limit).
    static let maxCorrelationIDBytes = 128

    /// A filter that matches everything.
    public init() {
        since = .min
        until = .max
        tenants = []
        actorIDs = []
        actorEmails = []
        actorNames = []
        actorTypes = []
        exactActions = []
        actionPrefixes = []
        actionSuffixes = []
        categories = []
        resourceTypes = []
        resourceIDs = []
        resourceNames = []
        outcomes = []
        excludedOutcomes = []
        sourceNetworks = []
        sourceAddresses = []
        traceIDs = []
        requestIDs = []
        metadata = [:]
        search = nil
        fingerprint = Self.emptyFingerprint
    }

    /// The fingerprint of the filter that matches everything, computed once:
    /// every filter starts from `init()`, one per call.
    static let emptyFingerprint = fingerprint(of: Vigil_V1_Filter())

    /// Compiles `message`, or throws INVALID_ARGUMENT naming the bad field
    /// (as JSON spells it: `filter.sourceIps`). `anchor` is the time a
    /// relative range (`last`) ends at: now for a new query, the cursor's
    /// anchor for a resumed one.
    public init(_ message: Vigil_V1_Filter, anchor: UnixNanos = currentUnixNanos()) throws(VigilError) {
        self.init()
        func invalid(_ field: String, _ reason: String) -> VigilError {
            VigilError(.invalidArgument, "filter.\(field) \(reason)")
        }
        func shown(_ text: String) -> String {
            text.utf8.count <= 64 ? "'\(text)'" : "'\(text.prefix(64))…'"
        }
        let listSizes: [(String, Int)] = [
            ("tenants", message.tenants.count), ("actorIds", message.actorIds.count),
            ("actions", message.actions.count), ("resourceTypes", message.resourceTypes.count),
            ("resourceIds", message.resourceIds.count), ("outcomes", message.outcomes.count),
            ("actorEmails", message.actorEmails.count), ("actorNames", message.actorNames.count),
            ("actorTypes", message.actorTypes.count), ("categories", message.categories.count),
            ("resourceNames", message.resourceNames.count), ("excludeOutcomes", message.excludeOutcomes.count),
            ("sourceIps", message.sourceIps.count), ("traceIds", message.traceIds.count),
            ("requestIds", message.requestIds.count), ("metadata", message.metadata.count),
        ]
        for (name, count) in listSizes where count > Self.maxListEntries {
            throw invalid(name, "has \(count) entries; the limit is \(Self.maxListEntries)")
        }

        // Time.
        if message.hasLast {
            guard !message.hasSince else {
                throw invalid("last", "cannot be combined with filter.since; give one of them")
            }
            let nanos = message.last.seconds.multipliedReportingOverflow(by: 1_000_000_000)
            let last = nanos.overflow ? Int64.max : nanos.partialValue.addingReportingOverflow(Int64(message.last.nanos)).partialValue
            guard Self.lastRange.contains(last) else {
                throw invalid("last", "must be between 1 second and 10 years")
            }
            since = anchor &- last
        } else if message.hasSince {
            since = message.since.unixNanos
        }
        until = message.hasUntil ? message.until.unixNanos : .max
        // `since` defaults to Int64.min, so an `until` at the very bottom of the range is refused too.
        if message.hasUntil && since >= until {
            throw invalid("until", message.hasLast ? "must be later than the start of filter.last" : "must be later than filter.since")
        }

        // Who.
        for tenant in message.tenants {
            if let problem = EventValidator.tenantProblem(tenant, allowReserved: true) {
                throw invalid("tenants", "\(shown(tenant)) \(problem)")
            }
        }
        tenants = ExactStringSet(message.tenants)
        actorIDs = ExactStringSet(message.actorIds)
        actorEmails = ExactStringSet(message.actorEmails.map(Self.asciiLowercased))
        actorNames = ExactStringSet(message.actorNames)
        for type in message.actorTypes {
            if case .UNRECOGNIZED(let value) = type { throw invalid("actorTypes", "has an unknown actor type \(value)") }
            actorTypes.insert(Int32(type.rawValue))
        }

        // What.
        for action in message.actions {
            if action.hasPrefix("*.") {
                let stem = action.dropFirst(2)
                guard EventValidator.isDotNotation(String(stem)) else {
                    throw invalid("actions", "\(shown(action)) is not an action or a pattern such as auth.* or *.delete")
                }
                actionSuffixes.append("." + stem)
            } else if action.hasSuffix(".*") {
                let stem = action.dropLast(2)
                guard EventValidator.isDotNotation(String(stem)) else {
                    throw invalid("actions", "\(shown(action)) is not an action or a pattern such as auth.* or *.delete")
                }
                actionPrefixes.append(stem + ".")
            } else if EventValidator.isDotNotation(action) {
                exactActions.insert(action)
            } else {
                throw invalid("actions", "\(shown(action)) is not an action or a pattern such as auth.* or *.delete")
            }
        }
        for category in message.categories {
            if case .UNRECOGNIZED(let value) = category { throw invalid("categories", "has an unknown category \(value)") }
            categories.insert(Int32(category.rawValue))
        }
        resourceTypes = ExactStringSet(message.resourceTypes)
        resourceIDs = ExactStringSet(message.resourceIds)
        resourceNames = ExactStringSet(message.resourceNames)
        for outcome in message.outcomes {
            if case .UNRECOGNIZED(let value) = outcome { throw invalid("outcomes", "has an unknown outcome \(value)") }
            outcomes.insert(Int32(outcome.rawValue))
        }
        for outcome in message.excludeOutcomes {
            if case .UNRECOGNIZED(let value) = outcome { throw invalid("excludeOutcomes", "has an unknown outcome \(value)") }
            excludedOutcomes.insert(Int32(outcome.rawValue))
        }

        // Where from, correlation.
        for text in message.sourceIps {
            guard let network = IPNetwork(text) else {
                throw invalid("sourceIps", "\(shown(text)) is not an IP address or a CIDR block such as 10.0.0.0/8 or 2001:db8::/32")
            }
            sourceNetworks.append(network)
            if network.isSingleAddress { sourceAddresses.insert(network.address.description) }
        }
        for id in message.traceIds where id.isEmpty || id.utf8.count > Self.maxCorrelationIDBytes {
            throw invalid("traceIds", "entries must be 1-\(Self.maxCorrelationIDBytes) bytes")
        }
        for id in message.requestIds where id.isEmpty || id.utf8.count > Self.maxCorrelationIDBytes {
            throw invalid("requestIds", "entries must be 1-\(Self.maxCorrelationIDBytes) bytes")
        }
        traceIDs = ExactStringSet(message.traceIds)
        requestIDs = ExactStringSet(message.requestIds)

        // Metadata and free text.
        for entry in message.metadata {
            guard let equals = entry.utf8.firstIndex(of: UInt8(ascii: "=")) else {
                throw invalid("metadata", "\(shown(entry)) is not key=value")
            }
            let key = String(entry[..<equals])
            let value = String(entry[entry.index(after: equals)...])
            guard !key.isEmpty, key.utf8.count <= 64, key.utf8.allSatisfy(EventValidator.isKeyByte) else {
                throw invalid("metadata", "\(shown(entry)) has a bad key: keys are 1-64 letters, digits, '.', '_' or '-'")
            }
            metadata[key, default: []].insert(value)
        }
        if !message.search.isEmpty {
            guard message.search.utf8.count <= Self.maxSearchBytes else {
                throw invalid("search", "is \(message.search.utf8.count) bytes; the limit is \(Self.maxSearchBytes)")
            }
            search = TextSearch(message.search)
        }
        fingerprint = Self.fingerprint(of: message)
    }

    /// Whether `event` satisfies every condition: the reference that every
    /// faster evaluation must agree with.
    public func matches(_ event: AuditEvent) -> Bool {
        let time = event.occurredAt.unixNanos
        guard time >= since, time < until else { return false }
        if !tenants.isEmpty && !tenants.contains(event.tenant) { return false }
        if !actorIDs.isEmpty && !actorIDs.contains(event.actor.id) { return false }
        if !allowsActorEmail(event.actor.email) { return false }
        if !actorNames.isEmpty && !actorNames.contains(event.actor.name) { return false }
        if !actorTypes.isEmpty && !actorTypes.contains(Int32(event.actor.type.rawValue)) { return false }
        if !matchesAction(event.action) { return false }
        if !allowsEnum(categories, Int32(event.category.rawValue)) { return false }
        if !resourceTypes.isEmpty && !resourceTypes.contains(event.resource.type) { return false }
        if !resourceIDs.isEmpty && !resourceIDs.contains(event.resource.id) { return false }
        if !resourceNames.isEmpty && !resourceNames.contains(event.resource.name) { return false }
        if !allowsOutcome(Int32(event.outcome.rawValue)) { return false }
        if !allowsSourceIP(event.sourceIp) { return false }
        if !traceIDs.isEmpty && !traceIDs.contains(event.traceID) { return false }
        if !requestIDs.isEmpty && !requestIDs.contains(event.requestID) { return false }
        if !allowsMetadata(event.metadata) { return false }
        if let search, !Self.searchFields(of: event).contains(where: search.matches) { return false }
        return true
    }

    /// The fields `search` looks in.
    public static func searchFields(of event: AuditEvent) -> [String] {
        [event.actor.name, event.actor.email, event.resource.name, event.resource.id, event.action, event.description_p]
    }

    public func matchesAction(_ action: String) -> Bool {
        if !hasActionCondition { return true }
        if exactActions.contains(action) { return true }
        return actionPrefixes.contains { action.hasPrefix($0) } || actionSuffixes.contains { action.hasSuffix($0) }
    }

    /// Whether the filter puts any condition on the action.
    public var hasActionCondition: Bool {
        !exactActions.isEmpty || !actionPrefixes.isEmpty || !actionSuffixes.isEmpty
    }

    public func allowsActorEmail(_ email: String) -> Bool {
        actorEmails.isEmpty || actorEmails.contains(Self.asciiLowercased(email))
    }

    public func allowsOutcome(_ raw: Int32) -> Bool {
        allowsEnum(outcomes, raw) && !excludedOutcomes.contains(raw)
    }

    public func allowsEnum(_ allowed: Set<Int32>, _ raw: Int32) -> Bool {
        allowed.isEmpty || allowed.contains(raw)
    }

    /// Whether a source IP (canonical text, or empty) lies in one of the networks.
    public func allowsSourceIP(_ text: String) -> Bool {
        if sourceNetworks.isEmpty { return true }
        if sourceAddresses.contains(text) { return true }
        guard let address = IPAddress(text) else { return false }
        return sourceNetworks.contains { $0.contains(address) }
    }

    public func allowsMetadata(_ entries: [String: String]) -> Bool {
        for (key, values) in metadata {
            guard let value = entries[key], values.contains(value) else { return false }
        }
        return true
    }

    /// Whether the filter puts no condition on anything but time and tenant.
    public var isTimeAndTenantOnly: Bool {
        actorIDs.isEmpty && actorEmails.isEmpty && actorNames.isEmpty && actorTypes.isEmpty
            && !hasActionCondition && categories.isEmpty && resourceTypes.isEmpty
            && resourceIDs.isEmpty && resourceNames.isEmpty && outcomes.isEmpty && excludedOutcomes.isEmpty
            && sourceNetworks.isEmpty && traceIDs.isEmpty && requestIDs.isEmpty && metadata.isEmpty && search == nil
    }

    static func asciiLowercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 &- 0x41 < 26 }) else { return text }
        return String(decoding: text.utf8.map { $0 &- 0x41 < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// Entries over every list of `message` (how complex a filter is).
    public static func entryCount(of message: Vigil_V1_Filter) -> Int {
        let counts: [Int] = [
            message.tenants.count, message.actorIds.count, message.actions.count, message.resourceTypes.count,
            message.resourceIds.count, message.outcomes.count, message.actorEmails.count, message.actorNames.count,
            message.actorTypes.count, message.categories.count, message.resourceNames.count, message.excludeOutcomes.count,
            message.sourceIps.count, message.traceIds.count, message.requestIds.count, message.metadata.count,
        ]
        return counts.reduce(0, +)
    }

    /// FNV-1a over the filter's deterministic binary encoding.
    public static func fingerprint(of message: Vigil_V1_Filter) -> UInt64 {
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
