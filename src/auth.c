/* auth.c - token file, roles, constant-time bearer check, reload; see auth.h.
 *
 * Owns: the token table (an immutable snapshot: entries with the name, the
 * role and the token bytes zero-padded to AUTH_TOKEN_MAX), the watch thread
 * and the eventfd through which auth_request_reload wakes it.
 *
 * Invariants:
 * - A published table is never modified. Readers take a reference under
 *   a->mu (held only for the pointer load and the increment) and drop it
 *   when done; the last reference frees the table and wipes its tokens.
 *   A reload builds a whole new table and swaps the pointer under a->mu.
 * - Reloads (auth_reload from any thread, the watch thread) are serialised
 *   by a->reload_mu, which also guards the stat of the last file read.
 * - auth_check compares the presented token with every entry over the full
 *   AUTH_TOKEN_MAX bytes plus the length, accumulating differences with no
 *   early exit; only a token longer than AUTH_TOKEN_MAX is refused early.
 * - No token ever reaches a log line or an error message: parse errors name
 *   the line and the problem; an unknown role is quoted only when it is
 *   shorter than a valid token could be.
 *
 * Watching: inotify on the file's directory (in-place writes end with
 * IN_CLOSE_WRITE, editors' rename-saves and symlink swaps with IN_MOVED_TO),
 * debounced by 50 ms of quiet (at most 250 ms), plus a stat() comparison of
 * (dev, ino, size, mtime, ctime) once a second when nothing happens, which
 * also covers file systems without inotify. A bad file is logged once and
 * retried only when it changes again. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include "auth.h"
#include "util.h"

#define AUTH_FILE_MAX (1u << 20) /* token files are small; refuse anything odd */
#define AUTH_DEBOUNCE_NS (50u * 1000000u)
#define AUTH_DEBOUNCE_MAX_NS (250u * 1000000u)
#define AUTH_POLL_MS 1000

typedef struct auth_entry {
    unsigned char tok[AUTH_TOKEN_MAX]; /* zero-padded */
    uint32_t tok_len;
    uint32_t line;
    unsigned perms;
    const char *role; /* static string */
    char name[AUTH_NAME_MAX + 1];
} auth_entry_t;

typedef struct auth_table {
    atomic_uint refs;
    size_t n, cap;
    auth_entry_t *e;
} auth_table_t;

struct auth {
    char *path, *dir, *base;
    pthread_mutex_t mu; /* guards cur (pointer swap and reference taking) */
    auth_table_t *cur;
    pthread_mutex_t reload_mu; /* serialises reloads; guards last_st */
    struct stat last_st;
    bool have_st;
    atomic_bool read_required;
    _Atomic uint64_t n_ok, n_missing, n_invalid, n_forbidden, n_reloads, n_reload_errors;
    int efd; /* reload requests and stop, counted by an eventfd */
    int ifd; /* inotify on dir, or -1; owned by the watch thread once started */
    atomic_bool stop;
    bool thread_started;
    pthread_t thread;
};

static const struct {
    const char *name;
    unsigned perms;
} auth_roles[] = {
    {"ingest", AUTH_PERM_READ | AUTH_PERM_INGEST},
    {"editor", AUTH_PERM_READ | AUTH_PERM_EDIT},
    {"admin", AUTH_PERM_READ | AUTH_PERM_INGEST | AUTH_PERM_EDIT | AUTH_PERM_ADMIN},
};

/* -- Table ------------------------------------------------------------- */

/* realloc that wipes the old block: token bytes must not linger in freed
 * memory. */
static void *grow_wiped(void *p, size_t old_size, size_t new_size) {
    void *q = xmalloc(new_size);
    if (p) {
        memcpy(q, p, old_size);
        explicit_bzero(p, old_size);
        free(p);
    }
    return q;
}

static void table_free(auth_table_t *t) {
    if (!t) return;
    if (t->e) explicit_bzero(t->e, t->cap * sizeof *t->e);
    free(t->e);
    free(t);
}

