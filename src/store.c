/* store.c - SKU rows, names, free tags, attrs and automatic tags; see
 * store.h for ownership and the reader guarantees.
 *
 * Layout: rows[] is one contiguous sku_row_t array indexed by id (the Lua
 * view reads it through FFI); per-id extras (free tag ids, attrs text) live
 * in a parallel array. Names for readers are in fixed chunks of
 * NAME_CHUNK atomic pointers, allocated on demand and never moved, so a
 * reader never races a reallocation. Each dimension value has one interned
 * dim id, and per kind a lazily interned tag id ("market:SG"), so keeping
 * automatic tags right costs two bitmap updates per changed field.
 * store_snap_* write and read the STOR snapshot section (format in
 * snapshot.c), keeping ids, dim ids and the free id stack as they were. */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"
#include "event.h"
#include "snapshot.h"
#include "strmap.h"
#include "util.h"

#define NAME_CHUNK_BITS 16
#define NAME_CHUNK (1u << NAME_CHUNK_BITS)
#define NAME_CHUNKS_MAX (1u << (32 - NAME_CHUNK_BITS))
#define NO_TAG UINT32_MAX

typedef struct sku_extra {
    uint32_t *ftags;     /* free tag ids */
    uint16_t nftags, capftags;
    uint32_t attrs_len;
    char *attrs;         /* JSON object text, NUL-terminated, or NULL */
} sku_extra_t;

/* Per dim value: its string and the tag id for each kind (NO_TAG until used). */
typedef struct dim_entry {
    char *name;
    uint32_t tag[4];     /* by enum store_dim; DIM_CATEGORY is the full "top/leaf" tag */
    uint32_t top_tag;    /* category:<top> for a category value */
    uint32_t top_dim;    /* dim id of the top part, for a category value */
} dim_entry_t;

struct store {
    tags_t *tags;
    sku_row_t *rows;
    sku_extra_t *extra;
    uint32_t cap, limit, live_count;
    uint32_t *free_ids;
    uint32_t nfree, capfree;
    strmap_t *ids;
    _Atomic(char *) *_Atomic name_chunks[NAME_CHUNKS_MAX];
    strmap_t *dim_map;
    dim_entry_t *dims;
    const char **dim_names;
    uint32_t ndims, capdims;
    uint32_t tag_lazmall, tag_free_shipping, tag_in_stock, tag_live;
    char *scratch;       /* decoded attr strings */
    size_t scratch_cap;
};

/* -- Names for readers ------------------------------------------------ */

static _Atomic(char *) *name_slot(store_t *st, uint32_t id, bool create) {
    uint32_t c = id >> NAME_CHUNK_BITS;
    _Atomic(char *) *chunk = atomic_load_explicit(&st->name_chunks[c], memory_order_acquire);
    if (!chunk && create) {
        chunk = xcalloc(NAME_CHUNK, sizeof *chunk);
        for (uint32_t i = 0; i < NAME_CHUNK; i++) atomic_init(&chunk[i], NULL);
        atomic_store_explicit(&st->name_chunks[c], chunk, memory_order_release);
    }
    return chunk ? &chunk[id & (NAME_CHUNK - 1)] : NULL;
}

const char *store_read_name(const store_t *st, uint32_t id) {
    store_t *s = (store_t *)st;
    _Atomic(char *) *slot = name_slot(s, id, false);
    return slot ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
}

int store_read_id(const store_t *st, const char *sku, size_t len, uint32_t *id) {
    return strmap_read(st->ids, sku, len, id);
}

/* -- Dimensions -------------------------------------------------------- */

static uint32_t dim_intern(store_t *st, const char *val, size_t len) {
    uint32_t id;
    if (len == 0) return 0;
    if (strmap_get(st->dim_map, val, len, &id) == 0) return id;
    if (st->ndims == st->capdims) {
        st->capdims *= 2;
        st->dims = xrealloc(st->dims, st->capdims * sizeof *st->dims);
        st->dim_names = xrealloc(st->dim_names, st->capdims * sizeof *st->dim_names);
    }
    id = st->ndims++;
    dim_entry_t *d = &st->dims[id];
    d->name = xstrndup(val, len);
    d->tag[0] = d->tag[1] = d->tag[2] = d->tag[3] = NO_TAG;
    d->top_tag = NO_TAG;
    d->top_dim = 0;
    st->dim_names[id] = d->name;
    strmap_put(st->dim_map, val, len, id, NULL);
    return id;
}

