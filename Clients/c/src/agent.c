/* vigil_agent: the batching ingest agent.
 *
 * Producers (any thread) encode events straight into the current batch under
 * the agent's mutex. A full (N events, or batch_bytes) or old (T ms) batch is
 * sealed: its idempotency key is appended and it moves to the pending queue,
 * or, with VIGIL_SPILL and a full queue, to the spill file. One thread owns
 * the connection: it sends pending batches (up to M calls in flight), reads
 * acknowledgements, answers PINGs, reconnects with backoff and sends again
 * whatever was in flight when a connection dropped, with the same keys.
 *
 * Invariants (under `mu`):
 *   - every logged event is in exactly one of: cur, pending, in flight, the
 *     unread part of the spill file, a batch loaded from it; `outstanding`
 *     counts them, and reaches 0 only when all are acknowledged or refused;
 *   - while the spill file holds unread batches, newly sealed batches go to
 *     the spill file too (first in, first out);
 *   - the spill file is truncated once every batch in it is read back and
 *     finished; until then a restarted agent sends them again (the server
 *     answers a known key with its first answer and stores nothing).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define KEY_MAX 128
#define KEY_ROOM (1 + 2 + KEY_MAX) /* tag, length, key */
#define SPILL_MAGIC 0x5653504cu    /* "VSPL" */
#define SPILL_HEADER 16
#define SPILL_RECORD_MAX (256u << 20)
#define FREE_BATCHES_MAX 8

typedef struct batch {
    struct batch *next;
    uint64_t serial;
    uint8_t *buf; /* IngestRequest bytes: events (field 1), then the key (field 2) */
    size_t len, cap;
    uint32_t n_events;
    int64_t opened_ms;
    bool keyed;
    bool from_spill;
    char key[KEY_MAX + 1];
    /* In flight. */
    uint32_t stream;
    uint32_t attempts;
    bool got_response;
    vigil_ingest_result result;
} batch;

struct vigil_agent {
    vigil_agent_config cfg;
    char *address, *token, *client_name, *spill_path, *agent_id;
    uint64_t key_epoch;

    pthread_mutex_t mu;
    pthread_cond_t room_cv; /* producers waiting for queue room */
    pthread_cond_t done_cv; /* flush waiting for outstanding == 0 */
    uint32_t n_max, bytes_max, m_max;
    batch *cur;
    batch *pend_head;
    size_t n_pend;
    size_t n_inflight;
    batch *free_list;
    size_t n_free;
    uint64_t serial;
    uint64_t outstanding;
    /* Threads inside vigil_agent_log or vigil_agent_flush, which may wait on
     * the condition variables: close waits for them to leave before it frees
     * the agent (a producer woken by close still had to take mu). */
    int callers_inside;
    vigil_agent_stats st;
    bool stopping;
    /* Spill file. */
    int spill_fd;
    uint64_t spill_end, spill_read;
    uint64_t spill_unread; /* records after spill_read */
    uint64_t spill_unread_events; /* the events in them */
    uint64_t spill_loaded; /* read back, not finished */
    int deferred_code; /* a problem found under mu, reported by the I/O thread */
    char deferred_message[160];
    uint32_t deferred_events; /* events it dropped */

    int wake_r, wake_w;
    /* Made readable once, by close: interrupts the thread's handshake
     * (conn.cancel_fd), which may otherwise block for connect_timeout_ms. */
    int stop_r, stop_w;
    pthread_t thread;
    bool thread_started;

    /* The I/O thread's own state. */
    vconn conn;
    bool connected;
    bool draining;
    batch *inflight;
    vbuf out;
    size_t out_off;
    size_t pong_at, pong_len; /* the one PONG in `out` not sent yet (pong_len 0: none) */
    int64_t reconnect_at, backoff, pause_until, last_rx;
    bool ping_outstanding;
    bool progress; /* a batch was acknowledged on this connection */
    vstatus cst;
    arena scratch;
};

void vigil_agent_config_init(vigil_agent_config *c) {
    memset(c, 0, sizeof *c);
    vigil_options_init(&c->connection);
    c->batch_events = 1000;
    c->batch_ms = 100;
    c->batch_bytes = 1u << 20;
    c->max_in_flight = 8;
    c->queue_batches = 32;
    c->policy = VIGIL_BLOCK;
    c->block_timeout_ms = -1;
    c->backoff_min_ms = 50;
    c->backoff_max_ms = 5000;
}

/* ---- small helpers ---- */

static void wake(vigil_agent *a) {
    char b = 1;
    ssize_t r = write(a->wake_w, &b, 1);
    (void)r;
}

static void report(vigil_agent *a, int code, const char *message, const char *key, uint32_t dropped) {
    if (!a->cfg.on_error) return;
    vigil_agent_error e;
    memset(&e, 0, sizeof e);
    e.code = code;
    e.message = message ? message : "";
    e.idempotency_key = key;
    e.batch_events = dropped;
    a->cfg.on_error(&e, a->cfg.user);
}

static void abs_deadline(struct timespec *ts, int timeout_ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Notes a problem to report once mu is released (the first one wins). */
static void defer_report(vigil_agent *a, int code, const char *message, uint64_t dropped) {
    if (a->deferred_code) return;
    a->deferred_code = code;
    a->deferred_events = dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)dropped;
    snprintf(a->deferred_message, sizeof a->deferred_message, "%s", message);
}

static void report_deferred(vigil_agent *a) {
    pthread_mutex_lock(&a->mu);
    int code = a->deferred_code;
    uint32_t dropped = a->deferred_events;
    char message[sizeof a->deferred_message];
    memcpy(message, a->deferred_message, sizeof message);
    a->deferred_code = 0;
    a->deferred_events = 0;
    pthread_mutex_unlock(&a->mu);
    if (code) report(a, code, message, NULL, dropped);
}

/* ---- batches ---- */

static batch *batch_get(vigil_agent *a) {
    batch *b = a->free_list;
    if (b) {
        a->free_list = b->next;
        a->n_free--;
        uint8_t *buf = b->buf;
        size_t cap = b->cap;
        memset(b, 0, sizeof *b);
        b->buf = buf;
        b->cap = cap;
    } else {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
    }
    b->serial = ++a->serial;
    return b;
}

static void batch_put(vigil_agent *a, batch *b) {
    if (!b) return;
    if (a->n_free < FREE_BATCHES_MAX && b->cap <= 2 * ((size_t)a->bytes_max + KEY_ROOM)) {
        b->next = a->free_list;
        a->free_list = b;
        a->n_free++;
        return;
    }
    free(b->buf);
    free(b);
}

static int batch_reserve(batch *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap - b->len < extra) cap *= 2;
    uint8_t *p = realloc(b->buf, cap);
    if (!p) return -1;
    b->buf = p;
    b->cap = cap;
    return 0;
}

