/* api.c - handlers of the HTTP API (SPEC.md "HTTP API"); see api.h.
 *
 * Read endpoints answer from one published view, so a members page, its
 * size and its seq always agree. Members are listed in internal-id order;
 * the cursor is the id to continue from (opaque to clients), which stays
 * valid across changes: a consumer that pages from the first page's seq and
 * then follows the change feed misses nothing. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "api_changes.h"
#include "api_rules.h"
#include "audit.h"
#include "auth.h"
#include "kafka_feed.h"
#include "lifecycle.h"
#include "embedded.h"
#include "freshness.h"
#include "metrics.h"
#include "pools.h"
#include "store.h"
#include "tagexpr.h"
#include "tags.h"
#include "util.h"
#include "windows.h"

#define MEMBERS_DEFAULT_LIMIT 1000
#define MEMBERS_MAX_LIMIT 10000
#define QUERY_SAMPLE 20
#define MAX_ERRORS_REPORTED 1000

atomic_uint_fast64_t api_page_size_refused;

static json_t *pool_json(const pool_view_t *p) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "title", json_string(p->title));
    json_object_set_new(o, "size", json_integer((json_int_t)p->size));
    json_object_set_new(o, "version", json_integer(p->version));
    json_object_set_new(o, "active", json_boolean(p->active));
    json_object_set_new(o, "updated_at", p->updated_at ? json_integer(p->updated_at) : json_null());
    json_object_set_new(o, "seq", json_integer((json_int_t)p->seq));
    json_object_set_new(o, "errors", json_integer((json_int_t)p->errors));
    json_object_set_new(o, "state", json_string(pool_view_state(p)));
    json_t *sizes = json_array();
    for (uint32_t i = 0; i < p->size_1h_len; i++) json_array_append_new(sizes, json_integer(p->size_1h[i]));
    json_object_set_new(o, "sizes_1h", sizes);
    json_object_set_new(o, "joins_1m", json_integer(p->joins_1m));
    json_object_set_new(o, "leaves_1m", json_integer(p->leaves_1m));
    json_object_set_new(o, "published_at", p->published_at ? json_integer(p->published_at) : json_null());
    json_object_set_new(o, "author", json_string(p->author ? p->author : "file"));
    json_object_set_new(o, "compile_error", p->compile_error ? json_string(p->compile_error) : json_null());
    return o;
}

/* The named pool in the current view (the caller releases *v), or NULL
 * after answering 404. */
static const pool_view_t *acquire_pool(api_t *api, const char *name, http_resp_t *resp, view_t **v) {
    *v = engine_acquire(api->engine);
    const pool_view_t *p = view_pool(*v, name);
    if (!p) {
        engine_release(*v);
        http_resp_error(resp, 404, "no pool named \"%s\" (GET /api/pools lists them)", name);
    }
    return p;
}

static void h_pools(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    (void)args;
    api_t *api = app;
    view_t *v = engine_acquire(api->engine);
    json_t *arr = json_array();
    for (size_t i = 0; i < v->npools; i++) json_array_append_new(arr, pool_json(v->pools[i]));
    engine_release(v);
    http_resp_json(resp, 200, arr);
}

static void h_pool(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    view_t *v;
    const pool_view_t *p = acquire_pool(api, args[0], resp, &v);
    if (!p) return;
    json_t *o = pool_json(p);
    json_object_set_new(o, "file", json_string(p->file));
    json_object_set_new(o, "where", json_string(p->where));
    json_object_set_new(o, "has_match", json_boolean(p->has_match));
    json_object_set_new(o, "ranked", json_boolean(p->has_rank));
    json_object_set_new(o, "limit", p->limit ? json_integer(p->limit) : json_null());
    json_object_set_new(o, "active_from", p->active_from ? json_integer(p->active_from) : json_null());
    json_object_set_new(o, "active_to", p->active_to ? json_integer(p->active_to) : json_null());
    json_object_set_new(o, "last_error", p->last_error ? json_string(p->last_error) : json_null());
    json_object_set_new(o, "changes_retained_from", json_integer((json_int_t)p->changes_retained_from));
    engine_release(v);
    http_resp_json(resp, 200, o);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v > max) return -1;
    *out = v;
    return 0;
}