static uint32_t intern_tag2(store_t *st, const char *prefix, const char *val) {
    char buf[EVENT_MAX_DIM_LEN * 2 + 32];
    int n = snprintf(buf, sizeof buf, "%s%s", prefix, val);
    if (n < 0 || (size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    return tags_intern(st->tags, buf, (size_t)n, NULL);
}

static const char *const dim_prefix[4] = {"market:", "category:", "brand:", "seller:"};

static uint32_t dim_tag(store_t *st, uint32_t dim, enum store_dim which) {
    dim_entry_t *d = &st->dims[dim];
    if (d->tag[which] == NO_TAG) d->tag[which] = intern_tag2(st, dim_prefix[which], d->name);
    return d->tag[which];
}

static uint32_t dim_top_tag(store_t *st, uint32_t dim) {
    dim_entry_t *d = &st->dims[dim];
    if (d->top_tag == NO_TAG) {
        const char *slash = strchr(d->name, '/');
        if (!slash) {
            d->top_tag = dim_tag(st, dim, DIM_CATEGORY);
            d->top_dim = dim;
        } else {
            size_t tl = (size_t)(slash - d->name);
            d->top_dim = dim_intern(st, d->name, tl);
            d = &st->dims[dim]; /* dims may have moved */
            d->top_tag = dim_tag(st, d->top_dim, DIM_CATEGORY);
        }
    }
    return st->dims[dim].top_tag;
}

/* -- Lifecycle --------------------------------------------------------- */

store_t *store_new(tags_t *tags) {
    store_t *st = xcalloc(1, sizeof *st);
    st->tags = tags;
    st->cap = 1024;
    st->rows = xcalloc(st->cap, sizeof *st->rows);
    st->extra = xcalloc(st->cap, sizeof *st->extra);
    st->ids = strmap_new(1024);
    st->dim_map = strmap_new(256);
    st->capdims = 256;
    st->dims = xcalloc(st->capdims, sizeof *st->dims);
    st->dim_names = xcalloc(st->capdims, sizeof *st->dim_names);
    st->dims[0].name = xstrdup("");
    st->dim_names[0] = st->dims[0].name;
    st->ndims = 1;
    for (uint32_t i = 0; i < NAME_CHUNKS_MAX; i++) atomic_init(&st->name_chunks[i], NULL);
    st->tag_lazmall = tags_intern(tags, "lazmall", 7, NULL);
    st->tag_free_shipping = tags_intern(tags, "free_shipping", 13, NULL);
    st->tag_in_stock = tags_intern(tags, "in_stock", 8, NULL);
    st->tag_live = tags_intern(tags, STORE_LIVE_TAG, strlen(STORE_LIVE_TAG), NULL);
    return st;
}

void store_free(store_t *st) {
    if (!st) return;
    for (uint32_t i = 0; i < st->limit; i++) {
        free(st->extra[i].ftags);
        free(st->extra[i].attrs);
    }
    for (uint32_t c = 0; c < NAME_CHUNKS_MAX; c++) {
        _Atomic(char *) *chunk = atomic_load(&st->name_chunks[c]);
        if (!chunk) continue;
        for (uint32_t i = 0; i < NAME_CHUNK; i++) free(atomic_load(&chunk[i]));
        free(chunk);
    }
    for (uint32_t i = 0; i < st->ndims; i++) free(st->dims[i].name);
    free(st->dims);
    free(st->dim_names);
    strmap_free(st->dim_map);
    strmap_free(st->ids);
    free(st->rows);
    free(st->extra);
    free(st->free_ids);
    free(st->scratch);
    free(st);
}

/* -- Ids ----------------------------------------------------------------- */

static void grow_rows(store_t *st, uint32_t need) {
    if (need <= st->cap) return;
    uint32_t ncap = st->cap;
    while (ncap < need) ncap *= 2;
    st->rows = xrealloc(st->rows, (size_t)ncap * sizeof *st->rows);
    st->extra = xrealloc(st->extra, (size_t)ncap * sizeof *st->extra);
    memset(st->rows + st->cap, 0, (size_t)(ncap - st->cap) * sizeof *st->rows);
    memset(st->extra + st->cap, 0, (size_t)(ncap - st->cap) * sizeof *st->extra);
    st->cap = ncap;
}

/* Retire callback: the id may be reused now that no reader can see it. */
static void release_id(void *arg, void *ptr) {
    store_t *st = arg;
    uint32_t id = (uint32_t)(uintptr_t)ptr;
    if (st->nfree == st->capfree) {
        st->capfree = st->capfree ? st->capfree * 2 : 1024;
        st->free_ids = xrealloc(st->free_ids, st->capfree * sizeof *st->free_ids);
    }
    st->free_ids[st->nfree++] = id;
}

uint32_t store_upsert_id(store_t *st, const char *sku, size_t len, bool *created, retire_list_t *rl) {
    uint32_t id;
    if (strmap_get(st->ids, sku, len, &id) == 0) {
        if (created) *created = false;
        return id;
    }
    if (st->nfree > 0) {
        id = st->free_ids[--st->nfree];
    } else {
        grow_rows(st, st->limit + 1);
        id = st->limit++;
    }
    memset(&st->rows[id], 0, sizeof st->rows[id]);
    st->rows[id].live = 1;
    st->live_count++;
    tags_add(st->tags, st->tag_live, id);
    atomic_store_explicit(name_slot(st, id, true), xstrndup(sku, len), memory_order_release);
    strmap_put(st->ids, sku, len, id, rl);
    if (created) *created = true;
    return id;
}

int store_find(const store_t *st, const char *sku, size_t len, uint32_t *id) {
    return strmap_get(st->ids, sku, len, id);
}

static void set_bool_tag(store_t *st, uint32_t tag, uint32_t id, bool on) {
    if (on) tags_add(st->tags, tag, id);
    else tags_remove(st->tags, tag, id);
}

void store_reset_fields(store_t *st, uint32_t id) {
    sku_row_t *r = &st->rows[id];
    store_set_dim(st, id, DIM_MARKET, "", 0);
    store_set_dim(st, id, DIM_CATEGORY, "", 0);
    store_set_dim(st, id, DIM_BRAND, "", 0);
    store_set_dim(st, id, DIM_SELLER, "", 0);
    store_set_flag(st, id, true, false);
    store_set_flag(st, id, false, false);
    store_set_stock(st, id, 0);
    store_set_free_tags(st, id, NULL, 0);
    store_set_attrs(st, id, NULL, 0);
    r = &st->rows[id];
    r->price = r->list_price = r->discount = r->rating = 0;
    r->reviews = 0;
}

void store_delete(store_t *st, uint32_t id, retire_list_t *rl) {
    if (id >= st->limit || !st->rows[id].live) return;
    store_reset_fields(st, id);
    _Atomic(char *) *slot = name_slot(st, id, false);
    char *name = atomic_exchange_explicit(slot, NULL, memory_order_acq_rel);
    strmap_del(st->ids, name, strlen(name), rl);
    memset(&st->rows[id], 0, sizeof st->rows[id]);
    tags_remove(st->tags, st->tag_live, id);
    st->live_count--;
    if (rl) {
        retire_push(rl, NULL, NULL, name);
        retire_push(rl, release_id, st, (void *)(uintptr_t)id);
    } else {
        free(name);
        release_id(st, (void *)(uintptr_t)id);
    }
}

/* -- Fields -------------------------------------------------------------- */

static void update_discount(sku_row_t *r) {
    r->discount = r->list_price > 0 ? 1.0 - r->price / r->list_price : 0.0;
}

void store_set_dim(store_t *st, uint32_t id, enum store_dim which, const char *val, size_t len) {
    sku_row_t *r = &st->rows[id];
    uint32_t *field = which == DIM_MARKET ? &r->market
                      : which == DIM_CATEGORY ? &r->category
                      : which == DIM_BRAND ? &r->brand : &r->seller;
    uint32_t nd = dim_intern(st, val, len);
    uint32_t od = *field;
    if (nd == od) return;
    if (od) {
        tags_remove(st->tags, dim_tag(st, od, which), id);
        if (which == DIM_CATEGORY) {
            uint32_t top = dim_top_tag(st, od);
            tags_remove(st->tags, top, id);
        }
    }
    r = &st->rows[id];
    if (which == DIM_MARKET) r->market = nd;
    else if (which == DIM_CATEGORY) r->category = nd;
    else if (which == DIM_BRAND) r->brand = nd;
    else r->seller = nd;
    if (which == DIM_CATEGORY) r->top_category = 0;
    if (nd) {
        tags_add(st->tags, dim_tag(st, nd, which), id);
        if (which == DIM_CATEGORY) {
            tags_add(st->tags, dim_top_tag(st, nd), id);
            st->rows[id].top_category = st->dims[nd].top_dim;
        }
    }
}

void store_set_price(store_t *st, uint32_t id, double price) {
    sku_row_t *r = &st->rows[id];
    r->price = price;
    update_discount(r);
}

void store_set_list_price(store_t *st, uint32_t id, double list_price) {
    sku_row_t *r = &st->rows[id];
    r->list_price = list_price;
    update_discount(r);
}

void store_set_stock(store_t *st, uint32_t id, int64_t stock) {
    sku_row_t *r = &st->rows[id];
    bool was = r->stock > 0;
    r->stock = (int32_t)stock;
    if (was != (stock > 0)) set_bool_tag(st, st->tag_in_stock, id, stock > 0);
}

void store_set_rating(store_t *st, uint32_t id, double rating) { st->rows[id].rating = rating; }

void store_set_reviews(store_t *st, uint32_t id, int64_t reviews) {
    st->rows[id].reviews = (int32_t)reviews;
}

void store_set_flag(store_t *st, uint32_t id, bool lazmall_flag, bool value) {
    sku_row_t *r = &st->rows[id];
    uint8_t *f = lazmall_flag ? &r->lazmall : &r->free_shipping;
    if (*f == (uint8_t)value) return;
    *f = value;
    set_bool_tag(st, lazmall_flag ? st->tag_lazmall : st->tag_free_shipping, id, value);
}

static int ftags_push(sku_extra_t *x, uint32_t tag) {
    for (uint16_t i = 0; i < x->nftags; i++)
        if (x->ftags[i] == tag) return 0;
    if (x->nftags >= STORE_MAX_FREE_TAGS) return -1;
    if (x->nftags == x->capftags) {
        x->capftags = x->capftags ? (uint16_t)(x->capftags * 2) : 4;
        x->ftags = xrealloc(x->ftags, x->capftags * sizeof *x->ftags);
    }
    x->ftags[x->nftags++] = tag;
    return 0;
}

void store_set_free_tags(store_t *st, uint32_t id, const char *names, uint32_t n) {
    sku_extra_t *x = &st->extra[id];
    for (uint16_t i = 0; i < x->nftags; i++) tags_remove(st->tags, x->ftags[i], id);
    x->nftags = 0;
    const char *p = names;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(p);
        (void)store_add_free_tag(st, id, p, len); /* n <= EVENT_MAX_TAGS < STORE_MAX_FREE_TAGS */
        p += len + 1;
    }
    if (n == 0 && x->capftags > 8) {
        free(x->ftags);
        x->ftags = NULL;
        x->capftags = 0;
    }
}

int store_add_free_tag(store_t *st, uint32_t id, const char *name, size_t len) {
    sku_extra_t *x = &st->extra[id];
    if (x->nftags >= STORE_MAX_FREE_TAGS) {
        uint32_t known;
        bool has = false;
        if (tags_find(st->tags, name, len, &known) == 0)
            for (uint16_t i = 0; i < x->nftags && !has; i++) has = x->ftags[i] == known;
        return has ? 0 : -1;
    }
    uint32_t tag = tags_intern(st->tags, name, len, NULL);
    ftags_push(x, tag);
    tags_add(st->tags, tag, id);
    return 0;
}

void store_remove_free_tag(store_t *st, uint32_t id, const char *name, size_t len) {
    uint32_t tag;
    if (tags_find(st->tags, name, len, &tag) != 0) return;
    sku_extra_t *x = &st->extra[id];
    for (uint16_t i = 0; i < x->nftags; i++) {
        if (x->ftags[i] != tag) continue;
        x->ftags[i] = x->ftags[--x->nftags];
        tags_remove(st->tags, tag, id);
        return;
    }
}

void store_set_attrs(store_t *st, uint32_t id, const char *json, size_t len) {
    sku_extra_t *x = &st->extra[id];
    if (len == 0) {
        free(x->attrs);
        x->attrs = NULL;
        x->attrs_len = 0;
        return;
    }
    if (!x->attrs || x->attrs_len < len) x->attrs = xrealloc(x->attrs, len + 1);
    memcpy(x->attrs, json, len);
    x->attrs[len] = '\0';
    x->attrs_len = (uint32_t)len;
}

/* -- Reads ----------------------------------------------------------------- */

sku_row_t *store_row(store_t *st, uint32_t id) { return &st->rows[id]; }
const sku_row_t *store_rows(const store_t *st) { return st->rows; }
uint32_t store_id_limit(const store_t *st) { return st->limit; }
uint32_t store_count(const store_t *st) { return st->live_count; }
const roaring_bitmap_t *store_live(const store_t *st) { return tags_bitmap(st->tags, st->tag_live); }
const char *store_name(const store_t *st, uint32_t id) { return store_read_name(st, id); }
const char *store_dim_name(const store_t *st, uint32_t dim_id) {
    return dim_id < st->ndims ? st->dims[dim_id].name : "";
}
const char *const *store_dims(const store_t *st) { return st->dim_names; }

const char *store_attrs(const store_t *st, uint32_t id, size_t *len) {
    const sku_extra_t *x = &st->extra[id];
    if (len) *len = x->attrs_len;
    return x->attrs;
}

const uint32_t *store_free_tags(const store_t *st, uint32_t id, uint32_t *n) {
    *n = st->extra[id].nftags;
    return st->extra[id].ftags;
}

size_t store_memory(const store_t *st) {
    size_t m = sizeof *st + (size_t)st->cap * (sizeof *st->rows + sizeof *st->extra);
    for (uint32_t i = 0; i < st->limit; i++) {
        m += st->extra[i].capftags * sizeof(uint32_t) + (st->extra[i].attrs ? st->extra[i].attrs_len + 1 : 0);
        const char *name = store_read_name(st, i);
        if (name) m += strlen(name) + 1;
    }
    m += strmap_memory(st->ids) + strmap_memory(st->dim_map);
    return m;
}

/* -- attrs scanner ------------------------------------------------------------
 * The attrs text was validated by the event parser (a JSON object within the
 * depth bound), so this scanner only needs to walk it, not re-validate. */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Skips a string starting at the opening quote; returns past the closing one. */
static const char *skip_string(const char *p, const char *end) {
    p++;
    while (p < end && *p != '"') p += (*p == '\\') ? 2 : 1;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return end;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') { p = skip_string(p, end); continue; }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
           *p != '\t' && *p != '\r')
        p++;
    return p;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string at p (opening quote) into out (capacity >= its raw
 * length); returns the decoded length. */
static size_t decode_string(const char *p, const char *end, char *out) {
    size_t n = 0;
    p++;
    while (p < end && *p != '"') {
        if (*p != '\\') { out[n++] = *p++; continue; }
        p++;
        if (p >= end) break;
        char c = *p++;
        switch (c) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            uint32_t cp = 0;
            for (int i = 0; i < 4 && p < end; i++) cp = cp * 16 + (uint32_t)hexval(*p++);
            if (cp >= 0xD800 && cp < 0xDC00 && p + 6 <= end && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = 0;
                for (int i = 2; i < 6; i++) lo = lo * 16 + (uint32_t)hexval(p[i]);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default: out[n++] = c; break;
        }
    }
    return n;
}

void store_attr_get(store_t *st, uint32_t id, const char *name, size_t len, attr_value_t *out) {
    memset(out, 0, sizeof *out);
    if (id >= st->limit) return;
    const sku_extra_t *x = &st->extra[id];
    if (!x->attrs) return;
    const char *p = x->attrs, *end = x->attrs + x->attrs_len;
    if (st->scratch_cap < (size_t)x->attrs_len + 8) {
        st->scratch_cap = (size_t)x->attrs_len + 64;
        st->scratch = xrealloc(st->scratch, st->scratch_cap);
    }
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return;
    p++;
    const char *found = NULL;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"') break;
        const char *kend = skip_string(p, end);
        size_t klen = decode_string(p, end, st->scratch);
        bool match = klen == len && memcmp(st->scratch, name, len) == 0;
        p = skip_ws(kend, end);
        if (p < end && *p == ':') p++;
        p = skip_ws(p, end);
        if (match) found = p; /* duplicate keys: the last one wins */
        p = skip_ws(skip_value(p, end), end);
        if (p < end && *p == ',') p++;
        else break;
    }
    if (!found) return;
    const char *vend = skip_value(found, end);
    switch (*found) {
    case '"':
        out->type = ATTR_STRING;
        out->len = (int32_t)decode_string(found, end, st->scratch);
        out->str = st->scratch;
        break;
    case 't': out->type = ATTR_BOOL; out->num = 1; break;
    case 'f': out->type = ATTR_BOOL; out->num = 0; break;
    case 'n': break;
    case '{':
    case '[':
        out->type = ATTR_JSON;
        out->str = found;
        out->len = (int32_t)(vend - found);
        break;
    default: {
        char num[64];
        size_t n = (size_t)(vend - found);
        if (n >= sizeof num) n = sizeof num - 1;
        memcpy(num, found, n);
        num[n] = '\0';
        out->type = ATTR_NUMBER;
        out->num = strtod(num, NULL);
        break;
    }
    }
}

