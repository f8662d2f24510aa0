import ArgumentParser
import Foundation
import VigilBenchKit
import VigilCore
import VigilStorage

struct StorageWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Bytes per event on disk, per column, and against JSON lines.",
        discussion: """
            Ingests --events generated events into a fresh server, stops it gracefully (which flushes \
            memory to parts), then merges each day's parts into one (opening the data directory with \
            the storage engine in-process, merge fan-in 2: the state the server's background merge \
            converges to). Reports bytes per event at each step (parts only, and parts plus WAL), the \
            per-column breakdown of the merged parts, and the compression ratio against the \
            JSON-lines form of the same events. Target: at most 60 bytes/event after merge.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Events to ingest.")
    var events = 1_000_000

    @Option(name: .long, help: "Events per ingest batch.")
    var batchSize = 5_000

    func validate() throws {
        guard events >= 1 else { throw ValidationError("--events must be positive") }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
    }

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
        if result.status == "failed" { throw ExitCode(1) }
    }

    /// The data directory at one moment.
    struct Snapshot: Sendable {
        var phase: String
        var parts: Int
        var rows: Int
        var partBytes: Int
        var walBytes: Int
        var directoryBytes: Int
        var columns: [(name: String, compressed: Int, encoded: Int)]

        init(phase: String, directory: String) throws {
            let inspection = try StorageInspection(directory: directory)
            self.phase = phase
            parts = inspection.parts.count
            rows = inspection.parts.reduce(0) { $0 + $1.metadata.rowCount }
            partBytes = inspection.parts.reduce(0) { $0 + $1.metadata.fileBytes }
            walBytes = inspection.walSegments.reduce(0) { $0 + $1.bytes }
            directoryBytes = diskBytes(under: directory)
            var totals: [PartColumn: (Int, Int)] = [:]
            for part in inspection.parts {
                for entry in part.columns {
                    totals[entry.column, default: (0, 0)].0 += entry.compressed
                    totals[entry.column, default: (0, 0)].1 += entry.raw
                }
            }
            columns = PartColumn.allCases.compactMap { column in
                totals[column].map { (column.name, $0.0, $0.1) }
            }
        }

        func perEvent(_ bytes: Int, events: Int) -> Double {
            events > 0 ? Double(bytes) / Double(events) : .nan
        }

        func json(events: Int) -> JSONValue {
            [
                "parts": .int(parts), "rowsInParts": .int(rows), "partBytes": .int(partBytes), "walBytes": .int(walBytes),
                "directoryBytes": .int(directoryBytes),
                "bytesPerEventParts": .double(perEvent(partBytes, events: events)),
                "bytesPerEventPartsAndWAL": .double(perEvent(partBytes + walBytes, events: events)),
                "bytesPerEventDirectory": .double(perEvent(directoryBytes, events: events)),
            ]
        }
    }

    func execute() async throws -> WorkloadResult {
        let directory = try temporaryDirectory("storage")
        defer { common.cleanUp(directory) }
        let dataDirectory = directory + "/data"
        let launcher = try common.launcher(["--fsync", "always", "--retention", "forever"])
        let end = nowRoundedToSeconds()

        progress("ingesting \(grouped(events)) events")
        let (loaded, running) = try await withServer(launcher, dataDirectory: dataDirectory) { server in
            let loaded = try await loadDataset(
                server: server, seed: common.seed, count: events, end: end, batchSize: batchSize, measureJSON: true)
            return (loaded, try Snapshot(phase: "after ingest (server running)", directory: dataDirectory))
        }
        // withServer stopped it gracefully: everything in memory is now in parts.
        let flushed = try Snapshot(phase: "after a graceful stop (flushed)", directory: dataDirectory)

        progress("merging each day's parts")
        var options = StorageOptions(directory: dataDirectory)
        options.retentionNanos = nil
        options.mergeFanIn = 2
        let store = try ColumnarEventStore(options: options)
        var previous = Int.max
        // Each round merges one group per day; stop when the part count no longer falls.
        for _ in 0..<16 {
            let parts = store.statistics.parts
            if parts >= previous { break }
            previous = parts
            try await store.mergeNow()
        }
        try await store.close()
        let merged = try Snapshot(phase: "after merge (one part per day)", directory: dataDirectory)

        let count = loaded.events
        let jsonBytes = loaded.jsonBytes ?? 0
        let afterMerge = merged.perEvent(merged.partBytes, events: count)
        let met = afterMerge <= 60
        var result = WorkloadResult(workload: "storage")
        if merged.rows != count || flushed.rows != count {
            result.status = "failed"
            result.notes.append("parts hold \(merged.rows) rows after merge and \(flushed.rows) after the flush; \(count) events were stored")
        }
        result.parameters = ["events": .int(events), "batchSize": .int(batchSize), "seed": .string(String(common.seed))]
        result.results = [
            "events": .int(count),
            "jsonLinesBytes": .int(jsonBytes),
            "jsonLinesBytesPerEvent": .double(Double(jsonBytes) / Double(max(1, count))),
            "protobufBytesPerEvent": .double(Double(loaded.protobufBytes) / Double(max(1, count))),
            "afterIngest": running.json(events: count),
            "afterFlush": flushed.json(events: count),
            "afterMerge": merged.json(events: count),
            "compressionRatioVsJSONLines": [
                "afterFlush": .double(Double(jsonBytes) / Double(max(1, flushed.partBytes))),
                "afterMerge": .double(Double(jsonBytes) / Double(max(1, merged.partBytes))),
            ],
            "columnsAfterMerge": .array(merged.columns.map { column in
                [
                    "column": .string(column.name), "compressedBytes": .int(column.compressed), "encodedBytes": .int(column.encoded),
                    "bytesPerEvent": .double(Double(column.compressed) / Double(max(1, count))),
                ]
            }),
            "targets": ["bytesPerEventAfterMerge": 60, "met": .bool(met)],
        ]

        var phases = TextTable(
            title: "storage: \(grouped(count)) events (JSON lines \(fixed(Double(jsonBytes) / Double(max(1, count)), 1)) bytes/event, protobuf \(fixed(Double(loaded.protobufBytes) / Double(max(1, count)), 1)))",
            header: ["phase", "parts", "part bytes", "WAL bytes", "bytes/event parts", "bytes/event parts+WAL", "vs JSON lines"])
        for snapshot in [running, flushed, merged] {
            phases.rows.append([
                snapshot.phase, String(snapshot.parts), bytesText(snapshot.partBytes), bytesText(snapshot.walBytes),
                fixed(snapshot.perEvent(snapshot.partBytes, events: count), 1),
                fixed(snapshot.perEvent(snapshot.partBytes + snapshot.walBytes, events: count), 1),
                snapshot.partBytes > 0 ? fixed(Double(jsonBytes) / Double(snapshot.partBytes), 1) + "x" : "-",
            ])
        }
        var columns = TextTable(
            title: "columns after merge", header: ["column", "compressed", "encoded", "ratio", "bytes/event", "share"])
        for column in merged.columns.sorted(by: { $0.compressed > $1.compressed }) {
            columns.rows.append([
                column.name, bytesText(column.compressed), bytesText(column.encoded),
                column.compressed > 0 ? fixed(Double(column.encoded) / Double(column.compressed), 1) + "x" : "-",
                fixed(Double(column.compressed) / Double(max(1, count)), 2),
                fixed(100 * Double(column.compressed) / Double(max(1, merged.partBytes)), 1) + "%",
            ])
        }
        result.tables = [phases, columns]
        result.notes.append(
            "target: ≤ 60 bytes/event after merge: " + (met ? "met" : "NOT met") + " (\(fixed(afterMerge, 1)) bytes/event)")
        result.notes.append("column bytes exclude each part's footer and block index; part bytes are whole files")
        result.notes.append("ingest took \(fixed(loaded.seconds, 1)) s, including generating and JSON-encoding every event on the client")
        return result
    }
}
