/* tags.c - tag dictionary, live tag bitmaps, copy-on-publish tag views.
 *
 * Owns: the name -> id map (strmap, read lock-free by tagview_find), the
 * names by id, one live roaring bitmap per tag (created on the first add),
 * a dirty flag + dirty list of tags changed since the last publish, and
 * the last published view.
 *
 * A view is a two-level table: view->chunk[id / 256]->e[id % 256] =
 * {bitmap copy, name}. tags_publish starts the new view from the old
 * view's chunk pointers, copies only the chunks holding a dirty or new tag,
 * and fills their dirty entries with fresh copies of the live bitmaps
 * (run-optimized, shrunk). Unchanged chunks, and with them the bitmap
 * copies of unchanged tags, are shared by consecutive views. Everything the
 * new view dropped goes to the caller's retire list. Invariant: every chunk
 * and every bitmap copy is referenced by the current view or sits on
 * exactly one retire list, never both; so tags_free frees the current
 * view's objects, each once, and nothing else of the views.
 *
 * Live bitmaps are never copy-on-write: CRoaring's shared-container
 * counters are not atomic and readers run CRoaring on the copies.
 *
 * tags_snap_* write and read the TAGS snapshot section (format in
 * snapshot.c): names and live bitmaps by id; views are not saved.
 *
 * Threads: tagview_* from any thread holding a read version; everything
 * else from the writer. */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "strmap.h"
#include "tags.h"
#include "util.h"

typedef struct tv_entry {
    const roaring_bitmap_t *bm; /* NULL when empty */
    const char *name;
} tv_entry_t;

typedef struct tv_chunk {
    tv_entry_t e[TAGS_CHUNK];
} tv_chunk_t;

struct tagview {
    uint32_t count;
    uint32_t nchunks;
    const strmap_t *names;
    tv_chunk_t *chunk[]; /* nchunks */
};

struct tags {
    strmap_t *names;
    char **name;             /* by id */
    roaring_bitmap_t **live; /* by id; NULL until the first add */
    uint8_t *dirty;          /* by id: in dirty_ids */
    uint32_t *dirty_ids;
    uint32_t ndirty, dirty_cap;
    uint32_t count, cap;
    size_t name_bytes;
    tagview_t *view;         /* last published */
    retire_list_t deferred;  /* name map tables retired by tags_intern(rl = NULL) */
};

/* -- Writer ------------------------------------------------------------- */

tags_t *tags_new(void) {
    tags_t *t = xcalloc(1, sizeof *t);
    t->names = strmap_new(1024);
    return t;
}

static void free_bitmap_cb(void *arg, void *ptr) {
    (void)arg;
    roaring_bitmap_free(ptr);
}

static void retire(retire_list_t *rl, retire_fn fn, void *ptr) {
    if (rl) {
        retire_push(rl, fn, NULL, ptr);
    } else if (fn) {
        fn(NULL, ptr);
    } else {
        free(ptr);
    }
}

static void view_destroy(tagview_t *v) {
    if (!v) return;
    for (uint32_t c = 0; c < v->nchunks; c++) {
        tv_chunk_t *ch = v->chunk[c];
        for (uint32_t i = 0; i < TAGS_CHUNK; i++)
            if (ch->e[i].bm) roaring_bitmap_free(ch->e[i].bm);
        free(ch);
    }
    free(v);
}

void tags_free(tags_t *t) {
    if (!t) return;
    view_destroy(t->view);
    for (uint32_t i = 0; i < t->count; i++) {
        free(t->name[i]);
        if (t->live[i]) roaring_bitmap_free(t->live[i]);
    }
    free(t->name);
    free(t->live);
    free(t->dirty);
    free(t->dirty_ids);
    retire_run(&t->deferred);
    retire_free(&t->deferred);
    strmap_free(t->names);
    free(t);
}

uint32_t tags_intern(tags_t *t, const char *name, size_t len, retire_list_t *rl) {
    uint32_t id;
    if (len == 0 || len > TAGS_MAX_NAME) return TAGS_NONE;
    if (strmap_get(t->names, name, len, &id) == 0) return id;
    if (t->count == TAGS_NONE - 1) return TAGS_NONE;
    if (t->count == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->name = xrealloc(t->name, t->cap * sizeof *t->name);
        t->live = xrealloc(t->live, t->cap * sizeof *t->live);
        t->dirty = xrealloc(t->dirty, t->cap);
    }
    id = t->count;
    t->name[id] = xstrndup(name, len);
    t->live[id] = NULL;
    t->dirty[id] = 0;
    t->name_bytes += len + 1;
    /* the name must be in place before readers can find the id; a view
     * only exposes ids below its count anyway */
    if (strmap_put(t->names, name, len, id, rl ? rl : &t->deferred) != 0) {
        free(t->name[id]);
        return TAGS_NONE;
    }
    t->count++;
    return id;
}

int tags_find(const tags_t *t, const char *name, size_t len, uint32_t *id) {
    return strmap_get(t->names, name, len, id);
}

