// SHA-256 with the x86 SHA extensions (SHA-NI): the hash chain's leaf and
// head hashes, one call per hash (or per pair of leaves). swift-crypto's
// SHA256 runs the same instructions, but each short message (a 390-byte
// event, a 65-byte chain step) also paid for a context object, a once-guard
// and exclusivity checks: about a third of the time of the two hashes per
// event. Two leaves hashed side by side take a little over half the time of
// two in turn (`vigil_sha256_hardware_pair`). Header-only (static
// inline), so that the Swift module compiles it; the Swift side checks
// `vigil_sha256_hardware_available` before calling it and otherwise uses
// swift-crypto, which the tests hold this to.
#ifndef VIGIL_SHA256_H
#define VIGIL_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

static inline int vigil_sha256_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if ((ecx & bit_SSSE3) == 0 || (ecx & bit_SSE4_1) == 0) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx & bit_SHA) != 0;
}

/// SHA-256's round constants (FIPS 180-4, 4.2.2).
static const uint32_t vigil_sha256_round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
static const uint32_t vigil_sha256_initial_state[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/// Four rounds: message words `w` plus the round constants at `k`.
#define VIGIL_SHA256_ROUNDS(w, k)                                              \
    do {                                                                       \
        __m128i m_ = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)(k))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m_);                          \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                      \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, m_);                          \
    } while (0)

/// The next four message words into `w0`, from the sixteen before them:
/// w0 (oldest), w1, w2, w3 (newest).
#define VIGIL_SHA256_SCHEDULE(w0, w1, w2, w3)                                                  \
    w0 = _mm_sha256msg2_epu32(                                                                 \
        _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)), w3)

/// Runs the compression function over `blocks` 64-byte blocks at `data`.
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const uint32_t *k = vigil_sha256_round_constants;
    // Message bytes are big-endian words.
    const __m128i byteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    // The instructions keep the state as (A, B, E, F) and (C, D, G, H).
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

    while (blocks > 0) {
        const __m128i abefBefore = abef, cdghBefore = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), byteSwap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), byteSwap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), byteSwap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), byteSwap);
        VIGIL_SHA256_ROUNDS(w0, k + 0);
        VIGIL_SHA256_ROUNDS(w1, k + 4);
        VIGIL_SHA256_ROUNDS(w2, k + 8);
        VIGIL_SHA256_ROUNDS(w3, k + 12);
        for (int round = 16; round < 64; round += 16) {
            VIGIL_SHA256_SCHEDULE(w0, w1, w2, w3);
            VIGIL_SHA256_ROUNDS(w0, k + round);
            VIGIL_SHA256_SCHEDULE(w1, w2, w3, w0);
            VIGIL_SHA256_ROUNDS(w1, k + round + 4);
            VIGIL_SHA256_SCHEDULE(w2, w3, w0, w1);
            VIGIL_SHA256_ROUNDS(w2, k + round + 8);
            VIGIL_SHA256_SCHEDULE(w3, w0, w1, w2);
            VIGIL_SHA256_ROUNDS(w3, k + round + 12);
        }
        abef = _mm_add_epi32(abef, abefBefore);
        cdgh = _mm_add_epi32(cdgh, cdghBefore);
        data += 64;
        blocks -= 1;
    }

    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

/// One message as the blocks it is hashed in: the first block (the prefix
/// byte and the first 63 bytes, copied), the whole blocks after it read in
/// place, and the last one or two blocks (the rest and the padding, copied).
/// A message shorter than a block is all tail.
typedef struct {
    const uint8_t *middle;
    size_t middleBlocks;
    size_t blocks;
    int hasHead;
    uint8_t head[64];
    uint8_t tail[128];
} vigil_sha256_message;

