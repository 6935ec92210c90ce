/* gen.c - deterministic catalog and event-stream generator (see gen.h).
 *
 * Randomness: every draw comes from a splitmix64 sequence seeded from
 * (seed, SKU index, variant, purpose), so record i of a catalog can be made
 * without making records 0..i-1, and the same arguments give the same bytes
 * (no libc rand; the only platform-dependent arithmetic is libm's log, exp,
 * pow and cos, whose results are only used to pick integers and cents).
 *
 * Distributions (the shape of a marketplace, not of any real one):
 *  - markets SG 20, MY 20, TH 20, VN 15, PH 10, ID 15 (weights);
 *  - 12 top categories with 4..9 leaves, Zipf-like weights over both;
 *  - brands b0001..b2000 and sellers s00001..s20000, Zipf;
 *  - price log-normal around a median per top category, 0.50 .. 5000.00,
 *    kept as integer cents so the printed decimal is exact; list_price absent
 *    for 10% of SKUs, equal to the price for 30%, else a 5..70% discount;
 *  - stock 0..500 (15% zero), rating 1.0..5.0 (15% absent), reviews Zipf,
 *    lazmall 25%, free_shipping 40%, 0..3 free tags ("blocked" ~2%), 2..5
 *    attrs of fixed types per key.
 *  - event SKUs: Zipf popularity (exponent GEN_ZIPF_SKU) through a
 *    permutation of the indexes (popular SKUs are spread over the catalog);
 *    a quarter of the picks use a "trending" permutation that changes every
 *    4 hours of event time.
 *
 * Output is written into caller buffers of at least GEN_LINE_MAX bytes; the
 * writer checks bounds anyway and a line that would not fit yields 0.
 * Threads: see gen.h. No allocation per line. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

/* -- Random numbers ------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rng_next(rng_t *r) {
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Purposes, so independent streams of one SKU do not share draws. */
enum { P_BASE = 1, P_VOL = 2, P_MARKET = 3, P_STREAM = 4, P_PERM = 5 };

static inline rng_t rng_for(uint64_t seed, uint64_t i, uint64_t variant, uint64_t purpose) {
    rng_t r = {mix64(mix64(mix64(seed ^ (purpose << 56)) ^ i) ^ variant)};
    return r;
}

