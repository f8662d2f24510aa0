#if canImport(Glibc)
import Glibc
#endif
import Testing
import VigilCore

@testable import VigilStorage

/// Flushes run in the background (on low-priority threads) unless ingest is
/// fast enough to be waiting for them.
@Suite("Maintenance priority")
struct MaintenancePriorityTests {
    /// Options for a store in `directory` that keeps events forever.
    static func options(_ directory: String, _ configure: (inout StorageOptions) -> Void) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        configure(&options)
        return options
    }

    /// The nice value of the thread that runs this.
    static func currentNiceness() -> Int32 {
        errno = 0
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
    }

    @Test("a background executor runs its jobs at nice 10; the others at the nice of the thread that made them")
    func executorNiceness() async throws {
        let inherited = Self.currentNiceness()
        let background = try BlockingWorkExecutor(niceness: 10)
        let normal = try BlockingWorkExecutor()
        defer {
            background.shutdown()
            normal.shutdown()
        }
        let inBackground = await withTaskExecutorPreference(background) { Self.currentNiceness() }
        let inNormal = await withTaskExecutorPreference(normal) { Self.currentNiceness() }
        #if os(Linux)
        #expect(inBackground == max(10, inherited))
        #endif
        #expect(inNormal == inherited)
    }

    @Test("a segment is flushed in the background only when it took at least the minimum to fill and a background flush of it would end within half that time")
    func backgroundFlushPolicy() {
        let minimum = StorageOptions(directory: "").backgroundFlushFillTime
        let assumed = StorageOptions(directory: "").backgroundFlushAssumedNanosPerRow
        func background(_ filledIn: Duration?, rows: Int = 342_000, nanosPerRow: Int64? = nil) -> Bool {
            ColumnarEventStore.SealedSegment.flushesInBackground(
                filledIn: filledIn, rows: rows, nanosPerRow: nanosPerRow ?? assumed, minimum: minimum)
        }
        #expect(minimum == .seconds(2))
        // Unknown (say, replayed from the WAL at startup): normal priority.
        #expect(!background(nil))
        // 500,000 rows in 1 s is ingest at 500,000 events/s: it would outrun a flush that yields.
        #expect(!background(.seconds(1), rows: 500_000))
        // Below the minimum, however cheap the flush.
        #expect(!background(.milliseconds(1_999), rows: 1_000, nanosPerRow: 1))
        #expect(background(.seconds(2), rows: 1_000, nanosPerRow: 1))
        // Untimed, a background flush is assumed to take 5 µs a row: 342,000 rows take
        // 1.71 s, so the segment must have taken 3.42 s to fill (100,000 events/s).
        #expect(assumed == 5_000)
        #expect(!background(.milliseconds(3_419)))
        #expect(background(.milliseconds(3_420)))
        // The last background flush's wall time per row decides once there is one:
        // slower (contended) flushes need slower ingest, faster ones allow faster.
        #expect(!background(.milliseconds(4_600), nanosPerRow: 7_000))
        #expect(background(.milliseconds(4_788), nanosPerRow: 7_000))
        #expect(background(.milliseconds(2_052), nanosPerRow: 3_000))
        #expect(!background(.milliseconds(2_051), nanosPerRow: 3_000))
        // Sealed by age (60 s by default): a quiet server.
        #expect(background(.seconds(60), rows: 60_000))
    }

    @Test("flushes in the background and at normal priority write the same events, a part per day, readable after a reopen")
    func backgroundFlushWritesEverything() async throws {
        try await withTemporaryDirectory { directory in
            let options = Self.options(directory) {
                $0.segmentMaxRows = 300
                // Every segment qualifies; only the last one sealed is flushed in the
                // background (the others have a segment sealed behind them).
                $0.backgroundFlushFillTime = .zero
                $0.backgroundFlushAssumedNanosPerRow = 0
            }
            let day: Int64 = 86_400_000_000_000
            let base = currentUnixNanos() - 10 * day
            var store: ColumnarEventStore? = try ColumnarEventStore(options: options)
            for batch in 0..<12 {
                let events = (0..<100).map { row in
                    engineEvent("a\(batch)-\(row)", tenant: "t\(row % 4)", at: base + Int64(row % 5) * day + Int64(batch * 100 + row) * 1_000_000)
                }
                _ = try await store!.append(events, idempotencyKey: "key-\(batch)")
            }
            let fromMemory = try await allEvents(store!)
            #expect(fromMemory.count == 1_200)
            try await store!.maintain(retention: false)
            #expect(store!.statistics.memoryEvents == 0)
            // 4 flushes of 300 rows over 5 days each.
            #expect(store!.statistics.parts >= 5)
            #expect(try await allEvents(store!) == fromMemory)
            try await store!.close()
            store = nil
            let reopened = try ColumnarEventStore(options: options)
            #expect(try await allEvents(reopened) == fromMemory)
            let report = try await reopened.verify(VerificationOptions())
            #expect(report.problems.isEmpty, "\(report.problems)")
            try await reopened.close()
        }
    }

    @Test("a flush of a single day, its part encoded on every core, reads back whole and verifies")
    func oneDayFlushOnEveryCore() async throws {
        try await withTemporaryDirectory { directory in
            // 50-row blocks: the 3,000 rows make 8 tasks of 8 blocks (the last one short).
            let options = Self.options(directory) { $0.rowsPerBlock = 50 }
            let base = currentUnixNanos() - 3_600_000_000_000
            let store = try ColumnarEventStore(options: options)
            for batch in 0..<10 {
                let events = (0..<300).map { row in
                    engineEvent("a\(batch)-\(row)", tenant: "t\(row % 7)", at: base + Int64((row * 7_919 + batch) % 3_000) * 1_000_000)
                }
                _ = try await store.append(events, idempotencyKey: nil)
            }
            let fromMemory = try await allEvents(store)
            try await store.flushNow()
            #expect(store.statistics.parts == 1)
            #expect(try await allEvents(store) == fromMemory)
            let report = try await store.verify(VerificationOptions())
            #expect(report.problems.isEmpty, "\(report.problems)")
            try await store.close()
        }
    }
}
