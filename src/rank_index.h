/* rank_index.h - order-statistic index of a ranked pool's candidates.
 *
 * A pool whose rule has `rank = function(s) ... end, limit = N` holds the
 * top N matching SKUs. This index keeps every matching SKU ordered by
 *     rank score descending, then SKU external id ascending (byte-wise
 *     strcmp), then internal id ascending (only if two names are equal),
 * so the members are positions [0, N) and a score change answers "who
 * enters, who leaves" with rank_index_position / rank_index_at in O(log n).
 * NaN scores are stored as -infinity (same tie-break by name).
 *
 * Ownership: `name` is NOT copied. The caller guarantees the string stays
 * valid and unchanged while its id is in the index; when a set changes the
 * name pointer of an id already present, the old string must still be
 * valid during that call (it may be released once the call returns).
 *
 * Limits: ids are uint32 SKU ids below RANK_INDEX_NONE (UINT32_MAX, which
 * set ignores and rank_index_at returns for an out-of-range position); set
 * ignores a NULL name.
 *
 * Memory: about 50 B per entry in the nodes plus 21-43 B in the id map;
 * arrays grow by doubling and are not shrunk by removals (free a drained
 * index and start a new one). rank_index_memory counts the capacity.
 *
 * Threads: the writer thread only; nothing here is safe for concurrent use.
 * Readers need a published copy (e.g. the members' ids via rank_index_range). */
#ifndef POOLD_RANK_INDEX_H
#define POOLD_RANK_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RANK_INDEX_NONE UINT32_MAX

typedef struct rank_index rank_index_t;

/* An empty index with the default node sizes. Aborts on out-of-memory. */
rank_index_t *rank_index_new(void);
/* Same with smaller nodes (entries per leaf, children per inner node; each
 * clamped to [4, default]): tests use it to build deep trees from few ids. */
rank_index_t *rank_index_new_fanout(unsigned leaf_max, unsigned inner_max);
void rank_index_free(rank_index_t *ri); /* accepts NULL */

/* Inserts id with (score, name), or moves it if present. O(log n);
 * amortized allocation-free once the index has reached its size. */
void rank_index_set(rank_index_t *ri, uint32_t id, double score, const char *name);
/* No-op if id is absent. O(log n). */
void rank_index_remove(rank_index_t *ri, uint32_t id);
bool rank_index_contains(const rank_index_t *ri, uint32_t id);
size_t rank_index_count(const rank_index_t *ri);
/* 0 = best; -1 if absent. O(log n). */
long rank_index_position(const rank_index_t *ri, uint32_t id);
/* The id at pos (pos < count), RANK_INDEX_NONE otherwise. O(log n). */
uint32_t rank_index_at(const rank_index_t *ri, size_t pos);
/* Copies the ids at positions [from, from+n) into out, in order; returns
 * how many (fewer near the end, 0 if from >= count). O(log n + n). */
size_t rank_index_range(const rank_index_t *ri, size_t from, size_t n, uint32_t *out);
/* The stored score (NaN set -> -inf); NaN if absent. */
double rank_index_score(const rank_index_t *ri, uint32_t id);
/* Heap bytes held (nodes, id map, the struct). */
size_t rank_index_memory(const rank_index_t *ri);

/* Tests and debugging: walks the whole tree and verifies every invariant
 * (order, counts, separators, fill, leaf chain, id map, free lists).
 * 0 if all hold, -1 (with a log_error line naming the first violation)
 * otherwise. *height (may be NULL) gets the number of inner levels. O(n). */
int rank_index_check(const rank_index_t *ri, unsigned *height);

#endif
