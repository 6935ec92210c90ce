/* windows.c - windowed counters per SKU and their expiry; semantics in
 * windows.h.
 *
 * Layout. Entry i (i >= 1) is sums[i] (win_sums_t, what rules read) plus
 * ent[i] (24 bytes: slot vector, sku, heap position, slot counts). The slot
 * vector holds nhour hour slots then nmin minute slots, each region sorted
 * by key = (hour or minute) << 1 | kind (kind 0 = order, 1 = behaviour), one
 * slot per key. Its capacity is implicit: slot_cap(nhour + nmin). Vectors
 * of CACHE_MIN_CAP slots or more carry a 32-byte win_cache_t in front of the
 * slots: per window, the gmv of the window's order slots before its last
 * one, so an order landing in the last order slot (the common case for a
 * busy SKU) updates gmv exactly in O(1) instead of re-summing every slot.
 * Free entries are chained through ent[].sku and have heap_pos == HEAP_NONE.
 *
 * Invariants, at clock `now` (M = m(now), H = h(now)), for an active entry:
 *  - every minute slot has minute > M - 1440, every hour slot hour > H - 168
 *    (expired slots are dropped when the entry's heap item comes due);
 *  - sums[i] equals the sums over its slots as defined in windows.h (gmv
 *    recomputed in slot order unless the event appends a new last order
 *    slot, gmv += g, or lands in the last one, gmv = pre + g, both exact);
 *  - a cache's pre[k] is valid when bit k of `valid` is set (a full
 *    recompute or an append sets it; growing into a cache clears it);
 *  - the heap item of i holds exactly the first minute at which a slot
 *    leaves one of its windows: min(first minute slot in 1h + 60, first
 *    minute slot + 1440, (first hour slot + 168) * 60). Adding a slot can
 *    only lower that minimum (an out-of-order event, or the first event in
 *    1h of a SKU that had only older ones), so an add is a decrease-key;
 *    a release removes the item (no lazy invalidation needed).
 *  - when an item comes due, the entry drops its expired slots and re-sums
 *    only the windows that can have changed (7d if hour slots dropped, 24h
 *    and 1h if minute slots dropped, else 1h over its suffix); with no slot
 *    left it is freed. sums[0] stays all zero.
 *
 * windows_snap_* write and read the WIND snapshot section (format in
 * snapshot.c): entries at their indices, slots, free chain and heap as they
 * are; sums are recomputed from the slots on load.
 *
 * Only the writer thread calls into this file. */
#include <stdlib.h>
#include <string.h>
#include "snapshot.h"
#include "util.h"
#include "windows.h"

#define MINUTE_MS 60000
#define HOUR_MS 3600000
#define WIN_1H_MIN 60
#define WIN_24H_MIN 1440
#define WIN_7D_HOURS 168
#define KIND_ORDER 0u
#define KIND_BEHAV 1u
#define HEAP_NONE UINT32_MAX

typedef struct win_slot {
    uint32_t key;   /* (hour or minute) << 1 | kind */
    uint32_t a;     /* order: qty; behaviour: views */
    union {
        double gmv; /* order: amounts, 0.0 + a1 + a2 ... in arrival order */
        struct {
            uint32_t clicks, carts;
        } b;        /* behaviour */
    } u;
} win_slot_t;

/* In front of the slots of vectors with capacity >= CACHE_MIN_CAP. */
typedef struct win_cache {
    double pre[3];  /* by window: 0.0 + g(s) over its order slots but the last */
    uint32_t valid; /* bit k: pre[k] is current */
    uint32_t pad;
} win_cache_t;
#define CACHE_MIN_CAP 16
#define CACHE_SLOTS (sizeof(win_cache_t) / sizeof(win_slot_t))

typedef struct win_entry {
    win_slot_t *slots;  /* [0, nhour) hour slots, [nhour, nhour + nmin) minute slots */
    uint32_t sku;       /* free entry: next free index (0 = end) */
    uint32_t heap_pos;  /* free entry: HEAP_NONE */
    uint32_t nhour, nmin;
} win_entry_t;

typedef struct win_heap_item {
    uint32_t due;   /* minute number at which the entry's sums next change */
    uint32_t idx;
} win_heap_item_t;

struct windows {
    int64_t now;
    win_sums_t *sums;       /* [cap], entry 0 all zero */
    win_entry_t *ent;       /* [cap] */
    win_heap_item_t *heap;  /* [cap], heap_n items, min-heap on due */
    uint32_t n;             /* entries ever used, including 0 */
    uint32_t cap;
    uint32_t free_head;
    uint32_t heap_n;
    size_t active;
    size_t slot_bytes;      /* sum of slot vector capacities, in bytes */
    size_t slot_vectors;
};

