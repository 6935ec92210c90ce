/* rank_index.c - counted B+tree over (score desc, name asc, id asc).
 *
 * Layout. Nodes live in two growable arrays (leaves[], inners[]) addressed
 * by uint32 index, with free lists: no malloc per operation once grown.
 *   - A leaf holds up to leaf_max entries {id, score, tie} in physical
 *     slots that never move while the entry stays in the leaf; order[]
 *     lists the slots in rank order and shares the first cache line with
 *     the header, so an insert or erase shifts a few bytes instead of the
 *     entries. `next` links the leaves in rank order (range scans).
 *   - tie = the name's first 16 bytes as two big-endian words (zero padded)
 *     plus the name pointer. Equal scores (thousands of SKUs share 0) are
 *     settled without reading the caller's strings unless two names share
 *     their first 16 bytes.
 *   - An inner node holds up to inner_max children with, per child, the
 *     entry count of its subtree (cnt) and a separator key (sep_*).
 *   - An open-addressing hash (linear probing, backward-shift delete, load
 *     <= 3/4) maps id -> {leaf, physical slot, score}: 16 B slots, 21-43 B
 *     per entry however the pool's ids are spread (a dense array would cost
 *     4+ B per possible id in every ranked pool).
 *
 * Invariants (rank_index_check verifies all of them).
 *   - Keys are unique (ids are) and strictly increasing along the leaf
 *     chain; scores are never NaN.
 *   - Separators are EXACT: sep[j] (j >= 1) is the first key of child j's
 *     subtree, never a stale copy. Since a separator's name points at the
 *     caller's string, exactness is what keeps it valid: the entry it came
 *     from is still in the index. sep[0] is never read. Routing by exact
 *     separators sends a new key to position >= 1 of its leaf unless the
 *     leaf is the first one, so inserts only create separators (splits); a
 *     remove at position 0 and every borrow/merge rewrite the one separator
 *     naming the changed first key.
 *   - cnt[j] is the number of entries under child j.
 *   - Every node but the root is at least half full (leaf_min, inner_min);
 *     an inner root has >= 2 children; an empty index is one empty leaf.
 *     So height <= 31 for < 2^32 entries and routes fit in fixed arrays.
 *   - map[id] = the leaf and physical slot holding id, and its score. A
 *     leaf's free slots hold id NONE; its used slots are below leaf_max.
 *
 * Speed. Memory latency dominates at 100k+ entries (the tree outgrows the
 * cache): every operation starts with the map slot, then the id's entry.
 * set() asks for the map slot and the name together, then the old entry,
 * and computes the new and old routes over the (mostly cached) inner nodes
 * while they load; the new leaf is prefetched as soon as its route is
 * known. The old route is guessed from the map's score (and, for set, the
 * new name); a guess is right iff it ends at the id's leaf, as there is
 * one route per leaf, else it is recomputed from the real key. A move
 * inside one leaf touches neither counts nor separators; a set to the
 * same score and name returns after the map slot and the entry. The leaf
 * array and the map sit on huge pages (fewer TLB misses). Descents are
 * loops with the route in a local array; the only recursion is
 * rank_index_check's, as deep as the tree.
 *
 * Threads: the writer thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_memalign, madvise */
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rank_index.h"
#include "util.h"

#define RI_LEAF_MAX 48u  /* entries per leaf: 37 B each, 1.8 KB a leaf */
#define RI_INNER_MAX 32u /* children per inner node: 44 B each */
#define RI_MIN_FANOUT 4u
#define RI_MAX_HEIGHT 40u /* > 31, the bound for 2^32 entries at fill >= 2 */
#define NONE UINT32_MAX

/* What breaks a score tie, id aside. */
typedef struct tie {
    uint64_t p1, p2; /* name bytes 0-7 and 8-15, big-endian, zero padded */
    const char *name;
} tie_t;

typedef struct rkey {
    double score;
    tie_t t;
    uint32_t id;
} rkey_t;

/* Entries sit in physical slots that never move while they stay in the
 * leaf; order[] lists the slots in rank order. An insert or erase shifts
 * the n bytes of order[] (one cache line with the header) instead of the
 * entries themselves. A free slot has id NONE and its `used` bit clear;
 * the lowest free slot is taken first, so slots stay below leaf_max. */
typedef struct leaf {
    uint32_t n;
    uint32_t next; /* following leaf in rank order, NONE for the last; free-list link */
    uint64_t used;
    uint8_t order[RI_LEAF_MAX]; /* rank position -> physical slot */
    uint32_t id[RI_LEAF_MAX];
    double score[RI_LEAF_MAX];
    tie_t tie[RI_LEAF_MAX];
} leaf_t;

_Static_assert(RI_LEAF_MAX <= 64, "leaf slots are tracked in a 64-bit mask");

typedef struct inner {
    uint32_t n;
    uint32_t child[RI_INNER_MAX]; /* leaves at level 1, inner nodes above; child[0]: free link */
    uint32_t cnt[RI_INNER_MAX];
    uint32_t sep_id[RI_INNER_MAX];
    double sep_score[RI_INNER_MAX];
    tie_t sep_tie[RI_INNER_MAX];
} inner_t;

typedef struct map_slot {
    uint32_t id;  /* NONE = empty */
    uint32_t loc; /* leaf index << 6 | physical slot in the leaf */
    double score; /* the entry's stored score: a route guess before the leaf loads */
} map_slot_t;

#define LOC(leaf, slot) ((leaf) << 6 | (slot))
#define LOC_LEAF(loc) ((loc) >> 6)
#define LOC_SLOT(loc) ((loc)&63u)
#define RI_MAX_LEAVES (1u << 26) /* what a loc can address: > 2^32 / leaf_min leaves */

/* A root-to-leaf route: node[h]/idx[h] for inner levels h = height..1. */
typedef struct path {
    uint32_t node[RI_MAX_HEIGHT + 1];
    uint32_t idx[RI_MAX_HEIGHT + 1];
    uint32_t leaf;
} path_t;

