import Foundation
import SwiftProtobuf
import Testing
import VigilBenchKit
import VigilCore
import VigilProto

@Suite("vigil-bench's event generator")
struct GeneratorTests {
    /// A fixed end time, so the tests see the same events on every run.
    static let end: UnixNanos = 1_795_000_000 * 1_000_000_000
    static let vocabulary = EventVocabulary(seed: 7)

    static func events(_ count: Int, seed: UInt64 = 7) -> [AuditEvent] {
        var generator = EventGenerator(seed: seed, count: count, end: end, vocabulary: seed == 7 ? vocabulary : nil)
        return generator.nextBatch(count)
    }

    @Test("the same seed gives the same events; another seed other events")
    func deterministic() throws {
        let first = Self.events(2_000)
        let again = Self.events(2_000)
        #expect(first == again)
        #expect(try EventGenerator.encodeBatch(first) == EventGenerator.encodeBatch(again))
        #expect(try first.map(EventGenerator.jsonLine) == again.map(EventGenerator.jsonLine))
        let other = Self.events(2_000, seed: 8)
        #expect(first != other)
        // Batches of any size continue the same stream.
        var generator = EventGenerator(seed: 7, count: 2_000, end: Self.end, vocabulary: Self.vocabulary)
        var pieces: [AuditEvent] = []
        for size in [1, 999, 500, 1_000] { pieces += generator.nextBatch(size) }
        #expect(pieces == first)
        #expect(generator.next() == nil)
    }

    @Test("distributions: about 95% success, about 50 skewed tenants, about 60 skewed actions")
    func distributions() {
        let events = Self.events(20_000)
        let success = Double(events.filter { $0.outcome == .success }.count) / Double(events.count)
        #expect(abs(success - 0.95) <= 0.02, "success share \(success)")

        // Failures cluster on logins.
        let failures = events.filter { $0.outcome != .success }
        let loginFailures = failures.filter { $0.category == .login }.count
        #expect(Double(loginFailures) / Double(failures.count) > 0.5)

        var tenants: [String: Int] = [:]
        for event in events { tenants[event.tenant, default: 0] += 1 }
        #expect((45...50).contains(tenants.count), "\(tenants.count) tenants")
        let sizes = tenants.values.sorted(by: >)
        #expect(Double(sizes[0]) / Double(events.count) > 0.15, "the largest tenant has \(sizes[0])")
        #expect(sizes[0] > 20 * sizes[sizes.count - 1], "skew: \(sizes[0]) vs \(sizes[sizes.count - 1])")

        var actions: [String: Int] = [:]
        for event in events { actions[event.action, default: 0] += 1 }
        #expect((50...70).contains(actions.count), "\(actions.count) actions")
        let top = actions.sorted { $0.value > $1.value }.prefix(2).map(\.key)
        #expect(Set(top) == ["auth.login", "credential.token_refresh"])

        #expect(Self.vocabulary.users.count >= 4_500 && Self.vocabulary.users.count <= 5_500)
        let actorTypes = Set(events.map(\.actor.type))
        #expect(actorTypes == [.user, .apiToken, .system])
        let resources = Self.vocabulary.resourcePools.values.reduce(0) { $0 + $1.total }
        #expect(resources >= 180_000 && resources <= 220_000, "\(resources) pooled resource ids")
    }