static void h_members(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    uint64_t limit = MEMBERS_DEFAULT_LIMIT, cursor = 0;
    const char *ls = http_query(req, "limit"), *cs = http_query(req, "cursor");
    if (ls && (parse_u64(ls, MEMBERS_MAX_LIMIT, &limit) != 0 || limit == 0)) {
        atomic_fetch_add(&api_page_size_refused, 1);
        http_resp_error(resp, 400, "limit must be an integer from 1 to %d (page size), got \"%.40s\"",
                        MEMBERS_MAX_LIMIT, ls);
        return;
    }
    if (cs && *cs && parse_u64(cs, UINT32_MAX, &cursor) != 0) {
        http_resp_error(resp, 400, "invalid cursor \"%.40s\": pass the \"next\" value of the previous page", cs);
        return;
    }
    view_t *v;
    const pool_view_t *p = acquire_pool(api, args[0], resp, &v);
    if (!p) return;
    const store_t *st = engine_store_for_readers(api->engine);
    const char *fs = http_query(req, "fields");
    bool with_fields = fs && (strcmp(fs, "1") == 0 || strcmp(fs, "true") == 0);
    uint32_t *ids = with_fields ? xmalloc(limit * sizeof *ids) : NULL;
    const char **names = with_fields ? xmalloc(limit * sizeof *names) : NULL;
    json_t *members = json_array();
    json_t *next = json_null();
    uint64_t n = 0;
    char buf[24];
    if (p->order) {
        /* Ranked pool: rank order (pins first); the cursor is a position. */
        uint64_t pos = cursor;
        for (; pos < p->norder && n < limit; pos++) {
            const char *name = store_read_name(st, p->order[pos]);
            if (name) {
                json_array_append_new(members, json_string(name));
                if (ids) {
                    ids[n] = p->order[pos];
                    names[n] = json_string_value(json_array_get(members, n));
                }
                n++;
            }
        }
        if (pos < p->norder) {
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)pos);
            json_decref(next);
            next = json_string(buf);
        }
    } else {
        roaring_uint32_iterator_t it;
        roaring_init_iterator(p->members, &it);
        bool more = roaring_move_uint32_iterator_equalorlarger(&it, (uint32_t)cursor);
        while (more) {
            if (n == limit) {
                snprintf(buf, sizeof buf, "%u", it.current_value);
                json_decref(next);
                next = json_string(buf);
                break;
            }
            const char *name = store_read_name(st, it.current_value);
            if (name) {
                json_array_append_new(members, json_string(name));
                if (ids) {
                    ids[n] = it.current_value;
                    names[n] = json_string_value(json_array_get(members, n));
                }
                n++;
            }
            more = roaring_advance_uint32_iterator(&it);
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "pool", json_string(p->name));
    if (with_fields) { /* rows are the writer's: read them there, once per page */
        json_t *rows = lifecycle_sku_briefs(api->engine, ids, names, (size_t)n);
        if (rows) json_object_set_new(o, "rows", rows);
        free(ids);
        free(names);
    }
    json_object_set_new(o, "members", members);
    json_object_set_new(o, "size", json_integer((json_int_t)p->size));
    json_object_set_new(o, "seq", json_integer((json_int_t)p->seq));
    json_object_set_new(o, "version", json_integer(p->version));
    json_object_set_new(o, "next", next);
    engine_release(v);
    http_resp_json(resp, 200, o);
}

static void h_member(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    view_t *v;
    const pool_view_t *p = acquire_pool(api, args[0], resp, &v);
    if (!p) return;
    uint32_t id;
    const store_t *st = engine_store_for_readers(api->engine);
    bool known = store_read_id(st, args[1], strlen(args[1]), &id) == 0;
    bool member = known && roaring_bitmap_contains(p->members, id);
    json_t *o = json_object();
    json_object_set_new(o, "pool", json_string(p->name));
    json_object_set_new(o, "sku", json_string(args[1]));
    json_object_set_new(o, "member", json_boolean(member));
    json_object_set_new(o, "known", json_boolean(known));
    json_object_set_new(o, "seq", json_integer((json_int_t)p->seq));
    engine_release(v);
    http_resp_json(resp, 200, o);
}

/* -- one SKU, read on the writer ---------------------------------------------- */

typedef struct sku_call {
    const char *sku;
    json_t *out;
} sku_call_t;

static json_t *win_json(const win_sums_t *w, int k) {
    json_t *o = json_object();
    json_object_set_new(o, "sales", json_integer(w->sales[k]));
    json_object_set_new(o, "gmv", json_real(w->gmv[k]));
    json_object_set_new(o, "views", json_integer(w->views[k]));
    json_object_set_new(o, "clicks", json_integer(w->clicks[k]));
    json_object_set_new(o, "carts", json_integer(w->carts[k]));
    return o;
}

