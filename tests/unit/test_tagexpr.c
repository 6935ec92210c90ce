/* test_tagexpr.c - tag expressions: precedence, parentheses, canonical
 * printing, errors with columns, limits, "*", counts, and a property test
 * (bitmap evaluation == one-by-one evaluation on random data); prints the
 * AND / AND-NOT timings over two 100k-member bitmaps of a 1M universe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tagexpr.h"
#include "util.h"

/* -- A tiny tag universe for the resolver/has/bind callbacks -------------- */

#define MAXT 8
typedef struct world {
    const char *name[MAXT];
    roaring_bitmap_t *bm[MAXT];
    int n;
    int resolves;
} world_t;

static int world_find(const world_t *w, const char *tag, size_t len) {
    for (int i = 0; i < w->n; i++)
        if (strlen(w->name[i]) == len && memcmp(w->name[i], tag, len) == 0) return i;
    return -1;
}

static const roaring_bitmap_t *w_resolve(void *ctx, const char *tag, size_t len) {
    world_t *w = ctx;
    w->resolves++;
    int i = world_find(w, tag, len);
    return i < 0 ? NULL : w->bm[i];
}

static bool w_has(void *ctx, const char *tag, size_t len, uint32_t sku) {
    int i = world_find(ctx, tag, len);
    return i >= 0 && roaring_bitmap_contains(((world_t *)ctx)->bm[i], sku);
}

static int64_t w_bind(void *ctx, const char *tag, size_t len) { return world_find(ctx, tag, len); }

static bool w_has_id(void *ctx, int64_t id, uint32_t sku) {
    return roaring_bitmap_contains(((world_t *)ctx)->bm[id], sku);
}

static void world_free(world_t *w) {
    for (int i = 0; i < w->n; i++) roaring_bitmap_free(w->bm[i]);
    w->n = 0;
}

/* -- Parsing and printing ------------------------------------------------ */

static char *canon(const char *text) {
    char err[256];
    tagexpr_t *e = tagexpr_parse(text, strlen(text), err, sizeof err);
    if (!e) {
        fprintf(stderr, "parse error for '%s': %s\n", text, err);
        return NULL;
    }
    char *s = tagexpr_to_string(e);
    tagexpr_free(e);
    return s;
}

static void check_canon(const char *text, const char *want) {
    char *got = canon(text);
    CHECK(got && strcmp(got, want) == 0);
    if (got && strcmp(got, want) != 0) fprintf(stderr, "  '%s' -> '%s', want '%s'\n", text, got, want);
    /* canonical text is a fixed point */
    char *again = got ? canon(got) : NULL;
    CHECK(again && got && strcmp(again, got) == 0);
    free(got);
    free(again);
}

