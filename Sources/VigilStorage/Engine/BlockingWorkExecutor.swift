#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import VigilCore

/// A task executor with threads of its own, for the engine's heavy, blocking
/// work: flushes, merges and retention compress, write and fsync for seconds,
/// and a wide query decodes blocks for as long. On Swift's cooperative pool
/// (one thread per core) that work would starve the tasks that serve
/// connections; here it only waits for other work of its kind.
final class BlockingWorkExecutor: TaskExecutor, Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var head = 0
        var stopped = false
    }

    private let queue = Mutex(Queue())
    /// Jobs run before the queue drops them although it is not empty (at
    /// most half of what it holds, so that the copy is amortized).
    static let compactAfter = 1_024
    private let bell = WALDoorbell()
    private let threads = Mutex<[pthread_t]>([])

    /// `niceness` above 0 lowers the threads' scheduling priority (Linux
    /// `nice`): work that waits on them yields the cores to everything else.
    init(threads count: Int = 1, niceness: Int32 = 0) throws(VigilError) {
        for _ in 0..<max(1, count) {
            try startThread(niceness: niceness)
        }
    }

    private func startThread(niceness: Int32) throws(VigilError) {
        // The thread holds the executor until `shutdown`.
        let started = try WALThread.start { [self] in
            #if os(Linux)
            // Linux keeps `nice` per thread, and `who` 0 is the calling thread.
            // Should it fail, the thread keeps the default priority: slower
            // acknowledgements while it works, nothing worse.
            if niceness > 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) }
            #endif
            while true {
                let ticket = bell.ticket()
                let next = self.queue.withLock { queue -> (job: UnownedJob?, stopped: Bool) in
                    guard queue.head < queue.jobs.count else {
                        queue.jobs.removeAll(keepingCapacity: true)
                        queue.head = 0
                        return (nil, queue.stopped)
                    }
                    defer {
                        queue.head += 1
                        // Under steady load the queue never empties: the
                        // jobs run must still be let go of, or the array
                        // grows by every job ever run.
                        if queue.head >= Self.compactAfter && queue.head * 2 >= queue.jobs.count {
                            queue.jobs.removeFirst(queue.head)
                            queue.head = 0
                        }
                    }
                    return (queue.jobs[queue.head], false)
                }
                if let job = next.job {
                    job.runSynchronously(on: self.asUnownedTaskExecutor())
                } else if next.stopped {
                    return
                } else {
                    bell.wait(after: ticket, milliseconds: nil)
                }
            }
        }
        threads.withLock { $0.append(started) }
    }

    /// Jobs the queue holds, run ones included until it lets go of them (tests).
    var heldJobs: Int { queue.withLock { $0.jobs.count } }

    func enqueue(_ job: UnownedJob) {
        queue.withLock { $0.jobs.append(job) }
        // One thread: a thread that took its ticket before this ring and is
        // not asleep yet sees the ring and looks again, so one that sleeps
        // needs waking only if all do. Waking every thread cost the event
        // loop that enqueues a query 12% of its time, and woke a thread that
        // found the queue empty.
        bell.ring()
    }

    /// Runs what is queued, then ends the threads (and waits for them, unless
    /// called on one of them).
    func shutdown() {
        queue.withLock { $0.stopped = true }
        let started = threads.withLock { state in
            defer { state = [] }
            return state
        }
        bell.ringAll()
        for thread in started where pthread_equal(thread, pthread_self()) == 0 {
            WALThread.join(thread)
        }
    }
}
