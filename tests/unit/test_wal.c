/* test_wal.c - the write-ahead log: round trip across rotated segments,
 * after_seq filtering, truncate_before, torn tails (cut and flipped byte in
 * the last record) repaired on open, a corrupt middle record refused with its
 * offset, an unknown version refused, wal_wait_durable in each fsync mode,
 * concurrent appenders, and a small throughput figure (always vs batch).
 *
 * Works in a fresh directory under $TMPDIR (or /tmp), removed at the end.
 * With WAL_SEED_DIR=DIR set, also writes valid segment files there (the seed
 * corpus of tests/fuzz/fuzz_wal.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "util.h"
#include "wal.h"

static char root[256];
static int dir_counter;

/* A new empty directory path (not created: wal_open creates it). */
static const char *new_dir(char *buf, size_t n) {
    snprintf(buf, n, "%s/w%d", root, ++dir_counter);
    return buf;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_segments(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "wal-", 4)) n++;
    closedir(d);
    return n;
}

static char *seg_name(char *buf, size_t n, const char *dir, uint64_t base) {
    snprintf(buf, n, "%s/wal-%016" PRIx64 ".log", dir, base);
    return buf;
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static void flip_byte(const char *p, long long off) {
    int fd = open(p, O_RDWR);
    unsigned char c = 0;
    if (fd < 0 || pread(fd, &c, 1, off) != 1) abort();
    c ^= 0x20;
    if (pwrite(fd, &c, 1, off) != 1) abort();
    close(fd);
}

static void cut_file(const char *p, long long len) {
    if (truncate(p, len) != 0) abort();
}

/* -- records ------------------------------------------------------------ */

static char payload_buf[8192];

static wal_record_t http_rec(uint64_t seq, uint32_t n, const char *payload) {
    return (wal_record_t){.first_seq = seq, .nevents = n, .ingest_ms = 1700000000000LL + (int64_t)seq,
                          .source_kind = WAL_SRC_HTTP, .source = "http", .source_len = 4,
                          .kafka_partition = -1, .kafka_offset = -1, .payload = payload,
                          .payload_len = (uint32_t)strlen(payload)};
}

static wal_record_t kafka_rec(uint64_t seq, uint32_t n, int32_t part, int64_t off, const char *payload) {
    wal_record_t r = http_rec(seq, n, payload);
    r.source_kind = WAL_SRC_KAFKA;
    r.source = "kafka:events";
    r.source_len = 12;
    r.kafka_partition = part;
    r.kafka_offset = off;
    return r;
}

static size_t rec_size(const wal_record_t *r) { return WAL_RECORD_HEADER + r->source_len + r->payload_len; }

/* What a replay saw. */
typedef struct seen {
    uint64_t first_seq[4096];
    uint32_t nevents[4096];
    int64_t ingest_ms[4096];
    int kind[4096];
    int32_t part[4096];
    int64_t off[4096];
    char *payload[4096];
    char *source[4096];
    size_t n;
    size_t stop_at; /* return 1 on this record (1-based); 0 = never */
} seen_t;

static int collect(void *arg, const wal_record_t *r) {
    seen_t *s = arg;
    if (s->stop_at && s->n + 1 == s->stop_at) return 1;
    if (s->n == 4096) return 2;
    s->first_seq[s->n] = r->first_seq;
    s->nevents[s->n] = r->nevents;
    s->ingest_ms[s->n] = r->ingest_ms;
    s->kind[s->n] = r->source_kind;
    s->part[s->n] = r->kafka_partition;
    s->off[s->n] = r->kafka_offset;
    s->payload[s->n] = xstrndup(r->payload, r->payload_len);
    s->source[s->n] = xstrndup(r->source, r->source_len);
    s->n++;
    return 0;
}

static void seen_reset(seen_t *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->payload[i]);
        free(s->source[i]);
    }
    memset(s, 0, sizeof *s);
}

static seen_t seen; /* big: static */

static int replay(const char *dir, uint64_t after, uint64_t *nrec, char *err, size_t errlen) {
    seen_reset(&seen);
    return wal_replay(dir, after, collect, &seen, nrec, err, errlen);
}

