/* rulevm.c - the C half of the rule VM (rulevm.h): one lua_State per VM,
 * its memory cap, its instruction budget, and the calls into lua/rulevm.lua.
 *
 * The state runs only trusted glue (lua/sandbox.lua, dsl.lua, view.lua,
 * rulevm.lua, loaded from the embedded files with chunk names "=lua/...")
 * and rule chunks (named "@file"), each in its own sandbox environment.
 *
 * Memory: rulevm_alloc counts every byte the state holds and refuses growth
 * past mem_limit once the VM is set up; LuaJIT turns the refusal into a
 * "not enough memory" error (LUA_ERRMEM) at the allocation site. So every
 * Lua API call that may allocate runs under lua_pcall/lua_cpcall; the few
 * unprotected calls (GC, unref) run with the cap lifted. A batch that hits
 * the cap gets one full GC and a retry of the same SKU before the SKU is
 * counted as failed; if memory is still short, the rule whose state holds
 * the most (over mem_limit / RULEVM_RULE_MEM_SHARE) is stopped (evict_hog).
 *
 * Time: a count hook fires every HOOK_PERIOD interpreted instructions and
 * decrements ctl.ticks, which the Lua harness resets to ctl.budget before
 * each SKU (the compile step uses ctl.budget_compile). Work that is not
 * bytecode is charged to the same ticks: every ALLOC_TICK_BYTES a metered
 * call allocates (strings built with .., table growth), and the library
 * calls lua/sandbox.lua meters (patterns, sort, ...). At zero the hook
 * raises "instruction budget exceeded" (the allocator makes it fire on the
 * next instruction) and switches to firing on every instruction, raising
 * again in any rule frame ("@" chunk) until C resets it after the call
 * returns, so a rule's pcall cannot swallow the kill. The hook also stops
 * an evaluation that ran longer than the time budget (a backstop for C
 * work nothing else counts). While metered, no single allocation may
 * exceed RULEVM_MAX_OBJECT. The hook never fires inside JIT-compiled code:
 * lua/rulevm.lua compiles rule chunks with the JIT off and re-enables it
 * only for match/rank functions that lua/sandbox.lua proves bounded.
 *
 * Batches: rulevm_match/rank make one lua_pcall per batch; the harness
 * loops over the ids in Lua, records its position in ctl.pos, and after an
 * error C records it, marks that SKU, and re-enters at the next one.
 *
 * Single-threaded: every function here runs on the thread that owns vm. */
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedded.h"
#include "rulevm.h"
#include "util.h"

#define HOOK_PERIOD 1000        /* interpreted instructions per budget tick */
#define HOOK_PERIOD_BIG 50      /* hook period once rule code has built big objects */
#define BIG_OBJECT (256u << 10) /* an allocation this big makes .. and < costly opcodes */
#define ALLOC_TICK_BYTES 16384  /* bytes allocated by a metered call per budget tick */

/* Shared with the Lua harness through the FFI (CTL_CDEF must match). */
typedef struct rulevm_ctl {
    const uint32_t *ids;
    uint8_t *out8;
    double *outd;
    double pos, n;   /* next SKU index / batch size */
    int32_t ticks;   /* budget left for the current call, in HOOK_PERIODs */
    int32_t budget, budget_compile;
    int32_t reserved;
} rulevm_ctl_t;

static const char CTL_CDEF[] =
    "typedef struct rulevm_ctl { const uint32_t *ids; uint8_t *out8; double *outd; "
    "double pos, n; int32_t ticks; int32_t budget, budget_compile; int32_t reserved; } "
    "rulevm_ctl_t;";

