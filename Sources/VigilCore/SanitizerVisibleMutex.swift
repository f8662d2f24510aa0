#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A lock with the API of the standard library's `Mutex`, built on a
/// pthread mutex, for ThreadSanitizer builds only (`-Xswiftc -DVIGIL_TSAN`,
/// see the README's "Sanitizers").
///
/// On Linux, `Synchronization.Mutex` waits and wakes through the futex in
/// code that ThreadSanitizer does not see, so it reports every contended
/// access to state that only a `Mutex` guards as a race (161 such reports in
/// one run of the suite, none of them real). ThreadSanitizer intercepts
/// pthread mutexes, so with this type in `Mutex`'s place (a module-local
/// `typealias` in each module that locks) what it reports is worth reading.
/// Normal builds never use it.
public final class SanitizerVisibleMutex<Value>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ initialValue: sending Value) {
        value = initialValue
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
