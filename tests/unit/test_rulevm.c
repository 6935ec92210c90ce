/* test_rulevm.c - the rule VM over a small hand-built view_roots_t: compile,
 * match/rank through the FFI view, error isolation with file:line, the
 * memory cap, the instruction budget, examples, and a throughput figure
 * for a 3-field rule over 1M synthetic rows (printed, not asserted). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rules_check.h"
#include "rulevm.h"
#include "util.h"

/* -- A tiny store --------------------------------------------------------- */

#define NROWS 6
static sku_row_t rows[NROWS];
static win_sums_t wins[3];
static const char *const dims[] = {"", "SG", "MY", "phones", "phones/android", "acme", "shop1"};
static const char *names[NROWS] = {"S0", "S1", "S2", "S3", "S4", "S5"};
static const char *tags[NROWS] = {"hot", "hot blocked", "", "hot", "", "hot"};

static int t_has_tag(void *ctx, uint32_t sku, const char *tag, size_t len) {
    (void)ctx;
    const char *p = tags[sku];
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n == len && memcmp(p, tag, len) == 0) return 1;
        p += n;
        while (*p == ' ') p++;
    }
    return 0;
}

static void t_attr_get(void *ctx, uint32_t sku, const char *name, size_t len, attr_value_t *out) {
    (void)ctx;
    memset(out, 0, sizeof *out);
    if (len == 5 && memcmp(name, "color", 5) == 0 && sku == 1) {
        out->type = ATTR_STRING, out->str = "red", out->len = 3;
    } else if (len == 6 && memcmp(name, "weight", 6) == 0) {
        out->type = ATTR_NUMBER, out->num = 1.5 * sku;
    } else if (len == 3 && memcmp(name, "new", 3) == 0) {
        out->type = ATTR_BOOL, out->num = sku % 2;
    } else if (len == 4 && memcmp(name, "dims", 4) == 0) {
        out->type = ATTR_JSON, out->str = "{\"w\":1}", out->len = 7;
    }
}

static const char *t_sku_name(void *ctx, uint32_t sku) {
    (void)ctx;
    return names[sku];
}

static view_roots_t roots;

static void store_init(void) {
    for (int i = 0; i < NROWS; i++) {
        rows[i].price = 10 + i;
        rows[i].list_price = 20;
        rows[i].discount = 1 - rows[i].price / rows[i].list_price;
        rows[i].stock = i * 10;
        rows[i].rating = 4.5;
        rows[i].reviews = 100 + i;
        rows[i].market = i < 4 ? 1 : 2;
        rows[i].category = 4;
        rows[i].top_category = 3;
        rows[i].brand = 5;
        rows[i].seller = 6;
        rows[i].win = i % 3;
        rows[i].lazmall = i % 2;
        rows[i].free_shipping = 1;
    }
    wins[1].sales[WIN_24H] = 7;
    wins[1].gmv[WIN_24H] = 123.5;
    wins[2].views[WIN_1H] = 9;
    wins[2].carts[WIN_7D] = 4;
    roots.rows = rows;
    roots.win = wins;
    roots.dims = dims;
    roots.has_tag = t_has_tag;
    roots.attr_get = t_attr_get;
    roots.sku_name = t_sku_name;
}

static const uint32_t all_ids[NROWS] = {0, 1, 2, 3, 4, 5};

static rule_def_t *compile(rulevm_t *vm, const char *file, const char *hint, const char *src,
                           rule_error_t *err) {
    rule_def_t *d = NULL;
    memset(err, 0, sizeof *err);
    if (rulevm_compile(vm, file, hint, src, strlen(src), &d, err) != 0) return NULL;
    return d;
}

/* -- Tests ------------------------------------------------------------------ */

