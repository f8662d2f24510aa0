/* vigil-agent: an example agent. It logs generated audit events (or the
 * events of a JSON lines file) through vigil_agent_log as fast as it can (or
 * at --rate), flushes, and reports what it measured: events/s accepted by the
 * agent, events/s acknowledged by the server, and the client's own CPU per
 * event.
 *
 *   vigil-agent [--address HOST:PORT] [--token TOKEN] [--events N]
 *               [--batch N] [--linger MS] [--in-flight M] [--queue Q]
 *               [--policy block|spill] [--spill PATH] [--compress LEVEL]
 *               [--rate EVENTS_PER_S] [--jsonl FILE|-] [--tenants K] [--threads T]
 *               [--interval SECONDS]
 *
 * With --interval, it also prints the events acknowledged in each interval
 * and reports the settled rate: the intervals of the run's second half. A run
 * that stops at its last acknowledgement leaves out the flushes the server
 * still owes (up to its memory budget), so the settled rate of a long run
 * (10,000,000 events and more) is what one agent sustains.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "json.h"
#include "vigil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- options ---- */

typedef struct opts {
    vigil_agent_config cfg;
    long events;
    double rate;
    const char *jsonl;
    int tenants, threads;
    double interval;
} opts;

/* --interval: the acknowledged events of each interval, from another thread. */
enum { MAX_INTERVALS = 100000 };
typedef struct reporter {
    vigil_agent *agent;
    double every, start;
    atomic_bool stop;
    double *rates;
    int n;
} reporter;

static void *run_reporter(void *arg) {
    reporter *r = arg;
    vigil_agent_stats st;
    vigil_agent_get_stats(r->agent, &st);
    uint64_t previous = st.events_acked;
    double from = now_s();
    while (!atomic_load(&r->stop)) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        double now = now_s();
        if (now - from < r->every) continue;
        vigil_agent_get_stats(r->agent, &st);
        double rate = (double)(st.events_acked - previous) / (now - from);
        fprintf(stderr, "  %8.1f s  %12" PRIu64 " acknowledged  %9.0f events/s\n", now - r->start, st.events_acked, rate);
        if (r->n < MAX_INTERVALS) r->rates[r->n++] = rate;
        previous = st.events_acked;
        from = now;
    }
    return NULL;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static atomic_long errors_reported;

static void on_error(const vigil_agent_error *e, void *user) {
    (void)user;
    long n = atomic_fetch_add(&errors_reported, 1);
    if (n < 20) {
        if (e->event)
            fprintf(stderr, "refused: event %u of batch %s: %s: %s\n", e->index, e->idempotency_key, e->field, e->reason);
        else
            fprintf(stderr, "%s: %s%s%s\n", vigil_code_name(e->code), e->message, e->idempotency_key ? " batch " : "",
                    e->idempotency_key ? e->idempotency_key : "");
    } else if (n == 20) {
        fprintf(stderr, "(further errors are counted, not printed)\n");
    }
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--address HOST:PORT] [--token TOKEN] [--events N] [--batch N] [--linger MS]\n"
            "          [--in-flight M] [--queue Q] [--policy block|spill] [--spill PATH] [--compress LEVEL]\n"
            "          [--rate EVENTS_PER_S] [--jsonl FILE|-] [--tenants K] [--threads T] [--interval SECONDS]\n",
            argv0);
    exit(2);
}

