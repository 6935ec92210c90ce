/* test_windows.c - windowed counters: window membership at exact minute and
 * hour boundaries, staleness, slot sharing, on_change exactness, entry
 * release and reuse, snapshot restore, a randomized comparison against a
 * brute-force reference, memory per SKU and the cost of windows_add_order. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "util.h"
#include "windows.h"

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define T0 1767225600000LL /* 2026-01-01T00:00:00Z, hour aligned */

/* Timings are meaningful only in an optimized, unsanitized build; the
 * others run the benchmark loops shorter. */
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define QUICK 1
#else
#define QUICK 0
#endif

/* -- Callback recorder ----------------------------------------------------- */

#define REC_MAX 4096
typedef struct rec {
    int n;
    uint32_t sku[REC_MAX], idx[REC_MAX];
} rec_t;

static void rec_fn(void *arg, uint32_t sku, uint32_t idx) {
    rec_t *r = arg;
    if (r->n < REC_MAX) {
        r->sku[r->n] = sku;
        r->idx[r->n] = idx;
    }
    r->n++;
}

static const win_sums_t *S(const windows_t *w, uint32_t idx) { return &windows_sums(w)[idx]; }

static int sums_zero(const win_sums_t *s) {
    win_sums_t z;
    memset(&z, 0, sizeof z);
    return memcmp(s, &z, sizeof z) == 0;
}

/* -- Basic counting -------------------------------------------------------- */

static void test_counts(void) {
    windows_t *w = windows_new();
    windows_advance(w, T0, NULL, NULL);
    uint32_t win = 0;
    CHECK_EQ_INT(windows_add_order(w, &win, 7, 2, 10.5, T0 - 30 * MIN_MS, T0), 1);
    CHECK(win != 0);
    uint32_t first = win;
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 7, WM_VIEWS, T0 - 2 * HOUR_MS, T0), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 7, WM_CLICKS, T0 - 3 * 24 * HOUR_MS, T0), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 7, WM_CARTS, T0, T0), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 7, WM_CARTS, T0 + 5 * MIN_MS, T0), 1); /* future */
    CHECK_EQ_INT(win, first);
    const win_sums_t *s = S(w, win);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(s->sales[k], 2);
        CHECK(s->gmv[k] == 10.5);
        CHECK_EQ_INT(s->carts[k], 2);
    }
    CHECK_EQ_INT(s->views[WIN_1H], 0);
    CHECK_EQ_INT(s->views[WIN_24H], 1);
    CHECK_EQ_INT(s->views[WIN_7D], 1);
    CHECK_EQ_INT(s->clicks[WIN_1H], 0);
    CHECK_EQ_INT(s->clicks[WIN_24H], 0);
    CHECK_EQ_INT(s->clicks[WIN_7D], 1);
    CHECK_EQ_INT(windows_active(w), 1);
    CHECK(sums_zero(S(w, 0)));
    windows_free(w);
    windows_free(NULL);
}

/* -- Exact boundaries ------------------------------------------------------ */

static void test_boundaries(void) {
    windows_t *w = windows_new();
    rec_t r = {0};
    int64_t ht = T0 / HOUR_MS + 5;
    int64_t ta = ht * HOUR_MS;               /* first ms of hour ht */
    int64_t tb = ht * HOUR_MS + HOUR_MS - 1; /* last ms of hour ht */
    int64_t ma = ta / MIN_MS, mb = tb / MIN_MS;
    uint32_t wa = 0, wb = 0;
    windows_advance(w, tb, NULL, NULL);
    CHECK_EQ_INT(windows_add_order(w, &wa, 1, 1, 1.0, ta, tb), 1);
    CHECK_EQ_INT(windows_add_order(w, &wb, 2, 3, 2.5, tb, tb), 1);

    /* 1h: A falls exactly when m(now) = m(ta) + 60, i.e. at age exactly 1h */
    windows_advance(w, (ma + 60) * MIN_MS - 1, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_1H], 1);
    windows_advance(w, (ma + 60) * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.sku[0], 1);
    CHECK_EQ_INT(r.idx[0], wa);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_1H], 0);
    CHECK(S(w, wa)->gmv[WIN_1H] == 0.0);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_24H], 1);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_1H], 3);

    /* B (last ms of its minute) falls at m(tb) + 60: minute resolution, age 59m00.001s */
    r.n = 0;
    windows_advance(w, (mb + 60) * MIN_MS - 1, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_1H], 3);
    windows_advance(w, (mb + 60) * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.sku[0], 2);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_1H], 0);
    CHECK(S(w, wb)->gmv[WIN_1H] == 0.0);
    CHECK(S(w, wb)->gmv[WIN_24H] == 2.5);

    /* 24h */
    r.n = 0;
    windows_advance(w, (ma + 1440) * MIN_MS - 1, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_24H], 1);
    windows_advance(w, (ma + 1440) * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_24H], 0);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_7D], 1);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_24H], 3);
    windows_advance(w, (mb + 1440) * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_24H], 0);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_7D], 3);

    /* 7d: hour resolution; both events of hour ht fall together at ht + 168 */
    r.n = 0;
    windows_advance(w, (ht + 168) * HOUR_MS - 1, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(S(w, wa)->sales[WIN_7D], 1);
    CHECK_EQ_INT(S(w, wb)->sales[WIN_7D], 3);
    CHECK(S(w, wb)->gmv[WIN_7D] == 2.5);
    CHECK_EQ_INT(windows_active(w), 2);
    windows_advance(w, (ht + 168) * HOUR_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.idx[0], 0); /* entries freed: the engine zeroes row.win */
    CHECK_EQ_INT(r.idx[1], 0);
    CHECK((r.sku[0] == 1 && r.sku[1] == 2) || (r.sku[0] == 2 && r.sku[1] == 1));
    CHECK_EQ_INT(windows_active(w), 0);
    CHECK(sums_zero(S(w, wa)) && sums_zero(S(w, wb)));
    windows_free(w);
}

