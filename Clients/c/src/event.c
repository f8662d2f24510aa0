/* Events: a hand-written protobuf encoder for vigil.v1.AuditEvent (the hot
 * path of the agent: no allocation, two passes over the fields), the
 * conversion of decoded events, and filters. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Field numbers of vigil.v1.AuditEvent and its parts (event.proto). */
enum {
    EV_ID = 1, EV_OCCURRED_AT = 3, EV_TENANT = 5, EV_ACTOR = 6, EV_ACTION = 7, EV_CATEGORY = 8,
    EV_RESOURCE = 9, EV_TARGETS = 10, EV_OUTCOME = 11, EV_REASON = 12, EV_SOURCE_IP = 13,
    EV_USER_AGENT = 14, EV_TRACE_ID = 15, EV_REQUEST_ID = 16, EV_CHANGES = 17, EV_METADATA = 18,
    EV_DESCRIPTION = 19,
};

#define WT_VARINT 0
#define WT_LEN 2

static inline size_t slen(const char *s) { return s ? strlen(s) : 0; }
static inline size_t tag_size(unsigned field) { return field < 16 ? 1 : 2; }
static inline uint8_t *put_tag(uint8_t *p, unsigned field, unsigned wt) {
    return put_varint(p, (uint64_t)(field << 3 | wt));
}

static inline size_t enum_size(unsigned field, int v) {
    return v ? tag_size(field) + varint_size((uint64_t)(int64_t)v) : 0;
}
static inline uint8_t *put_enum(uint8_t *p, unsigned field, int v) {
    if (!v) return p;
    p = put_tag(p, field, WT_VARINT);
    return put_varint(p, (uint64_t)(int64_t)v);
}
static inline size_t msg_size(unsigned field, size_t body) { return tag_size(field) + varint_size(body) + body; }
static inline uint8_t *put_msg_header(uint8_t *p, unsigned field, size_t body) {
    p = put_tag(p, field, WT_LEN);
    return put_varint(p, body);
}

static void split_ns(int64_t ns, int64_t *secs, int32_t *nanos) {
    int64_t s = ns / 1000000000, f = ns % 1000000000;
    if (f < 0) {
        f += 1000000000;
        s--;
    }
    *secs = s;
    *nanos = (int32_t)f;
}

static size_t timestamp_body(int64_t ns) {
    int64_t s;
    int32_t n;
    split_ns(ns, &s, &n);
    return (s ? 1 + varint_size((uint64_t)s) : 0) + (n ? 1 + varint_size((uint64_t)n) : 0);
}

/* Lengths of the event's single strings, computed once for the checks, the
 * size and the writing. */
enum { L_ID, L_TENANT, L_AID, L_ANAME, L_AEMAIL, L_ACTION, L_RTYPE, L_RID, L_RNAME, L_REASON, L_IP, L_UA, L_TRACE,
       L_REQUEST, L_DESC, L_COUNT };

static inline size_t lstr_size(unsigned field, size_t n) { return n ? tag_size(field) + varint_size(n) + n : 0; }
static inline uint8_t *put_lstr(uint8_t *p, unsigned field, const char *s, size_t n) {
    if (!n) return p;
    p = put_tag(p, field, WT_LEN);
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* The extras' strings, measured once into pr->xlen when they fit (see
 * ev_prep), and their sizes from there. */
static void measure_extras(const vigil_event *e, ev_prep *pr) {
    size_t need = 3 * e->n_targets + 3 * e->n_changes + 2 * e->n_metadata;
    pr->xn = 0;
    if (need == 0 || need > EV_PREP_EXTRAS) return;
    size_t k = 0;
    for (size_t i = 0; i < e->n_targets; i++) {
        const vigil_resource *r = &e->targets[i];
        pr->xlen[k++] = (uint32_t)slen(r->type);
        pr->xlen[k++] = (uint32_t)slen(r->id);
        pr->xlen[k++] = (uint32_t)slen(r->name);
    }
    for (size_t i = 0; i < e->n_changes; i++) {
        const vigil_change *c = &e->changes[i];
        pr->xlen[k++] = (uint32_t)slen(c->field);
        pr->xlen[k++] = (uint32_t)slen(c->old_value);
        pr->xlen[k++] = (uint32_t)slen(c->new_value);
    }
    for (size_t i = 0; i < e->n_metadata; i++) {
        pr->xlen[k++] = (uint32_t)slen(e->metadata[i].key);
        pr->xlen[k++] = (uint32_t)slen(e->metadata[i].value);
    }
    pr->xn = k;
}

