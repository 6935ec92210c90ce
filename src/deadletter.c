/* deadletter.c - append-only NDJSON file of rejected lines; see deadletter.h. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deadletter.h"
#include "util.h"

struct deadletter {
    pthread_mutex_t lock;
    FILE *f;
    uint64_t count;
};

deadletter_t *deadletter_open(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(err, errlen, "cannot open dead-letter file %s: %s", path, strerror(errno));
        return NULL;
    }
    deadletter_t *dl = xcalloc(1, sizeof *dl);
    pthread_mutex_init(&dl->lock, NULL);
    dl->f = f;
    return dl;
}

void deadletter_close(deadletter_t *dl) {
    if (!dl) return;
    fclose(dl->f);
    pthread_mutex_destroy(&dl->lock);
    free(dl);
}

void deadletter_write(deadletter_t *dl, const char *source, uint64_t line, const char *reason,
                      const char *error, const char *raw, size_t rawlen) {
    bool truncated = rawlen > DEADLETTER_MAX_RAW;
    if (truncated) rawlen = DEADLETTER_MAX_RAW;
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_integer(wall_ms()));
    json_object_set_new(o, "source", json_string(source ? source : ""));
    json_object_set_new(o, "line", json_integer((json_int_t)line));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "error", json_string(error));
    /* The raw line may be invalid UTF-8: keep it byte for byte when valid,
     * else as \u00XX-escaped latin-1 so the record stays valid JSON. */
    json_t *r = json_stringn(raw, rawlen);
    if (!r) {
        char *esc = xmalloc(rawlen * 2 + 1);
        size_t n = 0;
        for (size_t i = 0; i < rawlen; i++) {
            unsigned char c = (unsigned char)raw[i];
            if (c < 0x80) esc[n++] = (char)c;
            else {
                esc[n++] = (char)(0xC0 | (c >> 6));
                esc[n++] = (char)(0x80 | (c & 0x3F));
            }
        }
        r = json_stringn(esc, n);
        free(esc);
        json_object_set_new(o, "raw_recoded", json_true());
    }
    json_object_set_new(o, "raw", r ? r : json_string(""));
    if (truncated) json_object_set_new(o, "raw_truncated", json_true());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    pthread_mutex_lock(&dl->lock);
    if (text) {
        fputs(text, dl->f);
        fputc('\n', dl->f);
        fflush(dl->f);
    }
    dl->count++;
    pthread_mutex_unlock(&dl->lock);
    free(text);
}

uint64_t deadletter_count(deadletter_t *dl) {
    pthread_mutex_lock(&dl->lock);
    uint64_t n = dl->count;
    pthread_mutex_unlock(&dl->lock);
    return n;
}
