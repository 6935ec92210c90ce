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

#define POOL_LOG_CAP 65536

typedef struct pool_change {
    uint64_t seq;
    uint32_t sku;
    uint8_t joined;     /* 1 = add, 0 = remove */
} pool_change_t;

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
    pool_change_t *log; /* ring */
    size_t log_head, log_len;
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
    uint32_t *cand;
    uint8_t *out;
    double *score;
    size_t cap;
} pool_ctx_t;

/* Builds a pool from a compiled rule (takes ownership of def). Returns NULL
 * and fills err (e.g. a bad `where`) on failure; def is then released. */
pool_t *pool_new(pool_ctx_t *ctx, rule_def_t *def, const char *source, char *err, size_t errlen);
void pool_free(pool_t *p, rulevm_t *vm);

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

#endif
