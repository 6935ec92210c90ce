/* store.h - the live state of every SKU: ids, typed columns, free tags,
 * JSON attributes, and the automatic tags derived from the columns.
 *
 * Owned by the writer thread. Every mutating function (store_*) is
 * writer-only. Two things are readable concurrently from reader threads,
 * without locks and without blocking the writer:
 *  - store_read_id(): SKU external id -> internal id (strmap_read);
 *  - store_read_name(): internal id -> external id (atomic pointer table in
 *    fixed chunks that never move).
 * Neither gives a reader a torn or freed value: a deleted SKU's name and id
 * are handed to the caller's retire list and become reusable only once no
 * published read version can refer to them (see publish.c).
 *
 * Ids are dense uint32 from 0. A row with live == 0 is a free id. Dimension
 * values (market, category, brand, seller strings) are interned in one
 * dictionary (dims), id 0 = unknown (""), so sku_row_t holds small ids and the
 * Lua view maps them back through view_roots_t.dims.
 *
 * Automatic tags (SPEC): market:<m>, brand:<b>, category:<top>,
 * category:<top/leaf>, seller:<s>, lazmall, free_shipping, in_stock are kept
 * right by store_set_* on every change; free tags are the SKU's own list. */
#ifndef POOLD_STORE_H
#define POOLD_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <roaring/roaring.h>
#include "epoch.h"
#include "tags.h"
#include "view.h"

/* The hidden tag holding every live SKU (the universe for `!` and `*` in
 * tag expressions). Its first byte is outside the tag alphabet, so no event
 * or expression can name it. */
#define STORE_LIVE_TAG "\x01live"

typedef struct store store_t;

store_t *store_new(tags_t *tags);
void store_free(store_t *st);

/* -- Writer: ids ----------------------------------------------------- */

/* The SKU's id, creating an empty live row if it does not exist. *created is
 * set when it was created. */
uint32_t store_upsert_id(store_t *st, const char *sku, size_t len, bool *created, retire_list_t *rl);
/* 0 and *id if the SKU exists, else -1. */
int store_find(const store_t *st, const char *sku, size_t len, uint32_t *id);
/* Deletes a live SKU: clears its tags (automatic and free), attrs, row; its
 * name and id are retired through rl. The caller releases windows first. */
void store_delete(store_t *st, uint32_t id, retire_list_t *rl);
/* Resets every catalog field, free tag and attr of a live row (full record). */
void store_reset_fields(store_t *st, uint32_t id);

/* -- Writer: fields -------------------------------------------------- */
enum store_dim { DIM_MARKET, DIM_CATEGORY, DIM_BRAND, DIM_SELLER };
void store_set_dim(store_t *st, uint32_t id, enum store_dim which, const char *val, size_t len);
void store_set_price(store_t *st, uint32_t id, double price);
void store_set_list_price(store_t *st, uint32_t id, double list_price);
void store_set_stock(store_t *st, uint32_t id, int64_t stock);
void store_set_rating(store_t *st, uint32_t id, double rating);
void store_set_reviews(store_t *st, uint32_t id, int64_t reviews);
void store_set_flag(store_t *st, uint32_t id, bool lazmall_flag, bool value); /* true: lazmall, false: free_shipping */
/* Free tags: names NUL-separated (event_tags_t layout). */
void store_set_free_tags(store_t *st, uint32_t id, const char *names, uint32_t n);
/* Free tags per SKU are limited to STORE_MAX_FREE_TAGS: adding one more
 * returns -1 (the tag is not added; the engine counts the refusal). */
#define STORE_MAX_FREE_TAGS 256
int store_add_free_tag(store_t *st, uint32_t id, const char *name, size_t len);
void store_remove_free_tag(store_t *st, uint32_t id, const char *name, size_t len);
/* Replaces the attrs JSON object text (copied); len 0 clears. */
void store_set_attrs(store_t *st, uint32_t id, const char *json, size_t len);

/* -- Writer: reads ---------------------------------------------------- */
sku_row_t *store_row(store_t *st, uint32_t id);       /* pointer valid until the next store_upsert_id */
const sku_row_t *store_rows(const store_t *st);
uint32_t store_id_limit(const store_t *st);           /* every id is < this */
uint32_t store_count(const store_t *st);              /* live SKUs */
const roaring_bitmap_t *store_live(const store_t *st);/* the universe: live ids */
const char *store_name(const store_t *st, uint32_t id);
const char *store_dim_name(const store_t *st, uint32_t dim_id);
const char *const *store_dims(const store_t *st);     /* dims[dim id]; moves when dims grow */
const char *store_attrs(const store_t *st, uint32_t id, size_t *len); /* NULL if none */
/* Free tag ids of a SKU. */
const uint32_t *store_free_tags(const store_t *st, uint32_t id, uint32_t *n);
/* attrs[name] of a SKU, as the Lua view wants it (view.h attr_value_t).
 * Decoded strings live in a scratch buffer valid until the next call. */
void store_attr_get(store_t *st, uint32_t id, const char *name, size_t len, attr_value_t *out);
size_t store_memory(const store_t *st);

/* -- Readers (any thread, lock-free) ---------------------------------- */
int store_read_id(const store_t *st, const char *sku, size_t len, uint32_t *id);
/* NULL if the id is not live. The string stays valid while the caller holds
 * a published read version (publish.h). */
const char *store_read_name(const store_t *st, uint32_t id);

/* -- Snapshots (snapshot.h; byte format at the top of snapshot.c) -------- */
struct snap_writer;
struct snap_reader;
/* Writes the STOR section: rows, names, free tags, attrs, dims, free ids.
 * Read-only on st; safe in a forked child (snapshot.h). */
int store_snap_write(const store_t *st, struct snap_writer *w);
/* Reads the current STOR section (the reader is positioned in it) into a
 * fresh store (store_new, nothing applied), keeping every id, dim id and
 * the free id stack; ids deleted but not yet released when the snapshot
 * was taken become free. Tag ids are checked later by store_snap_check.
 * 0, or -1 with snap_error(r) set. */
int store_snap_read(store_t *st, struct snap_reader *r);
/* After the tags are loaded: every tag id the store holds is known, and the
 * live tag holds exactly the live rows. 0, or -1 and a message in err. */
int store_snap_check(const store_t *st, char *err, size_t errlen);

#endif
