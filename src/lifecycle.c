/* lifecycle.c - rule versions going live: start-up load, hot reload, drafts,
 * preview/publish/rollback/delete jobs, explain; see lifecycle.h.
 *
 * Jobs (writer-owned list e->jobs): a job owns a shadow pool built from the
 * new rule and a sorted list of candidate ids (the `where` bitmap over the
 * live SKUs, plus pins) taken when it starts. lifecycle_w_step evaluates
 * the next slice of candidates for at most STEP_BUDGET_NS per writer cycle;
 * meanwhile engine.c evaluates the shadow for every SKU a batch touches,
 * exactly as it does for live pools, so when the scan ends the shadow is
 * exact for the current state: a SKU is right either because the scan saw
 * its latest state or because the batch that changed it re-evaluated it.
 * Then, still between two batches, the job finishes: a swap adopts the
 * shadow into the live pool (the differences become changes of the live
 * pool with cause "publish"), a preview compares it with the live pool and
 * throws it away. The waiting HTTP thread is woken after the next publish,
 * so what it reports is what readers see.
 *
 * At most one swap or delete per rule name runs at a time: a newer one
 * supersedes the older, whose waiter gets 409.
 *
 * Invariants: e->pools stays sorted by name; a pool's version is the
 * rulebook's live version; the rules directory file of a live pool holds
 * its live source once a publish/rollback returns. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "durability.h"
#include "engine_internal.h"
#include "lifecycle.h"
#include "rulebook.h"
#include "util.h"

#define STEP_BUDGET_NS 3000000ull /* per writer cycle, all jobs together */
#define STEP_CHUNK 2048
#define SAMPLE 20
#define MEMBER_SAMPLE 10
#define MAX_POOLS 512                 /* live pools */
#define MAX_RULE_SOURCE (256 * 1024)  /* bytes of Lua per rule */

static atomic_uint_fast64_t limit_pools_hits, limit_source_hits;

typedef enum { JOB_PREVIEW, JOB_SWAP, JOB_DELETE } job_kind_t;

typedef struct rule_job {
    struct rule_job *next;
    job_kind_t kind;
    char name[72];
    char *author;
    rule_version_kind_t vkind;
    uint32_t from;
    char *source;
    pool_t *shadow;
    uint32_t *todo;
    size_t ntodo, pos;
    uint64_t t0;
    json_t *where_counts;
    bool linked;          /* on e->jobs: the waiter waits for done */
    /* Disk work the waiter does after the swap, off the writer (fsyncs). */
    char *history_line;
    bool sync_rule_file;  /* rules/NAME.lua was written or removed at the swap: fsync it */
    uint32_t persist_version;
    draft_write_t draft;
    bool finished;        /* result ready; waiter woken after the next publish */
    bool done;            /* under alock */
    int status;
    json_t *result;
} rule_job_t;

static json_t *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_json(const char *fmt, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(buf));
    return o;
}

static void job_free(rule_job_t *j) {
    if (!j) return;
    free(j->history_line);
    free(j->draft.text);
    free(j->author);
    free(j->source);
    free(j->todo);
    json_decref(j->where_counts);
    json_decref(j->result);
    free(j);
}

/* -- pools array ---------------------------------------------------------------- */

