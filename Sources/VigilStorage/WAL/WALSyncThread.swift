#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VigilCore

/// A counter and a pthread condition variable: `ring()` bumps the counter and
/// wakes the waiter; `wait(after:timeout:)` sleeps until the counter moves
/// past a ticket taken earlier, so a ring between taking the ticket and
/// sleeping is never lost. The WAL's state lives in a `Mutex`; this only
/// wakes the sync thread, which then looks at that state.
///
/// `@unchecked Sendable` invariant: `mutex` and `condition` are allocated and
/// initialized once in `init` and destroyed in `deinit` (when no thread can
/// use them any more); `rings` is read and written only while `mutex` is held.
final class WALDoorbell: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var rings: UInt64 = 0

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// The current ring count: pass it to `wait(after:timeout:)`.
    func ticket() -> UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return rings
    }

    func ring() {
        pthread_mutex_lock(mutex)
        rings &+= 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Rings for every waiting thread at once (to stop several threads).
    func ringAll() {
        pthread_mutex_lock(mutex)
        rings &+= 1
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Returns once the bell has rung since `ticket` was taken, or after `milliseconds` (nil: no limit).
    func wait(after ticket: UInt64, milliseconds: Int?) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let milliseconds else {
            while rings == ticket { pthread_cond_wait(condition, mutex) }
            return
        }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        while rings == ticket {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return }
        }
    }
}

/// Starts and joins the WAL's sync thread: a plain pthread, not a task on the
/// cooperative pool, because fsync blocks for milliseconds.
enum WALThread {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    static func start(_ run: @escaping @Sendable () -> Void) throws(VigilError) -> pthread_t {
        let body = Unmanaged.passRetained(Body(run))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, body.toOpaque())
        guard result == 0 else {
            body.release()
            throw VigilError(.unavailable, "cannot start the WAL sync thread: \(String(cString: strerror(result)))")
        }
        return thread
    }

    static func join(_ thread: pthread_t) {
        _ = pthread_join(thread, nil)
    }
}