static void test_compile_fields(rulevm_t *vm) {
    rule_error_t err;
    rule_def_t *d = compile(vm, "rules/flash.lua", "flash",
        "return pool \"flash\" {\n"
        "  title = \"Flash\",\n"
        "  active = { from = \"2026-11-11T00:00+08:00\", to = \"2026-11-12\" },\n"
        "  where = all { tag \"market:SG\", any { tag \"a\", tag \"b\" }, no_tag \"blocked\" },\n"
        "  match = function(s) return s.discount >= 0.3 end,\n"
        "  rank = function(s) return s.gmv_24h end, limit = 20,\n"
        "  pin = { \"P1\", \"P2\" }, exclude = { \"X\" },\n"
        "  examples = { { sku = { market = \"SG\", price = 10, list_price = 20, tags = {\"a\"} }, expect = true } },\n"
        "}\n", &err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "%s:%d: %s\n", err.file, err.line, err.msg);
        return;
    }
    CHECK(strcmp(d->name, "flash") == 0);
    CHECK(strcmp(d->title, "Flash") == 0);
    CHECK(strcmp(d->file, "rules/flash.lua") == 0);
    CHECK(strcmp(d->where, "market:SG & (a | b) & !blocked") == 0);
    CHECK(d->has_match && d->has_rank);
    CHECK_EQ_INT(d->limit, 20);
    CHECK_EQ_INT(d->active_from, 1794326400000LL);   /* 2026-11-10T16:00Z */
    CHECK_EQ_INT(d->active_to, 1794441600000LL);     /* 2026-11-12T00:00Z */
    CHECK_EQ_INT(d->npin, 2);
    CHECK(d->npin == 2 && strcmp(d->pin[1], "P2") == 0);
    CHECK(d->nexclude == 1 && strcmp(d->exclude[0], "X") == 0);
    CHECK_EQ_INT(d->nexamples, 1);
    CHECK_EQ_INT(rulevm_run_examples(vm, d, &err), 0);
    CHECK(rulevm_rule_is_jit(vm, d));
    rulevm_release(vm, d);

    d = compile(vm, "rules/plain.lua", NULL, "return pool \"anything\" {}", &err);
    CHECK(d && strcmp(d->where, "*") == 0 && strcmp(d->title, "") == 0 && !d->has_match);
    if (d) {
        uint8_t out[NROWS];
        double r[NROWS];
        CHECK_EQ_INT(rulevm_match(vm, d, all_ids, NROWS, out, NULL), 0);
        CHECK(out[0] == 1 && out[5] == 1);
        CHECK_EQ_INT(rulevm_rank(vm, d, all_ids, NROWS, r, NULL), 0);
        CHECK(r[3] == 0);
    }
    rulevm_release(vm, d);
}

static void test_user_errors(rulevm_t *vm) {
    rule_error_t err;
    CHECK(compile(vm, "rules/flash.lua", "flash",
                  "-- flash\nreturn pool \"flash\" {\n  title = \"x\",\n  mtach = function(s) end,\n}\n",
                  &err) == NULL);
    CHECK(strcmp(err.file, "rules/flash.lua") == 0);
    CHECK_EQ_INT(err.line, 4);
    CHECK(strcmp(err.msg, "unknown key \"mtach\" in pool \"flash\"") == 0);

    CHECK(compile(vm, "rules/y.lua", "y", "\nreturn pool \"x\" {}", &err) == NULL);
    CHECK_EQ_INT(err.line, 2);
    CHECK(strcmp(err.msg, "pool name \"x\" does not match file name y.lua") == 0);

    CHECK(compile(vm, "rules/y.lua", "y", "return pool \"y\" {\n limit = 5 }", &err) == NULL);
    CHECK(strstr(err.msg, "limit needs rank") != NULL);
    CHECK_EQ_INT(err.line, 2);

    CHECK(compile(vm, "rules/y.lua", "y", "local x = = 1", &err) == NULL);
    CHECK_EQ_INT(err.line, 1);
    CHECK(strstr(err.msg, "unexpected symbol") != NULL);

    CHECK(compile(vm, "rules/y.lua", "y", "x = 1", &err) == NULL);
    CHECK(strstr(err.msg, "must end with: return pool") != NULL);

    CHECK(compile(vm, "rules/y.lua", "y", "\n\nlocal t = nil\nreturn t.x", &err) == NULL);
    CHECK_EQ_INT(err.line, 4);
    CHECK(strstr(err.msg, "attempt to index") != NULL);

    CHECK(compile(vm, "rules/y.lua", "y", "\033LJ\002junk", &err) == NULL);
    CHECK(strstr(err.msg, "bytecode") != NULL);

    /* The sandbox, seen from C: no io/os/ffi/require; string.dump gone. */
    rule_def_t *d = compile(vm, "rules/y.lua", "y",
        "assert(io == nil and os == nil and ffi == nil and require == nil and jit == nil)\n"
        "assert(load == nil and loadstring == nil and debug == nil and string.dump == nil)\n"
        "assert((\"\").dump == nil and getmetatable(\"\") == nil)\n"
        "assert(not pcall(string.rep, 'x', 2 * 1024 * 1024))\n"
        "assert(not pcall(function() return ('x'):rep(2 * 1024 * 1024) end))\n"
        "return pool \"y\" {}", &err);
    CHECK(d != NULL);
    if (!d) fprintf(stderr, "sandbox: %s:%d: %s\n", err.file, err.line, err.msg);
    rulevm_release(vm, d);
}

