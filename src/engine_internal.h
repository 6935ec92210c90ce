/* engine_internal.h - the engine's state, shared by the files that make up
 * the writer: engine.c (queue, apply loop, publish) and lifecycle.c (rule
 * versions, drafts, preview/publish jobs, explain). Nothing else includes
 * it; the rest of poold uses engine.h.
 *
 * Every field below "writer-owned state" is touched only by the writer
 * thread or a function it runs (engine_call). */
#ifndef POOLD_ENGINE_INTERNAL_H
#define POOLD_ENGINE_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>
#include <roaring/roaring.h>
#include "deadletter.h"
#include "freshness.h"
#include "engine.h"
#include "pools.h"
#include "rulevm.h"
#include "store.h"
#include "tags.h"
#include "windows.h"

struct rulebook;
struct rule_job;
struct rules_watch;

#define WRITER_MAX_EVENTS_PER_CYCLE 65536
#define TICK_MS 250

typedef struct batch {
    struct batch *next;
    char *buf;
    event_t *events;
    uint32_t n;
    int flags;
    uint64_t first_seq;
    size_t bytes;
    char *kafka_topic;        /* Kafka input: offsets to record when applied */
    int32_t kafka_partition;
    int64_t kafka_offset;
    int64_t *ev_offsets;      /* Kafka: offset of each event (freshness sources) */
    uint8_t kind;             /* WAL_SRC_* */
    char *source;             /* input name for the source ring */
} batch_t;

typedef struct call {
    void (*fn)(engine_t *e, void *arg);
    void *arg;
    bool done;
    struct call *next;
} call_t;

struct engine {
    engine_config_t cfg;
    char *rules_dir, *data_dir;

    /* queue (lock) */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;     /* writer waits for work */
    pthread_cond_t roomcond;  /* producers wait for room */
    batch_t *qhead, *qtail;
    size_t q_events, q_bytes;
    uint64_t next_seq;        /* last assigned input seq */
    call_t *calls;
    pthread_cond_t callcond;
    bool stopping;

    /* applied (alock) */
    pthread_mutex_t alock;
    pthread_cond_t acond;
    uint64_t cycles;          /* writer cycles completed (alock) */
    _Atomic uint64_t applied_seq;
    _Atomic int64_t clock_ms;
    _Atomic bool loading;

    pthread_t writer;
    bool writer_running;

    /* writer-owned state */
    tags_t *tags;
    store_t *store;
    windows_t *windows;
    rulevm_t *vm;
    view_roots_t roots;
    pool_ctx_t pctx;
    pool_t **pools;           /* sorted by name */
    size_t npools;
    uint64_t *event_seq;      /* last input seq per internal id (change causes) */
    size_t event_seq_cap;
    field_stamp_t *stamps;    /* per internal id: ts and seq of each field group (freshness.h) */
    source_ring_t *sources;   /* recent inputs, to name a field's source */
    struct rulebook *rulebook;
    struct rule_job *jobs;    /* rule versions being recomputed (lifecycle.c) */
    struct rules_watch *watch;
    atomic_uint_fast64_t rule_reload_failures;

    /* durability (durability.c) */
    bool durable, writer_started;
    bool unclean_restart;     /* the last run did not stop cleanly: pools' changes since the snapshot were lost */
    uint64_t generation;      /* starts of this data directory (DATA/state) */
    int lock_fd;              /* DATA/lock, flock'd */
    struct wal *wal;
    pthread_t syncer;
    pthread_cond_t synccond;  /* with qlock: appended, not yet synced */
    bool syncer_running, syncer_stop;
    pthread_mutex_t offsets_lock;
    kafka_offset_t *offsets;  /* applied Kafka offsets (next to read) */
    size_t noffsets;
    pool_saved_t **saved;     /* pools from the snapshot, until lifecycle_load takes them */
    size_t nsaved;
    pid_t snapshot_child;
    uint64_t snapshot_pending_seq, snapshot_started_ns;
    uint64_t snapshot_done_count; /* alock */
    atomic_bool snapshot_requested;
    atomic_uint_fast64_t snapshot_seq, snapshots_written, snapshot_failures, snapshot_fork_ns;
    _Atomic int64_t snapshot_at;
    char **rule_failures;     /* NULL-terminated */
    size_t nrule_failures;
    /* SKUs touched since the last evaluation, by what changed: anything
     * (dirty), or only their windowed counters / price fields / stock
     * (dirty_by[VIEW_READ_* bit index]); a pool sees the latter only if its
     * rule reads that kind of field (pool_t.reads). */
    roaring_bitmap_t *dirty;
    roaring_bitmap_t *dirty_by[3];
    bool deferred;            /* a bulk load is deferring evaluation */
    retire_list_t retired;    /* objects the next publish retires */
    uint64_t publish_version;
    uint64_t pending_seq;     /* applied, not yet published */

    publisher_t pub;
    deadletter_t *dl;
    engine_stats_t stats;
};


/* Refreshes the FFI roots and ctx->now before evaluating (writer). */
void engine_refresh_roots(engine_t *e);

#endif
