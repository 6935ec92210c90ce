/* test_ndjson.c - the NDJSON event parser: every op and field, every
 * rejection reason, escapes, correctly rounded numbers, in-place tag
 * decoding, ISO-8601, line framing. Every line is parsed from a malloc'd
 * buffer of exactly its length (no NUL after it), so an ASan build catches
 * any read past len. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "ndjson.h"

#define NOW 1700000000000LL

static char *buf;  /* the last parsed line, exact size, owned here */
static size_t buflen;
static event_t ev;
static event_error_t err;

/* Parses `len` bytes of s from an exact-size heap copy. */
static int parse_n(const char *s, size_t len) {
    free(buf);
    buf = malloc(len ? len : 1);
    memcpy(buf, s, len);
    buflen = len;
    memset(&err, 0x55, sizeof err);
    return ndjson_parse_event(buf, len, NOW, &ev, &err);
}

static int parse(const char *s) { return parse_n(s, strlen(s)); }

static int sl_eq(slice_t a, const char *s) {
    return a.p && a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

static int msg_has(const char *needle) {
    if (strstr(err.msg, needle)) return 1;
    fprintf(stderr, "  message was: %s\n  expected to contain: %s\n", err.msg, needle);
    return 0;
}

/* Joins the decoded tags with ',' for comparison. */
static const char *tags_str(const event_tags_t *t) {
    static char out[8192];
    size_t o = 0;
    uint32_t n = 0;
    out[0] = '\0';
    for (const char *s = NULL; (s = event_tag_next(t, s));) {
        size_t l = strlen(s);
        if (o) out[o++] = ',';
        memcpy(out + o, s, l);
        o += l;
        out[o] = '\0';
        n++;
    }
    if (n != t->n) return "(count mismatch)";
    return out;
}

#define ACCEPT(line) CHECK_EQ_INT(parse(line), 0)
#define REJECT(line, why)                    \
    do {                                     \
        CHECK_EQ_INT(parse(line), -1);       \
        CHECK_EQ_INT(err.reason, why);       \
    } while (0)

static void test_names(void) {
    const char *rej[] = {"none", "bad_json", "too_long", "too_deep", "missing_sku",
                         "missing_field", "bad_type", "bad_value", "unknown_op",
                         "too_many_tags", "bad_tag"};
    const char *ops[] = {"record", "upsert", "delete", "price", "stock",
                         "order", "view", "click", "cart", "tag"};
    for (int i = 0; i < REJ__COUNT; i++) CHECK(strcmp(event_reject_name(i), rej[i]) == 0);
    for (int i = 0; i < OP__COUNT; i++) CHECK(strcmp(event_op_name(i), ops[i]) == 0);
}

static void test_record_all_fields(void) {
    const char *line =
        "{\"sku\":\"SG-000123\",\"market\":\"SG\",\"category\":\"Electronics/Phones\","
        "\"brand\":\"Acme\",\"seller\":\"s-77\",\"price\":12.5,\"list_price\":20,"
        "\"stock\":42,\"rating\":4.5,\"reviews\":1234,\"lazmall\":true,"
        "\"free_shipping\":false,\"tags\":[\"hot\",\"flash:1111\"],"
        "\"attrs\":{\"color\":\"red\",\"dims\":[1,2,{\"x\":null}]},\"ts\":1762819200000}";
    ACCEPT(line);
    CHECK_EQ_INT(ev.op, OP_RECORD);
    CHECK_EQ_INT(ev.has, EV_MARKET | EV_CATEGORY | EV_BRAND | EV_SELLER | EV_PRICE |
                             EV_LIST_PRICE | EV_STOCK | EV_RATING | EV_REVIEWS | EV_LAZMALL |
                             EV_FREE_SHIPPING | EV_TAGS | EV_ATTRS | EV_TS);
    CHECK(sl_eq(ev.sku, "SG-000123"));
    CHECK(sl_eq(ev.market, "SG"));
    CHECK(sl_eq(ev.category, "Electronics/Phones"));
    CHECK(sl_eq(ev.brand, "Acme"));
    CHECK(sl_eq(ev.seller, "s-77"));
    CHECK(ev.price == 12.5);
    CHECK(ev.list_price == 20.0);
    CHECK_EQ_INT(ev.stock, 42);
    CHECK(ev.rating == 4.5);
    CHECK_EQ_INT(ev.reviews, 1234);
    CHECK(ev.lazmall == true);
    CHECK(ev.free_shipping == false);
    CHECK(strcmp(tags_str(&ev.tags), "hot,flash:1111") == 0);
    CHECK_EQ_INT(ev.tags.n, 2);
    CHECK(sl_eq(ev.attrs, "{\"color\":\"red\",\"dims\":[1,2,{\"x\":null}]}"));
    CHECK_EQ_INT(ev.ts, 1762819200000LL);
    CHECK_EQ_INT(ev.tags_remove.n, 0);
    CHECK(ev.tags_remove.p == NULL);
    CHECK_EQ_INT(err.reason, REJ_NONE);

    /* slices point into the line buffer */
    CHECK(ev.sku.p > buf && ev.sku.p < buf + buflen);
    CHECK(ev.attrs.p > buf && ev.attrs.p + ev.attrs.len <= buf + buflen);

    /* "record" spelled out is the same op */
    ACCEPT("{\"op\":\"record\",\"sku\":\"a\"}");
    CHECK_EQ_INT(ev.op, OP_RECORD);
    CHECK_EQ_INT(ev.has, 0);
    CHECK_EQ_INT(ev.ts, NOW);

    /* whitespace everywhere JSON allows it */
    ACCEPT(" \t{ \"sku\" : \"a\" , \"stock\" :\t7 , \"tags\" : [ \"x\" , \"y\" ] } \r ");
    CHECK_EQ_INT(ev.stock, 7);
    CHECK(strcmp(tags_str(&ev.tags), "x,y") == 0);
}

static void test_ops(void) {
    ACCEPT("{\"op\":\"upsert\",\"sku\":\"a\",\"price\":3,\"lazmall\":false}");
    CHECK_EQ_INT(ev.op, OP_UPSERT);
    CHECK_EQ_INT(ev.has, EV_PRICE | EV_LAZMALL);
    CHECK(ev.price == 3.0);
    CHECK_EQ_INT(ev.ts, NOW);

    ACCEPT("{\"op\":\"delete\",\"sku\":\"a\",\"ts\":\"2026-11-11T00:00+08:00\"}");
    CHECK_EQ_INT(ev.op, OP_DELETE);
    CHECK_EQ_INT(ev.has, EV_TS);
    CHECK_EQ_INT(ev.ts, 1794326400000LL);

    ACCEPT("{\"op\":\"price\",\"sku\":\"SG-000123\",\"price\":12.5}");
    CHECK_EQ_INT(ev.op, OP_PRICE);
    CHECK_EQ_INT(ev.has, EV_PRICE);
    CHECK(ev.price == 12.5);
    CHECK_EQ_INT(ev.ts, NOW);
    ACCEPT("{\"op\":\"price\",\"sku\":\"a\",\"price\":10,\"list_price\":15.99,\"ts\":1762819200001}");
    CHECK_EQ_INT(ev.has, EV_PRICE | EV_LIST_PRICE | EV_TS);
    CHECK(ev.list_price == 15.99);
    CHECK_EQ_INT(ev.ts, 1762819200001LL);

    ACCEPT("{\"op\":\"stock\",\"sku\":\"a\",\"stock\":0}");
    CHECK_EQ_INT(ev.op, OP_STOCK);
    CHECK_EQ_INT(ev.has, EV_STOCK);
    CHECK_EQ_INT(ev.stock, 0);

    ACCEPT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":2,\"amount\":25.0,\"ts\":1762819200000}");
    CHECK_EQ_INT(ev.op, OP_ORDER);
    CHECK_EQ_INT(ev.has, EV_QTY | EV_AMOUNT | EV_TS);
    CHECK_EQ_INT(ev.qty, 2);
    CHECK(ev.amount == 25.0);

    const char *beh[] = {"view", "click", "cart"};
    event_op_t bop[] = {OP_VIEW, OP_CLICK, OP_CART};
    for (int i = 0; i < 3; i++) {
        char line[128];
        snprintf(line, sizeof line, "{\"op\":\"%s\",\"sku\":\"a\",\"ts\":1762819200000}", beh[i]);
        ACCEPT(line);
        CHECK_EQ_INT(ev.op, bop[i]);
        CHECK_EQ_INT(ev.has, EV_TS);
    }

    ACCEPT("{\"op\":\"tag\",\"sku\":\"a\",\"add\":[\"x\",\"y\"],\"remove\":[\"z\"]}");
    CHECK_EQ_INT(ev.op, OP_TAG);
    CHECK_EQ_INT(ev.has, EV_TAGS | EV_REMOVE);
    CHECK(strcmp(tags_str(&ev.tags), "x,y") == 0);
    CHECK(strcmp(tags_str(&ev.tags_remove), "z") == 0);
    ACCEPT("{\"op\":\"tag\",\"sku\":\"a\",\"remove\":[\"z\"]}");
    CHECK_EQ_INT(ev.has, EV_REMOVE);
    CHECK_EQ_INT(ev.tags.n, 0);
    ACCEPT("{\"op\":\"tag\",\"sku\":\"a\",\"add\":[]}");
    CHECK_EQ_INT(ev.has, EV_TAGS);
    CHECK(event_tag_next(&ev.tags, NULL) == NULL);

    /* op after the fields */
    ACCEPT("{\"sku\":\"a\",\"qty\":3,\"amount\":9.5,\"op\":\"order\"}");
    CHECK_EQ_INT(ev.op, OP_ORDER);
    CHECK_EQ_INT(ev.qty, 3);
}

