/* test_snapshot.c - snapshot files: CRC-32C, the generic section API and
 * its bounds checks, a full round trip of store + tags + windows built by
 * the generator's catalog and event stream (deletes, re-inserts, free tags,
 * attrs, orders and behaviour at many ages) compared field by field and
 * then kept in step (windows expiring, new events, id reuse), a write from
 * a forked child, and corruption: truncation, flipped bytes (the CRC error
 * names the section), a newer format, bad magic, trailing bytes, and
 * random damage with the CRC check off (must fail cleanly or load).
 * The round trip's snapshot (core.snap) is reused by the later tests. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "gen.h"
#include "ndjson.h"
#include "snapshot.h"
#include "store.h"
#include "tags.h"
#include "util.h"
#include "windows.h"

#define NSKUS 3000
#define NEVENTS 30000
#define T0 1794268800000LL /* the generator's default catalog ts */
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL

static char dir[64];

/* -- A state built like the engine builds it ------------------------------- */

typedef struct state {
    tags_t *tags;
    store_t *st;
    windows_t *win;
    retire_list_t limbo; /* deletes whose ids are not released yet */
} state_t;

static void state_new(state_t *s) {
    memset(s, 0, sizeof *s);
    s->tags = tags_new();
    s->st = store_new(s->tags);
    s->win = windows_new();
}

static void state_free(state_t *s) {
    retire_run(&s->limbo);
    retire_free(&s->limbo);
    windows_free(s->win);
    store_free(s->st);
    tags_free(s->tags);
}

typedef struct change_log {
    state_t *s;
    size_t n;
    uint64_t hash; /* of the (sku, index) sequence */
} change_log_t;

static void on_change(void *arg, uint32_t sku, uint32_t win_index) {
    change_log_t *c = arg;
    if (win_index == 0) store_row(c->s->st, sku)->win = 0;
    uint32_t pair[2] = {sku, win_index};
    c->hash = c->hash * 1000003u ^ hash_bytes(pair, sizeof pair);
    c->n++;
}

static void set_fields(store_t *st, uint32_t id, const event_t *ev) {
    uint32_t h = ev->has;
    if (h & EV_MARKET) store_set_dim(st, id, DIM_MARKET, ev->market.p, ev->market.len);
    if (h & EV_CATEGORY) store_set_dim(st, id, DIM_CATEGORY, ev->category.p, ev->category.len);
    if (h & EV_BRAND) store_set_dim(st, id, DIM_BRAND, ev->brand.p, ev->brand.len);
    if (h & EV_SELLER) store_set_dim(st, id, DIM_SELLER, ev->seller.p, ev->seller.len);
    if (h & EV_PRICE) store_set_price(st, id, ev->price);
    if (h & EV_LIST_PRICE) store_set_list_price(st, id, ev->list_price);
    if (h & EV_STOCK) store_set_stock(st, id, ev->stock);
    if (h & EV_RATING) store_set_rating(st, id, ev->rating);
    if (h & EV_REVIEWS) store_set_reviews(st, id, ev->reviews);
    if (h & EV_LAZMALL) store_set_flag(st, id, true, ev->lazmall);
    if (h & EV_FREE_SHIPPING) store_set_flag(st, id, false, ev->free_shipping);
    if (h & EV_TAGS) store_set_free_tags(st, id, ev->tags.p, ev->tags.n);
    if (h & EV_ATTRS) store_set_attrs(st, id, ev->attrs.p, ev->attrs.len);
}

