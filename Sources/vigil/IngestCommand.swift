import ArgumentParser
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Send events from a JSON-lines file (or stdin) to the server.",
        discussion: """
            Each line is one event in the protobuf JSON form (the README's "The event, as \
            JSON"). The smallest event has the four required fields; on one line:
              {"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme",
               "actor":{"id":"u-42"},"action":"user.create"}
            Output of `vigil query --format json` can be fed back in (seq and receivedAt are ignored). \
            Events are sent in batches; each batch is stored atomically and carries an \
            idempotency key derived from its content, so running the same file again within \
            the server's idempotency window (24 h) stores nothing twice, as long as the \
            batches are the same: the same --batch-size and the same server --max-batch-events \
            (the smaller of the two is the batch size, printed in the summary). Another batch \
            size makes other batches, and those are stored again. \
            A bad line stops the run with its line number; batches sent before it stay stored.
            """
    )

    @OptionGroup var client: ClientOptions

    @Argument(help: ArgumentHelp("The JSON-lines file, or - for standard input.", valueName: "file"))
    var file: String

    @Option(name: .long, help: ArgumentHelp("Events per batch (at most the server's limit, 10,000 by default).", valueName: "n"))
    var batchSize = 1_000

    @Option(name: .long, help: ArgumentHelp("Batches in flight at once.", valueName: "n"))
    var concurrency = 4

    @Flag(name: .long, help: "Compress batches with zlib (for slow links).")
    var compress = false

    @Flag(name: .long, help: "Print no progress line, only the summary.")
    var quiet = false

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 100000") }
        guard (1...128).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 128") }
    }

    struct Batch: Sendable {
        var events: [AuditEvent] = []
        var lines: [Int] = []
        var contentHash: UInt64 = 0xcbf2_9ce4_8422_2325
    }

    func run() async throws {
        let input: UnsafeMutablePointer<FILE>
        if file == "-" {
            guard let standardInput = fdopen(STDIN_FILENO, "r") else { throw CLIFailure.noInput("cannot read standard input") }
            input = standardInput
        } else {
            guard let opened = fopen(file, "r") else {
                throw CLIFailure.noInput("cannot open '\(file)': \(String(cString: strerror(errno)))")
            }
            input = opened
        }
        defer { if file != "-" { fclose(input) } }

        var configuration = try client.clientConfiguration()
        configuration.compressRequests = compress
        let start = ContinuousClock.now
        let progress = Progress(enabled: !quiet && isatty(STDERR_FILENO) == 1)
        let connection: VigilClient
        do { connection = try await VigilClient.connect(configuration) } catch let error as VigilError { throw CLIError(error) }
        let batchLimit = min(batchSize, Int(connection.welcome.maxBatchEvents == 0 ? UInt32(batchSize) : connection.welcome.maxBatchEvents))

        var stored = 0
        var replayed = 0
        var failure: (any Error)?
        let timeout = client.callTimeout
        do {
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                var inFlight = 0
                var lineNumber = 0
                var batch = Batch()
                var options = JSONDecodingOptions()
                options.ignoreUnknownFields = false

                func send(_ batch: Batch) async throws {
                    if inFlight == concurrency, let (count, wasReplayed) = try await group.next() {
                        inFlight -= 1
                        if wasReplayed { replayed += count } else { stored += count }
                        progress.update(stored + replayed, since: start)
                    }
                    inFlight += 1
                    let key = "vigil-ingest:\(String(batch.contentHash, radix: 16)):\(batch.events.count)"
                    group.addTask {
                        do {
                            let response = try await connection.ingest(batch.events, idempotencyKey: key, timeout: timeout)
                            return (Int(response.count), response.replayed)
                        } catch let error as VigilError {
                            throw Self.explain(error, lines: batch.lines)
                        }
                    }
                }

                while let line = readLine(from: input) {
                    lineNumber += 1
                    if line.allSatisfy(\.isWhitespace) { continue }
                    let event: AuditEvent
                    do {
                        event = try AuditEvent(jsonString: line, options: options)
                    } catch {
                        // The batch being built was not sent: name its lines, so that nobody believes them stored.
                        let unsent = batch.lines.first.map { "lines \($0)-\(lineNumber)" } ?? "line \(lineNumber)"
                        throw CLIFailure.runtime(
                            "line \(lineNumber): not an event in protobuf JSON form (\(Self.describe(error))); \(unsent) and every line after were not sent, lines before were; fix line \(lineNumber) and run the same command again")
                    }
                    batch.events.append(event)
                    batch.lines.append(lineNumber)
                    for byte in line.utf8 { batch.contentHash = (batch.contentHash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
                    if batch.events.count == batchLimit {
                        try await send(batch)
                        batch = Batch()
                    }
                }
                if !batch.events.isEmpty { try await send(batch) }
                for try await (count, wasReplayed) in group {
                    if wasReplayed { replayed += count } else { stored += count }
                    progress.update(stored + replayed, since: start)
                }
            }
        } catch {
            failure = error
        }
        await connection.close()
        progress.finish()
        let seconds = max(0.001, (ContinuousClock.now - start).inSeconds)
        var summary = "ingested \(counted(stored, "event")) in \(formatSeconds(seconds)) (\(Int(Double(stored + replayed) / seconds)) events/s, batches of \(batchLimit))"
        if replayed > 0 { summary += "; \(replayed) were already stored by an earlier run (idempotent retry)" }
        printError(summary)
        if let failure { throw failure }
    }

    /// A JSON decoding error for people: SwiftProtobuf's enum cases (`malformedString`) mean nothing to them.
    static func describe(_ error: any Error) -> String {
        switch error as? JSONDecodingError {
        case .unknownField(let name)?: "unknown field '\(name)'"
        case .conflictingOneOf?: "two fields of which only one may be set"
        case .unrecognizedEnumValue?: "a value that is not one of its field's names (an outcome, actor type or category)"
        case .malformedTimestamp?: "a time that is not RFC 3339, such as 2026-11-20T10:15:00Z"
        case .truncated?: "the JSON ends early"
        default: "not valid JSON, or a field holds a value of the wrong kind"
        }
    }

    /// Maps a refused batch's event indexes to line numbers.
    static func explain(_ error: VigilError, lines: [Int]) -> CLIError {
        var explained = error
        explained.message += error.eventErrors.isEmpty ? "" : " (lines below)"
        explained.eventErrors = error.eventErrors.map { eventError in
            var copy = eventError
            let index = Int(eventError.index)
            copy.field = (index < lines.count ? "line \(lines[index]): " : "") + eventError.field
            return copy
        }
        return CLIError(explained)
    }
}

