/* freshness.c - field groups of an event and the ring of recent input
 * sources; see freshness.h. The stale-write decisions themselves are made by
 * engine.c (set_fields), which owns the per-SKU stamps. Writer only. */
#include <stdlib.h>
#include <string.h>
#include "freshness.h"

const char *const freshness_group_name[FG__COUNT] = {"catalog", "price", "stock", "tags", "attrs"};

unsigned freshness_groups(const event_t *ev) {
    uint32_t h = ev->has;
    unsigned g = 0;
    if (h & (EV_MARKET | EV_CATEGORY | EV_BRAND | EV_SELLER | EV_RATING | EV_REVIEWS | EV_LAZMALL |
             EV_FREE_SHIPPING))
        g |= 1u << FG_CATALOG;
    if (h & (EV_PRICE | EV_LIST_PRICE)) g |= 1u << FG_PRICE;
    if (h & EV_STOCK) g |= 1u << FG_STOCK;
    if (h & EV_TAGS) g |= 1u << FG_TAGS;
    if (h & EV_ATTRS) g |= 1u << FG_ATTRS;
    return g;
}

void source_ring_add(source_ring_t *r, uint64_t first_seq, uint32_t n, uint8_t kind, const char *name,
                     int32_t partition, int64_t *offsets, int64_t last_offset) {
    source_entry_t *x;
    if (r->len == SOURCE_RING) {
        x = &r->e[r->head];
        free(x->offsets);
        r->head = (r->head + 1) % SOURCE_RING;
    } else {
        x = &r->e[(r->head + r->len) % SOURCE_RING];
        r->len++;
    }
    x->first_seq = first_seq;
    x->n = n;
    x->kind = kind;
    x->partition = partition;
    size_t l = name ? strlen(name) : 0;
    if (l >= sizeof x->name) l = sizeof x->name - 1;
    if (l) memcpy(x->name, name, l);
    x->name[l] = '\0';
    x->offsets = offsets;
    x->last_offset = last_offset;
}

const source_entry_t *source_ring_find(const source_ring_t *r, uint64_t seq) {
    size_t lo = 0, hi = r->len;
    while (lo < hi) { /* entries are in seq order */
        size_t mid = (lo + hi) / 2;
        const source_entry_t *x = &r->e[(r->head + mid) % SOURCE_RING];
        if (seq < x->first_seq) hi = mid;
        else if (seq >= x->first_seq + x->n) lo = mid + 1;
        else return x;
    }
    return NULL;
}

void source_ring_free(source_ring_t *r) {
    for (size_t i = 0; i < r->len; i++) free(r->e[(r->head + i) % SOURCE_RING].offsets);
    r->len = 0;
}