/* Appends the idempotency key: the batch is complete. */
static int batch_finish(vigil_agent *a, batch *b) {
    if (b->keyed) return 0;
    snprintf(b->key, sizeof b->key, "%s-%" PRIx64 "-%" PRIu64, a->agent_id, a->key_epoch, b->serial);
    size_t kl = strlen(b->key);
    if (batch_reserve(b, 2 + 2 + kl) != 0) return -1;
    uint8_t *p = b->buf + b->len;
    *p++ = 0x12;
    p = put_varint(p, kl);
    memcpy(p, b->key, kl);
    b->len = (size_t)(p + kl - b->buf);
    b->keyed = true;
    return 0;
}

/* Walks the fields of an IngestRequest: calls fn for each event (field 1)
 * and stores the key (field 2). Returns events seen, or -1 when malformed. */
typedef void (*event_fn)(const uint8_t *p, size_t len, uint32_t index, void *ctx);
static long walk_request(const uint8_t *p, size_t n, char *key, event_fn fn, void *ctx) {
    size_t i = 0;
    uint32_t index = 0;
    if (key) key[0] = 0;
    while (i < n) {
        uint64_t tag, len;
        size_t k = get_varint(p + i, n - i, &tag);
        if (!k) return -1;
        i += k;
        if ((tag & 7) == 0) {
            k = get_varint(p + i, n - i, &len);
            if (!k) return -1;
            i += k;
            continue;
        }
        if ((tag & 7) != 2) return -1;
        k = get_varint(p + i, n - i, &len);
        if (!k || len > n - i - k) return -1;
        i += k;
        if (tag >> 3 == 1) {
            if (fn) fn(p + i, (size_t)len, index, ctx);
            index++;
        } else if (tag >> 3 == 2 && key && len <= KEY_MAX) {
            memcpy(key, p + i, (size_t)len);
            key[len] = 0;
        }
        i += (size_t)len;
    }
    return (long)index;
}

/* ---- the spill file (under mu) ---- */

