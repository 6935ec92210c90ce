/* ndjson.c - NDJSON line framing and the validating event parser: the ingest
 * hot path for files, HTTP bodies and Kafka messages (see ndjson.h, event.h).
 *
 * One pass over the line, no allocation, no global mutable state, never a
 * read outside [line, line+len). The parser walks the top-level object once;
 * each known field is parsed and validated as it is met and written into the
 * event; unknown fields are validated as JSON (depth-bounded) and skipped.
 *
 * In-place decoding: string values with escapes are decoded into their own
 * bytes (the write position never passes the read position), so slices stay
 * inside the line. A tag array is rewritten from its '[' on as the decoded
 * names, each followed by a NUL, plus one more NUL after the last name (the
 * terminator event_tag_next relies on; there is always room: every element
 * costs at least two quotes and a separator). attrs is never rewritten: it
 * is the raw text of the object.
 *
 * Errors come in two kinds. Hard ones (not JSON, too deep, too long) stop the
 * parse at once. Field errors (wrong type, bad value, bad tag, unknown op) are
 * recorded per field and reported after the object is closed, because which
 * fields matter depends on "op", which may come last, and because a duplicate
 * key replaces an earlier value (last wins). Fields an op does not use
 * (e.g. "qty" on a price op) are ignored, their values only have to be JSON:
 *   record, upsert: market category brand seller price list_price stock
 *                   rating reviews lazmall free_shipping tags attrs
 *   price: price list_price   stock: stock   order: qty amount
 *   tag: add remove           delete, view, click, cart: nothing else
 * sku, op and ts matter for every op. When several fields are bad the first
 * in event_t order is reported. A NUL (from "\u0000") is refused in sku,
 * market, category, brand and seller, which other modules use as C strings.
 * Byte offsets in messages count from 0 at the start of the line.
 *
 * Numbers are correctly rounded like strtod / Python float(): decimals with
 * at most 19 significant digits whose value is m * 10^e with m <= 2^53 and
 * |e| <= 22 take the exact Clinger fast path (one IEEE multiply or divide),
 * everything else goes to strtod on the validated token (NUL-terminated in
 * place for the call, the byte after the token always exists inside the line).
 * strtod assumes the "C" LC_NUMERIC locale, which poold never changes.
 *
 * Thread-safe: every function here works on caller-provided memory only. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ndjson.h"

/* -- Names ---------------------------------------------------------------- */

const char *event_reject_name(event_reject_t r) {
    static const char *const names[REJ__COUNT] = {
        "none",      "bad_json",    "too_long",   "too_deep",
        "missing_sku", "missing_field", "bad_type", "bad_value",
        "unknown_op", "too_many_tags", "bad_tag",
    };
    return (unsigned)r < REJ__COUNT ? names[r] : "unknown";
}

static const char *const op_names[OP__COUNT] = {
    "record", "upsert", "delete", "price", "stock",
    "order",  "view",   "click",  "cart",  "tag",
};

const char *event_op_name(event_op_t op) {
    return (unsigned)op < OP__COUNT ? op_names[op] : "unknown";
}

const char *event_tag_next(const event_tags_t *tags, const char *prev) {
    if (!tags || !tags->p || tags->n == 0) return NULL;
    if (!prev) return tags->p;
    const char *q = prev + strlen(prev) + 1;
    return *q ? q : NULL;
}

/* -- Line framing --------------------------------------------------------- */

long ndjson_next_line(char *buf, size_t len, size_t *pos, char **line) {
    if (!buf || !pos || *pos >= len) return -1;
    char *s = buf + *pos;
    size_t rest = len - *pos;
    char *nl = memchr(s, '\n', rest);
    size_t n = nl ? (size_t)(nl - s) : rest;
    *pos += nl ? n + 1 : n;
    if (n > 0 && s[n - 1] == '\r') n--;
    if (line) *line = s;
    return (long)n;
}

/* -- ISO-8601 ------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dim[m - 1];
}

/* n decimal digits at s into *out; -1 if any is not a digit. */
static int read_digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) return -1;
        v = v * 10 + (int)d;
    }
    *out = v;
    return 0;
}

