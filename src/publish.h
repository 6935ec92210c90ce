/* publish.h - the immutable read versions that reader threads use.
 *
 * After every batch the writer builds a view_t: the pools as of that batch
 * (each pool_view_t immutable, shared with the previous view when the pool
 * did not change), the tag bitmaps (tagview_t), and a few counters. Readers
 * take a view with publish_acquire() and give it back with
 * publish_release(); while they hold it, nothing it points to is freed or
 * changed.
 *
 * Reclamation: objects the writer replaces while building version N+1 were
 * visible in version N, so they are retired onto N's list; the writer runs a
 * version's list once that version and every older one have no readers
 * (versions are kept in publish order). The only lock is a mutex around
 * "load the current pointer + take a reference", held for nanoseconds by
 * readers and by the writer's pointer swap; the writer never waits for a
 * reader's work.
 *
 * Writer: publish_new/publish_swap/publish_collect/publish_free.
 * Readers: publish_acquire/publish_release (any thread). */
#ifndef POOLD_PUBLISH_H
#define POOLD_PUBLISH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <roaring/roaring.h>
#include "epoch.h"
#include "tags.h"

typedef struct pool_view {
    char *name, *title, *file, *where;
    uint32_t version;
    roaring_bitmap_t *members;  /* frozen */
    uint64_t size, seq;         /* seq: last membership change sequence number */
    int64_t updated_at;         /* ms, last membership change */
    int64_t active_from, active_to;
    bool active, has_match, has_rank;
    long limit;
    uint64_t errors;            /* rule evaluation errors so far */
    bool failing;               /* errors this minute or the last one */
    int64_t clock_at_publish;   /* engine clock when this view was made */
    char *last_error;           /* "file:line: message" or NULL */
    uint64_t changes_retained_from; /* oldest seq still in the change log */
    uint32_t *order;            /* ranked pools: the members in rank order (pins first); else NULL */
    size_t norder;
    uint32_t size_1h[60];       /* size at the end of each of the last minutes, oldest first */
    uint32_t size_1h_len;
    uint32_t joins_1m, leaves_1m; /* in the last full minute */
    int64_t published_at;       /* ms, when the live version was published (0 = at start) */
    char *author;               /* of the live version */
    char *compile_error;        /* the rule file's last failed reload, or NULL */
    struct pool_cost *cost;     /* live counters, not owned (see pools.h) */
} pool_view_t;

void pool_view_free(pool_view_t *pv);
/* "live", "scheduled" (before its window), "inactive" (outside it),
 * "failing" (rule errors in the last minutes, or its file failed to
 * reload while the previous version stays live). */
const char *pool_view_state(const pool_view_t *pv);

typedef struct view {
    uint64_t version;           /* publish counter */
    atomic_uint refs;
    struct view *next;          /* newer */
    retire_list_t retired;      /* run when this and every older view are unused */
    tagview_t *tags;
    pool_view_t **pools;
    size_t npools;
    uint64_t applied_seq;       /* input sequence number of the last applied event */
    int64_t clock_ms;
    uint32_t skus;
    bool loading;
} view_t;

typedef struct publisher {
    pthread_mutex_t lock;
    view_t *current;            /* guarded by lock for readers */
    view_t *oldest;             /* writer only */
} publisher_t;

void publish_init(publisher_t *p);
/* Makes v current (v->refs is set to 1 for the publisher's own reference);
 * the previous current view gets `retired` (objects it showed that v does
 * not) and loses the publisher's reference. */
void publish_swap(publisher_t *p, view_t *v, retire_list_t *retired);
/* Frees unused old views and runs their retire lists. Writer only. */
void publish_collect(publisher_t *p);
/* Tears everything down; no reader may remain. */
void publish_destroy(publisher_t *p);

view_t *publish_acquire(publisher_t *p);   /* never NULL once a view was published */
void publish_release(view_t *v);
/* Finds a pool by name in a view, or NULL. */
const pool_view_t *view_pool(const view_t *v, const char *name);

#endif
