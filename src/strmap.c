/* strmap.c - string -> uint32 map with one writer and lock-free readers.
 *
 * Layout. A table is a power-of-two array of 20-byte slots, linear probing:
 *     slot = { atomic meta, atomic value, 12 bytes: key | {hash, ref} }
 * meta = 0 for an empty slot, else OCCUPIED | 8-bit hash fingerprint << 16 |
 * key length; one compare of meta rejects almost every foreign slot. Keys of
 * up to 12 bytes (SKU ids like "SG-0001234") sit in the slot itself, zero
 * padded, so a hit costs one cache miss. Longer keys keep their full 32-bit
 * hash and a ref to a record in the table's arena of slabs: record = the key
 * bytes padded to 4; ref = slab index << 19 | offset in 4-byte units. Slab pointers sit in a directory that grows by
 * copy-and-swap. value is the mapped value or STRMAP_DELETED (tombstone).
 * Memory at 1M 10-byte keys: 2^21 slots * 20 B = 42 MB, no per-key malloc.
 *
 * Invariants. Within one table a slot's key part is written once, before
 * its meta (release); records and directory entries are written before the
 * meta that leads to them; so a reader that acquires a non-zero meta may
 * read the key part, the directory entry and the record with plain loads.
 * Keys never leave a slot: delete stores STRMAP_DELETED in the value and a
 * later put of the same key reuses the slot, so probe chains never break.
 * A table keeps at least a quarter of its slots empty, so probing ends.
 * When empty slots run out the writer builds a new table holding the live
 * keys only (bigger, or the same size when tombstones were the cause),
 * swaps the map's table pointer (release) and retires the old table with
 * its arena: readers that loaded the old pointer keep reading a frozen,
 * consistent table until their read version ends.
 *
 * Threads: strmap_read from any thread; everything else from the writer. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "strmap.h"
#include "util.h"

#define INLINE_MAX 12u
#define META_OCCUPIED 0x80000000u
#define SLAB_SHIFT 19u                    /* offset bits of a ref */
#define SLAB_MAX_UNITS (1u << SLAB_SHIFT) /* 2 MiB per slab at most */
#define SLAB_MAX_COUNT (1u << (32u - SLAB_SHIFT))
#define SLAB_MIN_UNITS 256u
#define MAP_MIN_CAP 16u
#define MAP_MAX_CAP (1u << 31)
#define HUGE_SIZE ((size_t)2 << 20)

typedef struct sm_slot {
    _Atomic uint32_t meta;
    _Atomic uint32_t value;
    union {
        char key[INLINE_MAX]; /* len <= INLINE_MAX: the key, zero padded */
        struct {
            uint32_t hash, ref, unused;
        } ext; /* longer keys */
    } u;
} sm_slot_t;

typedef struct sm_dir {
    uint32_t cap;
    char *slab[]; /* entries < the table's nslabs are valid */
} sm_dir_t;

typedef struct sm_table {
    uint32_t mask;           /* capacity - 1; immutable */
    sm_slot_t *slots;        /* immutable pointer */
    _Atomic(sm_dir_t *) dir; /* NULL until a long key arrives */
    /* writer only: the arena of long keys */
    uint32_t nslabs;
    uint32_t slab_used, slab_cap; /* of the last slab, in units */
    size_t slots_bytes, arena_bytes;
} sm_table_t;

struct strmap {
    _Atomic(sm_table_t *) table;
    /* writer only */
    uint32_t live;       /* keys with a value */
    uint32_t used;       /* slots with a key: live + tombstones */
    uint64_t long_units; /* arena units of the live long keys */
};

/* A lookup key, prepared once per call. */
typedef struct sm_key {
    const char *p;
    uint32_t len, hash, meta;
    char pad[INLINE_MAX]; /* zero-padded copy when len <= INLINE_MAX */
} sm_key_t;

/* -- Helpers ------------------------------------------------------------ */

static inline void key_prep(sm_key_t *k, const char *p, size_t len) {
    uint64_t h = hash_bytes(p, len);
    k->p = p;
    k->len = (uint32_t)len;
    k->hash = (uint32_t)(h ^ (h >> 32));
    k->meta = META_OCCUPIED | (k->hash >> 24) << 16 | (uint32_t)len;
    if (len <= INLINE_MAX) {
        memset(k->pad, 0, INLINE_MAX);
        if (len) memcpy(k->pad, p, len);
    }
}