static void test_view_fields(rulevm_t *vm) {
    rule_error_t err;
    uint8_t out[NROWS];
    const char *src =
        "return pool \"v\" { match = function(s)\n"
        "  if s.sku == 'S1' then\n"
        "    return s.market == 'SG' and s.category == 'phones/android' and s.top_category == 'phones'\n"
        "       and s.brand == 'acme' and s.seller == 'shop1' and s.price == 11 and s.list_price == 20\n"
        "       and math.abs(s.discount - 0.45) < 1e-9 and s.stock == 10 and s.rating == 4.5\n"
        "       and s.reviews == 101 and s.lazmall == true and s.free_shipping == true\n"
        "       and s.sales_24h == 7 and s.gmv_24h == 123.5 and s.views_1h == 0\n"
        "       and s:has('hot') and s:has('blocked') and not s:has('cold')\n"
        "       and s.attrs.color == 'red' and s.attrs.weight == 1.5 and s.attrs.new == true\n"
        "       and s.attrs.dims == '{\"w\":1}' and s.attrs.nothing == nil\n"
        "  end\n"
        "  if s.sku == 'S2' then return s.views_1h == 9 and s.carts_7d == 4 and s.sales_24h == 0\n"
        "    and s.lazmall == false and s.attrs.color == nil and s.attrs.new == false end\n"
        "  return s.market == 'MY'\n"
        "end }";
    rule_def_t *d = compile(vm, "rules/v.lua", "v", src, &err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "%s:%d: %s\n", err.file, err.line, err.msg);
        return;
    }
    long e = rulevm_match(vm, d, all_ids, NROWS, out, &err);
    CHECK_EQ_INT(e, 0);
    if (e) fprintf(stderr, "%s:%d: %s\n", err.file, err.line, err.msg);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 1 && out[3] == 0 && out[4] == 1 && out[5] == 1);
    rulevm_release(vm, d);
}

static void test_isolation(rulevm_t *vm) {
    rule_error_t err;
    uint8_t out[NROWS];
    double r[NROWS];
    rule_def_t *bad = compile(vm, "rules/bad.lua", "bad",
        "counter = 0\n"
        "return pool \"bad\" {\n"
        "  match = function(s)\n"
        "    if s.sku == 'S2' then error('boom') end\n"
        "    return s.stock >= 20\n"
        "  end,\n"
        "  rank = function(s)\n"
        "    if s.sku == 'S3' then return s.pricee end\n"
        "    if s.sku == 'S4' then return 'x' end\n"
        "    return s.price\n"
        "  end,\n"
        "}", &err);
    rule_def_t *good = compile(vm, "rules/good.lua", "good",
        "return pool \"good\" { match = function(s) return counter == nil and s.stock >= 20 end }",
        &err);
    CHECK(bad && good);
    if (!bad || !good) goto done;
    memset(out, 7, sizeof out);
    CHECK_EQ_INT(rulevm_match(vm, bad, all_ids, NROWS, out, &err), 1);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 1 && out[4] == 1 && out[5] == 1);
    CHECK(strcmp(err.file, "rules/bad.lua") == 0);
    CHECK_EQ_INT(err.line, 4);
    CHECK(strcmp(err.msg, "boom") == 0);

    CHECK_EQ_INT(rulevm_rank(vm, bad, all_ids, NROWS, r, &err), 2);
    CHECK(r[0] == 10 && r[2] == 12 && r[5] == 15);
    CHECK(isinf(r[3]) && r[3] < 0 && isinf(r[4]));
    CHECK_EQ_INT(err.line, 8);
    CHECK(strcmp(err.msg, "unknown SKU field \"pricee\"") == 0);

    /* The other rule: unaffected, and it cannot see bad's global. */
    CHECK_EQ_INT(rulevm_match(vm, good, all_ids, NROWS, out, &err), 0);
    CHECK(out[1] == 0 && out[2] == 1 && out[5] == 1);
