import VigilCore

#if canImport(Glibc)
import Glibc
#endif

extension ColumnarEventStore {
    public func setRetention(tenant: String?, nanos: Int64?) async throws(VigilError) -> (before: Int64?, after: Int64?) {
        try retentionSettings.set(tenant: tenant, nanos: nanos)
    }

    public func statistics() async throws(VigilError) -> StoreStatistics {
        let snapshot = snapshot()
        var statistics = StoreStatistics()
        statistics.lastSeq = snapshot.visibleSeq
        statistics.parts = snapshot.parts.count
        statistics.eventsStored = snapshot.parts.reduce(0) { $0 + $1.entry.rows }
            + snapshot.chunks.reduce(0) { $0 + UInt64($1.count) }
        var bytes = snapshot.parts.reduce(UInt64(0)) { $0 + $1.entry.bytes }
        let walDirectory = options.directory + "/wal"
        for name in (try? FileIO.list(walDirectory)) ?? [] where name.hasSuffix(".wal") {
            var info = stat()
            if stat(walDirectory + "/" + name, &info) == 0 { bytes += UInt64(info.st_size) }
        }
        statistics.bytesOnDisk = bytes
        let memory = self.statistics
        statistics.memoryEvents = UInt64(memory.memoryEvents)
        statistics.memoryBytes = UInt64(memory.memoryBytes)
        var levels: [UInt32: PartLevelStatistics] = [:]
        for part in snapshot.parts {
            levels[part.entry.level, default: PartLevelStatistics(level: part.entry.level)].parts += 1
            levels[part.entry.level]!.events += part.entry.rows
            levels[part.entry.level]!.bytes += part.entry.bytes
        }
        statistics.partLevels = levels.values.sorted { $0.level < $1.level }
        // Parts of days at the fan-in that can still merge: not those too
        // large to merge with even the smallest other part (`mergeMaxRows`),
        // which a busy day's merges leave for good.
        statistics.mergeBacklogParts = Dictionary(grouping: snapshot.parts, by: \.day).values.reduce(0) { total, parts in
            guard parts.count >= options.mergeFanIn else { return total }
            let rows = parts.map(\.entry.rows).sorted()
            let mergeable = parts.filter { part in
                let smallestOther = part.entry.rows == rows[0] ? rows[1] : rows[0]
                return part.entry.rows + smallestOther <= UInt64(options.mergeMaxRows)
            }
            return total + UInt64(mergeable.count)
        }
        return statistics
    }

    /// Why the store cannot take events now: closed, or refusing writes
    /// (a full data disk until space returns, an I/O error until restart).
    public var healthProblems: [String] {
        var problems: [String] = []
        if isClosed { problems.append("the store is closed (the server is shutting down)") }
        problems += diskProblems
        return problems
    }

    /// The data disk's problems: the refusal ingest gets now (a full disk, or
    /// an I/O error), or a write-ahead log poisoned by a failed fsync that no
    /// write has run into yet (every ingest fails until a restart replays it).
    var diskProblems: [String] {
        if let reason = writeUnavailableReason { return [reason] }
        guard let failure = wal.failure else { return [] }
        return ["the write-ahead log failed and refuses writes until the server restarts: \(failure.message)"]
    }
}