static inline uint32_t rec_units(size_t len) { return (uint32_t)((len + 3) / 4); }

static inline const char *rec_at(const sm_dir_t *dir, uint32_t ref) {
    return dir->slab[ref >> SLAB_SHIFT] + ((size_t)(ref & (SLAB_MAX_UNITS - 1)) << 2);
}

/* Large blocks (slot arrays, full slabs) are 2 MiB aligned and asked to use
 * transparent huge pages, which cuts TLB misses of random probes. */
static void *big_alloc(size_t n, bool zero) {
    if (n < HUGE_SIZE) return zero ? xcalloc(1, n) : xmalloc(n);
    size_t sz = (n + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_SIZE, sz) != 0) return zero ? xcalloc(1, n) : xmalloc(n);
#ifdef MADV_HUGEPAGE
    madvise(p, sz, MADV_HUGEPAGE);
#endif
    if (zero) memset(p, 0, n);
    return p;
}

static void table_destroy(sm_table_t *t) {
    if (!t) return;
    sm_dir_t *dir = atomic_load_explicit(&t->dir, memory_order_relaxed);
    if (dir) {
        for (uint32_t i = 0; i < t->nslabs; i++) free(dir->slab[i]);
        free(dir);
    }
    free(t->slots);
    free(t);
}

static void table_retire_cb(void *arg, void *ptr) {
    (void)arg;
    table_destroy(ptr);
}

/* Starts a new slab of `want` units, at least `need`; 0, or -1 when no
 * slab index is left. */
static int arena_new_slab(sm_table_t *t, uint64_t want, uint32_t need, retire_list_t *rl) {
    if (t->nslabs == SLAB_MAX_COUNT) return -1;
    uint64_t units = want < SLAB_MIN_UNITS ? SLAB_MIN_UNITS : want;
    if (units < need) units = need;
    if (units > SLAB_MAX_UNITS) units = SLAB_MAX_UNITS;
    sm_dir_t *dir = atomic_load_explicit(&t->dir, memory_order_relaxed);
    if (!dir || t->nslabs == dir->cap) {
        uint32_t cap = dir ? dir->cap * 2 : 4;
        sm_dir_t *nd = xmalloc(sizeof *nd + cap * sizeof(char *));
        nd->cap = cap;
        if (dir) memcpy(nd->slab, dir->slab, t->nslabs * sizeof(char *));
        atomic_store_explicit(&t->dir, nd, memory_order_release);
        if (dir) {
            if (rl) retire_push(rl, NULL, NULL, dir);
            else free(dir);
        }
        dir = nd;
    }
    dir->slab[t->nslabs++] = big_alloc((size_t)units * 4, false);
    t->slab_used = 0;
    t->slab_cap = (uint32_t)units;
    t->arena_bytes += (size_t)units * 4;
    return 0;
}

/* Copies a long key into t's arena and sets *ref; 0, or -1 when out of
 * slabs. */
static int arena_add(sm_table_t *t, const char *key, size_t len, uint32_t *ref,
                     retire_list_t *rl) {
    uint32_t units = rec_units(len);
    if (t->slab_cap - t->slab_used < units &&
        arena_new_slab(t, (uint64_t)t->slab_cap * 2, units, rl) != 0)
        return -1;
    *ref = ((t->nslabs - 1) << SLAB_SHIFT) | t->slab_used;
    sm_dir_t *dir = atomic_load_explicit(&t->dir, memory_order_relaxed);
    memcpy(dir->slab[t->nslabs - 1] + ((size_t)t->slab_used << 2), key, len);
    t->slab_used += units;
    return 0;
}

static sm_table_t *table_new(uint32_t cap) {
    sm_table_t *t = xcalloc(1, sizeof *t);
    t->mask = cap - 1;
    t->slots_bytes = (size_t)cap * sizeof(sm_slot_t);
    t->slots = big_alloc(t->slots_bytes, true);
    atomic_init(&t->dir, NULL);
    return t;
}

