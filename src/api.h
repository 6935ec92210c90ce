/* api.h - the HTTP API of SPEC.md on top of http.h: routes and handlers.
 * Handlers run on HTTP threads: they read published views (engine_acquire),
 * submit events, or run short functions on the writer (engine_call) for the
 * few reads that need live rows. They never touch writer state directly. */
#ifndef POOLD_API_H
#define POOLD_API_H

#include <stdatomic.h>
#include <stddef.h>
#include "engine.h"
#include "http.h"

typedef struct api_config {
    size_t max_events_body;     /* POST /api/events body limit */
    size_t max_body;            /* other bodies */
    int submit_timeout_ms;      /* wait for queue room before 503 */
    const char *web_dir;        /* serve the console from here instead of the embedded copy */
} api_config_t;

struct auth;
struct audit;
struct kafka_feed;

typedef struct api {
    engine_t *engine;
    struct auth *auth;          /* NULL: no --token-file, everything allowed */
    struct audit *audit;        /* rule changes; NULL = none */
    struct kafka_feed *kafka;   /* NULL without --kafka */
    /* Rates over the last second (api_sample_rates, once a second). */
    _Atomic double applied_per_s, rejected_per_s;
    uint64_t rate_applied, rate_rejected; /* sampler's previous totals */
    api_config_t cfg;
    int64_t started_ms;
    http_server_t *server;
} api_t;

/* Requests refused for a page size over the limit (for /metrics). */
extern atomic_uint_fast64_t api_page_size_refused;

/* The route table; app = api_t. */
const http_route_t *api_routes(size_t *n);
/* The access guard (http_server_set_guard): which permission each route
 * needs (SPEC "Access"; issue 7): reads open unless required, events need
 * ingest, rule changes editor, /api/admin admin. */
int api_guard(void *app, const http_req_t *req, const http_route_t *route, http_resp_t *resp);
/* Who made the request, for rule history and the audit log: the token's
 * name with --token-file, else the X-Poold-Author header, else "anonymous".
 * Valid on the handler's thread after api_guard. */
const char *api_principal(const http_req_t *req, char *buf, size_t len);
/* Samples the event rates for GET /api/stats (call once a second). */
void api_sample_rates(api_t *api);
/* Appends an audit record (no-op without an audit log). */
void api_audit(api_t *api, const http_req_t *req, const char *action, const char *target, const char *detail);

#endif
