import ArgumentParser
import SwiftProtobuf
import VigilCore
import VigilProto

/// The filter flags `query`, `count` and `export` share: the time range and
/// every condition of `vigil.v1.Filter` (`ConditionOptions`), checked here
/// with the server's own rules (so a bad value is reported before anything is
/// sent, naming the flag).
struct FilterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Only events that occurred at or after this time: RFC 3339 (2026-11-20T10:00:00Z, 2026-11-20T11:00:00+01:00) or a date (2026-11-20, UTC midnight).",
        valueName: "time"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp(
        "Only events that occurred before this time (exclusive); same forms as --since.", valueName: "time"))
    var until: String?

    @Option(name: .long, help: ArgumentHelp(
        "Only events that occurred within this long before the server's clock: a number and a unit s, m, h, d, w or y (90s, 30m, 24h, 7d, 2w, 1y). Not with --since.",
        valueName: "duration"))
    var last: String?

    @OptionGroup var conditions: ConditionOptions

    /// The help every filtering command adds to its discussion.
    static let discussion = """
        Filters: every flag narrows the result; repeat a flag to allow any of its \
        values (--outcome failure --outcome denied), up to 1,000 a flag.
        """

    mutating func validate() throws {
        _ = try filter()
    }

    /// Whether no filter flag was given.
    var isEmpty: Bool {
        since == nil && until == nil && last == nil && conditions.isEmpty
    }

    /// The filter, or a `ValidationError` that names the flag and what it accepts.
    func filter() throws -> Vigil_V1_Filter {
        var filter = try conditions.conditions()
        if let last {
            guard since == nil else {
                throw ValidationError("give --last or --since, not both (--last counts back from now; --since starts at a time)")
            }
            filter.last = try Self.parseDuration(last, flag: "--last")
        }
        if let since {
            if Self.looksLikeDuration(since) {
                // `--since 7d` is what people type first: point at the flag that means it.
                throw ValidationError(
                    "--since '\(since)' is a duration, not a time: for the events of the last \(since) use --last \(since); --since takes RFC 3339 such as 2026-11-20T10:00:00Z or a date such as 2026-11-20")
            }
            filter.since = try Self.parseTime(since, flag: "--since")
        }
        if let until { filter.until = try Self.parseTime(until, flag: "--until") }
        return try Self.checked(filter)
    }

    /// `filter` after the server's own checks, with the server's messages
    /// naming flags instead of fields.
    static func checked(_ filter: Vigil_V1_Filter) throws -> Vigil_V1_Filter {
        do {
            _ = try EventFilter(filter)
        } catch {
            throw ValidationError(flagNames(in: error.message))
        }
        return filter
    }

    /// Filter fields as the server names them (JSON), and their flags.
    static let fieldFlags: [(field: String, flag: String)] = [
        ("since", "--since"), ("until", "--until"), ("last", "--last"), ("tenants", "--tenant"),
        ("actorIds", "--actor"), ("actorEmails", "--email"), ("actorNames", "--actor-name"),
        ("actorTypes", "--actor-type"), ("actions", "--action"), ("categories", "--category"),
        ("resourceTypes", "--resource-type"), ("resourceIds", "--resource"), ("resourceNames", "--resource-name"),
        ("excludeOutcomes", "--outcome"), ("outcomes", "--outcome"), ("sourceIps", "--ip"),
        ("traceIds", "--trace"), ("requestIds", "--request"), ("metadata", "--meta"), ("search", "--search"),
    ]

    /// A server message about `filter.<field>` as one about the field's flag.
    static func flagNames(in message: String) -> String {
        var text = message
        for (field, flag) in fieldFlags {
            text = text.replacingAll("filter.\(field)", with: flag)
        }
        return text
    }

    // MARK: Values

    /// RFC 3339, or a date meaning UTC midnight.
    static func parseTime(_ text: String, flag: String) throws -> Google_Protobuf_Timestamp {
        let utf8 = Array(text.utf8)
        let isDate = utf8.count == 10 && utf8[4] == UInt8(ascii: "-") && utf8[7] == UInt8(ascii: "-")
            && utf8.enumerated().allSatisfy { index, byte in index == 4 || index == 7 || (byte >= 0x30 && byte <= 0x39) }
        var normalized = isDate ? text + "T00:00:00Z" : text
        // RFC 3339 allows a lowercase t and z; the protobuf parser wants them uppercase.
        if !isDate, normalized.utf8.count > 10 {
            normalized = String(normalized.map { $0 == "t" ? "T" : $0 == "z" ? "Z" : $0 })
        }
        guard !text.contains("\""), let timestamp = try? Google_Protobuf_Timestamp(jsonString: "\"\(normalized)\"") else {
            throw ValidationError(
                "\(flag) '\(text)' is not a time: give RFC 3339 such as 2026-11-20T10:00:00Z (or with an offset, 2026-11-20T11:00:00+01:00), or a date such as 2026-11-20 (UTC midnight)")
        }
        return timestamp
    }

    /// "90s", "30m", "24h", "7d", "2w" (`DurationText`).
    static func parseDuration(_ text: String, flag: String) throws -> Google_Protobuf_Duration {
        Google_Protobuf_Duration(seconds: try DurationText.seconds(text, flag: flag), nanos: 0)
    }

    /// Whether `text` is written as a duration (even one too long to take).
    static func looksLikeDuration(_ text: String) -> Bool {
        DurationText.seconds(text) != .failure(.notADuration)
    }

    static func parseActorType(_ text: String) throws -> Vigil_V1_ActorType {
        switch normalizedName(text) {
        case "user": return .user
        case "service": return .service
        case "api-token", "apitoken": return .apiToken
        case "system": return .system
        case "anonymous": return .anonymous
        default:
            throw ValidationError("--actor-type '\(text)' is not an actor type: give user, service, api-token, system or anonymous")
        }
    }

    static func parseCategory(_ text: String) throws -> Vigil_V1_Category {
        switch normalizedName(text) {
        case "create": return .create
        case "read": return .read
        case "update": return .update
        case "delete": return .delete
        case "login": return .login
        case "logout": return .logout
        case "execute": return .execute
        case "approve": return .approve
        case "reject": return .reject
        case "other": return .other
        case "unspecified": return .unspecified
        default:
            throw ValidationError(
                "--category '\(text)' is not a category: give create, read, update, delete, login, logout, execute, approve, reject, other or unspecified")
        }
    }

    static func parseOutcome(_ text: String, shown: String) throws -> Vigil_V1_Outcome {
        switch normalizedName(text) {
        case "success": return .success
        case "failure": return .failure
        case "denied": return .denied
        case "unspecified": return .unspecified
        default:
            throw ValidationError(
                "--outcome '\(shown)' is not an outcome: give success, failure, denied or unspecified, or one of them after '!' to exclude it ('!success')")
        }
    }

    /// Lowercased, with '_' as '-': API_TOKEN, api_token and api-token are one name.
    static func normalizedName(_ text: String) -> String {
        String(text.lowercased().map { $0 == "_" ? "-" : $0 })
    }
}

