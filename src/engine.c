/* engine.c - the writer thread, its input queue, event application, pool
 * re-evaluation and publishing; see engine.h for the model.
 *
 * Invariants:
 *  - Only the writer thread (or a function it runs through engine_call)
 *    touches store, tags, windows, pools and the rule VM.
 *  - Input sequence numbers are assigned under the queue lock, so queue
 *    order = sequence order = apply order.
 *  - applied_seq is stored (and waiters woken) only after the view that
 *    contains those events is published: a client told "applied" reads its
 *    own writes.
 *  - A SKU touched by a batch is re-evaluated for every pool before the
 *    batch is published; a pool never shows a half-applied batch. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "deadletter.h"
#include "engine.h"
#include "engine_internal.h"
#include "durability.h"
#include "lifecycle.h"
#include "ndjson.h"
#include "pools.h"
#include "rulevm.h"
#include "store.h"
#include "tags.h"
#include "util.h"
#include "windows.h"

const double engine_apply_bucket_le[APPLY_HIST_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,   0.1,     0.25,   0.5,   1,     2.5,    10};

/* The CLOCK_REALTIME time `ms` from now, for pthread_cond_timedwait. */
static struct timespec deadline_after(int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* -- roots callbacks for the Lua view (writer thread) ------------------ */

static int roots_has_tag(void *ctx, uint32_t sku, const char *tag, size_t len) {
    engine_t *e = ctx;
    uint32_t id;
    if (tags_find(e->tags, tag, len, &id) != 0) return 0;
    return tags_has(e->tags, id, sku) ? 1 : 0;
}

static void roots_attr_get(void *ctx, uint32_t sku, const char *name, size_t len, attr_value_t *out) {
    engine_t *e = ctx;
    store_attr_get(e->store, sku, name, len, out);
}

static const char *roots_sku_name(void *ctx, uint32_t sku) {
    engine_t *e = ctx;
    const char *n = store_name(e->store, sku);
    return n ? n : "";
}

static void refresh_roots(engine_t *e) {
    e->roots.rows = store_rows(e->store);
    e->roots.win = windows_sums(e->windows);
    e->roots.dims = store_dims(e->store);
    e->pctx.now = atomic_load(&e->clock_ms);
    e->pctx.event_seq = e->event_seq;
    e->pctx.event_seq_len = e->event_seq_cap;
}

void engine_refresh_roots(engine_t *e) { refresh_roots(e); }

/* Remembers the input seq of the last event on each SKU (change causes). */
static void note_event_seq(engine_t *e, uint32_t id, uint64_t seq) {
    if (id >= e->event_seq_cap) {
        size_t cap = e->event_seq_cap ? e->event_seq_cap : 4096;
        while (cap <= id) cap *= 2;
        e->event_seq = xrealloc(e->event_seq, cap * sizeof *e->event_seq);
        memset(e->event_seq + e->event_seq_cap, 0, (cap - e->event_seq_cap) * sizeof *e->event_seq);
        e->stamps = xrealloc(e->stamps, cap * sizeof *e->stamps);
        memset(e->stamps + e->event_seq_cap, 0, (cap - e->event_seq_cap) * sizeof *e->stamps);
        e->event_seq_cap = cap;
    }
    e->event_seq[id] = seq;
}

/* -- construction ---------------------------------------------------------- */

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

engine_t *engine_new(const engine_config_t *cfg, char *err, size_t errlen) {
    engine_t *e = xcalloc(1, sizeof *e);
    e->cfg = *cfg;
    if (!e->cfg.queue_max_events) e->cfg.queue_max_events = 1000000;
    if (!e->cfg.queue_max_bytes) e->cfg.queue_max_bytes = 256u << 20;
    if (!e->cfg.lua_mem_limit) e->cfg.lua_mem_limit = 512u << 20;
    e->rules_dir = xstrdup(cfg->rules_dir ? cfg->rules_dir : "rules");
    e->data_dir = xstrdup(cfg->data_dir ? cfg->data_dir : "data");
    e->cfg.rules_dir = e->rules_dir;
    e->cfg.data_dir = e->data_dir;
    if (mkdir_p(e->data_dir) != 0) {
        snprintf(err, errlen, "cannot create data directory %s: %s", e->data_dir, strerror(errno));
        free(e->rules_dir);
        free(e->data_dir);
        free(e);
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/deadletter.ndjson", e->data_dir);
    e->dl = deadletter_open(path, err, errlen);
    if (!e->dl) {
        free(e->rules_dir);
        free(e->data_dir);
        free(e);
        return NULL;
    }
    pthread_mutex_init(&e->qlock, NULL);
    pthread_cond_init(&e->qcond, NULL);
    pthread_cond_init(&e->roomcond, NULL);
    pthread_cond_init(&e->callcond, NULL);
    pthread_mutex_init(&e->alock, NULL);
    pthread_cond_init(&e->acond, NULL);
    e->lock_fd = -1;
    pthread_mutex_init(&e->offsets_lock, NULL);
    pthread_cond_init(&e->synccond, NULL);
    atomic_init(&e->applied_seq, 0);
    atomic_init(&e->clock_ms, cfg->clock_event ? 0 : wall_ms());
    atomic_init(&e->loading, false);
    publish_init(&e->pub);
    e->tags = tags_new();
    e->store = store_new(e->tags);
    e->windows = windows_new();
    e->dirty = roaring_bitmap_create();
    e->sources = xcalloc(1, sizeof *e->sources);
    for (int k = 0; k < 3; k++) e->dirty_by[k] = roaring_bitmap_create();
    e->roots.ctx = e;
    e->roots.has_tag = roots_has_tag;
    e->roots.attr_get = roots_attr_get;
    e->roots.sku_name = roots_sku_name;
    refresh_roots(e);
    rule_error_t rerr;
    e->vm = rulevm_new(&e->roots, e->cfg.lua_mem_limit, &rerr);
    if (!e->vm) {
        snprintf(err, errlen, "cannot start the rule VM: %s", rerr.msg);
        engine_free(e);
        return NULL;
    }
    e->pctx.store = e->store;
    e->pctx.tags = e->tags;
    e->pctx.vm = e->vm;
    e->pctx.roots = &e->roots;
    e->pctx.log_max = cfg->changes_retention;
    e->pctx.cause = CAUSE_EVENT;
    return e;
}

static void batch_free(batch_t *b) {
    free(b->buf);
    free(b->events);
    free(b->kafka_topic);
    free(b->source);
    free(b->ev_offsets);
    free(b);
}

void engine_free(engine_t *e) {
    if (!e) return;
    if (e->writer_running) engine_stop(e);
    while (e->qhead) {
        batch_t *b = e->qhead;
        e->qhead = b->next;
        batch_free(b);
    }
    publish_destroy(&e->pub);
    retire_run(&e->retired);
    retire_free(&e->retired);
    for (size_t i = 0; i < e->npools; i++) pool_free(e->pools[i], e->vm);
    free(e->pools);
    lifecycle_free(e);
    durability_close(e);
    durability_free(e);
    free(e->event_seq);
    free(e->stamps);
    if (e->sources) source_ring_free(e->sources);
    free(e->sources);
    pool_ctx_free(&e->pctx);
    rulevm_free(e->vm);
    windows_free(e->windows);
    store_free(e->store);
    tags_free(e->tags);
    roaring_bitmap_free(e->dirty);
    for (int k = 0; k < 3; k++) roaring_bitmap_free(e->dirty_by[k]);
    deadletter_close(e->dl);
    free(e->rules_dir);
    free(e->data_dir);
    pthread_mutex_destroy(&e->qlock);
    pthread_cond_destroy(&e->qcond);
    pthread_cond_destroy(&e->roomcond);
    pthread_cond_destroy(&e->callcond);
    pthread_mutex_destroy(&e->alock);
    pthread_cond_destroy(&e->acond);
    free(e);
}

/* -- applying events --------------------------------------------------------- */

static void advance_clock(engine_t *e, int64_t ts) {
    if (ts > atomic_load_explicit(&e->clock_ms, memory_order_relaxed))
        atomic_store_explicit(&e->clock_ms, ts, memory_order_relaxed);
}

/* Sets the fields of the groups in `groups` from ev (a full record also
 * resets what it lacks in those groups to the defaults). */
static void set_groups(engine_t *e, uint32_t id, const event_t *ev, unsigned groups, bool record) {
    store_t *st = e->store;
    uint32_t h = ev->has;
    if (groups & (1u << FG_CATALOG)) {
        if (h & EV_MARKET) store_set_dim(st, id, DIM_MARKET, ev->market.p, ev->market.len);
        else if (record) store_set_dim(st, id, DIM_MARKET, "", 0);
        if (h & EV_CATEGORY) store_set_dim(st, id, DIM_CATEGORY, ev->category.p, ev->category.len);
        else if (record) store_set_dim(st, id, DIM_CATEGORY, "", 0);
        if (h & EV_BRAND) store_set_dim(st, id, DIM_BRAND, ev->brand.p, ev->brand.len);
        else if (record) store_set_dim(st, id, DIM_BRAND, "", 0);
        if (h & EV_SELLER) store_set_dim(st, id, DIM_SELLER, ev->seller.p, ev->seller.len);
        else if (record) store_set_dim(st, id, DIM_SELLER, "", 0);
        if (h & EV_RATING || record) store_set_rating(st, id, h & EV_RATING ? ev->rating : 0);
        if (h & EV_REVIEWS || record) store_set_reviews(st, id, h & EV_REVIEWS ? ev->reviews : 0);
        if (h & EV_LAZMALL || record) store_set_flag(st, id, true, (h & EV_LAZMALL) && ev->lazmall);
        if (h & EV_FREE_SHIPPING || record) store_set_flag(st, id, false, (h & EV_FREE_SHIPPING) && ev->free_shipping);
    }
    if (groups & (1u << FG_PRICE)) {
        if (h & EV_PRICE || record) store_set_price(st, id, h & EV_PRICE ? ev->price : 0);
        if (h & EV_LIST_PRICE || record) store_set_list_price(st, id, h & EV_LIST_PRICE ? ev->list_price : 0);
    }
    if ((groups & (1u << FG_STOCK)) && (h & EV_STOCK || record)) store_set_stock(st, id, h & EV_STOCK ? ev->stock : 0);
    if (groups & (1u << FG_TAGS)) {
        if (h & EV_TAGS) store_set_free_tags(st, id, ev->tags.p, ev->tags.n);
        else if (record) store_set_free_tags(st, id, NULL, 0);
    }
    if (groups & (1u << FG_ATTRS)) {
        if (h & EV_ATTRS) store_set_attrs(st, id, ev->attrs.p, ev->attrs.len);
        else if (record) store_set_attrs(st, id, NULL, 0);
    }
}

/* Freshness tiers: applies the groups of ev that are not newer in the
 * store than ev's ts; counts the rest as stale writes. */
static void set_fields(engine_t *e, uint32_t id, const event_t *ev, uint64_t seq, bool record) {
    unsigned want = record ? (1u << FG__COUNT) - 1 : freshness_groups(ev), apply = 0;
    field_stamp_t *fs = &e->stamps[id];
    for (int g = 0; g < FG__COUNT; g++) {
        if (!(want & (1u << g))) continue;
        if (ev->ts < fs->ts[g]) {
            atomic_fetch_add_explicit(&e->stats.stale_field_writes, 1, memory_order_relaxed);
            continue;
        }
        fs->ts[g] = ev->ts;
        fs->seq[g] = seq;
        apply |= 1u << g;
    }
    if (apply) set_groups(e, id, ev, apply, record);
}

static void count_window(engine_t *e, int counted) {
    if (!counted) atomic_fetch_add_explicit(&e->stats.stale_window_events, 1, memory_order_relaxed);
}

static void apply_event(engine_t *e, const event_t *ev, uint64_t seq) {
    store_t *st = e->store;
    if (e->cfg.clock_event && (ev->has & EV_TS)) advance_clock(e, ev->ts);
    int64_t now = atomic_load_explicit(&e->clock_ms, memory_order_relaxed);
    uint32_t id;
    if (ev->op == OP_DELETE) {
        if (store_find(st, ev->sku.p, ev->sku.len, &id) != 0) return;
        windows_release(e->windows, &store_row(st, id)->win);
        store_delete(st, id, &e->retired);
        roaring_bitmap_add(e->dirty, id);
        note_event_seq(e, id, seq);
        memset(&e->stamps[id], 0, sizeof e->stamps[id]); /* the id may be reused */
        return;
    }
    bool created;
    id = store_upsert_id(st, ev->sku.p, ev->sku.len, &created, &e->retired);
    note_event_seq(e, id, seq);
    /* What the event can change, for the pools that care (see dirty_by). */
    roaring_bitmap_t *dirty = e->dirty;
    if (!created) {
        if (ev->op == OP_ORDER || ev->op == OP_VIEW || ev->op == OP_CLICK || ev->op == OP_CART)
            dirty = e->dirty_by[0];
        else if (ev->op == OP_PRICE)
            dirty = e->dirty_by[1];
        else if (ev->op == OP_STOCK)
            dirty = e->dirty_by[2];
    }
    roaring_bitmap_add(dirty, id);
    switch (ev->op) {
    case OP_RECORD:
        set_fields(e, id, ev, seq, true);
        break;
    case OP_UPSERT:
    case OP_PRICE:
    case OP_STOCK:
        set_fields(e, id, ev, seq, false);
        break;
    case OP_ORDER:
        count_window(e, windows_add_order(e->windows, &store_row(st, id)->win, id, (uint32_t)ev->qty,
                                          ev->amount, ev->ts, now));
        break;
    case OP_VIEW:
        count_window(e, windows_add_behaviour(e->windows, &store_row(st, id)->win, id, WM_VIEWS, ev->ts, now));
        break;
    case OP_CLICK:
        count_window(e, windows_add_behaviour(e->windows, &store_row(st, id)->win, id, WM_CLICKS, ev->ts, now));
        break;
    case OP_CART:
        count_window(e, windows_add_behaviour(e->windows, &store_row(st, id)->win, id, WM_CARTS, ev->ts, now));
        break;
    case OP_TAG: {
        field_stamp_t *fs = &e->stamps[id];
        if (ev->ts < fs->ts[FG_TAGS]) { /* an older tag op does not undo a newer tag list */
            atomic_fetch_add_explicit(&e->stats.stale_field_writes, 1, memory_order_relaxed);
            break;
        }
        fs->ts[FG_TAGS] = ev->ts;
        fs->seq[FG_TAGS] = seq;
        const char *t = NULL;
        if (ev->has & EV_TAGS)
            while ((t = event_tag_next(&ev->tags, t)))
                if (store_add_free_tag(st, id, t, strlen(t)) != 0)
                    atomic_fetch_add_explicit(&e->stats.tag_limit, 1, memory_order_relaxed);
        t = NULL;
        if (ev->has & EV_REMOVE)
            while ((t = event_tag_next(&ev->tags_remove, t))) store_remove_free_tag(st, id, t, strlen(t));
        break;
    }
    default:
        break;
    }
}

static void window_changed(void *arg, uint32_t sku, uint32_t win_index) {
    engine_t *e = arg;
    if (win_index == 0) store_row(e->store, sku)->win = 0;
    roaring_bitmap_add(e->dirty_by[0], sku);
}

/* Brings every pool up to date for the dirty SKUs. */
static void evaluate(engine_t *e) {
    int64_t now = e->cfg.clock_event ? atomic_load(&e->clock_ms) : wall_ms();
    if (!e->cfg.clock_event) atomic_store(&e->clock_ms, now);
    windows_advance(e->windows, now, window_changed, e);
    refresh_roots(e);
    /* The live pools, then the shadows of rule versions being computed
     * (lifecycle.c), which must see every change too. */
    pool_t *shadow_buf[16];
    size_t nshadow = lifecycle_w_shadows(e, shadow_buf, 16);
    size_t npools = e->npools + nshadow;
    pool_t **all = xmalloc((npools ? npools : 1) * sizeof *all);
    if (e->npools) memcpy(all, e->pools, e->npools * sizeof *all); /* e->pools may be NULL */
    if (nshadow) memcpy(all + e->npools, shadow_buf, nshadow * sizeof *all);
    for (size_t i = 0; i < npools; i++) {
        pool_tick_schedule(all[i], &e->pctx);
        pool_tick_minute(all[i], now);
    }
    uint64_t n = roaring_bitmap_get_cardinality(e->dirty), total = n;
    for (int k = 0; k < 3; k++) total += roaring_bitmap_get_cardinality(e->dirty_by[k]);
    if (total == 0) {
        free(all);
        e->pctx.event_floor = e->pending_seq;
        return;
    }
    uint32_t live = store_count(e->store);
    if (total > 4096 && total * 4 > live) {
        atomic_fetch_add(&e->stats.full_recomputes, 1);
        for (size_t i = 0; i < npools; i++) {
            refresh_roots(e);
            pool_recompute(all[i], &e->pctx);
        }
        lifecycle_w_full_recomputed(e);
    } else {
        /* One sorted id list per distinct mask of what pools read (at most
         * eight), built on first use. */
        uint32_t *lists[8] = {0};
        size_t lens[8] = {0};
        for (size_t i = 0; i < npools; i++) {
            pool_t *p = all[i];
            unsigned mask = p->reads & 7u;
            if (!lists[mask] && !lens[mask]) {
                roaring_bitmap_t *u = roaring_bitmap_copy(e->dirty);
                for (int k = 0; k < 3; k++)
                    if (mask & (1u << k)) roaring_bitmap_or_inplace(u, e->dirty_by[k]);
                lens[mask] = (size_t)roaring_bitmap_get_cardinality(u);
                lists[mask] = xmalloc((lens[mask] ? lens[mask] : 1) * sizeof(uint32_t));
                roaring_bitmap_to_uint32_array(u, lists[mask]);
                roaring_bitmap_free(u);
            }
            refresh_roots(e);
            pool_eval_ids(p, &e->pctx, lists[mask], lens[mask]);
        }
        for (int m = 0; m < 8; m++) free(lists[m]);
    }
    free(all);
    roaring_bitmap_clear(e->dirty);
    for (int k = 0; k < 3; k++) roaring_bitmap_clear(e->dirty_by[k]);
    e->pctx.event_floor = e->pending_seq;
}

static void publish(engine_t *e) {
    view_t *v = xcalloc(1, sizeof *v);
    v->version = ++e->publish_version;
    v->tags = tags_publish(e->tags, &e->retired);
    v->npools = e->npools;
    v->pools = xcalloc(e->npools ? e->npools : 1, sizeof *v->pools);
    uint64_t errors = 0;
    for (size_t i = 0; i < e->npools; i++) {
        v->pools[i] = pool_publish(e->pools[i], &e->retired);
        errors += e->pools[i]->errors;
    }
    atomic_store(&e->stats.rule_errors, errors);
    v->applied_seq = e->pending_seq;
    v->clock_ms = atomic_load(&e->clock_ms);
    v->skus = store_count(e->store);
    v->loading = atomic_load(&e->loading);
    publish_swap(&e->pub, v, &e->retired);
    publish_collect(&e->pub);
}

static void observe_apply(engine_t *e, uint64_t ns) {
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < APPLY_HIST_BUCKETS && s > engine_apply_bucket_le[b]) b++;
    atomic_fetch_add_explicit(&e->stats.apply_hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->stats.apply_sum_ns, ns, memory_order_relaxed);
}

static void run_calls(engine_t *e, call_t *calls) {
    while (calls) {
        call_t *c = calls;
        calls = c->next;
        c->fn(e, c->arg);
        pthread_mutex_lock(&e->qlock);
        c->done = true;
        pthread_cond_broadcast(&e->callcond);
        pthread_mutex_unlock(&e->qlock);
    }
}

static void *writer_main(void *arg) {
    engine_t *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->qlock);
        if (!e->qhead && !e->calls && !e->stopping && !lifecycle_w_busy(e)) {
            struct timespec ts = deadline_after(TICK_MS);
            pthread_cond_timedwait(&e->qcond, &e->qlock, &ts);
        }
        batch_t *take = NULL, **tail = &take;
        size_t events = 0, bytes = 0;
        while (e->qhead && events < WRITER_MAX_EVENTS_PER_CYCLE) {
            batch_t *b = e->qhead;
            e->qhead = b->next;
            if (!e->qhead) e->qtail = NULL;
            b->next = NULL;
            *tail = b;
            tail = &b->next;
            events += b->n;
            bytes += b->bytes;
        }
        e->q_events -= events;
        e->q_bytes -= bytes;
        atomic_store(&e->stats.queued_events, e->q_events);
        atomic_store(&e->stats.queued_bytes, e->q_bytes);
        if (take) pthread_cond_broadcast(&e->roomcond);
        call_t *calls = e->calls;
        e->calls = NULL;
        bool stop = e->stopping && !e->qhead && !take && !calls;
        pthread_mutex_unlock(&e->qlock);
        if (stop) break;

        uint64_t t0 = mono_ns();
        uint64_t last_seq = 0;
        bool end_bulk = false;
        for (batch_t *b = take; b; b = b->next) {
            if (b->flags & ENGINE_DEFER_EVAL) {
                e->deferred = true;
                atomic_store(&e->loading, true);
            }
            for (uint32_t i = 0; i < b->n; i++) apply_event(e, &b->events[i], b->first_seq + i);
            if (b->kafka_topic) durability_set_offset(e, b->kafka_topic, b->kafka_partition, b->kafka_offset + 1);
            if (b->n) {
                source_ring_add(e->sources, b->first_seq, b->n, b->kind, b->source, b->kafka_partition, b->ev_offsets,
                                b->kafka_offset);
                b->ev_offsets = NULL;
            }
            atomic_fetch_add_explicit(&e->stats.applied, b->n, memory_order_relaxed);
            if (b->n) last_seq = b->first_seq + b->n - 1;
            if (b->flags & ENGINE_END_BULK) end_bulk = true;
        }
        if (end_bulk) e->deferred = false;
        if (last_seq) e->pending_seq = last_seq;
        if (!e->deferred) {
            evaluate(e);
            lifecycle_w_step(e);
            /* Publish first, then announce: a client told "applied" reads
             * its own writes. A bulk load publishes once, at its end:
             * readers keep the version from before the load, and the load
             * does not pay for copies. */
            publish(e);
            atomic_store(&e->applied_seq, e->pending_seq);
            if (end_bulk) atomic_store(&e->loading, false);
            lifecycle_w_published(e);
        }
        if (take) {
            atomic_fetch_add_explicit(&e->stats.batches, 1, memory_order_relaxed);
            observe_apply(e, mono_ns() - t0);
        }
        pthread_mutex_lock(&e->alock);
        e->cycles++;
        pthread_cond_broadcast(&e->acond);
        pthread_mutex_unlock(&e->alock);
        while (take) {
            batch_t *b = take;
            take = b->next;
            batch_free(b);
        }
        run_calls(e, calls);
        durability_w_cycle(e);
    }
    lifecycle_w_abort(e);
    return NULL;
}

