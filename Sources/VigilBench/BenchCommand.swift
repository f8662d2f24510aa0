import ArgumentParser
import Foundation
import NIOCore
import VigilBenchKit
import VigilClient
import VigilCore
import VigilProto

@main
struct VigilBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-bench",
        abstract: "Benchmarks for Vigil on realistic, generated audit events.",
        discussion: """
            Each workload starts its own `vigil serve` (the binary next to vigil-bench, \
            or --vigil PATH) on 127.0.0.1 with a fresh temporary data directory, prints \
            a table, and writes every figure with the machine, build and git revision \
            to --json PATH (default bench-results/<workload>-<timestamp>.json).
              vigil-bench ingest       events/s, MB/s, ack latency, server RSS
              vigil-bench query        a fixed query suite, warm and cold
              vigil-bench storage      bytes/event on disk, per column, vs JSON
              vigil-bench subscribe    live delivery latency while ingesting
              vigil-bench all --quick  a small run of everything (CI smoke)
              vigil-bench chain        CPU per event of the hash chain (no server)
              vigil-bench flush        CPU per event of decoding and flushing (no server)
              vigil-bench merge        time, CPU and peak memory of one merge (no server)
              vigil-bench generate --events 100000 > events.jsonl
            For real numbers build in release: swift build -c release.
            """,
        subcommands: [
            IngestWorkload.self, QueryWorkload.self, SubscribeWorkload.self, StorageWorkload.self, AllWorkload.self,
            GenerateCommand.self, ChainWorkload.self, FlushWorkload.self, MergeWorkload.self,
        ]
    )
}

