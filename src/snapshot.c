/* snapshot.c - the snapshot file format, its writer and reader, and the
 * core sections (store, tags, windows); API and threading in snapshot.h.
 *
 * FORMAT, version 1. Every integer is little-endian; f64 is the IEEE-754
 * binary64 bit pattern stored as a u64; str is a u32 byte count followed by
 * that many bytes (no NUL; the readers refuse NUL bytes inside names).
 *
 * File header, 32 bytes:
 *     0   8  magic "POOLDSNP"
 *     8   4  u32 format version (1). Offsets 0-11 never change between
 *            versions: a reader refuses a newer version before reading more.
 *    12   4  u32 flags, 0 (a reader refuses bits it does not know)
 *    16   8  i64 created, ms since the Unix epoch
 *    24   4  u32 CRC-32C of bytes 0-23
 *    28   4  u32 reserved, 0
 * Sections follow back to back from offset 32, each framed as
 *    +0   4  u32 tag, four ASCII characters ("STOR" = 53 54 4F 52)
 *    +4   8  u64 payload length L
 *   +12   L  payload
 * +12+L   4  u32 CRC-32C of the payload followed by the 12 bytes at +0
 *            (payload first: the writer streams the payload and learns L
 *            at the end)
 * The last section has tag "END " and L = 8: its payload is the u64 number
 * of sections before it. The file ends right after it. A reader checks the
 * whole framing on open (a truncated file, a length running past the end,
 * missing or trailing bytes after "END " are reported there, with offsets)
 * and each section's CRC before decoding it (an error names the section and
 * its offset). CRC-32C = Castagnoli polynomial 0x1EDC6F41 (reflected
 * 0x82F63B78), initial value and final xor 0xFFFFFFFF.
 *
 * Versions: a layout change of any section bumps SNAP_FORMAT_VERSION; a
 * reader takes SNAP_FORMAT_MIN..SNAP_FORMAT_VERSION (section readers branch
 * on the version snap_open returned) and refuses the rest by name. Sections
 * the engine adds (pools, rule versions, input seq, Kafka offsets) use their
 * own tags in the same framing.
 *
 * Core sections, in this order (written by store.c, tags.c, windows.c):
 * "STOR"  u32 limit (every id < limit), u32 live count,
 *         u32 tag ids of lazmall, free_shipping, in_stock, \x01live,
 *         u32 ndims, ndims x dim: str name (dim 0 is ""), u32 tag id for
 *             market, category, brand, seller, u32 top-category tag id,
 *             u32 top dim (0xFFFFFFFF = tag not interned yet),
 *         limit x row, id 0 first, 68 bytes: f64 price, list_price,
 *             discount, rating; i32 stock, reviews; u32 market, category,
 *             top_category, brand, seller, win; u8 lazmall, free_shipping,
 *             live, reserved. A row with live = 0 is all zero; a live row
 *             is followed by str sku, u16 n, n x u32 free tag id (in the
 *             SKU's order), u32 A, A bytes of attrs JSON (A = 0: none),
 *         u32 nfree, nfree x u32 free id (the reuse stack, bottom first).
 * "TAGS"  u32 count, count x tag, id 0 first: str name, u8 has_bitmap
 *             (0: the tag never had a member), and if 1 a bitmap:
 *             u32 B, B bytes of CRoaring's portable serialization
 *             (github.com/RoaringBitmap/RoaringFormatSpec).
 * "WIND"  i64 clock (ms), u32 n (entries ever used, including entry 0),
 *         u32 free_head, u32 heap_n,
 *         (n - 1) x entry, index 1 first: u8 live, then
 *             live = 0: u32 next free entry (0 ends the free chain),
 *             live = 1: u32 sku, u32 heap position, u32 nhour, u32 nmin,
 *                 (nhour + nmin) x slot, hour slots first, each region
 *                 ascending: u32 key = (hour or minute number) << 1 | kind
 *                 (0 order, 1 behaviour), u32 qty (order) or views,
 *                 u64 gmv bits (order) or u32 clicks, u32 carts,
 *         heap_n x { u32 due minute, u32 entry } (the heap array as is).
 *         Sums are recomputed from the slots on load (windows.h semantics).
 * Entry indices, ids and tag ids are kept as they were, so sku_row_t.win,
 * the free id stack and every bitmap stay valid without remapping.
 *
 * Thread use: see snapshot.h. The writer must stay usable in a forked
 * child: no stdio, no logging, no locks; errors are formatted with
 * snprintf and strerror_r into the writer. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "snapshot.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "poold snapshots embed CRoaring's portable bitmaps in host order: little-endian hosts only"
#endif

#define HEADER_SIZE 32
#define FRAME_SIZE 12
#define MAGIC "POOLDSNP"
#define WRITER_BUF (1u << 20)

/* -- CRC-32C ---------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static int crc_hw;

__attribute__((constructor)) static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo = c ^ snap_dec_u32(p), hi = snap_dec_u32(p + 4);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_x86(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t snap_crc32c(uint32_t crc, const void *p, size_t n) {
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw) return ~crc_x86(c, p, n);
#endif
    return ~crc_sw(c, p, n);
}

static void tag_name(uint32_t tag, char out[5]) {
    for (int i = 0; i < 4; i++) {
        char ch = (char)(tag >> (8 * i));
        out[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
    }
    out[4] = '\0';
}

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* -- Writer ------------------------------------------------------------------ */

