/* pools.c - pool membership, evaluation and change log; see pools.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "pools.h"
#include "util.h"

const double pool_cost_bucket_le[POOL_COST_BUCKETS] = {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025,
                                                       0.005,   0.01,    0.025,  0.05,   0.1,   0.5};

const char *pool_cause_name(pool_cause_t c) {
    switch (c) {
    case CAUSE_EVENT: return "event";
    case CAUSE_TICK: return "tick";
    case CAUSE_PUBLISH: return "publish";
    case CAUSE_SCHEDULE: return "schedule";
    }
    return "unknown";
}

static void ctx_reserve(pool_ctx_t *ctx, size_t n) {
    if (n <= ctx->cap) return;
    size_t cap = ctx->cap ? ctx->cap : 1024;
    while (cap < n) cap *= 2;
    ctx->cand = xrealloc(ctx->cand, cap * sizeof *ctx->cand);
    ctx->out = xrealloc(ctx->out, cap);
    ctx->score = xrealloc(ctx->score, cap * sizeof *ctx->score);
    ctx->cap = cap;
}

void pool_ctx_free(pool_ctx_t *ctx) {
    free(ctx->cand);
    free(ctx->out);
    free(ctx->score);
    ctx->cand = NULL;
    ctx->out = NULL;
    ctx->score = NULL;
    ctx->cap = 0;
}

/* -- tag resolution ----------------------------------------------------- */

static int64_t bind_tag(void *arg, const char *tag, size_t len) {
    pool_ctx_t *ctx = arg;
    uint32_t id;
    return tags_find(ctx->tags, tag, len, &id) == 0 ? (int64_t)id : -1;
}

static bool has_tag_id(void *arg, int64_t tag, uint32_t sku) {
    pool_ctx_t *ctx = arg;
    return tag >= 0 && tags_has(ctx->tags, (uint32_t)tag, sku);
}

static const roaring_bitmap_t *resolve_tag(void *arg, const char *tag, size_t len) {
    pool_ctx_t *ctx = arg;
    uint32_t id;
    if (tags_find(ctx->tags, tag, len, &id) != 0) return NULL;
    return tags_bitmap(ctx->tags, id);
}

static void rebind(pool_t *p, pool_ctx_t *ctx) {
    uint32_t n = tags_count(ctx->tags);
    if (n == p->bound_tag_count) return;
    tagexpr_bind(p->where, bind_tag, ctx);
    p->bound_tag_count = n;
}

/* -- lifecycle ------------------------------------------------------------ */

static bool schedule_active(const rule_def_t *d, int64_t now) {
    return (d->active_from == 0 || now >= d->active_from) && (d->active_to == 0 || now < d->active_to);
}

pool_t *pool_new(pool_ctx_t *ctx, rule_def_t *def, const char *source, char *err, size_t errlen) {
    tagexpr_t *where = tagexpr_parse(def->where, strlen(def->where), err, errlen);
    if (!where) {
        rulevm_release(ctx->vm, def);
        return NULL;
    }
    pool_t *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(def->name);
    p->source = xstrdup(source ? source : "");
    p->version = 1;
    p->def = def;
    p->where = where;
    p->bound_tag_count = UINT32_MAX;
    p->members = roaring_bitmap_create();
    roaring_bitmap_set_copy_on_write(p->members, true); /* cheap pool_publish copies; see tags.c */
    p->cost = xcalloc(1, sizeof *p->cost);
    p->active = schedule_active(def, ctx->now);
    p->schedule_checked_at = ctx->now;
    p->view_stale = true;
    if (def->has_rank) p->ranking = rank_index_new();
    const char **names;
    size_t nt = tagexpr_tags(where, &names);
    for (size_t i = 0; i < nt; i++)
        if (strcmp(names[i], "in_stock") == 0) p->reads |= VIEW_READ_STOCK;
    return p;
}

static void change_name_free(pool_change_t *c) {
    if (c->heap) free(c->name.heap);
    c->heap = 0;
}