static void sku_on_writer(engine_t *e, void *arg) {
    sku_call_t *c = arg;
    store_t *st = engine_w_store(e);
    tags_t *tags = engine_w_tags(e);
    uint32_t id;
    if (store_find(st, c->sku, strlen(c->sku), &id) != 0) return;
    const sku_row_t *r = store_row(st, id);
    json_t *o = json_object();
    json_object_set_new(o, "sku", json_string(c->sku));
    json_t *f = json_object();
    json_object_set_new(f, "market", json_string(store_dim_name(st, r->market)));
    json_object_set_new(f, "category", json_string(store_dim_name(st, r->category)));
    json_object_set_new(f, "top_category", json_string(store_dim_name(st, r->top_category)));
    json_object_set_new(f, "brand", json_string(store_dim_name(st, r->brand)));
    json_object_set_new(f, "seller", json_string(store_dim_name(st, r->seller)));
    json_object_set_new(f, "price", json_real(r->price));
    json_object_set_new(f, "list_price", json_real(r->list_price));
    json_object_set_new(f, "discount", json_real(r->discount));
    json_object_set_new(f, "stock", json_integer(r->stock));
    json_object_set_new(f, "rating", json_real(r->rating));
    json_object_set_new(f, "reviews", json_integer(r->reviews));
    json_object_set_new(f, "lazmall", json_boolean(r->lazmall));
    json_object_set_new(f, "free_shipping", json_boolean(r->free_shipping));
    json_object_set_new(o, "fields", f);
    json_t *tl = json_array();
    uint32_t nt = tags_count(tags);
    for (uint32_t t = 0; t < nt; t++)
        if (tags_has(tags, t, id) && tags_name(tags, t)[0] != STORE_LIVE_TAG[0])
            json_array_append_new(tl, json_string(tags_name(tags, t)));
    json_object_set_new(o, "tags", tl);
    size_t alen;
    const char *attrs = store_attrs(st, id, &alen);
    json_t *aj = attrs ? json_loadb(attrs, alen, 0, NULL) : NULL;
    json_object_set_new(o, "attrs", aj ? aj : json_object());
    const win_sums_t *w = &windows_sums(engine_w_windows(e))[r->win];
    json_t *cnt = json_object();
    json_object_set_new(cnt, "1h", win_json(w, WIN_1H));
    json_object_set_new(cnt, "24h", win_json(w, WIN_24H));
    json_object_set_new(cnt, "7d", win_json(w, WIN_7D));
    json_object_set_new(o, "counters", cnt);
    json_t *pools = json_array();
    for (size_t i = 0; i < engine_w_npools(e); i++) {
        pool_t *p = engine_w_pool(e, i);
        json_t *po = json_object();
        json_object_set_new(po, "name", json_string(p->name));
        json_object_set_new(po, "member", json_boolean(roaring_bitmap_contains(p->members, id)));
        json_array_append_new(pools, po);
    }
    json_object_set_new(o, "pools", pools);
    json_object_set_new(o, "internal_id", json_integer(id));
    /* Freshness: when and from where each field group was last set. */
    static const char *const group_fields[FG__COUNT] = {
        "market category brand seller rating reviews lazmall free_shipping", "price list_price", "stock", "tags",
        "attrs"};
    const field_stamp_t *fs = engine_w_stamp(e, id);
    json_t *src = json_object();
    for (int g = 0; fs && g < FG__COUNT; g++) {
        if (!fs->ts[g]) continue;
        json_t *so = json_object();
        json_object_set_new(so, "fields", json_string(group_fields[g]));
        json_object_set_new(so, "ts", json_integer(fs->ts[g]));
        json_object_set_new(so, "seq", json_integer((json_int_t)fs->seq[g]));
        const source_entry_t *se = engine_w_source(e, fs->seq[g]);
        if (se) {
            static const char *const kinds[] = {"http", "file", "kafka"};
            json_object_set_new(so, "source", json_string(se->kind < 3 ? kinds[se->kind] : "?"));
            json_object_set_new(so, "input", json_string(se->name));
            if (se->kind == WAL_SRC_KAFKA) {
                json_object_set_new(so, "partition", json_integer(se->partition));
                if (se->offsets) json_object_set_new(so, "offset", json_integer(se->offsets[fs->seq[g] - se->first_seq]));
                else json_object_set_new(so, "offset_at_most", json_integer(se->last_offset));
            }
        }
        json_object_set_new(src, freshness_group_name[g], so);
    }
    json_object_set_new(o, "sources", src);
    c->out = o;
}