static size_t pool_pos(engine_t *e, const char *name, bool *found) {
    size_t lo = 0, hi = e->npools;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(e->pools[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

static pool_t *find_pool(engine_t *e, const char *name) {
    bool found;
    size_t i = pool_pos(e, name, &found);
    return found ? e->pools[i] : NULL;
}

static void insert_pool(engine_t *e, pool_t *p) {
    bool found;
    size_t i = pool_pos(e, p->name, &found);
    e->pools = xrealloc(e->pools, (e->npools + 1) * sizeof *e->pools);
    memmove(e->pools + i + 1, e->pools + i, (e->npools - i) * sizeof *e->pools);
    e->pools[i] = p;
    e->npools++;
}

static void remove_pool(engine_t *e, pool_t *p) {
    bool found;
    size_t i = pool_pos(e, p->name, &found);
    if (!found) return;
    memmove(e->pools + i, e->pools + i + 1, (e->npools - i - 1) * sizeof *e->pools);
    e->npools--;
}

static void set_publish_info(pool_t *p, const rule_version_t *v) {
    free(p->author);
    p->author = xstrdup(v ? v->author : "file");
    p->published_at = v ? v->at : 0;
    p->view_stale = true;
}

/* -- files ---------------------------------------------------------------------- */

static void rule_path(engine_t *e, const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s.lua", e->rules_dir, name);
}

/* Writes rules/NAME.lua through a temp file and a rename, without fsync (the
 * writer calls it at the swap, so the watcher never sees a stale file);
 * sync_rule_file makes it durable later, off the writer. */
static int write_rule_file(engine_t *e, const char *name, const char *src) {
    char path[4200];
    rule_path(e, name, path, sizeof path);
    return write_file_atomic(path, src, strlen(src), 0); /* NAME.lua.tmp: not a rule name, the watcher ignores it */
}

static void sync_rule_file(engine_t *e, const char *name) {
    char path[4200];
    rule_path(e, name, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0) log_warn("fsync %s: %s", path, strerror(errno));
        close(fd);
    }
    fd = open(e->rules_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* -- compile ---------------------------------------------------------------------- */

static json_t *compile_error_json(const rule_error_t *re) {
    json_t *o = error_json("%s:%d: %s", re->file, re->line, re->msg);
    json_object_set_new(o, "file", json_string(re->file));
    json_object_set_new(o, "line", json_integer(re->line));
    json_object_set_new(o, "message", json_string(re->msg));
    return o;
}

/* Compiles src for rule `name` and builds its (unevaluated) pool. NULL with
 * *err_out (a 400 body) on failure. */
static pool_t *build_pool(engine_t *e, const char *name, const char *src, json_t **err_out,
                          rule_error_t *re_out) {
    char path[4200];
    rule_path(e, name, path, sizeof path);
    rule_def_t *def = NULL;
    rule_error_t re;
    memset(&re, 0, sizeof re);
    engine_refresh_roots(e);
    if (rulevm_compile(e->vm, path, name, src, strlen(src), &def, &re) != 0) {
        if (!re.file[0]) snprintf(re.file, sizeof re.file, "%s", path);
        if (err_out) *err_out = compile_error_json(&re);
        if (re_out) *re_out = re;
        return NULL;
    }
    char perr[512];
    pool_t *p = pool_new(&e->pctx, def, src, perr, sizeof perr);
    if (!p) {
        snprintf(re.file, sizeof re.file, "%s", path);
        re.line = 0;
        snprintf(re.msg, sizeof re.msg, "where: %s", perr);
        if (err_out) *err_out = compile_error_json(&re);
        if (re_out) *re_out = re;
    }
    return p;
}

/* A pool re-created under the name of a deleted one continues past the old
 * pool's last seq (with a gap), so a follower of the old pool gets 410
 * resync instead of silently matching new seqs. */
static void continue_seq(rule_entry_t *ent, pool_t *p) {
    uint64_t last = 0;
    for (size_t i = 0; i < ent->nversions; i++)
        if (ent->versions[i].kind == RV_DELETE && ent->versions[i].seq > last) last = ent->versions[i].seq;
    if (last && p->seq <= last) pool_skip_seq(p, last + ((uint64_t)1 << 32) - p->seq);
}

/* -- start-up ----------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void recompute_new(engine_t *e, pool_t *p, pool_cause_t cause) {
    e->pctx.cause = cause;
    e->pctx.cause_ref = p->version;
    engine_refresh_roots(e);
    pool_recompute(p, &e->pctx);
    e->pctx.cause = CAUSE_EVENT;
    e->pctx.cause_ref = 0;
}

int lifecycle_load(engine_t *e, char *err, size_t errlen) {
    e->rulebook = rulebook_open(e->data_dir, err, errlen);
    if (!e->rulebook) return -1;
    DIR *d = opendir(e->rules_dir);
    if (!d) {
        snprintf(err, errlen, "cannot open rules directory %s: %s", e->rules_dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 4 || strcmp(de->d_name + l - 4, ".lua") != 0 || de->d_name[0] == '.') continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n] = xstrdup(de->d_name);
        names[n++][l - 4] = '\0';
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    rulebook_t *rb = e->rulebook;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        char path[4200];
        rule_path(e, name, path, sizeof path);
        if (!rulebook_valid_name(name)) {
            log_error("rule not loaded: %s: the file name must be 1-64 characters of a-z 0-9 _ -", path);
            atomic_fetch_add(&e->rule_reload_failures, 1);
            continue;
        }
        rule_entry_t *ent = rulebook_ensure(rb, name);
        const rule_version_t *live = rulebook_live(ent);
        size_t len;
        char *src = read_file(path, &len);
        rule_error_t re;
        pool_t *p = NULL;
        if (src && (len > MAX_RULE_SOURCE || strlen(src) != len || e->npools >= MAX_POOLS)) {
            snprintf(re.file, sizeof re.file, "%s", path);
            re.line = 0;
            if (e->npools >= MAX_POOLS) {
                snprintf(re.msg, sizeof re.msg, "too many pools: the limit is %d live pools", MAX_POOLS);
                atomic_fetch_add(&limit_pools_hits, 1);
            } else {
                snprintf(re.msg, sizeof re.msg, "the rule source is %zu bytes (or has a NUL byte); the limit is %d "
                         "bytes (rule source size)", len, MAX_RULE_SOURCE);
                atomic_fetch_add(&limit_source_hits, 1);
            }
            free(src);
            src = NULL;
        } else if (!src) {
            snprintf(re.file, sizeof re.file, "%s", path);
            re.line = 0;
            snprintf(re.msg, sizeof re.msg, "cannot read: %s", strerror(errno));
        } else {
            p = build_pool(e, name, src, NULL, &re);
        }
        if (!p) {
            log_error("rule not loaded: %s:%d: %s", re.file, re.line, re.msg);
            rulebook_set_error(ent, re.file, re.line, re.msg);
            atomic_fetch_add(&e->rule_reload_failures, 1);
            if (live) { /* the previous version stays live */
                log_warn("pool %s: keeping version %u from the history", name, live->version);
                p = build_pool(e, name, live->source, NULL, &re);
                if (p) {
                    p->version = live->version;
                    p->compile_error = xstrdup(ent->error);
                }
            }
            if (!p) {
                free(src);
                continue;
            }
        } else if (live && strcmp(live->source, src) == 0) {
            p->version = live->version;
        } else {
            p->version = (uint32_t)ent->nversions + 1;
        }
        /* Continue the pool's seq and change log from the snapshot; what
         * differs now comes from replayed events, or from a new version. */
        pool_saved_t *saved = durability_take_saved(e, name);
        pool_cause_t cause = CAUSE_PUBLISH;
        if (!saved) continue_seq(ent, p);
        if (saved) {
            if (saved->version == p->version) cause = CAUSE_EVENT;
            pool_restore(p, saved, &e->pctx);
            pool_saved_free(saved);
        }
        uint64_t base = e->generation << 32;
        if (e->unclean_restart && p->seq < base) pool_skip_seq(p, base - p->seq);
        recompute_new(e, p, cause);
        if (p->version > ent->nversions) {
            if (rulebook_add_version(rb, ent, RV_FILE, "file", wall_ms(),
                                     roaring_bitmap_get_cardinality(p->members), src, 0, 0, NULL, err, errlen) != 0) {
                pool_free(p, e->vm);
                free(src);
                for (size_t k = 0; k < n; k++) free(names[k]);
                free(names);
                return -1;
            }
        }
        set_publish_info(p, rulebook_live(ent));
        insert_pool(e, p);
        log_info("pool %s: version %u loaded from %s (%llu members)", p->name, p->version, path,
                 (unsigned long long)roaring_bitmap_get_cardinality(p->members));
        free(src);
    }
    /* Rules whose file went away while poold was down. */
    for (size_t i = 0; i < rulebook_count(rb); i++) {
        rule_entry_t *ent = rulebook_at(rb, i);
        const char *key = ent->name;
        if (!ent->live || (n && bsearch(&key, names, n, sizeof *names, cmp_str))) continue;
        log_info("pool %s: %s.lua is gone; recording the delete", ent->name, ent->name);
        if (rulebook_add_version(rb, ent, RV_DELETE, "file", wall_ms(), 0, "", 0, 0, NULL, err, errlen) != 0) {
            for (size_t k = 0; k < n; k++) free(names[k]);
            free(names);
            return -1;
        }
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    return 0;
}

void lifecycle_free(engine_t *e) {
    while (e->jobs) {
        rule_job_t *j = e->jobs;
        e->jobs = j->next;
        pool_free(j->shadow, e->vm);
        j->shadow = NULL;
    }
    rulebook_free(e->rulebook);
    e->rulebook = NULL;
}

/* -- jobs: start (writer) -------------------------------------------------------------- */

static const roaring_bitmap_t *resolve_tag(void *arg, const char *tag, size_t len) {
    engine_t *e = arg;
    uint32_t id;
    if (tags_find(e->tags, tag, len, &id) != 0) return NULL;
    return tags_bitmap(e->tags, id);
}

/* The top-level clauses of where: the children of a root AND, else the root. */
static size_t where_clauses(const tagexpr_t *w, const tagexpr_node_t *const **out, const tagexpr_node_t **one) {
    const tagexpr_node_t *root = tagexpr_root(w);
    if (root->kind == TAGEXPR_ALL) return 0;
    if (root->kind == TAGEXPR_AND) {
        *out = root->child;
        return root->nchild;
    }
    *one = root;
    *out = one;
    return 1;
}

/* Per-clause counts over the live SKUs: alone and cumulative (AND so far). */
static json_t *clause_counts(engine_t *e, const tagexpr_t *w) {
    json_t *arr = json_array();
    const tagexpr_node_t *const *cl;
    const tagexpr_node_t *one;
    size_t nc = where_clauses(w, &cl, &one);
    const roaring_bitmap_t *live = store_live(e->store);
    roaring_bitmap_t *acc = NULL;
    for (size_t i = 0; i < nc; i++) {
        char *text = tagexpr_node_to_string(cl[i]);
        char perr[200];
        tagexpr_t *x = tagexpr_parse(text, strlen(text), perr, sizeof perr);
        roaring_bitmap_t *b = x ? tagexpr_eval_bitmap(x, resolve_tag, e, live) : roaring_bitmap_create();
        if (!acc) acc = roaring_bitmap_copy(b);
        else roaring_bitmap_and_inplace(acc, b);
        json_t *o = json_object();
        json_object_set_new(o, "clause", json_string(text));
        json_object_set_new(o, "count", json_integer((json_int_t)roaring_bitmap_get_cardinality(b)));
        json_object_set_new(o, "cumulative", json_integer((json_int_t)roaring_bitmap_get_cardinality(acc)));
        json_array_append_new(arr, o);
        roaring_bitmap_free(b);
        tagexpr_free(x);
        free(text);
    }
    if (acc) roaring_bitmap_free(acc); /* CRoaring 0.2 does not take NULL */
    return arr;
}

/* Candidate ids of a shadow pool: where over the live SKUs, plus pins. */
static void take_candidates(engine_t *e, rule_job_t *j) {
    pool_t *s = j->shadow;
    if (!s->active) return;
    roaring_bitmap_t *c = tagexpr_eval_bitmap(s->where, resolve_tag, e, store_live(e->store));
    for (size_t i = 0; i < s->def->npin; i++) {
        uint32_t id;
        if (store_find(e->store, s->def->pin[i], strlen(s->def->pin[i]), &id) == 0) roaring_bitmap_add(c, id);
    }
    j->ntodo = (size_t)roaring_bitmap_get_cardinality(c);
    j->todo = xmalloc((j->ntodo ? j->ntodo : 1) * sizeof *j->todo);
    roaring_bitmap_to_uint32_array(c, j->todo);
    roaring_bitmap_free(c);
}

static void finish(rule_job_t *j, int status, json_t *result) {
    json_decref(j->result);
    j->result = result;
    j->status = status;
    j->finished = true;
}

/* Supersedes running swaps/deletes of the same rule. */
static void supersede(engine_t *e, const char *name) {
    for (rule_job_t *o = e->jobs; o; o = o->next)
        if (!o->finished && o->kind != JOB_PREVIEW && strcmp(o->name, name) == 0) {
            pool_free(o->shadow, e->vm);
            o->shadow = NULL;
            finish(o, 409, error_json("superseded by a newer version of %s", name));
        }
}

static void link_job(engine_t *e, rule_job_t *j) {
    rule_job_t **t = &e->jobs;
    while (*t) t = &(*t)->next;
    j->next = NULL;
    j->linked = true;
    *t = j;
}

/* engine_call body: validates and starts j, or finishes it at once. */
static void job_start(engine_t *e, void *arg) {
    rule_job_t *j = arg;
    j->t0 = mono_ns();
    rule_entry_t *ent = rulebook_get(e->rulebook, j->name);
    pool_t *live = find_pool(e, j->name);
    if (j->kind == JOB_DELETE) {
        if (!live) {
            finish(j, 404, error_json("no live pool named \"%s\"", j->name));
            return;
        }
        supersede(e, j->name);
        link_job(e, j);
        return;
    }
    if (!j->source) { /* preview/publish take the draft */
        if (!ent || !ent->draft) {
            finish(j, 404, error_json("rule %s has no draft: PUT /api/rules/%s first", j->name, j->name));
            return;
        }
        j->source = xstrdup(ent->draft);
    }
    if (!live && e->npools >= MAX_POOLS) {
        atomic_fetch_add(&limit_pools_hits, 1);
        finish(j, 409, error_json("too many pools: the limit is %d live pools (delete one first)", MAX_POOLS));
        return;
    }
    json_t *cerr = NULL;
    j->shadow = build_pool(e, j->name, j->source, &cerr, NULL);
    if (!j->shadow) {
        finish(j, 400, cerr);
        return;
    }
    j->shadow->shadow = true;
    j->shadow->version = ent ? (uint32_t)ent->nversions + 1 : 1;
    if (j->kind == JOB_PREVIEW) j->where_counts = clause_counts(e, j->shadow->where);
    else supersede(e, j->name);
    take_candidates(e, j);
    link_job(e, j);
}

/* -- jobs: finish (writer) ----------------------------------------------------------------- */

static json_t *sample_names(engine_t *e, const roaring_bitmap_t *b, size_t max) {
    json_t *arr = json_array();
    roaring_uint32_iterator_t it;
    roaring_init_iterator(b, &it);
    for (size_t n = 0; it.has_value && n < max; n++) {
        const char *nm = store_name(e->store, it.current_value);
        json_array_append_new(arr, json_string(nm ? nm : ""));
        roaring_advance_uint32_iterator(&it);
    }
    return arr;
}

static json_t *sku_brief(engine_t *e, uint32_t id) {
    const sku_row_t *r = store_row(e->store, id);
    const win_sums_t *w = &windows_sums(e->windows)[r->win];
    json_t *o = json_object();
    const char *nm = store_name(e->store, id);
    json_object_set_new(o, "sku", json_string(nm ? nm : ""));
    json_object_set_new(o, "market", json_string(store_dim_name(e->store, r->market)));
    json_object_set_new(o, "category", json_string(store_dim_name(e->store, r->category)));
    json_object_set_new(o, "brand", json_string(store_dim_name(e->store, r->brand)));
    json_object_set_new(o, "price", json_real(r->price));
    json_object_set_new(o, "list_price", json_real(r->list_price));
    json_object_set_new(o, "discount", json_real(r->discount));
    json_object_set_new(o, "stock", json_integer(r->stock));
    json_object_set_new(o, "rating", json_real(r->rating));
    json_object_set_new(o, "sales_24h", json_integer(w->sales[WIN_24H]));
    return o;
}

static json_t *diff_json(engine_t *e, const roaring_bitmap_t *a, const roaring_bitmap_t *b) {
    roaring_bitmap_t *d = roaring_bitmap_andnot(a, b);
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)roaring_bitmap_get_cardinality(d)));
    json_object_set_new(o, "sample", sample_names(e, d, SAMPLE));
    roaring_bitmap_free(d);
    return o;
}

