/* rulebook.c - rule versions, drafts and reload failures, persisted in the
 * data directory; see rulebook.h for the files and their format.
 *
 * Invariants: entries stay sorted by name; versions[i].version == i + 1.
 * The writer changes entries in memory; the history line of a version and
 * a draft file may be written afterwards, from the thread that waits for
 * the change (so fsyncs never stall the writer), but before the client is
 * told: a restart never forgets a version a client was told about. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rulebook.h"
#include "util.h"

struct rulebook {
    pthread_mutex_t io_lock; /* history appends from any thread */
    char *dir;          /* DATA/rules */
    char *history_path;
    int history_fd;
    rule_entry_t **entries;
    size_t n;
};

static const char *const KIND_NAMES[] = {"file", "publish", "rollback", "delete"};

const char *rule_version_kind_name(rule_version_kind_t k) {
    return (unsigned)k < 4 ? KIND_NAMES[k] : "unknown";
}

static int kind_from_name(const char *s, rule_version_kind_t *out) {
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, KIND_NAMES[i]) == 0) {
            *out = (rule_version_kind_t)i;
            return 0;
        }
    return -1;
}

int rulebook_valid_name(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* -- entries ---------------------------------------------------------------- */

static size_t find_pos(const rulebook_t *rb, const char *name, int *found) {
    size_t lo = 0, hi = rb->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(rb->entries[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = 0;
    return lo;
}

size_t rulebook_count(const rulebook_t *rb) { return rb->n; }
rule_entry_t *rulebook_at(rulebook_t *rb, size_t i) { return i < rb->n ? rb->entries[i] : NULL; }

rule_entry_t *rulebook_get(rulebook_t *rb, const char *name) {
    int found;
    size_t i = find_pos(rb, name, &found);
    return found ? rb->entries[i] : NULL;
}

rule_entry_t *rulebook_ensure(rulebook_t *rb, const char *name) {
    int found;
    size_t i = find_pos(rb, name, &found);
    if (found) return rb->entries[i];
    rule_entry_t *e = xcalloc(1, sizeof *e);
    e->name = xstrdup(name);
    rb->entries = xrealloc(rb->entries, (rb->n + 1) * sizeof *rb->entries);
    memmove(rb->entries + i + 1, rb->entries + i, (rb->n - i) * sizeof *rb->entries);
    rb->entries[i] = e;
    rb->n++;
    return e;
}

const rule_version_t *rulebook_live(const rule_entry_t *e) {
    return e && e->live ? &e->versions[e->live - 1] : NULL;
}

static void entry_free(rule_entry_t *e) {
    for (size_t i = 0; i < e->nversions; i++) {
        free(e->versions[i].author);
        free(e->versions[i].source);
    }
    free(e->versions);
    free(e->draft);
    free(e->draft_author);
    free(e->error);
    free(e->error_file);
    free(e->error_msg);
    free(e->name);
    free(e);
}

static void push_version(rule_entry_t *e, rule_version_kind_t kind, const char *author, int64_t at,
                         uint64_t size, const char *source, uint32_t from) {
    e->versions = xrealloc(e->versions, (e->nversions + 1) * sizeof *e->versions);
    rule_version_t *v = &e->versions[e->nversions++];
    v->version = (uint32_t)e->nversions;
    v->kind = kind;
    v->author = xstrdup(author ? author : "file");
    v->at = at;
    v->size = size;
    v->source = xstrdup(source ? source : "");
    v->from = from;
    e->live = kind == RV_DELETE ? 0 : v->version;
}

/* -- files -------------------------------------------------------------------- */

static int mkdir_one(const char *path) {
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int load_history(rulebook_t *rb, char *err, size_t errlen) {
    size_t len;
    char *text = read_file(rb->history_path, &len);
    if (!text) return errno == ENOENT ? 0 : -1;
    size_t lineno = 0, valid_end = 0;
    char *p = text, *end = text + len;
    int rc = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            /* A torn last line (crash while appending): that version never went live. */
            log_warn("%s: ignoring an incomplete last line (%zu bytes)", rb->history_path, (size_t)(end - p));
            break;
        }
        lineno++;
        json_error_t jerr;
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        const char *name = o ? json_string_value(json_object_get(o, "name")) : NULL;
        json_int_t version = o ? json_integer_value(json_object_get(o, "version")) : 0;
        rule_version_kind_t kind;
        if (!o || !name || !rulebook_valid_name(name) ||
            kind_from_name(json_string_value(json_object_get(o, "kind")), &kind) != 0) {
            snprintf(err, errlen, "%s:%zu: not a rule history record", rb->history_path, lineno);
            json_decref(o);
            rc = -1;
            break;
        }
        rule_entry_t *e = rulebook_ensure(rb, name);
        if ((size_t)version != e->nversions + 1) {
            snprintf(err, errlen, "%s:%zu: version %lld of %s follows version %zu", rb->history_path, lineno,
                     (long long)version, name, e->nversions);
            json_decref(o);
            rc = -1;
            break;
        }
        push_version(e, kind, json_string_value(json_object_get(o, "author")),
                     json_integer_value(json_object_get(o, "at")),
                     (uint64_t)json_integer_value(json_object_get(o, "size")),
                     json_string_value(json_object_get(o, "source")),
                     (uint32_t)json_integer_value(json_object_get(o, "from")));
        e->versions[e->nversions - 1].seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
        json_decref(o);
        p = nl + 1;
        valid_end = (size_t)(p - text);
    }
    free(text);
    if (rc == 0 && valid_end < len && truncate(rb->history_path, (off_t)valid_end) != 0)
        log_warn("%s: cannot truncate the incomplete line: %s", rb->history_path, strerror(errno));
    return rc;
}

static void load_drafts(rulebook_t *rb) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/drafts", rb->dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
        char name[80];
        if (l - 5 >= sizeof name) continue;
        memcpy(name, de->d_name, l - 5);
        name[l - 5] = '\0';
        if (!rulebook_valid_name(name)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_error_t jerr;
        json_t *o = json_load_file(path, 0, &jerr);
        const char *src = o ? json_string_value(json_object_get(o, "source")) : NULL;
        if (!src) {
            log_warn("%s: not a draft, ignored", path);
            json_decref(o);
            continue;
        }
        rule_entry_t *e = rulebook_ensure(rb, name);
        e->draft = xstrdup(src);
        const char *a = json_string_value(json_object_get(o, "author"));
        e->draft_author = xstrdup(a ? a : "anonymous");
        e->draft_at = json_integer_value(json_object_get(o, "saved_at"));
        json_decref(o);
    }
    closedir(d);
}

rulebook_t *rulebook_open(const char *data_dir, char *err, size_t errlen) {
    rulebook_t *rb = xcalloc(1, sizeof *rb);
    pthread_mutex_init(&rb->io_lock, NULL);
    rb->history_fd = -1;
    size_t n = strlen(data_dir) + 32;
    rb->dir = xmalloc(n);
    snprintf(rb->dir, n, "%s/rules", data_dir);
    rb->history_path = xmalloc(n + 16);
    snprintf(rb->history_path, n + 16, "%s/history.ndjson", rb->dir);
    char drafts[4200];
    snprintf(drafts, sizeof drafts, "%s/drafts", rb->dir);
    if (mkdir_one(rb->dir) != 0 || mkdir_one(drafts) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", drafts, strerror(errno));
        rulebook_free(rb);
        return NULL;
    }
    if (load_history(rb, err, errlen) != 0) {
        if (!*err) snprintf(err, errlen, "cannot read %s: %s", rb->history_path, strerror(errno));
        rulebook_free(rb);
        return NULL;
    }
    load_drafts(rb);
    rb->history_fd = open(rb->history_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (rb->history_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", rb->history_path, strerror(errno));
        rulebook_free(rb);
        return NULL;
    }
    return rb;
}

void rulebook_free(rulebook_t *rb) {
    if (!rb) return;
    for (size_t i = 0; i < rb->n; i++) entry_free(rb->entries[i]);
    free(rb->entries);
    if (rb->history_fd >= 0) close(rb->history_fd);
    free(rb->history_path);
    free(rb->dir);
    pthread_mutex_destroy(&rb->io_lock);
    free(rb);
}

int rulebook_add_version(rulebook_t *rb, rule_entry_t *e, rule_version_kind_t kind, const char *author,
                         int64_t at, uint64_t size, const char *source, uint32_t from, uint64_t seq,
                         char **deferred_line, char *err, size_t errlen) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(e->name));
    json_object_set_new(o, "version", json_integer((json_int_t)e->nversions + 1));
    json_object_set_new(o, "kind", json_string(rule_version_kind_name(kind)));
    json_object_set_new(o, "author", json_string(author ? author : "file"));
    json_object_set_new(o, "at", json_integer(at));
    json_object_set_new(o, "size", json_integer((json_int_t)size));
    json_object_set_new(o, "source", json_string(source ? source : ""));
    json_object_set_new(o, "from", json_integer(from));
    if (seq) json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!line) {
        snprintf(err, errlen, "cannot encode the history record (source is not valid UTF-8?)");
        return -1;
    }
    size_t len = strlen(line);
    line = xrealloc(line, len + 2);
    line[len++] = '\n';
    line[len] = '\0';
    if (deferred_line) {
        *deferred_line = line;
    } else {
        int rc = rulebook_write_line(rb, line, err, errlen);
        free(line);
        if (rc != 0) return -1;
    }
    push_version(e, kind, author, at, size, source, from);
    e->versions[e->nversions - 1].seq = seq;
    return 0;
}

