#if VIGIL_TSAN
import VigilCore

/// ThreadSanitizer builds (`-Xswiftc -DVIGIL_TSAN`) lock through pthread
/// mutexes, which it sees; see `SanitizerVisibleMutex`.
typealias Mutex<Value> = SanitizerVisibleMutex<Value>
#endif
