import ArgumentParser
import Foundation

/// One `vigil serve` flag as the configuration file sees it. The list is read
/// from the command's own ArgumentParser definition (its dumped help), not
/// kept by hand: a flag added to `ServeCommand` is a configuration key at once.
struct ServeOption: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// `--no-auth`: a TOML boolean.
        case flag
        /// `--listen HOST:PORT`: one value.
        case option
        /// `--tenant-retention A=30d` (repeatable): a TOML array.
        case repeating
    }

    /// The TOML type a value must have.
    enum ValueType: Sendable, Equatable {
        case boolean, integer, string, stringOrInteger, array

        var name: String {
            switch self {
            case .boolean: "a boolean (true or false)"
            case .integer: "an integer"
            case .string: "a string"
            case .stringOrInteger: "a string"
            case .array: "an array of strings"
            }
        }
    }

    /// The long flag name without `--`: the configuration key.
    var key: String
    var kind: Kind
    var defaultValue: String?
    var valueName: String?
    var abstract: String
    /// The accepted values, when the flag has a fixed set (log levels).
    var allowedValues: [String]?

    var flag: String { "--" + key }

    /// A flag's value type follows from its kind and its default: an option
    /// whose default is a number takes a TOML integer, any other a string.
    var valueType: ValueType {
        switch kind {
        case .flag: return .boolean
        case .repeating: return .array
        case .option:
            guard let defaultValue else { return .stringOrInteger }
            return Int64(defaultValue) != nil ? .integer : .string
        }
    }

    /// What a good value looks like, for messages.
    var expectation: String {
        var text = valueType.name
        if let allowedValues, !allowedValues.isEmpty {
            text += ", one of " + allowedValues.joined(separator: ", ")
        }
        return text + " — " + abstract
    }

    /// Flags that are about the command line itself, not the server.
    static let excludedKeys: Set<String> = ["help", "version", "config", "experimental-dump-help"]

    /// Every `vigil serve` flag, in the order `--help` lists them.
    static let all: [ServeOption] = ServeOption.options(of: ServeCommand.self)

    static func named(_ key: String) -> ServeOption? { all.first { $0.key == key } }

    /// Reads the options of `command` from ArgumentParser's JSON dump of its help.
    static func options(of command: any ParsableCommand.Type) -> [ServeOption] {
        struct Dump: Decodable {
            struct Command: Decodable { var arguments: [Argument]? }
            struct Name: Decodable {
                var kind: String
                var name: String
            }
            struct Argument: Decodable {
                var kind: String
                var isRepeating: Bool
                var names: [Name]?
                var valueName: String?
                var defaultValue: String?
                var abstract: String?
                var allValues: [String]?
            }
            var command: Command
        }
        guard let dump = try? JSONDecoder().decode(Dump.self, from: Data(command._dumpHelp().utf8)) else {
            preconditionFailure("ArgumentParser's help dump of \(command) could not be read")
        }
        return (dump.command.arguments ?? []).compactMap { argument in
            guard argument.kind != "positional",
                let key = argument.names?.first(where: { $0.kind == "long" })?.name,
                !excludedKeys.contains(key)
            else { return nil }
            let kind: Kind = argument.kind == "flag" ? .flag : argument.isRepeating ? .repeating : .option
            return ServeOption(
                key: key, kind: kind, defaultValue: kind == .option ? argument.defaultValue : nil,
                valueName: argument.valueName, abstract: argument.abstract ?? "", allowedValues: argument.allValues)
        }
    }
}
