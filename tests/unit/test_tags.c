/* test_tags.c - tags: interning, live membership, copy-on-publish views
 * (sharing of unchanged bitmaps, old views stay intact until their retire
 * list runs, O(changed) publish), resolver helpers with tagexpr, and a
 * writer + 2 readers run under a small epoch scheme (run it under TSan). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "epoch.h"
#include "strmap.h"
#include "tagexpr.h"
#include "tags.h"
#include "util.h"

static uint32_t intern(tags_t *t, const char *name, retire_list_t *rl) {
    return tags_intern(t, name, strlen(name), rl);
}

static void test_intern_membership(void) {
    tags_t *t = tags_new();
    retire_list_t rl = {0};
    CHECK_EQ_INT(tags_count(t), 0);
    uint32_t a = intern(t, "market:SG", &rl), b = intern(t, "lazmall", &rl);
    CHECK_EQ_INT(a, 0);
    CHECK_EQ_INT(b, 1);
    CHECK_EQ_INT(intern(t, "market:SG", &rl), 0); /* idempotent */
    CHECK_EQ_INT(tags_count(t), 2);
    uint32_t id = 99;
    CHECK(tags_find(t, "lazmall", 7, &id) == 0 && id == 1);
    CHECK_EQ_INT(tags_find(t, "nope", 4, &id), -1);
    CHECK(strcmp(tags_name(t, 0), "market:SG") == 0);
    CHECK(tags_name(t, 2) == NULL);
    CHECK_EQ_INT(tags_intern(t, "", 0, &rl), TAGS_NONE);
    char big[TAGS_MAX_NAME + 1];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(tags_intern(t, big, sizeof big, &rl), TAGS_NONE);
    CHECK_EQ_INT(tags_intern(t, big, TAGS_MAX_NAME, &rl), 2);
    /* ids stay dense through the name map's resizes */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "brand:%d", i);
        if (intern(t, name, &rl) != (uint32_t)(3 + i)) CHECK(0);
    }
    CHECK_EQ_INT(tags_count(t), 5003);
    CHECK(strcmp(tags_name(t, 5002), "brand:4999") == 0);
    retire_run(&rl);

    CHECK(tags_bitmap(t, a) == NULL);
    CHECK(!tags_has(t, a, 5));
    tags_add(t, a, 5);
    tags_add(t, a, 5);
    tags_add(t, a, 70000);
    tags_add(t, b, 5);
    CHECK(tags_has(t, a, 5) && tags_has(t, a, 70000) && tags_has(t, b, 5));
    CHECK(!tags_has(t, b, 70000));
    CHECK_EQ_INT(roaring_bitmap_get_cardinality(tags_bitmap(t, a)), 2);
    tags_remove(t, a, 5);
    tags_remove(t, a, 6); /* not a member */
    CHECK(!tags_has(t, a, 5) && tags_has(t, a, 70000));
    tags_add(t, 999999, 1); /* unknown ids are ignored */
    tags_remove(t, 999999, 1);
    CHECK(!tags_has(t, 999999, 1));
    CHECK(tags_bitmap(t, 999999) == NULL);
    CHECK(tags_memory(t) > 5000 * 8);
    retire_free(&rl);
    tags_free(t);
    tags_free(NULL);
}