static void h_sku(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    sku_call_t c = {args[0], NULL};
    if (engine_call(api->engine, sku_on_writer, &c) != 0) {
        http_resp_error(resp, 503, "shutting down");
        return;
    }
    if (!c.out) {
        http_resp_error(resp, 404, "no SKU \"%s\"", args[0]);
        return;
    }
    http_resp_json(resp, 200, c.out);
}

/* -- ad-hoc query ---------------------------------------------------------------- */

static const roaring_bitmap_t *view_resolve(void *ctx, const char *tag, size_t len) {
    const tagview_t *tv = ctx;
    uint32_t id;
    if (tagview_find(tv, tag, len, &id) != 0) return NULL;
    return tagview_bitmap(tv, id);
}

static void h_query(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)args;
    api_t *api = app;
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    const char *where = body ? json_string_value(json_object_get(body, "where")) : NULL;
    if (!where) {
        json_decref(body);
        http_resp_error(resp, 400, "expected a JSON body {\"where\": \"market:SG & lazmall & !blocked\"}");
        return;
    }
    uint64_t sample_n = QUERY_SAMPLE;
    json_t *sj = json_object_get(body, "sample");
    if (json_is_integer(sj) && json_integer_value(sj) >= 0 && json_integer_value(sj) <= 1000)
        sample_n = (uint64_t)json_integer_value(sj);
    char err[256];
    tagexpr_t *x = tagexpr_parse(where, strlen(where), err, sizeof err);
    if (!x) {
        http_resp_error(resp, 400, "where: %s", err);
        json_decref(body);
        return;
    }
    view_t *v = engine_acquire(api->engine);
    const char *pool = json_string_value(json_object_get(body, "pool"));
    const pool_view_t *pv = NULL;
    if (pool) {
        pv = view_pool(v, pool);
        if (!pv) {
            engine_release(v);
            tagexpr_free(x);
            http_resp_error(resp, 404, "no pool named \"%.80s\" (GET /api/pools lists them)", pool);
            json_decref(body);
            return;
        }
    }
    const roaring_bitmap_t *live = view_resolve(v->tags, STORE_LIVE_TAG, strlen(STORE_LIVE_TAG));
    roaring_bitmap_t *empty = NULL;
    if (!live) live = empty = roaring_bitmap_create();
    roaring_bitmap_t *bm = tagexpr_eval_bitmap(x, view_resolve, v->tags, live);
    if (pv) roaring_bitmap_and_inplace(bm, pv->members); /* within one pool's members */
    const store_t *st = engine_store_for_readers(api->engine);
    json_t *sample = json_array();
    roaring_uint32_iterator_t it;
    roaring_init_iterator(bm, &it);
    for (uint64_t n = 0; it.has_value && n < sample_n; roaring_advance_uint32_iterator(&it)) {
        const char *name = store_read_name(st, it.current_value);
        if (name) {
            json_array_append_new(sample, json_string(name));
            n++;
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)roaring_bitmap_get_cardinality(bm)));
    json_object_set_new(o, "sample", sample);
    char *canon = tagexpr_to_string(x);
    json_object_set_new(o, "where", json_string(canon));
    if (pv) json_object_set_new(o, "pool", json_string(pv->name));
    free(canon);
    roaring_bitmap_free(bm);
    if (empty) roaring_bitmap_free(empty);
    engine_release(v);
    tagexpr_free(x);
    json_decref(body);
    http_resp_json(resp, 200, o);
}

/* -- events ------------------------------------------------------------------------ */

