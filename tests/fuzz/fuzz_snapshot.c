/* fuzz_snapshot.c - libFuzzer target for snapshot loading: the file reader
 * (header, framing, CRC, bounds-checked gets) and the core section decoders
 * (store, tags with their roaring bitmaps, windows) with the CRC check off,
 * so mutations reach the decoders; then, if it loaded, once more with CRCs
 * on. The input
 * is copied into a buffer of its exact size so ASan catches any read past
 * it. A snapshot that loads must then behave: publishing the tags, reading
 * attrs, expiring every windowed counter, deleting and creating SKUs, all
 * under ASan/UBSan. Run with tests/fuzz/run.sh; the seed corpus holds
 * small valid snapshots. */
// fuzz-sources: src/snapshot.c src/store.c src/tags.c src/windows.c src/strmap.c src/epoch.c src/util.c
// fuzz-libs: -lroaring
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "snapshot.h"
#include "store.h"
#include "tags.h"
#include "util.h"
#include "windows.h"

#define REQUIRE(c)         \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static void on_change(void *arg, uint32_t sku, uint32_t win_index) {
    store_t *st = arg;
    if (win_index == 0) store_row(st, sku)->win = 0;
}

/* Uses a loaded state the way the engine would. */
static void exercise(store_t *st, tags_t *tags, windows_t *win) {
    tags_publish(tags, NULL);
    uint32_t limit = store_id_limit(st);
    REQUIRE(store_count(st) <= limit);
    const sku_row_t *rows = store_rows(st);
    for (uint32_t id = 0; id < limit && id < 64; id++) {
        if (!rows[id].live) continue;
        attr_value_t v;
        store_attr_get(st, id, "a", 1, &v);
        const char *name = store_read_name(st, id);
        uint32_t back;
        REQUIRE(name && store_read_id(st, name, strlen(name), &back) == 0 && back == id);
        (void)windows_sums(win)[rows[id].win];
    }
    windows_advance(win, windows_now(win) + 8LL * 24 * 3600 * 1000, on_change, st);
    for (uint32_t id = 0; id < limit && id < 64; id++) {
        if (!store_rows(st)[id].live) continue;
        windows_release(win, &store_row(st, id)->win);
        store_delete(st, id, NULL);
    }
    bool created;
    uint32_t id = store_upsert_id(st, "fuzz-new", 8, &created, NULL);
    store_set_dim(st, id, DIM_CATEGORY, "a/b", 3);
    store_add_free_tag(st, id, "x", 1);
    tags_publish(tags, NULL);
}

/* 1 if the snapshot loaded. */
static int load(const uint8_t *data, size_t size, unsigned flags) {
    char err[512];
    snap_reader_t *r = snap_open_buffer(data, size, flags, NULL, err, sizeof err);
    if (!r) {
        REQUIRE(err[0] != '\0');
        return 0;
    }
    int ok = 0;
    tags_t *tags = tags_new();
    store_t *st = store_new(tags);
    windows_t *win = windows_new();
    if (snapshot_read_core(r, st, tags, win, err, sizeof err) == 0) {
        uint32_t tag;
        while (snap_next_section(r, &tag) == 1) {
            uint32_t v;
            while (snap_get_u32(r, &v) == 0) {
            }
        }
        exercise(st, tags, win);
        ok = 1;
    } else {
        REQUIRE(err[0] != '\0' && strcmp(err, snap_error(r)) == 0);
    }
    snap_close(r);
    windows_free(win);
    store_free(st);
    tags_free(tags);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    log_quiet = 1;
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    if (load(copy, size, SNAP_NO_CRC)) load(copy, size, 0);
    free(copy);
    return 0;
}
