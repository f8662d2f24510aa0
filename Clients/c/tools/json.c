#define _GNU_SOURCE
#include "json.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *start, *p, *end;
    char *err;
    size_t errsize;
    int depth;
} parser;

static int fail(parser *ps, const char *what) {
    snprintf(ps->err, ps->errsize, "%s at offset %td", what, ps->p - ps->start);
    return -1;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return fail(ps, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *ps->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return fail(ps, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int parse_string(parser *ps, char **out) {
    ps->p++; /* the quote */
    const char *start = ps->p;
    /* The decoded text is never longer than the source. */
    size_t cap = 0;
    while (start + cap < ps->end && start[cap] != '"') cap += start[cap] == '\\' ? 2 : 1;
    char *buf = malloc(cap + 1), *o = buf;
    if (!buf) return fail(ps, "out of memory");
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) {
            free(buf);
            return fail(ps, "control character in string");
        }
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (ps->p >= ps->end) break;
        char e = *ps->p++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (hex4(ps, &cp) != 0) {
                free(buf);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                ps->p += 2;
                uint32_t lo;
                if (hex4(ps, &lo) != 0) {
                    free(buf);
                    return -1;
                }
                if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else cp = 0xFFFD;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            free(buf);
            return fail(ps, "bad escape");
        }
    }
    if (ps->p >= ps->end) {
        free(buf);
        return fail(ps, "unterminated string");
    }
    ps->p++;
    *o = 0;
    *out = buf;
    return 0;
}

static int parse_value(parser *ps, jval *v);

static int push(jval **items, size_t *n, size_t *cap, char ***keys, char *key, jval *val) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        jval *ni = realloc(*items, nc * sizeof *ni);
        if (!ni) return -1;
        *items = ni;
        if (keys) {
            char **nk = realloc(*keys, nc * sizeof *nk);
            if (!nk) return -1;
            *keys = nk;
        }
        *cap = nc;
    }
    (*items)[*n] = *val;
    if (keys) (*keys)[*n] = key;
    (*n)++;
    return 0;
}

static int parse_value(parser *ps, jval *v) {
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    if (++ps->depth > 64) return fail(ps, "nested too deeply");
    char c = *ps->p;
    int rc = 0;
    if (c == '"') {
        v->type = J_STR;
        rc = parse_string(ps, &v->str);
    } else if (c == '{' || c == '[') {
        bool obj = c == '{';
        v->type = obj ? J_OBJ : J_ARR;
        ps->p++;
        size_t cap = 0;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
            ps->p++;
        } else {
            for (;;) {
                char *key = NULL;
                skip_ws(ps);
                if (obj) {
                    if (ps->p >= ps->end || *ps->p != '"') {
                        rc = fail(ps, "expected a key");
                        break;
                    }
                    if ((rc = parse_string(ps, &key)) != 0) break;
                    skip_ws(ps);
                    if (ps->p >= ps->end || *ps->p != ':') {
                        free(key);
                        rc = fail(ps, "expected ':'");
                        break;
                    }
                    ps->p++;
                }
                jval item;
                if ((rc = parse_value(ps, &item)) != 0) {
                    free(key);
                    json_free(&item);
                    break;
                }
                if (push(&v->items, &v->n, &cap, obj ? &v->keys : NULL, key, &item) != 0) {
                    free(key);
                    json_free(&item);
                    rc = fail(ps, "out of memory");
                    break;
                }
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    continue;
                }
                if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
                    ps->p++;
                    break;
                }
                rc = fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
                break;
            }
        }
    } else if (c == 't' && ps->end - ps->p >= 4 && memcmp(ps->p, "true", 4) == 0) {
        v->type = J_BOOL;
        v->b = true;
        ps->p += 4;
    } else if (c == 'f' && ps->end - ps->p >= 5 && memcmp(ps->p, "false", 5) == 0) {
        v->type = J_BOOL;
        ps->p += 5;
    } else if (c == 'n' && ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
        v->type = J_NULL;
        ps->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = ps->p;
        while (ps->p < ps->end && strchr("+-0123456789.eE", *ps->p)) ps->p++;
        v->type = J_NUM;
        v->str = strndup(s, (size_t)(ps->p - s));
        if (!v->str) return fail(ps, "out of memory");
        char *endp;
        v->num = strtod(v->str, &endp);
        if (*endp) rc = fail(ps, "bad number");
    } else {
        rc = fail(ps, "unexpected character");
    }
    ps->depth--;
    return rc;
}