const char *tags_name(const tags_t *t, uint32_t id) { return id < t->count ? t->name[id] : NULL; }

uint32_t tags_count(const tags_t *t) { return t ? t->count : 0; }

static void mark_dirty(tags_t *t, uint32_t tag) {
    if (t->dirty[tag]) return;
    t->dirty[tag] = 1;
    if (t->ndirty == t->dirty_cap) {
        t->dirty_cap = t->dirty_cap ? t->dirty_cap * 2 : 256;
        t->dirty_ids = xrealloc(t->dirty_ids, t->dirty_cap * sizeof *t->dirty_ids);
    }
    t->dirty_ids[t->ndirty++] = tag;
}

void tags_add(tags_t *t, uint32_t tag, uint32_t sku) {
    if (tag >= t->count) return;
    if (!t->live[tag]) {
        /* Copy-on-write: a published copy shares the containers, so a
         * publish costs O(containers), and the writer's next change to a
         * shared container copies that container only. Shared containers
         * are freed only on the writer thread (retire lists), and readers
         * never change a bitmap, so the non-atomic share counts are safe. */
        t->live[tag] = roaring_bitmap_create();
        roaring_bitmap_set_copy_on_write(t->live[tag], true);
    }
    if (roaring_bitmap_add_checked(t->live[tag], sku)) mark_dirty(t, tag);
}

void tags_remove(tags_t *t, uint32_t tag, uint32_t sku) {
    if (tag >= t->count || !t->live[tag]) return;
    if (roaring_bitmap_remove_checked(t->live[tag], sku)) mark_dirty(t, tag);
}

bool tags_has(const tags_t *t, uint32_t tag, uint32_t sku) {
    return tag < t->count && t->live[tag] && roaring_bitmap_contains(t->live[tag], sku);
}

const roaring_bitmap_t *tags_bitmap(const tags_t *t, uint32_t tag) {
    return tag < t->count ? t->live[tag] : NULL;
}

size_t tags_memory(const tags_t *t) {
    if (!t) return 0;
    size_t n = sizeof *t + strmap_memory(t->names) + t->name_bytes +
               (size_t)t->cap * (sizeof *t->name + sizeof *t->live + 1) +
               (size_t)t->dirty_cap * sizeof *t->dirty_ids;
    for (uint32_t i = 0; i < t->count; i++)
        if (t->live[i]) n += roaring_bitmap_size_in_bytes(t->live[i]);
    const tagview_t *v = t->view;
    if (v) {
        n += sizeof *v + v->nchunks * (sizeof(tv_chunk_t) + sizeof(tv_chunk_t *));
        for (uint32_t i = 0; i < v->count; i++) {
            const roaring_bitmap_t *bm = v->chunk[i / TAGS_CHUNK]->e[i % TAGS_CHUNK].bm;
            if (bm) n += roaring_bitmap_size_in_bytes(bm);
        }
    }
    return n;
}

/* Makes chunk c of the new view private to it (a copy of the old view's,
 * whose original is retired, or a fresh zeroed one past the old end). */
static tv_chunk_t *own_chunk(tagview_t *nv, const tagview_t *old, uint32_t c,
                             retire_list_t *rl) {
    tv_chunk_t *ch = nv->chunk[c];
    if (old && c < old->nchunks && ch == old->chunk[c]) {
        tv_chunk_t *copy = xmalloc(sizeof *copy);
        memcpy(copy, ch, sizeof *copy);
        retire(rl, NULL, ch);
        nv->chunk[c] = ch = copy;
    } else if (!ch) {
        nv->chunk[c] = ch = xcalloc(1, sizeof *ch);
    }
    return ch;
}

tagview_t *tags_publish(tags_t *t, retire_list_t *rl) {
    tagview_t *old = t->view;
    uint32_t old_count = old ? old->count : 0;
    if (old && t->ndirty == 0 && old_count == t->count) return old;
    if (rl) retire_move(rl, &t->deferred);
    else retire_run(&t->deferred);

    uint32_t nchunks = (t->count + TAGS_CHUNK - 1) / TAGS_CHUNK;
    tagview_t *nv = xmalloc(sizeof *nv + nchunks * sizeof(tv_chunk_t *));
    nv->count = t->count;
    nv->nchunks = nchunks;
    nv->names = t->names;
    uint32_t keep = old ? old->nchunks : 0;
    if (keep) memcpy(nv->chunk, old->chunk, keep * sizeof(tv_chunk_t *));
    for (uint32_t c = keep; c < nchunks; c++) nv->chunk[c] = NULL;

    for (uint32_t id = old_count; id < t->count; id++) { /* new tags */
        tv_chunk_t *ch = own_chunk(nv, old, id / TAGS_CHUNK, rl);
        ch->e[id % TAGS_CHUNK] = (tv_entry_t){NULL, t->name[id]};
    }
    for (uint32_t i = 0; i < t->ndirty; i++) {
        uint32_t id = t->dirty_ids[i];
        tv_chunk_t *ch = own_chunk(nv, old, id / TAGS_CHUNK, rl);
        tv_entry_t *e = &ch->e[id % TAGS_CHUNK];
        if (e->bm) retire(rl, free_bitmap_cb, (void *)e->bm);
        roaring_bitmap_t *bm = NULL;
        if (t->live[id] && !roaring_bitmap_is_empty(t->live[id])) {
            bm = roaring_bitmap_copy(t->live[id]); /* shares containers (copy-on-write) */
        }
        e->bm = bm;
        t->dirty[id] = 0;
    }
    t->ndirty = 0;
    if (old) retire(rl, NULL, old);
    t->view = nv;
    return nv;
}