static void test_ignored_and_duplicates(void) {
    /* fields an op does not use are ignored, even invalid ones, and zeroed */
    ACCEPT("{\"op\":\"price\",\"sku\":\"a\",\"price\":1,\"qty\":-5,\"market\":\"SG\",\"stock\":3}");
    CHECK_EQ_INT(ev.has, EV_PRICE);
    CHECK_EQ_INT(ev.qty, 0);
    CHECK_EQ_INT(ev.stock, 0);
    CHECK(ev.market.p == NULL);
    ACCEPT("{\"market\":5,\"sku\":\"a\",\"tags\":[\"lazmall\"],\"op\":\"view\"}");
    CHECK_EQ_INT(ev.has, 0);
    CHECK_EQ_INT(ev.tags.n, 0);
    /* "tags" is not "add" for a tag op, "add" is not "tags" for a record */
    ACCEPT("{\"op\":\"tag\",\"sku\":\"a\",\"tags\":[\"t\"],\"add\":[\"x\"]}");
    CHECK(strcmp(tags_str(&ev.tags), "x") == 0);
    ACCEPT("{\"sku\":\"a\",\"tags\":[\"t\"],\"add\":[\"x\"],\"qty\":1}");
    CHECK(strcmp(tags_str(&ev.tags), "t") == 0);
    CHECK_EQ_INT(ev.has, EV_TAGS);
    CHECK_EQ_INT(ev.qty, 0);

    /* unknown fields are skipped but must be JSON */
    ACCEPT("{\"sku\":\"a\",\"x\":{\"y\":[1,-2.5e3,true,false,null,\"\\u00e9\"]},\"z\":[]}");
    CHECK_EQ_INT(ev.has, 0);
    REJECT("{\"sku\":\"a\",\"x\":[1,]}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"x\":tru}", REJ_BAD_JSON);

    /* null = absent */
    ACCEPT("{\"sku\":\"a\",\"price\":null,\"tags\":null,\"attrs\":null,\"ts\":null,\"op\":null}");
    CHECK_EQ_INT(ev.op, OP_RECORD);
    CHECK_EQ_INT(ev.has, 0);
    CHECK_EQ_INT(ev.ts, NOW);

    /* duplicate keys: the last wins */
    ACCEPT("{\"sku\":\"a\",\"sku\":\"b\",\"price\":1,\"price\":2}");
    CHECK(sl_eq(ev.sku, "b"));
    CHECK(ev.price == 2.0);
    ACCEPT("{\"sku\":\"a\",\"stock\":-1,\"stock\":5}");
    CHECK_EQ_INT(ev.stock, 5);
    REJECT("{\"sku\":\"a\",\"stock\":5,\"stock\":-1}", REJ_BAD_VALUE);
    ACCEPT("{\"sku\":\"a\",\"market\":\"SG\",\"market\":null}");
    CHECK_EQ_INT(ev.has, 0);
    CHECK(ev.market.p == NULL);
    ACCEPT("{\"sku\":\"a\",\"op\":\"refund\",\"op\":\"view\"}");
    CHECK_EQ_INT(ev.op, OP_VIEW);
    REJECT("{\"sku\":\"a\",\"sku\":null}", REJ_MISSING_SKU);
    ACCEPT("{\"sku\":\"a\",\"tags\":[\"bad tag\"],\"tags\":[\"ok\"]}");
    CHECK(strcmp(tags_str(&ev.tags), "ok") == 0);
}