/// Reads one line (without its newline) of any length; nil at end of input.
func readLine(from file: UnsafeMutablePointer<FILE>) -> String? {
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    let length = getline(&line, &capacity, file)
    defer { free(line) }
    guard length >= 0, let line else { return nil }
    var count = length
    if count > 0 && line[count - 1] == 10 { count -= 1 }
    if count > 0 && line[count - 1] == 13 { count -= 1 }
    return line.withMemoryRebound(to: UInt8.self, capacity: count) {
        String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
    }
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds < 10 ? String(Int(seconds * 1000)) + " ms" : String(Int(seconds)) + " s"
}

/// A progress line on a terminal's stderr, redrawn at most five times a second.
final class Progress: @unchecked Sendable {  // used from the command's task only
    let enabled: Bool
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ count: Int, since start: ContinuousClock.Instant) {
        guard enabled, ContinuousClock.now - lastDraw >= .milliseconds(200) else { return }
        lastDraw = .now
        let elapsed = max(0.001, (ContinuousClock.now - start).inSeconds)
        writeStandardError("\r\u{1B}[K\(count) events sent (\(Int(Double(count) / elapsed)) events/s)…")
        drawn = true
    }

    func finish() {
        if drawn { writeStandardError("\r\u{1B}[K") }
    }
}