/* Fills the empty slot s with key k (its value stored first); 0 or -1. */
static int slot_fill(sm_table_t *t, sm_slot_t *s, const sm_key_t *k, uint32_t value,
                     retire_list_t *rl) {
    if (k->len <= INLINE_MAX) {
        memcpy(s->u.key, k->pad, INLINE_MAX);
    } else {
        uint32_t ref;
        if (arena_add(t, k->p, k->len, &ref, rl) != 0) return -1;
        s->u.ext.hash = k->hash;
        s->u.ext.ref = ref;
    }
    atomic_store_explicit(&s->value, value, memory_order_relaxed);
    atomic_store_explicit(&s->meta, k->meta, memory_order_release);
    return 0;
}

/* Probes t for k. Returns the slot holding k with *found = true, or the
 * empty slot that ends k's chain with *found = false. A reader must not
 * load the meta of the returned empty slot again: a different key may be
 * inserted there meanwhile. */
static inline sm_slot_t *probe(const sm_table_t *t, const sm_key_t *k, bool reader,
                               bool *found) {
    const memory_order mo = reader ? memory_order_acquire : memory_order_relaxed;
    uint32_t i = k->hash & t->mask;
    for (;;) {
        sm_slot_t *s = &t->slots[i];
        uint32_t meta = atomic_load_explicit(&s->meta, mo);
        if (meta == 0) {
            *found = false;
            return s;
        }
        if (meta == k->meta) {
            if (k->len <= INLINE_MAX) {
                if (memcmp(s->u.key, k->pad, INLINE_MAX) == 0) {
                    *found = true;
                    return s;
                }
            } else if (s->u.ext.hash == k->hash) {
                const sm_dir_t *dir = atomic_load_explicit(&t->dir, mo);
                if (memcmp(rec_at(dir, s->u.ext.ref), k->p, k->len) == 0) {
                    *found = true;
                    return s;
                }
            }
        }
        i = (i + 1) & t->mask;
    }
}

static uint32_t cap_for(uint64_t keys) {
    uint64_t cap = MAP_MIN_CAP;
    while (cap < MAP_MAX_CAP && (keys + 1) * 2 > cap) cap *= 2;
    return (uint32_t)cap;
}

/* Replaces the table by one holding only the live keys, at a load <= 1/2. */
static int rebuild(strmap_t *m, retire_list_t *rl) {
    sm_table_t *old = atomic_load_explicit(&m->table, memory_order_relaxed);
    if (m->live >= (1u << 30)) return -1;
    sm_table_t *t = table_new(cap_for((uint64_t)m->live + 1));
    if (m->long_units && arena_new_slab(t, m->long_units + m->long_units / 4, 0, NULL) != 0) {
        table_destroy(t);
        return -1;
    }
    const sm_dir_t *odir = atomic_load_explicit(&old->dir, memory_order_relaxed);
    uint32_t used = 0;
    for (uint32_t i = 0; i <= old->mask; i++) {
        const sm_slot_t *s = &old->slots[i];
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
        if (meta == 0 || v == STRMAP_DELETED) continue;
        uint32_t len = meta & 0xffffu;
        sm_key_t k;
        if (len <= INLINE_MAX) key_prep(&k, s->u.key, len);
        else key_prep(&k, rec_at(odir, s->u.ext.ref), len);
        uint32_t j = k.hash & t->mask;
        while (atomic_load_explicit(&t->slots[j].meta, memory_order_relaxed)) j = (j + 1) & t->mask;
        if (slot_fill(t, &t->slots[j], &k, v, NULL) != 0) {
            table_destroy(t);
            return -1;
        }
        used++;
    }
    m->used = used;
    atomic_store_explicit(&m->table, t, memory_order_release);
    if (rl) retire_push(rl, table_retire_cb, NULL, old);
    else table_destroy(old);
    return 0;
}

/* -- Writer API --------------------------------------------------------- */

strmap_t *strmap_new(size_t initial_capacity) {
    strmap_t *m = xcalloc(1, sizeof *m);
    uint64_t want = initial_capacity > (1u << 30) ? (1u << 30) : initial_capacity;
    uint32_t cap = MAP_MIN_CAP; /* room for want keys below the 3/4 limit */
    while (cap < MAP_MAX_CAP && (want + 1) * 4 > (uint64_t)cap * 3) cap *= 2;
    atomic_init(&m->table, table_new(cap));
    return m;
}

