/* metrics.c - Prometheus exposition of the engine's counters; see metrics.h.
 * Names: poold_<what>_<unit>[_total]; one HELP and TYPE line per family. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lifecycle.h"
#include "metrics.h"
#include "api.h"
#include "util.h"

typedef metrics_buf_t buf_t;

static void bprintf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        b->p = xrealloc(b->p, b->cap);
    }
}

static void family(buf_t *b, const char *name, const char *type, const char *help) {
    bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

typedef struct mem_call {
    size_t total, store, tags, windows, lua;
} mem_call_t;

static void mem_on_writer(engine_t *e, void *arg) {
    mem_call_t *m = arg;
    m->total = engine_w_memory(e, &m->store, &m->tags, &m->windows, &m->lua);
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * 4096;
}

static void emit_line(void *arg, const char *line) { bprintf(arg, "%s", line); }

void metrics_emit(void *buf, const char *line) { emit_line(buf, line); }

char *metrics_render(engine_t *e, http_server_t *server, int64_t started_ms, size_t *len) {
    buf_t b = {xmalloc(16384), 0, 16384};
    const engine_stats_t *s = engine_stats(e);

    family(&b, "poold_events_accepted_total", "counter", "Input lines accepted, by op.");
    for (int op = 0; op < OP__COUNT; op++)
        bprintf(&b, "poold_events_accepted_total{op=\"%s\"} %llu\n", event_op_name((event_op_t)op),
                LD(s->accepted_by_op[op]));
    family(&b, "poold_events_applied_total", "counter", "Events applied by the writer.");
    bprintf(&b, "poold_events_applied_total %llu\n", LD(s->applied));
    family(&b, "poold_events_rejected_total", "counter", "Input lines rejected, by reason.");
    for (int r = 1; r < REJ__COUNT; r++)
        bprintf(&b, "poold_events_rejected_total{reason=\"%s\"} %llu\n", event_reject_name((event_reject_t)r),
                LD(s->rejected[r]));
    family(&b, "poold_window_events_stale_total", "counter",
           "Order/behaviour events older than every window when they arrived (not counted).");
    bprintf(&b, "poold_window_events_stale_total %llu\n", LD(s->stale_window_events));
    family(&b, "poold_ingest_queue_events", "gauge", "Events waiting for the writer.");
    bprintf(&b, "poold_ingest_queue_events %llu\n", LD(s->queued_events));
    family(&b, "poold_ingest_queue_bytes", "gauge", "NDJSON bytes waiting for the writer.");
    bprintf(&b, "poold_ingest_queue_bytes %llu\n", LD(s->queued_bytes));
    family(&b, "poold_ingest_queue_full_total", "counter", "Submissions refused because the queue was full.");
    bprintf(&b, "poold_ingest_queue_full_total %llu\n", LD(s->queue_full));
    family(&b, "poold_stale_field_writes_total", "counter",
           "Field groups an input did not overwrite because the stored value is newer (freshness tiers).");
    bprintf(&b, "poold_stale_field_writes_total %llu\n", LD(s->stale_field_writes));
    family(&b, "poold_tags_per_sku_limit_total", "counter",
           "Free tags refused because the SKU already has the maximum (256).");
    bprintf(&b, "poold_tags_per_sku_limit_total %llu\n", LD(s->tag_limit));

    family(&b, "poold_apply_batch_seconds", "histogram",
           "Writer time per cycle: apply the queued batches, re-evaluate pools, publish.");
    unsigned long long cum = 0;
    for (int i = 0; i < APPLY_HIST_BUCKETS; i++) {
        cum += LD(s->apply_hist[i]);
        bprintf(&b, "poold_apply_batch_seconds_bucket{le=\"%g\"} %llu\n", engine_apply_bucket_le[i], cum);
    }
    cum += LD(s->apply_hist[APPLY_HIST_BUCKETS]);
    bprintf(&b, "poold_apply_batch_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    bprintf(&b, "poold_apply_batch_seconds_sum %.9f\n", (double)LD(s->apply_sum_ns) / 1e9);
    bprintf(&b, "poold_apply_batch_seconds_count %llu\n", cum);
    family(&b, "poold_pool_full_recomputes_total", "counter", "Cycles that recomputed every pool in full.");
    bprintf(&b, "poold_pool_full_recomputes_total %llu\n", LD(s->full_recomputes));

    view_t *v = engine_acquire(e);
    family(&b, "poold_skus", "gauge", "Live SKUs.");
    bprintf(&b, "poold_skus %u\n", v->skus);
    family(&b, "poold_applied_seq", "gauge", "Input sequence number of the last applied event.");
    bprintf(&b, "poold_applied_seq %llu\n", (unsigned long long)v->applied_seq);
    family(&b, "poold_pool_size", "gauge", "Members per pool.");
    for (size_t i = 0; i < v->npools; i++)
        bprintf(&b, "poold_pool_size{pool=\"%s\"} %llu\n", v->pools[i]->name, (unsigned long long)v->pools[i]->size);
    family(&b, "poold_pool_seq", "gauge", "Membership change sequence number per pool.");
    for (size_t i = 0; i < v->npools; i++)
        bprintf(&b, "poold_pool_seq{pool=\"%s\"} %llu\n", v->pools[i]->name, (unsigned long long)v->pools[i]->seq);
    family(&b, "poold_rule_errors_total", "counter", "Rule evaluation errors per pool (SKU treated as not a member).");
    for (size_t i = 0; i < v->npools; i++)
        bprintf(&b, "poold_rule_errors_total{pool=\"%s\"} %llu\n", v->pools[i]->name,
                (unsigned long long)v->pools[i]->errors);
    engine_release(v);

    mem_call_t m = {0};
    if (engine_call(e, mem_on_writer, &m) == 0) {
        family(&b, "poold_memory_bytes", "gauge", "Bytes held by each part of the state (estimate).");
        bprintf(&b, "poold_memory_bytes{part=\"store\"} %zu\n", m.store);
        bprintf(&b, "poold_memory_bytes{part=\"tags\"} %zu\n", m.tags);
        bprintf(&b, "poold_memory_bytes{part=\"windows\"} %zu\n", m.windows);
        bprintf(&b, "poold_memory_bytes{part=\"lua\"} %zu\n", m.lua);
    }
    family(&b, "poold_resident_memory_bytes", "gauge", "Resident set size of the process.");
    bprintf(&b, "poold_resident_memory_bytes %ld\n", rss_bytes());
    engine_durability_stats_t ds;
    engine_durability_stats(e, &ds);
    if (ds.enabled) {
        family(&b, "poold_wal_appends_total", "counter", "Records appended to the write-ahead log.");
        bprintf(&b, "poold_wal_appends_total %llu\n", (unsigned long long)ds.wal_appends);
        family(&b, "poold_wal_bytes_total", "counter", "Bytes appended to the write-ahead log.");
        bprintf(&b, "poold_wal_bytes_total %llu\n", (unsigned long long)ds.wal_bytes);
        family(&b, "poold_wal_fsyncs_total", "counter", "fdatasync calls on the write-ahead log.");
        bprintf(&b, "poold_wal_fsyncs_total %llu\n", (unsigned long long)ds.wal_syncs);
        family(&b, "poold_wal_fsync_seconds_total", "counter", "Time spent in WAL fdatasync.");
        bprintf(&b, "poold_wal_fsync_seconds_total %.6f\n", ds.wal_sync_seconds);
        family(&b, "poold_wal_segments", "gauge", "WAL segment files on disk.");
        bprintf(&b, "poold_wal_segments %llu\n", (unsigned long long)ds.wal_segments);
        family(&b, "poold_durable_seq", "gauge", "Last input seq known to be on disk.");
        bprintf(&b, "poold_durable_seq %llu\n", (unsigned long long)ds.durable_seq);
        family(&b, "poold_snapshots_total", "counter", "Snapshots written.");
        bprintf(&b, "poold_snapshots_total %llu\n", (unsigned long long)ds.snapshots);
        family(&b, "poold_snapshot_failures_total", "counter", "Snapshots that failed.");
        bprintf(&b, "poold_snapshot_failures_total %llu\n", (unsigned long long)ds.snapshot_failures);
        family(&b, "poold_snapshot_seq", "gauge", "Input seq contained in the latest snapshot.");
        bprintf(&b, "poold_snapshot_seq %llu\n", (unsigned long long)ds.snapshot_seq);
        family(&b, "poold_snapshot_fork_seconds", "gauge", "Writer stall to fork the latest snapshot.");
        bprintf(&b, "poold_snapshot_fork_seconds %.6f\n", (double)ds.snapshot_fork_ns / 1e9);
    }
    lifecycle_metrics(e, emit_line, &b);
    family(&b, "poold_uptime_seconds", "gauge", "Seconds since start.");
    bprintf(&b, "poold_uptime_seconds %lld\n", (long long)((wall_ms() - started_ms) / 1000));
    if (server) {
        http_stats_t hs;
        http_server_stats(server, &hs);
        family(&b, "poold_http_requests_total", "counter", "HTTP responses, by status class.");
        for (int k = 1; k <= 5; k++)
            bprintf(&b, "poold_http_requests_total{class=\"%dxx\"} %llu\n", k, (unsigned long long)hs.by_class[k]);
        family(&b, "poold_limit_breaches_total", "counter",
               "Requests refused by a limit (body size 413, connection limit 503).");
        bprintf(&b, "poold_limit_breaches_total{limit=\"body_bytes\"} %llu\n", (unsigned long long)hs.body_too_large);
        bprintf(&b, "poold_limit_breaches_total{limit=\"connections\"} %llu\n", (unsigned long long)hs.conn_limit);
        bprintf(&b, "poold_limit_breaches_total{limit=\"header_timeout\"} %llu\n",
                (unsigned long long)hs.header_timeouts);
        bprintf(&b, "poold_limit_breaches_total{limit=\"page_size\",value=\"10000\"} %llu\n",
                (unsigned long long)atomic_load(&api_page_size_refused));
        uint64_t lp, ls;
        lifecycle_limit_breaches(&lp, &ls);
        bprintf(&b, "poold_limit_breaches_total{limit=\"pools\",value=\"512\"} %llu\n", (unsigned long long)lp);
        bprintf(&b, "poold_limit_breaches_total{limit=\"rule_source_bytes\",value=\"262144\"} %llu\n",
                (unsigned long long)ls);
        bprintf(&b, "poold_limit_breaches_total{limit=\"inflight_body_bytes\"} %llu\n",
                (unsigned long long)hs.inflight_refused);
        family(&b, "poold_http_aborted_total", "counter",
               "Requests ended without a complete response (client gone, timeout, slow headers).");
        bprintf(&b, "poold_http_aborted_total %llu\n", (unsigned long long)hs.aborted);
        family(&b, "poold_http_connections", "gauge", "Open HTTP connections.");
        bprintf(&b, "poold_http_connections %llu\n", (unsigned long long)hs.connections_current);
    }
    *len = b.len;
    return b.p;
}
