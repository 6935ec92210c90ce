/* test_rank_index.c - rank_index: edge cases, the rank order (score desc,
 * NaN as -inf, byte-wise name tie-break, names sharing 16+ byte prefixes),
 * randomized operations checked step by step against a brute-force sorted
 * array (small and default node sizes, growth to a deep tree and drain to
 * empty), name pointers and name texts that change while the old string
 * is scribbled, and throughput at 200k entries (printed, not asserted; the
 * run ends by comparing the whole 200k-entry index with the model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rank_index.h"
#include "util.h"

/* Sanitizer and unoptimised builds check the same things on less work. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd_below(uint32_t n) { return (uint32_t)(rnd() % n); }

/* -- Reference model ------------------------------------------------------- */

#define NAME_LEN 40

typedef struct model {
    uint32_t universe;
    bool *present;
    double *score;            /* as set (may be NaN) */
    char (*buf)[2][NAME_LEN]; /* two buffers per id; buf[id][cur[id]] is in use */
    uint8_t *cur;
    uint8_t *var;    /* which of the id's two name texts is in use */
    uint32_t *order; /* scratch: expected order */
} model_t;

static const model_t *sort_model;

/* Name of id i: unique, not in id order, with shared prefixes, different
 * lengths (some over 16 bytes, sharing their first 16), upper/lower case
 * and non-ASCII bytes. Variant 1 is another text for the same id. */
static void name_var(uint32_t i, int var, char *out) {
    uint32_t perm = (uint32_t)(((uint64_t)i * 7919u + 13u) % 100003u);
    if (var) {
        snprintf(out, NAME_LEN, "renamed-%u", perm);
        return;
    }
    switch (i % 5) {
    case 4:
        snprintf(out, NAME_LEN, "LAZADA-SG-LONG-SKU-%07u", perm);
        break;
    case 0:
        snprintf(out, NAME_LEN, "SG-%06u", perm);
        break;
    case 1:
        snprintf(out, NAME_LEN, "sg-%u", perm);
        break;
    case 2:
        snprintf(out, NAME_LEN, "\xc3\xa9%u", perm);
        break;
    default:
        snprintf(out, NAME_LEN, "SG-%u", perm);
        break;
    }
}

static void name_of(uint32_t i, char *out) { name_var(i, 0, out); }

static void model_init(model_t *m, uint32_t universe) {
    m->universe = universe;
    m->present = xcalloc(universe, sizeof *m->present);
    m->score = xcalloc(universe, sizeof *m->score);
    m->buf = xcalloc(universe, sizeof *m->buf);
    m->cur = xcalloc(universe, sizeof *m->cur);
    m->var = xcalloc(universe, sizeof *m->var);
    m->order = xcalloc(universe, sizeof *m->order);
    for (uint32_t i = 0; i < universe; i++) {
        name_of(i, m->buf[i][0]);
        name_of(i, m->buf[i][1]);
    }
}

static void model_free(model_t *m) {
    free(m->present);
    free(m->score);
    free(m->buf);
    free(m->cur);
    free(m->var);
    free(m->order);
}

static double norm(double s) { return isnan(s) ? -INFINITY : s; }

static int expected_cmp(const void *pa, const void *pb) {
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    double sa = norm(sort_model->score[a]), sb = norm(sort_model->score[b]);
    if (sa != sb) return sa > sb ? -1 : 1;
    /* the buffers in use always hold the id's current text */
    int c = strcmp(sort_model->buf[a][sort_model->cur[a]], sort_model->buf[b][sort_model->cur[b]]);
    if (c) return c;
    return (a > b) - (a < b);
}

static size_t model_sorted(model_t *m) {
    size_t n = 0;
    for (uint32_t i = 0; i < m->universe; i++)
        if (m->present[i]) m->order[n++] = i;
    sort_model = m;
    qsort(m->order, n, sizeof *m->order, expected_cmp);
    return n;
}

