/* A minimal JSON reader (a DOM) and writer, for the conformance runner, the
 * example agent and the tests: enough for events in their protobuf JSON form
 * (vigil query --format json, events.jsonl). Not part of libvigil. */
#ifndef VIGIL_TOOLS_JSON_H
#define VIGIL_TOOLS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vigil.h"

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    bool b;
    double num;
    char *str;          /* J_STR: UTF-8, NUL-terminated; J_NUM: its text */
    size_t n;           /* J_ARR / J_OBJ: items */
    struct jval *items; /* J_ARR / J_OBJ values */
    char **keys;        /* J_OBJ keys */
} jval;

/* Parses one JSON value (the whole text). 0, or -1 with err set. */
int json_parse(const char *text, size_t len, jval *out, char *err, size_t errsize);
void json_free(jval *v);
const jval *json_get(const jval *obj, const char *key);

/* The event in `obj` (protobuf JSON mapping of vigil.v1.AuditEvent; also
 * the proto field names). Strings point into obj; free the arrays with
 * json_event_free. 0, or -1 with err set. */
int json_to_event(const jval *obj, vigil_event *ev, char *err, size_t errsize);
void json_event_free(vigil_event *ev);

/* Writes a string as Python's json.dumps does (ensure_ascii). */
void json_write_str(FILE *f, const char *s);
/* Writes an event as JSON (protobuf JSON mapping). */
void json_write_event(FILE *f, const vigil_event *ev);

#endif