void strmap_free(strmap_t *m) {
    if (!m) return;
    table_destroy(atomic_load_explicit(&m->table, memory_order_relaxed));
    free(m);
}

int strmap_put(strmap_t *m, const char *key, size_t len, uint32_t value, retire_list_t *rl) {
    if (len > STRMAP_MAX_KEY || value == STRMAP_DELETED) return -1;
    sm_key_t k;
    key_prep(&k, key, len);
    sm_table_t *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    bool found;
    sm_slot_t *s = probe(t, &k, false, &found);
    if (found) {
        if (atomic_load_explicit(&s->value, memory_order_relaxed) == STRMAP_DELETED) {
            m->live++;
            if (len > INLINE_MAX) m->long_units += rec_units(len);
        }
        atomic_store_explicit(&s->value, value, memory_order_release);
        return 0;
    }
    if ((uint64_t)(m->used + 1) * 4 > (uint64_t)(t->mask + 1) * 3) {
        if (rebuild(m, rl) != 0) return -1;
        t = atomic_load_explicit(&m->table, memory_order_relaxed);
        s = probe(t, &k, false, &found);
    }
    if (slot_fill(t, s, &k, value, rl) != 0) return -1;
    m->used++;
    m->live++;
    if (len > INLINE_MAX) m->long_units += rec_units(len);
    return 0;
}

int strmap_get(const strmap_t *m, const char *key, size_t len, uint32_t *value) {
    if (len > STRMAP_MAX_KEY) return -1;
    sm_key_t k;
    key_prep(&k, key, len);
    bool found;
    const sm_slot_t *s =
        probe(atomic_load_explicit(&m->table, memory_order_relaxed), &k, false, &found);
    if (!found) return -1;
    uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v == STRMAP_DELETED) return -1;
    if (value) *value = v;
    return 0;
}

int strmap_del(strmap_t *m, const char *key, size_t len, retire_list_t *rl) {
    (void)rl;
    if (len > STRMAP_MAX_KEY) return -1;
    sm_key_t k;
    key_prep(&k, key, len);
    bool found;
    sm_slot_t *s = probe(atomic_load_explicit(&m->table, memory_order_relaxed), &k, false, &found);
    if (!found || atomic_load_explicit(&s->value, memory_order_relaxed) == STRMAP_DELETED)
        return -1;
    atomic_store_explicit(&s->value, STRMAP_DELETED, memory_order_release);
    m->live--;
    if (len > INLINE_MAX) m->long_units -= rec_units(len);
    return 0;
}

size_t strmap_count(const strmap_t *m) { return m ? m->live : 0; }

size_t strmap_memory(const strmap_t *m) {
    if (!m) return 0;
    const sm_table_t *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    const sm_dir_t *dir = atomic_load_explicit(&t->dir, memory_order_relaxed);
    return sizeof *m + sizeof *t + t->slots_bytes + t->arena_bytes +
           (dir ? sizeof *dir + dir->cap * sizeof(char *) : 0);
}

int strmap_foreach(const strmap_t *m, strmap_iter_fn fn, void *ctx) {
    const sm_table_t *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    const sm_dir_t *dir = atomic_load_explicit(&t->dir, memory_order_relaxed);
    for (uint32_t i = 0; i <= t->mask; i++) {
        const sm_slot_t *s = &t->slots[i];
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
        if (meta == 0 || v == STRMAP_DELETED) continue;
        uint32_t len = meta & 0xffffu;
        int rc = fn(ctx, len <= INLINE_MAX ? s->u.key : rec_at(dir, s->u.ext.ref), len, v);
        if (rc) return rc;
    }
    return 0;
}

/* -- Reader API --------------------------------------------------------- */

int strmap_read(const strmap_t *m, const char *key, size_t len, uint32_t *value) {
    if (len > STRMAP_MAX_KEY) return -1;
    sm_key_t k;
    key_prep(&k, key, len);
    bool found;
    const sm_slot_t *s =
        probe(atomic_load_explicit(&m->table, memory_order_acquire), &k, true, &found);
    if (!found) return -1;
    uint32_t v = atomic_load_explicit(&s->value, memory_order_acquire);
    if (v == STRMAP_DELETED) return -1;
    if (value) *value = v;
    return 0;
}