struct snap_writer {
    int fd;
    bool failed;
    bool in_section;
    uint8_t *buf;
    size_t len, cap;
    uint64_t flushed;     /* bytes already written to fd */
    uint32_t tag;         /* current section */
    uint64_t frame;       /* file offset of its frame */
    size_t crc_from;      /* buf index from which payload is not yet in crc */
    uint32_t crc;
    uint64_t nsections;
    char *path, *tmp;
    char err[512];
};

static int wfail(snap_writer_t *w, int errnum, const char *what) {
    if (!w->failed) {
        char eb[128];
        const char *es = errnum ? strerror_r(errnum, eb, sizeof eb) : "";
        snprintf(w->err, sizeof w->err, "snapshot %s: %s%s%s", w->tmp ? w->tmp : "?", what,
                 errnum ? ": " : "", es);
        w->failed = true;
    }
    return -1;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static int flush(snap_writer_t *w) {
    if (w->failed) return -1;
    if (w->in_section && w->len > w->crc_from)
        w->crc = snap_crc32c(w->crc, w->buf + w->crc_from, w->len - w->crc_from);
    if (write_all(w->fd, w->buf, w->len) != 0) return wfail(w, errno, "write");
    w->flushed += w->len;
    w->len = 0;
    w->crc_from = 0;
    return 0;
}

/* Appends bytes (payload inside a section, framing outside). */
static int emit(snap_writer_t *w, const void *p, size_t n) {
    if (w->failed) return -1;
    if (n > w->cap - w->len) {
        if (flush(w) != 0) return -1;
        if (n >= w->cap) {
            if (w->in_section) w->crc = snap_crc32c(w->crc, p, n);
            if (write_all(w->fd, p, n) != 0) return wfail(w, errno, "write");
            w->flushed += n;
            return 0;
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

static int misuse(snap_writer_t *w, const char *what) { return wfail(w, 0, what); }

snap_writer_t *snap_create(const char *path, char *err, size_t errlen) {
    snap_writer_t *w = xcalloc(1, sizeof *w);
    size_t pl = strlen(path);
    w->path = xstrdup(path);
    w->tmp = xmalloc(pl + 5);
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        char eb[128];
        if (err && errlen)
            snprintf(err, errlen, "snapshot: cannot create %s: %s", w->tmp,
                     strerror_r(errno, eb, sizeof eb));
        free(w->path);
        free(w->tmp);
        free(w);
        return NULL;
    }
    w->cap = WRITER_BUF;
    w->buf = xmalloc(w->cap);
    uint8_t h[HEADER_SIZE] = {0};
    memcpy(h, MAGIC, 8);
    snap_enc_u32(h + 8, SNAP_FORMAT_VERSION);
    snap_enc_u32(h + 12, 0);
    snap_enc_u64(h + 16, (uint64_t)wall_ms());
    snap_enc_u32(h + 24, snap_crc32c(0, h, 24));
    emit(w, h, sizeof h);
    return w;
}

static int begin_any(snap_writer_t *w, uint32_t tag) {
    if (w->failed) return -1;
    if (w->in_section) return misuse(w, "snap_begin inside a section");
    uint8_t f[FRAME_SIZE];
    snap_enc_u32(f, tag);
    snap_enc_u64(f + 4, 0); /* filled in by snap_end */
    w->frame = w->flushed + w->len;
    if (emit(w, f, sizeof f) != 0) return -1;
    w->tag = tag;
    w->in_section = true;
    w->crc = 0;
    w->crc_from = w->len;
    return 0;
}

int snap_begin(snap_writer_t *w, uint32_t tag) {
    if (tag == SNAP_TAG_END) return misuse(w, "the END section is written by snap_commit");
    return begin_any(w, tag);
}

int snap_end(snap_writer_t *w) {
    if (w->failed) return -1;
    if (!w->in_section) return misuse(w, "snap_end outside a section");
    if (w->len > w->crc_from) w->crc = snap_crc32c(w->crc, w->buf + w->crc_from, w->len - w->crc_from);
    w->crc_from = w->len;
    uint64_t plen = w->flushed + w->len - w->frame - FRAME_SIZE;
    uint8_t f[FRAME_SIZE];
    snap_enc_u32(f, w->tag);
    snap_enc_u64(f + 4, plen);
    uint32_t crc = snap_crc32c(w->crc, f, sizeof f);
    if (w->frame >= w->flushed) memcpy(w->buf + (w->frame - w->flushed), f, sizeof f);
    else if (pwrite_all(w->fd, f, sizeof f, w->frame) != 0) return wfail(w, errno, "write");
    w->in_section = false;
    uint8_t c[4];
    snap_enc_u32(c, crc);
    if (emit(w, c, 4) != 0) return -1;
    w->nsections++;
    return 0;
}

int snap_put(snap_writer_t *w, const void *p, size_t n) {
    if (!w->in_section) return misuse(w, "snap_put outside a section");
    return emit(w, p, n);
}

/* Fast path for small fixed-size values. */
static inline uint8_t *room(snap_writer_t *w, size_t n) {
    return w->in_section && !w->failed && w->cap - w->len >= n ? w->buf + w->len : NULL;
}

int snap_put_u8(snap_writer_t *w, uint8_t v) { return snap_put(w, &v, 1); }

int snap_put_u16(snap_writer_t *w, uint16_t v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return snap_put(w, b, 2);
}

int snap_put_u32(snap_writer_t *w, uint32_t v) {
    uint8_t *p = room(w, 4);
    if (p) {
        snap_enc_u32(p, v);
        w->len += 4;
        return 0;
    }
    uint8_t b[4];
    snap_enc_u32(b, v);
    return snap_put(w, b, 4);
}

int snap_put_u64(snap_writer_t *w, uint64_t v) {
    uint8_t *p = room(w, 8);
    if (p) {
        snap_enc_u64(p, v);
        w->len += 8;
        return 0;
    }
    uint8_t b[8];
    snap_enc_u64(b, v);
    return snap_put(w, b, 8);
}

int snap_put_i64(snap_writer_t *w, int64_t v) { return snap_put_u64(w, (uint64_t)v); }

int snap_put_f64(snap_writer_t *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    return snap_put_u64(w, u);
}

int snap_put_str(snap_writer_t *w, const char *s, size_t len) {
    if (len > UINT32_MAX) return misuse(w, "string longer than 4 GiB");
    if (snap_put_u32(w, (uint32_t)len) != 0) return -1;
    return len ? snap_put(w, s, len) : 0;
}

int snap_put_bitmap(snap_writer_t *w, const roaring_bitmap_t *bm) {
    if (!bm) { /* the serialization of an empty bitmap */
        uint8_t e[12];
        snap_enc_u32(e, 8);
        snap_enc_u32(e + 4, SERIAL_COOKIE_NO_RUNCONTAINER);
        snap_enc_u32(e + 8, 0);
        return snap_put(w, e, sizeof e);
    }
    size_t n = roaring_bitmap_portable_size_in_bytes(bm);
    if (n > UINT32_MAX) return misuse(w, "bitmap serialization over 4 GiB");
    if (snap_put_u32(w, (uint32_t)n) != 0) return -1;
    if (n <= w->cap) {
        if (w->cap - w->len < n && flush(w) != 0) return -1;
        if (roaring_bitmap_portable_serialize(bm, (char *)w->buf + w->len) != n)
            return misuse(w, "bitmap serialization size mismatch");
        w->len += n;
        return 0;
    }
    char *tmp = xmalloc(n);
    int rc = roaring_bitmap_portable_serialize(bm, tmp) == n ? snap_put(w, tmp, n)
                                                           : misuse(w, "bitmap serialization size mismatch");
    free(tmp);
    return rc;
}

const char *snap_writer_error(const snap_writer_t *w) { return w ? w->err : ""; }

static void writer_free(snap_writer_t *w, bool unlink_tmp) {
    if (w->fd >= 0) close(w->fd);
    if (unlink_tmp) unlink(w->tmp);
    free(w->buf);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* fsync of the directory holding path, so the rename is durable. */
static int fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int snap_commit(snap_writer_t *w, char *err, size_t errlen) {
    if (!w) {
        set_err(err, errlen, "snapshot: no writer");
        return -1;
    }
    if (w->in_section) misuse(w, "snap_commit inside a section");
    if (!w->failed && begin_any(w, SNAP_TAG_END) == 0 && snap_put_u64(w, w->nsections) == 0)
        snap_end(w);
    if (!w->failed && flush(w) == 0) {
        if (fsync(w->fd) != 0) wfail(w, errno, "fsync");
        else if (close(w->fd) != 0) wfail(w, errno, "close");
        w->fd = -1;
    }
    if (!w->failed && rename(w->tmp, w->path) != 0) wfail(w, errno, "rename to final name");
    if (w->failed) {
        set_err(err, errlen, w->err);
        writer_free(w, true);
        return -1;
    }
    int rc = 0;
    if (fsync_dir(w->path) != 0) {
        char eb[128];
        if (err && errlen)
            snprintf(err, errlen, "snapshot %s: written, but fsync of its directory failed: %s", w->path,
                     strerror_r(errno, eb, sizeof eb));
        rc = -1;
    }
    writer_free(w, false);
    return rc;
}

void snap_abort(snap_writer_t *w) {
    if (w) writer_free(w, true);
}

/* -- Reader -------------------------------------------------------------------- */

enum { RS_BETWEEN, RS_SECTION, RS_END, RS_FAILED };

struct snap_reader {
    const uint8_t *data;
    size_t size;
    void *map;          /* the mapping of a file, or NULL for a caller's buffer */
    unsigned flags;
    uint32_t version;
    int64_t created;
    int state;
    size_t pos;         /* frame of the next section */
    uint64_t nsections; /* sections handed out */
    uint32_t tag;       /* current section */
    size_t frame, cur, end;
    char name[256];
    char err[512];
};

static int rfail(snap_reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rfail(snap_reader_t *r, const char *fmt, ...) {
    if (r->state != RS_FAILED) {
        int n = snprintf(r->err, sizeof r->err, "snapshot %s: ", r->name);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
        va_end(ap);
        r->state = RS_FAILED;
    }
    return -1;
}

int snap_fail(snap_reader_t *r, const char *fmt, ...) {
    if (r->state == RS_FAILED) return -1;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->state != RS_SECTION) return rfail(r, "%s", msg);
    char t[5];
    tag_name(r->tag, t);
    return rfail(r, "section %s at offset %zu, payload byte %zu: %s", t, r->frame,
                 r->cur - r->frame - FRAME_SIZE, msg);
}

/* Header and framing checks, shared by both openers. */
static int reader_init(snap_reader_t *r) {
    const uint8_t *d = r->data;
    if (r->size < 8 || memcmp(d, MAGIC, 8) != 0)
        return rfail(r, "not a poold snapshot (no \"%s\" magic at offset 0)", MAGIC);
    if (r->size < 12) return rfail(r, "truncated header (%zu bytes)", r->size);
    r->version = snap_dec_u32(d + 8);
    if (r->version > SNAP_FORMAT_VERSION)
        return rfail(r, "snapshot format %u is newer than this poold (%u); refusing", r->version,
                     SNAP_FORMAT_VERSION);
    if (r->version < SNAP_FORMAT_MIN)
        return rfail(r, "snapshot format %u is older than this poold reads (%u to %u); refusing",
                     r->version, SNAP_FORMAT_MIN, SNAP_FORMAT_VERSION);
    if (r->size < HEADER_SIZE) return rfail(r, "truncated header (%zu bytes)", r->size);
    uint32_t hcrc = snap_crc32c(0, d, 24);
    if (!(r->flags & SNAP_NO_CRC) && hcrc != snap_dec_u32(d + 24))
        return rfail(r, "header checksum mismatch (stored 0x%08x, computed 0x%08x)",
                     snap_dec_u32(d + 24), hcrc);
    uint32_t flags = snap_dec_u32(d + 12);
    if (flags != 0) return rfail(r, "unknown header flags 0x%x; refusing", flags);
    r->created = (int64_t)snap_dec_u64(d + 16);
    /* walk the frames to the end section */
    size_t pos = HEADER_SIZE;
    uint64_t n = 0;
    for (;;) {
        if (r->size - pos < FRAME_SIZE)
            return rfail(r, "truncated: the file ends at offset %zu after %llu sections, "
                            "without an end section", r->size, (unsigned long long)n);
        uint32_t tag = snap_dec_u32(d + pos);
        uint64_t len = snap_dec_u64(d + pos + 4);
        size_t avail = r->size - pos - FRAME_SIZE;
        char t[5];
        tag_name(tag, t);
        if (avail < 4 || len > avail - 4)
            return rfail(r, "truncated: section %s at offset %zu claims %llu payload bytes, "
                            "the file has %zu bytes after its frame",
                         t, pos, (unsigned long long)len, avail);
        size_t next = pos + FRAME_SIZE + (size_t)len + 4;
        if (tag == SNAP_TAG_END) {
            if (len != 8) return rfail(r, "end section at offset %zu has length %llu, not 8", pos,
                                       (unsigned long long)len);
            if (next != r->size)
                return rfail(r, "%zu unexpected bytes after the end section (offset %zu)",
                             r->size - next, next);
            break;
        }
        pos = next;
        n++;
    }
    r->pos = HEADER_SIZE;
    r->state = RS_BETWEEN;
    return 0;
}

static snap_reader_t *reader_new(const char *name) {
    snap_reader_t *r = xcalloc(1, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

static snap_reader_t *open_finish(snap_reader_t *r, uint32_t *format_version, char *err,
                                  size_t errlen) {
    if (reader_init(r) != 0) {
        set_err(err, errlen, r->err);
        snap_close(r);
        return NULL;
    }
    if (format_version) *format_version = r->version;
    return r;
}

snap_reader_t *snap_open(const char *path, uint32_t *format_version, char *err, size_t errlen) {
    snap_reader_t *r = reader_new(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rfail(r, "cannot open: %s", strerror(errno));
    } else if (sb.st_size == 0) {
        rfail(r, "empty file");
    } else {
        r->size = (size_t)sb.st_size;
        void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) rfail(r, "cannot map %zu bytes: %s", r->size, strerror(errno));
        else r->map = m, r->data = m;
    }
    if (fd >= 0) close(fd);
    if (r->state == RS_FAILED) {
        set_err(err, errlen, r->err);
        snap_close(r);
        return NULL;
    }
    return open_finish(r, format_version, err, errlen);
}

snap_reader_t *snap_open_buffer(const void *data, size_t len, unsigned flags,
                                uint32_t *format_version, char *err, size_t errlen) {
    snap_reader_t *r = reader_new("<buffer>");
    r->data = data;
    r->size = len;
    r->flags = flags;
    return open_finish(r, format_version, err, errlen);
}

void snap_close(snap_reader_t *r) {
    if (!r) return;
    if (r->map) munmap(r->map, r->size);
    free(r);
}

const char *snap_error(const snap_reader_t *r) { return r ? r->err : ""; }
int64_t snap_created_ms(const snap_reader_t *r) { return r->created; }

int snap_next_section(snap_reader_t *r, uint32_t *tag) {
    if (r->state == RS_FAILED) return -1;
    if (r->state == RS_END) return 0;
    if (r->state == RS_SECTION) r->pos = r->end + 4;
    const uint8_t *f = r->data + r->pos; /* reader_init checked the framing */
    uint32_t t = snap_dec_u32(f);
    size_t len = (size_t)snap_dec_u64(f + 4);
    size_t payload = r->pos + FRAME_SIZE;
    char tn[5];
    tag_name(t, tn);
    r->state = RS_BETWEEN;
    if (!(r->flags & SNAP_NO_CRC)) {
        uint32_t c = snap_crc32c(snap_crc32c(0, r->data + payload, len), f, FRAME_SIZE);
        uint32_t stored = snap_dec_u32(r->data + payload + len);
        if (c != stored)
            return rfail(r, "section %s at offset %zu (%zu bytes): checksum mismatch (stored 0x%08x, "
                            "computed 0x%08x); the file is corrupt",
                         tn, r->pos, len, stored, c);
    }
    if (t == SNAP_TAG_END) {
        uint64_t n = snap_dec_u64(r->data + payload);
        if (n != r->nsections)
            return rfail(r, "end section at offset %zu counts %llu sections, the file has %llu",
                         r->pos, (unsigned long long)n, (unsigned long long)r->nsections);
        r->state = RS_END;
        return 0;
    }
    r->tag = t;
    r->frame = r->pos;
    r->cur = payload;
    r->end = payload + len;
    r->state = RS_SECTION;
    r->nsections++;
    if (tag) *tag = t;
    return 1;
}

size_t snap_remaining(const snap_reader_t *r) { return r->state == RS_SECTION ? r->end - r->cur : 0; }

int snap_section_done(snap_reader_t *r) {
    if (r->state == RS_FAILED) return -1;
    if (r->state == RS_SECTION && r->cur != r->end)
        return snap_fail(r, "%zu unexpected bytes at the end of the section", r->end - r->cur);
    return 0;
}

static const uint8_t *take(snap_reader_t *r, size_t n) {
    if (r->state != RS_SECTION) {
        if (r->state != RS_FAILED) rfail(r, "read outside a section");
        return NULL;
    }
    if (n > r->end - r->cur) {
        snap_fail(r, "a %zu-byte read runs past the end of the section (%zu bytes left)", n,
                  r->end - r->cur);
        return NULL;
    }
    const uint8_t *p = r->data + r->cur;
    r->cur += n;
    return p;
}

const void *snap_get_bytes(snap_reader_t *r, size_t n) { return take(r, n); }

int snap_get(snap_reader_t *r, void *p, size_t n) {
    const uint8_t *s = take(r, n);
    if (!s) return -1;
    if (n) memcpy(p, s, n);
    return 0;
}

int snap_get_u8(snap_reader_t *r, uint8_t *v) {
    const uint8_t *p = take(r, 1);
    if (!p) return -1;
    *v = p[0];
    return 0;
}

int snap_get_u16(snap_reader_t *r, uint16_t *v) {
    const uint8_t *p = take(r, 2);
    if (!p) return -1;
    *v = (uint16_t)(p[0] | p[1] << 8);
    return 0;
}

int snap_get_u32(snap_reader_t *r, uint32_t *v) {
    const uint8_t *p = take(r, 4);
    if (!p) return -1;
    *v = snap_dec_u32(p);
    return 0;
}

int snap_get_u64(snap_reader_t *r, uint64_t *v) {
    const uint8_t *p = take(r, 8);
    if (!p) return -1;
    *v = snap_dec_u64(p);
    return 0;
}

int snap_get_i64(snap_reader_t *r, int64_t *v) {
    uint64_t u;
    if (snap_get_u64(r, &u) != 0) return -1;
    *v = (int64_t)u;
    return 0;
}

int snap_get_f64(snap_reader_t *r, double *v) {
    const uint8_t *p = take(r, 8);
    if (!p) return -1;
    *v = snap_dec_f64(p);
    return 0;
}

const char *snap_get_str(snap_reader_t *r, size_t *len) {
    uint32_t n;
    if (snap_get_u32(r, &n) != 0) return NULL;
    const char *s = (const char *)take(r, n);
    if (s && len) *len = n;
    return s;
}

/* -- Bitmaps ---------------------------------------------------------------------
 * CRoaring 0.2.x's portable_deserialize_safe stays inside the buffer but
 * does not validate what it reads (unsorted arrays, overlapping or
 * overflowing runs, wrong cardinalities), and other CRoaring functions may
 * then write out of bounds. So the bytes are checked here first, against
 * the format as CRoaring writes it:
 *   cookie u32: 12346 (no run containers) then u32 size, or
 *               12347 | (size - 1) << 16 then ceil(size / 8) run flag bytes;
 *   size x { u16 key, u16 cardinality - 1 };
 *   size x u32 container offset (absent when runs exist and size < 4);
 *   containers: run (u16 n, n x { u16 start, u16 length - 1 }), bitset
 *   (cardinality > 4096: 1024 u64 words) or array (cardinality x u16). */

/* NULL if the serialization is well-formed with every value < limit, else
 * what is wrong (in msg). */
static const char *bitmap_check(const uint8_t *p, size_t n, uint64_t limit, uint64_t *card_out,
                                char *msg, size_t msglen) {
#define BAD(...) (snprintf(msg, msglen, __VA_ARGS__), msg)
    if (n < 4) return BAD("truncated bitmap");
    uint32_t cookie = snap_dec_u32(p), size;
    size_t off;
    const uint8_t *runs = NULL;
    if ((cookie & 0xFFFF) == SERIAL_COOKIE) {
        size = (cookie >> 16) + 1;
        off = 4;
        size_t rb = (size + 7) / 8;
        if (n - off < rb) return BAD("truncated bitmap");
        runs = p + off;
        off += rb;
    } else if (cookie == SERIAL_COOKIE_NO_RUNCONTAINER) {
        if (n < 8) return BAD("truncated bitmap");
        size = snap_dec_u32(p + 4);
        off = 8;
        if (size > 65536) return BAD("bitmap with %u containers", size);
    } else {
        return BAD("not a roaring bitmap (cookie 0x%08x)", cookie);
    }
    if ((n - off) / 4 < size) return BAD("truncated bitmap");
    const uint8_t *hdr = p + off;
    off += (size_t)size * 4;
    const uint8_t *offs = NULL;
    if (!runs || size >= NO_OFFSET_THRESHOLD) {
        if ((n - off) / 4 < size) return BAD("truncated bitmap");
        offs = p + off;
        off += (size_t)size * 4;
    }
    uint64_t total = 0, last = 0;
    long prev_key = -1;
    for (uint32_t k = 0; k < size; k++) {
        uint32_t key = (uint32_t)(hdr[4 * k] | hdr[4 * k + 1] << 8);
        uint32_t card = (uint32_t)(hdr[4 * k + 2] | hdr[4 * k + 3] << 8) + 1;
        uint32_t maxlow = 0;
        if ((long)key <= prev_key) return BAD("bitmap container keys not increasing");
        prev_key = key;
        if (offs && snap_dec_u32(offs + 4 * k) != off) return BAD("bitmap container offset wrong");
        if (runs && (runs[k / 8] >> (k % 8) & 1)) {
            if (n - off < 2) return BAD("truncated bitmap");
            uint32_t nr = (uint32_t)(p[off] | p[off + 1] << 8);
            off += 2;
            if (nr == 0 || (n - off) / 4 < nr) return BAD("bad bitmap run container");
            uint32_t c = 0;
            long prev_end = -1;
            for (uint32_t i = 0; i < nr; i++, off += 4) {
                uint32_t start = (uint32_t)(p[off] | p[off + 1] << 8);
                uint32_t len = (uint32_t)(p[off + 2] | p[off + 3] << 8);
                if ((long)start <= prev_end || start + len > 0xFFFF)
                    return BAD("bitmap runs overlap or overflow");
                c += len + 1;
                prev_end = (long)(start + len);
            }
            if (c != card) return BAD("bitmap run cardinality mismatch");
            maxlow = (uint32_t)prev_end;
        } else if (card > 4096) {
            if (n - off < 8192) return BAD("truncated bitmap");
            uint32_t c = 0;
            for (int i = 0; i < 1024; i++) {
                uint64_t word = snap_dec_u64(p + off + 8 * i);
                c += (uint32_t)__builtin_popcountll(word);
                if (word) maxlow = (uint32_t)(64 * i + 63 - __builtin_clzll(word));
            }
            if (c != card) return BAD("bitmap bitset cardinality mismatch");
            off += 8192;
        } else {
            if ((n - off) / 2 < card) return BAD("truncated bitmap");
            long prev = -1;
            for (uint32_t i = 0; i < card; i++, off += 2) {
                uint32_t v = (uint32_t)(p[off] | p[off + 1] << 8);
                if ((long)v <= prev) return BAD("bitmap array values not increasing");
                prev = v;
            }
            maxlow = (uint32_t)prev;
        }
        total += card;
        last = (uint64_t)key << 16 | maxlow;
    }
    if (off != n) return BAD("%zu unexpected bytes after the bitmap", n - off);
    if (total && last >= limit)
        return BAD("bitmap value %llu out of range (limit %llu)", (unsigned long long)last,
                   (unsigned long long)limit);
    *card_out = total;
    return NULL;
#undef BAD
}

roaring_bitmap_t *snap_get_bitmap(snap_reader_t *r, uint64_t limit) {
    uint32_t n;
    if (snap_get_u32(r, &n) != 0) return NULL;
    const uint8_t *p = take(r, n);
    if (!p) return NULL;
    char msg[160];
    uint64_t card = 0;
    const char *bad = bitmap_check(p, n, limit, &card, msg, sizeof msg);
    if (bad) {
        snap_fail(r, "%s", bad);
        return NULL;
    }
    roaring_bitmap_t *bm = roaring_bitmap_portable_deserialize_safe((const char *)p, n);
    if (!bm || roaring_bitmap_get_cardinality(bm) != card) {
        roaring_bitmap_free(bm);
        snap_fail(r, "bitmap not accepted by CRoaring");
        return NULL;
    }
    return bm;
}

/* -- Core sections -------------------------------------------------------------- */

int snapshot_write_core(snap_writer_t *w, const store_t *st, const tags_t *t, const windows_t *win) {
    if (store_snap_write(st, w) != 0) return -1;
    if (tags_snap_write(t, w) != 0) return -1;
    return windows_snap_write(win, w);
}

static int expect_section(snap_reader_t *r, uint32_t want) {
    uint32_t tag = 0;
    char w[5], g[5];
    tag_name(want, w);
    int rc = snap_next_section(r, &tag);
    if (rc < 0) return -1;
    if (rc == 0) return rfail(r, "section %s missing (end of snapshot reached)", w);
    if (tag != want) {
        tag_name(tag, g);
        return rfail(r, "section %s at offset %zu where section %s was expected", g, r->frame, w);
    }
    return 0;
}

/* Every row's windows entry belongs to it, and every entry to a row. */
static int check_windows_rows(snap_reader_t *r, const store_t *st, const windows_t *win) {
    const sku_row_t *rows = store_rows(st);
    uint32_t limit = store_id_limit(st);
    size_t with = 0;
    for (uint32_t id = 0; id < limit; id++) {
        if (!rows[id].win) continue;
        if (windows_entry_sku(win, rows[id].win) != id)
            return rfail(r, "row %u refers to windows entry %u, which is not its own", id, rows[id].win);
        with++;
    }
    if (with != windows_active(win))
        return rfail(r, "%zu windows entries, but %zu rows refer to one", windows_active(win), with);
    return 0;
}

int snapshot_read_core(snap_reader_t *r, store_t *st, tags_t *t, windows_t *win, char *err,
                       size_t errlen) {
    int rc = -1;
    if (expect_section(r, SNAP_TAG_STORE) != 0 || store_snap_read(st, r) != 0) goto done;
    if (expect_section(r, SNAP_TAG_TAGS) != 0 || tags_snap_read(t, r, store_id_limit(st)) != 0) goto done;
    if (expect_section(r, SNAP_TAG_WINDOWS) != 0 || windows_snap_read(win, r, store_id_limit(st)) != 0)
        goto done;
    char msg[384];
    if (store_snap_check(st, msg, sizeof msg) != 0) {
        rfail(r, "%s", msg);
        goto done;
    }
    if (check_windows_rows(r, st, win) != 0) goto done;
    rc = 0;
done:
    if (rc != 0) set_err(err, errlen, r->err);
    return rc;
}