int parse_iso8601_ms(const char *s, size_t len, int64_t *out_ms) {
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    size_t i;
    if (!s || !out_ms || len < 10) return -1;
    if (read_digits(s, 4, &y) || s[4] != '-' || read_digits(s + 5, 2, &mo) || s[7] != '-' ||
        read_digits(s + 8, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return -1;
    i = 10;
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return -1;
        i++;
        if (len - i < 5 || read_digits(s + i, 2, &h) || s[i + 2] != ':' ||
            read_digits(s + i + 3, 2, &mi))
            return -1;
        i += 5;
        if (h > 23 || mi > 59) return -1;
        if (i < len && s[i] == ':') {
            if (len - i < 3 || read_digits(s + i + 1, 2, &sec) || sec > 59) return -1;
            i += 3;
            if (i < len && s[i] == '.') {
                int nd = 0;
                i++;
                while (i < len && (unsigned)((unsigned char)s[i] - '0') <= 9) {
                    if (nd < 3) ms = ms * 10 + (s[i] - '0');
                    nd++;
                    i++;
                }
                if (nd < 1 || nd > 9) return -1;
                for (; nd < 3; nd++) ms *= 10;
            }
        }
        if (i < len) {
            if (s[i] == 'Z' || s[i] == 'z') {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int sign = s[i] == '-' ? -1 : 1, oh, om;
                i++;
                if (len - i < 2 || read_digits(s + i, 2, &oh)) return -1;
                i += 2;
                if (i < len && s[i] == ':') i++;
                if (len - i < 2 || read_digits(s + i, 2, &om)) return -1;
                i += 2;
                if (oh > 23 || om > 59) return -1;
                off = sign * (oh * 60 + om);
            } else {
                return -1;
            }
        }
        if (i != len) return -1;
    }
    int64_t days = days_from_civil(y, mo, d);
    *out_ms = (((days * 24 + h) * 60 + mi) * 60 + sec) * 1000 + ms - (int64_t)off * 60000;
    return 0;
}

/* -- Parser state and hard errors ----------------------------------------- */

typedef struct pstate {
    char *base; /* the line, for byte offsets in messages */
    char *p;    /* read position */
    char *end;
    event_error_t *err;
} pstate_t;

/* Copies at most ~60 bytes of user data into dst (cap >= 68), replacing
 * control bytes, cutting on a UTF-8 boundary and marking the cut. */
static void put_user(char *dst, size_t cap, const char *p, size_t n) {
    size_t lim = 60, o = 0;
    int cut = 0;
    if (n > lim) {
        while (lim > 0 && ((unsigned char)p[lim] & 0xC0) == 0x80) lim--;
        n = lim;
        cut = 1;
    }
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static int json_err(pstate_t *ps, const char *at, const char *what) {
    ps->err->reason = REJ_BAD_JSON;
    snprintf(ps->err->msg, sizeof ps->err->msg, "invalid JSON at byte %ld: %s",
             (long)(at - ps->base), what);
    return -1;
}

static int json_err_char(pstate_t *ps, const char *at, const char *expected) {
    char what[96];
    if (at >= ps->end) {
        snprintf(what, sizeof what, "unexpected end of line, expected %s", expected);
    } else {
        unsigned char c = (unsigned char)*at;
        if (c > 0x20 && c < 0x7f)
            snprintf(what, sizeof what, "expected %s, got '%c'", expected, c);
        else
            snprintf(what, sizeof what, "expected %s, got byte 0x%02x", expected, c);
    }
    return json_err(ps, at, what);
}

static int too_deep(pstate_t *ps) {
    ps->err->reason = REJ_TOO_DEEP;
    snprintf(ps->err->msg, sizeof ps->err->msg,
             "JSON nested deeper than %d levels at byte %ld", EVENT_MAX_JSON_DEPTH,
             (long)(ps->p - ps->base));
    return -1;
}

static inline char *skip_ws(char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* -- Strings -------------------------------------------------------------- */

/* 1 for bytes that end a plain run inside a string: '"', '\\', control
 * characters (invalid raw) and non-ASCII (validated as UTF-8). */
static const unsigned char str_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The first byte in [r, end) that str_special marks, or end. Eight bytes at
 * a time: the SWAR tests below flag exactly the special bytes, except that a
 * borrow may also flag bytes after a true hit, so the lowest flag is exact. */
static inline const unsigned char *find_special(const unsigned char *r,
                                                const unsigned char *end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - r >= 8) {
        uint64_t v;
        memcpy(&v, r, 8);
        uint64_t q = v ^ 0x2222222222222222ull, b = v ^ 0x5c5c5c5c5c5c5c5cull;
        uint64_t hit = (v | ((v - 0x2020202020202020ull) & ~v) |
                        ((q - 0x0101010101010101ull) & ~q) | ((b - 0x0101010101010101ull) & ~b)) &
                       0x8080808080808080ull;
        if (hit) return r + (__builtin_ctzll(hit) >> 3);
        r += 8;
    }
#endif
    while (r < end && !str_special[*r]) r++;
    return r;
}

/* Length of the valid UTF-8 sequence at s (2..4), or 0 if invalid: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_seq(const unsigned char *s, const unsigned char *end) {
    unsigned c = s[0], c1;
    if (c < 0xC2) return 0;
    if (end - s < 2) return 0;
    c1 = s[1];
    if ((c1 & 0xC0) != 0x80) return 0;
    if (c < 0xE0) return 2;
    if (end - s < 3 || (s[2] & 0xC0) != 0x80) return 0;
    if (c < 0xF0) {
        if (c == 0xE0 && c1 < 0xA0) return 0;
        if (c == 0xED && c1 >= 0xA0) return 0;
        return 3;
    }
    if (c > 0xF4 || end - s < 4 || (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && c1 < 0x90) return 0;
    if (c == 0xF4 && c1 >= 0x90) return 0;
    return 4;
}

static int hex4(const unsigned char *s, const unsigned char *end, unsigned *out) {
    unsigned v = 0;
    if (end - s < 4) return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c - '0' <= 9) d = c - '0';
        else if ((c | 0x20) - 'a' <= 5) d = (c | 0x20) - 'a' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int utf8_put(unsigned cp, unsigned char *o) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Scans the JSON string whose opening quote is at ps->p and leaves ps->p
 * after the closing quote. With dst, writes the decoded UTF-8 there and its
 * length to *out_len; dst must not lie after the first content byte (it is
 * the content itself for in-place decoding, or an earlier position in the
 * same buffer), and the write position then never passes the read position.
 * Without dst it only validates. Returns 0, or -1 with a BAD_JSON error. */
static int scan_string(pstate_t *ps, char *dst, size_t *out_len) {
    const unsigned char *r = (const unsigned char *)ps->p + 1;
    const unsigned char *end = (const unsigned char *)ps->end;
    const unsigned char *run = r;
    char *w = dst;
    for (;;) {
        r = find_special(r, end);
        if (r >= end) return json_err(ps, ps->p, "unterminated string");
        unsigned c = *r;
        if (c >= 0x80) {
            int k = utf8_seq(r, end);
            if (!k) return json_err(ps, (const char *)r, "invalid UTF-8 in string");
            r += k;
            continue;
        }
        if (w) {
            size_t n = (size_t)(r - run);
            if (w != (const char *)run) {
                if (n <= 16) {
                    for (size_t i = 0; i < n; i++) w[i] = (char)run[i];
                } else {
                    memmove(w, run, n);
                }
            }
            w += n;
        }
        if (c == '"') {
            ps->p = (char *)r + 1;
            if (out_len) *out_len = (size_t)(w - dst);
            return 0;
        }
        if (c != '\\') return json_err(ps, (const char *)r, "raw control character in string");
        if (end - r < 2) return json_err(ps, ps->p, "unterminated string");
        unsigned char tmp[4];
        int tn = 1;
        switch (r[1]) {
        case '"': tmp[0] = '"'; break;
        case '\\': tmp[0] = '\\'; break;
        case '/': tmp[0] = '/'; break;
        case 'b': tmp[0] = '\b'; break;
        case 'f': tmp[0] = '\f'; break;
        case 'n': tmp[0] = '\n'; break;
        case 'r': tmp[0] = '\r'; break;
        case 't': tmp[0] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(r + 2, end, &cp)) return json_err(ps, (const char *)r, "invalid \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - r < 12 || r[6] != '\\' || r[7] != 'u' || hex4(r + 8, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return json_err(ps, (const char *)r, "unpaired surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return json_err(ps, (const char *)r, "unpaired surrogate in \\u escape");
            }
            tn = utf8_put(cp, tmp);
            r += 4;
            break;
        }
        default:
            return json_err(ps, (const char *)r, "invalid escape in string");
        }
        r += 2;
        if (w) {
            memcpy(w, tmp, (size_t)tn);
            w += tn;
        }
        run = r;
    }
}

