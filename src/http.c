/* http.c - the HTTP server layer on libmicrohttpd 0.9.75; see http.h.
 *
 * Owns the MHD daemon, the route table (a copy), per-connection state,
 * request bodies, response construction, the limits (body -> 413,
 * connections -> 503) and the counters. No poold logic.
 *
 * Threads: MHD_USE_THREAD_PER_CONNECTION + an internal accept thread. A
 * handler that blocks (long-poll) holds only its own connection; threads are
 * bounded by the connection limit. A thread pool was rejected: MHD's pool
 * threads each serve many connections, so one blocked handler would stall
 * the others. `threads` in http_config_t is therefore unused.
 *
 * Per-connection state (http_conn_t) is made when MHD accepts a socket and
 * freed when it closes. MHD handles one request at a time per connection
 * (pipelined requests wait their turn), so the raw path, captures, body,
 * JSON output and response headers live in buffers of the connection that
 * are reused across keep-alive requests (shrunk after a large one): on our
 * side no allocation per request once warm; MHD allocates the response.
 *
 * One request: URI-log callback (raw URI, before MHD decodes it; resets the
 * request state) -> first access call: route on the raw path, check limits
 * -> body chunks appended (presized from Content-Length up to 4 MiB, then
 * doubling, never past the limit) -> last call: handler, response with X-Took-Us. MHD 0.9.75
 * closes the connection if a response is queued before the request is
 * complete, so 404/405 for a bodiless request are answered on the last call
 * (keep-alive survives) and only errors that must cut the body short (413 by
 * Content-Length, 503) are answered at once. It cannot queue a response while
 * body data is arriving, so a chunked body that passes the limit is read and
 * dropped (not kept) and answered 413 at its end; past twice the limit (at
 * least 1 MiB more) the connection is closed instead.
 *
 * Invariants: c->resp owns at most one body (freed or handed to MHD); every
 * first access call (inflight++) is paired with one completion (inflight--). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "http.h"
#include "util.h"

#define HTTP_DEFAULT_MAX_BODY (1u << 20)
#define HTTP_DEFAULT_MAX_INFLIGHT ((size_t)128 << 20)
#define HTTP_DEFAULT_MAX_CONN 256u
#define HTTP_DEFAULT_TIMEOUT_S 30u
#define HTTP_CONN_MEMORY (64u * 1024u)   /* MHD pool per connection: headers + read/write buffers */
#define HTTP_CONN_MEMORY_INCR (8u * 1024u)
#define HTTP_STREAM_BLOCK (16u * 1024u)
#define HTTP_SHRINK_ABOVE (256u * 1024u) /* per-connection buffers larger than this are freed after use */
#define HTTP_DRAIN_MIN (1u << 20)
#define HTTP_PRESIZE_MAX (4u << 20)      /* body buffer presized from Content-Length up to this */
#define HTTP_STOP_DRAIN_NS (5000000000ull)
#define HTTP_ERROR_MAX 1000

/* -- Buffers --------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t need) {
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 4096;
    if (cap < need) cap = need;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_append(buf_t *b, const void *p, size_t n) {
    buf_reserve(b, b->len + n + 1);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_shrink(buf_t *b, size_t above) {
    if (b->cap > above) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    b->len = 0;
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* -- Types ----------------------------------------------------------------- */

typedef enum { RESP_NONE, RESP_OUT, RESP_TAKE, RESP_STATIC, RESP_STREAM } resp_kind_t;

typedef struct http_conn http_conn_t;

struct http_resp {
    http_conn_t *c;
    int status;
    resp_kind_t kind;
    bool json;          /* application/json + Cache-Control: no-store */
    bool has_cache_ctl; /* the handler set its own Cache-Control */
    bool close;         /* Connection: close */
    const void *data;   /* RESP_STATIC */
    char *owned;        /* RESP_TAKE */
    size_t len;         /* RESP_OUT (in c->out), RESP_TAKE, RESP_STATIC */
    http_reader_fn reader; /* RESP_STREAM */
    void *cls;
    void (*free_cls)(void *);
    size_t nhdr;        /* headers in c->hdr as "name\0value\0" pairs */
};

typedef enum { REQ_NEW, REQ_BODY, REQ_DRAIN, REQ_PENDING, REQ_DONE } req_phase_t;

struct http_conn {
    http_server_t *s;
    struct MHD_Connection *mc;
    int fd;
    struct http_conn *next_live, *prev_live; /* s->live list (s->live_lock) */
    int64_t waiting_since_ms; /* waiting for a request's headers since; 0 = not waiting (s->live_lock) */
    bool over_limit; /* accepted past max_connections: answered 503 */
    char addr[INET6_ADDRSTRLEN];
    req_phase_t phase;
    bool inflight;   /* counted in s->inflight until completion */
    size_t reserved; /* body bytes counted in s->body_inflight */
    bool over_budget; /* the body did not fit the in-flight budget: answer 503 */
    int route;
    size_t limit;
    uint64_t drained; /* body bytes seen once past the limit */
    buf_t raw;        /* raw path (no query) */
    buf_t argbuf;
    const char *args[HTTP_MAX_ARGS + 1];
    buf_t body;
    buf_t out;        /* JSON / copied text bodies */
    buf_t hdr;        /* response headers */
    buf_t ctype;      /* response content type */
    http_resp_t resp;
};

