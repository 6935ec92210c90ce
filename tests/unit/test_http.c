/* test_http.c - the HTTP server layer over real loopback sockets, with a tiny
 * blocking HTTP/1.1 client, plus the pure route matcher. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "http.h"
#include "util.h"

/* -- A tiny client ----------------------------------------------------------- */

typedef struct tconn {
    int fd;
    char *buf; /* bytes read but not consumed (pipelined responses) */
    size_t len, cap;
} tconn_t;

typedef struct tresp {
    int status;
    char head[16384];
    char *body;
    size_t body_len;
} tresp_t;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int tc_open(tconn_t *c, int port) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void tc_close(tconn_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static int tc_send(tconn_t *c, const void *p, size_t n) {
    const char *q = p;
    while (n) {
        ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

static int tc_sends(tconn_t *c, const char *s) { return tc_send(c, s, strlen(s)); }

/* Reads more bytes into c->buf; 0 on EOF/error. */
static ssize_t tc_fill(tconn_t *c) {
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (r > 0) {
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
    }
    return r > 0 ? r : 0;
}

static void tc_consume(tconn_t *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n + 1); /* with the NUL */
    c->len -= n;
}

/* Finds header `name` in r->head; copies its value. */
static const char *tr_hdr(const tresp_t *r, const char *name, char *out, size_t outlen) {
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ') h++;
            size_t n = strcspn(h, "\r");
            if (n >= outlen) n = outlen - 1;
            memcpy(out, h, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

static void tr_free(tresp_t *r) {
    free(r->body);
    r->body = NULL;
}

/* Reads one response (head-only if is_head). 0, or -1 if the connection
 * ended before a complete response. */
static int tc_read(tconn_t *c, tresp_t *r, bool is_head) {
    memset(r, 0, sizeof *r);
    char *end;
    while (!c->buf || !(end = strstr(c->buf, "\r\n\r\n")))
        if (!tc_fill(c)) return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof r->head) return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    tc_consume(c, hl);
    r->status = atoi(r->head + 9);
    char v[64];
    if (is_head || r->status == 204 || r->status == 304 || r->status < 200) {
        r->body = calloc(1, 1);
        return 0;
    }
    if (tr_hdr(r, "Content-Length", v, sizeof v)) {
        size_t n = strtoull(v, NULL, 10);
        while (c->len < n)
            if (!tc_fill(c)) return -1;
        r->body = malloc(n + 1);
        memcpy(r->body, c->buf, n);
        r->body[n] = '\0';
        r->body_len = n;
        tc_consume(c, n);
        return 0;
    }
    if (tr_hdr(r, "Transfer-Encoding", v, sizeof v) && strstr(v, "chunked")) {
        size_t cap = 1024, len = 0;
        r->body = malloc(cap);
        for (;;) {
            char *nl;
            while (!c->buf || !(nl = strstr(c->buf, "\r\n")))
                if (!tc_fill(c)) return -1;
            size_t n = strtoull(c->buf, NULL, 16);
            tc_consume(c, (size_t)(nl - c->buf) + 2);
            while (c->len < n + 2)
                if (!tc_fill(c)) return -1;
            if (len + n + 1 > cap) {
                cap = (len + n + 1) * 2;
                r->body = realloc(r->body, cap);
            }
            memcpy(r->body + len, c->buf, n);
            len += n;
            tc_consume(c, n + 2);
            if (n == 0) break; /* no trailers expected */
        }
        r->body[len] = '\0';
        r->body_len = len;
        return 0;
    }
    while (tc_fill(c)) {} /* close-delimited */
    r->body = malloc(c->len + 1);
    memcpy(r->body, c->buf ? c->buf : "", c->len);
    r->body[c->len] = '\0';
    r->body_len = c->len;
    c->len = 0;
    return 0;
}

/* One request on a fresh connection. */
static int do_req(int port, const char *raw, tresp_t *r) {
    tconn_t c;
    if (tc_open(&c, port) != 0) return -1;
    int rc = tc_sends(&c, raw) == 0 ? tc_read(&c, r, strncmp(raw, "HEAD ", 5) == 0) : -1;
    tc_close(&c);
    return rc;
}

static int do_get(int port, const char *path, tresp_t *r) {
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return do_req(port, req, r);
}

/* -- Test handlers ---------------------------------------------------------- */

typedef struct app {
    http_server_t *srv;
    int block_release; /* atomic */
    int blocked;       /* atomic: /block is waiting */
    int stream_frees;  /* atomic */
    int observed;      /* atomic */
    int gone_seen;     /* atomic: /block saw its client leave */
    pthread_mutex_t mu;
    char last_pattern[128];
    int last_status;
    uint64_t last_took;
} app_t;

static void h_hello(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req, (void)args;
    http_resp_json(resp, 200, json_pack("{s:s}", "hello", "world"));
}

static void h_args(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app;
    json_t *a = json_array(), *lens = json_array();
    for (int i = 0; args[i]; i++) {
        json_t *v = json_string(args[i]); /* NULL for invalid UTF-8 */
        json_array_append_new(a, v ? v : json_null());
        json_array_append_new(lens, json_integer((json_int_t)strlen(args[i])));
    }
    json_t *path = json_string(req->path);
    http_resp_json(resp, 200, json_pack("{s:o,s:o,s:o}", "args", a, "lens", lens, "path", path ? path : json_null()));
}

static void h_query(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)args;
    const char *names[] = {"limit", "cursor", "wait", "missing"};
    json_t *o = json_object();
    for (int i = 0; i < 4; i++) {
        const char *v = http_query(req, names[i]);
        json_object_set_new(o, names[i], v ? json_string(v) : json_null());
    }
    http_resp_json(resp, 200, o);
}

static void h_echo(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)args;
    char h[32];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)hash_bytes(req->body, req->body_len));
    http_resp_json(resp, 200, json_pack("{s:I,s:s,s:b}", "len", (json_int_t)req->body_len, "hash", h, "nul",
                                        req->body[req->body_len] == '\0'));
}