    @Test("the shape of an event: hex ids, addresses, changes on updates, metadata, time order")
    func shape() {
        let events = Self.events(5_000)
        let hex = Set("0123456789abcdef")
        for event in events {
            #expect(event.traceID.count == 32 && event.traceID.allSatisfy(hex.contains))
            if !event.requestID.isEmpty { #expect(event.requestID.count == 32 && event.requestID.allSatisfy(hex.contains)) }
            #expect(event.metadata.count <= 4)
            #expect(IPAddress(event.sourceIp) != nil)
            #expect(!event.resource.type.isEmpty && !event.resource.id.isEmpty)
            if event.action.hasPrefix("auth.login") { #expect(event.resource.type == "user") }
            if event.action.hasPrefix("pod.") { #expect(event.resource.type == "pod") }
        }
        let updates = events.filter { $0.category == .update && $0.outcome == .success }
        #expect(!updates.isEmpty && updates.allSatisfy { !$0.changes.isEmpty })
        #expect(events.contains { $0.sourceIp.contains(":") } && events.contains { $0.sourceIp.contains(".") })
        let times = events.map(\.occurredAt.unixNanos)
        #expect(times.allSatisfy { $0 <= Self.end && $0 >= Self.end - EventGenerator.defaultSpanNanos })
        #expect(times.first! < Self.end - 29 * 86_400 * 1_000_000_000 && times.last! > Self.end - 86_400 * 1_000_000_000)
        // Mostly in order: an event is rarely more than a minute older than the one before it.
        let outOfOrder = zip(times, times.dropFirst()).filter { $1 < $0 - 60_000_000_000 }.count
        #expect(outOfOrder < events.count / 50)
    }

    @Test("every event passes the server's validator")
    func valid() {
        var events = Self.events(5_000)
        let errors = EventValidator().validate(&events, now: Self.end)
        #expect(errors.isEmpty, "\(errors.prefix(5))")
    }

    @Test("JSON lines round trip through AuditEvent(jsonString:)")
    func jsonRoundTrip() throws {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = false
        for event in Self.events(1_000) {
            let line = try EventGenerator.jsonLine(event)
            #expect(!line.contains("\n"))
            #expect(try AuditEvent(jsonString: line, options: options) == event)
        }
    }
}

@Suite("vigil-bench as a process")
struct BenchSmokeTests {
    static var binaryDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    @Test(
        "bad options are refused before anything runs: exit status 64 and the option named",
        arguments: [
            (["flush", "--events", "0"], "--events must be positive"),
            (["flush", "--days", "0"], "--days must be 1 to 3650"),
            (["flush", "--batch-size", "10001"], "--batch-size must be 1 to 10000"),
            (["flush", "--repetitions", "0"], "--repetitions must be 1 to 1000"),
            (["merge", "--parts", "1"], "--parts must be 2 to 64"),
            (["merge", "--rows-per-part", "0"], "--rows-per-part must be positive"),
            (["merge", "--memory-budget-mb", "8"], "--memory-budget-mb must be 16 to 1048576"),
            (["merge", "--parts", "8", "--rows-per-part", "459000"], "over the 2000000 rows one merge takes"),
            (["ingest", "--in-flight", "0"], "--in-flight must be 1 to 128"),
            (["storage", "--events", "0"], "--events must be positive"),
            (["subscribe", "--subscribers", "0"], "--subscribers must be 1 to 5000"),
            (["query", "--cold-repetitions", "1001"], "--cold-repetitions must be 0 to 1000"),
            (["query", "--rounds", "0"], "--rounds must be 1 to 100"),
            (["query", "--only", "Q1,q9"], "--only takes query ids Q1 to Q8, not Q9"),
            (["query", "--only", ","], "--only needs at least one query id, Q1 to Q8"),
        ])
    func badOptions(_ arguments: [String], _ message: String) async throws {
        let process = Process()
        process.executableURL = Self.binaryDirectory.appendingPathComponent("vigil-bench")
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-options-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        let (exited, exit) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exit.finish() }
        try process.run()
        for await _ in exited {}
        try handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 64, "\(text)")
        #expect(text.contains(message), "\(text)")
    }

    @Test("`vigil-bench all --quick` runs every workload and writes the JSON results")
    func allQuick() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("all.json").path

        let process = Process()
        process.executableURL = Self.binaryDirectory.appendingPathComponent("vigil-bench")
        process.arguments = ["all", "--quick", "--json", json, "--vigil", Self.binaryDirectory.appendingPathComponent("vigil").path]
        process.currentDirectoryURL = directory
        let output = directory.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        // Waited for without blocking a thread: the run takes seconds to a minute, and a
        // blocked thread is one of the two the cooperative pool has for every async test
        // of this process (two blocked at once stall them all).
        let (exited, exit) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exit.finish() }
        try process.run()
        // A bound on the run, whatever happens: vigil-bench stops its servers when terminated.
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 240, execute: watchdog)
        for await _ in exited {}
        watchdog.cancel()
        try handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(text)")
        // The quick subscribe run: 10 subscribers, every matching event delivered.
        #expect(text.contains("subscribe: 10 subscribers"), "\(text)")

        let data = try Data(contentsOf: URL(fileURLWithPath: json))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["tool", "workload", "status", "machine", "build", "gitRevision", "parameters", "results"] {
            #expect(document.keys.contains(key), "missing \(key)")
        }
        #expect(document["workload"] as? String == "all")
        let machine = try #require(document["machine"] as? [String: Any])
        #expect((machine["cores"] as? Int ?? 0) >= 1)
        let build = try #require(document["build"] as? [String: Any])
        #expect(["debug", "release"].contains(build["configuration"] as? String ?? ""))
        let results = try #require(document["results"] as? [String: Any])
        #expect(Set(results.keys) == ["ingest", "query", "subscribe", "storage", "flush", "merge"])

        let ingest = try #require((results["ingest"] as? [String: Any])?["results"] as? [String: Any])
        #expect(ingest["eventsAcknowledged"] as? Int == 20_000)
        for key in ["eventsPerSecond", "megabytesPerSecond", "ackLatencyMs", "server"] {
            #expect(ingest.keys.contains(key), "ingest lacks \(key)")
        }
        let latency = try #require(ingest["ackLatencyMs"] as? [String: Any])
        #expect(Set(["p50", "p99", "p999"]).isSubset(of: latency.keys))
        // With the flushes the run left the server: never sooner than the last acknowledgement.
        let flushed = try #require(ingest["withOwedFlushes"] as? [String: Any], "ingest lacks withOwedFlushes")
        let acknowledgedSeconds = try #require(ingest["seconds"] as? Double)
        #expect((flushed["seconds"] as? Double ?? 0) >= acknowledgedSeconds)
        #expect((flushed["eventsPerSecond"] as? Double ?? 0) > 0)

        let query = try #require((results["query"] as? [String: Any])?["results"] as? [String: Any])
        let queries = try #require(query["queries"] as? [[String: Any]])
        #expect(queries.count == 8)
        #expect(queries.map { $0["id"] as? String } == ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"])
        #expect(query["problems"] as? [String] == [], "\(query["problems"] ?? "")")
        for entry in queries {
            let id = entry["id"] as? String ?? "?"
            let warm = entry["warmMs"] as? [String: Any]
            #expect(warm?["p50"] is Double, "\(id) has no warm p50")
            // Two rounds (`all --quick`): the query is judged by the median (nearest rank) of their p50s.
            let rounds = warm?["roundP50s"] as? [Double] ?? []
            #expect(rounds.count == 2, "\(id): round p50s \(rounds)")
            #expect(warm?["p50"] as? Double == rounds.min(), "\(id): p50 \(warm?["p50"] ?? "-") of rounds \(rounds)")
            #expect((warm?["samples"] as? Int) == 6, "\(id): every round's runs pooled for p99")
            let scan = try #require(entry["scanWarm"] as? [String: Any], "\(id) has no scan figures")
            for key in ["rowsExamined", "blocksScanned", "blocksSkipped", "blocksFromStatistics", "bytesDecompressed"] {
                #expect(scan[key] is Int, "\(id) lacks \(key)")
            }
            let target = try #require(entry["target"] as? [String: Any], "\(id) has no target")
            #expect(target["p50Ms"] is Double && target["metByWarmP50"] is Bool, "\(id)")
        }
        let byID = Dictionary(uniqueKeysWithValues: queries.map { ($0["id"] as? String ?? "", $0) })
        #expect(byID["Q8"]?["count"] as? Int == 5_000)
        #expect(byID["Q6"]?["eventsReturned"] as? Int == 1)
        #expect((byID["Q2"]?["groups"] as? Int ?? 0) > 1)
        #expect((byID["Q4"]?["eventsReturned"] as? Int ?? 0) >= 1)

        let subscribe = try #require(results["subscribe"] as? [String: Any])
        #expect(subscribe["status"] as? String == "ok", "\(subscribe)")
        let subscribeResults = try #require(subscribe["results"] as? [String: Any])
        let expectedEvents = subscribeResults["eventsExpected"] as? Int ?? 0
        #expect(expectedEvents > 0)
        #expect(subscribeResults["eventsDelivered"] as? Int == expectedEvents)
        let delivery = try #require(subscribeResults["deliveryLatencyMs"] as? [String: Any])
        #expect(Set(["p50", "p99", "p999"]).isSubset(of: delivery.keys))

        let flush = try #require((results["flush"] as? [String: Any])?["results"] as? [String: Any])
        #expect(flush["eventsFlushed"] as? Int == 5_000)
        #expect((flush["parts"] as? Int ?? 0) >= 1)
        #expect((flush["partBytes"] as? Int ?? 0) > 0)
        #expect((flush["appendMicros"] as? Double ?? 0) > 0 && (flush["flushMicros"] as? Double ?? 0) > 0, "\(flush)")

        let merge = try #require(results["merge"] as? [String: Any])
        #expect(merge["status"] as? String == "ok", "\(merge)")
        let merged = try #require(merge["results"] as? [String: Any])
        #expect(merged["rows"] as? Int == 6_000)
        #expect((merged["mergeCPUMicrosPerRow"] as? Double ?? 0) > 0 && (merged["partBytesAfter"] as? Int ?? 0) > 0, "\(merged)")
        #if os(Linux)
        #expect((merged["peakResidentBytes"] as? Int ?? 0) >= (merged["residentBeforeBytes"] as? Int ?? .max) / 2, "\(merged)")
        #endif

        let storage = try #require((results["storage"] as? [String: Any])?["results"] as? [String: Any])
        #expect(storage["events"] as? Int == 5_000)
        for key in ["afterFlush", "afterMerge", "columnsAfterMerge", "compressionRatioVsJSONLines", "jsonLinesBytes"] {
            #expect(storage.keys.contains(key), "storage lacks \(key)")
        }
    }
}