static void free_parts(pool_t *p, rulevm_t *vm) {
    free(p->name);
    free(p->source);
    rulevm_release(vm, p->def);
    tagexpr_free(p->where);
    roaring_bitmap_free(p->members);
    for (size_t i = 0; i < p->log_len; i++) change_name_free(&p->log[(p->log_head + i) % p->log_cap]);
    free(p->log);
    free(p->last_error);
    free(p->author);
    free(p->compile_error);
    rank_index_free(p->ranking);
    free(p->order);
    free(p);
}

void pool_free(pool_t *p, rulevm_t *vm) {
    if (!p) return;
    pool_view_free(p->view);
    free(p->cost);
    free_parts(p, vm);
}

static void free_retired(void *arg, void *ptr) {
    (void)arg;
    free(ptr);
}

static void pool_view_retire(void *arg, void *ptr);

void pool_retire(pool_t *p, rulevm_t *vm, retire_list_t *rl) {
    if (!p) return;
    if (p->view) retire_push(rl, pool_view_retire, NULL, p->view);
    retire_push(rl, free_retired, NULL, p->cost);
    free_parts(p, vm);
}

/* -- change log ------------------------------------------------------------ */

/* Grows the ring (up to ctx->log_max) or drops the oldest change; returns
 * the slot for the next change. */
static pool_change_t *log_slot(pool_t *p, pool_ctx_t *ctx) {
    size_t max = ctx->log_max ? ctx->log_max : POOL_LOG_DEFAULT_CAP;
    if (p->log_len == p->log_cap && p->log_cap < max) {
        size_t cap = p->log_cap ? p->log_cap * 2 : 256;
        if (cap > max) cap = max;
        pool_change_t *n = xmalloc(cap * sizeof *n);
        for (size_t i = 0; i < p->log_len; i++) n[i] = p->log[(p->log_head + i) % p->log_cap];
        free(p->log);
        p->log = n;
        p->log_head = 0;
        p->log_cap = cap;
    }
    pool_change_t *c;
    if (p->log_len == p->log_cap) {
        c = &p->log[p->log_head];
        change_name_free(c);
        p->log_head = (p->log_head + 1) % p->log_cap;
    } else {
        c = &p->log[(p->log_head + p->log_len) % p->log_cap];
        p->log_len++;
    }
    return c;
}

static void record_change(pool_t *p, pool_ctx_t *ctx, uint32_t sku, bool joined) {
    if (p->shadow) return;
    pool_change_t *c = log_slot(p, ctx);
    c->seq = ++p->seq;
    c->sku = sku;
    c->joined = joined;
    c->at = ctx->now;
    c->cause = (uint8_t)ctx->cause;
    c->cause_ref = ctx->cause_ref;
    if (ctx->cause == CAUSE_EVENT) {
        uint64_t s = sku < ctx->event_seq_len ? ctx->event_seq[sku] : 0;
        if (s > ctx->event_floor) {
            c->cause_ref = s;
        } else {
            c->cause = CAUSE_TICK;
            c->cause_ref = 0;
        }
    }
    const char *name = store_name(ctx->store, sku);
    if (!name) name = "";
    size_t len = strlen(name);
    c->heap = len > POOL_CHANGE_INLINE_NAME;
    if (c->heap) c->name.heap = xstrdup(name);
    else memcpy(c->name.inline_name, name, len + 1);
    if (joined) p->joins_now++;
    else p->leaves_now++;
    p->updated_at = ctx->now;
    p->view_stale = true;
}

const pool_change_t *pool_last_change(const pool_t *p, uint32_t sku, const char *name) {
    for (size_t i = p->log_len; i-- > 0;) {
        const pool_change_t *c = &p->log[(p->log_head + i) % p->log_cap];
        if (c->sku == sku && strcmp(pool_change_name(c), name) == 0) return c;
    }
    return NULL;
}

uint64_t pool_changes_retained_from(const pool_t *p) {
    return p->log_len ? p->log[p->log_head].seq : p->seq + 1;
}

size_t pool_changes_copy(const pool_t *p, uint64_t since, pool_change_t *out, size_t max) {
    if (!p->log_len || since >= p->seq) return 0;
    uint64_t first = p->log[p->log_head].seq;
    size_t start = since < first ? 0 : (size_t)(since + 1 - first); /* seqs in the ring are consecutive */
    size_t n = 0;
    for (size_t i = start; i < p->log_len && n < max; i++) {
        out[n] = p->log[(p->log_head + i) % p->log_cap];
        out[n].name.heap = xstrdup(pool_change_name(&out[n]));
        out[n].heap = 1;
        n++;
    }
    return n;
}

