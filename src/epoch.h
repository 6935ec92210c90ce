/* epoch.h - deferred freeing for objects that concurrent readers may still
 * be looking at.
 *
 * The writer publishes immutable read versions (publish.c); when a new
 * version replaces an object (a tag bitmap, a hash table after a resize, a
 * deleted SKU's name), the writer does not free it at once: it appends it to
 * a retire list that publish.c attaches to the version the object belonged
 * to, and runs the list once no reader holds that version or an older one.
 *
 * A retire list is owned by the writer thread only. */
#ifndef POOLD_EPOCH_H
#define POOLD_EPOCH_H

#include <stddef.h>

typedef void (*retire_fn)(void *arg, void *ptr);

typedef struct retire_item {
    retire_fn fn;
    void *arg;
    void *ptr;
} retire_item_t;

typedef struct retire_list {
    retire_item_t *items;
    size_t n, cap;
} retire_list_t;

/* Defers fn(arg, ptr) until no reader can see ptr. fn may be NULL for free(). */
void retire_push(retire_list_t *rl, retire_fn fn, void *arg, void *ptr);
/* Runs every deferred call and empties the list. */
void retire_run(retire_list_t *rl);
/* Moves every item of src to the end of dst. */
void retire_move(retire_list_t *dst, retire_list_t *src);
void retire_free(retire_list_t *rl); /* runs nothing; releases the array */

#endif