/* Everything the index says equals the model. Returns the failures. */
static int compare_full(const rank_index_t *ri, model_t *m, uint32_t *scratch) {
    int before = check_failed;
    size_t n = model_sorted(m);
    unsigned height;
    CHECK_EQ_INT(rank_index_check(ri, &height), 0);
    CHECK_EQ_INT(rank_index_count(ri), n);
    for (size_t p = 0; p < n; p++)
        if (rank_index_at(ri, p) != m->order[p]) {
            CHECK_EQ_INT(rank_index_at(ri, p), m->order[p]);
            break;
        }
    CHECK_EQ_INT(rank_index_at(ri, n), RANK_INDEX_NONE);
    long *pos = xcalloc(m->universe, sizeof *pos);
    for (uint32_t i = 0; i < m->universe; i++) pos[i] = -1;
    for (size_t p = 0; p < n; p++) pos[m->order[p]] = (long)p;
    for (uint32_t i = 0; i < m->universe; i++) {
        long got = rank_index_position(ri, i);
        bool ok = got == pos[i] && rank_index_contains(ri, i) == m->present[i];
        double s = rank_index_score(ri, i);
        ok = ok && (m->present[i] ? s == norm(m->score[i]) : isnan(s));
        if (!ok) {
            CHECK_EQ_INT(got, pos[i]);
            CHECK(rank_index_contains(ri, i) == m->present[i]);
            CHECK(m->present[i] ? s == norm(m->score[i]) : isnan(s));
            break;
        }
    }
    free(pos);
    /* whole range, and a random window that may run past the end */
    CHECK_EQ_INT(rank_index_range(ri, 0, n + 5, scratch), n);
    CHECK(n == 0 || memcmp(scratch, m->order, n * sizeof *scratch) == 0);
    size_t from = rnd_below((uint32_t)n + 3), len = rnd_below(200);
    size_t want = from >= n ? 0 : (len < n - from ? len : n - from);
    CHECK_EQ_INT(rank_index_range(ri, from, len, scratch), want);
    CHECK(want == 0 || memcmp(scratch, m->order + from, want * sizeof *scratch) == 0);
    return check_failed - before;
}

/* -- Edge cases ------------------------------------------------------------ */

static void test_empty(void) {
    rank_index_t *ri = rank_index_new();
    uint32_t out[4] = {7, 7, 7, 7};
    CHECK_EQ_INT(rank_index_count(ri), 0);
    CHECK(!rank_index_contains(ri, 0));
    CHECK_EQ_INT(rank_index_position(ri, 0), -1);
    CHECK_EQ_INT(rank_index_at(ri, 0), RANK_INDEX_NONE);
    CHECK_EQ_INT(rank_index_range(ri, 0, 4, out), 0);
    CHECK_EQ_INT(out[0], 7);
    CHECK(isnan(rank_index_score(ri, 3)));
    rank_index_remove(ri, 3); /* absent: no-op */
    CHECK_EQ_INT(rank_index_count(ri), 0);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    CHECK(rank_index_memory(ri) > 0);
    /* the reserved id is ignored */
    rank_index_set(ri, RANK_INDEX_NONE, 1.0, "x");
    CHECK_EQ_INT(rank_index_count(ri), 0);
    CHECK(!rank_index_contains(ri, RANK_INDEX_NONE));
    rank_index_free(ri);
    rank_index_free(NULL);
    CHECK_EQ_INT(rank_index_count(NULL), 0);
    CHECK_EQ_INT(rank_index_position(NULL, 1), -1);
}