/* -- Helpers --------------------------------------------------------------- */

static inline uint32_t slot_time(const win_slot_t *s) { return s->key >> 1; }
static inline uint32_t slot_kind(const win_slot_t *s) { return s->key & 1u; }

static uint32_t slot_cap(uint32_t n) { /* capacity of a vector of n slots */
    if (n <= 2) return 2;
    uint32_t c = 4;
    while (c < n) c <<= 1;
    return c;
}

static inline uint32_t hdr_slots(uint32_t cap) { return cap >= CACHE_MIN_CAP ? CACHE_SLOTS : 0; }

static inline win_cache_t *ent_cache(const win_entry_t *e) {
    if (!e->slots || !hdr_slots(slot_cap(e->nhour + e->nmin))) return NULL;
    return (win_cache_t *)(void *)(e->slots - CACHE_SLOTS);
}

/* Moves e's vector from capacity old_cap to new_cap (e->slots may be NULL),
 * adding or removing the cache header as the capacity crosses CACHE_MIN_CAP. */
static void slots_resize(windows_t *w, win_entry_t *e, uint32_t old_cap, uint32_t new_cap) {
    uint32_t n = e->nhour + e->nmin;
    uint32_t ho = 0, hn = hdr_slots(new_cap);
    win_slot_t *block = NULL;
    if (e->slots) {
        ho = hdr_slots(old_cap);
        block = e->slots - ho;
        w->slot_bytes -= (size_t)(old_cap + ho) * sizeof(win_slot_t);
    } else {
        w->slot_vectors++;
    }
    if (hn < ho) memmove(block, block + ho, (size_t)n * sizeof *block);
    block = xrealloc(block, (size_t)(new_cap + hn) * sizeof *block);
    if (hn > ho) {
        memmove(block + hn, block + ho, (size_t)n * sizeof *block);
        memset(block, 0, hn * sizeof *block); /* valid = 0 */
    }
    e->slots = block + hn;
    w->slot_bytes += (size_t)(new_cap + hn) * sizeof(win_slot_t);
}

static void slots_drop(windows_t *w, win_entry_t *e) {
    if (!e->slots) return;
    uint32_t cap = slot_cap(e->nhour + e->nmin);
    w->slot_bytes -= (size_t)(cap + hdr_slots(cap)) * sizeof(win_slot_t);
    w->slot_vectors--;
    free(e->slots - hdr_slots(cap));
    e->slots = NULL;
    e->nhour = e->nmin = 0;
}

/* -- Heap (one item per active entry; ent[].heap_pos tracks positions) ----- */

static inline void heap_put(windows_t *w, uint32_t pos, win_heap_item_t it) {
    w->heap[pos] = it;
    w->ent[it.idx].heap_pos = pos;
}

static void heap_up(windows_t *w, uint32_t pos) {
    win_heap_item_t it = w->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (w->heap[parent].due <= it.due) break;
        heap_put(w, pos, w->heap[parent]);
        pos = parent;
    }
    heap_put(w, pos, it);
}

static void heap_down(windows_t *w, uint32_t pos) {
    win_heap_item_t it = w->heap[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= w->heap_n) break;
        if (c + 1 < w->heap_n && w->heap[c + 1].due < w->heap[c].due) c++;
        if (w->heap[c].due >= it.due) break;
        heap_put(w, pos, w->heap[c]);
        pos = c;
    }
    heap_put(w, pos, it);
}

static void heap_push(windows_t *w, uint32_t idx, uint32_t due) {
    uint32_t pos = w->heap_n++;
    heap_put(w, pos, (win_heap_item_t){due, idx});
    heap_up(w, pos);
}

static void heap_remove(windows_t *w, uint32_t pos) {
    uint32_t last = --w->heap_n;
    if (pos != last) {
        uint32_t old_due = w->heap[pos].due;
        heap_put(w, pos, w->heap[last]);
        if (w->heap[pos].due < old_due) heap_up(w, pos);
        else heap_down(w, pos);
    }
}

/* -- Entries --------------------------------------------------------------- */

static uint32_t entry_new(windows_t *w, uint32_t sku) {
    uint32_t idx;
    if (w->free_head) {
        idx = w->free_head;
        w->free_head = w->ent[idx].sku;
    } else {
        if (w->n == w->cap) {
            uint32_t cap = w->cap * 2;
            w->sums = xrealloc(w->sums, (size_t)cap * sizeof *w->sums);
            w->ent = xrealloc(w->ent, (size_t)cap * sizeof *w->ent);
            w->heap = xrealloc(w->heap, (size_t)cap * sizeof *w->heap);
            w->cap = cap;
        }
        idx = w->n++;
    }
    w->ent[idx] = (win_entry_t){NULL, sku, HEAP_NONE, 0, 0};
    memset(&w->sums[idx], 0, sizeof w->sums[idx]);
    w->active++;
    return idx;
}

