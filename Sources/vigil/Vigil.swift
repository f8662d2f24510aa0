import ArgumentParser
import VigilServer

#if canImport(Glibc)
import Glibc
#endif

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Vigil: a self-hosted audit-log server and its command line.",
        discussion: """
            Run a server with `vigil serve` (it listens on 127.0.0.1:7700 and keeps its \
            data in ./vigil-data). \
            Then, from another shell:
              vigil ingest events.jsonl          send JSON-lines events
              vigil query --last 24h --action 'auth.*'
              vigil count --last 7d --by action
              vigil export --tenant acme --since 2026-11-01 --output acme.csv
              vigil get 0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f
              vigil status                       the server on one screen (admin token)
            Every client command takes --server HOST:PORT (default 127.0.0.1:7700).
            """,
        version: vigilVersion,
        subcommands: [
            ServeCommand.self, IngestCommand.self, QueryCommand.self, CountCommand.self, ExportCommand.self, TailCommand.self, GetCommand.self,
            InspectCommand.self, TokenCommand.self, RetentionCommand.self, VerifyCommand.self, KeygenCommand.self,
            ConfigCommand.self,
            StatusCommand.self,
            BackupCommand.self, RestoreCommand.self,
        ]
    )

    /// ArgumentParser's main, but a `CLIFailure` exits with its own status
    /// and without the root command's usage.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot(nil)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CLIFailure {
            printError("Error: \(failure.message)")
            Glibc.exit(failure.exitCode)
        } catch {
            exit(withError: error)
        }
    }
}
