import ArgumentParser
import Foundation
import Histogram
import NIOCore
import Synchronization
import VigilBenchKit
import VigilClient
import VigilCore
import VigilProto

struct IngestWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Ingest throughput and acknowledgement latency.",
        discussion: """
            Opens --connections connections with --in-flight Ingest calls each, and sends --events \
            events in batches of --batch-size. The batches are generated and encoded before the clock \
            starts, from a pool of --pool-events distinct events that is replayed, so the client spends \
            little CPU per call. Ack latency is from sending a call to its answer (HdrHistogram). \
            Without --server it starts `vigil serve --fsync <policy>` on a fresh data directory and \
            also reports the server's memory (VmRSS, VmHWM) and CPU time; then it waits until the \
            server has flushed the sealed segments the run left it (up to its memory budget) and \
            reports events/s and server CPU with those flushes: closer to what it sustains.
            Targets: 1,000,000 events/s with --fsync always and an ack p99 of 20 ms.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Connections to the server.")
    var connections = 4

    @Option(name: .long, help: "Ingest calls in flight on each connection.")
    var inFlight = 8

    @Option(name: .long, help: "Events per batch.")
    var batchSize = 1_000

    @Option(name: .long, help: "Events to send in all.")
    var events = 2_000_000

    @Option(name: .long, help: "Distinct events generated and replayed (memory: about 400 bytes each).")
    var poolEvents = 200_000

    @Option(name: .long, help: ArgumentHelp("Use a running server instead of starting one.", valueName: "host:port"))
    var server: String?

    @Option(name: .long, help: ArgumentHelp("The started server's --fsync: always, interval:<ms> or never.", valueName: "policy"))
    var fsync = "always"

    func validate() throws {
        guard (1...64).contains(connections) else { throw ValidationError("--connections must be 1 to 64") }
        guard (1...128).contains(inFlight) else { throw ValidationError("--in-flight must be 1 to 128") }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
        guard events >= batchSize else { throw ValidationError("--events must be at least --batch-size") }
        guard poolEvents >= 1 else { throw ValidationError("--pool-events must be positive") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
        if result.status == "failed" { throw ExitCode(1) }
    }

    /// A pre-encoded IngestRequest.
    struct Batch: Sendable {
        var buffer: ByteBuffer
        var events: Int
    }

    struct SlotResult: Sendable {
        var latencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var events = 0
        var bytes = 0
        var calls = 0
        var errors: [String: Int] = [:]
    }

    func execute() async throws -> WorkloadResult {
        // The pool of batches, encoded before anything is timed.
        let poolSize = max(poolEvents, batchSize)
        progress("generating and encoding \(grouped(poolSize)) events")
        var generator = EventGenerator(seed: common.seed, count: poolSize, end: currentUnixNanos())
        var pool: [Batch] = []
        while generator.remaining > 0 {
            let events = generator.nextBatch(batchSize)
            pool.append(Batch(buffer: ByteBuffer(bytes: try EventGenerator.encodeBatch(events)), events: events.count))
        }
        let totalBatches = events / batchSize
        let sendEvents = totalBatches * batchSize

        var result = WorkloadResult(workload: "ingest")
        result.parameters = [
            "connections": .int(connections), "inFlightPerConnection": .int(inFlight), "batchSize": .int(batchSize),
            "events": .int(sendEvents), "poolEvents": .int(poolSize), "seed": .string(String(common.seed)),
            "server": server.map { .string($0) } ?? "started by vigil-bench",
            "fsync": server == nil ? .string(fsync) : .null,
        ]

        if let server {
            let configuration = try VigilClient.Configuration(server: server)
            let measured = try await measure(configuration: configuration, pool: pool, totalBatches: totalBatches, serverProcess: nil)
            fill(&result, measured, serverProcess: nil)
            return result
        }
        let directory = try temporaryDirectory("ingest")
        defer { common.cleanUp(directory) }
        let launcher = try common.launcher(["--fsync", fsync, "--retention", "forever"])
        return try await withServer(launcher, dataDirectory: directory + "/data") { process in
            let measured = try await measure(
                configuration: process.clientConfiguration, pool: pool, totalBatches: totalBatches, serverProcess: process)
            var result = result
            fill(&result, measured, serverProcess: process)
            return result
        }
    }

    struct Measured: Sendable {
        var slots: SlotResult
        var seconds: Double
        var clientCPU: Double
        var serverCPU: Double?
        var memory: (resident: Int?, peak: Int?)
        /// When the server had also flushed the sealed segments the run left
        /// it (`owedFlushes`), and its CPU time by then; nil without a server
        /// of our own.
        var withFlushes: (seconds: Double, serverCPU: Double?)?
    }

    func measure(
        configuration: VigilClient.Configuration, pool: [Batch], totalBatches: Int, serverProcess: ServerProcess?
    ) async throws -> Measured {
        try await withClients(connections, configuration) { clients in
            try await measure(clients: clients, pool: pool, totalBatches: totalBatches, serverProcess: serverProcess)
        }
    }

    func measure(clients: [VigilClient], pool: [Batch], totalBatches: Int, serverProcess: ServerProcess?) async throws -> Measured {
        progress("sending \(grouped(totalBatches * batchSize)) events: \(connections) connections × \(inFlight) in flight × \(batchSize) events")

        let next = TicketCounter()
        let serverCPUBefore = serverProcess?.cpuSeconds()
        let clientCPUBefore = processCPUSeconds()
        let started = ContinuousClock.now
        let total = try await withThrowingTaskGroup(of: SlotResult.self) { group in
            for client in clients {
                for _ in 0..<inFlight {
                    group.addTask {
                        var slot = SlotResult()
                        // Each turn claims one batch number; the loop ends when all are claimed.
                        while true {
                            let number = next.take()
                            if number >= totalBatches { break }
                            let batch = pool[number % pool.count]
                            let sent = ContinuousClock.now
                            do {
                                let response = try await client.ingest(preencoded: batch.buffer, timeout: .seconds(120))
                                slot.events += Int(response.count)
                            } catch let error as VigilError {
                                slot.errors[error.code.description, default: 0] += 1
                                if error.code == .unavailable { break }  // the connection is gone
                                continue
                            }
                            _ = slot.latencies.record(UInt64(max(1, (ContinuousClock.now - sent).microseconds)))
                            slot.bytes += batch.buffer.readableBytes
                            slot.calls += 1
                        }
                        return slot
                    }
                }
            }
            var total = SlotResult()
            for try await slot in group {
                total.latencies.add(slot.latencies)
                total.events += slot.events
                total.bytes += slot.bytes
                total.calls += slot.calls
                total.errors.merge(slot.errors, uniquingKeysWith: +)
            }
            return total
        }
        let seconds = (ContinuousClock.now - started).seconds
        let clientCPU = processCPUSeconds() - clientCPUBefore
        var serverCPU: Double?
        if let before = serverCPUBefore, let after = serverProcess?.cpuSeconds() { serverCPU = after - before }
        let memory = serverProcess?.memory() ?? (nil, nil)
        var withFlushes: (seconds: Double, serverCPU: Double?)?
        if let serverProcess, let client = clients.first {
            withFlushes = try await owedFlushes(
                client: client, serverProcess: serverProcess, started: started, cpuBefore: serverCPUBefore,
                acknowledged: (seconds, serverCPU))
        }
        return Measured(
            slots: total, seconds: seconds, clientCPU: clientCPU, serverCPU: serverCPU, memory: memory,
            withFlushes: withFlushes)
    }

    /// The run stops at its last acknowledgement, when the server may still
    /// hold up to its memory budget of sealed segments waiting for their
    /// flush: ingest the figure does not pay for. This waits until the
    /// server's unflushed events stop falling for `quietPeriod` (a
    /// one-day segment flushes in about 1.5 s here) and returns the time and
    /// the server's CPU at their last fall. The active segment's events stay
    /// (it is flushed once full or a minute old), as they would in a run
    /// that went on.
    func owedFlushes(
        client: VigilClient, serverProcess: ServerProcess, started: ContinuousClock.Instant, cpuBefore: Double?,
        acknowledged: (seconds: Double, serverCPU: Double?)
    ) async throws -> (seconds: Double, serverCPU: Double?) {
        progress("waiting for the flushes the run left the server")
        var unflushed = try await client.stats().memoryEvents
        var lastFall = acknowledged
        var quietSince = ContinuousClock.now
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now - quietSince < Self.quietPeriod, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            let now = try await client.stats().memoryEvents
            guard now < unflushed else { continue }
            unflushed = now
            let cpu = serverProcess.cpuSeconds().flatMap { after in cpuBefore.map { after - $0 } }
            lastFall = ((ContinuousClock.now - started).seconds, cpu)
            quietSince = ContinuousClock.now
        }
        return lastFall
    }

    static let quietPeriod: Duration = .seconds(3)

    func fill(_ result: inout WorkloadResult, _ measured: Measured, serverProcess: ServerProcess?) {
        let slots = measured.slots
        let seconds = max(measured.seconds, 1e-9)
        let rate = Double(slots.events) / seconds
        let megabytes = Double(slots.bytes) / 1e6 / seconds
        let h = slots.latencies
        let hasLatency = h.totalCount > 0
        func p(_ value: Double) -> Double { hasLatency ? Double(h.valueAtPercentile(value)) : .nan }
        let p50 = p(50), p99 = p(99), p999 = p(99.9)
        let maxLatency = hasLatency ? Double(h.max) : .nan
        let errors = slots.errors.values.reduce(0, +)
        let fsyncAlways = server == nil && fsync == "always"
        let met = fsyncAlways && rate >= 1_000_000 && p99 <= 20_000 && errors == 0

        if errors > 0 { result.status = "failed" }
        result.results = [
            "eventsAcknowledged": .int(slots.events),
            "calls": .int(slots.calls),
            "seconds": .double(seconds),
            "eventsPerSecond": .double(rate),
            "megabytesPerSecond": .double(megabytes),
            "requestBytes": .int(slots.bytes),
            "bytesPerEventOnWire": .double(slots.events > 0 ? Double(slots.bytes) / Double(slots.events) : 0),
            "ackLatencyMs": [
                "p50": .double(p50 / 1000), "p90": .double(p(90) / 1000), "p99": .double(p99 / 1000),
                "p999": .double(p999 / 1000), "max": .double(maxLatency / 1000),
                "mean": .double(hasLatency ? h.mean / 1000 : .nan), "samples": .int(Int(h.totalCount)),
            ],
            "server": [
                "rssBytes": .optional(measured.memory.resident), "peakRssBytes": .optional(measured.memory.peak),
                "cpuSeconds": .optional(measured.serverCPU),
                "cpuCoresUsed": .optional(measured.serverCPU.map { $0 / seconds }),
            ],
            "client": ["cpuSeconds": .double(measured.clientCPU), "cpuCoresUsed": .double(measured.clientCPU / seconds)],
            "withOwedFlushes": measured.withFlushes.map { flushed -> JSONValue in
                [
                    "seconds": .double(flushed.seconds),
                    "eventsPerSecond": .double(Double(slots.events) / max(flushed.seconds, 1e-9)),
                    "serverCPUSeconds": .optional(flushed.serverCPU),
                ]
            } ?? .null,
            "errors": .object(slots.errors.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
            "targets": [
                "eventsPerSecond": 1_000_000, "ackP99Ms": 20,
                "applicable": .bool(fsyncAlways), "met": .bool(met),
            ],
        ]

        var table = TextTable(
            title: "ingest: \(connections) connections × \(inFlight) in flight × \(grouped(batchSize)) events/batch, "
                + (server == nil ? "--fsync \(fsync)" : "server \(server ?? "")"),
            header: ["measure", "value"])
        table.rows = [
            ["events acknowledged", grouped(slots.events)],
            ["duration", fixed(seconds, 2) + " s"],
            ["events/s", grouped(Int(rate))],
            ["MB/s (IngestRequest bytes)", fixed(megabytes, 1)],
            ["ack latency p50", millis(p50) + " ms"],
            ["ack latency p99", millis(p99) + " ms"],
            ["ack latency p99.9", millis(p999) + " ms"],
            ["ack latency max", millis(maxLatency) + " ms"],
        ]
        if serverProcess != nil {
            table.rows.append(["server RSS at end / peak", "\(measured.memory.resident.map(bytesText) ?? "?") / \(measured.memory.peak.map(bytesText) ?? "?")"])
            table.rows.append(["server CPU (cores busy)", measured.serverCPU.map { fixed($0, 1) + " s (" + fixed($0 / seconds, 2) + ")" } ?? "?"])
            if let flushed = measured.withFlushes {
                let flushedSeconds = max(flushed.seconds, 1e-9)
                table.rows.append(["events/s with the flushes owed", grouped(Int(Double(slots.events) / flushedSeconds))])
                table.rows.append([
                    "server CPU with them", flushed.serverCPU.map { fixed($0, 1) + " s (" + fixed($0 / flushedSeconds, 2) + ")" } ?? "?",
                ])
            }
        }
        table.rows.append(["client CPU (cores busy)", fixed(measured.clientCPU, 1) + " s (" + fixed(measured.clientCPU / seconds, 2) + ")"])
        if errors > 0 {
            table.rows.append(["errors", slots.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")])
        }
        result.tables = [table]
        if fsyncAlways {
            result.notes.append(
                "target (fsync always): ≥ 1,000,000 events/s and ack p99 ≤ 20 ms: "
                    + (met ? "met" : "NOT met (\(grouped(Int(rate))) events/s, p99 \(millis(p99)) ms)"))
        }
        result.notes.append("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores shared by vigil-bench and the server; build: \(Report.buildConfiguration)")
    }
}

/// Hands out 0, 1, 2, … to concurrent tasks.
final class TicketCounter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int {
        value.add(1, ordering: .relaxed).oldValue
    }
}

/// Connects `count` clients, runs `body`, and closes them whatever happens.
func withClients<R: Sendable>(
    _ count: Int, _ configuration: VigilClient.Configuration, _ body: ([VigilClient]) async throws -> R
) async throws -> R {
    var clients: [VigilClient] = []
    do {
        for _ in 0..<max(1, count) { clients.append(try await VigilClient.connect(configuration)) }
        let result = try await body(clients)
        for client in clients { await client.close() }
        return result
    } catch {
        for client in clients { await client.close() }
        throw error
    }
}
