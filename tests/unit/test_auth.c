/* test_auth.c - token file parsing, role permissions, the bearer check,
 * reloads (direct, watched, SIGHUP-style, concurrent with checks) and the
 * audit log. Runs from the repository root (fixtures in tests/fixtures). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "audit.h"
#include "auth.h"
#include "check.h"
#include "util.h"

#define FIX "tests/fixtures/tokens/"
#define T_INGEST "ingest-0123456789abcdef"
#define T_EDITOR "editor-0123456789abcdef"
#define T_ADMIN "admin-0123456789abcdef-XYZ"

static char tmpdir[64];

static void write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) exit(2);
    fchmod(fd, mode);
    close(fd);
}

/* Writes text to a temporary file beside path and renames it over path, as
 * editors do on save. */
static void replace_file(const char *path, const char *text) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp~", path);
    write_file(tmp, text, 0600);
    if (rename(tmp, path) < 0) exit(2);
}

static char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}

/* stderr capture: everything logged between begin and end lands in a file. */
static int saved_stderr = -1;
static void capture_begin(const char *path) {
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}
static char *capture_end(const char *path) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    return read_file(path, NULL);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static auth_result_t chk(auth_t *a, const char *hdr, unsigned need) {
    return auth_check(a, hdr, need, NULL, 0, NULL);
}

/* Opens a file that must fail; checks the message has want and no token. */
static void expect_open_error(const char *path, const char *want, const char *secret) {
    char err[512] = "";
    auth_t *a = auth_open(path, err, sizeof err);
    CHECK(a == NULL);
    if (!strstr(err, want)) fprintf(stderr, "  got: %s\n  want: %s\n", err, want);
    CHECK(strstr(err, want) != NULL);
    if (secret) CHECK(strstr(err, secret) == NULL);
    auth_close(a);
}

