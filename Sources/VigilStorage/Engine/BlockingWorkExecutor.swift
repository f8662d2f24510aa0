#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import VigilCore

/// A task executor with one thread of its own, for the engine's heavy,
/// blocking work: flushes, merges and retention compress, write and fsync for
/// seconds. On Swift's cooperative pool (one thread per core, two here) that
/// work would starve the tasks that serve connections; here it only delays
/// other maintenance.
final class BlockingWorkExecutor: TaskExecutor, Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var head = 0
        var stopped = false
    }

    private let queue = Mutex(Queue())
    private let bell = WALDoorbell()
    private let thread = Mutex<pthread_t?>(nil)

    init() throws(VigilError) {
        // The thread holds the executor until `shutdown`.
        let started = try WALThread.start { [self] in
            while true {
                let ticket = bell.ticket()
                let next = self.queue.withLock { queue -> (job: UnownedJob?, stopped: Bool) in
                    guard queue.head < queue.jobs.count else {
                        queue.jobs.removeAll(keepingCapacity: true)
                        queue.head = 0
                        return (nil, queue.stopped)
                    }
                    defer { queue.head += 1 }
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
        thread.withLock { $0 = started }
    }

    func enqueue(_ job: UnownedJob) {
        queue.withLock { $0.jobs.append(job) }
        bell.ring()
    }

    /// Runs what is queued, then ends the thread (and waits for it, unless
    /// called on it).
    func shutdown() {
        queue.withLock { $0.stopped = true }
        bell.ring()
        if let started = thread.withLock({ state -> pthread_t? in
            defer { state = nil }
            return state
        }), pthread_equal(started, pthread_self()) == 0 {
            WALThread.join(started)
        }
    }
}