static void test_precedence(void) {
    /* ! binds tighter than &, & tighter than | */
    tagexpr_t *e = tagexpr_parse("a | b & !c", 10, NULL, 0);
    CHECK(e != NULL);
    const tagexpr_node_t *r = tagexpr_root(e);
    CHECK_EQ_INT(r->kind, TAGEXPR_OR);
    CHECK_EQ_INT(r->nchild, 2);
    CHECK_EQ_INT(r->child[0]->kind, TAGEXPR_TAG);
    CHECK(strcmp(r->child[0]->tag, "a") == 0);
    CHECK_EQ_INT(r->child[0]->column, 1);
    const tagexpr_node_t *and = r->child[1];
    CHECK_EQ_INT(and->kind, TAGEXPR_AND);
    CHECK_EQ_INT(and->column, 5);
    CHECK_EQ_INT(and->nchild, 2);
    CHECK(strcmp(and->child[0]->tag, "b") == 0);
    CHECK_EQ_INT(and->child[1]->kind, TAGEXPR_NOT);
    CHECK_EQ_INT(and->child[1]->column, 9);
    CHECK(strcmp(and->child[1]->child[0]->tag, "c") == 0);
    CHECK_EQ_INT(and->child[1]->child[0]->id, -1);
    char *clause = tagexpr_node_to_string(and);
    CHECK(strcmp(clause, "b & !c") == 0);
    free(clause);
    tagexpr_free(e);

    char *x = canon("a | b & !c"), *y = canon("a | (b & (!c))"), *z = canon("(a | b) & !c");
    CHECK(x && y && z && strcmp(x, y) == 0 && strcmp(x, z) != 0);
    free(x);
    free(y);
    free(z);

    check_canon("a | b & !c", "a | b & !c");
    check_canon("a | (b & (!c))", "a | b & !c");
    check_canon("(a | b) & c", "(a | b) & c");
    check_canon("((((a))))", "a");
    check_canon("(a & b) & c", "a & b & c");
    check_canon("a & (b & c)", "a & b & c");
    check_canon("(a | b) | (c | d)", "a | b | c | d");
    check_canon("a&(b|c)&d", "a & (b | c) & d");
    check_canon("!(a & b)", "!(a & b)");
    check_canon("!(a | b) & c", "!(a | b) & c");
    check_canon("!!a", "!!a");
    check_canon("!(!a)", "!!a");
    check_canon("a | !(b | c & d)", "a | !(b | c & d)");
    check_canon(" \tmarket:SG&lazmall &!blocked\n", "market:SG & lazmall & !blocked");
    check_canon("category:Home/Kitchen_2.0+x-y", "category:Home/Kitchen_2.0+x-y");
    check_canon("*", "*");
    check_canon("* & !blocked", "* & !blocked");
    check_canon("(a | *) & !(*)", "(a | *) & !*");

    /* flattening: one AND with three children */
    e = tagexpr_parse("(a & b) & c", 11, NULL, 0);
    CHECK(e && tagexpr_root(e)->kind == TAGEXPR_AND && tagexpr_root(e)->nchild == 3);
    tagexpr_free(e);

    /* distinct tags in first-appearance order, "*" excluded */
    e = tagexpr_parse("a & (b | a) & !c & b & *", 24, NULL, 0);
    const char **names = NULL;
    CHECK(e != NULL);
    size_t n = tagexpr_tags(e, &names);
    CHECK_EQ_INT(n, 3);
    CHECK(n == 3 && !strcmp(names[0], "a") && !strcmp(names[1], "b") && !strcmp(names[2], "c"));
    tagexpr_free(e);
    tagexpr_free(NULL);

    CHECK(tagexpr_valid_tag("market:SG", 9));
    CHECK(!tagexpr_valid_tag("market SG", 9));
    CHECK(!tagexpr_valid_tag("", 0));
    CHECK(!tagexpr_valid_tag("*", 1));
}

static void check_err(const char *text, size_t len, const char *want) {
    char err[256];
    tagexpr_t *e = tagexpr_parse(text, len, err, sizeof err);
    CHECK(e == NULL);
    CHECK(strcmp(err, want) == 0);
    if (strcmp(err, want) != 0) fprintf(stderr, "  got:  %s\n  want: %s\n", err, want);
    tagexpr_free(e);
}