void pool_changes_free(pool_change_t *c, size_t n) {
    for (size_t i = 0; i < n; i++) change_name_free(&c[i]);
}

void pool_tick_minute(pool_t *p, int64_t now) {
    int64_t m = now / 60000;
    if (p->minute == 0) p->minute = m;
    if (m <= p->minute) return;
    int64_t steps = m - p->minute;
    if (steps > 60) steps = 60;
    uint32_t size = (uint32_t)roaring_bitmap_get_cardinality(p->members);
    for (int64_t i = 0; i < steps; i++) {
        if (p->size_1h_len < 60) p->size_1h[p->size_1h_len++] = size;
        else {
            memmove(p->size_1h, p->size_1h + 1, 59 * sizeof *p->size_1h);
            p->size_1h[59] = size;
        }
    }
    p->joins_1m = steps == 1 ? p->joins_now : 0;
    p->leaves_1m = steps == 1 ? p->leaves_now : 0;
    p->joins_now = p->leaves_now = 0;
    p->errors_recent = steps == 1 ? p->errors_now : 0;
    p->errors_now = 0;
    p->minute = m;
    p->view_stale = true;
}

static void note_errors(pool_t *p, long nerr, const rule_error_t *e) {
    if (nerr <= 0) return;
    bool first = p->errors == 0;
    p->errors += (uint64_t)nerr;
    p->errors_now += (uint64_t)nerr;
    char buf[sizeof e->file + sizeof e->msg + 32];
    snprintf(buf, sizeof buf, "%s:%d: %s", e->file, e->line, e->msg);
    if (!p->last_error || strcmp(p->last_error, buf) != 0) {
        free(p->last_error);
        p->last_error = xstrdup(buf);
        if (first || p->errors % 10000 < (uint64_t)nerr)
            log_warn("pool %s: rule error (SKU treated as not a member; %llu so far): %s", p->name,
                     (unsigned long long)p->errors, buf);
    }
    p->view_stale = true;
}

/* Pins and exclusions are few: look their ids up when needed. */
static bool listed(pool_ctx_t *ctx, char **names, size_t n, uint32_t sku) {
    for (size_t i = 0; i < n; i++) {
        uint32_t id;
        if (store_find(ctx->store, names[i], strlen(names[i]), &id) == 0 && id == sku) return true;
    }
    return false;
}

/* -- evaluation -------------------------------------------------------------- */

static void observe_cost(pool_t *p, size_t n, long nerr, uint64_t ns) {
    pool_cost_t *c = p->cost;
    atomic_fetch_add_explicit(&c->evaluations, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->ns, ns, memory_order_relaxed);
    if (nerr > 0) atomic_fetch_add_explicit(&c->errors, (uint64_t)nerr, memory_order_relaxed);
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < POOL_COST_BUCKETS && s > pool_cost_bucket_le[b]) b++;
    atomic_fetch_add_explicit(&c->hist[b], 1, memory_order_relaxed);
}

static long run_match(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n, rule_error_t *err) {
    ctx->roots->reads = 0;
    uint64_t t0 = mono_ns();
    long nerr = rulevm_match(ctx->vm, p->def, ids, n, ctx->out, err);
    observe_cost(p, n, nerr, mono_ns() - t0);
    p->reads |= ctx->roots->reads;
    return nerr;
}

static long run_rank(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n, rule_error_t *err) {
    ctx->roots->reads = 0;
    uint64_t t0 = mono_ns();
    long nerr = rulevm_rank(ctx->vm, p->def, ids, n, ctx->score, err);
    observe_cost(p, n, nerr, mono_ns() - t0);
    p->reads |= ctx->roots->reads;
    return nerr;
}

static void apply_new_members(pool_t *p, pool_ctx_t *ctx, roaring_bitmap_t *next);