int engine_start(engine_t *e, char *err, size_t errlen) {
    if (durability_open(e, err, errlen) != 0) return -1;
    if (lifecycle_load(e, err, errlen) != 0) return -1;
    publish(e);
    if (pthread_create(&e->writer, NULL, writer_main, e) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        return -1;
    }
    e->writer_running = true;
    e->writer_started = true;
    char werr[512];
    if (lifecycle_watch_start(e, werr, sizeof werr) != 0)
        log_warn("%s: rule files will not be reloaded until a restart", werr);
    return 0;
}

void engine_stop(engine_t *e) {
    if (!e->writer_running) return;
    lifecycle_watch_stop(e);
    pthread_mutex_lock(&e->qlock);
    e->stopping = true;
    pthread_cond_broadcast(&e->qcond);
    pthread_cond_broadcast(&e->roomcond);
    pthread_mutex_unlock(&e->qlock);
    pthread_join(e->writer, NULL);
    e->writer_running = false;
    durability_close(e);
}

/* -- inputs -------------------------------------------------------------------- */

static void report_error(ingest_report_t *rep, uint64_t line, const event_error_t *err) {
    rep->rejected++;
    if (rep->nerrors >= rep->max_errors) return;
    if (!rep->errors) rep->errors = xcalloc(rep->max_errors, sizeof *rep->errors);
    ingest_error_t *ie = &rep->errors[rep->nerrors++];
    ie->line = line;
    ie->reason = err->reason;
    snprintf(ie->msg, sizeof ie->msg, "%s", err->msg);
}

