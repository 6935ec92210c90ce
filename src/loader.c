/* loader.c - chunked bulk loading with progress; see loader.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loader.h"
#include "util.h"

#define CHUNK_BYTES (4u << 20)

static void progress(const char *path, const load_totals_t *t, uint64_t t0, bool final) {
    double s = (double)(mono_ns() - t0) / 1e9;
    log_info("load %s: %s%llu lines, %llu accepted, %llu rejected, %.0f lines/s, %.1f MB", path,
             final ? "done: " : "", (unsigned long long)t->lines, (unsigned long long)t->accepted,
             (unsigned long long)t->rejected, s > 0 ? (double)t->lines / s : 0.0, (double)t->bytes / 1e6);
}

static int load_one(engine_t *e, const char *path, load_totals_t *tot, const volatile sig_atomic_t *cancel,
                    char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char source[4200];
    snprintf(source, sizeof source, "file:%s", path);
    load_totals_t mine = {0};
    uint64_t t0 = mono_ns(), last = t0;
    char *carry = NULL;
    size_t carry_len = 0;
    int rc = 0;
    for (;;) {
        char *buf = xmalloc(CHUNK_BYTES + carry_len + 1);
        if (carry_len) memcpy(buf, carry, carry_len);
        free(carry);
        carry = NULL;
        size_t got = fread(buf + carry_len, 1, CHUNK_BYTES, f);
        size_t len = carry_len + got;
        carry_len = 0;
        bool eof = got < CHUNK_BYTES;
        if (ferror(f)) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            free(buf);
            rc = -1;
            break;
        }
        if (!eof) {
            size_t cut = len;
            while (cut > 0 && buf[cut - 1] != '\n') cut--;
            if (cut == 0) cut = len; /* a line longer than a chunk: the parser rejects it */
            carry_len = len - cut;
            if (carry_len) carry = xstrndup(buf + cut, carry_len);
            len = cut;
        }
        mine.bytes += len;
        ingest_report_t rep = {0};
        uint64_t base = mine.lines;
        engine_submit(e, buf, len, source, base, ENGINE_DEFER_EVAL, -1, &rep);
        mine.lines += rep.lines;
        mine.accepted += rep.accepted;
        mine.rejected += rep.rejected;
        ingest_report_free(&rep);
        if (mono_ns() - last > 2000000000ull) {
            progress(path, &mine, t0, false);
            last = mono_ns();
        }
        if (eof) break;
        if (cancel && *cancel) {
            log_warn("load %s: interrupted after %llu lines", path, (unsigned long long)mine.lines);
            break;
        }
    }
    free(carry);
    fclose(f);
    mine.seconds = (double)(mono_ns() - t0) / 1e9;
    progress(path, &mine, t0, true);
    tot->lines += mine.lines;
    tot->accepted += mine.accepted;
    tot->rejected += mine.rejected;
    tot->bytes += mine.bytes;
    return rc;
}

int loader_load_files(engine_t *e, const char *const *paths, size_t n, load_totals_t *tot,
                      const volatile sig_atomic_t *cancel, char *err, size_t errlen) {
    memset(tot, 0, sizeof *tot);
    uint64_t t0 = mono_ns();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0 && !(cancel && *cancel); i++)
        rc = load_one(e, paths[i], tot, cancel, err, errlen);
    ingest_report_t rep = {0};
    engine_submit(e, xstrdup(""), 0, "load", 0, ENGINE_DEFER_EVAL | ENGINE_END_BULK, -1, &rep);
    ingest_report_free(&rep);
    tot->seconds = (double)(mono_ns() - t0) / 1e9;
    return rc;
}
