/*
 * vigil.h: the C client of the Vigil audit-log server.
 *
 * Two parts:
 *   - vigil_client: one connection, blocking calls (Ingest, Query, Get,
 *     Aggregate, Subscribe). One thread at a time per client.
 *   - vigil_agent: a batching ingest agent. vigil_agent_log() copies an event
 *     into a bounded queue; a background thread owning its own connection
 *     sends batches of N events (or after T ms), several calls in flight,
 *     retries each batch with its idempotency key after a dropped connection,
 *     and either blocks the caller (VIGIL_BLOCK) or spills batches to a file
 *     (VIGIL_SPILL) while the server cannot keep up or cannot be reached.
 *     vigil_agent_log() may be called from any number of threads.
 *
 * Every function returning int returns a vigil_code: VIGIL_OK (0), a server
 * status (1..16, gRPC numbering) or a client-side error (>= 100).
 *
 * C11; depends on libprotobuf-c and zlib.
 */
#ifndef VIGIL_H
#define VIGIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_VERSION "0.1.0"

/* ---- Status codes ------------------------------------------------------ */

typedef enum vigil_code {
    /* The server's status codes: gRPC's numbers and meanings. */
    VIGIL_OK = 0,
    VIGIL_CANCELLED = 1,
    VIGIL_UNKNOWN = 2,
    VIGIL_INVALID_ARGUMENT = 3,
    VIGIL_DEADLINE_EXCEEDED = 4,
    VIGIL_NOT_FOUND = 5,
    VIGIL_ALREADY_EXISTS = 6,
    VIGIL_PERMISSION_DENIED = 7,
    VIGIL_RESOURCE_EXHAUSTED = 8,
    VIGIL_FAILED_PRECONDITION = 9,
    VIGIL_ABORTED = 10,
    VIGIL_OUT_OF_RANGE = 11,
    VIGIL_UNIMPLEMENTED = 12,
    VIGIL_INTERNAL = 13,
    VIGIL_UNAVAILABLE = 14,
    VIGIL_DATA_LOSS = 15,
    VIGIL_UNAUTHENTICATED = 16,
    /* Client-side errors. */
    VIGIL_ERR_CONNECT = 100,  /* address, connect() or the TCP connection failed before the handshake */
    VIGIL_ERR_PROTOCOL = 101, /* the peer broke the protocol (preface, frame, protobuf) */
    VIGIL_ERR_TIMEOUT = 102,  /* a client-side timeout passed */
    VIGIL_ERR_CLOSED = 103,   /* the connection was lost or closed during a call */
    VIGIL_ERR_ARGUMENT = 104, /* a bad argument to this library (NULL, too large, not UTF-8, ...) */
    VIGIL_ERR_NOMEM = 105,    /* out of memory */
    VIGIL_ERR_IO = 106,       /* the agent's spill file could not be read or written */
    VIGIL_ERR_FULL = 107,     /* the agent's queue stayed full for the whole block timeout */
    VIGIL_ERR_STOPPED = 108,  /* the agent is closed */
} vigil_code;

/* "INVALID_ARGUMENT", "ERR_CONNECT", ... ("?" for an unknown number). */
const char *vigil_code_name(int code);
/* A sentence describing the code. */
const char *vigil_strerror(int code);

/* ---- Events ------------------------------------------------------------ */

typedef enum vigil_actor_type {
    VIGIL_ACTOR_UNSPECIFIED = 0,
    VIGIL_ACTOR_USER = 1,
    VIGIL_ACTOR_SERVICE = 2,
    VIGIL_ACTOR_API_TOKEN = 3,
    VIGIL_ACTOR_SYSTEM = 4,
    VIGIL_ACTOR_ANONYMOUS = 5,
} vigil_actor_type;

typedef enum vigil_category {
    VIGIL_CATEGORY_UNSPECIFIED = 0,
    VIGIL_CREATE = 1,
    VIGIL_READ = 2,
    VIGIL_UPDATE = 3,
    VIGIL_DELETE = 4,
    VIGIL_LOGIN = 5,
    VIGIL_LOGOUT = 6,
    VIGIL_EXECUTE = 7,
    VIGIL_APPROVE = 8,
    VIGIL_REJECT = 9,
    VIGIL_OTHER = 10,
} vigil_category;

