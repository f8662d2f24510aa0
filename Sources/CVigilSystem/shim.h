// C library functions and compiler builtins the Swift overlay does not export.
#include <malloc.h>

// Asks the processor to start loading the cache line at `address`; changes
// nothing else (Swift has no prefetch of its own).
static inline void vigil_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
// Starts writeback of the file's dirty pages in [offset, offset + count)
// without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE,
// which glibc declares only under _GNU_SOURCE). Durability still comes
// from fsync; this only gives the disk the bytes sooner. -1 with errno set
// on failure.
static inline int vigil_start_writeback(int fd, long long offset, long long count) {
    return (int)syscall(SYS_sync_file_range, fd, offset, count, 2 /* SYNC_FILE_RANGE_WRITE */);
}
#else
static inline int vigil_start_writeback(int fd, long long offset, long long count) { return 0; }
#endif