static void test_rejections(void) {
    /* bad_json */
    REJECT("[1,2]", REJ_BAD_JSON);
    CHECK(msg_has("invalid JSON at byte 0: expected '{'"));
    REJECT("{\"sku\" \"a\"}", REJ_BAD_JSON);
    CHECK(msg_has("invalid JSON at byte 7: expected ':'"));
    REJECT("{\"sku\":\"a\"", REJ_BAD_JSON);
    CHECK(msg_has("unexpected end of line"));
    REJECT("{\"sku\":\"a\"} x", REJ_BAD_JSON);
    CHECK(msg_has("at byte 12"));
    REJECT("{\"sku\":\"a\"}{}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",}", REJ_BAD_JSON);
    REJECT("{sku:\"a\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":'a'}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\" \"price\":1}", REJ_BAD_JSON);
    REJECT("\"sku\"", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"price\":1", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"price\":}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"tags\":[\"x\"", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"tags\":[\"x\" \"y\"]}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"lazmall\":True}", REJ_BAD_JSON);

    /* too_long is checked first, even for an otherwise blank line */
    {
        size_t n = EVENT_MAX_LINE_LEN + 1;
        char *big = malloc(n);
        memset(big, ' ', n);
        CHECK_EQ_INT(parse_n(big, n), -1);
        CHECK_EQ_INT(err.reason, REJ_TOO_LONG);
        CHECK(msg_has("65537"));
        /* exactly at the limit is fine */
        memcpy(big, "{\"sku\":\"a\"}", 11);
        CHECK_EQ_INT(parse_n(big, EVENT_MAX_LINE_LEN), 0);
        free(big);
    }

    /* missing_sku */
    REJECT("{}", REJ_MISSING_SKU);
    CHECK(msg_has("\"sku\""));
    REJECT("{\"op\":\"price\",\"price\":1}", REJ_MISSING_SKU);

    /* missing_field, naming the field */
    REJECT("{\"op\":\"price\",\"sku\":\"a\",\"list_price\":3}", REJ_MISSING_FIELD);
    CHECK(msg_has("\"price\""));
    REJECT("{\"op\":\"stock\",\"sku\":\"a\"}", REJ_MISSING_FIELD);
    CHECK(msg_has("\"stock\""));
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"amount\":1}", REJ_MISSING_FIELD);
    CHECK(msg_has("\"qty\""));
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":1}", REJ_MISSING_FIELD);
    CHECK(msg_has("\"amount\""));
    REJECT("{\"op\":\"tag\",\"sku\":\"a\",\"tags\":[\"x\"]}", REJ_MISSING_FIELD);
    CHECK(msg_has("\"add\" or \"remove\""));
    REJECT("{\"op\":\"price\",\"sku\":\"a\",\"price\":null}", REJ_MISSING_FIELD);

    /* bad_type */
    REJECT("{\"sku\":12}", REJ_BAD_TYPE);
    CHECK(msg_has("field \"sku\" must be a string, got a number 12"));
    REJECT("{\"sku\":\"a\",\"op\":1}", REJ_BAD_TYPE);
    REJECT("{\"sku\":\"a\",\"price\":\"12.5\"}", REJ_BAD_TYPE);
    CHECK(msg_has("field \"price\" must be a number, got a string \"12.5\""));
    REJECT("{\"sku\":\"a\",\"stock\":true}", REJ_BAD_TYPE);
    REJECT("{\"sku\":\"a\",\"lazmall\":1}", REJ_BAD_TYPE);
    CHECK(msg_has("true or false"));
    REJECT("{\"sku\":\"a\",\"free_shipping\":\"yes\"}", REJ_BAD_TYPE);
    REJECT("{\"sku\":\"a\",\"tags\":\"x\"}", REJ_BAD_TYPE);
    REJECT("{\"sku\":\"a\",\"tags\":[\"x\",1]}", REJ_BAD_TYPE);
    CHECK(msg_has("array of strings"));
    REJECT("{\"sku\":\"a\",\"attrs\":[1]}", REJ_BAD_TYPE);
    CHECK(msg_has("got an array"));
    REJECT("{\"sku\":\"a\",\"ts\":true}", REJ_BAD_TYPE);
    REJECT("{\"sku\":\"a\",\"market\":{\"x\":1}}", REJ_BAD_TYPE);
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":\"1\",\"amount\":1}", REJ_BAD_TYPE);

    /* bad_value */
    REJECT("{\"sku\":\"\"}", REJ_BAD_VALUE);
    REJECT("{\"op\":\"stock\",\"sku\":\"a\",\"stock\":-3}", REJ_BAD_VALUE);
    CHECK(strcmp(err.msg, "field \"stock\" must be an integer >= 0, got -3") == 0);
    REJECT("{\"sku\":\"a\",\"stock\":1000000001}", REJ_BAD_VALUE);
    CHECK(msg_has("<= 1000000000"));
    REJECT("{\"sku\":\"a\",\"stock\":1.5}", REJ_BAD_VALUE);
    CHECK(msg_has("must be an integer, got 1.5"));
    REJECT("{\"sku\":\"a\",\"price\":-0.01}", REJ_BAD_VALUE);
    CHECK(msg_has("between 0 and 1000000000, got -0.01"));
    REJECT("{\"sku\":\"a\",\"price\":1000000000.5}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"price\":1e400}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"list_price\":-1}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"rating\":5.01}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"reviews\":-1}", REJ_BAD_VALUE);
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":0,\"amount\":1}", REJ_BAD_VALUE);
    CHECK(msg_has(">= 1"));
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":1000001,\"amount\":1}", REJ_BAD_VALUE);
    REJECT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":1,\"amount\":-1}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"market\":\"\"}", REJ_BAD_VALUE);
    CHECK(msg_has("field \"market\" must not be empty"));
    REJECT("{\"sku\":\"a\",\"brand\":\"\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"seller\":\"\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"category\":\"a/b/c\"}", REJ_BAD_VALUE);
    CHECK(msg_has("\"top\" or \"top/leaf\", got \"a/b/c\""));
    REJECT("{\"sku\":\"a\",\"category\":\"/b\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"category\":\"a/\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"category\":\"\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\\u0000b\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"ts\":\"yesterday\"}", REJ_BAD_VALUE);
    CHECK(msg_has("ISO-8601"));
    REJECT("{\"sku\":\"a\",\"ts\":1.5}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"ts\":946684799999}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"ts\":\"1999-12-31T23:59:59.999Z\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"ts\":\"2101-01-01\"}", REJ_BAD_VALUE);
    REJECT("{\"sku\":\"a\",\"ts\":-1}", REJ_BAD_VALUE);
    ACCEPT("{\"sku\":\"a\",\"ts\":946684800000}");
    CHECK_EQ_INT(ev.ts, 946684800000LL);
    ACCEPT("{\"sku\":\"a\",\"ts\":\"2100-12-31T23:59:59.999Z\"}");
    CHECK_EQ_INT(ev.ts, 4133980799999LL);
    ACCEPT("{\"sku\":\"a\",\"ts\":1.7628192e12}");
    CHECK_EQ_INT(ev.ts, 1762819200000LL);

    /* unknown_op */
    REJECT("{\"op\":\"refund\",\"sku\":\"a\"}", REJ_UNKNOWN_OP);
    CHECK(strcmp(err.msg, "unknown op \"refund\" (expected one of record, upsert, delete, "
                          "price, stock, order, view, click, cart, tag)") == 0);
    REJECT("{\"op\":\"\",\"sku\":\"a\"}", REJ_UNKNOWN_OP);
    REJECT("{\"op\":\"PRICE\",\"sku\":\"a\",\"price\":1}", REJ_UNKNOWN_OP);
    /* the op is judged before the sku */
    REJECT("{\"op\":\"refund\"}", REJ_UNKNOWN_OP);

    /* too_deep: the top-level object is level 1 */
    {
        char line[256];
        int k;
        for (int depth = 15; depth <= 17; depth++) {
            /* attrs = {"k":[{"k":[ ... 1 ... ]}]}, `depth` containers */
            int o = snprintf(line, sizeof line, "{\"sku\":\"a\",\"attrs\":");
            for (k = 0; k < depth; k++) o += snprintf(line + o, sizeof line - o, k % 2 ? "[" : "{\"k\":");
            line[o++] = '1';
            for (k = depth - 1; k >= 0; k--) line[o++] = k % 2 ? ']' : '}';
            line[o++] = '}';
            line[o] = '\0';
            int rc = parse(line);
            if (depth + 1 <= EVENT_MAX_JSON_DEPTH) {
                CHECK_EQ_INT(rc, 0);
                CHECK_EQ_INT(ev.attrs.p[0], '{');
            } else {
                CHECK_EQ_INT(rc, -1);
                CHECK_EQ_INT(err.reason, REJ_TOO_DEEP);
            }
        }
        /* unknown fields are bounded too */
        char deep[64];
        memset(deep, '[', 20);
        snprintf(deep + 20, sizeof deep - 20, "]");
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"x\":%s}", deep);
        REJECT(line, REJ_TOO_DEEP);
    }

    /* too_many_tags and bad_tag */
    {
        char line[2048];
        for (int n = 64; n <= 65; n++) {
            int o = snprintf(line, sizeof line, "{\"sku\":\"a\",\"tags\":[");
            for (int i = 0; i < n; i++) o += snprintf(line + o, sizeof line - o, "%s\"t%d\"", i ? "," : "", i);
            snprintf(line + o, sizeof line - o, "]}");
            int rc = parse(line);
            if (n == 64) {
                CHECK_EQ_INT(rc, 0);
                CHECK_EQ_INT(ev.tags.n, 64);
            } else {
                CHECK_EQ_INT(rc, -1);
                CHECK_EQ_INT(err.reason, REJ_TOO_MANY_TAGS);
            }
        }
        REJECT("{\"op\":\"tag\",\"sku\":\"a\",\"remove\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
               "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
               "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
               "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
               "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}",
               REJ_TOO_MANY_TAGS);
        char t100[128], t101[128];
        memset(t100, 'x', 100);
        t100[100] = '\0';
        memset(t101, 'x', 101);
        t101[101] = '\0';
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"tags\":[\"%s\"]}", t100);
        ACCEPT(line);
        CHECK_EQ_INT(strlen(event_tag_next(&ev.tags, NULL)), 100);
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"tags\":[\"%s\"]}", t101);
        REJECT(line, REJ_BAD_TAG);
    }
    REJECT("{\"sku\":\"a\",\"tags\":[\"\"]}", REJ_BAD_TAG);
    CHECK(msg_has("empty tag"));
    REJECT("{\"sku\":\"a\",\"tags\":[\"two words\"]}", REJ_BAD_TAG);
    CHECK(msg_has("tag \"two words\" in \"tags\""));
    REJECT("{\"sku\":\"a\",\"tags\":[\"caf\\u00e9\"]}", REJ_BAD_TAG);
    REJECT("{\"sku\":\"a\",\"tags\":[\"a,b\"]}", REJ_BAD_TAG);
    const char *reserved[] = {"lazmall", "free_shipping", "in_stock", "market:SG",
                              "brand:acme", "category:phones", "seller:s1"};
    for (int i = 0; i < 7; i++) {
        char line[128];
        snprintf(line, sizeof line, "{\"op\":\"tag\",\"sku\":\"a\",\"add\":[\"ok\",\"%s\"]}", reserved[i]);
        REJECT(line, REJ_BAD_TAG);
        CHECK(msg_has("reserved"));
        snprintf(line, sizeof line, "{\"op\":\"tag\",\"sku\":\"a\",\"remove\":[\"%s\"]}", reserved[i]);
        REJECT(line, REJ_BAD_TAG);
    }
    /* near misses of reserved names are free tags */
    ACCEPT("{\"sku\":\"a\",\"tags\":[\"lazmall2\",\"market\",\"in_stock_soon\",\"Brand:x\",\"sellers:x\"]}");
    CHECK_EQ_INT(ev.tags.n, 5);

    /* user data in messages is bounded */
    {
        char line[512], op[301];
        memset(op, 'q', 300);
        op[300] = '\0';
        snprintf(line, sizeof line, "{\"op\":\"%s\",\"sku\":\"a\"}", op);
        REJECT(line, REJ_UNKNOWN_OP);
        CHECK(strstr(err.msg, "...") != NULL);
        size_t q = 0;
        for (const char *s = err.msg; *s; s++) q += *s == 'q';
        CHECK(q <= 60);
        REJECT("{\"op\":\"a\\nb\",\"sku\":\"a\"}", REJ_UNKNOWN_OP);
        CHECK(strchr(err.msg, '\n') == NULL);
    }
}

