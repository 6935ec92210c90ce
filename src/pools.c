/* pools.c - pool membership, evaluation and change log; see pools.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "pools.h"
#include "util.h"

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
    p->log = xcalloc(POOL_LOG_CAP, sizeof *p->log);
    p->active = schedule_active(def, ctx->now);
    p->view_stale = true;
    if (def->has_rank) p->ranking = rank_index_new();
    const char **names;
    size_t nt = tagexpr_tags(where, &names);
    for (size_t i = 0; i < nt; i++)
        if (strcmp(names[i], "in_stock") == 0) p->reads |= VIEW_READ_STOCK;
    return p;
}

void pool_free(pool_t *p, rulevm_t *vm) {
    if (!p) return;
    free(p->name);
    free(p->source);
    rulevm_release(vm, p->def);
    tagexpr_free(p->where);
    roaring_bitmap_free(p->members);
    free(p->log);
    free(p->last_error);
    pool_view_free(p->view);
    rank_index_free(p->ranking);
    free(p->order);
    free(p);
}

/* -- change log ------------------------------------------------------------ */

static void record_change(pool_t *p, pool_ctx_t *ctx, uint32_t sku, bool joined) {
    size_t at = (p->log_head + p->log_len) % POOL_LOG_CAP;
    if (p->log_len == POOL_LOG_CAP) p->log_head = (p->log_head + 1) % POOL_LOG_CAP;
    else p->log_len++;
    p->log[at] = (pool_change_t){++p->seq, sku, joined};
    p->updated_at = ctx->now;
    p->view_stale = true;
}

static void note_errors(pool_t *p, long nerr, const rule_error_t *e) {
    if (nerr <= 0) return;
    bool first = p->errors == 0;
    p->errors += (uint64_t)nerr;
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

static long run_match(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n, rule_error_t *err) {
    ctx->roots->reads = 0;
    long nerr = rulevm_match(ctx->vm, p->def, ids, n, ctx->out, err);
    p->reads |= ctx->roots->reads;
    return nerr;
}

static long run_rank(pool_t *p, pool_ctx_t *ctx, const uint32_t *ids, size_t n, rule_error_t *err) {
    ctx->roots->reads = 0;
    long nerr = rulevm_rank(ctx->vm, p->def, ids, n, ctx->score, err);
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
    else memset(ctx->out, 1, nc);
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

void pool_recompute(pool_t *p, pool_ctx_t *ctx) {
    if (!p->active) {
        if (p->ranking) {
            rank_index_free(p->ranking);
            p->ranking = rank_index_new();
            p->norder = 0;
        }
        apply_new_members(p, ctx, roaring_bitmap_create());
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
        if (!p->def->has_match) memset(ctx->out, 1, n);
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
    p->view_stale = true;
    pool_recompute(p, ctx);
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
    v->changes_retained_from = p->log_len ? p->log[p->log_head].seq : p->seq + 1;
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
