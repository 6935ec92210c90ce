/* api.h - the HTTP API of SPEC.md on top of http.h: routes and handlers.
 * Handlers run on HTTP threads: they read published views (engine_acquire),
 * submit events, or run short functions on the writer (engine_call) for the
 * few reads that need live rows. They never touch writer state directly. */
#ifndef POOLD_API_H
#define POOLD_API_H

#include <stddef.h>
#include "engine.h"
#include "http.h"

typedef struct api_config {
    size_t max_events_body;     /* POST /api/events body limit */
    size_t max_body;            /* other bodies */
    int submit_timeout_ms;      /* wait for queue room before 503 */
    const char *web_dir;        /* serve the console from here instead of the embedded copy */
} api_config_t;

typedef struct api {
    engine_t *engine;
    api_config_t cfg;
    int64_t started_ms;
    http_server_t *server;
} api_t;

/* The route table; app = api_t. */
const http_route_t *api_routes(size_t *n);

#endif