static void finish_preview(engine_t *e, rule_job_t *j) {
    pool_t *s = j->shadow, *live = find_pool(e, j->name);
    roaring_bitmap_t *empty = roaring_bitmap_create();
    const roaring_bitmap_t *cur = live ? live->members : empty;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "size", json_integer((json_int_t)roaring_bitmap_get_cardinality(s->members)));
    json_t *sample = json_array();
    if (s->ranking) {
        for (size_t i = 0; i < s->norder && i < MEMBER_SAMPLE; i++)
            json_array_append_new(sample, sku_brief(e, s->order[i]));
    } else {
        roaring_uint32_iterator_t it;
        roaring_init_iterator(s->members, &it);
        for (size_t n = 0; it.has_value && n < MEMBER_SAMPLE; n++) {
            json_array_append_new(sample, sku_brief(e, it.current_value));
            roaring_advance_uint32_iterator(&it);
        }
    }
    json_object_set_new(o, "sample", sample);
    json_object_set_new(o, "joins", diff_json(e, s->members, cur));
    json_object_set_new(o, "leaves", diff_json(e, cur, s->members));
    json_object_set_new(o, "where", j->where_counts);
    j->where_counts = NULL;
    json_object_set_new(o, "candidates", json_integer((json_int_t)j->ntodo));
    json_object_set_new(o, "active", json_boolean(s->active));
    json_object_set_new(o, "errors", json_integer((json_int_t)s->errors));
    json_object_set_new(o, "last_error", s->last_error ? json_string(s->last_error) : json_null());
    json_object_set_new(o, "live_version", live ? json_integer(live->version) : json_null());
    json_object_set_new(o, "took_ms", json_real((double)(mono_ns() - j->t0) / 1e6));
    roaring_bitmap_free(empty);
    pool_free(s, e->vm);
    j->shadow = NULL;
    finish(j, 200, o);
}

