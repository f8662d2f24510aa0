/// The value of every `vigil serve` setting and where it came from: the
/// command line, the configuration file, or the default. What
/// `vigil config check` prints and what a reload compares.
struct EffectiveSettings: Sendable, Equatable {
    enum Source: String, Sendable {
        case commandLine = "command line"
        case file
        case defaultValue = "default"
    }

    /// key → values, as the flags would give them ("true" for a flag that is on).
    private(set) var values: [String: [String]] = [:]
    private(set) var sources: [String: Source] = [:]

    init(file: ConfigFile?, commandLine: [String: [String]]) {
        for option in ServeOption.all {
            if let given = commandLine[option.key] {
                values[option.key] = given
                sources[option.key] = .commandLine
            } else if let setting = file?.settings[option.key] {
                switch setting {
                case .flag(let on): values[option.key] = [String(on)]
                case .text(let text): values[option.key] = [text]
                case .list(let list): values[option.key] = list
                }
                sources[option.key] = .file
            } else {
                values[option.key] = option.kind == .flag ? ["false"] : option.defaultValue.map { [$0] } ?? []
                sources[option.key] = .defaultValue
            }
        }
    }

    func values(of key: String) -> [String] { values[key] ?? [] }

    /// The keys whose value differs in `other`, in `--help` order.
    func changedKeys(to other: EffectiveSettings) -> [String] {
        ServeOption.all.map(\.key).filter { values(of: $0) != other.values(of: $0) }
    }

    /// `self` with `keys` taken from `other` (settings not applied keep their old value).
    func keeping(_ keys: [String], from other: EffectiveSettings) -> EffectiveSettings {
        var result = self
        for key in keys {
            result.values[key] = other.values[key]
            result.sources[key] = other.sources[key]
        }
        return result
    }

    /// A value for messages: `90d`, `[acme=30d, globex=1y]`, `(not set)`.
    func display(_ key: String) -> String {
        let list = values(of: key)
        if ServeOption.named(key)?.kind == .repeating { return "[" + list.joined(separator: ", ") + "]" }
        return list.last ?? "(not set)"
    }

    /// Every setting as a TOML document, each marked with where it came from.
    var toml: String {
        ServeOption.all.map { option in
            let list = values(of: option.key)
            let source = sources[option.key] ?? .defaultValue
            let value: String
            switch option.valueType {
            case .boolean: value = list.last ?? "false"
            case .array: value = "[" + list.map(tomlString).joined(separator: ", ") + "]"
            case .integer: value = list.last ?? "0"
            case .string, .stringOrInteger:
                guard let text = list.last else { return "# \(option.key) is not set" }
                value = tomlString(text)
            }
            return "\(option.key) = \(value)" + (source == .file ? "" : "  # \(source.rawValue)")
        }.joined(separator: "\n")
    }

    /// The settings a `vigil serve` command line gives, by key: `--key value`,
    /// `--key=value`, and flags (which take no value).
    static func values(in arguments: [String]) -> [String: [String]] {
        var values: [String: [String]] = [:]
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            let body = argument.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            guard let option = ServeOption.named(name) else { continue }
            var value: String?
            if option.kind == .flag {
                value = "true"
            } else if let equals = body.firstIndex(of: "=") {
                value = String(body[body.index(after: equals)...])
            } else if index < arguments.endIndex {
                value = arguments[index]
                index += 1
            }
            guard let value else { continue }
            values[name] = option.kind == .repeating ? (values[name] ?? []) + [value] : [value]
        }
        return values
    }
}