static void h_events(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)args;
    api_t *api = app;
    const char *wait = http_query(req, "wait");
    if (wait && strcmp(wait, "applied") != 0 && strcmp(wait, "none") != 0 && strcmp(wait, "durable") != 0) {
        http_resp_error(resp, 400, "wait must be \"applied\", \"durable\" or \"none\", got \"%.20s\"", wait);
        return;
    }
    char *buf = xmalloc(req->body_len + 1);
    memcpy(buf, req->body, req->body_len);
    buf[req->body_len] = '\0';
    ingest_report_t rep = {0};
    rep.max_errors = MAX_ERRORS_REPORTED;
    int rc = engine_submit(api->engine, buf, req->body_len, "http", 0, 0, api->cfg.submit_timeout_ms, &rep);
    if (rc != 0) {
        int busy = errno == EAGAIN;
        ingest_report_free(&rep);
        http_resp_header(resp, "Retry-After", "1");
        http_resp_error(resp, 503, busy ? "the ingest queue is full (the writer is behind); nothing from this "
                                          "request was accepted, retry later"
                                        : "shutting down; nothing from this request was accepted");
        return;
    }
    /* Acknowledge once the lines are on disk (fsync always|batch, or
     * ?wait=durable), and once applied if asked. */
    bool durable = true, waited = false;
    if (rep.last_seq && ((wait && strcmp(wait, "durable") == 0) || engine_acks_wait_for_disk(api->engine))) {
        durable = engine_wait_durable(api->engine, rep.last_seq, 60000) == 0;
        waited = true;
    }
    bool applied = false;
    if (wait && strcmp(wait, "applied") == 0)
        applied = rep.last_seq == 0 || engine_wait_applied(api->engine, rep.last_seq, 60000) == 0;
    json_t *o = json_object();
    json_object_set_new(o, "accepted", json_integer((json_int_t)rep.accepted));
    json_object_set_new(o, "rejected", json_integer((json_int_t)rep.rejected));
    json_t *errs = json_array();
    for (size_t i = 0; i < rep.nerrors; i++) {
        json_t *eo = json_object();
        json_object_set_new(eo, "line", json_integer((json_int_t)rep.errors[i].line));
        json_object_set_new(eo, "reason", json_string(event_reject_name(rep.errors[i].reason)));
        json_object_set_new(eo, "error", json_string(rep.errors[i].msg));
        json_array_append_new(errs, eo);
    }
    json_object_set_new(o, "errors", errs);
    if (rep.rejected > rep.nerrors) json_object_set_new(o, "errors_truncated", json_true());
    json_object_set_new(o, "seq", rep.last_seq ? json_integer((json_int_t)rep.last_seq) : json_null());
    bool want_applied = wait && strcmp(wait, "applied") == 0;
    if (want_applied) json_object_set_new(o, "applied", json_boolean(applied));
    /* everysec without ?wait=durable: accepted, not yet known to be on disk */
    bool on_disk = waited ? durable : rep.last_seq == 0 || engine_durable(api->engine, rep.last_seq);
    json_object_set_new(o, "durable", json_boolean(on_disk));
    ingest_report_free(&rep);
    if (!durable) {
        json_object_set_new(o, "error", json_string("the lines were accepted but are not known to be on disk "
                                                    "(fsync failed or timed out); they may be lost on a crash"));
        http_resp_json(resp, 503, o);
        return;
    }
    http_resp_json(resp, want_applied && !applied ? 504 : 200, o);
}

/* -- admin ---------------------------------------------------------------------------- */

static void h_snapshot(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)args;
    api_t *api = app;
    uint64_t t0 = mono_ns(), seq = 0;
    if (engine_snapshot(api->engine, 120000, &seq) != 0) {
        http_resp_error(resp, 500, "the snapshot failed or timed out (see the log)");
        return;
    }
    api_audit(api, req, "snapshot", "state", NULL);
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "took_ms", json_real((double)(mono_ns() - t0) / 1e6));
    http_resp_json(resp, 200, o);
}

/* -- health, metrics, console --------------------------------------------------------- */

static void h_healthz(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    (void)args;
    api_t *api = app;
    view_t *v = engine_acquire(api->engine);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "loading", json_boolean(engine_loading(api->engine)));
    json_object_set_new(o, "skus", json_integer(v->skus));
    json_object_set_new(o, "pools", json_integer((json_int_t)v->npools));
    json_object_set_new(o, "applied_seq", json_integer((json_int_t)v->applied_seq));
    json_object_set_new(o, "clock", json_integer(v->clock_ms));
    json_object_set_new(o, "uptime_s", json_integer((wall_ms() - api->started_ms) / 1000));
    engine_release(v);
    http_resp_json(resp, 200, o);
}