/* engine.c apply_event, with the event clock; deletes go through `rl`. */
static void apply(state_t *s, const event_t *ev, retire_list_t *rl) {
    store_t *st = s->st;
    int64_t now = ev->ts > windows_now(s->win) ? ev->ts : windows_now(s->win);
    uint32_t id;
    if (ev->op == OP_DELETE) {
        if (store_find(st, ev->sku.p, ev->sku.len, &id) != 0) return;
        windows_release(s->win, &store_row(st, id)->win);
        store_delete(st, id, rl);
        return;
    }
    bool created;
    id = store_upsert_id(st, ev->sku.p, ev->sku.len, &created, NULL);
    const char *t = NULL;
    switch (ev->op) {
    case OP_RECORD:
        if (!created) store_reset_fields(st, id);
        set_fields(st, id, ev);
        break;
    case OP_UPSERT: case OP_PRICE: case OP_STOCK:
        set_fields(st, id, ev);
        break;
    case OP_ORDER:
        windows_add_order(s->win, &store_row(st, id)->win, id, (uint32_t)ev->qty, ev->amount, ev->ts, now);
        break;
    case OP_VIEW:
        windows_add_behaviour(s->win, &store_row(st, id)->win, id, WM_VIEWS, ev->ts, now);
        break;
    case OP_CLICK:
        windows_add_behaviour(s->win, &store_row(st, id)->win, id, WM_CLICKS, ev->ts, now);
        break;
    case OP_CART:
        windows_add_behaviour(s->win, &store_row(st, id)->win, id, WM_CARTS, ev->ts, now);
        break;
    case OP_TAG:
        if (ev->has & EV_TAGS)
            while ((t = event_tag_next(&ev->tags, t))) store_add_free_tag(st, id, t, strlen(t));
        t = NULL;
        if (ev->has & EV_REMOVE)
            while ((t = event_tag_next(&ev->tags_remove, t))) store_remove_free_tag(st, id, t, strlen(t));
        break;
    default:
        break;
    }
}

static void apply_line(state_t *s, const char *text, retire_list_t *rl) {
    char line[4096];
    size_t len = strlen(text);
    memcpy(line, text, len + 1);
    event_t ev;
    event_error_t e;
    int rc = ndjson_parse_event(line, len, T0, &ev, &e);
    if (rc != 0) {
        fprintf(stderr, "bad line (%s): %s\n", e.msg, text);
        CHECK(rc == 0);
        return;
    }
    apply(s, &ev, rl);
}

static void advance(state_t *s, int64_t now, change_log_t *log) {
    change_log_t local = {s, 0, 0};
    windows_advance(s->win, now, on_change, log ? log : &local);
}

/* The catalog, then a 30-hour stream, with the clock following; a few
 * hand-made cases on top: long SKU ids, a tag that lost its only member, a
 * tag that never had one, SKUs deleted with their ids still in limbo,
 * counters at many ages and one in the future. */
static void build(state_t *s) {
    char buf[8192];
    advance(s, T0, NULL);
    for (uint32_t i = 0; i < NSKUS; i++) {
        gen_catalog_line(NSKUS, 7, i, T0, buf, sizeof buf);
        apply_line(s, buf, NULL);
    }
    gen_stream_t *g = gen_stream_new(NSKUS, 7);
    int64_t span = 30 * HOUR_MS;
    for (uint32_t i = 0; i < NEVENTS; i++) {
        int64_t ts = T0 + span * i / NEVENTS;
        gen_stream_next(g, ts, buf, sizeof buf);
        apply_line(s, buf, NULL);
        if (i % 500 == 0) advance(s, ts, NULL);
    }
    gen_stream_free(g);
    int64_t now = T0 + span;
    advance(s, now, NULL);
    char line[512];
    for (int i = 0; i < 40; i++) { /* ids longer than strmap's inline keys */
        snprintf(line, sizeof line,
                 "{\"sku\":\"a-rather-long-external-sku-id-%04d\",\"market\":\"SG\",\"category\":\"toys\","
                 "\"price\":%d.25,\"list_price\":%d,\"stock\":%d,\"tags\":[\"handmade\",\"t%d\"],"
                 "\"attrs\":{\"color\":\"r\\u00e9d\",\"n\":%d,\"deep\":{\"a\":[1,2]}},\"ts\":%lld}",
                 i, i + 1, i + 3, i % 3, i % 5, i, (long long)now);
        apply_line(s, line, NULL);
        /* counters at many ages, one far ahead */
        int64_t ages[] = {1 * MIN_MS, 59 * MIN_MS, 61 * MIN_MS, 5 * HOUR_MS, 23 * HOUR_MS + 59 * MIN_MS,
                          25 * HOUR_MS, 3 * 24 * HOUR_MS, 167 * HOUR_MS, -10 * MIN_MS};
        for (size_t k = 0; k < sizeof ages / sizeof ages[0]; k++) {
            snprintf(line, sizeof line,
                     "{\"op\":\"%s\",\"sku\":\"a-rather-long-external-sku-id-%04d\",\"qty\":%zu,"
                     "\"amount\":%zu.1,\"ts\":%lld}",
                     k % 2 ? "order" : (k % 4 ? "click" : "view"), i, k + 1, k * 3 + 1,
                     (long long)(now - ages[k]));
            apply_line(s, line, NULL);
        }
    }
    apply_line(s, "{\"op\":\"tag\",\"sku\":\"a-rather-long-external-sku-id-0001\",\"add\":[\"solo\"]}", NULL);
    apply_line(s, "{\"op\":\"tag\",\"sku\":\"a-rather-long-external-sku-id-0001\",\"remove\":[\"solo\"]}", NULL);
    tags_intern(s->tags, "never_used", 10, NULL);
    /* deleted with ids released, then some re-inserted (ids reused) */
    for (int i = 0; i < 10; i++) {
        snprintf(line, sizeof line, "{\"op\":\"delete\",\"sku\":\"a-rather-long-external-sku-id-%04d\"}", 20 + i);
        apply_line(s, line, NULL);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(line, sizeof line, "{\"sku\":\"reborn-%d\",\"market\":\"VN\",\"price\":1,\"ts\":%lld}", i,
                 (long long)now);
        apply_line(s, line, NULL);
    }
    /* deleted while a reader might still see them: ids in limbo */
    for (int i = 0; i < 5; i++) {
        snprintf(line, sizeof line, "{\"op\":\"delete\",\"sku\":\"a-rather-long-external-sku-id-%04d\"}", 30 + i);
        apply_line(s, line, &s->limbo);
    }
}