typedef enum vigil_outcome {
    VIGIL_OUTCOME_UNSPECIFIED = 0,
    VIGIL_SUCCESS = 1,
    VIGIL_FAILURE = 2,
    VIGIL_DENIED = 3,
} vigil_outcome;

typedef struct vigil_actor {
    const char *id;
    vigil_actor_type type;
    const char *name;
    const char *email;
} vigil_actor;

typedef struct vigil_resource {
    const char *type;
    const char *id;
    const char *name;
} vigil_resource;

typedef struct vigil_change {
    const char *field;
    const char *old_value;
    const char *new_value;
} vigil_change;

typedef struct vigil_kv {
    const char *key;
    const char *value;
} vigil_kv;

/*
 * One audit event (vigil.v1.AuditEvent; event.proto documents every field
 * and its limits). Strings are NUL-terminated UTF-8; NULL or "" means absent.
 * Times are nanoseconds since the Unix epoch, UTC; 0 means absent.
 * Zero-initialise it ({0}) and set what you have; required: occurred_at_ns,
 * tenant, actor.id (unless actor.type is ANONYMOUS) and action.
 *
 * Events read from the server (query, get, subscribe) have every string set
 * ("" when absent), and seq, id and received_at_ns filled in. A server time
 * outside what int64 nanoseconds hold (before 1677-09-21, after 2262-04-11)
 * reads as INT64_MIN or INT64_MAX.
 */
typedef struct vigil_event {
    const char *id;          /* UUID; NULL: the server assigns a UUIDv7 */
    uint64_t seq;            /* set by the server; ignored when sent */
    int64_t occurred_at_ns;  /* required */
    int64_t received_at_ns;  /* set by the server; ignored when sent */
    const char *tenant;
    vigil_actor actor;
    const char *action;
    vigil_category category;
    vigil_resource resource;
    const vigil_resource *targets;
    size_t n_targets;
    vigil_outcome outcome;
    const char *reason;
    const char *source_ip;
    const char *user_agent;
    const char *trace_id;
    const char *request_id;
    const vigil_change *changes;
    size_t n_changes;
    const vigil_kv *metadata;
    size_t n_metadata;
    const char *description;
} vigil_event;

/* The current time, nanoseconds since the epoch (CLOCK_REALTIME). */
int64_t vigil_now_ns(void);

/* Parses an RFC 3339 time ("2026-11-18T12:00:00Z", "...T12:00:00.5+02:00")
 * or a date ("2026-11-18", UTC midnight). Returns VIGIL_OK or
 * VIGIL_ERR_ARGUMENT (also for a time int64 nanoseconds cannot hold: before
 * 1677-09-21 or after 2262-04-11). */
int vigil_parse_time(const char *text, int64_t *out_ns);
/* Formats as RFC 3339 UTC with as many fraction digits as needed; buf >= 40. */
void vigil_format_time(int64_t ns, char *buf, size_t size);

/*
 * Encodes one event as vigil.v1.AuditEvent protobuf bytes. Returns the
 * encoded length; nothing is written when it exceeds `capacity` (call with
 * capacity 0 to learn the length). Returns 0 for a NULL event or one with a
 * count of targets, changes or metadata but a NULL array (vigil_ingest and
 * vigil_agent_log refuse those with VIGIL_ERR_ARGUMENT).
 */
size_t vigil_event_encode(const vigil_event *event, uint8_t *buf, size_t capacity);

/* An event owned by the caller (vigil_get); free it with vigil_event_free. */
void vigil_event_free(vigil_event *event);

/* ---- Status of a call -------------------------------------------------- */

typedef struct vigil_event_error {
    uint32_t index;     /* position of the event in its batch, from 0 */
    const char *field;  /* protobuf JSON path: "actor.id", "metadata[region]" */
    const char *reason;
} vigil_event_error;

typedef struct vigil_status {
    int code;            /* a vigil_code */
    const char *message; /* the server's message, or the client's ("" when OK) */
    const vigil_event_error *event_errors;
    size_t n_event_errors;
    const vigil_kv *metadata; /* trailers' metadata: "vigil.cursor", "vigil.rows-examined", ... */
    size_t n_metadata;
} vigil_status;

/* The value of a metadata key, or NULL. */
const char *vigil_status_get(const vigil_status *status, const char *key);