/* -- Numbers -------------------------------------------------------------- */

/* A validated JSON number token: value = (neg ? -1 : 1) * mant * 10^exp10
 * exactly, unless big: the token has more than 19 significant digits and mant
 * holds only the first 19 of them. */
typedef struct numtok {
    char *s;
    size_t len;
    uint64_t mant;
    int64_t exp10;
    bool neg, big;
} numtok_t;

static const uint64_t pow10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

static const double pow10_dbl[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static inline bool is_digit(char c) { return (unsigned)((unsigned char)c - '0') <= 9; }

/* Mantissa of a long digit string (int part [a, b), fraction [c, d)):
 * leading zeros skipped, trailing zeros folded into the exponent, more than
 * 19 significant digits marked big. Adds the fraction's scale to *exp10. */
static void long_mantissa(const char *a, const char *b, const char *c, const char *d,
                          numtok_t *t, int64_t *exp10) {
    uint64_t mant = 0;
    int ndig = 0, pend = 0;
    bool big = false;
    for (const char *q = a; q < d; q++) {
        if (q == b) {
            q = c;
            if (q >= d) break;
        }
        unsigned dg = (unsigned)(*q - '0');
        if (q >= c) (*exp10)--;
        if (dg == 0) {
            if (ndig) pend++;
        } else if (big || ndig + pend + 1 > 19) {
            big = true;
        } else {
            mant = mant * pow10_u64[pend + 1] + dg;
            ndig += pend + 1;
            pend = 0;
        }
    }
    t->mant = mant;
    t->big = big;
    *exp10 += pend;
}

/* Scans a number at ps->p (JSON grammar, strict) into *t and leaves ps->p
 * after it. A number is always followed by something inside a valid line
 * (',' '}' ']' or whitespace), so the end of the line here is an error;
 * this also guarantees the byte after the token exists (see num_double). */
static int scan_number(pstate_t *ps, numtok_t *t) {
    char *p = ps->p, *end = ps->end, *ia, *ib, *fa, *fb;
    int64_t exp10 = 0;
    t->s = p;
    t->neg = false;
    if (p < end && *p == '-') {
        t->neg = true;
        p++;
    }
    ia = p;
    if (p >= end || !is_digit(*p)) return json_err_char(ps, p, "a digit");
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) return json_err(ps, p, "leading zero in number");
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    ib = fa = fb = p;
    if (p < end && *p == '.') {
        fa = ++p;
        while (p < end && is_digit(*p)) p++;
        fb = p;
        if (fa == fb) return json_err_char(ps, p, "a digit after '.'");
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int esign = 1;
        int64_t e = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) esign = *p++ == '-' ? -1 : 1;
        if (p >= end || !is_digit(*p)) return json_err_char(ps, p, "a digit in the exponent");
        while (p < end && is_digit(*p)) {
            if (e < 100000000) e = e * 10 + (*p - '0');
            p++;
        }
        exp10 = esign * e;
    }
    if (p >= end) return json_err(ps, p, "unexpected end of line after a number");
    if ((ib - ia) + (fb - fa) <= 19) {
        uint64_t mant = 0;
        for (const char *q = ia; q < ib; q++) mant = mant * 10 + (unsigned)(*q - '0');
        for (const char *q = fa; q < fb; q++) mant = mant * 10 + (unsigned)(*q - '0');
        t->mant = mant;
        t->big = false;
        exp10 -= fb - fa;
    } else {
        long_mantissa(ia, ib, fa, fb, t, &exp10);
    }
    t->exp10 = exp10;
    t->len = (size_t)(p - t->s);
    ps->p = p;
    return 0;
}

/* The correctly rounded double of a scanned token. */
static double num_double(numtok_t *t) {
    double d;
    if (!t->big && t->mant == 0) return t->neg ? -0.0 : 0.0;
#if FLT_EVAL_METHOD == 0
    if (!t->big && t->mant <= (1ull << 53) && t->exp10 >= -22 && t->exp10 <= 22) {
        d = (double)t->mant;
        d = t->exp10 < 0 ? d / pow10_dbl[-t->exp10] : d * pow10_dbl[t->exp10];
        return t->neg ? -d : d;
    }
#endif
    /* The token was validated and is followed by a byte inside the line. */
    char *after = t->s + t->len, saved = *after;
    *after = '\0';
    d = strtod(t->s, NULL);
    *after = saved;
    return d;
}

enum { NUM_INT_OK, NUM_INT_FRACTION, NUM_INT_HUGE };

/* The exact integer value of a token, if it is one (5, 5.0, 5e0, 500e-2)
 * and at most 2^53 in magnitude. */
static int num_int(const numtok_t *t, int64_t *out) {
    uint64_t m = t->mant;
    int64_t e = t->exp10;
    if (t->big) return e < 0 ? NUM_INT_FRACTION : NUM_INT_HUGE;
    if (m == 0) {
        *out = 0;
        return NUM_INT_OK;
    }
    while (e < 0 && m % 10 == 0) {
        m /= 10;
        e++;
    }
    if (e < 0) return NUM_INT_FRACTION;
    for (; e > 0; e--) {
        if (m > (1ull << 53) / 10) return NUM_INT_HUGE;
        m *= 10;
    }
    if (m > (1ull << 53)) return NUM_INT_HUGE;
    *out = t->neg ? -(int64_t)m : (int64_t)m;
    return NUM_INT_OK;
}

/* -- Generic values ------------------------------------------------------- */

static int literal(pstate_t *ps, const char *word, size_t n) {
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return json_err_char(ps, ps->p, "a value");
    ps->p += n;
    return 0;
}