/// Lays out `prefix` followed by `count` bytes at `bytes` (which must stay
/// valid while the message is hashed) as blocks.
static inline void vigil_sha256_prepare(vigil_sha256_message *message, uint8_t prefix, const uint8_t *bytes, size_t count) {
    size_t total = count + 1;
    size_t whole = total / 64;
    size_t rest = total - 64 * whole;
    message->blocks = whole + (rest + 9 > 64 ? 2 : 1);
    uint8_t *tail = message->tail;
    if (whole > 0) {
        message->hasHead = 1;
        message->head[0] = prefix;
        memcpy(message->head + 1, bytes, 63);
        message->middle = bytes + 63;
        message->middleBlocks = whole - 1;
        if (rest > 0) memcpy(tail, bytes + 64 * whole - 1, rest);
    } else {
        message->hasHead = 0;
        message->middle = NULL;
        message->middleBlocks = 0;
        tail[0] = prefix;
        if (count > 0) memcpy(tail + 1, bytes, count);
    }
    size_t tailBytes = 64 * (message->blocks - whole);
    memset(tail + rest, 0, tailBytes - rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)total * 8;
    for (int index = 0; index < 8; index++) tail[tailBytes - 8 + index] = (uint8_t)(bits >> (56 - 8 * index));
}

/// Block `index` of a prepared message.
static inline const uint8_t *vigil_sha256_block(const vigil_sha256_message *message, size_t index) {
    if (!message->hasHead) return message->tail + 64 * index;
    if (index == 0) return message->head;
    if (index <= message->middleBlocks) return message->middle + 64 * (index - 1);
    return message->tail + 64 * (index - 1 - message->middleBlocks);
}

/// Four rounds of each of two messages, interleaved.
#define VIGIL_SHA256_ROUNDS_PAIR(wa, wb, k)                                          \
    do {                                                                             \
        const __m128i k_ = _mm_loadu_si128((const __m128i *)(k));                    \
        __m128i ma_ = _mm_add_epi32((wa), k_), mb_ = _mm_add_epi32((wb), k_);        \
        cdghA = _mm_sha256rnds2_epu32(cdghA, abefA, ma_);                            \
        cdghB = _mm_sha256rnds2_epu32(cdghB, abefB, mb_);                            \
        ma_ = _mm_shuffle_epi32(ma_, 0x0E);                                          \
        mb_ = _mm_shuffle_epi32(mb_, 0x0E);                                          \
        abefA = _mm_sha256rnds2_epu32(abefA, cdghA, ma_);                            \
        abefB = _mm_sha256rnds2_epu32(abefB, cdghB, mb_);                            \
    } while (0)

/// Both messages' blocks, side by side while both have one, then the longer
/// one's rest. The rounds of one block depend on each other, so a core's SHA
/// unit waits between them; a second message's rounds fill those waits
/// (`vigil-bench chain`: 0.209 against 0.293 µs per leaf).
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_blocks_pair(
    uint32_t stateA[8], const vigil_sha256_message *a, uint32_t stateB[8], const vigil_sha256_message *b
) {
    const uint32_t *k = vigil_sha256_round_constants;
    const __m128i byteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i low, high;
    // (A, B, E, F) and (C, D, G, H), as in vigil_sha256_blocks.
#define VIGIL_SHA256_LOAD_STATE(state, abef, cdgh)                  \
    low = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&(state)[0]), 0xB1); \
    high = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&(state)[4]), 0x1B); \
    abef = _mm_alignr_epi8(low, high, 8);                           \
    cdgh = _mm_blend_epi16(high, low, 0xF0);
#define VIGIL_SHA256_STORE_STATE(state, abef, cdgh)                 \
    low = _mm_shuffle_epi32(abef, 0x1B);                            \
    high = _mm_shuffle_epi32(cdgh, 0xB1);                           \
    _mm_storeu_si128((__m128i *)&(state)[0], _mm_blend_epi16(low, high, 0xF0)); \
    _mm_storeu_si128((__m128i *)&(state)[4], _mm_alignr_epi8(high, low, 8));