/* ---- Connection options ------------------------------------------------ */

typedef struct vigil_options {
    const char *address;     /* "HOST:PORT" or "[v6]:PORT"; NULL: $VIGIL_SERVER or 127.0.0.1:7700 */
    const char *token;       /* API token sent in HELLO; NULL: $VIGIL_TOKEN; "" anonymous */
    const char *client_name; /* for the server's logs; NULL: "vigil-c/VERSION" */
    int connect_timeout_ms;  /* TCP connect + preface + HELLO; default 5000 */
    int call_timeout_ms;     /* deadline of each call (sent as CallHeaders.timeout_ms and
                                enforced locally); default 30000; 0: none */
    uint32_t max_frame_size; /* largest frame accepted from the server; default 4 MiB (min 131072) */
    uint32_t max_message_size; /* largest inflated COMPRESSED message; default 16 MiB */
} vigil_options;

/* Fills in the defaults. */
void vigil_options_init(vigil_options *options);

/* What the server said in its Welcome. */
typedef struct vigil_welcome {
    const char *server_name;
    const char *server_version;
    const char *principal;
    uint32_t max_frame_size;
    uint32_t max_message_size;
    uint32_t max_concurrent_calls;
    uint32_t max_batch_events;
    uint32_t max_event_bytes;
} vigil_welcome;

/* ---- The client: one connection, blocking calls ------------------------ */

typedef struct vigil_client vigil_client;

/* Creates a client (no I/O yet; the options' strings are copied).
 * Returns NULL only when out of memory. */
vigil_client *vigil_client_new(const vigil_options *options);
/* Connects (preface, HELLO). Calls connect by themselves when needed; after
 * a connection-level error the next call connects again. */
int vigil_client_connect(vigil_client *client);
/* The last Welcome, or NULL before the first connection. */
const vigil_welcome *vigil_client_welcome(const vigil_client *client);
/* The status of the last call (or connect): code, message, event errors,
 * trailers' metadata. Valid until the next call on this client. */
const vigil_status *vigil_client_status(const vigil_client *client);
/* Closes the connection and frees the client. */
void vigil_client_free(vigil_client *client);

typedef struct vigil_ingest_result {
    uint64_t first_seq;
    uint64_t last_seq;
    uint32_t count;
    int64_t received_at_ns;
    bool replayed; /* the stored answer to an earlier batch with this key */
} vigil_ingest_result;

/* Ingest: stores a batch atomically. With an idempotency key (NULL: none) a
 * retry stores nothing twice. A refused batch returns INVALID_ARGUMENT and
 * the status lists every bad event (index, field, reason). */
int vigil_ingest(vigil_client *client, const vigil_event *events, size_t n,
                 const char *idempotency_key, vigil_ingest_result *result);

/* Filter shared by Query, Aggregate and Subscribe. Every condition that is
 * set must hold; a list matches when any entry does. Zero-initialise. */
typedef struct vigil_filter {
    int64_t since_ns; /* inclusive; 0: unbounded */
    int64_t until_ns; /* exclusive; 0: unbounded */
    int64_t last_ns;  /* a duration before now (not with since); 0: unset */
    const char *const *tenants;        size_t n_tenants;
    const char *const *actor_ids;      size_t n_actor_ids;
    const char *const *actor_emails;   size_t n_actor_emails;
    const char *const *actor_names;    size_t n_actor_names;
    const vigil_actor_type *actor_types; size_t n_actor_types;
    const char *const *actions;        size_t n_actions; /* "auth.login", "auth.*", "*.delete" */
    const vigil_category *categories;  size_t n_categories;
    const char *const *resource_types; size_t n_resource_types;
    const char *const *resource_ids;   size_t n_resource_ids;
    const char *const *resource_names; size_t n_resource_names;
    const vigil_outcome *outcomes;     size_t n_outcomes;
    const vigil_outcome *exclude_outcomes; size_t n_exclude_outcomes;
    const char *const *source_ips;     size_t n_source_ips; /* addresses or CIDR blocks */
    const char *const *trace_ids;      size_t n_trace_ids;
    const char *const *request_ids;    size_t n_request_ids;
    const char *const *metadata;       size_t n_metadata; /* "key=value" */
    const char *search;                /* case-insensitive substring; NULL: none */
} vigil_filter;