static void finish_swap(engine_t *e, rule_job_t *j) {
    pool_t *s = j->shadow, *live = find_pool(e, j->name);
    rule_entry_t *ent = rulebook_ensure(e->rulebook, j->name);
    uint64_t size = roaring_bitmap_get_cardinality(s->members);
    uint64_t joins = live ? roaring_bitmap_andnot_cardinality(s->members, live->members) : size;
    uint64_t leaves = live ? roaring_bitmap_andnot_cardinality(live->members, s->members) : 0;
    char err[512];
    if (rulebook_add_version(e->rulebook, ent, j->vkind, j->author, wall_ms(), size, j->source, j->from, 0,
                             &j->history_line, err, sizeof err) != 0) {
        log_error("pool %s: %s", j->name, err);
        pool_free(s, e->vm);
        j->shadow = NULL;
        finish(j, 500, error_json("%s", err));
        return;
    }
    s->version = ent->live;
    e->pctx.cause = CAUSE_PUBLISH;
    e->pctx.cause_ref = s->version;
    if (live) {
        pool_adopt(live, s, &e->pctx, e->vm);
    } else {
        s->shadow = false;
        continue_seq(ent, s);
        pool_go_live(s, &e->pctx);
        insert_pool(e, s);
        live = s;
    }
    e->pctx.cause = CAUSE_EVENT;
    e->pctx.cause_ref = 0;
    j->shadow = NULL;
    set_publish_info(live, rulebook_live(ent));
    free(live->compile_error);
    live->compile_error = NULL;
    if (j->vkind == RV_FILE) rulebook_set_error(ent, NULL, 0, NULL);
    j->persist_version = live->version;
    if (j->vkind != RV_FILE) {
        if (write_rule_file(e, j->name, j->source) != 0)
            log_error("pool %s: version %u is live but %s/%s.lua could not be written: %s", j->name, live->version,
                      e->rules_dir, j->name, strerror(errno));
        j->sync_rule_file = true;
    }
    if (j->vkind == RV_PUBLISH && ent->draft && strcmp(ent->draft, j->source) == 0)
        rulebook_set_draft(e->rulebook, ent, NULL, NULL, 0, &j->draft);
    double took = (double)(mono_ns() - j->t0) / 1e6;
    log_info("pool %s: version %u live (%s by %s): %llu members, +%llu -%llu, %.1f ms", j->name, live->version,
             rule_version_kind_name(j->vkind), j->author, (unsigned long long)size, (unsigned long long)joins,
             (unsigned long long)leaves, took);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "version", json_integer(live->version));
    json_object_set_new(o, "size", json_integer((json_int_t)size));
    json_object_set_new(o, "joins", json_integer((json_int_t)joins));
    json_object_set_new(o, "leaves", json_integer((json_int_t)leaves));
    json_object_set_new(o, "seq", json_integer((json_int_t)live->seq));
    json_object_set_new(o, "took_ms", json_real(took));
    finish(j, 200, o);
}

static void finish_delete(engine_t *e, rule_job_t *j) {
    pool_t *live = find_pool(e, j->name);
    if (!live) {
        finish(j, 404, error_json("no live pool named \"%s\"", j->name));
        return;
    }
    rule_entry_t *ent = rulebook_ensure(e->rulebook, j->name);
    char err[512];
    if (rulebook_add_version(e->rulebook, ent, RV_DELETE, j->author, wall_ms(), 0, "", 0, live->seq,
                             &j->history_line, err, sizeof err) != 0) {
        finish(j, 500, error_json("%s", err));
        return;
    }
    uint32_t version = (uint32_t)ent->nversions;
    j->persist_version = version;
    if (j->vkind != RV_FILE) {
        char path[4200];
        rule_path(e, j->name, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            log_error("pool %s: deleted, but %s could not be removed: %s", j->name, path, strerror(errno));
        j->sync_rule_file = true;
    }
    remove_pool(e, live);
    pool_retire(live, e->vm, &e->retired);
    log_info("pool %s: deleted (version %u, by %s)", j->name, version, j->author);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "version", json_integer(version));
    json_object_set_new(o, "deleted", json_true());
    finish(j, 200, o);
}

/* -- writer hooks --------------------------------------------------------------------------- */

bool lifecycle_w_busy(engine_t *e) { return e->jobs != NULL; }

size_t lifecycle_w_shadows(engine_t *e, pool_t **out, size_t max) {
    size_t n = 0;
    for (rule_job_t *j = e->jobs; j && n < max; j = j->next)
        if (j->shadow && !j->finished) out[n++] = j->shadow;
    return n;
}

void lifecycle_w_full_recomputed(engine_t *e) {
    for (rule_job_t *j = e->jobs; j; j = j->next)
        if (j->shadow) j->pos = j->ntodo;
}

void lifecycle_w_step(engine_t *e) {
    uint64_t deadline = mono_ns() + STEP_BUDGET_NS;
    for (rule_job_t *j = e->jobs; j; j = j->next) {
        if (j->finished) continue;
        while (j->shadow && j->pos < j->ntodo && mono_ns() < deadline) {
            size_t n = j->ntodo - j->pos < STEP_CHUNK ? j->ntodo - j->pos : STEP_CHUNK;
            engine_refresh_roots(e);
            pool_eval_ids(j->shadow, &e->pctx, j->todo + j->pos, n);
            j->pos += n;
        }
        if (j->shadow && j->pos < j->ntodo) continue;
        if (j->kind == JOB_PREVIEW) finish_preview(e, j);
        else if (j->kind == JOB_SWAP) finish_swap(e, j);
        else finish_delete(e, j);
    }
}