static void test_publish(void) {
    tags_t *t = tags_new();
    retire_list_t rl = {0};
    char name[32];
    for (int i = 0; i < 600; i++) { /* three chunks */
        snprintf(name, sizeof name, "t%d", i);
        intern(t, name, NULL);
        tags_add(t, (uint32_t)i, (uint32_t)i);
        tags_add(t, (uint32_t)i, 1000);
    }
    intern(t, "empty", NULL);
    CHECK(tags_view(t) == NULL);
    tagview_t *v1 = tags_publish(t, &rl);
    CHECK(v1 != NULL && tags_view(t) == v1);
    CHECK_EQ_INT(rl.n, 0); /* first view replaces nothing */
    CHECK_EQ_INT(tagview_count(v1), 601);
    uint32_t id = 0;
    CHECK(tagview_find(v1, "t300", 4, &id) == 0 && id == 300);
    CHECK(strcmp(tagview_name(v1, 300), "t300") == 0);
    CHECK(tagview_bitmap(v1, 600) == NULL); /* empty tag */
    CHECK(tagview_bitmap(v1, 601) == NULL && tagview_name(v1, 601) == NULL);
    CHECK(tagview_bitmap(v1, 5) != tags_bitmap(t, 5)); /* a copy, not the live one */
    CHECK(roaring_bitmap_equals(tagview_bitmap(v1, 5), tags_bitmap(t, 5)));

    /* nothing changed: the same view, nothing retired */
    CHECK(tags_publish(t, &rl) == v1);
    CHECK_EQ_INT(rl.n, 0);

    /* change tag 5 only */
    tags_add(t, 5, 77);
    tagview_t *v2 = tags_publish(t, &rl);
    CHECK(v2 != v1);
    CHECK(tagview_bitmap(v2, 300) == tagview_bitmap(v1, 300)); /* other chunk shared */
    CHECK(tagview_bitmap(v2, 6) == tagview_bitmap(v1, 6));     /* same chunk, copy shared */
    CHECK(tagview_bitmap(v2, 5) != tagview_bitmap(v1, 5));
    CHECK(roaring_bitmap_contains(tagview_bitmap(v2, 5), 77));
    /* the old view still reads the old content until its retire list runs */
    CHECK(!roaring_bitmap_contains(tagview_bitmap(v1, 5), 77));
    CHECK_EQ_INT(roaring_bitmap_get_cardinality(tagview_bitmap(v1, 5)), 2);
    CHECK_EQ_INT(rl.n, 3); /* old chunk 0, old copy of tag 5, old view */
    retire_run(&rl);
    CHECK(roaring_bitmap_contains(tagview_bitmap(v2, 5), 77));
    CHECK(roaring_bitmap_contains(tagview_bitmap(v2, 300), 300));

    /* a tag emptied by removes reads as NULL; the live one stays */
    tags_remove(t, 7, 7);
    tags_remove(t, 7, 1000);
    tagview_t *v3 = tags_publish(t, &rl);
    CHECK(tagview_bitmap(v3, 7) == NULL && tagview_bitmap(v2, 7) != NULL);
    retire_run(&rl);

    /* new tags: invisible to older views, visible to the next one */
    uint32_t nid = intern(t, "new:tag", &rl);
    CHECK_EQ_INT(tagview_find(v3, "new:tag", 7, &id), -1);
    CHECK(tagview_bitmap(v3, nid) == NULL);
    tags_add(t, nid, 42);
    tagview_t *v4 = tags_publish(t, &rl);
    CHECK(tagview_find(v4, "new:tag", 7, &id) == 0 && id == nid);
    CHECK(tagview_bitmap(v4, nid) && roaring_bitmap_contains(tagview_bitmap(v4, nid), 42));
    CHECK(tagview_bitmap(v4, 0) == tagview_bitmap(v3, 0));

    /* readers resolve through the view, the writer through the live state */
    tags_add(t, 1, 5000);
    const char *text = "(t1 | t2) & !t3 & new:tag | t1 & !t2";
    tagexpr_t *e = tagexpr_parse(text, strlen(text), NULL, 0);
    CHECK(e != NULL);
    roaring_bitmap_t *u = roaring_bitmap_from_range(0, 10000, 1);
    roaring_bitmap_t *rv = tagexpr_eval_bitmap(e, tagview_resolve, v4, u);
    roaring_bitmap_t *rt = tagexpr_eval_bitmap(e, tags_resolve, t, u);
    CHECK(roaring_bitmap_contains(rt, 5000) && !roaring_bitmap_contains(rv, 5000));
    CHECK(roaring_bitmap_contains(rv, 1) && !roaring_bitmap_contains(rv, 2));
    tagexpr_bind(e, tags_bind_id, t);
    CHECK(tagexpr_eval_one_ids(e, tags_has_id, t, 5000));
    CHECK(tagexpr_eval_one_ids(e, tags_has_id, t, 1));
    CHECK(!tagexpr_eval_one_ids(e, tags_has_id, t, 2));
    roaring_bitmap_free(rv);
    roaring_bitmap_free(rt);
    roaring_bitmap_free(u);
    tagexpr_free(e);
    retire_run(&rl);

    /* interning with rl = NULL: the name map's replaced tables wait for the
     * next publish's retire list (v4 readers may still be inside them) */
    tagview_t *v4b = tags_publish(t, &rl); /* v4 is gone once rl has run */
    retire_run(&rl);
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "late:%d", i);
        intern(t, name, NULL);
    }
    CHECK(tagview_find(v4b, "t300", 4, &id) == 0 && id == 300);
    CHECK_EQ_INT(tagview_find(v4b, "late:0", 6, &id), -1);
    CHECK_EQ_INT(rl.n, 0);
    tagview_t *v5 = tags_publish(t, &rl);
    CHECK(tagview_find(v5, "late:2999", 9, &id) == 0);
    CHECK(rl.n >= 3); /* old view, its last chunk, and the name map's old table(s) */
    retire_run(&rl);
    retire_free(&rl);
    tags_free(t); /* frees v5 and what it references */
}

