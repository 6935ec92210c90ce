/* tags.h - tag names -> dense ids, one Roaring bitmap of SKU ids per tag,
 * and immutable snapshots of them (tag views) for reader threads.
 *
 * Writer side (the apply thread only): tags_t holds the live bitmaps and is
 * changed in place by tags_add/tags_remove. Tag ids are dense from 0 and
 * never reused; names are never forgotten.
 *
 * Reader side (any thread): tagview_t, made by tags_publish. A view is
 * immutable and holds, for every tag id < tagview_count(view), the bitmap
 * as it was at that publish. It references:
 *   - its own struct and top-level chunk array,
 *   - chunks of 256 entries {bitmap copy, name}, shared with the previous
 *     and next views as long as none of their tags change,
 *   - bitmap copies (never the live bitmaps), shared the same way,
 *   - the tag name strings and the tags_t's name map (strmap_t), which live
 *     until tags_free.
 * When tags_publish makes a new view, everything of the previous view that
 * the new one no longer references (replaced chunks and bitmap copies, the
 * old struct and array) is pushed onto the retire list `rl` given to that
 * tags_publish call. So a view, and every pointer obtained from it, stays
 * valid until the retire list of the *next* tags_publish that replaced it
 * has run (or tags_free). The caller never frees a view.
 *
 * Bitmaps returned by tags_bitmap/tagview_bitmap are never copy-on-write,
 * so any thread may run read-only CRoaring operations on a view's bitmaps
 * (roaring_bitmap_and, _or_many, ...) and free the results itself. */
#ifndef POOLD_TAGS_H
#define POOLD_TAGS_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epoch.h"

#define TAGS_MAX_NAME 256u        /* longest tag name in bytes */
#define TAGS_NONE UINT32_MAX      /* "no such tag" / intern failure */
#define TAGS_CHUNK 256u           /* entries per snapshot chunk */

typedef struct tags tags_t;
typedef struct tagview tagview_t;

/* -- Writer (apply thread) ------------------------------------------------ */

tags_t *tags_new(void);
/* Frees the live state, the current view and all it references. Objects
 * of older views already pushed to a retire list are that list's business
 * (their retire callbacks do not use tags_t). */
void tags_free(tags_t *t);

/* The id of name, created if new (ids are dense from 0). TAGS_NONE if len
 * is 0 or > TAGS_MAX_NAME. rl receives the name map's old table when the
 * map grows; with rl == NULL that table is kept here and handed to the rl of
 * the next tags_publish (safe too: readers reach the map only through a
 * view, and a view made after the swap never sees the old table). */
uint32_t tags_intern(tags_t *t, const char *name, size_t len, retire_list_t *rl);
/* 0 and *id if name is known, -1 otherwise. */
int tags_find(const tags_t *t, const char *name, size_t len, uint32_t *id);
/* NUL-terminated name of id (valid until tags_free), NULL if unknown. */
const char *tags_name(const tags_t *t, uint32_t id);
uint32_t tags_count(const tags_t *t);

/* Membership in the live bitmaps. Unknown tag ids are ignored (false). */
void tags_add(tags_t *t, uint32_t tag, uint32_t sku);
void tags_remove(tags_t *t, uint32_t tag, uint32_t sku);
bool tags_has(const tags_t *t, uint32_t tag, uint32_t sku);
/* The live bitmap of tag; NULL if unknown or never had a member. Writer
 * only: it changes on the next tags_add/tags_remove. */
const roaring_bitmap_t *tags_bitmap(const tags_t *t, uint32_t tag);
/* Heap bytes: names, the name map, live bitmaps and the current view's
 * chunks and bitmap copies (CRoaring's serialized size as the estimate).
 * O(tags): for metrics, not for hot paths. */
size_t tags_memory(const tags_t *t);

/* Makes a view of every tag's bitmap as of now. Costs O(tags changed since
 * the last publish, plus their bitmap sizes) + O(tags / 256) for the
 * top-level array. Returns the previous view itself when nothing changed
 * (no new tag, no membership change); otherwise the previous view and what
 * only it referenced go onto rl. rl may be NULL only when no reader exists
 * (tests, start-up): replaced objects are then freed at once. */
tagview_t *tags_publish(tags_t *t, retire_list_t *rl);
/* The last view tags_publish returned, NULL before the first. */
tagview_t *tags_view(const tags_t *t);

/* Resolver helpers with the signatures tagexpr.h expects, ctx = tags_t *
 * (writer, live bitmaps) or tagview_t * (readers). */
const roaring_bitmap_t *tags_resolve(void *tags, const char *name, size_t len);
const roaring_bitmap_t *tagview_resolve(void *view, const char *name, size_t len);
/* Binding helpers for tagexpr_bind/tagexpr_eval_one_ids, ctx = tags_t *. */
int64_t tags_bind_id(void *tags, const char *name, size_t len);
bool tags_has_id(void *tags, int64_t tag, uint32_t sku);

/* -- Readers (any thread, holding a published read version) --------------- */

/* 0 and *id if name is a tag of this view, -1 otherwise (tags interned
 * after the view was made are not part of it). Lock-free. */
int tagview_find(const tagview_t *v, const char *name, size_t len, uint32_t *id);
/* id's bitmap in this view; NULL if id is unknown to the view or empty. */
const roaring_bitmap_t *tagview_bitmap(const tagview_t *v, uint32_t id);
/* NUL-terminated name of id, NULL if unknown to the view. */
const char *tagview_name(const tagview_t *v, uint32_t id);
uint32_t tagview_count(const tagview_t *v);

/* -- Snapshots (snapshot.h; byte format at the top of snapshot.c) -------- */
struct snap_writer;
struct snap_reader;
/* Writes the TAGS section: every tag's name and live bitmap, by id.
 * Read-only on t; safe in a forked child (snapshot.h). */
int tags_snap_write(const tags_t *t, struct snap_writer *w);
/* Reads the current TAGS section into a fresh tags_t (only the tags a fresh
 * store_new interned, none with members), keeping every tag id; SKU ids in
 * the bitmaps must be < id_limit. Loaded tags are marked changed, so the
 * next tags_publish puts them all in the view. 0, or -1 with snap_error(r). */
int tags_snap_read(tags_t *t, struct snap_reader *r, uint32_t id_limit);

#endif
