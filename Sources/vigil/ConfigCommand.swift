import ArgumentParser
import Foundation
import VigilServer
import VigilStorage

/// `vigil config`: check a configuration file, print a documented example.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a configuration file for `vigil serve --config`, or print an example.",
        discussion: """
            A configuration file is TOML; its keys are the `vigil serve` flags without \
            their --. Start from the example, check it, then serve with it:
              vigil config example > /etc/vigil/vigil.toml
              vigil config check /etc/vigil/vigil.toml
              vigil serve --config /etc/vigil/vigil.toml
            """,
        subcommands: [Check.self, Example.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file and print the settings it gives.",
            discussion: """
                Exit status 0 prints every setting (those the file leaves out marked with \
                their default); 78 lists every problem, each naming its key:
                  vigil config check vigil.toml
                Files the settings name (rules, redaction rules, TLS, checkpoint key) are \
                read and checked too, as `vigil serve` would.
                """)

        @Argument(help: ArgumentHelp("The configuration file (TOML).", valueName: "file"))
        var file: String

        func run() throws {
            let resolved: (command: ServeCommand, settings: EffectiveSettings)
            do {
                resolved = try ServeCommand.resolve(["--config", file])
            } catch let error as ConfigFileError {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                throw ServeCommand.configurationExitCode
            }
            let problems = resolved.command.problemsInNamedFiles()
            guard problems.isEmpty else {
                FileHandle.standardError.write(Data("Error: \(ConfigFileError(path: file, problems: problems))\n".utf8))
                throw ServeCommand.configurationExitCode
            }
            print("# \(file) is valid. The settings it gives `vigil serve` (the file's own are unmarked):")
            print(resolved.settings.toml)
        }
    }

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a documented example configuration file (every setting, at its default).")

        func run() {
            print(ConfigExample.text, terminator: "")
        }
    }
}

extension ServeCommand {
    /// Problems with the files the settings name, found by reading them as
    /// `vigil serve` does at start, each naming its key.
    func problemsInNamedFiles() -> [String] {
        var problems: [String] = []
        if let rules {
            do { _ = try AlertRule.load(path: rules) } catch { problems.append("rules: \(error)") }
        }
        if let redactionRules {
            do { _ = try RedactionPolicy.load(path: redactionRules) } catch { problems.append("redaction-rules: \(error)") }
        }
        do { _ = try tls.serverTLS() } catch { problems.append(Self.message(for: error).replacingOccurrences(of: "--tls-", with: "tls-")) }
        if let key = checkpoints.checkpointKey {
            do { _ = try CheckpointKey.load(path: key, dataDirectory: dataDir) } catch { problems.append("checkpoint-key: \(error)") }
        }
        return problems
    }
}

/// The documented example configuration file, made from `vigil serve`'s own
/// flags: every key with its help and its default, commented out.
enum ConfigExample {
    static var text: String {
        var lines = [
            "# vigil.toml: settings for `vigil serve --config vigil.toml`.",
            "#",
            "# Every key is a `vigil serve` flag without its leading --, with the flag's",
            "# meaning; a flag given on the command line wins over the file (a repeatable",
            "# flag replaces the file's whole list). Each setting below is at its default:",
            "# uncomment and change what you need, then `vigil config check vigil.toml`.",
            "# A table is a prefix: [tls] with cert = \"server.pem\" is tls-cert.",
            "#",
            "# SIGHUP reloads log-level, retention, tenant-retention, the rules file and",
            "# <data-dir>/tokens; any other change is logged and needs a restart.",
        ]
        for option in ServeOption.all {
            lines.append("")
            lines += wrap(option.abstract, width: 78).map { "# " + $0 }
            let value: String
            switch option.valueType {
            case .boolean: value = "false"
            case .array: value = "[]"
            case .integer: value = option.defaultValue ?? "0"
            case .string, .stringOrInteger:
                value = tomlString(option.defaultValue ?? "<\(option.valueName ?? option.key)>")
            }
            lines.append("# \(option.key) = \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width - 2 {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}
