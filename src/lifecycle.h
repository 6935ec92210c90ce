/* lifecycle.h - the life of a rule: loading the rules directory at start,
 * hot reload of changed files, drafts, preview, publish, rollback, delete,
 * and explain (SPEC "HTTP API": rules, preview, publish, rollback, explain).
 *
 * A new rule version never stalls the writer: it is compiled, then its pool
 * is computed by a job in slices of a few milliseconds between batches,
 * against the live state, while the batches keep the job's shadow pool up
 * to date for the SKUs they touch (the same incremental evaluation as the
 * live pools). When the scan is done the shadow is swapped in between two
 * batches: readers see the old version or the new one, never a mix.
 *
 * The writer loop calls the lifecycle_w_* hooks. Every other function may be
 * called from any thread (HTTP handlers, the rules watcher); they run their
 * work on the writer (engine_call) and wait for jobs to finish. They return
 * an HTTP status and a JSON body (errors: {"error": ...} plus details). */
#ifndef POOLD_LIFECYCLE_H
#define POOLD_LIFECYCLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine.h"

struct pool;

/* -- start and stop (owner thread, writer not running) ------------------- */
int lifecycle_load(engine_t *e, char *err, size_t errlen);
/* Starts/stops watching the rules directory (inotify) for hot reload. */
int lifecycle_watch_start(engine_t *e, char *err, size_t errlen);
void lifecycle_watch_stop(engine_t *e);
void lifecycle_free(engine_t *e);

/* -- writer loop hooks ------------------------------------------------------ */
bool lifecycle_w_busy(engine_t *e);          /* jobs pending: do not sleep */
/* The shadow pools of running jobs (evaluated with the live pools). */
size_t lifecycle_w_shadows(engine_t *e, struct pool **out, size_t max);
void lifecycle_w_full_recomputed(engine_t *e); /* the shadows were recomputed in full */
void lifecycle_w_step(engine_t *e);          /* advance scans, finish jobs (before publish) */
void lifecycle_w_published(engine_t *e);     /* wake the waiters of finished jobs (after publish) */
void lifecycle_w_abort(engine_t *e);         /* the writer stops: fail what is pending */

/* -- any thread -------------------------------------------------------------- */
int lifecycle_rules(engine_t *e, json_t **out);
int lifecycle_rule(engine_t *e, const char *name, json_t **out);
int lifecycle_put_draft(engine_t *e, const char *name, const char *source, const char *author, json_t **out);
int lifecycle_discard_draft(engine_t *e, const char *name, json_t **out);
int lifecycle_preview(engine_t *e, const char *name, json_t **out);
int lifecycle_publish(engine_t *e, const char *name, const char *author, json_t **out);
int lifecycle_rollback(engine_t *e, const char *name, uint32_t version, const char *author, json_t **out);
int lifecycle_delete(engine_t *e, const char *name, const char *author, json_t **out);
int lifecycle_explain(engine_t *e, const char *sku, const char *pool, json_t **out);
/* Re-reads rules/NAME.lua (or notices it is gone); used by the watcher.
 * Waits until the new version is live (or rejected). */
void lifecycle_reload_file(engine_t *e, const char *name);
/* The key fields of SKUs (sku, market, category, brand, price, list_price,
 * discount, stock, rating, sales_24h), read on the writer; a SKU whose id
 * now names another SKU (deleted since) comes back as {sku, deleted:true}.
 * NULL when shutting down. */
json_t *lifecycle_sku_briefs(engine_t *e, const uint32_t *ids, const char *const *names, size_t n);
/* One membership change as the API shows it:
 * {seq, sku, op: "add"|"remove", at, cause: {kind, seq|version}}. */
struct pool_change;
json_t *pool_change_json(const struct pool_change *c);
/* Refusals by the rule limits: live pools, rule source size. */
void lifecycle_limit_breaches(uint64_t *pools, uint64_t *rule_source);
/* Prometheus lines for the rules (compile failures, per-rule cost); appends
 * to a malloc'd buffer through the callback. */
void lifecycle_metrics(engine_t *e, void (*emit)(void *arg, const char *line), void *arg);

#endif