/* -- Snapshots ------------------------------------------------------------------
 * The STOR section (layout at the top of snapshot.c). A row is written
 * field by field, so the file does not depend on sku_row_t's padding; the
 * assertion below fails the build when sku_row_t changes, as a reminder to
 * change the encoding and SNAP_FORMAT_VERSION with it. */
#define SNAP_ROW_BYTES 68
_Static_assert(sizeof(sku_row_t) == 72 && offsetof(sku_row_t, reserved) == 67,
               "sku_row_t changed: update the STOR row encoding and SNAP_FORMAT_VERSION");

static void row_encode(const sku_row_t *r, uint8_t *p) {
    snap_enc_f64(p, r->price);
    snap_enc_f64(p + 8, r->list_price);
    snap_enc_f64(p + 16, r->discount);
    snap_enc_f64(p + 24, r->rating);
    snap_enc_u32(p + 32, (uint32_t)r->stock);
    snap_enc_u32(p + 36, (uint32_t)r->reviews);
    snap_enc_u32(p + 40, r->market);
    snap_enc_u32(p + 44, r->category);
    snap_enc_u32(p + 48, r->top_category);
    snap_enc_u32(p + 52, r->brand);
    snap_enc_u32(p + 56, r->seller);
    snap_enc_u32(p + 60, r->win);
    p[64] = r->lazmall;
    p[65] = r->free_shipping;
    p[66] = r->live;
    p[67] = r->reserved;
}