int json_parse(const char *text, size_t len, jval *out, char *err, size_t errsize) {
    parser ps = {.start = text, .p = text, .end = text + len, .err = err, .errsize = errsize};
    int rc = parse_value(&ps, out);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end) rc = fail(&ps, "trailing text");
    }
    if (rc != 0) json_free(out);
    return rc;
}

void json_free(jval *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const jval *json_get(const jval *obj, const char *key) {
    if (!obj || obj->type != J_OBJ) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

/* ---- events ---- */

static const jval *get2(const jval *obj, const char *camel, const char *snake) {
    const jval *v = json_get(obj, camel);
    return v ? v : json_get(obj, snake);
}

static int str_field(const jval *obj, const char *camel, const char *snake, const char **out, char *err,
                     size_t errsize) {
    const jval *v = get2(obj, camel, snake);
    if (!v || v->type == J_NULL) return 0;
    if (v->type != J_STR) {
        snprintf(err, errsize, "%s: expected a string", camel);
        return -1;
    }
    *out = v->str;
    return 0;
}

static int enum_field(const jval *obj, const char *key, const char *const *names, int count, int *out, char *err,
                      size_t errsize) {
    const jval *v = json_get(obj, key);
    if (!v || v->type == J_NULL) return 0;
    if (v->type == J_NUM) {
        *out = (int)v->num;
        return 0;
    }
    if (v->type == J_STR) {
        for (int i = 0; i < count; i++)
            if (names[i] && strcmp(v->str, names[i]) == 0) {
                *out = i;
                return 0;
            }
    }
    snprintf(err, errsize, "%s: unknown value", key);
    return -1;
}

static const char *const actor_types[] = {"ACTOR_TYPE_UNSPECIFIED", "USER", "SERVICE", "API_TOKEN", "SYSTEM",
                                          "ANONYMOUS"};
static const char *const categories[] = {"CATEGORY_UNSPECIFIED", "CREATE", "READ",    "UPDATE", "DELETE", "LOGIN",
                                         "LOGOUT",               "EXECUTE", "APPROVE", "REJECT", "OTHER"};
static const char *const outcomes[] = {"OUTCOME_UNSPECIFIED", "SUCCESS", "FAILURE", "DENIED"};

static int resource(const jval *v, vigil_resource *r, char *err, size_t errsize) {
    if (v->type != J_OBJ) {
        snprintf(err, errsize, "resource: expected an object");
        return -1;
    }
    return str_field(v, "type", "type", &r->type, err, errsize) | str_field(v, "id", "id", &r->id, err, errsize) |
           str_field(v, "name", "name", &r->name, err, errsize);
}

int json_to_event(const jval *o, vigil_event *ev, char *err, size_t errsize) {
    memset(ev, 0, sizeof *ev);
    if (!o || o->type != J_OBJ) {
        snprintf(err, errsize, "an event must be a JSON object");
        return -1;
    }
    const char *t = NULL;
    if (str_field(o, "occurredAt", "occurred_at", &t, err, errsize)) return -1;
    if (t && vigil_parse_time(t, &ev->occurred_at_ns) != VIGIL_OK) {
        snprintf(err, errsize, "occurredAt: not an RFC 3339 time: %s", t);
        return -1;
    }
    int e = 0;
    e |= str_field(o, "id", "id", &ev->id, err, errsize);
    e |= str_field(o, "tenant", "tenant", &ev->tenant, err, errsize);
    e |= str_field(o, "action", "action", &ev->action, err, errsize);
    e |= str_field(o, "reason", "reason", &ev->reason, err, errsize);
    e |= str_field(o, "sourceIp", "source_ip", &ev->source_ip, err, errsize);
    e |= str_field(o, "userAgent", "user_agent", &ev->user_agent, err, errsize);
    e |= str_field(o, "traceId", "trace_id", &ev->trace_id, err, errsize);
    e |= str_field(o, "requestId", "request_id", &ev->request_id, err, errsize);
    e |= str_field(o, "description", "description", &ev->description, err, errsize);
    int v = 0;
    if (e || enum_field(o, "category", categories, 11, &v, err, errsize)) return -1;
    ev->category = (vigil_category)v;
    v = 0;
    if (enum_field(o, "outcome", outcomes, 4, &v, err, errsize)) return -1;
    ev->outcome = (vigil_outcome)v;
    const jval *a = json_get(o, "actor");
    if (a && a->type == J_OBJ) {
        v = 0;
        if (str_field(a, "id", "id", &ev->actor.id, err, errsize) ||
            str_field(a, "name", "name", &ev->actor.name, err, errsize) ||
            str_field(a, "email", "email", &ev->actor.email, err, errsize) ||
            enum_field(a, "type", actor_types, 6, &v, err, errsize))
            return -1;
        ev->actor.type = (vigil_actor_type)v;
    }
    const jval *r = json_get(o, "resource");
    if (r && r->type != J_NULL && resource(r, &ev->resource, err, errsize)) return -1;
    const jval *ts = json_get(o, "targets");
    if (ts && ts->type == J_ARR && ts->n) {
        vigil_resource *arr = calloc(ts->n, sizeof *arr);
        if (!arr) return -1;
        ev->targets = arr;
        ev->n_targets = ts->n;
        for (size_t i = 0; i < ts->n; i++)
            if (resource(&ts->items[i], &arr[i], err, errsize)) return -1;
    }
    const jval *cs = json_get(o, "changes");
    if (cs && cs->type == J_ARR && cs->n) {
        vigil_change *arr = calloc(cs->n, sizeof *arr);
        if (!arr) return -1;
        ev->changes = arr;
        ev->n_changes = cs->n;
        for (size_t i = 0; i < cs->n; i++) {
            const jval *c = &cs->items[i];
            if (c->type != J_OBJ || str_field(c, "field", "field", &arr[i].field, err, errsize) ||
                str_field(c, "old", "old", &arr[i].old_value, err, errsize) ||
                str_field(c, "new", "new", &arr[i].new_value, err, errsize))
                return -1;
        }
    }
    const jval *m = json_get(o, "metadata");
    if (m && m->type == J_OBJ && m->n) {
        vigil_kv *arr = calloc(m->n, sizeof *arr);
        if (!arr) return -1;
        ev->metadata = arr;
        ev->n_metadata = m->n;
        for (size_t i = 0; i < m->n; i++) {
            if (m->items[i].type != J_STR) {
                snprintf(err, errsize, "metadata: values must be strings");
                return -1;
            }
            arr[i].key = m->keys[i];
            arr[i].value = m->items[i].str;
        }
    }
    return 0;
}

void json_event_free(vigil_event *ev) {
    free((void *)(uintptr_t)ev->targets);
    free((void *)(uintptr_t)ev->changes);
    free((void *)(uintptr_t)ev->metadata);
    ev->targets = NULL;
    ev->changes = NULL;
    ev->metadata = NULL;
}

/* ---- writing ---- */

void json_write_str(FILE *f, const char *s) {
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            p++;
        } else if (c == '\n') {
            fputs("\\n", f);
            p++;
        } else if (c == '\r') {
            fputs("\\r", f);
            p++;
        } else if (c == '\t') {
            fputs("\\t", f);
            p++;
        } else if (c == '\b') {
            fputs("\\b", f);
            p++;
        } else if (c == '\f') {
            fputs("\\f", f);
            p++;
        } else if (c >= 0x20 && c < 0x7f) {
            fputc(c, f);
            p++;
        } else {
            uint32_t cp = c;
            size_t len = 1;
            if (c >= 0xF0 && p[1] && p[2] && p[3]) {
                cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 |
                     (p[3] & 0x3F);
                len = 4;
            } else if (c >= 0xE0 && p[1] && p[2]) {
                cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
                len = 3;
            } else if (c >= 0xC0 && p[1]) {
                cp = (uint32_t)(c & 0x1F) << 6 | (p[1] & 0x3F);
                len = 2;
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                fprintf(f, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                fprintf(f, "\\u%04x", cp);
            }
            p += len;
        }
    }
    fputc('"', f);
}

static void kv_str(FILE *f, bool *first, const char *key, const char *value) {
    if (!value || !*value) return;
    fprintf(f, "%s\"%s\":", *first ? "" : ",", key);
    json_write_str(f, value);
    *first = false;
}

static void kv_time(FILE *f, bool *first, const char *key, int64_t ns) {
    if (!ns) return;
    char buf[64];
    vigil_format_time(ns, buf, sizeof buf);
    kv_str(f, first, key, buf);
}

static void write_resource(FILE *f, const vigil_resource *r) {
    bool first = true;
    fputc('{', f);
    kv_str(f, &first, "type", r->type);
    kv_str(f, &first, "id", r->id);
    kv_str(f, &first, "name", r->name);
    fputc('}', f);
}

void json_write_event(FILE *f, const vigil_event *e) {
    bool first = true;
    fputc('{', f);
    kv_str(f, &first, "id", e->id);
    if (e->seq) {
        fprintf(f, "%s\"seq\":\"%" PRIu64 "\"", first ? "" : ",", e->seq);
        first = false;
    }
    kv_time(f, &first, "occurredAt", e->occurred_at_ns);
    kv_time(f, &first, "receivedAt", e->received_at_ns);
    kv_str(f, &first, "tenant", e->tenant);
    if ((e->actor.id && *e->actor.id) || e->actor.type || (e->actor.name && *e->actor.name) ||
        (e->actor.email && *e->actor.email)) {
        fprintf(f, "%s\"actor\":{", first ? "" : ",");
        first = false;
        bool af = true;
        kv_str(f, &af, "id", e->actor.id);
        if (e->actor.type > 0 && e->actor.type <= 5) kv_str(f, &af, "type", actor_types[e->actor.type]);
        kv_str(f, &af, "name", e->actor.name);
        kv_str(f, &af, "email", e->actor.email);
        fputc('}', f);
    }
    kv_str(f, &first, "action", e->action);
    if (e->category > 0 && e->category <= 10) kv_str(f, &first, "category", categories[e->category]);
    if ((e->resource.type && *e->resource.type) || (e->resource.id && *e->resource.id) ||
        (e->resource.name && *e->resource.name)) {
        fprintf(f, "%s\"resource\":", first ? "" : ",");
        first = false;
        write_resource(f, &e->resource);
    }
    if (e->n_targets) {
        fprintf(f, "%s\"targets\":[", first ? "" : ",");
        first = false;
        for (size_t i = 0; i < e->n_targets; i++) {
            if (i) fputc(',', f);
            write_resource(f, &e->targets[i]);
        }
        fputc(']', f);
    }
    if (e->outcome > 0 && e->outcome <= 3) kv_str(f, &first, "outcome", outcomes[e->outcome]);
    kv_str(f, &first, "reason", e->reason);
    kv_str(f, &first, "sourceIp", e->source_ip);
    kv_str(f, &first, "userAgent", e->user_agent);
    kv_str(f, &first, "traceId", e->trace_id);
    kv_str(f, &first, "requestId", e->request_id);
    if (e->n_changes) {
        fprintf(f, "%s\"changes\":[", first ? "" : ",");
        first = false;
        for (size_t i = 0; i < e->n_changes; i++) {
            bool cf = true;
            fputs(i ? ",{" : "{", f);
            kv_str(f, &cf, "field", e->changes[i].field);
            kv_str(f, &cf, "old", e->changes[i].old_value);
            kv_str(f, &cf, "new", e->changes[i].new_value);
            fputc('}', f);
        }
        fputc(']', f);
    }
    if (e->n_metadata) {
        fprintf(f, "%s\"metadata\":{", first ? "" : ",");
        first = false;
        for (size_t i = 0; i < e->n_metadata; i++) {
            if (i) fputc(',', f);
            json_write_str(f, e->metadata[i].key);
            fputc(':', f);
            json_write_str(f, e->metadata[i].value);
        }
        fputc('}', f);
    }
    kv_str(f, &first, "description", e->description);
    fputc('}', f);
}