static void test_errors(void) {
    check_err("", 0, "at column 1: expected a tag, \"(\" or \"!\" but found end of expression");
    check_err("   ", 3, "at column 4: expected a tag, \"(\" or \"!\" but found end of expression");
    check_err("market:SG & & lazmall", 21,
              "at column 13: expected a tag, \"(\" or \"!\" but found \"&\"");
    check_err("a &", 3, "at column 4: expected a tag, \"(\" or \"!\" but found end of expression");
    check_err("a | | b", 7, "at column 5: expected a tag, \"(\" or \"!\" but found \"|\"");
    check_err("(a | b", 6, "at column 7: expected \"&\", \"|\" or \")\" but found end of expression");
    check_err("(a b)", 5, "at column 4: expected \"&\", \"|\" or \")\" but found \"b\"");
    check_err("a b", 3, "at column 3: expected \"&\", \"|\" or end of expression but found \"b\"");
    check_err("a)", 2, "at column 2: expected \"&\", \"|\" or end of expression but found \")\"");
    check_err("()", 2, "at column 2: expected a tag, \"(\" or \"!\" but found \")\"");
    check_err("a*", 2, "at column 2: expected \"&\", \"|\" or end of expression but found \"*\"");
    check_err("a & $x", 6, "at column 5: expected a tag, \"(\" or \"!\" but found \"$\"");
    check_err("a & \"x\"", 7, "at column 5: expected a tag, \"(\" or \"!\" but found \"\\\"\"");
    check_err("a &\x01", 4, "at column 4: expected a tag, \"(\" or \"!\" but found byte 0x01");
    check_err("a & b\0c", 7, "at column 6: expected \"&\", \"|\" or end of expression but found byte 0x00");
    check_err("!", 1, "at column 2: expected a tag, \"(\" or \"!\" but found end of expression");

    /* a message truncated to a small buffer stays NUL-terminated; NULL err ok */
    char small[8];
    CHECK(tagexpr_parse("&", 1, small, sizeof small) == NULL && strlen(small) == 7);
    CHECK(tagexpr_parse("&", 1, NULL, 0) == NULL);

    /* depth: 64 levels of "(" or "!" parse, 65 do not */
    char buf[8192];
    for (int kind = 0; kind < 2; kind++) {
        for (int depth = 64; depth <= 65; depth++) {
            size_t n = 0;
            for (int i = 0; i < depth; i++) buf[n++] = kind ? '!' : '(';
            buf[n++] = 'x';
            if (!kind)
                for (int i = 0; i < depth; i++) buf[n++] = ')';
            char err[256];
            tagexpr_t *e = tagexpr_parse(buf, n, err, sizeof err);
            CHECK((e != NULL) == (depth == 64));
            if (!e) CHECK(strcmp(err, "at column 65: expression nested deeper than 64 levels") == 0);
            tagexpr_free(e);
        }
    }
    /* nodes: 1023 tags + the OR = 1024 nodes parse, one more tag does not */
    for (int tags = 1023; tags <= 1024; tags++) {
        size_t n = 0;
        for (int i = 0; i < tags; i++) n += (size_t)sprintf(buf + n, i ? "|t" : "t");
        char err[256];
        tagexpr_t *e = tagexpr_parse(buf, n, err, sizeof err);
        CHECK((e != NULL) == (tags == 1023));
        if (e) CHECK_EQ_INT(tagexpr_root(e)->nchild, 1023);
        else CHECK(strstr(err, "more than 1024 nodes") != NULL);
        tagexpr_free(e);
    }
    /* tag length */
    memset(buf, 'k', 257);
    tagexpr_t *e = tagexpr_parse(buf, 256, NULL, 0);
    CHECK(e != NULL);
    tagexpr_free(e);
    char err[256];
    CHECK(tagexpr_parse(buf, 257, err, sizeof err) == NULL);
    CHECK(strcmp(err, "at column 1: tag longer than 256 bytes") == 0);
}

/* -- Evaluation ----------------------------------------------------------- */

static roaring_bitmap_t *range(uint32_t lo, uint32_t hi) { return roaring_bitmap_from_range(lo, hi, 1); }

static uint64_t count_of(const char *text, world_t *w, const roaring_bitmap_t *u) {
    tagexpr_t *e = tagexpr_parse(text, strlen(text), NULL, 0);
    if (!e) return UINT64_MAX;
    uint64_t c = tagexpr_count(e, w_resolve, w, u);
    roaring_bitmap_t *bm = tagexpr_eval_bitmap(e, w_resolve, w, u);
    uint64_t c2 = roaring_bitmap_get_cardinality(bm);
    roaring_bitmap_free(bm);
    tagexpr_free(e);
    return c == c2 ? c : UINT64_MAX - 1;
}

