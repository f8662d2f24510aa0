/* vigil_client: one connection, blocking calls. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct vigil_client {
    vigil_options opts;
    char *address, *token, *client_name;
    vconn conn;
    bool connected;
    bool ever_connected;
    vstatus status;
    bool not_processed; /* the last call was refused by a GOAWAY: it never ran */
    bool too_large;     /* the last call_open refused its request, over max_frame_size: it would be again */
    bool not_vigil;     /* the last connect met a peer that does not speak the protocol: it would again */
    vbuf out;      /* frames being written */
    vbuf response; /* the last unary response message */
    arena page;    /* events of one page / one message */
};

void vigil_options_init(vigil_options *o) {
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 5000;
    o->call_timeout_ms = 30000;
    o->max_frame_size = DEFAULT_MAX_FRAME;
    o->max_message_size = DEFAULT_MAX_MESSAGE;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

vigil_client *vigil_client_new(const vigil_options *options) {
    vigil_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (options) c->opts = *options;
    else vigil_options_init(&c->opts);
    c->address = dup_or_null(c->opts.address);
    c->token = dup_or_null(c->opts.token);
    c->client_name = dup_or_null(c->opts.client_name);
    if ((c->opts.address && !c->address) || (c->opts.token && !c->token) ||
        (c->opts.client_name && !c->client_name)) {
        vigil_client_free(c);
        return NULL;
    }
    c->opts.address = c->address;
    c->opts.token = c->token;
    c->opts.client_name = c->client_name;
    vconn_init(&c->conn);
    status_reset(&c->status);
    return c;
}

void vigil_client_free(vigil_client *c) {
    if (!c) return;
    vconn_close(&c->conn);
    status_free(&c->status);
    vbuf_free(&c->out);
    vbuf_free(&c->response);
    arena_reset(&c->page);
    free(c->address);
    free(c->token);
    free(c->client_name);
    free(c);
}

int vigil_client_connect(vigil_client *c) {
    if (!c) return VIGIL_ERR_ARGUMENT;
    c->connected = false;
    int r = vconn_open(&c->conn, &c->opts, &c->status);
    /* An HTTP server, no VGIL preface, another major version: a misdirected
     * address, not a passing failure. */
    c->not_vigil = r == VIGIL_ERR_PROTOCOL;
    if (r == VIGIL_OK) {
        c->connected = true;
        c->ever_connected = true;
    }
    return r;
}

const vigil_welcome *vigil_client_welcome(const vigil_client *c) {
    return c && c->ever_connected && c->connected ? &c->conn.welcome : NULL;
}

const vigil_status *vigil_client_status(const vigil_client *c) { return c ? &c->status.pub : NULL; }

static int conn_lost(vigil_client *c, int code, const char *what);
static int conn_frame(vigil_client *c, const vframe *f);

/* Between calls: reads what the server sent meanwhile (a GOAWAY, a PING,
 * late frames of cancelled calls, or the end of the connection), so that a
 * call is not sent on a connection the server already closed. */
static void check_idle(vigil_client *c) {
    for (;;) {
        struct pollfd pfd = {.fd = c->conn.fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0) return;
        int r = vconn_fill(&c->conn);
        if (r < 0) {
            conn_lost(c, VIGIL_ERR_CLOSED, "the server closed the connection");
            return;
        }
        vframe f;
        char err[256];
        int n;
        while ((n = vconn_next(&c->conn, &f, err, sizeof err)) == 1)
            if (conn_frame(c, &f) < 0) return;
        if (n < 0) {
            conn_lost(c, VIGIL_ERR_PROTOCOL, err);
            return;
        }
        if (r == 0) return;
    }
}

static int ensure_connected(vigil_client *c) {
    if (c->connected) check_idle(c);
    if (c->connected && !c->conn.goaway) return VIGIL_OK;
    return vigil_client_connect(c);
}

/* The connection is unusable: close it; the next call reconnects. */
static int conn_lost(vigil_client *c, int code, const char *what) {
    if (c->conn.goaway && code == VIGIL_ERR_CLOSED) {
        /* After a GOAWAY: a call it refused (above last_stream_id) has already
         * ended with UNAVAILABLE (call_next), so the call still open was
         * accepted, and the server closed without answering it: it may have
         * run. Not the GOAWAY's UNAVAILABLE, which says it never did (an
         * Ingest without a key retried on that word could be stored twice). */
        status_set(&c->status, VIGIL_ERR_CLOSED,
                   "%s, after the server's GOAWAY (%s): a call it accepted and left unanswered may have run", what,
                   c->conn.goaway_message);
    } else {
        status_set(&c->status, code, "%s", what);
    }
    vconn_close(&c->conn);
    c->connected = false;
    return c->status.pub.code;
}

static int64_t call_deadline(int timeout_ms) {
    /* The server ends the call at its deadline; the local one leaves it time
     * to say so. */
    return timeout_ms > 0 ? mono_ms() + timeout_ms + 2000 : 0;
}

static int send_small_frame(vigil_client *c, uint8_t type, uint32_t stream, const ProtobufCMessage *m) {
    vbuf b = {0};
    if (frame_append_pb(&b, type, 0, stream, m) != 0) {
        vbuf_free(&b);
        return VIGIL_ERR_NOMEM;
    }
    int r = vconn_write_all(&c->conn, b.p, b.len, mono_ms() + 5000);
    vbuf_free(&b);
    return r;
}

static void send_cancel(vigil_client *c, uint32_t stream, const char *reason) {
    Vigil__V1__Cancel cancel = VIGIL__V1__CANCEL__INIT;
    cancel.reason = (char *)(uintptr_t)reason;
    if (send_small_frame(c, FRAME_CANCEL, stream, &cancel.base) != 0) conn_lost(c, VIGIL_ERR_CLOSED, "write failed");
}

static int send_window(vigil_client *c, uint32_t stream, uint32_t n) {
    Vigil__V1__Window w = VIGIL__V1__WINDOW__INIT;
    w.messages = n;
    return send_small_frame(c, FRAME_WINDOW, stream, &w.base);
}

/* Opens a call: HEADERS then the request MESSAGE (END_STREAM). The request
 * is either a protobuf-c message or preencoded bytes. */
static int call_open(vigil_client *c, const char *method, int timeout_ms, uint32_t window,
                     const ProtobufCMessage *req, const uint8_t *raw, size_t raw_len, uint32_t *stream) {
    c->too_large = false;
    int r = ensure_connected(c);
    if (r != VIGIL_OK) return r;
    if (c->conn.next_stream > 0x7ffffff0u) {
        if ((r = vigil_client_connect(c)) != VIGIL_OK) return r;
    }
    uint32_t id = c->conn.next_stream;
    c->conn.next_stream += 2;
    Vigil__V1__CallHeaders h = VIGIL__V1__CALL_HEADERS__INIT;
    h.method = (char *)(uintptr_t)method;
    h.timeout_ms = timeout_ms > 0 ? (uint64_t)timeout_ms : 0;
    h.initial_window = window; /* 0 is not sent: the server's default (8) applies */
    c->out.len = 0;
    if (frame_append_pb(&c->out, FRAME_HEADERS, 0, id, &h.base) != 0) return VIGIL_ERR_NOMEM;
    size_t n = req ? protobuf_c_message_get_packed_size(req) : raw_len;
    if (n > c->conn.welcome.max_frame_size) {
        status_set(&c->status, VIGIL_RESOURCE_EXHAUSTED,
                   "the request is %zu bytes, over the server's max_frame_size of %u bytes; send smaller batches", n,
                   c->conn.welcome.max_frame_size);
        c->too_large = true;
        return VIGIL_RESOURCE_EXHAUSTED;
    }
    if (vbuf_reserve(&c->out, FRAME_HEADER_SIZE + n) != 0) return VIGIL_ERR_NOMEM;
    put_frame_header(c->out.p + c->out.len, (uint32_t)n, FRAME_MESSAGE, FLAG_END_STREAM, id);
    if (req) protobuf_c_message_pack(req, c->out.p + c->out.len + FRAME_HEADER_SIZE);
    else if (n) memcpy(c->out.p + c->out.len + FRAME_HEADER_SIZE, raw, n);
    c->out.len += FRAME_HEADER_SIZE + n;
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    r = vconn_write_all(&c->conn, c->out.p, c->out.len, deadline);
    if (c->out.cap > (1u << 20)) vbuf_free(&c->out);
    if (r != 0) return conn_lost(c, r, r == VIGIL_ERR_TIMEOUT ? "timed out sending the request" : "connection closed");
    *stream = id;
    return VIGIL_OK;
}

/* A connection-level frame: PING (answered), PONG, GOAWAY (noted). 0, or -1
 * when the connection was lost (status set). */
static int conn_frame(vigil_client *c, const vframe *f) {
    if (f->stream != 0) {
        /* Between calls: a MESSAGE or TRAILERS of a call that already ended
         * here (a query whose callback stopped it, a client-side timeout) is
         * ignored, as within a call; anything else is a protocol error. */
        if ((f->type == FRAME_MESSAGE || f->type == FRAME_TRAILERS || f->type == FRAME_CANCEL) && f->stream % 2 == 1 &&
            f->stream < c->conn.next_stream)
            return 0;
        conn_lost(c, VIGIL_ERR_PROTOCOL, "a connection frame on a call stream");
        return -1;
    }
    if (f->type == FRAME_PING) {
        vbuf b = {0};
        if (vbuf_reserve(&b, FRAME_HEADER_SIZE + f->len) != 0) return 0;
        put_frame_header(b.p, (uint32_t)f->len, FRAME_PONG, 0, 0);
        memcpy(b.p + FRAME_HEADER_SIZE, f->payload, f->len);
        int w = vconn_write_all(&c->conn, b.p, FRAME_HEADER_SIZE + f->len, mono_ms() + 5000);
        vbuf_free(&b);
        if (w != 0) {
            conn_lost(c, VIGIL_ERR_CLOSED, "connection closed");
            return -1;
        }
    } else if (f->type == FRAME_GOAWAY) {
        Vigil__V1__GoAway *g = vigil__v1__go_away__unpack(NULL, f->len, f->payload);
        if (!g) {
            conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed GOAWAY");
            return -1;
        }
        c->conn.goaway = true;
        c->conn.goaway_last = g->last_stream_id;
        c->conn.goaway_code = g->code;
        snprintf(c->conn.goaway_message, sizeof c->conn.goaway_message, "%s", g->message ? g->message : "");
        vigil__v1__go_away__free_unpacked(g, NULL);
    }
    return 0;
}

/* Waits for the next MESSAGE or TRAILERS of `stream`, answering PINGs and
 * noting GOAWAY on the way. Returns VIGIL_OK with the frame, or an error
 * (status set; the connection is closed for connection-level errors). */
static int call_next(vigil_client *c, uint32_t stream, int64_t deadline, vframe *f) {
    char err[256];
    for (;;) {
        int r = vconn_next(&c->conn, f, err, sizeof err);
        if (r < 0) return conn_lost(c, VIGIL_ERR_PROTOCOL, err);
        if (r == 0) {
            if (vconn_wait_readable(&c->conn, deadline) <= 0) { /* (no cancel_fd here) */
                send_cancel(c, stream, "client-side timeout");
                status_set(&c->status, VIGIL_ERR_TIMEOUT, "no answer from the server within the call's timeout");
                return VIGIL_ERR_TIMEOUT;
            }
            if (vconn_fill(&c->conn) < 0) return conn_lost(c, VIGIL_ERR_CLOSED, "the server closed the connection");
            continue;
        }
        if (f->type == FRAME_PING || f->type == FRAME_PONG || f->type == FRAME_GOAWAY) {
            int cr = conn_frame(c, f);
            if (cr < 0) return c->status.pub.code;
            if (f->type == FRAME_GOAWAY && stream > c->conn.goaway_last) {
                /* The server will not run this call. */
                c->not_processed = true;
                status_set(&c->status, VIGIL_UNAVAILABLE, "the server is going away (%s); retry on a new connection",
                           c->conn.goaway_message);
                return VIGIL_UNAVAILABLE;
            }
            continue;
        }
        switch (f->type) {
        case FRAME_MESSAGE:
        case FRAME_TRAILERS:
            if (f->stream == stream) return VIGIL_OK;
            continue; /* a late frame of a call that ended (cancelled) */
        case FRAME_CANCEL:
            if (f->stream == stream) {
                status_set(&c->status, VIGIL_CANCELLED, "the server cancelled the call");
                return VIGIL_CANCELLED;
            }
            continue;
        default:
            snprintf(err, sizeof err, "unexpected frame type 0x%02x from the server", f->type);
            return conn_lost(c, VIGIL_ERR_PROTOCOL, err);
        }
    }
}

/* Decodes TRAILERS into the status; returns its code. */
static int take_trailers(vigil_client *c, const vframe *f) {
    Vigil__V1__Status *st = vigil__v1__status__unpack(NULL, f->len, f->payload);
    if (!st) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed TRAILERS (Status)");
    status_from_pb(&c->status, st);
    vigil__v1__status__free_unpacked(st, NULL);
    return c->status.pub.code;
}

/* A unary call: the response message's bytes land in c->response. */
static int unary_once(vigil_client *c, const char *method, const ProtobufCMessage *req, const uint8_t *raw,
                      size_t raw_len, bool *answered) {
    status_reset(&c->status);
    c->not_processed = false;
    *answered = false;
    uint32_t stream;
    int timeout = c->opts.call_timeout_ms;
    int r = call_open(c, method, timeout, 0, req, raw, raw_len, &stream);
    if (r != VIGIL_OK) return r;
    int64_t deadline = call_deadline(timeout);
    c->response.len = 0;
    bool got = false;
    for (;;) {
        vframe f;
        r = call_next(c, stream, deadline, &f);
        if (r != VIGIL_OK) return r;
        *answered = true;
        if (f.type == FRAME_MESSAGE) {
            c->response.len = 0;
            if (vbuf_append(&c->response, f.payload, f.len) != 0) return VIGIL_ERR_NOMEM;
            got = true;
            continue;
        }
        r = take_trailers(c, &f);
        if (r == VIGIL_OK && !got) {
            status_set(&c->status, VIGIL_ERR_PROTOCOL, "the server ended %s with OK but no response message", method);
            return VIGIL_ERR_PROTOCOL;
        }
        return r;
    }
}

/* Whether a call that got no answer may be sent again on a new connection:
 * when a GOAWAY says the server never ran it, or when running it twice does
 * no harm (reads; an Ingest with an idempotency key) and the connection was
 * lost (typically: the server closed an idle connection after its GOAWAY
 * while the call was on its way). */
static bool may_retry(const vigil_client *c, int r, bool idempotent) {
    if (r == VIGIL_UNAVAILABLE && c->not_processed) return true;
    return idempotent && r == VIGIL_ERR_CLOSED;
}

static int unary(vigil_client *c, const char *method, const ProtobufCMessage *req, const uint8_t *raw,
                 size_t raw_len, bool idempotent) {
    bool answered;
    int r = unary_once(c, method, req, raw, raw_len, &answered);
    if (!answered && may_retry(c, r, idempotent)) r = unary_once(c, method, req, raw, raw_len, &answered);
    return r;
}

/* ---- Ingest ---- */

int vigil_ingest(vigil_client *c, const vigil_event *events, size_t n, const char *key, vigil_ingest_result *result) {
    if (!c || (n && !events)) return VIGIL_ERR_ARGUMENT;
    status_reset(&c->status);
    if (result) memset(result, 0, sizeof *result);
    size_t keylen = key ? strlen(key) : 0;
    for (size_t i = 0; i < n; i++)
        if (!event_arrays_ok(&events[i])) return VIGIL_ERR_ARGUMENT;
    vbuf req = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len = event_encoded_size(&events[i]);
        if (vbuf_reserve(&req, 1 + 10 + len) != 0) {
            vbuf_free(&req);
            return VIGIL_ERR_NOMEM;
        }
        uint8_t *p = req.p + req.len;
        *p++ = 0x0a;
        p = put_varint(p, len);
        p = event_write(&events[i], p);
        req.len = (size_t)(p - req.p);
    }
    if (keylen) {
        if (vbuf_reserve(&req, 1 + 10 + keylen) != 0) {
            vbuf_free(&req);
            return VIGIL_ERR_NOMEM;
        }
        uint8_t *p = req.p + req.len;
        *p++ = 0x12;
        p = put_varint(p, keylen);
        memcpy(p, key, keylen);
        req.len = (size_t)(p + keylen - req.p);
    }
    int r = unary(c, METHOD_INGEST, NULL, req.p ? req.p : (const uint8_t *)"", req.len, keylen > 0);
    vbuf_free(&req);
    if (r != VIGIL_OK) return r;
    Vigil__V1__IngestResponse *resp = vigil__v1__ingest_response__unpack(NULL, c->response.len, c->response.p);
    if (!resp) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed IngestResponse");
    if (result) {
        result->first_seq = resp->first_seq;
        result->last_seq = resp->last_seq;
        result->count = resp->count;
        result->received_at_ns = timestamp_ns(resp->received_at);
        result->replayed = resp->replayed;
    }
    vigil__v1__ingest_response__free_unpacked(resp, NULL);
    return VIGIL_OK;
}

