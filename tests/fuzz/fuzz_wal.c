/* fuzz_wal.c - libFuzzer target for the WAL segment reader
 * (wal_parse_buffer: the code wal_open and wal_replay run on every segment).
 *
 * Each input is parsed twice, from an exact-size malloc'd copy (so ASan sees
 * any read past the end): as is, and with every checksum recomputed along
 * the record chain (so mutations reach the field checks and the callback
 * instead of stopping at a CRC). Properties checked (a failure aborts):
 *   - -1 comes with a "wal: ..." message; 0 with valid_len <= len, torn set
 *     iff bytes remain after valid_len or the file is shorter than its
 *     header (then valid_len is 0);
 *   - every record passed to the callback lies inside the valid prefix, is
 *     in seq order, and re-encodes (wal_encode_record_header) to the exact
 *     header bytes it was read from;
 *   - the valid prefix alone parses again with the same records, not torn;
 *   - after_seq filtering delivers exactly the records holding a newer seq.
 * Seeds: tests/fuzz/corpus/wal/ (segment files written by test_wal with
 * WAL_SEED_DIR set). Run with tests/fuzz/run.sh 60 fuzz_wal. */
// fuzz-sources: src/wal.c src/util.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wal.h"

#define REQUIRE(c)         \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

typedef struct ctx {
    const uint8_t *lo, *hi;    /* the buffer */
    uint64_t prev_end;
    uint64_t lasts[2048];      /* last seq of each record, in order */
    size_t n;
} ctx_t;

static int on_record(void *arg, const wal_record_t *r) {
    ctx_t *c = arg;
    const uint8_t *h = (const uint8_t *)r->source - WAL_RECORD_HEADER;
    REQUIRE(h >= c->lo + WAL_FILE_HEADER);
    REQUIRE(r->payload == r->source + r->source_len);
    REQUIRE((const uint8_t *)r->payload + r->payload_len <= c->hi);
    REQUIRE(r->nevents >= 1 && r->source_kind <= WAL_SRC_KAFKA && r->source_len <= WAL_MAX_SOURCE);
    REQUIRE(r->first_seq >= c->prev_end);
    c->prev_end = r->first_seq + r->nevents;
    uint8_t again[WAL_RECORD_HEADER];
    REQUIRE(wal_encode_record_header(again, r) == 0);
    REQUIRE(memcmp(again, h, WAL_RECORD_HEADER) == 0);
    if (c->n < sizeof c->lasts / sizeof c->lasts[0]) c->lasts[c->n] = r->first_seq + r->nevents - 1;
    c->n++;
    return 0;
}

static void check(const uint8_t *buf, size_t len) {
    ctx_t *c = calloc(1, sizeof *c);
    c->lo = buf;
    c->hi = buf + len;
    char err[512] = "";
    wal_scan_t s = {.name = "fuzz", .fn = on_record, .arg = c};
    int rc = wal_parse_buffer(buf, len, &s, err, sizeof err);
    if (rc != 0) {
        REQUIRE(rc == -1 && strncmp(err, "wal: ", 5) == 0);
        free(c);
        return;
    }
    REQUIRE(s.valid_len <= len);
    REQUIRE(s.torn == (s.valid_len < len || len < WAL_FILE_HEADER));
    REQUIRE(s.valid_len >= WAL_FILE_HEADER || (s.torn && s.valid_len == 0 && len < WAL_FILE_HEADER));
    REQUIRE(s.records == c->n && s.delivered == c->n);
    REQUIRE(s.end_seq == (c->n ? c->prev_end : s.base_seq));
    if (s.valid_len < WAL_FILE_HEADER) {
        free(c);
        return;
    }

    /* the valid prefix on its own, and after_seq filtering on it */
    uint64_t after = c->n ? c->lasts[(c->n < 2048 ? c->n : 2048) / 2] : 0;
    size_t want = 0;
    for (size_t i = 0; i < c->n && i < 2048; i++) want += c->lasts[i] > after;
    uint8_t *pre = malloc(s.valid_len);
    memcpy(pre, buf, s.valid_len);
    ctx_t *c2 = calloc(1, sizeof *c2);
    c2->lo = pre;
    c2->hi = pre + s.valid_len;
    wal_scan_t s2 = {.fn = on_record, .arg = c2, .after_seq = after};
    REQUIRE(wal_parse_buffer(pre, s.valid_len, &s2, err, sizeof err) == 0);
    REQUIRE(!s2.torn && s2.valid_len == s.valid_len && s2.records == s.records);
    REQUIRE(s2.end_seq == s.end_seq);
    if (c->n <= 2048) REQUIRE(s2.delivered == want);
    free(c2);
    free(pre);
    free(c);
}

/* Recomputes the file header CRC and each record's CRCs along the chain. */
static void fix_checksums(uint8_t *b, size_t len) {
    if (len < WAL_FILE_HEADER) return;
    uint32_t c = wal_crc32c(0, b, 28);
    for (int i = 0; i < 4; i++) b[28 + i] = (uint8_t)(c >> (8 * i));
    size_t off = WAL_FILE_HEADER;
    while (len - off >= WAL_RECORD_HEADER) {
        uint8_t *h = b + off;
        size_t plen = (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
        size_t slen = (size_t)h[12] | (size_t)h[13] << 8;
        if (plen + slen > len - off - WAL_RECORD_HEADER) break;
        c = wal_crc32c(0, h + WAL_RECORD_HEADER, slen + plen);
        for (int i = 0; i < 4; i++) h[4 + i] = (uint8_t)(c >> (8 * i));
        c = wal_crc32c(0, h + 4, WAL_RECORD_HEADER - 4);
        for (int i = 0; i < 4; i++) h[i] = (uint8_t)(c >> (8 * i));
        off += WAL_RECORD_HEADER + slen + plen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    check(buf, size);
    fix_checksums(buf, size);
    check(buf, size);
    free(buf);
    return 0;
}