/* Publishing after one change among 20000 tags touches one chunk. */
static void test_publish_cost(void) {
    tags_t *t = tags_new();
    retire_list_t rl = {0};
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "brand:%d", i);
        uint32_t id = intern(t, name, &rl);
        for (uint32_t s = 0; s < 50; s++) tags_add(t, id, s * 977 + (uint32_t)i);
    }
    uint64_t t0 = mono_ns();
    tags_publish(t, &rl);
    uint64_t t1 = mono_ns();
    retire_run(&rl);
    tags_add(t, 12345, 1);
    uint64_t t2 = mono_ns();
    tags_publish(t, &rl);
    uint64_t t3 = mono_ns();
    CHECK_EQ_INT(rl.n, 3);
    printf("publish, 20000 tags: first %.0f us, after one change %.1f us\n", (t1 - t0) / 1e3,
           (t3 - t2) / 1e3);
    retire_run(&rl);
    retire_free(&rl);
    tags_free(t);
}

/* -- Writer + readers under a minimal epoch scheme ------------------------
 * The writer publishes a tagview per batch into `cur`, retires what the
 * publish (and the SKU map) dropped with the epoch of that publish, and
 * runs a retire list once every reader is idle or announced a later epoch.
 * Readers check invariants the writer keeps at every publish. */
enum { NREADERS = 2, BATCHES = 300, NSKU = 4000 };

typedef struct pending {
    uint64_t epoch;
    retire_list_t rl;
} pending_t;

static _Atomic(tagview_t *) cur;
static _Atomic uint64_t global_epoch = 1;
static _Atomic uint64_t announce[NREADERS]; /* 0 = idle */
static atomic_int stop;
static atomic_long bad, views_read;
static strmap_t *skus;

static void *reader_main(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t seed = (uint64_t)me * 31 + 7;
    long nbad = 0, n = 0;
    char name[32];
    while (!atomic_load(&stop)) {
        atomic_store(&announce[me], atomic_load(&global_epoch));
        tagview_t *v = atomic_load(&cur);
        if (v) {
            n++;
            uint32_t block, gen;
            const roaring_bitmap_t *bm;
            if (tagview_find(v, "block", 5, &block) != 0 || tagview_find(v, "gen", 3, &gen) != 0) {
                nbad++;
            } else {
                bm = tagview_bitmap(v, block);
                uint32_t lo = bm ? roaring_bitmap_minimum(bm) : 1;
                if (!bm || roaring_bitmap_get_cardinality(bm) != 100 || lo % 100 ||
                    roaring_bitmap_maximum(bm) != lo + 99)
                    nbad++;
                bm = tagview_bitmap(v, gen);
                uint32_t g = bm ? roaring_bitmap_minimum(bm) : 0;
                if (!bm || roaring_bitmap_get_cardinality(bm) != 1) nbad++;
                int len = snprintf(name, sizeof name, "new:%u", g);
                uint32_t nid;
                if (tagview_find(v, name, (size_t)len, &nid) != 0 ||
                    strcmp(tagview_name(v, nid), name) != 0 ||
                    !roaring_bitmap_contains(tagview_bitmap(v, nid), g))
                    nbad++;
            }
            for (int i = 0; i < 20; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                uint32_t k = (uint32_t)(seed >> 33) % NSKU, val;
                int kl = snprintf(name, sizeof name, "SKU-%u", k);
                if (strmap_read(skus, name, (size_t)kl, &val) == 0 && val != k) nbad++;
            }
        }
        atomic_store(&announce[me], 0);
    }
    atomic_fetch_add(&bad, nbad);
    atomic_fetch_add(&views_read, n);
    return NULL;
}