static int pwrite_full(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int spill_append(vigil_agent *a, batch *b) {
    uint8_t h[SPILL_HEADER];
    put_u32be(h, SPILL_MAGIC);
    put_u32be(h + 4, (uint32_t)b->len);
    put_u32be(h + 8, b->n_events);
    put_u32be(h + 12, (uint32_t)crc32(0L, b->buf, (uInt)b->len));
    if (pwrite_full(a->spill_fd, h, SPILL_HEADER, a->spill_end) != 0 ||
        pwrite_full(a->spill_fd, b->buf, b->len, a->spill_end + SPILL_HEADER) != 0) {
        /* A partial record is cut off here, or at the next open. */
        if (ftruncate(a->spill_fd, (off_t)a->spill_end) != 0) {
        }
        return VIGIL_ERR_IO;
    }
    a->spill_end += SPILL_HEADER + b->len;
    a->spill_unread++;
    a->spill_unread_events += b->n_events;
    a->st.batches_spilled++;
    return VIGIL_OK;
}

/* Reads the record at `off`. 1 with *b filled, 0 at a clean end, -1 when bad. */
static int spill_read_record(vigil_agent *a, uint64_t off, uint64_t end, batch *b, uint32_t *len_out) {
    if (off == end) return 0;
    if (end - off < SPILL_HEADER) return -1;
    uint8_t h[SPILL_HEADER];
    if (pread(a->spill_fd, h, SPILL_HEADER, (off_t)off) != SPILL_HEADER) return -1;
    uint32_t len = get_u32be(h + 4), n = get_u32be(h + 8), crc = get_u32be(h + 12);
    if (get_u32be(h) != SPILL_MAGIC || len > SPILL_RECORD_MAX || len > end - off - SPILL_HEADER) return -1;
    b->len = 0;
    if (batch_reserve(b, len) != 0) return -1;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(a->spill_fd, b->buf + got, len - got, (off_t)(off + SPILL_HEADER + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    if ((uint32_t)crc32(0L, b->buf, (uInt)len) != crc) return -1;
    b->len = len;
    if (walk_request(b->buf, len, b->key, NULL, NULL) != (long)n) return -1;
    b->n_events = n;
    b->keyed = true;
    *len_out = len;
    return 1;
}

/* Loads the next unread record as a batch to send. */
static batch *spill_load(vigil_agent *a) {
    if (!a->spill_unread) return NULL;
    batch *b = batch_get(a);
    if (!b) return NULL;
    uint32_t len;
    int r = spill_read_record(a, a->spill_read, a->spill_end, b, &len);
    if (r != 1) {
        /* The file changed under us (or a read failed): forget the rest of
         * it, and its events, or flush and close would wait for them for ever. */
        batch_put(a, b);
        uint64_t lost = a->spill_unread_events;
        a->spill_unread = 0;
        a->spill_unread_events = 0;
        a->spill_end = a->spill_read;
        a->outstanding = a->outstanding >= lost ? a->outstanding - lost : 0;
        a->st.events_lost += lost;
        char message[160];
        snprintf(message, sizeof message, "the spill file is damaged or unreadable; the rest of it (%" PRIu64 " events) is skipped",
                 lost);
        defer_report(a, VIGIL_ERR_IO, message, lost);
        pthread_cond_broadcast(&a->room_cv);
        pthread_cond_broadcast(&a->done_cv);
        return NULL;
    }
    a->spill_unread_events -= a->spill_unread_events >= b->n_events ? b->n_events : a->spill_unread_events;
    a->spill_read += SPILL_HEADER + len;
    if (--a->spill_unread == 0) pthread_cond_broadcast(&a->room_cv);
    a->spill_loaded++;
    a->st.batches_unspilled++;
    b->from_spill = true;
    return b;
}

/* A batch read back from the spill file is finished: truncate the file once
 * nothing in it is left to send. */
static void spill_finished(vigil_agent *a, batch *b) {
    if (!b->from_spill) return;
    b->from_spill = false;
    if (a->spill_loaded) a->spill_loaded--;
    if (!a->spill_unread && !a->spill_loaded && a->spill_end) {
        if (ftruncate(a->spill_fd, 0) == 0) {
            a->spill_end = a->spill_read = 0;
            pthread_cond_broadcast(&a->room_cv);
        }
    }
}

/* Scans an existing spill file: keeps its whole records, cuts a torn tail. */
static int spill_open(vigil_agent *a) {
    a->spill_fd = open(a->spill_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->spill_fd < 0) return VIGIL_ERR_IO;
    if (flock(a->spill_fd, LOCK_EX | LOCK_NB) != 0) return VIGIL_ERR_IO; /* another agent uses it */
    struct stat sb;
    if (fstat(a->spill_fd, &sb) != 0) return VIGIL_ERR_IO;
    uint64_t size = (uint64_t)sb.st_size, off = 0;
    batch tmp;
    memset(&tmp, 0, sizeof tmp);
    for (;;) {
        uint32_t len;
        int r = spill_read_record(a, off, size, &tmp, &len);
        if (r != 1) break;
        off += SPILL_HEADER + len;
        a->spill_unread++;
        a->spill_unread_events += tmp.n_events;
        a->outstanding += tmp.n_events;
    }
    free(tmp.buf);
    if (off < size) {
        if (ftruncate(a->spill_fd, (off_t)off) != 0) return VIGIL_ERR_IO;
        report(a, VIGIL_ERR_IO, "the spill file ended with a partial record; it was cut off", NULL, 0);
    }
    a->spill_end = off;
    a->spill_read = 0;
    return VIGIL_OK;
}

/* ---- sealing (under mu) ---- */

/* Moves a complete batch to the pending queue or the spill file.
 * VIGIL_OK, VIGIL_ERR_FULL (no room now), VIGIL_ERR_IO or VIGIL_ERR_NOMEM. */
static int place(vigil_agent *a, batch *b) {
    if (batch_finish(a, b) != 0) return VIGIL_ERR_NOMEM;
    if (!a->spill_unread && a->n_pend < a->cfg.queue_batches) {
        batch **pp = &a->pend_head;
        while (*pp) pp = &(*pp)->next;
        b->next = NULL;
        *pp = b;
        a->n_pend++;
        wake(a);
        return VIGIL_OK;
    }
    if (a->cfg.policy == VIGIL_SPILL && a->spill_fd >= 0 &&
        (!a->cfg.spill_max_bytes || a->spill_end + SPILL_HEADER + b->len <= a->cfg.spill_max_bytes)) {
        int r = spill_append(a, b);
        if (r != VIGIL_OK) return r;
        batch_put(a, b);
        return VIGIL_OK;
    }
    return VIGIL_ERR_FULL;
}

static int place_cur(vigil_agent *a) {
    batch *b = a->cur;
    if (!b || !b->n_events) return VIGIL_OK;
    int r = place(a, b);
    if (r == VIGIL_OK) a->cur = NULL;
    return r;
}

/* Seals the current batch, waiting for room up to the deadline (NULL: no
 * limit; `nowait`: not at all). */
static int place_cur_wait(vigil_agent *a, bool nowait, const struct timespec *deadline) {
    for (;;) {
        if (a->stopping) return VIGIL_ERR_STOPPED;
        int r = place_cur(a);
        if (r != VIGIL_ERR_FULL) return r;
        if (nowait) return r;
        int w = deadline ? pthread_cond_timedwait(&a->room_cv, &a->mu, deadline)
                         : pthread_cond_wait(&a->room_cv, &a->mu);
        if (w == ETIMEDOUT) {
            r = place_cur(a);
            return r;
        }
    }
}

/* ---- logging ---- */

/* Leaves a call counted in callers_inside; close may be waiting for it. */
static void caller_leaves(vigil_agent *a) {
    if (--a->callers_inside == 0 && a->stopping) pthread_cond_broadcast(&a->done_cv);
}

static int append_event(vigil_agent *a, const uint8_t *bytes, size_t total) {
    pthread_mutex_lock(&a->mu);
    a->callers_inside++;
    struct timespec dl, *deadline = NULL;
    bool nowait = a->cfg.block_timeout_ms == 0;
    if (a->cfg.block_timeout_ms > 0) {
        abs_deadline(&dl, a->cfg.block_timeout_ms);
        deadline = &dl;
    }
    int r = VIGIL_OK;
    for (;;) {
        if (a->stopping) {
            r = VIGIL_ERR_STOPPED;
            goto out;
        }
        if (!a->cur && !(a->cur = batch_get(a))) {
            r = VIGIL_ERR_NOMEM;
            goto out;
        }
        batch *b = a->cur;
        if (!b->keyed && b->n_events < a->n_max && b->len + total + KEY_ROOM <= a->bytes_max) break;
        if (!b->n_events) {
            r = VIGIL_ERR_ARGUMENT; /* one event larger than a batch may be */
            goto out;
        }
        r = place_cur_wait(a, nowait, deadline);
        if (r != VIGIL_OK) goto out;
    }
    batch *b = a->cur;
    if (batch_reserve(b, total + KEY_ROOM) != 0) {
        r = VIGIL_ERR_NOMEM;
        goto out;
    }
    memcpy(b->buf + b->len, bytes, total);
    b->len += total;
    if (b->n_events++ == 0) {
        b->opened_ms = mono_ms();
        wake(a); /* the I/O thread's timer for this batch */
    }
    a->outstanding++;
    a->st.events_logged++;
    if (b->n_events >= a->n_max) place_cur(a); /* no room: the next log waits */
out:
    caller_leaves(a);
    pthread_mutex_unlock(&a->mu);
    return r;
}

int vigil_agent_log(vigil_agent *a, const vigil_event *ev) {
    if (!a || !ev) return VIGIL_ERR_ARGUMENT;
    if (!event_arrays_ok(ev)) return VIGIL_ERR_ARGUMENT;
    ev_prep pr;
    size_t n = event_prepare(ev, &pr);
    if (event_check_prepared(ev, &pr)) return VIGIL_ERR_ARGUMENT;
    size_t total = 1 + varint_size(n) + n;
    if (total + KEY_ROOM > a->cfg.batch_bytes) return VIGIL_ERR_ARGUMENT;
    uint8_t stackbuf[4096];
    uint8_t *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!buf) return VIGIL_ERR_NOMEM;
    uint8_t *p = buf;
    *p++ = 0x0a;
    p = put_varint(p, n);
    event_write_prepared(ev, &pr, p);
    int r = append_event(a, buf, total);
    if (buf != stackbuf) free(buf);
    return r;
}

int vigil_agent_log_encoded(vigil_agent *a, const void *bytes, size_t len) {
    if (!a || (!bytes && len)) return VIGIL_ERR_ARGUMENT;
    if (len > a->cfg.batch_bytes) return VIGIL_ERR_ARGUMENT; /* before `total`, which would wrap near SIZE_MAX */
    size_t total = 1 + varint_size(len) + len;
    if (total + KEY_ROOM > a->cfg.batch_bytes) return VIGIL_ERR_ARGUMENT;
    uint8_t stackbuf[4096];
    uint8_t *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!buf) return VIGIL_ERR_NOMEM;
    uint8_t *p = buf;
    *p++ = 0x0a;
    p = put_varint(p, len);
    if (len) memcpy(p, bytes, len);
    int r = append_event(a, buf, total);
    if (buf != stackbuf) free(buf);
    return r;
}

/* ---- the I/O thread ---- */

/* Returns in-flight batches to the front of the pending queue, in order. */
static void requeue_locked(vigil_agent *a, batch *b) {
    b->stream = 0;
    b->got_response = false;
    batch **pp = &a->pend_head;
    while (*pp && (*pp)->serial < b->serial) pp = &(*pp)->next;
    b->next = *pp;
    *pp = b;
    a->n_pend++;
}

static batch *take_inflight(vigil_agent *a, uint32_t stream) {
    for (batch **pp = &a->inflight; *pp; pp = &(*pp)->next) {
        if ((*pp)->stream == stream) {
            batch *b = *pp;
            *pp = b->next;
            b->next = NULL;
            return b;
        }
    }
    return NULL;
}

static batch *find_inflight(vigil_agent *a, uint32_t stream) {
    for (batch *b = a->inflight; b; b = b->next)
        if (b->stream == stream) return b;
    return NULL;
}

/* After a failure: capped exponential backoff with jitter, the next try in
 * [b/2, b]. */
static void back_off(vigil_agent *a, int64_t now) {
    a->reconnect_at = now + a->backoff / 2 + (int64_t)(random_u64() % (uint64_t)(a->backoff / 2 + 1));
    a->backoff *= 2;
    if (a->backoff > a->cfg.backoff_max_ms) a->backoff = a->cfg.backoff_max_ms;
}

static void disconnect(vigil_agent *a, int code, const char *why) {
    if (!a->connected) return;
    vconn_close(&a->conn);
    a->connected = false;
    a->draining = false;
    a->out.len = a->out_off = a->pong_len = 0;
    a->ping_outstanding = false;
    size_t n = 0;
    pthread_mutex_lock(&a->mu);
    while (a->inflight) {
        batch *b = a->inflight;
        a->inflight = b->next;
        a->n_inflight--;
        requeue_locked(a, b);
        n++;
    }
    pthread_mutex_unlock(&a->mu);
    int64_t now = mono_ms();
    if (a->progress) {
        a->backoff = a->cfg.backoff_min_ms;
        a->reconnect_at = now + (int64_t)(random_u64() % (uint64_t)(a->backoff + 1));
    } else {
        /* Nothing acknowledged (a server that welcomes, then goes away or
         * closes): a failed connect, or the agent would reconnect in a loop. */
        back_off(a, now);
    }
    a->progress = false;
    if (why) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s; %zu batch%s in flight will be sent again", why, n, n == 1 ? "" : "es");
        report(a, code, msg, NULL, 0);
    }
}

