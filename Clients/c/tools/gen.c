/* Generated audit events for the example agent and the benchmarks. */
#define _GNU_SOURCE
#include "gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- generated events: a pool of varied events, reused ---- */

static const char *const actions[][2] = {
    {"auth.login", "5"},       {"auth.logout", "6"},     {"user.create", "1"},   {"user.update", "3"},
    {"user.delete", "4"},      {"invoice.create", "1"},  {"invoice.approve", "8"}, {"pod.restart", "7"},
    {"acl.update", "3"},       {"credential.token_refresh", "3"},
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

void make_pool(gen_event *pool, int tenants) {
    for (int i = 0; i < POOL; i++) {
        gen_event *g = &pool[i];
        memset(g, 0, sizeof *g);
        int a = (int)(rnd() % 10), u = (int)(rnd() % 5000);
        snprintf(g->tenant, sizeof g->tenant, "bench-%d", (int)(rnd() % (uint64_t)tenants));
        snprintf(g->actor, sizeof g->actor, "u-%d", u);
        snprintf(g->name, sizeof g->name, "User %d", u);
        snprintf(g->email, sizeof g->email, "user%d@example.test", u);
        snprintf(g->resource_id, sizeof g->resource_id, "res-%d", (int)(rnd() % 200000));
        snprintf(g->ip, sizeof g->ip, "10.%d.%d.%d", (int)(rnd() % 256), (int)(rnd() % 256), (int)(rnd() % 256));
        snprintf(g->trace, sizeof g->trace, "%016" PRIx64 "%016" PRIx64, rnd(), rnd());
        snprintf(g->request, sizeof g->request, "%016" PRIx64 "%016" PRIx64, rnd(), rnd());
        snprintf(g->meta_val[0], sizeof g->meta_val[0], "%s", rnd() % 2 ? "eu-west" : "us-east");
        snprintf(g->meta_val[1], sizeof g->meta_val[1], "p-%d", (int)(rnd() % 100));
        g->meta[0] = (vigil_kv){"region", g->meta_val[0]};
        g->meta[1] = (vigil_kv){"project", g->meta_val[1]};
        g->change = (vigil_change){"role", "viewer", "admin"};
        vigil_event *e = &g->ev;
        e->tenant = g->tenant;
        e->actor = (vigil_actor){g->actor, VIGIL_ACTOR_USER, g->name, g->email};
        e->action = actions[a][0];
        e->category = (vigil_category)atoi(actions[a][1]);
        e->resource = (vigil_resource){"user", g->resource_id, NULL};
        e->outcome = rnd() % 20 ? VIGIL_SUCCESS : VIGIL_FAILURE;
        e->source_ip = g->ip;
        e->user_agent = "vigil-agent-example/1.0";
        e->trace_id = g->trace;
        e->request_id = g->request;
        if (e->category == VIGIL_UPDATE) {
            e->changes = &g->change;
            e->n_changes = 1;
        }
        e->metadata = g->meta;
        e->n_metadata = 1 + (size_t)(rnd() % 2);
    }
}

