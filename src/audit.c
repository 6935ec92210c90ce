/* audit.c - append-only JSON-lines audit log; see audit.h.
 *
 * Owns the log's descriptor (O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0600) and
 * its counters. A record is built with jansson (escaping is jansson's), then
 * written with a single write() under a->lock and synced with fdatasync.
 * Callers: any thread (HTTP handlers after a rule change, the writer after a
 * snapshot, main on a reload). Fields are caller strings copied into the
 * record; nothing is retained after audit_write returns. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "audit.h"
#include "util.h"

struct audit {
    pthread_mutex_t lock; /* guards the write + sync and the counters */
    int fd;
    uint64_t written, errors;
    char *path;
};

audit_t *audit_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open audit log %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)))
        log_warn("%s: audit log is accessible to other users (mode %04o)", path,
                 (unsigned)(st.st_mode & 07777));
    audit_t *a = xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->fd = fd;
    a->path = xstrdup(path);
    return a;
}

void audit_close(audit_t *a) {
    if (!a) return;
    close(a->fd);
    pthread_mutex_destroy(&a->lock);
    free(a->path);
    free(a);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* A JSON string for s (null for NULL), cut at AUDIT_MAX_FIELD bytes, with
 * invalid UTF-8 bytes replaced by U+FFFD. */
static json_t *audit_str(const char *s) {
    if (!s) return json_null();
    size_t n = strnlen(s, AUDIT_MAX_FIELD);
    json_t *j = json_stringn(s, n);
    if (j) return j;
    const unsigned char *u = (const unsigned char *)s;
    char *out = xmalloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k) {
            memcpy(out + o, u + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(out, o);
    free(out);
    return j ? j : json_string("");
}

static void iso_now(char *buf, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void audit_write(audit_t *a, const char *who, const char *remote_addr, const char *action,
                 const char *target, const char *detail) {
    if (!a) return;
    char ts[40];
    iso_now(ts, sizeof ts);
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "who", audit_str(who));
    json_object_set_new(o, "addr", audit_str(remote_addr));
    json_object_set_new(o, "action", audit_str(action));
    json_object_set_new(o, "target", audit_str(target));
    json_object_set_new(o, "detail", audit_str(detail));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        pthread_mutex_lock(&a->lock);
        a->errors++;
        pthread_mutex_unlock(&a->lock);
        log_error("%s: cannot encode an audit record", a->path);
        return;
    }
    size_t len = strlen(text);
    text[len++] = '\n'; /* replaces the NUL: the record is text[0..len) */
    pthread_mutex_lock(&a->lock);
    size_t off = 0;
    int e = 0;
    while (off < len) {
        ssize_t r = write(a->fd, text + off, len - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            e = r < 0 ? errno : EIO;
            break;
        }
        off += (size_t)r; /* a short write (disk full) is finished, not interleaved */
    }
    if (!e && fdatasync(a->fd) < 0 && errno != EINVAL) e = errno;
    if (e) a->errors++;
    else a->written++;
    pthread_mutex_unlock(&a->lock);
    if (e) log_error("%s: audit record not written: %s", a->path, strerror(e));
    free(text);
}

void audit_stats(audit_t *a, uint64_t *written, uint64_t *errors) {
    uint64_t w = 0, er = 0;
    if (a) {
        pthread_mutex_lock(&a->lock);
        w = a->written;
        er = a->errors;
        pthread_mutex_unlock(&a->lock);
    }
    if (written) *written = w;
    if (errors) *errors = er;
}