/* -- tests ---------------------------------------------------------------- */

static void test_crc_and_parse_helpers(void) {
    CHECK(wal_crc32c(0, "123456789", 9) == 0xE3069283u);
    const char *t = "The quick brown fox jumps over the lazy dog, repeatedly and unaligned";
    size_t n = strlen(t);
    for (size_t cut = 0; cut <= n; cut += 7)
        CHECK(wal_crc32c(wal_crc32c(0, t, cut), t + cut, n - cut) == wal_crc32c(0, t, n));
    CHECK(wal_crc32c(0, t + 1, n - 1) != wal_crc32c(0, t, n - 1));
    wal_fsync_t m;
    CHECK(wal_fsync_parse("always", &m) == 0 && m == WAL_FSYNC_ALWAYS);
    CHECK(wal_fsync_parse("batch", &m) == 0 && m == WAL_FSYNC_BATCH);
    CHECK(wal_fsync_parse("everysec", &m) == 0 && m == WAL_FSYNC_EVERYSEC);
    CHECK(wal_fsync_parse("sometimes", &m) == -1);
    CHECK(!strcmp(wal_fsync_name(WAL_FSYNC_EVERYSEC), "everysec"));

    /* buffers: empty and short headers are torn at 0, a bad magic is not */
    wal_scan_t s = {0};
    char err[256] = "";
    CHECK(wal_parse_buffer((const uint8_t *)"", 0, &s, err, sizeof err) == 0 && s.torn && s.valid_len == 0);
    CHECK(wal_parse_buffer((const uint8_t *)"POOLDW", 6, &s, err, sizeof err) == 0 && s.torn);
    CHECK(wal_parse_buffer((const uint8_t *)"NOTAWAL", 7, &s, err, sizeof err) == -1);
    CHECK(strstr(err, "bad magic") != NULL);

    /* a record whose checksums match but whose seq goes backwards is an
     * error even as the last record (not a torn write) */
    uint8_t img[32 + 2 * (48 + 4 + 2)];
    wal_encode_file_header(img, 1);
    wal_record_t a = http_rec(5, 1, "{}"), b = http_rec(4, 1, "{}");
    CHECK(wal_encode_record_header(img + 32, &a) == 0);
    memcpy(img + 32 + 48, "http{}", 6);
    CHECK(wal_encode_record_header(img + 32 + 54, &b) == 0);
    memcpy(img + 32 + 54 + 48, "http{}", 6);
    CHECK(wal_parse_buffer(img, 32 + 54, &s, err, sizeof err) == 0 && !s.torn && s.records == 1);
    CHECK(s.end_seq == 6);
    CHECK(wal_parse_buffer(img, sizeof img, &s, err, sizeof err) == -1);
    CHECK(strstr(err, "offset 86") && strstr(err, "goes backwards"));
    wal_record_t z = http_rec(7, 0, "{}");
    CHECK(wal_encode_record_header(img, &z) == -1); /* nevents 0 */
}

