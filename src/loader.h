/* loader.h - bulk NDJSON file loading into the engine (serve --load, demo).
 *
 * Reads each file in large chunks cut at line boundaries, parses them on the
 * calling thread (engine_submit) while the writer applies the previous
 * chunk, and defers pool evaluation until the last file is in
 * (ENGINE_DEFER_EVAL ... ENGINE_END_BULK), so a million-SKU catalog is
 * evaluated once, in full, with bitmap prefilters. Progress (lines, rate,
 * rejects) is logged every two seconds. Any thread except the writer. */
#ifndef POOLD_LOADER_H
#define POOLD_LOADER_H

#include <signal.h>
#include <stdint.h>
#include "engine.h"

typedef struct load_totals {
    uint64_t lines, accepted, rejected, bytes;
    double seconds;
} load_totals_t;

/* Loads the files in order, then ends the bulk phase. 0, or -1 with err
 * (unreadable file: the files before it stay loaded). Stops early, between
 * two chunks, once *cancel (may be NULL) is set, e.g. by SIGINT. */
int loader_load_files(engine_t *e, const char *const *paths, size_t n, load_totals_t *tot,
                      const volatile sig_atomic_t *cancel, char *err, size_t errlen);

#endif