/* Ranks the candidates ctx->cand[0..n) and (re)inserts them. */
static void rank_candidates(pool_t *p, pool_ctx_t *ctx, size_t n) {
    if (n == 0) return;
    rule_error_t err;
    long nerr = run_rank(p, ctx, ctx->cand, n, &err);
    note_errors(p, nerr, &err);
    for (size_t i = 0; i < n; i++)
        rank_index_set(p->ranking, ctx->cand[i], ctx->score[i], store_name(ctx->store, ctx->cand[i]));
}

/* Members of a ranked pool from its ranking: the live pins in list order,
 * then the first `limit` candidates that are not pins. */
static void ranked_refresh(pool_t *p, pool_ctx_t *ctx) {
    const rule_def_t *d = p->def;
    size_t count = rank_index_count(p->ranking);
    size_t top = d->limit > 0 && (size_t)d->limit < count ? (size_t)d->limit : count;
    size_t need = top + d->npin;
    if (need > p->order_cap) {
        p->order_cap = need * 2;
        p->order = xrealloc(p->order, p->order_cap * sizeof *p->order);
    }
    roaring_bitmap_t *next = roaring_bitmap_create();
    size_t n = 0;
    for (size_t i = 0; i < d->npin; i++) {
        uint32_t id;
        if (store_find(ctx->store, d->pin[i], strlen(d->pin[i]), &id) == 0 &&
            !listed(ctx, d->exclude, d->nexclude, id) && roaring_bitmap_add_checked(next, id))
            p->order[n++] = id;
    }
    size_t npins = n;
    rank_index_range(p->ranking, 0, top, p->order + n);
    for (size_t i = 0; i < top; i++) {
        uint32_t id = p->order[npins + i];
        if (roaring_bitmap_add_checked(next, id)) p->order[n++] = id;
    }
    p->norder = n;
    apply_new_members(p, ctx, next);
}

void pool_eval_ids(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n) {
    if (n == 0) return;
    if (!p->active) return; /* empty while inactive; the schedule tick clears it */
    rebind(p, ctx);
    ctx_reserve(ctx, n);
    const sku_row_t *rows = store_rows(ctx->store);
    uint32_t limit = store_id_limit(ctx->store);
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id < limit && rows[id].live && tagexpr_eval_one_ids(p->where, has_tag_id, ctx, id))
            ctx->cand[nc++] = id;
    }
    rule_error_t err;
    long nerr = 0;
    if (p->def->has_match && nc > 0) nerr = run_match(p, ctx, ctx->cand, nc, &err);
    else if (nc) memset(ctx->out, 1, nc);
    note_errors(p, nerr, &err);
    rows = store_rows(ctx->store);
    if (p->ranking) {
        /* Keep the candidates that matched (and are not excluded) in
         * ctx->cand, drop the rest from the ranking, rank the survivors. */
        size_t c = 0, kept = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t id = ids[i];
            bool in = false;
            if (c < nc && ctx->cand[c] == id) in = ctx->out[c++] != 0;
            if (in && p->def->nexclude && listed(ctx, p->def->exclude, p->def->nexclude, id)) in = false;
            if (in) ctx->cand[kept++] = id; /* kept <= c: never overwrites an unread candidate */
            else rank_index_remove(p->ranking, id);
        }
        rank_candidates(p, ctx, kept);
        ranked_refresh(p, ctx);
        return;
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        bool in = false;
        if (c < nc && ctx->cand[c] == id) in = ctx->out[c++] != 0;
        if (p->def->nexclude && in && listed(ctx, p->def->exclude, p->def->nexclude, id)) in = false;
        if (p->def->npin && !in && id < limit && rows[id].live && listed(ctx, p->def->pin, p->def->npin, id) &&
            !listed(ctx, p->def->exclude, p->def->nexclude, id))
            in = true; /* a pin is a member unless it is also excluded */
        bool was = roaring_bitmap_contains(p->members, id);
        if (in == was) continue;
        if (in) roaring_bitmap_add(p->members, id);
        else roaring_bitmap_remove(p->members, id);
        record_change(p, ctx, id, in);
    }
}

static void apply_new_members(pool_t *p, pool_ctx_t *ctx, roaring_bitmap_t *next) {
    roaring_bitmap_set_copy_on_write(next, true);
    roaring_bitmap_t *diff = roaring_bitmap_xor(p->members, next);
    roaring_uint32_iterator_t it;
    roaring_init_iterator(diff, &it);
    while (it.has_value) {
        record_change(p, ctx, it.current_value, roaring_bitmap_contains(next, it.current_value));
        roaring_advance_uint32_iterator(&it);
    }
    roaring_bitmap_free(diff);
    roaring_bitmap_free(p->members);
    p->members = next;
    p->view_stale = true;
}