/* The length of the string at `s`, extras string number `k`: cached when measured. */
static inline size_t xlen(const ev_prep *pr, size_t k, const char *s) { return pr->xn ? pr->xlen[k] : slen(s); }

static inline size_t triple_body(size_t a, size_t b, size_t c) { return lstr_size(1, a) + lstr_size(2, b) + lstr_size(3, c); }
static inline size_t kv_body_len(size_t k, size_t v) {
    return tag_size(1) + varint_size(k) + k + tag_size(2) + varint_size(v) + v;
}
static inline uint8_t *put_lstr_always(uint8_t *p, unsigned field, const char *s, size_t n) {
    p = put_tag(p, field, WT_LEN);
    p = put_varint(p, n);
    if (n) memcpy(p, s, n);
    return p + n;
}

/* A message of three strings (a target, a change) whose lengths are extras
 * strings k, k + 1 and k + 2: its body's size, and the message written. */
static inline size_t triple_size(const ev_prep *pr, size_t k, const char *a, const char *b, const char *c) {
    return triple_body(xlen(pr, k, a), xlen(pr, k + 1, b), xlen(pr, k + 2, c));
}
static uint8_t *put_triple(uint8_t *p, unsigned field, const ev_prep *pr, size_t k, const char *a, const char *b,
                           const char *c) {
    size_t la = xlen(pr, k, a), lb = xlen(pr, k + 1, b), lc = xlen(pr, k + 2, c);
    p = put_msg_header(p, field, triple_body(la, lb, lc));
    p = put_lstr(p, 1, a, la);
    p = put_lstr(p, 2, b, lb);
    return put_lstr(p, 3, c, lc);
}

static size_t prepare(const vigil_event *e, ev_prep *pr) {
    const char *const strs[L_COUNT] = {e->id,         e->tenant,     e->actor.id,       e->actor.name,
                                       e->actor.email, e->action,    e->resource.type,  e->resource.id,
                                       e->resource.name, e->reason,  e->source_ip,      e->user_agent,
                                       e->trace_id,   e->request_id, e->description};
    for (int i = 0; i < L_COUNT; i++) pr->len[i] = slen(strs[i]);
    measure_extras(e, pr);
    const size_t *L = pr->len;
    pr->actor_body = lstr_size(1, L[L_AID]) + enum_size(2, (int)e->actor.type) + lstr_size(3, L[L_ANAME]) +
                     lstr_size(4, L[L_AEMAIL]);
    pr->resource_body = lstr_size(1, L[L_RTYPE]) + lstr_size(2, L[L_RID]) + lstr_size(3, L[L_RNAME]);
    pr->ts_body = e->occurred_at_ns ? timestamp_body(e->occurred_at_ns) : 0;
    size_t n = lstr_size(EV_ID, L[L_ID]);
    if (e->occurred_at_ns) n += msg_size(EV_OCCURRED_AT, pr->ts_body);
    n += lstr_size(EV_TENANT, L[L_TENANT]);
    if (pr->actor_body) n += msg_size(EV_ACTOR, pr->actor_body);
    n += lstr_size(EV_ACTION, L[L_ACTION]);
    n += enum_size(EV_CATEGORY, (int)e->category);
    if (pr->resource_body) n += msg_size(EV_RESOURCE, pr->resource_body);
    size_t k = 0;
    for (size_t i = 0; i < e->n_targets; i++, k += 3) {
        const vigil_resource *r = &e->targets[i];
        n += msg_size(EV_TARGETS, triple_size(pr, k, r->type, r->id, r->name));
    }
    n += enum_size(EV_OUTCOME, (int)e->outcome);
    n += lstr_size(EV_REASON, L[L_REASON]) + lstr_size(EV_SOURCE_IP, L[L_IP]) + lstr_size(EV_USER_AGENT, L[L_UA]) +
         lstr_size(EV_TRACE_ID, L[L_TRACE]) + lstr_size(EV_REQUEST_ID, L[L_REQUEST]);
    for (size_t i = 0; i < e->n_changes; i++, k += 3) {
        const vigil_change *c = &e->changes[i];
        n += msg_size(EV_CHANGES, triple_size(pr, k, c->field, c->old_value, c->new_value));
    }
    for (size_t i = 0; i < e->n_metadata; i++, k += 2) {
        const vigil_kv *kv = &e->metadata[i];
        n += msg_size(EV_METADATA, kv_body_len(xlen(pr, k, kv->key), xlen(pr, k + 1, kv->value)));
    }
    n += lstr_size(EV_DESCRIPTION, L[L_DESC]);
    pr->size = n;
    return n;
}