static void entry_free(windows_t *w, uint32_t idx) {
    win_entry_t *e = &w->ent[idx];
    slots_drop(w, e);
    if (e->heap_pos != HEAP_NONE) heap_remove(w, e->heap_pos);
    e->heap_pos = HEAP_NONE;
    e->sku = w->free_head;
    w->free_head = idx;
    memset(&w->sums[idx], 0, sizeof w->sums[idx]);
    w->active--;
}

static int entry_live(const windows_t *w, uint32_t idx) {
    return idx > 0 && idx < w->n && w->ent[idx].heap_pos != HEAP_NONE;
}

/* -- Sums and due times ---------------------------------------------------- */

/* Window w's sums from slots [from, to) (and the cache's pre[w]: the gmv
 * before the last order slot, for O(1) exact updates of that slot). */
static void sum_range(const win_entry_t *e, uint32_t from, uint32_t to, int w, win_sums_t *s) {
    uint32_t sales = 0, views = 0, clicks = 0, carts = 0;
    double gmv = 0.0, pre = 0.0;
    for (uint32_t i = from; i < to; i++) {
        const win_slot_t *sl = &e->slots[i];
        if (slot_kind(sl) == KIND_ORDER) {
            sales += sl->a;
            pre = gmv;
            gmv += sl->u.gmv;
        } else {
            views += sl->a;
            clicks += sl->u.b.clicks;
            carts += sl->u.b.carts;
        }
    }
    s->sales[w] = sales;
    s->views[w] = views;
    s->clicks[w] = clicks;
    s->carts[w] = carts;
    s->gmv[w] = gmv;
    win_cache_t *c = ent_cache(e);
    if (c) {
        c->pre[w] = pre;
        c->valid |= 1u << w;
    }
}

/* 7d sums from the hour slots. */
static void sum_hours(const win_entry_t *e, win_sums_t *s) { sum_range(e, 0, e->nhour, WIN_7D, s); }

/* 1h and 24h sums from the minute slots, all of which are in 24h (and the
 * cache's pre[WIN_1H], pre[WIN_24H]). */
static void sum_minutes(const win_entry_t *e, win_sums_t *s, int64_t M) {
    uint32_t sales[2] = {0, 0}, views[2] = {0, 0}, clicks[2] = {0, 0}, carts[2] = {0, 0};
    double gmv[2] = {0.0, 0.0}, pre[2] = {0.0, 0.0};
    const win_slot_t *sl = e->slots + e->nhour;
    for (uint32_t i = 0; i < e->nmin; i++, sl++) {
        int k1 = (int64_t)slot_time(sl) > M - WIN_1H_MIN;
        if (slot_kind(sl) == KIND_ORDER) {
            sales[1] += sl->a;
            pre[1] = gmv[1];
            gmv[1] += sl->u.gmv;
            if (k1) {
                sales[0] += sl->a;
                pre[0] = gmv[0];
                gmv[0] += sl->u.gmv;
            }
        } else {
            views[1] += sl->a;
            clicks[1] += sl->u.b.clicks;
            carts[1] += sl->u.b.carts;
            if (k1) {
                views[0] += sl->a;
                clicks[0] += sl->u.b.clicks;
                carts[0] += sl->u.b.carts;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        s->sales[k] = sales[k];
        s->views[k] = views[k];
        s->clicks[k] = clicks[k];
        s->carts[k] = carts[k];
        s->gmv[k] = gmv[k];
    }
    win_cache_t *c = ent_cache(e);
    if (c) {
        c->pre[WIN_1H] = pre[0];
        c->pre[WIN_24H] = pre[1];
        c->valid |= 1u << WIN_1H | 1u << WIN_24H;
    }
}

/* Index (within the minute region) of the first minute slot in the 1h
 * window, i.e. with minute > M - 60; nmin if none. */
static uint32_t first_in_1h(const win_entry_t *e, int64_t M) {
    const win_slot_t *s = e->slots + e->nhour;
    uint32_t lo = 0, hi = e->nmin;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)slot_time(&s[mid]) > M - WIN_1H_MIN) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* 1h sums only (when no slot left 24h or 7d): folds the 1h suffix. */
static void sum_1h(const win_entry_t *e, win_sums_t *s, int64_t M) {
    sum_range(e, e->nhour + first_in_1h(e, M), e->nhour + e->nmin, WIN_1H, s);
}

/* First minute at which a slot of e leaves one of its windows. */
static uint32_t entry_due(const win_entry_t *e, int64_t M) {
    int64_t due = INT64_MAX;
    if (e->nhour) due = ((int64_t)slot_time(&e->slots[0]) + WIN_7D_HOURS) * 60;
    if (e->nmin) {
        const win_slot_t *s = e->slots + e->nhour;
        int64_t d = (int64_t)slot_time(&s[0]) + WIN_24H_MIN;
        if (d < due) due = d;
        uint32_t lo = first_in_1h(e, M);
        if (lo < e->nmin) {
            d = (int64_t)slot_time(&s[lo]) + WIN_1H_MIN;
            if (d < due) due = d;
        }
    }
    return due > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)due;
}