static void test_roundtrip(void) {
    char dir[300], err[512] = "", p[600];
    new_dir(dir, sizeof dir);
    uint64_t last = 99;
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, &last, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(count_segments(dir), 1);
    /* seqs: 1..3 | 4 | 5..9 (kafka p3 off 41) || 10 | 11..12 || 13..14 (file) */
    wal_record_t r1 = http_rec(1, 3, "{\"sku\":\"A\"}\n{\"sku\":\"B\"}\nbad line\n{\"sku\":\"C\"}\n");
    wal_record_t r2 = http_rec(4, 1, "{\"op\":\"view\",\"sku\":\"A\"}");
    wal_record_t r3 = kafka_rec(5, 5, 3, 41, "k1\nk2\nk3\nk4\nk5\n");
    CHECK(wal_append(w, &r1) == 0);
    CHECK(wal_append(w, &r2) == 0);
    CHECK(wal_append(w, &r3) == 0);
    CHECK_EQ_INT(wal_appended_seq(w), 9);
    uint64_t next = 0;
    CHECK(wal_rotate(w, &next) == 0);
    CHECK_EQ_INT(next, 10);
    CHECK_EQ_INT(wal_durable_seq(w), 9); /* rotate syncs the old segment */
    wal_record_t r4 = http_rec(10, 1, "x");
    wal_record_t r5 = http_rec(11, 2, "y\nz");
    CHECK(wal_append(w, &r4) == 0);
    CHECK(wal_append(w, &r5) == 0);
    CHECK(wal_rotate(w, &next) == 0 && next == 13);
    CHECK(wal_rotate(w, &next) == 0 && next == 13); /* nothing new: same segment */
    wal_record_t r6 = http_rec(13, 2, "f1\nf2\n");
    r6.source_kind = WAL_SRC_FILE;
    r6.source = "file:catalog.ndjson";
    r6.source_len = 19;
    CHECK(wal_append(w, &r6) == 0);
    /* refused: seq before the end, no events, kafka without offset, bad kind */
    wal_record_t bad = http_rec(14, 1, "dup");
    errno = 0;
    CHECK(wal_append(w, &bad) == -1 && errno == EINVAL);
    bad = http_rec(15, 0, "none");
    CHECK(wal_append(w, &bad) == -1 && errno == EINVAL);
    bad = kafka_rec(15, 1, 0, -1, "x");
    CHECK(wal_append(w, &bad) == -1 && errno == EINVAL);
    bad = http_rec(15, 1, "x");
    bad.source_kind = 7;
    CHECK(wal_append(w, &bad) == -1 && errno == EINVAL);
    wal_stats_t st;
    wal_stats(w, &st);
    CHECK_EQ_INT(st.appends, 6);
    CHECK_EQ_INT(st.segments, 3);
    CHECK(st.bytes == rec_size(&r1) + rec_size(&r2) + rec_size(&r3) + rec_size(&r4) + rec_size(&r5) +
                          rec_size(&r6));
    wal_close(w);
    CHECK_EQ_INT(count_segments(dir), 3);
    CHECK_EQ_INT(file_size(seg_name(p, sizeof p, dir, 1)),
                 WAL_FILE_HEADER + rec_size(&r1) + rec_size(&r2) + rec_size(&r3));

    /* replay everything, in order, fields intact */
    uint64_t nrec = 0;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    CHECK_EQ_INT(nrec, 6);
    CHECK_EQ_INT(seen.n, 6);
    if (seen.n == 6) {
        CHECK(seen.first_seq[0] == 1 && seen.nevents[0] == 3 && !strcmp(seen.payload[0], r1.payload));
        CHECK(!strcmp(seen.source[0], "http") && seen.kind[0] == WAL_SRC_HTTP);
        CHECK(seen.ingest_ms[0] == 1700000000001LL && seen.part[0] == -1 && seen.off[0] == -1);
        CHECK(seen.first_seq[2] == 5 && seen.kind[2] == WAL_SRC_KAFKA && seen.part[2] == 3 && seen.off[2] == 41);
        CHECK(!strcmp(seen.source[2], "kafka:events") && !strcmp(seen.payload[2], r3.payload));
        CHECK(seen.first_seq[3] == 10 && !strcmp(seen.payload[3], "x"));
        CHECK(seen.first_seq[5] == 13 && !strcmp(seen.source[5], "file:catalog.ndjson"));
    }
    /* after_seq: a record is replayed when any of its events is newer */
    CHECK(replay(dir, 6, &nrec, err, sizeof err) == 0);
    CHECK_EQ_INT(nrec, 4);
    CHECK(seen.n == 4 && seen.first_seq[0] == 5); /* 5..9 holds 7..9 */
    CHECK(replay(dir, 9, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 3 && seen.first_seq[0] == 10);
    CHECK(replay(dir, 11, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 2 && seen.first_seq[0] == 11);
    CHECK(replay(dir, 14, &nrec, err, sizeof err) == 0);
    CHECK_EQ_INT(nrec, 0);
    /* a callback error stops the replay */
    seen_reset(&seen);
    seen.stop_at = 2;
    CHECK(wal_replay(dir, 0, collect, &seen, &nrec, err, sizeof err) == -1);
    CHECK(strstr(err, "callback") != NULL);
    CHECK_EQ_INT(nrec, 1);
    seen.stop_at = 0;
    /* a missing directory replays nothing */
    snprintf(p, sizeof p, "%s/nope", dir);
    CHECK(wal_replay(p, 0, collect, &seen, &nrec, err, sizeof err) == 0 && nrec == 0);

    /* reopen: appends continue after the last record */
    w = wal_open(dir, WAL_FSYNC_ALWAYS, &last, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ_INT(last, 14);
    CHECK_EQ_INT(wal_durable_seq(w), 14);
    wal_record_t r7 = http_rec(20, 1, "gap is fine"); /* a gap is allowed, going back is not */
    CHECK(wal_append(w, &r7) == 0);
    wal_close(w);
    CHECK(replay(dir, 14, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 1 && seen.first_seq[0] == 20);
    CHECK_EQ_INT(count_segments(dir), 3);

    const char *seeds = getenv("WAL_SEED_DIR");
    if (seeds) {
        static const uint64_t bases[] = {1, 10, 13};
        for (int i = 0; i < 3; i++) {
            uint64_t b = bases[i];
            char dst[600], *buf;
            size_t len;
            seg_name(p, sizeof p, dir, b);
            if (!(buf = read_file(p, &len))) continue;
            snprintf(dst, sizeof dst, "%s/segment-%" PRIu64, seeds, b);
            FILE *f = fopen(dst, "wb");
            if (f) {
                fwrite(buf, 1, len, f);
                fclose(f);
            }
            free(buf);
        }
    }
}

static void test_truncate_before(void) {
    char dir[300], err[512] = "";
    new_dir(dir, sizeof dir);
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    /* segments: base 1 (seqs 1..10), 11 (11..20), 21 (21..30), 31 (31..) */
    uint64_t seq = 1, next;
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < 5; i++, seq += 2) {
            wal_record_t r = http_rec(seq, 2, "a\nb\n");
            CHECK(wal_append(w, &r) == 0);
        }
        if (s < 3) CHECK(wal_rotate(w, &next) == 0 && next == seq);
    }
    CHECK_EQ_INT(count_segments(dir), 4);
    CHECK(wal_truncate_before(w, 11) == 0); /* a snapshot holds 1..10 */
    CHECK_EQ_INT(count_segments(dir), 3);
    uint64_t nrec;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 15 && seen.first_seq[0] == 11);
    CHECK(wal_truncate_before(w, 25) == 0); /* 21..30 still needed */
    CHECK_EQ_INT(count_segments(dir), 2);
    CHECK(wal_truncate_before(w, 20) == 0); /* nothing more */
    CHECK_EQ_INT(count_segments(dir), 2);
    CHECK(wal_truncate_before(w, UINT64_MAX) == 0); /* never the current segment */
    CHECK_EQ_INT(count_segments(dir), 1);
    wal_stats_t st;
    wal_stats(w, &st);
    CHECK_EQ_INT(st.segments, 1);
    wal_record_t r = http_rec(seq, 1, "after");
    CHECK(wal_append(w, &r) == 0);
    wal_close(w);
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 6 && seen.first_seq[0] == 31 && seen.first_seq[5] == 41);
    uint64_t last;
    w = wal_open(dir, WAL_FSYNC_BATCH, &last, err, sizeof err);
    CHECK(w != NULL && last == 41);
    wal_close(w);
}