/* Validates and skips one JSON value at ps->p. `depth` is the nesting level
 * of the container holding it (the top-level object is level 1). */
static int skip_value(pstate_t *ps, int depth) {
    numtok_t t;
    if (ps->p >= ps->end) return json_err_char(ps, ps->p, "a value");
    switch (*ps->p) {
    case '"':
        return scan_string(ps, NULL, NULL);
    case '{':
    case '[': {
        char close = *ps->p == '{' ? '}' : ']';
        if (depth + 1 > EVENT_MAX_JSON_DEPTH) return too_deep(ps);
        ps->p = skip_ws(ps->p + 1, ps->end);
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                if (ps->p >= ps->end || *ps->p != '"')
                    return json_err_char(ps, ps->p, "'\"' to start a key");
                if (scan_string(ps, NULL, NULL)) return -1;
                ps->p = skip_ws(ps->p, ps->end);
                if (ps->p >= ps->end || *ps->p != ':') return json_err_char(ps, ps->p, "':'");
                ps->p = skip_ws(ps->p + 1, ps->end);
            }
            if (skip_value(ps, depth + 1)) return -1;
            ps->p = skip_ws(ps->p, ps->end);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p = skip_ws(ps->p + 1, ps->end);
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                return 0;
            }
            return json_err_char(ps, ps->p, close == '}' ? "',' or '}'" : "',' or ']'");
        }
    }
    case 't':
        return literal(ps, "true", 4);
    case 'f':
        return literal(ps, "false", 5);
    case 'n':
        return literal(ps, "null", 4);
    default:
        if (*ps->p == '-' || is_digit(*ps->p)) return scan_number(ps, &t);
        return json_err_char(ps, ps->p, "a value");
    }
}

/* -- Fields --------------------------------------------------------------- */

enum field {
    F_OP, F_SKU, F_MARKET, F_CATEGORY, F_BRAND, F_SELLER, F_PRICE, F_LIST_PRICE,
    F_STOCK, F_RATING, F_REVIEWS, F_LAZMALL, F_FREE_SHIPPING, F_TAGS, F_ATTRS,
    F_TS, F_QTY, F_AMOUNT, F_ADD, F_REMOVE, F__COUNT
};

#define FB(f) (1u << (f))

static const char *const field_names[F__COUNT] = {
    "op",      "sku",   "market",  "category", "brand",  "seller",        "price",
    "list_price", "stock", "rating", "reviews", "lazmall", "free_shipping", "tags",
    "attrs",   "ts",    "qty",     "amount",   "add",    "remove",
};

/* The EV_* bit each field sets. */
static const uint32_t field_ev[F__COUNT] = {
    0, 0, EV_MARKET, EV_CATEGORY, EV_BRAND, EV_SELLER, EV_PRICE, EV_LIST_PRICE,
    EV_STOCK, EV_RATING, EV_REVIEWS, EV_LAZMALL, EV_FREE_SHIPPING, EV_TAGS, EV_ATTRS,
    EV_TS, EV_QTY, EV_AMOUNT, EV_TAGS, EV_REMOVE,
};

#define F_ALWAYS (FB(F_OP) | FB(F_SKU) | FB(F_TS))
#define F_CATALOG                                                                       \
    (F_ALWAYS | FB(F_MARKET) | FB(F_CATEGORY) | FB(F_BRAND) | FB(F_SELLER) | FB(F_PRICE) | \
     FB(F_LIST_PRICE) | FB(F_STOCK) | FB(F_RATING) | FB(F_REVIEWS) | FB(F_LAZMALL) |      \
     FB(F_FREE_SHIPPING) | FB(F_TAGS) | FB(F_ATTRS))

/* Which fields each op uses; the others are ignored. */
static const uint32_t op_fields[OP__COUNT] = {
    [OP_RECORD] = F_CATALOG,
    [OP_UPSERT] = F_CATALOG,
    [OP_DELETE] = F_ALWAYS,
    [OP_PRICE] = F_ALWAYS | FB(F_PRICE) | FB(F_LIST_PRICE),
    [OP_STOCK] = F_ALWAYS | FB(F_STOCK),
    [OP_ORDER] = F_ALWAYS | FB(F_QTY) | FB(F_AMOUNT),
    [OP_VIEW] = F_ALWAYS,
    [OP_CLICK] = F_ALWAYS,
    [OP_CART] = F_ALWAYS,
    [OP_TAG] = F_ALWAYS | FB(F_ADD) | FB(F_REMOVE),
};

/* Why a field's (last) value was refused; the message is built only when the
 * error is reported. */
enum soft_kind {
    K_TYPE,          /* p: the value's raw text */
    K_EMPTY,
    K_TOO_LONG,      /* len: the decoded length */
    K_NUL,
    K_CATEGORY,      /* p: the decoded string */
    K_NUM_RANGE,     /* p: the number token */
    K_INT_FRACTION,  /* p: the number token */
    K_INT_LOW,
    K_INT_HIGH,
    K_TS_RANGE,      /* p: the token or decoded string */
    K_TS_FORMAT,     /* p: the decoded string */
    K_ATTRS_LONG,    /* len: the raw length */
    K_TAG_TYPE,      /* p: the element's first byte */
    K_TAG_BAD,       /* p: the decoded tag */
    K_TAG_RESERVED,  /* p: the decoded tag */
    K_TOO_MANY_TAGS,
    K_UNKNOWN_OP,    /* p: the decoded op */
};

typedef struct soft {
    const char *p;
    size_t len;
    int kind;
} soft_t;

typedef struct parse {
    pstate_t ps;
    event_t *ev;
    uint32_t valid;   /* fields whose last value was accepted */
    uint32_t failed;  /* fields whose last value was refused (soft[f] says why) */
    uint32_t touched; /* fields written into ev (cleared unless kept) */
    event_op_t op;
    event_tags_t tags, add, remove;
    soft_t soft[F__COUNT];
} parse_t;

static int soft_fail(parse_t *P, int f, int kind, const char *p, size_t len) {
    P->valid &= ~FB(f);
    P->failed |= FB(f);
    P->soft[f] = (soft_t){p, len, kind};
    return 0;
}

