// C library functions and compiler builtins the Swift overlay does not export.
#include <malloc.h>

// Asks the processor to start loading the cache line at `address`; changes
// nothing else (Swift has no prefetch of its own).
static inline void vigil_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