/* Writes 5 records (seqs 1..5) into a fresh log; returns their offsets. */
static void five_records(const char *dir, long long off[6]) {
    char err[256];
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err);
    if (!w) abort();
    off[0] = WAL_FILE_HEADER;
    for (int i = 0; i < 5; i++) {
        snprintf(payload_buf, sizeof payload_buf, "{\"sku\":\"S%d\",\"price\":%d}\n", i, 10 + i);
        wal_record_t r = http_rec((uint64_t)i + 1, 1, payload_buf);
        if (wal_append(w, &r) != 0) abort();
        off[i + 1] = off[i] + (long long)rec_size(&r);
    }
    wal_close(w);
}

/* After damage to the last record: replay gives 4, open truncates, a new
 * append takes seq 5. */
static void check_torn_repair(const char *dir, const long long off[6], const char *what) {
    char err[512] = "", p[600];
    seg_name(p, sizeof p, dir, 1);
    uint64_t nrec = 0, last = 0;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    if (nrec != 4) fprintf(stderr, "torn (%s): replayed %" PRIu64 ": %s\n", what, nrec, err);
    CHECK_EQ_INT(nrec, 4);
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, &last, err, sizeof err);
    CHECK(w != NULL);
    if (!w) {
        fprintf(stderr, "torn (%s): %s\n", what, err);
        return;
    }
    CHECK_EQ_INT(last, 4);
    CHECK_EQ_INT(file_size(p), off[4]);
    wal_record_t r = http_rec(5, 1, "{\"sku\":\"NEW\"}");
    CHECK(wal_append(w, &r) == 0);
    wal_close(w);
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    CHECK(seen.n == 5 && !strcmp(seen.payload[4], "{\"sku\":\"NEW\"}"));
    CHECK(seen.n == 5 && !strcmp(seen.payload[3], "{\"sku\":\"S3\",\"price\":13}\n"));
}

