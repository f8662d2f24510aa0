import ArgumentParser
import Synchronization
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Follow the events that match a filter as they are stored, like tail -f.",
        discussion: """
            Prints every matching event once the server has stored it, one line each:
            time, tenant, actor, action, resource, outcome and source address, in \
            colour on a terminal (--no-color, or NO_COLOR set, turns colour off).
            --format json prints one event per line in the protobuf JSON form \
            (`vigil ingest` reads it back). \
            Starts from now. --since catches up first: the stored events that \
            occurred at or after a time (a duration back from now, 90s, 30m, 1h, 7d, \
            2w, or RFC 3339, or a date), then the live ones. --cursor resumes exactly \
            after an earlier tail stopped (give the same filter flags). \
            When the connection drops, or the server restarts or sheds a subscriber \
            that fell behind, tail reconnects by itself and resumes without repeating \
            or skipping an event; a note goes to stderr. Ctrl-C (or SIGTERM) stops \
            it and prints the cursor and the command that resumes from there.
            \(FilterOptions.discussion)
            Examples:
              vigil tail --tenant acme
              vigil tail --action 'auth.*' --outcome '!success'
              vigil tail --since 1h --tenant acme --format json | jq -r .action
              vigil tail --since 2026-11-20T10:00:00Z --resource-type document
              vigil tail --tenant acme --cursor 0153…
            --timeout bounds each connection attempt; a subscription itself has none.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @OptionGroup var client: ClientOptions

    @OptionGroup(title: "Filters") var filter: ConditionOptions

    @Option(name: .long, help: ArgumentHelp(
        "Catch up first: the stored events that occurred at or after this time, then the live ones. A duration back from now (90s, 30m, 1h, 7d, 2w), RFC 3339 (2026-11-20T10:00:00Z) or a date (2026-11-20, UTC midnight).",
        valueName: "time"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp(
        "Resume after this cursor (printed when an earlier tail with the same filter stopped).", valueName: "cursor"))
    var cursor: String?

    @Option(name: .long, help: ArgumentHelp("text (a line per event) or json (protobuf JSON, one event per line).", valueName: "format"))
    var format: Format = .text

    @Flag(inversion: .prefixedNo, help: "Colour the text output (default: when standard output is a terminal and NO_COLOR is not set).")
    var color: Bool?

    func validate() throws {
        if since != nil && cursor != nil {
            throw ValidationError("give --since or --cursor, not both: a cursor already says where to resume")
        }
        if let since { _ = try Self.parseSince(since, now: currentUnixNanos()) }
        if let cursor, cursor.isEmpty { throw ValidationError("--cursor needs the cursor an earlier tail printed") }
        if color == true && format == .json { throw ValidationError("--color is for --format text") }
    }

    /// `--since`: a duration back from `now`, or a time.
    static func parseSince(_ text: String, now: UnixNanos) throws -> Google_Protobuf_Timestamp {
        if FilterOptions.looksLikeDuration(text) {
            // At most 100 years back: no overflow.
            return Google_Protobuf_Timestamp(unixNanos: now - (try DurationText.nanoseconds(text, flag: "--since")))
        }
        do {
            return try FilterOptions.parseTime(text, flag: "--since")
        } catch {
            throw ValidationError(
                "--since '\(text)' is neither a duration back from now (\(DurationText.form)) nor a time (RFC 3339 such as 2026-11-20T10:00:00Z, or a date such as 2026-11-20)")
        }
    }

    func request() throws -> Vigil_V1_SubscribeRequest {
        var request = Vigil_V1_SubscribeRequest()
        request.filter = try filter.filter()
        if let cursor {
            request.cursor = cursor
        } else if let since {
            request.since = try Self.parseSince(since, now: currentUnixNanos())
        } else {
            request.fromNow = true
        }
        return request
    }

    func run() async throws {
        let request = try request()
        var configuration = try client.clientConfiguration()
        configuration.connectTimeout = client.callTimeout
        // Reconnect after a drop, but an unreachable server at the start is an error.
        var policy = ReconnectPolicy()
        policy.retryInitialConnection = false
        policy.maxDelay = .seconds(10)

        let position = TailPosition(cursor)
        let server = client.server
        let subscription = VigilClient.resilientSubscription(request, configuration: configuration, reconnect: policy) { event in
            switch event {
            case .interrupted(let error, let attempt, let retryIn, let cursor):
                if let cursor { position.set(cursor) }
                if attempt == 1 {
                    printError("vigil tail: \(Self.describe(error)); reconnecting in \(formatDelay(retryIn))")
                } else {
                    printError("vigil tail: could not resume yet (\(error.code)); retrying in \(formatDelay(retryIn)) (attempt \(attempt))")
                }
            case .resumed:
                printError("vigil tail: reconnected to \(server), resuming")
            }
        }
        let useColor = format == .text && (color ?? (isatty(STDOUT_FILENO) == 1 && (environment("NO_COLOR") ?? "").isEmpty))
        let printer = TailPrinter(format: format, color: useColor)

        let watcher = SignalWatcher(signals: [SIGINT, SIGTERM])
        defer { watcher.stop() }
        let (ending, signal) = await withTaskGroup(of: TailEvent.self) { group in
            group.addTask {
                do {
                    try await Self.follow(subscription, printer: printer, position: position)
                    return .ended(nil)
                } catch {
                    return .ended(error)
                }
            }
            group.addTask {
                for await signal in watcher.signals { return .signal(signal) }
                return .signal(nil)
            }
            var signal: Int32?
            var ending: (any Error)?
            while let event = await group.next() {
                switch event {
                case .signal(let number?):
                    signal = number
                    group.cancelAll()
                case .signal(nil):
                    break
                case .ended(let error):
                    if signal == nil { ending = error }
                    group.cancelAll()
                }
            }
            return (ending, signal)
        }

        if let signal {
            if let resume = position.cursor {
                printError("cursor: \(resume)")
                printError("resume with: \(Self.resumeCommand(cursor: resume))")
                if let note = ResumeCommand.tokenNote() { printError(note) }
            } else {
                printError("(no position received yet: nothing to resume from)")
            }
            throw ExitCode(128 + signal)
        }
        switch ending {
        case nil:
            if let resume = position.cursor { printError("the server ended the subscription; cursor: \(resume)") }
        case let error as VigilError:
            throw CLIError(error)
        case is OutputClosed:
            return  // stdout went away (`vigil tail | head`): done
        case let error?:
            throw error
        }
    }

    enum TailEvent: Sendable {
        case ended((any Error)?)
        case signal(Int32?)
    }

    /// Prints each event and remembers the cursor after it.
    static func follow(_ subscription: ResilientSubscription, printer: TailPrinter, position: TailPosition) async throws {
        var printer = printer
        for try await item in subscription {
            if let event = item.event { try printer.print(event) }
            position.set(item.cursor)
        }
    }

    static func describe(_ error: VigilError) -> String {
        switch error.code {
        case .resourceExhausted: "the server cut the subscription off (\(error.message))"
        default: "lost the subscription (\(error.code): \(error.message))"
        }
    }

    /// This command line again, resuming from `cursor`: without --since and
    /// --cursor (a cursor says where to resume), shell-quoted.
    static func resumeCommand(cursor: String, arguments: [String] = CommandLine.arguments) -> String {
        ResumeCommand.text(cursor: cursor, replacing: ["--cursor", "--since"], arguments: arguments)
    }
}

/// `1.5s`, `250ms`.
private func formatDelay(_ duration: Duration) -> String {
    let components = duration.components
    let milliseconds = Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    if milliseconds < 1000 { return "\(milliseconds)ms" }
    return String(Double(milliseconds / 100) / 10) + "s"
}

/// The last cursor tail saw (from a message, or from the error that cut the
/// subscription), for the resume hint on Ctrl-C.
final class TailPosition: Sendable {
    private let value: Mutex<String?>

    init(_ cursor: String?) {
        value = Mutex(cursor)
    }

    func set(_ cursor: String) {
        guard !cursor.isEmpty else { return }
        value.withLock { $0 = cursor }
    }

    var cursor: String? { value.withLock { $0 } }
}

/// Standard output went away (a closed pipe).
struct OutputClosed: Error {}

/// Prints events as they come: a line each, written straight to standard
/// output (no buffering: a pipe sees each event at once).
struct TailPrinter: Sendable {
    let format: TailCommand.Format
    let color: Bool
    /// Column widths so far: time, tenant, actor, action, resource, outcome.
    /// They start wide enough for typical values, so lines align from the
    /// first; a longer value widens its column (up to a cap) rather than being cut.
    private var widths = [24, 8, 16, 20, 24, 7]
    static let maxWidths = [24, 16, 32, 32, 40, 7]

    static let dim = "\u{1B}[2m"
    static let red = "\u{1B}[31m"
    static let green = "\u{1B}[32m"
    static let reset = "\u{1B}[0m"

    init(format: TailCommand.Format, color: Bool) {
        self.format = format
        self.color = color
    }

    mutating func print(_ event: AuditEvent) throws {
        switch format {
        case .json:
            var bytes: [UInt8] = []
            try EventEncoding.appendJSONLine(event, to: &bytes)
            try Self.write(bytes)
        case .text:
            try Self.write(Array(line(event).utf8))
        }
    }

    /// Time, tenant, actor, action, resource, outcome, source address; "-" for an empty field.
    mutating func line(_ event: AuditEvent) -> String {
        let actor = event.actor.email.isEmpty ? event.actor.id : event.actor.email
        var resource = event.resource.type
        if !event.resource.id.isEmpty { resource += resource.isEmpty ? event.resource.id : ":" + event.resource.id }
        let outcome = EventPrinter.name(event.outcome)
        let cells = [Self.time(event.occurredAt), event.tenant, actor, event.action, resource, outcome, event.sourceIp]
            .map { $0.isEmpty ? "-" : $0.forTerminal }
        var line = ""
        for (column, cell) in cells.enumerated() {
            var padded = cell
            if column < widths.count {
                widths[column] = min(Self.maxWidths[column], max(widths[column], cell.count))
                padded = cell.padding(toLength: widths[column]) + "  "
            }
            if color && column == 0 {
                line += Self.dim + padded + Self.reset
            } else if color && column == 5 && (outcome == "SUCCESS" || outcome == "FAILURE" || outcome == "DENIED") {
                let tint = outcome == "SUCCESS" ? Self.green : Self.red
                // Colour the word, not the padding after it.
                line += tint + cell + Self.reset + String(padded.dropFirst(cell.count))
            } else {
                line += padded
            }
        }
        return line + "\n"
    }

    /// UTC RFC 3339 with milliseconds, always 24 characters: 2026-11-20T10:15:00.250Z.
    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        var whole = timestamp
        whole.nanos = 0
        let millis = Int(max(0, timestamp.nanos)) / 1_000_000
        let fraction = String(millis + 1000).dropFirst()  // three digits, zero-padded
        return String(EventEncoding.time(whole).dropLast()) + "." + fraction + "Z"
    }

    static func write(_ bytes: [UInt8]) throws {
        if writeFully(STDOUT_FILENO, bytes) != nil { throw OutputClosed() }
    }
}
