/* util.h - small helpers shared by every module: allocation that aborts on
 * out-of-memory, the clock, logging, hashing, string slices.
 *
 * Safe from any thread. Allocation failure is not a recoverable condition in
 * poold (we bound every input instead), so x*alloc print and abort. */
#ifndef POOLD_UTIL_H
#define POOLD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte range inside a buffer someone else owns. Not NUL-terminated. */
typedef struct slice {
    const char *p;
    uint32_t len;
} slice_t;

#define SLICE_LIT(s) ((slice_t){(s), (uint32_t)(sizeof(s) - 1)})
static inline slice_t slice_cstr(const char *s);
bool slice_eq_cstr(slice_t a, const char *s);
bool slice_eq(slice_t a, slice_t b);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
char *xstrdup(const char *s);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t wall_ms(void);
/* Monotonic nanoseconds, for measuring durations. */
uint64_t mono_ns(void);

/* 64-bit hash of a byte string (wyhash-style mixing, not cryptographic). */
uint64_t hash_bytes(const void *p, size_t len);

/* Logging to stderr with a UTC timestamp and level. log_quiet suppresses
 * info lines (tests). */
extern int log_quiet;
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL + errno on
 * failure. *len_out (may be NULL) gets the size without the NUL. */
char *read_file(const char *path, size_t *len_out);
/* write(2) until all n bytes are written (EINTR retried). 0 or -1 + errno. */
int write_full(int fd, const void *p, size_t n);
/* Replaces path with text through PATH.tmp and a rename, so a reader sees
 * the old file or the new one; with sync, the file is fsync'd first (the
 * directory is not). 0 or -1 + errno (PATH.tmp removed). */
int write_file_atomic(const char *path, const void *text, size_t len, int sync);

static inline slice_t slice_cstr(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return (slice_t){s, (uint32_t)n};
}

#endif