struct http_server {
    struct MHD_Daemon *d;
    http_route_t *routes;
    size_t nroutes;
    void *app;
    size_t max_body;
    size_t max_inflight;      /* request body bytes held at once, all connections */
    /* Slow headers: a connection must deliver a request's headers within
     * header_timeout_ms of opening (or of its previous request), however
     * slowly it trickles bytes; the reaper shuts the socket down after. */
    pthread_mutex_t live_lock;
    http_conn_t *live;
    int64_t header_timeout_ms;
    pthread_t reaper;
    bool reaper_running;
    int reaper_stop;          /* atomic */
    uint64_t body_inflight;   /* atomic */
    unsigned max_conn;
    int port;
    http_observe_fn observer; /* atomic */
    http_guard_fn guard;      /* atomic */
    int stopping;             /* atomic */
    uint64_t inflight;        /* atomic */
    int64_t log_sec;          /* atomic: MHD log rate limiting */
    uint32_t log_count;       /* atomic */
    http_stats_t st;          /* atomic fields */
};

#define ATOMIC_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define ATOMIC_SUB(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)
#define ATOMIC_GET(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* -- Path matching (pure) -------------------------------------------------- */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes one byte at src[*i] (an escape if valid), advancing *i. */
static char decode_at(const char *src, size_t len, size_t *i) {
    size_t k = *i;
    if (src[k] == '%' && k + 2 < len) {
        int h = hexval(src[k + 1]), l = hexval(src[k + 2]);
        if (h >= 0 && l >= 0) {
            *i = k + 3;
            return (char)(h * 16 + l);
        }
    }
    *i = k + 1;
    return src[k];
}

size_t http_percent_decode(char *dst, const char *src, size_t len) {
    size_t i = 0, j = 0;
    while (i < len) dst[j++] = decode_at(src, len, &i); /* j <= i: in place is fine */
    return j;
}

/* Decoded raw segment q[0..qn) equals literal lit[0..ln)? */
static bool seg_eq(const char *q, size_t qn, const char *lit, size_t ln) {
    size_t i = 0, j = 0;
    while (i < qn) {
        char ch = decode_at(q, qn, &i);
        if (j >= ln || lit[j] != ch) return false;
        j++;
    }
    return j == ln;
}

/* Does q[0..qn) decode to something containing NUL? A '%' is never consumed
 * as a hex digit of an earlier escape, so every "%00" decodes to NUL. */
static bool seg_has_nul(const char *q, size_t qn) {
    for (size_t i = 0; i + 2 < qn; i++)
        if (q[i] == '%' && q[i + 1] == '0' && q[i + 2] == '0') return true;
    return false;
}

/* Structural match of one pattern against a raw path; raw capture ranges
 * out in cp/cn (HTTP_MAX_ARGS slots), count in *nc. */
static bool match_one(const char *pat, const char *path, const char **cp, size_t *cn, int *nc) {
    int k = 0;
    if (!pat || pat[0] != '/' || path[0] != '/') return false;
    const char *p = pat, *q = path;
    for (;;) {
        p++;
        q++; /* past '/' */
        size_t pn = strcspn(p, "/");
        if (pn == 1 && p[0] == '*' && p[1] == '\0') { /* trailing wildcard: the rest */
            size_t qn = strlen(q);
            if (k == HTTP_MAX_ARGS || seg_has_nul(q, qn)) return false;
            cp[k] = q;
            cn[k++] = qn;
            *nc = k;
            return true;
        }
        size_t qn = strcspn(q, "/");
        if (p[0] == ':') {
            if (qn == 0 || k == HTTP_MAX_ARGS || seg_has_nul(q, qn)) return false;
            cp[k] = q;
            cn[k++] = qn;
        } else if (!seg_eq(q, qn, p, pn)) {
            return false;
        }
        p += pn;
        q += qn;
        if (*p == '\0' || *q == '\0') {
            *nc = k;
            return *p == '\0' && *q == '\0';
        }
    }
}

int http_route_match(const http_route_t *routes, size_t n, const char *method, const char *path,
                     const char **args, char *argbuf, size_t argbuf_len, int *method_mismatch) {
    const char *cp[HTTP_MAX_ARGS];
    size_t cn[HTTP_MAX_ARGS];
    int nc = 0, mismatch = 0;
    if (args) args[0] = NULL;
    if (method_mismatch) *method_mismatch = 0;
    if (!routes || !method || !path) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!match_one(routes[i].pattern, path, cp, cn, &nc)) continue;
        if (!routes[i].method || strcmp(routes[i].method, method) != 0) {
            mismatch = 1;
            continue;
        }
        size_t need = 0;
        for (int k = 0; k < nc; k++) need += cn[k] + 1;
        if (need > argbuf_len || (nc > 0 && (!args || !argbuf))) return -2;
        char *w = argbuf;
        for (int k = 0; k < nc; k++) {
            args[k] = w;
            w += http_percent_decode(w, cp[k], cn[k]);
            *w++ = '\0';
        }
        if (args) args[nc] = NULL;
        return (int)i;
    }
    if (method_mismatch) *method_mismatch = mismatch;
    return -1;
}

