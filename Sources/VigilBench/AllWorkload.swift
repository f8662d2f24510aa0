import ArgumentParser
import Foundation

struct AllWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Every workload in turn: ingest, query, subscribe, storage, flush, merge.",
        discussion: """
            With --quick, small sizes that check everything runs (CI smoke), not how fast: well under a \
            minute even in a debug build. Without it, each workload with its defaults (minutes). \
            One JSON file holds every workload's results (default bench-results/all-<timestamp>.json). \
            A workload that fails is reported and the others still run; the exit status is then 1.
            """
    )

    @OptionGroup var common: CommonOptions

    @Flag(name: .long, help: "Small sizes: checks that everything runs, not its speed.")
    var quick = false

    /// Each workload's own arguments.
    var plan: [(name: String, arguments: [String])] {
        quick
            ? [
                ("ingest", ["--connections", "2", "--in-flight", "4", "--batch-size", "500", "--events", "20000", "--pool-events", "5000"]),
                ("query", ["--events", "5000", "--repetitions", "3", "--cold-repetitions", "1", "--rounds", "2"]),
                ("subscribe", ["--quick"]),
                ("storage", ["--events", "5000", "--batch-size", "1000"]),
                ("flush", ["--events", "5000", "--repetitions", "1"]),
                ("merge", ["--parts", "2", "--rows-per-part", "3000"]),
            ]
            : [("ingest", []), ("query", []), ("subscribe", []), ("storage", []), ("flush", []), ("merge", [])]
    }

    func run() async throws {
        let started = Date()
        var shared = ["--seed", String(common.seed)]
        if let vigil = common.vigil { shared += ["--vigil", vigil] }
        if common.keepData { shared.append("--keep-data") }
        var results: [(String, JSONValue)] = []
        var failed: [String] = []
        for (name, arguments) in plan {
            print("== \(name) ==")
            let result: WorkloadResult
            do {
                let arguments = arguments + shared
                result = switch name {
                case "ingest": try await IngestWorkload.parse(arguments).execute()
                case "query": try await QueryWorkload.parse(arguments).execute()
                case "subscribe": try await SubscribeWorkload.parse(arguments).execute()
                case "flush": try await FlushWorkload.parse(arguments).execute()
                case "merge": try await MergeWorkload.parse(arguments).execute()
                default: try await StorageWorkload.parse(arguments).execute()
                }
            } catch {
                var failure = WorkloadResult(workload: name)
                failure.status = "failed"
                failure.results = ["error": .string("\(error)")]
                failure.notes.append("\(name) failed: \(error)")
                result = failure
            }
            result.printHuman()
            if result.status == "failed" { failed.append(name) }
            results.append((name, result.json))
        }
        let status = failed.isEmpty ? "ok" : "failed"
        let document = Report.envelope(
            workload: "all", startedAt: started, status: status,
            parameters: ["quick": .bool(quick), "seed": .string(String(common.seed))],
            results: .object(results),
            notes: failed.isEmpty ? [] : ["failed: " + failed.joined(separator: ", ")])
        try Report.write(document, workload: "all", jsonPath: common.json, startedAt: started)
        if !failed.isEmpty {
            print("failed: " + failed.joined(separator: ", "))
            throw ExitCode(1)
        }
    }
}