typedef struct worker {
    vigil_agent *agent;
    const opts *o;
    const gen_event *pool;
    long from, to;
    int rc;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    int64_t t0 = vigil_now_ns();
    double start = now_s();
    for (long i = w->from; i < w->to; i++) {
        vigil_event e = w->pool[i % POOL].ev;
        e.occurred_at_ns = t0 + i * 1000; /* distinct, close to now */
        int r = vigil_agent_log(w->agent, &e);
        if (r != VIGIL_OK) {
            w->rc = r;
            return NULL;
        }
        if (w->o->rate > 0 && (i - w->from) % 100 == 99) {
            double due = start + (double)(i - w->from + 1) * w->o->threads / w->o->rate, left = due - now_s();
            if (left > 0) {
                struct timespec ts = {.tv_sec = (time_t)left, .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
    }
    return NULL;
}

static long log_jsonl(vigil_agent *agent, const char *path, int *rc) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0, lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len <= 1) continue;
        jval v;
        vigil_event e;
        char err[200];
        if (json_parse(line, (size_t)len, &v, err, sizeof err) != 0) {
            fprintf(stderr, "%s:%ld: %s\n", path, lineno, err);
            continue;
        }
        if (json_to_event(&v, &e, err, sizeof err) != 0) {
            fprintf(stderr, "%s:%ld: %s\n", path, lineno, err);
        } else {
            int r = vigil_agent_log(agent, &e);
            if (r == VIGIL_ERR_ARGUMENT) fprintf(stderr, "%s:%ld: not an event that can be sent\n", path, lineno);
            else if (r != VIGIL_OK) *rc = r;
            else n++;
        }
        json_event_free(&e);
        json_free(&v);
        if (*rc) break;
    }
    free(line);
    if (f != stdin) fclose(f);
    return n;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    opts o;
    memset(&o, 0, sizeof o);
    vigil_agent_config_init(&o.cfg);
    o.events = 1000000;
    o.tenants = 50;
    o.threads = 1;
    o.cfg.on_error = on_error;
    o.cfg.connection.client_name = "vigil-agent-example";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage(argv[0]);
        i++;
        if (!strcmp(a, "--address")) o.cfg.connection.address = v;
        else if (!strcmp(a, "--token")) o.cfg.connection.token = v;
        else if (!strcmp(a, "--events")) o.events = atol(v);
        else if (!strcmp(a, "--batch")) o.cfg.batch_events = (uint32_t)atol(v);
        else if (!strcmp(a, "--linger")) o.cfg.batch_ms = (uint32_t)atol(v);
        else if (!strcmp(a, "--in-flight")) o.cfg.max_in_flight = (uint32_t)atol(v);
        else if (!strcmp(a, "--queue")) o.cfg.queue_batches = (uint32_t)atol(v);
        else if (!strcmp(a, "--policy")) o.cfg.policy = !strcmp(v, "spill") ? VIGIL_SPILL : VIGIL_BLOCK;
        else if (!strcmp(a, "--spill")) o.cfg.spill_path = v;
        else if (!strcmp(a, "--compress")) o.cfg.compress_level = atoi(v);
        else if (!strcmp(a, "--rate")) o.rate = atof(v);
        else if (!strcmp(a, "--jsonl")) o.jsonl = v;
        else if (!strcmp(a, "--tenants")) o.tenants = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--interval")) o.interval = atof(v);
        else usage(argv[0]);
    }
    if (o.tenants < 1 || o.threads < 1 || o.events < 0 || o.interval < 0) usage(argv[0]);
    if (o.cfg.batch_events > 1000) o.cfg.batch_bytes = o.cfg.batch_events * 1024u > (4u << 20) ? (4u << 20) - 4096
                                                                                             : o.cfg.batch_events * 1024u;

    vigil_agent *agent;
    int r = vigil_agent_open(&o.cfg, &agent);
    if (r != VIGIL_OK) {
        fprintf(stderr, "cannot start the agent: %s (%s)\n", vigil_code_name(r), vigil_strerror(r));
        return 1;
    }
    gen_event *pool = NULL;
    reporter rep = {.agent = agent, .every = o.interval, .start = now_s()};
    pthread_t reporter_thread;
    if (o.interval > 0) {
        rep.rates = malloc(MAX_INTERVALS * sizeof *rep.rates);
        if (!rep.rates || pthread_create(&reporter_thread, NULL, run_reporter, &rep) != 0) {
            fprintf(stderr, "cannot start the interval reporter\n");
            return 1;
        }
    }
    double t0 = now_s(), c0 = cpu_s();
    long logged = 0;
    int rc = VIGIL_OK;
    if (o.jsonl) {
        logged = log_jsonl(agent, o.jsonl, &rc);
    } else {
        pool = malloc(POOL * sizeof *pool);
        make_pool(pool, o.tenants);
        t0 = now_s();
        c0 = cpu_s();
        worker *w = calloc((size_t)o.threads, sizeof *w);
        pthread_t *th = calloc((size_t)o.threads, sizeof *th);
        for (int i = 0; i < o.threads; i++) {
            w[i] = (worker){agent, &o, pool, o.events * i / o.threads, o.events * (i + 1) / o.threads, 0};
            pthread_create(&th[i], NULL, run_worker, &w[i]);
        }
        for (int i = 0; i < o.threads; i++) {
            pthread_join(th[i], NULL);
            if (w[i].rc) rc = w[i].rc;
        }
        free(w);
        free(th);
        logged = o.events;
    }
    double t1 = now_s(), c1 = cpu_s();
    if (rc != VIGIL_OK) fprintf(stderr, "vigil_agent_log: %s\n", vigil_code_name(rc));
    int fr = vigil_agent_flush(agent, 600000);
    double t2 = now_s(), c2 = cpu_s();
    if (o.interval > 0) {
        atomic_store(&rep.stop, true);
        pthread_join(reporter_thread, NULL);
    }
    vigil_agent_stats st;
    int cr = vigil_agent_close(agent, 10000, &st);
    free(pool);

    double log_s = t1 - t0, total_s = t2 - t0, cpu = c2 - c0;
    double per_event_us = st.events_logged ? cpu * 1e6 / (double)st.events_logged : 0;
    printf("vigil-agent report\n");
    printf("  events logged          %" PRIu64 " (batches of %u, linger %u ms, %u in flight, %s%s)\n",
           st.events_logged, o.cfg.batch_events, o.cfg.batch_ms, o.cfg.max_in_flight,
           o.cfg.policy == VIGIL_SPILL ? "spill" : "block", o.cfg.compress_level ? ", compressed" : "");
    printf("  acknowledged           %" PRIu64 " (replays %" PRIu64 "), refused %" PRIu64 ", pending %" PRIu64 "\n",
           st.events_acked, st.events_replayed, st.events_rejected, st.events_pending);
    printf("  log phase              %.3f s: %.0f events/s accepted by vigil_agent_log\n", log_s,
           log_s > 0 ? (double)logged / log_s : 0);
    printf("  until all acked        %.3f s: %.0f events/s end to end\n", total_s,
           total_s > 0 ? (double)st.events_acked / total_s : 0);
    printf("  batches                %" PRIu64 " sent, %" PRIu64 " acked, %" PRIu64 " retried, %" PRIu64
           " spilled, %" PRIu64 " read back; %" PRIu64 " connects\n",
           st.batches_sent, st.batches_acked, st.batches_retried, st.batches_spilled, st.batches_unspilled,
           st.connects);
    printf("  bytes sent             %" PRIu64 " (%.1f bytes/event)\n", st.bytes_sent,
           st.events_acked ? (double)st.bytes_sent / (double)st.events_acked : 0);
    printf("  client CPU             %.3f s (%.3f s while logging): %.2f us/event, %.2f cores busy;\n", cpu, c1 - c0,
           per_event_us, total_s > 0 ? cpu / total_s : 0);
    printf("                         one core of this client would sustain %.0f events/s\n",
           per_event_us > 0 ? 1e6 / per_event_us : 0);
    if (o.interval > 0) {
        /* The second half of the intervals: the server's flushes keep up by then in a long run. */
        int half = rep.n / 2, k = rep.n - half;
        if (k > 0) {
            qsort(rep.rates + half, (size_t)k, sizeof *rep.rates, compare_doubles);
            printf("  settled                %.0f–%.0f events/s acknowledged, median %.0f (the last %d of %d intervals of %.1f s)\n",
                   rep.rates[half], rep.rates[rep.n - 1], rep.rates[half + k / 2], k, rep.n, o.interval);
        } else {
            printf("  settled                no whole interval of %.1f s\n", o.interval);
        }
        free(rep.rates);
    }
    if (atomic_load(&errors_reported)) printf("  errors reported        %ld\n", atomic_load(&errors_reported));
    if (fr != VIGIL_OK) printf("  flush: %s\n", vigil_code_name(fr));
    if (cr != VIGIL_OK) printf("  close: %s\n", vigil_code_name(cr));
    return rc == VIGIL_OK && fr == VIGIL_OK && cr == VIGIL_OK ? 0 : 1;
}
