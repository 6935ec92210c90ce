/* http.h - the HTTP server layer: routing, bodies, responses and limits on
 * top of libmicrohttpd. No poold logic lives here; the API handlers (api.c)
 * register a route table and fill responses with the helpers below.
 *
 * Threads: every connection has its own thread (MHD thread-per-connection),
 * so handlers, stream readers and the observer run concurrently on those
 * threads and may block (long-poll); they must be thread-safe with respect
 * to `app`. http_server_start/stop are called by the owner (main thread).
 *
 * Paths and captures: routing looks at the raw request path (before MHD's
 * decoding), split on literal '/'; each segment is percent-decoded exactly
 * once. So "/api/skus/A%2FB" matches "/api/skus/:sku" with sku = "A/B", a
 * literal segment may be written encoded ("/api/%70ools"), an encoded NUL
 * ("%00") never matches a capture, invalid escapes ("%zz") stay literal and
 * '+' stays '+' in the path. req->path is MHD's decoded path (for logs only:
 * there "%2F" has become '/'). Query args are MHD's: decoded, '+' = space. */
#ifndef POOLD_HTTP_H
#define POOLD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_ARGS 8 /* captures per pattern */

typedef struct http_req {
    const char *method;      /* "GET", "POST", ... */
    const char *path;        /* URL path, percent-decoded by MHD */
    const char *body;        /* NUL-terminated copy of the body (may be ""), owned by the server */
    size_t body_len;
    const char *remote_addr; /* "127.0.0.1" */
    /* private */
    void *priv_mhd;          /* struct MHD_Connection * */
    void *priv_conn;         /* the server's per-connection state */
} http_req_t;

/* Decoded query arg (first occurrence), "" for "?name" without '=', or NULL. */
const char *http_query(const http_req_t *req, const char *name);
/* Request header, case-insensitive name, or NULL. */
const char *http_header(const http_req_t *req, const char *name);
/* True once the client has closed its side or the socket failed: a blocking
 * handler (long-poll) can poll it to give up early. Cheap (one poll()). */
bool http_req_client_gone(const http_req_t *req);

/* The response a handler fills, valid only during the handler call and on
 * its thread. The last helper call wins (an earlier body is freed); headers
 * accumulate. A handler that sets nothing gets a 500. */
typedef struct http_resp http_resp_t;

/* Takes ownership of `body` (decref'd here, NULL gives a 500); compact dump,
 * Content-Type application/json, Cache-Control: no-store. */
void http_resp_json(http_resp_t *r, int status, json_t *body);
/* Copies text. */
void http_resp_text(http_resp_t *r, int status, const char *content_type, const char *text, size_t len);
/* Takes ownership of a malloc'd buffer (freed with free()). */
void http_resp_take(http_resp_t *r, int status, const char *content_type, char *buf, size_t len);
/* No copy: data must live as long as the server (embedded files). */
void http_resp_static(http_resp_t *r, int status, const char *content_type, const void *data, size_t len);
/* {"error": "<message>"} with Cache-Control: no-store; the message is
 * truncated at 1000 bytes, bytes that are not valid UTF-8 become '?'. */