typedef enum vigil_order { VIGIL_NEWEST_FIRST = 0, VIGIL_OLDEST_FIRST = 1 } vigil_order;

typedef struct vigil_query_params {
    vigil_filter filter;
    vigil_order order;
    uint64_t limit;      /* events in all; 0: no limit */
    uint32_t page_size;  /* 1..10000; 0: the server's default (500) */
    const char *cursor;  /* resume after this cursor; NULL: from the start */
    uint32_t window;     /* pages the server may send ahead; 0: 4 */
} vigil_query_params;

/* One page of a query. The events (and the cursor) are valid during the
 * callback only. Return 0 to go on, anything else to stop (the call is
 * cancelled and vigil_query returns VIGIL_OK).
 * It runs inside vigil_query, in the middle of the call: it must not call any
 * function on the same client (another call would read the query's frames
 * and free the page; vigil_client_free would free the client under it) —
 * return non-zero to stop instead. Other clients and agents may be used. */
typedef int (*vigil_page_fn)(const vigil_event *events, size_t n, const char *cursor, void *user);

/* Query: pages of matching events, in order. On return, the status metadata
 * holds the trailers ("vigil.cursor" resumes after the last event returned,
 * "vigil.exhausted", "vigil.rows-examined", ...); when the callback stopped
 * the call, "vigil.cursor" is the last page's cursor. */
int vigil_query(vigil_client *client, const vigil_query_params *params,
                vigil_page_fn on_page, void *user);

/* Get: one event by id; NOT_FOUND when none has it. *event is freed with
 * vigil_event_free. */
int vigil_get(vigil_client *client, const char *id, vigil_event **event);

/* Health: whether the server serves (any token may ask). *serving is set to 1
 * or 0; when it is 0, the reasons (a full data disk, shutting down, ...) are
 * written to reasons as lines ending in '\n', cut at size - 1 bytes (reasons
 * may be NULL when size is 0). */
int vigil_health(vigil_client *client, int *serving, char *reasons, size_t size);

typedef enum vigil_group_by {
    VIGIL_GROUP_NONE = 0,
    VIGIL_GROUP_ACTION = 1,
    VIGIL_GROUP_ACTOR = 2,
    VIGIL_GROUP_RESOURCE_TYPE = 3,
    VIGIL_GROUP_OUTCOME = 4,
    VIGIL_GROUP_TENANT = 5,
    VIGIL_GROUP_CATEGORY = 6,
    VIGIL_GROUP_SOURCE_IP = 7,
} vigil_group_by;

typedef struct vigil_aggregate_params {
    vigil_filter filter;
    vigil_group_by group_by;
    uint32_t top;                  /* 1..1000; 0: 10 */
    int64_t histogram_interval_ns; /* 0: no histogram */
} vigil_aggregate_params;

typedef struct vigil_group { const char *key; uint64_t count; } vigil_group;
typedef struct vigil_bucket { int64_t start_ns; uint64_t count; } vigil_bucket;

typedef struct vigil_aggregate_result {
    uint64_t count;
    const vigil_group *groups; size_t n_groups; /* largest first */
    uint64_t other_count;
    uint64_t group_total;
    const vigil_bucket *histogram; size_t n_histogram;
} vigil_aggregate_result;

/* Aggregate: count, top groups, histogram. Free with vigil_aggregate_result_free. */
int vigil_aggregate(vigil_client *client, const vigil_aggregate_params *params,
                    vigil_aggregate_result **result);
void vigil_aggregate_result_free(vigil_aggregate_result *result);

typedef enum vigil_start {
    VIGIL_FROM_NOW = 0, /* only events stored from now on */
    VIGIL_SINCE = 1,    /* stored events that occurred at or after since_ns, then live ones */
    VIGIL_CURSOR = 2,   /* resume after cursor */
} vigil_start;