/* ---- Get ---- */

int vigil_get(vigil_client *c, const char *id, vigil_event **event) {
    if (!c || !id || !event) return VIGIL_ERR_ARGUMENT;
    *event = NULL;
    Vigil__V1__GetRequest req = VIGIL__V1__GET_REQUEST__INIT;
    req.id = (char *)(uintptr_t)id;
    int r = unary(c, METHOD_GET, &req.base, NULL, 0, true);
    if (r != VIGIL_OK) return r;
    Vigil__V1__GetResponse *resp = vigil__v1__get_response__unpack(NULL, c->response.len, c->response.p);
    if (!resp) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed GetResponse");
    *event = owned_event_new(resp);
    if (!*event) {
        bool empty = resp->event == NULL;
        vigil__v1__get_response__free_unpacked(resp, NULL);
        if (empty) {
            status_set(&c->status, VIGIL_ERR_PROTOCOL, "GetResponse without an event");
            return VIGIL_ERR_PROTOCOL;
        }
        return VIGIL_ERR_NOMEM;
    }
    return VIGIL_OK;
}

/* ---- Health ---- */

int vigil_health(vigil_client *c, int *serving, char *reasons, size_t size) {
    if (!c || !serving || (size > 0 && !reasons)) return VIGIL_ERR_ARGUMENT;
    *serving = 0;
    if (size > 0) reasons[0] = '\0';
    Vigil__V1__HealthRequest req = VIGIL__V1__HEALTH_REQUEST__INIT;
    int r = unary(c, METHOD_HEALTH, &req.base, NULL, 0, true);
    if (r != VIGIL_OK) return r;
    Vigil__V1__HealthResponse *resp = vigil__v1__health_response__unpack(NULL, c->response.len, c->response.p);
    if (!resp) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed HealthResponse");
    *serving = resp->status == VIGIL__V1__HEALTH_RESPONSE__STATUS__SERVING;
    size_t used = 0;
    for (size_t i = 0; i < resp->n_reasons && size > 0; i++) {
        int n = snprintf(reasons + used, size - used, "%s\n", resp->reasons[i]);
        if (n < 0 || (size_t)n >= size - used) break; /* cut: snprintf kept what fits */
        used += (size_t)n;
    }
    vigil__v1__health_response__free_unpacked(resp, NULL);
    return VIGIL_OK;
}

