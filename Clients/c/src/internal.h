/* Internal declarations shared by the library's sources. Not installed. */
#ifndef VIGIL_INTERNAL_H
#define VIGIL_INTERNAL_H

#include "vigil.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/v1/audit.pb-c.h"
#include "vigil/v1/event.pb-c.h"
#include "vigil/v1/wire.pb-c.h"

/* ---- Wire constants ---------------------------------------------------- */

enum {
    FRAME_HELLO = 0x01,
    FRAME_HEADERS = 0x02,
    FRAME_MESSAGE = 0x03,
    FRAME_TRAILERS = 0x04,
    FRAME_CANCEL = 0x05,
    FRAME_WINDOW = 0x06,
    FRAME_PING = 0x07,
    FRAME_PONG = 0x08,
    FRAME_GOAWAY = 0x09,
};

enum { FLAG_END_STREAM = 0x01, FLAG_COMPRESSED = 0x02 };

#define FRAME_HEADER_SIZE 10
#define PREFACE_SIZE 8
#define MIN_CLIENT_FRAME 131072u
#define DEFAULT_MAX_FRAME (4u * 1024 * 1024)
#define DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

#define METHOD_INGEST "vigil.v1.Audit/Ingest"
#define METHOD_QUERY "vigil.v1.Audit/Query"
#define METHOD_GET "vigil.v1.Audit/Get"
#define METHOD_HEALTH "vigil.v1.Audit/Health"
#define METHOD_AGGREGATE "vigil.v1.Audit/Aggregate"
#define METHOD_SUBSCRIBE "vigil.v1.Audit/Subscribe"

/* ---- Byte buffers ------------------------------------------------------ */

typedef struct vbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
} vbuf;

int vbuf_reserve(vbuf *b, size_t extra); /* room for `extra` more bytes; 0 or -1 */
int vbuf_append(vbuf *b, const void *data, size_t n);
void vbuf_free(vbuf *b);

