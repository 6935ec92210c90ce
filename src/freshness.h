/* freshness.h - freshness tiers that never step back (issue "Streams"): every
 * SKU field carries the event time (ts) and input seq of the input that set
 * it, and an input older than a field's current value does not overwrite
 * it; plus a ring of recent inputs to name a field's source.
 *
 * Fields are kept in groups that inputs set together:
 *   catalog: market, category, brand, seller, rating, reviews, lazmall,
 *            free_shipping
 *   price:   price, list_price          stock: stock
 *   tags:    the SKU's free tags        attrs: attrs
 * A full record (a line without "op") replaces each group it is newer than
 * (fields it lacks take their defaults) and leaves the newer groups alone;
 * an upsert/price/stock/tag op changes the groups it names, if newer. Equal
 * ts: the later input wins.
 *
 * Writer thread only (engine.c); the snapshot saves the table. */
#ifndef POOLD_FRESHNESS_H
#define POOLD_FRESHNESS_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"

enum { FG_CATALOG, FG_PRICE, FG_STOCK, FG_TAGS, FG_ATTRS, FG__COUNT };
extern const char *const freshness_group_name[FG__COUNT];

typedef struct field_stamp {
    int64_t ts[FG__COUNT];   /* 0 = never set */
    uint64_t seq[FG__COUNT];
} field_stamp_t;

/* The groups an event's fields belong to (bit FG_*). */
unsigned freshness_groups(const event_t *ev);

/* Source ring: one entry per applied submit (batch), in seq order. */
#define SOURCE_RING 4096
typedef struct source_entry {
    uint64_t first_seq;
    uint32_t n;
    uint8_t kind;            /* WAL_SRC_* */
    int32_t partition;       /* kafka */
    char name[96];           /* "http", "file:catalog.ndjson", "kafka:events" */
    int64_t *offsets;        /* kafka: offset per event (owned), or NULL */
    int64_t last_offset;     /* kafka: offset of the last message, -1 otherwise */
} source_entry_t;

typedef struct source_ring {
    source_entry_t e[SOURCE_RING];
    size_t head, len;
} source_ring_t;

/* Records a batch (takes offsets). */
void source_ring_add(source_ring_t *r, uint64_t first_seq, uint32_t n, uint8_t kind, const char *name,
                     int32_t partition, int64_t *offsets, int64_t last_offset);
/* The entry holding seq, or NULL when it is older than the ring. */
const source_entry_t *source_ring_find(const source_ring_t *r, uint64_t seq);
void source_ring_free(source_ring_t *r);

#endif