/* -- Staleness and invalid input ------------------------------------------- */

static void test_stale(void) {
    windows_t *w = windows_new();
    int64_t T = T0 + 10 * HOUR_MS + 123456;
    int64_t M = T / MIN_MS, H = T / HOUR_MS;
    windows_advance(w, T, NULL, NULL);
    uint32_t win = 0;
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 1, 1.0, (H - 168) * HOUR_MS + HOUR_MS - 1, T), 0);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 1, WM_VIEWS, 0, T), 0);
    CHECK_EQ_INT(win, 0);
    CHECK_EQ_INT(windows_active(w), 0);

    CHECK_EQ_INT(windows_add_order(w, &win, 1, 1, 1.0, (H - 167) * HOUR_MS, T), 1);
    CHECK(win != 0);
    CHECK_EQ_INT(S(w, win)->sales[WIN_7D], 1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_24H], 0);
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 2, 1.0, (M - 1440) * MIN_MS + 59999, T), 1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_7D], 3);
    CHECK_EQ_INT(S(w, win)->sales[WIN_24H], 0);
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 4, 1.0, (M - 1439) * MIN_MS, T), 1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_24H], 4);
    CHECK_EQ_INT(S(w, win)->sales[WIN_1H], 0);
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 8, 1.0, (M - 60) * MIN_MS + 59999, T), 1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_1H], 0);
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 16, 1.0, (M - 59) * MIN_MS, T), 1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_1H], 16);
    CHECK_EQ_INT(S(w, win)->sales[WIN_24H], 28);
    CHECK_EQ_INT(S(w, win)->sales[WIN_7D], 31);

    CHECK_EQ_INT(windows_add_order(w, &win, 1, 1, 1.0, -1, T), -1);
    CHECK_EQ_INT(windows_add_order(w, &win, 1, 1, 1.0, WINDOWS_TS_MAX + 1, T), -1);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 1, WM_SALES, T, T), -1);
    CHECK_EQ_INT(windows_add_behaviour(w, &win, 1, WM_GMV, T, T), -1);
    CHECK_EQ_INT(S(w, win)->sales[WIN_7D], 31);

    /* a `now` newer than the clock decides staleness */
    int64_t later = T + 2 * HOUR_MS;
    uint32_t w2 = 0;
    CHECK_EQ_INT(windows_add_behaviour(w, &w2, 2, WM_VIEWS, (later / HOUR_MS - 168) * HOUR_MS, later), 0);
    CHECK_EQ_INT(w2, 0);
    CHECK_EQ_INT(windows_add_behaviour(w, &w2, 2, WM_VIEWS, (later / HOUR_MS - 167) * HOUR_MS, later), 1);
    CHECK_EQ_INT(S(w, w2)->views[WIN_7D], 1);
    /* an older `now` does not: the clock does */
    CHECK_EQ_INT(windows_add_behaviour(w, &w2, 2, WM_VIEWS, (H - 168) * HOUR_MS, T - 30 * 24 * HOUR_MS), 0);
    /* zero orders count but store nothing */
    uint32_t w3 = 0;
    CHECK_EQ_INT(windows_add_order(w, &w3, 3, 0, 0.0, T, T), 1);
    CHECK_EQ_INT(w3, 0);
    windows_free(w);
}

/* -- Slot sharing ---------------------------------------------------------- */

