/* rules_check.c - `poold check DIR|FILE` (rules_check.h).
 *
 * A directory is checked file by file in name order (only *.lua directly
 * inside it); a file is checked whatever its name. The pool name must equal
 * the file's base name. Each file is compiled in one private rulevm_t over
 * an empty view_roots_t (no SKUs: examples use the table-backed view), so a
 * check never needs the engine running. Errors are printed as
 * "file:line: message" ("file: message" when the line is unknown). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules_check.h"
#include "rulevm.h"
#include "util.h"

#define CHECK_MEM_LIMIT (256u << 20)

static void print_error(FILE *out, const rule_error_t *e) {
    if (e->line > 0)
        fprintf(out, "%s:%d: %s\n", e->file, e->line, e->msg);
    else
        fprintf(out, "%s: %s\n", e->file, e->msg);
}

/* The file's base name without ".lua", in buf. */
static const char *base_name(const char *path, char *buf, size_t size) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 4 && strcmp(b + n - 4, ".lua") == 0) n -= 4;
    if (n >= size) n = size - 1;
    memcpy(buf, b, n);
    buf[n] = 0;
    return buf;
}

/* 0 ok, 1 user error. */
static int check_file(rulevm_t *vm, const char *path, FILE *out) {
    rule_error_t err;
    char name[256];
    size_t len = 0;
    memset(&err, 0, sizeof err);
    char *src = read_file(path, &len);
    if (!src) {
        fprintf(out, "%s: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    rule_def_t *def = NULL;
    int rc = rulevm_compile(vm, path, base_name(path, name, sizeof name), src, len, &def, &err);
    free(src);
    if (rc == 0 && rulevm_run_examples(vm, def, &err) != 0) rc = -1;
    if (rc == 0)
        fprintf(out, "ok  %s  (pool %s, %d example%s)\n", path, def->name, def->nexamples,
                def->nexamples == 1 ? "" : "s");
    else
        print_error(out, &err);
    rulevm_release(vm, def);
    return rc == 0 ? 0 : 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rules_check_path(const char *path, FILE *out) {
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        fprintf(out, "%s: %s\n", path ? path : "(null)", strerror(errno));
        return 1;
    }
    view_roots_t roots;
    memset(&roots, 0, sizeof roots);
    rule_error_t err;
    rulevm_t *vm = rulevm_new(&roots, CHECK_MEM_LIMIT, &err);
    if (!vm) {
        fprintf(out, "internal error: %s\n", err.msg);
        return 2;
    }
    int bad = 0;
    if (!S_ISDIR(st.st_mode)) {
        bad = check_file(vm, path, out);
        rulevm_free(vm);
        return bad;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(out, "%s: %s\n", path, strerror(errno));
        rulevm_free(vm);
        return 1;
    }
    char **files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".lua") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            files = xrealloc(files, cap * sizeof *files);
        }
        size_t pl = strlen(path);
        int slash = pl > 0 && path[pl - 1] == '/';
        char *full = xmalloc(pl + l + 2);
        snprintf(full, pl + l + 2, "%s%s%s", path, slash ? "" : "/", e->d_name);
        files[n++] = full;
    }
    closedir(d);
    if (n) qsort(files, n, sizeof *files, cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct stat fs;
        if (stat(files[i], &fs) == 0 && S_ISREG(fs.st_mode)) bad |= check_file(vm, files[i], out);
        free(files[i]);
    }
    free(files);
    if (n == 0) {
        fprintf(out, "%s: no rule files (*.lua)\n", path);
        bad = 1;
    }
    rulevm_free(vm);
    return bad;
}