#define VIGIL_SHA256_LOAD_WORDS(data, offset) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((data) + (offset))), byteSwap)
    __m128i abefA, cdghA, abefB, cdghB;
    VIGIL_SHA256_LOAD_STATE(stateA, abefA, cdghA);
    VIGIL_SHA256_LOAD_STATE(stateB, abefB, cdghB);
    size_t both = a->blocks < b->blocks ? a->blocks : b->blocks;
    for (size_t index = 0; index < both; index++) {
        const uint8_t *dataA = vigil_sha256_block(a, index), *dataB = vigil_sha256_block(b, index);
        const __m128i abefBeforeA = abefA, cdghBeforeA = cdghA, abefBeforeB = abefB, cdghBeforeB = cdghB;
        __m128i a0 = VIGIL_SHA256_LOAD_WORDS(dataA, 0), a1 = VIGIL_SHA256_LOAD_WORDS(dataA, 16);
        __m128i a2 = VIGIL_SHA256_LOAD_WORDS(dataA, 32), a3 = VIGIL_SHA256_LOAD_WORDS(dataA, 48);
        __m128i b0 = VIGIL_SHA256_LOAD_WORDS(dataB, 0), b1 = VIGIL_SHA256_LOAD_WORDS(dataB, 16);
        __m128i b2 = VIGIL_SHA256_LOAD_WORDS(dataB, 32), b3 = VIGIL_SHA256_LOAD_WORDS(dataB, 48);
        VIGIL_SHA256_ROUNDS_PAIR(a0, b0, k + 0);
        VIGIL_SHA256_ROUNDS_PAIR(a1, b1, k + 4);
        VIGIL_SHA256_ROUNDS_PAIR(a2, b2, k + 8);
        VIGIL_SHA256_ROUNDS_PAIR(a3, b3, k + 12);
        for (int round = 16; round < 64; round += 16) {
            VIGIL_SHA256_SCHEDULE(a0, a1, a2, a3);
            VIGIL_SHA256_SCHEDULE(b0, b1, b2, b3);
            VIGIL_SHA256_ROUNDS_PAIR(a0, b0, k + round);
            VIGIL_SHA256_SCHEDULE(a1, a2, a3, a0);
            VIGIL_SHA256_SCHEDULE(b1, b2, b3, b0);
            VIGIL_SHA256_ROUNDS_PAIR(a1, b1, k + round + 4);
            VIGIL_SHA256_SCHEDULE(a2, a3, a0, a1);
            VIGIL_SHA256_SCHEDULE(b2, b3, b0, b1);
            VIGIL_SHA256_ROUNDS_PAIR(a2, b2, k + round + 8);
            VIGIL_SHA256_SCHEDULE(a3, a0, a1, a2);
            VIGIL_SHA256_SCHEDULE(b3, b0, b1, b2);
            VIGIL_SHA256_ROUNDS_PAIR(a3, b3, k + round + 12);
        }
        abefA = _mm_add_epi32(abefA, abefBeforeA);
        cdghA = _mm_add_epi32(cdghA, cdghBeforeA);
        abefB = _mm_add_epi32(abefB, abefBeforeB);
        cdghB = _mm_add_epi32(cdghB, cdghBeforeB);
    }
    VIGIL_SHA256_STORE_STATE(stateA, abefA, cdghA);
    VIGIL_SHA256_STORE_STATE(stateB, abefB, cdghB);
#undef VIGIL_SHA256_LOAD_STATE
#undef VIGIL_SHA256_STORE_STATE
#undef VIGIL_SHA256_LOAD_WORDS
    for (size_t index = both; index < a->blocks; index++) vigil_sha256_blocks(stateA, vigil_sha256_block(a, index), 1);
    for (size_t index = both; index < b->blocks; index++) vigil_sha256_blocks(stateB, vigil_sha256_block(b, index), 1);
}

#undef VIGIL_SHA256_ROUNDS
#undef VIGIL_SHA256_ROUNDS_PAIR
#undef VIGIL_SHA256_SCHEDULE

/// Feeds `count` bytes at `bytes` through `block` (holding `*filled` bytes).
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_absorb(uint32_t state[8], uint8_t block[64], size_t *filled, const uint8_t *bytes, size_t count) {
    if (*filled > 0) {
        size_t take = 64 - *filled < count ? 64 - *filled : count;
        memcpy(block + *filled, bytes, take);
        *filled += take;
        bytes += take;
        count -= take;
        if (*filled < 64) return;
        vigil_sha256_blocks(state, block, 1);
        *filled = 0;
    }
    if (count >= 64) {
        vigil_sha256_blocks(state, bytes, count / 64);
        bytes += count & ~(size_t)63;
        count &= 63;
    }
    if (count > 0) {
        memcpy(block, bytes, count);
        *filled = count;
    }
}

