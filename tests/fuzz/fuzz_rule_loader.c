/* fuzz_rule_loader.c - libFuzzer target for the rule loader: the input is a
 * rule file. It is compiled in one long-lived rule VM (as the engine does),
 * its examples run, and its match and rank run over a 4-row store through
 * the FFI view. Any input must end in either a rule or a rule_error_t with
 * a message; the VM's memory must stay under its cap. A crash, an abort or
 * an unbounded run is a bug (the budgets here are small so runaway rules
 * end in milliseconds).
 *
 * The trusted Lua glue is normally embedded by CMake; this target provides
 * its own embedded_find() that reads the lua/ files from the repository, found
 * from this file's path (run.sh compiles it by absolute path).
 * Run with tests/fuzz/run.sh 60 fuzz_rule_loader. */
// fuzz-sources: src/rulevm.c src/view.c src/util.c
// fuzz-flags: -I/usr/include/luajit-2.1 -lluajit-5.1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "rulevm.h"
#include "util.h"

#define REQUIRE(c)         \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

#define MEM_LIMIT (32u << 20)

/* The Lua heap lives as long as the VM (one per process here) and LuaJIT
 * keeps some of its blocks through offset or tagged pointers (the JIT's IR
 * buffer points below its allocation), which LeakSanitizer cannot follow.
 * Only allocations made through the VM's allocator are exempted; a leak of
 * our own C allocations is still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:rulevm_alloc\n";
}

/* -- Embedded files from disk ----------------------------------------------- */

const embedded_file_t embedded_files[] = {{NULL, NULL, 0}};

const embedded_file_t *embedded_find(const char *path) {
    static embedded_file_t cache[16];
    static char *paths[16];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(paths[i], path) == 0) return &cache[i];
    if (n == 16) return NULL;
    /* __FILE__ is .../tests/fuzz/fuzz_rule_loader.c */
    char root[4096];
    snprintf(root, sizeof root, "%s", __FILE__);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(root, '/');
        if (!slash) {
            snprintf(root, sizeof root, ".");
            break;
        }
        *slash = 0;
    }
    char full[4200];
    snprintf(full, sizeof full, "%s/%s", root[0] ? root : "/", path);
    size_t len = 0;
    char *data = read_file(full, &len);
    if (!data) {
        fprintf(stderr, "fuzz_rule_loader: cannot read %s\n", full);
        return NULL;
    }
    paths[n] = xstrdup(path);
    cache[n] = (embedded_file_t){paths[n], (const unsigned char *)data, len};
    return &cache[n++];
}

/* -- A 4-row store ----------------------------------------------------------- */

static sku_row_t rows[4];
static win_sums_t wins[2];
static const char *const dims[] = {"", "SG", "phones", "phones/android", "acme"};

static int f_has_tag(void *ctx, uint32_t sku, const char *tag, size_t len) {
    (void)ctx;
    return (sku & 1) && len == 3 && memcmp(tag, "hot", 3) == 0;
}

static void f_attr_get(void *ctx, uint32_t sku, const char *name, size_t len, attr_value_t *out) {
    (void)ctx;
    (void)name;
    memset(out, 0, sizeof *out);
    switch ((len + sku) % 5) {
    case 1: out->type = ATTR_NUMBER, out->num = (double)sku; break;
    case 2: out->type = ATTR_STRING, out->str = "red", out->len = 3; break;
    case 3: out->type = ATTR_BOOL, out->num = 1; break;
    case 4: out->type = ATTR_JSON, out->str = "[1,{\"a\":2}]", out->len = 11; break;
    default: break;
    }
}

static const char *f_sku_name(void *ctx, uint32_t sku) {
    (void)ctx;
    static const char *const names[] = {"A", "B", "C", "D"};
    return names[sku & 3];
}

static view_roots_t roots = {
    .rows = rows, .win = wins, .dims = dims,
    .has_tag = f_has_tag, .attr_get = f_attr_get, .sku_name = f_sku_name,
};

static rulevm_t *vm;

static void setup(void) {
    for (int i = 0; i < 4; i++) {
        rows[i].price = 5 + i;
        rows[i].list_price = 10;
        rows[i].discount = 1 - rows[i].price / 10;
        rows[i].stock = i * 7;
        rows[i].market = 1, rows[i].category = 3, rows[i].top_category = 2, rows[i].brand = 4;
        rows[i].win = (uint32_t)(i & 1);
        rows[i].lazmall = (uint8_t)(i & 1);
    }
    wins[1].sales[WIN_24H] = 3;
    wins[1].gmv[WIN_7D] = 99.5;
    rule_error_t err;
    vm = rulevm_new(&roots, MEM_LIMIT, &err);
    if (!vm) {
        fprintf(stderr, "fuzz_rule_loader: rulevm_new: %s\n", err.msg);
        abort();
    }
    rulevm_set_budget(vm, 20000, 200000);
}

static void check_error(const rule_error_t *e) {
    REQUIRE(memchr(e->file, 0, sizeof e->file) != NULL);
    REQUIRE(memchr(e->msg, 0, sizeof e->msg) != NULL);
    REQUIRE(e->msg[0] != 0);
    REQUIRE(e->line >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vm) setup();
    /* An exact-size copy, so ASan sees any read past the end. */
    char *src = malloc(size ? size : 1);
    memcpy(src, data, size);
    rule_error_t err;
    memset(&err, 0, sizeof err);
    rule_def_t *def = NULL;
    /* The first byte picks whether the pool name is tied to the file name. */
    const char *hint = size && (data[0] & 1) ? "fuzz" : NULL;
    int rc = rulevm_compile(vm, "rules/fuzz.lua", hint, src, size, &def, &err);
    free(src);
    if (rc != 0) {
        REQUIRE(def == NULL);
        check_error(&err);
    } else {
        REQUIRE(def && def->name && def->where && def->title && def->file);
        REQUIRE(def->where[0] != 0);
        REQUIRE(!hint || strcmp(def->name, "fuzz") == 0);
        REQUIRE(def->limit >= 0 && (!def->limit || def->has_rank));
        memset(&err, 0, sizeof err);
        if (rulevm_run_examples(vm, def, &err) != 0) check_error(&err);
        static const uint32_t ids[] = {0, 1, 2, 3, 3, 1};
        uint8_t out[6];
        double rank[6];
        memset(&err, 0, sizeof err);
        long e = rulevm_match(vm, def, ids, 6, out, &err);
        REQUIRE(e >= 0 && e <= 6);
        if (e) check_error(&err);
        for (int i = 0; i < 6; i++) REQUIRE(out[i] <= 1);
        memset(&err, 0, sizeof err);
        e = rulevm_rank(vm, def, ids, 6, rank, &err);
        REQUIRE(e >= 0 && e <= 6);
        if (e) check_error(&err);
        for (int i = 0; i < 6; i++) REQUIRE(rank[i] == rank[i]); /* never NaN */
        rulevm_release(vm, def);
    }
    REQUIRE(rulevm_memory(vm) <= MEM_LIMIT);
    return 0;
}