static void table_release(auth_table_t *t) {
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) table_free(t);
}

static auth_table_t *table_acquire(auth_t *a) {
    pthread_mutex_lock(&a->mu);
    auth_table_t *t = a->cur;
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&a->mu);
    return t;
}

static void table_swap(auth_t *a, auth_table_t *t) {
    pthread_mutex_lock(&a->mu);
    auth_table_t *old = a->cur;
    a->cur = t;
    pthread_mutex_unlock(&a->mu);
    table_release(old);
}

unsigned auth_role_perms(const char *role) {
    if (!role) return 0;
    for (size_t i = 0; i < sizeof auth_roles / sizeof auth_roles[0]; i++)
        if (strcmp(role, auth_roles[i].name) == 0) return auth_roles[i].perms;
    return 0;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static bool name_char_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '@' || c == '+' || c == '-';
}

/* Parses one line's fields into e. 0, or -1 with the problem in msg. */
static int parse_line(const char *p, const char *end, auth_entry_t *e, char *msg, size_t msglen) {
    slice_t f[4];
    int nf = 0;
    while (nf < 4) {
        while (p < end && is_space(*p)) p++;
        if (p >= end) break;
        const char *s = p;
        while (p < end && !is_space(*p)) p++;
        f[nf++] = (slice_t){s, (uint32_t)(p - s)};
    }
    if (nf == 4 && f[3].p[0] != '#') {
        snprintf(msg, msglen, "unexpected 4th field (expected: name role token)");
        return -1;
    }
    if (f[0].len > AUTH_NAME_MAX) {
        snprintf(msg, msglen, "name longer than %d characters", AUTH_NAME_MAX);
        return -1;
    }
    for (uint32_t i = 0; i < f[0].len; i++)
        if (!name_char_ok((unsigned char)f[0].p[i])) {
            snprintf(msg, msglen, "invalid name: use letters, digits and _.@+- only");
            return -1;
        }
    if (nf < 2) {
        snprintf(msg, msglen, "missing role and token (expected: name role token)");
        return -1;
    }
    if (nf < 3) {
        snprintf(msg, msglen, "missing token (expected: name role token)");
        return -1;
    }
    e->role = NULL;
    for (size_t i = 0; i < sizeof auth_roles / sizeof auth_roles[0]; i++)
        if (slice_eq_cstr(f[1], auth_roles[i].name)) {
            e->role = auth_roles[i].name;
            e->perms = auth_roles[i].perms;
        }
    if (!e->role) {
        bool quotable = f[1].len < AUTH_TOKEN_MIN; /* could not be a misplaced token */
        for (uint32_t i = 0; quotable && i < f[1].len; i++)
            if (!name_char_ok((unsigned char)f[1].p[i])) quotable = false;
        if (quotable)
            snprintf(msg, msglen, "unknown role '%.*s' (expected ingest, editor or admin)",
                     (int)f[1].len, f[1].p);
        else
            snprintf(msg, msglen, "unknown role (expected ingest, editor or admin)");
        return -1;
    }
    if (f[2].len < AUTH_TOKEN_MIN) {
        snprintf(msg, msglen, "token shorter than %d characters", AUTH_TOKEN_MIN);
        return -1;
    }
    if (f[2].len > AUTH_TOKEN_MAX) {
        snprintf(msg, msglen, "token longer than %d characters", AUTH_TOKEN_MAX);
        return -1;
    }
    for (uint32_t i = 0; i < f[2].len; i++) {
        unsigned char c = (unsigned char)f[2].p[i];
        if (c < 0x21 || c > 0x7e) {
            snprintf(msg, msglen, "token has a character outside printable ASCII");
            return -1;
        }
    }
    memcpy(e->name, f[0].p, f[0].len);
    e->name[f[0].len] = '\0';
    memset(e->tok, 0, sizeof e->tok);
    memcpy(e->tok, f[2].p, f[2].len);
    e->tok_len = f[2].len;
    return 0;
}