/* ---- Aggregate ---- */

typedef struct owned_aggregate {
    vigil_aggregate_result pub;
    arena mem;
} owned_aggregate;

int vigil_aggregate(vigil_client *c, const vigil_aggregate_params *p, vigil_aggregate_result **result) {
    if (!c || !p || !result) return VIGIL_ERR_ARGUMENT;
    *result = NULL;
    arena tmp = {0};
    Vigil__V1__AggregateRequest req = VIGIL__V1__AGGREGATE_REQUEST__INIT;
    req.filter = filter_to_pb(&tmp, &p->filter);
    req.group_by = (Vigil__V1__GroupBy)p->group_by;
    req.top = p->top;
    if (p->histogram_interval_ns) req.histogram_interval = duration_pb(&tmp, p->histogram_interval_ns);
    if (!req.filter || (p->histogram_interval_ns && !req.histogram_interval)) {
        arena_reset(&tmp);
        return VIGIL_ERR_NOMEM;
    }
    int r = unary(c, METHOD_AGGREGATE, &req.base, NULL, 0, true);
    arena_reset(&tmp);
    if (r != VIGIL_OK) return r;
    Vigil__V1__AggregateResponse *resp = vigil__v1__aggregate_response__unpack(NULL, c->response.len, c->response.p);
    if (!resp) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed AggregateResponse");
    owned_aggregate *o = calloc(1, sizeof *o);
    r = VIGIL_ERR_NOMEM;
    if (!o) goto done;
    o->pub.count = resp->count;
    o->pub.other_count = resp->other_count;
    o->pub.group_total = resp->group_total;
    if (resp->n_groups) {
        vigil_group *g = arena_alloc(&o->mem, resp->n_groups * sizeof *g);
        if (!g) goto done;
        for (size_t i = 0; i < resp->n_groups; i++) {
            g[i].key = arena_strdup(&o->mem, resp->groups[i]->key ? resp->groups[i]->key : "");
            if (!g[i].key) goto done;
            g[i].count = resp->groups[i]->count;
        }
        o->pub.groups = g;
        o->pub.n_groups = resp->n_groups;
    }
    if (resp->n_histogram) {
        vigil_bucket *b = arena_alloc(&o->mem, resp->n_histogram * sizeof *b);
        if (!b) goto done;
        for (size_t i = 0; i < resp->n_histogram; i++) {
            b[i].start_ns = timestamp_ns(resp->histogram[i]->start);
            b[i].count = resp->histogram[i]->count;
        }
        o->pub.histogram = b;
        o->pub.n_histogram = resp->n_histogram;
    }
    *result = &o->pub;
    o = NULL;
    r = VIGIL_OK;
done:
    if (o) {
        arena_reset(&o->mem);
        free(o);
    }
    vigil__v1__aggregate_response__free_unpacked(resp, NULL);
    return r;
}