static void try_connect(vigil_agent *a) {
    int r = vconn_open(&a->conn, &a->cfg.connection, &a->cst);
    int64_t now = mono_ms();
    if (r == VIGIL_ERR_STOPPED) return; /* close interrupted it: the loop stops */
    if (r != VIGIL_OK) {
        pthread_mutex_lock(&a->mu);
        a->st.connect_failures++;
        pthread_mutex_unlock(&a->mu);
        report(a, r, a->cst.pub.message, NULL, 0);
        back_off(a, now);
        return;
    }
    a->connected = true;
    a->draining = false;
    a->last_rx = now;
    a->ping_outstanding = false;
    a->progress = false; /* the backoff is reset by an acknowledgement, not by a handshake */
    const vigil_welcome *w = &a->conn.welcome;
    pthread_mutex_lock(&a->mu);
    a->st.connects++;
    a->n_max = a->cfg.batch_events < w->max_batch_events ? a->cfg.batch_events : w->max_batch_events;
    a->bytes_max = a->cfg.batch_bytes < w->max_frame_size ? a->cfg.batch_bytes : w->max_frame_size;
    a->m_max = a->cfg.max_in_flight < w->max_concurrent_calls ? a->cfg.max_in_flight : w->max_concurrent_calls;
    pthread_mutex_unlock(&a->mu);
}

