/* api_changes.c - the change feed: GET /api/pools/NAME/changes (SPEC
 * "Consistency for API consumers").
 *
 *   ?since=SEQ   changes with seq > SEQ (default 0), oldest first
 *   &limit=N     at most N per answer (default 1000, max 10000)
 *   &wait=S      long-poll: when nothing is newer than SEQ, wait up to S
 *                seconds (max 60) for a change, then answer (maybe empty)
 *   Accept: text/event-stream   Server-Sent Events: one event per change,
 *                "id: SEQ", "event: change", data = the change as JSON; a
 *                browser's Last-Event-ID header resumes after that seq; a
 *                ": keepalive" comment every few seconds; "event: resync"
 *                then the end when the position fell out of retention,
 *                "event: deleted" when the pool goes away.
 * A change: {seq, sku, op: "add"|"remove", at, cause: {kind, seq|version}}.
 * 410 {"resync": true} when since is older than the retained changes.
 *
 * The changes are copied from the pool's change log on the writer
 * (engine_changes, a short memcpy between two batches); waiting is on the
 * writer's cycle counter, so a long-poll answers within one writer cycle
 * of the change. HTTP threads only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "api_changes.h"
#include "lifecycle.h"
#include "pools.h"
#include "util.h"

#define CHANGES_DEFAULT_LIMIT 1000
#define CHANGES_MAX_LIMIT 10000
#define CHANGES_MAX_WAIT_S 60
#define SSE_BATCH 500
#define SSE_KEEPALIVE_MS 5000
#define SSE_SLICE_MS 250

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || s[0] == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}


static void gone(http_resp_t *resp, uint64_t since, uint64_t retained_from) {
    json_t *o = json_object();
    char msg[200];
    snprintf(msg, sizeof msg, "changes after seq %llu are no longer retained (oldest kept: %llu); re-read the members "
             "and follow from their seq", (unsigned long long)since, (unsigned long long)retained_from);
    json_object_set_new(o, "error", json_string(msg));
    json_object_set_new(o, "resync", json_true());
    json_object_set_new(o, "retained_from", json_integer((json_int_t)retained_from));
    http_resp_json(resp, 410, o);
}

/* -- Server-Sent Events ------------------------------------------------------- */

typedef struct sse {
    api_t *api;
    char pool[80];
    uint64_t since;
    char *buf;             /* formatted, not yet sent */
    size_t len, off;
    int64_t last_sent_ms;
    bool ended;
    pool_change_t *changes;
} sse_t;

static void sse_free(void *cls) {
    sse_t *s = cls;
    free(s->buf);
    free(s->changes);
    free(s);
}

static void sse_append(sse_t *s, const char *text, size_t n) {
    s->buf = xrealloc(s->buf, s->len + n + 1);
    memcpy(s->buf + s->len, text, n);
    s->len += n;
}

/* Fills s->buf with what is due: changes, a keepalive, or an end event. */
static void sse_fill(sse_t *s) {
    engine_t *e = s->api->engine;
    int64_t deadline = wall_ms() + SSE_KEEPALIVE_MS;
    while (!http_server_stopping(s->api->server)) {
        uint64_t cycle = engine_cycle(e);
        size_t n = 0;
        uint64_t seq = 0, retained = 0;
        int st = engine_changes(e, s->pool, s->since, s->changes, SSE_BATCH, &n, &seq, &retained);
        if (st == 404 || st == 503) {
            const char *ev = st == 404 ? "event: deleted\ndata: {}\n\n" : "event: end\ndata: {}\n\n";
            sse_append(s, ev, strlen(ev));
            s->ended = true;
            return;
        }
        if (st == 410) {
            char line[160];
            int k = snprintf(line, sizeof line, "event: resync\ndata: {\"resync\":true,\"retained_from\":%llu}\n\n",
                             (unsigned long long)retained);
            sse_append(s, line, (size_t)k);
            s->ended = true;
            return;
        }
        if (n) {
            for (size_t i = 0; i < n; i++) {
                json_t *o = pool_change_json(&s->changes[i]);
                char *data = json_dumps(o, JSON_COMPACT);
                json_decref(o);
                char head[64];
                int k = snprintf(head, sizeof head, "id: %llu\nevent: change\ndata: ",
                                 (unsigned long long)s->changes[i].seq);
                sse_append(s, head, (size_t)k);
                sse_append(s, data, strlen(data));
                sse_append(s, "\n\n", 2);
                free(data);
                s->since = s->changes[i].seq;
            }
            pool_changes_free(s->changes, n);
            return;
        }
        int64_t left = deadline - wall_ms();
        if (left <= 0) {
            sse_append(s, ": keepalive\n\n", 13);
            return;
        }
        engine_wait_cycle(e, cycle, left < SSE_SLICE_MS ? (int)left : SSE_SLICE_MS);
    }
    s->ended = true;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse_t *s = cls;
    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->ended) return HTTP_STREAM_END;
        sse_fill(s);
        if (s->len == 0) return s->ended ? HTTP_STREAM_END : 0;
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

