/* snapshot.h - snapshot files: a framed, checksummed container of tagged
 * sections (writer and reader), and the core sections holding the store,
 * the tags and the windowed counters. The byte format is specified at the
 * top of snapshot.c.
 *
 * Writer: snap_create() opens PATH.tmp and writes the file header;
 * sections are written between snap_begin() and snap_end() with the
 * snap_put_* functions (buffered, little-endian); snap_commit() writes the
 * end section, fsyncs, renames PATH.tmp to PATH and fsyncs the directory.
 * The writer uses only malloc, write, pwrite, fsync, rename, open, close:
 * no threads, no locks, no stdio, no logging, so a forked child of the
 * multithreaded engine may run it and _exit().
 *
 * Reader: snap_open() maps the whole file read-only and checks the header
 * and the section framing (a truncated file fails here); snap_next_section()
 * verifies a section's CRC before handing it out; the snap_get_* functions
 * are bounds-checked against the section's end: reading past it is an
 * error, never undefined behaviour. The first error is kept (snap_error())
 * and every later call fails; messages name the file, the section and the
 * byte offset.
 *
 * Neither object is thread-safe; each belongs to the thread that made it.
 * Functions return 0 / a pointer on success and -1 / NULL on error. */
#ifndef POOLD_SNAPSHOT_H
#define POOLD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <roaring/roaring.h>

#include "store.h"
#include "tags.h"
#include "windows.h"

/* The format this poold writes, and the oldest it reads. */
#define SNAP_FORMAT_VERSION 1u
#define SNAP_FORMAT_MIN 1u

/* Section tags: four ASCII characters, readable in a hex dump. */
#define SNAP_TAG(a, b, c, d)                                                  \
    ((uint32_t)(uint8_t)(a) | (uint32_t)(uint8_t)(b) << 8 |                   \
     (uint32_t)(uint8_t)(c) << 16 | (uint32_t)(uint8_t)(d) << 24)
#define SNAP_TAG_STORE SNAP_TAG('S', 'T', 'O', 'R')
#define SNAP_TAG_TAGS SNAP_TAG('T', 'A', 'G', 'S')
#define SNAP_TAG_WINDOWS SNAP_TAG('W', 'I', 'N', 'D')
#define SNAP_TAG_END SNAP_TAG('E', 'N', 'D', ' ')

/* snap_open_buffer flag: do not verify section CRCs. For the fuzz target
 * only, so that mutated inputs reach the section decoders. */
#define SNAP_NO_CRC 1u

typedef struct snap_writer snap_writer_t;
typedef struct snap_reader snap_reader_t;

/* CRC-32C (Castagnoli), as used by the format: crc = 0 to start, feed
 * consecutive pieces. snap_crc32c(0, "123456789", 9) == 0xE3069283.
 * Hardware-accelerated (SSE4.2) where the CPU has it. */
uint32_t snap_crc32c(uint32_t crc, const void *p, size_t n);

/* -- Writer ---------------------------------------------------------------- */

/* Creates PATH.tmp (truncating it) and writes the file header. */
snap_writer_t *snap_create(const char *path, char *err, size_t errlen);
/* Opens a section; sections do not nest. */
int snap_begin(snap_writer_t *w, uint32_t tag);
/* Closes the section: fills in its length and appends its CRC. */
int snap_end(snap_writer_t *w);
/* Payload bytes, only inside a section. */
int snap_put(snap_writer_t *w, const void *p, size_t n);
int snap_put_u8(snap_writer_t *w, uint8_t v);
int snap_put_u16(snap_writer_t *w, uint16_t v);
int snap_put_u32(snap_writer_t *w, uint32_t v);
int snap_put_u64(snap_writer_t *w, uint64_t v);
int snap_put_i64(snap_writer_t *w, int64_t v);
int snap_put_f64(snap_writer_t *w, double v);       /* IEEE-754 bits, as u64 */
int snap_put_str(snap_writer_t *w, const char *s, size_t len); /* u32 len, bytes */
/* A bitmap: u32 byte count, then CRoaring's portable serialization. */
int snap_put_bitmap(snap_writer_t *w, const roaring_bitmap_t *bm);
/* Writes the end section, fsyncs PATH.tmp, renames it to PATH, fsyncs the
 * directory, and frees w. On any error (also an earlier one) PATH.tmp is
 * removed, PATH is left as it was, err says why, and w is freed too. */
