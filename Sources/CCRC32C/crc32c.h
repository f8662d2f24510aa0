// CRC-32C with the SSE 4.2 `crc32` instruction: the checksum of every WAL
// record and part section, computed about ten times faster than by tables.
// Header-only (static inline), so that the Swift module compiles it; the
// Swift side checks `vigil_crc32c_hardware_available` before calling it.
#ifndef VIGIL_CRC32C_H
#define VIGIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

static inline int vigil_crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

/// The raw CRC-32C update (no inversion before or after) of `count` bytes.
__attribute__((target("sse4.2")))
static inline uint32_t vigil_crc32c_hardware(uint32_t crc, const uint8_t *bytes, size_t count) {
    uint64_t wide = crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        bytes += 8;
        count -= 8;
    }
    uint32_t narrow = (uint32_t)wide;
    while (count > 0) {
        narrow = __builtin_ia32_crc32qi(narrow, *bytes);
        bytes += 1;
        count -= 1;
    }
    return narrow;
}
#else
static inline int vigil_crc32c_hardware_available(void) { return 0; }
static inline uint32_t vigil_crc32c_hardware(uint32_t crc, const uint8_t *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}
#endif

#endif