/* -- Adding events --------------------------------------------------------- */

/* The slot with `key` in region `hourly` of e, inserted (zeroed) if absent;
 * *created tells which. */
static win_slot_t *slot_get(windows_t *w, win_entry_t *e, int hourly, uint32_t key, int *created) {
    uint32_t base = hourly ? 0 : e->nhour;
    uint32_t len = hourly ? e->nhour : e->nmin;
    win_slot_t *s = e->slots ? e->slots + base : NULL; /* no arithmetic on NULL */
    uint32_t pos;
    *created = 0;
    if (len && s[len - 1].key == key) return &s[len - 1];
    if (len == 0 || s[len - 1].key < key) {
        pos = len;
    } else {
        uint32_t lo = 0, hi = len;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s[mid].key < key) lo = mid + 1;
            else hi = mid;
        }
        if (s[lo].key == key) return &s[lo];
        pos = lo;
    }
    *created = 1;
    uint32_t n = e->nhour + e->nmin;
    if (!e->slots || n == slot_cap(n)) slots_resize(w, e, slot_cap(n), e->slots ? slot_cap(n + 1) : 2);
    win_slot_t *at = e->slots + base + pos;
    memmove(at + 1, at, (size_t)(n - base - pos) * sizeof *at);
    memset(at, 0, sizeof *at);
    at->key = key;
    if (hourly) e->nhour++;
    else e->nmin++;
    return at;
}

static void slot_apply(win_slot_t *sl, uint32_t kind, uint32_t a, double amount, uint32_t clicks,
                       uint32_t carts) {
    sl->a += a;
    if (kind == KIND_ORDER) {
        sl->u.gmv += amount;
    } else {
        sl->u.b.clicks += clicks;
        sl->u.b.carts += carts;
    }
}

/* Adds to window k of s what one event adds (counts only). */
static void sums_count(win_sums_t *s, int k, uint32_t kind, uint32_t a, uint32_t clicks,
                       uint32_t carts) {
    if (kind == KIND_ORDER) {
        s->sales[k] += a;
    } else {
        s->views[k] += a;
        s->clicks[k] += clicks;
        s->carts[k] += carts;
    }
}

/* 1 if no order slot follows sl in its region (which ends at `end`). */
static int last_order(const win_slot_t *sl, const win_slot_t *end) {
    for (sl++; sl < end; sl++)
        if (slot_kind(sl) == KIND_ORDER) return 0;
    return 1;
}

/* Updates gmv[k] for k in `wins` after the order slot sl changed by an
 * amount. Exact in O(1) when sl is the last order slot of its region: a new
 * one (gmv += g, and what was summed before becomes pre) or an existing one
 * with a valid cache (gmv = pre + g); otherwise the region is re-summed. */
static void gmv_update(win_entry_t *e, win_sums_t *s, const win_slot_t *sl, int created,
                       int hourly, unsigned wins, int64_t M) {
    win_cache_t *c = ent_cache(e);
    const win_slot_t *end = hourly ? e->slots + e->nhour : e->slots + e->nhour + e->nmin;
    unsigned region = hourly ? 1u << WIN_7D : (1u << WIN_1H | 1u << WIN_24H);
    int last = last_order(sl, end);
    if (created && last) {
        for (int k = 0; k < WIN__COUNT; k++) {
            if (!(region >> k & 1)) continue;
            if (c) c->pre[k] = s->gmv[k];
            if (wins >> k & 1) s->gmv[k] += sl->u.gmv;
        }
        if (c) c->valid |= region;
        return;
    }
    if (!created && last && c && (c->valid & region) == region) {
        for (int k = 0; k < WIN__COUNT; k++)
            if (wins >> k & 1) s->gmv[k] = c->pre[k] + sl->u.gmv;
        return;
    }
    if (hourly) sum_hours(e, s);
    else sum_minutes(e, s, M);
}