static void row_decode(const uint8_t *p, sku_row_t *r) {
    memset(r, 0, sizeof *r);
    r->price = snap_dec_f64(p);
    r->list_price = snap_dec_f64(p + 8);
    r->discount = snap_dec_f64(p + 16);
    r->rating = snap_dec_f64(p + 24);
    r->stock = (int32_t)snap_dec_u32(p + 32);
    r->reviews = (int32_t)snap_dec_u32(p + 36);
    r->market = snap_dec_u32(p + 40);
    r->category = snap_dec_u32(p + 44);
    r->top_category = snap_dec_u32(p + 48);
    r->brand = snap_dec_u32(p + 52);
    r->seller = snap_dec_u32(p + 56);
    r->win = snap_dec_u32(p + 60);
    r->lazmall = p[64];
    r->free_shipping = p[65];
    r->live = p[66];
    r->reserved = p[67];
}

int store_snap_write(const store_t *st, snap_writer_t *w) {
    if (snap_begin(w, SNAP_TAG_STORE) != 0) return -1;
    snap_put_u32(w, st->limit);
    snap_put_u32(w, st->live_count);
    snap_put_u32(w, st->tag_lazmall);
    snap_put_u32(w, st->tag_free_shipping);
    snap_put_u32(w, st->tag_in_stock);
    snap_put_u32(w, st->tag_live);
    snap_put_u32(w, st->ndims);
    for (uint32_t i = 0; i < st->ndims; i++) {
        const dim_entry_t *d = &st->dims[i];
        snap_put_str(w, d->name, strlen(d->name));
        for (int k = 0; k < 4; k++) snap_put_u32(w, d->tag[k]);
        snap_put_u32(w, d->top_tag);
        if (snap_put_u32(w, d->top_dim) != 0) return -1;
    }
    for (uint32_t id = 0; id < st->limit; id++) {
        const sku_row_t *row = &st->rows[id];
        uint8_t rec[SNAP_ROW_BYTES];
        row_encode(row, rec);
        if (snap_put(w, rec, sizeof rec) != 0) return -1;
        if (!row->live) continue;
        const sku_extra_t *x = &st->extra[id];
        const char *name = store_read_name(st, id);
        snap_put_str(w, name ? name : "", name ? strlen(name) : 0);
        snap_put_u16(w, x->nftags);
        for (uint16_t i = 0; i < x->nftags; i++) snap_put_u32(w, x->ftags[i]);
        if (snap_put_str(w, x->attrs, x->attrs ? x->attrs_len : 0) != 0) return -1;
    }
    snap_put_u32(w, st->nfree);
    for (uint32_t i = 0; i < st->nfree; i++) snap_put_u32(w, st->free_ids[i]);
    return snap_end(w);
}

