/* test_strmap.c - strmap: semantics against a reference model, tombstone
 * clean-up, retire lists, concurrent readers during resizes, memory per key
 * and lookup speed on 1M SKU-like keys (printed, not asserted). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "epoch.h"
#include "strmap.h"
#include "util.h"

/* Sanitizer and unoptimised builds check the same things on less work. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
#define LOOKUP_ROUNDS 1
#else
#define LOOKUP_ROUNDS 4
#endif

static size_t key_of(char *buf, uint32_t i) { return (size_t)sprintf(buf, "SG-%07u", i); }

static void test_basic(void) {
    strmap_t *m = strmap_new(0);
    uint32_t v = 0;
    CHECK_EQ_INT(strmap_get(m, "a", 1, &v), -1);
    CHECK_EQ_INT(strmap_put(m, "a", 1, 7, NULL), 0);
    CHECK_EQ_INT(strmap_put(m, "ab", 2, 8, NULL), 0);
    CHECK_EQ_INT(strmap_put(m, "", 0, 9, NULL), 0);
    CHECK(strmap_get(m, "a", 1, &v) == 0 && v == 7);
    CHECK(strmap_get(m, "ab", 2, &v) == 0 && v == 8);
    CHECK(strmap_get(m, "", 0, &v) == 0 && v == 9);
    CHECK(strmap_read(m, "ab", 2, &v) == 0 && v == 8);
    CHECK_EQ_INT(strmap_get(m, "abc", 3, &v), -1);
    CHECK_EQ_INT(strmap_count(m), 3);
    /* overwrite keeps the count */
    CHECK_EQ_INT(strmap_put(m, "a", 1, 70, NULL), 0);
    CHECK(strmap_get(m, "a", 1, &v) == 0 && v == 70);
    CHECK_EQ_INT(strmap_count(m), 3);
    /* delete, double delete, re-put */
    CHECK_EQ_INT(strmap_del(m, "a", 1, NULL), 0);
    CHECK_EQ_INT(strmap_del(m, "a", 1, NULL), -1);
    CHECK_EQ_INT(strmap_get(m, "a", 1, &v), -1);
    CHECK_EQ_INT(strmap_read(m, "a", 1, &v), -1);
    CHECK_EQ_INT(strmap_count(m), 2);
    CHECK_EQ_INT(strmap_put(m, "a", 1, 71, NULL), 0);
    CHECK(strmap_get(m, "a", 1, &v) == 0 && v == 71);
    CHECK_EQ_INT(strmap_count(m), 3);
    /* limits */
    CHECK_EQ_INT(strmap_put(m, "x", 1, STRMAP_DELETED, NULL), -1);
    CHECK_EQ_INT(strmap_get(m, "x", 1, &v), -1);
    char *big = xcalloc(1, STRMAP_MAX_KEY + 2);
    memset(big, 'k', STRMAP_MAX_KEY + 1);
    CHECK_EQ_INT(strmap_put(m, big, STRMAP_MAX_KEY + 1, 1, NULL), -1);
    CHECK_EQ_INT(strmap_put(m, big, STRMAP_MAX_KEY, 5, NULL), 0); /* bigger than a first slab */
    CHECK(strmap_get(m, big, STRMAP_MAX_KEY, &v) == 0 && v == 5);
    CHECK_EQ_INT(strmap_get(m, big, STRMAP_MAX_KEY - 1, &v), -1);
    free(big);
    /* keys with NUL bytes and a shared prefix */
    CHECK_EQ_INT(strmap_put(m, "n\0a", 3, 11, NULL), 0);
    CHECK_EQ_INT(strmap_put(m, "n\0b", 3, 12, NULL), 0);
    CHECK(strmap_get(m, "n\0a", 3, &v) == 0 && v == 11);
    CHECK(strmap_get(m, "n\0b", 3, &v) == 0 && v == 12);
    strmap_free(m);
    strmap_free(NULL);
}

static int sum_cb(void *ctx, const char *key, size_t len, uint32_t value) {
    uint64_t *acc = ctx;
    char buf[32];
    uint32_t want = (uint32_t)atoi(key + 3);
    if (len != key_of(buf, want) || memcmp(buf, key, len) != 0) acc[2]++;
    acc[0]++;
    acc[1] += value;
    return 0;
}

/* Random puts/dels/re-puts against an array model, through several
 * resizes; every key checked at the end, iteration checked too. */