static void test_torn_tail(void) {
    char dir[300], p[600];
    long long off[6];
    log_info("the torn-tail warnings below are expected");

    new_dir(dir, sizeof dir); /* cut in the middle of the last record's payload */
    five_records(dir, off);
    cut_file(seg_name(p, sizeof p, dir, 1), off[5] - 7);
    check_torn_repair(dir, off, "cut payload");

    new_dir(dir, sizeof dir); /* cut inside the last record's header */
    five_records(dir, off);
    cut_file(seg_name(p, sizeof p, dir, 1), off[4] + 20);
    check_torn_repair(dir, off, "cut header");

    new_dir(dir, sizeof dir); /* flipped byte in the last record's payload */
    five_records(dir, off);
    flip_byte(seg_name(p, sizeof p, dir, 1), off[5] - 3);
    check_torn_repair(dir, off, "flip payload");

    new_dir(dir, sizeof dir); /* flipped byte in the last record's length field */
    five_records(dir, off);
    flip_byte(seg_name(p, sizeof p, dir, 1), off[4] + 9);
    check_torn_repair(dir, off, "flip length");

    /* a segment created but cut inside its file header gets a fresh header */
    new_dir(dir, sizeof dir);
    five_records(dir, off);
    char err[512] = "";
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err);
    uint64_t next = 0, last = 0;
    CHECK(w && wal_rotate(w, &next) == 0 && next == 6);
    wal_close(w);
    cut_file(seg_name(p, sizeof p, dir, 6), 11);
    w = wal_open(dir, WAL_FSYNC_BATCH, &last, err, sizeof err);
    CHECK(w != NULL);
    CHECK_EQ_INT(last, 5);
    CHECK_EQ_INT(file_size(p), WAL_FILE_HEADER);
    wal_record_t r = http_rec(6, 1, "six");
    CHECK(w && wal_append(w, &r) == 0);
    wal_close(w);
    uint64_t nrec;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0 && nrec == 6);
}

