/* windows.h - windowed counters per SKU (sales, gmv, views, clicks, carts
 * over 1h, 24h, 7d) that fall as the clock moves, with no new event.
 *
 * Exact semantics (the end-to-end test's Python reference implements this):
 *   m(t) = floor(t / 60000)   minute slot;   h(t) = floor(t / 3600000)  hour slot
 *   (t in ms since the Unix epoch, 0 <= t <= WINDOWS_TS_MAX).
 *   At clock `now` an event at ts t counts in
 *     1h   iff m(t) > m(now) - 60
 *     24h  iff m(t) > m(now) - 1440
 *     7d   iff h(t) > h(now) - 168
 *   so 1h/24h have minute resolution and 7d hour resolution; an event whose
 *   ts is in the future of `now` counts in every window.
 *   An event is stale (not counted, ever) iff h(t) <= h(c) - 168 where
 *   c = max(now given to windows_add_*, windows clock): outside all three
 *   windows when it arrives. The clock never goes back: windows_advance with
 *   a `now` <= the clock is a no-op. The clock starts at 0.
 *   sales = sum of order qty, views/clicks/carts = number of such events
 *   (uint32, wrapping modulo 2^32), gmv = sum of order amounts as a double:
 *     gmv_W = 0.0 + g(s1) + g(s2) + ...   over the slots s of window W in
 *     ascending slot order (minute slots for 1h/24h, hour slots for 7d),
 *     where g(s) = 0.0 + a1 + a2 + ... over the order amounts falling in that
 *     minute (hour), in arrival order. Every sum is kept equal to this exact
 *     expression at all times (recomputed, never maintained by subtraction).
 *   An order with qty 0 and amount 0 is counted (returns 1) but stores nothing.
 *
 * Storage: a SKU that never had such an event has win index 0 (sums[0] is
 * all zero, no other cost). An active SKU owns an entry: its win_sums_t in a
 * dense array indexed by win index, and one sorted vector of 16-byte slots
 * (hour slots, then minute slots of the last 24h; orders and behaviour
 * events of one minute use separate slots). A min-heap holds one item per
 * active SKU: the minute at which one of its sums next changes.
 *
 * Threads: the writer thread only. Pointers from windows_sums() stay valid
 * until the next windows_add_* / windows_restore (which may grow the array). */
#ifndef POOLD_WINDOWS_H
#define POOLD_WINDOWS_H

#include <stddef.h>
#include <stdint.h>
#include "view.h"

/* Largest accepted ts: minute numbers must fit in 31 bits (year ~6053). */
#define WINDOWS_TS_MAX ((int64_t)0x7FFFFFFE * 60000 + 59999)
/* Slots one SKU may hold (only reachable with far-future timestamps). */
#define WINDOWS_MAX_SLOTS (1u << 20)

typedef enum { WM_SALES, WM_GMV, WM_VIEWS, WM_CLICKS, WM_CARTS } win_metric_t;

typedef struct windows windows_t;

/* Called from windows_advance once per SKU whose sums changed, after the
 * change. win_index is the SKU's entry, or 0 when the entry was freed (its
 * last slot expired): the engine must then store 0 in the row's `win`. The
 * callback may read windows_sums() but must not call windows_add_*,
 * windows_release or windows_restore. */
typedef void (*windows_change_fn)(void *arg, uint32_t sku, uint32_t win_index);

windows_t *windows_new(void);
void windows_free(windows_t *w);

/* Records an order of SKU `sku` whose row field `*win_index` is its entry
 * (0 = none yet: one is allocated and its index stored). Returns 1 if
 * counted, 0 if stale, -1 if invalid (ts < 0 or > WINDOWS_TS_MAX, or the
 * SKU already holds WINDOWS_MAX_SLOTS slots). Sums are those at the windows
 * clock; call windows_advance(now) first (if `now` is newer than the clock,
 * it only decides staleness; the next advance expires the rest). */