struct rulevm {
    lua_State *L;
    view_roots_t *roots;
    size_t mem_used, mem_limit;
    int limit_on;  /* enforce mem_limit */
    int killed;    /* the hook fires on every instruction */
    int metering;  /* a rule call runs: charge allocations, cap objects, time it */
    int forced;    /* the allocator made the hook fire on the next instruction */
    int refused;   /* the last allocation failure was the object cap */
    int big_seen;  /* rule code allocated a BIG_OBJECT: hooks every HOOK_PERIOD_BIG */
    int period, period_want;         /* current hook period; the one between kills */
    int period_acc;                  /* instructions (in short periods) not yet a tick */
    size_t alloc_acc;                /* metered bytes not yet a whole tick */
    uint64_t time_budget_ns, time_budget_compile_ns, call_ns, call_start, cpu_mark;
    double last_pos;                 /* ctl.pos the hook saw last (a new SKU restarts the clock) */
    int ref_compile, ref_examples, ref_onerror, ref_explain, ref_evict;
    size_t rule_mem_limit; /* bytes one rule's state may hold (0 = no check) */
    rulevm_ctl_t ctl;
};

static const char *const GLUE[] = {"sandbox", "dsl", "view", "rulevm"};

/* -- Allocator and hook ------------------------------------------------------ */

static void rulevm_hook(lua_State *L, lua_Debug *ar);
static void set_period(rulevm_t *vm, int period);

/* Charges a metered call's allocation to its budget; when the budget is
 * gone the hook fires on the next instruction (lua_sethook may be called at
 * any point, as from a signal handler). */
static void charge_alloc(rulevm_t *vm, size_t bytes) {
    vm->alloc_acc += bytes;
    if (vm->alloc_acc < ALLOC_TICK_BYTES) return;
    size_t t = vm->alloc_acc / ALLOC_TICK_BYTES;
    vm->alloc_acc %= ALLOC_TICK_BYTES;
    int64_t left = (int64_t)vm->ctl.ticks - (int64_t)t;
    vm->ctl.ticks = left < -INT32_MAX ? -INT32_MAX : (int32_t)left;
    if (vm->ctl.ticks < 0 && !vm->killed && !vm->forced) {
        vm->forced = 1;
        set_period(vm, 1);
    }
}