static void test_corrupt_middle(void) {
    char dir[300], p[600], err[512], want[64];
    long long off[6];
    uint64_t nrec;

    new_dir(dir, sizeof dir); /* flipped byte in record 2's payload */
    five_records(dir, off);
    flip_byte(seg_name(p, sizeof p, dir, 1), off[2] - 2);
    err[0] = '\0';
    CHECK(wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "offset %lld (", off[1]);
    CHECK(strstr(err, "wal: corrupt record at ") && strstr(err, "wal-0000000000000001.log"));
    CHECK(strstr(err, want) != NULL);
    CHECK(strstr(err, "data checksum") != NULL);
    fprintf(stderr, "expected: %s\n", err);
    err[0] = '\0';
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == -1);
    CHECK(strstr(err, want) != NULL);
    CHECK_EQ_INT(nrec, 1); /* record 1 was delivered before the error */
    CHECK_EQ_INT(file_size(p), off[5]); /* nothing was truncated */

    new_dir(dir, sizeof dir); /* flipped byte in record 3's length field */
    five_records(dir, off);
    flip_byte(seg_name(p, sizeof p, dir, 1), off[2] + 8);
    err[0] = '\0';
    CHECK(wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "offset %lld (header checksum", off[2]);
    CHECK(strstr(err, want) != NULL);

    /* the last record of a segment that is not the newest */
    new_dir(dir, sizeof dir);
    five_records(dir, off);
    wal_t *w = wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err);
    uint64_t next;
    CHECK(w && wal_rotate(w, &next) == 0);
    wal_close(w);
    flip_byte(seg_name(p, sizeof p, dir, 1), off[5] - 1);
    err[0] = '\0';
    CHECK(wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "offset %lld (", off[4]);
    CHECK(strstr(err, want) && strstr(err, "newer segments follow"));
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == -1 && strstr(err, want));
    CHECK_EQ_INT(replay(dir, 5, &nrec, err, sizeof err), 0); /* that segment is not needed */
}

static void test_version(void) {
    char dir[300], p[600], err[512] = "";
    long long off[6];
    new_dir(dir, sizeof dir);
    five_records(dir, off);
    /* rewrite the header as version 2 with a valid checksum */
    seg_name(p, sizeof p, dir, 1);
    int fd = open(p, O_RDWR);
    uint8_t h[WAL_FILE_HEADER];
    CHECK(fd >= 0 && pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h);
    h[8] = 2;
    uint32_t c = wal_crc32c(0, h, 28);
    for (int i = 0; i < 4; i++) h[28 + i] = (uint8_t)(c >> (8 * i));
    CHECK(pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h);
    close(fd);
    CHECK(wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "format version 2 is not supported (this poold reads version 1)") != NULL);
    fprintf(stderr, "expected: %s\n", err);
    uint64_t nrec;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == -1 && strstr(err, "version 2"));
    CHECK_EQ_INT(file_size(p), off[5]);
    /* a bad magic */
    fd = open(p, O_RDWR);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, 0) == 1);
    close(fd);
    CHECK(wal_open(dir, WAL_FSYNC_BATCH, NULL, err, sizeof err) == NULL && strstr(err, "bad magic"));
}

static void *sync_later(void *arg) {
    usleep(80 * 1000);
    wal_sync(arg);
    return NULL;
}

static void test_durable_modes(void) {
    char dir[300], err[512] = "";
    /* always: the appender syncs; durable right after */
    wal_t *w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_ALWAYS, NULL, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    wal_record_t r = http_rec(1, 2, "a\nb\n");
    CHECK(wal_append(w, &r) == 0);
    CHECK_EQ_INT(wal_durable_seq(w), 0);
    CHECK(wal_wait_durable(w, 2, 0) == -1 && errno == ETIMEDOUT);
    CHECK(wal_sync(w) == 0);
    CHECK_EQ_INT(wal_durable_seq(w), 2);
    CHECK(wal_wait_durable(w, 2, 0) == 0);
    wal_close(w);

    /* batch: a waiter is released by someone else's sync (the writer's) */
    w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_BATCH, NULL, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    r = http_rec(1, 1, "a");
    CHECK(wal_append(w, &r) == 0);
    uint64_t t0 = mono_ns();
    CHECK(wal_wait_durable(w, 1, 100) == -1); /* nobody syncs: times out */
    CHECK(mono_ns() - t0 >= 90000000ull);
    pthread_t th;
    pthread_create(&th, NULL, sync_later, w);
    t0 = mono_ns();
    CHECK(wal_wait_durable(w, 1, 5000) == 0);
    double waited = (double)(mono_ns() - t0) / 1e6;
    CHECK(waited >= 50 && waited < 4000);
    pthread_join(th, NULL);
    wal_close(w);

    /* everysec: durable within ~1 s with no explicit sync */
    w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_EVERYSEC, NULL, err, sizeof err);
    CHECK(w != NULL);
    if (!w) return;
    r = http_rec(1, 1, "a");
    CHECK(wal_append(w, &r) == 0);
    t0 = mono_ns();
    CHECK(wal_wait_durable(w, 1, 3000) == 0);
    waited = (double)(mono_ns() - t0) / 1e6;
    CHECK(waited <= 1500);
    wal_stats_t st;
    wal_stats(w, &st);
    CHECK(st.syncs >= 1);
    printf("everysec: durable after %.0f ms without an explicit sync\n", waited);
    wal_close(w);
}