/* -1 invalid ts, 0 stale, 1 in some window at max(now, clock). */
static int classify(const windows_t *w, int64_t ts, int64_t now) {
    if (ts < 0 || ts > WINDOWS_TS_MAX) return -1;
    int64_t c = now > w->now ? now : w->now;
    return ts / HOUR_MS > c / HOUR_MS - WIN_7D_HOURS ? 1 : 0;
}

static int add_event(windows_t *w, uint32_t *win_index, uint32_t sku, uint32_t kind, uint32_t a,
                     double amount, uint32_t clicks, uint32_t carts, int64_t ts) {
    uint32_t idx = *win_index;
    int fresh = 0;
    if (idx == 0) {
        idx = entry_new(w, sku);
        fresh = 1;
    } else if (!entry_live(w, idx)) {
        return -1;
    }
    win_entry_t *e = &w->ent[idx];
    if (e->nhour + e->nmin + 2 > WINDOWS_MAX_SLOTS) return -1; /* never for a fresh entry */
    win_sums_t *s = &w->sums[idx];
    int64_t M = w->now / MINUTE_MS;
    int64_t m = ts / MINUTE_MS, h = ts / HOUR_MS;
    int created;

    win_slot_t *sl = slot_get(w, e, 1, (uint32_t)h << 1 | kind, &created);
    slot_apply(sl, kind, a, amount, clicks, carts);
    sums_count(s, WIN_7D, kind, a, clicks, carts);
    if (kind == KIND_ORDER) gmv_update(e, s, sl, created, 1, 1u << WIN_7D, M);
    int64_t due = (h + WIN_7D_HOURS) * 60;

    if (m > M - WIN_24H_MIN) {
        int in1h = m > M - WIN_1H_MIN;
        sl = slot_get(w, e, 0, (uint32_t)m << 1 | kind, &created);
        slot_apply(sl, kind, a, amount, clicks, carts);
        sums_count(s, WIN_24H, kind, a, clicks, carts);
        if (in1h) sums_count(s, WIN_1H, kind, a, clicks, carts);
        if (kind == KIND_ORDER)
            gmv_update(e, s, sl, created, 0, 1u << WIN_24H | (in1h ? 1u << WIN_1H : 0), M);
        due = m + (in1h ? WIN_1H_MIN : WIN_24H_MIN);
    }

    uint32_t due32 = due > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)due;
    if (fresh) {
        heap_push(w, idx, due32);
        *win_index = idx;
    } else if (due32 < w->heap[e->heap_pos].due) {
        w->heap[e->heap_pos].due = due32;
        heap_up(w, e->heap_pos);
    }
    return 1;
}

/* -- Public API ------------------------------------------------------------ */

windows_t *windows_new(void) {
    windows_t *w = xcalloc(1, sizeof *w);
    w->cap = 16;
    w->sums = xcalloc(w->cap, sizeof *w->sums);
    w->ent = xcalloc(w->cap, sizeof *w->ent);
    w->heap = xcalloc(w->cap, sizeof *w->heap);
    w->ent[0].heap_pos = HEAP_NONE;
    w->n = 1;
    return w;
}

void windows_free(windows_t *w) {
    if (!w) return;
    for (uint32_t i = 1; i < w->n; i++) {
        win_entry_t *e = &w->ent[i];
        if (e->slots) free(e->slots - hdr_slots(slot_cap(e->nhour + e->nmin)));
    }
    free(w->sums);
    free(w->ent);
    free(w->heap);
    free(w);
}

int windows_add_order(windows_t *w, uint32_t *win_index, uint32_t sku, uint32_t qty,
                      double amount, int64_t ts, int64_t now) {
    int rc = classify(w, ts, now);
    if (rc <= 0) return rc;
    if (qty == 0 && amount == 0.0) return 1;
    return add_event(w, win_index, sku, KIND_ORDER, qty, amount, 0, 0, ts);
}

int windows_add_behaviour(windows_t *w, uint32_t *win_index, uint32_t sku, win_metric_t m,
                          int64_t ts, int64_t now) {
    if (m != WM_VIEWS && m != WM_CLICKS && m != WM_CARTS) return -1;
    int rc = classify(w, ts, now);
    if (rc <= 0) return rc;
    return add_event(w, win_index, sku, KIND_BEHAV, m == WM_VIEWS, 0.0, m == WM_CLICKS,
                     m == WM_CARTS, ts);
}

