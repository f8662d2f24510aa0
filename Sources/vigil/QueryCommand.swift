import ArgumentParser
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Print the events that match a filter, newest first; or one event in full (--show).",
        discussion: """
            \(FilterOptions.discussion)
            Examples:
              vigil query --last 24h --tenant acme
              vigil query --action 'auth.*' --outcome failure --format csv > failed.csv
              vigil query --outcome '!success' --ip 10.0.0.0/8 --since 2026-11-20
              vigil query --email bob@acme.test --actor-type user --category update
              vigil query --meta project=alpha --meta env=prod --search invoice
              vigil query --trace 4bf92f3577b34da6a3ce929d0e0e4736 --order oldest
              vigil query --show 0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f
            Times: RFC 3339 (2026-11-20T10:00:00Z, or with an offset) or a date \
            (2026-11-20: UTC midnight). --last counts back from the server's clock \
            (90s, 30m, 24h, 7d, 2w). \
            When --limit cuts the result, the cursor to continue from is printed on \
            stderr: run the same command with --cursor CURSOR for the next events.
            Every matching event: `vigil export`. Counts: `vigil count`.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv
    }

    enum Order: String, ExpressibleByArgument, CaseIterable {
        case newest, oldest

        var wire: Vigil_V1_Order { self == .oldest ? .oldestFirst : .newestFirst }
    }

    @OptionGroup var client: ClientOptions

    @OptionGroup(title: "Filters") var filter: FilterOptions

    @Option(name: .long, help: ArgumentHelp(
        "Output: table (aligned columns), json (one event per line, the form `vigil ingest` reads) or csv (every field, RFC 4180).",
        valueName: "format"))
    var format: Format = .table

    @Option(name: .long, help: "Most events to print; 0 for all.")
    var limit: UInt64 = 100

    @Option(name: .long, help: ArgumentHelp("newest (first) or oldest (first) (default: newest).", valueName: "order"))
    var order: Order?

    @Flag(name: .long, help: "The same as --order oldest.")
    var oldestFirst = false

    @Option(name: .long, help: ArgumentHelp(
        "Continue after this cursor (printed by an earlier query with the same filter and order).", valueName: "cursor"))
    var cursor: String?

    @Option(name: .long, help: ArgumentHelp(
        "Print this one event in full instead (every field: changes, metadata, targets, user agent, trace and request ids); with --format json, as JSON.",
        valueName: "id"))
    var show: String?

    @Flag(name: .long, help: "Print the server's scan statistics on stderr (rows examined, blocks scanned and skipped, bytes decompressed).")
    var stats = false

    func validate() throws {
        if let order, oldestFirst, order != .oldest {
            throw ValidationError("--oldest-first and --order \(order.rawValue) disagree; give one of them")
        }
        if show != nil {
            guard filter.isEmpty, cursor == nil else {
                throw ValidationError("--show prints one event by its id; it takes no filter flags and no --cursor")
            }
            guard format != .csv else { throw ValidationError("--show prints a table of fields or, with --format json, JSON") }
        }
    }

    func request() throws -> Vigil_V1_QueryRequest {
        var request = Vigil_V1_QueryRequest()
        request.filter = try filter.filter()
        request.order = (order ?? (oldestFirst ? .oldest : .newest)).wire
        request.limit = limit
        request.cursor = cursor ?? ""
        return request
    }

    func run() async throws {
        if let show {
            let event = try await client.withClient { connection in
                try await connection.get(id: show, timeout: client.callTimeout)
            }
            print(format == .json ? try event.jsonString() : EventDetails.render(event))
            return
        }
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
            if stats { printError(scanStatistics(pages.trailers)) }
            if pages.trailers["vigil.exhausted"] == "false", !lastCursor.isEmpty {
                printError("\(counted(count, "event")) shown; more match. Continue with: --cursor \(lastCursor)")
            } else if format == .table {
                printError(counted(count, "event"))
            }
        }
    }
}

/// The scan statistics of a call's trailers, as one line.
func scanStatistics(_ trailers: [String: String]) -> String {
    let names: [(String, String)] = [
        ("vigil.rows-examined", "rows examined"), ("vigil.blocks-scanned", "blocks scanned"),
        ("vigil.blocks-skipped", "blocks skipped"), ("vigil.bytes-decompressed", "bytes decompressed"),
    ]
    let parts = names.compactMap { key, name in trailers[key].map { "\(UInt64($0).map(grouped) ?? $0) \(name)" } }
    return parts.isEmpty ? "(the server sent no statistics)" : parts.joined(separator: ", ")
}

/// "1 event", "2 events": `noun` with an s unless there is one.
func counted(_ count: some BinaryInteger, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

/// 1234567 as "1,234,567".
func grouped(_ value: UInt64) -> String {
    let digits = Array(String(value))
    var text = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
        text.append(digit)
    }
    return text
}