int snap_commit(snap_writer_t *w, char *err, size_t errlen);
/* Removes PATH.tmp and frees w. NULL is accepted. */
void snap_abort(snap_writer_t *w);
/* The first error of w ("" if none). */
const char *snap_writer_error(const snap_writer_t *w);

/* -- Reader ---------------------------------------------------------------- */

/* Maps PATH and checks its header and framing. *format_version (may be
 * NULL) gets the file's format version, which section readers may use to
 * read older layouts. A newer format is refused:
 *   "snapshot format 3 is newer than this poold (1); refusing". */
snap_reader_t *snap_open(const char *path, uint32_t *format_version, char *err, size_t errlen);
/* The same over a caller-owned buffer, which must outlive the reader.
 * flags: 0 or SNAP_NO_CRC. */
snap_reader_t *snap_open_buffer(const void *data, size_t len, unsigned flags,
                                uint32_t *format_version, char *err, size_t errlen);
void snap_close(snap_reader_t *r);                /* NULL is accepted */
const char *snap_error(const snap_reader_t *r);   /* "" if none */
int64_t snap_created_ms(const snap_reader_t *r);  /* from the header */

/* Moves to the next section (skipping what is unread of the current one)
 * and checks its CRC: 1 and *tag = a section, 0 at the end section, -1 on
 * error. */
int snap_next_section(snap_reader_t *r, uint32_t *tag);
/* Unread payload bytes of the current section. */
size_t snap_remaining(const snap_reader_t *r);
/* -1 (an error naming the section) unless the whole payload was read. */
int snap_section_done(snap_reader_t *r);

int snap_get(snap_reader_t *r, void *p, size_t n);
int snap_get_u8(snap_reader_t *r, uint8_t *v);
int snap_get_u16(snap_reader_t *r, uint16_t *v);
int snap_get_u32(snap_reader_t *r, uint32_t *v);
int snap_get_u64(snap_reader_t *r, uint64_t *v);
int snap_get_i64(snap_reader_t *r, int64_t *v);
int snap_get_f64(snap_reader_t *r, double *v);
/* The next n payload bytes in place (valid until snap_close), NULL if the
 * section has fewer. */
const void *snap_get_bytes(snap_reader_t *r, size_t n);
/* A string written by snap_put_str, in place: NOT NUL-terminated, valid
 * until snap_close. NULL on error. */
const char *snap_get_str(snap_reader_t *r, size_t *len);
/* A bitmap written by snap_put_bitmap, fully validated before CRoaring sees
 * it (keys and values strictly increasing, cardinalities and offsets
 * consistent) and every value < limit. Caller frees; NULL on error. */
roaring_bitmap_t *snap_get_bitmap(snap_reader_t *r, uint64_t limit);
/* Records a decoding error for the current section (printf format; the
 * message gets the file, section and offset in front) and returns -1. */
int snap_fail(snap_reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* -- Little-endian helpers for fixed-size records ----------------------------- */

static inline void snap_enc_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline void snap_enc_u64(uint8_t *p, uint64_t v) {
    snap_enc_u32(p, (uint32_t)v);
    snap_enc_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t snap_dec_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t snap_dec_u64(const uint8_t *p) {
    return (uint64_t)snap_dec_u32(p) | (uint64_t)snap_dec_u32(p + 4) << 32;
}
static inline void snap_enc_f64(uint8_t *p, double v) {
    uint64_t u;
    __builtin_memcpy(&u, &v, 8);
    snap_enc_u64(p, u);
}
static inline double snap_dec_f64(const uint8_t *p) {
    uint64_t u = snap_dec_u64(p);
    double v;
    __builtin_memcpy(&v, &u, 8);
    return v;
}

/* -- Core sections: store, tags, windows ------------------------------------ */

/* Writes the STOR, TAGS and WIND sections (in that order). */
int snapshot_write_core(snap_writer_t *w, const store_t *st, const tags_t *t, const windows_t *win);
/* Reads the next three sections, which must be STOR, TAGS and WIND, into
 * freshly made objects (tags_new(); store_new(tags); windows_new(), nothing
 * applied yet), then cross-checks them (tag ids, the live tag, each row's
 * windows entry). On error the objects are in an unspecified but freeable
 * state: free them and start over. */
int snapshot_read_core(snap_reader_t *r, store_t *st, tags_t *t, windows_t *win, char *err,
                       size_t errlen);

#endif