static inline void field_ok(parse_t *P, int f) {
    P->valid |= FB(f);
    P->failed &= ~FB(f);
    P->touched |= FB(f);
}

/* A value of the wrong JSON type: record it and skip the value. */
static int type_fail(parse_t *P, int f) {
    char *start = P->ps.p;
    if (skip_value(&P->ps, 1)) return -1;
    return soft_fail(P, f, K_TYPE, start, (size_t)(P->ps.p - start));
}

static int field_lookup(const char *k, size_t n) {
#define KEY(s, f) \
    if (n == sizeof(s) - 1 && memcmp(k, s, sizeof(s) - 1) == 0) return f
    switch (n) {
    case 2: KEY("op", F_OP); KEY("ts", F_TS); break;
    case 3: KEY("sku", F_SKU); KEY("qty", F_QTY); KEY("add", F_ADD); break;
    case 4: KEY("tags", F_TAGS); break;
    case 5: KEY("price", F_PRICE); KEY("stock", F_STOCK); KEY("brand", F_BRAND);
        KEY("attrs", F_ATTRS); break;
    case 6: KEY("market", F_MARKET); KEY("seller", F_SELLER); KEY("rating", F_RATING);
        KEY("amount", F_AMOUNT); KEY("remove", F_REMOVE); break;
    case 7: KEY("reviews", F_REVIEWS); KEY("lazmall", F_LAZMALL); break;
    case 8: KEY("category", F_CATEGORY); break;
    case 10: KEY("list_price", F_LIST_PRICE); break;
    case 13: KEY("free_shipping", F_FREE_SHIPPING); break;
    default: break;
    }
#undef KEY
    return -1;
}

static int op_lookup(const char *s, size_t n) {
    static const unsigned char op_len[OP__COUNT] = {6, 6, 6, 5, 5, 5, 4, 5, 4, 3};
    for (int i = 0; i < OP__COUNT; i++)
        if (op_len[i] == n && memcmp(op_names[i], s, n) == 0) return i;
    return -1;
}

/* A string field: op, sku, market, category, brand, seller. */
static int parse_str_field(parse_t *P, int f) {
    pstate_t *ps = &P->ps;
    char *s = ps->p + 1;
    size_t n;
    if (*ps->p != '"') return type_fail(P, f);
    if (scan_string(ps, s, &n)) return -1;
    if (f == F_OP) {
        int op = op_lookup(s, n);
        if (op < 0) return soft_fail(P, f, K_UNKNOWN_OP, s, n);
        P->op = (event_op_t)op;
        field_ok(P, f);
        return 0;
    }
    size_t max = f == F_SKU ? EVENT_MAX_SKU_LEN : EVENT_MAX_DIM_LEN;
    if (n == 0) return soft_fail(P, f, K_EMPTY, s, 0);
    if (n > max) return soft_fail(P, f, K_TOO_LONG, s, n);
    /* a NUL can only come from a \u0000 escape, i.e. when decoding shrank it */
    if (n != (size_t)(ps->p - 1 - s) && memchr(s, '\0', n)) return soft_fail(P, f, K_NUL, s, n);
    slice_t v = {s, (uint32_t)n};
    event_t *ev = P->ev;
    switch (f) {
    case F_SKU: ev->sku = v; break;
    case F_MARKET: ev->market = v; break;
    case F_BRAND: ev->brand = v; break;
    case F_SELLER: ev->seller = v; break;
    default: { /* F_CATEGORY: "top" or "top/leaf" */
        const char *slash = memchr(s, '/', n);
        if (slash && (slash == s || slash == s + n - 1 ||
                      memchr(slash + 1, '/', (size_t)(s + n - slash - 1))))
            return soft_fail(P, f, K_CATEGORY, s, n);
        ev->category = v;
        break;
    }
    }
    field_ok(P, f);
    return 0;
}

/* price, list_price, amount (0..EVENT_MAX_PRICE) and rating (0..5). */
static int parse_num_field(parse_t *P, int f) {
    numtok_t t;
    char c = *P->ps.p;
    if (c != '-' && !is_digit(c)) return type_fail(P, f);
    if (scan_number(&P->ps, &t)) return -1;
    double d = num_double(&t), max = f == F_RATING ? 5.0 : EVENT_MAX_PRICE;
    if (!(d >= 0.0 && d <= max)) return soft_fail(P, f, K_NUM_RANGE, t.s, t.len);
    event_t *ev = P->ev;
    switch (f) {
    case F_PRICE: ev->price = d; break;
    case F_LIST_PRICE: ev->list_price = d; break;
    case F_AMOUNT: ev->amount = d; break;
    default: ev->rating = d; break;
    }
    field_ok(P, f);
    return 0;
}

static void int_bounds(int f, int64_t *lo, int64_t *hi) {
    *lo = f == F_QTY ? 1 : 0;
    *hi = f == F_QTY ? EVENT_MAX_QTY : f == F_STOCK ? EVENT_MAX_STOCK : EVENT_MAX_REVIEWS;
}

/* stock, reviews, qty. */
static int parse_int_field(parse_t *P, int f) {
    numtok_t t;
    int64_t v, lo, hi;
    char c = *P->ps.p;
    if (c != '-' && !is_digit(c)) return type_fail(P, f);
    if (scan_number(&P->ps, &t)) return -1;
    int rc = num_int(&t, &v);
    if (rc == NUM_INT_FRACTION) return soft_fail(P, f, K_INT_FRACTION, t.s, t.len);
    int_bounds(f, &lo, &hi);
    if (rc == NUM_INT_HUGE) return soft_fail(P, f, t.neg ? K_INT_LOW : K_INT_HIGH, t.s, t.len);
    if (v < lo) return soft_fail(P, f, K_INT_LOW, t.s, t.len);
    if (v > hi) return soft_fail(P, f, K_INT_HIGH, t.s, t.len);
    event_t *ev = P->ev;
    switch (f) {
    case F_STOCK: ev->stock = v; break;
    case F_REVIEWS: ev->reviews = v; break;
    default: ev->qty = v; break;
    }
    field_ok(P, f);
    return 0;
}