size_t event_prepare(const vigil_event *e, ev_prep *pr) { return prepare(e, pr); }

size_t event_encoded_size(const vigil_event *e) {
    ev_prep pr;
    return prepare(e, &pr);
}

uint8_t *event_write_prepared(const vigil_event *e, const ev_prep *pr, uint8_t *p) {
    const size_t *L = pr->len;
    p = put_lstr(p, EV_ID, e->id, L[L_ID]);
    if (e->occurred_at_ns) {
        int64_t s;
        int32_t n;
        split_ns(e->occurred_at_ns, &s, &n);
        p = put_msg_header(p, EV_OCCURRED_AT, pr->ts_body);
        if (s) {
            *p++ = 0x08;
            p = put_varint(p, (uint64_t)s);
        }
        if (n) {
            *p++ = 0x10;
            p = put_varint(p, (uint64_t)n);
        }
    }
    p = put_lstr(p, EV_TENANT, e->tenant, L[L_TENANT]);
    if (pr->actor_body) {
        p = put_msg_header(p, EV_ACTOR, pr->actor_body);
        p = put_lstr(p, 1, e->actor.id, L[L_AID]);
        p = put_enum(p, 2, (int)e->actor.type);
        p = put_lstr(p, 3, e->actor.name, L[L_ANAME]);
        p = put_lstr(p, 4, e->actor.email, L[L_AEMAIL]);
    }
    p = put_lstr(p, EV_ACTION, e->action, L[L_ACTION]);
    p = put_enum(p, EV_CATEGORY, (int)e->category);
    if (pr->resource_body) {
        p = put_msg_header(p, EV_RESOURCE, pr->resource_body);
        p = put_lstr(p, 1, e->resource.type, L[L_RTYPE]);
        p = put_lstr(p, 2, e->resource.id, L[L_RID]);
        p = put_lstr(p, 3, e->resource.name, L[L_RNAME]);
    }
    size_t k = 0;
    for (size_t i = 0; i < e->n_targets; i++, k += 3) {
        const vigil_resource *r = &e->targets[i];
        p = put_triple(p, EV_TARGETS, pr, k, r->type, r->id, r->name);
    }
    p = put_enum(p, EV_OUTCOME, (int)e->outcome);
    p = put_lstr(p, EV_REASON, e->reason, L[L_REASON]);
    p = put_lstr(p, EV_SOURCE_IP, e->source_ip, L[L_IP]);
    p = put_lstr(p, EV_USER_AGENT, e->user_agent, L[L_UA]);
    p = put_lstr(p, EV_TRACE_ID, e->trace_id, L[L_TRACE]);
    p = put_lstr(p, EV_REQUEST_ID, e->request_id, L[L_REQUEST]);
    for (size_t i = 0; i < e->n_changes; i++, k += 3) {
        const vigil_change *c = &e->changes[i];
        p = put_triple(p, EV_CHANGES, pr, k, c->field, c->old_value, c->new_value);
    }
    for (size_t i = 0; i < e->n_metadata; i++, k += 2) {
        const vigil_kv *kv = &e->metadata[i];
        size_t a = xlen(pr, k, kv->key), b = xlen(pr, k + 1, kv->value);
        p = put_msg_header(p, EV_METADATA, kv_body_len(a, b));
        p = put_lstr_always(p, 1, kv->key, a);
        p = put_lstr_always(p, 2, kv->value, b);
    }
    return put_lstr(p, EV_DESCRIPTION, e->description, L[L_DESC]);
}