/* Builds a table from the file's text. NULL with "PATH:LINE: what" in err. */
static auth_table_t *table_parse(const char *path, const char *buf, size_t len, char *err,
                                 size_t errlen) {
    auth_table_t *t = xcalloc(1, sizeof *t);
    uint32_t line = 0;
    char msg[160];
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *q = p;
        p = nl ? nl + 1 : end;
        line++;
        while (q < le && is_space(*q)) q++;
        if (q == le || *q == '#') continue;
        if (memchr(q, '\0', (size_t)(le - q))) {
            snprintf(err, errlen, "%s:%u: NUL byte in line", path, line);
            goto fail;
        }
        if (t->n == t->cap) {
            size_t ncap = t->cap ? t->cap * 2 : 8;
            t->e = grow_wiped(t->e, t->cap * sizeof *t->e, ncap * sizeof *t->e);
            t->cap = ncap;
        }
        auth_entry_t *e = &t->e[t->n];
        memset(e, 0, sizeof *e);
        e->line = line;
        if (parse_line(q, le, e, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, line, msg);
            goto fail;
        }
        for (size_t i = 0; i < t->n; i++) {
            const auth_entry_t *o = &t->e[i];
            if (strcmp(o->name, e->name) == 0) {
                snprintf(err, errlen, "%s:%u: duplicate name '%s' (first on line %u)", path, line,
                         e->name, o->line);
                goto fail;
            }
            if (o->tok_len == e->tok_len && memcmp(o->tok, e->tok, e->tok_len) == 0) {
                snprintf(err, errlen, "%s:%u: duplicate token (same as '%s' on line %u)", path,
                         line, o->name, o->line);
                goto fail;
            }
        }
        t->n++;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "%s: no tokens (expected lines of: name role token)", path);
        goto fail;
    }
    atomic_init(&t->refs, 1);
    return t;
fail:
    table_free(t);
    return NULL;
}

/* Reads and parses the file. *st gets its fstat when it could be opened
 * (*have_st true), even if the content is bad. */
static auth_table_t *table_load(const char *path, struct stat *st, bool *have_st, char *err,
                                size_t errlen) {
    *have_st = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open token file: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, st) < 0) {
        snprintf(err, errlen, "%s: cannot stat token file: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    *have_st = true;
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "%s: token file is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st->st_size > (off_t)AUTH_FILE_MAX) {
        snprintf(err, errlen, "%s: token file larger than %u bytes", path, AUTH_FILE_MAX);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st->st_size + 1, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) { /* grew while we read: take at most the limit */
            if (cap > AUTH_FILE_MAX) break;
            buf = grow_wiped(buf, len, cap * 2 + 1);
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read token file: %s", path, strerror(errno));
            explicit_bzero(buf, len);
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len > AUTH_FILE_MAX) {
        snprintf(err, errlen, "%s: token file larger than %u bytes", path, AUTH_FILE_MAX);
        explicit_bzero(buf, len);
        free(buf);
        return NULL;
    }
    auth_table_t *t = table_parse(path, buf, len, err, errlen);
    explicit_bzero(buf, len);
    free(buf);
    if (t && (st->st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)))
        log_warn("%s: token file is %s by users other than its owner (mode %04o); chmod 600 it",
                 path, (st->st_mode & (S_IWGRP | S_IWOTH)) ? "writable" : "readable",
                 (unsigned)(st->st_mode & 07777));
    return t;
}

/* -- Open, reload, close --------------------------------------------------- */