/* A name from the snapshot: 1..max bytes without NUL; else NULL. */
static const char *snap_name(snap_reader_t *r, size_t max, size_t *len, const char *what) {
    const char *s = snap_get_str(r, len);
    if (!s) return NULL;
    if (*len == 0 || *len > max || memchr(s, '\0', *len)) {
        snap_fail(r, "bad %s (%zu bytes)", what, *len);
        return NULL;
    }
    return s;
}

static int snap_read_dims(store_t *st, snap_reader_t *r) {
    uint32_t ndims;
    if (snap_get_u32(r, &ndims) != 0) return -1;
    if (ndims == 0 || ndims > snap_remaining(r) / 28)
        return snap_fail(r, "%u dimension values do not fit the section", ndims);
    if (ndims > st->capdims) {
        while (st->capdims < ndims) st->capdims *= 2;
        st->dims = xrealloc(st->dims, st->capdims * sizeof *st->dims);
        st->dim_names = xrealloc(st->dim_names, st->capdims * sizeof *st->dim_names);
    }
    for (uint32_t i = 0; i < ndims; i++) {
        size_t len;
        const char *name = i == 0 ? snap_get_str(r, &len) : snap_name(r, EVENT_MAX_DIM_LEN, &len, "dimension value");
        if (!name) return -1;
        if (i == 0 && len != 0) return snap_fail(r, "dimension 0 is not empty");
        if (i > 0 && strmap_get(st->dim_map, name, len, NULL) == 0)
            return snap_fail(r, "dimension value %u repeats an earlier one", i);
        dim_entry_t *d = &st->dims[i];
        if (i > 0) {
            d->name = xstrndup(name, len);
            st->dim_names[i] = d->name;
            strmap_put(st->dim_map, name, len, i, NULL);
            st->ndims = i + 1;
        }
        for (int k = 0; k < 4; k++) snap_get_u32(r, &d->tag[k]);
        snap_get_u32(r, &d->top_tag);
        if (snap_get_u32(r, &d->top_dim) != 0) return -1;
    }
    for (uint32_t i = 0; i < ndims; i++)
        if (st->dims[i].top_dim >= ndims) return snap_fail(r, "dimension %u: bad top dimension", i);
    return 0;
}

