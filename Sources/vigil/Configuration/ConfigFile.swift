import ArgumentParser
import Foundation
import TOMLKit

/// A `vigil serve` configuration file (TOML): every key is a `vigil serve`
/// flag without its `--` (`data-dir = "/var/lib/vigil"`, `no-auth = true`,
/// `tenant-retention = ["acme=30d"]`). A table is a prefix: `[tls]` with
/// `cert = "…"` is `tls-cert`.
struct ConfigFile: Sendable {
    let path: String
    /// The file's settings: each a known key with a value of the right type.
    var settings: [String: ConfigValue]

    /// Reads and checks `path`: every problem is collected (syntax, unknown
    /// keys, wrong types, values the flag refuses), not just the first.
    static func load(path: String) throws(ConfigFileError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read; check its permissions" : "does not exist"
            throw ConfigFileError(path: path, problems: ["the configuration file \(reason)"])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigFileError(path: path, problems: ["not UTF-8 text (TOML files are UTF-8)"])
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw ConfigFileError(path: path, problems: ["line \(at.line), column \(at.column): \(error.description)"])
        } catch {
            throw ConfigFileError(path: path, problems: ["not TOML: \(error)"])
        }
        var reader = Reader()
        reader.read(table, prefix: "")
        var problems = reader.problems
        for (key, value) in reader.settings.sorted(by: { $0.key < $1.key }) {
            if let problem = Self.check(key: key, value: value) { problems.append(problem) }
        }
        guard problems.isEmpty else { throw ConfigFileError(path: path, problems: problems) }
        return ConfigFile(path: path, settings: reader.settings)
    }

    /// The settings as `vigil serve` arguments, leaving out `keys` (those the
    /// command line sets: a flag wins over the file, a repeated flag replaces
    /// the file's whole list).
    func arguments(excluding keys: Set<String> = []) -> [String] {
        ServeOption.all.flatMap { option -> [String] in
            guard !keys.contains(option.key), let value = settings[option.key] else { return [] }
            return value.arguments(for: option)
        }
    }

    /// A value the flag itself refuses (a number out of range, an unknown log
    /// level, a duration that is not one), found by parsing that key alone.
    private static func check(key: String, value: ConfigValue) -> String? {
        guard let option = ServeOption.named(key) else { return nil }
        do {
            _ = try ServeCommand.$resolving.withValue(true) { try ServeCommand.parse(value.arguments(for: option)) }
            return nil
        } catch {
            let message = ServeCommand.message(for: error)
            // A check that names another flag too is about a combination; the
            // whole file (with the command line) is checked for those later.
            let others = ServeOption.all.filter { $0.key != key && message.contains($0.flag) }
            if message.contains(option.flag) && others.isEmpty && !message.contains("The value") {
                return message.replacingOccurrences(of: option.flag, with: key)
            }
            if !others.isEmpty { return nil }
            // An integer as the file wrote it, not as the quoted text it became.
            let shown = if case .text(let number) = value, option.valueType == .integer { number } else { value.toml }
            return "\(key) = \(shown) is not valid: expected \(option.expectation)"
        }
    }

    /// Walks the TOML table: keys, tables as prefixes, and the type of each value.
    private struct Reader {
        var settings: [String: ConfigValue] = [:]
        var problems: [String] = []

        mutating func read(_ table: TOMLTable, prefix: String) {
            for (name, value) in table {
                let key = prefix + name
                if let option = ServeOption.named(key) {
                    guard settings[key] == nil else {
                        problems.append("\(key) is set twice (once as a table entry); keep one")
                        continue
                    }
                    switch Self.value(value, for: option) {
                    case .success(let value): settings[key] = value
                    case .failure(let problem): problems.append(problem.message)
                    }
                } else if value.type == .table, let nested = value.table, ServeOption.all.contains(where: { $0.key.hasPrefix(key + "-") }) {
                    read(nested, prefix: key + "-")
                } else {
                    problems.append(Self.unknown(key, isTable: value.type == .table))
                }
            }
        }

        struct Problem: Error { let message: String }

        static func value(_ value: any TOMLValueConvertible, for option: ServeOption) -> Result<ConfigValue, Problem> {
            let expected = option.valueType
            let wrong = Problem(message: "\(option.key) must be \(expected.name), not \(article(value.type)) (\(option.abstract))")
            switch expected {
            case .boolean:
                guard let flag = value.bool else { return .failure(wrong) }
                return .success(.flag(flag))
            case .integer:
                guard let number = value.int else { return .failure(wrong) }
                return .success(.text(String(number)))
            case .string:
                guard let text = value.string else { return .failure(wrong) }
                return .success(.text(text))
            case .stringOrInteger:
                if let text = value.string { return .success(.text(text)) }
                if let number = value.int { return .success(.text(String(number))) }
                return .failure(wrong)
            case .array:
                guard let array = value.array else { return .failure(wrong) }
                var list: [String] = []
                for (index, element) in array.enumerated() {
                    if let text = element.string {
                        list.append(text)
                    } else if let number = element.int {
                        list.append(String(number))
                    } else {
                        return .failure(Problem(message: "\(option.key) must be \(expected.name); element \(index + 1) is \(article(element.type))"))
                    }
                }
                return .success(.list(list))
            }
        }

        static func article(_ type: TOMLType) -> String {
            switch type {
            case .table: "a table"
            case .array: "an array"
            case .string: "a string"
            case .int: "an integer"
            case .double: "a float"
            case .bool: "a boolean"
            case .date: "a date"
            case .time: "a time"
            case .dateTime: "a date-time"
            }
        }

        static func unknown(_ key: String, isTable: Bool) -> String {
            let what = isTable ? "unknown table [\(key.replacingOccurrences(of: "-", with: "."))]" : "unknown key '\(key)'"
            let suggestion = ServeOption.suggestion(for: key).map { "; did you mean '\($0)'?" }
                ?? "; `vigil serve --help` lists the keys (the flags without --)"
            return what + suggestion
        }
    }
}