auth_t *auth_open(const char *path, char *err, size_t errlen) {
    struct stat st;
    bool have_st;
    auth_table_t *t = table_load(path, &st, &have_st, err, errlen);
    if (!t) return NULL;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        snprintf(err, errlen, "%s: eventfd: %s", path, strerror(errno));
        table_free(t);
        return NULL;
    }
    auth_t *a = xcalloc(1, sizeof *a);
    a->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    if (!slash) {
        a->dir = xstrdup(".");
        a->base = xstrdup(path);
    } else {
        a->dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
        a->base = xstrdup(slash + 1);
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    a->cur = t;
    a->last_st = st;
    a->have_st = true;
    a->efd = efd;
    a->ifd = -1;
    return a;
}

int auth_reload(auth_t *a, char *err, size_t errlen) {
    char ebuf[512];
    if (!err || errlen == 0) {
        err = ebuf;
        errlen = sizeof ebuf;
    }
    if (!a) {
        snprintf(err, errlen, "no token file");
        return -1;
    }
    pthread_mutex_lock(&a->reload_mu);
    struct stat st;
    bool have_st;
    auth_table_t *t = table_load(a->path, &st, &have_st, err, errlen);
    if (have_st) {
        a->last_st = st;
        a->have_st = true;
    }
    if (!t) {
        atomic_fetch_add_explicit(&a->n_reload_errors, 1, memory_order_relaxed);
        pthread_mutex_unlock(&a->reload_mu);
        log_error("tokens not reloaded, keeping the previous %zu tokens: %s", auth_count(a), err);
        return -1;
    }
    size_t n = t->n;
    table_swap(a, t);
    atomic_fetch_add_explicit(&a->n_reloads, 1, memory_order_relaxed);
    pthread_mutex_unlock(&a->reload_mu);
    log_info("tokens reloaded (%zu tokens)", n);
    return 0;
}

/* Whether the file at a->path differs from the one last read. */
static bool file_changed(auth_t *a) {
    struct stat st;
    if (stat(a->path, &st) < 0) return false; /* gone: keep the table, wait */
    pthread_mutex_lock(&a->reload_mu);
    const struct stat *o = &a->last_st;
    bool changed = !a->have_st || st.st_dev != o->st_dev || st.st_ino != o->st_ino ||
                   st.st_size != o->st_size || st.st_mtim.tv_sec != o->st_mtim.tv_sec ||
                   st.st_mtim.tv_nsec != o->st_mtim.tv_nsec ||
                   st.st_ctim.tv_sec != o->st_ctim.tv_sec || st.st_ctim.tv_nsec != o->st_ctim.tv_nsec;
    pthread_mutex_unlock(&a->reload_mu);
    return changed;
}

/* Drains pending inotify events; *named when one is about our file. */
static void drain_inotify(auth_t *a, int ifd, bool *named, bool *other) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t r = read(ifd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if (ev->mask & IN_Q_OVERFLOW) *other = true;
            else if (ev->len && strcmp(ev->name, a->base) == 0) *named = true;
            else *other = true;
            p += sizeof *ev + ev->len;
        }
    }
}

