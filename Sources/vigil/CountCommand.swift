import ArgumentParser
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

struct CountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "count",
        abstract: "Count the events that match a filter; group them by a field; draw a time histogram.",
        discussion: """
            The server counts (the Aggregate call): no event crosses the network.
            \(FilterOptions.discussion)
            Examples:
              vigil count --last 24h
              vigil count --last 7d --tenant acme --by action
              vigil count --action 'auth.*' --outcome failure --by ip --top 20
              vigil count --since 2026-11-20 --until 2026-11-21 --histogram 1h
              vigil count --outcome '!success' --by actor --histogram 1d --format json
            --by action|actor|resource-type|outcome|tenant|category|ip groups the \
            events: the table shows each group's count and share of the total, \
            largest first, and the events of the groups past --top as "(other)".
            --histogram 15m|1h|1d|... counts per interval (s, m, h, d, w, y), from the \
            first to the last interval with a match, aligned to the Unix epoch; at \
            most 100,000 intervals, so bound long ranges with --since/--until/--last.
            --format json prints {"count", "groups": [{"key", "count"}], "otherCount", \
            "groupTotal", "histogram": [{"start", "count"}]}, numbers as numbers.
            """
    )

    enum Field: String, ExpressibleByArgument, CaseIterable {
        case action, actor, resourceType = "resource-type", outcome, tenant, category, ip

        var wire: Vigil_V1_GroupBy {
            switch self {
            case .action: .action
            case .actor: .actor
            case .resourceType: .resourceType
            case .outcome: .outcome
            case .tenant: .tenant
            case .category: .category
            case .ip: .sourceIp
            }
        }
    }

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @OptionGroup var client: ClientOptions

    @OptionGroup(title: "Filters") var filter: FilterOptions

    @Option(name: .long, help: ArgumentHelp(
        "Group by: action, actor, resource-type, outcome, tenant, category or ip.", valueName: "field"))
    var by: Field?

    @Option(name: .long, help: ArgumentHelp("Groups to show with --by, largest first: 1 to 1000.", valueName: "n"))
    var top: UInt32 = 10

    @Option(name: .long, help: ArgumentHelp(
        "Also count per time interval: a number and a unit s, m, h, d, w or y (15m, 1h, 1d), 1 second to 366 days.",
        valueName: "interval"))
    var histogram: String?

    @Option(name: .long, help: ArgumentHelp("Output: table or json.", valueName: "format"))
    var format: Format = .table

    @Flag(name: .long, help: "Print the server's scan statistics on stderr (rows examined, blocks scanned and skipped, bytes decompressed).")
    var stats = false

    /// The longest histogram interval the server takes.
    static let maxHistogramSeconds: Int64 = 366 * 86_400

    func validate() throws {
        guard (1...1_000).contains(top) else { throw ValidationError("--top must be 1 to 1000") }
        _ = try interval()
    }

    func interval() throws -> Google_Protobuf_Duration? {
        guard let histogram else { return nil }
        let duration = try FilterOptions.parseDuration(histogram, flag: "--histogram")
        guard duration.seconds <= Self.maxHistogramSeconds else {
            throw ValidationError("--histogram '\(histogram)' is longer than 366 days; give 1s to 366d (15m, 1h, 1d)")
        }
        return duration
    }

    func request() throws -> Vigil_V1_AggregateRequest {
        var request = Vigil_V1_AggregateRequest()
        request.filter = try filter.filter()
        if let by {
            request.groupBy = by.wire
            request.top = top
        }
        if let interval = try interval() { request.histogramInterval = interval }
        return request
    }

    func run() async throws {
        let request = try request()
        let (response, trailers) = try await client.withClient { connection in
            try await connection.aggregateWithStatistics(request, timeout: client.callTimeout)
        }
        switch format {
        case .json: print(Self.json(response))
        case .table: print(table(response), terminator: "")
        }
        if stats { printError(scanStatistics(trailers)) }
    }

    // MARK: Output

    func table(_ response: Vigil_V1_AggregateResponse) -> String {
        var text = "\(grouped(response.count)) \(response.count == 1 ? "event" : "events")\n"
        if let by {
            text += "\n"
            var rows: [(String, UInt64)] = response.groups.map { ($0.key.isEmpty ? "(none)" : $0.key.forTerminal, $0.count) }
            if response.otherCount > 0 { rows.append(("(other)", response.otherCount)) }
            let header = by.rawValue.uppercased()
            let keyWidth = min(60, max(header.count, rows.map(\.0.count).max() ?? 0))
            let countWidth = max(5, rows.map { grouped($0.1).count }.max() ?? 0)
            text += header.padding(toLength: keyWidth) + "  " + "COUNT".leftPadded(countWidth) + "       %\n"
            for (key, count) in rows {
                let shown = key.count > keyWidth ? String(key.prefix(keyWidth - 1)) + "…" : key
                text += shown.padding(toLength: keyWidth) + "  " + grouped(count).leftPadded(countWidth) + "  "
                    + Self.percent(count, of: response.count).leftPadded(6) + "\n"
            }
            let others = response.groupTotal - UInt64(response.groups.count)
            if others > 0 {
                text += "(\(grouped(response.groupTotal)) groups; \(grouped(others)) more in \"(other)\": raise --top to see them)\n"
            } else if rows.isEmpty {
                text += "(no groups)\n"
            }
        }
        if let histogram {
            text += "\n"
            text += "PER \(histogram)".padding(toLength: 20) + "  " + "COUNT\n"
            let maxCount = response.histogram.map(\.count).max() ?? 0
            let countWidth = max(5, response.histogram.map { grouped($0.count).count }.max() ?? 0)
            for bucket in response.histogram {
                text += EventEncoding.time(bucket.start).padding(toLength: 20) + "  " + grouped(bucket.count).leftPadded(countWidth)
                let bar = Self.bar(bucket.count, max: maxCount)
                text += bar.isEmpty ? "\n" : "  " + bar + "\n"
            }
            if response.histogram.isEmpty { text += "(no events)\n" }
        }
        return text
    }

    /// Widest histogram bar, in characters.
    static let barWidth = 50

    /// A bar proportional to `count` (at least one character when it is not 0).
    static func bar(_ count: UInt64, max maxCount: UInt64) -> String {
        guard count > 0, maxCount > 0 else { return "" }
        let length = Swift.max(1, Int((Double(count) / Double(maxCount) * Double(barWidth)).rounded()))
        return String(repeating: "█", count: length)
    }

    static func percent(_ count: UInt64, of total: UInt64) -> String {
        guard total > 0 else { return "-" }
        let tenths = (Double(count) * 1000 / Double(total)).rounded()
        return "\(Int(tenths) / 10).\(Int(tenths) % 10)%"
    }

    static func json(_ response: Vigil_V1_AggregateResponse) -> String {
        var bytes: [UInt8] = []
        func append(_ text: String) { bytes.append(contentsOf: text.utf8) }
        append("{\"count\":\(response.count),\"groups\":[")
        for (index, group) in response.groups.enumerated() {
            append(index == 0 ? "{\"key\":" : ",{\"key\":")
            EventEncoding.appendJSONString(group.key, to: &bytes)
            append(",\"count\":\(group.count)}")
        }
        append("],\"otherCount\":\(response.otherCount),\"groupTotal\":\(response.groupTotal),\"histogram\":[")
        for (index, bucket) in response.histogram.enumerated() {
            append(index == 0 ? "{\"start\":\"" : ",{\"start\":\"")
            EventEncoding.appendTime(bucket.start, to: &bytes)
            append("\",\"count\":\(bucket.count)}")
        }
        append("]}")
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    func leftPadded(_ length: Int) -> String {
        count >= length ? self : String(repeating: " ", count: length - count) + self
    }
}