void windows_advance(windows_t *w, int64_t now, windows_change_fn on_change, void *arg) {
    if (now <= w->now) return;
    w->now = now;
    int64_t M = now / MINUTE_MS, H = now / HOUR_MS;
    while (w->heap_n && (int64_t)w->heap[0].due <= M) {
        uint32_t idx = w->heap[0].idx;
        win_entry_t *e = &w->ent[idx];
        uint32_t n_old = e->nhour + e->nmin;
        uint32_t dh = 0, dm = 0;
        while (dh < e->nhour && (int64_t)slot_time(&e->slots[dh]) <= H - WIN_7D_HOURS) dh++;
        while (dm < e->nmin && (int64_t)slot_time(&e->slots[e->nhour + dm]) <= M - WIN_24H_MIN) dm++;
        if (dh == e->nhour && dm == e->nmin) {
            uint32_t sku = e->sku;
            entry_free(w, idx);
            if (on_change) on_change(arg, sku, 0);
            continue;
        }
        if (dh || dm) {
            /* keep [dh, nhour) and [nhour + dm, n_old), closing the gaps */
            memmove(e->slots, e->slots + dh, (size_t)(e->nhour - dh) * sizeof *e->slots);
            memmove(e->slots + (e->nhour - dh), e->slots + e->nhour + dm,
                    (size_t)(e->nmin - dm) * sizeof *e->slots);
            e->nhour -= dh;
            e->nmin -= dm;
            uint32_t n_new = e->nhour + e->nmin;
            if (slot_cap(n_new) < slot_cap(n_old)) slots_resize(w, e, slot_cap(n_old), slot_cap(n_new));
        }
        /* re-sum only what can have changed: a slot left 7d (hour slots
         * dropped), 24h (minute slots dropped) or else only 1h */
        win_sums_t old = w->sums[idx];
        if (dh) sum_hours(e, &w->sums[idx]);
        if (dm) sum_minutes(e, &w->sums[idx], M);
        else sum_1h(e, &w->sums[idx], M);
        w->heap[0].due = entry_due(e, M);
        heap_down(w, 0);
        if (on_change && memcmp(&old, &w->sums[idx], sizeof old) != 0) on_change(arg, e->sku, idx);
    }
}

void windows_release(windows_t *w, uint32_t *win_index) {
    if (!w || !win_index) return;
    if (entry_live(w, *win_index)) entry_free(w, *win_index);
    *win_index = 0;
}

const win_sums_t *windows_sums(const windows_t *w) { return w->sums; }
int64_t windows_now(const windows_t *w) { return w->now; }
size_t windows_active(const windows_t *w) { return w->active; }

size_t windows_memory(const windows_t *w) {
    return sizeof *w + (size_t)w->cap * (sizeof *w->sums + sizeof *w->ent + sizeof *w->heap) +
           w->slot_bytes + w->slot_vectors * 16;
}

size_t windows_slot_count(const windows_t *w, uint32_t win_index) {
    if (!entry_live(w, win_index)) return 0;
    return (size_t)w->ent[win_index].nhour + w->ent[win_index].nmin;
}

int windows_slot_at(const windows_t *w, uint32_t win_index, size_t i, windows_slot_t *out) {
    if (!entry_live(w, win_index)) return -1;
    const win_entry_t *e = &w->ent[win_index];
    if (i >= (size_t)e->nhour + e->nmin) return -1;
    const win_slot_t *sl = &e->slots[i];
    memset(out, 0, sizeof *out);
    out->hourly = i < e->nhour;
    out->order = slot_kind(sl) == KIND_ORDER;
    out->start_ms = (int64_t)slot_time(sl) * (out->hourly ? HOUR_MS : MINUTE_MS);
    if (out->order) {
        out->sales = sl->a;
        out->gmv = sl->u.gmv;
    } else {
        out->views = sl->a;
        out->clicks = sl->u.b.clicks;
        out->carts = sl->u.b.carts;
    }
    return 0;
}

/* Internal key of a snapshot slot, or UINT32_MAX if it is malformed. */
static uint32_t restore_key(const windows_slot_t *s) {
    int64_t unit = s->hourly ? HOUR_MS : MINUTE_MS;
    if (s->hourly > 1 || s->order > 1) return UINT32_MAX;
    if (s->start_ms < 0 || s->start_ms > WINDOWS_TS_MAX || s->start_ms % unit) return UINT32_MAX;
    if (s->order ? (s->views || s->clicks || s->carts) : (s->sales || s->gmv != 0.0))
        return UINT32_MAX;
    return (uint32_t)(s->start_ms / unit) << 1 | (s->order ? KIND_ORDER : KIND_BEHAV);
}