struct rank_index {
    leaf_t *leaves;
    uint32_t leaf_cap, leaf_used, leaf_free;
    inner_t *inners;
    uint32_t inner_cap, inner_used, inner_free;
    uint32_t root;
    unsigned height; /* inner levels above the leaves; 0 = the root is a leaf */
    unsigned leaf_max, leaf_min, inner_max, inner_min;
    map_slot_t *map;
    uint32_t map_mask;
    unsigned map_shift;
    size_t map_n; /* entries in the index */
};

/* -- Keys ------------------------------------------------------------------ */

static inline uint64_t be64(const unsigned char *b) {
    uint64_t v;
    memcpy(&v, b, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static rkey_t make_key(uint32_t id, double score, const char *name) {
    unsigned char b[16] = {0};
    memcpy(b, name, strnlen(name, 16));
    return (rkey_t){isnan(score) ? -INFINITY : score, {be64(b), be64(b + 8), name}, id};
}

/* Orders equal scores: < 0 if (a, ai) ranks before (b, bi). Equal prefixes
 * with a non-zero byte 15 mean both names are longer than 15 bytes; with a
 * zero byte 15, both ended at the same place: the names are equal. */
static inline int tie_cmp(const tie_t *a, uint32_t ai, const tie_t *b, uint32_t bi) {
    if (a->p1 != b->p1) return a->p1 < b->p1 ? -1 : 1;
    if (a->p2 != b->p2) return a->p2 < b->p2 ? -1 : 1;
    if ((a->p2 & 0xffu) && a->name != b->name) {
        int c = strcmp(a->name + 16, b->name + 16);
        if (c) return c;
    }
    return (ai > bi) - (ai < bi);
}

/* < 0 if a ranks before (bs, bt, bi). */
static inline int key_cmp(const rkey_t *a, double bs, const tie_t *bt, uint32_t bi) {
    if (a->score != bs) return a->score > bs ? -1 : 1;
    return tie_cmp(&a->t, a->id, bt, bi);
}

/* The entry at rank position j of l. */
static inline rkey_t leaf_key(const leaf_t *l, uint32_t j) {
    uint32_t p = l->order[j];
    return (rkey_t){l->score[p], l->tie[p], l->id[p]};
}

/* -- Big arrays ----------------------------------------------------------- */

/* The leaf array and the map (megabytes at 100k entries, read at random)
 * are 2 MiB aligned and asked to use transparent huge pages: fewer TLB
 * misses, measured 15-30% faster at 200k entries. Small ones use malloc. */
#define HUGE_SIZE ((size_t)2 << 20)

static void *big_alloc(size_t n) {
    if (n < HUGE_SIZE) return xmalloc(n);
    size_t sz = (n + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_SIZE, sz) != 0) return xmalloc(n);
#ifdef MADV_HUGEPAGE
    madvise(p, sz, MADV_HUGEPAGE);
#endif
    return p;
}

/* A bigger copy of old (old_n bytes used); frees old. */
static void *big_grow(void *old, size_t old_n, size_t n) {
    void *p = big_alloc(n);
    if (old_n) memcpy(p, old, old_n);
    free(old);
    return p;
}

/* -- Id map ---------------------------------------------------------------- */

static inline uint32_t map_home(const rank_index_t *ri, uint32_t id) {
    return (uint32_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> ri->map_shift);
}

static void map_init(rank_index_t *ri, unsigned bits) {
    size_t cap = (size_t)1 << bits;
    ri->map = big_alloc(cap * sizeof(map_slot_t));
    for (size_t i = 0; i < cap; i++) ri->map[i].id = NONE;
    ri->map_mask = (uint32_t)(cap - 1);
    ri->map_shift = 64u - bits;
}

static inline map_slot_t *map_find(const rank_index_t *ri, uint32_t id) {
    uint32_t i = map_home(ri, id);
    for (;;) {
        map_slot_t *s = &ri->map[i];
        if (s->id == id) return s;
        if (s->id == NONE) return NULL;
        i = (i + 1) & ri->map_mask;
    }
}

static void map_insert_raw(rank_index_t *ri, const map_slot_t *e) {
    uint32_t i = map_home(ri, e->id);
    while (ri->map[i].id != NONE) i = (i + 1) & ri->map_mask;
    ri->map[i] = *e;
}

/* id must be absent. Keeps the load at or below 3/4. */
static void map_put(rank_index_t *ri, uint32_t id, uint32_t leaf, uint32_t slot, double score) {
    size_t cap = (size_t)ri->map_mask + 1;
    if ((ri->map_n + 1) * 4 > cap * 3) {
        map_slot_t *old = ri->map;
        map_init(ri, 64u - ri->map_shift + 1u);
        for (size_t i = 0; i < cap; i++)
            if (old[i].id != NONE) map_insert_raw(ri, &old[i]);
        free(old);
    }
    map_insert_raw(ri, &(map_slot_t){id, LOC(leaf, slot), score});
    ri->map_n++;
}

static inline void map_update(rank_index_t *ri, uint32_t id, uint32_t leaf, uint32_t slot) {
    map_slot_t *s = map_find(ri, id);
    if (s) s->loc = LOC(leaf, slot);
}

/* Backward-shift deletion: later members of the probe run move into the
 * hole when their home slot is not cyclically inside (hole, their slot]. */
static void map_del(rank_index_t *ri, uint32_t id) {
    map_slot_t *s = map_find(ri, id);
    if (!s) return;
    uint32_t hole = (uint32_t)(s - ri->map), j = hole;
    for (;;) {
        j = (j + 1) & ri->map_mask;
        if (ri->map[j].id == NONE) break;
        uint32_t k = map_home(ri, ri->map[j].id);
        bool movable = hole <= j ? (k <= hole || k > j) : (k <= hole && k > j);
        if (movable) {
            ri->map[hole] = ri->map[j];
            hole = j;
        }
    }
    ri->map[hole].id = NONE;
    ri->map_n--;
}

/* -- Node pools ------------------------------------------------------------ */

static uint32_t leaf_alloc(rank_index_t *ri) {
    uint32_t i;
    if (ri->leaf_free != NONE) {
        i = ri->leaf_free;
        ri->leaf_free = ri->leaves[i].next;
    } else {
        if (ri->leaf_used == ri->leaf_cap) {
            if (ri->leaf_cap >= RI_MAX_LEAVES) { /* > 2^32 entries: cannot happen */
                log_error("rank_index: out of leaves");
                abort();
            }
            size_t used = (size_t)ri->leaf_cap * sizeof(leaf_t);
            ri->leaf_cap = ri->leaf_cap ? ri->leaf_cap * 2 : 4;
            ri->leaves = big_grow(ri->leaves, used, (size_t)ri->leaf_cap * sizeof(leaf_t));
        }
        i = ri->leaf_used++;
    }
    leaf_t *l = &ri->leaves[i];
    l->n = 0;
    l->next = NONE;
    l->used = 0;
    memset(l->id, 0xff, sizeof l->id);
    return i;
}

static void leaf_release(rank_index_t *ri, uint32_t i) {
    ri->leaves[i].n = 0;
    ri->leaves[i].next = ri->leaf_free;
    ri->leaf_free = i;
}

static uint32_t inner_alloc(rank_index_t *ri) {
    uint32_t i;
    if (ri->inner_free != NONE) {
        i = ri->inner_free;
        ri->inner_free = ri->inners[i].child[0];
    } else {
        if (ri->inner_used == ri->inner_cap) {
            ri->inner_cap = ri->inner_cap ? ri->inner_cap * 2 : 4;
            ri->inners = xrealloc(ri->inners, (size_t)ri->inner_cap * sizeof(inner_t));
        }
        i = ri->inner_used++;
    }
    ri->inners[i].n = 0;
    ri->inners[i].sep_tie[0].name = NULL; /* never read: a read would fault */
    return i;
}

static void inner_release(rank_index_t *ri, uint32_t i) {
    ri->inners[i].n = 0;
    ri->inners[i].child[0] = ri->inner_free;
    ri->inner_free = i;
}

/* Prefetches of a leaf: a burst of more lines than the core tracks misses
 * for would stall, so ask only for what comes first. For an id scan: the
 * header and ids. For a binary search: the header and scores. */
static inline void leaf_prefetch_ids(const rank_index_t *ri, uint32_t li) {
    const leaf_t *l = &ri->leaves[li];
    __builtin_prefetch(l, 1); /* n, used, order[] */
    for (uint32_t j = 0; j < RI_LEAF_MAX; j += 16) __builtin_prefetch(&l->id[j], 1);
}

static inline void leaf_prefetch_scores(const rank_index_t *ri, uint32_t li) {
    const leaf_t *l = &ri->leaves[li];
    __builtin_prefetch(l, 1);
    for (uint32_t j = 0; j < RI_LEAF_MAX; j += 8) __builtin_prefetch(&l->score[j], 1);
}

/* -- Leaf edits ------------------------------------------------------------ */

/* Number of entries of l ranking before k: a branch-free binary search on
 * scores through order[], then, among equal scores, on the tie. */
static inline uint32_t leaf_lower(const leaf_t *l, const rkey_t *k) {
    uint32_t n = l->n;
    if (n == 0) return 0;
    const uint8_t *o = l->order, *base = o;
    double sc = k->score;
    for (uint32_t len = n; len > 1;) {
        uint32_t half = len / 2;
        base = l->score[base[half]] > sc ? base + half : base;
        len -= half;
    }
    uint32_t lo = (uint32_t)(base - o) + (l->score[*base] > sc);
    if (lo == n || l->score[o[lo]] != sc) return lo;
    uint32_t hi = lo + 1;
    while (hi < n && l->score[o[hi]] == sc) hi++;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2, p = o[mid];
        if (tie_cmp(&k->t, k->id, &l->tie[p], l->id[p]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Rank position of the entry in physical slot p of l; NONE unless that
 * slot holds id. */
static inline uint32_t leaf_rank_of(const leaf_t *l, uint32_t p, uint32_t id) {
    if (p >= RI_LEAF_MAX || l->id[p] != id) return NONE;
    for (uint32_t j = 0; j < l->n; j++)
        if (l->order[j] == p) return j;
    return NONE;
}

/* Inserts k at rank position j (l not full); returns its physical slot. */
static inline uint32_t leaf_insert_at(leaf_t *l, uint32_t j, const rkey_t *k) {
    uint32_t p = (uint32_t)__builtin_ctzll(~l->used);
    l->score[p] = k->score;
    l->tie[p] = k->t;
    l->id[p] = k->id;
    memmove(&l->order[j + 1], &l->order[j], l->n - j);
    l->order[j] = (uint8_t)p;
    l->used |= 1ull << p;
    l->n++;
    return p;
}

static inline void leaf_erase(leaf_t *l, uint32_t j) {
    uint32_t p = l->order[j];
    l->id[p] = NONE;
    l->used &= ~(1ull << p);
    memmove(&l->order[j], &l->order[j + 1], l->n - j - 1);
    l->n--;
}

/* Moves src's entries from rank position `from` on to the end of dst
 * (index dst_idx) and points their ids there. */
static void leaf_transfer_tail(rank_index_t *ri, leaf_t *dst, uint32_t dst_idx, leaf_t *src,
                               uint32_t from) {
    for (uint32_t j = from; j < src->n; j++) {
        uint32_t p = src->order[j];
        rkey_t e = {src->score[p], src->tie[p], src->id[p]};
        uint32_t np = leaf_insert_at(dst, dst->n, &e);
        src->id[p] = NONE;
        src->used &= ~(1ull << p);
        map_update(ri, e.id, dst_idx, np);
    }
    src->n = from;
}

/* -- Inner node edits ------------------------------------------------------ */

/* The child of in whose subtree holds (or would hold) k: the number of
 * separators sep[1..n) at or before k. */
static inline uint32_t inner_child(const inner_t *in, const rkey_t *k) {
    const double *a = in->sep_score + 1;
    uint32_t m = in->n - 1, lo = 0, hi = 0;
    for (uint32_t j = 0; j < m; j++) { /* independent loads, no branch on data */
        lo += a[j] > k->score;
        hi += a[j] >= k->score;
    }
    if (lo == hi) return lo;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (tie_cmp(&k->t, k->id, &in->sep_tie[mid + 1], in->sep_id[mid + 1]) >= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void inner_set_sep(inner_t *in, uint32_t j, const rkey_t *k) {
    in->sep_score[j] = k->score;
    in->sep_tie[j] = k->t;
    in->sep_id[j] = k->id;
}

static inline rkey_t inner_sep(const inner_t *in, uint32_t j) {
    return (rkey_t){in->sep_score[j], in->sep_tie[j], in->sep_id[j]};
}

/* Moves m slots from src[si] to dst[di] (overlap allowed). */
static void inner_move(inner_t *dst, uint32_t di, const inner_t *src, uint32_t si, uint32_t m) {
    if (!m) return;
    memmove(&dst->child[di], &src->child[si], m * sizeof src->child[0]);
    memmove(&dst->cnt[di], &src->cnt[si], m * sizeof src->cnt[0]);
    memmove(&dst->sep_id[di], &src->sep_id[si], m * sizeof src->sep_id[0]);
    memmove(&dst->sep_score[di], &src->sep_score[si], m * sizeof src->sep_score[0]);
    memmove(&dst->sep_tie[di], &src->sep_tie[si], m * sizeof src->sep_tie[0]);
}

static void inner_insert_slot(inner_t *in, uint32_t j, uint32_t child, uint32_t cnt,
                              const rkey_t *sep) {
    inner_move(in, j + 1, in, j, in->n - j);
    in->child[j] = child;
    in->cnt[j] = cnt;
    inner_set_sep(in, j, sep);
    in->n++;
}

static void inner_remove_slot(inner_t *in, uint32_t j) {
    inner_move(in, j, in, j + 1, in->n - j - 1);
    in->n--;
}

static uint32_t inner_total(const inner_t *in) {
    uint32_t t = 0;
    for (uint32_t j = 0; j < in->n; j++) t += in->cnt[j];
    return t;
}

/* Splits full inner node pi while inserting (child, cnt, sep) at slot q:
 * pi keeps the first half, a new node the rest. Returns the new node and
 * the first key of its subtree in *up. */
static uint32_t inner_split(rank_index_t *ri, uint32_t pi, uint32_t q, uint32_t child, uint32_t cnt,
                            const rkey_t *sep, rkey_t *up) {
    uint32_t qi = inner_alloc(ri);
    inner_t *p = &ri->inners[pi], *r = &ri->inners[qi];
    uint32_t keep = (p->n + 1) / 2;
    uint32_t from = q < keep ? keep - 1 : keep; /* from >= 1: r's first sep is exact */
    inner_move(r, 0, p, from, p->n - from);
    r->n = p->n - from;
    p->n = from;
    if (q < keep)
        inner_insert_slot(p, q, child, cnt, sep);
    else
        inner_insert_slot(r, q - keep, child, cnt, sep);
    *up = inner_sep(r, 0);
    r->sep_tie[0].name = NULL;
    return qi;
}

/* -- Descent --------------------------------------------------------------- */

/* Fills p with the route of k (read-only). */
static inline void descend(const rank_index_t *ri, const rkey_t *k, path_t *p) {
    uint32_t cur = ri->root;
    for (unsigned h = ri->height; h > 0; h--) {
        const inner_t *in = &ri->inners[cur];
        uint32_t j = inner_child(in, k);
        p->node[h] = cur;
        p->idx[h] = j;
        cur = in->child[j];
    }
    p->leaf = cur;
}

/* -- Insert ---------------------------------------------------------------- */

/* Inserts k along route p (k.id absent from the tree). in_map: k.id already
 * has a map slot (a move), to be pointed at its new leaf. */
static void tree_insert(rank_index_t *ri, const path_t *path, const rkey_t *k, bool in_map) {
    for (unsigned h = ri->height; h > 0; h--) ri->inners[path->node[h]].cnt[path->idx[h]]++;
    uint32_t cur = path->leaf;
    leaf_t *l = &ri->leaves[cur];
    uint32_t p = leaf_lower(l, k);
    if (l->n < ri->leaf_max) {
        uint32_t slot = leaf_insert_at(l, p, k);
        if (in_map)
            map_update(ri, k->id, cur, slot);
        else
            map_put(ri, k->id, cur, slot, k->score);
        return;
    }

    /* Split the leaf: it keeps `keep` of the n+1 entries, a new one the rest. */
    uint32_t rn = leaf_alloc(ri);
    l = &ri->leaves[cur];
    leaf_t *r = &ri->leaves[rn];
    uint32_t keep = (l->n + 1) / 2, dest, slot;
    uint32_t from = p < keep ? keep - 1 : keep;
    leaf_transfer_tail(ri, r, rn, l, from);
    if (p < keep) {
        slot = leaf_insert_at(l, p, k);
        dest = cur;
    } else {
        slot = leaf_insert_at(r, p - keep, k);
        dest = rn;
    }
    r->next = l->next;
    l->next = rn;
    if (in_map)
        map_update(ri, k->id, dest, slot);
    else
        map_put(ri, k->id, dest, slot, k->score);

    /* Hand the new right node up until a parent has room. */
    rkey_t sep = leaf_key(r, 0);
    uint32_t child = rn, ccnt = r->n, lcnt = l->n;
    for (unsigned h = 1; h <= ri->height; h++) {
        uint32_t pn = path->node[h], j = path->idx[h];
        inner_t *pp = &ri->inners[pn];
        pp->cnt[j] = lcnt;
        if (pp->n < ri->inner_max) {
            inner_insert_slot(pp, j + 1, child, ccnt, &sep);
            return;
        }
        rkey_t up;
        uint32_t qi = inner_split(ri, pn, j + 1, child, ccnt, &sep, &up);
        lcnt = inner_total(&ri->inners[pn]);
        ccnt = inner_total(&ri->inners[qi]);
        child = qi;
        sep = up;
    }
    uint32_t nr = inner_alloc(ri);
    inner_t *root = &ri->inners[nr];
    root->n = 2;
    root->child[0] = ri->root;
    root->cnt[0] = lcnt;
    root->child[1] = child;
    root->cnt[1] = ccnt;
    inner_set_sep(root, 1, &sep);
    ri->root = nr;
    ri->height++;
}

/* -- Remove ---------------------------------------------------------------- */

/* Child i of parent pn is an underfull leaf: borrow from or merge with a
 * sibling. Returns true if the parent lost a child. */
static bool leaf_rebalance(rank_index_t *ri, uint32_t pn, uint32_t i) {
    inner_t *p = &ri->inners[pn];
    uint32_t ci = p->child[i];
    leaf_t *c = &ri->leaves[ci];
    if (i > 0) {
        leaf_t *w = &ri->leaves[p->child[i - 1]];
        if (w->n > ri->leaf_min) { /* w's last entry becomes c's first */
            rkey_t m = leaf_key(w, w->n - 1);
            leaf_erase(w, w->n - 1);
            map_update(ri, m.id, ci, leaf_insert_at(c, 0, &m));
            p->cnt[i - 1]--;
            p->cnt[i]++;
            inner_set_sep(p, i, &m);
            return false;
        }
    }
    if (i + 1 < p->n) {
        leaf_t *r = &ri->leaves[p->child[i + 1]];
        if (r->n > ri->leaf_min) { /* r's first entry becomes c's last */
            rkey_t m = leaf_key(r, 0);
            leaf_erase(r, 0);
            map_update(ri, m.id, ci, leaf_insert_at(c, c->n, &m));
            p->cnt[i + 1]--;
            p->cnt[i]++;
            rkey_t first = leaf_key(r, 0);
            inner_set_sep(p, i + 1, &first);
            return false;
        }
    }
    uint32_t li = i > 0 ? i - 1 : i; /* merge child li+1 into child li */
    uint32_t ai = p->child[li], bi = p->child[li + 1];
    leaf_t *a = &ri->leaves[ai], *b = &ri->leaves[bi];
    leaf_transfer_tail(ri, a, ai, b, 0);
    a->next = b->next;
    p->cnt[li] += p->cnt[li + 1];
    inner_remove_slot(p, li + 1);
    leaf_release(ri, bi);
    return true;
}

/* Same for an underfull inner node, child j of gn. */
static bool inner_rebalance(rank_index_t *ri, uint32_t gn, uint32_t j) {
    inner_t *g = &ri->inners[gn];
    inner_t *x = &ri->inners[g->child[j]];
    if (j > 0) {
        inner_t *w = &ri->inners[g->child[j - 1]];
        if (w->n > ri->inner_min) { /* w's last child becomes x's first */
            uint32_t wl = w->n - 1;
            inner_move(x, 1, x, 0, x->n);
            x->n++;
            x->child[0] = w->child[wl];
            x->cnt[0] = w->cnt[wl];
            rkey_t old_first = inner_sep(g, j), new_first = inner_sep(w, wl);
            inner_set_sep(x, 1, &old_first);
            inner_set_sep(g, j, &new_first);
            x->sep_tie[0].name = NULL;
            w->n--;
            g->cnt[j - 1] -= x->cnt[0];
            g->cnt[j] += x->cnt[0];
            return false;
        }
    }
    if (j + 1 < g->n) {
        inner_t *y = &ri->inners[g->child[j + 1]];
        if (y->n > ri->inner_min) { /* y's first child becomes x's last */
            rkey_t y_first = inner_sep(g, j + 1), y_next = inner_sep(y, 1);
            uint32_t moved = y->cnt[0];
            x->child[x->n] = y->child[0];
            x->cnt[x->n] = moved;
            inner_set_sep(x, x->n, &y_first);
            x->n++;
            inner_set_sep(g, j + 1, &y_next);
            inner_remove_slot(y, 0);
            y->sep_tie[0].name = NULL;
            g->cnt[j + 1] -= moved;
            g->cnt[j] += moved;
            return false;
        }
    }
    uint32_t li = j > 0 ? j - 1 : j; /* merge child li+1 into child li */
    inner_t *a = &ri->inners[g->child[li]];
    uint32_t bi = g->child[li + 1];
    inner_t *b = &ri->inners[bi];
    rkey_t b_first = inner_sep(g, li + 1);
    inner_move(a, a->n, b, 0, b->n);
    inner_set_sep(a, a->n, &b_first);
    a->n += b->n;
    g->cnt[li] += g->cnt[li + 1];
    inner_remove_slot(g, li + 1);
    inner_release(ri, bi);
    return true;
}

/* Removes entry s of leaf li. guess: a route computed from a guessed key
 * (or NULL); it is right iff it ends at li, the tree having one route per
 * leaf. keep_map: leave id's map slot (a move points it at the new leaf).
 * Returns true if any separator or node changed, which invalidates routes
 * computed before the call. */
static bool tree_remove(rank_index_t *ri, uint32_t li, uint32_t s, bool keep_map,
                        const path_t *guess) {
    path_t own;
    const path_t *path = guess;
    rkey_t k = leaf_key(&ri->leaves[li], s);
    if (!guess || guess->leaf != li) {
        descend(ri, &k, &own);
        if (own.leaf != li) { /* cannot happen while the invariants hold */
            log_error("rank_index: id %u not found under its key", k.id);
            abort();
        }
        path = &own;
    }
    for (unsigned h = ri->height; h > 0; h--) ri->inners[path->node[h]].cnt[path->idx[h]]--;
    leaf_t *l = &ri->leaves[li];
    leaf_erase(l, s);
    if (!keep_map) map_del(ri, k.id);
    if (ri->height == 0) return false;

    bool changed = false;
    if (s == 0) { /* l (non-root, so not empty) has a new first key */
        rkey_t first = leaf_key(l, 0);
        for (unsigned h = 1; h <= ri->height; h++) {
            if (path->idx[h] > 0) {
                inner_set_sep(&ri->inners[path->node[h]], path->idx[h], &first);
                changed = true;
                break;
            }
        }
    }
    if (l->n >= ri->leaf_min) return changed;
    if (!leaf_rebalance(ri, path->node[1], path->idx[1])) return true;
    for (unsigned h = 1;; h++) {
        uint32_t xn = path->node[h];
        inner_t *x = &ri->inners[xn];
        if (h == ri->height) {
            if (x->n == 1) {
                ri->root = x->child[0];
                ri->height--;
                inner_release(ri, xn);
            }
            return true;
        }
        if (x->n >= ri->inner_min) return true;
        if (!inner_rebalance(ri, path->node[h + 1], path->idx[h + 1])) return true;
    }
}

/* -- Public API ------------------------------------------------------------ */

static unsigned clamp_fanout(unsigned v, unsigned max) {
    return v < RI_MIN_FANOUT ? RI_MIN_FANOUT : v > max ? max : v;
}

rank_index_t *rank_index_new_fanout(unsigned leaf_max, unsigned inner_max) {
    rank_index_t *ri = xcalloc(1, sizeof *ri);
    ri->leaf_max = clamp_fanout(leaf_max, RI_LEAF_MAX);
    ri->inner_max = clamp_fanout(inner_max, RI_INNER_MAX);
    ri->leaf_min = ri->leaf_max / 2;
    ri->inner_min = ri->inner_max / 2;
    ri->leaf_free = NONE;
    ri->inner_free = NONE;
    ri->root = leaf_alloc(ri);
    map_init(ri, 4);
    return ri;
}

rank_index_t *rank_index_new(void) { return rank_index_new_fanout(RI_LEAF_MAX, RI_INNER_MAX); }

void rank_index_free(rank_index_t *ri) {
    if (!ri) return;
    free(ri->leaves);
    free(ri->inners);
    free(ri->map);
    free(ri);
}

/* Rank position of id, found through its map slot, in its leaf. */
static uint32_t rank_in_leaf(const rank_index_t *ri, const map_slot_t *ms) {
    uint32_t s = leaf_rank_of(&ri->leaves[LOC_LEAF(ms->loc)], LOC_SLOT(ms->loc), ms->id);
    if (s == NONE) { /* cannot happen while the invariants hold */
        log_error("rank_index: id %u missing from its leaf", ms->id);
        abort();
    }
    return s;
}

/* Asks for what locating an entry reads: the leaf header (order[]) and
 * the entry's id, score and tie. */
static inline void entry_prefetch(const rank_index_t *ri, uint32_t loc) {
    const leaf_t *l = &ri->leaves[LOC_LEAF(loc)];
    uint32_t p = LOC_SLOT(loc);
    __builtin_prefetch(l, 1);
    __builtin_prefetch(&l->id[p], 1);
    __builtin_prefetch(&l->score[p], 1);
    __builtin_prefetch(&l->tie[p], 1);
}

/* The lowest key with this score: routes to the first leaf that may hold
 * an entry of that score. */
static inline rkey_t score_key(double score) { return (rkey_t){score, {0, 0, ""}, 0}; }

void rank_index_set(rank_index_t *ri, uint32_t id, double score, const char *name) {
    if (!ri || id == NONE || !name) return;
    /* Memory latency rules. The map slot and the name load together; the
     * old leaf then loads while the new and old routes are computed over
     * the (mostly cached) inner nodes, and the new leaf while the old one
     * is searched. */
    __builtin_prefetch(&ri->map[map_home(ri, id)], 1);
    __builtin_prefetch(name);
    map_slot_t *ms = map_find(ri, id);
    uint32_t li = NONE;
    if (ms) {
        li = LOC_LEAF(ms->loc);
        entry_prefetch(ri, ms->loc);
        /* Re-ranking often finds the same score: done, name unread. */
        double sc = isnan(score) ? -INFINITY : score;
        leaf_t *l = &ri->leaves[li];
        uint32_t ph = LOC_SLOT(ms->loc);
        if (ms->score == sc && l->tie[ph].name == name) {
            l->score[ph] = ms->score = sc; /* -0.0 vs 0.0: same rank, keep the latest */
            return;
        }
    }
    rkey_t k = make_key(id, score, name);
    path_t path;
    descend(ri, &k, &path);
    if (path.leaf != li) leaf_prefetch_scores(ri, path.leaf);
    if (!ms) {
        tree_insert(ri, &path, &k, false);
        return;
    }
    path_t opath;
    opath.leaf = NONE;
    if (li != path.leaf) {
        rkey_t old = {ms->score, k.t, id}; /* guess: the name is unchanged */
        descend(ri, &old, &opath);
    }
    uint32_t s = rank_in_leaf(ri, ms);
    leaf_t *l = &ri->leaves[li];
    ms->score = k.score; /* moves never resize the map: ms stays valid */
    if (li == path.leaf && s > 0) {
        /* The new key routes to the same leaf, and the old one is not the
         * leaf's first (a separator): move inside the leaf. The new slot is
         * >= 1 because routing put k after the leaf's first key. */
        leaf_erase(l, s);
        ms->loc = LOC(li, leaf_insert_at(l, leaf_lower(l, &k), &k));
        return;
    }
    if (tree_remove(ri, li, s, true, &opath)) descend(ri, &k, &path);
    tree_insert(ri, &path, &k, true);
}

void rank_index_remove(rank_index_t *ri, uint32_t id) {
    if (!ri || id == NONE) return;
    map_slot_t *ms = map_find(ri, id);
    if (!ms) return;
    uint32_t li = LOC_LEAF(ms->loc);
    entry_prefetch(ri, ms->loc);
    rkey_t guess = score_key(ms->score);
    path_t path;
    descend(ri, &guess, &path);
    tree_remove(ri, li, rank_in_leaf(ri, ms), false, &path);
}

bool rank_index_contains(const rank_index_t *ri, uint32_t id) {
    return ri && id != NONE && map_find(ri, id) != NULL;
}

size_t rank_index_count(const rank_index_t *ri) { return ri ? ri->map_n : 0; }

long rank_index_position(const rank_index_t *ri, uint32_t id) {
    if (!ri || id == NONE) return -1;
    map_slot_t *ms = map_find(ri, id);
    if (!ms) return -1;
    uint32_t li = LOC_LEAF(ms->loc);
    const leaf_t *l = &ri->leaves[li];
    entry_prefetch(ri, ms->loc);
    rkey_t guess = score_key(ms->score);
    path_t path;
    descend(ri, &guess, &path);
    uint32_t s = rank_in_leaf(ri, ms);
    if (path.leaf != li) {
        rkey_t k = leaf_key(l, s);
        descend(ri, &k, &path);
    }
    size_t pos = s;
    for (unsigned h = ri->height; h > 0; h--) {
        const inner_t *in = &ri->inners[path.node[h]];
        for (uint32_t t = 0; t < path.idx[h]; t++) pos += in->cnt[t];
    }
    return (long)pos;
}

/* Routes to position pos (< count): fills p, returns pos's offset in the
 * leaf. */
static uint32_t find_pos(const rank_index_t *ri, size_t pos, path_t *p) {
    uint32_t cur = ri->root;
    for (unsigned h = ri->height; h > 0; h--) {
        const inner_t *in = &ri->inners[cur];
        uint32_t j = 0;
        while (j + 1 < in->n && pos >= in->cnt[j]) pos -= in->cnt[j++];
        p->node[h] = cur;
        p->idx[h] = j;
        cur = in->child[j];
    }
    p->leaf = cur;
    return (uint32_t)pos;
}

/* Asks for the header and ids of up to `want` leaves of p's level-1 node,
 * from its child idx on: a range scan then waits for one miss per node of
 * ~24 leaves instead of one per leaf. */
static void prefetch_leaf_run(const rank_index_t *ri, const path_t *p, uint32_t idx, size_t want) {
    if (ri->height == 0) return;
    const inner_t *in = &ri->inners[p->node[1]];
    for (uint32_t j = idx; j < in->n && want > 0; j++, want--) leaf_prefetch_ids(ri, in->child[j]);
}

/* Moves p to the following leaf; false after the last one. */
static bool next_leaf(const rank_index_t *ri, path_t *p) {
    unsigned h = 1;
    while (h <= ri->height && p->idx[h] + 1 >= ri->inners[p->node[h]].n) h++;
    if (h > ri->height) return false;
    uint32_t cur = ri->inners[p->node[h]].child[++p->idx[h]];
    while (--h > 0) {
        p->node[h] = cur;
        p->idx[h] = 0;
        cur = ri->inners[cur].child[0];
    }
    p->leaf = cur;
    return true;
}

uint32_t rank_index_at(const rank_index_t *ri, size_t pos) {
    if (!ri || pos >= ri->map_n) return NONE;
    path_t p;
    uint32_t off = find_pos(ri, pos, &p);
    const leaf_t *l = &ri->leaves[p.leaf];
    return l->id[l->order[off]];
}

size_t rank_index_range(const rank_index_t *ri, size_t from, size_t n, uint32_t *out) {
    if (!ri || from >= ri->map_n || n == 0) return 0;
    if (n > ri->map_n - from) n = ri->map_n - from;
    path_t p;
    uint32_t off = find_pos(ri, from, &p);
    size_t done = 0, leaves = n / (ri->leaf_min ? ri->leaf_min : 1) + 2;
    prefetch_leaf_run(ri, &p, ri->height ? p.idx[1] + 1 : 0, leaves);
    for (;;) {
        const leaf_t *l = &ri->leaves[p.leaf];
        size_t take = l->n - off;
        if (take > n - done) take = n - done;
        for (size_t t = 0; t < take; t++) out[done + t] = l->id[l->order[off + t]];
        done += take;
        off = 0;
        if (done == n || !next_leaf(ri, &p)) break;
        if (p.idx[1] == 0) prefetch_leaf_run(ri, &p, 1, leaves); /* entered a new level-1 node */
    }
    return done;
}

double rank_index_score(const rank_index_t *ri, uint32_t id) {
    if (!ri || id == NONE) return NAN;
    map_slot_t *ms = map_find(ri, id);
    return ms ? ms->score : NAN;
}

size_t rank_index_memory(const rank_index_t *ri) {
    if (!ri) return 0;
    return sizeof *ri + (size_t)ri->leaf_cap * sizeof(leaf_t) +
           (size_t)ri->inner_cap * sizeof(inner_t) +
           ((size_t)ri->map_mask + 1) * sizeof(map_slot_t);
}

/* -- Invariant check (tests) ----------------------------------------------- */

typedef struct check_state {
    const rank_index_t *ri;
    uint32_t prev_leaf;
    bool have_prev;
    rkey_t prev;
    size_t leaves, inners;
} check_state_t;

#define CHECK_FAIL(...)                                                                            \
    do {                                                                                           \
        log_error(__VA_ARGS__);                                                                    \
        return -1;                                                                                 \
    } while (0)

static bool key_same(const rkey_t *a, const rkey_t *b) {
    return a->score == b->score && a->t.p1 == b->t.p1 && a->t.p2 == b->t.p2 &&
           a->t.name == b->t.name && a->id == b->id;
}

/* Checks the subtree of node at level h (0 = leaf); *count and *first get
 * its entry count and first key. Recursion depth = tree height. */
static int check_node(check_state_t *st, uint32_t node, unsigned h, bool is_root, size_t *count,
                      rkey_t *first) {
    const rank_index_t *ri = st->ri;
    if (h == 0) {
        if (node >= ri->leaf_used) CHECK_FAIL("rank_index: leaf %u out of range", node);
        const leaf_t *l = &ri->leaves[node];
        st->leaves++;
        if (l->n > ri->leaf_max || (!is_root && l->n < ri->leaf_min))
            CHECK_FAIL("rank_index: leaf %u holds %u entries", node, l->n);
        if (st->prev_leaf != NONE && ri->leaves[st->prev_leaf].next != node)
            CHECK_FAIL("rank_index: leaf chain broken before leaf %u", node);
        st->prev_leaf = node;
        uint64_t seen = 0;
        for (uint32_t j = 0; j < l->n; j++) {
            uint32_t p = l->order[j];
            if (p >= ri->leaf_max || (seen >> p & 1) || !(l->used >> p & 1))
                CHECK_FAIL("rank_index: leaf %u order[%u] = %u is not a live slot", node, j, p);
            seen |= 1ull << p;
        }
        if (seen != l->used) CHECK_FAIL("rank_index: leaf %u used mask disagrees with order", node);
        for (uint32_t p = 0; p < RI_LEAF_MAX; p++)
            if (!(seen >> p & 1) && l->id[p] != NONE)
                CHECK_FAIL("rank_index: leaf %u free slot %u holds id %u", node, p, l->id[p]);
        for (uint32_t j = 0; j < l->n; j++) {
            rkey_t k = leaf_key(l, j);
            if (isnan(k.score)) CHECK_FAIL("rank_index: NaN score stored for id %u", k.id);
            if (!k.t.name) CHECK_FAIL("rank_index: NULL name for id %u", k.id);
            rkey_t fresh = make_key(k.id, k.score, k.t.name);
            if (fresh.t.p1 != k.t.p1 || fresh.t.p2 != k.t.p2)
                CHECK_FAIL("rank_index: stale name prefix for id %u", k.id);
            if (st->have_prev && key_cmp(&st->prev, k.score, &k.t, k.id) >= 0)
                CHECK_FAIL("rank_index: id %u out of order after id %u", k.id, st->prev.id);
            st->prev = k;
            st->have_prev = true;
            const map_slot_t *ms = map_find(ri, k.id);
            if (!ms || ms->loc != LOC(node, l->order[j]) || !(ms->score == k.score))
                CHECK_FAIL("rank_index: map entry of id %u is wrong", k.id);
        }
        *count = l->n;
        if (l->n) *first = leaf_key(l, 0);
        return 0;
    }
    if (node >= ri->inner_used) CHECK_FAIL("rank_index: inner %u out of range", node);
    const inner_t *in = &ri->inners[node];
    st->inners++;
    if (in->n > ri->inner_max || in->n < (is_root ? 2u : ri->inner_min))
        CHECK_FAIL("rank_index: inner %u has %u children", node, in->n);
    size_t total = 0;
    for (uint32_t j = 0; j < in->n; j++) {
        size_t c = 0;
        rkey_t f = {0, {0, 0, NULL}, NONE};
        if (check_node(st, in->child[j], h - 1, false, &c, &f)) return -1;
        if (c != in->cnt[j])
            CHECK_FAIL("rank_index: inner %u cnt[%u] %u != %zu", node, j, in->cnt[j], c);
        rkey_t sep = inner_sep(in, j);
        if (j == 0)
            *first = f;
        else if (!key_same(&sep, &f))
            CHECK_FAIL("rank_index: inner %u sep[%u] is id %u, first key is id %u", node, j, sep.id,
                       f.id);
        total += c;
    }
    *count = total;
    return 0;
}

int rank_index_check(const rank_index_t *ri, unsigned *height) {
    if (!ri) return -1;
    if (height) *height = ri->height;
    if (ri->height > RI_MAX_HEIGHT) CHECK_FAIL("rank_index: height %u", ri->height);
    check_state_t st = {.ri = ri, .prev_leaf = NONE};
    size_t count = 0;
    rkey_t first = {0, {0, 0, NULL}, NONE};
    if (check_node(&st, ri->root, ri->height, true, &count, &first)) return -1;
    if (ri->leaves[st.prev_leaf].next != NONE) CHECK_FAIL("rank_index: last leaf has a next");
    if (count != ri->map_n)
        CHECK_FAIL("rank_index: %zu entries in tree, %zu in map", count, ri->map_n);
    size_t in_map = 0;
    for (size_t i = 0; i <= ri->map_mask; i++) in_map += ri->map[i].id != NONE;
    if (in_map != ri->map_n)
        CHECK_FAIL("rank_index: map holds %zu ids, counts %zu", in_map, ri->map_n);
    size_t free_leaves = 0, free_inners = 0;
    for (uint32_t i = ri->leaf_free; i != NONE && free_leaves <= ri->leaf_used;
         i = ri->leaves[i].next)
        free_leaves++;
    for (uint32_t i = ri->inner_free; i != NONE && free_inners <= ri->inner_used;
         i = ri->inners[i].child[0])
        free_inners++;
    if (st.leaves + free_leaves != ri->leaf_used || st.inners + free_inners != ri->inner_used)
        CHECK_FAIL("rank_index: node leak: leaves %zu+%zu/%u inners %zu+%zu/%u", st.leaves,
                   free_leaves, ri->leaf_used, st.inners, free_inners, ri->inner_used);
    return 0;
}
