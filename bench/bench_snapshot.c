/* bench_snapshot.c - snapshot write and load time and size at N SKUs
 * (issue 5: start-up from a snapshot at 1M SKUs <= 3 s).
 *
 * Builds the state the way the engine does, in-process: the catalog of
 * `poold gen catalog` (gen_catalog_line -> ndjson_parse_event -> the
 * engine's field setters) and then a 30-hour event stream of `poold gen
 * events` (prices, stock, orders, views, tags, upserts, deletes), so the
 * windowed counters hold slots of many ages. Then measures:
 *   - write: snapshot_write_core into a file, and the commit (end section,
 *     fsync, rename, directory fsync), from the writer thread;
 *   - fork: how long fork() stalls the writer when a child writes instead
 *     (the engine's design), and the child's write time;
 *   - load, warm (file in the page cache) and cold (its pages dropped with
 *     posix_fadvise DONTNEED first): snap_open + snapshot_read_core + the
 *     first tags_publish, per section too;
 *   - the alternative of rebuilding the tag bitmaps from the rows instead
 *     of loading them (the roaring adds it would cost, in row order);
 *   - a full comparison of the loaded state with the original.
 *
 * Build and run (from the repository root):
 *   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && make -C build-bench poold_core
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I src bench/bench_snapshot.c build-bench/libpoold_core.a \
 *      $(pkg-config --libs luajit libmicrohttpd jansson) -lroaring -ljemalloc -lm -lpthread \
 *      -o build-bench/bench_snapshot
 *   build-bench/bench_snapshot [--skus 1000000] [--events 2000000] [--dir /tmp]
 * Prints one line per figure; exits 1 if the loaded state differs or the
 * cold start-up misses 3 s. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "gen.h"
#include "ndjson.h"
#include "snapshot.h"
#include "util.h"

#define HOUR_MS 3600000LL
#define T0 1794268800000LL

typedef struct state {
    tags_t *tags;
    store_t *st;
    windows_t *win;
} state_t;

static double secs(uint64_t t0) { return (double)(mono_ns() - t0) / 1e9; }

static void on_change(void *arg, uint32_t sku, uint32_t win_index) {
    if (win_index == 0) store_row(arg, sku)->win = 0;
}

/* engine.c set_fields / apply_event, event clock. */
static void apply(state_t *s, const event_t *ev) {
    store_t *st = s->st;
    int64_t now = ev->ts > windows_now(s->win) ? ev->ts : windows_now(s->win);
    uint32_t id, h = ev->has;
    if (ev->op == OP_DELETE) {
        if (store_find(st, ev->sku.p, ev->sku.len, &id) != 0) return;
        windows_release(s->win, &store_row(st, id)->win);
        store_delete(st, id, NULL);
        return;
    }
    bool created;
    id = store_upsert_id(st, ev->sku.p, ev->sku.len, &created, NULL);
    const char *t = NULL;
    switch (ev->op) {
    case OP_RECORD:
        if (!created) store_reset_fields(st, id);
        /* fall through */
    case OP_UPSERT:
    case OP_PRICE:
    case OP_STOCK:
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
        if (h & EV_TAGS)
            while ((t = event_tag_next(&ev->tags, t))) store_add_free_tag(st, id, t, strlen(t));
        t = NULL;
        if (h & EV_REMOVE)
            while ((t = event_tag_next(&ev->tags_remove, t))) store_remove_free_tag(st, id, t, strlen(t));
        break;
    default:
        break;
    }
}

static void apply_line(state_t *s, char *line, size_t len) {
    event_t ev;
    event_error_t e;
    if (ndjson_parse_event(line, len, T0, &ev, &e) == 0) apply(s, &ev);
}

static void state_new(state_t *s) {
    s->tags = tags_new();
    s->st = store_new(s->tags);
    s->win = windows_new();
}

static void state_free(state_t *s) {
    windows_free(s->win);
    store_free(s->st);
    tags_free(s->tags);
}

/* 1 if every row, name, free tag list, attrs, windows sums and slots, and
 * tag bitmap is the same. */