static void *watch_main(void *arg) {
    auth_t *a = arg;
    int ifd = a->ifd;
    struct pollfd fds[2] = {{.fd = a->efd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
    nfds_t nfds = ifd >= 0 ? 2 : 1;
    bool forced = false, named = false, other = false;
    uint64_t first = 0, last = 0;
    while (!atomic_load(&a->stop)) {
        bool pending = forced || named || other;
        int n = poll(fds, nfds, pending ? (int)(AUTH_DEBOUNCE_NS / 1000000u) : AUTH_POLL_MS);
        if (n < 0 && errno != EINTR) {
            log_error("token file watch: poll: %s", strerror(errno));
            break;
        }
        uint64_t now = mono_ns();
        if (n > 0 && (fds[0].revents & POLLIN)) {
            uint64_t v;
            if (read(a->efd, &v, sizeof v) == (ssize_t)sizeof v) {
                if (atomic_load(&a->stop)) break;
                if (!pending) first = now;
                forced = pending = true;
                last = now;
            }
        }
        if (n > 0 && nfds == 2 && (fds[1].revents & POLLIN)) {
            bool nm = false, ot = false;
            drain_inotify(a, ifd, &nm, &ot);
            if (nm || ot) {
                if (!pending) first = now;
                named |= nm;
                other |= ot;
                pending = true;
                last = now;
            }
        }
        if (pending) {
            if (now - last < AUTH_DEBOUNCE_NS && now - first < AUTH_DEBOUNCE_MAX_NS) continue;
        } else if (n != 0) {
            continue;
        }
        /* Quiet after events, or the once-a-second check. */
        if (forced || named || file_changed(a)) auth_reload(a, NULL, 0);
        forced = named = other = false;
    }
    if (ifd >= 0) close(ifd);
    a->ifd = -1;
    return NULL;
}

int auth_watch_start(auth_t *a) {
    if (!a) return -1;
    if (a->thread_started) return 0;
    /* The watch is in place when this returns: no change after it is missed. */
    a->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->ifd < 0 ||
        inotify_add_watch(a->ifd, a->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB) < 0) {
        log_warn("%s: cannot watch with inotify (%s); checking the token file every second",
                 a->dir, strerror(errno));
        if (a->ifd >= 0) close(a->ifd);
        a->ifd = -1;
    }
    if (pthread_create(&a->thread, NULL, watch_main, a) != 0) {
        if (a->ifd >= 0) close(a->ifd);
        a->ifd = -1;
        return -1;
    }
    a->thread_started = true;
    return 0;
}

void auth_request_reload(auth_t *a) {
    if (!a) return;
    int saved = errno;
    uint64_t one = 1;
    ssize_t r = write(a->efd, &one, sizeof one);
    (void)r;
    errno = saved;
}

void auth_close(auth_t *a) {
    if (!a) return;
    if (a->thread_started) {
        atomic_store(&a->stop, true);
        auth_request_reload(a);
        pthread_join(a->thread, NULL);
    }
    close(a->efd);
    table_release(a->cur);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->reload_mu);
    free(a->path);
    free(a->dir);
    free(a->base);
    free(a);
}

/* -- Checking ------------------------------------------------------------ */

void auth_set_read_required(auth_t *a, bool required) {
    if (a) atomic_store(&a->read_required, required);
}

size_t auth_count(auth_t *a) {
    if (!a) return 0;
    auth_table_t *t = table_acquire(a);
    size_t n = t->n;
    table_release(t);
    return n;
}

/* Index of the entry whose token equals tok[0..AUTH_TOKEN_MAX) (zero-padded)
 * of length len, or -1. Touches every byte of every entry whatever matches. */
static long find_token_ct(const auth_table_t *t, const unsigned char *tok, uint32_t len) {
    size_t idx = 0;
    uint32_t found = 0;
    for (size_t i = 0; i < t->n; i++) {
        const auth_entry_t *e = &t->e[i];
        uint32_t d = e->tok_len ^ len;
        for (size_t k = 0; k < AUTH_TOKEN_MAX; k++) d |= (uint32_t)(e->tok[k] ^ tok[k]);
        __asm__ volatile("" : "+r"(d)); /* keep the compiler from branching on d */
        uint32_t eq = ((d | (0u - d)) >> 31) ^ 1u; /* 1 iff d == 0 */
        size_t mask = (size_t)0 - (size_t)eq;
        idx = (idx & ~mask) | (i & mask);
        found |= eq;
    }
    return found ? (long)idx : -1;
}

static void fill_out(char *name_out, size_t name_len, const char **role_out, const char *name,
                     const char *role) {
    if (name_out && name_len) snprintf(name_out, name_len, "%s", name);
    if (role_out) *role_out = role;
}