void pool_go_live(pool_t *p, pool_ctx_t *ctx) {
    p->shadow = false;
    roaring_bitmap_t *next = p->members;
    p->members = roaring_bitmap_create();
    roaring_bitmap_set_copy_on_write(p->members, true);
    apply_new_members(p, ctx, next);
}

void pool_clear(pool_t *p, pool_ctx_t *ctx) {
    if (p->ranking) {
        rank_index_free(p->ranking);
        p->ranking = rank_index_new();
    }
    p->norder = 0;
    apply_new_members(p, ctx, roaring_bitmap_create());
}

void pool_adopt(pool_t *p, pool_t *shadow, pool_ctx_t *ctx, rulevm_t *vm) {
#define SWAP_FIELD(f)            \
    do {                         \
        __typeof__(p->f) t = p->f; \
        p->f = shadow->f;        \
        shadow->f = t;           \
    } while (0)
    SWAP_FIELD(source);
    SWAP_FIELD(def);
    SWAP_FIELD(where);
    SWAP_FIELD(bound_tag_count);
    SWAP_FIELD(reads);
    SWAP_FIELD(ranking);
    SWAP_FIELD(order);
    SWAP_FIELD(norder);
    SWAP_FIELD(order_cap);
    SWAP_FIELD(active);
    SWAP_FIELD(version);
    SWAP_FIELD(schedule_checked_at);
#undef SWAP_FIELD
    /* The new version's errors so far are those of its scan. */
    p->errors = shadow->errors;
    p->errors_now = shadow->errors_now;
    p->errors_recent = shadow->errors_recent;
    free(p->last_error);
    p->last_error = shadow->last_error;
    shadow->last_error = NULL;
    pool_cost_t *c = p->cost, *sc = shadow->cost;
    atomic_fetch_add(&c->evaluations, atomic_load(&sc->evaluations));
    atomic_fetch_add(&c->calls, atomic_load(&sc->calls));
    atomic_fetch_add(&c->errors, atomic_load(&sc->errors));
    atomic_fetch_add(&c->ns, atomic_load(&sc->ns));
    for (int b = 0; b <= POOL_COST_BUCKETS; b++) atomic_fetch_add(&c->hist[b], atomic_load(&sc->hist[b]));
    roaring_bitmap_t *next = shadow->members;
    shadow->members = roaring_bitmap_create();
    apply_new_members(p, ctx, next);
    p->view_stale = true;
    pool_free(shadow, vm);
}

void pool_recompute(pool_t *p, pool_ctx_t *ctx) {
    if (!p->active) {
        pool_clear(p, ctx);
        return;
    }
    roaring_bitmap_t *cand = tagexpr_eval_bitmap(p->where, resolve_tag, ctx, store_live(ctx->store));
    if (p->ranking) {
        size_t n = (size_t)roaring_bitmap_get_cardinality(cand);
        ctx_reserve(ctx, n);
        roaring_bitmap_to_uint32_array(cand, ctx->cand);
        roaring_bitmap_free(cand);
        rule_error_t err;
        long nerr = p->def->has_match && n ? run_match(p, ctx, ctx->cand, n, &err) : 0;
        if (!p->def->has_match && n) memset(ctx->out, 1, n); /* ctx->out may be NULL when n == 0 */
        note_errors(p, nerr, &err);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t id = ctx->cand[i];
            if (ctx->out[i] && !(p->def->nexclude && listed(ctx, p->def->exclude, p->def->nexclude, id)))
                ctx->cand[kept++] = id;
        }
        rank_index_free(p->ranking);
        p->ranking = rank_index_new();
        rank_candidates(p, ctx, kept);
        ranked_refresh(p, ctx);
        return;
    }
    roaring_bitmap_t *next;
    if (p->def->has_match) {
        size_t n = (size_t)roaring_bitmap_get_cardinality(cand);
        ctx_reserve(ctx, n);
        roaring_bitmap_to_uint32_array(cand, ctx->cand);
        rule_error_t err;
        long nerr = n ? run_match(p, ctx, ctx->cand, n, &err) : 0;
        note_errors(p, nerr, &err);
        next = roaring_bitmap_create();
        for (size_t i = 0; i < n; i++)
            if (ctx->out[i]) roaring_bitmap_add(next, ctx->cand[i]);
        roaring_bitmap_free(cand);
    } else {
        next = cand;
    }
    for (size_t i = 0; i < p->def->npin; i++) {
        uint32_t id;
        if (store_find(ctx->store, p->def->pin[i], strlen(p->def->pin[i]), &id) == 0)
            roaring_bitmap_add(next, id);
    }
    for (size_t i = 0; i < p->def->nexclude; i++) { /* exclusion wins over a pin */
        uint32_t id;
        if (store_find(ctx->store, p->def->exclude[i], strlen(p->def->exclude[i]), &id) == 0)
            roaring_bitmap_remove(next, id);
    }
    roaring_bitmap_run_optimize(next);
    apply_new_members(p, ctx, next);
}