done:
    rulevm_release(vm, bad);
    rulevm_release(vm, good);

    rule_def_t *w = compile(vm, "rules/w.lua", "w",
        "return pool \"w\" {\n match = function(s)\n  s.price = 1\n end }", &err);
    CHECK(w != NULL);
    CHECK_EQ_INT(rulevm_match(vm, w, all_ids, 2, out, &err), 2);
    CHECK_EQ_INT(err.line, 3);
    CHECK(strcmp(err.msg, "SKU view is read-only") == 0);
    rulevm_release(vm, w);
}

static void test_budget(rulevm_t *vm) {
    rule_error_t err;
    uint8_t out[NROWS];
    CHECK(compile(vm, "rules/spin.lua", "spin", "\nwhile true do end\nreturn pool \"spin\" {}", &err) == NULL);
    CHECK(strstr(err.msg, "instruction budget exceeded") != NULL);
    CHECK_EQ_INT(err.line, 2);

    rule_def_t *d = compile(vm, "rules/loop.lua", "loop",
        "return pool \"loop\" { match = function(s)\n"
        "  if s.stock >= 30 then\n"
        "    while true do pcall(function() while true do end end) end\n"
        "  end\n"
        "  local n = 0\n"
        "  for i = 1, 100 do n = n + i end\n"
        "  return n == 5050\n"
        "end }", &err);
    CHECK(d != NULL);
    if (!d) return;
    CHECK(!rulevm_rule_is_jit(vm, d));
    uint64_t t0 = mono_ns();
    CHECK_EQ_INT(rulevm_match(vm, d, all_ids, NROWS, out, &err), 3);
    uint64_t dt = mono_ns() - t0;
    CHECK(out[0] == 1 && out[1] == 1 && out[2] == 1 && out[3] == 0 && out[4] == 0 && out[5] == 0);
    CHECK(strstr(err.msg, "instruction budget exceeded") != NULL);
    CHECK(err.line == 3);
    printf("budget: 3 runaway evaluations stopped in %.1f ms\n", dt / 1e6);
    rulevm_release(vm, d);
}

static void test_memory(void) {
    rule_error_t err;
    rulevm_t *vm = rulevm_new(&roots, 16u << 20, &err);
    CHECK(vm != NULL);
    if (!vm) return;
    rulevm_set_time_budget(vm, 10000000L, 10000000L); /* let the memory cap stop them */
    size_t base = rulevm_memory(vm);
    CHECK(base > 0 && base < (16u << 20));
    CHECK(compile(vm, "rules/big.lua", "big",
                  "local t = {}\nfor i = 1, 1e8 do t[i] = {i} end\nreturn pool \"big\" {}", &err) == NULL);
    CHECK(strstr(err.msg, "memory limit") != NULL);
    rulevm_set_budget(vm, 0, 4000000000L);
    CHECK(compile(vm, "rules/big.lua", "big",
                  "local t = {}\nlocal s = 'x'\nfor i = 1, 1e8 do s = s .. 'yy' .. i; t[i] = s end\nreturn pool \"big\" {}",
                  &err) == NULL);
    CHECK(strstr(err.msg, "memory limit") != NULL);
    CHECK(rulevm_memory(vm) < base + (4u << 20));

    rule_def_t *d = compile(vm, "rules/grow.lua", "grow",
        "local keep = {}\n"
        "return pool \"grow\" { match = function(s)\n"
        "  if s.sku == 'S1' then for i = 1, 1e8 do keep[i] = {} end end\n"
        "  return true\n"
        "end }", &err);
    rulevm_set_budget(vm, 4000000000L, 0);
    uint8_t out[NROWS];
    CHECK(d != NULL);
    if (!d) fprintf(stderr, "grow: %s:%d: %s\n", err.file, err.line, err.msg);
    if (d) {
        /* The rule keeps what it built: past its share of the cap it is
         * stopped (every later SKU fails) and its memory given back. */
        CHECK(rulevm_match(vm, d, all_ids, NROWS, out, &err) >= 1);
        CHECK(strstr(err.msg, "rule stopped: its state holds") != NULL);
        CHECK(out[0] == 1 && out[1] == 0);
        CHECK(rulevm_memory(vm) < (8u << 20));
    }
    rulevm_release(vm, d);
    CHECK(rulevm_memory(vm) < (8u << 20));
    rulevm_set_budget(vm, RULEVM_DEFAULT_BUDGET, 0);

    /* The VM still works after hitting the cap. */
    d = compile(vm, "rules/ok.lua", "ok", "return pool \"ok\" { match = function(s) return s.stock > 0 end }", &err);
    CHECK(d != NULL);
    if (!d) fprintf(stderr, "after cap: %s:%d: %s (%zu bytes)\n", err.file, err.line, err.msg, rulevm_memory(vm));
    if (d) {
        CHECK_EQ_INT(rulevm_match(vm, d, all_ids, NROWS, out, NULL), 0);
        CHECK(out[0] == 0 && out[1] == 1);
    }
    rulevm_release(vm, d);
    rulevm_free(vm);
}