/* Adds m to the Allow list unless it is there already. */
static void allow_add(const char **seen, size_t *nseen, size_t max, const char *m, char *buf, size_t len,
                      size_t *w) {
    for (size_t j = 0; j < *nseen; j++)
        if (strcmp(seen[j], m) == 0) return;
    if (*nseen == max) return;
    seen[(*nseen)++] = m;
    if (len > *w + 1) {
        int r = snprintf(buf + *w, len - *w, "%s%s", *w ? ", " : "", m);
        if (r > 0) *w = (size_t)r >= len - *w ? len - 1 : *w + (size_t)r;
    }
}

size_t http_route_allow(const http_route_t *routes, size_t n, const char *path, char *buf, size_t len) {
    const char *cp[HTTP_MAX_ARGS];
    size_t cn[HTTP_MAX_ARGS];
    const char *seen[32];
    size_t nseen = 0, w = 0;
    int nc;
    if (len) buf[0] = '\0';
    if (!routes || !path) return 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = routes[i].method;
        if (!m || !match_one(routes[i].pattern, path, cp, cn, &nc)) continue;
        allow_add(seen, &nseen, 32, m, buf, len, &w);
        if (strcmp(m, "GET") == 0) allow_add(seen, &nseen, 32, "HEAD", buf, len, &w);
    }
    return nseen;
}

int http_pattern_check(const char *pattern, char *err, size_t errlen) {
    int caps = 0;
    if (!pattern || pattern[0] != '/') {
        snprintf(err, errlen, "pattern must start with '/'");
        return -1;
    }
    if (strcmp(pattern, "/") == 0) return 0;
    for (const char *p = pattern; *p;) {
        p++;
        size_t pn = strcspn(p, "/");
        if (pn == 0) {
            snprintf(err, errlen, "pattern %s has an empty segment", pattern);
            return -1;
        }
        if (memchr(p, '*', pn)) {
            if (pn != 1 || p[1] != '\0') {
                snprintf(err, errlen, "pattern %s: '*' must be the whole last segment", pattern);
                return -1;
            }
            caps++;
        } else if (p[0] == ':') {
            if (pn == 1) {
                snprintf(err, errlen, "pattern %s: capture without a name", pattern);
                return -1;
            }
            caps++;
        } else if (memchr(p, '%', pn) || memchr(p, '?', pn) || memchr(p, '#', pn)) {
            snprintf(err, errlen, "pattern %s: literal segments are plain text ('%%', '?', '#' not allowed)",
                     pattern);
            return -1;
        }
        p += pn;
    }
    if (caps > HTTP_MAX_ARGS) {
        snprintf(err, errlen, "pattern %s has more than %d captures", pattern, HTTP_MAX_ARGS);
        return -1;
    }
    return 0;
}

/* -- Responses ------------------------------------------------------------- */

/* Frees the body the response owns (not its headers). */
static void resp_body_clear(http_resp_t *r) {
    if (r->kind == RESP_TAKE) free(r->owned);
    else if (r->kind == RESP_STREAM && r->free_cls) r->free_cls(r->cls);
    r->kind = RESP_NONE;
    r->owned = NULL;
    r->data = NULL;
    r->len = 0;
    r->reader = NULL;
    r->cls = NULL;
    r->free_cls = NULL;
    r->json = false;
}

static void resp_reset(http_conn_t *c) {
    resp_body_clear(&c->resp);
    c->resp.c = c;
    c->resp.status = 0;
    c->resp.nhdr = 0;
    c->resp.has_cache_ctl = false;
    c->resp.close = false;
    c->hdr.len = 0;
    c->ctype.len = 0;
}

static void resp_set_ctype(http_resp_t *r, const char *ct) {
    r->c->ctype.len = 0;
    buf_append(&r->c->ctype, ct ? ct : "application/octet-stream", strlen(ct ? ct : "application/octet-stream"));
}

static int out_append_cb(const char *p, size_t n, void *data) {
    buf_append(data, p, n);
    return 0;
}