static void test_shared_slot(void) {
    windows_t *w = windows_new();
    int64_t T = T0 + 17 * MIN_MS;
    windows_advance(w, T + 59999, NULL, NULL);
    uint32_t win = 0;
    double amounts[10] = {0.1, 0.2, 0.3, 1e-3, 7.77, 0.1, 123.45, 0.01, 0.7, 2.2};
    double expect = 0.0;
    uint32_t qty = 0;
    size_t mem1 = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(windows_add_order(w, &win, 5, (uint32_t)i + 1, amounts[i], T + i * 5000, T), 1);
        expect += amounts[i];
        qty += (uint32_t)i + 1;
        if (i == 0) mem1 = windows_memory(w);
    }
    CHECK_EQ_INT(windows_slot_count(w, win), 2);
    CHECK_EQ_INT(windows_memory(w), mem1);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(windows_add_behaviour(w, &win, 5, WM_VIEWS, T + i, T), 1);
    CHECK_EQ_INT(windows_slot_count(w, win), 4);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(S(w, win)->sales[k], qty);
        CHECK(S(w, win)->gmv[k] == expect);
        CHECK_EQ_INT(S(w, win)->views[k], 5);
    }
    windows_slot_t sl;
    CHECK_EQ_INT(windows_slot_at(w, win, 0, &sl), 0);
    CHECK(sl.hourly == 1 && sl.order == 1 && sl.start_ms == T0 && sl.sales == qty && sl.gmv == expect);
    CHECK_EQ_INT(windows_slot_at(w, win, 1, &sl), 0);
    CHECK(sl.hourly == 1 && sl.order == 0 && sl.views == 5 && sl.sales == 0);
    CHECK_EQ_INT(windows_slot_at(w, win, 2, &sl), 0);
    CHECK(sl.hourly == 0 && sl.order == 1 && sl.start_ms == T && sl.gmv == expect);
    CHECK_EQ_INT(windows_slot_at(w, win, 3, &sl), 0);
    CHECK(sl.hourly == 0 && sl.order == 0 && sl.start_ms == T && sl.views == 5);
    CHECK_EQ_INT(windows_slot_at(w, win, 4, &sl), -1);
    CHECK_EQ_INT(windows_slot_at(w, 0, 0, &sl), -1);
    /* a different minute of the same hour: one more minute slot, same hour slot */
    CHECK_EQ_INT(windows_add_order(w, &win, 5, 1, 1.0, T + 60000, T), 1);
    CHECK_EQ_INT(windows_slot_count(w, win), 5);
    windows_free(w);
}

/* -- on_change: exactly the SKUs that changed, exactly when due ------------ */