static void test_examples(rulevm_t *vm) {
    rule_error_t err;
    rule_def_t *d = compile(vm, "rules/ex.lua", "ex",
        "return pool \"ex\" {\n"
        "  where = all { tag \"market:SG\", no_tag \"blocked\" },\n"
        "  match = function(s) return s.discount >= 0.3 and s.stock >= 20 end,\n"
        "  examples = {\n"
        "    { sku = { market = \"SG\", price = 10, list_price = 20, stock = 30 }, expect = true },\n"
        "    { sku = { market = \"MY\", price = 10, list_price = 20, stock = 30 }, expect = true },\n"
        "  },\n"
        "}", &err);
    CHECK(d != NULL);
    if (!d) return;
    CHECK_EQ_INT(rulevm_run_examples(vm, d, &err), -1);
    CHECK_EQ_INT(err.line, 6);
    CHECK(strstr(err.msg, "example 2: expected true, got false") != NULL);
    CHECK(strstr(err.msg, "market:SG -> false") != NULL);
    rulevm_release(vm, d);

    d = compile(vm, "rules/ex.lua", "ex",
        "return pool \"ex\" {\n"
        "  match = function(s) return s.discount >= 0.3 and s.stock >= 20 end,\n"
        "  examples = {\n"
        "    { sku = { price = 10, list_price = 20, stock = 30 }, expect = true },\n"
        "    { sku = { price = 19, list_price = 20, stock = 30 }, expect = true },\n"
        "  },\n"
        "}", &err);
    CHECK(d != NULL);
    if (!d) return;
    CHECK_EQ_INT(rulevm_run_examples(vm, d, &err), -1);
    CHECK_EQ_INT(err.line, 5);
    CHECK(strstr(err.msg, "match returned false") != NULL);
    rulevm_release(vm, d);
}

/* `poold check` over tests/fixtures/rules (ctest runs from the repo root). */
static void test_rules_check(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    CHECK_EQ_INT(rules_check_path("tests/fixtures/rules/ok", out), 0);
    fflush(out);
    CHECK(strstr(buf, "ok  tests/fixtures/rules/ok/everything.lua  (pool everything, 0 examples)\n") != NULL);
    CHECK(strstr(buf, "ok  tests/fixtures/rules/ok/flash_sale.lua  (pool flash_sale, 3 examples)\n") != NULL);
    fclose(out);
    free(buf);

    buf = NULL;
    out = open_memstream(&buf, &len);
    CHECK_EQ_INT(rules_check_path("tests/fixtures/rules/bad/", out), 1);
    fflush(out);
    const char *want[] = {
        "tests/fixtures/rules/bad/failing_example.lua:6: example 2: expected true, got false: "
        "where true (market:SG -> true); match returned false\n",
        "tests/fixtures/rules/bad/runaway.lua:2: instruction budget exceeded\n",
        "tests/fixtures/rules/bad/typo.lua:4: unknown key \"mtach\" in pool \"typo\"\n",
        "tests/fixtures/rules/bad/wrong_name.lua:1: pool name \"other_name\" does not match file name wrong_name.lua\n",
    };
    const char *p = buf;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *q = strstr(p, want[i]);
        CHECK(q != NULL);
        if (!q) fprintf(stderr, "missing: %s in:\n%s", want[i], buf);
        else p = q; /* in file-name order */
    }
    fclose(out);
    free(buf);

    buf = NULL;
    out = open_memstream(&buf, &len);
    CHECK_EQ_INT(rules_check_path("tests/fixtures/rules/bad/typo.lua", out), 1);
    CHECK_EQ_INT(rules_check_path("tests/fixtures/rules/ok/flash_sale.lua", out), 0);
    CHECK_EQ_INT(rules_check_path("tests/fixtures/rules/nope", out), 1);
    fclose(out);
    free(buf);
}

