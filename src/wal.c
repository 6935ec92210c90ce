/* wal.c - the write-ahead log: segment files of checksummed records; see
 * wal.h for who calls what. Owns DATA/wal/ and every file in it named
 * wal-<16 lowercase hex digits>.log (other names are ignored).
 *
 * FORMAT (version 1). All integers little-endian. CRC = CRC-32C
 * (Castagnoli, reflected polynomial 0x82F63B78, init and final xor
 * 0xFFFFFFFF; crc32c("123456789") = 0xE3069283), computed by the table-driven
 * (slicing-by-8) code below: no zlib dependency.
 *
 * A segment file is named after its base seq B (wal-%016llx.log) and is a
 * 32-byte file header followed by records, back to back, no padding:
 *   file header
 *     0   8  magic "POOLDWAL"
 *     8   4  format version (1); any other version is refused, never guessed
 *    12   4  header length (32)
 *    16   8  base seq B (= the name's): every record has first_seq >= B, and
 *            every event of the previous segment has seq < B
 *    24   4  reserved, 0
 *    28   4  CRC of bytes 0..27
 *   record (48-byte header, then source, then payload)
 *     0   4  header CRC: CRC of record bytes 4..47
 *     4   4  data CRC: CRC of the source bytes followed by the payload bytes
 *     8   4  payload_len P (<= 2^30)
 *    12   2  source_len S (<= 1024)
 *    14   1  source_kind: 0 http, 1 file, 2 kafka
 *    15   1  flags, 0
 *    16   8  first_seq F: the record holds the events F .. F+N-1
 *    24   4  nevents N (>= 1)
 *    28   4  kafka_partition (int32; >= 0 for kafka, else -1)
 *    32   8  kafka_offset (int64; last offset held, >= 0 for kafka, else -1)
 *    40   8  ingest_ms (int64): the clock the input was parsed with
 *    48   S  source name ("http", "kafka:events", "file:x.ndjson")
 *  48+S   P  payload: the raw NDJSON text as submitted
 * Records are in seq order: F >= the previous record's F+N (across segments).
 *
 * A record is valid iff both CRCs match, it lies wholly inside the file and
 * its fields are possible (a record whose CRCs match but whose fields are
 * impossible is an error wherever it is). Reading stops at the first invalid
 * record: if a valid record starts at any later offset of the same segment,
 * or a later segment exists, the log is corrupt in the middle and start-up
 * stops with "wal: corrupt record at PATH offset N (reason)"; otherwise the
 * bytes from that offset on are a torn tail (a crash during write()), which
 * wal_open cuts off with a log_warn. A new file shorter than its header is a
 * torn creation: its header is rewritten.
 *
 * Threads: one mutex (lock) guards the descriptor, the segment list, the
 * seqs and the counters; write() runs under it, fdatasync() outside it by a
 * single leader (syncing) while the others wait on cond: group commit. The
 * everysec thread only calls wal_sync(). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "util.h"
#include "wal.h"

static const uint8_t file_magic[8] = {'P', 'O', 'O', 'L', 'D', 'W', 'A', 'L'};

/* -- CRC-32C, slicing-by-8 ------------------------------------------------ */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFF];
}

static inline uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

