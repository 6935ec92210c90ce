/* pools.h - one product pool: its compiled rule, its live membership, its
 * change log with per-pool sequence numbers, and its published read form.
 *
 * Writer thread only. Membership is
 *     live & where & match & !exclude  |  live & pin & !exclude   (while active)
 * and empty while the rule's `active` schedule says the pool is off.
 * Every change of membership (a SKU joins or leaves) takes the pool's next
 * sequence number and is appended to the change log (a ring of the latest
 * POOL_LOG_CAP changes), which the change feed serves.
 *
 * Two ways to evaluate, same result: pool_eval_ids() for the SKUs a batch
 * touched (membership checks on the tag bitmaps, then `match` over the
 * survivors in one call into Lua) and pool_recompute() for everything
 * (bitmap algebra for `where`, then `match` over the candidates). */
#ifndef POOLD_POOLS_H
#define POOLD_POOLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <roaring/roaring.h>
#include "epoch.h"
#include "publish.h"
#include "rank_index.h"
#include "rulevm.h"
#include "store.h"
#include "tagexpr.h"
#include "tags.h"

#define POOL_LOG_DEFAULT_CAP 100000 /* changes retained per pool unless configured */
#define POOL_CHANGE_INLINE_NAME 23

/* Why a SKU joined or left (explain, change feed). */
typedef enum pool_cause {
    CAUSE_EVENT,    /* an input event on the SKU: ref = its input sequence number */
    CAUSE_TICK,     /* windowed counters fell with time: ref = 0 */
    CAUSE_PUBLISH,  /* a rule version went live (file reload, publish, rollback, delete): ref = version */
    CAUSE_SCHEDULE, /* the rule's `active` window opened or closed: ref = version */
} pool_cause_t;
const char *pool_cause_name(pool_cause_t c);

/* One membership change. The SKU's external id is copied (inline when
 * short): the internal id may be reused by another SKU after a delete. */
typedef struct pool_change {
    uint64_t seq;
    uint64_t cause_ref;
    int64_t at;         /* engine clock, ms */
    uint32_t sku;       /* internal id at the time of the change */
    uint8_t joined;     /* 1 = add, 0 = remove */
    uint8_t cause;      /* pool_cause_t */
    uint8_t heap;       /* name.heap is malloc'd */
    union {
        char inline_name[POOL_CHANGE_INLINE_NAME + 1];
        char *heap;
    } name;
} pool_change_t;

static inline const char *pool_change_name(const pool_change_t *c) {
    return c->heap ? c->name.heap : c->name.inline_name;
}

/* Per-rule evaluation cost, read by /metrics and /api/rules while the
 * writer updates it (relaxed atomics). Owned by the pool; it outlives the
 * pool's last published view (see pool_retire). */
#define POOL_COST_BUCKETS 12
extern const double pool_cost_bucket_le[POOL_COST_BUCKETS]; /* seconds per evaluation call */
typedef struct pool_cost {
    atomic_uint_fast64_t evaluations;  /* SKUs passed to match/rank */
    atomic_uint_fast64_t calls;        /* evaluation calls (one per batch and pool) */
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t ns;           /* time in match/rank */
    atomic_uint_fast64_t hist[POOL_COST_BUCKETS + 1];
} pool_cost_t;

typedef struct pool {
    char *name;
    char *source;       /* the rule's Lua text */
    uint32_t version;   /* 1, 2, ... */
    rule_def_t *def;
    tagexpr_t *where;
    uint32_t bound_tag_count; /* tags_count() when `where` was bound to tag ids */
    roaring_bitmap_t *members;
    uint64_t seq;
    int64_t updated_at;
    bool active;
    int64_t schedule_checked_at; /* clock when `active` was last set */
    /* What can change this pool's answer for a SKU besides catalog/tag
     * changes: VIEW_READ_* bits its rule has read so far (sticky: a result
     * depends only on what its evaluation read, so the union over every
     * evaluation is a safe over-approximation), plus VIEW_READ_STOCK when
     * `where` names in_stock. */
    uint32_t reads;
    /* Ranked pools (rule with `rank`): every candidate (live, where, match,
     * not excluded) by rank; the members are the pins, then the first
     * `limit` candidates (all of them without a limit), in that order. */
    rank_index_t *ranking;
    uint32_t *order;
    size_t norder, order_cap;
    pool_change_t *log; /* ring, grows to ctx->log_max */
    size_t log_head, log_len, log_cap;
    /* Sizes at the end of each of the last 60 minutes (ring), joins and
     * leaves in the current and the last full minute. */
    uint32_t size_1h[60];
    uint32_t size_1h_len;
    int64_t minute;
    uint32_t joins_now, leaves_now, joins_1m, leaves_1m;
    /* Set by the rule lifecycle (lifecycle.c) for readers. */
    int64_t published_at;
    char *author;
    char *compile_error; /* the file's last failed reload ("file:line: msg"), live version kept */
    pool_cost_t *cost;
    bool shadow;        /* a rule version being computed: no change log */
    uint64_t errors_now, errors_recent; /* rule errors this minute / the last one */
    uint64_t errors;
    char *last_error;
    bool view_stale;    /* changed since the last publish */
    pool_view_t *view;  /* last published, owned until retired */
} pool_t;