/* -- Throughput ---------------------------------------------------------------- */

static void bench(rulevm_t *vm_unused) {
    (void)vm_unused;
    enum { N = 1000000 };
    sku_row_t *big = xcalloc(N, sizeof *big);
    uint32_t *ids = xmalloc(N * sizeof *ids);
    uint8_t *out = xmalloc(N);
    for (uint32_t i = 0; i < N; i++) {
        big[i].price = 5 + i % 50;
        big[i].list_price = 50;
        big[i].discount = 1 - big[i].price / 50;
        big[i].stock = (int32_t)(i % 40);
        big[i].rating = 3 + (i % 3);
        ids[i] = i;
    }
    view_roots_t r = roots;
    r.rows = big;
    rule_error_t err;
    rulevm_t *vm = rulevm_new(&r, 64u << 20, &err);
    CHECK(vm != NULL);
    if (!vm) goto out;
    rule_def_t *d = compile(vm, "rules/bench.lua", "bench",
        "return pool \"bench\" { match = function(s)\n"
        "  return s.discount >= 0.3 and s.stock >= 20 and s.rating >= 4\n"
        "end }", &err);
    rule_def_t *slow = compile(vm, "rules/slow.lua", "slow",
        "return pool \"slow\" { match = function(s)\n"
        "  for i = 1, 1 do end\n"
        "  return s.discount >= 0.3 and s.stock >= 20 and s.rating >= 4\n"
        "end }", &err);
    CHECK(d && slow);
    if (d && slow) {
        CHECK(rulevm_rule_is_jit(vm, d) && !rulevm_rule_is_jit(vm, slow));
        rulevm_match(vm, d, ids, N, out, NULL); /* warm up */
        uint64_t t0 = mono_ns();
        long e = 0;
        for (int k = 0; k < 3; k++) e += rulevm_match(vm, d, ids, N, out, NULL);
        double s = (mono_ns() - t0) / 1e9 / 3;
        CHECK_EQ_INT(e, 0);
        long hits = 0;
        for (uint32_t i = 0; i < N; i++) {
            int want = big[i].discount >= 0.3 && big[i].stock >= 20 && big[i].rating >= 4;
            hits += out[i];
            if (out[i] != want) {
                CHECK(out[i] == want);
                break;
            }
        }
        printf("bench: 3-field rule, JIT: %.1f M SKUs/s (%ld of %d match)\n", N / s / 1e6, hits, N);
        t0 = mono_ns();
        rulevm_match(vm, slow, ids, N / 10, out, NULL);
        s = (mono_ns() - t0) / 1e9;
        printf("bench: same rule with a loop (interpreted, budgeted): %.2f M SKUs/s\n", N / 10 / s / 1e6);
        printf("bench: VM memory %zu KB\n", rulevm_memory(vm) / 1024);
    }
    rulevm_release(vm, d);
    rulevm_release(vm, slow);
    rulevm_free(vm);
out:
    free(big);
    free(ids);
    free(out);
}

int main(void) {
    log_quiet = 1;
    store_init();
    rule_error_t err;
    rulevm_t *vm = rulevm_new(&roots, 64u << 20, &err);
    CHECK(vm != NULL);
    if (!vm) {
        fprintf(stderr, "rulevm_new: %s\n", err.msg);
        return check_done();
    }
    test_compile_fields(vm);
    test_user_errors(vm);
    test_view_fields(vm);
    test_isolation(vm);
    test_budget(vm);
    test_examples(vm);
    rulevm_free(vm);
    rulevm_free(NULL);
    rulevm_release(NULL, NULL);
    test_memory();
    test_rules_check();
    bench(NULL);
    return check_done();
}