void http_resp_json(http_resp_t *r, int status, json_t *body) {
    if (!r) {
        json_decref(body);
        return;
    }
    if (!body) {
        http_resp_error(r, 500, "internal error: the handler produced no JSON");
        return;
    }
    resp_body_clear(r);
    buf_t *o = &r->c->out;
    o->len = 0;
    int rc = json_dump_callback(body, out_append_cb, o, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (rc != 0) {
        http_resp_error(r, 500, "internal error: JSON encoding failed");
        return;
    }
    r->kind = RESP_OUT;
    r->status = status;
    r->len = o->len;
    r->json = true;
}

void http_resp_text(http_resp_t *r, int status, const char *content_type, const char *text, size_t len) {
    if (!r) return;
    resp_body_clear(r);
    r->c->out.len = 0;
    buf_append(&r->c->out, text, text ? len : 0);
    r->kind = RESP_OUT;
    r->status = status;
    r->len = r->c->out.len;
    resp_set_ctype(r, content_type);
}

void http_resp_take(http_resp_t *r, int status, const char *content_type, char *buf, size_t len) {
    if (!r) {
        free(buf);
        return;
    }
    resp_body_clear(r);
    r->kind = RESP_TAKE;
    r->status = status;
    r->owned = buf;
    r->len = buf ? len : 0;
    resp_set_ctype(r, content_type);
}

void http_resp_static(http_resp_t *r, int status, const char *content_type, const void *data, size_t len) {
    if (!r) return;
    resp_body_clear(r);
    r->kind = RESP_STATIC;
    r->status = status;
    r->data = data ? data : "";
    r->len = data ? len : 0;
    resp_set_ctype(r, content_type);
}

void http_resp_stream(http_resp_t *r, int status, const char *content_type, http_reader_fn reader,
                      void *cls, void (*free_cls)(void *)) {
    if (!r) {
        if (free_cls) free_cls(cls);
        return;
    }
    if (!reader) {
        if (free_cls) free_cls(cls);
        http_resp_error(r, 500, "internal error: stream without a reader");
        return;
    }
    resp_body_clear(r);
    r->kind = RESP_STREAM;
    r->status = status;
    r->reader = reader;
    r->cls = cls;
    r->free_cls = free_cls;
    resp_set_ctype(r, content_type);
}

/* Replaces, in place, the bytes of s that do not form UTF-8 sequences by
 * '?' (ascii_only: every byte >= 0x80), so json_string accepts it. */
static void utf8_sanitize(char *s, bool ascii_only) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        if (ascii_only) {
            if (*p >= 0x80) *p = '?';
            p++;
            continue;
        }
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        int ok = n > 0;
        for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xC0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static void resp_verror(http_resp_t *r, int status, const char *fmt, va_list ap) {
    char msg[HTTP_ERROR_MAX + 4];
    int n = vsnprintf(msg, sizeof msg - 3, fmt, ap);
    if (n >= (int)sizeof msg - 3) memcpy(msg + sizeof msg - 4, "...", 4);
    json_t *o = json_object();
    json_t *str = json_string(msg);
    for (int pass = 0; !str && pass < 2; pass++) { /* jansson also refuses overlong forms */
        utf8_sanitize(msg, pass == 1);
        str = json_string(msg);
    }
    json_object_set_new(o, "error", str ? str : json_string("error"));
    http_resp_json(r, status, o);
}

void http_resp_error(http_resp_t *r, int status, const char *fmt, ...) {
    if (!r) return;
    va_list ap;
    va_start(ap, fmt);
    resp_verror(r, status, fmt, ap);
    va_end(ap);
}

void http_resp_header(http_resp_t *r, const char *name, const char *value) {
    if (!r || !name || !value) return;
    if (strcasecmp(name, "Cache-Control") == 0) r->has_cache_ctl = true;
    buf_append(&r->c->hdr, name, strlen(name) + 1);
    buf_append(&r->c->hdr, value, strlen(value) + 1);
    r->nhdr++;
}

/* -- Streams --------------------------------------------------------------- */

typedef struct stream_ctx {
    http_server_t *s;
    int fd;
    http_reader_fn reader;
    void *cls;
    void (*free_cls)(void *);
} stream_ctx_t;

/* Has the peer closed its side (or the socket failed)? Waits up to ms. */
static bool fd_gone(int fd, int ms) {
    if (fd < 0) return false;
    struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
    int r = poll(&pfd, 1, ms);
    return r > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static ssize_t stream_read(void *p, uint64_t pos, char *buf, size_t max) {
    stream_ctx_t *x = p;
    for (;;) {
        ssize_t n = x->reader(x->cls, pos, buf, max);
        if (n > 0) {
            if ((size_t)n > max) return MHD_CONTENT_READER_END_WITH_ERROR;
            ATOMIC_ADD(&x->s->st.bytes_out, (uint64_t)n);
            return n;
        }
        if (n == HTTP_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
        if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (__atomic_load_n(&x->s->stopping, __ATOMIC_ACQUIRE)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (fd_gone(x->fd, 10)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *p) {
    stream_ctx_t *x = p;
    if (x->free_cls) x->free_cls(x->cls);
    free(x);
}

/* -- Sending --------------------------------------------------------------- */

/* Queues c->resp (handing its body to MHD); took_ns >= 0 adds X-Took-Us. */
static enum MHD_Result resp_send(http_conn_t *c, int64_t took_ns) {
    http_server_t *s = c->s;
    http_resp_t *r = &c->resp;
    struct MHD_Response *mr = NULL;
    if (r->status < 100 || r->status > 599) {
        log_warn("http: handler for %s answered status %d; sending 500", c->raw.p ? c->raw.p : "?", r->status);
        http_resp_error(r, 500, "internal error: invalid status %d", r->status);
    }
    switch (r->kind) {
    case RESP_NONE:
    case RESP_OUT:
        mr = MHD_create_response_from_buffer(r->kind == RESP_OUT ? r->len : 0,
                                             r->kind == RESP_OUT ? c->out.p : (void *)"",
                                             MHD_RESPMEM_PERSISTENT);
        break;
    case RESP_STATIC:
        mr = MHD_create_response_from_buffer(r->len, (void *)r->data, MHD_RESPMEM_PERSISTENT);
        break;
    case RESP_TAKE:
        mr = MHD_create_response_from_buffer(r->len, r->owned ? r->owned : (void *)"",
                                             r->owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (mr) r->owned = NULL;
        break;
    case RESP_STREAM: {
        stream_ctx_t *x = xmalloc(sizeof *x);
        *x = (stream_ctx_t){s, c->fd, r->reader, r->cls, r->free_cls};
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read, x, stream_free);
        if (mr) r->free_cls = NULL; /* now stream_free's job */
        else free(x);
        break;
    }
    }
    if (!mr) {
        log_error("http: cannot create a response");
        resp_reset(c);
        return MHD_NO;
    }
    if (r->json) {
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (!r->has_cache_ctl) MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    } else if (c->ctype.len) {
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, c->ctype.p);
    }
    const char *h = c->hdr.p;
    for (size_t i = 0; i < r->nhdr; i++) {
        const char *v = h + strlen(h) + 1;
        if (MHD_add_response_header(mr, h, v) != MHD_YES) log_warn("http: response header %s refused", h);
        h = v + strlen(v) + 1;
    }
    if (took_ns >= 0) {
        char us[24];
        snprintf(us, sizeof us, "%llu", (unsigned long long)(took_ns / 1000));
        MHD_add_response_header(mr, "X-Took-Us", us);
    }
    if (r->close) MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    ATOMIC_ADD(&s->st.requests, 1);
    ATOMIC_ADD(&s->st.by_class[r->status / 100], 1);
    if (r->kind != RESP_STREAM) ATOMIC_ADD(&s->st.bytes_out, r->len);
    r->kind = RESP_NONE; /* the body, if any, is MHD's now */
    r->free_cls = NULL;
    c->phase = REQ_DONE;
    return ok;
}

/* An error from this layer, queued now (close = cut the connection) or, if
 * pending, on the last access call so that keep-alive survives. */
static enum MHD_Result answer_error(http_conn_t *c, bool now, bool close, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result answer_error(http_conn_t *c, bool now, bool close, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    resp_verror(&c->resp, status, fmt, ap);
    va_end(ap);
    c->resp.close = close;
    if (!now) {
        c->phase = REQ_PENDING;
        return MHD_YES;
    }
    return resp_send(c, -1);
}

/* Counts want more body bytes of c against the server's in-flight budget;
 * false (nothing counted) when they do not fit. */
static bool body_reserve(http_server_t *s, http_conn_t *c, size_t want) {
    if (want <= c->reserved) return true;
    size_t extra = want - c->reserved;
    uint64_t used = __atomic_add_fetch(&s->body_inflight, extra, __ATOMIC_RELAXED);
    if (used > s->max_inflight) {
        __atomic_sub_fetch(&s->body_inflight, extra, __ATOMIC_RELAXED);
        return false;
    }
    c->reserved = want;
    return true;
}

static enum MHD_Result run_handler(http_conn_t *c, const char *url, const char *method) {
    http_server_t *s = c->s;
    const http_route_t *rt = &s->routes[c->route];
    buf_reserve(&c->body, c->body.len + 1);
    c->body.p[c->body.len] = '\0';
    http_req_t req = {method, url, c->body.p, c->body.len, c->addr, c->mc, c};
    resp_reset(c);
    uint64_t t0 = mono_ns();
    http_guard_fn guard = __atomic_load_n(&s->guard, __ATOMIC_ACQUIRE);
    if (!guard || guard(s->app, &req, rt, &c->resp) == 0) rt->fn(s->app, &req, c->args, &c->resp);
    uint64_t took = mono_ns() - t0;
    if (c->resp.kind == RESP_NONE) {
        log_error("http: handler for %s %s produced no response", rt->method, rt->pattern);
        http_resp_error(&c->resp, 500, "internal error: no response");
    }
    int status = c->resp.status;
    enum MHD_Result ok = resp_send(c, (int64_t)took);
    http_observe_fn fn = __atomic_load_n(&s->observer, __ATOMIC_ACQUIRE);
    if (fn) fn(s->app, rt->pattern, status >= 100 && status <= 599 ? status : 500, took);
    return ok;
}

/* -- MHD callbacks ---------------------------------------------------------- */

static void set_waiting(http_conn_t *c, int64_t since) {
    pthread_mutex_lock(&c->s->live_lock);
    c->waiting_since_ms = since;
    pthread_mutex_unlock(&c->s->live_lock);
}

static void *reaper_main(void *arg) {
    http_server_t *s = arg;
    while (!__atomic_load_n(&s->reaper_stop, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        int64_t now = wall_ms();
        pthread_mutex_lock(&s->live_lock);
        for (http_conn_t *c = s->live; c; c = c->next_live)
            if (c->waiting_since_ms && now - c->waiting_since_ms > s->header_timeout_ms && c->fd >= 0) {
                shutdown(c->fd, SHUT_RDWR); /* MHD sees the socket fail and closes the connection */
                c->waiting_since_ms = 0;
                ATOMIC_ADD(&s->st.header_timeouts, 1);
            }
        pthread_mutex_unlock(&s->live_lock);
    }
    return NULL;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
    (void)cls;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_conn_t *c = ci ? ci->socket_context : NULL;
    if (!c) return NULL;
    c->raw.len = 0;
    buf_append(&c->raw, uri, strcspn(uri, "?#"));
    c->phase = REQ_NEW;
    return c;
}

/* First access call: route and check limits. */
static enum MHD_Result on_first(http_conn_t *c, const char *method) {
    http_server_t *s = c->s;
    int mismatch = 0;
    resp_reset(c);
    c->body.len = 0;
    c->drained = 0;
    c->route = -1;

    const char *te = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cls = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long clen = cls ? strtoull(cls, NULL, 10) : 0; /* MHD has validated it */
    bool has_body = te != NULL || clen > 0;

    if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE))
        return answer_error(c, true, true, 503, "server is shutting down");
    if (c->over_limit) {
        ATOMIC_ADD(&s->st.conn_limit, 1);
        http_resp_header(&c->resp, "Retry-After", "1");
        return answer_error(c, true, true, 503, "too many connections (the limit is %u)", s->max_conn);
    }

    buf_reserve(&c->argbuf, c->raw.len + HTTP_MAX_ARGS + 1);
    c->route = http_route_match(s->routes, s->nroutes, method, c->raw.p, c->args, c->argbuf.p, c->argbuf.cap,
                                &mismatch);
    if (c->route == -1 && mismatch && strcmp(method, "HEAD") == 0)
        c->route = http_route_match(s->routes, s->nroutes, "GET", c->raw.p, c->args, c->argbuf.p, c->argbuf.cap,
                                    &mismatch);
    if (c->route < 0) {
        if (mismatch) {
            char allow[256];
            http_route_allow(s->routes, s->nroutes, c->raw.p, allow, sizeof allow);
            ATOMIC_ADD(&s->st.bad_method, 1);
            http_resp_header(&c->resp, "Allow", allow);
            return answer_error(c, has_body, has_body, 405, "method %s not allowed on %s (allowed: %s)", method,
                                c->raw.p, allow);
        }
        ATOMIC_ADD(&s->st.not_found, 1);
        return answer_error(c, has_body, has_body, 404, "no such endpoint: %s %s", method, c->raw.p);
    }
    size_t limit = s->routes[c->route].max_body ? s->routes[c->route].max_body : s->max_body;
    c->limit = limit;
    if (clen > limit) {
        ATOMIC_ADD(&s->st.body_too_large, 1);
        json_t *o = json_object();
        char msg[256];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes (Content-Length: %llu)", limit, clen);
        json_object_set_new(o, "error", json_string(msg));
        json_object_set_new(o, "limit", json_integer((json_int_t)limit));
        http_resp_json(&c->resp, 413, o);
        c->resp.close = true;
        return resp_send(c, -1);
    }
    if (clen > 0 && !body_reserve(s, c, (size_t)clen)) {
        ATOMIC_ADD(&s->st.inflight_refused, 1);
        http_resp_header(&c->resp, "Retry-After", "1");
        return answer_error(c, true, true, 503,
                            "too many request body bytes in flight (the limit is %zu bytes for all connections "
                            "together); retry later",
                            s->max_inflight);
    }
    if (clen > 0) buf_reserve(&c->body, (size_t)(clen < HTTP_PRESIZE_MAX ? clen : HTTP_PRESIZE_MAX) + 1);
    c->phase = REQ_BODY;
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **req_cls) {
    http_server_t *s = cls;
    http_conn_t *c = *req_cls;
    (void)version;
    if (!c) { /* on_uri found no connection state: cannot happen, must not crash */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c) return MHD_NO;
        *req_cls = c;
        c->raw.len = 0;
        buf_append(&c->raw, url, strlen(url));
        c->phase = REQ_NEW;
    }
    if (c->phase == REQ_NEW) {
        set_waiting(c, 0); /* the headers are complete */
        c->inflight = true;
        ATOMIC_ADD(&s->inflight, 1);
        return on_first(c, method);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        ATOMIC_ADD(&s->st.bytes_in, n);
        if (c->phase == REQ_BODY) {
            if (c->body.len + n > c->limit) {
                c->phase = REQ_DRAIN;
                c->drained = c->body.len + n;
            } else if (!body_reserve(s, c, c->body.len + n)) { /* chunked, past the budget */
                c->over_budget = true;
                c->phase = REQ_DRAIN;
                c->drained = c->body.len + n;
            } else {
                buf_append(&c->body, upload, n);
            }
        } else if (c->phase == REQ_DRAIN) {
            c->drained += n;
            size_t cap = c->limit > HTTP_DRAIN_MIN ? c->limit : HTTP_DRAIN_MIN;
            if (c->drained - c->limit > cap) {
                log_warn("http: %s %s: body past %zu bytes of the %zu byte limit; closing", method, c->raw.p,
                         (size_t)c->drained, c->limit);
                ATOMIC_ADD(&s->st.body_too_large, 1);
                return MHD_NO;
            }
        }
        return MHD_YES;
    }
    switch (c->phase) {
    case REQ_BODY:
        return run_handler(c, url, method);
    case REQ_PENDING:
        return resp_send(c, -1);
    case REQ_DRAIN: {
        if (c->over_budget) {
            ATOMIC_ADD(&s->st.inflight_refused, 1);
            http_resp_header(&c->resp, "Retry-After", "1");
            http_resp_error(&c->resp, 503,
                            "too many request body bytes in flight (the limit is %zu bytes for all connections "
                            "together); retry later",
                            s->max_inflight);
            return resp_send(c, -1);
        }
        ATOMIC_ADD(&s->st.body_too_large, 1);
        json_t *o = json_object();
        char msg[256];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes (received more than that)",
                 c->limit);
        json_object_set_new(o, "error", json_string(msg));
        json_object_set_new(o, "limit", json_integer((json_int_t)c->limit));
        http_resp_json(&c->resp, 413, o);
        return resp_send(c, -1);
    }
    default:
        return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls, enum MHD_RequestTerminationCode toe) {
    http_server_t *s = cls;
    http_conn_t *c = *req_cls;
    (void)mc;
    if (!c) return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && c->phase != REQ_NEW) ATOMIC_ADD(&s->st.aborted, 1);
    if (c->inflight) {
        c->inflight = false;
        ATOMIC_SUB(&s->inflight, 1);
    }
    if (c->reserved) {
        __atomic_sub_fetch(&s->body_inflight, c->reserved, __ATOMIC_RELAXED);
        c->reserved = 0;
    }
    c->over_budget = false;
    set_waiting(c, wall_ms()); /* keep-alive: the next request's headers are due */
    resp_reset(c);
    buf_shrink(&c->body, HTTP_SHRINK_ABOVE);
    buf_shrink(&c->out, HTTP_SHRINK_ABOVE);
    buf_shrink(&c->hdr, HTTP_SHRINK_ABOVE);
    buf_shrink(&c->raw, 16384);
    buf_shrink(&c->argbuf, 16384);
    c->phase = REQ_NEW;
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        http_conn_t *c = xcalloc(1, sizeof *c);
        c->s = s;
        c->mc = mc;
        c->fd = -1;
        c->resp.c = c;
        uint64_t cur = ATOMIC_ADD(&s->st.connections_current, 1) + 1;
        ATOMIC_ADD(&s->st.connections_total, 1);
        c->over_limit = cur > s->max_conn;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, c->addr, sizeof c->addr);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, c->addr,
                          sizeof c->addr);
        }
        ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) c->fd = ci->connect_fd;
        *socket_context = c;
        pthread_mutex_lock(&s->live_lock);
        c->waiting_since_ms = wall_ms();
        c->next_live = s->live;
        if (s->live) s->live->prev_live = c;
        s->live = c;
        pthread_mutex_unlock(&s->live_lock);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_conn_t *c = *socket_context;
        *socket_context = NULL;
        ATOMIC_SUB(&s->st.connections_current, 1);
        if (!c) return;
        pthread_mutex_lock(&s->live_lock);
        if (c->prev_live) c->prev_live->next_live = c->next_live;
        else s->live = c->next_live;
        if (c->next_live) c->next_live->prev_live = c->prev_live;
        pthread_mutex_unlock(&s->live_lock);
        resp_reset(c);
        buf_free(&c->raw);
        buf_free(&c->argbuf);
        buf_free(&c->body);
        buf_free(&c->out);
        buf_free(&c->hdr);
        buf_free(&c->ctype);
        free(c);
    }
}

