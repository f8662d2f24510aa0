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
            Each workload starts its own `vigil serve` (the binary next to vigil-bench,
            or --vigil PATH) on 127.0.0.1 with a fresh temporary data directory, prints
            a table, and writes every figure with the machine, build and git revision
            to --json PATH (default bench-results/<workload>-<timestamp>.json).
              vigil-bench ingest       events/s, MB/s, ack latency, server RSS
              vigil-bench query        a fixed query suite, warm and cold
              vigil-bench storage      bytes/event on disk, per column, vs JSON
              vigil-bench subscribe    Subscribe (UNIMPLEMENTED by the server yet)
              vigil-bench all --quick  a small run of everything (CI smoke)
              vigil-bench generate --events 100000 > events.jsonl
            For real numbers build in release: swift build -c release.
            """,
        subcommands: [
            IngestWorkload.self, QueryWorkload.self, SubscribeWorkload.self, StorageWorkload.self, AllWorkload.self,
            GenerateCommand.self,
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
    /// The tenant's most touched pooled resource.
    var resourceType: String
    var resourceID: String

    var json: JSONValue {
        ["tenant": .string(tenant), "actor": .string(actor), "resourceType": .string(resourceType), "resourceId": .string(resourceID)]
    }

    init(tenant: String, actor: String, resourceType: String, resourceID: String) {
        self.tenant = tenant
        self.actor = actor
        self.resourceType = resourceType
        self.resourceID = resourceID
    }

    init?(json: [String: Any]) {
        guard let tenant = json["tenant"] as? String, let actor = json["actor"] as? String,
            let type = json["resourceType"] as? String, let id = json["resourceId"] as? String
        else { return nil }
        self.init(tenant: tenant, actor: actor, resourceType: type, resourceID: id)
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
    let topTenant = EventVocabulary.tenantNames[0]
    var actorCounts: [String: Int] = [:]
    var resourceCounts: [String: Int] = [:]
    var resourceTypes: [String: String] = [:]
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
                for event in events where event.tenant == topTenant {
                    if event.actor.type == .user { actorCounts[event.actor.id, default: 0] += 1 }
                    if event.resource.type != "user" && event.resource.type != "token" {
                        resourceCounts[event.resource.id, default: 0] += 1
                        resourceTypes[event.resource.id] = event.resource.type
                    }
                }
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
    let actor = actorCounts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? ""
    let resource = resourceCounts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? ""
    return LoadResult(
        events: stored, protobufBytes: protobufBytes, jsonBytes: measureJSON ? jsonBytes : nil, seconds: seconds,
        picks: DatasetPicks(tenant: topTenant, actor: actor, resourceType: resourceTypes[resource] ?? "", resourceID: resource))
}

/// The current time, whole seconds (so a data set's end time prints plainly).
func nowRoundedToSeconds() -> UnixNanos {
    currentUnixNanos() / 1_000_000_000 * 1_000_000_000
}
