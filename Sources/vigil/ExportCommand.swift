import ArgumentParser
import Dispatch
import Synchronization
import VigilClient
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write every matching event as CSV or JSON lines, oldest first, page by page; resumable.",
        discussion: """
            Streams the result page by page to stdout or --output FILE: an export of \
            any size uses little memory. Oldest first by default (--order newest).
            \(FilterOptions.discussion)
            Examples:
              vigil export --tenant acme --since 2026-11-01 --output acme.csv
              vigil export --last 7d --action 'auth.*' --format jsonl | gzip > a.gz
              vigil export --outcome '!success' --format jsonl -o failures.jsonl
            csv: a header row, then a row per event with every field. RFC 4180 \
            quoting (a field with a comma, quote or line break is quoted, quotes \
            doubled), UTF-8, rows end with LF (CRLF with --crlf). Times are UTC \
            RFC 3339, with the fraction of a second when there is one. targets, \
            changes and metadata are JSON text, a column each.
            jsonl: one event a line, the protobuf JSON form `vigil ingest` reads.
            Resuming: when the export ends (done, --limit reached, an error, Ctrl-C \
            or SIGTERM), the cursor after the last event written and the command that \
            continues from there are printed on stderr. With --cursor, --output FILE \
            is appended to, and the CSV header is written only into an empty file. \
            An interrupted export exits with status 130 (SIGINT) or 143 (SIGTERM). \
            Progress (events written, rate) goes to stderr when it is a terminal, or \
            with --progress.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case csv, jsonl
    }

    @OptionGroup var client: ClientOptions

    @OptionGroup(title: "Filters") var filter: FilterOptions

    @Option(name: .long, help: ArgumentHelp("csv (a header row, every field) or jsonl (protobuf JSON, one event per line).", valueName: "format"))
    var format: Format = .csv

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write to this file instead of standard output (- for standard output).", valueName: "file"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("oldest (first, the default) or newest (first).", valueName: "order"))
    var order: QueryCommand.Order = .oldest

    @Option(name: .long, help: ArgumentHelp(
        "Continue after this cursor (printed by an earlier export or query with the same filter and order).", valueName: "cursor"))
    var cursor: String?

    @Option(name: .long, help: ArgumentHelp("Stop after this many events (0: all); the cursor printed continues from there.", valueName: "n"))
    var limit: UInt64 = 0

    @Flag(name: .long, help: "Print progress on stderr even when it is not a terminal (a line a second).")
    var progress = false

    @Flag(inversion: .prefixedNo, help: "Write the CSV header row (default: yes, unless resuming into a destination that is not an empty file).")
    var header: Bool?

    @Flag(name: .long, help: "End CSV rows with CRLF (RFC 4180's line break) instead of LF.")
    var crlf = false

    @Option(name: .long, help: ArgumentHelp("Events per page asked of the server: 1 to 10000.", visibility: .hidden))
    var pageSize: UInt32 = 5_000

    /// What bounds the export's memory: at most `window` pages of at most
    /// `maxFrameSize` bytes in flight (the server splits a page that would not
    /// fit), plus the page being written.
    static let maxFrameSize = 4 << 20
    static let window: UInt32 = 2

    func validate() throws {
        guard (1...10_000).contains(pageSize) else { throw ValidationError("--page-size must be 1 to 10000") }
        if header != nil && format != .csv { throw ValidationError("--header and --no-header are for --format csv") }
        if crlf && format != .csv { throw ValidationError("--crlf is for --format csv") }
    }

    func run() async throws {
        var request = Vigil_V1_QueryRequest()
        request.filter = try filter.filter()
        request.order = order.wire
        request.cursor = cursor ?? ""
        request.limit = limit
        request.pageSize = pageSize

        let path = output == "-" ? nil : output
        let destination: OutputFile
        do {
            destination = try OutputFile(path: path, append: cursor != nil)
        } catch let error as OutputFile.Failure {
            throw CLIFailure.runtime(error.description)
        }
        defer { destination.close() }
        let writeHeader = format == .csv && (header ?? (cursor == nil || destination.isEmptyRegularFile))
        let options = ExportOptions(
            format: format, lineEnding: crlf ? [0x0D, 0x0A] : [0x0A], writeHeader: writeHeader,
            progress: progress || isatty(STDERR_FILENO) == 1, progressOnTerminal: isatty(STDERR_FILENO) == 1,
            timeout: client.explicitTimeout)

        let query = request
        let (result, signal) = try await client.withClient(maxFrameSize: Self.maxFrameSize) { connection in
            let watcher = SignalWatcher(signals: [SIGINT, SIGTERM])
            defer { watcher.stop() }
            return await withTaskGroup(of: ExportEvent.self) { group in
                group.addTask { .finished(await Self.export(query, from: connection, to: destination, options: options)) }
                group.addTask {
                    for await signal in watcher.signals { return .signal(signal) }
                    return .signal(nil)
                }
                var signal: Int32?
                var result = ExportResult()
                while let event = await group.next() {
                    switch event {
                    case .signal(let number?):
                        signal = number
                        group.cancelAll()  // the export stops after the page it is writing
                    case .signal(nil):
                        break
                    case .finished(let finished):
                        result = finished
                        group.cancelAll()
                    }
                }
                return (result, signal)
            }
        }

        // A call refused before anything was written (a bad cursor, a filter the
        // server refuses, ...) is just an error: there is nothing to resume, and
        // a file made for it (holding at most a CSV header) is removed.
        if let failure = result.failure, result.written == 0 {
            if destination.created, let path { unlink(path) }
            if let error = failure as? VigilError { throw CLIError(error) }
            throw failure
        }
        // The summary, the cursor and the command that continues.
        let seconds = max(0.001, result.elapsed.inSeconds)
        let rate = Int(Double(result.written) / seconds)
        let destinationName = path.map { " to \($0)" } ?? ""
        var summary = "\(grouped(result.written)) \(result.written == 1 ? "event" : "events") written\(destinationName) in \(formatSeconds(seconds)) (\(grouped(UInt64(rate))) events/s)"
        if let signal {
            summary = "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM"): " + summary
        } else if result.failure != nil {
            summary = "stopped by an error: " + summary
        } else if result.cutByLimit {
            summary += "; stopped at --limit \(limit), more events match"
        } else {
            summary = "export complete: " + summary
        }
        printError(summary)
        if let resumeCursor = result.cursor {
            printError("cursor: \(resumeCursor)")
            let continuation = Self.resumeCommand(cursor: resumeCursor)
            if signal != nil || result.failure != nil || result.cutByLimit {
                printError("resume with: \(continuation)")
            } else {
                printError("to continue after the last event written: \(continuation)")
            }
            if let note = ResumeCommand.tokenNote() { printError(note) }
            if path == nil { printError("(its output continues this one: append it to what was written here)") }
        } else if result.failure == nil && signal == nil {
            printError("(no events match)")
        }
        if let failure = result.failure {
            if let error = failure as? VigilError { throw CLIError(error) }
            throw failure
        }
        if let signal { throw ExitCode(128 + signal) }
    }

    enum ExportEvent: Sendable {
        case finished(ExportResult)
        case signal(Int32?)
    }

    struct ExportOptions: Sendable {
        var format: Format
        var lineEnding: [UInt8]
        var writeHeader: Bool
        var progress: Bool
        var progressOnTerminal: Bool
        /// The whole export's deadline: none unless --timeout was given (an export may rightly take hours).
        var timeout: Duration?
    }

    struct ExportResult: Sendable {
        var written: UInt64 = 0
        /// Resumes after the last event written (nil when none was and no cursor was given).
        var cursor: String?
        var cutByLimit = false
        var failure: (any Error)?
        var elapsed: Duration = .zero
    }

    /// Writes the query's pages as they arrive, each page whole; the cursor
    /// advances only past pages that were written. Stops (without error) when
    /// the task is cancelled.
    static func export(
        _ request: Vigil_V1_QueryRequest, from connection: VigilClient, to destination: OutputFile, options: ExportOptions
    ) async -> ExportResult {
        let start = ContinuousClock.now
        var result = ExportResult()
        result.cursor = request.cursor.isEmpty ? nil : request.cursor
        var progress = ExportProgress(enabled: options.progress, onTerminal: options.progressOnTerminal, start: start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        do {
            if options.writeHeader {
                EventEncoding.appendCSVHeader(to: &buffer, lineEnding: options.lineEnding)
                try destination.write(buffer)
            }
            var pages = connection.queryPages(request, window: Self.window, timeout: options.timeout).makeAsyncIterator()
            while let page = try await pages.next() {
                if Task.isCancelled { break }
                buffer.removeAll(keepingCapacity: true)
                switch options.format {
                case .csv:
                    for event in page.events { EventEncoding.appendCSVRow(event, to: &buffer, lineEnding: options.lineEnding) }
                case .jsonl:
                    for event in page.events { try EventEncoding.appendJSONLine(event, to: &buffer) }
                }
                try destination.write(buffer)
                result.written += UInt64(page.events.count)
                if !page.cursor.isEmpty { result.cursor = page.cursor }
                progress.update(result.written)
                // Do not hold on to a large page's buffer.
                if buffer.capacity > 8 << 20 { buffer = [] }
            }
            if !Task.isCancelled {
                result.cutByLimit = pages.trailers["vigil.exhausted"] == "false"
                // The pages' cursors keep the snapshot of the export's start, so
                // resuming from them would never see a newer event; the trailers'
                // end-of-result cursor drops it (an incremental export).
                if !result.cutByLimit, result.cursor != nil, let final = pages.trailers["vigil.cursor"], !final.isEmpty {
                    result.cursor = final
                }
            }
        } catch is CancellationError {
            // Interrupted while waiting for a page: everything written is whole.
        } catch {
            if !Task.isCancelled { result.failure = error }
        }
        progress.finish()
        result.elapsed = ContinuousClock.now - start
        return result
    }

    /// This command line again, with `--cursor` set to `cursor`, shell-quoted.
    static func resumeCommand(cursor: String, arguments: [String] = CommandLine.arguments) -> String {
        ResumeCommand.text(cursor: cursor, replacing: ["--cursor"], arguments: arguments)
    }
}

/// The command line that resumes an interrupted export or tail: printed to
/// stderr, where it often ends up in logs and terminals' scrollback.
enum ResumeCommand {
    /// `arguments` again, shell-quoted, without the options in `replacing`
    /// (a cursor says where to resume) and without a `--token` value (a
    /// secret; the resumed command reads $VIGIL_TOKEN, or takes --token
    /// again), then `--cursor cursor`.
    static func text(cursor: String, replacing: [String], arguments: [String]) -> String {
        let dropped = replacing + ["--token"]
        var words: [String] = []
        var skipNext = false
        for (index, argument) in arguments.enumerated() {
            if skipNext {
                skipNext = false
                continue
            }
            if index > 0 && dropped.contains(argument) {
                skipNext = true
                continue
            }
            if index > 0 && dropped.contains(where: { argument.hasPrefix($0 + "=") }) { continue }
            words.append(argument)
        }
        words += ["--cursor", cursor]
        return words.map(shellQuoted).joined(separator: " ")
    }

    /// A line to print after the command when `text` left a token out.
    static func tokenNote(arguments: [String] = CommandLine.arguments) -> String? {
        let given = arguments.dropFirst().contains { $0 == "--token" || $0.hasPrefix("--token=") }
        return given ? "(the --token given is left out of that command: set VIGIL_TOKEN, or add --token again)" : nil
    }
}

/// `text` as one word for a POSIX shell.
func shellQuoted(_ text: String) -> String {
    let safe = text.utf8.allSatisfy { byte in
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "_@%+=:,./-".utf8.contains(byte)
        }
    }
    if safe && !text.isEmpty { return text }
    return "'" + text.replacingAll("'", with: "'\\''") + "'"
}

/// Where an export writes: a file, or standard output. Every `write` goes
/// straight to the descriptor (the caller hands it a whole page).
struct OutputFile: Sendable {
    let descriptor: Int32
    let path: String?
    /// Whether opening it made the file (it did not exist before).
    let created: Bool

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Opens `path` (truncating it, or appending with `append`); nil is standard output.
    init(path: String?, append: Bool) throws {
        self.path = path
        guard let path else {
            descriptor = STDOUT_FILENO
            created = false
            return
        }
        let flags = O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
        // A new file is its owner's only, as everything else of Vigil's that holds
        // events (0700 directories); an existing file keeps its mode.
        var opened = open(path, flags | O_CREAT | O_EXCL, 0o600)
        created = opened >= 0
        if opened < 0 && errno == EEXIST { opened = open(path, flags) }
        guard opened >= 0 else {
            throw Failure(description: "cannot open '\(path)' for writing: \(String(cString: strerror(errno)))")
        }
        descriptor = opened
    }

    /// Whether the destination is a regular file with nothing in it yet.
    var isEmptyRegularFile: Bool {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return false }
        return (status.st_mode & S_IFMT) == S_IFREG && status.st_size == 0
    }

    func write(_ bytes: [UInt8]) throws {
        if let error = writeFully(descriptor, bytes) {
            throw VigilError(.unknown, "cannot write to \(path.map { "'\($0)'" } ?? "standard output"): \(String(cString: strerror(error)))")
        }
    }

    func close() {
        if path != nil {
            #if canImport(Glibc)
            _ = Glibc.close(descriptor)
            #else
            _ = Darwin.close(descriptor)
            #endif
        }
    }
}

/// Export progress on stderr: a line redrawn five times a second on a
/// terminal, otherwise a line a second.
struct ExportProgress {
    let enabled: Bool
    let onTerminal: Bool
    let start: ContinuousClock.Instant
    private var lastDraw: ContinuousClock.Instant
    private var drawn = false

    init(enabled: Bool, onTerminal: Bool, start: ContinuousClock.Instant) {
        self.enabled = enabled
        self.onTerminal = onTerminal
        self.start = start
        lastDraw = start
    }

    mutating func update(_ written: UInt64) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - lastDraw >= (onTerminal ? .milliseconds(200) : .seconds(1)) else { return }
        lastDraw = now
        let rate = UInt64(Double(written) / max(0.001, (now - start).inSeconds))
        let line = "\(grouped(written)) events written (\(grouped(rate)) events/s)"
        if onTerminal {
            writeStandardError("\r\u{1B}[K" + line + "…")
            drawn = true
        } else {
            printError(line)
        }
    }

    mutating func finish() {
        if drawn { writeStandardError("\r\u{1B}[K") }
        drawn = false
    }
}

/// SIGINT and SIGTERM as an async sequence instead of the default (ending
/// the process), so that a command can stop cleanly. A second signal while
/// the first is handled ends the process at once.
final class SignalWatcher: @unchecked Sendable {  // `sources` never changes; dispatch sources are thread-safe
    let signals: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation
    private let sources: [any DispatchSourceSignal]

    private final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    init(signals numbers: [Int32]) {
        (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        let queue = DispatchQueue(label: "vigil.signals")
        let count = Count()
        var made: [any DispatchSourceSignal] = []
        for number in numbers {
            #if canImport(Darwin)
            // Darwin delivers to dispatch through kqueue only when the default action is off.
            signal(number, SIG_IGN)
            #endif
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [continuation] in
                if count.value.add(1, ordering: .relaxed).newValue > 1 { _exit(128 + number) }
                continuation.yield(number)
            }
            source.resume()
            made.append(source)
        }
        sources = made
    }

    func stop() {
        continuation.finish()
        for source in sources { source.cancel() }
    }
}

/// Writes all of `bytes` to `descriptor`, retrying short writes and EINTR;
/// returns the errno of a failed write, nil when everything was written.
func writeFully(_ descriptor: Int32, _ bytes: [UInt8]) -> Int32? {
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            #if canImport(Glibc)
            let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            #else
            let written = Darwin.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            #endif
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += written
        }
        return nil
    }
}