static void test_single(void) {
    rank_index_t *ri = rank_index_new();
    uint32_t out[4];
    rank_index_set(ri, 5, 2.5, "SKU-5");
    CHECK_EQ_INT(rank_index_count(ri), 1);
    CHECK(rank_index_contains(ri, 5));
    CHECK(!rank_index_contains(ri, 6));
    CHECK_EQ_INT(rank_index_position(ri, 5), 0);
    CHECK_EQ_INT(rank_index_at(ri, 0), 5);
    CHECK_EQ_INT(rank_index_at(ri, 1), RANK_INDEX_NONE);
    CHECK_EQ_INT(rank_index_range(ri, 0, 4, out), 1);
    CHECK_EQ_INT(out[0], 5);
    CHECK_EQ_INT(rank_index_range(ri, 1, 4, out), 0);
    CHECK(rank_index_score(ri, 5) == 2.5);
    rank_index_set(ri, 5, 2.5, "SKU-5"); /* move to the same score */
    CHECK_EQ_INT(rank_index_count(ri), 1);
    CHECK_EQ_INT(rank_index_position(ri, 5), 0);
    rank_index_set(ri, 5, -1.0, "SKU-5");
    CHECK(rank_index_score(ri, 5) == -1.0);
    rank_index_remove(ri, 6);
    CHECK_EQ_INT(rank_index_count(ri), 1);
    rank_index_remove(ri, 5);
    CHECK_EQ_INT(rank_index_count(ri), 0);
    CHECK_EQ_INT(rank_index_position(ri, 5), -1);
    rank_index_remove(ri, 5);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    rank_index_set(ri, 5, 1.0, "SKU-5"); /* re-insert after remove */
    CHECK_EQ_INT(rank_index_position(ri, 5), 0);
    rank_index_free(ri);
}

static void test_order(void) {
    rank_index_t *ri = rank_index_new();
    uint32_t out[16];
    /* score desc; ties by byte-wise name: "B" (0x42) < "a" (0x61) < "é" (0xc3) */
    rank_index_set(ri, 1, 5.0, "a");
    rank_index_set(ri, 2, 5.0, "B");
    rank_index_set(ri, 3, 5.0, "\xc3\xa9");
    rank_index_set(ri, 4, 7.0, "z");
    rank_index_set(ri, 5, NAN, "m");       /* NaN ranks as -inf ... */
    rank_index_set(ri, 6, -INFINITY, "k"); /* ... tied with -inf, by name */
    rank_index_set(ri, 7, INFINITY, "zz");
    rank_index_set(ri, 8, -1e300, "a");
    rank_index_set(ri, 9, 5.0, "a0"); /* prefix "a" sorts first */
    uint32_t want[] = {7, 4, 2, 1, 9, 3, 8, 6, 5};
    size_t n = sizeof want / sizeof want[0];
    CHECK_EQ_INT(rank_index_range(ri, 0, 16, out), n);
    CHECK(memcmp(out, want, sizeof want) == 0);
    for (size_t p = 0; p < n; p++) CHECK_EQ_INT(rank_index_position(ri, want[p]), p);
    CHECK(rank_index_score(ri, 5) == -INFINITY);
    CHECK(isnan(rank_index_score(ri, 10)));
    /* a move to the same rank keeps the order; a move across others lands right */
    rank_index_set(ri, 1, 5.0, "a");
    CHECK_EQ_INT(rank_index_position(ri, 1), 3);
    rank_index_set(ri, 5, 6.0, "m");
    CHECK_EQ_INT(rank_index_position(ri, 5), 2);
    rank_index_set(ri, 7, NAN, "zz");
    CHECK_EQ_INT(rank_index_position(ri, 7), 8);
    CHECK_EQ_INT(rank_index_at(ri, 0), 4);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    /* a new name text for a present id re-sorts it among its ties */
    rank_index_set(ri, 2, 5.0, "b");
    CHECK_EQ_INT(rank_index_position(ri, 1), 2);
    CHECK_EQ_INT(rank_index_position(ri, 9), 3);
    CHECK_EQ_INT(rank_index_position(ri, 2), 4);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    rank_index_free(ri);

    /* names longer than 16 bytes that share their first 16 (and more) */
    ri = rank_index_new();
    const char *longn[] = {"SKU-0000000000000-b", "SKU-0000000000000-a", "SKU-0000000000000",
                           "SKU-0000000000000-a-2", "SKU-000000000000"};
    for (uint32_t i = 0; i < 5; i++) rank_index_set(ri, 10 + i, 1.0, longn[i]);
    uint32_t want_long[] = {14, 12, 11, 13, 10};
    CHECK_EQ_INT(rank_index_range(ri, 0, 16, out), 5);
    CHECK(memcmp(out, want_long, sizeof want_long) == 0);
    /* equal names (a caller bug) still order deterministically, by id */
    rank_index_set(ri, 3, 1.0, "SKU-0000000000000-a");
    CHECK_EQ_INT(rank_index_position(ri, 3), 2);
    CHECK_EQ_INT(rank_index_position(ri, 11), 3);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    rank_index_free(ri);
}

