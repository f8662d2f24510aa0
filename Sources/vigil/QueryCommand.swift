import ArgumentParser
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Print the events that match a filter, newest first.",
        discussion: """
            Every filter flag narrows the result; repeat a flag to allow several values.
              vigil query --last 24h --tenant acme
              vigil query --action 'auth.*' --outcome failure --format csv > failures.csv
              vigil query --resource-id doc-7 --oldest-first --limit 0 --format json
            Times are RFC 3339 (2026-11-20T10:00:00Z) or, for --last, a duration: 90s, 30m, 24h, 7d.
            When --limit cuts the result, the cursor to continue from is printed on stderr.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv
    }

    @OptionGroup var client: ClientOptions

    @Option(name: .long, help: ArgumentHelp("Only events that occurred within this long before now: 90s, 30m, 24h, 7d.", valueName: "duration"))
    var last: String?

    @Option(name: .long, help: ArgumentHelp("Only events that occurred at or after this time (RFC 3339).", valueName: "time"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("Only events that occurred before this time (RFC 3339).", valueName: "time"))
    var until: String?

    @Option(name: .long, help: "Only this tenant (repeatable).")
    var tenant: [String] = []

    @Option(name: .long, help: "Only this actor id (repeatable).")
    var actor: [String] = []

    @Option(name: .long, help: "Only this action, or a prefix such as 'auth.*' (repeatable).")
    var action: [String] = []

    @Option(name: .long, help: "Only this resource type (repeatable).")
    var resourceType: [String] = []

    @Option(name: .long, help: "Only this resource id (repeatable).")
    var resourceId: [String] = []

    @Option(name: .long, help: "Only this outcome: success, failure, denied or unspecified (repeatable).")
    var outcome: [String] = []

    @Flag(name: .long, help: "Oldest events first (default: newest first).")
    var oldestFirst = false

    @Option(name: .long, help: "Most events to print; 0 for all.")
    var limit: UInt64 = 100

    @Option(name: .long, help: "Continue after this cursor (printed by an earlier query with the same filter).")
    var cursor: String?

    @Option(name: .long, help: "Output: table (aligned columns), json (one event per line, the form `vigil ingest` reads) or csv.")
    var format: Format = .table

    func request() throws -> Vigil_V1_QueryRequest {
        var filter = Vigil_V1_Filter()
        if let last {
            guard let nanos = parseDuration(last) else {
                throw ValidationError("--last '\(last)' is not a duration such as 90s, 30m, 24h or 7d")
            }
            filter.since = .init(unixNanos: currentUnixNanos() - nanos)
        }
        if let since {
            guard last == nil else { throw ValidationError("give --last or --since, not both") }
            filter.since = try parseTime(since, flag: "--since")
        }
        if let until { filter.until = try parseTime(until, flag: "--until") }
        filter.tenants = tenant
        filter.actorIds = actor
        filter.actions = action
        filter.resourceTypes = resourceType
        filter.resourceIds = resourceId
        filter.outcomes = try outcome.map { text in
            switch text.lowercased() {
            case "success": .success
            case "failure": .failure
            case "denied": .denied
            case "unspecified": .unspecified
            default: throw ValidationError("--outcome '\(text)' is not success, failure, denied or unspecified")
            }
        }
        var request = Vigil_V1_QueryRequest()
        request.filter = filter
        request.order = oldestFirst ? .oldestFirst : .newestFirst
        request.limit = limit
        request.cursor = cursor ?? ""
        return request
    }

    func run() async throws {
        let request = try request()
        try await client.withClient { connection in
            var printer = EventPrinter(format: format)
            var pages = connection.queryPages(request, timeout: client.callTimeout).makeAsyncIterator()
            var lastCursor = ""
            var count: UInt64 = 0
            while let page = try await pages.next() {
                printer.print(page.events)
                lastCursor = page.cursor
                count += UInt64(page.events.count)
            }
            printer.finish()
            if pages.trailers["vigil.exhausted"] == "false", !lastCursor.isEmpty {
                printError("\(count) events shown; more match. Continue with: --cursor \(lastCursor)")
            } else if format == .table {
                printError("\(count) events")
            }
        }
    }
}

/// "90s", "30m", "24h", "7d" as nanoseconds.
func parseDuration(_ text: String) -> Int64? {
    guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else { return nil }
    let seconds: Int64
    switch unit {
    case "s": seconds = 1
    case "m": seconds = 60
    case "h": seconds = 3600
    case "d": seconds = 86400
    default: return nil
    }
    return value * seconds * 1_000_000_000
}

func parseTime(_ text: String, flag: String) throws -> Google_Protobuf_Timestamp {
    do {
        return try Google_Protobuf_Timestamp(jsonString: "\"\(text)\"")
    } catch {
        throw ValidationError("\(flag) '\(text)' is not an RFC 3339 time such as 2026-11-20T10:00:00Z")
    }
}