void pool_tick_schedule(pool_t *p, pool_ctx_t *ctx) {
    bool active = schedule_active(p->def, ctx->now);
    if (active == p->active) return;
    log_info("pool %s: schedule %s", p->name, active ? "starts" : "ends");
    p->active = active;
    p->schedule_checked_at = ctx->now;
    p->view_stale = true;
    pool_cause_t cause = ctx->cause;
    uint64_t ref = ctx->cause_ref;
    ctx->cause = CAUSE_SCHEDULE;
    ctx->cause_ref = p->version;
    pool_recompute(p, ctx);
    ctx->cause = cause;
    ctx->cause_ref = ref;
}

static void pool_view_retire(void *arg, void *ptr) {
    (void)arg;
    pool_view_free(ptr);
}

pool_view_t *pool_publish(pool_t *p, retire_list_t *rl) {
    if (!p->view_stale && p->view) return p->view;
    pool_view_t *v = xcalloc(1, sizeof *v);
    const rule_def_t *d = p->def;
    v->name = xstrdup(p->name);
    v->title = xstrdup(d->title ? d->title : "");
    v->file = xstrdup(d->file ? d->file : "");
    v->where = xstrdup(d->where);
    v->version = p->version;
    v->members = roaring_bitmap_copy(p->members);
    v->size = roaring_bitmap_get_cardinality(p->members);
    v->seq = p->seq;
    v->updated_at = p->updated_at;
    v->active_from = d->active_from;
    v->active_to = d->active_to;
    v->active = p->active;
    v->has_match = d->has_match;
    v->has_rank = d->has_rank;
    v->limit = d->limit;
    v->errors = p->errors;
    v->last_error = p->last_error ? xstrdup(p->last_error) : NULL;
    v->changes_retained_from = pool_changes_retained_from(p);
    memcpy(v->size_1h, p->size_1h, sizeof v->size_1h);
    v->size_1h_len = p->size_1h_len;
    v->joins_1m = p->joins_1m;
    v->leaves_1m = p->leaves_1m;
    v->published_at = p->published_at;
    v->author = xstrdup(p->author ? p->author : "file");
    v->compile_error = p->compile_error ? xstrdup(p->compile_error) : NULL;
    v->cost = p->cost;
    v->failing = p->errors_now || p->errors_recent;
    v->clock_at_publish = p->schedule_checked_at;
    if (p->ranking) {
        v->order = xmalloc((p->norder ? p->norder : 1) * sizeof *v->order);
        if (p->norder) memcpy(v->order, p->order, p->norder * sizeof *v->order);
        v->norder = p->norder;
    }
    if (p->view) retire_push(rl, pool_view_retire, NULL, p->view);
    p->view = v;
    p->view_stale = false;
    return v;
}

/* -- snapshots ------------------------------------------------------------- */

/* Pool section payload: name (str), version u32, seq u64, updated_at i64,
 * members (bitmap), then the change log: count u64 and per change seq u64,
 * cause_ref u64, at i64, sku u32, joined u8, cause u8, name (str). */