void ingest_report_free(ingest_report_t *rep) {
    free(rep->errors);
    rep->errors = NULL;
    rep->nerrors = 0;
}

/* Parses the lines of buf with clock `now` into *events (grown as needed);
 * rejected lines go to rep and, unless quiet, to the dead letters and the
 * counters. Returns the number of events. */
static size_t parse_lines(engine_t *e, char *buf, size_t len, int64_t now, const engine_input_t *in,
                          uint64_t line_base, bool quiet, event_t **events_io, int64_t **offsets_io,
                          ingest_report_t *rep) {
    size_t cap = 64, n = 0;
    event_t *events = xmalloc(cap * sizeof *events);
    int64_t *offs = in->line_offsets && offsets_io ? xmalloc(cap * sizeof *offs) : NULL;
    size_t pos = 0;
    char *line;
    long l;
    uint64_t lineno = line_base;
    char *copy = NULL;
    size_t copy_cap = 0;
    while ((l = ndjson_next_line(buf, len, &pos, &line)) >= 0) {
        lineno++;
        if (n == cap) {
            cap *= 2;
            events = xrealloc(events, cap * sizeof *events);
            if (offs) offs = xrealloc(offs, cap * sizeof *offs);
        }
        /* Keep the raw text for the dead-letter record: the parser decodes in place. */
        if (!quiet) {
            if ((size_t)l + 1 > copy_cap) {
                copy_cap = (size_t)l + 1;
                copy = xrealloc(copy, copy_cap);
            }
            memcpy(copy, line, (size_t)l);
        }
        event_error_t err;
        int rc = ndjson_parse_event(line, (size_t)l, now, &events[n], &err);
        if (rc == 0) {
            if (!quiet) atomic_fetch_add_explicit(&e->stats.accepted_by_op[events[n].op], 1, memory_order_relaxed);
            if (offs) offs[n] = in->line_offsets[lineno - line_base - 1];
            n++;
        } else if (rc == 1) {
            if (!quiet) atomic_fetch_add_explicit(&e->stats.blank_lines, 1, memory_order_relaxed);
        } else if (!quiet) {
            atomic_fetch_add_explicit(&e->stats.rejected[err.reason], 1, memory_order_relaxed);
            if (rep) report_error(rep, lineno, &err);
            char where[200];
            const char *src = in->source ? in->source : "input";
            if (in->line_offsets && lineno - line_base - 1 < (uint64_t)1 << 40) {
                snprintf(where, sizeof where, "%s/%d@%lld", src, in->kafka_partition,
                         (long long)in->line_offsets[lineno - line_base - 1]);
                src = where;
            }
            deadletter_write(e->dl, src, lineno, event_reject_name(err.reason), err.msg, copy, (size_t)l);
        }
    }
    free(copy);
    if (rep) rep->lines += lineno - line_base;
    *events_io = events;
    if (offsets_io) *offsets_io = offs;
    return n;
}