static void test_count_and_all(void) {
    world_t w = {.n = 4};
    w.name[0] = "a", w.bm[0] = range(0, 1000);
    w.name[1] = "b", w.bm[1] = range(500, 1500);
    w.name[2] = "c", w.bm[2] = range(900, 950);
    w.name[3] = "e", w.bm[3] = roaring_bitmap_create();
    roaring_bitmap_t *u = range(0, 2000);
    CHECK_EQ_INT(count_of("a & b", &w, u), 500);
    CHECK_EQ_INT(count_of("a & !b", &w, u), 500);
    CHECK_EQ_INT(count_of("!b & a", &w, u), 500);
    CHECK_EQ_INT(count_of("a | b", &w, u), 1500);
    CHECK_EQ_INT(count_of("a | b | c", &w, u), 1500);
    CHECK_EQ_INT(count_of("!a", &w, u), 1000);
    CHECK_EQ_INT(count_of("!a & !b", &w, u), 500);
    CHECK_EQ_INT(count_of("a & b & !c", &w, u), 450);
    CHECK_EQ_INT(count_of("!(a & b)", &w, u), 1500);
    CHECK_EQ_INT(count_of("a & e", &w, u), 0);
    CHECK_EQ_INT(count_of("a | e", &w, u), 1000);
    CHECK_EQ_INT(count_of("a & !e", &w, u), 1000);
    CHECK_EQ_INT(count_of("a & unknown", &w, u), 0);
    CHECK_EQ_INT(count_of("a & !unknown", &w, u), 1000);
    CHECK_EQ_INT(count_of("*", &w, u), 2000);
    CHECK_EQ_INT(count_of("!*", &w, u), 0);
    CHECK_EQ_INT(count_of("* & !a", &w, u), 1000);
    CHECK_EQ_INT(count_of("(a | c) & (b | c) & !(c & a)", &w, u), 450);
    CHECK_EQ_INT(count_of("!*", &w, NULL), 0);
    CHECK_EQ_INT(count_of("!a", &w, NULL), 0);
    CHECK_EQ_INT(count_of("a & b", &w, NULL), 500);

    /* "*" is the universe itself, and the result is a fresh bitmap */
    tagexpr_t *e = tagexpr_parse("*", 1, NULL, 0);
    roaring_bitmap_t *bm = tagexpr_eval_bitmap(e, w_resolve, &w, u);
    CHECK(bm != u && roaring_bitmap_equals(bm, u));
    roaring_bitmap_free(bm);
    CHECK(tagexpr_eval_one(e, w_has, &w, 123456));
    tagexpr_free(e);

    /* the result of a single tag is a copy the caller may change */
    e = tagexpr_parse("a", 1, NULL, 0);
    bm = tagexpr_eval_bitmap(e, w_resolve, &w, u);
    CHECK(bm != w.bm[0]);
    roaring_bitmap_add(bm, 1999);
    CHECK(!roaring_bitmap_contains(w.bm[0], 1999));
    roaring_bitmap_free(bm);
    tagexpr_free(e);

    /* an AND with an empty positive operand stops early */
    e = tagexpr_parse("e & a & b & c", 13, NULL, 0);
    w.resolves = 0;
    CHECK_EQ_INT(tagexpr_count(e, w_resolve, &w, u), 0);
    CHECK_EQ_INT(w.resolves, 1);
    tagexpr_free(e);

    /* bound ids: "b" unknown at first bind, then known */
    e = tagexpr_parse("a & !zz", 7, NULL, 0);
    tagexpr_bind(e, w_bind, &w);
    CHECK_EQ_INT(tagexpr_root(e)->child[0]->id, 0);
    CHECK_EQ_INT(tagexpr_root(e)->child[1]->child[0]->id, -1);
    CHECK(tagexpr_eval_one_ids(e, w_has_id, &w, 10));
    w.name[3] = "zz";
    roaring_bitmap_add(w.bm[3], 10);
    CHECK(tagexpr_eval_one_ids(e, w_has_id, &w, 10)); /* stale binding */
    tagexpr_bind(e, w_bind, &w);
    CHECK(!tagexpr_eval_one_ids(e, w_has_id, &w, 10));
    CHECK(!tagexpr_eval_one(e, w_has, &w, 10));
    CHECK(tagexpr_eval_one(e, w_has, &w, 11));
    tagexpr_free(e);

    /* the deepest legal nesting evaluates (bounded recursion, no overflow) */
    char deep[1024];
    size_t n = 0;
    for (int i = 0; i < 63; i++) n += (size_t)sprintf(deep + n, i % 2 ? "b | (" : "a & (");
    n += (size_t)sprintf(deep + n, "!c");
    for (int i = 0; i < 63; i++) deep[n++] = ')';
    e = tagexpr_parse(deep, n, NULL, 0);
    CHECK(e != NULL);
    if (e) {
        bm = tagexpr_eval_bitmap(e, w_resolve, &w, u);
        int bad = 0;
        for (uint32_t s = 0; s < 2000; s += 7)
            if (tagexpr_eval_one(e, w_has, &w, s) != roaring_bitmap_contains(bm, s)) bad++;
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(tagexpr_count(e, w_resolve, &w, u), roaring_bitmap_get_cardinality(bm));
        CHECK(roaring_bitmap_get_cardinality(bm) > 0);
        roaring_bitmap_free(bm);
        tagexpr_free(e);
    }

    roaring_bitmap_free(u);
    world_free(&w);
}