uint8_t *event_write(const vigil_event *e, uint8_t *p) {
    ev_prep pr;
    prepare(e, &pr);
    return event_write_prepared(e, &pr, p);
}

bool event_arrays_ok(const vigil_event *e) {
    return (!e->n_targets || e->targets) && (!e->n_changes || e->changes) && (!e->n_metadata || e->metadata);
}

size_t vigil_event_encode(const vigil_event *event, uint8_t *buf, size_t capacity) {
    if (!event || !event_arrays_ok(event)) return 0;
    ev_prep pr;
    size_t n = prepare(event, &pr);
    if (n <= capacity && buf) event_write_prepared(event, &pr, buf);
    return n;
}

/* ---- checks ---- */

/* The bytes s[0..<n] (n < 8) as one word, with overlapping loads rather
 * than a variable-length memcpy: for the short strings of an event (ids,
 * names), that memcpy was a call into libc each time. */
static inline uint64_t load_short(const uint8_t *s, size_t n) {
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return (uint64_t)a | (uint64_t)b << 32;
    }
    if (n >= 2) {
        uint16_t a, b;
        memcpy(&a, s, 2);
        memcpy(&b, s + n - 2, 2);
        return (uint64_t)a | (uint64_t)b << 16;
    }
    return n ? s[0] : 0;
}