static int parse_bool_field(parse_t *P, int f) {
    pstate_t *ps = &P->ps;
    bool v;
    if (*ps->p == 't') {
        if (literal(ps, "true", 4)) return -1;
        v = true;
    } else if (*ps->p == 'f') {
        if (literal(ps, "false", 5)) return -1;
        v = false;
    } else {
        return type_fail(P, f);
    }
    if (f == F_LAZMALL) P->ev->lazmall = v;
    else P->ev->free_shipping = v;
    field_ok(P, f);
    return 0;
}

/* [2000-01-01T00:00Z, 2101-01-01T00:00Z): years 2000 through 2100. */
#define TS_MIN_MS 946684800000LL
#define TS_END_MS 4133980800000LL

static int parse_ts_field(parse_t *P) {
    pstate_t *ps = &P->ps;
    int64_t v;
    char c = *ps->p;
    if (c == '"') {
        char *s = ps->p + 1;
        size_t n;
        if (scan_string(ps, s, &n)) return -1;
        if (parse_iso8601_ms(s, n, &v)) return soft_fail(P, F_TS, K_TS_FORMAT, s, n);
        if (v < TS_MIN_MS || v >= TS_END_MS) return soft_fail(P, F_TS, K_TS_RANGE, s, n);
    } else if (c == '-' || is_digit(c)) {
        numtok_t t;
        if (scan_number(ps, &t)) return -1;
        int rc = num_int(&t, &v);
        if (rc == NUM_INT_FRACTION) return soft_fail(P, F_TS, K_INT_FRACTION, t.s, t.len);
        if (rc != NUM_INT_OK || v < TS_MIN_MS || v >= TS_END_MS)
            return soft_fail(P, F_TS, K_TS_RANGE, t.s, t.len);
    } else {
        return type_fail(P, F_TS);
    }
    P->ev->ts = v;
    field_ok(P, F_TS);
    return 0;
}

static int parse_attrs_field(parse_t *P) {
    pstate_t *ps = &P->ps;
    char *start = ps->p;
    if (*start != '{') return type_fail(P, F_ATTRS);
    if (skip_value(ps, 1)) return -1;
    size_t n = (size_t)(ps->p - start);
    if (n > EVENT_MAX_ATTRS_LEN) return soft_fail(P, F_ATTRS, K_ATTRS_LONG, start, n);
    P->ev->attrs = (slice_t){start, (uint32_t)n};
    field_ok(P, F_ATTRS);
    return 0;
}

/* [A-Za-z0-9_:/.+-] */
static const unsigned char tag_char[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['_'] = 1, [':'] = 1,
    ['/'] = 1, ['.'] = 1, ['+'] = 1, ['-'] = 1,
};

/* Automatic tags cannot be set or removed as free tags. */
static bool tag_reserved(const char *t, size_t n) {
#define PREFIX(s) (n >= sizeof(s) - 1 && memcmp(t, s, sizeof(s) - 1) == 0)
    switch (t[0]) {
    case 'l': return n == 7 && memcmp(t, "lazmall", 7) == 0;
    case 'f': return n == 13 && memcmp(t, "free_shipping", 13) == 0;
    case 'i': return n == 8 && memcmp(t, "in_stock", 8) == 0;
    case 'm': return PREFIX("market:");
    case 'b': return PREFIX("brand:");
    case 'c': return PREFIX("category:");
    case 's': return PREFIX("seller:");
    default: return false;
    }
#undef PREFIX
}

/* tags, add, remove: decoded in place from the '[' on (file comment). */
static int parse_tags_field(parse_t *P, int f, event_tags_t *out) {
    pstate_t *ps = &P->ps;
    char *start = ps->p, *w = start;
    uint32_t n = 0;
    bool bad = false;
    if (*start != '[') return type_fail(P, f);
    ps->p = skip_ws(ps->p + 1, ps->end);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
    } else {
        for (;;) {
            if (ps->p >= ps->end) return json_err_char(ps, ps->p, "a value");
            if (bad) {
                if (skip_value(ps, 2)) return -1;
            } else if (*ps->p != '"') {
                char *e = ps->p;
                if (skip_value(ps, 2)) return -1;
                soft_fail(P, f, K_TAG_TYPE, e, (size_t)(ps->p - e));
                bad = true;
            } else {
                size_t len;
                if (scan_string(ps, w, &len)) return -1;
                bool ok = len >= 1 && len <= EVENT_MAX_TAG_LEN;
                for (size_t i = 0; ok && i < len; i++) ok = tag_char[(unsigned char)w[i]];
                if (++n > EVENT_MAX_TAGS) {
                    soft_fail(P, f, K_TOO_MANY_TAGS, NULL, 0);
                    bad = true;
                } else if (!ok) {
                    soft_fail(P, f, K_TAG_BAD, w, len);
                    bad = true;
                } else if (tag_reserved(w, len)) {
                    soft_fail(P, f, K_TAG_RESERVED, w, len);
                    bad = true;
                } else {
                    w += len;
                    *w++ = '\0';
                }
            }
            ps->p = skip_ws(ps->p, ps->end);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p = skip_ws(ps->p + 1, ps->end);
                continue;
            }
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                break;
            }
            return json_err_char(ps, ps->p, "',' or ']'");
        }
    }
    if (bad) return 0;
    *w = '\0'; /* the list terminator */
    out->p = start;
    out->n = n;
    field_ok(P, f);
    return 0;
}

static int parse_field(parse_t *P, int f) {
    pstate_t *ps = &P->ps;
    if (*ps->p == 'n') { /* null: the field is absent */
        if (literal(ps, "null", 4)) return -1;
        P->valid &= ~FB(f);
        P->failed &= ~FB(f);
        return 0;
    }
    switch (f) {
    case F_OP: case F_SKU: case F_MARKET: case F_CATEGORY: case F_BRAND: case F_SELLER:
        return parse_str_field(P, f);
    case F_PRICE: case F_LIST_PRICE: case F_RATING: case F_AMOUNT:
        return parse_num_field(P, f);
    case F_STOCK: case F_REVIEWS: case F_QTY:
        return parse_int_field(P, f);
    case F_LAZMALL: case F_FREE_SHIPPING:
        return parse_bool_field(P, f);
    case F_TAGS: return parse_tags_field(P, f, &P->tags);
    case F_ADD: return parse_tags_field(P, f, &P->add);
    case F_REMOVE: return parse_tags_field(P, f, &P->remove);
    case F_ATTRS: return parse_attrs_field(P);
    default: return parse_ts_field(P);
    }
}

