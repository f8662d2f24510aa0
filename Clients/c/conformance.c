/* The conformance scenario (Clients/conformance/SCENARIO.md), C edition.
 *
 *   conformance --address HOST:PORT --tenant T [--token TOKEN] [--events PATH]
 *
 * Prints one JSON object per step on stdout (keys sorted, no spaces, as
 * Python's json.dumps(obj, sort_keys=True, separators=(",", ":"))). Exits 2
 * when it cannot connect, 1 when a step fails otherwise. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "vigil.h"

#ifndef VIGIL_EVENTS_FILE
#define VIGIL_EVENTS_FILE "../conformance/events.jsonl"
#endif

static vigil_client *client;
static const char *tenant;

/* ---- the events ---- */

typedef struct loaded {
    jval *docs;
    vigil_event *events;
    size_t n;
} loaded;

static int load_events(const char *path, loaded *out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t alloc = 0;
    int lineno = 0;
    memset(out, 0, sizeof *out);
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (out->n == alloc) {
            alloc = alloc ? alloc * 2 : 256;
            out->docs = realloc(out->docs, alloc * sizeof *out->docs);
            out->events = realloc(out->events, alloc * sizeof *out->events);
            if (!out->docs || !out->events) exit(1);
        }
        char err[200];
        if (json_parse(line, (size_t)len, &out->docs[out->n], err, sizeof err) != 0 ||
            json_to_event(&out->docs[out->n], &out->events[out->n], err, sizeof err) != 0) {
            fprintf(stderr, "%s:%d: %s\n", path, lineno, err);
            exit(1);
        }
        vigil_event *e = &out->events[out->n];
        if (e->tenant && strcmp(e->tenant, "TENANT") == 0) e->tenant = tenant;
        out->n++;
    }
    free(line);
    fclose(f);
    return 0;
}

static void free_events(loaded *l) {
    for (size_t i = 0; i < l->n; i++) {
        json_event_free(&l->events[i]);
        json_free(&l->docs[i]);
    }
    free(l->docs);
    free(l->events);
}

/* ---- output ---- */

/* A growable list of strings. */
typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_add(strs *s, const char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) exit(1);
    }
    s->v[s->n++] = strdup(x);
}

