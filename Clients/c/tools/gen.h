#ifndef VIGIL_TOOLS_GEN_H
#define VIGIL_TOOLS_GEN_H

#include "vigil.h"

/* A pool of varied events (tenants, users, actions, addresses, random trace
 * and request ids, metadata): about 280 bytes each when encoded. */
enum { POOL = 4096 };

typedef struct gen_event {
    char tenant[16], actor[16], name[32], email[48], resource_id[24], ip[40], trace[33], request[33];
    vigil_kv meta[2];
    char meta_val[2][16];
    vigil_change change;
    vigil_event ev;
} gen_event;

void make_pool(gen_event *pool, int tenants);

#endif