static void h_metrics(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    (void)args;
    api_t *api = app;
    size_t len;
    char *text = metrics_render(api->engine, api->server, api->started_ms, &len);
    if (api->kafka) {
        metrics_buf_t b = {text, len, len + 1};
        kafka_feed_metrics(api->kafka, metrics_emit, &b);
        text = b.p;
        len = b.len;
    }
    http_resp_take(resp, 200, "text/plain; version=0.0.4", text, len);
}

static const char *content_type_for(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    if (!strcmp(dot, ".json")) return "application/json";
    return "application/octet-stream";
}

static void h_web(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    const char *rel = (args && args[0] && *args[0]) ? args[0] : "index.html";
    if (strstr(rel, "..")) {
        http_resp_error(resp, 404, "not found");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "web/%s", rel);
    if (api->cfg.web_dir) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", api->cfg.web_dir, rel);
        size_t len;
        char *data = read_file(full, &len);
        if (data) {
            http_resp_take(resp, 200, content_type_for(rel), data, len);
            return;
        }
    }
    const embedded_file_t *f = embedded_find(path);
    if (!f) {
        http_resp_error(resp, 404, "no such page: %s", req->path);
        return;
    }
    http_resp_static(resp, 200, content_type_for(rel), f->data, f->size);
}

static void h_whoami(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);

static void h_snapshot(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);

static void h_stats(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);

static const http_route_t routes[] = {
    {"GET", "/api/stats", h_stats, 0},
    {"POST", "/api/admin/snapshot", h_snapshot, 0},
    {"GET", "/api/whoami", h_whoami, 0},
    {"GET", "/healthz", h_healthz, 0},
    {"GET", "/metrics", h_metrics, 0},
    {"GET", "/api/pools", h_pools, 0},
    {"GET", "/api/pools/:name", h_pool, 0},
    {"GET", "/api/pools/:name/members", h_members, 0},
    {"GET", "/api/pools/:name/members/:sku", h_member, 0},
    {"GET", "/api/pools/:name/changes", api_h_changes, 0},
    {"GET", "/api/skus/:sku", h_sku, 0},
    {"GET", "/api/skus/:sku/explain", api_h_explain, 0},
    {"GET", "/api/rules", api_h_rules, 0},
    {"GET", "/api/rules/:name", api_h_rule, 0},
    {"PUT", "/api/rules/:name", api_h_rule_put, 1024 * 1024},
    {"DELETE", "/api/rules/:name", api_h_rule_delete, 0},
    {"DELETE", "/api/rules/:name/draft", api_h_draft_delete, 0},
    {"POST", "/api/rules/:name/preview", api_h_preview, 0},
    {"POST", "/api/rules/:name/publish", api_h_publish, 0},
    {"POST", "/api/rules/:name/rollback", api_h_rollback, 0},
    {"POST", "/api/query", h_query, 64 * 1024},
    {"POST", "/api/events", h_events, 64u << 20},
    {"GET", "/", h_web, 0},
    {"GET", "/web/*", h_web, 0},
};

const http_route_t *api_routes(size_t *n) {
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* -- access ------------------------------------------------------------------------ */

static __thread char principal[AUTH_NAME_MAX + 1];

static unsigned route_perm(const http_route_t *rt) {
    const char *m = rt->method, *p = rt->pattern;
    if (!strcmp(p, "/healthz") || !strcmp(p, "/") || !strncmp(p, "/web/", 5)) return 0;
    if (!strncmp(p, "/api/admin", 10)) return AUTH_PERM_ADMIN;
    if (!strcmp(p, "/api/events")) return AUTH_PERM_INGEST;
    if (!strncmp(p, "/api/rules", 10) && strcmp(m, "GET") != 0) return AUTH_PERM_EDIT;
    return AUTH_PERM_READ;
}

int api_guard(void *app, const http_req_t *req, const http_route_t *route, http_resp_t *resp) {
    api_t *api = app;
    principal[0] = '\0';
    unsigned need = route_perm(route);
    if (!need || !api->auth) return 0;
    const char *role = NULL;
    auth_result_t r = auth_check(api->auth, http_header(req, "Authorization"), need, principal, sizeof principal,
                                 &role);
    if (r == AUTH_OK) return 0;
    char msg[300];
    auth_message(r, role, need, msg, sizeof msg);
    if (r == AUTH_FORBIDDEN) {
        http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"poold\", error=\"insufficient_scope\"");
        http_resp_error(resp, 403, "%s", msg);
    } else {
        http_resp_header(resp, "WWW-Authenticate", r == AUTH_INVALID
                                                        ? "Bearer realm=\"poold\", error=\"invalid_token\""
                                                        : "Bearer realm=\"poold\"");
        http_resp_error(resp, 401, "%s", msg);
    }
    principal[0] = '\0';
    return -1;
}

