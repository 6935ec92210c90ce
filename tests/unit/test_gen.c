/* test_gen.c - the generator: determinism, random access to catalog
 * records, every generated line valid for the real parser, the documented
 * event mix, invalid lines rejected with the documented reasons, bounds. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "gen.h"
#include "ndjson.h"

static int parse(const char *line, size_t len, event_t *ev, event_error_t *err, char *copy) {
    memcpy(copy, line, len);
    return ndjson_parse_event(copy, len, 0, ev, err);
}

static void test_sku_ids(void) {
    char id[16];
    size_t n = gen_sku_id(42, 1234, id);
    CHECK_EQ_INT(n, 10);
    CHECK(id[2] == '-' && strcmp(id + 3, "0001234") == 0);
    CHECK(strncmp(id, gen_market(42, 1234), 2) == 0);
    int count[6] = {0};
    const char *names[6] = {"SG", "MY", "TH", "VN", "PH", "ID"};
    for (uint32_t i = 0; i < 60000; i++) {
        const char *m = gen_market(7, i);
        for (int k = 0; k < 6; k++)
            if (!strcmp(m, names[k])) count[k]++;
    }
    /* weights 20/20/20/15/10/15 */
    CHECK(count[0] > 11000 && count[0] < 13000);
    CHECK(count[4] > 5000 && count[4] < 7000);
    CHECK_EQ_INT(count[0] + count[1] + count[2] + count[3] + count[4] + count[5], 60000);
}

static void test_catalog(void) {
    char a[GEN_LINE_MAX], b[GEN_LINE_MAX], copy[GEN_LINE_MAX];
    /* Record i depends on (seed, i) only: random access, any catalog size. */
    size_t na = gen_catalog_line(1000, 42, 77, 1794268800000LL, a, sizeof a);
    size_t nb = gen_catalog_line(500000, 42, 77, 1794268800000LL, b, sizeof b);
    CHECK(na > 0 && na == nb && memcmp(a, b, na) == 0);
    nb = gen_catalog_line(1000, 43, 77, 1794268800000LL, b, sizeof b);
    CHECK(na != nb || memcmp(a, b, na) != 0);
    CHECK_EQ_INT(gen_catalog_line(1000, 42, 77, 0, b, GEN_LINE_MAX - 1), 0);

    int lazmall = 0, zero_stock = 0, with_attrs = 0, no_list = 0, blocked = 0, escaped = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        size_t n = gen_catalog_line(5000, 42, i, 1794268800000LL, a, sizeof a);
        CHECK(n > 0 && n < GEN_LINE_MAX && a[n] == '\0' && !memchr(a, '\n', n));
        event_t ev;
        event_error_t err;
        int rc = parse(a, n, &ev, &err, copy);
        if (rc != 0) {
            fprintf(stderr, "line %u rejected: %s\n%s\n", i, err.msg, a);
            CHECK(rc == 0);
            continue;
        }
        char id[16];
        size_t idn = gen_sku_id(42, i, id);
        CHECK(ev.op == OP_RECORD && ev.sku.len == idn && memcmp(ev.sku.p, id, idn) == 0);
        uint32_t need = EV_MARKET | EV_CATEGORY | EV_BRAND | EV_SELLER | EV_PRICE | EV_STOCK | EV_REVIEWS |
                        EV_LAZMALL | EV_FREE_SHIPPING | EV_TAGS | EV_ATTRS | EV_TS;
        CHECK((ev.has & need) == need);
        CHECK(memchr(ev.category.p, '/', ev.category.len) != NULL);
        CHECK(ev.price >= 0.5 && ev.price <= 5000);
        CHECK(!(ev.has & EV_LIST_PRICE) || ev.list_price >= ev.price);
        CHECK(ev.stock >= 0 && ev.stock <= 500);
        CHECK(!(ev.has & EV_RATING) || (ev.rating >= 1.0 && ev.rating <= 5.0));
        CHECK(ev.ts == 1794268800000LL);
        lazmall += ev.lazmall;
        zero_stock += ev.stock == 0;
        with_attrs += ev.attrs.len > 2;
        no_list += !(ev.has & EV_LIST_PRICE);
        escaped += strstr(a, "\\u00e8") != NULL;
        for (const char *t = NULL; (t = event_tag_next(&ev.tags, t));) blocked += !strcmp(t, "blocked");
    }
    CHECK(lazmall > 1000 && lazmall < 1500);      /* 25% */
    CHECK(zero_stock > 550 && zero_stock < 950);  /* 15% */
    CHECK_EQ_INT(with_attrs, 5000);               /* 2..5 keys each */
    CHECK(no_list > 300 && no_list < 700);        /* 10% */
    CHECK(blocked > 40 && blocked < 200);         /* ~2% */
    CHECK(escaped > 0);
}