static void test_model(void) {
    enum { N = 50000, OPS = 100000 * LOOKUP_ROUNDS };
    uint32_t *model = xcalloc(N, sizeof *model); /* 0 = absent, else value */
    strmap_t *m = strmap_new(4);
    retire_list_t rl = {0};
    uint64_t seed = 42;
    size_t live = 0;
    char buf[32];
    int bad = 0;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(seed >> 33);
        uint32_t k = r % N;
        size_t len = key_of(buf, k);
        if ((r >> 20) % 3 == 0) {
            int rc = strmap_del(m, buf, len, &rl);
            if (rc != (model[k] ? 0 : -1)) bad++;
            if (model[k]) live--;
            model[k] = 0;
        } else {
            uint32_t v = (uint32_t)op + 1;
            if (strmap_put(m, buf, len, v, &rl) != 0) bad++;
            if (!model[k]) live++;
            model[k] = v;
        }
        if (op % 1000 == 0) retire_run(&rl); /* no readers here */
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(strmap_count(m), live);
    uint64_t expect_sum = 0;
    for (uint32_t k = 0; k < N; k++) {
        uint32_t v = 0;
        size_t len = key_of(buf, k);
        int rc = strmap_get(m, buf, len, &v);
        int rr = strmap_read(m, buf, len, &v);
        if (model[k]) {
            if (rc != 0 || rr != 0 || v != model[k]) bad++;
            expect_sum += model[k];
        } else if (rc != -1 || rr != -1) {
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    uint64_t acc[3] = {0, 0, 0};
    CHECK_EQ_INT(strmap_foreach(m, sum_cb, acc), 0);
    CHECK_EQ_INT(acc[0], live);
    CHECK(acc[1] == expect_sum);
    CHECK_EQ_INT(acc[2], 0);
    retire_run(&rl);
    retire_free(&rl);
    strmap_free(m);
    free(model);
}

/* Churn with a small live set: tombstones must be cleaned up (same-size
 * rebuilds), so memory stays bounded, and rebuilds go to the retire list. */
static void test_churn(void) {
    strmap_t *m = strmap_new(0);
    retire_list_t rl = {0};
    char buf[32];
    size_t pushed = 0, peak = 0;
    int bad = 0;
    for (uint32_t i = 0; i < 75000 * LOOKUP_ROUNDS; i++) {
        if (strmap_put(m, buf, key_of(buf, i), i, &rl) != 0) bad++;
        if (i >= 100) strmap_del(m, buf, key_of(buf, i - 100), &rl);
        if (rl.n) {
            pushed += rl.n;
            retire_run(&rl);
        }
        size_t mem = strmap_memory(m);
        if (mem > peak) peak = mem;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(strmap_count(m), 100);
    CHECK(pushed > 100);        /* hundreds of clean-ups went through rl */
    CHECK(peak < 64 * 1024);    /* 100 live keys never need more */
    uint32_t v;
    uint32_t last = 75000 * LOOKUP_ROUNDS - 1;
    CHECK(strmap_get(m, buf, key_of(buf, last), &v) == 0 && v == last);
    CHECK(strmap_get(m, buf, key_of(buf, last - 100), &v) == -1);
    CHECK(strmap_get(m, buf, key_of(buf, last - 99), &v) == 0 && v == last - 99);
    retire_free(&rl);
    strmap_free(m);
}

/* -- Concurrent readers ---------------------------------------------------
 * The writer inserts fresh keys (short ones inline, long ones in the
 * arena), overwrites the previous generation and deletes older ones, so the
 * table grows, cleans up and retires. Readers mostly look up the keys the
 * writer has just inserted (the high-water mark is published relaxed, so
 * it adds no synchronisation that could hide a race from TSan). Values
 * encode the key number: a torn or foreign value is caught. Retired tables
 * are freed after the readers stop. */
enum { CK = 12000, CGENS = 6 };
static strmap_t *cmap;
static atomic_int cstop, cstarted;
static _Atomic uint32_t chwm;
static atomic_long cbad, creads, cfound;

static size_t ckey(char *buf, uint32_t k) {
    return (size_t)sprintf(buf, k % 3 ? "SG-%07u" : "LONG-SKU-ID-%07u", k);
}

static void *reader_main(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    char buf[32];
    long reads = 0, found = 0, bad = 0;
    atomic_fetch_add(&cstarted, 1);
    while (!atomic_load(&cstop)) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(seed >> 33);
        uint32_t h = atomic_load_explicit(&chwm, memory_order_relaxed);
        uint32_t k = r % 4 ? h - (h < 32 ? h : (r >> 2) % 32) : (r >> 2) % (h + 1);
        uint32_t v;
        if (strmap_read(cmap, buf, ckey(buf, k), &v) == 0) {
            found++;
            if (v >> 4 != k) bad++;
        }
        reads++;
    }
    atomic_fetch_add(&cbad, bad);
    atomic_fetch_add(&creads, reads);
    atomic_fetch_add(&cfound, found);
    return NULL;
}

static void test_concurrent(void) {
    cmap = strmap_new(0);
    retire_list_t rl = {0};
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&th[i], NULL, reader_main, (void *)(i + 1));
    while (atomic_load(&cstarted) < 2) sched_yield();
    char buf[32];
    for (uint32_t gen = 0; gen < CGENS; gen++) {
        for (uint32_t k = gen * CK; k < (gen + 1) * CK; k++) {
            strmap_put(cmap, buf, ckey(buf, k), k << 4, &rl);
            atomic_store_explicit(&chwm, k, memory_order_relaxed);
            if (gen >= 1) { /* overwrite the previous generation */
                uint32_t o = k - CK;
                strmap_put(cmap, buf, ckey(buf, o), o << 4 | gen, &rl);
            }
            if (gen >= 2) strmap_del(cmap, buf, ckey(buf, k - 2 * CK), &rl);
        }
    }
    atomic_store(&cstop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    size_t retired = rl.n;
    retire_run(&rl);
    retire_free(&rl);
    printf("concurrent: %ld reads, %ld hits, %zu retired objects\n", atomic_load(&creads),
           atomic_load(&cfound), retired);
    CHECK_EQ_INT(atomic_load(&cbad), 0);
    CHECK(atomic_load(&cfound) > 0);
    CHECK(retired > 0);
    CHECK_EQ_INT(strmap_count(cmap), 2 * CK);
    uint32_t v;
    CHECK(strmap_get(cmap, buf, ckey(buf, CK * CGENS - 1), &v) == 0 && v == (CK * CGENS - 1) << 4);
    CHECK(strmap_get(cmap, buf, ckey(buf, CK * (CGENS - 1) - 3), &v) == 0 &&
          v == ((CK * (CGENS - 1) - 3) << 4 | (CGENS - 1)));
    CHECK_EQ_INT(strmap_get(cmap, buf, ckey(buf, CK * (CGENS - 2) - 1), &v), -1);
    strmap_free(cmap);
}

/* -- 1M SKU ids: memory and speed ---------------------------------------- */
static void test_million(void) {
    enum { N = 1000000, LOOKUPS = LOOKUP_ROUNDS * N };
    char *keys = xmalloc((size_t)N * 16);
    uint8_t *lens = xmalloc(N);
    size_t key_bytes = 0;
    for (uint32_t i = 0; i < N; i++) {
        lens[i] = (uint8_t)key_of(keys + (size_t)i * 16, i * 7 + 3);
        key_bytes += lens[i];
    }
    strmap_t *m = strmap_new(0); /* grows from empty, like the live store */
    uint64_t t0 = mono_ns();
    for (uint32_t i = 0; i < N; i++) strmap_put(m, keys + (size_t)i * 16, lens[i], i, NULL);
    uint64_t t1 = mono_ns();
    CHECK_EQ_INT(strmap_count(m), N);
    double per_key = (double)(strmap_memory(m) - key_bytes) / N;
    printf("1M keys: insert %.0f ns/key, %.1f bytes/key overhead beyond the key bytes\n",
           (double)(t1 - t0) / N, per_key);
    CHECK(per_key <= 40.0);

    uint32_t *order = xmalloc(sizeof(uint32_t) * LOOKUPS);
    uint64_t seed = 7;
    for (uint32_t i = 0; i < LOOKUPS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        order[i] = (uint32_t)(seed >> 33) % N;
    }
    uint64_t sum = 0, hits = 0;
    t0 = mono_ns();
    for (uint32_t i = 0; i < LOOKUPS; i++) {
        uint32_t k = order[i], v;
        if (strmap_read(m, keys + (size_t)k * 16, lens[k], &v) == 0) {
            hits++;
            sum += v;
        }
    }
    t1 = mono_ns();
    CHECK_EQ_INT(hits, LOOKUPS);
    uint64_t expect = 0;
    for (uint32_t i = 0; i < LOOKUPS; i++) expect += order[i];
    CHECK(sum == expect);
    printf("1M keys: strmap_read %.1fM lookups/s (each key fetched from a random spot of a "
           "16 MB array: one more cache miss; one thread)\n",
           LOOKUPS / ((double)(t1 - t0) / 1e9) / 1e6);

    /* the same keys in input order (the key bytes stream through the cache
     * like a parsed batch would; the map is still hit at random places) */
    t0 = mono_ns();
    hits = 0;
    for (uint32_t r = 0; r < LOOKUPS / N; r++)
        for (uint32_t k = 0; k < N; k++) {
            uint32_t v;
            hits += strmap_read(m, keys + (size_t)k * 16, lens[k], &v) == 0;
        }
    t1 = mono_ns();
    CHECK_EQ_INT(hits, LOOKUPS / N * N);
    printf("1M keys: strmap_read %.1fM lookups/s (keys streamed like a parsed batch, map "
           "hit at random; one thread)\n",
           (double)(LOOKUPS / N * N) / ((double)(t1 - t0) / 1e9) / 1e6);

    char miss[32];
    t0 = mono_ns();
    hits = 0;
    for (uint32_t i = 0; i < LOOKUPS / 4; i++) {
        uint32_t v;
        size_t len = (size_t)sprintf(miss, "MY-%07u", order[i]);
        hits += strmap_read(m, miss, len, &v) == 0;
    }
    t1 = mono_ns();
    CHECK_EQ_INT(hits, 0);
    printf("1M keys: strmap_read %.1fM misses/s (incl. sprintf)\n",
           LOOKUPS / 4 / ((double)(t1 - t0) / 1e9) / 1e6);
    free(order);
    free(keys);
    free(lens);
    strmap_free(m);
}

int main(void) {
    test_basic();
    test_model();
    test_churn();
    test_concurrent();
    test_million();
    return check_done();
}