static void *rulevm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    rulevm_t *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->metering) {
        if (nsize > RULEVM_MAX_OBJECT) {
            vm->refused = 1;
            return NULL;
        }
        if (nsize >= BIG_OBJECT) vm->big_seen = 1;
        charge_alloc(vm, nsize - old);
    }
    if (nsize > old && vm->limit_on && vm->mem_limit &&
        vm->mem_used - old + nsize > vm->mem_limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Time budget of the running call: a new SKU (ctl.pos moved) restarts the
 * clock. Past the budget in wall time, the call must also burn half a
 * budget of this thread's CPU time (a costlier clock, read only then), so
 * a writer thread that was merely descheduled does not fail a rule. */
static int over_time(rulevm_t *vm) {
    uint64_t budget = vm->call_ns;
    if (!budget || !vm->metering) return 0;
    uint64_t now = mono_ns();
    if (vm->ctl.pos != vm->last_pos) {
        vm->last_pos = vm->ctl.pos;
        vm->call_start = now;
        vm->cpu_mark = 0;
        return 0;
    }
    if (now - vm->call_start <= budget) return 0;
    uint64_t cpu = thread_cpu_ns();
    if (!vm->cpu_mark) {
        vm->cpu_mark = cpu;
        return 0;
    }
    return cpu - vm->cpu_mark > budget / 2;
}

static void set_period(rulevm_t *vm, int period) {
    vm->period = period;
    lua_sethook(vm->L, rulevm_hook, LUA_MASKCOUNT, period);
}

static void rulevm_hook(lua_State *L, lua_Debug *ar) {
    void *ud;
    lua_getallocf(L, &ud);
    rulevm_t *vm = ud;
    if (!vm->killed) {
        int tick = 1;
        if (vm->period != HOOK_PERIOD && !vm->forced) {
            vm->period_acc += vm->period;
            tick = vm->period_acc >= HOOK_PERIOD;
            if (tick) vm->period_acc -= HOOK_PERIOD;
        }
        if ((!tick || --vm->ctl.ticks >= 0) && !over_time(vm)) {
            if (vm->forced) { /* the budget was refilled for the next SKU */
                vm->forced = 0;
                set_period(vm, vm->period_want);
            } else if (vm->metering && vm->big_seen && vm->period != HOOK_PERIOD_BIG) {
                set_period(vm, HOOK_PERIOD_BIG);
                vm->period_want = HOOK_PERIOD_BIG;
            }
            return;
        }
        vm->killed = 1;
        if (vm->ctl.ticks >= 0) vm->ctl.ticks = -1;
        set_period(vm, 1);
    }
    /* Let glue run back to the rule; raise in rule code only. */
    if (!lua_getinfo(L, "S", ar) || !ar->source || ar->source[0] != '@') return;
    lua_pushliteral(L, "instruction budget exceeded");
    lua_error(L);
}

static void hook_reset(rulevm_t *vm) {
    vm->killed = vm->forced = 0;
    if (vm->period != vm->period_want) set_period(vm, vm->period_want);
}

/* Around every call into rule code: metering on, clock started. */
static void meter_begin(rulevm_t *vm, uint64_t budget_ns) {
    vm->metering = 1;
    vm->refused = 0;
    vm->alloc_acc = 0;
    vm->period_acc = 0;
    vm->call_ns = budget_ns;
    vm->call_start = mono_ns();
    vm->cpu_mark = 0;
    vm->last_pos = vm->ctl.pos;
    vm->period_want = vm->big_seen ? HOOK_PERIOD_BIG : HOOK_PERIOD;
    if (vm->period != vm->period_want) set_period(vm, vm->period_want);
}

static void meter_end(rulevm_t *vm) {
    vm->metering = 0;
    vm->period_want = HOOK_PERIOD;
    hook_reset(vm);
}

static int rulevm_panic(lua_State *L) {
    const char *m = lua_tostring(L, -1);
    log_error("rulevm: unprotected Lua error: %s", m ? m : "?");
    abort();
    return 0;
}

/* Full collection with the cap lifted (a shrinking string table allocates). */
static void full_gc(rulevm_t *vm) {
    int on = vm->limit_on;
    vm->limit_on = 0;
    lua_gc(vm->L, LUA_GCCOLLECT, 0);
    vm->limit_on = on;
}

/* After a memory error: collects, and says whether retrying can help
 * (the cap is not mostly held by live data). */
static int gc_for_retry(rulevm_t *vm) {
    full_gc(vm);
    return !vm->mem_limit || vm->mem_used < vm->mem_limit / 4 * 3;
}

/* Memory short even after a full collection: stops the rule whose state
 * holds the most, if over rule_mem_limit (lua/rulevm.lua M.evict), so one
 * rule cannot starve the others. 1 if a rule was stopped and memory is
 * back under the retry threshold. */
static int evict_hog(rulevm_t *vm) {
    lua_State *L = vm->L;
    if (!vm->rule_mem_limit) return 0;
    int on = vm->limit_on, top = lua_gettop(L), evicted = 0;
    vm->limit_on = 0; /* the walk allocates */
    vm->ctl.ticks = INT32_MAX;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_evict);
    lua_pushnumber(L, (lua_Number)vm->rule_mem_limit);
    if (lua_pcall(L, 1, 2, 0) == 0 && lua_isstring(L, -2)) {
        log_warn("rulevm: %s: %s", lua_tostring(L, -2), lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        evicted = 1;
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0);
    vm->limit_on = on;
    return evicted && vm->mem_used < vm->mem_limit / 4 * 3;
}

/* -- Errors ------------------------------------------------------------------ */

static void err_set(rule_error_t *err, const char *file, int line, const char *msg) {
    if (!err) return;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    snprintf(err->msg, sizeof err->msg, "%s", msg ? msg : "");
}

/* Fills err from a failed pcall: the handler's {file|false, line, msg} on
 * top of the stack, or a plain string. Allocates nothing. */
static void err_take(rulevm_t *vm, int rc, const char *file, rule_error_t *err) {
    lua_State *L = vm->L;
    char buf[96];
    if (!err) return;
    if (rc == LUA_ERRMEM && vm->refused) {
        snprintf(buf, sizeof buf, "a single string or table would exceed %u MB",
                 (unsigned)(RULEVM_MAX_OBJECT >> 20));
        err_set(err, file, 0, buf);
    } else if (rc == LUA_ERRMEM) {
        snprintf(buf, sizeof buf, "memory limit exceeded (%zu KB for all rules)",
                 vm->mem_limit / 1024);
        err_set(err, file, 0, buf);
    } else if (rc == LUA_ERRERR) {
        err_set(err, file, 0, "error while reporting an error (stack overflow or memory limit)");
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        const char *f = file, *m = "error";
        int line = 0;
        lua_rawgeti(L, -1, 1);
        if (lua_type(L, -1) == LUA_TSTRING) f = lua_tostring(L, -1);
        lua_rawgeti(L, -2, 2);
        if (lua_type(L, -1) == LUA_TNUMBER) line = (int)lua_tointeger(L, -1);
        lua_rawgeti(L, -3, 3);
        if (lua_type(L, -1) == LUA_TSTRING) m = lua_tostring(L, -1);
        err_set(err, f, line, m);
        lua_pop(L, 3);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        err_set(err, file, 0, lua_tostring(L, -1));
    } else {
        err_set(err, file, 0, "unknown error");
    }
}

/* -- Setup -------------------------------------------------------------------- */

static int setup_cfn(lua_State *L) {
    rulevm_t *vm = lua_touserdata(L, 1);
    char path[64], chunk[64];
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (size_t i = 0; i < sizeof GLUE / sizeof GLUE[0]; i++) {
        snprintf(path, sizeof path, "lua/%s.lua", GLUE[i]);
        snprintf(chunk, sizeof chunk, "=lua/%s.lua", GLUE[i]);
        const embedded_file_t *f = embedded_find(path);
        if (!f) return luaL_error(L, "embedded file %s is missing", path);
        if (luaL_loadbuffer(L, (const char *)f->data, f->size, chunk)) return lua_error(L);
        lua_setfield(L, -2, GLUE[i]);
    }
    lua_pop(L, 2);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "rulevm");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "init");
    lua_pushlightuserdata(L, vm->roots);
    lua_pushstring(L, view_cdef());
    lua_pushstring(L, CTL_CDEF);
    lua_pushlightuserdata(L, &vm->ctl);
    lua_call(L, 4, 0);
    lua_getfield(L, -1, "compile");
    vm->ref_compile = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "examples");
    vm->ref_examples = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "on_error");
    vm->ref_onerror = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "evict");
    vm->ref_evict = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "explain");
    vm->ref_explain = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return 0;
}

