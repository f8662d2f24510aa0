import Dispatch
import Synchronization
import Testing

@testable import VigilStorage

private final class RunCount: Sendable {
    let value = Atomic(0)
}

@Suite("Blocking work executor")
struct BlockingWorkExecutorTests {
    /// Each enqueue wakes one thread: a lost wake-up would leave a job queued
    /// with a thread asleep, and this test hangs until its time limit.
    @Test("every job runs, however jobs arrive: bursts from many tasks onto 1, 2 and 3 threads", .timeLimit(.minutes(2)))
    func everyJobRuns() async throws {
        for threads in 1...3 {
            let executor = try BlockingWorkExecutor(threads: threads)
            defer { executor.shutdown() }
            let ran = RunCount()
            for _ in 0..<500 {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<6 {
                        group.addTask(executorPreference: executor) { ran.value.add(1, ordering: .relaxed) }
                    }
                }
            }
            #expect(ran.value.load(ordering: .relaxed) == 3_000, "\(threads) threads")
        }
    }

    /// Tasks that yield re-enqueue themselves, so with several of them the
    /// queue is never empty: the jobs it ran must still be dropped.
    @Test("under load that never lets the queue empty, the queue still lets go of the jobs it ran", .timeLimit(.minutes(2)))
    func queueStaysBoundedUnderSteadyLoad() async throws {
        let executor = try BlockingWorkExecutor(threads: 1)
        defer { executor.shutdown() }
        let most = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask(executorPreference: executor) {
                    var most = 0
                    for _ in 0..<25_000 {
                        await Task.yield()
                        most = max(most, executor.heldJobs)
                    }
                    return most
                }
            }
            return await group.reduce(0) { max($0, $1) }
        }
        #expect(most <= 2 * BlockingWorkExecutor.compactAfter + 8, "held \(most) jobs after 100,000 runs")
    }

    /// Two jobs that can finish only together: the second must get a thread
    /// of its own while the first holds one, so its enqueue has to wake the
    /// sleeping thread rather than the busy one.
    @Test("a second job wakes the idle thread while the first one blocks", .timeLimit(.minutes(2)))
    func secondJobGetsItsOwnThread() async throws {
        let executor = try BlockingWorkExecutor(threads: 2)
        defer { executor.shutdown() }
        for _ in 0..<200 {
            let firstRunning = DispatchSemaphore(value: 0)
            let secondRan = DispatchSemaphore(value: 0)
            let met = await withTaskGroup(of: Bool.self) { group in
                group.addTask(executorPreference: executor) {
                    firstRunning.signal()
                    // Holds this thread until the second job has run elsewhere.
                    return secondRan.wait(timeout: .now() + 10) == .success
                }
                group.addTask(executorPreference: executor) {
                    firstRunning.wait()
                    secondRan.signal()
                    return true
                }
                var all = true
                for await result in group { all = all && result }
                return all
            }
            #expect(met)
            if !met { break }
        }
    }
}