uint32_t wal_crc32c(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = crc_tab[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w = get64(p) ^ c;
        c = crc_tab[7][w & 0xFF] ^ crc_tab[6][(w >> 8) & 0xFF] ^ crc_tab[5][(w >> 16) & 0xFF] ^
            crc_tab[4][(w >> 24) & 0xFF] ^ crc_tab[3][(w >> 32) & 0xFF] ^
            crc_tab[2][(w >> 40) & 0xFF] ^ crc_tab[1][(w >> 48) & 0xFF] ^ crc_tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = crc_tab[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* -- encoding -------------------------------------------------------------- */

int wal_fsync_parse(const char *s, wal_fsync_t *out) {
    if (!s) return -1;
    if (strcmp(s, "always") == 0) *out = WAL_FSYNC_ALWAYS;
    else if (strcmp(s, "batch") == 0) *out = WAL_FSYNC_BATCH;
    else if (strcmp(s, "everysec") == 0) *out = WAL_FSYNC_EVERYSEC;
    else return -1;
    return 0;
}

const char *wal_fsync_name(wal_fsync_t m) {
    switch (m) {
    case WAL_FSYNC_ALWAYS: return "always";
    case WAL_FSYNC_BATCH: return "batch";
    case WAL_FSYNC_EVERYSEC: return "everysec";
    }
    return "?";
}

void wal_encode_file_header(uint8_t out[WAL_FILE_HEADER], uint64_t base_seq) {
    memcpy(out, file_magic, 8);
    put32(out + 8, WAL_FORMAT_VERSION);
    put32(out + 12, WAL_FILE_HEADER);
    put64(out + 16, base_seq);
    put32(out + 24, 0);
    put32(out + 28, wal_crc32c(0, out, 28));
}

/* Why the fields of r are impossible, or NULL. */
static const char *record_fields_error(const wal_record_t *r) {
    if (r->source_kind > WAL_SRC_KAFKA) return "unknown source kind";
    if (r->source_len > WAL_MAX_SOURCE) return "source name too long";
    if (r->payload_len > WAL_MAX_PAYLOAD) return "payload too long";
    if (r->nevents == 0) return "no events";
    if (r->first_seq == 0) return "input seq 0 (input seqs start at 1)";
    if (r->first_seq > UINT64_MAX - r->nevents) return "sequence overflows";
    if (r->source_kind == WAL_SRC_KAFKA) {
        if (r->kafka_partition < 0 || r->kafka_offset < 0) return "kafka record without partition/offset";
    } else if (r->kafka_partition != -1 || r->kafka_offset != -1) {
        return "kafka partition/offset on a non-kafka record";
    }
    return NULL;
}

int wal_encode_record_header(uint8_t out[WAL_RECORD_HEADER], const wal_record_t *r) {
    if (record_fields_error(r)) return -1;
    uint32_t dcrc = wal_crc32c(0, r->source, r->source_len);
    dcrc = wal_crc32c(dcrc, r->payload, r->payload_len);
    put32(out + 4, dcrc);
    put32(out + 8, r->payload_len);
    put16(out + 12, (uint16_t)r->source_len);
    out[14] = r->source_kind;
    out[15] = 0;
    put64(out + 16, r->first_seq);
    put32(out + 24, r->nevents);
    put32(out + 28, (uint32_t)r->kafka_partition);
    put64(out + 32, (uint64_t)r->kafka_offset);
    put64(out + 40, (uint64_t)r->ingest_ms);
    put32(out, wal_crc32c(0, out + 4, WAL_RECORD_HEADER - 4));
    return 0;
}

/* -- reading ------------------------------------------------------------- */

static void decode_record_header(const uint8_t *h, wal_record_t *r) {
    r->payload_len = get32(h + 8);
    r->source_len = get16(h + 12);
    r->source_kind = h[14];
    r->first_seq = get64(h + 16);
    r->nevents = get32(h + 24);
    r->kafka_partition = (int32_t)get32(h + 28);
    r->kafka_offset = (int64_t)get64(h + 32);
    r->ingest_ms = (int64_t)get64(h + 40);
    r->source = (const char *)h + WAL_RECORD_HEADER;
    r->payload = r->source + r->source_len;
}

enum { REC_OK, REC_SOFT, REC_HARD }; /* soft: torn or corrupt; hard: always an error */

/* Checks the record at data[off..len). REC_OK fills *r and *reclen. */
static int check_record(const uint8_t *data, size_t len, size_t off, uint64_t min_seq,
                        wal_record_t *r, size_t *reclen, char *why, size_t whylen) {
    size_t avail = len - off;
    const uint8_t *h = data + off;
    if (avail < WAL_RECORD_HEADER) {
        snprintf(why, whylen, "incomplete record header, %zu of %d bytes", avail, WAL_RECORD_HEADER);
        return REC_SOFT;
    }
    if (get32(h) != wal_crc32c(0, h + 4, WAL_RECORD_HEADER - 4)) {
        snprintf(why, whylen, "header checksum mismatch");
        return REC_SOFT;
    }
    decode_record_header(h, r);
    const char *bad = h[15] ? "non-zero flags" : record_fields_error(r);
    if (bad) {
        snprintf(why, whylen, "%s", bad);
        return REC_HARD;
    }
    if (r->first_seq < min_seq) {
        snprintf(why, whylen, "seq %" PRIu64 " goes backwards, expected >= %" PRIu64, r->first_seq,
                 min_seq);
        return REC_HARD;
    }
    size_t need = (size_t)WAL_RECORD_HEADER + r->source_len + r->payload_len;
    if (need > avail) {
        snprintf(why, whylen, "incomplete record, %zu of %zu bytes", avail, need);
        return REC_SOFT;
    }
    uint32_t dcrc = wal_crc32c(0, r->source, (size_t)r->source_len + r->payload_len);
    if (dcrc != get32(h + 4)) {
        snprintf(why, whylen, "data checksum mismatch");
        return REC_SOFT;
    }
    *reclen = need;
    return REC_OK;
}

/* The offset of the first valid record after off, or 0 if none. */
static size_t find_valid_after(const uint8_t *data, size_t len, size_t off, uint64_t min_seq) {
    char why[96];
    for (size_t y = off + 1; y + WAL_RECORD_HEADER <= len; y++) {
        const uint8_t *h = data + y;
        /* cheap filters first: flags 0, known kind, sane lengths */
        if (h[15] != 0 || h[14] > WAL_SRC_KAFKA || get16(h + 12) > WAL_MAX_SOURCE ||
            get32(h + 8) > len - y)
            continue;
        wal_record_t r;
        size_t reclen;
        if (check_record(data, len, y, min_seq, &r, &reclen, why, sizeof why) == REC_OK) return y;
    }
    return 0;
}

int wal_parse_buffer(const uint8_t *data, size_t len, wal_scan_t *s, char *err, size_t errlen) {
    const char *name = s->name ? s->name : "buffer";
    s->base_seq = 0;
    s->end_seq = s->min_seq;
    s->records = s->delivered = 0;
    s->valid_len = 0;
    s->torn = 0;
    s->torn_reason[0] = '\0';
    if (len < WAL_FILE_HEADER) {
        if (len && memcmp(data, file_magic, len < 8 ? len : 8) != 0) {
            snprintf(err, errlen, "wal: %s: not a poold WAL segment (bad magic)", name);
            return -1;
        }
        s->torn = 1;
        snprintf(s->torn_reason, sizeof s->torn_reason, "incomplete file header, %zu of %d bytes",
                 len, WAL_FILE_HEADER);
        return 0;
    }
    if (memcmp(data, file_magic, 8) != 0) {
        snprintf(err, errlen, "wal: %s: not a poold WAL segment (bad magic)", name);
        return -1;
    }
    uint32_t version = get32(data + 8);
    if (version != WAL_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "wal: %s: format version %" PRIu32 " is not supported (this poold reads version %d)",
                 name, version, WAL_FORMAT_VERSION);
        return -1;
    }
    if (get32(data + 12) != WAL_FILE_HEADER || get32(data + 24) != 0 ||
        get32(data + 28) != wal_crc32c(0, data, 28)) {
        snprintf(err, errlen, "wal: corrupt file header in %s (checksum or length mismatch)", name);
        return -1;
    }
    s->base_seq = get64(data + 16);
    uint64_t expect = s->min_seq > s->base_seq ? s->min_seq : s->base_seq;
    s->end_seq = expect;
    size_t off = WAL_FILE_HEADER;
    s->valid_len = off;
    char why[96];
    while (off < len) {
        wal_record_t r;
        size_t reclen = 0;
        int rc = check_record(data, len, off, expect, &r, &reclen, why, sizeof why);
        if (rc == REC_HARD) {
            snprintf(err, errlen, "wal: corrupt record at %s offset %zu (%s)", name, off, why);
            return -1;
        }
        if (rc == REC_SOFT) {
            size_t y = find_valid_after(data, len, off, expect);
            if (y) {
                snprintf(err, errlen,
                         "wal: corrupt record at %s offset %zu (%s; a valid record follows at "
                         "offset %zu)",
                         name, off, why, y);
                return -1;
            }
            s->torn = 1;
            snprintf(s->torn_reason, sizeof s->torn_reason, "%s", why);
            return 0;
        }
        s->records++;
        if (r.first_seq + r.nevents - 1 > s->after_seq && s->fn) {
            int frc = s->fn(s->arg, &r);
            if (frc != 0) {
                snprintf(err, errlen,
                         "wal: %s offset %zu: replay stopped by the callback (rc %d) at seq %" PRIu64,
                         name, off, frc, r.first_seq);
                return -1;
            }
            s->delivered++;
        }
        expect = r.first_seq + r.nevents;
        s->end_seq = expect;
        off += reclen;
        s->valid_len = off;
    }
    return 0;
}

/* -- files ------------------------------------------------------------------ */

static void seg_path(char *buf, size_t n, const char *dir, uint64_t base) {
    snprintf(buf, n, "%s/wal-%016" PRIx64 ".log", dir, base);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Bases of the segments in dir, ascending (malloc'd). ENOENT gives 0 segments
 * when missing_ok. */
static int list_segments(const char *dir, bool missing_ok, uint64_t **out, size_t *nout,
                         char *err, size_t errlen) {
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (missing_ok && errno == ENOENT) return 0;
        snprintf(err, errlen, "wal: cannot open directory %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t n = 0, cap = 0;
    uint64_t *v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (strlen(nm) != 24 || memcmp(nm, "wal-", 4) != 0 || strcmp(nm + 20, ".log") != 0) continue;
        uint64_t base = 0;
        bool ok = true;
        for (int i = 4; i < 20 && ok; i++) {
            char c = nm[i];
            if (c >= '0' && c <= '9') base = base << 4 | (uint64_t)(c - '0');
            else if (c >= 'a' && c <= 'f') base = base << 4 | (uint64_t)(c - 'a' + 10);
            else ok = false;
        }
        if (!ok) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[n++] = base;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *nout = n;
    return 0;
}

/* Scans one segment file with wal_parse_buffer (mmap'd read-only). */
static int scan_file(const char *path, wal_scan_t *s, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "wal: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "wal: cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    const uint8_t *data = (const uint8_t *)"";
    void *map = NULL;
    if (len) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(err, errlen, "wal: cannot map %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        madvise(map, len, MADV_SEQUENTIAL);
        data = map;
    }
    close(fd);
    s->name = path;
    int rc = wal_parse_buffer(data, len, s, err, errlen);
    if (map) munmap(map, len);
    return rc;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int writev_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t k = writev(fd, iov, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        while (n > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

static int mkdir_p(const char *dir) {
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) rc = -1;
            *s = c;
            if (!c || rc) break;
        }
    }
    int e = errno;
    free(p);
    errno = e;
    return rc;
}

/* fsync()s the directory holding path (so a directory just created stays). */
static int fsync_parent(const char *path) {
    char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash) strcpy(p, ".");
    else if (slash == p) p[1] = '\0';
    else *slash = '\0';
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : fsync(fd);
    int e = errno;
    if (fd >= 0) close(fd);
    free(p);
    errno = e;
    return rc;
}

/* Creates segment `base` with its header (O_EXCL). The fd, or -1 (errno). */
static int seg_create(const char *dir, uint64_t base) {
    char path[4096];
    seg_path(path, sizeof path, dir, base);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    uint8_t h[WAL_FILE_HEADER];
    wal_encode_file_header(h, base);
    if (write_all(fd, h, sizeof h) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return -1;
    }
    return fd;
}

/* -- the writer ------------------------------------------------------------ */

struct wal {
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* durable_seq moved, syncing cleared, stop, failed */
    char *dir;
    int dirfd;
    int fd;                    /* current segment; file position = size */
    off_t size;
    wal_fsync_t mode;
    uint64_t next_seq;         /* the next record starts at or after this */
    uint64_t appended_seq;     /* last seq appended */
    uint64_t durable_seq;      /* last seq on disk */
    uint64_t *segs;            /* bases, ascending; the last is current */
    size_t nsegs, segcap;
    bool syncing;              /* a leader is in fdatasync outside the lock */
    bool dir_dirty;            /* a segment was created: fsync dirfd on next sync */
    bool stop, failed;
    bool has_thread;
    pthread_t thread;
    wal_stats_t st;
};

static void segs_push(wal_t *w, uint64_t base) {
    if (w->nsegs == w->segcap) {
        w->segcap = w->segcap ? w->segcap * 2 : 16;
        w->segs = xrealloc(w->segs, w->segcap * sizeof *w->segs);
    }
    w->segs[w->nsegs++] = base;
}

static void *everysec_main(void *arg);

/* Validates every segment, repairs the last one's torn tail; fills w->segs,
 * w->next_seq and opens w->fd. */
static int open_segments(wal_t *w, char *err, size_t errlen) {
    uint64_t *bases;
    size_t n;
    if (list_segments(w->dir, false, &bases, &n, err, errlen) < 0) return -1;
    char path[4096];
    int rc = -1;
    if (n == 0) {
        w->fd = seg_create(w->dir, 1);
        if (w->fd < 0) {
            seg_path(path, sizeof path, w->dir, 1);
            snprintf(err, errlen, "wal: cannot create %s: %s", path, strerror(errno));
            goto done;
        }
        w->size = WAL_FILE_HEADER;
        w->next_seq = 1;
        segs_push(w, 1);
        w->dir_dirty = true;
        rc = 0;
        goto done;
    }
    uint64_t end = 0;
    wal_scan_t s;
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        seg_path(path, sizeof path, w->dir, bases[i]);
        memset(&s, 0, sizeof s);
        s.min_seq = end;
        s.after_seq = UINT64_MAX;
        if (scan_file(path, &s, err, errlen) < 0) goto done;
        if (s.valid_len >= WAL_FILE_HEADER && s.base_seq != bases[i]) {
            snprintf(err, errlen, "wal: %s: header says base seq %" PRIu64 ", the name %" PRIu64,
                     path, s.base_seq, bases[i]);
            goto done;
        }
        if (bases[i] < end) {
            snprintf(err, errlen,
                     "wal: %s: base seq %" PRIu64 " overlaps the previous segment (ends at %" PRIu64 ")",
                     path, bases[i], end);
            goto done;
        }
        if (s.torn && !last) {
            snprintf(err, errlen, "wal: corrupt record at %s offset %zu (%s; newer segments follow)",
                     path, s.valid_len, s.torn_reason);
            goto done;
        }
        end = s.valid_len >= WAL_FILE_HEADER ? s.end_seq : bases[i];
        segs_push(w, bases[i]);
    }
    /* the last segment: repair, then append at its end */
    w->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "wal: cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    if (s.torn) {
        struct stat st;
        long long flen = fstat(w->fd, &st) == 0 ? (long long)st.st_size : -1;
        log_warn("wal: %s: torn tail at offset %zu (%s): %lld bytes truncated", path, s.valid_len,
                 s.torn_reason, flen - (long long)s.valid_len);
        int bad = 0;
        if (s.valid_len < WAL_FILE_HEADER) {
            uint8_t h[WAL_FILE_HEADER];
            wal_encode_file_header(h, bases[n - 1]);
            bad = ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0 ||
                  write_all(w->fd, h, sizeof h) < 0;
            s.valid_len = WAL_FILE_HEADER;
        } else {
            bad = ftruncate(w->fd, (off_t)s.valid_len) < 0;
        }
        if (bad) {
            snprintf(err, errlen, "wal: cannot truncate %s: %s", path, strerror(errno));
            goto done;
        }
    }
    if (fdatasync(w->fd) < 0 || lseek(w->fd, (off_t)s.valid_len, SEEK_SET) < 0) {
        snprintf(err, errlen, "wal: cannot sync %s: %s", path, strerror(errno));
        goto done;
    }
    w->size = (off_t)s.valid_len;
    w->next_seq = end ? end : 1;
    rc = 0;
done:
    free(bases);
    return rc;
}

wal_t *wal_open(const char *dir, wal_fsync_t mode, uint64_t *last_seq_out, char *err,
                size_t errlen) {
    if (mkdir_p(dir) < 0) {
        snprintf(err, errlen, "wal: cannot create directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    wal_t *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->dir = xstrdup(dir);
    w->fd = -1;
    w->mode = mode;
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        snprintf(err, errlen, "wal: cannot open directory %s: %s", dir, strerror(errno));
        wal_close(w);
        return NULL;
    }
    if (open_segments(w, err, errlen) < 0) {
        wal_close(w);
        return NULL;
    }
    if (w->dir_dirty) { /* a new log: its first segment, and dir itself in its parent */
        if (fdatasync(w->fd) < 0 || fsync(w->dirfd) < 0 || fsync_parent(dir) < 0) {
            snprintf(err, errlen, "wal: cannot sync %s: %s", dir, strerror(errno));
            wal_close(w);
            return NULL;
        }
        w->dir_dirty = false;
    }
    w->appended_seq = w->durable_seq = w->next_seq - 1;
    w->st.segments = w->nsegs;
    if (last_seq_out) *last_seq_out = w->appended_seq;
    if (mode == WAL_FSYNC_EVERYSEC) {
        if (pthread_create(&w->thread, NULL, everysec_main, w) != 0) {
            snprintf(err, errlen, "wal: cannot start the sync thread");
            wal_close(w);
            return NULL;
        }
        w->has_thread = true;
    }
    return w;
}

int wal_append(wal_t *w, const wal_record_t *r) {
    uint8_t h[WAL_RECORD_HEADER];
    if (!w || !r || wal_encode_record_header(h, r) < 0) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov[3];
    int n = 0;
    iov[n++] = (struct iovec){h, sizeof h};
    if (r->source_len) iov[n++] = (struct iovec){(void *)r->source, r->source_len};
    if (r->payload_len) iov[n++] = (struct iovec){(void *)r->payload, r->payload_len};
    size_t reclen = sizeof h + r->source_len + r->payload_len;

    pthread_mutex_lock(&w->lock);
    int e = 0;
    if (w->failed) e = EIO;
    else if (r->first_seq < w->next_seq) e = EINVAL;
    else if (writev_all(w->fd, iov, n) < 0) {
        e = errno;
        /* cut the partial record off so the next append is not behind garbage */
        if (ftruncate(w->fd, w->size) < 0 || lseek(w->fd, w->size, SEEK_SET) < 0) {
            w->failed = true;
            pthread_cond_broadcast(&w->cond);
        }
    }
    if (!e) {
        w->size += (off_t)reclen;
        w->next_seq = r->first_seq + r->nevents;
        w->appended_seq = w->next_seq - 1;
        w->st.appends++;
        w->st.bytes += reclen;
    }
    pthread_mutex_unlock(&w->lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

int wal_sync(wal_t *w) {
    pthread_mutex_lock(&w->lock);
    uint64_t target = w->appended_seq;
    int e = w->failed ? EIO : 0;
    while (!e && w->durable_seq < target) {
        if (w->failed) {
            e = EIO;
            break;
        }
        if (w->syncing) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        /* lead: everything appended so far is in fd's page cache */
        w->syncing = true;
        uint64_t upto = w->appended_seq;
        int fd = w->fd;
        bool dirsync = w->dir_dirty;
        w->dir_dirty = false;
        pthread_mutex_unlock(&w->lock);
        uint64_t t0 = mono_ns();
        int rc = fdatasync(fd);
        if (rc == 0 && dirsync) rc = fsync(w->dirfd);
        int se = errno;
        uint64_t dt = mono_ns() - t0;
        pthread_mutex_lock(&w->lock);
        w->syncing = false;
        w->st.syncs++;
        w->st.sync_ns_total += dt;
        if (rc < 0) {
            log_error("wal: fdatasync in %s failed: %s; the log is failed", w->dir, strerror(se));
            w->failed = true;
            e = se;
        } else if (upto > w->durable_seq) {
            w->durable_seq = upto;
        }
        pthread_cond_broadcast(&w->cond);
        if (e) break;
    }
    pthread_mutex_unlock(&w->lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

uint64_t wal_durable_seq(wal_t *w) {
    pthread_mutex_lock(&w->lock);
    uint64_t v = w->durable_seq;
    pthread_mutex_unlock(&w->lock);
    return v;
}

uint64_t wal_appended_seq(wal_t *w) {
    pthread_mutex_lock(&w->lock);
    uint64_t v = w->appended_seq;
    pthread_mutex_unlock(&w->lock);
    return v;
}

static void deadline_in(struct timespec *ts, long ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int wal_wait_durable(wal_t *w, uint64_t seq, int timeout_ms) {
    struct timespec dl;
    if (timeout_ms >= 0) deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&w->lock);
    int e = 0;
    while (w->durable_seq < seq) {
        if (w->failed) {
            e = EIO;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&w->cond, &w->lock);
        } else if (pthread_cond_timedwait(&w->cond, &w->lock, &dl) == ETIMEDOUT &&
                   w->durable_seq < seq) {
            e = ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

static void *everysec_main(void *arg) {
    wal_t *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec dl;
        deadline_in(&dl, 1000);
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &dl) != ETIMEDOUT) {
        }
        if (w->stop || w->failed || w->durable_seq >= w->appended_seq) continue;
        pthread_mutex_unlock(&w->lock);
        wal_sync(w);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int wal_rotate(wal_t *w, uint64_t *next_first_seq_out) {
    pthread_mutex_lock(&w->lock);
    int e = 0;
    while (w->syncing) pthread_cond_wait(&w->cond, &w->lock);
    uint64_t base = w->next_seq;
    if (w->failed) {
        e = EIO;
    } else if (base != w->segs[w->nsegs - 1]) {
        /* the old segment must be durable before its descriptor goes */
        if (w->durable_seq < w->appended_seq || w->dir_dirty) {
            uint64_t t0 = mono_ns();
            int rc = fdatasync(w->fd);
            if (rc == 0 && w->dir_dirty) rc = fsync(w->dirfd);
            w->st.syncs++;
            w->st.sync_ns_total += mono_ns() - t0;
            if (rc < 0) {
                e = errno;
                log_error("wal: fdatasync in %s failed: %s; the log is failed", w->dir, strerror(e));
                w->failed = true;
            } else {
                w->durable_seq = w->appended_seq;
                w->dir_dirty = false;
            }
            pthread_cond_broadcast(&w->cond);
        }
        int fd = e ? -1 : seg_create(w->dir, base);
        if (!e && fd < 0) e = errno;
        if (!e) {
            close(w->fd);
            w->fd = fd;
            w->size = WAL_FILE_HEADER;
            segs_push(w, base);
            w->st.segments = w->nsegs;
            w->dir_dirty = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (e) {
        errno = e;
        return -1;
    }
    if (next_first_seq_out) *next_first_seq_out = base;
    return 0;
}

int wal_truncate_before(wal_t *w, uint64_t seq) {
    pthread_mutex_lock(&w->lock);
    size_t k = 0;
    while (k + 1 < w->nsegs && w->segs[k + 1] <= seq) k++;
    uint64_t *gone = k ? xmalloc(k * sizeof *gone) : NULL;
    if (k) {
        memcpy(gone, w->segs, k * sizeof *gone);
        memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
        w->nsegs -= k;
        w->st.segments = w->nsegs;
    }
    pthread_mutex_unlock(&w->lock);
    int e = 0;
    char path[4096];
    for (size_t i = 0; i < k; i++) {
        seg_path(path, sizeof path, w->dir, gone[i]);
        if (unlink(path) < 0 && errno != ENOENT && !e) e = errno;
    }
    if (k && fsync(w->dirfd) < 0 && !e) e = errno;
    free(gone);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

void wal_close(wal_t *w) {
    if (!w) return;
    if (w->has_thread) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    if (w->fd >= 0) {
        if (wal_sync(w) < 0) log_error("wal: final sync of %s failed: %s", w->dir, strerror(errno));
        close(w->fd);
    }
    if (w->dirfd >= 0) close(w->dirfd);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->segs);
    free(w->dir);
    free(w);
}

void wal_stats(wal_t *w, wal_stats_t *out) {
    pthread_mutex_lock(&w->lock);
    *out = w->st;
    pthread_mutex_unlock(&w->lock);
}

/* -- replay ---------------------------------------------------------------- */

int wal_replay(const char *dir, uint64_t after_seq, wal_replay_fn fn, void *arg,
               uint64_t *records_out, char *err, size_t errlen) {
    uint64_t *bases;
    size_t n;
    uint64_t delivered = 0;
    if (records_out) *records_out = 0;
    if (list_segments(dir, true, &bases, &n, err, errlen) < 0) return -1;
    char path[4096];
    int rc = 0;
    uint64_t end = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool last = i + 1 == n;
        /* every event of segment i is < bases[i+1]: skip it if all are <= after_seq */
        if (!last && bases[i + 1] > 0 && bases[i + 1] - 1 <= after_seq) continue;
        seg_path(path, sizeof path, dir, bases[i]);
        if (bases[i] < end) {
            snprintf(err, errlen,
                     "wal: %s: base seq %" PRIu64 " overlaps the previous segment (ends at %" PRIu64 ")",
                     path, bases[i], end);
            rc = -1;
            break;
        }
        wal_scan_t s;
        memset(&s, 0, sizeof s);
        s.min_seq = end;
        s.after_seq = after_seq;
        s.fn = fn;
        s.arg = arg;
        rc = scan_file(path, &s, err, errlen);
        delivered += s.delivered;
        if (rc < 0) break;
        if (s.valid_len >= WAL_FILE_HEADER && s.base_seq != bases[i]) {
            snprintf(err, errlen, "wal: %s: header says base seq %" PRIu64 ", the name %" PRIu64,
                     path, s.base_seq, bases[i]);
            rc = -1;
        } else if (s.torn && !last) {
            snprintf(err, errlen, "wal: corrupt record at %s offset %zu (%s; newer segments follow)",
                     path, s.valid_len, s.torn_reason);
            rc = -1;
        } else if (s.torn) {
            log_warn("wal: %s: torn tail at offset %zu (%s): replay stops there", path, s.valid_len,
                     s.torn_reason);
        }
        end = s.valid_len >= WAL_FILE_HEADER ? s.end_seq : bases[i];
    }
    free(bases);
    if (records_out) *records_out = delivered;
    return rc;
}
