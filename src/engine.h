/* engine.h - the writer: one thread that owns all mutable state (store,
 * tags, windows, pools, the rule VM) and applies events in order, in
 * batches; plus the bounded queue that feeds it and the read versions it
 * publishes.
 *
 * Input threads (HTTP, file loader) call engine_submit(): the NDJSON is
 * parsed and validated on the caller's thread (so parsing runs in parallel
 * with applying), rejected lines are counted and written to the dead-letter
 * file right there, accepted events get consecutive input sequence numbers
 * and are queued as one batch. The writer applies queued batches, then
 * re-evaluates every pool for the SKUs they touched (or recomputes pools in
 * full when most SKUs were touched), advances the windowed counters, and
 * publishes a new read version (publish.h) before it reports the batch
 * applied. Readers use engine_acquire()/engine_release() and never block the
 * writer; the few reads that need the live rows (one SKU's details) run on
 * the writer between two batches through engine_call().
 *
 * Bulk loads (ENGINE_DEFER_EVAL) only apply; the pools are brought up to
 * date once, when the load's last batch (ENGINE_END_BULK) is applied. */
#ifndef POOLD_ENGINE_H
#define POOLD_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "event.h"
#include "publish.h"
#include "wal.h"

typedef struct engine engine_t;

typedef struct engine_config {
    const char *rules_dir;      /* required */
    const char *data_dir;       /* dead letters etc.; created if missing */
    bool clock_event;           /* clock = largest ts applied, instead of the wall clock */
    size_t queue_max_events;    /* backpressure bound (events) */
    size_t queue_max_bytes;     /* backpressure bound (bytes of NDJSON) */
    size_t lua_mem_limit;       /* bytes for the rule VM */
    size_t changes_retention;   /* membership changes kept per pool (0 = POOL_LOG_DEFAULT_CAP) */
    bool durable;               /* WAL + snapshots in data_dir (durability.c) */
    wal_fsync_t fsync_mode;     /* when an acknowledged input is on disk */
    unsigned snapshot_every_s;  /* 0 = only on request and at shutdown */
} engine_config_t;

#define APPLY_HIST_BUCKETS 16
typedef struct engine_stats {
    atomic_uint_fast64_t accepted, applied, batches, stale_window_events, blank_lines;
    atomic_uint_fast64_t rejected[REJ__COUNT];
    atomic_uint_fast64_t accepted_by_op[OP__COUNT];
    atomic_uint_fast64_t apply_hist[APPLY_HIST_BUCKETS + 1]; /* last = +Inf */
    atomic_uint_fast64_t apply_sum_ns;
    atomic_uint_fast64_t queued_events, queued_bytes;
    atomic_uint_fast64_t rule_errors, full_recomputes;
    atomic_uint_fast64_t queue_full;
    atomic_uint_fast64_t tag_limit;  /* free tags refused: STORE_MAX_FREE_TAGS per SKU */
    atomic_uint_fast64_t stale_field_writes; /* field groups not overwritten by an older input */
} engine_stats_t;
extern const double engine_apply_bucket_le[APPLY_HIST_BUCKETS]; /* seconds */

engine_t *engine_new(const engine_config_t *cfg, char *err, size_t errlen);
/* Loads the rules, starts the writer. 0, or -1 with err. */
int engine_start(engine_t *e, char *err, size_t errlen);
void engine_stop(engine_t *e);     /* applies what is queued, stops the writer */
void engine_free(engine_t *e);

/* -- inputs (any thread) ------------------------------------------------ */
typedef struct ingest_error {
    uint64_t line;             /* 1-based within the submitted text (+ line_base) */
    event_reject_t reason;
    char msg[200];
} ingest_error_t;

typedef struct ingest_report {
    uint64_t accepted, rejected, lines;
    uint64_t last_seq;         /* input seq of the last accepted line, 0 if none */
    ingest_error_t *errors;    /* the first max_errors rejections (malloc'd) */
    size_t nerrors, max_errors;
} ingest_report_t;

enum {
    ENGINE_DEFER_EVAL = 1,     /* bulk load: apply only */
    ENGINE_END_BULK = 2,       /* after this batch, bring every pool up to date */
    ENGINE_NONBLOCKING = 4,    /* fail with EAGAIN instead of waiting for queue room */
};

/* Where a submit comes from, for dead letters, the WAL and Kafka offsets. */
typedef struct engine_input {
    const char *source;        /* "http", "file:catalog.ndjson", "kafka:events" */
    uint8_t kind;              /* WAL_SRC_HTTP, WAL_SRC_FILE, WAL_SRC_KAFKA */
    const char *kafka_topic;   /* kafka: the topic, partition and last offset */
    int32_t kafka_partition;
    int64_t kafka_offset;
    const int64_t *line_offsets; /* kafka: offset of each line (dead letters), or NULL */
    bool replay;               /* internal: WAL replay */
} engine_input_t;