void vigil_aggregate_result_free(vigil_aggregate_result *result) {
    if (!result) return;
    owned_aggregate *o = (owned_aggregate *)result;
    arena_reset(&o->mem);
    free(o);
}

/* ---- Query ---- */

int vigil_query(vigil_client *c, const vigil_query_params *p, vigil_page_fn on_page, void *user) {
    if (!c || !p) return VIGIL_ERR_ARGUMENT;
    status_reset(&c->status);
    arena tmp = {0};
    Vigil__V1__QueryRequest req = VIGIL__V1__QUERY_REQUEST__INIT;
    req.filter = filter_to_pb(&tmp, &p->filter);
    if (!req.filter) {
        arena_reset(&tmp);
        return VIGIL_ERR_NOMEM;
    }
    req.order = (Vigil__V1__Order)p->order;
    req.limit = p->limit;
    req.page_size = p->page_size;
    if (p->cursor && *p->cursor) req.cursor = (char *)(uintptr_t)p->cursor;
    uint32_t window = p->window ? p->window : 4;
    uint32_t stream;
    int timeout = c->opts.call_timeout_ms;
    bool answered = false, retried = false;
    c->not_processed = false;
    int r = call_open(c, METHOD_QUERY, timeout, window, &req.base, NULL, 0, &stream);
    if (r != VIGIL_OK && may_retry(c, r, true)) {
        retried = true;
        r = call_open(c, METHOD_QUERY, timeout, window, &req.base, NULL, 0, &stream);
    }
    if (r != VIGIL_OK) {
        arena_reset(&tmp);
        return r;
    }
    int64_t deadline = call_deadline(timeout);
    char *last_cursor = NULL;
    for (;;) {
        vframe f;
        r = call_next(c, stream, deadline, &f);
        if (r != VIGIL_OK && !answered && !retried && may_retry(c, r, true)) {
            /* Lost before any answer: once more, on a new connection. */
            retried = true;
            c->not_processed = false;
            r = call_open(c, METHOD_QUERY, timeout, window, &req.base, NULL, 0, &stream);
            if (r != VIGIL_OK) break;
            deadline = call_deadline(timeout);
            continue;
        }
        if (r != VIGIL_OK) break;
        answered = true;
        if (f.type == FRAME_TRAILERS) {
            r = take_trailers(c, &f);
            break;
        }
        Vigil__V1__QueryResponse *resp = vigil__v1__query_response__unpack(NULL, f.len, f.payload);
        if (!resp) {
            r = conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed QueryResponse");
            break;
        }
        arena_reset(&c->page);
        vigil_event *evs = resp->n_events ? arena_alloc(&c->page, resp->n_events * sizeof *evs) : NULL;
        bool ok = !resp->n_events || evs;
        for (size_t i = 0; ok && i < resp->n_events; i++) ok = event_from_pb(&c->page, resp->events[i], &evs[i]) == 0;
        free(last_cursor);
        last_cursor = strdup(resp->cursor ? resp->cursor : "");
        int stop = 0;
        if (ok && last_cursor && on_page) stop = on_page(evs, resp->n_events, resp->cursor ? resp->cursor : "", user);
        vigil__v1__query_response__free_unpacked(resp, NULL);
        arena_reset(&c->page);
        if (!ok || !last_cursor) {
            send_cancel(c, stream, "out of memory");
            status_set(&c->status, VIGIL_ERR_NOMEM, "out of memory");
            r = VIGIL_ERR_NOMEM;
            break;
        }
        if (stop) {
            send_cancel(c, stream, "stopped by the caller");
            status_reset(&c->status);
            status_put_meta(&c->status, "vigil.cursor", last_cursor);
            r = VIGIL_OK;
            break;
        }
        if (send_window(c, stream, 1) != 0) {
            r = conn_lost(c, VIGIL_ERR_CLOSED, "connection closed");
            break;
        }
    }
    free(last_cursor);
    arena_reset(&tmp);
    return r;
}