auth_result_t auth_check(auth_t *a, const char *hdr, unsigned need_perm, char *name_out,
                         size_t name_len, const char **role_out) {
    fill_out(name_out, name_len, role_out, "", NULL);
    if (!a) return AUTH_OK;
    bool open_read = (need_perm & ~(unsigned)AUTH_PERM_READ) == 0;
    if (open_read && !atomic_load_explicit(&a->read_required, memory_order_relaxed))
        return AUTH_OK; /* open reads: the header is not even looked at */
    const char *p = hdr ? hdr : "";
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t' && p[6] != '\0')) {
        atomic_fetch_add_explicit(&a->n_missing, 1, memory_order_relaxed);
        return AUTH_MISSING;
    }
    p += 6;
    while (*p == ' ' || *p == '\t') p++;
    const char *tok = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    size_t tl = (size_t)(p - tok);
    while (*p == ' ' || *p == '\t') p++;
    if (tl == 0) {
        atomic_fetch_add_explicit(&a->n_missing, 1, memory_order_relaxed);
        return AUTH_MISSING;
    }
    if (*p || tl > AUTH_TOKEN_MAX) {
        atomic_fetch_add_explicit(&a->n_invalid, 1, memory_order_relaxed);
        return AUTH_INVALID;
    }
    unsigned char buf[AUTH_TOKEN_MAX];
    memset(buf, 0, sizeof buf);
    memcpy(buf, tok, tl);
    auth_table_t *t = table_acquire(a);
    long i = find_token_ct(t, buf, (uint32_t)tl);
    explicit_bzero(buf, sizeof buf);
    auth_result_t r;
    if (i < 0) {
        r = AUTH_INVALID;
        atomic_fetch_add_explicit(&a->n_invalid, 1, memory_order_relaxed);
    } else {
        const auth_entry_t *e = &t->e[i];
        fill_out(name_out, name_len, role_out, e->name, e->role);
        if (need_perm & ~e->perms) {
            r = AUTH_FORBIDDEN;
            atomic_fetch_add_explicit(&a->n_forbidden, 1, memory_order_relaxed);
        } else {
            r = AUTH_OK;
            atomic_fetch_add_explicit(&a->n_ok, 1, memory_order_relaxed);
        }
    }
    table_release(t);
    return r;
}

const char *auth_status_text(auth_result_t r) {
    switch (r) {
    case AUTH_OK: return "ok";
    case AUTH_MISSING: return "missing bearer token";
    case AUTH_INVALID: return "invalid token";
    case AUTH_FORBIDDEN: return "role may not do this";
    }
    return "unknown";
}

const char *auth_message(auth_result_t r, const char *role, unsigned need_perm, char *buf,
                         size_t len) {
    if (!buf || !len) return "";
    if (r != AUTH_FORBIDDEN) {
        snprintf(buf, len, "%s", auth_status_text(r));
        return buf;
    }
    unsigned missing = need_perm & ~auth_role_perms(role);
    const char *what = "do this", *needs = "";
    if (missing & AUTH_PERM_ADMIN) what = "use admin endpoints", needs = " (needs role admin)";
    else if (missing & AUTH_PERM_EDIT) what = "change rules", needs = " (needs role editor or admin)";
    else if (missing & AUTH_PERM_INGEST) what = "post events", needs = " (needs role ingest or admin)";
    else if (missing & AUTH_PERM_READ) what = "read";
    snprintf(buf, len, "role %s may not %s%s", role ? role : "(none)", what, needs);
    return buf;
}

void auth_stats(auth_t *a, uint64_t *ok, uint64_t *missing, uint64_t *invalid, uint64_t *forbidden,
                uint64_t *reloads, uint64_t *reload_errors) {
#define AUTH_STAT(out, field) \
    if (out) *(out) = a ? atomic_load_explicit(&a->field, memory_order_relaxed) : 0
    AUTH_STAT(ok, n_ok);
    AUTH_STAT(missing, n_missing);
    AUTH_STAT(invalid, n_invalid);
    AUTH_STAT(forbidden, n_forbidden);
    AUTH_STAT(reloads, n_reloads);
    AUTH_STAT(reload_errors, n_reload_errors);
#undef AUTH_STAT
}
