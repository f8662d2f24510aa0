/* Buffers, arenas, status, codes, times and other small helpers. */
#define _GNU_SOURCE
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- vbuf ---- */

int vbuf_reserve(vbuf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int vbuf_append(vbuf *b, const void *data, size_t n) {
    if (vbuf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void vbuf_free(vbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

size_t get_varint(const uint8_t *p, size_t len, uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* ---- arena ---- */

struct arena_chunk {
    arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *arena_alloc(arena *a, size_t size) {
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (size == 0) size = sizeof(max_align_t);
    arena_chunk *c = a->head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 8192 ? size : 8192;
        c = malloc(sizeof(arena_chunk) + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *arena_strdup(arena *a, const char *s) {
    size_t n = strlen(s);
    char *p = arena_alloc(a, n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void arena_reset(arena *a) {
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- status ---- */

void status_reset(vstatus *s) {
    arena_reset(&s->mem);
    memset(&s->pub, 0, sizeof s->pub);
    s->pub.message = "";
    s->meta_cap = 0;
}

void status_free(vstatus *s) { arena_reset(&s->mem); }

void status_set(vstatus *s, int code, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    status_reset(s);
    s->pub.code = code;
    const char *m = arena_strdup(&s->mem, text);
    s->pub.message = m ? m : "";
}

int status_put_meta(vstatus *s, const char *key, const char *value) {
    vigil_kv *m = (vigil_kv *)s->pub.metadata;
    for (size_t i = 0; i < s->pub.n_metadata; i++) {
        if (strcmp(m[i].key, key) == 0) {
            const char *v = arena_strdup(&s->mem, value);
            if (!v) return -1;
            m[i].value = v;
            return 0;
        }
    }
    if (s->pub.n_metadata == s->meta_cap) {
        size_t cap = s->meta_cap ? s->meta_cap * 2 : 8;
        vigil_kv *n = arena_alloc(&s->mem, cap * sizeof *n);
        if (!n) return -1;
        if (s->pub.n_metadata) memcpy(n, m, s->pub.n_metadata * sizeof *n);
        m = n;
        s->pub.metadata = n;
        s->meta_cap = cap;
    }
    const char *k = arena_strdup(&s->mem, key), *v = arena_strdup(&s->mem, value);
    if (!k || !v) return -1;
    m[s->pub.n_metadata].key = k;
    m[s->pub.n_metadata].value = v;
    s->pub.n_metadata++;
    return 0;
}

void status_from_pb(vstatus *s, const Vigil__V1__Status *st) {
    status_reset(s);
    s->pub.code = (int)st->code;
    const char *m = arena_strdup(&s->mem, st->message ? st->message : "");
    s->pub.message = m ? m : "";
    if (st->n_event_errors) {
        vigil_event_error *e = arena_alloc(&s->mem, st->n_event_errors * sizeof *e);
        if (e) {
            for (size_t i = 0; i < st->n_event_errors; i++) {
                e[i].index = st->event_errors[i]->index;
                e[i].field = arena_strdup(&s->mem, st->event_errors[i]->field);
                e[i].reason = arena_strdup(&s->mem, st->event_errors[i]->reason);
                if (!e[i].field) e[i].field = "";
                if (!e[i].reason) e[i].reason = "";
            }
            s->pub.event_errors = e;
            s->pub.n_event_errors = st->n_event_errors;
        }
    }
    for (size_t i = 0; i < st->n_metadata; i++) status_put_meta(s, st->metadata[i]->key, st->metadata[i]->value);
}

const char *vigil_status_get(const vigil_status *status, const char *key) {
    if (!status || !key) return NULL;
    for (size_t i = 0; i < status->n_metadata; i++)
        if (strcmp(status->metadata[i].key, key) == 0) return status->metadata[i].value;
    return NULL;
}

/* ---- codes ---- */

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};
static const char *const client_names[] = {
    "ERR_CONNECT", "ERR_PROTOCOL", "ERR_TIMEOUT", "ERR_CLOSED", "ERR_ARGUMENT", "ERR_NOMEM", "ERR_IO", "ERR_FULL",
    "ERR_STOPPED",
};
static const char *const code_texts[] = {
    "success",
    "the call was cancelled",
    "unknown error",
    "invalid argument",
    "the deadline passed before the call finished",
    "not found",
    "already exists",
    "permission denied",
    "a limit was reached (retry later, or smaller)",
    "failed precondition",
    "aborted",
    "out of range",
    "not implemented by the server",
    "internal server error",
    "the server is unavailable (retry on a new connection)",
    "data loss",
    "not authenticated (missing or bad token)",
};
static const char *const client_texts[] = {
    "could not connect to the server",
    "protocol error: the peer sent something this client cannot understand",
    "timed out",
    "the connection was closed",
    "invalid argument to the client library",
    "out of memory",
    "spill file I/O error",
    "the agent's queue is full",
    "the agent is stopped",
};

const char *vigil_code_name(int code) {
    if (code >= 0 && code <= 16) return code_names[code];
    if (code >= 100 && code <= 108) return client_names[code - 100];
    return "?";
}

const char *vigil_strerror(int code) {
    if (code >= 0 && code <= 16) return code_texts[code];
    if (code >= 100 && code <= 108) return client_texts[code - 100];
    return "unknown status code";
}

/* ---- time ---- */

int64_t vigil_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**s)) return -1;
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    *out = v;
    return 0;
}

int vigil_parse_time(const char *text, int64_t *out_ns) {
    if (!text || !out_ns) return VIGIL_ERR_ARGUMENT;
    const char *s = text;
    int y, mo, d, h = 0, mi = 0, se = 0;
    int64_t frac = 0;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d))
        return VIGIL_ERR_ARGUMENT;
    /* Days per month, February of a leap year 29: 2026-02-31 is refused, not read as March 3. */
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] + (mo == 2 && leap)) return VIGIL_ERR_ARGUMENT;
    int64_t offset = 0;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' || digits(&s, 2, &se))
            return VIGIL_ERR_ARGUMENT;
        if (h > 23 || mi > 59 || se > 60) return VIGIL_ERR_ARGUMENT;
        if (*s == '.') {
            s++;
            int n = 0;
            while (isdigit((unsigned char)*s)) {
                if (n < 9) {
                    frac = frac * 10 + (*s - '0');
                    n++;
                }
                s++;
            }
            if (n == 0) return VIGIL_ERR_ARGUMENT;
            while (n++ < 9) frac *= 10;
        }
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int sign = *s++ == '-' ? -1 : 1, oh, om;
            if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om)) return VIGIL_ERR_ARGUMENT;
            offset = sign * ((int64_t)oh * 3600 + om * 60);
        } else {
            return VIGIL_ERR_ARGUMENT;
        }
    }
    if (*s) return VIGIL_ERR_ARGUMENT;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (!ns_from_parts(secs, (int32_t)frac, out_ns)) return VIGIL_ERR_ARGUMENT; /* outside int64 nanoseconds */
    return VIGIL_OK;
}