/* -- Comparing everything observable ---------------------------------------- */

static int bits_eq(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static int rows_equal(const sku_row_t *a, const sku_row_t *b) {
#define FIELD_EQ(type, name) if (!bits_eq(&a->name, &b->name, sizeof(type))) return 0;
    SKU_ROW_FIELDS(FIELD_EQ)
#undef FIELD_EQ
    return 1;
}

static int attr_eq(const attr_value_t *a, const attr_value_t *b) {
    if (a->type != b->type || a->len != b->len || !bits_eq(&a->num, &b->num, sizeof a->num)) return 0;
    return a->type != ATTR_STRING && a->type != ATTR_JSON ? 1 : memcmp(a->str, b->str, (size_t)a->len) == 0;
}

static const char *const attr_names[] = {"material", "origin", "weight_kg", "color", "n", "deep",
                                         "energy_class", "age_group", "missing"};

/* 1 if the two states answer every read the same way. */
static int states_equal(state_t *a, state_t *b) {
    int ok = 1;
#define EXPECT(c)                                                                   \
    do {                                                                            \
        if (!(c)) {                                                                 \
            if (ok) fprintf(stderr, "%s:%d: state differs: %s\n", __FILE__, __LINE__, #c); \
            ok = 0;                                                                 \
        }                                                                           \
    } while (0)
    store_t *sa = a->st, *sb = b->st;
    EXPECT(store_id_limit(sa) == store_id_limit(sb));
    EXPECT(store_count(sa) == store_count(sb));
    if (!ok) return 0;
    const sku_row_t *ra = store_rows(sa), *rb = store_rows(sb);
    const win_sums_t *wa = windows_sums(a->win), *wb = windows_sums(b->win);
    for (uint32_t id = 0; id < store_id_limit(sa) && ok; id++) {
        EXPECT(rows_equal(&ra[id], &rb[id]));
        const char *na = store_read_name(sa, id), *nb = store_read_name(sb, id);
        EXPECT((na == NULL) == (nb == NULL));
        if (!ok || !na) continue;
        EXPECT(strcmp(na, nb) == 0);
        uint32_t ia = UINT32_MAX, ib = UINT32_MAX;
        EXPECT(store_read_id(sa, na, strlen(na), &ia) == 0 && store_read_id(sb, na, strlen(na), &ib) == 0);
        EXPECT(ia == id && ib == id);
        uint32_t fa, fb;
        const uint32_t *ta = store_free_tags(sa, id, &fa), *tb = store_free_tags(sb, id, &fb);
        EXPECT(fa == fb && (fa == 0 || memcmp(ta, tb, fa * sizeof *ta) == 0));
        size_t la, lb;
        const char *xa = store_attrs(sa, id, &la), *xb = store_attrs(sb, id, &lb);
        EXPECT((xa == NULL) == (xb == NULL) && la == lb && (!xa || memcmp(xa, xb, la) == 0));
        for (size_t k = 0; k < sizeof attr_names / sizeof *attr_names; k++) {
            attr_value_t va, vb;
            store_attr_get(sa, id, attr_names[k], strlen(attr_names[k]), &va);
            store_attr_get(sb, id, attr_names[k], strlen(attr_names[k]), &vb);
            EXPECT(attr_eq(&va, &vb));
        }
        EXPECT(bits_eq(&wa[ra[id].win], &wb[rb[id].win], sizeof *wa));
        size_t n = windows_slot_count(a->win, ra[id].win);
        EXPECT(n == windows_slot_count(b->win, rb[id].win));
        for (size_t k = 0; k < n && ok; k++) {
            windows_slot_t x, y;
            EXPECT(windows_slot_at(a->win, ra[id].win, k, &x) == 0 && windows_slot_at(b->win, rb[id].win, k, &y) == 0);
            EXPECT(x.start_ms == y.start_ms && x.hourly == y.hourly && x.order == y.order && x.sales == y.sales &&
                   x.views == y.views && x.clicks == y.clicks && x.carts == y.carts && bits_eq(&x.gmv, &y.gmv, 8));
        }
    }
    for (uint32_t d = 0; d < 20000 && ok; d++) EXPECT(strcmp(store_dim_name(sa, d), store_dim_name(sb, d)) == 0);
    EXPECT(tags_count(a->tags) == tags_count(b->tags));
    for (uint32_t t = 0; t < tags_count(a->tags) && ok; t++) {
        EXPECT(strcmp(tags_name(a->tags, t), tags_name(b->tags, t)) == 0);
        uint32_t fa = 0, fb = 1;
        const char *name = tags_name(a->tags, t);
        EXPECT(tags_find(b->tags, name, strlen(name), &fb) == 0 && tags_find(a->tags, name, strlen(name), &fa) == 0 && fa == fb);
        const roaring_bitmap_t *ba = tags_bitmap(a->tags, t), *bb = tags_bitmap(b->tags, t);
        EXPECT((ba == NULL) == (bb == NULL));
        if (ba && bb) EXPECT(roaring_bitmap_equals(ba, bb));
    }
    EXPECT(windows_now(a->win) == windows_now(b->win));
    EXPECT(windows_active(a->win) == windows_active(b->win));
    return ok;
#undef EXPECT
}

static int views_equal(state_t *a, state_t *b) {
    const tagview_t *va = tags_publish(a->tags, NULL), *vb = tags_publish(b->tags, NULL);
    if (tagview_count(va) != tagview_count(vb)) return 0;
    for (uint32_t t = 0; t < tagview_count(va); t++) {
        const roaring_bitmap_t *x = tagview_bitmap(va, t), *y = tagview_bitmap(vb, t);
        if (strcmp(tagview_name(va, t), tagview_name(vb, t)) != 0 || (x == NULL) != (y == NULL)) return 0;
        if (x && !roaring_bitmap_equals(x, y)) return 0;
        uint32_t id;
        if (tagview_find(vb, tagview_name(va, t), strlen(tagview_name(va, t)), &id) != 0 || id != t) return 0;
    }
    return 1;
}

/* -- Helpers ------------------------------------------------------------------- */

static char *path_in_dir(const char *name) {
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static int save(state_t *s, const char *path) {
    char err[512];
    snap_writer_t *w = snap_create(path, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (snapshot_write_core(w, s->st, s->tags, s->win) != 0) {
        fprintf(stderr, "%s\n", snap_writer_error(w));
        snap_abort(w);
        return -1;
    }
    if (snap_commit(w, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* Loads path into a fresh state; err gets the reason on failure. */
static int load_buf(const void *data, size_t len, unsigned flags, state_t *s, char *err, size_t errlen) {
    state_new(s);
    snap_reader_t *r = snap_open_buffer(data, len, flags, NULL, err, errlen);
    if (!r) return -1;
    int rc = snapshot_read_core(r, s->st, s->tags, s->win, err, errlen);
    if (rc == 0) {
        uint32_t tag;
        rc = snap_next_section(r, &tag); /* the end */
        if (rc != 0) snprintf(err, errlen, "%s", rc < 0 ? snap_error(r) : "extra section");
    }
    snap_close(r);
    return rc;
}

static int load(const char *path, state_t *s, char *err, size_t errlen) {
    state_new(s);
    uint32_t version = 0;
    snap_reader_t *r = snap_open(path, &version, err, errlen);
    if (!r) return -1;
    int rc = snapshot_read_core(r, s->st, s->tags, s->win, err, errlen);
    uint32_t tag;
    if (rc == 0 && snap_next_section(r, &tag) != 0) rc = -1;
    snap_close(r);
    CHECK_EQ_INT(version, SNAP_FORMAT_VERSION);
    return rc;
}

static uint8_t *slurp(const char *path, size_t *len) { return (uint8_t *)read_file(path, len); }

/* Offset of the frame of section `tag` in a snapshot image. */
static size_t section_at(const uint8_t *d, size_t len, uint32_t tag, uint64_t *plen) {
    size_t pos = 32;
    while (pos + 12 <= len) {
        uint64_t l = snap_dec_u64(d + pos + 4);
        if (snap_dec_u32(d + pos) == tag) {
            *plen = l;
            return pos;
        }
        pos += 12 + l + 4;
    }
    return 0;
}

/* -- Tests ---------------------------------------------------------------------- */

static void test_crc(void) {
    CHECK_EQ_INT(snap_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(snap_crc32c(0, "", 0), 0);
    /* pieces chain, whatever the split and alignment */
    char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (char)(i * 7 + 3);
    uint32_t whole = snap_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut < 40; cut += 3)
        CHECK_EQ_INT(snap_crc32c(snap_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
}

static void test_generic_sections(void) {
    const char *path = path_in_dir("generic.snap");
    char err[512];
    snap_writer_t *w = snap_create(path, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK(snap_put_u32(w, 1) != 0); /* outside a section */
    snap_abort(w);
    struct stat sb;
    CHECK(stat(path_in_dir("generic.snap.tmp"), &sb) != 0); /* abort removed it */

    w = snap_create(path, err, sizeof err);
    roaring_bitmap_t *bm = roaring_bitmap_create();
    roaring_bitmap_add_range(bm, 100, 70000); /* runs after optimizing */
    for (uint32_t v = 200000; v < 260000; v += 3) roaring_bitmap_add(bm, v); /* bitsets and arrays */
    roaring_bitmap_add(bm, 4000000000u);
    roaring_bitmap_run_optimize(bm);
    size_t nbig = 3 << 20; /* larger than the writer's buffer: written through */
    char *big = xmalloc(nbig);
    for (size_t i = 0; i < nbig; i++) big[i] = (char)(i % 251);
    CHECK(snap_begin(w, SNAP_TAG('T', 'E', 'S', 'T')) == 0);
    snap_put_u8(w, 0xAB);
    snap_put_u16(w, 0xBEEF);
    snap_put_u32(w, 0xDEADBEEF);
    snap_put_u64(w, 0x0123456789ABCDEFull);
    snap_put_i64(w, -42);
    snap_put_f64(w, -0.0);
    snap_put_str(w, "hello", 5);
    snap_put_bitmap(w, bm);
    snap_put_bitmap(w, NULL);
    snap_put(w, big, nbig);
    CHECK(snap_end(w) == 0);
    CHECK(snap_begin(w, SNAP_TAG('E', 'M', 'T', 'Y')) == 0);
    CHECK(snap_end(w) == 0);
    CHECK(snap_begin(w, SNAP_TAG_END) != 0); /* reserved: the writer fails */
    CHECK(strstr(snap_writer_error(w), "END") != NULL);
    CHECK(snap_commit(w, err, sizeof err) != 0);
    CHECK(stat(path, &sb) != 0 && stat(path_in_dir("generic.snap.tmp"), &sb) != 0);

    w = snap_create(path, err, sizeof err);
    snap_begin(w, SNAP_TAG('T', 'E', 'S', 'T'));
    snap_put_u8(w, 0xAB);
    snap_put_u16(w, 0xBEEF);
    snap_put_u32(w, 0xDEADBEEF);
    snap_put_u64(w, 0x0123456789ABCDEFull);
    snap_put_i64(w, -42);
    snap_put_f64(w, -0.0);
    snap_put_str(w, "hello", 5);
    snap_put_bitmap(w, bm);
    snap_put_bitmap(w, NULL);
    snap_put(w, big, nbig);
    snap_end(w);
    snap_begin(w, SNAP_TAG('E', 'M', 'T', 'Y'));
    snap_end(w);
    int64_t before = wall_ms();
    CHECK(snap_commit(w, err, sizeof err) == 0);
    CHECK(stat(path_in_dir("generic.snap.tmp"), &sb) != 0);

    uint32_t version = 0, tag = 0;
    snap_reader_t *r = snap_open(path, &version, err, sizeof err);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_EQ_INT(version, SNAP_FORMAT_VERSION);
    CHECK(snap_created_ms(r) <= wall_ms() && snap_created_ms(r) >= before - 1000);
    CHECK_EQ_INT(snap_next_section(r, &tag), 1);
    CHECK_EQ_INT(tag, SNAP_TAG('T', 'E', 'S', 'T'));
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    double f64;
    size_t len;
    CHECK(snap_get_u8(r, &u8) == 0 && u8 == 0xAB);
    CHECK(snap_get_u16(r, &u16) == 0 && u16 == 0xBEEF);
    CHECK(snap_get_u32(r, &u32) == 0 && u32 == 0xDEADBEEF);
    CHECK(snap_get_u64(r, &u64) == 0 && u64 == 0x0123456789ABCDEFull);
    CHECK(snap_get_i64(r, &i64) == 0 && i64 == -42);
    double mz = -0.0;
    CHECK(snap_get_f64(r, &f64) == 0 && memcmp(&f64, &mz, 8) == 0);
    const char *s = snap_get_str(r, &len);
    CHECK(s && len == 5 && memcmp(s, "hello", 5) == 0);
    roaring_bitmap_t *b2 = snap_get_bitmap(r, UINT64_C(1) << 32);
    CHECK(b2 && roaring_bitmap_equals(b2, bm));
    roaring_bitmap_free(b2);
    b2 = snap_get_bitmap(r, 0);
    CHECK(b2 && roaring_bitmap_is_empty(b2));
    roaring_bitmap_free(b2);
    CHECK_EQ_INT(snap_remaining(r), nbig);
    CHECK(snap_section_done(r) != 0); /* bytes left */
    CHECK(strstr(snap_error(r), "section TEST") && strstr(snap_error(r), "unexpected bytes"));
    CHECK_EQ_INT(snap_next_section(r, &tag), -1); /* errors stick */
    snap_close(r);

    r = snap_open(path, NULL, err, sizeof err);
    CHECK_EQ_INT(snap_next_section(r, &tag), 1);
    CHECK(snap_get_bytes(r, 1 + 2 + 4 + 8 + 8 + 8 + 4 + 5) != NULL);
    CHECK(snap_get_bitmap(r, 4000000000u) == NULL); /* a value out of range */
    CHECK(strstr(snap_error(r), "out of range") != NULL);
    snap_close(r);

    r = snap_open(path, NULL, err, sizeof err);
    CHECK_EQ_INT(snap_next_section(r, &tag), 1); /* skipped unread */
    CHECK_EQ_INT(snap_next_section(r, &tag), 1);
    CHECK_EQ_INT(tag, SNAP_TAG('E', 'M', 'T', 'Y'));
    CHECK(snap_get_u8(r, &u8) != 0); /* past the end: an error, not a read */
    CHECK(strstr(snap_error(r), "section EMTY") && strstr(snap_error(r), "runs past the end"));
    snap_close(r);

    r = snap_open(path, NULL, err, sizeof err);
    CHECK_EQ_INT(snap_next_section(r, &tag), 1);
    CHECK_EQ_INT(snap_next_section(r, &tag), 1);
    CHECK_EQ_INT(snap_section_done(r), 0);
    CHECK_EQ_INT(snap_next_section(r, &tag), 0);
    CHECK_EQ_INT(snap_next_section(r, &tag), 0);
    snap_close(r);
    roaring_bitmap_free(bm);
    free(big);

    CHECK(snap_create("/nonexistent-dir/x.snap", err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x.snap.tmp") != NULL);
    CHECK(snap_open(path_in_dir("missing.snap"), NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "missing.snap") != NULL);
}

static void test_round_trip(void) {
    state_t a, b;
    state_new(&a);
    build(&a);
    CHECK(store_count(a.st) > NSKUS / 2);
    CHECK(windows_active(a.win) > 100);
    const char *path = path_in_dir("core.snap");
    CHECK(save(&a, path) == 0);
    char err[512] = "";
    int rc = load(path, &b, err, sizeof err);
    if (rc != 0) fprintf(stderr, "load: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK(states_equal(&a, &b));
    CHECK(views_equal(&a, &b));

    /* The original releases its limbo ids now; the copy had them free
     * already. New SKUs get the same ids on both sides. */
    retire_run(&a.limbo);
    for (int i = 0; i < 12; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"sku\":\"new-%d\",\"market\":\"MY\",\"tags\":[\"fresh\"],\"ts\":%lld}", i,
                 (long long)(T0 + 30 * HOUR_MS));
        apply_line(&a, line, NULL);
        apply_line(&b, line, NULL);
    }
    CHECK(states_equal(&a, &b));

    /* Counters fall identically as time passes, callbacks in the same order. */
    int64_t now = windows_now(a.win);
    int64_t steps[] = {30 * 1000, MIN_MS, 50 * MIN_MS, 2 * HOUR_MS, 20 * HOUR_MS, 3 * 24 * HOUR_MS, 8 * 24 * HOUR_MS};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        change_log_t la = {&a, 0, 0}, lb = {&b, 0, 0};
        advance(&a, now + steps[k], &la);
        advance(&b, now + steps[k], &lb);
        CHECK(la.n > 0 || k == 0);
        CHECK_EQ_INT(la.n, lb.n);
        CHECK(la.hash == lb.hash);
        CHECK(states_equal(&a, &b));
        if (k == 2) { /* and new events land the same way */
            const char *ev[] = {"{\"op\":\"order\",\"sku\":\"a-rather-long-external-sku-id-0002\",\"qty\":2,\"amount\":9.5}",
                                "{\"op\":\"view\",\"sku\":\"reborn-1\"}",
                                "{\"op\":\"delete\",\"sku\":\"a-rather-long-external-sku-id-0003\"}"};
            for (int i = 0; i < 3; i++) {
                char line[256];
                snprintf(line, sizeof line, "%.*s,\"ts\":%lld}", (int)strlen(ev[i]) - 1, ev[i],
                         (long long)(now + steps[k]));
                apply_line(&a, line, NULL);
                apply_line(&b, line, NULL);
            }
            CHECK(states_equal(&a, &b));
        }
    }
    CHECK_EQ_INT(windows_active(a.win), 0);
    CHECK(views_equal(&a, &b));
    state_free(&a);
    state_free(&b);

    /* an empty state round-trips too */
    state_new(&a);
    CHECK(save(&a, path_in_dir("empty.snap")) == 0);
    CHECK_EQ_INT(load(path_in_dir("empty.snap"), &b, err, sizeof err), 0);
    CHECK(states_equal(&a, &b));
    state_free(&a);
    state_free(&b);
}

/* The engine's way: a forked child writes and _exit()s. */
static void test_fork(void) {
    state_t a, b;
    char err[512];
    CHECK_EQ_INT(load(path_in_dir("core.snap"), &a, err, sizeof err), 0);
    const char *path = path_in_dir("forked.snap");
    pid_t pid = fork();
    if (pid == 0) _exit(save(&a, path) == 0 ? 0 : 1);
    /* the parent goes on changing its state meanwhile */
    apply_line(&a, "{\"sku\":\"after-fork\",\"market\":\"SG\"}", NULL);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(load(path, &b, err, sizeof err), 0);
    uint32_t id;
    CHECK(store_find(b.st, "after-fork", 10, &id) != 0); /* the fork's image */
    CHECK_EQ_INT(store_count(b.st), store_count(a.st) - 1);
    apply_line(&b, "{\"sku\":\"after-fork\",\"market\":\"SG\"}", NULL);
    CHECK(states_equal(&a, &b));
    state_free(&a);
    state_free(&b);
}

static void test_corruption(void) {
    state_t b;
    const char *path = path_in_dir("core.snap");
    size_t len;
    uint8_t *good = slurp(path, &len);
    uint8_t *d = xmalloc(len);
    char err[512];

    /* truncated anywhere: refused on open, with the offset */
    size_t cuts[] = {0, 5, 11, 31, 32, 40, len / 3, len / 2, len - 13, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        err[0] = '\0';
        CHECK(snap_open_buffer(good, cuts[k], 0, NULL, err, sizeof err) == NULL);
        CHECK(cuts[k] < 12 || strstr(err, "truncated") != NULL);
    }
    CHECK(snap_open_buffer(good, len / 2, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "truncated: section") && strstr(err, "claims"));

    /* a flipped byte inside a section: the CRC error names it and its offset */
    uint32_t tags[] = {SNAP_TAG_STORE, SNAP_TAG_TAGS, SNAP_TAG_WINDOWS};
    const char *names[] = {"section STOR at offset", "section TAGS at offset", "section WIND at offset"};
    for (int k = 0; k < 3; k++) {
        uint64_t plen = 0;
        size_t at = section_at(good, len, tags[k], &plen);
        CHECK(at >= 32 && plen > 10);
        memcpy(d, good, len);
        d[at + 12 + plen / 2] ^= 0x10;
        CHECK_EQ_INT(load_buf(d, len, 0, &b, err, sizeof err), -1);
        state_free(&b);
        char want[64];
        snprintf(want, sizeof want, "%s %zu", names[k], at);
        CHECK(strstr(err, want) != NULL);
        CHECK(strstr(err, "checksum mismatch") != NULL);
        /* the frame's length is covered too */
        memcpy(d, good, len);
        d[at + 4] ^= 0x01;
        CHECK_EQ_INT(load_buf(d, len, 0, &b, err, sizeof err), -1);
        state_free(&b);
    }

    /* a newer format is refused by name, before anything else is read */
    memcpy(d, good, len);
    snap_enc_u32(d + 8, SNAP_FORMAT_VERSION + 1);
    CHECK(snap_open_buffer(d, len, 0, NULL, err, sizeof err) == NULL);
    char want[128];
    snprintf(want, sizeof want, "snapshot format %u is newer than this poold (%u); refusing",
             SNAP_FORMAT_VERSION + 1, SNAP_FORMAT_VERSION);
    CHECK(strstr(err, want) != NULL);
    snap_enc_u32(d + 8, 0);
    CHECK(snap_open_buffer(d, len, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "format 0 is older") != NULL);

    memcpy(d, good, len);
    d[3] = 'X';
    CHECK(snap_open_buffer(d, len, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a poold snapshot") != NULL);
    memcpy(d, good, len);
    d[17] ^= 1; /* created time: header CRC */
    CHECK(snap_open_buffer(d, len, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "header checksum") != NULL);

    uint8_t *longer = xmalloc(len + 3);
    memcpy(longer, good, len);
    memset(longer + len, 0, 3);
    CHECK(snap_open_buffer(longer, len + 3, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "3 unexpected bytes after the end section") != NULL);
    free(longer);

    /* the copy in a buffer loads */
    CHECK_EQ_INT(load_buf(good, len, 0, &b, err, sizeof err), 0);
    state_free(&b);

    /* Random damage with the CRC check off: every decoder must refuse it
     * cleanly or load something freeable; never crash (run under ASan). */
    uint64_t x = 88172645463325252ull;
    int refused = 0;
    for (int i = 0; i < 100; i++) {
        memcpy(d, good, len);
        for (int k = 0; k < 1 + i % 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = 32 + (size_t)(x % (len - 32));
            d[at] = (uint8_t)(x >> 40);
        }
        refused += load_buf(d, len, SNAP_NO_CRC, &b, err, sizeof err) != 0;
        state_free(&b);
    }
    CHECK(refused > 0 && refused < 100);
    free(d);
    free(good);
}

int main(void) {
    log_quiet = 1;
    snprintf(dir, sizeof dir, "/tmp/poold-snaptest.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_crc();
    test_generic_sections();
    test_round_trip();
    test_fork();
    test_corruption();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done();
}