/* What evaluation needs from the engine; scratch buffers grow on demand. */
typedef struct pool_ctx {
    store_t *store;
    tags_t *tags;
    rulevm_t *vm;
    view_roots_t *roots;  /* reads: which kinds of fields the rule read */
    int64_t now;
    /* Cause of the changes being recorded: CAUSE_EVENT means "the SKU's
     * last event if it came after event_floor, else a tick". */
    pool_cause_t cause;
    uint64_t cause_ref;
    const uint64_t *event_seq;  /* last input seq per internal id */
    size_t event_seq_len;
    uint64_t event_floor;
    size_t log_max;             /* change log retention per pool */
    uint32_t *cand;
    uint8_t *out;
    double *score;
    size_t cap;
} pool_ctx_t;

/* Builds a pool from a compiled rule (takes ownership of def). Returns NULL
 * and fills err (e.g. a bad `where`) on failure; def is then released. */
pool_t *pool_new(pool_ctx_t *ctx, rule_def_t *def, const char *source, char *err, size_t errlen);
/* Frees a pool that no published view shows. */
void pool_free(pool_t *p, rulevm_t *vm);
/* Frees a pool that the current view may still show: its last view and
 * cost go to rl (freed once no reader holds them). */
void pool_retire(pool_t *p, rulevm_t *vm, retire_list_t *rl);

/* Makes shadow's rule and membership live in p (the pool readers know),
 * recording every difference as a change of p caused by ctx->cause; shadow
 * is freed. p keeps its name, seq, change log and published view. */
void pool_adopt(pool_t *p, pool_t *shadow, pool_ctx_t *ctx, rulevm_t *vm);
/* A new pool goes live: its members so far become joins (cause from ctx). */
void pool_go_live(pool_t *p, pool_ctx_t *ctx);
/* Empties the pool (its members leave, cause from ctx). */
void pool_clear(pool_t *p, pool_ctx_t *ctx);
/* Advances the per-minute statistics to ctx->now. */
void pool_tick_minute(pool_t *p, int64_t now);
/* The newest change of SKU id `sku` whose name is `name`, or NULL. */
const pool_change_t *pool_last_change(const pool_t *p, uint32_t sku, const char *name);
/* Copies up to max changes with seq > since (oldest first) into out, names
 * strdup'd into out[i].name.heap (heap = 1); returns the count. The caller
 * frees the names with pool_changes_free. */
size_t pool_changes_copy(const pool_t *p, uint64_t since, pool_change_t *out, size_t max);
void pool_changes_free(pool_change_t *c, size_t n);
/* Oldest seq still in the change log (seq + 1 when it is empty). */
uint64_t pool_changes_retained_from(const pool_t *p);

/* Re-evaluates the sorted, distinct ids; records changes. The engine passes
 * each pool only the SKUs whose changes it can see (pool_t.reads). */
void pool_eval_ids(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n);
/* Recomputes the whole pool; records changes. */
void pool_recompute(pool_t *p, pool_ctx_t *ctx);
/* Re-checks the schedule at ctx->now; recomputes when it flips. */
void pool_tick_schedule(pool_t *p, pool_ctx_t *ctx);
/* The pool's current read form: a new frozen copy when it changed since the
 * last call (the old one goes to rl), else the same pointer. */
pool_view_t *pool_publish(pool_t *p, retire_list_t *rl);

void pool_ctx_free(pool_ctx_t *ctx);

/* Snapshots: a pool's membership, seq and change log (the rule itself is
 * in the rule history). pool_restore, before the first recompute of a pool
 * built from the same rule name at start-up, makes the pool continue from
 * the saved seq: the recompute then records only what changed since. */
#include "snapshot.h"
typedef struct pool_saved {
    char name[72];
    uint32_t version;
    uint64_t seq;
    int64_t updated_at;
    roaring_bitmap_t *members;
    pool_change_t *log;
    size_t nlog;
} pool_saved_t;
int pool_snap_write(const pool_t *p, snap_writer_t *w);
pool_saved_t *pool_snap_read(snap_reader_t *r);  /* NULL on a bad section (snap_error) */
void pool_saved_free(pool_saved_t *s);
void pool_restore(pool_t *p, pool_saved_t *s, pool_ctx_t *ctx); /* takes s's members and log */
/* After a crash, changes made after the snapshot were lost: the seq jumps by
 * gap and the log is emptied, so every follower gets 410 resync instead of
 * silently missing a change. */
void pool_skip_seq(pool_t *p, uint64_t gap);

#endif