void lifecycle_w_published(engine_t *e) {
    rule_job_t **pp = &e->jobs;
    bool woke = false;
    while (*pp) {
        rule_job_t *j = *pp;
        if (!j->finished) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        pthread_mutex_lock(&e->alock);
        j->done = true;
        pthread_mutex_unlock(&e->alock);
        woke = true;
    }
    if (woke) {
        pthread_mutex_lock(&e->alock);
        pthread_cond_broadcast(&e->acond);
        pthread_mutex_unlock(&e->alock);
    }
}

void lifecycle_w_abort(engine_t *e) {
    for (rule_job_t *j = e->jobs; j; j = j->next) {
        if (j->finished) continue;
        pool_free(j->shadow, e->vm);
        j->shadow = NULL;
        finish(j, 503, error_json("poold is shutting down"));
    }
    lifecycle_w_published(e);
}

/* -- running a job from another thread ------------------------------------------------------- */

static rule_job_t *job_new(job_kind_t kind, const char *name, const char *author) {
    rule_job_t *j = xcalloc(1, sizeof *j);
    j->kind = kind;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->author = xstrdup(author && *author ? author : "anonymous");
    return j;
}

/* The disk side of a finished swap/delete, on the waiting thread: the
 * history line (fsync'd), the rules file's fsync, the draft file. */
static int persist(engine_t *e, rule_job_t *j, json_t **out) {
    char err[600];
    if (j->history_line && rulebook_write_line(e->rulebook, j->history_line, err, sizeof err) != 0) {
        log_error("pool %s: version %u is live but not recorded: %s", j->name, j->persist_version, err);
        json_decref(*out);
        *out = error_json("version %u is live but could not be recorded in the history: %s", j->persist_version, err);
        return 500;
    }
    if (j->sync_rule_file) sync_rule_file(e, j->name);
    if (rulebook_write_draft(&j->draft, err, sizeof err) != 0) log_warn("pool %s: %s", j->name, err);
    return 0;
}

/* Starts j on the writer and waits for its result; frees j. */
static int run_job(engine_t *e, rule_job_t *j, json_t **out) {
    if (engine_call(e, job_start, j) != 0) {
        job_free(j);
        *out = error_json("poold is shutting down");
        return 503;
    }
    if (j->linked) {
        pthread_mutex_lock(&e->alock);
        while (!j->done) pthread_cond_wait(&e->acond, &e->alock);
        pthread_mutex_unlock(&e->alock);
    }
    int status = j->status;
    *out = j->result;
    j->result = NULL;
    if (status == 200) {
        int ps = persist(e, j, out);
        if (ps) status = ps;
    }
    job_free(j);
    return status;
}

static int bad_name(const char *name, json_t **out) {
    if (rulebook_valid_name(name)) return 0;
    *out = error_json("invalid rule name \"%.80s\": use 1-64 characters of a-z 0-9 _ -", name);
    return 400;
}

int lifecycle_preview(engine_t *e, const char *name, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st;
    return run_job(e, job_new(JOB_PREVIEW, name, NULL), out);
}

int lifecycle_publish(engine_t *e, const char *name, const char *author, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st;
    rule_job_t *j = job_new(JOB_SWAP, name, author);
    j->vkind = RV_PUBLISH;
    return run_job(e, j, out);
}

typedef struct version_call {
    const char *name;
    uint32_t version;
    char *source;
    int status;
    json_t *err;
} version_call_t;

static void version_source(engine_t *e, void *arg) {
    version_call_t *c = arg;
    rule_entry_t *ent = rulebook_get(e->rulebook, c->name);
    if (!ent || !ent->nversions) {
        c->status = 404;
        c->err = error_json("rule %s has no history", c->name);
    } else if (c->version < 1 || c->version > ent->nversions) {
        c->status = 404;
        c->err = error_json("rule %s has versions 1 to %zu, not %u", c->name, ent->nversions, c->version);
    } else if (ent->versions[c->version - 1].kind == RV_DELETE) {
        c->status = 400;
        c->err = error_json("version %u of %s is a delete; roll back to a version with a source", c->version,
                            c->name);
    } else {
        c->source = xstrdup(ent->versions[c->version - 1].source);
    }
}

int lifecycle_rollback(engine_t *e, const char *name, uint32_t version, const char *author, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st;
    version_call_t c = {name, version, NULL, 0, NULL};
    if (engine_call(e, version_source, &c) != 0) {
        *out = error_json("poold is shutting down");
        return 503;
    }
    if (c.status) {
        *out = c.err;
        return c.status;
    }
    rule_job_t *j = job_new(JOB_SWAP, name, author);
    j->vkind = RV_ROLLBACK;
    j->from = version;
    j->source = c.source;
    return run_job(e, j, out);
}

int lifecycle_delete(engine_t *e, const char *name, const char *author, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st;
    rule_job_t *j = job_new(JOB_DELETE, name, author);
    j->vkind = RV_DELETE;
    return run_job(e, j, out);
}

/* -- drafts ------------------------------------------------------------------------------------ */

typedef struct draft_call {
    const char *name, *source, *author;
    int status;
    json_t *out;
    draft_write_t write; /* done by the caller, off the writer */
} draft_call_t;

static void draft_on_writer(engine_t *e, void *arg) {
    draft_call_t *c = arg;
    rule_entry_t *ent = rulebook_get(e->rulebook, c->name);
    if (!c->source) { /* discard */
        if (!ent || !ent->draft) {
            c->status = 404;
            c->out = error_json("rule %s has no draft", c->name);
            return;
        }
        rulebook_set_draft(e->rulebook, ent, NULL, NULL, 0, &c->write);
        c->status = 200;
        c->out = json_pack("{s:s, s:b}", "name", c->name, "discarded", 1);
        return;
    }
    if (strlen(c->source) > MAX_RULE_SOURCE) {
        atomic_fetch_add(&limit_source_hits, 1);
        c->status = 413;
        c->out = error_json("the rule source is %zu bytes; the limit is %d bytes (rule source size)",
                            strlen(c->source), MAX_RULE_SOURCE);
        return;
    }
    json_t *cerr = NULL;
    pool_t *p = build_pool(e, c->name, c->source, &cerr, NULL);
    if (!p) {
        c->status = 400;
        c->out = cerr;
        return;
    }
    pool_free(p, e->vm);
    ent = rulebook_ensure(e->rulebook, c->name);
    int64_t now = wall_ms();
    rulebook_set_draft(e->rulebook, ent, c->source, c->author, now, &c->write);
    c->status = 200;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "draft", json_pack("{s:s, s:s, s:I}", "source", c->source, "author", ent->draft_author,
                                              "saved_at", (json_int_t)now));
    c->out = o;
}

int lifecycle_put_draft(engine_t *e, const char *name, const char *source, const char *author, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st;
    draft_call_t c = {name, source, author && *author ? author : "anonymous", 0, NULL, {"", NULL}};
    if (engine_call(e, draft_on_writer, &c) != 0) {
        *out = error_json("poold is shutting down");
        return 503;
    }
    *out = c.out;
    char err[600];
    if (rulebook_write_draft(&c.write, err, sizeof err) != 0) {
        json_decref(*out);
        *out = error_json("%s", err);
        return 500;
    }
    return c.status;
}