/// Options every workload takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Write the results here (default: bench-results/<workload>-<timestamp>.json).", valueName: "path"))
    var json: String?

    @Option(name: .long, help: "Seed of the event generator: the same seed gives the same events.")
    var seed: UInt64 = 42

    @Option(name: .long, help: ArgumentHelp("The vigil binary to start (default: the one next to vigil-bench).", valueName: "path"))
    var vigil: String?

    @Flag(name: .long, help: "Keep the temporary data directories (their paths are printed).")
    var keepData = false

    func launcher(_ arguments: [String]) throws -> ServerLauncher {
        try ServerLauncher(binary: vigil, arguments: arguments)
    }

    /// Removes a temporary directory unless --keep-data.
    func cleanUp(_ directory: String) {
        if keepData {
            print("kept data in \(directory)")
        } else {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

/// Prints progress on stderr (stdout holds the tables).
func progress(_ text: String) {
    FileHandle.standardError.write(Data(("vigil-bench: " + text + "\n").utf8))
}

// MARK: Loading a data set

/// Ids of the generated data set that the query suite asks about.
struct DatasetPicks: Sendable {
    /// The largest tenant.
    var tenant: String
    /// The tenant's most active user.
    var actor: String
    /// A typical pooled resource of the tenant: the median by events (the
    /// most touched one is an outlier whose history is tens of thousands of events).
    var resourceType: String
    var resourceID: String
    /// The events naming that resource.
    var resourceEvents: Int
    /// The trace id of the event in the middle of the data set (generator
    /// index count / 2), so neither the newest nor the oldest data.
    var traceID: String
    /// The substring the search query looks for: the e-mail address of the
    /// tenant's median user by activity (the user named by the most events,
    /// as actor or resource, is first; this one is in the middle).
    var searchNeedle: String
    /// The tenant's events that name that address (as actor e-mail or resource name).
    var searchNeedleEvents: Int

    var json: JSONValue {
        [
            "tenant": .string(tenant), "actor": .string(actor), "resourceType": .string(resourceType), "resourceId": .string(resourceID),
            "resourceEvents": .int(resourceEvents),
            "traceId": .string(traceID), "searchNeedle": .string(searchNeedle), "searchNeedleEvents": .int(searchNeedleEvents),
        ]
    }

    init(
        tenant: String, actor: String, resourceType: String, resourceID: String, resourceEvents: Int, traceID: String,
        searchNeedle: String, searchNeedleEvents: Int
    ) {
        self.tenant = tenant
        self.actor = actor
        self.resourceType = resourceType
        self.resourceID = resourceID
        self.resourceEvents = resourceEvents
        self.traceID = traceID
        self.searchNeedle = searchNeedle
        self.searchNeedleEvents = searchNeedleEvents
    }

    /// Nil when a field is missing (a description written by an older vigil-bench).
    init?(json: [String: Any]) {
        guard let tenant = json["tenant"] as? String, let actor = json["actor"] as? String,
            let type = json["resourceType"] as? String, let id = json["resourceId"] as? String,
            let trace = json["traceId"] as? String, let needle = json["searchNeedle"] as? String,
            let needleEvents = json["searchNeedleEvents"] as? Int, let resourceEvents = json["resourceEvents"] as? Int
        else { return nil }
        self.init(
            tenant: tenant, actor: actor, resourceType: type, resourceID: id, resourceEvents: resourceEvents, traceID: trace,
            searchNeedle: needle, searchNeedleEvents: needleEvents)
    }
}

/// Finds the data set's picks while its events go by, in generator order.
struct PickTracker {
    let topTenant = EventVocabulary.tenantNames[0]
    /// The generator index whose trace id is picked.
    let traceIndex: Int
    private var index = 0
    private var actorCounts: [String: Int] = [:]
    private var resourceCounts: [String: Int] = [:]
    private var resourceTypes: [String: String] = [:]
    private var emailCounts: [String: Int] = [:]
    private var traceID = ""

    init(count: Int) {
        traceIndex = count / 2
    }

    mutating func observe(_ events: [AuditEvent]) {
        for event in events {
            defer { index += 1 }
            if index == traceIndex { traceID = event.traceID }
            guard event.tenant == topTenant else { continue }
            if event.actor.type == .user { actorCounts[event.actor.id, default: 0] += 1 }
            if event.resource.type != "user" && event.resource.type != "token" {
                resourceCounts[event.resource.id, default: 0] += 1
                resourceTypes[event.resource.id] = event.resource.type
            }
            // The user e-mail addresses the event names, each once.
            let actorEmail = event.actor.type == .user ? event.actor.email : ""
            let resourceEmail = event.resource.type == "user" ? event.resource.name : ""
            if !actorEmail.isEmpty { emailCounts[actorEmail, default: 0] += 1 }
            if !resourceEmail.isEmpty && resourceEmail != actorEmail { emailCounts[resourceEmail, default: 0] += 1 }
        }
    }

    var picks: DatasetPicks {
        func top(_ counts: [String: Int]) -> String {
            counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? ""
        }
        let resources = resourceCounts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
        let resource = resources.isEmpty ? nil : resources[resources.count / 2]
        let byActivity = emailCounts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
        let median = byActivity.isEmpty ? nil : byActivity[byActivity.count / 2]
        return DatasetPicks(
            tenant: topTenant, actor: top(actorCounts), resourceType: resource.flatMap { resourceTypes[$0.key] } ?? "",
            resourceID: resource?.key ?? "", resourceEvents: resource?.value ?? 0, traceID: traceID, searchNeedle: median?.key ?? "", searchNeedleEvents: median?.value ?? 0)
    }

    /// The picks of a data set, found by generating its events again (the
    /// generator is deterministic), without a server.
    static func regenerate(seed: UInt64, count: Int, end: UnixNanos) -> DatasetPicks {
        var generator = EventGenerator(seed: seed, count: count, end: end)
        var tracker = PickTracker(count: count)
        while generator.remaining > 0 { tracker.observe(generator.nextBatch(10_000)) }
        return tracker.picks
    }
}

struct LoadResult: Sendable {
    var events = 0
    var protobufBytes = 0
    /// The JSON-lines size of the same events (newline included), when asked for.
    var jsonBytes: Int?
    var seconds = 0.0
    var picks: DatasetPicks
}

/// Generates `count` events ending at `end` and ingests them all (distinct
/// events, not a replayed pool), tracking the ids the query suite needs.
func loadDataset(
    server: ServerProcess, seed: UInt64, count: Int, end: UnixNanos, batchSize: Int = 5_000,
    connections: Int = 2, inFlight: Int = 8, measureJSON: Bool = false
) async throws -> LoadResult {
    var generator = EventGenerator(seed: seed, count: count, end: end)
    var tracker = PickTracker(count: count)
    var protobufBytes = 0
    var jsonBytes = 0
    let started = ContinuousClock.now
    let stored = try await withClients(connections, server.clientConfiguration) { clients in
        var stored = 0
        var lastReport = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            var running = 0
            var sent = 0
            while generator.remaining > 0 {
                let events = generator.nextBatch(batchSize)
                tracker.observe(events)
                if measureJSON {
                    for event in events { jsonBytes += try EventGenerator.jsonLine(event).utf8.count + 1 }
                }
                let bytes = try EventGenerator.encodeBatch(events)
                protobufBytes += bytes.count
                if running == clients.count * inFlight, let done = try await group.next() {
                    stored += done
                    running -= 1
                }
                let client = clients[sent % clients.count]
                sent += 1
                running += 1
                group.addTask {
                    Int(try await client.ingest(preencoded: ByteBuffer(bytes: bytes), timeout: .seconds(120)).count)
                }
                if ContinuousClock.now - lastReport > .seconds(5) {
                    lastReport = .now
                    progress("loaded \(grouped(stored)) of \(grouped(count)) events")
                }
            }
            for try await done in group { stored += done }
        }
        return stored
    }
    let seconds = (ContinuousClock.now - started).seconds
    guard stored == count else { throw BenchError("the server stored \(stored) of \(count) events") }
    return LoadResult(
        events: stored, protobufBytes: protobufBytes, jsonBytes: measureJSON ? jsonBytes : nil, seconds: seconds,
        picks: tracker.picks)
}

/// The current time, whole seconds (so a data set's end time prints plainly).
func nowRoundedToSeconds() -> UnixNanos {
    currentUnixNanos() / 1_000_000_000 * 1_000_000_000
}