/// One setting as the file gave it.
enum ConfigValue: Sendable, Equatable {
    case flag(Bool)
    case text(String)
    case list([String])

    func arguments(for option: ServeOption) -> [String] {
        switch self {
        case .flag(let on): on ? [option.flag] : []
        case .text(let text): ["\(option.flag)=\(text)"]
        case .list(let values): values.map { "\(option.flag)=\($0)" }
        }
    }

    /// As TOML, for messages and `vigil config check`.
    var toml: String {
        switch self {
        case .flag(let on): String(on)
        case .text(let text): tomlString(text)
        case .list(let values): "[" + values.map(tomlString).joined(separator: ", ") + "]"
        }
    }
}

/// `text` as a TOML basic string.
func tomlString(_ text: String) -> String {
    var quoted = ""
    JSONLogLine.appendQuoted(text, to: &quoted)
    return quoted
}

/// Every problem of a configuration file, each naming the key.
struct ConfigFileError: Error, CustomStringConvertible {
    let path: String
    let problems: [String]

    var description: String {
        problems.count == 1
            ? "\(path): \(problems[0])"
            : "\(path) has \(problems.count) problems:\n" + problems.map { "  \(path): \($0)" }.joined(separator: "\n")
    }
}

extension ServeOption {
    /// The known key closest to a mistyped one (`data_dir` → `data-dir`), if any is close.
    static func suggestion(for key: String) -> String? {
        let normalized = key.lowercased().replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: ".", with: "-")
        if let exact = all.first(where: { $0.key == normalized }) { return exact.key }
        // tls-certificate → tls-cert; checkpoint → checkpoint-key.
        let prefixed = all.filter { normalized.hasPrefix($0.key + "-") || normalized.hasPrefix($0.key) && $0.key.contains("-") || $0.key.hasPrefix(normalized + "-") }
        if let longest = prefixed.max(by: { $0.key.count < $1.key.count }) { return longest.key }
        let scored = all.map { ($0.key, editDistance($0.key, normalized)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, normalized.count / 4) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