/// Every filter flag but the time range: `tail` uses these alone (its
/// `--since` says where to start, not what to select), and `FilterOptions`
/// adds the time flags for `query`, `count` and `export`.
struct ConditionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only this tenant.", valueName: "tenant"))
    var tenant: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this actor id.", valueName: "id"))
    var actor: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this actor e-mail (case-insensitive).", valueName: "address"))
    var email: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this actor name (exact).", valueName: "name"))
    var actorName: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this actor type: user, service, api-token, system or anonymous.", valueName: "type"))
    var actorType: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this action (user.create), or every action under a prefix ('auth.*').", valueName: "action"))
    var action: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Only this category: create, read, update, delete, login, logout, execute, approve, reject, other or unspecified.",
        valueName: "category"))
    var category: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this resource type (document, user, …).", valueName: "type"))
    var resourceType: [String] = []

    @Option(name: [.customLong("resource"), .customLong("resource-id")], help: ArgumentHelp("Only this resource id.", valueName: "id"))
    var resource: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this resource name (exact).", valueName: "name"))
    var resourceName: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Only this outcome: success, failure, denied or unspecified; '!success' excludes one instead (events without that outcome).",
        valueName: "outcome"))
    var outcome: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this source address (203.0.113.9, 2001:db8::1) or CIDR block (10.0.0.0/8, 2001:db8::/32).", valueName: "ip"))
    var ip: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this trace id.", valueName: "id"))
    var trace: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this request id.", valueName: "id"))
    var request: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Only events whose metadata has key=value. The same key again allows another value; different keys must all match.",
        valueName: "key=value"))
    var meta: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Only events containing this text (case-insensitive) in the actor's name or e-mail, the resource's name or id, the action or the description.",
        valueName: "text"))
    var search: String?

    mutating func validate() throws {
        _ = try filter()
    }

    /// Whether no condition flag was given.
    var isEmpty: Bool {
        search == nil
            && [tenant, actor, email, actorName, actorType, action, category, resourceType, resource, resourceName,
                outcome, ip, trace, request, meta].allSatisfy(\.isEmpty)
    }

    /// The filter, checked by the server's rules, or a `ValidationError` naming the flag.
    func filter() throws -> Vigil_V1_Filter {
        try FilterOptions.checked(conditions())
    }

    /// The conditions, each value parsed but the whole not yet checked.
    func conditions() throws -> Vigil_V1_Filter {
        var filter = Vigil_V1_Filter()
        filter.tenants = tenant
        filter.actorIds = actor
        filter.actorEmails = email
        filter.actorNames = actorName
        filter.actorTypes = try actorType.map(FilterOptions.parseActorType)
        filter.actions = action
        filter.categories = try category.map(FilterOptions.parseCategory)
        filter.resourceTypes = resourceType
        filter.resourceIds = resource
        filter.resourceNames = resourceName
        for text in outcome {
            if text.hasPrefix("!") {
                filter.excludeOutcomes.append(try FilterOptions.parseOutcome(String(text.dropFirst()), shown: text))
            } else {
                filter.outcomes.append(try FilterOptions.parseOutcome(text, shown: text))
            }
        }
        filter.sourceIps = ip
        filter.traceIds = trace
        filter.requestIds = request
        filter.metadata = meta
        if let search {
            guard !search.isEmpty else {
                throw ValidationError("--search needs some text (1-\(EventFilter.maxSearchBytes) bytes)")
            }
            filter.search = search
        }
        return filter
    }
}