/* ---- Subscribe ---- */

static bool retryable_subscription_end(int code) {
    return code == VIGIL_UNAVAILABLE || code == VIGIL_RESOURCE_EXHAUSTED || code == VIGIL_ERR_CLOSED ||
           code == VIGIL_ERR_CONNECT || code == VIGIL_ERR_TIMEOUT || code == VIGIL_ERR_PROTOCOL;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* One subscription call. *cursor (malloc'd) follows the furthest position. */
static int subscribe_once(vigil_client *c, const vigil_subscribe_params *p, vigil_subscribe_fn fn, void *user,
                          char **cursor, bool *stopped, bool *delivered) {
    arena tmp = {0};
    Vigil__V1__SubscribeRequest req = VIGIL__V1__SUBSCRIBE_REQUEST__INIT;
    req.filter = filter_to_pb(&tmp, &p->filter);
    if (!req.filter) {
        arena_reset(&tmp);
        return VIGIL_ERR_NOMEM;
    }
    if (*cursor && **cursor) {
        req.start_case = VIGIL__V1__SUBSCRIBE_REQUEST__START_CURSOR;
        req.cursor = *cursor;
    } else if (p->start == VIGIL_SINCE) {
        req.start_case = VIGIL__V1__SUBSCRIBE_REQUEST__START_SINCE;
        req.since = timestamp_pb(&tmp, p->since_ns);
        if (!req.since) {
            arena_reset(&tmp);
            return VIGIL_ERR_NOMEM;
        }
    } else if (p->start == VIGIL_CURSOR) {
        req.start_case = VIGIL__V1__SUBSCRIBE_REQUEST__START_CURSOR;
        req.cursor = (char *)(uintptr_t)(p->cursor ? p->cursor : "");
    } else {
        req.start_case = VIGIL__V1__SUBSCRIBE_REQUEST__START_FROM_NOW;
        req.from_now = 1;
    }
    uint32_t window = p->window ? p->window : 64;
    uint32_t stream;
    int r = call_open(c, METHOD_SUBSCRIBE, p->timeout_ms, window, &req.base, NULL, 0, &stream);
    arena_reset(&tmp);
    if (r != VIGIL_OK) return r;
    int64_t deadline = call_deadline(p->timeout_ms);
    uint32_t ungranted = 0, half = window / 2 ? window / 2 : 1;
    for (;;) {
        vframe f;
        r = call_next(c, stream, deadline, &f);
        if (r != VIGIL_OK) return r;
        if (f.type == FRAME_TRAILERS) {
            r = take_trailers(c, &f);
            const char *tc = vigil_status_get(&c->status.pub, "vigil.cursor");
            if (tc && *tc) {
                char *n = strdup(tc);
                if (n) {
                    free(*cursor);
                    *cursor = n;
                }
            }
            return r;
        }
        Vigil__V1__SubscribeResponse *resp = vigil__v1__subscribe_response__unpack(NULL, f.len, f.payload);
        if (!resp) return conn_lost(c, VIGIL_ERR_PROTOCOL, "malformed SubscribeResponse");
        *delivered = true;
        arena_reset(&c->page);
        int stop = 0;
        vigil_event ev;
        if (resp->item_case == VIGIL__V1__SUBSCRIBE_RESPONSE__ITEM_EVENT && resp->event) {
            if (event_from_pb(&c->page, resp->event, &ev) != 0) {
                vigil__v1__subscribe_response__free_unpacked(resp, NULL);
                send_cancel(c, stream, "out of memory");
                return VIGIL_ERR_NOMEM;
            }
            if (fn) stop = fn(&ev, 0, resp->cursor ? resp->cursor : "", user);
        } else if (resp->item_case == VIGIL__V1__SUBSCRIBE_RESPONSE__ITEM_HEARTBEAT) {
            int64_t at = resp->heartbeat ? timestamp_ns(resp->heartbeat->at) : 0;
            if (fn) stop = fn(NULL, at ? at : 1, resp->cursor ? resp->cursor : "", user);
        }
        if (resp->cursor && *resp->cursor) {
            char *n = strdup(resp->cursor);
            if (n) {
                free(*cursor);
                *cursor = n;
            }
        }
        vigil__v1__subscribe_response__free_unpacked(resp, NULL);
        arena_reset(&c->page);
        if (stop) {
            send_cancel(c, stream, "stopped by the caller");
            *stopped = true;
            return VIGIL_OK;
        }
        if (++ungranted >= half) {
            if (send_window(c, stream, ungranted) != 0) return conn_lost(c, VIGIL_ERR_CLOSED, "connection closed");
            ungranted = 0;
        }
    }
}

int vigil_subscribe(vigil_client *c, const vigil_subscribe_params *p, vigil_subscribe_fn fn, void *user) {
    if (!c || !p) return VIGIL_ERR_ARGUMENT;
    if (p->start == VIGIL_CURSOR && (!p->cursor || !*p->cursor)) return VIGIL_ERR_ARGUMENT;
    status_reset(&c->status);
    char *cursor = p->start == VIGIL_CURSOR ? strdup(p->cursor) : NULL;
    if (p->start == VIGIL_CURSOR && !cursor) return VIGIL_ERR_NOMEM;
    int64_t backoff = 50;
    int r;
    for (;;) {
        bool stopped = false;
        bool delivered = false;
        r = subscribe_once(c, p, fn, user, &cursor, &stopped, &delivered);
        /* RESOURCE_EXHAUSTED is the server's "fell behind", not this request
         * being too large to send at all (it stays so: resuming looped for ever). */
        if (stopped || !p->auto_resume || !retryable_subscription_end(r) || c->too_large) break;
        /* A peer that does not speak the protocol would answer the same way for ever. */
        if (r == VIGIL_ERR_PROTOCOL && c->not_vigil && !c->connected) break;
        /* A subscription that delivered something worked: the next resume waits the least
         * again, rather than the most that earlier failures had reached. */
        if (delivered) backoff = 50;
        /* From now with no position yet: start from now again (nothing was delivered). */
        if (r == VIGIL_UNAVAILABLE || r == VIGIL_ERR_CLOSED || r == VIGIL_ERR_PROTOCOL) {
            vconn_close(&c->conn);
            c->connected = false;
        }
        sleep_ms(backoff / 2 + (int64_t)(random_u64() % (uint64_t)(backoff / 2 + 1)));
        backoff = backoff * 2 < 5000 ? backoff * 2 : 5000; /* waits of 2.5–5 s at most */
    }
    /* The furthest cursor is the one to resume from, whatever ended the call. */
    if (r == VIGIL_OK) status_reset(&c->status);
    if (cursor) status_put_meta(&c->status, "vigil.cursor", cursor);
    free(cursor);
    return r;
}
