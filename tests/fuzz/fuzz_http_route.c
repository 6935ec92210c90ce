// fuzz-sources: src/http.c src/util.c
// fuzz-libs: -lmicrohttpd -ljansson
/* fuzz_http_route.c - libFuzzer target for the HTTP path router and the
 * percent-decoder (http_route_match, http_route_allow, http_pattern_check,
 * http_percent_decode). No socket: these are the pure functions http.c runs
 * on every request line.
 *
 * Input: "METHOD\nTARGET" routes TARGET (its path part, cut at '?' or '#'
 * like the server does) against poold's API table; "METHOD\nPATTERN\nTARGET"
 * (a second '\n') also tries a fuzzed pattern placed before that table.
 * Properties checked (a failure traps):
 *   - the result is -1 or a route index (never -2 with a big enough argbuf);
 *   - a match has one arg per capture, ":name" args non-empty, all args in
 *     argbuf, the arg list NULL-terminated;
 *   - re-encoding the args into the pattern gives a path that matches the
 *     same route with the same args (captures are decoded exactly once);
 *   - -1 without mismatch <=> no method is allowed for the path;
 *   - decode(encode(bytes)) == bytes for the whole input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http.h"

static void h(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)app, (void)req, (void)args, (void)resp;
}

#define API_ROUTES                                          \
    {"GET", "/api/pools", h, 0},                            \
    {"GET", "/api/pools/:name", h, 0},                      \
    {"GET", "/api/pools/:name/members", h, 0},              \
    {"GET", "/api/pools/:name/members/:sku", h, 0},         \
    {"GET", "/api/pools/:name/changes", h, 0},              \
    {"GET", "/api/skus/:sku", h, 0},                        \
    {"GET", "/api/skus/:sku/explain", h, 0},                \
    {"POST", "/api/query", h, 0},                           \
    {"POST", "/api/events", h, 0},                          \
    {"GET", "/api/rules", h, 0},                            \
    {"GET", "/api/rules/:name", h, 0},                      \
    {"PUT", "/api/rules/:name", h, 0},                      \
    {"DELETE", "/api/rules/:name", h, 0},                   \
    {"POST", "/api/rules/:name/preview", h, 0},             \
    {"POST", "/api/rules/:name/publish", h, 0},             \
    {"POST", "/api/rules/:name/rollback", h, 0},            \
    {"GET", "/metrics", h, 0},                              \
    {"GET", "/healthz", h, 0},                              \
    {"GET", "/", h, 0},                                     \
    {"GET", "/ui/*", h, 0}

static const http_route_t api[] = {API_ROUTES};
#define NAPI (sizeof api / sizeof api[0])

#define CHECK(c)                 \
    do {                         \
        if (!(c)) __builtin_trap(); \
    } while (0)

static int is_unreserved(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '_' || ch == '.' || ch == '~';
}

/* Percent-encodes every byte but the unreserved ones (so '/' too). */
static size_t encode(char *dst, const char *src, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (is_unreserved(ch)) {
            dst[j++] = (char)ch;
        } else {
            dst[j++] = '%';
            dst[j++] = hex[ch >> 4];
            dst[j++] = hex[ch & 15];
        }
    }
    return j;
}

static int count_caps(const char *pat, int *wild) {
    int n = 0;
    *wild = 0;
    for (const char *p = pat; *p; p++) {
        if (p[0] == '/' && p[1] == ':') n++;
        if (p[0] == '/' && p[1] == '*' && p[2] == '\0') n++, *wild = 1;
    }
    return n;
}

/* Rebuilds a raw path from a pattern and decoded args, encoding the args. */
static char *rebuild(const char *pat, const char *const *args) {
    size_t cap = strlen(pat) + 1;
    for (int i = 0; args[i]; i++) cap += 3 * strlen(args[i]);
    char *out = malloc(cap), *w = out;
    int k = 0;
    for (const char *p = pat; *p;) {
        *w++ = *p++; /* '/' */
        size_t n = strcspn(p, "/");
        if (p[0] == ':' || (p[0] == '*' && n == 1)) {
            w += encode(w, args[k], strlen(args[k]));
            k++;
        } else {
            memcpy(w, p, n);
            w += n;
        }
        p += n;
    }
    *w = '\0';
    return out;
}

static void check_route(const http_route_t *routes, size_t n, const char *method, const char *path) {
    size_t plen = strlen(path);
    size_t alen = plen + HTTP_MAX_ARGS + 1;
    char *argbuf = malloc(alen);
    const char *args[HTTP_MAX_ARGS + 1];
    int mm = -1;
    int r = http_route_match(routes, n, method, path, args, argbuf, alen, &mm);
    CHECK(r >= -1 && r < (int)n);
    CHECK(mm == 0 || mm == 1);

    char allow[128];
    size_t nallow = http_route_allow(routes, n, path, allow, sizeof allow);
    CHECK(memchr(allow, '\0', sizeof allow) != NULL);
    if (r >= 0) {
        CHECK(mm == 0 && nallow >= 1);
        int wild;
        int nc = count_caps(routes[r].pattern, &wild);
        for (int i = 0; i < nc; i++) {
            CHECK(args[i] != NULL);
            CHECK(args[i] >= argbuf && args[i] + strlen(args[i]) < argbuf + alen);
            if (!(wild && i == nc - 1)) CHECK(args[i][0] != '\0');
        }
        CHECK(args[nc] == NULL);
        if (!wild) {
            char *again = rebuild(routes[r].pattern, args);
            size_t alen2 = strlen(again) + HTTP_MAX_ARGS + 1;
            char *argbuf2 = malloc(alen2);
            const char *args2[HTTP_MAX_ARGS + 1];
            int r2 = http_route_match(routes, n, method, again, args2, argbuf2, alen2, NULL);
            CHECK(r2 == r);
            for (int i = 0; i < nc; i++) CHECK(strcmp(args[i], args2[i]) == 0);
            free(argbuf2);
            free(again);
        }
    } else {
        CHECK(mm == (nallow > 0));
    }
    free(argbuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    /* decode(encode(x)) == x, and decoding never grows */
    char *enc = malloc(3 * size + 1), *dec = malloc(3 * size + 1);
    size_t en = encode(enc, (const char *)data, size);
    CHECK(http_percent_decode(dec, enc, en) == size && memcmp(dec, data, size) == 0);
    CHECK(http_percent_decode(dec, (const char *)data, size) <= size);
    memcpy(dec, data, size);
    CHECK(http_percent_decode(dec, dec, size) <= size); /* in place */
    free(enc);
    free(dec);

    char *in = malloc(size + 1);
    memcpy(in, data, size);
    in[size] = '\0'; /* a request target is a C string: stops at the first NUL */
    char *nl = strchr(in, '\n');
    if (!nl) {
        free(in);
        return 0;
    }
    *nl = '\0';
    const char *method = in;
    char *target = nl + 1, *pattern = NULL;
    char *nl2 = strchr(target, '\n');
    if (nl2) {
        *nl2 = '\0';
        pattern = target;
        target = nl2 + 1;
    }
    target[strcspn(target, "?#")] = '\0'; /* the path part, as on_uri keeps it */

    check_route(api, NAPI, method, target);
    if (pattern) {
        char err[256];
        if (http_pattern_check(pattern, err, sizeof err) == 0) {
            http_route_t routes[NAPI + 1] = {{method, pattern, h, 0}, API_ROUTES};
            check_route(routes, NAPI + 1, method, target);
            check_route(routes, NAPI + 1, "GET", target);
        }
    }
    free(in);
    return 0;
}
