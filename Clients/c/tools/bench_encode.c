/* bench_encode: the client's CPU cost per event, offline (no network).
 *
 *   bench_encode [EVENTS]
 *
 * 1. vigil_event_encode alone (the hand-written encoder the agent uses);
 * 2. the same events packed by protobuf-c, for comparison;
 * 3. vigil_agent_log into an agent whose server is unreachable, with the
 *    spill policy writing every batch to a file in /tmp (the whole logging
 *    path: checks, encoding, locking, batching, sealing, plus a write(2) per
 *    batch), so that nothing waits on a network. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "vigil.h"
#include "vigil/v1/event.pb-c.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* protobuf-c's representation of a generated event. */
typedef struct pc_event {
    Vigil__V1__AuditEvent e;
    Google__Protobuf__Timestamp t;
    Vigil__V1__Actor actor;
    Vigil__V1__Resource resource;
    Vigil__V1__Change change, *changes[1];
    Vigil__V1__AuditEvent__MetadataEntry meta[2], *metas[2];
} pc_event;

static char *s(const char *x) { return (char *)(uintptr_t)(x ? x : ""); }

static void to_pc(const vigil_event *v, pc_event *p) {
    vigil__v1__audit_event__init(&p->e);
    google__protobuf__timestamp__init(&p->t);
    vigil__v1__actor__init(&p->actor);
    vigil__v1__resource__init(&p->resource);
    p->t.seconds = v->occurred_at_ns / 1000000000;
    p->t.nanos = (int32_t)(v->occurred_at_ns % 1000000000);
    p->e.occurred_at = &p->t;
    p->e.tenant = s(v->tenant);
    p->actor.id = s(v->actor.id);
    p->actor.type = (Vigil__V1__ActorType)v->actor.type;
    p->actor.name = s(v->actor.name);
    p->actor.email = s(v->actor.email);
    p->e.actor = &p->actor;
    p->e.action = s(v->action);
    p->e.category = (Vigil__V1__Category)v->category;
    p->resource.type = s(v->resource.type);
    p->resource.id = s(v->resource.id);
    p->resource.name = s(v->resource.name);
    p->e.resource = &p->resource;
    p->e.outcome = (Vigil__V1__Outcome)v->outcome;
    p->e.source_ip = s(v->source_ip);
    p->e.user_agent = s(v->user_agent);
    p->e.trace_id = s(v->trace_id);
    p->e.request_id = s(v->request_id);
    if (v->n_changes) {
        vigil__v1__change__init(&p->change);
        p->change.field = s(v->changes[0].field);
        p->change.old = s(v->changes[0].old_value);
        p->change.new_ = s(v->changes[0].new_value);
        p->changes[0] = &p->change;
        p->e.changes = p->changes;
        p->e.n_changes = 1;
    }
    for (size_t i = 0; i < v->n_metadata && i < 2; i++) {
        vigil__v1__audit_event__metadata_entry__init(&p->meta[i]);
        p->meta[i].key = s(v->metadata[i].key);
        p->meta[i].value = s(v->metadata[i].value);
        p->metas[i] = &p->meta[i];
    }
    p->e.metadata = p->metas;
    p->e.n_metadata = v->n_metadata < 2 ? v->n_metadata : 2;
}

static void on_error(const vigil_agent_error *e, void *user) {
    (void)e;
    (void)user;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    gen_event *pool = malloc(POOL * sizeof *pool);
    make_pool(pool, 50);
    int64_t t0 = vigil_now_ns();
    for (int i = 0; i < POOL; i++) pool[i].ev.occurred_at_ns = t0 + i;
    uint8_t *buf = malloc(1 << 20);
    uint64_t bytes = 0, sink = 0;

    /* 1. the hand-written encoder */
    double w0 = now_s(), c0 = cpu_s();
    size_t off = 0;
    for (long i = 0; i < n; i++) {
        const vigil_event *e = &pool[i % POOL].ev;
        if (off > (1 << 20) - 4096) off = 0;
        size_t len = vigil_event_encode(e, buf + off, 4096);
        off += len;
        bytes += len;
    }
    double w1 = now_s(), c1 = cpu_s();
    sink += off;
    printf("vigil_event_encode     %8.1f ns/event  %7.0f MB/s  %.1f bytes/event  (%.2f M events/s)\n",
           (c1 - c0) * 1e9 / (double)n, (double)bytes / (w1 - w0) / 1e6, (double)bytes / (double)n,
           (double)n / (w1 - w0) / 1e6);

    /* 2. protobuf-c packing the same events */
    pc_event *pc = malloc(POOL * sizeof *pc);
    for (int i = 0; i < POOL; i++) to_pc(&pool[i].ev, &pc[i]);
    bytes = 0;
    off = 0;
    w0 = now_s();
    c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        const ProtobufCMessage *m = &pc[i % POOL].e.base;
        if (off > (1 << 20) - 4096) off = 0;
        size_t len = protobuf_c_message_pack(m, buf + off);
        off += len;
        bytes += len;
    }
    w1 = now_s();
    c1 = cpu_s();
    sink += off;
    printf("protobuf-c pack        %8.1f ns/event  %7.0f MB/s  (for comparison)\n", (c1 - c0) * 1e9 / (double)n,
           (double)bytes / (w1 - w0) / 1e6);

    /* 3. vigil_agent_log, server unreachable, every batch spilled */
    char spill[] = "/tmp/vigil-bench-spill-XXXXXX";
    int fd = mkstemp(spill);
    if (fd < 0) return 1;
    close(fd);
    vigil_agent_config cfg;
    vigil_agent_config_init(&cfg);
    cfg.connection.address = "127.0.0.1:1"; /* nothing listens there */
    cfg.policy = VIGIL_SPILL;
    cfg.spill_path = spill;
    cfg.queue_batches = 1;
    cfg.backoff_min_ms = 1000;
    cfg.backoff_max_ms = 60000;
    cfg.on_error = on_error;
    vigil_agent *a;
    if (vigil_agent_open(&cfg, &a) != VIGIL_OK) return 1;
    long n3 = n < 300000 ? n : 300000; /* the spill file takes ~280 bytes per event */
    w0 = now_s();
    c0 = cpu_s();
    for (long i = 0; i < n3; i++) {
        if (vigil_agent_log(a, &pool[i % POOL].ev) != VIGIL_OK) {
            fprintf(stderr, "vigil_agent_log failed\n");
            return 1;
        }
    }
    w1 = now_s();
    c1 = cpu_s();
    vigil_agent_stats st;
    vigil_agent_get_stats(a, &st);
    printf("vigil_agent_log        %8.1f ns/event  %7.2f M events/s  (batches of %u; %" PRIu64
           " batches written to the spill file)\n",
           (c1 - c0) * 1e9 / (double)n3, (double)n3 / (w1 - w0) / 1e6, cfg.batch_events, st.batches_spilled);
    vigil_agent_close(a, 0, NULL);
    unlink(spill);
    free(pc);
    free(buf);
    free(pool);
    return sink == 42 ? 1 : 0;
}
