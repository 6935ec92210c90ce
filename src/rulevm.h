/* rulevm.h - the rule VM: compiles rule files (lua/dsl.lua) in a sandbox
 * and evaluates their match/rank functions over SKUs through the FFI view
 * of view.h.
 *
 * One rulevm_t is one lua_State with a memory cap (custom allocator) and an
 * instruction budget per evaluation (count hook). It is single-threaded:
 * the writer thread (or `poold check`) owns it and every call on it.
 * A rule that errors, loops or allocates without bound gets an error
 * (rule_error_t: file, line, message); it never crashes the engine and never
 * changes another rule's results.
 *
 * What is bounded (see lua/sandbox.lua and rulevm.c):
 *   - memory: the whole VM (all its rules together) by mem_limit_bytes;
 *   - time: a rule's top level, examples, and every match/rank that runs
 *     interpreted, by the instruction budget per call, to which allocation
 *     (ALLOC_TICK_BYTES per tick) and metered library work (lua/sandbox.lua:
 *     patterns, sort, insert/remove, ...) are charged, plus a time budget
 *     per call checked by the hook; match/rank run JIT-compiled only when a
 *     static check proves they execute a bounded number of bytecodes (no
 *     loop, no closure creation, no concatenation, no rule function
 *     reachable), because hooks do not fire inside compiled code;
 *   - string.rep results (1 MB); any single string or table a metered call
 *     allocates (RULEVM_MAX_OBJECT); Lua patterns whose worst case exceeds
 *     sandbox.PATTERN_MAX_STEPS are refused.
 *   - a rule's state between calls: when the VM is short of memory after a
 *     full collection, a rule holding over mem_limit / RULEVM_RULE_MEM_SHARE
 *     is stopped (every later evaluation fails, naming it) and its memory
 *     freed, so the other rules go on. */
#ifndef POOLD_RULEVM_H
#define POOLD_RULEVM_H

#include <stddef.h>
#include <stdint.h>
#include "view.h"

typedef struct rulevm rulevm_t;

/* line 0 = unknown (the message is about the whole file). */
typedef struct rule_error {
    char file[256];
    int line;
    char msg[512];
} rule_error_t;

typedef struct rule_def {
    char *name, *title, *file;      /* title "" when absent; file as given */
    char *where;                    /* canonical tag expression; "*" = all SKUs */
    int has_match, has_rank;
    long limit;                     /* 0 = no limit */
    int64_t active_from, active_to; /* ms since epoch, 0 = unbounded */
    char **pin;
    size_t npin;
    char **exclude;
    size_t nexclude;
    int nexamples;
    int ref;                        /* handle inside the VM (registry ref) */
} rule_def_t;

#define RULEVM_DEFAULT_BUDGET 200000L        /* instructions per match/rank call */
#define RULEVM_DEFAULT_COMPILE_BUDGET 20000000L /* instructions for a file's top level */
#define RULEVM_DEFAULT_TIME_BUDGET_US 20000L          /* time per match/rank call */
#define RULEVM_DEFAULT_COMPILE_TIME_BUDGET_US 2000000L /* top level; all examples of a rule */
#define RULEVM_MAX_OBJECT (16u << 20)  /* bytes of one allocation while rule code runs */
#define RULEVM_RULE_MEM_SHARE 8        /* one rule's state may hold mem_limit / this */

/* roots must outlive the VM; its fields may change between calls. NULL on
 * failure with err filled (err may be NULL). mem_limit_bytes 0 = no cap. */
rulevm_t *rulevm_new(view_roots_t *roots, size_t mem_limit_bytes, rule_error_t *err);
void rulevm_free(rulevm_t *vm);

/* Compiles rule source in a fresh sandbox; name_hint is the file base name
 * (NULL when the name may be anything). 0 and *out (free with
 * rulevm_release), or -1 and *err. */
int rulevm_compile(rulevm_t *vm, const char *file, const char *name_hint, const char *src,
                   size_t len, rule_def_t **out, rule_error_t *err);
/* Frees def and its Lua functions. NULL is fine. */
void rulevm_release(rulevm_t *vm, rule_def_t *def);

/* For ids[0..n) (each a valid index of roots->rows, and of roots->win via
 * the row's win): out[i] = 1 if match(s) is truthy (1 when the rule has no
 * match), else 0. A SKU whose evaluation errors or exceeds the budget gets
 * 0. Returns the number of errors; *first_err (may be NULL) gets the first
 * one with file:line. */
long rulevm_match(rulevm_t *vm, const rule_def_t *def, const uint32_t *ids, size_t n,
                  uint8_t *out, rule_error_t *first_err);
/* Same for rank: out[i] = rank(s); errors, non-numbers and NaN -> -inf.
 * A rule without rank gets 0 for every SKU. */
long rulevm_rank(rulevm_t *vm, const rule_def_t *def, const uint32_t *ids, size_t n,
                 double *out, rule_error_t *first_err);

/* Runs the rule's examples against the table-backed view; 0 if all pass,
 * else -1 with err naming the example's line and what differed. */
int rulevm_run_examples(rulevm_t *vm, const rule_def_t *def, rule_error_t *err);

/* Explains one SKU (roots->rows[id] etc. must be current): the JSON text
 *   {"match": {"result": bool, "value": "...", "reads": {field: value},
 *              "error": "file:line: msg"?},          (absent without match)
 *    "rank":  {"score": n|null, "reads": {...}, "error": ...?}}  (absent without rank)
 * where reads lists every SKU field the function read, in the form the rule
 * saw it ("has(tag)" and "attrs.name" for tags and attributes).
 * malloc'd; NULL with err when the explain itself failed. */
char *rulevm_explain(rulevm_t *vm, const rule_def_t *def, uint32_t id, rule_error_t *err);

/* Time budgets in microseconds, per match/rank/explain call and for a
 * file's top level (and all its examples): past it in wall time, a call is
 * stopped once it has also used half of it in CPU time (a descheduled
 * writer does not fail a rule). <= 0 keeps the current value. */
void rulevm_set_time_budget(rulevm_t *vm, long per_call_us, long per_compile_us);

/* Bytes the VM's Lua state holds now. */
size_t rulevm_memory(const rulevm_t *vm);

/* Instruction budgets (rounded to thousands): per match/rank/example call,
 * and for running a rule file's top level. <= 0 keeps the current value. */
void rulevm_set_budget(rulevm_t *vm, long per_call, long per_compile);

/* 1 if the rule's match/rank run JIT-compiled (proved bounded), 0 if they
 * run interpreted under the count hook. */
int rulevm_rule_is_jit(rulevm_t *vm, const rule_def_t *def);

#endif
