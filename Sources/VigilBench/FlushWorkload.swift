import ArgumentParser
import Foundation
import VigilBenchKit
import VigilCore
import VigilProto
import VigilStorage

/// The storage engine alone, in this process: what ingest costs once the
/// bytes have arrived (wire decoding into columns and the append) and what
/// a flush of the memory segment to parts costs, per event. With no network,
/// no other process and no fsync, the figures move by a few percent from run
/// to run where a server's under `vigil-bench ingest` move by ten: this is
/// the workload to compare two builds of the engine with.
struct FlushWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush",
        abstract: "CPU per event of decoding and appending batches, then of one flush to parts, in-process.",
        discussion: """
            Generates --events events over the --days whole UTC days before today, encodes them as Ingest requests of \
            --batch-size events, then, in a store in a temporary directory (--fsync never, one \
            memory segment for all of them), decodes and appends every request as the server \
            does and flushes the segment to parts. Reports the process CPU per event of each \
            phase (the flush encodes a part's blocks on every core, so CPU, not wall time, is \
            its cost) and the flush's wall time; the best of --repetitions runs. --days 1 is \
            live traffic (one part per flush); --days 30 is a backfill (a part per day, \
            merged later).
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Events per run (the flushed segment).")
    var events = 500_000

    @Option(name: .long, help: "Whole UTC days the events' times cover, ending at midnight last night.")
    var days = 1

    @Option(name: .long, help: "Events per Ingest request.")
    var batchSize = 1_000

    @Option(name: .long, help: "Runs; the one with the least flush CPU is reported.")
    var repetitions = 3

    func validate() throws {
        guard events >= 1 else { throw ValidationError("--events must be positive") }
        guard (1...3_650).contains(days) else { throw ValidationError("--days must be 1 to 3650") }
        // The server's own limit on events per Ingest request.
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
        guard (1...1_000).contains(repetitions) else { throw ValidationError("--repetitions must be 1 to 1000") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
    }

    func execute() async throws -> WorkloadResult {
        let now = currentUnixNanos()
        // The --days whole UTC days before today: a part per day, as many each run.
        let day: Int64 = 86_400 * 1_000_000_000
        let end = now / day * day - 1
        var generator = EventGenerator(seed: common.seed, count: events, end: end, span: Int64(days) * day - 1)
        var requests: [[UInt8]] = []
        while generator.remaining > 0 { requests.append(try EventGenerator.encodeBatch(generator.nextBatch(batchSize))) }
        let requestBytes = requests.reduce(0) { $0 + $1.count }

        struct Run {
            var append: Double
            var flush: Double
            var flushWall: Double
            var partBytes: Int
            var parts: Int
        }
        var best: Run?
        for repetition in 0..<repetitions {
            let directory = NSTemporaryDirectory() + "vigil-bench-flush-\(getpid())-\(repetition)"
            defer { common.cleanUp(directory) }
            var options = StorageOptions(directory: directory)
            options.sync = .never
            // One segment for every event: no flush before the one timed.
            options.segmentMaxRows = events + 1
            options.segmentMaxBytes = .max / 2
            options.segmentMaxAge = .seconds(365 * 86_400)
            options.memoryBudgetBytes = .max / 2
            options.retentionNanos = nil
            let store = try ColumnarEventStore(options: options)
            let limits = EventLimits()
            let appendStart = processCPUSeconds()
            for request in requests {
                guard let batch = IngestWireDecoder.decode(request, limits: limits, now: now) else {
                    throw ValidationError("the wire decoder refused a generated batch: the generator and the decoder disagree")
                }
                _ = try await store.append(batch)
            }
            let flushStart = processCPUSeconds()
            let clock = ContinuousClock()
            let wallStart = clock.now
            try await store.flushNow()
            let wall = clock.now - wallStart
            let flushEnd = processCPUSeconds()
            let stats = store.statistics
            try await store.close()
            guard stats.partEvents == UInt64(events), stats.memoryEvents == 0 else {
                throw ValidationError("the flush left \(stats.partEvents) of \(events) events in parts and \(stats.memoryEvents) in memory")
            }
            let run = Run(
                append: (flushStart - appendStart) * 1e6 / Double(events), flush: (flushEnd - flushStart) * 1e6 / Double(events),
                flushWall: Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18,
                partBytes: Int(stats.partBytes), parts: stats.parts)
            print(
                String(
                    format: "run %d: decode and append %.3f µs/event, flush %.3f µs/event CPU (%.2f s wall), %d part(s)",
                    repetition + 1, run.append, run.flush, run.flushWall, run.parts))
            if best == nil || run.flush < best!.flush { best = run }
        }
        guard let best else { throw ValidationError("no run") }
        func fixed(_ value: Double) -> String { String(format: "%.3f", value) }
        var table = TextTable(
            title: "Flush, \(events) events over \(days) day(s), \(batchSize)/request (best of \(repetitions))",
            header: ["what", "value"])
        table.rows.append(["decode and append, CPU µs/event", fixed(best.append)])
        table.rows.append(["flush to parts, CPU µs/event", fixed(best.flush)])
        table.rows.append(["flush wall time, s", String(format: "%.2f", best.flushWall)])
        table.rows.append(["parts written", "\(best.parts)"])
        table.rows.append(["part bytes/event (before merges)", String(format: "%.1f", Double(best.partBytes) / Double(events))])
        table.rows.append(["request bytes/event", String(format: "%.1f", Double(requestBytes) / Double(events))])
        var result = WorkloadResult(workload: "flush")
        result.parameters = [
            "events": .int(events), "days": .int(days), "batchSize": .int(batchSize), "repetitions": .int(repetitions),
            "seed": .int(Int(common.seed)),
        ]
        result.results = [
            "appendMicros": .double(best.append), "flushMicros": .double(best.flush), "flushWallSeconds": .double(best.flushWall),
            "parts": .int(best.parts), "partBytes": .int(best.partBytes), "eventsFlushed": .int(events),
        ]
        result.tables = [table]
        return result
    }
}