void http_resp_error(http_resp_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds a response header (copied), e.g. Retry-After, Location, Allow. A
 * Cache-Control set here replaces the default one for JSON. Headers with
 * CR/LF are dropped by MHD. Content-Type is set by the helpers above. */
void http_resp_header(http_resp_t *r, const char *name, const char *value);

/* Streaming body (chunked with HTTP/1.1, close-delimited with 1.0), e.g.
 * Server-Sent Events. reader(cls, pos, buf, max) is called on the
 * connection's thread and returns:
 *   > 0  bytes written to buf (at most max); pos is the sum of all earlier
 *        returns;
 *   0    nothing yet: the server waits up to 10 ms for the client to hang up
 *        and calls again; while the server is stopping, 0 ends the stream;
 *   HTTP_STREAM_END (-1)    normal end (the chunked terminator is sent);
 *   HTTP_STREAM_ERROR (-2)  abort: the connection is closed at once.
 * A reader may also block (waiting for changes) but then should return
 * within a few seconds (e.g. an SSE ": keepalive\n\n" comment) so that a
 * gone client is noticed and http_server_stop is not held up.
 * free_cls(cls) (may be NULL) is called exactly once when the response is
 * done, whatever happened, including if the helper is overridden. */
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ERROR (-2)
typedef ssize_t (*http_reader_fn)(void *cls, uint64_t pos, char *buf, size_t max);
void http_resp_stream(http_resp_t *r, int status, const char *content_type, http_reader_fn reader,
                      void *cls, void (*free_cls)(void *));

/* Path patterns: literal segments and ":name" captures, e.g.
 * "/api/pools/:name/members/:sku"; a last segment that is just "*" (as in
 * "/static/" + "*") captures the rest of the path (possibly "", '/' kept,
 * decoded once). Captures come in order in
 * args[] (NULL-terminated, percent-decoded, never empty for ":name", never
 * containing NUL). The first route in table order that matches wins. */
typedef void (*http_handler_fn)(void *app, const http_req_t *req, const char *const *args,
                                http_resp_t *resp);
typedef struct http_route {
    const char *method;
    const char *pattern;
    http_handler_fn fn;
    size_t max_body; /* 0 = server default */
} http_route_t;

/* The pure matcher (no socket): index of the route matching method + raw
 * path, or -1 (then *method_mismatch = 1 if the path matches a route of
 * another method, else 0), or -2 if argbuf is too small (strlen(path) +
 * HTTP_MAX_ARGS + 1 bytes always suffice). args needs HTTP_MAX_ARGS + 1
 * slots. method_mismatch may be NULL. */
int http_route_match(const http_route_t *routes, size_t n, const char *method, const char *path,
                     const char **args, char *argbuf, size_t argbuf_len, int *method_mismatch);
/* Writes the methods of the routes matching path, "GET, HEAD, POST" style
 * (HEAD added after GET), into buf (always NUL-terminated if len > 0).
 * Returns the number of methods listed. */
size_t http_route_allow(const http_route_t *routes, size_t n, const char *path, char *buf, size_t len);
/* Checks a pattern's syntax; 0 or -1 with a reason in err. */
int http_pattern_check(const char *pattern, char *err, size_t errlen);
/* Percent-decodes src[0..len) into dst (room for len bytes; dst may equal
 * src): "%XX" (hex, any case) becomes one byte, anything else is copied.
 * Returns the decoded length; does not NUL-terminate. */
size_t http_percent_decode(char *dst, const char *src, size_t len);

typedef struct http_config {
    const char *host;              /* NULL = "127.0.0.1"; numeric IPv4/IPv6 or a name (IPv4 preferred) */
    int port;                      /* 0 = pick a free one */
    size_t max_body;               /* default request body limit, bytes (0 = 1 MiB) -> 413 */
    unsigned max_connections;      /* 0 = 256; more -> 503, and past max + max/8 + 4 refused */
    unsigned connection_timeout_s; /* 0 = 30; idle clients dropped, and clients whose request headers are
                                      not complete this long after the connection (or previous request) */
    unsigned threads;              /* unused: one thread per connection (see http.c) */
    size_t max_inflight_body;      /* request body bytes held at once by all connections (0 = 128 MiB) -> 503 */
} http_config_t;

typedef struct http_server http_server_t;

/* Starts listening and serving. routes (and their strings) are copied.
 * NULL with a reason in err on failure (bad pattern, bind error). */
http_server_t *http_server_start(const http_config_t *cfg, const http_route_t *routes, size_t nroutes,
                                 void *app, char *err, size_t errlen);
int http_server_port(const http_server_t *s); /* the bound port */
/* Graceful: stops accepting, lets in-flight requests finish and send (up
 * to 5 s), then closes every connection and waits for its thread (a handler
 * still blocked is waited for). Frees s; NULL is fine. */
void http_server_stop(http_server_t *s);
/* True once http_server_stop has begun: blocking handlers should return. */
bool http_server_stopping(const http_server_t *s);

/* Called after every handler (not for 404/405/413/503 answered by this
 * layer), on the connection's thread: pattern is the route's, took_ns the
 * handler's run time. Set it before traffic starts. */
typedef void (*http_observe_fn)(void *app, const char *pattern, int status, uint64_t took_ns);
void http_server_set_observer(http_server_t *s, http_observe_fn fn);

/* Called before every handler, on the connection's thread: returns 0 to run
 * the handler, or fills resp (e.g. 401/403) and returns -1. For access
 * control; set it before traffic starts. */
typedef int (*http_guard_fn)(void *app, const http_req_t *req, const http_route_t *route, http_resp_t *resp);
void http_server_set_guard(http_server_t *s, http_guard_fn fn);

typedef struct http_stats {
    uint64_t requests;            /* responses queued (handler or this layer) */
    uint64_t by_class[6];         /* by_class[k]: responses with status k xx, k = 1..5 */
    uint64_t body_too_large;      /* 413s */
    uint64_t inflight_refused;    /* 503s: request bodies in flight over max_inflight_body */
    uint64_t header_timeouts;     /* connections dropped: request headers not complete in time */
    uint64_t conn_limit;          /* 503s for the connection limit */
    uint64_t not_found;           /* 404s from routing */
    uint64_t bad_method;          /* 405s from routing */
    uint64_t aborted;             /* requests ended without a complete response (client gone, timeout, error) */
    uint64_t connections_current; /* open connections */
    uint64_t connections_total;   /* accepted since start */
    uint64_t bytes_in;            /* request body bytes received */
    uint64_t bytes_out;           /* response body bytes produced */
} http_stats_t;
void http_server_stats(const http_server_t *s, http_stats_t *out);

#endif