/* Writes HEADERS + MESSAGE for a batch into the output buffer. */
static int enqueue_call(vigil_agent *a, batch *b) {
    uint32_t id = a->conn.next_stream;
    a->conn.next_stream += 2;
    uint8_t h[64], *p = h;
    *p++ = 0x0a;
    *p++ = (uint8_t)(sizeof METHOD_INGEST - 1);
    memcpy(p, METHOD_INGEST, sizeof METHOD_INGEST - 1);
    p += sizeof METHOD_INGEST - 1;
    if (a->cfg.connection.call_timeout_ms > 0) {
        *p++ = 0x10;
        p = put_varint(p, (uint64_t)a->cfg.connection.call_timeout_ms);
    }
    size_t hl = (size_t)(p - h);
    size_t bound = a->cfg.compress_level ? compressBound((uLong)b->len) : b->len;
    if (bound < b->len) bound = b->len;
    if (vbuf_reserve(&a->out, 2 * FRAME_HEADER_SIZE + hl + bound) != 0) return -1;
    uint8_t *o = a->out.p + a->out.len;
    put_frame_header(o, (uint32_t)hl, FRAME_HEADERS, 0, id);
    memcpy(o + FRAME_HEADER_SIZE, h, hl);
    o += FRAME_HEADER_SIZE + hl;
    uint8_t *payload = o + FRAME_HEADER_SIZE;
    size_t plen = b->len;
    uint8_t flags = FLAG_END_STREAM;
    bool compressed = false;
    if (a->cfg.compress_level) {
        uLongf dl = (uLongf)bound;
        if (compress2(payload, &dl, b->buf, (uLong)b->len, a->cfg.compress_level) == Z_OK && dl < b->len) {
            plen = dl;
            flags |= FLAG_COMPRESSED;
            compressed = true;
        }
    }
    if (!compressed) memcpy(payload, b->buf, b->len);
    put_frame_header(o, (uint32_t)plen, FRAME_MESSAGE, flags, id);
    a->out.len += 2 * FRAME_HEADER_SIZE + hl + plen;
    b->stream = id;
    b->got_response = false;
    pthread_mutex_lock(&a->mu);
    a->st.batches_sent++;
    a->st.bytes_sent += plen;
    if (b->attempts++) a->st.batches_retried++;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static void enqueue_small(vigil_agent *a, uint8_t type, uint32_t stream, const uint8_t *payload, size_t len) {
    if (vbuf_reserve(&a->out, FRAME_HEADER_SIZE + len) != 0) return;
    put_frame_header(a->out.p + a->out.len, (uint32_t)len, type, 0, stream);
    if (len) memcpy(a->out.p + a->out.len + FRAME_HEADER_SIZE, payload, len);
    a->out.len += FRAME_HEADER_SIZE + len;
}

/* Answers a PING. At most one PONG waits unsent: a newer PING's replaces it
 * (and answers the older ones too), so that a server that sends PINGs but
 * does not read cannot grow `out` without bound. Each is written at once
 * when the socket takes it, so that only such a server loses answers. */
static void answer_ping(vigil_agent *a, const uint8_t *payload, size_t len) {
    size_t size = FRAME_HEADER_SIZE + len;
    if (a->pong_len && a->pong_at >= a->out_off) {
        size_t tail = a->pong_at + a->pong_len; /* frames queued after it move */
        if (size > a->pong_len && vbuf_reserve(&a->out, size - a->pong_len) != 0) return;
        memmove(a->out.p + a->pong_at + size, a->out.p + tail, a->out.len - tail);
        a->out.len = a->out.len - a->pong_len + size;
    } else {
        if (vbuf_reserve(&a->out, size) != 0) return;
        a->pong_at = a->out.len;
        a->out.len += size;
    }
    a->pong_len = size;
    put_frame_header(a->out.p + a->pong_at, (uint32_t)len, FRAME_PONG, 0, 0);
    if (len) memcpy(a->out.p + a->pong_at + FRAME_HEADER_SIZE, payload, len);
}

/* Writes what the socket takes. 0, or -1 when the connection failed. */
static int flush_out(vigil_agent *a) {
    while (a->out_off < a->out.len) {
        ssize_t w = send(a->conn.fd, a->out.p + a->out_off, a->out.len - a->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            a->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
    a->out.len = a->out_off = a->pong_len = 0;
    if (a->out.cap > (8u << 20)) vbuf_free(&a->out);
    return 0;
}

/* A batch finished (acknowledged, or refused for good). Called without mu. */
static void finish_batch(vigil_agent *a, batch *b, bool acked, uint32_t dropped) {
    vigil_ingest_result res = b->result;
    uint32_t n = b->n_events;
    /* Before the batch counts as done, so that a flush that returns has seen
     * every callback of what it waited for. */
    if (acked && a->cfg.on_ack) a->cfg.on_ack(b->key, &res, a->cfg.user);
    if (acked) a->progress = true;
    pthread_mutex_lock(&a->mu);
    if (acked) {
        a->st.events_acked += n;
        a->st.batches_acked++;
        if (res.replayed) a->st.events_replayed += n;
    } else {
        a->st.events_rejected += dropped;
    }
    uint64_t done = acked ? n : dropped;
    a->outstanding = a->outstanding >= done ? a->outstanding - done : 0;
    a->n_inflight--;
    spill_finished(a, b);
    batch_put(a, b);
    pthread_cond_broadcast(&a->done_cv);
    pthread_cond_broadcast(&a->room_cv);
    pthread_mutex_unlock(&a->mu);
}

typedef struct filter_ctx {
    vigil_agent *a;
    const Vigil__V1__Status *st;
    batch *out;       /* the batch without its bad events */
    uint32_t kept;
    int failed;
    const char *key;
} filter_ctx;

static bool is_bad(const Vigil__V1__Status *st, uint32_t index) {
    for (size_t i = 0; i < st->n_event_errors; i++)
        if (st->event_errors[i]->index == index) return true;
    return false;
}

static void filter_event(const uint8_t *p, size_t len, uint32_t index, void *ctx_) {
    filter_ctx *ctx = ctx_;
    if (is_bad(ctx->st, index)) {
        /* Report each error of this event, with the event decoded. */
        Vigil__V1__AuditEvent *pe = vigil__v1__audit_event__unpack(NULL, len, p);
        vigil_event ev;
        bool have = pe && event_from_pb(&ctx->a->scratch, pe, &ev) == 0;
        bool first = true;
        for (size_t i = 0; i < ctx->st->n_event_errors; i++) {
            const Vigil__V1__EventError *ee = ctx->st->event_errors[i];
            if (ee->index != index) continue;
            if (ctx->a->cfg.on_error) {
                vigil_agent_error e;
                memset(&e, 0, sizeof e);
                e.code = VIGIL_INVALID_ARGUMENT;
                e.message = ctx->st->message ? ctx->st->message : "";
                e.idempotency_key = ctx->key;
                e.batch_events = first ? 1 : 0;
                e.index = index;
                e.field = ee->field ? ee->field : "";
                e.reason = ee->reason ? ee->reason : "";
                e.event = have ? &ev : NULL;
                ctx->a->cfg.on_error(&e, ctx->a->cfg.user);
            }
            first = false;
        }
        if (pe) vigil__v1__audit_event__free_unpacked(pe, NULL);
        arena_reset(&ctx->a->scratch);
        return;
    }
    batch *o = ctx->out;
    if (!o || ctx->failed) return;
    size_t total = 1 + varint_size(len) + len;
    if (batch_reserve(o, total + KEY_ROOM) != 0) {
        ctx->failed = 1;
        return;
    }
    uint8_t *q = o->buf + o->len;
    *q++ = 0x0a;
    q = put_varint(q, len);
    memcpy(q, p, len);
    o->len += total;
    o->n_events++;
    ctx->kept++;
}

/* The server refused some events: report them and send the others again
 * as a new batch (its key derived from the old one, so that a restarted
 * agent that reads the old batch from the spill file derives the same). */
static void refuse_events(vigil_agent *a, batch *b, const Vigil__V1__Status *st) {
    pthread_mutex_lock(&a->mu);
    batch *o = batch_get(a);
    pthread_mutex_unlock(&a->mu);
    filter_ctx ctx = {.a = a, .st = st, .out = o, .key = b->key};
    walk_request(b->buf, b->len, NULL, filter_event, &ctx);
    uint32_t bad = b->n_events - ctx.kept;
    size_t kl = strlen(b->key);
    if (!o || ctx.failed || ctx.kept == 0 || kl + 2 > KEY_MAX) {
        if (o && ctx.kept && !ctx.failed)
            report(a, VIGIL_INVALID_ARGUMENT, "the batch's key is too long to derive another; its other events are dropped",
                   b->key, ctx.kept);
        else if (ctx.failed || !o)
            report(a, VIGIL_ERR_NOMEM, "out of memory resending a batch's valid events; they are dropped", b->key,
                   ctx.kept);
        if (o) {
            pthread_mutex_lock(&a->mu);
            batch_put(a, o);
            pthread_mutex_unlock(&a->mu);
        }
        finish_batch(a, b, false, b->n_events);
        return;
    }
    /* The new batch takes the old one's place (serial, spill accounting). */
    memcpy(o->key, b->key, kl); /* kl + 2 <= KEY_MAX: checked above */
    memcpy(o->key + kl, "~f", 3);
    kl += 2;
    uint8_t *q = o->buf + o->len;
    *q++ = 0x12;
    q = put_varint(q, kl);
    memcpy(q, o->key, kl);
    o->len = (size_t)(q + kl - o->buf);
    o->keyed = true;
    o->serial = b->serial;
    o->from_spill = b->from_spill;
    o->attempts = 0;
    b->from_spill = false;
    pthread_mutex_lock(&a->mu);
    a->st.events_rejected += bad;
    a->outstanding = a->outstanding >= bad ? a->outstanding - bad : 0;
    a->n_inflight--;
    requeue_locked(a, o);
    batch_put(a, b);
    pthread_cond_broadcast(&a->done_cv);
    pthread_mutex_unlock(&a->mu);
}

static bool transient(uint32_t code) {
    switch (code) {
    case VIGIL_CANCELLED:
    case VIGIL_UNKNOWN:
    case VIGIL_DEADLINE_EXCEEDED:
    case VIGIL_RESOURCE_EXHAUSTED:
    case VIGIL_ABORTED:
    case VIGIL_INTERNAL:
    case VIGIL_UNAVAILABLE:
    case VIGIL_DATA_LOSS:
        return true;
    default:
        return false;
    }
}

static void retry_later(vigil_agent *a, batch *b, int64_t delay_ms) {
    pthread_mutex_lock(&a->mu);
    a->n_inflight--;
    requeue_locked(a, b);
    pthread_mutex_unlock(&a->mu);
    int64_t until = mono_ms() + delay_ms;
    if (until > a->pause_until) a->pause_until = until;
}

/* The longest `vigil.retry-after-ms` the agent honours. */
#define RETRY_AFTER_MAX_MS 3600000LL

static void on_trailers(vigil_agent *a, batch *b, const Vigil__V1__Status *st) {
    if (st->code == VIGIL_OK) {
        finish_batch(a, b, true, 0);
        return;
    }
    if (st->code == VIGIL_INVALID_ARGUMENT && st->n_event_errors) {
        refuse_events(a, b, st);
        return;
    }
    if (transient(st->code)) {
        int64_t delay = (int64_t)a->cfg.backoff_min_ms << (b->attempts < 7 ? b->attempts : 7);
        if (delay > a->cfg.backoff_max_ms) delay = a->cfg.backoff_max_ms;
        /* The server's own wait (a rate limit's), at most an hour: one pause
         * holds every batch, so an absurd value (or one that overflows the
         * clock) would stall the agent, and flush and close with it. */
        for (size_t i = 0; i < st->n_metadata; i++)
            if (strcmp(st->metadata[i]->key, "vigil.retry-after-ms") == 0) {
                long long asked = atoll(st->metadata[i]->value);
                delay = asked < 0 ? 0 : asked > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : (int64_t)asked;
            }
        char msg[600];
        snprintf(msg, sizeof msg, "%s (will retry in %" PRId64 " ms)", st->message ? st->message : "", delay);
        report(a, (int)st->code, msg, b->key, 0);
        retry_later(a, b, delay);
        return;
    }
    report(a, (int)st->code, st->message, b->key, b->n_events);
    finish_batch(a, b, false, b->n_events);
}

/* Handles one frame from the server. 0, or -1: the connection must go. */
static int on_frame(vigil_agent *a, const vframe *f, char *why, size_t whysize) {
    switch (f->type) {
    case FRAME_MESSAGE: {
        batch *b = find_inflight(a, f->stream);
        if (!b) return 0;
        Vigil__V1__IngestResponse *r = vigil__v1__ingest_response__unpack(NULL, f->len, f->payload);
        if (!r) {
            snprintf(why, whysize, "malformed IngestResponse");
            return -1;
        }
        b->result.first_seq = r->first_seq;
        b->result.last_seq = r->last_seq;
        b->result.count = r->count;
        b->result.received_at_ns = timestamp_ns(r->received_at);
        b->result.replayed = r->replayed;
        b->got_response = true;
        vigil__v1__ingest_response__free_unpacked(r, NULL);
        return 0;
    }
    case FRAME_TRAILERS: {
        batch *b = take_inflight(a, f->stream);
        if (!b) return 0;
        Vigil__V1__Status *st = vigil__v1__status__unpack(NULL, f->len, f->payload);
        if (!st) {
            pthread_mutex_lock(&a->mu);
            b->next = a->inflight; /* back in flight: requeued on disconnect */
            a->inflight = b;
            pthread_mutex_unlock(&a->mu);
            snprintf(why, whysize, "malformed TRAILERS");
            return -1;
        }
        on_trailers(a, b, st);
        vigil__v1__status__free_unpacked(st, NULL);
        return 0;
    }
    case FRAME_CANCEL: {
        batch *b = take_inflight(a, f->stream);
        if (b) retry_later(a, b, a->cfg.backoff_min_ms);
        return 0;
    }
    case FRAME_PING:
        answer_ping(a, f->payload, f->len);
        flush_out(a); /* a failure shows at the loop's next flush */
        return 0;
    case FRAME_PONG:
        a->ping_outstanding = false;
        return 0;
    case FRAME_GOAWAY: {
        Vigil__V1__GoAway *g = vigil__v1__go_away__unpack(NULL, f->len, f->payload);
        if (!g) {
            snprintf(why, whysize, "malformed GOAWAY");
            return -1;
        }
        a->draining = true;
        a->conn.goaway = true;
        /* Calls above last_stream_id will not run: send them again elsewhere. */
        for (batch **pp = &a->inflight; *pp;) {
            batch *b = *pp;
            if (b->stream > g->last_stream_id) {
                *pp = b->next;
                pthread_mutex_lock(&a->mu);
                a->n_inflight--;
                requeue_locked(a, b);
                pthread_mutex_unlock(&a->mu);
            } else {
                pp = &b->next;
            }
        }
        if (g->code != VIGIL_OK && g->code != VIGIL_UNAVAILABLE)
            report(a, (int)g->code, g->message, NULL, 0);
        vigil__v1__go_away__free_unpacked(g, NULL);
        return 0;
    }
    default:
        snprintf(why, whysize, "unexpected frame type 0x%02x from the server", f->type);
        return -1;
    }
}

static void *agent_main(void *arg) {
    vigil_agent *a = arg;
    a->backoff = a->cfg.backoff_min_ms;
    a->reconnect_at = 0;
    for (;;) {
        int64_t now = mono_ms();
        int64_t timer = now + 1000;

        pthread_mutex_lock(&a->mu);
        if (a->stopping) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        /* An old batch is sent even when not full. */
        if (a->cur && a->cur->n_events) {
            int64_t due = a->cur->opened_ms + a->cfg.batch_ms;
            if (now >= due) {
                int r = place_cur(a);
                if (r == VIGIL_ERR_IO) defer_report(a, VIGIL_ERR_IO, "cannot write the spill file", 0);
            } else if (due < timer) {
                timer = due;
            }
        }
        /* Take batches to send. */
        batch *to_send = NULL, **tail = &to_send;
        if (a->connected && !a->draining && now >= a->pause_until) {
            while (a->n_inflight < a->m_max) {
                batch *b = a->pend_head;
                if (b) {
                    a->pend_head = b->next;
                    a->n_pend--;
                    pthread_cond_broadcast(&a->room_cv);
                } else if (!(b = spill_load(a))) {
                    break;
                }
                b->next = NULL;
                *tail = b;
                tail = &b->next;
                a->n_inflight++;
            }
        }
        bool deferred = a->deferred_code != 0;
        pthread_mutex_unlock(&a->mu);
        if (deferred) report_deferred(a);

        while (to_send) {
            batch *b = to_send;
            to_send = b->next;
            b->next = NULL;
            if (b->len > a->conn.welcome.max_frame_size) {
                report(a, VIGIL_RESOURCE_EXHAUSTED, "the batch is larger than the server's max_frame_size; dropped",
                       b->key, b->n_events);
                finish_batch(a, b, false, b->n_events);
                continue;
            }
            if (enqueue_call(a, b) != 0) {
                retry_later(a, b, a->cfg.backoff_min_ms);
                continue;
            }
            b->next = a->inflight;
            a->inflight = b;
        }

        if (!a->connected) {
            if (now >= a->reconnect_at) {
                try_connect(a);
                continue;
            }
            if (a->reconnect_at < timer) timer = a->reconnect_at;
        } else {
            if (a->draining && !a->inflight) {
                bool worked = a->progress;
                disconnect(a, VIGIL_UNAVAILABLE, NULL);
                if (worked) a->reconnect_at = now; /* at once: the server asked us to go elsewhere */
                continue;
            }
            if (a->conn.next_stream > 0x7fff0000u) a->draining = true;
            if (flush_out(a) != 0) {
                disconnect(a, VIGIL_ERR_CLOSED, "connection lost while sending");
                continue;
            }
            if (a->pause_until > now && a->pause_until < timer) timer = a->pause_until;
            /* Liveness: calls in flight and a silent server. */
            int io = a->cfg.connection.call_timeout_ms;
            if (io > 0 && a->inflight) {
                int64_t silent = now - a->last_rx;
                if (silent > io) {
                    disconnect(a, VIGIL_ERR_TIMEOUT, "no answer from the server within the call timeout");
                    continue;
                }
                if (silent > io / 3 && !a->ping_outstanding) {
                    uint8_t ping[11] = {0x08};
                    size_t pl = (size_t)(put_varint(ping + 1, (uint64_t)now) - ping);
                    enqueue_small(a, FRAME_PING, 0, ping, pl);
                    a->ping_outstanding = true;
                    flush_out(a);
                }
                if (a->last_rx + io < timer) timer = a->last_rx + io;
                if (a->last_rx + io / 3 < timer) timer = a->last_rx + io / 3;
            }
        }

        struct pollfd pfd[2] = {{.fd = a->wake_r, .events = POLLIN}, {.fd = -1}};
        if (a->connected) {
            pfd[1].fd = a->conn.fd;
            pfd[1].events = (short)(POLLIN | (a->out_off < a->out.len ? POLLOUT : 0));
        }
        int wait = (int)(timer - mono_ms());
        if (wait < 0) wait = 0;
        int pr = poll(pfd, 2, wait);
        if (pr < 0) continue;
        if (pfd[0].revents & POLLIN) {
            char drain[256];
            while (read(a->wake_r, drain, sizeof drain) > 0) {
            }
        }
        if (a->connected && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int fr = vconn_fill(&a->conn);
            if (fr > 0) a->last_rx = mono_ms();
            char why[300] = "";
            vframe f;
            int nr;
            while ((nr = vconn_next(&a->conn, &f, why, sizeof why)) == 1) {
                if (on_frame(a, &f, why, sizeof why) != 0) {
                    nr = -1;
                    break;
                }
            }
            if (nr < 0) {
                char msg[400];
                snprintf(msg, sizeof msg, "protocol error: %s", why);
                disconnect(a, VIGIL_ERR_PROTOCOL, msg);
                continue;
            }
            if (fr < 0) {
                char msg[400];
                if (a->conn.goaway)
                    snprintf(msg, sizeof msg, "the server closed the connection (GOAWAY)");
                else
                    snprintf(msg, sizeof msg, "the server closed the connection");
                disconnect(a, VIGIL_ERR_CLOSED, msg);
                continue;
            }
        }
    }
    /* Stopping: whatever is in flight goes back to pending for close(). */
    if (a->connected) {
        flush_out(a);
        vconn_close(&a->conn);
        a->connected = false;
    }
    pthread_mutex_lock(&a->mu);
    while (a->inflight) {
        batch *b = a->inflight;
        a->inflight = b->next;
        a->n_inflight--;
        requeue_locked(a, b);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- open / flush / close ---- */

static char *dupz(const char *s) { return s ? strdup(s) : NULL; }

static void agent_free(vigil_agent *a) {
    batch *lists[] = {a->cur, a->pend_head, a->free_list, a->inflight};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        batch *b = lists[i];
        while (b) {
            batch *next = i == 0 ? NULL : b->next;
            free(b->buf);
            free(b);
            b = next;
        }
    }
    if (a->spill_fd >= 0) close(a->spill_fd);
    if (a->wake_r >= 0) close(a->wake_r);
    if (a->wake_w >= 0) close(a->wake_w);
    if (a->stop_r >= 0) close(a->stop_r);
    if (a->stop_w >= 0) close(a->stop_w);
    vconn_close(&a->conn);
    vbuf_free(&a->out);
    status_free(&a->cst);
    arena_reset(&a->scratch);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->room_cv);
    pthread_cond_destroy(&a->done_cv);
    free(a->address);
    free(a->token);
    free(a->client_name);
    free(a->spill_path);
    free(a->agent_id);
    free(a);
}

int vigil_agent_open(const vigil_agent_config *config, vigil_agent **out) {
    if (!config || !out) return VIGIL_ERR_ARGUMENT;
    *out = NULL;
    const vigil_agent_config *c = config;
    if (c->batch_events == 0 || c->batch_bytes < 4096 || c->max_in_flight == 0 || c->queue_batches == 0 ||
        (c->policy != VIGIL_BLOCK && c->policy != VIGIL_SPILL) || (c->policy == VIGIL_SPILL && !c->spill_path) ||
        c->compress_level < 0 || c->compress_level > 9 || c->backoff_min_ms == 0 ||
        c->backoff_max_ms < c->backoff_min_ms || (c->agent_id && strlen(c->agent_id) > 64) ||
        (c->policy == VIGIL_SPILL && c->batch_bytes > SPILL_RECORD_MAX)) /* a larger record could not be read back */
        return VIGIL_ERR_ARGUMENT;
    vigil_agent *a = calloc(1, sizeof *a);
    if (!a) return VIGIL_ERR_NOMEM;
    a->cfg = *c;
    a->spill_fd = a->wake_r = a->wake_w = a->stop_r = a->stop_w = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->room_cv, &ca);
    pthread_cond_init(&a->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    vconn_init(&a->conn);
    status_reset(&a->cst);
    char idbuf[40];
    if (!c->agent_id) snprintf(idbuf, sizeof idbuf, "a%016" PRIx64, random_u64());
    a->address = dupz(c->connection.address);
    a->token = dupz(c->connection.token);
    a->client_name = dupz(c->connection.client_name ? c->connection.client_name : "vigil-c-agent/" VIGIL_VERSION);
    a->spill_path = dupz(c->spill_path);
    a->agent_id = dupz(c->agent_id ? c->agent_id : idbuf);
    if ((c->connection.address && !a->address) || (c->connection.token && !a->token) || !a->client_name ||
        (c->spill_path && !a->spill_path) || !a->agent_id) {
        agent_free(a);
        return VIGIL_ERR_NOMEM;
    }
    a->cfg.connection.address = a->address;
    a->cfg.connection.token = a->token;
    a->cfg.connection.client_name = a->client_name;
    a->cfg.spill_path = a->spill_path;
    a->cfg.agent_id = a->agent_id;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->key_epoch = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    a->n_max = c->batch_events;
    a->bytes_max = c->batch_bytes;
    a->m_max = c->max_in_flight;
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        agent_free(a);
        return VIGIL_ERR_IO;
    }
    a->wake_r = fds[0];
    a->wake_w = fds[1];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        agent_free(a);
        return VIGIL_ERR_IO;
    }
    a->stop_r = fds[0];
    a->stop_w = fds[1];
    a->conn.cancel_fd = a->stop_r;
    if (c->policy == VIGIL_SPILL) {
        int r = spill_open(a);
        if (r != VIGIL_OK) {
            agent_free(a);
            return r;
        }
    }
    if (pthread_create(&a->thread, NULL, agent_main, a) != 0) {
        agent_free(a);
        return VIGIL_ERR_NOMEM;
    }
    a->thread_started = true;
    *out = a;
    return VIGIL_OK;
}

int vigil_agent_flush(vigil_agent *a, int timeout_ms) {
    if (!a) return VIGIL_ERR_ARGUMENT;
    struct timespec dl;
    if (timeout_ms >= 0) abs_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&a->mu);
    a->callers_inside++;
    int r = VIGIL_OK;
    if (a->cur && a->cur->n_events) {
        r = place_cur_wait(a, false, timeout_ms >= 0 ? &dl : NULL);
        if (r == VIGIL_ERR_FULL) r = VIGIL_ERR_TIMEOUT;
    }
    /* Events another thread logs meanwhile are sealed by the I/O thread at
     * their batch's age. Another thread's close ends the wait. */
    while (r == VIGIL_OK && a->outstanding > 0) {
        if (a->stopping) {
            r = VIGIL_ERR_STOPPED;
            break;
        }
        int w = timeout_ms >= 0 ? pthread_cond_timedwait(&a->done_cv, &a->mu, &dl)
                                : pthread_cond_wait(&a->done_cv, &a->mu);
        if (w == ETIMEDOUT && a->outstanding > 0) r = VIGIL_ERR_TIMEOUT;
    }
    caller_leaves(a);
    pthread_mutex_unlock(&a->mu);
    return r;
}