static inline double rng_u01(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
/* Uniform in [0, n). */
static inline uint32_t rng_below(rng_t *r, uint32_t n) {
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}
/* True with probability pct/100. */
static inline bool rng_pct(rng_t *r, double pct) { return rng_u01(r) * 100.0 < pct; }

/* Standard normal (Box-Muller, one of the pair). */
static double rng_normal(rng_t *r) {
    double u1 = rng_u01(r), u2 = rng_u01(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Zipf-like rank in [0, n) with exponent s (continuous inverse of the power
 * law, one pow per draw): rank 0 is the most frequent. */
static uint32_t zipf_rank(rng_t *r, uint32_t n, double s) {
    double u = rng_u01(r), x;
    if (fabs(s - 1.0) < 1e-9) {
        x = exp(u * log((double)n + 1.0));
    } else {
        double a = 1.0 - s;
        x = pow((pow((double)n + 1.0, a) - 1.0) * u + 1.0, 1.0 / a);
    }
    double k = floor(x) - 1.0;
    if (k < 0) k = 0;
    if (k > (double)n - 1) k = (double)n - 1;
    return (uint32_t)k;
}

/* Index into a table of cumulative integer weights. */
static uint32_t pick_weighted(rng_t *r, const uint16_t *cum, uint32_t n) {
    uint32_t x = rng_below(r, cum[n - 1]);
    for (uint32_t k = 0; k < n; k++)
        if (x < cum[k]) return k;
    return n - 1;
}

/* -- Vocabulary ----------------------------------------------------------- */

static const char *const markets[] = {"SG", "MY", "TH", "VN", "PH", "ID"};
static const uint16_t market_cum[] = {20, 40, 60, 75, 85, 100};

typedef struct category {
    const char *top;
    int median_cents;  /* median price of the log-normal */
    uint32_t nleaves;
    const char *leaves[9];
} category_t;

static const category_t categories[] = {
    {"electronics", 12000, 9, {"phones", "laptops", "audio", "accessories", "tablets", "cameras", "wearables", "tv", "gaming"}},
    {"fashion", 2500, 7, {"women", "men", "shoes", "bags", "watches", "jewelry", "kids"}},
    {"home", 3500, 8, {"kitchen", "decor", "bedding", "furniture", "storage", "lighting", "cleaning", "garden"}},
    {"beauty", 1800, 5, {"skincare", "makeup", "haircare", "fragrance", "bath"}},
    {"sports", 4000, 6, {"fitness", "outdoor", "running", "cycling", "swimming", "team_sports"}},
    {"toys", 2000, 6, {"building", "dolls", "educational", "puzzles", "outdoor_play", "rc"}},
    {"grocery", 600, 5, {"snacks", "beverages", "pantry", "fresh", "frozen"}},
    {"books", 1200, 4, {"fiction", "nonfiction", "children", "comics"}},
    {"health", 2000, 4, {"supplements", "personal_care", "medical", "fitness_nutrition"}},
    {"automotive", 3000, 5, {"accessories", "parts", "tools", "oils", "electronics"}},
    {"baby", 2200, 4, {"diapers", "feeding", "nursery", "strollers"}},
    {"pets", 1500, 4, {"dog", "cat", "fish", "small_pets"}},
};
#define NCATEGORIES 12
static const uint16_t category_cum[NCATEGORIES] = {18, 34, 47, 58, 66, 73, 80, 85, 90, 94, 97, 100};
/* Leaf k of a top with n leaves has weight 60/(k+1) (Zipf); cumulative
 * tables per leaf count 4..9. */
static const uint16_t leaf_cum[10][9] = {
    [4] = {60, 90, 110, 125},
    [5] = {60, 90, 110, 125, 137},
    [6] = {60, 90, 110, 125, 137, 147},
    [7] = {60, 90, 110, 125, 137, 147, 155},
    [8] = {60, 90, 110, 125, 137, 147, 155, 162},
    [9] = {60, 90, 110, 125, 137, 147, 155, 162, 168},
};

#define NBRANDS 2000
#define NSELLERS 20000

enum {
    T_GIFTABLE, T_NEW_ARRIVAL, T_BESTSELLER, T_CLEARANCE, T_ECO, T_IMPORTED,
    T_PREMIUM, T_BUNDLE, T_FLASH_ELIGIBLE, T_BLOCKED, NTAGS
};
static const char *const tag_names[NTAGS] = {
    "giftable", "new_arrival", "bestseller", "clearance", "eco",
    "imported", "premium", "bundle", "flash_eligible", "blocked",
};
/* Free tags except "blocked", weighted. */
static const uint16_t tag_cum[NTAGS - 1] = {15, 27, 37, 47, 55, 65, 73, 81, 93};

static const char *const colors[] = {"black", "white", "red", "blue", "green", "silver",
                                     "gold", "pink", "navy", "beige", "cr\\u00e8me"};
static const char *const materials[] = {"cotton", "polyester", "leather", "steel", "aluminium",
                                        "plastic", "wood", "bamboo", "recycled_plastic",
                                        "organic_cotton", "glass", "ceramic"};
static const int warranties[] = {0, 3, 6, 12, 24, 36};
static const char *const age_groups[] = {"0-2", "3-5", "6-12", "teen", "adult"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* -- Bounded writer ------------------------------------------------------- */

typedef struct wbuf {
    char *p, *end; /* end: one byte is kept for the NUL */
    bool overflow;
} wbuf_t;

static inline void w_mem(wbuf_t *w, const char *s, size_t n) {
    if ((size_t)(w->end - w->p) < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}
static inline void w_str(wbuf_t *w, const char *s) { w_mem(w, s, strlen(s)); }
#define W_LIT(w, s) w_mem((w), (s), sizeof(s) - 1)

static void w_u64(wbuf_t *w, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    w_mem(w, tmp + sizeof tmp - n, (size_t)n);
}
static void w_i64(wbuf_t *w, int64_t v) {
    if (v < 0) {
        W_LIT(w, "-");
        w_u64(w, (uint64_t)(-(v + 1)) + 1);
    } else {
        w_u64(w, (uint64_t)v);
    }
}
/* Zero-padded to `width` digits. */
static void w_u64_pad(wbuf_t *w, uint64_t v, int width) {
    char tmp[24];
    int n = 0;
    while (n < width || v) {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    }
    w_mem(w, tmp + sizeof tmp - n, (size_t)n);
}
/* cents as "123.45" */
static void w_cents(wbuf_t *w, uint64_t cents) {
    w_u64(w, cents / 100);
    W_LIT(w, ".");
    w_u64_pad(w, cents % 100, 2);
}
/* tenths as "4.5" */
static void w_tenths(wbuf_t *w, uint64_t tenths) {
    w_u64(w, tenths / 10);
    W_LIT(w, ".");
    w_u64(w, tenths % 10);
}
static void w_bool(wbuf_t *w, bool b) {
    if (b) W_LIT(w, "true");
    else W_LIT(w, "false");
}

static size_t w_finish(wbuf_t *w, char *start) {
    if (w->overflow) {
        start[0] = '\0';
        return 0;
    }
    *w->p = '\0';
    return (size_t)(w->p - start);
}

static void w_sku(wbuf_t *w, uint64_t seed, uint32_t i) {
    w_str(w, gen_market(seed, i));
    W_LIT(w, "-");
    w_u64_pad(w, i, 7);
}

/* -- SKU attributes --------------------------------------------------------- */

const char *gen_market(uint64_t seed, uint32_t i) {
    rng_t r = rng_for(seed, i, 0, P_MARKET);
    return markets[pick_weighted(&r, market_cum, 6)];
}

size_t gen_sku_id(uint64_t seed, uint32_t i, char *buf) {
    wbuf_t w = {buf, buf + 15, false};
    w_sku(&w, seed, i);
    return w_finish(&w, buf);
}

/* What SKU i keeps for its life (depends on seed and i only). */
typedef struct sku_base {
    uint32_t top, leaf, brand, seller;  /* brand 1..2000, seller 1..20000 */
    uint32_t price_cents;               /* catalog price */
    uint32_t list_cents;                /* 0 = no list price */
    bool lazmall, free_shipping;
} sku_base_t;

static uint32_t clamp_cents(double c) {
    if (c < 50) return 50;
    if (c > 500000) return 500000;
    return (uint32_t)llround(c);
}

static void sku_base(uint64_t seed, uint32_t i, sku_base_t *b) {
    rng_t r = rng_for(seed, i, 0, P_BASE);
    b->top = pick_weighted(&r, category_cum, NCATEGORIES);
    const category_t *c = &categories[b->top];
    b->leaf = pick_weighted(&r, leaf_cum[c->nleaves], c->nleaves);
    b->brand = 1 + zipf_rank(&r, NBRANDS, 1.05);
    b->seller = 1 + zipf_rank(&r, NSELLERS, 0.8);
    b->price_cents = clamp_cents(c->median_cents * exp(0.9 * rng_normal(&r)));
    double u = rng_u01(&r);
    if (u < 0.10) {
        b->list_cents = 0;
    } else if (u < 0.40) {
        b->list_cents = b->price_cents;
    } else {
        double d = 0.05 + 0.65 * rng_u01(&r);
        b->list_cents = (uint32_t)llround(b->price_cents / (1.0 - d));
    }
    b->lazmall = rng_pct(&r, 25);
    b->free_shipping = rng_pct(&r, 40);
}

static void w_category(wbuf_t *w, uint32_t top, uint32_t leaf) {
    const category_t *c = &categories[top];
    w_str(w, c->top);
    W_LIT(w, "/");
    w_str(w, c->leaves[leaf]);
}

/* 0..3 distinct free tags ("blocked" ~2%) as a JSON array. */
static void w_free_tags(wbuf_t *w, rng_t *r) {
    double u = rng_u01(r);
    int n = u < 0.30 ? 0 : u < 0.65 ? 1 : u < 0.90 ? 2 : 3;
    bool used[NTAGS] = {false};
    bool first = true;
    W_LIT(w, "[");
    for (int k = 0; k < n; k++) {
        uint32_t t = pick_weighted(r, tag_cum, NTAGS - 1);
        if (used[t]) continue;
        used[t] = true;
        if (!first) W_LIT(w, ",");
        first = false;
        W_LIT(w, "\"");
        w_str(w, tag_names[t]);
        W_LIT(w, "\"");
    }
    if (rng_pct(r, 2)) {
        if (!first) W_LIT(w, ",");
        W_LIT(w, "\"blocked\"");
    }
    W_LIT(w, "]");
}

/* 2..5 of the 7 attribute keys, each with its fixed JSON type. */
static void w_attrs(wbuf_t *w, rng_t *r, uint32_t top) {
    uint32_t n = 2 + rng_below(r, 4), chosen = 0;
    /* Electronics and home carry an energy class more often, toys and baby an
     * age group. */
    double pk[7] = {60, 55, 45, 50, 40, 20, 15};
    if (top == 0 || top == 2) pk[5] = 70;
    if (top == 5 || top == 10) pk[6] = 80;
    uint32_t mask = 0;
    for (int guard = 0; chosen < n && guard < 64; guard++) {
        uint32_t k = rng_below(r, 7);
        if (mask & (1u << k)) continue;
        if (!rng_pct(r, pk[k])) continue;
        mask |= 1u << k;
        chosen++;
    }
    bool first = true;
    W_LIT(w, "{");
    for (uint32_t k = 0; k < 7; k++) {
        if (!(mask & (1u << k))) continue;
        if (!first) W_LIT(w, ",");
        first = false;
        switch (k) {
        case 0:
            W_LIT(w, "\"color\":\"");
            w_str(w, colors[rng_below(r, NELEM(colors))]);
            W_LIT(w, "\"");
            break;
        case 1:
            W_LIT(w, "\"material\":\"");
            w_str(w, materials[rng_below(r, NELEM(materials))]);
            W_LIT(w, "\"");
            break;
        case 2:
            W_LIT(w, "\"warranty_months\":");
            w_u64(w, (uint64_t)warranties[rng_below(r, NELEM(warranties))]);
            break;
        case 3:
            W_LIT(w, "\"origin\":\"");
            w_str(w, rng_pct(r, 60) ? "local" : "imported");
            W_LIT(w, "\"");
            break;
        case 4:
            W_LIT(w, "\"weight_kg\":");
            w_cents(w, 5 + (uint64_t)(3000.0 * pow(rng_u01(r), 3.0)));
            break;
        case 5: {
            char cls[4] = "\"A\"";
            cls[1] = (char)('A' + rng_below(r, 5));
            W_LIT(w, "\"energy_class\":");
            w_mem(w, cls, 3);
            break;
        }
        default:
            W_LIT(w, "\"age_group\":\"");
            w_str(w, age_groups[rng_below(r, NELEM(age_groups))]);
            W_LIT(w, "\"");
            break;
        }
    }
    W_LIT(w, "}");
}

static uint32_t draw_stock(rng_t *r) {
    if (rng_pct(r, 15)) return 0;
    double u = rng_u01(r);
    return 1 + (uint32_t)(499.0 * u * u);
}

/* Full record of SKU i; variant 0 is the catalog's, others (re-sent by the
 * stream) redraw the price and every volatile field. */
static size_t record_line(uint32_t nskus, uint64_t seed, uint32_t i, uint64_t variant, int64_t ts,
                          char *buf, size_t cap) {
    (void)nskus;
    if (cap < GEN_LINE_MAX) return 0;
    wbuf_t w = {buf, buf + cap - 1, false};
    sku_base_t b;
    sku_base(seed, i, &b);
    rng_t r = rng_for(seed, i, variant, P_VOL);
    uint32_t price = b.price_cents, list = b.list_cents;
    if (variant) price = clamp_cents(price * (0.55 + 0.55 * rng_u01(&r)));

    W_LIT(&w, "{\"sku\":\"");
    w_sku(&w, seed, i);
    W_LIT(&w, "\",\"market\":\"");
    w_str(&w, gen_market(seed, i));
    W_LIT(&w, "\",\"category\":\"");
    w_category(&w, b.top, b.leaf);
    W_LIT(&w, "\",\"brand\":\"b");
    w_u64_pad(&w, b.brand, 4);
    W_LIT(&w, "\",\"seller\":\"s");
    w_u64_pad(&w, b.seller, 5);
    W_LIT(&w, "\",\"price\":");
    w_cents(&w, price);
    if (list) {
        W_LIT(&w, ",\"list_price\":");
        w_cents(&w, list);
    }
    W_LIT(&w, ",\"stock\":");
    w_u64(&w, draw_stock(&r));
    if (!rng_pct(&r, 15)) {
        double rt = 4.2 + 0.6 * rng_normal(&r);
        if (rt < 1.0) rt = 1.0;
        if (rt > 5.0) rt = 5.0;
        W_LIT(&w, ",\"rating\":");
        w_tenths(&w, (uint64_t)llround(rt * 10.0));
    }
    W_LIT(&w, ",\"reviews\":");
    w_u64(&w, zipf_rank(&r, 50000, 0.9));
    W_LIT(&w, ",\"lazmall\":");
    w_bool(&w, b.lazmall);
    W_LIT(&w, ",\"free_shipping\":");
    w_bool(&w, variant ? rng_pct(&r, 40) : b.free_shipping);
    W_LIT(&w, ",\"tags\":");
    w_free_tags(&w, &r);
    W_LIT(&w, ",\"attrs\":");
    w_attrs(&w, &r, b.top);
    W_LIT(&w, ",\"ts\":");
    w_i64(&w, ts);
    W_LIT(&w, "}");
    return w_finish(&w, buf);
}

size_t gen_catalog_line(uint32_t nskus, uint64_t seed, uint32_t i, int64_t ts, char *buf, size_t cap) {
    return record_line(nskus, seed, i, 0, ts, buf, cap);
}

/* -- Event stream --------------------------------------------------------- */

#define GEN_ZIPF_SKU 1.0
#define TREND_PERIOD_MS (4 * 3600 * 1000LL)
#define DELETED_RING 64

struct gen_stream {
    uint32_t nskus;
    uint64_t seed;
    rng_t r;
    uint64_t variant;            /* records re-sent so far */
    uint64_t stable_a, stable_b; /* stable permutation */
    int64_t trend_phase;         /* phase of trend_a/b, -1 none */
    uint64_t trend_a, trend_b;
    uint32_t deleted[DELETED_RING];
    uint32_t ndeleted, deleted_head;
};

static uint64_t gcd64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A permutation x -> (a*x + b) mod n with gcd(a, n) = 1. */
static void perm_params(uint64_t seed, uint64_t n, uint64_t salt, uint64_t *a, uint64_t *b) {
    rng_t r = rng_for(seed, salt, 0, P_PERM);
    uint64_t x = n > 2 ? 1 + rng_next(&r) % (n - 1) : 1;
    while (gcd64(x, n) != 1) x = x + 1 < n ? x + 1 : 1;
    *a = x;
    *b = n ? rng_next(&r) % n : 0;
}

gen_stream_t *gen_stream_new(uint32_t nskus, uint64_t seed) {
    if (nskus == 0 || nskus > GEN_MAX_SKUS) return NULL;
    gen_stream_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->nskus = nskus;
    g->seed = seed;
    g->r = rng_for(seed, 0, 0, P_STREAM);
    perm_params(seed, nskus, 0x57AB1E, &g->stable_a, &g->stable_b);
    g->trend_phase = -1;
    return g;
}

void gen_stream_free(gen_stream_t *g) { free(g); }

static uint32_t pick_sku(gen_stream_t *g, int64_t ts) {
    uint64_t n = g->nskus;
    uint32_t rank = zipf_rank(&g->r, g->nskus, GEN_ZIPF_SKU);
    if (rng_pct(&g->r, 75)) return (uint32_t)((rank * g->stable_a + g->stable_b) % n);
    int64_t phase = ts / TREND_PERIOD_MS;
    if (phase != g->trend_phase) {
        perm_params(g->seed, n, 0x7E4D0000ull + (uint64_t)phase, &g->trend_a, &g->trend_b);
        g->trend_phase = phase;
    }
    return (uint32_t)((rank * g->trend_a + g->trend_b) % n);
}

static void w_head(wbuf_t *w, const char *op, uint64_t seed, uint32_t i) {
    W_LIT(w, "{\"op\":\"");
    w_str(w, op);
    W_LIT(w, "\",\"sku\":\"");
    w_sku(w, seed, i);
    W_LIT(w, "\"");
}

static void w_tail(wbuf_t *w, int64_t ts) {
    W_LIT(w, ",\"ts\":");
    w_i64(w, ts);
    W_LIT(w, "}");
}

static void w_tag_list(wbuf_t *w, rng_t *r, uint32_t n, bool allow_blocked) {
    bool used[NTAGS] = {false}, first = true;
    W_LIT(w, "[");
    for (uint32_t k = 0; k < n; k++) {
        uint32_t t = allow_blocked && rng_pct(r, 4) ? T_BLOCKED : pick_weighted(r, tag_cum, NTAGS - 1);
        if (used[t]) continue;
        used[t] = true;
        if (!first) W_LIT(w, ",");
        first = false;
        W_LIT(w, "\"");
        w_str(w, tag_names[t]);
        W_LIT(w, "\"");
    }
    W_LIT(w, "]");
}

static int64_t late(rng_t *r, int64_t ts) {
    if (!rng_pct(r, 10)) return ts;
    int64_t lag = (int64_t)(rng_u01(r) * 600000.0);
    return ts > lag ? ts - lag : 0;
}

static void w_upsert(gen_stream_t *g, wbuf_t *w, uint32_t i, int64_t ts) {
    rng_t *r = &g->r;
    sku_base_t b;
    sku_base(g->seed, i, &b);
    w_head(w, "upsert", g->seed, i);
    int n = 0;
    while (n == 0) {
        if (rng_pct(r, 10)) {
            W_LIT(w, ",\"market\":\"");
            w_str(w, gen_market(g->seed, i));
            W_LIT(w, "\"");
            n++;
        }
        if (rng_pct(r, 5)) {
            W_LIT(w, ",\"category\":\"");
            uint32_t top = pick_weighted(r, category_cum, NCATEGORIES);
            w_category(w, top, rng_below(r, categories[top].nleaves));
            W_LIT(w, "\"");
            n++;
        }
        if (rng_pct(r, 5)) {
            W_LIT(w, ",\"brand\":\"b");
            w_u64_pad(w, 1 + zipf_rank(r, NBRANDS, 1.05), 4);
            W_LIT(w, "\"");
            n++;
        }
        if (rng_pct(r, 5)) {
            W_LIT(w, ",\"seller\":\"s");
            w_u64_pad(w, 1 + zipf_rank(r, NSELLERS, 0.8), 5);
            W_LIT(w, "\"");
            n++;
        }
        if (rng_pct(r, 35)) {
            W_LIT(w, ",\"price\":");
            w_cents(w, clamp_cents(b.price_cents * (0.55 + 0.55 * rng_u01(r))));
            n++;
        }
        if (rng_pct(r, 15)) {
            W_LIT(w, ",\"list_price\":");
            w_cents(w, b.list_cents ? b.list_cents : b.price_cents);
            n++;
        }
        if (rng_pct(r, 35)) {
            W_LIT(w, ",\"stock\":");
            w_u64(w, draw_stock(r));
            n++;
        }
        if (rng_pct(r, 15)) {
            W_LIT(w, ",\"rating\":");
            w_tenths(w, 10 + rng_below(r, 41));
            n++;
        }
        if (rng_pct(r, 10)) {
            W_LIT(w, ",\"reviews\":");
            w_u64(w, zipf_rank(r, 50000, 0.9));
            n++;
        }
        if (rng_pct(r, 10)) {
            W_LIT(w, ",\"lazmall\":");
            w_bool(w, rng_pct(r, 50));
            n++;
        }
        if (rng_pct(r, 15)) {
            W_LIT(w, ",\"free_shipping\":");
            w_bool(w, rng_pct(r, 50));
            n++;
        }
        if (rng_pct(r, 20)) {
            W_LIT(w, ",\"tags\":");
            w_free_tags(w, r);
            n++;
        }
        if (rng_pct(r, 15)) {
            W_LIT(w, ",\"attrs\":");
            w_attrs(w, r, b.top);
            n++;
        }
    }
    w_tail(w, ts);
}

size_t gen_stream_next(gen_stream_t *g, int64_t ts, char *buf, size_t cap) {
    if (!g || cap < GEN_LINE_MAX) return 0;
    wbuf_t w = {buf, buf + cap - 1, false};
    rng_t *r = &g->r;
    double u = rng_u01(r) * 100.0;
    uint32_t i = pick_sku(g, ts);
    sku_base_t b;
    if (u < 30) { /* price */
        sku_base(g->seed, i, &b);
        w_head(&w, "price", g->seed, i);
        W_LIT(&w, ",\"price\":");
        w_cents(&w, clamp_cents(b.price_cents * (0.55 + 0.55 * rng_u01(r))));
        if (b.list_cents && rng_pct(r, 30)) {
            W_LIT(&w, ",\"list_price\":");
            w_cents(&w, b.list_cents);
        }
        w_tail(&w, ts);
    } else if (u < 50) { /* stock */
        w_head(&w, "stock", g->seed, i);
        W_LIT(&w, ",\"stock\":");
        w_u64(&w, rng_pct(r, 20) ? 0 : draw_stock(r));
        w_tail(&w, ts);
    } else if (u < 70) { /* order */
        sku_base(g->seed, i, &b);
        double q = rng_u01(r);
        uint32_t qty = q < 0.70 ? 1 : q < 0.88 ? 2 : q < 0.96 ? 3 : 4 + rng_below(r, 7);
        uint32_t unit = clamp_cents(b.price_cents * (0.55 + 0.55 * rng_u01(r)));
        w_head(&w, "order", g->seed, i);
        W_LIT(&w, ",\"qty\":");
        w_u64(&w, qty);
        W_LIT(&w, ",\"amount\":");
        w_cents(&w, (uint64_t)qty * unit);
        w_tail(&w, late(r, ts));
    } else if (u < 85) { /* behaviour */
        double k = rng_u01(r) * 15.0;
        w_head(&w, k < 10 ? "view" : k < 13.5 ? "click" : "cart", g->seed, i);
        w_tail(&w, late(r, ts));
    } else if (u < 93) { /* tag */
        double k = rng_u01(r);
        w_head(&w, "tag", g->seed, i);
        if (k < 0.65) {
            W_LIT(&w, ",\"add\":");
            w_tag_list(&w, r, 1 + rng_below(r, 2), true);
        }
        if (k >= 0.45) {
            W_LIT(&w, ",\"remove\":");
            w_tag_list(&w, r, 1 + rng_below(r, 2), true);
        }
        w_tail(&w, ts);
    } else if (u < 98) {
        w_upsert(g, &w, i, ts);
    } else if (u < 99) { /* delete */
        w_head(&w, "delete", g->seed, i);
        w_tail(&w, ts);
        g->deleted[(g->deleted_head + g->ndeleted) % DELETED_RING] = i;
        if (g->ndeleted < DELETED_RING) g->ndeleted++;
        else g->deleted_head = (g->deleted_head + 1) % DELETED_RING;
    } else { /* full record, half of them bringing back a deleted SKU */
        if (g->ndeleted && rng_pct(r, 50)) {
            i = g->deleted[g->deleted_head];
            g->deleted_head = (g->deleted_head + 1) % DELETED_RING;
            g->ndeleted--;
        }
        return record_line(g->nskus, g->seed, i, ++g->variant, ts, buf, cap);
    }
    return w_finish(&w, buf);
}

size_t gen_stream_invalid(gen_stream_t *g, uint64_t k, int64_t ts, char *buf, size_t cap) {
    if (!g || cap < GEN_LINE_MAX) return 0;
    wbuf_t w = {buf, buf + cap - 1, false};
    uint32_t i = pick_sku(g, ts);
    switch (k % GEN_INVALID_KINDS) {
    case 0: /* bad JSON: truncated object, or a missing ':' */
        if ((k / GEN_INVALID_KINDS) % 2 == 0) {
            w_head(&w, "price", g->seed, i);
            W_LIT(&w, ",\"price\":12.5");
        } else {
            W_LIT(&w, "{\"op\" \"view\",\"sku\":\"");
            w_sku(&w, g->seed, i);
            W_LIT(&w, "\"}");
        }
        break;
    case 1: /* missing sku */
        W_LIT(&w, "{\"op\":\"stock\",\"stock\":5");
        w_tail(&w, ts);
        break;
    case 2: /* negative stock */
        w_head(&w, "stock", g->seed, i);
        W_LIT(&w, ",\"stock\":-");
        w_u64(&w, 1 + k % 9);
        w_tail(&w, ts);
        break;
    case 3: /* unknown op */
        w_head(&w, (k / GEN_INVALID_KINDS) % 2 ? "refund" : "restock", g->seed, i);
        w_tail(&w, ts);
        break;
    case 4: /* wrong type */
        w_head(&w, "price", g->seed, i);
        W_LIT(&w, ",\"price\":\"12.50\"");
        w_tail(&w, ts);
        break;
    case 5: /* price above 1e9 */
        w_head(&w, "price", g->seed, i);
        W_LIT(&w, ",\"price\":2500000000.00");
        w_tail(&w, ts);
        break;
    default: /* a tag outside the alphabet */
        w_head(&w, "tag", g->seed, i);
        W_LIT(&w, ",\"add\":[\"gift wrap\"]");
        w_tail(&w, ts);
        break;
    }
    return w_finish(&w, buf);
}

/* -- Command line ------------------------------------------------------------ */

static const char gen_help[] =
    "usage: poold gen catalog --skus N [--seed S] [--ts MS] [--out FILE]\n"
    "       poold gen events  --skus N --events M [--seed S] [--start MS]\n"
    "                         [--span-hours H] [--invalid-every K] [--out FILE]\n"
    "\n"
    "Writes NDJSON, deterministic for a given seed (default 42).\n"
    "  catalog   N full catalog records (SKU ids MARKET-0000000 .. N-1), ts MS\n"
    "            (default 1794268800000 = 2026-11-10T00:00:00Z)\n"
    "  events    M events over the catalog of the same N and seed, ts rising\n"
    "            from --start (default as --ts) over --span-hours (default 30):\n"
    "            price 30%, stock 20%, order 20%, view/click/cart 15%, tag 8%,\n"
    "            upsert 5%, delete 1%, full record 1%; Zipf popularity.\n"
    "            --invalid-every K makes line n invalid iff n % K == 0 (M valid\n"
    "            lines are still written); the kinds rotate: bad JSON, missing\n"
    "            sku, negative stock, unknown op, wrong type, price > 1e9, bad tag.\n"
    "  --out FILE  write to FILE instead of stdout\n";

static int gen_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "poold gen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see poold gen --help)\n");
    return 1;
}

static int parse_i64_arg(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

typedef struct gen_opts {
    int64_t skus, events, seed, ts, start, span_hours, invalid_every;
    bool has_skus, has_events, has_start;
    const char *out;
} gen_opts_t;

static int parse_gen_opts(int argc, char **argv, bool events, gen_opts_t *o) {
    for (int a = 2; a < argc; a++) {
        const char *k = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        int64_t *dst = NULL, lo = 0, hi = INT64_MAX;
        if (!strcmp(k, "--skus")) {
            dst = &o->skus, lo = 1, hi = GEN_MAX_SKUS;
            o->has_skus = true;
        } else if (!strcmp(k, "--seed")) {
            dst = &o->seed;
        } else if (!strcmp(k, "--out")) {
            if (!v) return gen_usage("%s needs a value", k);
            o->out = v;
            a++;
            continue;
        } else if (!events && !strcmp(k, "--ts")) {
            dst = &o->ts, hi = 4102444800000LL;
        } else if (events && !strcmp(k, "--events")) {
            dst = &o->events, lo = 0, hi = 1000000000000LL;
            o->has_events = true;
        } else if (events && !strcmp(k, "--start")) {
            dst = &o->start, hi = 4102444800000LL;
            o->has_start = true;
        } else if (events && !strcmp(k, "--span-hours")) {
            dst = &o->span_hours, lo = 0, hi = 24 * 3650;
        } else if (events && !strcmp(k, "--invalid-every")) {
            dst = &o->invalid_every, lo = 2, hi = INT64_MAX;
        } else {
            return gen_usage("unknown option \"%s\"", k);
        }
        if (!v || parse_i64_arg(v, lo, hi, dst) != 0) return gen_usage("bad or missing value for %s", k);
        a++;
    }
    if (!o->has_skus) return gen_usage("%s is required", "--skus N");
    if (events && !o->has_events) return gen_usage("%s is required", "--events M");
    return 0;
}

int gen_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(gen_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    bool events = !strcmp(argv[1], "events");
    if (!events && strcmp(argv[1], "catalog") != 0) return gen_usage("unknown kind \"%s\": catalog or events", argv[1]);
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            fputs(gen_help, stdout);
            return 0;
        }
    gen_opts_t o = {.seed = 42, .ts = GEN_DEFAULT_TS, .start = GEN_DEFAULT_TS, .span_hours = 30};
    if (parse_gen_opts(argc, argv, events, &o) != 0) return 1;

    FILE *f = stdout;
    if (o.out && !(f = fopen(o.out, "w"))) {
        fprintf(stderr, "poold gen: cannot write %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    size_t cap = 1u << 20, len = 0;
    char *buf = malloc(cap);
    gen_stream_t *g = events ? gen_stream_new((uint32_t)o.skus, (uint64_t)o.seed) : NULL;
    int rc = 0;
    if (!buf || (events && !g)) {
        fprintf(stderr, "poold gen: out of memory\n");
        rc = 2;
        goto done;
    }
    uint64_t total = events ? (uint64_t)o.events : (uint64_t)o.skus, written = 0, line = 0, invalid = 0;
    double span_ms = (double)o.span_hours * 3600000.0;
    while (written < total) {
        if (cap - len < GEN_LINE_MAX + 1) {
            if (fwrite(buf, 1, len, f) != len) goto io_error;
            len = 0;
        }
        size_t n;
        line++;
        if (!events) {
            n = gen_catalog_line((uint32_t)o.skus, (uint64_t)o.seed, (uint32_t)written, o.ts, buf + len, cap - len);
            written++;
        } else {
            int64_t ts = o.start + (int64_t)(span_ms * (double)written / (double)(total ? total : 1));
            if (o.invalid_every && line % (uint64_t)o.invalid_every == 0) {
                n = gen_stream_invalid(g, invalid++, ts, buf + len, cap - len);
            } else {
                n = gen_stream_next(g, ts, buf + len, cap - len);
                written++;
            }
        }
        len += n;
        buf[len++] = '\n';
    }
    if (fwrite(buf, 1, len, f) != len) goto io_error;
    if (fflush(f) != 0) goto io_error;
    if (f != stdout) {
        FILE *cf = f;
        f = NULL;
        if (fclose(cf) != 0) goto io_error;
    }
    goto done;
io_error:
    fprintf(stderr, "poold gen: write error: %s\n", strerror(errno));
    rc = 2;
done:
    if (f && f != stdout) fclose(f);
    gen_stream_free(g);
    free(buf);
    return rc;
}
