import NIOCore

/// Runs tasks on one event loop's thread. Work that reads and writes one
/// connection and does little else costs no thread hand-offs there: the
/// frames it waits for arrive on that thread, and what it writes leaves from
/// it. On a virtual machine, waking an idle core takes 20–30 µs; a query's
/// round trip made eight such hand-offs, five in the server.
///
/// Only for short steps: a task that blocks here stalls every connection on
/// the loop.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: UnownedJob) {
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