static int same(const state_t *a, const state_t *b) {
    const store_t *sa = a->st, *sb = b->st;
    if (store_id_limit(sa) != store_id_limit(sb) || store_count(sa) != store_count(sb)) return 0;
    const sku_row_t *ra = store_rows(sa), *rb = store_rows(sb);
    const win_sums_t *wa = windows_sums(a->win), *wb = windows_sums(b->win);
    for (uint32_t id = 0; id < store_id_limit(sa); id++) {
#define F(type, name) if (memcmp(&ra[id].name, &rb[id].name, sizeof(type))) return 0;
        SKU_ROW_FIELDS(F)
#undef F
        if (!ra[id].live) continue;
        if (strcmp(store_read_name(sa, id), store_read_name(sb, id))) return 0;
        uint32_t na, nb;
        const uint32_t *fa = store_free_tags(sa, id, &na), *fb = store_free_tags(sb, id, &nb);
        if (na != nb || (na && memcmp(fa, fb, na * 4))) return 0;
        size_t la, lb;
        const char *xa = store_attrs(sa, id, &la), *xb = store_attrs(sb, id, &lb);
        if (la != lb || (la && memcmp(xa, xb, la))) return 0;
        if (memcmp(&wa[ra[id].win], &wb[rb[id].win], sizeof *wa)) return 0;
        size_t n = windows_slot_count(a->win, ra[id].win);
        if (n != windows_slot_count(b->win, rb[id].win)) return 0;
        for (size_t k = 0; k < n; k++) {
            windows_slot_t x, y;
            windows_slot_at(a->win, ra[id].win, k, &x);
            windows_slot_at(b->win, rb[id].win, k, &y);
            if (memcmp(&x, &y, sizeof x)) return 0;
        }
    }
    if (tags_count(a->tags) != tags_count(b->tags)) return 0;
    for (uint32_t t = 0; t < tags_count(a->tags); t++) {
        const roaring_bitmap_t *x = tags_bitmap(a->tags, t), *y = tags_bitmap(b->tags, t);
        if (strcmp(tags_name(a->tags, t), tags_name(b->tags, t)) || (!x != !y)) return 0;
        if (x && !roaring_bitmap_equals(x, y)) return 0;
    }
    return windows_now(a->win) == windows_now(b->win) && windows_active(a->win) == windows_active(b->win);
}

typedef struct load_times {
    double open, store, tags, windows, check, publish, total;
} load_times_t;

static int load(const char *path, state_t *s, load_times_t *lt) {
    char err[512];
    uint64_t t0 = mono_ns(), t;
    state_new(s);
    snap_reader_t *r = snap_open(path, NULL, err, sizeof err);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    lt->open = secs(t0);
    uint32_t tag;
    t = mono_ns();
    if (snap_next_section(r, &tag) != 1 || store_snap_read(s->st, r) != 0) goto fail;
    lt->store = secs(t);
    t = mono_ns();
    if (snap_next_section(r, &tag) != 1 || tags_snap_read(s->tags, r, store_id_limit(s->st)) != 0) goto fail;
    lt->tags = secs(t);
    t = mono_ns();
    if (snap_next_section(r, &tag) != 1 || windows_snap_read(s->win, r, store_id_limit(s->st)) != 0) goto fail;
    lt->windows = secs(t);
    t = mono_ns();
    if (store_snap_check(s->st, err, sizeof err) != 0) {
        fprintf(stderr, "check: %s\n", err);
        snap_close(r);
        return -1;
    }
    lt->check = secs(t);
    if (snap_next_section(r, &tag) != 0) goto fail;
    snap_close(r);
    t = mono_ns();
    tags_publish(s->tags, NULL);
    lt->publish = secs(t);
    lt->total = secs(t0);
    return 0;
fail:
    fprintf(stderr, "%s\n", snap_error(r));
    snap_close(r);
    return -1;
}