int pool_snap_write(const pool_t *p, snap_writer_t *w) {
    snap_put_str(w, p->name, strlen(p->name));
    snap_put_u32(w, p->version);
    snap_put_u64(w, p->seq);
    snap_put_i64(w, p->updated_at);
    snap_put_bitmap(w, p->members);
    snap_put_u64(w, p->log_len);
    for (size_t i = 0; i < p->log_len; i++) {
        const pool_change_t *c = &p->log[(p->log_head + i) % p->log_cap];
        snap_put_u64(w, c->seq);
        snap_put_u64(w, c->cause_ref);
        snap_put_i64(w, c->at);
        snap_put_u32(w, c->sku);
        snap_put_u8(w, c->joined);
        snap_put_u8(w, c->cause);
        const char *nm = pool_change_name(c);
        if (snap_put_str(w, nm, strlen(nm)) != 0) return -1;
    }
    return 0;
}

pool_saved_t *pool_snap_read(snap_reader_t *r) {
    pool_saved_t *s = xcalloc(1, sizeof *s);
    size_t len;
    const char *name = snap_get_str(r, &len);
    uint64_t n = 0;
    if (!name || len > 64 || snap_get_u32(r, &s->version) || snap_get_u64(r, &s->seq) ||
        snap_get_i64(r, &s->updated_at) || !(s->members = snap_get_bitmap(r, UINT32_MAX)) ||
        snap_get_u64(r, &n) || n > snap_remaining(r) / 30 + 1) {
        pool_saved_free(s);
        return NULL;
    }
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->log = xcalloc(n ? n : 1, sizeof *s->log);
    for (uint64_t i = 0; i < n; i++) {
        pool_change_t *c = &s->log[i];
        uint32_t sku;
        uint8_t joined, cause;
        const char *nm;
        if (snap_get_u64(r, &c->seq) || snap_get_u64(r, &c->cause_ref) || snap_get_i64(r, &c->at) ||
            snap_get_u32(r, &sku) || snap_get_u8(r, &joined) || snap_get_u8(r, &cause) ||
            !(nm = snap_get_str(r, &len)) || cause > CAUSE_SCHEDULE ||
            (i > 0 && c->seq != s->log[i - 1].seq + 1)) {
            s->nlog = (size_t)i;
            pool_saved_free(s);
            return NULL;
        }
        c->sku = sku;
        c->joined = joined != 0;
        c->cause = cause;
        c->heap = 1;
        c->name.heap = xmalloc(len + 1);
        memcpy(c->name.heap, nm, len);
        c->name.heap[len] = '\0';
        s->nlog = (size_t)i + 1;
    }
    return s;
}

void pool_saved_free(pool_saved_t *s) {
    if (!s) return;
    pool_changes_free(s->log, s->nlog);
    free(s->log);
    if (s->members) roaring_bitmap_free(s->members); /* CRoaring 0.2 does not take NULL */
    free(s);
}

void pool_skip_seq(pool_t *p, uint64_t gap) {
    for (size_t i = 0; i < p->log_len; i++) change_name_free(&p->log[(p->log_head + i) % p->log_cap]);
    p->log_head = p->log_len = 0;
    p->seq += gap;
    p->view_stale = true;
}

void pool_restore(pool_t *p, pool_saved_t *s, pool_ctx_t *ctx) {
    size_t max = ctx->log_max ? ctx->log_max : POOL_LOG_DEFAULT_CAP;
    size_t keep = s->nlog < max ? s->nlog : max, skip = s->nlog - keep;
    for (size_t i = 0; i < p->log_len; i++) change_name_free(&p->log[(p->log_head + i) % p->log_cap]);
    free(p->log);
    p->log_cap = keep > 256 ? keep : 256;
    p->log = xmalloc(p->log_cap * sizeof *p->log);
    for (size_t i = 0; i < keep; i++) {
        p->log[i] = s->log[skip + i];
        s->log[skip + i].heap = 0; /* the name moved */
    }
    p->log_head = 0;
    p->log_len = keep;
    p->seq = s->seq;
    p->updated_at = s->updated_at;
    roaring_bitmap_free(p->members);
    p->members = s->members;
    s->members = NULL;
    roaring_bitmap_set_copy_on_write(p->members, true);
    p->view_stale = true;
}