/* -- handler ---------------------------------------------------------------------- */

void api_h_changes(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    const char *pool = args[0];
    uint64_t since = 0, limit = CHANGES_DEFAULT_LIMIT, wait_s = 0;
    const char *ss = http_query(req, "since"), *ls = http_query(req, "limit"), *ws = http_query(req, "wait");
    const char *last_id = http_header(req, "Last-Event-ID");
    if (ss && *ss && parse_u64(ss, UINT64_MAX / 2, &since) != 0) {
        http_resp_error(resp, 400, "since must be a sequence number (the seq of a members page or a change), got "
                                   "\"%.40s\"", ss);
        return;
    }
    if (ls && (parse_u64(ls, CHANGES_MAX_LIMIT, &limit) != 0 || limit == 0)) {
        http_resp_error(resp, 400, "limit must be an integer from 1 to %d, got \"%.40s\"", CHANGES_MAX_LIMIT, ls);
        return;
    }
    if (ws && parse_u64(ws, CHANGES_MAX_WAIT_S, &wait_s) != 0) {
        http_resp_error(resp, 400, "wait must be a number of seconds from 0 to %d, got \"%.40s\"",
                        CHANGES_MAX_WAIT_S, ws);
        return;
    }
    const char *accept = http_header(req, "Accept");
    if (accept && strstr(accept, "text/event-stream")) {
        if (last_id && *last_id && parse_u64(last_id, UINT64_MAX / 2, &since) != 0) {
            http_resp_error(resp, 400, "Last-Event-ID must be a change seq, got \"%.40s\"", last_id);
            return;
        }
        size_t n;
        uint64_t seq, retained;
        int st = engine_changes(api->engine, pool, since, NULL, 0, &n, &seq, &retained);
        if (st == 404) {
            http_resp_error(resp, 404, "no pool named \"%s\" (GET /api/pools lists them)", pool);
            return;
        }
        if (st == 410) {
            gone(resp, since, retained);
            return;
        }
        if (st != 200) {
            http_resp_error(resp, 503, "shutting down");
            return;
        }
        sse_t *s = xcalloc(1, sizeof *s);
        s->api = api;
        snprintf(s->pool, sizeof s->pool, "%s", pool);
        s->since = since;
        s->changes = xmalloc(SSE_BATCH * sizeof *s->changes);
        /* Tell the browser how soon to reconnect, before any change. */
        sse_append(s, "retry: 2000\n\n", 13);
        http_resp_header(resp, "Cache-Control", "no-store");
        http_resp_header(resp, "X-Accel-Buffering", "no");
        http_resp_stream(resp, 200, "text/event-stream", sse_read, s, sse_free);
        return;
    }
    pool_change_t *out = xmalloc(limit * sizeof *out);
    int64_t deadline = wall_ms() + (int64_t)wait_s * 1000;
    size_t n = 0;
    uint64_t seq = 0, retained = 0;
    int st;
    for (;;) {
        uint64_t cycle = engine_cycle(api->engine);
        st = engine_changes(api->engine, pool, since, out, limit, &n, &seq, &retained);
        if (st != 200 || n > 0) break;
        int64_t left = deadline - wall_ms();
        if (left <= 0 || http_server_stopping(api->server) || http_req_client_gone(req)) break;
        engine_wait_cycle(api->engine, cycle, left < 1000 ? (int)left : 1000);
    }
    if (st == 404) {
        free(out);
        http_resp_error(resp, 404, "no pool named \"%s\" (GET /api/pools lists them)", pool);
        return;
    }
    if (st == 410) {
        free(out);
        gone(resp, since, retained);
        return;
    }
    if (st != 200) {
        free(out);
        http_resp_error(resp, 503, "shutting down");
        return;
    }
    json_t *arr = json_array();
    uint64_t next = since;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, pool_change_json(&out[i]));
        next = out[i].seq;
    }
    pool_changes_free(out, n);
    free(out);
    json_t *o = json_object();
    json_object_set_new(o, "pool", json_string(pool));
    json_object_set_new(o, "changes", arr);
    json_object_set_new(o, "next", json_integer((json_int_t)next));
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "more", json_boolean(next < seq));
    http_resp_json(resp, 200, o);
}