static void test_stream(void) {
    enum { N = 40000 };
    gen_stream_t *g1 = gen_stream_new(20000, 42), *g2 = gen_stream_new(20000, 42);
    CHECK(g1 && g2);
    CHECK(gen_stream_new(0, 42) == NULL);
    char a[GEN_LINE_MAX], b[GEN_LINE_MAX], copy[GEN_LINE_MAX];
    int ops[OP__COUNT] = {0}, late = 0, bad = 0, resurrected = 0;
    char deleted[20000] = {0};
    uint32_t *orders = calloc(20000, sizeof *orders);
    int64_t t0 = 1794268800000LL;
    for (int k = 0; k < N; k++) {
        int64_t ts = t0 + (int64_t)k * 2700; /* 30 h over N events */
        size_t na = gen_stream_next(g1, ts, a, sizeof a);
        size_t nb = gen_stream_next(g2, ts, b, sizeof b);
        CHECK(na > 0 && na == nb && memcmp(a, b, na) == 0);
        event_t ev;
        event_error_t err;
        if (parse(a, na, &ev, &err, copy) != 0) {
            if (bad++ < 5) fprintf(stderr, "event %d rejected: %s\n%s\n", k, err.msg, a);
            continue;
        }
        ops[ev.op]++;
        CHECK(ev.has & EV_TS);
        late += ev.ts < ts;
        CHECK(ev.ts <= ts && ev.ts >= ts - 600000);
        uint32_t i = (uint32_t)atoi(ev.sku.p + 3);
        CHECK(i < 20000 && strncmp(ev.sku.p, gen_market(42, i), 2) == 0);
        if (ev.op == OP_DELETE) deleted[i] = 1;
        if (ev.op == OP_RECORD && deleted[i]) resurrected++;
        if (ev.op == OP_ORDER) orders[i] += (uint32_t)ev.qty;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(ops[OP_PRICE] > N * 27 / 100 && ops[OP_PRICE] < N * 33 / 100);
    CHECK(ops[OP_STOCK] > N * 17 / 100 && ops[OP_STOCK] < N * 23 / 100);
    CHECK(ops[OP_ORDER] > N * 17 / 100 && ops[OP_ORDER] < N * 23 / 100);
    CHECK(ops[OP_VIEW] + ops[OP_CLICK] + ops[OP_CART] > N * 13 / 100);
    CHECK(ops[OP_VIEW] > ops[OP_CLICK] && ops[OP_CLICK] > ops[OP_CART] && ops[OP_CART] > 0);
    CHECK(ops[OP_TAG] > N * 6 / 100 && ops[OP_TAG] < N * 10 / 100);
    CHECK(ops[OP_UPSERT] > N * 4 / 100 && ops[OP_UPSERT] < N * 6 / 100);
    CHECK(ops[OP_DELETE] > N / 200 && ops[OP_DELETE] < N * 2 / 100);
    CHECK(ops[OP_RECORD] > N / 200 && ops[OP_RECORD] < N * 2 / 100);
    CHECK(late > 100);
    CHECK(resurrected > 10); /* full records bring deleted SKUs back */
    /* Zipf popularity: a few hundred SKUs get 5+ units, most get none. */
    int hot = 0, none = 0;
    for (int i = 0; i < 20000; i++) {
        hot += orders[i] >= 5;
        none += orders[i] == 0;
    }
    CHECK(hot > 150 && hot < 2000);
    CHECK(none > 10000);
    free(orders);
    CHECK_EQ_INT(gen_stream_next(g1, t0, a, GEN_LINE_MAX - 1), 0);
    gen_stream_free(g1);
    gen_stream_free(g2);
    gen_stream_free(NULL);
}

static void test_invalid(void) {
    static const event_reject_t want[GEN_INVALID_KINDS] = {
        REJ_BAD_JSON, REJ_MISSING_SKU, REJ_BAD_VALUE, REJ_UNKNOWN_OP, REJ_BAD_TYPE, REJ_BAD_VALUE, REJ_BAD_TAG,
    };
    gen_stream_t *g = gen_stream_new(1000, 9);
    char a[GEN_LINE_MAX], copy[GEN_LINE_MAX];
    for (uint64_t k = 0; k < 4 * GEN_INVALID_KINDS; k++) {
        size_t n = gen_stream_invalid(g, k, 1794268800000LL, a, sizeof a);
        event_t ev;
        event_error_t err;
        CHECK(n > 0);
        int rc = parse(a, n, &ev, &err, copy);
        CHECK(rc == -1);
        if (rc == -1 && err.reason != want[k % GEN_INVALID_KINDS])
            fprintf(stderr, "invalid kind %d: got %s for %s\n", (int)(k % GEN_INVALID_KINDS),
                    event_reject_name(err.reason), a);
        CHECK(rc == -1 && err.reason == want[k % GEN_INVALID_KINDS]);
    }
    gen_stream_free(g);
}

int main(void) {
    test_sku_ids();
    test_catalog();
    test_stream();
    test_invalid();
    return check_done();
}
