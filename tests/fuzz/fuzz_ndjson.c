/* fuzz_ndjson.c - libFuzzer target for the NDJSON hot path: the event
 * parser on the whole input, the framer + parser on every line of it, and
 * the ISO-8601 parser. Each input is copied into a malloc'd buffer of its
 * exact size so ASan catches any read past len. On success the event's
 * invariants (event.h) are checked and a violation aborts.
 * Run with tests/fuzz/run.sh. */
// fuzz-sources: src/ndjson.c src/util.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ndjson.h"

#define REQUIRE(c) \
    do {           \
        if (!(c)) abort(); \
    } while (0)

static void check_slice(slice_t s, const char *lo, const char *hi, uint32_t max) {
    REQUIRE(s.p && s.len >= 1 && s.len <= max);
    REQUIRE(s.p >= lo && s.p + s.len <= hi);
}

static void check_tags(const event_tags_t *t, const char *lo, const char *hi) {
    uint32_t n = 0;
    for (const char *s = NULL; (s = event_tag_next(t, s));) {
        size_t len = strlen(s);
        REQUIRE(s >= lo && s + len < hi);
        REQUIRE(len >= 1 && len <= EVENT_MAX_TAG_LEN);
        for (size_t i = 0; i < len; i++)
            REQUIRE(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:/.+-",
                           s[i]) != NULL);
        n++;
    }
    REQUIRE(n == t->n && n <= EVENT_MAX_TAGS);
}

static void check_event(const event_t *ev, const char *lo, const char *hi, int64_t now) {
    REQUIRE((unsigned)ev->op < OP__COUNT);
    check_slice(ev->sku, lo, hi, EVENT_MAX_SKU_LEN);
    REQUIRE(!!(ev->has & EV_MARKET) == !!ev->market.p);
    if (ev->has & EV_MARKET) check_slice(ev->market, lo, hi, EVENT_MAX_DIM_LEN);
    if (ev->has & EV_BRAND) check_slice(ev->brand, lo, hi, EVENT_MAX_DIM_LEN);
    if (ev->has & EV_SELLER) check_slice(ev->seller, lo, hi, EVENT_MAX_DIM_LEN);
    if (ev->has & EV_CATEGORY) {
        check_slice(ev->category, lo, hi, EVENT_MAX_DIM_LEN);
        const char *sl = memchr(ev->category.p, '/', ev->category.len);
        if (sl) {
            REQUIRE(sl > ev->category.p && sl < ev->category.p + ev->category.len - 1);
            REQUIRE(!memchr(sl + 1, '/', (size_t)(ev->category.p + ev->category.len - sl - 1)));
        }
    }
    REQUIRE(ev->price >= 0 && ev->price <= EVENT_MAX_PRICE);
    REQUIRE(ev->list_price >= 0 && ev->list_price <= EVENT_MAX_PRICE);
    REQUIRE(ev->amount >= 0 && ev->amount <= EVENT_MAX_PRICE);
    REQUIRE(ev->rating >= 0 && ev->rating <= 5);
    REQUIRE(ev->stock >= 0 && ev->stock <= EVENT_MAX_STOCK);
    REQUIRE(ev->reviews >= 0 && ev->reviews <= EVENT_MAX_REVIEWS);
    REQUIRE(ev->qty >= 0 && ev->qty <= EVENT_MAX_QTY);
    if (ev->op == OP_ORDER) REQUIRE(ev->qty >= 1 && (ev->has & EV_AMOUNT));
    if (ev->op == OP_PRICE) REQUIRE(ev->has & EV_PRICE);
    if (ev->op == OP_STOCK) REQUIRE(ev->has & EV_STOCK);
    if (ev->op == OP_TAG) REQUIRE(ev->has & (EV_TAGS | EV_REMOVE));
    if (ev->has & EV_TS) REQUIRE(ev->ts >= 946684800000LL && ev->ts < 4133980800000LL);
    else REQUIRE(ev->ts == now);
    if (ev->has & EV_TAGS) check_tags(&ev->tags, lo, hi);
    else REQUIRE(ev->tags.n == 0);
    if (ev->has & EV_REMOVE) check_tags(&ev->tags_remove, lo, hi);
    else REQUIRE(ev->tags_remove.n == 0);
    if (ev->has & EV_ATTRS) {
        REQUIRE(ev->attrs.len >= 2 && ev->attrs.len <= EVENT_MAX_ATTRS_LEN);
        REQUIRE(ev->attrs.p >= lo && ev->attrs.p + ev->attrs.len <= hi);
        REQUIRE(ev->attrs.p[0] == '{' && ev->attrs.p[ev->attrs.len - 1] == '}');
    } else {
        REQUIRE(ev->attrs.p == NULL);
    }
}

static void parse_one(char *line, size_t len) {
    event_t ev;
    event_error_t err;
    const int64_t now = 1700000000000LL;
    int rc = ndjson_parse_event(line, len, now, &ev, &err);
    REQUIRE(rc == 0 || rc == 1 || rc == -1);
    if (rc == 0) {
        check_event(&ev, line, line + len, now);
        REQUIRE(err.reason == REJ_NONE);
    } else if (rc == -1) {
        REQUIRE(err.reason > REJ_NONE && err.reason < REJ__COUNT);
        REQUIRE(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        REQUIRE(strlen(err.msg) > 0 && !strchr(err.msg, '\n'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    parse_one(buf, size);

    /* framing + every line, on a fresh copy (the parse above rewrote buf) */
    memcpy(buf, data, size);
    size_t pos = 0, prev = 0;
    char *line;
    long n;
    while ((n = ndjson_next_line(buf, size, &pos, &line)) >= 0) {
        REQUIRE(pos > prev && pos <= size);
        REQUIRE(line >= buf && line + n <= buf + size);
        prev = pos;
        parse_one(line, (size_t)n);
    }
    REQUIRE(pos == size);

    int64_t ms;
    memcpy(buf, data, size);
    if (parse_iso8601_ms(buf, size, &ms) == 0) REQUIRE(size >= 10 && size <= 40);
    free(buf);
    return 0;
}