static void h_rule(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req;
    http_resp_json(resp, 200, json_pack("{s:s}", "rule", args[0]));
}

static void h_take(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req, (void)args;
    http_resp_error(resp, 418, "replaced"); /* the last helper wins */
    char *b = xstrdup("taken body");
    http_resp_take(resp, 202, "text/plain", b, strlen(b));
    char v[8];
    snprintf(v, sizeof v, "%d", 7); /* a stack buffer: must be copied */
    http_resp_header(resp, "Retry-After", v);
}

static const char static_page[] = "<html>static</html>";
static void h_static(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req;
    json_t *o = json_pack("{s:s}", "rest", args[0]);
    if (strcmp(args[0], "index.html") == 0) {
        json_decref(o);
        http_resp_static(resp, 200, "text/html", static_page, sizeof static_page - 1);
        http_resp_header(resp, "Cache-Control", "max-age=60");
        return;
    }
    http_resp_json(resp, 200, o);
}

static void h_none(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req, (void)args, (void)resp;
}

static void h_sleep(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req, (void)args;
    sleep_ms(30);
    http_resp_text(resp, 200, "text/plain", "slept", 5);
}

static void h_headers(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)args;
    const char *x = http_header(req, "x-test-header");
    http_resp_json(resp, 200, json_pack("{s:s?,s:s,s:s}", "x", x, "addr", req->remote_addr, "method", req->method));
}

/* Blocks until released, the server stops, or 3 s. */
static void h_block(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    app_t *a = app;
    (void)args;
    __atomic_store_n(&a->blocked, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 300; i++) {
        if (__atomic_load_n(&a->block_release, __ATOMIC_SEQ_CST)) break;
        if (http_req_client_gone(req)) {
            __atomic_store_n(&a->gone_seen, 1, __ATOMIC_SEQ_CST);
            http_resp_error(resp, 499, "client gone");
            return;
        }
        if (http_server_stopping(a->srv)) {
            http_resp_error(resp, 503, "stopping");
            return;
        }
        sleep_ms(10);
    }
    http_resp_json(resp, 200, json_pack("{s:b}", "released", 1));
}

typedef struct sse {
    app_t *app;
    int i, zeros, forever;
} sse_t;

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse_t *x = cls;
    (void)pos;
    if (x->forever) return 0;
    if (x->zeros++ < 2) return 0; /* "nothing yet" twice before every event */
    x->zeros = 0;
    if (x->i == 3) return HTTP_STREAM_END;
    int n = snprintf(buf, max, "data: event %d\n\n", x->i++);
    return n;
}

static void sse_free(void *cls) {
    sse_t *x = cls;
    __atomic_fetch_add(&x->app->stream_frees, 1, __ATOMIC_SEQ_CST);
    free(x);
}

static void h_stream(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)args;
    sse_t *x = xcalloc(1, sizeof *x);
    x->app = app;
    x->forever = http_query(req, "forever") != NULL;
    http_resp_stream(resp, 200, "text/event-stream", sse_read, x, sse_free);
}

/* A stream replaced by a JSON body: its cls must be freed. */
static void h_stream_replaced(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req, (void)args;
    sse_t *x = xcalloc(1, sizeof *x);
    x->app = app;
    http_resp_stream(resp, 200, "text/event-stream", sse_read, x, sse_free);
    http_resp_json(resp, 200, json_pack("{s:b}", "replaced", 1));
}