uint32_t engine_apply_text(engine_t *e, char *buf, size_t len, int64_t now, uint64_t first_seq, const char *source,
                           uint8_t kind, int32_t partition, int64_t last_offset) {
    engine_input_t in = {0};
    in.replay = true;
    event_t *events;
    size_t n = parse_lines(e, buf, len, now, &in, 0, true, &events, NULL, NULL);
    for (size_t i = 0; i < n; i++) apply_event(e, &events[i], first_seq + i);
    free(events);
    if (n) source_ring_add(e->sources, first_seq, (uint32_t)n, kind, source, partition, NULL, last_offset);
    if (n) {
        e->next_seq = first_seq + n - 1;
        e->pending_seq = e->next_seq;
    }
    return (uint32_t)n;
}

int engine_submit(engine_t *e, char *buf, size_t len, const char *source, uint64_t line_base,
                  int flags, int timeout_ms, ingest_report_t *rep) {
    engine_input_t in = {0};
    in.source = source;
    in.kind = (source && strcmp(source, "http") == 0) ? WAL_SRC_HTTP : WAL_SRC_FILE;
    in.kafka_partition = -1;
    in.kafka_offset = -1;
    return engine_submit_input(e, &in, buf, len, line_base, flags, timeout_ms, rep);
}

int engine_submit_input(engine_t *e, const engine_input_t *in, char *buf, size_t len, uint64_t line_base,
                        int flags, int timeout_ms, ingest_report_t *rep) {
    int64_t now = e->cfg.clock_event ? atomic_load(&e->clock_ms) : wall_ms();
    /* The WAL gets the text as submitted; the parser decodes buf in place. */
    char *raw = NULL;
    if (e->wal && len) {
        raw = xmalloc(len);
        memcpy(raw, buf, len);
    }
    event_t *events;
    int64_t *ev_offsets = NULL;
    size_t n = parse_lines(e, buf, len, now, in, line_base, false, &events, &ev_offsets, rep);
    /* Nothing to apply: done, except for Kafka, whose offsets must still
     * move past the rejected messages (an empty batch records them). */
    if (n == 0 && !(flags & ENGINE_END_BULK) && in->kind != WAL_SRC_KAFKA) {
        free(raw);
        free(events);
        free(ev_offsets);
        free(buf);
        return 0;
    }
    if (flags & ENGINE_DEFER_EVAL) atomic_store(&e->loading, true);
    batch_t *b = xcalloc(1, sizeof *b);
    b->buf = buf;
    b->events = events;
    b->n = (uint32_t)n;
    b->flags = flags & (ENGINE_DEFER_EVAL | ENGINE_END_BULK);
    b->bytes = len;
    b->kind = in->kind;
    b->source = xstrdup(in->source ? in->source : "");
    b->ev_offsets = ev_offsets;
    b->kafka_partition = -1;
    b->kafka_offset = -1;
    if (in->kind == WAL_SRC_KAFKA && in->kafka_topic) {
        b->kafka_topic = xstrdup(in->kafka_topic);
        b->kafka_partition = in->kafka_partition;
        b->kafka_offset = in->kafka_offset;
    }

    pthread_mutex_lock(&e->qlock);
    struct timespec deadline = deadline_after(timeout_ms);
    while (!e->stopping && e->q_events > 0 &&
           (e->q_events + n > e->cfg.queue_max_events || e->q_bytes + len > e->cfg.queue_max_bytes)) {
        if (flags & ENGINE_NONBLOCKING) break;
        if (timeout_ms >= 0 && pthread_cond_timedwait(&e->roomcond, &e->qlock, &deadline) == ETIMEDOUT) break;
        if (timeout_ms < 0) pthread_cond_wait(&e->roomcond, &e->qlock);
    }
    bool full = e->q_events > 0 &&
                (e->q_events + n > e->cfg.queue_max_events || e->q_bytes + len > e->cfg.queue_max_bytes);
    uint64_t first_seq = e->next_seq + 1;
    bool wal_failed = !e->stopping && !full && n &&
                      durability_wal_append(e, in, raw, len, first_seq, (uint32_t)n, now) != 0;
    if (e->stopping || full || wal_failed) {
        pthread_mutex_unlock(&e->qlock);
        if (full) atomic_fetch_add(&e->stats.queue_full, 1);
        if (wal_failed) log_error("wal: cannot append (%s); input refused", strerror(errno));
        free(raw);
        batch_free(b);
        errno = e->stopping ? ESHUTDOWN : full ? EAGAIN : EIO;
        return -1;
    }
    free(raw);
    b->first_seq = first_seq;
    e->next_seq += n;
    if (e->qtail) e->qtail->next = b;
    else e->qhead = b;
    e->qtail = b;
    e->q_events += n;
    e->q_bytes += len;
    pthread_cond_signal(&e->qcond);
    pthread_mutex_unlock(&e->qlock);
    atomic_fetch_add_explicit(&e->stats.accepted, n, memory_order_relaxed);
    rep->accepted += n;
    if (n) rep->last_seq = first_seq + n - 1; /* b may be applied and freed by now */
    return 0;
}