/// SHA-256 of the bytes at `first` followed by those at `second` (either
/// may be empty, with any pointer), as eight big-endian state words: the
/// digest is `state[0]` to `state[7]`, each written most significant byte
/// first.
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_hardware(const uint8_t *first, size_t firstCount, const uint8_t *second, size_t secondCount, uint32_t state[8]) {
    memcpy(state, vigil_sha256_initial_state, sizeof(vigil_sha256_initial_state));
    uint8_t block[64];
    size_t filled = 0;
    if (firstCount > 0) vigil_sha256_absorb(state, block, &filled, first, firstCount);
    if (secondCount > 0) vigil_sha256_absorb(state, block, &filled, second, secondCount);
    // Padding: 0x80, zeros, then the message's length in bits (big-endian).
    uint64_t bits = ((uint64_t)firstCount + (uint64_t)secondCount) * 8;
    block[filled++] = 0x80;
    if (filled > 56) {
        memset(block + filled, 0, 64 - filled);
        vigil_sha256_blocks(state, block, 1);
        filled = 0;
    }
    memset(block + filled, 0, 56 - filled);
    for (int index = 0; index < 8; index++) block[56 + index] = (uint8_t)(bits >> (56 - 8 * index));
    vigil_sha256_blocks(state, block, 1);
}

/// SHA-256 of `prefix` followed by `countA` bytes at `a`, and of `prefix`
/// followed by `countB` bytes at `b`, computed side by side (two leaves);
/// the digests as in `vigil_sha256_hardware`.
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_hardware_pair(
    uint8_t prefix, const uint8_t *a, size_t countA, const uint8_t *b, size_t countB, uint32_t stateA[8], uint32_t stateB[8]
) {
    vigil_sha256_message messageA, messageB;
    vigil_sha256_prepare(&messageA, prefix, a, countA);
    vigil_sha256_prepare(&messageB, prefix, b, countB);
    memcpy(stateA, vigil_sha256_initial_state, sizeof(vigil_sha256_initial_state));
    memcpy(stateB, vigil_sha256_initial_state, sizeof(vigil_sha256_initial_state));
    vigil_sha256_blocks_pair(stateA, &messageA, stateB, &messageB);
}

/// SHA-256 of `prefix` followed by the 32-byte digests `first` and `second`
/// (each as eight big-endian words, as `vigil_sha256_hardware` gives them):
/// a chain step, its two blocks laid out directly.
__attribute__((target("sha,ssse3,sse4.1")))
static inline void vigil_sha256_hardware_digests(uint8_t prefix, const uint32_t first[8], const uint32_t second[8], uint32_t state[8]) {
    uint8_t blocks[128];
    memset(blocks, 0, sizeof(blocks));
    blocks[0] = prefix;
    for (int index = 0; index < 8; index++) {
        uint32_t word = __builtin_bswap32(first[index]);
        memcpy(blocks + 1 + 4 * index, &word, 4);
        word = __builtin_bswap32(second[index]);
        memcpy(blocks + 33 + 4 * index, &word, 4);
    }
    blocks[65] = 0x80;
    // 65 bytes: 520 bits.
    blocks[126] = 0x02;
    blocks[127] = 0x08;
    memcpy(state, vigil_sha256_initial_state, sizeof(vigil_sha256_initial_state));
    vigil_sha256_blocks(state, blocks, 2);
}
#else
static inline int vigil_sha256_hardware_available(void) { return 0; }
static inline void vigil_sha256_hardware(const uint8_t *first, size_t firstCount, const uint8_t *second, size_t secondCount, uint32_t state[8]) {
    (void)first;
    (void)firstCount;
    (void)second;
    (void)secondCount;
    memset(state, 0, 32);
}
static inline void vigil_sha256_hardware_pair(
    uint8_t prefix, const uint8_t *a, size_t countA, const uint8_t *b, size_t countB, uint32_t stateA[8], uint32_t stateB[8]
) {
    (void)prefix;
    (void)a;
    (void)countA;
    (void)b;
    (void)countB;
    memset(stateA, 0, 32);
    memset(stateB, 0, 32);
}
static inline void vigil_sha256_hardware_digests(uint8_t prefix, const uint32_t first[8], const uint32_t second[8], uint32_t state[8]) {
    (void)prefix;
    (void)first;
    (void)second;
    memset(state, 0, 32);
}
#endif

#endif