int windows_restore(windows_t *w, uint32_t *win_index, uint32_t sku,
                    const windows_slot_t *slots, size_t n) {
    if (*win_index != 0 || n > WINDOWS_MAX_SLOTS) return -1;
    int64_t M = w->now / MINUTE_MS, H = w->now / HOUR_MS;
    uint32_t nhour = 0, nmin = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = restore_key(&slots[i]);
        if (key == UINT32_MAX) return -1;
        if (i > 0 && slots[i].hourly == slots[i - 1].hourly && key <= prev) return -1;
        if (i > 0 && slots[i].hourly > slots[i - 1].hourly) return -1;
        prev = key;
        int64_t t = key >> 1;
        if (slots[i].hourly) nhour += t > H - WIN_7D_HOURS;
        else nmin += t > M - WIN_24H_MIN;
    }
    if (nhour + nmin == 0) return 0;
    uint32_t idx = entry_new(w, sku);
    win_entry_t *e = &w->ent[idx];
    slots_resize(w, e, 0, slot_cap(nhour + nmin));
    for (size_t i = 0; i < n; i++) {
        uint32_t key = restore_key(&slots[i]);
        int64_t t = key >> 1;
        if (slots[i].hourly ? t <= H - WIN_7D_HOURS : t <= M - WIN_24H_MIN) continue;
        win_slot_t *sl = &e->slots[e->nhour + e->nmin];
        memset(sl, 0, sizeof *sl);
        sl->key = key;
        if (slots[i].order) {
            sl->a = slots[i].sales;
            sl->u.gmv = slots[i].gmv;
        } else {
            sl->a = slots[i].views;
            sl->u.b.clicks = slots[i].clicks;
            sl->u.b.carts = slots[i].carts;
        }
        if (slots[i].hourly) e->nhour++;
        else e->nmin++;
    }
    sum_hours(e, &w->sums[idx]);
    sum_minutes(e, &w->sums[idx], M);
    heap_push(w, idx, entry_due(e, M));
    *win_index = idx;
    return 0;
}

/* -- Snapshots ------------------------------------------------------------ */

int windows_snap_write(const windows_t *w, snap_writer_t *sw) {
    if (snap_begin(sw, SNAP_TAG_WINDOWS) != 0) return -1;
    snap_put_i64(sw, w->now);
    snap_put_u32(sw, w->n);
    snap_put_u32(sw, w->free_head);
    snap_put_u32(sw, w->heap_n);
    for (uint32_t i = 1; i < w->n; i++) {
        const win_entry_t *e = &w->ent[i];
        int live = e->heap_pos != HEAP_NONE;
        snap_put_u8(sw, (uint8_t)live);
        if (!live) {
            snap_put_u32(sw, e->sku); /* next free entry */
            continue;
        }
        snap_put_u32(sw, e->sku);
        snap_put_u32(sw, e->heap_pos);
        snap_put_u32(sw, e->nhour);
        snap_put_u32(sw, e->nmin);
        for (uint32_t k = 0; k < e->nhour + e->nmin; k++) {
            const win_slot_t *sl = &e->slots[k];
            uint8_t rec[16];
            snap_enc_u32(rec, sl->key);
            snap_enc_u32(rec + 4, sl->a);
            if (slot_kind(sl) == KIND_ORDER) {
                snap_enc_f64(rec + 8, sl->u.gmv);
            } else {
                snap_enc_u32(rec + 8, sl->u.b.clicks);
                snap_enc_u32(rec + 12, sl->u.b.carts);
            }
            snap_put(sw, rec, sizeof rec);
        }
        if (snap_writer_error(sw)[0]) return -1;
    }
    for (uint32_t i = 0; i < w->heap_n; i++) {
        snap_put_u32(sw, w->heap[i].due);
        snap_put_u32(sw, w->heap[i].idx);
    }
    return snap_end(sw);
}

/* Reads the slots of the empty entry e (nhour, nmin already bounded) and
 * sums them. */
static int snap_read_slots(windows_t *w, win_entry_t *e, win_sums_t *s, snap_reader_t *r,
                           uint32_t nhour, uint32_t nmin, int64_t M) {
    uint32_t n = nhour + nmin;
    slots_resize(w, e, 0, slot_cap(n));
    e->nhour = nhour; /* from here on the vector's capacity matches its counts */
    e->nmin = nmin;
    const uint8_t *p = snap_get_bytes(r, (size_t)n * 16);
    if (!p) return -1;
    memset(e->slots, 0, (size_t)n * sizeof *e->slots);
    for (uint32_t k = 0; k < n; k++, p += 16) {
        win_slot_t *sl = &e->slots[k];
        int hourly = k < nhour;
        sl->key = snap_dec_u32(p);
        sl->a = snap_dec_u32(p + 4);
        if (slot_kind(sl) == KIND_ORDER) {
            sl->u.gmv = snap_dec_f64(p + 8);
        } else {
            sl->u.b.clicks = snap_dec_u32(p + 8);
            sl->u.b.carts = snap_dec_u32(p + 12);
        }
        uint32_t tmax = (uint32_t)(WINDOWS_TS_MAX / (hourly ? HOUR_MS : MINUTE_MS));
        if (slot_time(sl) > tmax || (k != 0 && k != nhour && sl->key <= sl[-1].key))
            return snap_fail(r, "windows slot %u of %u out of order or range", k, n);
    }
    sum_hours(e, s);
    sum_minutes(e, s, M);
    return 0;
}