/* A separator must not keep a name pointer of an entry that left: build a
 * multi-level tree, give every id a new name buffer, scribble the old ones,
 * then keep working; the check compares pointers and order. */
static void test_name_pointer_change(void) {
    enum { N = 600 };
    static char a[N][NAME_LEN], b[N][NAME_LEN];
    rank_index_t *ri = rank_index_new_fanout(4, 4);
    for (uint32_t i = 0; i < N; i++) {
        name_of(i, a[i]);
        name_of(i, b[i]);
        rank_index_set(ri, i, (double)(i % 5), a[i]);
    }
    for (uint32_t i = 0; i < N; i++) rank_index_set(ri, i, (double)(i % 5), b[i]);
    for (uint32_t i = 0; i < N; i++) memset(a[i], '~', NAME_LEN - 1);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    for (uint32_t i = 0; i < N; i += 3) rank_index_remove(ri, i);
    for (uint32_t i = 1; i < N; i += 3) rank_index_set(ri, i, (double)(i % 7), b[i]);
    CHECK_EQ_INT(rank_index_check(ri, NULL), 0);
    CHECK_EQ_INT(rank_index_count(ri), N - N / 3);
    rank_index_free(ri);
}

/* -- Randomized against the model ------------------------------------------ */

static double random_score(const model_t *m, uint32_t id) {
    uint32_t r = rnd_below(100);
    if (r < 50) return (double)rnd_below(4); /* ties: the name decides */
    if (r < 55) return NAN;
    if (r < 58) return -INFINITY;
    if (r < 61) return INFINITY;
    if (r < 63) return -0.0;
    if (r < 75 && m->present[id]) return norm(m->score[id]) + (rnd_below(2) ? 1e-9 : -1e-9);
    if (r < 85 && m->present[id]) return m->score[id]; /* same score */
    return (double)(rnd() >> 11) / 9007199254740992.0 * 8.0 - 2.0;
}

/* steps operations over `universe` ids; grow/shrink phases reach deep
 * trees and empty ones. Full comparison every `every` steps. */