typedef struct vigil_subscribe_params {
    vigil_filter filter;
    vigil_start start;
    int64_t since_ns;
    const char *cursor;
    uint32_t window;      /* messages in flight; 0: 64. Credit is granted back as the
                             callback consumes them, half a window at a time. */
    int timeout_ms;       /* deadline of the call; 0: none (the default) */
    bool auto_resume;     /* on UNAVAILABLE, RESOURCE_EXHAUSTED (stopped reading) or a
                             lost connection: reconnect with backoff and resume
                             from the last cursor, without repeating an event
                             (the shortest wait again after a call that delivered
                             something). Not for a request too large to send
                             (RESOURCE_EXHAUSTED, returned at once), nor for a
                             peer that does not speak the protocol at connect
                             (VIGIL_ERR_PROTOCOL: an HTTP server, another port) */
} vigil_subscribe_params;

/* One subscription message: an event, or a heartbeat (event NULL,
 * heartbeat_ns set). `cursor` resumes right after it. Valid during the
 * callback only. Return 0 to go on, anything else to stop (the call is
 * cancelled and vigil_subscribe returns VIGIL_OK).
 * As for vigil_page_fn: it must not call any function on the same client
 * (return non-zero to stop); other clients and agents may be used. */
typedef int (*vigil_subscribe_fn)(const vigil_event *event, int64_t heartbeat_ns,
                                  const char *cursor, void *user);

/* Subscribe: stored matches then live ones, in seq order. Returns when the
 * callback stops it (VIGIL_OK) or the call ends (the server's status, or a
 * connection error). Either way the status metadata "vigil.cursor" is the
 * furthest position reached: subscribe again with it to resume (no gap, no
 * duplicate). */
int vigil_subscribe(vigil_client *client, const vigil_subscribe_params *params,
                    vigil_subscribe_fn on_message, void *user);

/* ---- The batching agent ------------------------------------------------ */

typedef enum vigil_policy {
    VIGIL_BLOCK = 0, /* a full queue blocks vigil_agent_log (up to block_timeout_ms) */
    VIGIL_SPILL = 1, /* a full queue appends batches to spill_path; they are resent
                        (with their idempotency keys) once the server takes them,
                        also by the next agent started on the same file */
} vigil_policy;

/* Something the agent could not deliver, reported from its thread. For a
 * batch the server refused because of bad events, it is called once per bad
 * event (event set: the refused event, decoded; index: its position in the
 * batch) and the batch's other events are sent again without it. Otherwise
 * event is NULL: a refused batch (its events are dropped), or a connection
 * problem (batch_events 0; the agent keeps retrying). The callback must not
 * block nor call vigil_agent_flush/close. */
typedef struct vigil_agent_error {
    int code;
    const char *message;
    const char *idempotency_key; /* NULL for connection problems */
    uint32_t batch_events;       /* events dropped with this report */
    uint32_t index;
    const char *field;
    const char *reason;
    const vigil_event *event;
} vigil_agent_error;

/* The agent's callbacks run on its I/O thread (on_error also in
 * vigil_agent_open, for a torn spill file, and in vigil_agent_close, for
 * batches it could not write to the spill file), without its lock; what they are
 * given is valid during the call only. They hold up sending: they must be
 * short and must not block. On the same agent they may call
 * vigil_agent_get_stats only: not vigil_agent_log (waiting for queue room
 * on the thread that makes room never ends), vigil_agent_flush nor
 * vigil_agent_close (they wait for that thread). */
typedef void (*vigil_agent_error_fn)(const vigil_agent_error *error, void *user);
/* A batch was acknowledged (durable). Called from the agent's thread; see
 * vigil_agent_error_fn for what it may call. */
typedef void (*vigil_agent_ack_fn)(const char *idempotency_key, const vigil_ingest_result *result, void *user);

typedef struct vigil_agent_config {
    vigil_options connection;  /* address, token, timeouts */
    uint32_t batch_events;     /* N: a batch is sent at N events; default 1000 */
    uint32_t batch_ms;         /* T: ... or when its first event is T ms old; default 100 */
    uint32_t batch_bytes;      /* ... or before it would exceed this many bytes; default
                                  1 MiB, at most the server's max_frame_size; with
                                  VIGIL_SPILL at most 256 MiB (a spill record's limit:
                                  vigil_agent_open refuses more, VIGIL_ERR_ARGUMENT) */
    uint32_t max_in_flight;    /* M: Ingest calls in flight on the connection; default 8 */
    uint32_t queue_batches;    /* full batches waiting in memory; default 32 */
    vigil_policy policy;
    int block_timeout_ms;      /* VIGIL_BLOCK: -1 (default): wait forever; 0: fail at once */
    const char *spill_path;    /* VIGIL_SPILL: the spill file (created if missing) */
    uint64_t spill_max_bytes;  /* VIGIL_SPILL: past it, block as VIGIL_BLOCK; 0: no limit */
    const char *agent_id;      /* prefix of the idempotency keys; NULL: random. Keys are
                                  "<agent_id>-<start time>-<counter>" */
    int compress_level;        /* 0 (default): send batches uncompressed; 1..9: zlib level */
    uint32_t backoff_min_ms;   /* reconnect backoff, doubling with jitter: default 50 */
    uint32_t backoff_max_ms;   /* default 5000 */
    vigil_agent_error_fn on_error;
    vigil_agent_ack_fn on_ack;
    void *user;
} vigil_agent_config;