/* -- Field error messages ------------------------------------------------- */

static const char *field_expect(int f) {
    switch (f) {
    case F_PRICE: case F_LIST_PRICE: case F_RATING: case F_AMOUNT: return "a number";
    case F_STOCK: case F_REVIEWS: case F_QTY: return "an integer";
    case F_LAZMALL: case F_FREE_SHIPPING: return "true or false";
    case F_TAGS: case F_ADD: case F_REMOVE: return "an array of strings";
    case F_ATTRS: return "a JSON object";
    case F_TS: return "an integer (ms since epoch) or an ISO-8601 string";
    default: return "a string";
    }
}

static const char *json_type_name(char c) {
    switch (c) {
    case '"': return "a string";
    case '{': return "an object";
    case '[': return "an array";
    case 't': case 'f': return "a boolean";
    default: return "a number";
    }
}

static int soft_error(parse_t *P, int f, event_error_t *err) {
    const soft_t *s = &P->soft[f];
    const char *name = field_names[f];
    char u[72];
    int64_t lo, hi;
    event_reject_t reason = REJ_BAD_VALUE;
    char *m = err->msg;
    size_t cap = sizeof err->msg;
    if (s->p && s->kind != K_TOO_LONG && s->kind != K_ATTRS_LONG) put_user(u, sizeof u, s->p, s->len);
    else u[0] = '\0';
    int_bounds(f, &lo, &hi);
    switch (s->kind) {
    case K_TYPE:
        reason = REJ_BAD_TYPE;
        if (s->p[0] == '"' || s->p[0] == '-' || is_digit(s->p[0]))
            snprintf(m, cap, "field \"%s\" must be %s, got %s %s", name, field_expect(f),
                     json_type_name(s->p[0]), u);
        else
            snprintf(m, cap, "field \"%s\" must be %s, got %s", name, field_expect(f),
                     json_type_name(s->p[0]));
        break;
    case K_EMPTY:
        snprintf(m, cap, "field \"%s\" must not be empty", name);
        break;
    case K_TOO_LONG:
        snprintf(m, cap, "field \"%s\" is %zu bytes long, max %d", name, s->len,
                 f == F_SKU ? EVENT_MAX_SKU_LEN : EVENT_MAX_DIM_LEN);
        break;
    case K_NUL:
        snprintf(m, cap, "field \"%s\" must not contain \\u0000", name);
        break;
    case K_CATEGORY:
        snprintf(m, cap, "field \"category\" must be \"top\" or \"top/leaf\", got \"%s\"", u);
        break;
    case K_NUM_RANGE:
        snprintf(m, cap, "field \"%s\" must be a number between 0 and %s, got %s", name,
                 f == F_RATING ? "5" : "1000000000", u);
        break;
    case K_INT_FRACTION:
        snprintf(m, cap, "field \"%s\" must be an integer, got %s", name, u);
        break;
    case K_INT_LOW:
        snprintf(m, cap, "field \"%s\" must be an integer >= %lld, got %s", name, (long long)lo, u);
        break;
    case K_INT_HIGH:
        snprintf(m, cap, "field \"%s\" must be an integer <= %lld, got %s", name, (long long)hi, u);
        break;
    case K_TS_RANGE:
        snprintf(m, cap,
                 "field \"ts\" must be a time in the years 2000 to 2100 (ms since epoch or "
                 "ISO-8601), got %s", u);
        break;
    case K_TS_FORMAT:
        snprintf(m, cap,
                 "field \"ts\" must be ms since epoch or an ISO-8601 date-time like "
                 "\"2026-11-11T00:00:00+08:00\", got \"%s\"", u);
        break;
    case K_ATTRS_LONG:
        snprintf(m, cap, "field \"attrs\" is %zu bytes long, max %d", s->len, EVENT_MAX_ATTRS_LEN);
        break;
    case K_TAG_TYPE:
        reason = REJ_BAD_TYPE;
        snprintf(m, cap, "field \"%s\" must be an array of strings, got %s in it", name,
                 json_type_name(s->p[0]));
        break;
    case K_TAG_BAD:
        reason = REJ_BAD_TAG;
        if (s->len == 0)
            snprintf(m, cap, "empty tag in \"%s\"", name);
        else
            snprintf(m, cap, "tag \"%s\" in \"%s\" must be 1 to %d characters of [A-Za-z0-9_:/.+-]",
                     u, name, EVENT_MAX_TAG_LEN);
        break;
    case K_TAG_RESERVED:
        reason = REJ_BAD_TAG;
        snprintf(m, cap, "tag \"%s\" in \"%s\" is reserved (automatic tags come from the fields)",
                 u, name);
        break;
    case K_TOO_MANY_TAGS:
        reason = REJ_TOO_MANY_TAGS;
        snprintf(m, cap, "field \"%s\" has more than %d tags", name, EVENT_MAX_TAGS);
        break;
    default: /* K_UNKNOWN_OP */
        reason = REJ_UNKNOWN_OP;
        snprintf(m, cap,
                 "unknown op \"%s\" (expected one of record, upsert, delete, price, stock, "
                 "order, view, click, cart, tag)", u);
        break;
    }
    err->reason = reason;
    return -1;
}

static int reject(event_error_t *err, event_reject_t reason, const char *msg) {
    err->reason = reason;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
    return -1;
}

/* Zeroes the event storage of fields that are not kept. */
static void clear_fields(event_t *ev, uint32_t m) {
    while (m) {
        int f = __builtin_ctz(m);
        m &= m - 1;
        switch (f) {
        case F_MARKET: ev->market = (slice_t){0}; break;
        case F_CATEGORY: ev->category = (slice_t){0}; break;
        case F_BRAND: ev->brand = (slice_t){0}; break;
        case F_SELLER: ev->seller = (slice_t){0}; break;
        case F_PRICE: ev->price = 0; break;
        case F_LIST_PRICE: ev->list_price = 0; break;
        case F_STOCK: ev->stock = 0; break;
        case F_RATING: ev->rating = 0; break;
        case F_REVIEWS: ev->reviews = 0; break;
        case F_LAZMALL: ev->lazmall = false; break;
        case F_FREE_SHIPPING: ev->free_shipping = false; break;
        case F_ATTRS: ev->attrs = (slice_t){0}; break;
        case F_TS: ev->ts = 0; break;
        case F_QTY: ev->qty = 0; break;
        case F_AMOUNT: ev->amount = 0; break;
        default: break; /* op, sku, tag lists: not stored in ev while parsing */
        }
    }
}