int lifecycle_discard_draft(engine_t *e, const char *name, json_t **out) {
    return lifecycle_put_draft(e, name, NULL, NULL, out);
}

/* -- reading rules ---------------------------------------------------------------------------- */

static const char *pool_state(const pool_t *p, int64_t now) {
    if (p->compile_error || p->errors_now || p->errors_recent) return "failing";
    const rule_def_t *d = p->def;
    if (d->active_from && now < d->active_from) return "scheduled";
    if (!p->active) return "inactive";
    return "live";
}

static json_t *cost_json(const pool_cost_t *c) {
    json_t *o = json_object();
    json_object_set_new(o, "evaluations", json_integer((json_int_t)atomic_load(&c->evaluations)));
    json_object_set_new(o, "calls", json_integer((json_int_t)atomic_load(&c->calls)));
    json_object_set_new(o, "errors", json_integer((json_int_t)atomic_load(&c->errors)));
    json_object_set_new(o, "eval_seconds", json_real((double)atomic_load(&c->ns) / 1e9));
    json_t *le = json_array(), *counts = json_array();
    for (int i = 0; i <= POOL_COST_BUCKETS; i++) {
        json_array_append_new(le, i < POOL_COST_BUCKETS ? json_real(pool_cost_bucket_le[i]) : json_string("+Inf"));
        json_array_append_new(counts, json_integer((json_int_t)atomic_load(&c->hist[i])));
    }
    json_object_set_new(o, "hist", json_pack("{s:o, s:o}", "le", le, "counts", counts));
    return o;
}

static json_t *rule_summary(engine_t *e, rule_entry_t *ent, bool full) {
    pool_t *p = find_pool(e, ent->name);
    const rule_version_t *live = rulebook_live(ent);
    int64_t now = atomic_load(&e->clock_ms);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(ent->name));
    json_object_set_new(o, "title", json_string(p && p->def->title ? p->def->title : ""));
    json_object_set_new(o, "version", p ? json_integer(p->version) : json_null());
    json_object_set_new(o, "state", json_string(p ? pool_state(p, now)
                                                  : live ? "failing"
                                                  : ent->nversions ? "deleted"
                                                  : ent->draft ? "draft" : "failing"));
    char path[4200];
    rule_path(e, ent->name, path, sizeof path);
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "size", p ? json_integer((json_int_t)roaring_bitmap_get_cardinality(p->members))
                                     : json_null());
    json_object_set_new(o, "has_draft", json_boolean(ent->draft != NULL));
    json_object_set_new(o, "published_at", live ? json_integer(live->at) : json_null());
    json_object_set_new(o, "author", live ? json_string(live->author) : json_null());
    json_object_set_new(o, "versions", json_integer((json_int_t)ent->nversions));
    json_t *err = json_null();
    if (ent->error) {
        err = json_object();
        json_object_set_new(err, "file", json_string(ent->error_file));
        json_object_set_new(err, "line", json_integer(ent->error_line));
        json_object_set_new(err, "message", json_string(ent->error_msg));
        json_object_set_new(err, "text", json_string(ent->error));
    }
    json_object_set_new(o, "error", err);
    json_object_set_new(o, "runtime_errors", p ? json_integer((json_int_t)p->errors) : json_integer(0));
    json_object_set_new(o, "last_runtime_error", p && p->last_error ? json_string(p->last_error) : json_null());
    if (!full) return o;
    json_object_set_new(o, "source", p ? json_string(p->source) : live ? json_string(live->source) : json_null());
    json_t *draft = json_null();
    if (ent->draft)
        draft = json_pack("{s:s, s:s, s:I}", "source", ent->draft, "author", ent->draft_author, "saved_at",
                          (json_int_t)ent->draft_at);
    json_object_set_new(o, "draft", draft);
    json_t *hist = json_array();
    for (size_t i = 0; i < ent->nversions; i++) {
        const rule_version_t *v = &ent->versions[i];
        json_t *h = json_object();
        json_object_set_new(h, "version", json_integer(v->version));
        json_object_set_new(h, "kind", json_string(rule_version_kind_name(v->kind)));
        json_object_set_new(h, "author", json_string(v->author));
        json_object_set_new(h, "at", json_integer(v->at));
        json_object_set_new(h, "size", json_integer((json_int_t)v->size));
        json_object_set_new(h, "source", json_string(v->source));
        json_object_set_new(h, "from", v->from ? json_integer(v->from) : json_null());
        json_object_set_new(h, "live", json_boolean(v->version == ent->live));
        json_array_append_new(hist, h);
    }
    json_object_set_new(o, "history", hist);
    json_t *pins = json_array(), *excl = json_array();
    if (p) {
        for (size_t i = 0; i < p->def->npin; i++) json_array_append_new(pins, json_string(p->def->pin[i]));
        for (size_t i = 0; i < p->def->nexclude; i++) json_array_append_new(excl, json_string(p->def->exclude[i]));
        json_object_set_new(o, "where", json_string(p->def->where));
        json_object_set_new(o, "ranked", json_boolean(p->def->has_rank));
        json_object_set_new(o, "limit", p->def->limit ? json_integer(p->def->limit) : json_null());
        json_object_set_new(o, "jit", json_boolean(rulevm_rule_is_jit(e->vm, p->def)));
        json_object_set_new(o, "cost", cost_json(p->cost));
    }
    json_object_set_new(o, "pin", pins);
    json_object_set_new(o, "exclude", excl);
    return o;
}

typedef struct read_call {
    const char *name;
    int status;
    json_t *out;
} read_call_t;

static void rules_on_writer(engine_t *e, void *arg) {
    read_call_t *c = arg;
    json_t *arr = json_array();
    for (size_t i = 0; i < rulebook_count(e->rulebook); i++) {
        rule_entry_t *ent = rulebook_at(e->rulebook, i);
        if (!ent->nversions && !ent->draft && !ent->error) continue;
        json_array_append_new(arr, rule_summary(e, ent, false));
    }
    c->status = 200;
    c->out = json_pack("{s:o}", "rules", arr);
}

static void rule_on_writer(engine_t *e, void *arg) {
    read_call_t *c = arg;
    rule_entry_t *ent = rulebook_get(e->rulebook, c->name);
    if (!ent) {
        c->status = 404;
        c->out = error_json("no rule named \"%s\" (GET /api/rules lists them)", c->name);
        return;
    }
    c->status = 200;
    c->out = rule_summary(e, ent, true);
}

static int read_call(engine_t *e, void (*fn)(engine_t *, void *), const char *name, json_t **out) {
    read_call_t c = {name, 0, NULL};
    if (engine_call(e, fn, &c) != 0) {
        *out = error_json("poold is shutting down");
        return 503;
    }
    *out = c.out;
    return c.status;
}