void vigil_agent_config_init(vigil_agent_config *config);

typedef struct vigil_agent_stats {
    uint64_t events_logged;    /* accepted by vigil_agent_log */
    uint64_t events_acked;     /* acknowledged by the server (replays included) */
    uint64_t events_replayed;  /* ... of which acknowledged as replays (stored earlier) */
    uint64_t events_rejected;  /* refused by the server (reported through on_error) */
    uint64_t events_pending;   /* logged, not yet acknowledged nor refused */
    uint64_t events_lost;      /* dropped unsent (reported through on_error): the unread rest of a spill file
                                  found damaged, or the batches still in memory when close could not
                                  rewrite the spill file */
    uint64_t batches_sent;     /* Ingest calls made, retries included */
    uint64_t batches_acked;
    uint64_t batches_retried;  /* sent again after a lost connection or a transient error */
    uint64_t batches_spilled;  /* written to the spill file */
    uint64_t batches_unspilled;/* read back from the spill file */
    uint64_t bytes_sent;       /* Ingest payload bytes (after compression) */
    uint64_t connects;         /* successful handshakes */
    uint64_t connect_failures;
} vigil_agent_stats;

typedef struct vigil_agent vigil_agent;

/* Starts the agent's thread; it connects in the background. With
 * VIGIL_SPILL, batches left in the spill file by an earlier agent are sent
 * first. Returns VIGIL_ERR_ARGUMENT for a bad configuration, VIGIL_ERR_IO
 * when the spill file cannot be opened. */
int vigil_agent_open(const vigil_agent_config *config, vigil_agent **agent);

/* Copies (encodes) the event into the current batch. Returns VIGIL_OK;
 * VIGIL_ERR_ARGUMENT for an event that cannot be sent at all (no time,
 * tenant or action, a string that is not UTF-8, too large);
 * VIGIL_ERR_FULL when the queue stayed full for block_timeout_ms;
 * VIGIL_ERR_IO when the spill file cannot be written; VIGIL_ERR_STOPPED. */
int vigil_agent_log(vigil_agent *agent, const vigil_event *event);
/* Same with an event already encoded as vigil.v1.AuditEvent bytes. */
int vigil_agent_log_encoded(vigil_agent *agent, const void *bytes, size_t len);

/* Sends the current batch now and waits until everything logged before the
 * call is acknowledged or refused (timeout_ms < 0: no limit). Returns VIGIL_OK
 * or VIGIL_ERR_TIMEOUT. */
int vigil_agent_flush(vigil_agent *agent, int timeout_ms);

/* Flushes (up to timeout_ms), stops the thread (abandoning a connect or
 * handshake in progress) and frees the agent. Batches
 * still undelivered are written to the spill file with VIGIL_SPILL (and sent
 * by the next agent on it); otherwise they are lost and VIGIL_ERR_TIMEOUT is
 * returned. When the spill file cannot be rewritten, it is left as it was
 * (its unsent batches count in events_pending), the batches that were in
 * memory are lost (events_lost, reported through on_error) and VIGIL_ERR_IO
 * is returned. `stats` (may be NULL) receives the final figures. Other threads
 * blocked in vigil_agent_log or vigil_agent_flush return VIGIL_ERR_STOPPED,
 * and close returns only after they have; calling either after close has
 * begun is an error (the agent is freed). */
int vigil_agent_close(vigil_agent *agent, int timeout_ms, vigil_agent_stats *stats);

void vigil_agent_get_stats(vigil_agent *agent, vigil_agent_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* VIGIL_H */