/* -- concurrency --------------------------------------------------------- */

typedef struct shared {
    wal_t *w;
    pthread_mutex_t q;         /* the engine's queue lock */
    uint64_t next_seq;
    int per_thread;
    atomic_int stop;
    atomic_int errors;
} shared_t;

typedef struct worker {
    shared_t *sh;
    int id;
} worker_t;

static void *appender(void *arg) {
    worker_t *wk = arg;
    shared_t *sh = wk->sh;
    char buf[4096];
    for (int i = 0; i < sh->per_thread; i++) {
        /* payload "T<id> <i> " then filler up to a length that varies */
        int n = snprintf(buf, sizeof buf, "T%d %d ", wk->id, i);
        int len = n + (i * 37 + wk->id * 101) % 3000;
        for (int k = n; k < len; k++) buf[k] = (char)('a' + (k + wk->id) % 26);
        pthread_mutex_lock(&sh->q);
        wal_record_t r = http_rec(sh->next_seq, 1 + (uint32_t)(i % 3), buf);
        r.payload_len = (uint32_t)len;
        if (wal_append(sh->w, &r) != 0) sh->errors++;
        else sh->next_seq += r.nevents;
        pthread_mutex_unlock(&sh->q);
        /* a snapshot starting: rotate while the others append */
        if (wk->id == 0 && i % 100 == 50 && wal_rotate(sh->w, NULL) != 0) sh->errors++;
    }
    return NULL;
}

static void *syncer(void *arg) {
    shared_t *sh = arg;
    while (!sh->stop)
        if (wal_sync(sh->w) != 0) sh->errors++;
    return NULL;
}