bool utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (i + 8 > n) {
            /* Fewer than 8 bytes left: one load of the last 8 (it may cover
             * bytes already checked) or of what is left, not one per byte. */
            uint64_t w;
            if (n >= 8)
                memcpy(&w, s + n - 8, 8);
            else
                w = load_short(s + i, n - i);
            if (!(w & 0x8080808080808080ull)) return true;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static bool str_ok(const char *s, size_t n) { return !s || utf8_valid((const uint8_t *)s, n); }

const char *event_check_prepared(const vigil_event *e, const ev_prep *pr) {
    if (!e) return "event is NULL";
    if (!e->occurred_at_ns) return "occurred_at is required";
    if (!pr->len[L_TENANT]) return "tenant is required";
    if (!pr->len[L_ACTION]) return "action is required";
    if (e->n_targets && !e->targets) return "targets is NULL";
    if (e->n_changes && !e->changes) return "changes is NULL";
    if (e->n_metadata && !e->metadata) return "metadata is NULL";
    const char *const strs[L_COUNT] = {e->id,         e->tenant,     e->actor.id,       e->actor.name,
                                       e->actor.email, e->action,    e->resource.type,  e->resource.id,
                                       e->resource.name, e->reason,  e->source_ip,      e->user_agent,
                                       e->trace_id,   e->request_id, e->description};
    for (int i = 0; i < L_COUNT; i++)
        if (pr->len[i] && !utf8_valid((const uint8_t *)strs[i], pr->len[i])) return "a string is not valid UTF-8";
    size_t k = 0;
    for (size_t i = 0; i < e->n_targets; i++, k += 3) {
        const vigil_resource *r = &e->targets[i];
        if (!str_ok(r->type, xlen(pr, k, r->type)) || !str_ok(r->id, xlen(pr, k + 1, r->id)) ||
            !str_ok(r->name, xlen(pr, k + 2, r->name)))
            return "a target's string is not valid UTF-8";
    }
    for (size_t i = 0; i < e->n_changes; i++, k += 3) {
        const vigil_change *c = &e->changes[i];
        if (!str_ok(c->field, xlen(pr, k, c->field)) || !str_ok(c->old_value, xlen(pr, k + 1, c->old_value)) ||
            !str_ok(c->new_value, xlen(pr, k + 2, c->new_value)))
            return "a change's string is not valid UTF-8";
    }
    for (size_t i = 0; i < e->n_metadata; i++, k += 2) {
        const vigil_kv *kv = &e->metadata[i];
        if (!str_ok(kv->key, xlen(pr, k, kv->key)) || !str_ok(kv->value, xlen(pr, k + 1, kv->value)))
            return "a metadata string is not valid UTF-8";
    }
    return NULL;
}

const char *event_check(const vigil_event *e) {
    if (!e) return "event is NULL";
    ev_prep pr;
    prepare(e, &pr);
    return event_check_prepared(e, &pr);
}

/* ---- decoded events ---- */

static const char *nz(const char *s) { return s ? s : ""; }

int event_from_pb(arena *a, const Vigil__V1__AuditEvent *pe, vigil_event *out) {
    memset(out, 0, sizeof *out);
    out->id = nz(pe->id);
    out->seq = pe->seq;
    out->occurred_at_ns = timestamp_ns(pe->occurred_at);
    out->received_at_ns = timestamp_ns(pe->received_at);
    out->tenant = nz(pe->tenant);
    out->actor.id = pe->actor ? nz(pe->actor->id) : "";
    out->actor.type = pe->actor ? (vigil_actor_type)pe->actor->type : VIGIL_ACTOR_UNSPECIFIED;
    out->actor.name = pe->actor ? nz(pe->actor->name) : "";
    out->actor.email = pe->actor ? nz(pe->actor->email) : "";
    out->action = nz(pe->action);
    out->category = (vigil_category)pe->category;
    out->resource.type = pe->resource ? nz(pe->resource->type) : "";
    out->resource.id = pe->resource ? nz(pe->resource->id) : "";
    out->resource.name = pe->resource ? nz(pe->resource->name) : "";
    if (pe->n_targets) {
        vigil_resource *t = arena_alloc(a, pe->n_targets * sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < pe->n_targets; i++) {
            t[i].type = nz(pe->targets[i]->type);
            t[i].id = nz(pe->targets[i]->id);
            t[i].name = nz(pe->targets[i]->name);
        }
        out->targets = t;
        out->n_targets = pe->n_targets;
    }
    out->outcome = (vigil_outcome)pe->outcome;
    out->reason = nz(pe->reason);
    out->source_ip = nz(pe->source_ip);
    out->user_agent = nz(pe->user_agent);
    out->trace_id = nz(pe->trace_id);
    out->request_id = nz(pe->request_id);
    if (pe->n_changes) {
        vigil_change *c = arena_alloc(a, pe->n_changes * sizeof *c);
        if (!c) return -1;
        for (size_t i = 0; i < pe->n_changes; i++) {
            c[i].field = nz(pe->changes[i]->field);
            c[i].old_value = nz(pe->changes[i]->old);
            c[i].new_value = nz(pe->changes[i]->new_);
        }
        out->changes = c;
        out->n_changes = pe->n_changes;
    }
    if (pe->n_metadata) {
        vigil_kv *m = arena_alloc(a, pe->n_metadata * sizeof *m);
        if (!m) return -1;
        for (size_t i = 0; i < pe->n_metadata; i++) {
            m[i].key = nz(pe->metadata[i]->key);
            m[i].value = nz(pe->metadata[i]->value);
        }
        out->metadata = m;
        out->n_metadata = pe->n_metadata;
    }
    out->description = nz(pe->description);
    return 0;
}

/* An event returned by vigil_get: the vigil_event first, so that the
 * caller's pointer is the allocation. */
typedef struct owned_event {
    vigil_event ev;
    Vigil__V1__GetResponse *resp;
    arena mem;
} owned_event;

vigil_event *owned_event_new(Vigil__V1__GetResponse *resp) {
    owned_event *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->resp = resp;
    if (!resp->event || event_from_pb(&o->mem, resp->event, &o->ev) != 0) {
        arena_reset(&o->mem);
        free(o);
        return NULL;
    }
    return &o->ev;
}

void vigil_event_free(vigil_event *event) {
    if (!event) return;
    owned_event *o = (owned_event *)event;
    if (o->resp) protobuf_c_message_free_unpacked(&o->resp->base, NULL);
    arena_reset(&o->mem);
    free(o);
}

/* ---- filters ---- */

Google__Protobuf__Timestamp *timestamp_pb(arena *a, int64_t ns) {
    Google__Protobuf__Timestamp *t = arena_alloc(a, sizeof *t);
    if (!t) return NULL;
    google__protobuf__timestamp__init(t);
    int64_t s;
    int32_t n;
    split_ns(ns, &s, &n);
    t->seconds = s;
    t->nanos = n;
    return t;
}

Google__Protobuf__Duration *duration_pb(arena *a, int64_t ns) {
    Google__Protobuf__Duration *d = arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    google__protobuf__duration__init(d);
    d->seconds = ns / 1000000000;
    d->nanos = (int32_t)(ns % 1000000000);
    return d;
}

/* Copies an enum list into protobuf-c's representation (int-sized enums). */
#define ENUM_LIST(dst_type, src, n, out_n, out_p)                   \
    do {                                                            \
        if (n) {                                                    \
            dst_type *arr = arena_alloc(a, (n) * sizeof(dst_type)); \
            if (!arr) return NULL;                                  \
            for (size_t i_ = 0; i_ < (n); i_++)                     \
                arr[i_] = (dst_type)(src)[i_];                      \
            out_n = (n);                                            \
            out_p = arr;                                            \
        }                                                           \
    } while (0)

/* protobuf-c's repeated strings are `char **`; packing does not write them. */
#define STR_LIST(src, n, out_n, out_p)       \
    do {                                     \
        if (n) {                             \
            out_n = (n);                     \
            out_p = (char **)(uintptr_t)src; \
        }                                    \
    } while (0)

Vigil__V1__Filter *filter_to_pb(arena *a, const vigil_filter *f) {
    Vigil__V1__Filter *pf = arena_alloc(a, sizeof *pf);
    if (!pf) return NULL;
    vigil__v1__filter__init(pf);
    if (!f) return pf;
    if (f->since_ns && !(pf->since = timestamp_pb(a, f->since_ns))) return NULL;
    if (f->until_ns && !(pf->until = timestamp_pb(a, f->until_ns))) return NULL;
    if (f->last_ns && !(pf->last = duration_pb(a, f->last_ns))) return NULL;
    STR_LIST(f->tenants, f->n_tenants, pf->n_tenants, pf->tenants);
    STR_LIST(f->actor_ids, f->n_actor_ids, pf->n_actor_ids, pf->actor_ids);
    STR_LIST(f->actions, f->n_actions, pf->n_actions, pf->actions);
    STR_LIST(f->resource_types, f->n_resource_types, pf->n_resource_types, pf->resource_types);
    STR_LIST(f->resource_ids, f->n_resource_ids, pf->n_resource_ids, pf->resource_ids);
    ENUM_LIST(Vigil__V1__Outcome, f->outcomes, f->n_outcomes, pf->n_outcomes, pf->outcomes);
    STR_LIST(f->actor_emails, f->n_actor_emails, pf->n_actor_emails, pf->actor_emails);
    STR_LIST(f->actor_names, f->n_actor_names, pf->n_actor_names, pf->actor_names);
    ENUM_LIST(Vigil__V1__ActorType, f->actor_types, f->n_actor_types, pf->n_actor_types, pf->actor_types);
    ENUM_LIST(Vigil__V1__Category, f->categories, f->n_categories, pf->n_categories, pf->categories);
    STR_LIST(f->resource_names, f->n_resource_names, pf->n_resource_names, pf->resource_names);
    ENUM_LIST(Vigil__V1__Outcome, f->exclude_outcomes, f->n_exclude_outcomes, pf->n_exclude_outcomes,
              pf->exclude_outcomes);
    STR_LIST(f->source_ips, f->n_source_ips, pf->n_source_ips, pf->source_ips);
    STR_LIST(f->trace_ids, f->n_trace_ids, pf->n_trace_ids, pf->trace_ids);
    STR_LIST(f->request_ids, f->n_request_ids, pf->n_request_ids, pf->request_ids);
    STR_LIST(f->metadata, f->n_metadata, pf->n_metadata, pf->metadata);
    if (f->search && *f->search) pf->search = (char *)(uintptr_t)f->search;
    return pf;
}