void vigil_agent_get_stats(vigil_agent *a, vigil_agent_stats *s) {
    if (!a || !s) return;
    pthread_mutex_lock(&a->mu);
    *s = a->st;
    s->events_pending = a->outstanding;
    pthread_mutex_unlock(&a->mu);
}

/* Close could not write the batches still in memory (the current one and
 * the pending queue, where close's thread put back what was in flight) to
 * the spill file: agent_free drops them. Counts their events lost instead
 * of pending, and returns that count. */
static uint64_t lose_memory_batches(vigil_agent *a) {
    uint64_t n = a->cur ? a->cur->n_events : 0;
    for (batch *b = a->pend_head; b; b = b->next) n += b->n_events;
    a->outstanding = a->outstanding >= n ? a->outstanding - n : 0;
    a->st.events_lost += n;
    return n;
}

/* On close with VIGIL_SPILL: rewrites the spill file as exactly what is left
 * to send (memory batches first, being older, then the unread records). When
 * that fails, the old file stays as it was, and the spill counters describe
 * it again (not the new file, which is deleted); the memory batches are lost,
 * their events counted in *lost. */
static int spill_compact(vigil_agent *a, uint64_t *lost) {
    *lost = 0;
    if (!a->outstanding) {
        if (ftruncate(a->spill_fd, 0) != 0) return VIGIL_ERR_IO;
        a->spill_end = a->spill_read = 0;
        return VIGIL_OK;
    }
    size_t plen = strlen(a->spill_path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        *lost = lose_memory_batches(a);
        return VIGIL_ERR_NOMEM;
    }
    memcpy(tmp, a->spill_path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(tmp);
        *lost = lose_memory_batches(a);
        return VIGIL_ERR_IO;
    }
    /* The old file's figures, put back if the new file does not replace it. */
    int old = a->spill_fd;
    uint64_t old_read = a->spill_read, old_end = a->spill_end;
    uint64_t old_unread = a->spill_unread, old_unread_events = a->spill_unread_events;
    uint64_t old_spilled = a->st.batches_spilled;
    a->spill_fd = fd;
    a->spill_end = 0;
    a->spill_unread = 0;
    a->spill_unread_events = 0;
    int r = VIGIL_OK;
    if (a->cur && a->cur->n_events) {
        if (batch_finish(a, a->cur) != 0) {
            r = VIGIL_ERR_NOMEM; /* a->cur stays, for agent_free */
        } else {
            requeue_locked(a, a->cur);
            a->cur = NULL;
        }
    }
    for (batch *b = a->pend_head; b && r == VIGIL_OK; b = b->next) r = spill_append(a, b);
    /* Copy the unread tail: the old file's unread records, as they are. */
    uint8_t buf[65536];
    for (uint64_t off = old_read; r == VIGIL_OK && off < old_end;) {
        size_t want = old_end - off < sizeof buf ? (size_t)(old_end - off) : sizeof buf;
        ssize_t n = pread(old, buf, want, (off_t)off);
        if (n <= 0 || pwrite(fd, buf, (size_t)n, (off_t)a->spill_end) != n) {
            r = VIGIL_ERR_IO;
            break;
        }
        off += (uint64_t)n;
        a->spill_end += (uint64_t)n;
    }
    if (r == VIGIL_OK && (fsync(fd) != 0 || rename(tmp, a->spill_path) != 0)) r = VIGIL_ERR_IO;
    if (r != VIGIL_OK) {
        unlink(tmp);
        close(fd);
        /* The old file is intact: everything unread in it is resent by the
         * next agent, and the counters say so again; the memory batches
         * written to the deleted file were not spilled, and are lost. */
        a->spill_fd = old;
        a->spill_end = old_end;
        a->spill_unread = old_unread;
        a->spill_unread_events = old_unread_events;
        a->st.batches_spilled = old_spilled;
        *lost = lose_memory_batches(a);
    } else {
        close(old);
        a->spill_read = 0; /* the new file is all unread */
        a->spill_unread += old_unread;
        a->spill_unread_events += old_unread_events;
    }
    free(tmp);
    return r;
}

