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
        return statistics
    }
}