rulevm_t *rulevm_new(view_roots_t *roots, size_t mem_limit_bytes, rule_error_t *err) {
    rulevm_t *vm = xcalloc(1, sizeof *vm);
    vm->roots = roots;
    vm->mem_limit = mem_limit_bytes;
    vm->rule_mem_limit = mem_limit_bytes / RULEVM_RULE_MEM_SHARE;
    vm->ctl.budget = (int32_t)(RULEVM_DEFAULT_BUDGET / HOOK_PERIOD);
    vm->ctl.budget_compile = (int32_t)(RULEVM_DEFAULT_COMPILE_BUDGET / HOOK_PERIOD);
    vm->ctl.ticks = INT32_MAX;
    vm->time_budget_ns = (uint64_t)RULEVM_DEFAULT_TIME_BUDGET_US * 1000;
    vm->time_budget_compile_ns = (uint64_t)RULEVM_DEFAULT_COMPILE_TIME_BUDGET_US * 1000;
    vm->L = lua_newstate(rulevm_alloc, vm);
    if (!vm->L) {
        err_set(err, "", 0, "cannot create a Lua state with a custom allocator (LuaJIT without GC64?)");
        free(vm);
        return NULL;
    }
    lua_atpanic(vm->L, rulevm_panic);
    int rc = lua_cpcall(vm->L, setup_cfn, vm);
    if (rc) {
        const char *m = lua_tostring(vm->L, -1);
        err_set(err, "", 0, m ? m : "cannot set up the rule VM");
        lua_close(vm->L);
        free(vm);
        return NULL;
    }
    lua_settop(vm->L, 0);
    full_gc(vm);
    vm->period_want = HOOK_PERIOD;
    set_period(vm, HOOK_PERIOD);
    vm->limit_on = 1;
    return vm;
}