int lifecycle_rules(engine_t *e, json_t **out) { return read_call(e, rules_on_writer, NULL, out); }

int lifecycle_rule(engine_t *e, const char *name, json_t **out) {
    int st = bad_name(name, out);
    if (st) return st == 400 ? 404 : st;
    return read_call(e, rule_on_writer, name, out);
}

/* -- explain -------------------------------------------------------------------------------------- */

typedef struct explain_call {
    const char *sku, *pool;
    int status;
    json_t *out;
} explain_call_t;

static bool has_by_name(void *ctx, const char *tag, size_t len, uint32_t sku) {
    engine_t *e = ctx;
    uint32_t id;
    return tags_find(e->tags, tag, len, &id) == 0 && tags_has(e->tags, id, sku);
}

static bool listed(engine_t *e, char **names, size_t n, uint32_t id) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        if (store_find(e->store, names[i], strlen(names[i]), &x) == 0 && x == id) return true;
    }
    return false;
}

json_t *pool_change_json(const pool_change_t *c) {
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)c->seq));
    json_object_set_new(o, "sku", json_string(pool_change_name(c)));
    json_object_set_new(o, "op", json_string(c->joined ? "add" : "remove"));
    json_object_set_new(o, "at", json_integer(c->at));
    json_t *cause = json_object();
    json_object_set_new(cause, "kind", json_string(pool_cause_name((pool_cause_t)c->cause)));
    if (c->cause == CAUSE_EVENT) json_object_set_new(cause, "seq", json_integer((json_int_t)c->cause_ref));
    if (c->cause == CAUSE_PUBLISH || c->cause == CAUSE_SCHEDULE)
        json_object_set_new(cause, "version", json_integer((json_int_t)c->cause_ref));
    json_object_set_new(o, "cause", cause);
    return o;
}

static void explain_on_writer(engine_t *e, void *arg) {
    explain_call_t *c = arg;
    pool_t *p = find_pool(e, c->pool);
    if (!p) {
        c->status = 404;
        c->out = error_json("no pool named \"%s\" (GET /api/pools lists them)", c->pool);
        return;
    }
    uint32_t id;
    if (store_find(e->store, c->sku, strlen(c->sku), &id) != 0) {
        c->status = 404;
        c->out = error_json("no SKU \"%s\"", c->sku);
        return;
    }
    const rule_def_t *d = p->def;
    json_t *o = json_object();
    json_object_set_new(o, "sku", json_string(c->sku));
    json_object_set_new(o, "pool", json_string(p->name));
    json_object_set_new(o, "version", json_integer(p->version));
    bool member = roaring_bitmap_contains(p->members, id);
    json_object_set_new(o, "member", json_boolean(member));
    json_object_set_new(o, "active", json_boolean(p->active));
    bool pinned = listed(e, d->pin, d->npin, id), excluded = listed(e, d->exclude, d->nexclude, id);
    json_object_set_new(o, "pinned", json_boolean(pinned));
    json_object_set_new(o, "excluded", json_boolean(excluded));
    json_t *where = json_array();
    const tagexpr_node_t *const *cl;
    const tagexpr_node_t *one;
    size_t nc = where_clauses(p->where, &cl, &one);
    for (size_t i = 0; i < nc; i++) {
        char *text = tagexpr_node_to_string(cl[i]);
        json_t *w = json_object();
        json_object_set_new(w, "clause", json_string(text));
        json_object_set_new(w, "has", json_boolean(tagexpr_node_eval_one(cl[i], has_by_name, e, id)));
        json_array_append_new(where, w);
        free(text);
    }
    json_object_set_new(o, "where", where);
    bool where_ok = tagexpr_eval_one(p->where, has_by_name, e, id);
    json_object_set_new(o, "where_result", json_boolean(where_ok));
    json_t *match = json_null(), *rank = json_null();
    if (d->has_match || d->has_rank) {
        engine_refresh_roots(e);
        rule_error_t re;
        char *text = rulevm_explain(e->vm, d, id, &re);
        json_t *x = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (x) {
            json_t *m = json_object_get(x, "match"), *r = json_object_get(x, "rank");
            if (m) match = json_incref(m);
            if (r) rank = json_incref(r);
            json_decref(x);
        } else if (d->has_match) {
            match = json_pack("{s:b, s:s}", "result", 0, "error", re.msg);
        }
    }
    json_object_set_new(o, "match", match);
    json_object_set_new(o, "rank", rank);
    bool matched = !d->has_match || (json_is_object(match) && json_is_true(json_object_get(match, "result")));
    const char *why;
    if (!p->active) why = "the pool is outside its active schedule";
    else if (excluded) why = "the SKU is excluded by the rule";
    else if (pinned) why = member ? "the SKU is pinned" : "the SKU is pinned but not live";
    else if (!where_ok) why = "a where clause does not hold";
    else if (!matched) why = "match returned false";
    else if (d->has_rank && d->limit && !member) why = "below the rank limit";
    else if (d->has_rank && d->limit) why = "within the rank limit";
    else why = "where holds and match returned true";
    json_object_set_new(o, "reason", json_string(why));
    const pool_change_t *lc = pool_last_change(p, id, c->sku);
    json_object_set_new(o, "last_change", lc ? pool_change_json(lc) : json_null());
    json_object_set_new(o, "changes_retained_from", json_integer((json_int_t)pool_changes_retained_from(p)));
    c->status = 200;
    c->out = o;
}

int lifecycle_explain(engine_t *e, const char *sku, const char *pool, json_t **out) {
    explain_call_t c = {sku, pool, 0, NULL};
    if (engine_call(e, explain_on_writer, &c) != 0) {
        *out = error_json("poold is shutting down");
        return 503;
    }
    *out = c.out;
    return c.status;
}

/* -- hot reload --------------------------------------------------------------------------------- */

typedef struct reload_call {
    const char *name;
    rule_job_t *job; /* set when a swap/delete must run */
} reload_call_t;