static void random_run(unsigned leaf_max, unsigned inner_max, uint32_t universe, int steps,
                       int every, unsigned *max_height) {
    model_t m;
    model_init(&m, universe);
    rank_index_t *ri = rank_index_new_fanout(leaf_max, inner_max);
    uint32_t *scratch = xcalloc(universe + 8, sizeof *scratch);
    int fails = 0;
    for (int step = 0; step < steps && fails == 0; step++) {
        int phase = (step / (steps / 6 + 1)) % 3; /* grow, drain, mixed */
        uint32_t set_pct = phase == 0 ? 85 : phase == 1 ? 15 : 55;
        uint32_t id = rnd_below(universe);
        if (rnd_below(100) < set_pct) {
            double s = random_score(&m, id);
            uint8_t use = m.cur[id], var = m.var[id];
            if (rnd_below(4) == 0) use ^= 1; /* same text, another pointer */
            if (rnd_below(10) == 0) {        /* another text, another pointer */
                use = m.cur[id] ^ 1;
                var ^= 1;
            }
            name_var(id, var, m.buf[id][use]);
            rank_index_set(ri, id, s, m.buf[id][use]);
            /* the old text may go once the call returned */
            if (use != m.cur[id]) memset(m.buf[id][m.cur[id]], '~', NAME_LEN - 1);
            m.cur[id] = use;
            m.var[id] = var;
            m.present[id] = true;
            m.score[id] = s;
        } else {
            rank_index_remove(ri, id);
            m.present[id] = false;
        }
        if (phase == 1 && step % 7 == 0) { /* drain faster: remove a present id */
            long p = rank_index_count(ri) ? (long)rnd_below((uint32_t)rank_index_count(ri)) : -1;
            if (p >= 0) {
                uint32_t victim = rank_index_at(ri, (size_t)p);
                rank_index_remove(ri, victim);
                m.present[victim] = false;
            }
        }
        unsigned h = 0;
        if (step % every == 0 || step == steps - 1) {
            fails += compare_full(ri, &m, scratch);
            rank_index_check(ri, &h);
        } else if (m.present[id]) { /* spot check the touched id */
            long p = rank_index_position(ri, id);
            CHECK(p >= 0 && rank_index_at(ri, (size_t)p) == id);
        }
        if (h > *max_height) *max_height = h;
    }
    /* drain to empty, checking as the tree shrinks to one leaf */
    for (uint32_t i = 0; i < universe && fails == 0; i++) {
        rank_index_remove(ri, i);
        m.present[i] = false;
        if (i % (universe / 8 + 1) == 0) fails += compare_full(ri, &m, scratch);
    }
    CHECK_EQ_INT(rank_index_count(ri), 0);
    unsigned h = 99;
    CHECK_EQ_INT(rank_index_check(ri, &h), 0);
    CHECK_EQ_INT(h, 0);
    rank_index_free(ri);
    free(scratch);
    model_free(&m);
}

static void test_random(void) {
    const int scale = SLOW_BUILD ? 2 : 1; /* sanitizer builds: half the steps */
    unsigned hs = 0, hd = 0, hm = 0, hb = 0;
    /* tiny nodes: many levels, every step checked in full */
    random_run(4, 4, 400, 4000 / scale, 1, &hs);
    random_run(5, 6, 300, 3000 / scale, 1, &hm);
    random_run(48, 32, 300, 3000 / scale, 1, &hd); /* the default node sizes */
    /* bigger: spot checks every step, full comparison every 2500 */
    random_run(8, 4, 6000, 30000 / scale, 2500, &hb);
    printf("random: heights reached %u (4/4), %u (5/6), %u (48/32), %u (8/4)\n", hs, hm, hd, hb);
    CHECK(hs >= 4); /* deep trees: the drains below collapse them level by level */
    CHECK(hb >= 4);
}

/* -- Throughput (printed) -------------------------------------------------- */

static double mops(long ops, uint64_t t0, uint64_t t1) { return (double)ops / ((t1 - t0) / 1e3); }

/* A skewed id: rank u^3 of n, so 1% of the ids get ~20% of the updates
 * (hot SKUs), scattered over the id space. */
static uint32_t skewed_id(uint32_t n) {
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    return (uint32_t)(((uint64_t)(u * u * u * n) * 2654435761u) % n);
}