static void observe(void *app, const char *pattern, int status, uint64_t took_ns) {
    app_t *a = app;
    pthread_mutex_lock(&a->mu);
    snprintf(a->last_pattern, sizeof a->last_pattern, "%s", pattern);
    a->last_status = status;
    a->last_took = took_ns;
    pthread_mutex_unlock(&a->mu);
    __atomic_fetch_add(&a->observed, 1, __ATOMIC_SEQ_CST);
}

static const http_route_t routes[] = {
    {"GET", "/hello", h_hello, 0},
    {"GET", "/api/pools/:name/members/:sku", h_args, 0},
    {"GET", "/api/skus/:sku", h_args, 0},
    {"GET", "/q", h_query, 0},
    {"POST", "/echo", h_echo, 2u << 20},
    {"POST", "/small", h_echo, 0},
    {"PUT", "/api/rules/:name", h_rule, 0},
    {"DELETE", "/api/rules/:name", h_rule, 0},
    {"GET", "/take", h_take, 0},
    {"GET", "/none", h_none, 0},
    {"GET", "/sleep", h_sleep, 0},
    {"GET", "/headers", h_headers, 0},
    {"GET", "/block", h_block, 0},
    {"GET", "/stream", h_stream, 0},
    {"GET", "/stream-replaced", h_stream_replaced, 0},
    {"GET", "/static/*", h_static, 0},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* -- Pure matcher ------------------------------------------------------------ */

static int match(const char *method, const char *path, const char **args, int *mm) {
    static char argbuf[1024];
    return http_route_match(routes, NROUTES, method, path, args, argbuf, sizeof argbuf, mm);
}

static void test_matcher(void) {
    const char *args[HTTP_MAX_ARGS + 1];
    int mm = -1;
    CHECK_EQ_INT(match("GET", "/hello", args, &mm), 0);
    CHECK(args[0] == NULL);
    CHECK_EQ_INT(match("GET", "/api/pools/p1/members/S%2F1", args, &mm), 1);
    CHECK(strcmp(args[0], "p1") == 0 && strcmp(args[1], "S/1") == 0 && args[2] == NULL);
    /* decoded once: %252F -> "%2F" */
    CHECK_EQ_INT(match("GET", "/api/skus/A%252FB", args, &mm), 2);
    CHECK(strcmp(args[0], "A%2FB") == 0);
    /* invalid escapes stay, '+' stays */
    CHECK_EQ_INT(match("GET", "/api/skus/a%zz+b%4", args, &mm), 2);
    CHECK(strcmp(args[0], "a%zz+b%4") == 0);
    /* literal segments may be encoded */
    CHECK_EQ_INT(match("GET", "/%68ello", args, &mm), 0);
    /* captures never empty, never with NUL */
    CHECK_EQ_INT(match("GET", "/api/skus/", args, &mm), -1);
    CHECK_EQ_INT(mm, 0);
    CHECK_EQ_INT(match("GET", "/api/skus/a%00b", args, &mm), -1);
    CHECK_EQ_INT(match("GET", "/api/pools//members/x", args, &mm), -1);
    /* a literal '/' splits, an encoded one does not */
    CHECK_EQ_INT(match("GET", "/api/skus/A/B", args, &mm), -1);
    CHECK_EQ_INT(match("GET", "/hello/", args, &mm), -1);
    CHECK_EQ_INT(match("GET", "hello", args, &mm), -1);
    CHECK_EQ_INT(match("GET", "", args, &mm), -1);
    /* method mismatch */
    CHECK_EQ_INT(match("POST", "/hello", args, &mm), -1);
    CHECK_EQ_INT(mm, 1);
    CHECK_EQ_INT(match("DELETE", "/api/rules/r1", args, &mm), 7);
    CHECK(strcmp(args[0], "r1") == 0);
    CHECK_EQ_INT(match("get", "/hello", args, &mm), -1); /* methods are case-sensitive */
    CHECK_EQ_INT(mm, 1);
    /* wildcard */
    CHECK_EQ_INT(match("GET", "/static/", args, &mm), 15);
    CHECK(strcmp(args[0], "") == 0);
    CHECK_EQ_INT(match("GET", "/static/a/b%2Fc", args, &mm), 15);
    CHECK(strcmp(args[0], "a/b/c") == 0);
    CHECK_EQ_INT(match("GET", "/static", args, &mm), -1);
    CHECK_EQ_INT(match("GET", "/static/a%00", args, &mm), -1);
    /* argbuf too small */
    char small[4];
    CHECK_EQ_INT(http_route_match(routes, NROUTES, "GET", "/api/skus/abcdef", args, small, sizeof small, &mm), -2);
    /* Allow */
    char allow[64];
    CHECK_EQ_INT(http_route_allow(routes, NROUTES, "/api/rules/x", allow, sizeof allow), 2);
    CHECK(strcmp(allow, "PUT, DELETE") == 0);
    CHECK_EQ_INT(http_route_allow(routes, NROUTES, "/hello", allow, sizeof allow), 2);
    CHECK(strcmp(allow, "GET, HEAD") == 0);
    CHECK_EQ_INT(http_route_allow(routes, NROUTES, "/nope", allow, sizeof allow), 0);
    CHECK(strcmp(allow, "") == 0);
    char tiny[6];
    http_route_allow(routes, NROUTES, "/api/rules/x", tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
    /* decoder */
    char d[16];
    size_t n = http_percent_decode(d, "a%41%2f%zz%", 11);
    CHECK(n == 7 && memcmp(d, "aA/%zz%", 7) == 0);
    /* pattern syntax */
    char err[128];
    CHECK_EQ_INT(http_pattern_check("/a/:b/*", err, sizeof err), 0);
    CHECK_EQ_INT(http_pattern_check("/", err, sizeof err), 0);
    CHECK_EQ_INT(http_pattern_check("a", err, sizeof err), -1);
    CHECK_EQ_INT(http_pattern_check("/a//b", err, sizeof err), -1);
    CHECK_EQ_INT(http_pattern_check("/a/*/b", err, sizeof err), -1);
    CHECK_EQ_INT(http_pattern_check("/a/:", err, sizeof err), -1);
    CHECK_EQ_INT(http_pattern_check("/a%20b", err, sizeof err), -1);
    CHECK_EQ_INT(http_pattern_check("/:a/:b/:c/:d/:e/:f/:g/:h/:i", err, sizeof err), -1);
}

/* -- Over the socket ---------------------------------------------------------- */

static void test_basic(int port, app_t *app) {
    tresp_t r;
    char v[256];
    CHECK_EQ_INT(do_get(port, "/hello", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strcmp(r.body, "{\"hello\":\"world\"}") == 0);
    CHECK(tr_hdr(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    CHECK(tr_hdr(&r, "Cache-Control", v, sizeof v) && strcmp(v, "no-store") == 0);
    CHECK(tr_hdr(&r, "X-Took-Us", v, sizeof v) && v[0] >= '0' && v[0] <= '9');
    tr_free(&r);
    CHECK(__atomic_load_n(&app->observed, __ATOMIC_SEQ_CST) >= 1);
    pthread_mutex_lock(&app->mu);
    CHECK(strcmp(app->last_pattern, "/hello") == 0 && app->last_status == 200);
    pthread_mutex_unlock(&app->mu);

    /* X-Took-Us measures the handler */
    CHECK_EQ_INT(do_get(port, "/sleep", &r), 0);
    CHECK(r.status == 200 && strcmp(r.body, "slept") == 0);
    CHECK(tr_hdr(&r, "X-Took-Us", v, sizeof v) && atoll(v) >= 30000 && atoll(v) < 2000000);
    CHECK(tr_hdr(&r, "Content-Type", v, sizeof v) && strcmp(v, "text/plain") == 0);
    CHECK(!tr_hdr(&r, "Cache-Control", v, sizeof v));
    tr_free(&r);
    pthread_mutex_lock(&app->mu);
    CHECK(strcmp(app->last_pattern, "/sleep") == 0 && app->last_took >= 30000000ull);
    pthread_mutex_unlock(&app->mu);

    /* captures, decoded exactly once */
    CHECK_EQ_INT(do_get(port, "/api/pools/p%20x/members/A%2FB%25C", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "\"args\":[\"p x\",\"A/B%C\"]") != NULL);
    tr_free(&r);
    CHECK_EQ_INT(do_get(port, "/api/skus/%C3%A9t%C3%A9", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"args\":[\"\xC3\xA9t\xC3\xA9\"]"));
    tr_free(&r);
    /* a capture is bytes: %FF arrives as one byte 0xFF */
    CHECK_EQ_INT(do_get(port, "/api/skus/%FF", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"args\":[null],\"lens\":[1]"));
    tr_free(&r);

    /* query args */
    CHECK_EQ_INT(do_get(port, "/q?limit=10&cursor=a%26b+c&wait&limit=20", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "\"limit\":\"10\"") && strstr(r.body, "\"cursor\":\"a&b c\"") &&
          strstr(r.body, "\"wait\":\"\"") && strstr(r.body, "\"missing\":null"));
    tr_free(&r);

    /* headers are case-insensitive; remote address */
    CHECK_EQ_INT(do_req(port, "GET /headers HTTP/1.1\r\nHost: t\r\nX-TEST-Header: yes\r\n\r\n", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"x\":\"yes\"") && strstr(r.body, "\"addr\":\"127.0.0.1\""));
    tr_free(&r);

    /* 404, 405 + Allow */
    CHECK_EQ_INT(do_get(port, "/nope/x", &r), 0);
    CHECK_EQ_INT(r.status, 404);
    CHECK(strstr(r.body, "{\"error\":") == r.body && strstr(r.body, "/nope/x"));
    CHECK(tr_hdr(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    tr_free(&r);
    /* an error naming a path that is not UTF-8 is still valid JSON */
    CHECK_EQ_INT(do_get(port, "/%FF%C0%80x\xc3", &r), 0);
    CHECK_EQ_INT(r.status, 404);
    json_t *j = json_loads(r.body, 0, NULL);
    CHECK(j && json_is_string(json_object_get(j, "error")) && strstr(r.body, "x?"));
    json_decref(j);
    tr_free(&r);
    CHECK_EQ_INT(do_get(port, "/api/rules/r1", &r), 0);
    CHECK_EQ_INT(r.status, 405);
    CHECK(tr_hdr(&r, "Allow", v, sizeof v) && strcmp(v, "PUT, DELETE") == 0);
    CHECK(strstr(r.body, "\"error\""));
    tr_free(&r);
    CHECK_EQ_INT(do_req(port, "DELETE /api/rules/r%2F1 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK(r.status == 200 && strcmp(r.body, "{\"rule\":\"r/1\"}") == 0);
    tr_free(&r);

    /* HEAD on a GET route: headers, no body */
    CHECK_EQ_INT(do_req(port, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK(r.status == 200 && tr_hdr(&r, "Content-Length", v, sizeof v) && strcmp(v, "17") == 0);
    tr_free(&r);

    /* take (last helper wins), header copied, static, wildcard */
    CHECK_EQ_INT(do_get(port, "/take", &r), 0);
    CHECK(r.status == 202 && strcmp(r.body, "taken body") == 0);
    CHECK(tr_hdr(&r, "Retry-After", v, sizeof v) && strcmp(v, "7") == 0);
    tr_free(&r);
    CHECK_EQ_INT(do_get(port, "/static/index.html", &r), 0);
    CHECK(r.status == 200 && strcmp(r.body, static_page) == 0);
    CHECK(tr_hdr(&r, "Cache-Control", v, sizeof v) && strcmp(v, "max-age=60") == 0);
    tr_free(&r);
    CHECK_EQ_INT(do_get(port, "/static/js/app%2Ejs", &r), 0);
    CHECK(r.status == 200 && strcmp(r.body, "{\"rest\":\"js/app.js\"}") == 0);
    tr_free(&r);

    /* a handler that answers nothing -> 500 */
    CHECK_EQ_INT(do_get(port, "/none", &r), 0);
    CHECK(r.status == 500 && strstr(r.body, "\"error\""));
    tr_free(&r);

    /* malformed and oversized requests are refused, the server lives on */
    CHECK_EQ_INT(do_req(port, "GET /hello HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", &r), 0);
    CHECK_EQ_INT(r.status, 400);
    tr_free(&r);
    char *big = xmalloc(100000);
    int n = snprintf(big, 100000, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + n, 'a', 90000);
    strcpy(big + n + 90000, "\r\n\r\n");
    CHECK_EQ_INT(do_req(port, big, &r), 0);
    CHECK(r.status == 431 || r.status == 414 || r.status == 413);
    tr_free(&r);
    free(big);
    tresp_t r2;
    int rc = do_req(port, "\x01\x02garbage\r\n\r\n", &r2); /* may be closed without an answer */
    if (rc == 0) {
        CHECK(r2.status >= 400);
        tr_free(&r2);
    }
    CHECK_EQ_INT(do_get(port, "/hello", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    tr_free(&r);
}

static void test_keepalive(int port) {
    tconn_t c;
    tresp_t r;
    CHECK_EQ_INT(tc_open(&c, port), 0);
    /* two sequential requests on one connection */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(tc_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        CHECK_EQ_INT(tc_read(&c, &r, false), 0);
        CHECK_EQ_INT(r.status, 200);
        char v[64];
        CHECK(!tr_hdr(&r, "Connection", v, sizeof v) || strcasecmp(v, "close") != 0);
        tr_free(&r);
    }
    /* a 404 keeps the connection too */
    CHECK_EQ_INT(tc_sends(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK_EQ_INT(r.status, 404);
    tr_free(&r);
    /* pipelined: three requests in one write, one with a body */
    const char *pipe3 = "GET /q?limit=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                        "GET /api/skus/x%20y HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_EQ_INT(tc_sends(&c, pipe3), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"limit\":\"1\""));
    tr_free(&r);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"len\":5"));
    tr_free(&r);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"x y\""));
    tr_free(&r);
    /* still alive after that */
    CHECK_EQ_INT(tc_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK_EQ_INT(r.status, 200);
    tr_free(&r);
    tc_close(&c);
}

static void test_bodies(int port, http_server_t *srv) {
    tresp_t r;
    char v[64];
    /* 1 MB binary body intact */
    size_t n = 1u << 20;
    char *body = xmalloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        body[i] = (char)(x & 0xff);
    }
    body[100] = '\0';
    char head[256], want[64];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
                                "Content-Length: %zu\r\n\r\n", n);
    snprintf(want, sizeof want, "\"hash\":\"%016llx\"", (unsigned long long)hash_bytes(body, n));
    tconn_t c;
    CHECK_EQ_INT(tc_open(&c, port), 0);
    CHECK_EQ_INT(tc_sends(&c, head), 0);
    CHECK_EQ_INT(tc_send(&c, body, n), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"len\":1048576") && strstr(r.body, want) && strstr(r.body, "\"nul\":true"));
    tr_free(&r);
    /* same connection: an empty POST body is "" */
    CHECK_EQ_INT(tc_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"len\":0"));
    tr_free(&r);
    tc_close(&c);

    /* chunked upload under the limit */
    CHECK_EQ_INT(do_req(port, "POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"len\":11"));
    tr_free(&r);

    /* 413 by Content-Length, answered before the body is sent (Expect: 100-continue) */
    http_stats_t st0, st1;
    http_server_stats(srv, &st0);
    CHECK_EQ_INT(do_req(port, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n"
                              "Expect: 100-continue\r\n\r\n", &r), 0);
    CHECK_EQ_INT(r.status, 413);
    CHECK(strstr(r.body, "request body exceeds the limit of 65536 bytes") && strstr(r.body, "\"limit\":65536"));
    tr_free(&r);
    /* 413 by Content-Length while the client pushes the body */
    CHECK_EQ_INT(tc_open(&c, port), 0);
    CHECK_EQ_INT(tc_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n"), 0);
    tc_send(&c, body, 65536); /* may fail once the server closes: fine */
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK_EQ_INT(r.status, 413);
    CHECK(tr_hdr(&r, "Connection", v, sizeof v) && strcasecmp(v, "close") == 0);
    tr_free(&r);
    tc_close(&c);
    /* 413 for a chunked body that passes the limit (known only at the end) */
    CHECK_EQ_INT(tc_open(&c, port), 0);
    CHECK_EQ_INT(tc_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(tc_sends(&c, "2710\r\n"), 0); /* 10000 bytes a chunk */
        CHECK_EQ_INT(tc_send(&c, body, 10000), 0);
        CHECK_EQ_INT(tc_sends(&c, "\r\n"), 0);
    }
    CHECK_EQ_INT(tc_sends(&c, "0\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&c, &r, false), 0);
    CHECK_EQ_INT(r.status, 413);
    CHECK(r.body && strstr(r.body, "limit of 65536 bytes"));
    tr_free(&r);
    tc_close(&c);
    http_server_stats(srv, &st1);
    CHECK_EQ_INT(st1.body_too_large - st0.body_too_large, 3);
    /* the server is fine after */
    CHECK_EQ_INT(do_req(port, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "\"len\":3"));
    tr_free(&r);

    /* a client that disconnects mid-upload */
    http_server_stats(srv, &st0);
    CHECK_EQ_INT(tc_open(&c, port), 0);
    CHECK_EQ_INT(tc_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_send(&c, body, 300000), 0);
    sleep_ms(50);
    tc_close(&c);
    for (int i = 0; i < 200; i++) {
        http_server_stats(srv, &st1);
        if (st1.aborted > st0.aborted) break;
        sleep_ms(10);
    }
    CHECK_EQ_INT(st1.aborted - st0.aborted, 1);
    CHECK(st1.bytes_in - st0.bytes_in >= 65536);
    CHECK_EQ_INT(do_get(port, "/hello", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    tr_free(&r);
    free(body);
}

static void test_blocking_and_stream(int port, app_t *app) {
    tresp_t r;
    char v[64];
    /* a blocked handler does not stall other connections */
    tconn_t a, b;
    __atomic_store_n(&app->block_release, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&app->blocked, 0, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(tc_open(&a, port), 0);
    CHECK_EQ_INT(tc_sends(&a, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    for (int i = 0; i < 200 && !__atomic_load_n(&app->blocked, __ATOMIC_SEQ_CST); i++) sleep_ms(5);
    CHECK(__atomic_load_n(&app->blocked, __ATOMIC_SEQ_CST));
    CHECK_EQ_INT(tc_open(&b, port), 0);
    uint64_t t0 = mono_ns();
    CHECK_EQ_INT(tc_sends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&b, &r, false), 0);
    CHECK(r.status == 200 && mono_ns() - t0 < 1000000000ull);
    tr_free(&r);
    __atomic_store_n(&app->block_release, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(tc_read(&a, &r, false), 0);
    CHECK(r.status == 200 && strstr(r.body, "released"));
    tr_free(&r);
    tc_close(&a);
    tc_close(&b);

    /* a blocked handler sees its client leave */
    __atomic_store_n(&app->block_release, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&app->blocked, 0, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(tc_open(&a, port), 0);
    CHECK_EQ_INT(tc_sends(&a, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    for (int i = 0; i < 200 && !__atomic_load_n(&app->blocked, __ATOMIC_SEQ_CST); i++) sleep_ms(5);
    sleep_ms(30);
    CHECK_EQ_INT(__atomic_load_n(&app->gone_seen, __ATOMIC_SEQ_CST), 0);
    tc_close(&a);
    for (int i = 0; i < 100 && !__atomic_load_n(&app->gone_seen, __ATOMIC_SEQ_CST); i++) sleep_ms(10);
    CHECK_EQ_INT(__atomic_load_n(&app->gone_seen, __ATOMIC_SEQ_CST), 1);

    /* SSE stream, chunked, then the connection is reused */
    int frees0 = __atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(tc_open(&a, port), 0);
    CHECK_EQ_INT(tc_sends(&a, "GET /stream HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&a, &r, false), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(tr_hdr(&r, "Content-Type", v, sizeof v) && strcmp(v, "text/event-stream") == 0);
    CHECK(tr_hdr(&r, "Transfer-Encoding", v, sizeof v) && strcmp(v, "chunked") == 0);
    CHECK(r.body && strcmp(r.body, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n") == 0);
    tr_free(&r);
    CHECK_EQ_INT(tc_sends(&a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&a, &r, false), 0);
    CHECK_EQ_INT(r.status, 200);
    tr_free(&r);
    tc_close(&a);
    CHECK_EQ_INT(__atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST) - frees0, 1);

    /* HTTP/1.0: close-delimited stream */
    CHECK_EQ_INT(do_req(port, "GET /stream HTTP/1.0\r\n\r\n", &r), 0);
    CHECK(r.status == 200 && r.body && strcmp(r.body, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n") == 0);
    tr_free(&r);

    /* a stream whose client goes away is ended and freed */
    frees0 = __atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(tc_open(&a, port), 0);
    CHECK_EQ_INT(tc_sends(&a, "GET /stream?forever=1 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    sleep_ms(100);
    tc_close(&a);
    int freed = 0;
    for (int i = 0; i < 200 && !freed; i++) {
        freed = __atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST) - frees0;
        sleep_ms(10);
    }
    CHECK_EQ_INT(freed, 1);

    /* a stream replaced by another helper is freed at once */
    frees0 = __atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST);
    CHECK_EQ_INT(do_get(port, "/stream-replaced", &r), 0);
    CHECK(r.status == 200 && strstr(r.body, "replaced"));
    tr_free(&r);
    CHECK_EQ_INT(__atomic_load_n(&app->stream_frees, __ATOMIC_SEQ_CST) - frees0, 1);
}

static void test_conn_limit(void) {
    http_config_t cfg = {.host = "127.0.0.1", .port = 0, .max_body = 1024, .max_connections = 2,
                         .connection_timeout_s = 1};
    char err[256];
    app_t app = {0};
    pthread_mutex_init(&app.mu, NULL);
    http_server_t *s = http_server_start(&cfg, routes, NROUTES, &app, err, sizeof err);
    CHECK(s != NULL);
    if (!s) return;
    app.srv = s;
    int port = http_server_port(s);
    tconn_t c[3];
    tresp_t r;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(tc_open(&c[i], port), 0);
        CHECK_EQ_INT(tc_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        CHECK_EQ_INT(tc_read(&c[i], &r, false), 0);
        CHECK_EQ_INT(r.status, 200);
        tr_free(&r);
    }
    /* a third: 503 with Retry-After (or refused outright) */
    CHECK_EQ_INT(tc_open(&c[2], port), 0);
    tc_sends(&c[2], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    if (tc_read(&c[2], &r, false) == 0) {
        char v[64];
        CHECK_EQ_INT(r.status, 503);
        CHECK(strstr(r.body, "the limit is 2") != NULL);
        CHECK(tr_hdr(&r, "Retry-After", v, sizeof v) != NULL);
        tr_free(&r);
    }
    tc_close(&c[2]);
    http_stats_t st;
    http_server_stats(s, &st);
    CHECK_EQ_INT(st.conn_limit, 1);
    /* idle connections time out (1 s), then there is room again */
    uint64_t t0 = mono_ns();
    tresp_t r2;
    CHECK_EQ_INT(tc_read(&c[0], &r2, false), -1); /* EOF: closed by the server */
    uint64_t waited = mono_ns() - t0;
    CHECK(waited > 300000000ull && waited < 4000000000ull);
    tc_close(&c[0]);
    tc_close(&c[1]);
    for (int i = 0; i < 100; i++) {
        http_server_stats(s, &st);
        if (st.connections_current == 0) break;
        sleep_ms(20);
    }
    CHECK_EQ_INT(st.connections_current, 0);
    CHECK_EQ_INT(do_get(port, "/hello", &r), 0);
    CHECK_EQ_INT(r.status, 200);
    tr_free(&r);
    /* the default body limit applies to routes without their own */
    CHECK_EQ_INT(do_req(port, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", &r), 0);
    CHECK(r.status == 413 && strstr(r.body, "limit of 1024 bytes"));
    tr_free(&r);
    http_server_stop(s);
    pthread_mutex_destroy(&app.mu);
}

typedef struct stop_client {
    int port;
    tresp_t r;
    int rc;
} stop_client_t;

static void *stop_client(void *p) {
    stop_client_t *sc = p;
    sc->rc = do_get(sc->port, "/block", &sc->r);
    return NULL;
}

/* stop lets an in-flight request answer, closes idle keep-alive connections */
static void test_stop(void) {
    http_config_t cfg = {.port = 0};
    char err[256];
    app_t app = {0};
    pthread_mutex_init(&app.mu, NULL);
    http_server_t *s = http_server_start(&cfg, routes, NROUTES, &app, err, sizeof err);
    CHECK(s != NULL);
    if (!s) return;
    app.srv = s;
    tconn_t idle;
    tresp_t r;
    CHECK_EQ_INT(tc_open(&idle, http_server_port(s)), 0);
    CHECK_EQ_INT(tc_sends(&idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    CHECK_EQ_INT(tc_read(&idle, &r, false), 0);
    tr_free(&r);
    stop_client_t sc = {.port = http_server_port(s)};
    pthread_t th;
    pthread_create(&th, NULL, stop_client, &sc);
    for (int i = 0; i < 200 && !__atomic_load_n(&app.blocked, __ATOMIC_SEQ_CST); i++) sleep_ms(5);
    uint64_t t0 = mono_ns();
    http_server_stop(s);
    CHECK(mono_ns() - t0 < 2000000000ull);
    pthread_join(th, NULL);
    CHECK_EQ_INT(sc.rc, 0);
    CHECK_EQ_INT(sc.r.status, 503);
    CHECK(sc.r.body && strstr(sc.r.body, "stopping"));
    tr_free(&sc.r);
    CHECK_EQ_INT(tc_read(&idle, &r, false), -1);
    tc_close(&idle);
    pthread_mutex_destroy(&app.mu);

    /* bad configurations */
    const http_route_t bad[] = {{"GET", "/a/*/b", h_hello, 0}};
    CHECK(http_server_start(&cfg, bad, 1, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "'*'") != NULL);
    http_config_t badhost = {.host = "no.such.host.invalid", .port = 0};
    CHECK(http_server_start(&badhost, routes, NROUTES, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "no.such.host.invalid") != NULL);
    http_server_stop(NULL);
}

int main(void) {
    log_quiet = 1;
    test_matcher();

    http_config_t cfg = {.host = "127.0.0.1", .port = 0, .max_body = 65536, .max_connections = 64,
                         .connection_timeout_s = 10};
    char err[256] = "";
    app_t app = {0};
    pthread_mutex_init(&app.mu, NULL);
    http_server_t *s = http_server_start(&cfg, routes, NROUTES, &app, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return check_done();
    }
    app.srv = s;
    http_server_set_observer(s, observe);
    int port = http_server_port(s);
    CHECK(port > 0);

    test_basic(port, &app);
    test_keepalive(port);
    test_bodies(port, s);
    test_blocking_and_stream(port, &app);

    http_stats_t st;
    http_server_stats(s, &st);
    CHECK(st.requests > 20 && st.by_class[2] > 15 && st.by_class[4] >= 5 && st.by_class[5] >= 1);
    CHECK(st.not_found >= 2 && st.bad_method >= 1 && st.bytes_in >= (1u << 20) && st.bytes_out > 100);
    CHECK(st.connections_total > 10);
    http_server_stop(s);
    pthread_mutex_destroy(&app.mu);

    test_conn_limit();
    test_stop();
    return check_done();
}