int vigil_agent_close(vigil_agent *a, int timeout_ms, vigil_agent_stats *stats) {
    if (!a) return VIGIL_ERR_ARGUMENT;
    int r = vigil_agent_flush(a, timeout_ms);
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->room_cv);
    pthread_cond_broadcast(&a->done_cv);
    /* Threads still blocked in log or flush return VIGIL_ERR_STOPPED: wait
     * until they have left, for the mutex and the agent are freed below. */
    while (a->callers_inside > 0) pthread_cond_wait(&a->done_cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    wake(a);
    char one = 1; /* a handshake in progress gives up; stop_r stays readable */
    if (write(a->stop_w, &one, 1) != 1) {
    }
    if (a->thread_started) pthread_join(a->thread, NULL);
    pthread_mutex_lock(&a->mu);
    uint64_t lost = 0;
    if (a->cfg.policy == VIGIL_SPILL && a->spill_fd >= 0) {
        int s = spill_compact(a, &lost);
        if (s != VIGIL_OK) r = s;
        else if (r == VIGIL_ERR_TIMEOUT) r = VIGIL_OK; /* nothing is lost: it waits in the spill file */
    } else if (a->outstanding) {
        r = VIGIL_ERR_TIMEOUT;
    }
    if (stats) {
        *stats = a->st;
        stats->events_pending = a->outstanding;
    }
    pthread_mutex_unlock(&a->mu);
    if (lost) {
        char message[200];
        snprintf(message, sizeof message,
                 "cannot rewrite the spill file at close (%s); %" PRIu64 " events still in memory are lost", vigil_code_name(r),
                 lost);
        report(a, r, message, NULL, lost > UINT32_MAX ? UINT32_MAX : (uint32_t)lost);
    }
    agent_free(a);
    return r;
}