/* -- Property test: eval_bitmap == eval_one on random data ----------------- */

static uint64_t rng = 0x1234567;
static uint32_t rnd(uint32_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33) % n;
}

static const char *TAGS[] = {"t0", "t1", "t2", "market:SG", "brand:x/y", "t5", "none"};

static void gen(char *buf, size_t *n, int depth) {
    const char *ws[] = {"", " ", "  ", "\t"};
    *n += (size_t)sprintf(buf + *n, "%s", ws[rnd(4)]);
    int pick = depth >= 4 ? (int)rnd(3) : (int)rnd(8);
    switch (pick) {
    case 0:
    case 1:
        *n += (size_t)sprintf(buf + *n, "%s", TAGS[rnd(7)]);
        break;
    case 2:
        *n += (size_t)sprintf(buf + *n, "%s", rnd(4) ? TAGS[rnd(7)] : "*");
        break;
    case 3:
        buf[(*n)++] = '!';
        gen(buf, n, depth + 1);
        break;
    case 4:
        buf[(*n)++] = '(';
        gen(buf, n, depth + 1);
        buf[(*n)++] = ')';
        break;
    default: {
        int k = 2 + (int)rnd(3);
        char op = rnd(2) ? '&' : '|';
        buf[(*n)++] = '(';
        for (int i = 0; i < k; i++) {
            if (i) buf[(*n)++] = op;
            gen(buf, n, depth + 1);
        }
        buf[(*n)++] = ')';
    }
    }
    *n += (size_t)sprintf(buf + *n, "%s", ws[rnd(4)]);
}

static void test_property(void) {
    int mismatches = 0, cases = 0;
    for (int c = 0; c < 200; c++) {
        world_t w = {.n = 6};
        roaring_bitmap_t *u = roaring_bitmap_create();
        uint32_t span = 1 + rnd(3) * 70000; /* one to three containers */
        uint32_t members = 1 + rnd(5000);
        for (uint32_t i = 0; i < members; i++) roaring_bitmap_add(u, rnd(span));
        if (rnd(3) == 0) roaring_bitmap_add_range(u, 1000, 1000 + rnd(20000)); /* run/bitset */
        uint32_t *all = xmalloc(sizeof(uint32_t) * roaring_bitmap_get_cardinality(u));
        roaring_bitmap_to_uint32_array(u, all);
        uint32_t nall = (uint32_t)roaring_bitmap_get_cardinality(u);
        for (int t = 0; t < w.n; t++) {
            w.name[t] = TAGS[t];
            w.bm[t] = roaring_bitmap_create();
            uint32_t density = (uint32_t[]){0, 1, 10, 50, 90, 100}[rnd(6)];
            for (uint32_t i = 0; i < nall; i++)
                if (rnd(100) < density) roaring_bitmap_add(w.bm[t], all[i]);
        }
        char text[4096];
        size_t n = 0;
        gen(text, &n, 0);
        char err[256];
        tagexpr_t *e = tagexpr_parse(text, n, err, sizeof err);
        CHECK(e != NULL);
        if (!e) {
            fprintf(stderr, "  '%.*s': %s\n", (int)n, text, err);
            goto next;
        }
        cases++;
        tagexpr_bind(e, w_bind, &w);
        roaring_bitmap_t *bm = tagexpr_eval_bitmap(e, w_resolve, &w, u);
        int bad = 0;
        for (uint32_t i = 0; i < nall; i++) {
            bool one = tagexpr_eval_one(e, w_has, &w, all[i]);
            bool ids = tagexpr_eval_one_ids(e, w_has_id, &w, all[i]);
            if (one != roaring_bitmap_contains(bm, all[i]) || ids != one) bad++;
        }
        if (!roaring_bitmap_is_subset(bm, u)) bad++;
        if (tagexpr_count(e, w_resolve, &w, u) != roaring_bitmap_get_cardinality(bm)) bad++;
        /* the canonical form evaluates the same */
        char *canon_text = tagexpr_to_string(e);
        tagexpr_t *e2 = tagexpr_parse(canon_text, strlen(canon_text), NULL, 0);
        if (!e2) {
            bad++;
        } else {
            roaring_bitmap_t *bm2 = tagexpr_eval_bitmap(e2, w_resolve, &w, u);
            char *canon2 = tagexpr_to_string(e2);
            if (!roaring_bitmap_equals(bm, bm2) || strcmp(canon_text, canon2) != 0) bad++;
            free(canon2);
            roaring_bitmap_free(bm2);
            tagexpr_free(e2);
        }
        if (bad) {
            mismatches++;
            fprintf(stderr, "  mismatch on '%s'\n", canon_text);
        }
        free(canon_text);
        roaring_bitmap_free(bm);
        tagexpr_free(e);
    next:
        free(all);
        roaring_bitmap_free(u);
        world_free(&w);
    }
    CHECK_EQ_INT(cases, 200);
    CHECK_EQ_INT(mismatches, 0);
}