static void test_concurrent(void) {
    char dir[300], err[512] = "";
    shared_t sh = {.next_seq = 1, .per_thread = 400};
    pthread_mutex_init(&sh.q, NULL);
    sh.w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_EVERYSEC, NULL, err, sizeof err);
    CHECK(sh.w != NULL);
    if (!sh.w) return;
    pthread_t th[4], sy;
    worker_t wk[4];
    pthread_create(&sy, NULL, syncer, &sh);
    for (int i = 0; i < 4; i++) {
        wk[i] = (worker_t){&sh, i};
        pthread_create(&th[i], NULL, appender, &wk[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    sh.stop = 1;
    pthread_join(sy, NULL);
    CHECK_EQ_INT(sh.errors, 0);
    wal_stats_t st;
    wal_stats(sh.w, &st);
    CHECK_EQ_INT(st.appends, 1600);
    CHECK(st.segments >= 5);
    wal_close(sh.w);

    uint64_t nrec;
    CHECK(replay(dir, 0, &nrec, err, sizeof err) == 0);
    CHECK_EQ_INT(nrec, 1600);
    int next_i[4] = {0}, bad = 0;
    uint64_t expect = 1;
    char want[4096];
    for (size_t j = 0; j < seen.n; j++) {
        int id = -1, i = -1;
        if (sscanf(seen.payload[j], "T%d %d ", &id, &i) != 2 || id < 0 || id > 3) {
            bad++;
            continue;
        }
        if (i != next_i[id]++) bad++;
        if (seen.first_seq[j] != expect) bad++;
        expect += seen.nevents[j];
        int n = snprintf(want, sizeof want, "T%d %d ", id, i);
        int len = n + (i * 37 + id * 101) % 3000;
        for (int k = n; k < len; k++) want[k] = (char)('a' + (k + id) % 26);
        want[len] = '\0';
        if (strcmp(want, seen.payload[j]) != 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(next_i[i], 400);
    pthread_mutex_destroy(&sh.q);
}

/* -- throughput ----------------------------------------------------------- */

static void *always_worker(void *arg) {
    worker_t *wk = arg;
    shared_t *sh = wk->sh;
    while (!sh->stop) {
        pthread_mutex_lock(&sh->q);
        wal_record_t r = http_rec(sh->next_seq, 1, payload_buf);
        if (wal_append(sh->w, &r) == 0) sh->next_seq++;
        pthread_mutex_unlock(&sh->q);
        if (wal_sync(sh->w) != 0) sh->errors++;
    }
    return NULL;
}

static void bench(void) {
    char dir[300], err[512];
    memset(payload_buf, 0, sizeof payload_buf);
    for (int i = 0; i < 4; i++)
        strcat(payload_buf, "{\"op\":\"order\",\"sku\":\"SKU-000123\",\"qty\":1,\"amount\":19.9}\n");
    const double secs = 0.4;
    const char *names[] = {"no sync", "always (1 thread)", "batch (sync per 64)"};
    for (int mode = 0; mode < 3; mode++) {
        wal_t *w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_BATCH, NULL, err, sizeof err);
        if (!w) return;
        uint64_t seq = 1, t0 = mono_ns(), n = 0, errors = 0;
        while (mono_ns() - t0 < (uint64_t)(secs * 1e9)) {
            for (int k = 0; k < 64; k++) {
                wal_record_t r = http_rec(seq++, 1, payload_buf);
                if (wal_append(w, &r) != 0) errors++;
                n++;
                if (mode == 1) wal_sync(w);
            }
            if (mode == 2) wal_sync(w);
        }
        double dt = (double)(mono_ns() - t0) / 1e9;
        CHECK_EQ_INT(errors, 0);
        wal_stats_t st;
        wal_stats(w, &st);
        printf("bench: %-22s %9.0f appends/s (%zu-byte payload, %" PRIu64 " syncs, %.2f ms/sync)\n",
               names[mode], (double)n / dt, strlen(payload_buf), st.syncs,
               st.syncs ? (double)st.sync_ns_total / (double)st.syncs / 1e6 : 0.0);
        wal_close(w);
    }
    /* always with 4 threads: concurrent syncs share one fdatasync */
    shared_t sh = {.next_seq = 1};
    pthread_mutex_init(&sh.q, NULL);
    sh.w = wal_open(new_dir(dir, sizeof dir), WAL_FSYNC_ALWAYS, NULL, err, sizeof err);
    if (!sh.w) return;
    pthread_t th[4];
    worker_t wk[4];
    uint64_t t0 = mono_ns();
    for (int i = 0; i < 4; i++) {
        wk[i] = (worker_t){&sh, i};
        pthread_create(&th[i], NULL, always_worker, &wk[i]);
    }
    usleep((useconds_t)(secs * 1e6));
    sh.stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    double dt = (double)(mono_ns() - t0) / 1e9;
    wal_stats_t st;
    wal_stats(sh.w, &st);
    printf("bench: %-22s %9.0f appends/s (%" PRIu64 " appends shared %" PRIu64 " syncs)\n",
           "always (4 threads)", (double)st.appends / dt, st.appends, st.syncs);
    CHECK_EQ_INT(sh.errors, 0);
    CHECK(st.syncs <= st.appends);
    wal_close(sh.w);
    pthread_mutex_destroy(&sh.q);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/test_wal.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_crc_and_parse_helpers();
    test_roundtrip();
    test_truncate_before();
    test_torn_tail();
    test_corrupt_middle();
    test_version();
    test_durable_modes();
    test_concurrent();
    bench();
    seen_reset(&seen);
    rm_rf(root);
    return check_done();
}
