import ArgumentParser
import Foundation
import SwiftProtobuf
import VigilBenchKit
import VigilClient
import VigilCore
import VigilProto

struct QueryWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "A fixed suite of queries over a generated data set, warm and cold.",
        discussion: """
            Loads --events generated events into a server (or reuses the data set in --data-dir from
            an earlier run), restarts it so the events are in parts, then runs each query of the suite
            --repetitions times on the running server (warm, after one unmeasured run) and
            --cold-repetitions times each right after a server restart (cold: the server's caches are
            empty; the OS page cache is not dropped). A time is from opening the call to its last page.
            Counts that need Aggregate (not implemented by the server yet) run as a Query with limit 0
            and are counted client-side; substring search and trace-id lookup need filters the server
            does not have yet and are reported as n/a.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Events in the data set.")
    var events = 1_000_000

    @Option(name: .long, help: ArgumentHelp("Keep the data set here and reuse it on later runs (default: a temporary directory).", valueName: "path"))
    var dataDir: String?

    @Option(name: .long, help: "Measured runs of each query on a warm server.")
    var repetitions = 5

    @Option(name: .long, help: "Measured runs of each query right after a server restart (0 to skip).")
    var coldRepetitions = 3

    func validate() throws {
        guard events >= 1 else { throw ValidationError("--events must be positive") }
        guard (1...10_000).contains(repetitions) else { throw ValidationError("--repetitions must be 1 to 10000") }
        guard (0...1_000).contains(coldRepetitions) else { throw ValidationError("--cold-repetitions must be 0 to 1000") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
        if result.status == "failed" { throw ExitCode(1) }
    }

    // MARK: The suite

    enum Tally: Sendable {
        case none, byAction, byOutcome
    }

    struct Spec: Sendable {
        var name: String
        var description: String
        /// nil when the server cannot answer it yet.
        var request: Vigil_V1_QueryRequest?
        var how: String
        var tally: Tally = .none

        /// `how`, short enough for the table.
        var shortHow: String {
            switch how {
            case QueryWorkload.viaQuery: "Query + client-side count (no Aggregate yet)"
            default: how
            }
        }
    }

    static let viaQuery = "Query, limit 0, counted client-side (Aggregate is not implemented yet)"
    static let needsEngine = "n/a (needs the query engine)"

    static func suite(_ dataset: Dataset) -> [Spec] {
        let end = dataset.end
        let hour: Int64 = 3_600_000_000_000
        func request(_ build: (inout Vigil_V1_QueryRequest) -> Void) -> Vigil_V1_QueryRequest {
            var request = Vigil_V1_QueryRequest()
            request.filter.until = Google_Protobuf_Timestamp(unixNanos: end + 1_000_000_000)
            build(&request)
            return request
        }
        let picks = dataset.picks
        return [
            Spec(
                name: "tenant-newest-100-24h", description: "newest 100 events of tenant \(picks.tenant) in the last 24 h",
                request: request {
                    $0.filter.tenants = [picks.tenant]
                    $0.filter.since = Google_Protobuf_Timestamp(unixNanos: end - 24 * hour)
                    $0.limit = 100
                }, how: "Query, limit 100"),
            Spec(
                name: "tenant-7d-count-by-action", description: "count of \(picks.tenant)'s events over 7 days by action",
                request: request {
                    $0.filter.tenants = [picks.tenant]
                    $0.filter.since = Google_Protobuf_Timestamp(unixNanos: end - 7 * 24 * hour)
                    $0.limit = 0
                    $0.pageSize = 10_000
                }, how: viaQuery, tally: .byAction),
            Spec(
                name: "actor-non-success-30d", description: "non-success events of actor \(picks.actor) over 30 days",
                request: request {
                    $0.filter.actorIds = [picks.actor]
                    $0.filter.outcomes = [.failure, .denied]
                    $0.filter.since = Google_Protobuf_Timestamp(unixNanos: end - 30 * 24 * hour)
                    $0.limit = 0
                    $0.pageSize = 10_000
                }, how: "Query, limit 0"),
            Spec(
                name: "tenant-substring-search", description: "substring search ('restart') in \(picks.tenant)'s events",
                request: nil, how: needsEngine),
            Spec(
                name: "resource-history", description: "history of \(picks.resourceType) \(picks.resourceID), oldest first",
                request: request {
                    $0.filter.resourceIds = [picks.resourceID]
                    $0.order = .oldestFirst
                    $0.limit = 0
                    $0.pageSize = 10_000
                }, how: "Query, limit 0"),
            Spec(name: "trace-id", description: "the events of one trace id", request: nil, how: needsEngine),
            Spec(
                name: "all-tenants-1h-count", description: "count of all tenants' events in the last hour",
                request: request {
                    $0.filter.since = Google_Protobuf_Timestamp(unixNanos: end - hour)
                    $0.limit = 0
                    $0.pageSize = 10_000
                }, how: viaQuery),
            Spec(
                name: "count-by-outcome-all", description: "count of every event by outcome",
                request: request {
                    $0.filter.clearUntil()
                    $0.limit = 0
                    $0.pageSize = 10_000
                }, how: viaQuery, tally: .byOutcome),
        ]
    }

    struct Run: Sendable {
        var micros: Double
        var events: Int
        var rowsExamined: Int?
        var groups: Int
    }

    static func runOnce(_ client: VigilClient, _ spec: Spec) async throws -> Run {
        guard let request = spec.request else { throw BenchError("\(spec.name) has no request") }
        let started = ContinuousClock.now
        var pages = client.queryPages(request, window: 4, timeout: .seconds(600)).makeAsyncIterator()
        var count = 0
        var groups: [String: Int] = [:]
        while let page = try await pages.next() {
            count += page.events.count
            switch spec.tally {
            case .none: break
            case .byAction: for event in page.events { groups[event.action, default: 0] += 1 }
            case .byOutcome: for event in page.events { groups[String(describing: event.outcome), default: 0] += 1 }
            }
        }
        let micros = (ContinuousClock.now - started).microseconds
        return Run(micros: micros, events: count, rowsExamined: pages.trailers["vigil.rows-examined"].flatMap { Int($0) }, groups: groups.count)
    }

    // MARK: The data set

    struct Dataset: Sendable {
        var seed: UInt64
        var events: Int
        var end: UnixNanos
        var picks: DatasetPicks
        var loadSeconds: Double?

        var json: JSONValue {
            [
                "formatVersion": 1, "seed": .string(String(seed)), "events": .int(events),
                "endUnixNanos": .string(String(end)), "picks": picks.json,
            ]
        }

        static func read(_ path: String) throws -> Dataset {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let seed = (object["seed"] as? String).flatMap({ UInt64($0) }),
                let events = object["events"] as? Int,
                let end = (object["endUnixNanos"] as? String).flatMap({ Int64($0) }),
                let picks = (object["picks"] as? [String: Any]).flatMap(DatasetPicks.init(json:))
            else { throw BenchError("\(path) is not a vigil-bench data set description") }
            return Dataset(seed: seed, events: events, end: end, picks: picks)
        }
    }

    /// Loads a new data set into `directory`, or reads the one there.
    func prepare(_ directory: String, launcher: ServerLauncher) async throws -> (Dataset, reused: Bool) {
        let description = directory + "/dataset.json"
        let serverDirectory = directory + "/server"
        if FileManager.default.fileExists(atPath: description) {
            let dataset = try Dataset.read(description)
            progress("reusing the data set in \(directory): \(grouped(dataset.events)) events, seed \(dataset.seed)")
            return (dataset, true)
        }
        if FileManager.default.fileExists(atPath: serverDirectory) {
            throw BenchError("\(directory) holds a server directory but no dataset.json (an interrupted load?): remove it or pick another --data-dir")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let end = nowRoundedToSeconds()
        progress("loading \(grouped(events)) events into \(serverDirectory)")
        let loaded = try await withServer(launcher, dataDirectory: serverDirectory) { server in
            try await loadDataset(server: server, seed: common.seed, count: events, end: end)
        }
        var dataset = Dataset(seed: common.seed, events: loaded.events, end: end, picks: loaded.picks)
        dataset.loadSeconds = loaded.seconds
        try (dataset.json.rendered() + "\n").write(toFile: description, atomically: true, encoding: .utf8)
        return (dataset, false)
    }

    func execute() async throws -> WorkloadResult {
        let directory = try dataDir ?? temporaryDirectory("query")
        defer { if dataDir == nil { common.cleanUp(directory) } }
        let launcher = try common.launcher(["--retention", "forever"])
        let (dataset, reused) = try await prepare(directory, launcher: launcher)
        let specs = Self.suite(dataset)
        let runnable = specs.filter { $0.request != nil }

        // Warm: one server, each query once unmeasured, then `repetitions` times.
        progress("warm runs: \(runnable.count) queries × \(repetitions)")
        var warm: [String: [Run]] = [:]
        var aggregate = "unknown"
        var restarts: [Double] = []
        let serverDirectory = directory + "/server"
        let clock = ContinuousClock.now
        let server = try await launcher.start(dataDirectory: serverDirectory)
        restarts.append((ContinuousClock.now - clock).microseconds)
        let memory: (resident: Int?, peak: Int?)
        do {
            try await withClients(1, server.clientConfiguration) { clients in
                let client = clients[0]
                aggregate = await Self.probeAggregate(client)
                for spec in runnable {
                    _ = try await Self.runOnce(client, spec)
                    for _ in 0..<repetitions {
                        warm[spec.name, default: []].append(try await Self.runOnce(client, spec))
                    }
                }
            }
            memory = server.memory()
        } catch {
            await server.kill9()
            throw error
        }
        try await server.stopChecked()

        // Cold: a restart before every measured run.
        var cold: [String: [Run]] = [:]
        if coldRepetitions > 0 {
            progress("cold runs: \(runnable.count) queries × \(coldRepetitions), each after a restart")
        }
        for _ in 0..<coldRepetitions {
            for spec in runnable {
                let clock = ContinuousClock.now
                let run = try await withServer(launcher, dataDirectory: serverDirectory) { server in
                    restarts.append((ContinuousClock.now - clock).microseconds)
                    return try await withClients(1, server.clientConfiguration) { clients in
                        try await Self.runOnce(clients[0], spec)
                    }
                }
                cold[spec.name, default: []].append(run)
            }
        }

        // Report.
        var result = WorkloadResult(workload: "query")
        result.parameters = [
            "events": .int(dataset.events), "seed": .string(String(dataset.seed)), "repetitions": .int(repetitions),
            "coldRepetitions": .int(coldRepetitions), "dataDir": .optional(dataDir), "reusedDataSet": .bool(reused),
            "dataSet": dataset.json,
        ]
        var table = TextTable(
            title: "query: \(grouped(dataset.events)) events; warm × \(repetitions), cold (after a restart) × \(coldRepetitions); ms",
            header: ["query", "events", "rows examined", "warm p50", "warm p99", "cold p50", "cold p99", "how"])
        var entries: [JSONValue] = []
        for spec in specs {
            let warmRuns = warm[spec.name] ?? []
            let coldRuns = cold[spec.name] ?? []
            func stats(_ runs: [Run]) -> JSONValue {
                let micros = runs.map(\.micros)
                guard !micros.isEmpty else { return .null }
                return [
                    "p50": .optional(percentile(micros, 50).map { $0 / 1000 }),
                    "p99": .optional(percentile(micros, 99).map { $0 / 1000 }),
                    "min": .optional(micros.min().map { $0 / 1000 }), "max": .optional(micros.max().map { $0 / 1000 }),
                    "samples": .int(micros.count),
                ]
            }
            let sample = warmRuns.last ?? coldRuns.last
            entries.append([
                "name": .string(spec.name), "description": .string(spec.description), "how": .string(spec.how),
                "supported": .bool(spec.request != nil),
                "eventsReturned": .optional(sample?.events), "groups": .optional(spec.tally == .none ? nil : sample?.groups),
                "rowsExamined": .optional(sample?.rowsExamined),
                "warmMs": stats(warmRuns), "coldMs": stats(coldRuns),
            ])
            func cell(_ runs: [Run], _ p: Double) -> String {
                percentile(runs.map(\.micros), p).map(millis) ?? (spec.request == nil ? "n/a" : "-")
            }
            table.rows.append([
                spec.name, sample.map { grouped($0.events) } ?? "n/a", sample?.rowsExamined.map(grouped) ?? "-",
                cell(warmRuns, 50), cell(warmRuns, 99), cell(coldRuns, 50), cell(coldRuns, 99), spec.shortHow,
            ])
        }
        result.results = [
            "queries": .array(entries),
            "aggregateMethod": .string(aggregate),
            "serverStartMs": [
                "p50": .optional(percentile(restarts, 50).map { $0 / 1000 }),
                "max": .optional(restarts.max().map { $0 / 1000 }), "samples": .int(restarts.count),
            ],
            "serverMemoryAfterWarmRuns": ["rssBytes": .optional(memory.resident), "peakRssBytes": .optional(memory.peak)],
            "loadSeconds": .optional(dataset.loadSeconds),
        ]
        result.tables = [table]
        result.notes.append("picks from the data set: tenant \(dataset.picks.tenant) (the largest), actor \(dataset.picks.actor) (its most active user), resource \(dataset.picks.resourceID) (its most touched resource)")
        result.notes.append("Aggregate on this server: \(aggregate); counts run as Query with limit 0, counted client-side (the time includes sending every matching event)")
        result.notes.append("with R samples, p99 is the slowest of them when R < 100")
        if let load = dataset.loadSeconds {
            result.notes.append("loading took \(fixed(load, 1)) s (\(grouped(Int(Double(dataset.events) / max(load, 1e-9)))) events/s)")
        }
        return result
    }

    static func probeAggregate(_ client: VigilClient) async -> String {
        var request = Vigil_V1_AggregateRequest()
        request.groupBy = .outcome
        request.filter.since = Google_Protobuf_Timestamp(unixNanos: currentUnixNanos() - 60_000_000_000)
        do {
            let _: Vigil_V1_AggregateResponse = try await client.unary(.aggregate, request, timeout: .seconds(30))
            return "implemented (this suite still counts via Query; update it to measure Aggregate)"
        } catch let error as VigilError {
            return error.code == .unimplemented ? "UNIMPLEMENTED" : "error \(error.code)"
        } catch {
            return "error \(error)"
        }
    }
}