static inline void put_u32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t get_u32be(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Reads a varint; returns bytes used, 0 when malformed or truncated. */
size_t get_varint(const uint8_t *p, size_t len, uint64_t *out);

/* Writes a frame header. */
static inline void put_frame_header(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, uint32_t stream) {
    put_u32be(p, len);
    p[4] = type;
    p[5] = flags;
    put_u32be(p + 6, stream);
}

/* ---- Arena: bump allocation for decoded results ------------------------ */

typedef struct arena_chunk arena_chunk;
typedef struct arena {
    arena_chunk *head;
} arena;

void *arena_alloc(arena *a, size_t size); /* zeroed; NULL when out of memory */
char *arena_strdup(arena *a, const char *s);
void arena_reset(arena *a); /* frees everything */

/* ---- Status ------------------------------------------------------------ */

typedef struct vstatus {
    vigil_status pub;
    arena mem;
    size_t meta_cap;
} vstatus;

void status_reset(vstatus *s);
void status_set(vstatus *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void status_from_pb(vstatus *s, const Vigil__V1__Status *st);
int status_put_meta(vstatus *s, const char *key, const char *value);
void status_free(vstatus *s);

/* ---- Events ------------------------------------------------------------ */

/* An event's string lengths and sizes, computed once (event_prepare) for the
 * checks, the size and the writing. The strings of its targets, changes and
 * metadata (3, 3 and 2 each, in that order) are measured once too when there
 * are at most EV_PREP_EXTRAS of them (xn); otherwise xn is 0 and they are
 * measured where needed. */
#define EV_PREP_EXTRAS 64
typedef struct ev_prep {
    size_t len[15];
    size_t actor_body, resource_body, ts_body, size;
    size_t xn;
    uint32_t xlen[EV_PREP_EXTRAS];
} ev_prep;
size_t event_prepare(const vigil_event *e, ev_prep *pr); /* returns the encoded size */
/* Whether every list with a count has its array: the encoder reads them
 * before any other check, so this comes first. */
bool event_arrays_ok(const vigil_event *e);
const char *event_check_prepared(const vigil_event *e, const ev_prep *pr);
uint8_t *event_write_prepared(const vigil_event *e, const ev_prep *pr, uint8_t *p);
vigil_event *owned_event_new(Vigil__V1__GetResponse *resp);

/* Exact encoded size of an event (vigil.v1.AuditEvent). */
size_t event_encoded_size(const vigil_event *e);
/* Writes the event at p (event_encoded_size bytes); returns the end. */
uint8_t *event_write(const vigil_event *e, uint8_t *p);
/* Client-side checks done before an event is accepted: NULL when fine,
 * otherwise what is wrong. */
const char *event_check(const vigil_event *e);
/* Checks that bytes are UTF-8. */
bool utf8_valid(const uint8_t *s, size_t n);
/* Fills `out` from a decoded event; strings point into `pe`, arrays are
 * allocated in `a`. Returns 0 or -1 (out of memory). */
int event_from_pb(arena *a, const Vigil__V1__AuditEvent *pe, vigil_event *out);

/* Builds a protobuf-c Filter from a vigil_filter, allocating in `a`. */
Vigil__V1__Filter *filter_to_pb(arena *a, const vigil_filter *f);
Google__Protobuf__Timestamp *timestamp_pb(arena *a, int64_t ns);
Google__Protobuf__Duration *duration_pb(arena *a, int64_t ns);
/* seconds + nanos as nanoseconds since the epoch without signed overflow:
 * false unless |seconds| <= INT64_MAX / 1e9 - 3 (within 1677-09-21 ..
 * 2262-04-11; the 3 s of margin hold any int32 nanos). */
static inline bool ns_from_parts(int64_t s, int32_t nanos, int64_t *out) {
    const int64_t G = 1000000000;
    if (s > INT64_MAX / G - 3 || s < -(INT64_MAX / G - 3)) return false;
    *out = s * G + nanos;
    return true;
}
/* A server's time; an absurd one saturates at INT64_MIN / INT64_MAX. */
static inline int64_t timestamp_ns(const Google__Protobuf__Timestamp *t) {
    int64_t ns;
    if (!t) return 0;
    if (ns_from_parts(t->seconds, t->nanos, &ns)) return ns;
    return t->seconds < 0 ? INT64_MIN : INT64_MAX;
}

/* ---- Connection -------------------------------------------------------- */

typedef struct vframe {
    uint8_t type;
    uint8_t flags;
    uint32_t stream;
    const uint8_t *payload; /* inflated when the frame was COMPRESSED */
    size_t len;
} vframe;

typedef struct vconn {
    int fd;
    /* When readable, the blocking waits of the handshake and of
     * vconn_write_all / vconn_wait_readable give up (VIGIL_ERR_STOPPED):
     * how closing an agent interrupts its thread's connect. -1: none. */
    int cancel_fd;
    vbuf in;
    size_t in_off;
    uint32_t max_recv_frame;
    uint32_t max_message;
    vbuf inflated;
    uint32_t next_stream;
    /* The Welcome. */
    vigil_welcome welcome;
    arena welcome_mem;
    /* A GOAWAY from the server. */
    bool goaway;
    uint32_t goaway_last;
    uint32_t goaway_code;
    char goaway_message[256];
} vconn;

void vconn_init(vconn *c);
/* Connects and handshakes; on failure fills `st` and returns its code
 * (VIGIL_ERR_STOPPED when cancel_fd became readable). */
int vconn_open(vconn *c, const vigil_options *o, vstatus *st);
void vconn_close(vconn *c);
/* Reads what is available. 1: read something; 0: nothing (EAGAIN);
 * -1: EOF or error. */
int vconn_fill(vconn *c);
/* Takes the next whole frame from the input. 1: a frame; 0: need more;
 * -1: protocol error (message in `err`). */
int vconn_next(vconn *c, vframe *f, char *err, size_t errsize);
/* Blocking write of all bytes until the deadline (monotonic ms; 0: none).
 * 0, or a vigil_code (VIGIL_ERR_STOPPED: cancel_fd became readable). */
int vconn_write_all(vconn *c, const uint8_t *p, size_t n, int64_t deadline_ms);
/* Waits until the socket is readable or the deadline passes: 1 / 0; -1 when
 * cancel_fd became readable. */
int vconn_wait_readable(vconn *c, int64_t deadline_ms);

/* Appends a whole frame carrying a packed protobuf message to b. */
int frame_append_pb(vbuf *b, uint8_t type, uint8_t flags, uint32_t stream, const ProtobufCMessage *m);

/* zlib inflate into out (reset first), at most max bytes. 0 or -1. */
int inflate_into(vbuf *out, const uint8_t *in, size_t len, size_t max);

/* ---- Misc -------------------------------------------------------------- */

int64_t mono_ms(void);
/* Splits "host:port" / "[v6]:port". 0 or -1. */
int parse_address(const char *addr, char *host, size_t hostsize, char *port, size_t portsize);
const char *env_or(const char *value, const char *env, const char *fallback);
uint64_t random_u64(void);

#endif
