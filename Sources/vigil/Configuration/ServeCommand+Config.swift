import ArgumentParser
import Foundation

extension ServeCommand {
    /// Set while the settings of a configuration file are being checked or
    /// merged: `validate` then checks everything (without it, a command with
    /// --config leaves checks that the file may change to this step).
    @TaskLocal static var resolving = false

    /// This process's `vigil serve` arguments.
    static var commandLineArguments: [String] {
        let arguments = CommandLine.arguments.dropFirst()
        return Array(arguments.first == "serve" ? arguments.dropFirst() : arguments)
    }

    /// `arguments` parsed, with the settings of its --config file under them:
    /// a flag on the command line wins over the file, and a repeatable flag
    /// given there replaces the file's whole list.
    static func resolve(_ arguments: [String]) throws -> (command: ServeCommand, settings: EffectiveSettings) {
        let commandLine = EffectiveSettings.values(in: arguments)
        let given = try $resolving.withValue(false) { try parse(arguments) }
        guard let path = given.config else { return (given, EffectiveSettings(file: nil, commandLine: commandLine)) }
        let file = try ConfigFile.load(path: path)
        let fromFile = Set(file.settings.keys).subtracting(commandLine.keys)
        do {
            let command = try $resolving.withValue(true) {
                try parse(file.arguments(excluding: Set(commandLine.keys)) + arguments)
            }
            return (command, EffectiveSettings(file: file, commandLine: commandLine))
        } catch {
            // Name the file's keys as keys, the command line's flags as flags.
            var message = Self.message(for: error)
            for key in fromFile.sorted(by: { $0.count > $1.count }) {
                message = message.replacingOccurrences(of: "--" + key, with: key)
            }
            throw ConfigFileError(path: path, problems: [message])
        }
    }

    /// `vigil serve`'s exit status for a configuration file it cannot use (sysexits' EX_CONFIG).
    static let configurationExitCode = ExitCode(78)
}