static void test_throughput(void) {
    const uint32_t n = 200000;
    const long ops = SLOW_BUILD ? 100000 : 1000000;
    const int range_calls = SLOW_BUILD ? 1000 : 20000;
    model_t m;
    model_init(&m, n);
    rank_index_t *ri = rank_index_new();

    uint64_t t0 = mono_ns();
    for (uint32_t i = 0; i < n; i++) {
        double s = rnd_below(5) == 0 ? 0.0 : (double)rnd_below(1000000) / 100.0;
        m.present[i] = true;
        m.score[i] = s;
        rank_index_set(ri, i, s, m.buf[i][0]);
    }
    /* uniform ids: 25% removes of present ids, else set to a new random
     * score (10% to 0), or up by a small step */
    uint64_t t1 = mono_ns();
    for (long k = 0; k < ops; k++) {
        uint32_t id = rnd_below(n), r = rnd_below(100);
        if (m.present[id] && r < 25) {
            rank_index_remove(ri, id);
            m.present[id] = false;
        } else {
            double s = r < 60   ? (double)rnd_below(1000000) / 100.0
                       : r < 70 ? 0.0
                                : norm(m.score[id]) + (double)rnd_below(100) / 100.0;
            rank_index_set(ri, id, s, m.buf[id][0]);
            m.present[id] = true;
            m.score[id] = s;
        }
    }
    /* uniform ids, moves only, to a random score */
    uint64_t t2 = mono_ns();
    for (long k = 0; k < ops; k++) {
        uint32_t id = rnd_below(n);
        double s = (double)rnd_below(1000000) / 100.0;
        rank_index_set(ri, id, s, m.buf[id][0]);
        m.present[id] = true;
        m.score[id] = s;
    }
    /* skewed ids, scores growing by small steps (GMV/sales counters) */
    uint64_t t3 = mono_ns();
    for (long k = 0; k < ops; k++) {
        uint32_t id = skewed_id(n);
        double s = norm(m.score[id]) + (double)(1 + rnd_below(500)) / 100.0;
        rank_index_set(ri, id, s, m.buf[id][0]);
        m.present[id] = true;
        m.score[id] = s;
    }
    /* re-ranking that finds the score unchanged */
    uint64_t t4 = mono_ns();
    for (long k = 0; k < ops; k++) {
        uint32_t id = rnd_below(n);
        rank_index_set(ri, id, m.score[id], m.buf[id][0]);
        m.present[id] = true; /* the few ids no move reached get inserted */
    }
    uint64_t t4b = mono_ns();
    size_t count = rank_index_count(ri);
    uint32_t *out = xcalloc(2000, sizeof *out);
    uint64_t sink = 0;
    for (int k = 0; k < range_calls; k++) {
        size_t from = k % 2 ? 0 : rnd_below((uint32_t)(count - 2000));
        sink += rank_index_range(ri, from, 2000, out) + out[1999];
    }
    uint64_t t5 = mono_ns();
    for (int k = 0; k < range_calls * 10; k++)
        sink += (uint64_t)rank_index_position(ri, rnd_below(n)) + rank_index_at(ri, k % count);
    uint64_t t6 = mono_ns();

    printf("throughput at 200k entries (M ops/s, wall clock, %s build):\n"
           "  insert %.2f | uniform mixed set/remove %.2f | uniform moves %.2f | "
           "skewed increments %.2f | unchanged %.2f\n"
           "  range(2000) %.2f us | position+at %.0f ns | memory %.1f MB = %.0f B/entry [%llu]\n",
           SLOW_BUILD ? "sanitizer/unoptimised" : "optimised", mops(n, t0, t1), mops(ops, t1, t2),
           mops(ops, t2, t3), mops(ops, t3, t4), mops(ops, t4, t4b), (t5 - t4b) / 1e3 / range_calls,
           (double)(t6 - t5) / (range_calls * 10.0), rank_index_memory(ri) / 1e6,
           (double)rank_index_memory(ri) / (double)count, (unsigned long long)(sink & 1));

    /* the big tree is still exactly the model */
    uint32_t *scratch = xcalloc(n + 8, sizeof *scratch);
    CHECK_EQ_INT(compare_full(ri, &m, scratch), 0);
    free(scratch);
    free(out);
    rank_index_free(ri);
    model_free(&m);
}

int main(void) {
    log_quiet = 1;
    test_empty();
    test_single();
    test_order();
    test_name_pointer_change();
    test_random();
    test_throughput();
    return check_done();
}