static void strs_free(strs *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void print_list(const strs *s) {
    putchar('[');
    for (size_t i = 0; i < s->n; i++) {
        if (i) putchar(',');
        json_write_str(stdout, s->v[i]);
    }
    putchar(']');
}

static void fail(const char *step, const char *what, int code) {
    const vigil_status *st = vigil_client_status(client);
    fprintf(stderr, "step %s: %s: %s (%s)\n", step, what, vigil_code_name(code), st ? st->message : "");
    exit(code == VIGIL_ERR_CONNECT ? 2 : 1);
}

/* ---- queries ---- */

typedef struct collect {
    strs request_ids;
    strs ids; /* the events' ids, parallel to request_ids */
    int pages;
} collect;

static int on_page(const vigil_event *evs, size_t n, const char *cursor, void *user) {
    collect *c = user;
    (void)cursor;
    c->pages++;
    for (size_t i = 0; i < n; i++) {
        strs_add(&c->request_ids, evs[i].request_id);
        strs_add(&c->ids, evs[i].id);
    }
    return 0;
}

static void base_query(vigil_query_params *q, const char *const *tenants) {
    memset(q, 0, sizeof *q);
    q->filter.tenants = tenants;
    q->filter.n_tenants = 1;
}

static void query_step(const char *step, vigil_query_params *q) {
    collect c = {0};
    int r = vigil_query(client, q, on_page, &c);
    if (r != VIGIL_OK) fail(step, "query", r);
    printf("{\"request_ids\":");
    print_list(&c.request_ids);
    printf(",\"step\":\"%s\"}\n", step);
    strs_free(&c.request_ids);
    strs_free(&c.ids);
}

/* ---- subscribe ---- */

typedef struct sub {
    size_t want;
    strs request_ids;
    char *cursor;
} sub;

static int on_message(const vigil_event *ev, int64_t heartbeat_ns, const char *cursor, void *user) {
    sub *s = user;
    (void)heartbeat_ns;
    if (!ev) return 0;
    strs_add(&s->request_ids, ev->request_id);
    if (s->request_ids.n == s->want) {
        free(s->cursor);
        s->cursor = strdup(cursor);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *address = NULL, *token = NULL, *events_path = VIGIL_EVENTS_FILE;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--address") == 0) address = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--tenant") == 0) tenant = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--token") == 0) token = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--events") == 0) events_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s --address HOST:PORT --tenant T [--token TOKEN] [--events PATH]\n", argv[0]);
            return 1;
        }
    }
    if (!address || !tenant) {
        fprintf(stderr, "--address and --tenant are required\n");
        return 1;
    }
    loaded ev;
    if (load_events(events_path, &ev) != 0 && load_events("../conformance/events.jsonl", &ev) != 0) {
        fprintf(stderr, "cannot read %s\n", events_path);
        return 1;
    }
    if (ev.n < 260) {
        fprintf(stderr, "%s has %zu events, the scenario needs 260\n", events_path, ev.n);
        return 1;
    }
    vigil_options o;
    vigil_options_init(&o);
    o.address = address;
    o.token = token; /* NULL: $VIGIL_TOKEN */
    o.client_name = "vigil-c-conformance";
    o.call_timeout_ms = 30000;
    client = vigil_client_new(&o);
    if (!client) return 1;
    int r = vigil_client_connect(client);
    if (r != VIGIL_OK) fail("connect", address, r == VIGIL_ERR_TIMEOUT ? VIGIL_ERR_CONNECT : r);
    const char *tenants[] = {tenant};
    char key[300];

    /* 1. ingest */
    {
        static const size_t bounds[][2] = {{0, 100}, {100, 200}, {200, 240}};
        vigil_ingest_result res[3], again;
        uint64_t stored = 0;
        for (int b = 0; b < 3; b++) {
            snprintf(key, sizeof key, "%s-batch-%d", tenant, b);
            r = vigil_ingest(client, ev.events + bounds[b][0], bounds[b][1] - bounds[b][0], key, &res[b]);
            if (r != VIGIL_OK) fail("ingest", key, r);
            stored += res[b].count;
        }
        snprintf(key, sizeof key, "%s-batch-0", tenant);
        r = vigil_ingest(client, ev.events, 100, key, &again);
        if (r != VIGIL_OK) fail("ingest", "the repeated batch", r);
        printf("{\"replayed\":%s,\"seq_span\":%" PRId64 ",\"step\":\"ingest\",\"stored\":%" PRIu64 "}\n",
               again.replayed ? "true" : "false", (int64_t)(res[2].last_seq - res[0].first_seq), stored);
    }

    /* 2. query-all (keeps the ids for step 9) */
    collect all = {0};
    {
        vigil_query_params q;
        base_query(&q, tenants);
        q.order = VIGIL_OLDEST_FIRST;
        q.page_size = 50;
        r = vigil_query(client, &q, on_page, &all);
        if (r != VIGIL_OK) fail("query-all", "query", r);
        printf("{\"pages\":%d,\"request_ids\":", all.pages);
        print_list(&all.request_ids);
        printf(",\"step\":\"query-all\"}\n");
    }

    /* 3. query-resume */
    {
        vigil_query_params q;
        base_query(&q, tenants);
        q.order = VIGIL_NEWEST_FIRST;
        q.limit = 70;
        q.page_size = 25;
        collect c = {0};
        char *cursor = NULL;
        int calls = 0;
        for (;;) {
            size_t before = c.request_ids.n;
            q.cursor = cursor;
            r = vigil_query(client, &q, on_page, &c);
            calls++;
            if (r != VIGIL_OK) fail("query-resume", "query", r);
            if (c.request_ids.n == before) break;
            const char *next = vigil_status_get(vigil_client_status(client), "vigil.cursor");
            if (!next) fail("query-resume", "no vigil.cursor in the trailers", VIGIL_ERR_PROTOCOL);
            free(cursor);
            cursor = strdup(next);
            if (calls > 1000) fail("query-resume", "does not end", VIGIL_ERR_PROTOCOL);
        }
        free(cursor);
        printf("{\"calls\":%d,\"request_ids\":", calls);
        print_list(&c.request_ids);
        printf(",\"step\":\"query-resume\"}\n");
        strs_free(&c.request_ids);
        strs_free(&c.ids);
    }

    /* 4. failed-logins */
    {
        vigil_query_params q;
        base_query(&q, tenants);
        const char *actions[] = {"auth.login"};
        const vigil_outcome outcomes[] = {VIGIL_FAILURE};
        q.filter.actions = actions;
        q.filter.n_actions = 1;
        q.filter.outcomes = outcomes;
        q.filter.n_outcomes = 1;
        query_step("failed-logins", &q);
    }
    /* 5. actor */
    {
        vigil_query_params q;
        base_query(&q, tenants);
        const char *actors[] = {"u-7"};
        q.filter.actor_ids = actors;
        q.filter.n_actor_ids = 1;
        query_step("actor", &q);
    }
    /* 6. search */
    {
        vigil_query_params q;
        base_query(&q, tenants);
        q.filter.search = "acme";
        query_step("search", &q);
    }
    /* 7. time-range */
    {
        vigil_query_params q;
        base_query(&q, tenants);
        q.order = VIGIL_OLDEST_FIRST;
        if (vigil_parse_time("2026-11-18T12:00:00Z", &q.filter.since_ns) != VIGIL_OK ||
            vigil_parse_time("2026-11-18T13:00:00Z", &q.filter.until_ns) != VIGIL_OK)
            return 1;
        query_step("time-range", &q);
    }

    /* 8. count-by-action */
    {
        vigil_aggregate_params p;
        memset(&p, 0, sizeof p);
        p.filter.tenants = tenants;
        p.filter.n_tenants = 1;
        p.group_by = VIGIL_GROUP_ACTION;
        p.top = 100;
        vigil_aggregate_result *a = NULL;
        r = vigil_aggregate(client, &p, &a);
        if (r != VIGIL_OK) fail("count-by-action", "aggregate", r);
        printf("{\"count\":%" PRIu64 ",\"groups\":[", a->count);
        for (size_t i = 0; i < a->n_groups; i++) {
            printf(i ? ",[" : "[");
            json_write_str(stdout, a->groups[i].key);
            printf(",%" PRIu64 "]", a->groups[i].count);
        }
        printf("],\"step\":\"count-by-action\"}\n");
        vigil_aggregate_result_free(a);
    }

    /* 9. get */
    {
        const char *id = NULL;
        for (size_t i = 0; i < all.request_ids.n; i++)
            if (strcmp(all.request_ids.v[i], "conf-0042") == 0) id = all.ids.v[i];
        if (!id) fail("get", "conf-0042 was not in step 2's results", VIGIL_NOT_FOUND);
        vigil_event *e = NULL;
        r = vigil_get(client, id, &e);
        if (r != VIGIL_OK) fail("get", id, r);
        printf("{\"action\":");
        json_write_str(stdout, e->action);
        printf(",\"request_id\":");
        json_write_str(stdout, e->request_id);
        printf(",\"step\":\"get\"}\n");
        vigil_event_free(e);
    }

    /* 10. subscribe */
    {
        vigil_subscribe_params p;
        memset(&p, 0, sizeof p);
        p.filter.tenants = tenants;
        p.filter.n_tenants = 1;
        p.start = VIGIL_SINCE;
        p.timeout_ms = 30000;
        if (vigil_parse_time("2026-11-18T00:00:00Z", &p.since_ns) != VIGIL_OK) return 1;
        sub first = {.want = 100};
        r = vigil_subscribe(client, &p, on_message, &first);
        if (r != VIGIL_OK || first.request_ids.n != 100) fail("subscribe", "the first subscription", r);
        snprintf(key, sizeof key, "%s-batch-3", tenant);
        r = vigil_ingest(client, ev.events + 240, 20, key, NULL);
        if (r != VIGIL_OK) fail("subscribe", "ingest of events 241-260", r);
        p.start = VIGIL_CURSOR;
        p.cursor = first.cursor;
        sub resumed = {.want = 160};
        r = vigil_subscribe(client, &p, on_message, &resumed);
        if (r != VIGIL_OK || resumed.request_ids.n != 160) fail("subscribe", "the resumed subscription", r);
        printf("{\"first\":");
        print_list(&first.request_ids);
        printf(",\"resumed\":");
        print_list(&resumed.request_ids);
        printf(",\"step\":\"subscribe\"}\n");
        strs_free(&first.request_ids);
        strs_free(&resumed.request_ids);
        free(first.cursor);
        free(resumed.cursor);
    }

    /* 11. errors */
    {
        int codes[4];
        vigil_query_params q;
        base_query(&q, tenants);
        q.page_size = 20000;
        codes[0] = vigil_query(client, &q, NULL, NULL);
        vigil_event *e = NULL;
        codes[1] = vigil_get(client, "not-a-uuid", &e);
        vigil_event_free(e);
        e = NULL;
        codes[2] = vigil_get(client, "00000000-0000-7000-8000-000000000000", &e);
        vigil_event_free(e);
        vigil_event bad = ev.events[0];
        bad.action = NULL;
        codes[3] = vigil_ingest(client, &bad, 1, NULL, NULL);
        const vigil_status *st = vigil_client_status(client);
        for (int i = 0; i < 4; i++)
            if (codes[i] >= 100) fail("errors", "a call failed on the client side", codes[i]);
        printf("{\"codes\":[%d,%d,%d,%d],\"invalid_indexes\":[", codes[0], codes[1], codes[2], codes[3]);
        for (size_t i = 0; i < st->n_event_errors; i++) printf(i ? ",%u" : "%u", st->event_errors[i].index);
        printf("],\"step\":\"errors\"}\n");
    }

    strs_free(&all.request_ids);
    strs_free(&all.ids);
    free_events(&ev);
    vigil_client_free(client);
    return fflush(stdout) == 0 ? 0 : 1;
}