int engine_wait_applied(engine_t *e, uint64_t seq, int timeout_ms) {
    if (atomic_load(&e->applied_seq) >= seq) return 0;
    struct timespec deadline = deadline_after(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&e->alock);
    while (atomic_load(&e->applied_seq) < seq) {
        if (pthread_cond_timedwait(&e->acond, &e->alock, &deadline) == ETIMEDOUT) {
            rc = atomic_load(&e->applied_seq) >= seq ? 0 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&e->alock);
    return rc;
}

uint64_t engine_applied_seq(engine_t *e) { return atomic_load(&e->applied_seq); }

uint64_t engine_cycle(engine_t *e) {
    pthread_mutex_lock(&e->alock);
    uint64_t c = e->cycles;
    pthread_mutex_unlock(&e->alock);
    return c;
}

int engine_wait_cycle(engine_t *e, uint64_t seen, int timeout_ms) {
    struct timespec deadline = deadline_after(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&e->alock);
    while (e->cycles == seen && rc == 0)
        if (pthread_cond_timedwait(&e->acond, &e->alock, &deadline) == ETIMEDOUT) rc = -1;
    if (e->cycles != seen) rc = 0;
    pthread_mutex_unlock(&e->alock);
    return rc;
}

typedef struct changes_call {
    const char *pool;
    uint64_t since;
    size_t max;
    pool_change_t *out;
    size_t n;
    int status;
    uint64_t seq, retained_from;
} changes_call_t;

static void changes_on_writer(engine_t *e, void *arg) {
    changes_call_t *c = arg;
    pool_t *p = NULL;
    for (size_t i = 0; i < e->npools && !p; i++)
        if (strcmp(e->pools[i]->name, c->pool) == 0) p = e->pools[i];
    if (!p) {
        c->status = 404;
        return;
    }
    c->seq = p->seq;
    c->retained_from = pool_changes_retained_from(p);
    if (c->since + 1 < c->retained_from || c->since > p->seq) { /* too old, or from another incarnation */
        c->status = 410;
        return;
    }
    c->n = pool_changes_copy(p, c->since, c->out, c->max);
    c->status = 200;
}

int engine_changes(engine_t *e, const char *pool, uint64_t since, pool_change_t *out, size_t max, size_t *n,
                   uint64_t *pool_seq, uint64_t *retained_from) {
    changes_call_t c = {pool, since, max, out, 0, 0, 0, 0};
    if (engine_call(e, changes_on_writer, &c) != 0) return 503;
    *n = c.n;
    *pool_seq = c.seq;
    *retained_from = c.retained_from;
    return c.status;
}
int64_t engine_clock(engine_t *e) { return atomic_load(&e->clock_ms); }

/* -- readers -------------------------------------------------------------------- */

view_t *engine_acquire(engine_t *e) { return publish_acquire(&e->pub); }
void engine_release(view_t *v) { publish_release(v); }
const engine_stats_t *engine_stats(engine_t *e) { return &e->stats; }
const store_t *engine_store_for_readers(engine_t *e) { return e->store; }
bool engine_loading(engine_t *e) { return atomic_load(&e->loading); }
void engine_begin_bulk(engine_t *e) { atomic_store(&e->loading, true); }

int engine_call(engine_t *e, void (*fn)(engine_t *e, void *arg), void *arg) {
    call_t c = {fn, arg, false, NULL};
    pthread_mutex_lock(&e->qlock);
    if (e->stopping || !e->writer_running) {
        pthread_mutex_unlock(&e->qlock);
        errno = ESHUTDOWN;
        return -1;
    }
    c.next = e->calls;
    e->calls = &c;
    pthread_cond_signal(&e->qcond);
    while (!c.done) pthread_cond_wait(&e->callcond, &e->qlock);
    pthread_mutex_unlock(&e->qlock);
    return 0;
}

store_t *engine_w_store(engine_t *e) { return e->store; }
tags_t *engine_w_tags(engine_t *e) { return e->tags; }
windows_t *engine_w_windows(engine_t *e) { return e->windows; }
size_t engine_w_npools(engine_t *e) { return e->npools; }
pool_t *engine_w_pool(engine_t *e, size_t i) { return i < e->npools ? e->pools[i] : NULL; }

const field_stamp_t *engine_w_stamp(engine_t *e, uint32_t id) {
    return id < e->event_seq_cap ? &e->stamps[id] : NULL;
}

const source_entry_t *engine_w_source(engine_t *e, uint64_t seq) { return source_ring_find(e->sources, seq); }

size_t engine_w_memory(engine_t *e, size_t *store_b, size_t *tags_b, size_t *windows_b, size_t *lua_b) {
    *store_b = store_memory(e->store);
    *tags_b = tags_memory(e->tags);
    *windows_b = windows_memory(e->windows);
    *lua_b = rulevm_memory(e->vm);
    return *store_b + *tags_b + *windows_b + *lua_b;
}