int engine_submit_input(engine_t *e, const engine_input_t *in, char *buf, size_t len, uint64_t line_base,
                        int flags, int timeout_ms, ingest_report_t *rep);

/* Parses buf (takes ownership; freed by the engine), rejects invalid lines
 * (dead letters, counters, rep->errors), queues the rest. `source` names the
 * input in dead-letter records ("http", "file:catalog.ndjson"). Returns 0,
 * or -1 with errno EAGAIN (queue full, see flags / timeout_ms) or ESHUTDOWN.
 * The report is filled even on -1 (nothing was queued then: accepted = 0). */
int engine_submit(engine_t *e, char *buf, size_t len, const char *source, uint64_t line_base,
                  int flags, int timeout_ms, ingest_report_t *rep);
void ingest_report_free(ingest_report_t *rep);

/* Durability (WAL + snapshots; no-ops when cfg.durable is false). */
int engine_wait_durable(engine_t *e, uint64_t seq, int timeout_ms); /* 0, or -1 on timeout/IO error */
bool engine_acks_wait_for_disk(engine_t *e);
bool engine_durable(engine_t *e, uint64_t seq);  /* seq is on disk already */   /* fsync always|batch: acknowledge after the disk */
int engine_snapshot(engine_t *e, int timeout_ms, uint64_t *seq_out); /* writes one now and waits */
int64_t engine_kafka_offset(engine_t *e, const char *topic, int32_t partition); /* next to read, -1 none */
typedef struct kafka_offset {
    char topic[128];
    int32_t partition;
    int64_t next;
} kafka_offset_t;
size_t engine_kafka_offsets(engine_t *e, kafka_offset_t *out, size_t max);
typedef struct engine_durability_stats {
    bool enabled;
    uint64_t snapshots, snapshot_failures, snapshot_seq, wal_appends, wal_bytes, wal_syncs, wal_segments,
        durable_seq, snapshot_fork_ns;
    int64_t snapshot_at;
    double wal_sync_seconds;
} engine_durability_stats_t;
void engine_durability_stats(engine_t *e, engine_durability_stats_t *out);
/* Parses text with clock `now` and applies its valid events with input seqs
 * from first_seq, on the calling thread (WAL replay at start-up, before the
 * writer runs). Returns the number of events applied. */
uint32_t engine_apply_text(engine_t *e, char *buf, size_t len, int64_t now, uint64_t first_seq, const char *source,
                           uint8_t kind, int32_t partition, int64_t last_offset);

/* Waits until every event up to input seq `seq` is applied and published.
 * 0, or -1 on timeout. */
int engine_wait_applied(engine_t *e, uint64_t seq, int timeout_ms);
uint64_t engine_applied_seq(engine_t *e);
/* Writer cycles completed; engine_wait_cycle waits until the count is no
 * longer `seen` (0), or timeout (-1). Readers use them to wait for the next
 * publish without missing one. */
uint64_t engine_cycle(engine_t *e);
int engine_wait_cycle(engine_t *e, uint64_t seen, int timeout_ms);
/* Copies up to max membership changes of pool with seq > since into out
 * (names strdup'd: free with pool_changes_free). Returns 200, 404 (no such
 * pool), 410 (since is older than the retained changes) or 503. */
struct pool_change;
int engine_changes(engine_t *e, const char *pool, uint64_t since, struct pool_change *out, size_t max,
                   size_t *n, uint64_t *pool_seq, uint64_t *retained_from);
int64_t engine_clock(engine_t *e);

/* -- readers (any thread) --------------------------------------------------- */
view_t *engine_acquire(engine_t *e);
void engine_release(view_t *v);
const engine_stats_t *engine_stats(engine_t *e);
struct store;
const struct store *engine_store_for_readers(engine_t *e); /* only store_read_* */
bool engine_loading(engine_t *e);
/* Marks a bulk load as started (so /healthz says loading before its first batch). */
void engine_begin_bulk(engine_t *e);

/* Runs fn(e, arg) on the writer thread between two batches and waits for it.
 * fn may read and change state (it is the writer while it runs). */
int engine_call(engine_t *e, void (*fn)(engine_t *e, void *arg), void *arg);

/* -- writer-side accessors, valid only inside engine_call ---------------- */
struct tags;
struct windows;
struct store *engine_w_store(engine_t *e);
struct tags *engine_w_tags(engine_t *e);
struct windows *engine_w_windows(engine_t *e);
size_t engine_w_npools(engine_t *e);
struct pool *engine_w_pool(engine_t *e, size_t i);
/* Freshness: the SKU's field-group stamps (freshness.h), and the source of
 * an input seq (NULL when it is older than the ring of recent inputs). */
struct field_stamp;
struct source_entry;
const struct field_stamp *engine_w_stamp(engine_t *e, uint32_t id);
const struct source_entry *engine_w_source(engine_t *e, uint64_t seq);
size_t engine_w_memory(engine_t *e, size_t *store_b, size_t *tags_b, size_t *windows_b, size_t *lua_b);

#endif