static void test_strings(void) {
    ACCEPT("{\"sku\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"}");
    CHECK(sl_eq(ev.sku, "q\"b\\s/n\nt\tr\rb\bf\f"));
    ACCEPT("{\"sku\":\"\\u00e9\\u20AC\\ud83d\\ude00x\"}");
    CHECK(sl_eq(ev.sku, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x"));
    ACCEPT("{\"sku\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    CHECK(sl_eq(ev.sku, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    /* decoded in place: the slice starts where the string's text did */
    ACCEPT("{\"sku\":\"a\\u0041b\"}");
    CHECK(ev.sku.p == buf + 8);
    CHECK(sl_eq(ev.sku, "aAb"));
    /* escaped key names */
    ACCEPT("{\"\\u0073ku\":\"a\",\"pri\\u0063e\":5}");
    CHECK(sl_eq(ev.sku, "a"));
    CHECK(ev.price == 5.0);
    /* escapes inside dimensions are decoded too */
    ACCEPT("{\"sku\":\"a\",\"brand\":\"A\\u0026B\"}");
    CHECK(sl_eq(ev.brand, "A&B"));

    REJECT("{\"sku\":\"\\ud83d\"}", REJ_BAD_JSON);        /* lone high surrogate */
    CHECK(msg_has("surrogate"));
    REJECT("{\"sku\":\"\\ud83dx\\ude00\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\ude00\"}", REJ_BAD_JSON);        /* lone low surrogate */
    REJECT("{\"sku\":\"\\ud83d\\u0041\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\u12G4\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\u12\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\x41\"}", REJ_BAD_JSON);
    CHECK(msg_has("invalid escape"));
    REJECT("{\"sku\":\"a\tb\"}", REJ_BAD_JSON);           /* raw control character */
    CHECK(msg_has("control character"));
    REJECT("{\"sku\":\"a\",\"x\":\"\x01\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\xc0\x80\"}", REJ_BAD_JSON);       /* overlong */
    CHECK(msg_has("UTF-8"));
    REJECT("{\"sku\":\"\xed\xa0\x80\"}", REJ_BAD_JSON);   /* encoded surrogate */
    REJECT("{\"sku\":\"\xf4\x90\x80\x80\"}", REJ_BAD_JSON); /* above U+10FFFF */
    REJECT("{\"sku\":\"\xf5\x80\x80\x80\"}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\x80\"}", REJ_BAD_JSON);           /* lone continuation */
    REJECT("{\"sku\":\"\xe2\x82\"}", REJ_BAD_JSON);       /* truncated */
    REJECT("{\"sku\":\"a\",\"attrs\":{\"k\":\"\xff\"}}", REJ_BAD_JSON);
    REJECT("{\"sku\":\"abc", REJ_BAD_JSON);
    CHECK(msg_has("unterminated string"));
    REJECT("{\"sku\":\"abc\\", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\u00", REJ_BAD_JSON);
    REJECT("{\"sku\":\"\\ud83d\\ude0", REJ_BAD_JSON);

    /* length limits count decoded bytes */
    {
        char line[1024], s[300];
        memset(s, 'x', 128);
        s[128] = '\0';
        snprintf(line, sizeof line, "{\"sku\":\"%s\"}", s);
        ACCEPT(line);
        CHECK_EQ_INT(ev.sku.len, 128);
        s[128] = 'x';
        s[129] = '\0';
        snprintf(line, sizeof line, "{\"sku\":\"%s\"}", s);
        REJECT(line, REJ_BAD_VALUE);
        CHECK(msg_has("129 bytes"));
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"seller\":\"%s\"}", s);
        REJECT(line, REJ_BAD_VALUE);
        /* 64 x "\u00e9" = 128 decoded bytes, 384 bytes of text */
        int o = snprintf(line, sizeof line, "{\"sku\":\"a\",\"market\":\"");
        for (int i = 0; i < 64; i++) o += snprintf(line + o, sizeof line - o, "\\u00e9");
        snprintf(line + o, sizeof line - o, "\"}");
        ACCEPT(line);
        CHECK_EQ_INT(ev.market.len, 128);
    }
}

/* Special bytes at every position of strings of many lengths (the scanner
 * works eight bytes at a time). */
static void test_string_positions(void) {
    int bad = 0;
    for (int len = 1; len <= 40; len++) {
        for (int pos = 0; pos < len; pos++) {
            char line[256], want[64];
            int at = 0, o = snprintf(line, sizeof line, "{\"sku\":\"");
            for (int i = 0; i < len; i++) {
                if (i == pos) {
                    at = o;
                    o += snprintf(line + o, sizeof line - o, "\\n");
                } else {
                    line[o++] = (char)('a' + i % 26);
                }
                want[i] = i == pos ? '\n' : (char)('a' + i % 26);
            }
            snprintf(line + o, sizeof line - o, "\"}");
            want[len] = '\0';
            if (parse(line) != 0 || !sl_eq(ev.sku, want)) bad++;
            line[at] = '\x01'; /* a raw control byte at the same place */
            if (parse(line) != -1 || err.reason != REJ_BAD_JSON) bad++;
            /* a two-byte UTF-8 character there, then a broken one */
            o = snprintf(line, sizeof line, "{\"sku\":\"a\",\"market\":\"");
            for (int i = 0; i < len; i++) {
                if (i == pos) {
                    at = o;
                    o += snprintf(line + o, sizeof line - o, "\xc3\xa9");
                } else {
                    line[o++] = 'x';
                }
            }
            snprintf(line + o, sizeof line - o, "\"}");
            if (parse(line) != 0 || ev.market.len != (uint32_t)len + 1) bad++;
            line[at + 1] = 'x';
            if (parse(line) != -1 || err.reason != REJ_BAD_JSON) bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void check_double(const char *tok) {
    char line[256];
    snprintf(line, sizeof line, "{\"sku\":\"a\",\"price\":%s}", tok);
    double want = strtod(tok, NULL);
    if (parse(line) != 0) {
        fprintf(stderr, "  number %s rejected: %s\n", tok, err.msg);
        CHECK(0);
        return;
    }
    if (memcmp(&ev.price, &want, sizeof want) != 0) {
        fprintf(stderr, "  number %s: got %.17g want %.17g\n", tok, ev.price, want);
        CHECK(0);
        return;
    }
    CHECK(1);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_numbers(void) {
    const char *tricky[] = {
        "0.1", "1e-7", "123456.789", "0.30000000000000004", "12.5", "0", "-0", "-0.0",
        "0.0", "1", "2.2250738585072011e-308", "4.9e-324", "5e-324", "2.4703282292062327e-324",
        "1e-400", "0.000001", "999999999.99999999", "1000000000", "1e9", "1E9", "1e+9",
        "9007199254740993e-8", "9007199254740992.5e-7", "0.1e1", "123456789012345678901234567890e-25",
        "3.141592653589793238462643383279", "0.000000000000000000000000000001",
        "1.7976931348623157e-300", "8.5", "19.99", "0.7", "7.038531e-26",
        "43.01", "100.000000000000000000000001", "2.675", "1.005", "9.999999999999999e8",
        "4.35", "1e8", "1e-22", "123e-22", "9007199254740991e-22", "9007199254740993e-22",
        "0.00000000000000000000000000000000000000000000000000000000000000000000000001e70",
    };
    for (size_t i = 0; i < sizeof tricky / sizeof *tricky; i++) check_double(tricky[i]);
    /* -0 keeps its sign, like float("-0") */
    parse("{\"sku\":\"a\",\"price\":-0.0}");
    CHECK(signbit(ev.price));

    /* random decimals within the price range, bit-compared with strtod */
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        char tok[64];
        int nd = 1 + (int)(xorshift() % 22), o = 0, dot = (int)(xorshift() % (nd + 1));
        tok[o++] = (char)('1' + xorshift() % 9);
        for (int k = 1; k < nd; k++) {
            if (k == dot) tok[o++] = '.';
            tok[o++] = (char)('0' + xorshift() % 10);
        }
        if (xorshift() % 3 == 0) o += snprintf(tok + o, sizeof tok - o, "e%d", (int)(xorshift() % 40) - 30);
        tok[o] = '\0';
        double want = strtod(tok, NULL);
        if (!(want <= 1e9)) continue;
        char line[128];
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"price\":%s}", tok);
        if (parse(line) != 0 || memcmp(&ev.price, &want, sizeof want) != 0) {
            if (bad++ < 5) fprintf(stderr, "  random number %s: got %.17g want %.17g\n", tok, ev.price, want);
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* number grammar */
    const char *invalid[] = {"01", "1.", ".5", "-", "+1", "1e", "1e+", "NaN", "Infinity",
                             "-Infinity", "0x10", "1.e5", "--1", "1ee5", "0.5.5"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        char line[128];
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"price\":%s}", invalid[i]);
        REJECT(line, REJ_BAD_JSON);
    }

    /* integers: exact, fraction or exponent allowed only when integral */
    struct { const char *tok; int ok; long long v; } ints[] = {
        {"5", 1, 5}, {"5.0", 1, 5}, {"5e2", 1, 500}, {"5E+2", 1, 500}, {"500e-2", 1, 5},
        {"-0", 1, 0}, {"0.0e5", 1, 0}, {"1000000000", 1, 1000000000},
        {"1.5", 0, 0}, {"1e-1", 0, 0}, {"5.000000000000000000001", 0, 0},
        {"9007199254740993", 0, 0}, {"1e300", 0, 0}, {"-1", 0, 0},
        {"123456789012345678901234567890", 0, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        char line[128];
        snprintf(line, sizeof line, "{\"sku\":\"a\",\"stock\":%s}", ints[i].tok);
        int rc = parse(line);
        if (ints[i].ok) {
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_INT(ev.stock, ints[i].v);
        } else {
            CHECK_EQ_INT(rc, -1);
            CHECK_EQ_INT(err.reason, REJ_BAD_VALUE);
        }
    }
    ACCEPT("{\"sku\":\"a\",\"reviews\":1e9}");
    CHECK_EQ_INT(ev.reviews, 1000000000);
    ACCEPT("{\"op\":\"order\",\"sku\":\"a\",\"qty\":1000000,\"amount\":1e9}");
    CHECK_EQ_INT(ev.qty, 1000000);
    CHECK(ev.amount == 1e9);
    ACCEPT("{\"sku\":\"a\",\"rating\":5}");
    CHECK(ev.rating == 5.0);
}

static void test_tags_in_place(void) {
    const char *line = "{\"sku\":\"a\",\"tags\":[ \"hot\" , \"b\\u002fc\",\"x.y+z-1_2:3\" ],\"stock\":1}";
    ACCEPT(line);
    CHECK_EQ_INT(ev.tags.n, 3);
    /* the names were written over the array text, from its '[' on */
    CHECK(ev.tags.p == buf + strlen("{\"sku\":\"a\",\"tags\":"));
    CHECK(memcmp(ev.tags.p, "hot\0b/c\0x.y+z-1_2:3\0\0", 21) == 0);
    CHECK(strcmp(tags_str(&ev.tags), "hot,b/c,x.y+z-1_2:3") == 0);
    /* the rest of the line still parsed */
    CHECK_EQ_INT(ev.stock, 1);
    /* iteration */
    const char *t = event_tag_next(&ev.tags, NULL);
    CHECK(t && strcmp(t, "hot") == 0);
    t = event_tag_next(&ev.tags, t);
    CHECK(t && strcmp(t, "b/c") == 0);
    t = event_tag_next(&ev.tags, t);
    CHECK(t && strcmp(t, "x.y+z-1_2:3") == 0);
    CHECK(event_tag_next(&ev.tags, t) == NULL);
    CHECK(event_tag_next(NULL, NULL) == NULL);
    event_tags_t none = {NULL, 0};
    CHECK(event_tag_next(&none, NULL) == NULL);

    /* tightest layout: ["a","b"] has room for both names and the terminator */
    ACCEPT("{\"sku\":\"a\",\"tags\":[\"a\",\"b\"]}");
    CHECK(strcmp(tags_str(&ev.tags), "a,b") == 0);
    ACCEPT("{\"op\":\"tag\",\"sku\":\"a\",\"add\":[\"p\"],\"remove\":[\"q\",\"r\"]}");
    CHECK(strcmp(tags_str(&ev.tags), "p") == 0);
    CHECK(strcmp(tags_str(&ev.tags_remove), "q,r") == 0);
    /* attrs keep their raw text, escapes included */
    ACCEPT("{\"sku\":\"a\",\"attrs\":{\"k\":\"\\u00e9\"},\"tags\":[\"\\u0061\"]}");
    CHECK(sl_eq(ev.attrs, "{\"k\":\"\\u00e9\"}"));
    CHECK(strcmp(tags_str(&ev.tags), "a") == 0);
}

static void test_iso8601(void) {
    struct { const char *s; long long ms; } ok[] = {
        {"1970-01-01", 0},
        {"2026-11-11T00:00+08:00", 1794326400000LL},
        {"2026-11-11T00:00:00.123Z", 1794355200123LL},
        {"2000-02-29T12:34:56.789-05:30", 951847496789LL},
        {"2000-02-29T12:34:56.789-0530", 951847496789LL},
        {"2100-12-31T23:59:59.999Z", 4133980799999LL},
        {"2101-01-01T00:00:00Z", 4133980800000LL},
        {"1969-12-31T23:59:59.999Z", -1},
        {"2026-11-11T00:00:00.1Z", 1794355200100LL},
        {"2026-11-11T00:00:00.123456789Z", 1794355200123LL},
        {"2026-11-11T00:00:00", 1794355200000LL},
        {"2026-11-11 00:00:00z", 1794355200000LL},
        {"2026-11-11T01:02:03+00:00", 1794358923000LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t v = 12345;
        char *s = malloc(strlen(ok[i].s));
        memcpy(s, ok[i].s, strlen(ok[i].s));
        CHECK_EQ_INT(parse_iso8601_ms(s, strlen(ok[i].s), &v), 0);
        CHECK_EQ_INT(v, ok[i].ms);
        free(s);
    }
    const char *bad[] = {
        "", "2026", "2026-1-01", "2026-13-01", "2026-00-10", "2026-11-31", "2001-02-29",
        "1900-02-29", "2026-11-11T", "2026-11-11T24:00", "2026-11-11T12:60", "2026-11-11T12:00:60",
        "2026-11-11Z", "2026-11-11T00:00+8:00", "2026-11-11T00:00+08", "2026-11-11T00:00+24:00",
        "2026-11-11T00:00:00.", "2026-11-11T00:00:00.1234567890Z", "2026-11-11T00:00.5Z",
        "2026-11-11T00:00:00Zx", "2026/11/11", "2026-11-11x", "+2026-11-11", "2026-11-11T00:0",
        "２026-11-11",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v;
        size_t n = strlen(bad[i]);
        char *s = malloc(n ? n : 1);
        memcpy(s, bad[i], n);
        int rc = parse_iso8601_ms(s, n, &v);
        if (rc != -1) fprintf(stderr, "  accepted bad date %s\n", bad[i]);
        CHECK_EQ_INT(rc, -1);
        free(s);
    }
}

static void test_framing(void) {
    const char text[] = "a\r\nbb\n\n\r\nccc";
    size_t len = sizeof text - 1, pos = 0;
    char *b = malloc(len);
    memcpy(b, text, len);
    char *line;
    const char *want[] = {"a", "bb", "", "", "ccc"};
    for (int i = 0; i < 5; i++) {
        long n = ndjson_next_line(b, len, &pos, &line);
        CHECK_EQ_INT(n, (long)strlen(want[i]));
        CHECK(n >= 0 && memcmp(line, want[i], (size_t)n) == 0);
    }
    CHECK_EQ_INT(ndjson_next_line(b, len, &pos, &line), -1);
    CHECK_EQ_INT(pos, len);
    free(b);

    /* a final newline does not make an extra empty line */
    b = malloc(4);
    memcpy(b, "x\ny\n", 4);
    pos = 0;
    CHECK_EQ_INT(ndjson_next_line(b, 4, &pos, &line), 1);
    CHECK_EQ_INT(ndjson_next_line(b, 4, &pos, &line), 1);
    CHECK(line[0] == 'y');
    CHECK_EQ_INT(ndjson_next_line(b, 4, &pos, &line), -1);
    free(b);
    pos = 0;
    CHECK_EQ_INT(ndjson_next_line(NULL, 0, &pos, &line), -1);

    /* framing + parsing a small body, blank lines skipped */
    const char body[] = "{\"op\":\"view\",\"sku\":\"a\"}\r\n  \n{\"op\":\"nope\",\"sku\":\"b\"}\n{\"sku\":\"c\"}";
    len = sizeof body - 1;
    b = malloc(len);
    memcpy(b, body, len);
    int ok = 0, rej = 0, blank = 0;
    long n;
    pos = 0;
    while ((n = ndjson_next_line(b, len, &pos, &line)) >= 0) {
        event_t e;
        event_error_t er;
        int rc = ndjson_parse_event(line, (size_t)n, NOW, &e, &er);
        ok += rc == 0;
        rej += rc == -1;
        blank += rc == 1;
        if (rc == 0 && ok == 2) CHECK(sl_eq(e.sku, "c"));
    }
    CHECK_EQ_INT(ok, 2);
    CHECK_EQ_INT(rej, 1);
    CHECK_EQ_INT(blank, 1);
    free(b);

    CHECK_EQ_INT(parse(""), 1);
    CHECK_EQ_INT(parse(" \t \r"), 1);
}

/* Every prefix of valid lines must be rejected (or blank) without reading
 * past its length; bytes after len must not change the result. */
static void test_bounds(void) {
    const char *lines[] = {
        "{\"sku\":\"SG-1\",\"market\":\"SG\",\"category\":\"a/b\",\"price\":12.5,"
        "\"stock\":3,\"lazmall\":true,\"free_shipping\":false,\"tags\":[\"x\",\"y\\u0041\"],"
        "\"attrs\":{\"a\":[1,{\"b\":\"\\ud83d\\ude00\"}],\"c\":null},\"ts\":\"2026-11-11T00:00:00.5+08:00\"}",
        "{\"op\":\"order\",\"sku\":\"caf\xc3\xa9\",\"qty\":1e0,\"amount\":0.30000000000000004}",
    };
    for (int l = 0; l < 2; l++) {
        size_t full = strlen(lines[l]);
        CHECK_EQ_INT(parse_n(lines[l], full), 0);
        int bad = 0;
        for (size_t n = 0; n < full; n++) {
            int rc = parse_n(lines[l], n);
            if (n == 0 ? rc != 1 : (rc != -1 || err.reason != REJ_BAD_JSON)) bad++;
        }
        CHECK_EQ_INT(bad, 0);
    }
    /* a longer buffer: only len bytes count */
    char b[64] = "{\"sku\":\"a\"}garbage";
    event_t e;
    event_error_t er;
    CHECK_EQ_INT(ndjson_parse_event(b, 11, NOW, &e, &er), 0);
    CHECK_EQ_INT(ndjson_parse_event(b, 12, NOW, &e, &er), -1);
    /* a number that ends the buffer: nothing after it may be touched */
    REJECT("{\"sku\":\"a\",\"price\":12345", REJ_BAD_JSON);
    REJECT("{\"sku\":\"a\",\"price\":1.2345678901234567890123", REJ_BAD_JSON);
}

int main(void) {
    test_names();
    test_record_all_fields();
    test_ops();
    test_ignored_and_duplicates();
    test_rejections();
    test_strings();
    test_string_positions();
    test_numbers();
    test_tags_in_place();
    test_iso8601();
    test_framing();
    test_bounds();
    free(buf);
    return check_done();
}
