import Foundation

/// A JSON value whose objects keep their keys in the order they were written,
/// so result files read (and diff) the same way every run.
indirect enum JSONValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(floatLiteral value: Double) { self = .double(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }

    static func optional(_ value: Int?) -> JSONValue { value.map { .int($0) } ?? .null }
    static func optional(_ value: Double?) -> JSONValue { value.map { .double($0) } ?? .null }
    static func optional(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }

    /// The value of `key` in an object.
    subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    func rendered(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value):
            guard value.isFinite else { return "null" }
            if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
            return String(format: "%.6g", value)
        case .string(let value): return Self.quote(value)
        case .array(let values):
            if values.isEmpty { return "[]" }
            if values.allSatisfy(\.isScalar) {
                return "[" + values.map { $0.rendered() }.joined(separator: ", ") + "]"
            }
            return "[\n" + values.map { inner + $0.rendered(indent: indent + 1) }.joined(separator: ",\n") + "\n" + pad + "]"
        case .object(let pairs):
            if pairs.isEmpty { return "{}" }
            return "{\n" + pairs.map { inner + Self.quote($0.0) + ": " + $0.1.rendered(indent: indent + 1) }
                .joined(separator: ",\n") + "\n" + pad + "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .array, .object: false
        default: true
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// An aligned text table: the first column left-aligned, the others right-aligned.
struct TextTable: Sendable {
    var title: String
    var header: [String]
    var rows: [[String]] = []

    func rendered() -> String {
        let columns = header.count
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.prefix(columns).enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.prefix(columns).enumerated().map { index, cell in
                let fill = String(repeating: " ", count: max(0, widths[index] - cell.count))
                return index == 0 ? cell + fill : fill + cell
            }.joined(separator: "  ")
        }
        var lines = [title, line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}

/// What one workload produced: the figures for the JSON file and the tables for people.
struct WorkloadResult: Sendable {
    var workload: String
    /// "ok", "skipped" (the server lacks the feature) or "failed".
    var status = "ok"
    var parameters: JSONValue = [:]
    var results: JSONValue = [:]
    var tables: [TextTable] = []
    var notes: [String] = []

    var json: JSONValue {
        ["status": .string(status), "parameters": parameters, "results": results, "notes": .array(notes.map { .string($0) })]
    }

    func printHuman() {
        for table in tables {
            print(table.rendered())
            print("")
        }
        for note in notes { print("note: \(note)") }
        if !notes.isEmpty { print("") }
    }
}

/// The run's context and the file it is written to.
enum Report {
    static let formatVersion = 1

    /// Prints `result`'s tables and writes its JSON file; returns the file's path.
    @discardableResult
    static func emit(_ result: WorkloadResult, jsonPath: String?, startedAt: Date) throws -> String {
        result.printHuman()
        let document: JSONValue = envelope(
            workload: result.workload, startedAt: startedAt, status: result.status,
            parameters: result.parameters, results: result.results, notes: result.notes)
        return try write(document, workload: result.workload, jsonPath: jsonPath, startedAt: startedAt)
    }

    static func envelope(
        workload: String, startedAt: Date, status: String, parameters: JSONValue, results: JSONValue, notes: [String]
    ) -> JSONValue {
        let git = gitRevision()
        return [
            "tool": "vigil-bench",
            "formatVersion": .int(formatVersion),
            "workload": .string(workload),
            "status": .string(status),
            "startedAt": .string(iso8601(startedAt)),
            "finishedAt": .string(iso8601(Date())),
            "machine": machine(),
            "build": build(),
            "gitRevision": .optional(git?.revision),
            "gitTreeModified": git?.modified.map { .bool($0) } ?? .null,
            "parameters": parameters,
            "results": results,
            "notes": .array(notes.map { .string($0) }),
        ]
    }

    @discardableResult
    static func write(_ document: JSONValue, workload: String, jsonPath: String?, startedAt: Date) throws -> String {
        let path = jsonPath ?? "bench-results/\(workload)-\(fileTimestamp(startedAt)).json"
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try (document.rendered() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        print("results written to \(path)")
        return path
    }

    static func machine() -> JSONValue {
        var model: String?
        var memory: Int?
        if let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix("model name") {
                model = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
                break
            }
        }
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
                memory = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
        }
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let arch = withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        // Other work on the machine skews every figure: the load averages say how much there was.
        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "")
            .split(separator: " ").prefix(3).compactMap { Double($0) }
        return [
            "cores": .int(ProcessInfo.processInfo.activeProcessorCount),
            "cpuModel": .optional(model),
            "memoryBytes": .optional(memory),
            "kernel": .string(kernel),
            "architecture": .string(arch),
            "loadAverageAtEnd": .array(load.map { .double($0) }),
        ]
    }

    static var buildConfiguration: String {
        #if DEBUG
        "debug"
        #else
        "release"
        #endif
    }

    static func build() -> JSONValue {
        ["configuration": .string(buildConfiguration)]
    }

    /// `git rev-parse HEAD` in the working directory, else beside the binary, and
    /// whether tracked files differ from it (`git diff --quiet HEAD`); nil without git.
    static func gitRevision() -> (revision: String, modified: Bool?)? {
        let binaryDirectory = (ServerLauncher.executablePath() as NSString).deletingLastPathComponent
        for directory in [FileManager.default.currentDirectoryPath, binaryDirectory] {
            guard let (status, text) = git(["-C", directory, "rev-parse", "HEAD"]) else { return nil }
            let revision = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard status == 0, revision.count == 40 else { continue }
            let modified = git(["-C", directory, "diff", "--no-ext-diff", "--quiet", "HEAD", "--"]).flatMap { status, _ in
                status == 0 ? false : status == 1 ? true : nil
            }
            return (revision, modified)
        }
        return nil
    }

    /// Runs a read-only git command: its exit status and standard output.
    private static func git(_ arguments: [String]) -> (Int32, String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func fileTimestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }
}

// MARK: Formatting figures

/// "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(abs(value))
    var out = ""
    for (index, character) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
        out.append(character)
    }
    return value < 0 ? "-" + out : out
}

func fixed(_ value: Double, _ decimals: Int = 1) -> String {
    value.isFinite ? String(format: "%.\(decimals)f", value) : "-"
}

/// Milliseconds from microseconds, with a precision that suits the size.
func millis(_ micros: Double) -> String {
    let ms = micros / 1000
    return ms < 10 ? fixed(ms, 2) : ms < 100 ? fixed(ms, 1) : fixed(ms, 0)
}

func bytesText(_ bytes: Int) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    if bytes < 1_048_576 { return fixed(Double(bytes) / 1024) + " KiB" }
    if bytes < 1_073_741_824 { return fixed(Double(bytes) / 1_048_576) + " MiB" }
    return fixed(Double(bytes) / 1_073_741_824, 2) + " GiB"
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Double { seconds * 1e6 }
}

/// Nearest-rank percentile of unsorted samples (p in 0...100); nil when empty.
func percentile(_ samples: [Double], _ p: Double) -> Double? {
    guard !samples.isEmpty else { return nil }
    let sorted = samples.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(sorted.count - 1, max(0, rank - 1))]
}