void vigil_format_time(int64_t ns, char *buf, size_t size) {
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac == 0) {
        snprintf(buf, size, "%sZ", base);
        return;
    }
    char f[16];
    snprintf(f, sizeof f, "%09" PRId64, frac);
    for (int i = 8; i > 0 && f[i] == '0'; i--) f[i] = 0;
    snprintf(buf, size, "%s.%sZ", base, f);
}

/* ---- misc ---- */

int parse_address(const char *addr, char *host, size_t hostsize, char *port, size_t portsize) {
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':') return -1;
        size_t n = (size_t)(end - addr - 1);
        if (n == 0 || n >= hostsize) return -1;
        memcpy(host, addr + 1, n);
        host[n] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) return -1;
        size_t n = (size_t)(colon - addr);
        if (n == 0 || n >= hostsize || memchr(addr, ':', n)) return -1;
        memcpy(host, addr, n);
        host[n] = 0;
    }
    const char *p = colon + 1;
    size_t n = strlen(p);
    if (n == 0 || n >= portsize) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i])) return -1;
    long v = strtol(p, NULL, 10);
    if (v <= 0 || v > 65535) return -1;
    memcpy(port, p, n + 1);
    return 0;
}

const char *env_or(const char *value, const char *env, const char *fallback) {
    if (value) return value;
    const char *e = getenv(env);
    return e ? e : fallback;
}

uint64_t random_u64(void) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_sec;
    }
    return v;
}

int inflate_into(vbuf *out, const uint8_t *in, size_t len, size_t max) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return -1;
    out->len = 0;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    int rc = -1;
    for (;;) {
        size_t room = len * 4 + 4096;
        if (room > max + 1 - out->len) room = max + 1 - out->len;
        if (room == 0 || vbuf_reserve(out, room) != 0) break;
        z.next_out = out->p + out->len;
        z.avail_out = (uInt)room;
        int r = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (out->len > max) break;
        if (r == Z_STREAM_END) {
            rc = z.avail_in == 0 ? 0 : -1;
            break;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) break;
        if (r == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    inflateEnd(&z);
    return rc;
}