static void try_reclaim(pending_t *q, int *nq, bool all) {
    uint64_t min = UINT64_MAX;
    for (int r = 0; r < NREADERS; r++) {
        uint64_t a = atomic_load(&announce[r]);
        if (a && a < min) min = a;
    }
    int keep = 0;
    for (int i = 0; i < *nq; i++) {
        if (all || q[i].epoch < min) {
            retire_run(&q[i].rl);
            retire_free(&q[i].rl);
        } else {
            q[keep++] = q[i];
        }
    }
    *nq = keep;
}

static void test_concurrent(void) {
    tags_t *t = tags_new();
    skus = strmap_new(0);
    retire_list_t rl = {0};
    pending_t q[BATCHES + 1];
    int nq = 0;
    char name[32];
    uint32_t block = intern(t, "block", NULL), gen = intern(t, "gen", NULL);
    pthread_t th[NREADERS];
    for (intptr_t i = 0; i < NREADERS; i++) pthread_create(&th[i], NULL, reader_main, (void *)i);
    size_t max_pending = 0;
    for (uint32_t b = 0; b < BATCHES; b++) {
        /* the SKU map churns: puts, deletes, re-puts, resizes */
        for (uint32_t i = 0; i < 200; i++) {
            uint32_t k = (b * 200 + i) % NSKU;
            int len = snprintf(name, sizeof name, "SKU-%u", k);
            if ((b + i) % 3 == 0) strmap_del(skus, name, (size_t)len, &rl);
            else strmap_put(skus, name, (size_t)len, k, &rl);
        }
        /* tag invariants, kept at each publish */
        for (uint32_t s = 0; s < 100; s++) {
            if (b) tags_remove(t, block, (b - 1) * 100 + s);
            tags_add(t, block, b * 100 + s);
        }
        if (b) tags_remove(t, gen, b - 1);
        tags_add(t, gen, b);
        int nl = snprintf(name, sizeof name, "new:%u", b);
        uint32_t nid = tags_intern(t, name, (size_t)nl, &rl);
        tags_add(t, nid, b);
        for (uint32_t i = 0; i < 20; i++) { /* grows the name map; rl = NULL defers */
            nl = snprintf(name, sizeof name, "extra:%u:%u", b, i);
            tags_intern(t, name, (size_t)nl, NULL);
        }
        tagview_t *v = tags_publish(t, &rl);
        atomic_store(&cur, v);
        q[nq].epoch = atomic_load(&global_epoch);
        q[nq].rl = rl;
        nq++;
        rl = (retire_list_t){0};
        atomic_fetch_add(&global_epoch, 1);
        try_reclaim(q, &nq, false);
        if ((size_t)nq > max_pending) max_pending = (size_t)nq;
        if (b % 16 == 0) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL); /* let the readers interleave */
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NREADERS; i++) pthread_join(th[i], NULL);
    try_reclaim(q, &nq, true);
    printf("concurrent: %ld views read by %d readers over %d publishes, <= %zu lists pending\n",
           atomic_load(&views_read), NREADERS, BATCHES, max_pending);
    CHECK_EQ_INT(atomic_load(&bad), 0);
    CHECK(atomic_load(&views_read) > 0);
    CHECK_EQ_INT(tags_count(t), BATCHES * 21 + 2);
    retire_free(&rl);
    tags_free(t);
    strmap_free(skus);
}

int main(void) {
    test_intern_membership();
    test_publish();
    test_publish_cost();
    test_concurrent();
    return check_done();
}