static void test_parse(void) {
    char err[512];
    auth_t *a = auth_open(FIX "good.tokens", err, sizeof err);
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(auth_count(a), 3);
    char name[AUTH_NAME_MAX + 1];
    const char *role = NULL;
    CHECK_EQ_INT(auth_check(a, "Bearer " T_EDITOR, AUTH_PERM_EDIT, name, sizeof name, &role), AUTH_OK);
    CHECK(strcmp(name, "alice") == 0);
    CHECK(role && strcmp(role, "editor") == 0);
    CHECK_EQ_INT(auth_check(a, "Bearer " T_INGEST, AUTH_PERM_INGEST, name, sizeof name, &role), AUTH_OK);
    CHECK(strcmp(name, "ci-loader") == 0); /* tab-separated line */
    CHECK_EQ_INT(auth_check(a, "Bearer " T_ADMIN, AUTH_PERM_ADMIN, name, sizeof name, &role), AUTH_OK);
    CHECK(strcmp(name, "ops@example") == 0 && strcmp(role, "admin") == 0);
    auth_close(a);

    /* Fixture files with one fault each: the message names file:line. */
    expect_open_error(FIX "bad_role.tokens", FIX "bad_role.tokens:3: unknown role 'superuser'", NULL);
    expect_open_error(FIX "bad_dup_token.tokens",
                      FIX "bad_dup_token.tokens:3: duplicate token (same as 'alice' on line 1)",
                      "shared-0123456789abcdef");
    expect_open_error(FIX "bad_short_token.tokens",
                      FIX "bad_short_token.tokens:1: token shorter than 16 characters", "short-token");
    expect_open_error(FIX "bad_missing_token.tokens", FIX "bad_missing_token.tokens:2: missing token", NULL);

    /* More faults, generated. */
    struct {
        const char *text, *want, *secret;
    } cases[] = {
        {"a ingest aaaaaaaaaaaaaaaaaaaa\n\n  # c\nb\n", ":4: missing role and token", NULL},
        {"a ingest aaaaaaaaaaaaaaaaaaaa\na editor bbbbbbbbbbbbbbbbbbbb\n",
         ":2: duplicate name 'a' (first on line 1)", "bbbbbbbbbbbbbbbbbbbb"},
        {"a ingest aaaaaaaaaaaaaaaaaaaa extra\n", ":1: unexpected 4th field", "aaaaaaaaaaaaaaaaaaaa"},
        {"a/b ingest aaaaaaaaaaaaaaaaaaaa\n", ":1: invalid name", NULL},
        /* columns swapped: the token sits where the role goes, and must not be quoted */
        {"a secret-token-in-role-field ingest\n", ":1: unknown role (expected", "secret-token-in-role-field"},
        {"secret-token-as-name-0123 ingest\n", ":1: missing token", "secret-token-as-name-0123"},
        {"# nothing but comments\n\n", ": no tokens", NULL},
        {"", ": no tokens", NULL},
        {"a admin aaaaaaaaaaaaaaaa\xc3\xa9\n", ":1: token has a character outside printable ASCII", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = tpath("case.tokens");
        write_file(p, cases[i].text, 0600);
        char want[512];
        snprintf(want, sizeof want, "%s%s", p, cases[i].want);
        expect_open_error(p, want, cases[i].secret);
    }
    char big[400];
    memset(big, 'x', 300);
    big[300] = '\0';
    char text[512];
    snprintf(text, sizeof text, "ok editor %s\n", big);
    char *p = tpath("long.tokens");
    write_file(p, text, 0600);
    char want[300];
    snprintf(want, sizeof want, "%s:1: token longer than 256 characters", p);
    expect_open_error(p, want, big);
    expect_open_error(tpath("does-not-exist"), "cannot open token file", NULL);

    /* CRLF line ends and a trailing comment are fine; exactly 16 and 256 chars ok. */
    memset(big, 'y', 256);
    big[256] = '\0';
    snprintf(text, sizeof text, "a ingest 0123456789abcdef\r\nb admin %s # note\r\n", big);
    p = tpath("crlf.tokens");
    write_file(p, text, 0600);
    a = auth_open(p, err, sizeof err);
    CHECK(a != NULL);
    CHECK_EQ_INT(auth_count(a), 2);
    CHECK_EQ_INT(chk(a, "Bearer 0123456789abcdef", AUTH_PERM_INGEST), AUTH_OK);
    char hdr[300];
    snprintf(hdr, sizeof hdr, "Bearer %s", big);
    CHECK_EQ_INT(chk(a, hdr, AUTH_PERM_ADMIN), AUTH_OK);
    hdr[strlen(hdr) - 1] = 'z'; /* last of 256 bytes differs */
    CHECK_EQ_INT(chk(a, hdr, AUTH_PERM_ADMIN), AUTH_INVALID);
    auth_close(a);
}

static void test_file_mode_warning(void) {
    char *p = tpath("mode.tokens");
    char *log = tpath("mode.log");
    char err[512];
    write_file(p, "a editor 0123456789abcdef\n", 0644);
    capture_begin(log);
    auth_t *a = auth_open(p, err, sizeof err);
    char *out = capture_end(log);
    CHECK(a != NULL); /* a warning, not an error */
    CHECK(out && strstr(out, "readable by users other than its owner (mode 0644)"));
    CHECK(out && !strstr(out, "0123456789abcdef"));
    free(out);
    auth_close(a);
    chmod(p, 0600);
    capture_begin(log);
    a = auth_open(p, err, sizeof err);
    out = capture_end(log);
    CHECK(a != NULL);
    CHECK(out && !strstr(out, "other than its owner"));
    free(out);
    auth_close(a);
}

static void test_matrix(void) {
    char err[512];
    auth_t *a = auth_open(FIX "good.tokens", err, sizeof err);
    if (!a) {
        CHECK(a != NULL);
        return;
    }
    const char *hdr[3] = {"Bearer " T_INGEST, "Bearer " T_EDITOR, "Bearer " T_ADMIN};
    unsigned perm[4] = {AUTH_PERM_READ, AUTH_PERM_INGEST, AUTH_PERM_EDIT, AUTH_PERM_ADMIN};
    /* rows: ingest, editor, admin; columns: read, ingest, edit, admin */
    const auth_result_t want[3][4] = {
        {AUTH_OK, AUTH_OK, AUTH_FORBIDDEN, AUTH_FORBIDDEN},
        {AUTH_OK, AUTH_FORBIDDEN, AUTH_OK, AUTH_FORBIDDEN},
        {AUTH_OK, AUTH_OK, AUTH_OK, AUTH_OK},
    };
    for (int read_req = 0; read_req < 2; read_req++) {
        auth_set_read_required(a, read_req);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) {
                auth_result_t got = chk(a, hdr[r], perm[c]);
                if (got != want[r][c]) fprintf(stderr, "  role %d perm %u\n", r, perm[c]);
                CHECK_EQ_INT(got, want[r][c]);
            }
        /* Several bits: all are needed. */
        CHECK_EQ_INT(chk(a, hdr[0], AUTH_PERM_INGEST | AUTH_PERM_EDIT), AUTH_FORBIDDEN);
        CHECK_EQ_INT(chk(a, hdr[2], AUTH_PERM_INGEST | AUTH_PERM_EDIT), AUTH_OK);
    }
    /* Reads: open by default, whatever the header; a token needed once required. */
    auth_set_read_required(a, false);
    CHECK_EQ_INT(chk(a, NULL, AUTH_PERM_READ), AUTH_OK);
    CHECK_EQ_INT(chk(a, "Bearer nonsense-nonsense-nonsense", AUTH_PERM_READ), AUTH_OK);
    CHECK_EQ_INT(chk(a, NULL, AUTH_PERM_INGEST), AUTH_MISSING);
    auth_set_read_required(a, true);
    CHECK_EQ_INT(chk(a, NULL, AUTH_PERM_READ), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Bearer nonsense-nonsense-nonsense", AUTH_PERM_READ), AUTH_INVALID);
    CHECK_EQ_INT(chk(a, hdr[0], AUTH_PERM_READ), AUTH_OK);

    /* Forbidden still names who asked; messages name the role. */
    char name[8]; /* too small on purpose: truncated, NUL-terminated */
    const char *role = NULL;
    CHECK_EQ_INT(auth_check(a, hdr[0], AUTH_PERM_EDIT, name, sizeof name, &role), AUTH_FORBIDDEN);
    CHECK(strcmp(name, "ci-load") == 0);
    CHECK(role && strcmp(role, "ingest") == 0);
    char msg[128];
    CHECK(strcmp(auth_message(AUTH_FORBIDDEN, "editor", AUTH_PERM_INGEST, msg, sizeof msg),
                 "role editor may not post events (needs role ingest or admin)") == 0);
    CHECK(strcmp(auth_message(AUTH_FORBIDDEN, "ingest", AUTH_PERM_EDIT, msg, sizeof msg),
                 "role ingest may not change rules (needs role editor or admin)") == 0);
    CHECK(strcmp(auth_message(AUTH_FORBIDDEN, "editor", AUTH_PERM_ADMIN, msg, sizeof msg),
                 "role editor may not use admin endpoints (needs role admin)") == 0);
    CHECK(strcmp(auth_message(AUTH_MISSING, NULL, AUTH_PERM_EDIT, msg, sizeof msg),
                 "missing bearer token") == 0);
    CHECK(strcmp(auth_status_text(AUTH_INVALID), "invalid token") == 0);
    CHECK_EQ_INT(auth_role_perms("editor"), AUTH_PERM_READ | AUTH_PERM_EDIT);
    CHECK_EQ_INT(auth_role_perms("root"), 0);

    /* No token file: everything allowed. */
    CHECK_EQ_INT(chk(NULL, NULL, AUTH_PERM_ADMIN), AUTH_OK);
    CHECK_EQ_INT(auth_count(NULL), 0);
    auth_close(a);
}

static void test_header_forms(void) {
    char err[512];
    auth_t *a = auth_open(FIX "good.tokens", err, sizeof err);
    if (!a) {
        CHECK(a != NULL);
        return;
    }
    unsigned E = AUTH_PERM_EDIT;
    CHECK_EQ_INT(chk(a, NULL, E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "", E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "   ", E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Bearer", E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Bearer   ", E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Basic " T_EDITOR, E), AUTH_MISSING); /* wrong scheme */
    CHECK_EQ_INT(chk(a, "Token " T_EDITOR, E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Bearer" T_EDITOR, E), AUTH_MISSING); /* no separator */
    CHECK_EQ_INT(chk(a, T_EDITOR, E), AUTH_MISSING);
    CHECK_EQ_INT(chk(a, "Bearer " T_EDITOR, E), AUTH_OK);
    CHECK_EQ_INT(chk(a, "bearer " T_EDITOR, E), AUTH_OK);
    CHECK_EQ_INT(chk(a, "  BEARER\t  " T_EDITOR " \t ", E), AUTH_OK);
    CHECK_EQ_INT(chk(a, "Bearer " T_EDITOR "x", E), AUTH_INVALID);
    CHECK_EQ_INT(chk(a, "Bearer editor-0123456789abcde", E), AUTH_INVALID); /* prefix */
    CHECK_EQ_INT(chk(a, "Bearer EDITOR-0123456789abcdef", E), AUTH_INVALID); /* case matters */
    CHECK_EQ_INT(chk(a, "Bearer " T_EDITOR " extra", E), AUTH_INVALID);
    char big[400] = "Bearer ";
    memset(big + 7, 'x', 300);
    big[307] = '\0';
    CHECK_EQ_INT(chk(a, big, E), AUTH_INVALID);
    uint64_t ok, missing, invalid, forbidden;
    auth_stats(a, &ok, &missing, &invalid, &forbidden, NULL, NULL);
    CHECK_EQ_INT(ok, 3);
    CHECK_EQ_INT(missing, 9);
    CHECK_EQ_INT(invalid, 5);
    CHECK_EQ_INT(forbidden, 0);
    auth_close(a);
}

static void test_reload_keeps_old(void) {
    char *p = tpath("reload.tokens");
    char err[512];
    write_file(p, "old editor old-token-0123456789\n", 0600);
    auth_t *a = auth_open(p, err, sizeof err);
    if (!a) {
        CHECK(a != NULL);
        return;
    }
    char *log = tpath("reload.log");
    capture_begin(log);
    write_file(p, "new editor new-token-0123456789\nbad nope new-token-abcdefghij\n", 0600);
    CHECK_EQ_INT(auth_reload(a, err, sizeof err), -1);
    CHECK(strstr(err, ":2: unknown role 'nope'") != NULL);
    CHECK_EQ_INT(chk(a, "Bearer old-token-0123456789", AUTH_PERM_EDIT), AUTH_OK);
    CHECK_EQ_INT(chk(a, "Bearer new-token-0123456789", AUTH_PERM_EDIT), AUTH_INVALID);
    write_file(p, "", 0600); /* a truncated file must not lock everyone out */
    CHECK_EQ_INT(auth_reload(a, err, sizeof err), -1);
    CHECK_EQ_INT(chk(a, "Bearer old-token-0123456789", AUTH_PERM_EDIT), AUTH_OK);
    write_file(p, "new editor new-token-0123456789\nn2 admin new-token-abcdefghij\n", 0600);
    CHECK_EQ_INT(auth_reload(a, err, sizeof err), 0);
    CHECK_EQ_INT(auth_count(a), 2);
    CHECK_EQ_INT(chk(a, "Bearer old-token-0123456789", AUTH_PERM_EDIT), AUTH_INVALID);
    CHECK_EQ_INT(chk(a, "Bearer new-token-0123456789", AUTH_PERM_EDIT), AUTH_OK);
    uint64_t reloads, errors;
    auth_stats(a, NULL, NULL, NULL, NULL, &reloads, &errors);
    CHECK_EQ_INT(reloads, 1);
    CHECK_EQ_INT(errors, 2);
    char *out = capture_end(log);
    CHECK(out && strstr(out, "tokens not reloaded, keeping the previous 1 tokens: "));
    CHECK(out && strstr(out, "reload.tokens:2: unknown role 'nope'"));
    CHECK(out && strstr(out, "tokens reloaded (2 tokens)"));
    CHECK(out && !strstr(out, "-token-"));
    free(out);
    auth_close(a);
}

static auth_t *hup_auth;
static void on_hup(int sig) {
    (void)sig;
    auth_request_reload(hup_auth);
}

/* Waits up to ms for the token to give want; returns the elapsed ms or -1. */
static long wait_for(auth_t *a, const char *hdr, auth_result_t want, long ms) {
    uint64_t t0 = mono_ns();
    for (;;) {
        long el = (long)((mono_ns() - t0) / 1000000u);
        if (chk(a, hdr, AUTH_PERM_EDIT) == want) return el;
        if (el > ms) return -1;
        sleep_ms(10);
    }
}

static void test_watch(void) {
    char *p = tpath("watch.tokens");
    char *log = tpath("watch.log");
    char err[512];
    write_file(p, "w1 editor watch-token-one-000000\n", 0600);
    auth_t *a = auth_open(p, err, sizeof err);
    if (!a) {
        CHECK(a != NULL);
        return;
    }
    CHECK_EQ_INT(auth_watch_start(a), 0);
    CHECK_EQ_INT(auth_watch_start(a), 0);
    capture_begin(log);
    /* An editor's save: write a temp file, rename it over. */
    replace_file(p, "w2 editor watch-token-two-000000\nw3 admin watch-token-three-0000\n");
    long el = wait_for(a, "Bearer watch-token-two-000000", AUTH_OK, 2000);
    CHECK(el >= 0);
    CHECK_EQ_INT(chk(a, "Bearer watch-token-one-000000", AUTH_PERM_EDIT), AUTH_INVALID);
    CHECK_EQ_INT(auth_count(a), 2);
    /* An in-place rewrite. */
    write_file(p, "w4 editor watch-token-four-00000\n", 0600);
    long el2 = wait_for(a, "Bearer watch-token-four-00000", AUTH_OK, 2000);
    CHECK(el2 >= 0);
    /* A bad save: logged once, old table kept, not retried while unchanged. */
    uint64_t e0, e1, r0, r1;
    auth_stats(a, NULL, NULL, NULL, NULL, &r0, &e0);
    replace_file(p, "w5 editor short\n");
    for (int i = 0; i < 200; i++) {
        auth_stats(a, NULL, NULL, NULL, NULL, NULL, &e1);
        if (e1 > e0) break;
        sleep_ms(10);
    }
    sleep_ms(1200); /* past one stat poll */
    auth_stats(a, NULL, NULL, NULL, NULL, &r1, &e1);
    CHECK_EQ_INT(e1 - e0, 1);
    CHECK_EQ_INT(r1, r0);
    CHECK_EQ_INT(chk(a, "Bearer watch-token-four-00000", AUTH_PERM_EDIT), AUTH_OK);
    /* SIGHUP: a forced reload of an unchanged (now fixed) file. */
    replace_file(p, "w6 editor watch-token-six-000000\n");
    CHECK(wait_for(a, "Bearer watch-token-six-000000", AUTH_OK, 2000) >= 0);
    auth_stats(a, NULL, NULL, NULL, NULL, &r0, NULL);
    hup_auth = a;
    signal(SIGHUP, on_hup);
    raise(SIGHUP);
    for (int i = 0; i < 200; i++) {
        auth_stats(a, NULL, NULL, NULL, NULL, &r1, NULL);
        if (r1 > r0) break;
        sleep_ms(10);
    }
    CHECK_EQ_INT(r1, r0 + 1);
    signal(SIGHUP, SIG_DFL);
    /* A Kubernetes-style secret: PATH -> ..data/tokens, ..data -> v1; the
     * update swaps the ..data symlink (an event not naming PATH). */
    char *d = tpath("k8s");
    char vdir[300], link[300], tok[300];
    snprintf(vdir, sizeof vdir, "%s/v1", d);
    mkdir(d, 0700);
    mkdir(vdir, 0700);
    snprintf(tok, sizeof tok, "%s/tokens", vdir);
    write_file(tok, "k1 editor k8s-token-one-0000000\n", 0600);
    snprintf(vdir, sizeof vdir, "%s/v2", d);
    mkdir(vdir, 0700);
    snprintf(tok, sizeof tok, "%s/tokens", vdir);
    write_file(tok, "k2 editor k8s-token-two-0000000\n", 0600);
    snprintf(link, sizeof link, "%s/..data", d);
    CHECK(symlink("v1", link) == 0);
    snprintf(link, sizeof link, "%s/tokens", d);
    CHECK(symlink("..data/tokens", link) == 0);
    auth_t *k = auth_open(link, err, sizeof err);
    CHECK(k != NULL);
    if (k) {
        auth_watch_start(k);
        char tmp[300], data[300];
        snprintf(tmp, sizeof tmp, "%s/..data_tmp", d);
        snprintf(data, sizeof data, "%s/..data", d);
        CHECK(symlink("v2", tmp) == 0);
        CHECK(rename(tmp, data) == 0);
        long el3 = wait_for(k, "Bearer k8s-token-two-0000000", AUTH_OK, 2000);
        CHECK(el3 >= 0);
        CHECK(el3 >= 0 && el3 < 900); /* inotify, not the once-a-second poll */
        printf("watch: symlink swap noticed in %ld ms\n", el3);
        auth_close(k);
    }
    char *out = capture_end(log);
    CHECK(out && strstr(out, "tokens reloaded (2 tokens)"));
    CHECK(out && strstr(out, "tokens reloaded (1 tokens)"));
    CHECK(out && strstr(out, "token shorter than 16 characters"));
    CHECK(out && !strstr(out, "watch-token-"));
    free(out);
    printf("watch: rename noticed in %ld ms, in-place write in %ld ms\n", el, el2);
    auth_close(a);
}

/* -- Concurrent checks during reloads ---------------------------------- */

static atomic_bool conc_stop;
static atomic_long conc_bad, conc_checks;

static void *conc_reader(void *arg) {
    auth_t *a = arg;
    char name[AUTH_NAME_MAX + 1];
    const char *role;
    while (!atomic_load(&conc_stop)) {
        /* "stable" is in every version of the file: never anything but OK. */
        if (auth_check(a, "Bearer stable-token-000000000", AUTH_PERM_EDIT, name, sizeof name, &role) !=
                AUTH_OK ||
            strcmp(name, "stable") != 0 || strcmp(role, "editor") != 0)
            atomic_fetch_add(&conc_bad, 1);
        /* "flip" comes and goes; it must be OK or INVALID, never torn. */
        auth_result_t r = auth_check(a, "Bearer flip-token-0000000000", AUTH_PERM_INGEST, name,
                                     sizeof name, &role);
        if (r != AUTH_OK && r != AUTH_INVALID) atomic_fetch_add(&conc_bad, 1);
        if (r == AUTH_OK && strcmp(name, "flip") != 0) atomic_fetch_add(&conc_bad, 1);
        (void)auth_count(a);
        atomic_fetch_add(&conc_checks, 2);
    }
    return NULL;
}

static void test_concurrent(void) {
    char *p = tpath("conc.tokens");
    char err[512];
    const char *v[2] = {
        "stable editor stable-token-000000000\nflip ingest flip-token-0000000000\n",
        "other admin other-token-000000000\nstable editor stable-token-000000000\n",
    };
    write_file(p, v[0], 0600);
    auth_t *a = auth_open(p, err, sizeof err);
    if (!a) {
        CHECK(a != NULL);
        return;
    }
    log_quiet = 1;
    auth_watch_start(a); /* the watcher reloads too: two reloaders */
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, conc_reader, a);
    int fails = 0;
    for (int i = 0; i < 50; i++) {
        replace_file(p, v[(i + 1) % 2]);
        if (auth_reload(a, err, sizeof err) != 0) fails++;
        auth_request_reload(a);
        sleep_ms(2);
    }
    atomic_store(&conc_stop, true);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(fails, 0);
    CHECK_EQ_INT(atomic_load(&conc_bad), 0);
    CHECK(atomic_load(&conc_checks) > 100);
    uint64_t reloads;
    auth_stats(a, NULL, NULL, NULL, NULL, &reloads, NULL);
    CHECK(reloads >= 50);
    CHECK_EQ_INT(auth_count(a), 2);
    auth_close(a);
    log_quiet = 0;
    printf("concurrent: %ld checks during %llu reloads\n", atomic_load(&conc_checks),
           (unsigned long long)reloads);
}

/* -- Audit ---------------------------------------------------------------- */

static void *audit_writer(void *arg) {
    audit_t *au = arg;
    for (int i = 0; i < 25; i++) audit_write(au, "bob", "::1", "draft", "pool_x", "thread");
    return NULL;
}

static void test_audit(void) {
    char *p = tpath("audit.log");
    char err[512];
    audit_t *au = audit_open(p, err, sizeof err);
    CHECK(au != NULL);
    if (!au) return;
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
    const char *tricky = "quote\" backslash\\ nl\n tab\t ctl\x01 caf\xc3\xa9 </script>";
    audit_write(au, "alice", "10.0.0.7", "publish", "flash_sale_sg", tricky);
    audit_write(au, "ops@example", "127.0.0.1", "rollback", "p2", NULL);
    audit_write(au, "mallory\xff\xfe", "1.2.3.4", "delete", "bad\xc3(utf8", "x");
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, audit_writer, au);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    uint64_t written, errors;
    audit_stats(au, &written, &errors);
    CHECK_EQ_INT(written, 103);
    CHECK_EQ_INT(errors, 0);
    audit_close(au);
    /* Reopening appends. */
    au = audit_open(p, err, sizeof err);
    audit_write(au, "carol", NULL, "snapshot", "data", NULL);
    audit_close(au);

    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[8192];
    int n = 0, threads = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        CHECK(line[strlen(line) - 1] == '\n');
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(o != NULL);
        if (!o) {
            fprintf(stderr, "  line %d: %s: %s", n, je.text, line);
            continue;
        }
        const char *ts = json_string_value(json_object_get(o, "ts"));
        /* 2026-01-02T03:04:05.678Z */
        CHECK(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
        CHECK(json_object_size(o) == 6);
        const char *who = json_string_value(json_object_get(o, "who"));
        if (n == 1) {
            CHECK(strcmp(who, "alice") == 0);
            CHECK(strcmp(json_string_value(json_object_get(o, "addr")), "10.0.0.7") == 0);
            CHECK(strcmp(json_string_value(json_object_get(o, "action")), "publish") == 0);
            CHECK(strcmp(json_string_value(json_object_get(o, "target")), "flash_sale_sg") == 0);
            CHECK(strcmp(json_string_value(json_object_get(o, "detail")), tricky) == 0);
            CHECK(strchr(line, '\t') == NULL); /* control characters escaped */
        } else if (n == 2) {
            CHECK(json_is_null(json_object_get(o, "detail")));
        } else if (n == 3) {
            CHECK(strcmp(who, "mallory\xef\xbf\xbd\xef\xbf\xbd") == 0);
            CHECK(strcmp(json_string_value(json_object_get(o, "target")), "bad\xef\xbf\xbd(utf8") == 0);
        } else if (who && strcmp(who, "bob") == 0) {
            threads++;
        } else if (who && strcmp(who, "carol") == 0) {
            CHECK(json_is_null(json_object_get(o, "addr")));
        }
        json_decref(o);
    }
    fclose(f);
    CHECK_EQ_INT(n, 104);
    CHECK_EQ_INT(threads, 100);
    audit_write(NULL, "x", "y", "z", "w", NULL); /* no-op */
    audit_close(NULL);
    CHECK(audit_open(tpath("no/such/dir/audit.log"), err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot open audit log") != NULL);
}

static void rm_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_auth.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_parse();
    test_file_mode_warning();
    test_matrix();
    test_header_forms();
    test_reload_keeps_old();
    test_watch();
    test_concurrent();
    test_audit();
    rm_tmpdir();
    return check_done();
}