static int snap_read_row(store_t *st, snap_reader_t *r, uint32_t id) {
    static const uint8_t zero[SNAP_ROW_BYTES];
    const uint8_t *rec = snap_get_bytes(r, SNAP_ROW_BYTES);
    if (!rec) return -1;
    sku_row_t row;
    row_decode(rec, &row);
    if (!row.live) {
        if (memcmp(rec, zero, sizeof zero) != 0) return snap_fail(r, "deleted row %u holds data", id);
        return 0;
    }
    uint32_t nd = st->ndims;
    if (row.live != 1 || row.lazmall > 1 || row.free_shipping > 1 || row.market >= nd ||
        row.category >= nd || row.top_category >= nd || row.brand >= nd || row.seller >= nd)
        return snap_fail(r, "row %u: field out of range", id);
    size_t len;
    const char *name = snap_name(r, STRMAP_MAX_KEY, &len, "SKU id");
    if (!name) return -1;
    if (strmap_get(st->ids, name, len, NULL) == 0) return snap_fail(r, "row %u: SKU id repeats", id);
    strmap_put(st->ids, name, len, id, NULL);
    atomic_store_explicit(name_slot(st, id, true), xstrndup(name, len), memory_order_release);
    st->rows[id] = row;
    st->live_count++;
    sku_extra_t *x = &st->extra[id];
    uint16_t n;
    if (snap_get_u16(r, &n) != 0) return -1;
    if (n > snap_remaining(r) / 4) return snap_fail(r, "row %u: %u free tags do not fit", id, n);
    if (n) {
        x->ftags = xmalloc((size_t)n * sizeof *x->ftags);
        x->capftags = n;
        for (uint16_t i = 0; i < n; i++) snap_get_u32(r, &x->ftags[i]);
        x->nftags = n;
    }
    const char *attrs = snap_get_str(r, &len);
    if (!attrs) return -1;
    if (len) {
        x->attrs = xstrndup(attrs, len);
        x->attrs_len = (uint32_t)len;
    }
    return 0;
}