void rulevm_free(rulevm_t *vm) {
    if (!vm) return;
    vm->limit_on = 0;
    lua_close(vm->L);
    free(vm);
}

void rulevm_set_budget(rulevm_t *vm, long per_call, long per_compile) {
    if (!vm) return;
    if (per_call > 0)
        vm->ctl.budget = per_call / HOOK_PERIOD >= INT32_MAX ? INT32_MAX
                         : (int32_t)((per_call + HOOK_PERIOD - 1) / HOOK_PERIOD);
    if (per_compile > 0)
        vm->ctl.budget_compile = per_compile / HOOK_PERIOD >= INT32_MAX ? INT32_MAX
                         : (int32_t)((per_compile + HOOK_PERIOD - 1) / HOOK_PERIOD);
}

void rulevm_set_time_budget(rulevm_t *vm, long per_call_us, long per_compile_us) {
    if (!vm) return;
    if (per_call_us > 0) vm->time_budget_ns = (uint64_t)per_call_us * 1000;
    if (per_compile_us > 0) vm->time_budget_compile_ns = (uint64_t)per_compile_us * 1000;
}

size_t rulevm_memory(const rulevm_t *vm) {
    return vm ? vm->mem_used : 0;
}

/* -- Compile ------------------------------------------------------------------ */

typedef struct compile_call {
    rulevm_t *vm;
    const char *file, *name_hint, *src;
    size_t len;
    rule_def_t *def;
    rule_error_t *err;
    int failed;
    int rc; /* the inner pcall's status when failed */
} compile_call_t;

static char *field_str(lua_State *L, int t, const char *key) {
    lua_getfield(L, t, key);
    size_t n = 0;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "";
    char *r = xstrndup(s, n);
    lua_pop(L, 1);
    return r;
}

static double field_num(lua_State *L, int t, const char *key) {
    lua_getfield(L, t, key);
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    return v;
}