int rulebook_write_line(rulebook_t *rb, const char *line, char *err, size_t errlen) {
    pthread_mutex_lock(&rb->io_lock);
    int rc = write_full(rb->history_fd, line, strlen(line)) == 0 && fdatasync(rb->history_fd) == 0 ? 0 : -1;
    pthread_mutex_unlock(&rb->io_lock);
    if (rc != 0) snprintf(err, errlen, "cannot write %s: %s", rb->history_path, strerror(errno));
    return rc;
}

void rulebook_set_draft(rulebook_t *rb, rule_entry_t *e, const char *source, const char *author, int64_t at,
                        draft_write_t *out) {
    snprintf(out->path, sizeof out->path, "%s/drafts/%s.json", rb->dir, e->name);
    out->text = NULL;
    free(e->draft);
    free(e->draft_author);
    e->draft = e->draft_author = NULL;
    e->draft_at = 0;
    if (!source) return;
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "author", json_string(author ? author : "anonymous"));
    json_object_set_new(o, "saved_at", json_integer(at));
    out->text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    e->draft = xstrdup(source);
    e->draft_author = xstrdup(author ? author : "anonymous");
    e->draft_at = at;
}

int rulebook_write_draft(draft_write_t *w, char *err, size_t errlen) {
    if (!w->path[0]) return 0;
    int rc;
    if (w->text) rc = write_file_atomic(w->path, w->text, strlen(w->text), 1);
    else rc = unlink(w->path) == 0 || errno == ENOENT ? 0 : -1;
    if (rc != 0) snprintf(err, errlen, "cannot write %s: %s", w->path, strerror(errno));
    free(w->text);
    w->text = NULL;
    w->path[0] = '\0';
    return rc;
}

void rulebook_set_error(rule_entry_t *e, const char *file, int line, const char *msg) {
    free(e->error);
    free(e->error_file);
    free(e->error_msg);
    e->error = e->error_file = e->error_msg = NULL;
    e->error_line = 0;
    if (!msg) return;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s:%d: %s", file ? file : "", line, msg);
    e->error = xstrdup(buf);
    e->error_file = xstrdup(file ? file : "");
    e->error_msg = xstrdup(msg);
    e->error_line = line;
    e->compile_failures++;
}