static void reload_on_writer(engine_t *e, void *arg) {
    reload_call_t *c = arg;
    char path[4200];
    rule_path(e, c->name, path, sizeof path);
    pool_t *live = find_pool(e, c->name);
    size_t len;
    char *src = read_file(path, &len);
    if (src && (len > MAX_RULE_SOURCE || strlen(src) != len)) {
        char msg[200];
        snprintf(msg, sizeof msg, "the rule source is %zu bytes (or has a NUL byte); the limit is %d bytes (rule "
                 "source size)", len, MAX_RULE_SOURCE);
        log_error("rule %s not reloaded: %s: %s", c->name, path, msg);
        rulebook_set_error(rulebook_ensure(e->rulebook, c->name), path, 0, msg);
        atomic_fetch_add(&limit_source_hits, 1);
        atomic_fetch_add(&e->rule_reload_failures, 1);
        free(src);
        return;
    }
    if (!src) {
        if (errno == ENOENT && live) {
            c->job = job_new(JOB_DELETE, c->name, "file");
            c->job->vkind = RV_FILE;
        }
        return;
    }
    rule_entry_t *ent = rulebook_ensure(e->rulebook, c->name);
    if (live && strcmp(live->source, src) == 0) { /* e.g. a broken edit reverted */
        if (ent->error) log_info("rule %s: the file is back to the live version %u", c->name, live->version);
        rulebook_set_error(ent, NULL, 0, NULL);
        free(live->compile_error);
        live->compile_error = NULL;
        live->view_stale = true;
        free(src);
        return;
    }
    rule_error_t re;
    pool_t *p = build_pool(e, c->name, src, NULL, &re);
    if (!p) {
        log_error("rule %s not reloaded, %s: %s:%d: %s", c->name,
                  live ? "the previous version stays live" : "no version is live", re.file, re.line, re.msg);
        rulebook_set_error(ent, re.file, re.line, re.msg);
        atomic_fetch_add(&e->rule_reload_failures, 1);
        if (live) {
            free(live->compile_error);
            live->compile_error = xstrdup(ent->error);
            live->view_stale = true;
        }
        free(src);
        return;
    }
    pool_free(p, e->vm);
    c->job = job_new(JOB_SWAP, c->name, "file");
    c->job->vkind = RV_FILE;
    c->job->source = src;
}

void lifecycle_reload_file(engine_t *e, const char *name) {
    if (!rulebook_valid_name(name)) return;
    reload_call_t c = {name, NULL};
    if (engine_call(e, reload_on_writer, &c) != 0 || !c.job) return;
    json_t *out = NULL;
    int st = run_job(e, c.job, &out);
    if (st != 200) {
        const char *msg = json_string_value(json_object_get(out, "error"));
        log_warn("rule %s: reload not applied: %s", name, msg ? msg : "?");
    }
    json_decref(out);
}

/* -- metrics ------------------------------------------------------------------------------------- */

typedef struct metrics_call {
    void (*emit)(void *arg, const char *line);
    void *arg;
} metrics_call_t;

static void metrics_on_writer(engine_t *e, void *arg) {
    metrics_call_t *c = arg;
    char line[512];
    c->emit(c->arg, "# HELP poold_rule_reload_failures_total Rule files that failed to compile (the previous "
                    "version stays live).\n# TYPE poold_rule_reload_failures_total counter\n");
    snprintf(line, sizeof line, "poold_rule_reload_failures_total %llu\n",
             (unsigned long long)atomic_load(&e->rule_reload_failures));
    c->emit(c->arg, line);
    c->emit(c->arg, "# HELP poold_rule_compile_error Whether the rule file's last reload failed (1) or not (0).\n"
                    "# TYPE poold_rule_compile_error gauge\n");
    for (size_t i = 0; i < rulebook_count(e->rulebook); i++) {
        rule_entry_t *ent = rulebook_at(e->rulebook, i);
        if (!ent->nversions && !ent->error) continue;
        snprintf(line, sizeof line, "poold_rule_compile_error{rule=\"%s\"} %d\n", ent->name, ent->error ? 1 : 0);
        c->emit(c->arg, line);
    }
    c->emit(c->arg, "# HELP poold_rule_version Live version of each rule.\n# TYPE poold_rule_version gauge\n");
    for (size_t i = 0; i < e->npools; i++) {
        snprintf(line, sizeof line, "poold_rule_version{rule=\"%s\"} %u\n", e->pools[i]->name, e->pools[i]->version);
        c->emit(c->arg, line);
    }
    c->emit(c->arg, "# HELP poold_rule_evaluations_total SKUs evaluated by match/rank, per rule.\n"
                    "# TYPE poold_rule_evaluations_total counter\n");
    for (size_t i = 0; i < e->npools; i++) {
        snprintf(line, sizeof line, "poold_rule_evaluations_total{rule=\"%s\"} %llu\n", e->pools[i]->name,
                 (unsigned long long)atomic_load(&e->pools[i]->cost->evaluations));
        c->emit(c->arg, line);
    }
    c->emit(c->arg, "# HELP poold_rule_eval_seconds Time per evaluation call (one batch of SKUs), per rule.\n"
                    "# TYPE poold_rule_eval_seconds histogram\n");
    for (size_t i = 0; i < e->npools; i++) {
        const pool_cost_t *pc = e->pools[i]->cost;
        uint64_t cum = 0;
        for (int b = 0; b <= POOL_COST_BUCKETS; b++) {
            cum += atomic_load(&pc->hist[b]);
            if (b < POOL_COST_BUCKETS)
                snprintf(line, sizeof line, "poold_rule_eval_seconds_bucket{rule=\"%s\",le=\"%g\"} %llu\n",
                         e->pools[i]->name, pool_cost_bucket_le[b], (unsigned long long)cum);
            else
                snprintf(line, sizeof line, "poold_rule_eval_seconds_bucket{rule=\"%s\",le=\"+Inf\"} %llu\n",
                         e->pools[i]->name, (unsigned long long)cum);
            c->emit(c->arg, line);
        }
        snprintf(line, sizeof line, "poold_rule_eval_seconds_sum{rule=\"%s\"} %.9f\n", e->pools[i]->name,
                 (double)atomic_load(&pc->ns) / 1e9);
        c->emit(c->arg, line);
        snprintf(line, sizeof line, "poold_rule_eval_seconds_count{rule=\"%s\"} %llu\n", e->pools[i]->name,
                 (unsigned long long)cum);
        c->emit(c->arg, line);
    }
}

void lifecycle_limit_breaches(uint64_t *pools, uint64_t *rule_source) {
    *pools = atomic_load(&limit_pools_hits);
    *rule_source = atomic_load(&limit_source_hits);
}

void lifecycle_metrics(engine_t *e, void (*emit)(void *arg, const char *line), void *arg) {
    metrics_call_t c = {emit, arg};
    engine_call(e, metrics_on_writer, &c);
}

/* -- member fields ------------------------------------------------------------ */

typedef struct briefs_call {
    const uint32_t *ids;
    const char *const *names;
    size_t n;
    json_t *out;
} briefs_call_t;

static void briefs_on_writer(engine_t *e, void *arg) {
    briefs_call_t *c = arg;
    c->out = json_array();
    for (size_t i = 0; i < c->n; i++) {
        const char *now = store_name(e->store, c->ids[i]);
        if (now && strcmp(now, c->names[i]) == 0) json_array_append_new(c->out, sku_brief(e, c->ids[i]));
        else json_array_append_new(c->out, json_pack("{s:s, s:b}", "sku", c->names[i], "deleted", 1));
    }
}

json_t *lifecycle_sku_briefs(engine_t *e, const uint32_t *ids, const char *const *names, size_t n) {
    /* In chunks, so that a 10,000-row page never holds the writer for long. */
    json_t *all = json_array();
    for (size_t at = 0; at < n; at += 500) {
        briefs_call_t c = {ids + at, names + at, n - at < 500 ? n - at : 500, NULL};
        if (engine_call(e, briefs_on_writer, &c) != 0) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, c.out);
        json_decref(c.out);
    }
    return all;
}