static void test_on_change(void) {
    windows_t *w = windows_new();
    rec_t r = {0};
    windows_advance(w, T0, NULL, NULL);
    uint32_t w1 = 0, w2 = 0, w3 = 0;
    CHECK_EQ_INT(windows_add_behaviour(w, &w1, 1, WM_VIEWS, T0 - 10 * MIN_MS, T0), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &w2, 2, WM_VIEWS, T0 - 30 * MIN_MS, T0), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &w3, 3, WM_CLICKS, T0 - 5 * HOUR_MS, T0), 1);
    int calls_at[61] = {0};
    uint32_t sku_at[61] = {0};
    for (int i = 1; i <= 60; i++) {
        r.n = 0;
        windows_advance(w, T0 + i * MIN_MS - 1, rec_fn, &r); /* still minute i-1 */
        CHECK_EQ_INT(r.n, 0);
        windows_advance(w, T0 + i * MIN_MS, rec_fn, &r);
        calls_at[i] = r.n;
        sku_at[i] = r.n ? r.sku[0] : 0;
    }
    for (int i = 1; i <= 60; i++) {
        if (i == 30) {
            CHECK_EQ_INT(calls_at[i], 1);
            CHECK_EQ_INT(sku_at[i], 2);
        } else if (i == 50) {
            CHECK_EQ_INT(calls_at[i], 1);
            CHECK_EQ_INT(sku_at[i], 1);
        } else {
            CHECK_EQ_INT(calls_at[i], 0);
        }
    }
    CHECK_EQ_INT(S(w, w1)->views[WIN_1H], 0);
    CHECK_EQ_INT(S(w, w1)->views[WIN_24H], 1);
    /* backwards: no-op */
    r.n = 0;
    int64_t now = windows_now(w);
    windows_advance(w, T0, rec_fn, &r);
    windows_advance(w, now, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(windows_now(w), now);

    /* a new event may bring a SKU's next change forward (decrease-key): SKU 3
     * was due only at its 24h expiry; a fresh view makes it due in 1h */
    CHECK_EQ_INT(windows_add_behaviour(w, &w3, 3, WM_VIEWS, now, now), 1);
    r.n = 0;
    windows_advance(w, now + 60 * MIN_MS - 1, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    windows_advance(w, now + 60 * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.sku[0], 3);
    CHECK_EQ_INT(S(w, w3)->views[WIN_1H], 0);
    CHECK_EQ_INT(S(w, w3)->views[WIN_24H], 1);
    /* out-of-order: an older event expires first */
    now = windows_now(w);
    uint32_t w4 = 0;
    CHECK_EQ_INT(windows_add_behaviour(w, &w4, 4, WM_CARTS, now - 5 * MIN_MS, now), 1);
    CHECK_EQ_INT(windows_add_behaviour(w, &w4, 4, WM_CARTS, now - 20 * MIN_MS, now), 1);
    r.n = 0;
    windows_advance(w, now + 40 * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.sku[0], 4);
    CHECK_EQ_INT(S(w, w4)->carts[WIN_1H], 1);
    windows_advance(w, now + 55 * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(S(w, w4)->carts[WIN_1H], 0);
    windows_free(w);
}

/* -- gmv is exact: recomputed in slot order, never subtracted --------------- */

static void test_gmv_exact(void) {
    windows_t *w = windows_new();
    windows_advance(w, T0, NULL, NULL);
    uint32_t win = 0;
    CHECK_EQ_INT(windows_add_order(w, &win, 9, 1, 0.1, T0 - 3 * MIN_MS, T0), 1);
    CHECK_EQ_INT(windows_add_order(w, &win, 9, 1, 0.3, T0 - 1 * MIN_MS, T0), 1);
    CHECK_EQ_INT(windows_add_order(w, &win, 9, 1, 0.2, T0 - 2 * MIN_MS, T0), 1); /* inserted */
    volatile double a = 0.1, b = 0.2, c = 0.3, z = 0.0;
    double all = ((z + a) + b) + c;
    CHECK(S(w, win)->gmv[WIN_1H] == all);
    CHECK(S(w, win)->gmv[WIN_24H] == all);
    CHECK(S(w, win)->gmv[WIN_7D] == all); /* one hour slot: 0.1 + 0.3 + 0.2 in arrival order */
    windows_advance(w, T0 + 57 * MIN_MS, NULL, NULL);
    double rest = (z + b) + c;
    double subtracted = all - a;
    CHECK(rest != subtracted); /* the drift recomputation avoids */
    CHECK(S(w, win)->gmv[WIN_1H] == rest);
    windows_advance(w, T0 + 59 * MIN_MS, NULL, NULL);
    CHECK(S(w, win)->gmv[WIN_1H] == 0.0);
    CHECK(S(w, win)->gmv[WIN_24H] == all);
    windows_free(w);
}

/* -- Release and reuse ----------------------------------------------------- */

static void test_release(void) {
    windows_t *w = windows_new();
    size_t mem0 = windows_memory(w);
    rec_t r = {0};
    windows_advance(w, T0, NULL, NULL);
    uint32_t wa = 0, wb = 0, wc = 0;
    CHECK_EQ_INT(windows_add_order(w, &wa, 10, 5, 50.0, T0 - 10 * MIN_MS, T0), 1);
    CHECK_EQ_INT(windows_add_order(w, &wb, 11, 1, 1.0, T0 - 20 * MIN_MS, T0), 1);
    CHECK(wa != wb);
    uint32_t old_a = wa;
    windows_release(w, &wa);
    CHECK_EQ_INT(wa, 0);
    CHECK_EQ_INT(windows_active(w), 1);
    CHECK(sums_zero(S(w, old_a)));
    CHECK_EQ_INT(windows_slot_count(w, old_a), 0);
    uint32_t stale_idx = old_a, bogus = 4000;
    CHECK_EQ_INT(windows_add_order(w, &stale_idx, 10, 1, 1.0, T0, T0), -1); /* freed index */
    CHECK_EQ_INT(windows_add_order(w, &bogus, 10, 1, 1.0, T0, T0), -1);
    windows_release(w, &wa); /* no-op */
    windows_release(NULL, &wa);
    CHECK_EQ_INT(windows_add_behaviour(w, &wc, 12, WM_VIEWS, T0 - 5 * MIN_MS, T0), 1);
    CHECK_EQ_INT(wc, old_a); /* free list reuse */
    CHECK_EQ_INT(S(w, wc)->sales[WIN_7D], 0);
    CHECK(S(w, wc)->gmv[WIN_7D] == 0.0);
    CHECK_EQ_INT(S(w, wc)->views[WIN_7D], 1);
    /* A's old due time (minute 50) passes without a callback for SKU 10 */
    windows_advance(w, T0 + 50 * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.sku[0], 11);
    windows_advance(w, T0 + 55 * MIN_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.sku[1], 12);
    windows_release(w, &wb);
    windows_release(w, &wc);
    CHECK_EQ_INT(windows_active(w), 0);
    CHECK_EQ_INT(windows_memory(w), mem0);
    r.n = 0;
    windows_advance(w, T0 + 30 * 24 * HOUR_MS, rec_fn, &r);
    CHECK_EQ_INT(r.n, 0);
    windows_free(w);
}

/* -- Restore from slots ---------------------------------------------------- */

static void test_restore_invalid(void) {
    windows_t *w = windows_new();
    windows_advance(w, T0, NULL, NULL);
    windows_slot_t s[2];
    memset(s, 0, sizeof s);
    uint32_t win = 0;
    s[0] = (windows_slot_t){.start_ms = T0 - HOUR_MS, .hourly = 1, .order = 1, .sales = 2, .gmv = 3.0};
    s[1] = (windows_slot_t){.start_ms = T0 - MIN_MS, .hourly = 0, .order = 0, .views = 4};
    CHECK_EQ_INT(windows_restore(w, &win, 1, s, 2), 0);
    CHECK(win != 0);
    CHECK_EQ_INT(S(w, win)->sales[WIN_7D], 2);
    CHECK_EQ_INT(S(w, win)->views[WIN_1H], 4);
    CHECK_EQ_INT(windows_restore(w, &win, 1, s, 2), -1); /* entry exists */
    uint32_t w2 = 0;
    windows_slot_t bad[2];
    memcpy(bad, s, sizeof bad);
    bad[0].hourly = 0;
    bad[1].hourly = 1; /* hour slots must come first */
    CHECK_EQ_INT(windows_restore(w, &w2, 2, bad, 2), -1);
    memcpy(bad, s, sizeof bad);
    bad[0].start_ms += 1; /* misaligned */
    CHECK_EQ_INT(windows_restore(w, &w2, 2, bad, 2), -1);
    memcpy(bad, s, sizeof bad);
    bad[1].sales = 1; /* behaviour slot with sales */
    CHECK_EQ_INT(windows_restore(w, &w2, 2, bad, 2), -1);
    memcpy(bad, s, sizeof bad);
    bad[1] = bad[0]; /* duplicate key */
    CHECK_EQ_INT(windows_restore(w, &w2, 2, bad, 2), -1);
    CHECK_EQ_INT(w2, 0);
    CHECK_EQ_INT(windows_active(w), 1);
    bad[0].start_ms = T0 - 200 * HOUR_MS; /* all expired: nothing allocated */
    CHECK_EQ_INT(windows_restore(w, &w2, 2, bad, 1), 0);
    CHECK_EQ_INT(w2, 0);
    windows_free(w);
}

/* -- Randomized comparison with a brute-force reference -------------------- */

enum { EV_ORDER, EV_VIEW, EV_CLICK, EV_CART };
typedef struct ev {
    int64_t ts;
    double amount;
    uint32_t qty;
    uint8_t kind;
} ev_t;

typedef struct sku_evs {
    uint32_t *bym, *byh; /* event indices sorted by (minute, arrival), (hour, arrival) */
    size_t n, cap;
} sku_evs_t;

static ev_t *g_ev;
static size_t g_nev, g_capev;

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static int64_t rnd_range(int64_t lo, int64_t hi) { /* inclusive */
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static void sorted_insert(uint32_t *arr, size_t n, uint32_t e, int64_t unit) {
    int64_t k = g_ev[e].ts / unit;
    size_t pos = n;
    while (pos > 0 && g_ev[arr[pos - 1]].ts / unit > k) pos--;
    memmove(arr + pos + 1, arr + pos, (n - pos) * sizeof *arr);
    arr[pos] = e;
}

static void ref_add(sku_evs_t *se, uint32_t e) {
    if (se->n == se->cap) {
        se->cap = se->cap ? se->cap * 2 : 16;
        se->bym = xrealloc(se->bym, se->cap * sizeof *se->bym);
        se->byh = xrealloc(se->byh, se->cap * sizeof *se->byh);
    }
    sorted_insert(se->bym, se->n, e, MIN_MS);
    sorted_insert(se->byh, se->n, e, HOUR_MS);
    se->n++;
}

/* The expected sums, straight from the definition in windows.h. */
static void ref_window(const uint32_t *arr, size_t n, int64_t unit, int64_t lim, win_sums_t *o, int k,
                       size_t *slots) {
    double total = 0.0, slot = 0.0;
    int64_t cur = INT64_MIN;
    int kinds = 0;
    for (size_t i = 0; i < n; i++) {
        const ev_t *e = &g_ev[arr[i]];
        int64_t t = e->ts / unit;
        if (t <= lim) continue;
        if (t != cur) {
            total += slot;
            slot = 0.0;
            cur = t;
            if (slots) *slots += __builtin_popcount(kinds);
            kinds = 0;
        }
        kinds |= e->kind == EV_ORDER ? 1 : 2;
        switch (e->kind) {
        case EV_ORDER: o->sales[k] += e->qty; slot += e->amount; break;
        case EV_VIEW: o->views[k]++; break;
        case EV_CLICK: o->clicks[k]++; break;
        default: o->carts[k]++; break;
        }
    }
    total += slot;
    if (slots) *slots += __builtin_popcount(kinds);
    o->gmv[k] = total;
}

static void ref_sums(const sku_evs_t *se, int64_t now, win_sums_t *o, size_t *nslots) {
    memset(o, 0, sizeof *o);
    int64_t M = now / MIN_MS, H = now / HOUR_MS;
    size_t ns = 0;
    ref_window(se->bym, se->n, MIN_MS, M - 60, o, WIN_1H, NULL);
    ref_window(se->bym, se->n, MIN_MS, M - 1440, o, WIN_24H, &ns);
    ref_window(se->byh, se->n, HOUR_MS, H - 168, o, WIN_7D, &ns);
    if (nslots) *nslots = ns;
}

#define NSKU 64
typedef struct rstate {
    windows_t *w;
    uint32_t row_win[NSKU];
    sku_evs_t ev[NSKU];
    win_sums_t prev[NSKU];
    int changed[NSKU];
    int cb_bad;
} rstate_t;

static void rand_cb(void *arg, uint32_t sku, uint32_t idx) {
    rstate_t *st = arg;
    if (sku >= NSKU || st->changed[sku]) {
        st->cb_bad++;
        return;
    }
    st->changed[sku] = 1;
    if (idx != 0 && st->row_win[sku] != idx) st->cb_bad++;
    st->row_win[sku] = idx;
}

static int check_all(rstate_t *st, int after_advance) {
    int bad = 0;
    int64_t now = windows_now(st->w);
    size_t live = 0;
    for (uint32_t s = 0; s < NSKU; s++) {
        win_sums_t want;
        size_t nslots;
        ref_sums(&st->ev[s], now, &want, &nslots);
        const win_sums_t *got = S(st->w, st->row_win[s]);
        if (memcmp(&want, got, sizeof want) != 0) bad++;
        if (windows_slot_count(st->w, st->row_win[s]) != nslots) bad++;
        if ((st->row_win[s] != 0) != (nslots != 0)) bad++;
        live += st->row_win[s] != 0;
        if (after_advance) {
            int differs = memcmp(&want, &st->prev[s], sizeof want) != 0;
            if (differs != st->changed[s]) bad++;
        }
        st->prev[s] = want;
        st->changed[s] = 0;
    }
    if (live != windows_active(st->w)) bad++;
    return bad;
}

/* Snapshot every entry's slots into a fresh windows_t; both must agree now
 * and after the same advances. */
static int check_restore(rstate_t *st) {
    int bad = 0;
    windows_t *w2 = windows_new();
    int64_t now = windows_now(st->w);
    windows_advance(w2, now, NULL, NULL);
    uint32_t win2[NSKU] = {0};
    for (uint32_t s = 0; s < NSKU; s++) {
        size_t n = windows_slot_count(st->w, st->row_win[s]);
        windows_slot_t *sl = xcalloc(n ? n : 1, sizeof *sl);
        for (size_t i = 0; i < n; i++) bad += windows_slot_at(st->w, st->row_win[s], i, &sl[i]) != 0;
        bad += windows_restore(w2, &win2[s], s, sl, n) != 0;
        free(sl);
        if (memcmp(S(st->w, st->row_win[s]), S(w2, win2[s]), sizeof(win_sums_t)) != 0) bad++;
    }
    for (int step = 1; step <= 20; step++) {
        windows_advance(w2, now + step * 9 * HOUR_MS, NULL, NULL);
        for (uint32_t s = 0; s < NSKU; s++) {
            win_sums_t want;
            ref_sums(&st->ev[s], now + step * 9 * HOUR_MS, &want, NULL);
            uint32_t i2 = win2[s];
            if (windows_slot_count(w2, i2) == 0) i2 = 0; /* freed */
            if (memcmp(&want, S(w2, i2), sizeof want) != 0) bad++;
        }
    }
    CHECK_EQ_INT(windows_active(w2), 0);
    windows_free(w2);
    return bad;
}

static void test_random(uint64_t seed, int steps, int min_days) {
    rstate_t *st = xcalloc(1, sizeof *st);
    st->w = windows_new();
    rng_state = seed;
    int64_t clock = T0;
    windows_advance(st->w, clock, NULL, NULL);
    int bad_sums = 0, bad_rc = 0, bad_noop = 0, advances = 0, stale = 0;
    size_t max_active = 0;
    for (int step = 0; step < steps; step++) {
        int r = (int)(rnd() % 100);
        if (r < 50) {
            int batch = (int)rnd_range(1, 8);
            for (int b = 0; b < batch; b++) {
                uint32_t sku = rnd() % 4 ? (uint32_t)(rnd() % 8) : (uint32_t)(rnd() % NSKU);
                int64_t M = clock / MIN_MS, H = clock / HOUR_MS, ts;
                int q = (int)(rnd() % 100);
                if (q < 15) ts = clock - rnd_range(0, 3000); /* the newest slots */
                else if (q < 45) ts = clock - rnd_range(0, HOUR_MS);
                else if (q < 70) ts = clock - rnd_range(0, 25 * HOUR_MS);
                else if (q < 88) ts = clock - rnd_range(0, 8 * 24 * HOUR_MS);
                else if (q < 93) ts = clock + rnd_range(0, 2 * HOUR_MS);
                else if (q < 94) ts = (M - 59) * MIN_MS;
                else if (q < 95) ts = (M - 60) * MIN_MS + 59999;
                else if (q < 96) ts = (M - 1440) * MIN_MS + 59999;
                else if (q < 97) ts = (M - 1439) * MIN_MS;
                else if (q < 98) ts = (H - 167) * HOUR_MS;
                else ts = (H - 168) * HOUR_MS + HOUR_MS - 1;
                int64_t now_arg = rnd() % 10 ? clock : clock + rnd_range(0, 3 * HOUR_MS);
                int64_t c = now_arg > clock ? now_arg : clock;
                int want_rc = ts / HOUR_MS > c / HOUR_MS - 168;
                ev_t e = {.ts = ts, .kind = (uint8_t)(rnd() % 4)};
                int rc;
                if (e.kind == EV_ORDER) {
                    e.qty = rnd() % 20 ? (uint32_t)rnd_range(1, 5) : 0;
                    e.amount = (double)rnd_range(1, 100000) / 100.0;
                    rc = windows_add_order(st->w, &st->row_win[sku], sku, e.qty, e.amount, ts, now_arg);
                } else {
                    win_metric_t m = e.kind == EV_VIEW ? WM_VIEWS : e.kind == EV_CLICK ? WM_CLICKS : WM_CARTS;
                    rc = windows_add_behaviour(st->w, &st->row_win[sku], sku, m, ts, now_arg);
                }
                if (rc != want_rc) bad_rc++;
                if (rc == 0) stale++;
                if (rc == 1) {
                    if (g_nev == g_capev) {
                        g_capev = g_capev ? g_capev * 2 : 1024;
                        g_ev = xrealloc(g_ev, g_capev * sizeof *g_ev);
                    }
                    g_ev[g_nev] = e;
                    ref_add(&st->ev[sku], (uint32_t)g_nev++);
                }
            }
            bad_sums += check_all(st, 0);
        } else if (r < 53) {
            uint32_t sku = (uint32_t)(rnd() % NSKU);
            windows_release(st->w, &st->row_win[sku]);
            st->ev[sku].n = 0;
            bad_sums += check_all(st, 0);
        } else {
            int q = (int)(rnd() % 1000);
            int64_t target;
            if (q < 400) target = clock + rnd_range(0, 2 * MIN_MS);
            else if (q < 600) target = clock + rnd_range(0, 20 * MIN_MS);
            else if (q < 800) target = (clock / MIN_MS + 1) * MIN_MS + rnd_range(-1, 1);
            else if (q < 850) target = (clock / HOUR_MS + 1) * HOUR_MS + rnd_range(-1, 1);
            else if (q < 995) target = clock - rnd_range(0, HOUR_MS);
            else target = clock + rnd_range(6 * HOUR_MS, 30 * HOUR_MS);
            rec_t rec = {0};
            if (target <= clock) {
                windows_advance(st->w, target, rec_fn, &rec);
                if (rec.n != 0 || windows_now(st->w) != clock) bad_noop++;
                continue;
            }
            clock = target;
            windows_advance(st->w, clock, rand_cb, st);
            advances++;
            bad_sums += check_all(st, 1);
        }
        if (windows_active(st->w) > max_active) max_active = windows_active(st->w);
    }
    CHECK_EQ_INT(bad_sums, 0);
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(bad_noop, 0);
    CHECK_EQ_INT(st->cb_bad, 0);
    CHECK(advances > steps / 3);
    CHECK(clock - T0 > min_days * 24 * HOUR_MS); /* min_days > 7: 7d expiries happened */
    CHECK(stale > 0);
    CHECK_EQ_INT(check_restore(st), 0);
    printf("random seed %llu: %zu events (%d stale), %d advances over %.1f days, max %zu active\n",
           (unsigned long long)seed, g_nev, stale, advances, (double)(clock - T0) / (24 * HOUR_MS),
           max_active);
    /* everything eventually expires and every entry is freed */
    windows_advance(st->w, clock + 8 * 24 * HOUR_MS, rand_cb, st);
    CHECK_EQ_INT(windows_active(st->w), 0);
    for (int s = 0; s < NSKU; s++) CHECK_EQ_INT(st->row_win[s], 0);
    for (int s = 0; s < NSKU; s++) {
        free(st->ev[s].bym);
        free(st->ev[s].byh);
    }
    windows_free(st->w);
    free(st);
    free(g_ev);
    g_ev = NULL;
    g_nev = g_capev = 0;
}

/* -- Memory and speed (printed, loosely asserted) -------------------------- */

static void test_memory(void) {
    const uint32_t n = 131071; /* entries 1..n fill the dense arrays exactly */
    struct mallinfo2 before = mallinfo2();
    windows_t *w = windows_new();
    size_t mem0 = windows_memory(w);
    windows_advance(w, T0, NULL, NULL);
    uint32_t *rows = xcalloc(n, sizeof *rows);
    uint64_t c0 = mono_ns();
    for (uint32_t i = 0; i < n; i++) windows_add_order(w, &rows[i], i, 1, 9.99, T0 - (i % 600) * 1000, T0);
    uint64_t took = mono_ns() - c0;
    struct mallinfo2 after = mallinfo2();
    printf("windows_add_order: %.0f ns/op (first order of a new SKU, allocating its entry)\n", (double)took / n);
    CHECK_EQ_INT(windows_active(w), n);
    double per = (double)(windows_memory(w) - mem0) / n;
    double real = ((double)(after.uordblks + after.hblkhd) - (double)(before.uordblks + before.hblkhd) -
                   (double)(n * sizeof *rows)) / n;
    if (after.uordblks)
        printf("memory: %.1f bytes per active SKU with one order (accounted); malloc-measured %.1f\n", per, real);
    else
        printf("memory: %.1f bytes per active SKU with one order (accounted)\n", per);
    CHECK(per <= 160.0);
    for (uint32_t i = 0; i < n; i++) windows_add_behaviour(w, &rows[i], i, WM_VIEWS, T0, T0);
    printf("memory: %.1f bytes per active SKU with one order and one view in the same minute\n",
           (double)(windows_memory(w) - mem0) / n);
    free(rows);
    windows_free(w);
}

static void test_speed(void) {
    const int nsku = 10000;
    const int ops = QUICK ? 200000 : 2000000;
    windows_t *w = windows_new();
    uint32_t *rows = xcalloc(nsku, sizeof *rows);
    windows_advance(w, T0, NULL, NULL);
    rng_state = 42;
    /* 10k SKUs, event time advancing 50 ms per order (~28h), a tick every
     * 1000 orders: cache-missing random SKUs, slots in new minutes */
    uint64_t c0 = mono_ns(), tick = 0;
    for (int i = 0; i < ops; i++) {
        int64_t now = T0 + (int64_t)i * 50;
        if (i % 1000 == 0) {
            uint64_t a = mono_ns();
            windows_advance(w, now, NULL, NULL);
            tick += mono_ns() - a;
        }
        uint32_t s = (uint32_t)(rnd() % nsku);
        windows_add_order(w, &rows[s], s, 1, 19.9, now - (int64_t)(rnd() % 5000), now);
    }
    uint64_t all = mono_ns() - c0;
    printf("windows_add_order: %.0f ns/op + expiry %.0f ns/op (10k SKUs, random; %zu active, %.0f B/SKU)\n",
           (double)(all - tick) / ops, (double)tick / ops, windows_active(w),
           (double)windows_memory(w) / windows_active(w));
    /* same SKUs, clock still: every order lands in an existing minute slot */
    c0 = mono_ns();
    for (int i = 0; i < ops; i++) {
        uint32_t s = (uint32_t)(i * 7919u % (uint32_t)nsku);
        windows_add_order(w, &rows[s], s, 1, 19.9, windows_now(w) - (i % 5000), windows_now(w));
    }
    printf("windows_add_order: %.0f ns/op (10k SKUs in turn, same minute)\n", (double)(mono_ns() - c0) / ops);
    c0 = mono_ns();
    for (int i = 0; i < ops; i++) {
        uint32_t s = (uint32_t)(i * 7919u % (uint32_t)nsku);
        windows_add_behaviour(w, &rows[s], s, WM_VIEWS, windows_now(w), windows_now(w));
    }
    printf("windows_add_behaviour: %.0f ns/op (same 10k SKUs in turn, same minute)\n", (double)(mono_ns() - c0) / ops);
    uint32_t hot = 0;
    c0 = mono_ns();
    for (int i = 0; i < ops; i++) {
        int64_t now = T0 + 200 * HOUR_MS + (int64_t)i * 50;
        if (i % 1200 == 0) windows_advance(w, now, NULL, NULL);
        windows_add_order(w, &hot, 999999, 1, 0.5, now, now);
    }
    printf("windows_add_order: %.0f ns/op (one hot SKU, 20 orders/s, ticks included; %zu slots)\n",
           (double)(mono_ns() - c0) / ops, windows_slot_count(w, hot));
    free(rows);
    windows_free(w);
}

int main(void) {
    test_counts();
    test_boundaries();
    test_stale();
    test_shared_slot();
    test_on_change();
    test_gmv_exact();
    test_release();
    test_restore_invalid();
    test_random(0x9E3779B97F4A7C15ULL, 4000, 9);
    test_random(12345, 1500, 3);
    test_memory();
    test_speed();
    return check_done();
}
