/* fuzz_tagexpr.c - libFuzzer target for the tag expression parser.
 *
 * For any bytes: parsing either fails with an "at column N: ..." message or
 * succeeds; then the canonical string must re-parse to the same canonical
 * string (a fixed point) with the same tags, and on a tiny fixed universe
 * (tag members derived from a hash of the tag name; some tags unknown) the
 * bitmap evaluation, the count, the one-SKU evaluation by name and by bound
 * id must all agree. Any disagreement aborts.
 */
// fuzz-sources: src/tagexpr.c src/util.c
// fuzz-libs: -lroaring
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tagexpr.h"
#include "util.h"

#define USKUS 80 /* SKU ids 0..79; the universe leaves some out */

typedef struct world {
    const char **names;
    roaring_bitmap_t **bm; /* NULL = unknown tag */
    size_t n;
} world_t;

static int find(const world_t *w, const char *tag, size_t len) {
    for (size_t i = 0; i < w->n; i++)
        if (strlen(w->names[i]) == len && memcmp(w->names[i], tag, len) == 0) return (int)i;
    return -1;
}

static const roaring_bitmap_t *resolve(void *ctx, const char *tag, size_t len) {
    world_t *w = ctx;
    int i = find(w, tag, len);
    if (i < 0) abort(); /* every tag of the expression was prepared */
    return w->bm[i];
}

static bool has(void *ctx, const char *tag, size_t len, uint32_t sku) {
    const roaring_bitmap_t *bm = resolve(ctx, tag, len);
    return bm && roaring_bitmap_contains(bm, sku);
}

static int64_t bind(void *ctx, const char *tag, size_t len) {
    world_t *w = ctx;
    int i = find(w, tag, len);
    return i >= 0 && w->bm[i] ? i : -1;
}

static bool has_id(void *ctx, int64_t id, uint32_t sku) {
    world_t *w = ctx;
    if (id < 0 || (size_t)id >= w->n || !w->bm[id]) abort(); /* -1 is never passed */
    return roaring_bitmap_contains(w->bm[id], sku);
}

static bool in_universe(uint32_t sku) { return sku % 7 != 3; }

static void check_eval(tagexpr_t *e) {
    world_t w = {0};
    w.n = tagexpr_tags(e, &w.names);
    w.bm = calloc(w.n ? w.n : 1, sizeof *w.bm);
    roaring_bitmap_t *u = roaring_bitmap_create();
    for (uint32_t s = 0; s < USKUS; s++)
        if (in_universe(s)) roaring_bitmap_add(u, s);
    for (size_t i = 0; i < w.n; i++) {
        uint64_t h = hash_bytes(w.names[i], strlen(w.names[i]));
        if ((h & 7) == 0) continue; /* unknown tag */
        w.bm[i] = roaring_bitmap_create();
        for (uint32_t s = 0; s < USKUS; s++)
            if (in_universe(s) && (h >> (s % 61)) & 1) roaring_bitmap_add(w.bm[i], s);
    }
    tagexpr_bind(e, bind, &w);
    roaring_bitmap_t *bm = tagexpr_eval_bitmap(e, resolve, &w, u);
    if (!roaring_bitmap_is_subset(bm, u)) abort();
    if (tagexpr_count(e, resolve, &w, u) != roaring_bitmap_get_cardinality(bm)) abort();
    for (uint32_t s = 0; s < USKUS; s++) {
        if (!in_universe(s)) continue;
        bool one = tagexpr_eval_one(e, has, &w, s);
        if (one != roaring_bitmap_contains(bm, s)) abort();
        if (tagexpr_eval_one_ids(e, has_id, &w, s) != one) abort();
    }
    roaring_bitmap_free(bm);
    for (size_t i = 0; i < w.n; i++)
        if (w.bm[i]) roaring_bitmap_free(w.bm[i]); /* not NULL-safe in 0.2.66 */
    free(w.bm);
    roaring_bitmap_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    tagexpr_t *e = tagexpr_parse((const char *)data, size, err, sizeof err);
    if (!e) {
        if (strncmp(err, "at column ", 10) != 0) abort();
        return 0;
    }
    char *s = tagexpr_to_string(e);
    tagexpr_t *e2 = tagexpr_parse(s, strlen(s), err, sizeof err);
    if (!e2) {
        fprintf(stderr, "canonical form does not parse: '%s': %s\n", s, err);
        abort();
    }
    char *s2 = tagexpr_to_string(e2);
    if (strcmp(s, s2) != 0) {
        fprintf(stderr, "canonical form not stable: '%s' -> '%s'\n", s, s2);
        abort();
    }
    const char **n1, **n2;
    size_t k1 = tagexpr_tags(e, &n1), k2 = tagexpr_tags(e2, &n2);
    if (k1 != k2) abort();
    for (size_t i = 0; i < k1; i++)
        if (strcmp(n1[i], n2[i]) != 0) abort();
    char *root = tagexpr_node_to_string(tagexpr_root(e));
    if (strcmp(root, s) != 0) abort();
    check_eval(e);
    free(root);
    free(s);
    free(s2);
    tagexpr_free(e2);
    tagexpr_free(e);
    return 0;
}