int windows_add_order(windows_t *w, uint32_t *win_index, uint32_t sku, uint32_t qty,
                      double amount, int64_t ts, int64_t now);
/* Same for a view, click or cart (m = WM_VIEWS, WM_CLICKS, WM_CARTS; any
 * other metric returns -1). */
int windows_add_behaviour(windows_t *w, uint32_t *win_index, uint32_t sku, win_metric_t m,
                          int64_t ts, int64_t now);

/* Moves the clock to `now` (no-op unless newer), expires what fell out of
 * each window and calls on_change (may be NULL) as described above. Costs
 * O(log n) plus a re-sum of the changed windows' slots per SKU whose sums
 * change; nothing for SKUs with nothing due. */
void windows_advance(windows_t *w, int64_t now, windows_change_fn on_change, void *arg);

/* SKU deleted: frees its entry (if any) and sets *win_index to 0. No
 * callback. */
void windows_release(windows_t *w, uint32_t *win_index);

/* Base of the sums array indexed by win index (entry 0 all zero). Moves when
 * entries are allocated: re-read after any windows_add_* / windows_restore. */
const win_sums_t *windows_sums(const windows_t *w);
int64_t windows_now(const windows_t *w);
/* Active entries (SKUs with at least one slot). */
size_t windows_active(const windows_t *w);
/* Bytes held: arrays at capacity, slot vectors at capacity plus an
 * estimated 16 bytes of allocator overhead per slot vector. */
size_t windows_memory(const windows_t *w);

/* One slot, for snapshots and GET /api/skus. An order slot has only sales
 * and gmv set, a behaviour slot only views, clicks and carts. */
typedef struct windows_slot {
    int64_t start_ms;   /* first ms of the slot's minute (hour) */
    uint8_t hourly;     /* 1: hour slot (7d window); 0: minute slot (1h, 24h) */
    uint8_t order;      /* 1: order slot; 0: behaviour slot */
    uint32_t sales, views, clicks, carts;
    double gmv;         /* g(s) above */
} windows_slot_t;

/* Slots of entry win_index (0 for index 0): hour slots ascending, then
 * minute slots ascending; an order slot sorts before the behaviour slot of
 * the same minute (hour). */
size_t windows_slot_count(const windows_t *w, uint32_t win_index);
/* Fills *out with slot i; -1 if win_index or i is out of range. */
int windows_slot_at(const windows_t *w, uint32_t win_index, size_t i, windows_slot_t *out);

/* Rebuilds an entry from slots in windows_slot_at order (snapshot load):
 * requires *win_index == 0; drops slots already expired at the windows
 * clock (advance to the snapshot's clock first); stores the new index (or
 * leaves 0 if nothing remains). Returns 0, or -1 if the slots are not
 * well-formed (order, alignment, kinds, ranges); nothing changes then. */
int windows_restore(windows_t *w, uint32_t *win_index, uint32_t sku,
                    const windows_slot_t *slots, size_t n);

/* -- Snapshots (snapshot.h; byte format at the top of snapshot.c) -------- */
struct snap_writer;
struct snap_reader;
/* Writes the WIND section: the clock, every entry with its slots (entry
 * indices kept, so sku_row_t.win stays valid), the free chain and the heap
 * as it is. Read-only on w; safe in a forked child (snapshot.h). */
int windows_snap_write(const windows_t *w, struct snap_writer *sw);
/* Reads the current WIND section into a fresh windows_t (windows_new,
 * nothing added): the same entries at the same indices, the same clock,
 * free chain and heap; sums recomputed from the slots. SKU ids must be
 * < id_limit. 0, or -1 with snap_error(r). */
int windows_snap_read(windows_t *w, struct snap_reader *r, uint32_t id_limit);
/* The SKU of entry win_index, UINT32_MAX if it is not an active entry. */
uint32_t windows_entry_sku(const windows_t *w, uint32_t win_index);

#endif