/* MHD's own messages (bad requests, socket errors), at most 20 a second. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    http_server_t *s = cls;
    int64_t sec = wall_ms() / 1000;
    if (__atomic_exchange_n(&s->log_sec, sec, __ATOMIC_RELAXED) != sec) __atomic_store_n(&s->log_count, 0, __ATOMIC_RELAXED);
    if (ATOMIC_ADD(&s->log_count, 1) >= 20) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    log_warn("http: %s", msg);
}

/* -- Request accessors ----------------------------------------------------- */

const char *http_query(const http_req_t *req, const char *name) {
    const char *v = NULL;
    if (!req || !req->priv_mhd || !name) return NULL;
    if (MHD_lookup_connection_value_n(req->priv_mhd, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, NULL) != MHD_YES)
        return NULL;
    return v ? v : "";
}

const char *http_header(const http_req_t *req, const char *name) {
    if (!req || !req->priv_mhd || !name) return NULL;
    return MHD_lookup_connection_value(req->priv_mhd, MHD_HEADER_KIND, name);
}

bool http_req_client_gone(const http_req_t *req) {
    const http_conn_t *c = req ? req->priv_conn : NULL;
    return c && fd_gone(c->fd, 0);
}

/* -- Server ---------------------------------------------------------------- */

static void routes_free(http_route_t *routes, size_t n) {
    for (size_t i = 0; routes && i < n; i++) {
        free((char *)routes[i].method);
        free((char *)routes[i].pattern);
    }
    free(routes);
}