tagview_t *tags_view(const tags_t *t) { return t->view; }

const roaring_bitmap_t *tags_resolve(void *tags, const char *name, size_t len) {
    const tags_t *t = tags;
    uint32_t id;
    if (strmap_get(t->names, name, len, &id) != 0) return NULL;
    return t->live[id];
}

int64_t tags_bind_id(void *tags, const char *name, size_t len) {
    uint32_t id;
    return strmap_get(((const tags_t *)tags)->names, name, len, &id) == 0 ? (int64_t)id : -1;
}

bool tags_has_id(void *tags, int64_t tag, uint32_t sku) {
    const tags_t *t = tags;
    return tag >= 0 && tag < t->count && t->live[tag] && roaring_bitmap_contains(t->live[tag], sku);
}

/* -- Readers ------------------------------------------------------------ */

int tagview_find(const tagview_t *v, const char *name, size_t len, uint32_t *id) {
    uint32_t x;
    if (!v || strmap_read(v->names, name, len, &x) != 0 || x >= v->count) return -1;
    if (id) *id = x;
    return 0;
}

const roaring_bitmap_t *tagview_bitmap(const tagview_t *v, uint32_t id) {
    if (!v || id >= v->count) return NULL;
    return v->chunk[id / TAGS_CHUNK]->e[id % TAGS_CHUNK].bm;
}

const char *tagview_name(const tagview_t *v, uint32_t id) {
    if (!v || id >= v->count) return NULL;
    return v->chunk[id / TAGS_CHUNK]->e[id % TAGS_CHUNK].name;
}

uint32_t tagview_count(const tagview_t *v) { return v ? v->count : 0; }

const roaring_bitmap_t *tagview_resolve(void *view, const char *name, size_t len) {
    uint32_t id;
    if (tagview_find(view, name, len, &id) != 0) return NULL;
    return tagview_bitmap(view, id);
}

/* -- Snapshots ------------------------------------------------------------ */

int tags_snap_write(const tags_t *t, snap_writer_t *w) {
    if (snap_begin(w, SNAP_TAG_TAGS) != 0) return -1;
    snap_put_u32(w, t->count);
    for (uint32_t id = 0; id < t->count; id++) {
        snap_put_str(w, t->name[id], strlen(t->name[id]));
        snap_put_u8(w, t->live[id] != NULL);
        if (t->live[id] && snap_put_bitmap(w, t->live[id]) != 0) return -1;
    }
    return snap_end(w);
}

int tags_snap_read(tags_t *t, snap_reader_t *r, uint32_t id_limit) {
    for (uint32_t id = 0; id < t->count; id++)
        if (t->live[id]) return snap_fail(r, "the tags to load into are not empty");
    if (t->view) return snap_fail(r, "the tags to load into were published");
    uint32_t count;
    if (snap_get_u32(r, &count) != 0) return -1;
    if (count < t->count || count > snap_remaining(r) / 6)
        return snap_fail(r, "%u tags do not fit the section", count);
    for (uint32_t id = 0; id < count; id++) {
        size_t len;
        const char *name = snap_get_str(r, &len);
        if (!name) return -1;
        if (len == 0 || len > TAGS_MAX_NAME || memchr(name, '\0', len))
            return snap_fail(r, "tag %u: bad name (%zu bytes)", id, len);
        if (id < t->count) {
            if (strlen(t->name[id]) != len || memcmp(t->name[id], name, len) != 0)
                return snap_fail(r, "tag %u is \"%.*s\", this poold has \"%s\"", id, (int)len, name,
                                 t->name[id]);
        } else if (tags_intern(t, name, len, NULL) != id) {
            return snap_fail(r, "tag %u: \"%.*s\" repeats an earlier tag", id, (int)len, name);
        }
        uint8_t has;
        if (snap_get_u8(r, &has) != 0) return -1;
        if (has > 1) return snap_fail(r, "tag %u: bad bitmap flag %u", id, has);
        if (!has) continue;
        roaring_bitmap_t *bm = snap_get_bitmap(r, id_limit);
        if (!bm) return -1;
        roaring_bitmap_set_copy_on_write(bm, true); /* as tags_add makes them */
        t->live[id] = bm;
        mark_dirty(t, id);
    }
    return snap_section_done(r);
}