int store_snap_read(store_t *st, snap_reader_t *r) {
    if (st->limit != 0 || st->ndims != 1 || st->nfree != 0 || st->live_count != 0)
        return snap_fail(r, "the store to load into is not empty");
    uint32_t limit, live, t[4];
    snap_get_u32(r, &limit);
    snap_get_u32(r, &live);
    for (int k = 0; k < 4; k++) snap_get_u32(r, &t[k]);
    if (snap_error(r)[0]) return -1;
    if (t[0] != st->tag_lazmall || t[1] != st->tag_free_shipping || t[2] != st->tag_in_stock ||
        t[3] != st->tag_live)
        return snap_fail(r, "automatic tag ids differ from this poold's");
    if (snap_read_dims(st, r) != 0) return -1;
    if (limit > snap_remaining(r) / SNAP_ROW_BYTES || live > limit)
        return snap_fail(r, "%u rows (%u live) do not fit the section", limit, live);
    if (limit > 0) grow_rows(st, limit);
    if (live > 0) { /* sized once: no rehashing while loading */
        strmap_free(st->ids);
        st->ids = strmap_new(live);
    }
    for (uint32_t id = 0; id < limit; id++) {
        st->limit = id + 1;
        if (snap_read_row(st, r, id) != 0) return -1;
    }
    if (st->live_count != live)
        return snap_fail(r, "%u live rows, the header says %u", st->live_count, live);
    uint32_t nfree;
    if (snap_get_u32(r, &nfree) != 0) return -1;
    if (nfree > limit || nfree > snap_remaining(r) / 4)
        return snap_fail(r, "%u free ids do not fit", nfree);
    uint8_t *seen = xcalloc(limit ? limit : 1, 1);
    int rc = 0;
    for (uint32_t i = 0; i < nfree && rc == 0; i++) {
        uint32_t id;
        if (snap_get_u32(r, &id) != 0) rc = -1;
        else if (id >= limit || st->rows[id].live || seen[id]) rc = snap_fail(r, "bad free id %u", id);
        else {
            seen[id] = 1;
            release_id(st, (void *)(uintptr_t)id);
        }
    }
    /* ids deleted but still on a retire list when the snapshot was taken */
    for (uint32_t id = 0; id < limit && rc == 0; id++)
        if (!st->rows[id].live && !seen[id]) release_id(st, (void *)(uintptr_t)id);
    free(seen);
    return rc ? rc : snap_section_done(r);
}