http_server_t *http_server_start(const http_config_t *cfg, const http_route_t *routes, size_t nroutes,
                                 void *app, char *err, size_t errlen) {
    char tmp[256];
    if (!err || !errlen) {
        err = tmp;
        errlen = sizeof tmp;
    }
    err[0] = '\0';
    if (!cfg || (nroutes && !routes)) {
        snprintf(err, errlen, "http: no configuration");
        return NULL;
    }
    for (size_t i = 0; i < nroutes; i++) {
        char why[200];
        if (!routes[i].method || !routes[i].method[0] || !routes[i].fn) {
            snprintf(err, errlen, "http: route %zu (%s) needs a method and a handler", i,
                     routes[i].pattern ? routes[i].pattern : "?");
            return NULL;
        }
        if (http_pattern_check(routes[i].pattern, why, sizeof why) != 0) {
            snprintf(err, errlen, "http: route %s: %s", routes[i].method, why);
            return NULL;
        }
    }
    const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "http: port %d out of range", cfg->port);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "http: cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    const struct addrinfo *pick = ai; /* IPv4 first: "localhost" means 127.0.0.1 */
    for (const struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen < sizeof ss ? pick->ai_addrlen : sizeof ss);
    freeaddrinfo(ai);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)cfg->port);
    }

    http_server_t *s = xcalloc(1, sizeof *s);
    s->app = app;
    s->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
    s->max_inflight = cfg->max_inflight_body ? cfg->max_inflight_body : HTTP_DEFAULT_MAX_INFLIGHT;
    pthread_mutex_init(&s->live_lock, NULL);
    s->max_conn = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONN;
    s->routes = xcalloc(nroutes ? nroutes : 1, sizeof *s->routes);
    s->nroutes = nroutes;
    for (size_t i = 0; i < nroutes; i++) {
        s->routes[i] = routes[i];
        s->routes[i].method = xstrdup(routes[i].method);
        s->routes[i].pattern = xstrdup(routes[i].pattern);
    }
    unsigned hard = s->max_conn + s->max_conn / 8 + 4; /* room to answer 503 past the limit */
    unsigned timeout = cfg->connection_timeout_s ? cfg->connection_timeout_s : HTTP_DEFAULT_TIMEOUT_S;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, or MHD complains */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, hard,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
                            MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)HTTP_CONN_MEMORY_INCR,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 511u,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_END);
    if (!s->d) {
        int e = errno;
        snprintf(err, errlen, "http: cannot listen on %s port %d: %s", host, cfg->port,
                 e ? strerror(e) : "libmicrohttpd refused to start");
        pthread_mutex_destroy(&s->live_lock);
        routes_free(s->routes, s->nroutes);
        free(s);
        return NULL;
    }
    s->header_timeout_ms = (int64_t)timeout * 1000;
    s->reaper_running = pthread_create(&s->reaper, NULL, reaper_main, s) == 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
}