static int field_bool(lua_State *L, int t, const char *key) {
    lua_getfield(L, t, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static char **field_list(lua_State *L, int t, const char *key, size_t *n_out) {
    lua_getfield(L, t, key);
    size_t n = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
    char **list = xcalloc(n ? n : 1, sizeof *list);
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        size_t len = 0;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : "";
        list[i] = xstrndup(s, len);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return list;
}

static int compile_cfn(lua_State *L) {
    compile_call_t *c = lua_touserdata(L, 1);
    rulevm_t *vm = c->vm;
    rule_def_t *d = c->def;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_onerror); /* 2 */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_compile);
    lua_pushstring(L, c->file);
    if (c->name_hint)
        lua_pushstring(L, c->name_hint);
    else
        lua_pushnil(L);
    lua_pushlstring(L, c->src, c->len);
    int rc = lua_pcall(L, 3, 1, 2);
    if (rc) {
        err_take(vm, rc, c->file, c->err);
        c->failed = 1;
        c->rc = rc;
        return 0;
    }
    /* The rule object is at 3. */
    d->name = field_str(L, 3, "name");
    d->title = field_str(L, 3, "title");
    d->where = field_str(L, 3, "where");
    d->has_match = field_bool(L, 3, "has_match");
    d->has_rank = field_bool(L, 3, "has_rank");
    d->limit = (long)field_num(L, 3, "limit");
    d->active_from = (int64_t)field_num(L, 3, "active_from");
    d->active_to = (int64_t)field_num(L, 3, "active_to");
    d->nexamples = (int)field_num(L, 3, "nexamples");
    d->pin = field_list(L, 3, "pin", &d->npin);
    d->exclude = field_list(L, 3, "exclude", &d->nexclude);
    lua_settop(L, 3);
    d->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Frees what compile_cfn filled in, keeping file. */
static void def_clear(rule_def_t *d) {
    free(d->name);
    free(d->title);
    free(d->where);
    for (size_t i = 0; d->pin && i < d->npin; i++) free(d->pin[i]);
    free(d->pin);
    for (size_t i = 0; d->exclude && i < d->nexclude; i++) free(d->exclude[i]);
    free(d->exclude);
    char *file = d->file;
    memset(d, 0, sizeof *d);
    d->file = file;
    d->ref = LUA_NOREF;
}

static void def_free(rule_def_t *d) {
    if (!d) return;
    def_clear(d);
    free(d->file);
    free(d);
}

int rulevm_compile(rulevm_t *vm, const char *file, const char *name_hint, const char *src,
                   size_t len, rule_def_t **out, rule_error_t *err) {
    if (out) *out = NULL;
    if (!vm || !file || !src || !out) {
        err_set(err, file, 0, "rulevm_compile: bad arguments");
        return -1;
    }
    rule_def_t *d = xcalloc(1, sizeof *d);
    d->ref = LUA_NOREF;
    d->file = xstrdup(file);
    compile_call_t c;
    int rc;
    for (int attempt = 0;; attempt++) {
        c = (compile_call_t){vm, file, name_hint, src, len, d, err, 0, 0};
        meter_begin(vm, vm->time_budget_compile_ns);
        rc = lua_cpcall(vm->L, compile_cfn, &c);
        meter_end(vm);
        if (rc) err_take(vm, rc, file, err);
        lua_settop(vm->L, 0);
        vm->ctl.ticks = INT32_MAX;
        if (!rc && !c.failed) break;
        int mem = (rc == LUA_ERRMEM || c.rc == LUA_ERRMEM) && !vm->refused;
        def_clear(d);
        if (!(mem && attempt == 0 && (gc_for_retry(vm) || evict_hog(vm)))) {
            full_gc(vm); /* drop what the failed rule built */
            def_free(d);
            return -1;
        }
    }
    *out = d;
    return 0;
}

void rulevm_release(rulevm_t *vm, rule_def_t *def) {
    if (!def) return;
    if (vm && def->ref != LUA_NOREF && def->ref != LUA_REFNIL) {
        int on = vm->limit_on;
        vm->limit_on = 0; /* luaL_unref may grow the registry */
        luaL_unref(vm->L, LUA_REGISTRYINDEX, def->ref);
        vm->limit_on = on;
        /* A rule may hold a lot (its own tables); give it back now when the
         * cap is getting close. Compiled traces keep the constants they were
         * recorded with (a released rule's tables too): flush them first. */
        if (vm->mem_limit && vm->mem_used > vm->mem_limit / 2) {
            luaJIT_setmode(vm->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_FLUSH);
            full_gc(vm);
        }
    }
    def_free(def);
}

/* -- Evaluation --------------------------------------------------------------- */

/* Runs the rule's harness `slot` (1 match, 2 rank) over ids[0..n). */
static long run_batch(rulevm_t *vm, const rule_def_t *def, int slot, const uint32_t *ids,
                      size_t n, uint8_t *out8, double *outd, rule_error_t *first_err) {
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    long errors = 0;
    size_t pos = 0, mem_retry = SIZE_MAX;
    vm->ctl.ids = ids;
    vm->ctl.out8 = out8;
    vm->ctl.outd = outd;
    vm->ctl.n = (double)n;
    while (pos < n) {
        vm->ctl.pos = (double)pos;
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_onerror);
        lua_rawgeti(L, LUA_REGISTRYINDEX, def->ref);
        lua_rawgeti(L, -1, slot);
        if (!lua_isfunction(L, -1)) { /* stopped by evict_hog: every SKU fails */
            lua_getfield(L, -2, "evicted");
            if (first_err && !errors)
                err_set(first_err, def->file, 0, lua_isstring(L, -1) ? lua_tostring(L, -1) : "rule stopped");
            lua_settop(L, top);
            for (size_t i = pos; i < n; i++) {
                if (out8) out8[i] = 0;
                if (outd) outd[i] = -HUGE_VAL;
            }
            errors += (long)(n - pos);
            break;
        }
        meter_begin(vm, vm->time_budget_ns);
        int rc = lua_pcall(L, 0, 0, top + 1);
        meter_end(vm);
        if (rc == 0) {
            lua_settop(L, top);
            break;
        }
        size_t i = (size_t)vm->ctl.pos;
        if (i < pos || i >= n) i = pos;
        if (rc == LUA_ERRMEM && !vm->refused && mem_retry != i) { /* garbage may be all it was */
            lua_settop(L, top);
            mem_retry = i;
            if (gc_for_retry(vm) || evict_hog(vm)) {
                pos = i;
                continue;
            }
        }
        if (++errors == 1) err_take(vm, rc, def->file, first_err);
        lua_settop(L, top);
        if (out8) out8[i] = 0;
        if (outd) outd[i] = -HUGE_VAL;
        pos = i + 1;
    }
    vm->ctl.ticks = INT32_MAX;
    vm->ctl.ids = NULL;
    vm->ctl.out8 = NULL;
    vm->ctl.outd = NULL;
    return errors;
}