int store_snap_check(const store_t *st, char *err, size_t errlen) {
    uint32_t ntags = tags_count(st->tags);
    for (uint32_t i = 0; i < st->ndims; i++) {
        const dim_entry_t *d = &st->dims[i];
        for (int k = 0; k < 5; k++) {
            uint32_t tag = k < 4 ? d->tag[k] : d->top_tag;
            if (tag != NO_TAG && tag >= ntags) {
                snprintf(err, errlen, "dimension %u refers to tag %u; there are %u tags", i, tag, ntags);
                return -1;
            }
        }
    }
    for (uint32_t id = 0; id < st->limit; id++) {
        const sku_extra_t *x = &st->extra[id];
        for (uint16_t i = 0; i < x->nftags; i++) {
            if (x->ftags[i] < ntags) continue;
            snprintf(err, errlen, "row %u has free tag %u; there are %u tags", id, x->ftags[i], ntags);
            return -1;
        }
    }
    const roaring_bitmap_t *live = tags_bitmap(st->tags, st->tag_live);
    uint64_t card = live ? roaring_bitmap_get_cardinality(live) : 0;
    bool ok = card == st->live_count;
    for (uint32_t id = 0; ok && id < st->limit; id++)
        if (st->rows[id].live) ok = roaring_bitmap_contains(live, id);
    if (!ok) {
        snprintf(err, errlen, "the live tag (%llu SKUs) differs from the live rows (%u)",
                 (unsigned long long)card, st->live_count);
        return -1;
    }
    return 0;
}