const char *api_principal(const http_req_t *req, char *buf, size_t len) {
    if (principal[0]) {
        snprintf(buf, len, "%s", principal);
        return buf;
    }
    const char *a = http_header(req, "X-Poold-Author");
    size_t n = 0;
    if (a)
        for (; a[n] && n + 1 < len && n < 128; n++) buf[n] = (a[n] >= 0x20 && a[n] < 0x7f) ? a[n] : '?';
    buf[n] = '\0';
    if (!n) snprintf(buf, len, "anonymous");
    return buf;
}

void api_audit(api_t *api, const http_req_t *req, const char *action, const char *target, const char *detail) {
    if (!api->audit) return;
    char who[AUTH_NAME_MAX + 130];
    audit_write(api->audit, api_principal(req, who, sizeof who), req->remote_addr, action, target, detail);
}

static void h_whoami(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)args;
    api_t *api = app;
    json_t *o = json_object();
    json_object_set_new(o, "auth", json_boolean(api->auth != NULL));
    if (!api->auth) {
        json_object_set_new(o, "name", json_null());
        json_object_set_new(o, "role", json_string("admin"));
    } else {
        char name[AUTH_NAME_MAX + 1] = "";
        const char *role = NULL;
        /* Ask for a permission only some roles have: both OK and FORBIDDEN
         * name the token's owner and role. */
        auth_result_t r = auth_check(api->auth, http_header(req, "Authorization"), AUTH_PERM_INGEST, name,
                                     sizeof name, &role);
        bool known = (r == AUTH_OK || r == AUTH_FORBIDDEN) && name[0];
        json_object_set_new(o, "name", known ? json_string(name) : json_null());
        json_object_set_new(o, "role", known && role ? json_string(role) : json_null());
    }
    http_resp_json(resp, 200, o);
}

/* -- stats ------------------------------------------------------------------------- */

static uint64_t total_rejected(const engine_stats_t *s) {
    uint64_t r = 0;
    for (int i = 0; i < REJ__COUNT; i++) r += atomic_load(&s->rejected[i]);
    return r;
}

void api_sample_rates(api_t *api) {
    const engine_stats_t *s = engine_stats(api->engine);
    uint64_t applied = atomic_load(&s->applied), rejected = total_rejected(s);
    if (api->rate_applied || api->rate_rejected) {
        atomic_store(&api->applied_per_s, (double)(applied - api->rate_applied));
        atomic_store(&api->rejected_per_s, (double)(rejected - api->rate_rejected));
    }
    api->rate_applied = applied;
    api->rate_rejected = rejected;
}

static void h_stats(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    (void)args;
    api_t *api = app;
    view_t *v = engine_acquire(api->engine);
    const engine_stats_t *s = engine_stats(api->engine);
    json_t *o = json_object();
    json_object_set_new(o, "events_per_s", json_real(atomic_load(&api->applied_per_s)));
    json_object_set_new(o, "rejected_per_s", json_real(atomic_load(&api->rejected_per_s)));
    json_object_set_new(o, "applied", json_integer((json_int_t)atomic_load(&s->applied)));
    json_object_set_new(o, "rejected", json_integer((json_int_t)total_rejected(s)));
    json_object_set_new(o, "applied_seq", json_integer((json_int_t)v->applied_seq));
    json_object_set_new(o, "skus", json_integer(v->skus));
    json_object_set_new(o, "pools", json_integer((json_int_t)v->npools));
    json_object_set_new(o, "uptime_s", json_integer((wall_ms() - api->started_ms) / 1000));
    json_object_set_new(o, "queue_events", json_integer((json_int_t)atomic_load(&s->queued_events)));
    json_object_set_new(o, "kafka", kafka_feed_json(api->kafka));
    engine_durability_stats_t ds;
    engine_durability_stats(api->engine, &ds);
    json_object_set_new(o, "snapshot", ds.enabled ? json_pack("{s:I, s:I, s:I}", "seq", (json_int_t)ds.snapshot_seq,
                                                              "at", (json_int_t)ds.snapshot_at, "count",
                                                              (json_int_t)ds.snapshots)
                                                  : json_null());
    engine_release(v);
    http_resp_json(resp, 200, o);
}