/* -- Timing: two 100k-member tags in a 1M universe ------------------------ */

static double time_us(const char *text, world_t *w, const roaring_bitmap_t *u, bool count,
                      uint64_t *card) {
    tagexpr_t *e = tagexpr_parse(text, strlen(text), NULL, 0);
    enum { REPS = 200 };
    uint64_t t0 = mono_ns();
    for (int i = 0; i < REPS; i++) {
        if (count) {
            *card = tagexpr_count(e, w_resolve, w, u);
        } else {
            roaring_bitmap_t *bm = tagexpr_eval_bitmap(e, w_resolve, w, u);
            *card = roaring_bitmap_get_cardinality(bm);
            roaring_bitmap_free(bm);
        }
    }
    uint64_t t1 = mono_ns();
    tagexpr_free(e);
    return (double)(t1 - t0) / REPS / 1000.0;
}

static void test_timing(void) {
    world_t w = {.n = 2};
    roaring_bitmap_t *u = range(0, 1000000);
    for (int t = 0; t < 2; t++) {
        w.name[t] = t ? "b" : "a";
        w.bm[t] = roaring_bitmap_create();
        while (roaring_bitmap_get_cardinality(w.bm[t]) < 100000) roaring_bitmap_add(w.bm[t], rnd(1000000));
    }
    uint64_t c_and, c_andnot, c_or, c_cnt, c_not, c_cnt2;
    double t_and = time_us("a & b", &w, u, false, &c_and);
    double t_andnot = time_us("a & !b", &w, u, false, &c_andnot);
    double t_or = time_us("a | b", &w, u, false, &c_or);
    double t_not = time_us("!a", &w, u, false, &c_not);
    double t_cnt = time_us("a & b", &w, u, true, &c_cnt);
    double t_cnt2 = time_us("a & !b", &w, u, true, &c_cnt2);
    CHECK(c_and == c_cnt && c_andnot == c_cnt2 && c_and + c_andnot == 100000);
    CHECK(c_or == 200000 - c_and && c_not == 900000);
    printf("1M universe, a and b 100k random members each (|a&b| = %llu):\n",
           (unsigned long long)c_and);
    printf("  eval_bitmap a & b %.1f us, a & !b %.1f us, a | b %.1f us, !a %.1f us\n", t_and,
           t_andnot, t_or, t_not);
    printf("  count       a & b %.1f us, a & !b %.1f us\n", t_cnt, t_cnt2);
    roaring_bitmap_free(u);
    world_free(&w);
}

int main(void) {
    test_precedence();
    test_errors();
    test_count_and_all();
    test_property();
    test_timing();
    return check_done();
}