/* -- The event parser ----------------------------------------------------- */

/* Field by field: a 208-byte memset compiles to `rep stos`, which costs more
 * than the rest of a short event's parse on some CPUs. */
_Static_assert(sizeof(event_t) == 208, "event_t changed: update event_zero");
static inline void event_zero(event_t *ev) {
    static const slice_t none = {NULL, 0};
    static const event_tags_t no_tags = {NULL, 0};
    ev->op = OP_RECORD;
    ev->has = 0;
    ev->sku = ev->market = ev->category = ev->brand = ev->seller = ev->attrs = none;
    ev->price = ev->list_price = ev->rating = ev->amount = 0;
    ev->stock = ev->reviews = ev->qty = ev->ts = 0;
    ev->lazmall = ev->free_shipping = false;
    ev->tags = ev->tags_remove = no_tags;
}

int ndjson_parse_event(char *line, size_t len, int64_t now_ms, event_t *ev, event_error_t *err) {
    event_error_t dummy;
    parse_t P;
    pstate_t *ps = &P.ps;
    if (!err) err = &dummy;
    if (len > EVENT_MAX_LINE_LEN) {
        err->reason = REJ_TOO_LONG;
        snprintf(err->msg, sizeof err->msg, "line is %zu bytes long, max %d", len,
                 EVENT_MAX_LINE_LEN);
        return -1;
    }
    ps->base = line;
    ps->end = line + len;
    ps->err = err;
    ps->p = skip_ws(line, ps->end);
    if (ps->p == ps->end) {
        err->reason = REJ_NONE;
        err->msg[0] = '\0';
        return 1;
    }
    event_zero(ev);
    P.ev = ev;
    P.valid = P.failed = P.touched = 0;
    P.op = OP_RECORD;
    P.tags = P.add = P.remove = (event_tags_t){NULL, 0};

    if (*ps->p != '{') return json_err_char(ps, ps->p, "'{' (a line must be one JSON object)");
    ps->p = skip_ws(ps->p + 1, ps->end);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            if (ps->p >= ps->end || *ps->p != '"')
                return json_err_char(ps, ps->p, "'\"' to start a key");
            char *k = ps->p + 1;
            char *q = (char *)find_special((const unsigned char *)k, (const unsigned char *)ps->end);
            size_t kn;
            if (q < ps->end && *q == '"') { /* plain key: nothing to decode */
                kn = (size_t)(q - k);
                ps->p = q + 1;
            } else if (scan_string(ps, k, &kn)) {
                return -1;
            }
            ps->p = skip_ws(ps->p, ps->end);
            if (ps->p >= ps->end || *ps->p != ':') return json_err_char(ps, ps->p, "':'");
            ps->p = skip_ws(ps->p + 1, ps->end);
            if (ps->p >= ps->end) return json_err_char(ps, ps->p, "a value");
            int f = field_lookup(k, kn);
            if (f < 0 ? skip_value(ps, 1) : parse_field(&P, f)) return -1;
            ps->p = skip_ws(ps->p, ps->end);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p = skip_ws(ps->p + 1, ps->end);
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            return json_err_char(ps, ps->p, "',' or '}'");
        }
    }
    ps->p = skip_ws(ps->p, ps->end);
    if (ps->p != ps->end) return json_err(ps, ps->p, "unexpected data after the object");

    /* The op decides which fields matter, so it is judged first. */
    if (P.failed & FB(F_OP)) return soft_error(&P, F_OP, err);
    event_op_t op = (P.valid & FB(F_OP)) ? P.op : OP_RECORD;
    uint32_t rel = op_fields[op];
    if (P.failed & FB(F_SKU)) return soft_error(&P, F_SKU, err);
    if (!(P.valid & FB(F_SKU))) return reject(err, REJ_MISSING_SKU, "field \"sku\" is required");
    uint32_t bad = P.failed & rel;
    if (bad) return soft_error(&P, __builtin_ctz(bad), err);
    const char *missing = NULL;
    switch (op) {
    case OP_PRICE:
        if (!(P.valid & FB(F_PRICE))) missing = "field \"price\" is required for op \"price\"";
        break;
    case OP_STOCK:
        if (!(P.valid & FB(F_STOCK))) missing = "field \"stock\" is required for op \"stock\"";
        break;
    case OP_ORDER:
        if (!(P.valid & FB(F_QTY))) missing = "field \"qty\" is required for op \"order\"";
        else if (!(P.valid & FB(F_AMOUNT)))
            missing = "field \"amount\" is required for op \"order\"";
        break;
    case OP_TAG:
        if (!(P.valid & (FB(F_ADD) | FB(F_REMOVE))))
            missing = "field \"add\" or \"remove\" is required for op \"tag\"";
        break;
    default:
        break;
    }
    if (missing) return reject(err, REJ_MISSING_FIELD, missing);

    uint32_t keep = P.valid & rel;
    if (P.touched & ~keep) clear_fields(ev, P.touched & ~keep);
    uint32_t has = 0;
    for (uint32_t m = keep & ~(FB(F_OP) | FB(F_SKU)); m; m &= m - 1)
        has |= field_ev[__builtin_ctz(m)];
    ev->op = op;
    ev->has = has;
    if (op == OP_TAG) {
        if (keep & FB(F_ADD)) ev->tags = P.add;
        if (keep & FB(F_REMOVE)) ev->tags_remove = P.remove;
    } else if (keep & FB(F_TAGS)) {
        ev->tags = P.tags;
    }
    if (!(keep & FB(F_TS))) ev->ts = now_ms;
    err->reason = REJ_NONE;
    err->msg[0] = '\0';
    return 0;
}
