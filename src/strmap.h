/* strmap.h - string -> uint32 hash map: one writer, lock-free readers.
 *
 * Used for SKU external ids (millions of keys, deletes and re-inserts) and
 * tag names (insert only). The writer thread owns the map and is the only
 * caller of every function except strmap_read, which any thread may call at
 * any time, concurrently with the writer, without locks: a reader that
 * starts before a put/del of a key sees the old or the new value of that
 * key, never a torn one.
 *
 * Memory that a concurrent reader may still be reading (a table replaced by
 * a resize or clean-up, with the key bytes it owns; an outgrown directory)
 * is never freed by the writer directly: it is pushed onto the caller's
 * retire list `rl` (epoch.h). Pass rl == NULL only when no other thread can
 * be reading the map (start-up, tests): replaced memory is then freed at
 * once. strmap_free frees everything; no reader may remain.
 *
 * Limits: keys up to STRMAP_MAX_KEY bytes; the value STRMAP_DELETED
 * (UINT32_MAX) is reserved; at most 2^30 keys. */
#ifndef POOLD_STRMAP_H
#define POOLD_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "epoch.h"

#define STRMAP_MAX_KEY 65535u
#define STRMAP_DELETED UINT32_MAX

typedef struct strmap strmap_t;

/* A map sized for initial_capacity keys without a resize. */
strmap_t *strmap_new(size_t initial_capacity);
void strmap_free(strmap_t *m);

/* Inserts key or overwrites its value. -1 if len > STRMAP_MAX_KEY, value ==
 * STRMAP_DELETED or the map is full (2^30 keys); 0 otherwise. A resize
 * retires the old table onto rl. */
int strmap_put(strmap_t *m, const char *key, size_t len, uint32_t value, retire_list_t *rl);
/* Writer-side lookup: 0 and *value if present, -1 otherwise. */
int strmap_get(const strmap_t *m, const char *key, size_t len, uint32_t *value);
/* Removes key: 0 if it was present, -1 otherwise. May clean up (rebuild)
 * the table later, on a put; never frees anything itself. rl is kept for
 * symmetry and future use. */
int strmap_del(strmap_t *m, const char *key, size_t len, retire_list_t *rl);
/* Number of live keys. */
size_t strmap_count(const strmap_t *m);
/* Heap bytes held by the current table, its keys and the map. */
size_t strmap_memory(const strmap_t *m);

/* Reader-side lookup, any thread, lock-free and wait-free in practice:
 * 0 and *value if present, -1 otherwise. The caller must hold whatever
 * read version (publish.c) keeps retired tables alive while it reads. */
int strmap_read(const strmap_t *m, const char *key, size_t len, uint32_t *value);

/* Writer only: calls fn for every live key in table order, stopping when fn
 * returns non-zero (that value is returned; 0 after a full pass). The key
 * is not NUL-terminated and stays valid until the next put. */
typedef int (*strmap_iter_fn)(void *ctx, const char *key, size_t len, uint32_t value);
int strmap_foreach(const strmap_t *m, strmap_iter_fn fn, void *ctx);

#endif