int http_server_port(const http_server_t *s) { return s ? s->port : -1; }

bool http_server_stopping(const http_server_t *s) {
    return s && __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

void http_server_stop(http_server_t *s) {
    if (!s) return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    uint64_t deadline = mono_ns() + HTTP_STOP_DRAIN_NS;
    while (__atomic_load_n(&s->inflight, __ATOMIC_ACQUIRE) > 0 && mono_ns() < deadline) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    if (s->reaper_running) {
        __atomic_store_n(&s->reaper_stop, 1, __ATOMIC_RELEASE);
        pthread_join(s->reaper, NULL);
    }
    pthread_mutex_destroy(&s->live_lock);
    routes_free(s->routes, s->nroutes);
    free(s);
}

void http_server_set_guard(http_server_t *s, http_guard_fn fn) {
    if (s) __atomic_store_n(&s->guard, fn, __ATOMIC_RELEASE);
}

void http_server_set_observer(http_server_t *s, http_observe_fn fn) {
    if (s) __atomic_store_n(&s->observer, fn, __ATOMIC_RELEASE);
}

void http_server_stats(const http_server_t *s, http_stats_t *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->requests = ATOMIC_GET(&s->st.requests);
    for (int k = 0; k < 6; k++) out->by_class[k] = ATOMIC_GET(&s->st.by_class[k]);
    out->body_too_large = ATOMIC_GET(&s->st.body_too_large);
    out->inflight_refused = ATOMIC_GET(&s->st.inflight_refused);
    out->header_timeouts = ATOMIC_GET(&s->st.header_timeouts);
    out->conn_limit = ATOMIC_GET(&s->st.conn_limit);
    out->not_found = ATOMIC_GET(&s->st.not_found);
    out->bad_method = ATOMIC_GET(&s->st.bad_method);
    out->aborted = ATOMIC_GET(&s->st.aborted);
    out->connections_current = ATOMIC_GET(&s->st.connections_current);
    out->connections_total = ATOMIC_GET(&s->st.connections_total);
    out->bytes_in = ATOMIC_GET(&s->st.bytes_in);
    out->bytes_out = ATOMIC_GET(&s->st.bytes_out);
}
