import Foundation
import Synchronization
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// A scan or a count checks for cancellation before every block it reads, so a
/// cancelled call (a passed deadline, CANCEL, a dropped connection) stops
/// after at most the block in hand.
@Suite("Cancelling scans and counts")
struct QueryCancellationTests {
    /// 40 blocks of 64 rows in parts, none matching the search.
    static func withManyBlocks(_ body: (ColumnarEventStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            var options = StorageOptions(directory: directory)
            options.retentionNanos = nil
            options.rowsPerBlock = 64
            let store = try ColumnarEventStore(options: options)
            let base = currentUnixNanos() - 86_400_000_000_000
            _ = try await store.append((0..<2_560).map { engineEvent("u-\($0)", at: base + Int64($0) * 1_000_000) }, idempotencyKey: nil)
            try await store.flushNow()
            try await body(store)
            try await store.close()
        }
    }

    /// Cancelled once `checks` checks have passed.
    final class CancelAfter: Sendable {
        let remaining: Mutex<Int>
        init(_ checks: Int) { remaining = Mutex(checks) }
        func check() -> Bool {
            remaining.withLock { remaining in
                remaining -= 1
                return remaining < 0
            }
        }
    }

    static func searchFilter() throws -> EventFilter {
        var message = Vigil_V1_Filter()
        message.search = "matches-nothing"
        return try EventFilter(message)
    }

    @Test("a scan stops with CANCELLED at the next block once its task is cancelled")
    func scanStops() async throws {
        try await Self.withManyBlocks { store in
            let flag = CancelAfter(3)
            let execution = QueryExecution(
                snapshot: store.snapshot(), evaluation: store.evaluation(of: try Self.searchFilter()), cache: store.columnCache,
                ordering: .time(newestFirst: true, cursor: nil), limit: 10, isCancelled: flag.check, threads: 1)
            let error = await #expect(throws: VigilError.self) { try await execution.run() }
            #expect(error?.code == .cancelled)
            // Three blocks were read, the fourth check stopped it: nothing after.
            #expect(flag.remaining.withLock { $0 } == -1)
            // Uncancelled, the same scan reads every block.
            let whole = QueryExecution(
                snapshot: store.snapshot(), evaluation: store.evaluation(of: try Self.searchFilter()), cache: store.columnCache,
                ordering: .time(newestFirst: true, cursor: nil), limit: 10, isCancelled: { false }, threads: 1)
            let page = try await whole.run()
            #expect(page.events.isEmpty && page.exhausted)
            #expect(page.statistics.blocksScanned == 40)
        }
    }

    @Test("a count stops with CANCELLED at the next block once its task is cancelled")
    func countStops() async throws {
        try await Self.withManyBlocks { store in
            let flag = CancelAfter(5)
            let execution = AggregateExecution(
                snapshot: store.snapshot(), evaluation: store.evaluation(of: try Self.searchFilter()), cache: store.columnCache,
                query: AggregateQuery(filter: try Self.searchFilter()), isCancelled: flag.check)
            let error = await #expect(throws: VigilError.self) { try await execution.run(threads: 1) }
            #expect(error?.code == .cancelled)
            #expect(flag.remaining.withLock { $0 } == -1)
        }
    }

    @Test("cancelling the calling task ends a scan with CANCELLED")
    func taskCancellation() async throws {
        try await Self.withManyBlocks { store in
            let filter = try Self.searchFilter()
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await store.scan(filter: filter, order: .newestFirst, after: nil, limit: 10)
            }
            let error = await #expect(throws: VigilError.self) { try await task.value }
            #expect(error?.code == .cancelled)
        }
    }
}