long rulevm_match(rulevm_t *vm, const rule_def_t *def, const uint32_t *ids, size_t n,
                  uint8_t *out, rule_error_t *first_err) {
    if (!vm || !def || !n) return 0;
    if (!def->has_match) {
        memset(out, 1, n);
        return 0;
    }
    return run_batch(vm, def, 1, ids, n, out, NULL, first_err);
}

long rulevm_rank(rulevm_t *vm, const rule_def_t *def, const uint32_t *ids, size_t n,
                 double *out, rule_error_t *first_err) {
    if (!vm || !def || !n) return 0;
    if (!def->has_rank) {
        for (size_t i = 0; i < n; i++) out[i] = 0;
        return 0;
    }
    return run_batch(vm, def, 2, ids, n, NULL, out, first_err);
}

int rulevm_run_examples(rulevm_t *vm, const rule_def_t *def, rule_error_t *err) {
    if (!vm || !def) return -1;
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_onerror);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_examples);
    lua_rawgeti(L, LUA_REGISTRYINDEX, def->ref);
    meter_begin(vm, vm->time_budget_compile_ns);
    int rc = lua_pcall(L, 1, 0, top + 1);
    meter_end(vm);
    vm->ctl.ticks = INT32_MAX;
    if (rc) err_take(vm, rc, def->file, err);
    lua_settop(L, top);
    if (rc == LUA_ERRMEM) full_gc(vm);
    return rc ? -1 : 0;
}

char *rulevm_explain(rulevm_t *vm, const rule_def_t *def, uint32_t id, rule_error_t *err) {
    if (!vm || !def) return NULL;
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_onerror);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_explain);
    lua_rawgeti(L, LUA_REGISTRYINDEX, def->ref);
    lua_pushnumber(L, (lua_Number)id);
    meter_begin(vm, vm->time_budget_ns);
    int rc = lua_pcall(L, 2, 1, top + 1);
    meter_end(vm);
    vm->ctl.ticks = INT32_MAX;
    char *out = NULL;
    if (rc) err_take(vm, rc, def->file, err);
    else {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (s) {
            out = xmalloc(len + 1);
            memcpy(out, s, len);
            out[len] = '\0';
        } else {
            err_set(err, def->file, 0, "explain returned no text");
        }
    }
    lua_settop(L, top);
    if (rc == LUA_ERRMEM) full_gc(vm);
    return out;
}

int rulevm_rule_is_jit(rulevm_t *vm, const rule_def_t *def) {
    if (!vm || !def) return 0;
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, def->ref);
    int r = 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, 3);
        r = lua_toboolean(L, -1);
    }
    lua_settop(L, top);
    return r;
}
