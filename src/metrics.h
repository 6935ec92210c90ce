/* metrics.h - /metrics in the Prometheus text format (version 0.0.4).
 * Reads only atomics and a published view, plus one engine_call for memory
 * figures; safe from any HTTP thread. */
#ifndef POOLD_METRICS_H
#define POOLD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "engine.h"
#include "http.h"

/* Returns a malloc'd text; *len gets its length. */
char *metrics_render(engine_t *e, http_server_t *server, int64_t started_ms, size_t *len);

/* A growing text buffer and a line emitter for appending to the
 * exposition (kafka_feed_metrics, lifecycle_metrics). */
typedef struct metrics_buf {
    char *p;
    size_t len, cap;
} metrics_buf_t;
void metrics_emit(void *buf, const char *line);

#endif