int windows_snap_read(windows_t *w, snap_reader_t *r, uint32_t id_limit) {
    if (w->n != 1 || w->now != 0 || w->heap_n != 0)
        return snap_fail(r, "the windows to load into are not empty");
    int64_t now;
    uint32_t n, free_head, heap_n;
    snap_get_i64(r, &now);
    snap_get_u32(r, &n);
    snap_get_u32(r, &free_head);
    if (snap_get_u32(r, &heap_n) != 0) return -1;
    if (now < 0 || now > WINDOWS_TS_MAX) return snap_fail(r, "windows clock %lld out of range", (long long)now);
    if (n == 0 || n - 1 > snap_remaining(r) / 5 || free_head >= n || heap_n >= n)
        return snap_fail(r, "%u windows entries do not fit the section", n);
    uint32_t cap = w->cap;
    while (cap < n) cap *= 2;
    if (cap != w->cap) {
        w->sums = xrealloc(w->sums, (size_t)cap * sizeof *w->sums);
        w->ent = xrealloc(w->ent, (size_t)cap * sizeof *w->ent);
        w->heap = xrealloc(w->heap, (size_t)cap * sizeof *w->heap);
        w->cap = cap;
    }
    memset(w->sums, 0, (size_t)n * sizeof *w->sums);
    for (uint32_t i = 1; i < n; i++) w->ent[i] = (win_entry_t){NULL, 0, HEAP_NONE, 0, 0};
    w->n = n;
    w->now = now;
    int64_t M = now / MINUTE_MS;
    uint32_t nfree = 0;
    for (uint32_t i = 1; i < n; i++) {
        win_entry_t *e = &w->ent[i];
        uint8_t live;
        uint32_t sku, pos, nhour, nmin;
        snap_get_u8(r, &live);
        if (snap_get_u32(r, &sku) != 0) return -1;
        if (live > 1) return snap_fail(r, "windows entry %u: bad flag %u", i, live);
        if (!live) {
            if (sku >= n) return snap_fail(r, "windows entry %u: bad free link %u", i, sku);
            e->sku = sku;
            nfree++;
            continue;
        }
        snap_get_u32(r, &pos);
        snap_get_u32(r, &nhour);
        if (snap_get_u32(r, &nmin) != 0) return -1;
        if (sku >= id_limit || pos >= heap_n || nhour > WINDOWS_MAX_SLOTS || nmin > WINDOWS_MAX_SLOTS ||
            nhour + nmin == 0 || nhour + nmin > WINDOWS_MAX_SLOTS ||
            (size_t)(nhour + nmin) > snap_remaining(r) / 16)
            return snap_fail(r, "windows entry %u: bad header", i);
        e->sku = sku;
        e->heap_pos = pos;
        w->active++;
        if (snap_read_slots(w, e, &w->sums[i], r, nhour, nmin, M) != 0) return -1;
    }
    if (heap_n != w->active) return snap_fail(r, "windows heap holds %u of %zu entries", heap_n, w->active);
    const uint8_t *hp = snap_get_bytes(r, (size_t)heap_n * 8);
    if (!hp) return -1;
    for (uint32_t i = 0; i < heap_n; i++, hp += 8) {
        win_heap_item_t it = {snap_dec_u32(hp), snap_dec_u32(hp + 4)};
        if (!entry_live(w, it.idx) || w->ent[it.idx].heap_pos != i ||
            (i > 0 && w->heap[(i - 1) / 2].due > it.due))
            return snap_fail(r, "windows heap item %u is inconsistent", i);
        w->heap[i] = it;
    }
    w->heap_n = heap_n;
    uint32_t steps = 0;
    for (uint32_t i = free_head; i != 0; i = w->ent[i].sku)
        if (w->ent[i].heap_pos != HEAP_NONE || ++steps > nfree)
            return snap_fail(r, "windows free chain is broken at entry %u", i);
    if (steps != nfree) return snap_fail(r, "windows free chain misses %u entries", nfree - steps);
    w->free_head = free_head;
    return snap_section_done(r);
}

uint32_t windows_entry_sku(const windows_t *w, uint32_t win_index) {
    return entry_live(w, win_index) ? w->ent[win_index].sku : UINT32_MAX;
}
