import ArgumentParser
import Foundation
import VigilBenchKit
import VigilCore
import VigilProto
import VigilStorage

/// One merge of a day's parts, in this process: how long it takes, what CPU
/// it costs per row, and how much memory it holds at its peak. Merges run
/// beside ingest on a live server, so their memory counts against the same
/// machine; a merge reads its parts a block at a time, so its peak should not
/// grow with the parts.
struct MergeWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Time, CPU per row and peak memory of one merge of a day's parts, in-process.",
        discussion: """
            Generates --parts × --rows-per-part events of yesterday, appends them to a store in a \
            temporary directory (--fsync never) and flushes each --rows-per-part into a part of \
            its own: the parts a busy day's flushes leave (a saturating agent's are about 459,000 \
            rows). Reopens the store with --memory-budget-mb (the default's) and merges the day once. \
            Reports the merge's wall time, process CPU per merged row and the process's peak \
            resident memory during the merge (VmHWM, reset just before it through \
            /proc/self/clear_refs) against its resident memory before. Linux only for the memory.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Parts to merge.")
    var parts = 4

    @Option(name: .long, help: "Events in each part.")
    var rowsPerPart = 459_000

    @Option(name: .long, help: "Events per Ingest request while loading.")
    var batchSize = 1_000

    @Option(name: .long, help: "The store's memory budget for the merge, in MiB (a merge holds at most half of it).")
    var memoryBudgetMb = StorageOptions(directory: "").memoryBudgetBytes >> 20

    @Flag(
        name: .long, inversion: .prefixedNo,
        help: "Copy the blocks whose rows the merge takes whole as they are stored (the server does); --no-copy-blocks decodes and encodes every block, for comparison.")
    var copyBlocks = true

    func validate() throws {
        guard (2...64).contains(parts) else { throw ValidationError("--parts must be 2 to 64") }
        guard rowsPerPart >= 1 else { throw ValidationError("--rows-per-part must be positive") }
        guard parts * rowsPerPart <= StorageOptions(directory: "").mergeMaxRows else {
            throw ValidationError("--parts × --rows-per-part is over the \(StorageOptions(directory: "").mergeMaxRows) rows one merge takes")
        }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
        guard (16...1 << 20).contains(memoryBudgetMb) else { throw ValidationError("--memory-budget-mb must be 16 to 1048576") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
    }

    /// VmRSS and VmHWM of this process, in bytes.
    static func memory() -> (resident: Int, peak: Int) {
        let own = ServerProcess.memory(pid: getpid())
        return (own.resident ?? 0, own.peak ?? 0)
    }

    func execute() async throws -> WorkloadResult {
        let now = currentUnixNanos()
        let day: Int64 = 86_400 * 1_000_000_000
        let end = now / day * day - 1
        let events = parts * rowsPerPart
        let directory = NSTemporaryDirectory() + "vigil-bench-merge-\(getpid())"
        defer { common.cleanUp(directory) }
        var options = StorageOptions(directory: directory)
        options.sync = .never
        options.retentionNanos = nil
        options.segmentMaxAge = .seconds(365 * 86_400)

        progress("writing \(parts) parts of \(grouped(rowsPerPart)) events")
        do {
            var loading = options
            // A part per flush, and no merge before the one measured.
            loading.segmentMaxRows = rowsPerPart + 1
            loading.segmentMaxBytes = .max / 2
            loading.memoryBudgetBytes = .max / 2
            loading.mergeFanIn = parts + 1
            let store = try ColumnarEventStore(options: loading)
            var generator = EventGenerator(seed: common.seed, count: events, end: end, span: day - 1)
            let limits = EventLimits()
            for _ in 0..<parts {
                var left = rowsPerPart
                while left > 0 {
                    let request = try EventGenerator.encodeBatch(generator.nextBatch(min(batchSize, left)))
                    guard let batch = IngestWireDecoder.decode(request, limits: limits, now: now) else {
                        throw ValidationError("the wire decoder refused a generated batch: the generator and the decoder disagree")
                    }
                    _ = try await store.append(batch)
                    left -= batch.count
                }
                try await store.flushNow()
            }
            try await store.close()
        }

        options.mergeFanIn = parts
        options.memoryBudgetBytes = memoryBudgetMb << 20
        options.mergeCopiesBlocks = copyBlocks
        let store = try ColumnarEventStore(options: options)
        let before = store.statistics
        guard before.parts == parts, before.partEvents == UInt64(events) else {
            throw ValidationError("loading left \(before.parts) parts of \(before.partEvents) events, not \(parts) of \(events)")
        }
        progress("merging \(grouped(events)) events")
        let resident = Self.memory().resident
        // Resets VmHWM to the current resident size (Linux 4.0 and later).
        let resetPeak = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        let cpuStart = processCPUSeconds()
        let clock = ContinuousClock()
        let wallStart = clock.now
        try await store.mergeNow()
        let wall = clock.now - wallStart
        let cpu = processCPUSeconds() - cpuStart
        let peak = Self.memory().peak
        let after = store.statistics
        try await store.close()
        var result = WorkloadResult(workload: "merge")
        if after.parts != 1 || after.partEvents != UInt64(events) {
            result.status = "failed"
            result.notes.append("the merge left \(after.parts) parts of \(after.partEvents) events, not 1 of \(events)")
        }
        let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let mib = 1_048_576.0
        var table = TextTable(title: "Merge of \(parts) parts of \(grouped(rowsPerPart)) events (one day)", header: ["what", "value"])
        table.rows.append(["merge wall time, s", String(format: "%.2f", wallSeconds)])
        table.rows.append(["merge CPU, µs/row", String(format: "%.3f", cpu * 1e6 / Double(events))])
        table.rows.append(["resident before, MiB", String(format: "%.0f", Double(resident) / mib)])
        if resetPeak {
            table.rows.append(["peak resident during the merge, MiB", String(format: "%.0f", Double(peak) / mib)])
            table.rows.append(["peak minus before, MiB", String(format: "%.0f", Double(peak - resident) / mib)])
        } else {
            result.notes.append("the peak resident memory could not be reset (/proc/self/clear_refs): not reported")
        }
        table.rows.append(["blocks copied as stored", grouped(after.mergeCopiedBlocks)])
        table.rows.append(["part bytes/event before and after", String(format: "%.1f → %.1f", Double(before.partBytes) / Double(events), Double(after.partBytes) / Double(events))])
        result.parameters = [
            "parts": .int(parts), "rowsPerPart": .int(rowsPerPart), "batchSize": .int(batchSize), "memoryBudgetMb": .int(memoryBudgetMb),
            "copyBlocks": .bool(copyBlocks),
            "seed": .int(Int(common.seed)),
        ]
        result.results = .object([
            ("mergeWallSeconds", .double(wallSeconds)), ("mergeCPUMicrosPerRow", .double(cpu * 1e6 / Double(events))),
            ("residentBeforeBytes", .int(resident)), ("peakResidentBytes", resetPeak ? .int(peak) : .null),
            ("partBytesBefore", .int(Int(before.partBytes))), ("partBytesAfter", .int(Int(after.partBytes))), ("rows", .int(events)),
            ("copiedBlocks", .int(after.mergeCopiedBlocks)),
        ])
        result.tables = [table]
        return result
    }
}