/* The same load through the one call the engine uses, for the record. */
static double load_core(const char *path, state_t *s) {
    char err[512];
    uint64_t t0 = mono_ns();
    state_new(s);
    snap_reader_t *r = snap_open(path, NULL, err, sizeof err);
    if (!r || snapshot_read_core(r, s->st, s->tags, s->win, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    snap_close(r);
    tags_publish(s->tags, NULL);
    return secs(t0);
}

static void drop_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static long rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

static void print_load(const char *what, const load_times_t *lt) {
    printf("load %-5s %6.3f s  (open+map %.3f, STOR %.3f, TAGS %.3f, WIND %.3f, check %.3f, publish %.3f)\n",
           what, lt->total, lt->open, lt->store, lt->tags, lt->windows, lt->check, lt->publish);
}

int main(int argc, char **argv) {
    uint32_t nskus = 1000000, nevents = 2000000;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--skus")) nskus = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--events")) nevents = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    }
    log_quiet = 1;
    char path[512];
    snprintf(path, sizeof path, "%s/bench-%d.snap", dir, (int)getpid());

    state_t a;
    state_new(&a);
    char line[GEN_LINE_MAX * 2];
    uint64_t t0 = mono_ns();
    windows_advance(a.win, T0, NULL, NULL);
    for (uint32_t i = 0; i < nskus; i++) {
        size_t n = gen_catalog_line(nskus, 42, i, T0, line, sizeof line);
        apply_line(&a, line, n);
    }
    double t_catalog = secs(t0);
    gen_stream_t *g = gen_stream_new(nskus, 42);
    t0 = mono_ns();
    for (uint32_t i = 0; i < nevents; i++) {
        int64_t ts = T0 + 30 * HOUR_MS * (int64_t)i / (nevents ? nevents : 1);
        size_t n = gen_stream_next(g, ts, line, sizeof line);
        apply_line(&a, line, n);
        if (i % 10000 == 0) windows_advance(a.win, ts, on_change, a.st);
    }
    windows_advance(a.win, T0 + 30 * HOUR_MS, on_change, a.st);
    gen_stream_free(g);
    printf("state: %u SKUs (%u ids), %u tags, %zu windows entries; built in %.1f s (catalog) + %.1f s "
           "(%u events); RSS %ld MB\n",
           store_count(a.st), store_id_limit(a.st), tags_count(a.tags), windows_active(a.win), t_catalog,
           secs(t0), nevents, rss_mb());

    /* write from this thread */
    char err[512];
    t0 = mono_ns();
    snap_writer_t *w = snap_create(path, err, sizeof err);
    if (!w || snapshot_write_core(w, a.st, a.tags, a.win) != 0) {
        fprintf(stderr, "%s\n", w ? snap_writer_error(w) : err);
        return 2;
    }
    double t_sections = secs(t0);
    uint64_t t1 = mono_ns();
    if (snap_commit(w, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    double t_commit = secs(t1), t_write = secs(t0);
    struct stat sb;
    stat(path, &sb);
    printf("write      %6.3f s  (sections %.3f, commit with fsync %.3f); file %.1f MB (%.0f bytes/SKU)\n",
           t_write, t_sections, t_commit, (double)sb.st_size / 1e6, (double)sb.st_size / store_count(a.st));

    /* write from a forked child, as the engine does */
    t0 = mono_ns();
    pid_t pid = fork();
    if (pid == 0) {
        snap_writer_t *cw = snap_create(path, err, sizeof err);
        int ok = cw && snapshot_write_core(cw, a.st, a.tags, a.win) == 0 && snap_commit(cw, err, sizeof err) == 0;
        _exit(ok ? 0 : 1);
    }
    double t_fork = secs(t0);
    int status = 0;
    waitpid(pid, &status, 0);
    double t_child = secs(t0);
    printf("fork       %6.3f s  writer stall in fork(); the child wrote and exited after %.3f s (%s)\n", t_fork,
           t_child, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");

    /* load, warm then cold */
    state_t b;
    load_times_t warm, cold;
    if (load(path, &b, &warm) != 0) return 2;
    print_load("warm", &warm);
    int ok = same(&a, &b);
    printf("compare    loaded state %s the original\n", ok ? "equals" : "DIFFERS FROM");
    state_free(&b);
    drop_cache(path);
    if (load(path, &b, &cold) != 0) return 2;
    print_load("cold", &cold);
    state_free(&b);
    drop_cache(path);
    double t_core = load_core(path, &b);
    printf("load core  %6.3f s  (snap_open + snapshot_read_core + tags_publish, cold)\n", t_core);

    /* the alternative: rebuild tag bitmaps from the rows (the adds alone) */
    uint32_t ntags = tags_count(b.tags), limit = store_id_limit(b.st);
    uint32_t *cnt = xcalloc((size_t)limit + 1, sizeof *cnt);
    size_t total = 0;
    for (uint32_t t = 0; t < ntags; t++) {
        const roaring_bitmap_t *bm = tags_bitmap(b.tags, t);
        if (!bm) continue;
        roaring_uint32_iterator_t *it = roaring_create_iterator(bm);
        for (; it->has_value; roaring_advance_uint32_iterator(it)) cnt[it->current_value + 1]++, total++;
        roaring_free_uint32_iterator(it);
    }
    for (uint32_t i = 0; i < limit; i++) cnt[i + 1] += cnt[i];
    uint32_t *row_tags = xmalloc((total ? total : 1) * sizeof *row_tags);
    uint32_t *fill = xmalloc(((size_t)limit + 1) * sizeof *fill);
    memcpy(fill, cnt, ((size_t)limit + 1) * sizeof *fill);
    for (uint32_t t = 0; t < ntags; t++) {
        const roaring_bitmap_t *bm = tags_bitmap(b.tags, t);
        if (!bm) continue;
        roaring_uint32_iterator_t *it = roaring_create_iterator(bm);
        for (; it->has_value; roaring_advance_uint32_iterator(it)) row_tags[fill[it->current_value]++] = t;
        roaring_free_uint32_iterator(it);
    }
    roaring_bitmap_t **bms = xcalloc(ntags, sizeof *bms);
    for (uint32_t t = 0; t < ntags; t++) {
        bms[t] = roaring_bitmap_create();
        roaring_bitmap_set_copy_on_write(bms[t], true);
    }
    t0 = mono_ns();
    for (uint32_t id = 0; id < limit; id++)
        for (uint32_t k = cnt[id]; k < cnt[id + 1]; k++) roaring_bitmap_add(bms[row_tags[k]], id);
    printf("rebuild    %6.3f s  would only re-add the %zu tag memberships row by row (vs TAGS load %.3f s)\n",
           secs(t0), total, cold.tags);
    for (uint32_t t = 0; t < ntags; t++) roaring_bitmap_free(bms[t]);
    free(bms);
    free(row_tags);
    free(fill);
    free(cnt);
    state_free(&b);

    int pass = ok && cold.total <= 3.0;
    printf("target     start-up from a snapshot at %u SKUs <= 3 s: %.3f s cold -> %s\n", nskus, cold.total,
           pass ? "PASS" : "MISS");
    unlink(path);
    state_free(&a);
    return pass ? 0 : 1;
}
