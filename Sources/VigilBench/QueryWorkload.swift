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
            Loads --events generated events into a server (or reuses the data set in --data-dir from \
            an earlier run), restarts it so the events are in parts, then runs each query of the suite \
            --repetitions times on the running server (warm, after one unmeasured run) and \
            --cold-repetitions times each right after a server restart (cold: the server's caches are \
            empty; the OS page cache is not dropped). Every query runs over the real protocol, end to \
            end: Q1, Q3-Q6 as Query calls (every page read, each event decoded), Q2, Q7 and Q8 as \
            Aggregate calls, one after another on one connection, the warm runs on that connection's \
            thread (VigilClient.executor). A time is from opening the call to its trailers, the answer \
            decoded and still held (freeing it falls after). Each query also reports what its trailers say it read \
            (rows examined, blocks scanned, skipped and answered from statistics, bytes decompressed) \
            and its target (p50 at 10 million events), met or missed by the warm p50.

            On a shared or virtual machine a single run's warm p50 moves with where the scheduler \
            puts the two processes and with the host's load: --rounds N repeats the warm runs N \
            times, each against a freshly started server on a new connection, and judges each \
            query by the median of the rounds' p50s (the table shows their range).
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Events in the data set.")
    var events = 1_000_000

    @Option(name: .long, help: ArgumentHelp("Keep the data set here and reuse it on later runs (default: a temporary directory).", valueName: "path"))
    var dataDir: String?

    @Option(name: .long, help: "Measured runs of each query on a warm server.")
    var repetitions = 20

    @Option(name: .long, help: "Measured runs of each query right after a server restart (0 to skip).")
    var coldRepetitions = 3

    @Option(
        name: .long,
        help: "Rounds of warm runs, each on a freshly started server: a query's warm p50 is the median of the rounds' p50s.")
    var rounds = 1

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Run only these queries of the suite, by id, comma-separated (e.g. Q1,Q6: to profile one query).",
            valueName: "ids"))
    var only: String?

    /// The ids `--only` names, upper-cased; nil for the whole suite.
    var onlyIDs: Set<String>? {
        only.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }) }
    }

    func validate() throws {
        if let ids = onlyIDs {
            guard !ids.isEmpty else { throw ValidationError("--only needs at least one query id, Q1 to Q8") }
            let unknown = ids.subtracting((1...8).map { "Q\($0)" }).sorted()
            guard unknown.isEmpty else {
                throw ValidationError("--only takes query ids Q1 to Q8, not \(unknown.joined(separator: ", "))")
            }
        }
        guard events >= 1 else { throw ValidationError("--events must be positive") }
        guard (1...10_000).contains(repetitions) else { throw ValidationError("--repetitions must be 1 to 10000") }
        guard (0...1_000).contains(coldRepetitions) else { throw ValidationError("--cold-repetitions must be 0 to 1000") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be 1 to 100") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
        if result.status == "failed" { throw ExitCode(1) }
    }

    // MARK: The suite

    enum Call: Sendable {
        case query(Vigil_V1_QueryRequest)
        case aggregate(Vigil_V1_AggregateRequest)

        var method: String {
            switch self {
            case .query: "Query"
            case .aggregate: "Aggregate"
            }
        }

        /// The request in its protobuf JSON form.
        var requestJSON: String {
            var options = JSONEncodingOptions()
            options.useDeterministicOrdering = true
            switch self {
            case .query(let request): return (try? request.jsonString(options: options)) ?? "?"
            case .aggregate(let request): return (try? request.jsonString(options: options)) ?? "?"
            }
        }
    }

    struct Spec: Sendable {
        /// "Q1" … "Q8".
        var id: String
        var name: String
        var description: String
        var call: Call
        var how: String
        /// The target for p50 at 10 million events, in milliseconds.
        var targetMs: Double
    }

    /// The data set size the targets are set for.
    static let targetEvents = 10_000_000

    static func suite(_ dataset: Dataset) -> [Spec] {
        let end = dataset.end
        let hour: Int64 = 3_600_000_000_000
        let day = 24 * hour
        /// Times relative to the data set's end (not the clock), so a reused data set asks the same.
        func filter(since: Int64?, _ build: (inout Vigil_V1_Filter) -> Void = { _ in }) -> Vigil_V1_Filter {
            var filter = Vigil_V1_Filter()
            if let since {
                filter.since = Google_Protobuf_Timestamp(unixNanos: end - since)
                filter.until = Google_Protobuf_Timestamp(unixNanos: end + 1_000_000_000)
            }
            build(&filter)
            return filter
        }
        func query(_ filter: Vigil_V1_Filter, limit: UInt64, order: Vigil_V1_Order = .newestFirst) -> Call {
            var request = Vigil_V1_QueryRequest()
            request.filter = filter
            request.limit = limit
            request.order = order
            return .query(request)
        }
        func aggregate(_ filter: Vigil_V1_Filter, groupBy: Vigil_V1_GroupBy = .none) -> Call {
            var request = Vigil_V1_AggregateRequest()
            request.filter = filter
            request.groupBy = groupBy
            if groupBy != .none { request.top = 1_000 }  // every group
            return .aggregate(request)
        }
        let picks = dataset.picks
        return [
            Spec(
                id: "Q1", name: "tenant-newest-100-24h", description: "newest 100 events of tenant \(picks.tenant) in the last 24 h",
                call: query(filter(since: day) { $0.tenants = [picks.tenant] }, limit: 100),
                how: "Query tenants, since 24 h, limit 100", targetMs: 0.5),
            Spec(
                id: "Q2", name: "tenant-7d-count-by-action", description: "count of \(picks.tenant)'s events over 7 days by action",
                call: aggregate(filter(since: 7 * day) { $0.tenants = [picks.tenant] }, groupBy: .action),
                how: "Aggregate tenants, since 7 d, group_by ACTION, top 1000", targetMs: 10),
            Spec(
                id: "Q3", name: "actor-non-success-30d",
                description: "newest 100 non-success events of actor \(picks.actor) over 30 days",
                call: query(
                    filter(since: 30 * day) {
                        $0.actorIds = [picks.actor]
                        $0.excludeOutcomes = [.success]
                    }, limit: 100),
                how: "Query actor_ids, exclude_outcomes [SUCCESS], since 30 d, limit 100", targetMs: 2),
            Spec(
                id: "Q4", name: "tenant-substring-search",
                description: """
                    newest 100 events of \(picks.tenant) over 30 days that contain '\(picks.searchNeedle)' \
                    (a user's e-mail address; the median user by activity, named by \(grouped(picks.searchNeedleEvents)) events)
                    """,
                call: query(
                    filter(since: 30 * day) {
                        $0.tenants = [picks.tenant]
                        $0.search = picks.searchNeedle
                    }, limit: 100),
                how: "Query tenants, search, since 30 d, limit 100", targetMs: 100),
            Spec(
                id: "Q5", name: "resource-history",
                description: "full history of \(picks.resourceType) \(picks.resourceID) (a typical resource of the tenant: the median by events, \(picks.resourceEvents) of them), oldest first",
                call: query(filter(since: nil) { $0.resourceIds = [picks.resourceID] }, limit: 0, order: .oldestFirst),
                how: "Query resource_ids, oldest first, limit 0 (every page, default page size)", targetMs: 3),
            Spec(
                id: "Q6", name: "trace-id", description: "the events of trace id \(picks.traceID) (the middle event's)",
                call: query(filter(since: nil) { $0.traceIds = [picks.traceID] }, limit: 0),
                how: "Query trace_ids, limit 0", targetMs: 1),
            Spec(
                id: "Q7", name: "all-tenants-1h-count", description: "count of all tenants' events in the last hour",
                call: aggregate(filter(since: hour)), how: "Aggregate since 1 h, count only", targetMs: 1),
            Spec(
                id: "Q8", name: "count-by-outcome-all", description: "count of every event by outcome",
                call: aggregate(filter(since: nil), groupBy: .outcome), how: "Aggregate, no filter, group_by OUTCOME",
                targetMs: 20),
        ]
    }

    /// What a call's trailers say it read.
    struct ScanFigures: Sendable, Equatable {
        var rowsExamined: Int?
        var blocksScanned: Int?
        var blocksSkipped: Int?
        var blocksFromStatistics: Int?
        var bytesDecompressed: Int?

        init(trailers: [String: String]) {
            func value(_ key: String) -> Int? { trailers["vigil." + key].flatMap { Int($0) } }
            rowsExamined = value("rows-examined")
            blocksScanned = value("blocks-scanned")
            blocksSkipped = value("blocks-skipped")
            blocksFromStatistics = value("blocks-from-statistics")
            bytesDecompressed = value("bytes-decompressed")
        }

        var json: JSONValue {
            [
                "rowsExamined": .optional(rowsExamined), "blocksScanned": .optional(blocksScanned),
                "blocksSkipped": .optional(blocksSkipped), "blocksFromStatistics": .optional(blocksFromStatistics),
                "bytesDecompressed": .optional(bytesDecompressed),
            ]
        }
    }

    struct Run: Sendable {
        var micros: Double
        /// Query: the events returned. Aggregate: the count.
        var events: Int
        /// Aggregate with group_by: the groups returned.
        var groups: Int?
        /// Query: the trace ids of the events returned (to check Q6).
        var traceIDs: Set<String> = []
        var scan: ScanFigures
    }

    static func runOnce(_ client: VigilClient, _ spec: Spec) async throws -> Run {
        let started = ContinuousClock.now
        switch spec.call {
        case .query(let request):
            var pages = client.queryPages(request, window: 4, timeout: .seconds(600)).makeAsyncIterator()
            var count = 0
            var traces: Set<String> = []
            // The pages are kept until the clock stops, as an application keeps
            // the answer it asked for (and as the Aggregate path keeps its
            // response): freeing 100 decoded events takes about 0.02 ms.
            var received: [Vigil_V1_QueryResponse] = []
            while let page = try await pages.next() {
                count += page.events.count
                if !request.filter.traceIds.isEmpty { for event in page.events { traces.insert(event.traceID) } }
                received.append(page)
            }
            let micros = (ContinuousClock.now - started).microseconds
            withExtendedLifetime(received) {}
            return Run(micros: micros, events: count, traceIDs: traces, scan: ScanFigures(trailers: pages.trailers))
        case .aggregate(let request):
            let (response, trailers) = try await client.aggregateWithStatistics(request, timeout: .seconds(600))
            let micros = (ContinuousClock.now - started).microseconds
            return Run(
                micros: micros, events: Int(response.count), groups: request.groupBy == .none ? nil : response.groups.count,
                scan: ScanFigures(trailers: trailers))
        }
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
                "formatVersion": 2, "seed": .string(String(seed)), "events": .int(events),
                "endUnixNanos": .string(String(end)), "picks": picks.json,
            ]
        }

        /// Reads a description; one written by an older vigil-bench (without
        /// the trace id and search picks) gets its picks found again from the
        /// generator, and is rewritten.
        static func read(_ path: String) throws -> Dataset {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let seed = (object["seed"] as? String).flatMap({ UInt64($0) }),
                let events = object["events"] as? Int,
                let end = (object["endUnixNanos"] as? String).flatMap({ Int64($0) }),
                let pickObject = object["picks"] as? [String: Any]
            else { throw BenchError("\(path) is not a vigil-bench data set description") }
            if let picks = DatasetPicks(json: pickObject) {
                return Dataset(seed: seed, events: events, end: end, picks: picks)
            }
            progress("\(path) predates the trace-id and search picks: generating the \(grouped(events)) events again to find them")
            let dataset = Dataset(seed: seed, events: events, end: end, picks: PickTracker.regenerate(seed: seed, count: events, end: end))
            try (dataset.json.rendered() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return dataset
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
        let onlyIDs = self.onlyIDs
        let specs = Self.suite(dataset).filter { onlyIDs?.contains($0.id) ?? true }

        // Warm: per round, a server, each query once unmeasured, then `repetitions` times.
        progress("warm runs: \(specs.count) queries × \(repetitions)" + (rounds > 1 ? ", \(rounds) rounds" : ""))
        let loadBefore = Self.loadAverage()
        var warmRounds: [[String: [Run]]] = []
        var restarts: [Double] = []
        let serverDirectory = directory + "/server"
        var memory: (resident: Int?, peak: Int?) = (nil, nil)
        for round in 0..<rounds {
            if rounds > 1 { progress("warm round \(round + 1) of \(rounds)") }
            let clock = ContinuousClock.now
            let server = try await launcher.start(dataDirectory: serverDirectory)
            restarts.append((ContinuousClock.now - clock).microseconds)
            do {
                try await withClients(1, server.clientConfiguration) { clients in
                    let client = clients[0]
                    // One query after another, each on the connection's thread.
                    warmRounds.append(
                        try await withTaskExecutorPreference(client.executor) {
                            var warm: [String: [Run]] = [:]
                            for spec in specs {
                                _ = try await Self.runOnce(client, spec)
                                for _ in 0..<repetitions {
                                    warm[spec.id, default: []].append(try await Self.runOnce(client, spec))
                                }
                            }
                            return warm
                        })
                }
                memory = server.memory()
            } catch {
                await server.kill9()
                throw error
            }
            try await server.stopChecked()
        }

        // Cold: a restart before every measured run.
        var cold: [String: [Run]] = [:]
        if coldRepetitions > 0 {
            progress("cold runs: \(specs.count) queries × \(coldRepetitions), each after a restart")
        }
        for _ in 0..<coldRepetitions {
            for spec in specs {
                let clock = ContinuousClock.now
                let run = try await withServer(launcher, dataDirectory: serverDirectory) { server in
                    restarts.append((ContinuousClock.now - clock).microseconds)
                    return try await withClients(1, server.clientConfiguration) { clients in
                        try await Self.runOnce(clients[0], spec)
                    }
                }
                cold[spec.id, default: []].append(run)
            }
        }
        var result = report(
            dataset: dataset, reused: reused, specs: specs, warmRounds: warmRounds, cold: cold, restarts: restarts, memory: memory)
        // Other work on the machine skews every time: how much there was while the queries ran.
        let loadAfter = Self.loadAverage()
        if case .object(var pairs) = result.results {
            pairs.append(("loadAverage1m", ["beforeWarmRuns": .optional(loadBefore), "afterColdRuns": .optional(loadAfter)]))
            result.results = .object(pairs)
        }
        result.notes.append(
            "1-minute load average on \(ProcessInfo.processInfo.activeProcessorCount) cores: \(loadBefore.map { fixed($0, 2) } ?? "?") before the warm runs, \(loadAfter.map { fixed($0, 2) } ?? "?") after the cold runs")
        return result
    }

    /// The 1-minute load average, from /proc/loadavg.
    static func loadAverage() -> Double? {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) }
    }

    func report(
        dataset: Dataset, reused: Bool, specs: [Spec], warmRounds: [[String: [Run]]], cold: [String: [Run]], restarts: [Double],
        memory: (resident: Int?, peak: Int?)
    ) -> WorkloadResult {
        // Every round's runs together, for p99, minimum, maximum and answers.
        var warm: [String: [Run]] = [:]
        for round in warmRounds { warm.merge(round) { $0 + $1 } }
        var result = WorkloadResult(workload: "query")
        result.parameters = [
            "events": .int(dataset.events), "seed": .string(String(dataset.seed)), "repetitions": .int(repetitions),
            "coldRepetitions": .int(coldRepetitions), "rounds": .int(warmRounds.count), "dataDir": .optional(dataDir), "reusedDataSet": .bool(reused),
            "dataSet": dataset.json, "only": .optional(onlyIDs.map { $0.sorted().joined(separator: ",") }),
        ]
        var table = TextTable(
            title: """
                query: \(grouped(dataset.events)) events; warm × \(repetitions)\(warmRounds.count > 1 ? " in each of \(warmRounds.count) rounds" : ""), \
                cold (after a restart) × \(coldRepetitions); times in ms; target: p50 at \(grouped(Self.targetEvents)) events, \
                judged by the warm p50\(warmRounds.count > 1 ? " (the median of the rounds' p50s)" : "")
                """,
            header: [
                "query", "call", "events", "groups", "rows examined", "blocks scanned", "skipped", "from stats",
                "decompressed warm", "cold", "warm p50", "warm p99", "cold p50", "cold p99", "target", "",
            ] + (warmRounds.count > 1 ? ["rounds' p50"] : []))
        var entries: [JSONValue] = []
        var problems: [String] = []
        for spec in specs {
            let warmRuns = warm[spec.id] ?? []
            let coldRuns = cold[spec.id] ?? []
            let allRuns = warmRuns + coldRuns
            /// `runs`' figures; with `roundP50s`, p50 is their median and they are listed too.
            func stats(_ runs: [Run], roundP50s: [Double]? = nil) -> JSONValue {
                let micros = runs.map(\.micros)
                guard !micros.isEmpty else { return .null }
                var pairs: [(String, JSONValue)] = [
                    ("p50", .optional(percentile(roundP50s ?? micros, 50).map { $0 / 1000 })),
                    ("p99", .optional(percentile(micros, 99).map { $0 / 1000 })),
                    ("min", .optional(micros.min().map { $0 / 1000 })), ("max", .optional(micros.max().map { $0 / 1000 })),
                    ("samples", .int(micros.count)),
                ]
                if let roundP50s { pairs.append(("roundP50s", .array(roundP50s.map { .double($0 / 1000) }))) }
                return .object(pairs)
            }
            let sample = warmRuns.last ?? coldRuns.last
            let coldSample = coldRuns.last
            // Every run must give the same answer.
            if let first = allRuns.first, allRuns.contains(where: { $0.events != first.events || $0.groups != first.groups }) {
                problems.append("\(spec.id) answered differently across runs: \(allRuns.map { String($0.events) }.joined(separator: ", "))")
            }
            // Each round's p50: the query is judged by their median (with one
            // round, that round's p50 is every run's).
            let roundP50s = warmRounds.compactMap { round in percentile((round[spec.id] ?? []).map(\.micros), 50) }
            let warmP50Micros = percentile(roundP50s, 50)
            let warmP50 = warmP50Micros.map { $0 / 1000 }
            let met = warmP50.map { $0 <= spec.targetMs }
            let coldP50 = percentile(coldRuns.map(\.micros), 50).map { $0 / 1000 }
            var entry: [(String, JSONValue)] = [
                ("id", .string(spec.id)), ("name", .string(spec.name)), ("description", .string(spec.description)),
                ("method", .string(spec.call.method)), ("how", .string(spec.how)), ("request", .string(spec.call.requestJSON)),
            ]
            switch spec.call {
            case .query: entry.append(("eventsReturned", .optional(sample?.events)))
            case .aggregate:
                entry.append(("count", .optional(sample?.events)))
                entry.append(("groups", .optional(sample?.groups)))
            }
            entry += [
                ("scanWarm", sample.map(\.scan.json) ?? .null), ("scanCold", coldSample.map(\.scan.json) ?? .null),
                ("warmMs", stats(warmRuns, roundP50s: roundP50s)), ("coldMs", stats(coldRuns)),
                ("target", [
                    "p50Ms": .double(spec.targetMs), "atEvents": .int(Self.targetEvents),
                    "metByWarmP50": met.map(JSONValue.bool) ?? .null,
                    "metByColdP50": coldP50.map { .bool($0 <= spec.targetMs) } ?? .null,
                ]),
            ]
            entries.append(.object(entry))
            func cell(_ runs: [Run], _ p: Double) -> String {
                percentile(runs.map(\.micros), p).map(millis) ?? "-"
            }
            func count(_ value: Int?) -> String { value.map(grouped) ?? "-" }
            let verdict: String
            if let warmP50, let met {
                verdict = met ? "met" : "missed \(fixed(warmP50 / spec.targetMs, 1))×"
            } else {
                verdict = "-"
            }
            table.rows.append([
                "\(spec.id) \(spec.name)", spec.call.method, count(sample?.events), count(sample?.groups),
                count(sample?.scan.rowsExamined), count(sample?.scan.blocksScanned), count(sample?.scan.blocksSkipped),
                count(sample?.scan.blocksFromStatistics), sample?.scan.bytesDecompressed.map(bytesText) ?? "-",
                coldSample?.scan.bytesDecompressed.map(bytesText) ?? "-",
                warmP50Micros.map(millis) ?? "-", cell(warmRuns, 99), cell(coldRuns, 50), cell(coldRuns, 99),
                spec.targetMs < 1 ? fixed(spec.targetMs, 1) : fixed(spec.targetMs, 0), verdict,
            ] + (warmRounds.count > 1 ? ["\(roundP50s.min().map(millis) ?? "-")–\(roundP50s.max().map(millis) ?? "-")"] : []))
        }
        // What the data set guarantees.
        if let q8 = warm["Q8"]?.last ?? cold["Q8"]?.last, q8.events != dataset.events {
            problems.append("Q8 counted \(grouped(q8.events)) events, the data set has \(grouped(dataset.events))")
        }
        if let q6 = warm["Q6"]?.last ?? cold["Q6"]?.last, q6.events < 1 || q6.traceIDs != [dataset.picks.traceID] {
            problems.append("Q6 returned \(q6.events) events for trace id \(dataset.picks.traceID), which the data set holds")
        }
        result.results = [
            "queries": .array(entries),
            "serverStartMs": [
                "p50": .optional(percentile(restarts, 50).map { $0 / 1000 }),
                "max": .optional(restarts.max().map { $0 / 1000 }), "samples": .int(restarts.count),
            ],
            "serverMemoryAfterWarmRuns": ["rssBytes": .optional(memory.resident), "peakRssBytes": .optional(memory.peak)],
            "loadSeconds": .optional(dataset.loadSeconds),
            "problems": .array(problems.map { .string($0) }),
        ]
        result.tables = [table]
        for spec in specs { result.notes.append("\(spec.id): \(spec.description) (\(spec.how))") }
        result.notes.append("events: events returned (Query) or the count (Aggregate); groups: groups returned (Aggregate with group_by)")
        result.notes.append("rows examined, blocks and bytes decompressed are the call's trailers (warm: the last warm run; cold: the last cold run)")
        if dataset.events != Self.targetEvents {
            result.notes.append("the targets are for \(grouped(Self.targetEvents)) events; this data set has \(grouped(dataset.events))")
        }
        result.notes.append("the server runs with its default settings (its default decoded-column cache included) plus --retention forever")
        result.notes.append("with R samples, p99 is the slowest of them when R < 100")
        if let load = dataset.loadSeconds {
            result.notes.append("loading took \(fixed(load, 1)) s (\(grouped(Int(Double(dataset.events) / max(load, 1e-9)))) events/s)")
        }
        for problem in problems { result.notes.append("PROBLEM: " + problem) }
        if !problems.isEmpty { result.status = "failed" }
        return result
    }
}
