/* event.h - the one validated event type every input produces.
 *
 * NDJSON lines from files, HTTP bodies and Kafka messages are parsed by
 * ndjson.c into event_t. An event never owns memory: its slices point into
 * the line buffer it was parsed from (which the parser may rewrite in place
 * to decode JSON escapes), so the buffer must outlive the event. Whoever
 * holds a batch of events holds their buffer too.
 *
 * Invariants after a successful parse:
 *  - sku is non-empty, at most EVENT_MAX_SKU_LEN bytes, decoded UTF-8.
 *  - every field flagged in `has` holds a value within the documented
 *    bounds (EV_* below); unflagged fields are zero.
 *  - tags / tags_remove hold `n` decoded tag names, each NUL-terminated,
 *    laid out back to back (iterate with event_tag_next), each matching
 *    [A-Za-z0-9_:/.+-]{1,EVENT_MAX_TAG_LEN}.
 *  - attrs is the raw text of a JSON object (validated, depth-bounded).
 *  - ts is milliseconds since the Unix epoch when EV_TS is set.
 */
#ifndef POOLD_EVENT_H
#define POOLD_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include "util.h"

typedef enum event_op {
    OP_RECORD = 0, /* line without "op": full catalog record, replaces the SKU */
    OP_UPSERT,     /* partial merge of the fields present */
    OP_DELETE,
    OP_PRICE,      /* price [, list_price] */
    OP_STOCK,      /* stock, absolute */
    OP_ORDER,      /* qty, amount [, ts] */
    OP_VIEW,
    OP_CLICK,
    OP_CART,
    OP_TAG,        /* add [...], remove [...] */
    OP__COUNT
} event_op_t;

/* Bits of event_t.has: which fields the line carried. */
enum {
    EV_MARKET = 1u << 0,
    EV_CATEGORY = 1u << 1,
    EV_BRAND = 1u << 2,
    EV_SELLER = 1u << 3,
    EV_PRICE = 1u << 4,
    EV_LIST_PRICE = 1u << 5,
    EV_STOCK = 1u << 6,
    EV_RATING = 1u << 7,
    EV_REVIEWS = 1u << 8,
    EV_LAZMALL = 1u << 9,
    EV_FREE_SHIPPING = 1u << 10,
    EV_TAGS = 1u << 11,   /* "tags" (record/upsert) or "add" (tag op) */
    EV_REMOVE = 1u << 12, /* "remove" (tag op) */
    EV_ATTRS = 1u << 13,
    EV_TS = 1u << 14,
    EV_QTY = 1u << 15,
    EV_AMOUNT = 1u << 16,
};

/* Bounds enforced by the parser (a value outside is rejected). */
#define EVENT_MAX_LINE_LEN (64 * 1024)
#define EVENT_MAX_SKU_LEN 128
#define EVENT_MAX_DIM_LEN 128       /* market, category, brand, seller */
#define EVENT_MAX_TAGS 64           /* per event (tags, add or remove) */
#define EVENT_MAX_TAG_LEN 100
#define EVENT_MAX_ATTRS_LEN (16 * 1024)
#define EVENT_MAX_JSON_DEPTH 16
#define EVENT_MAX_PRICE 1e9         /* price, list_price, amount */
#define EVENT_MAX_STOCK 1000000000LL
#define EVENT_MAX_QTY 1000000LL
#define EVENT_MAX_REVIEWS 1000000000LL

/* Decoded tag names, NUL-separated, `n` of them starting at `p`. */
typedef struct event_tags {
    const char *p;
    uint32_t n;
} event_tags_t;

typedef struct event {
    event_op_t op;
    uint32_t has;           /* EV_* bits */
    slice_t sku;
    slice_t market, category, brand, seller;  /* category is "top" or "top/leaf" */
    double price, list_price, rating, amount;
    int64_t stock, reviews, qty;
    bool lazmall, free_shipping;
    int64_t ts;             /* ms since epoch, valid with EV_TS */
    event_tags_t tags;      /* EV_TAGS */
    event_tags_t tags_remove; /* EV_REMOVE */
    slice_t attrs;          /* EV_ATTRS: raw JSON object text */
} event_t;

/* Why a line was rejected; each reason is a separate /metrics counter. */
typedef enum event_reject {
    REJ_NONE = 0,
    REJ_BAD_JSON,      /* not valid JSON / not an object */
    REJ_TOO_LONG,      /* line over EVENT_MAX_LINE_LEN */
    REJ_TOO_DEEP,      /* nesting over EVENT_MAX_JSON_DEPTH */
    REJ_MISSING_SKU,
    REJ_MISSING_FIELD, /* a field the op requires is absent */
    REJ_BAD_TYPE,      /* a field of the wrong JSON type */
    REJ_BAD_VALUE,     /* negative stock, price out of bounds, bad ts, ... */
    REJ_UNKNOWN_OP,
    REJ_TOO_MANY_TAGS,
    REJ_BAD_TAG,       /* empty, too long or outside the tag alphabet */
    REJ__COUNT
} event_reject_t;

/* A rejection: the reason code and a message a person can act on, e.g.
 * "field \"stock\" must be >= 0, got -3". */
typedef struct event_error {
    event_reject_t reason;
    char msg[200];
} event_error_t;

/* Stable snake_case name of a reason ("bad_json", "missing_sku", ...), used as
 * the /metrics label and in dead-letter records. */
const char *event_reject_name(event_reject_t r);

/* Stable name of an op ("record", "upsert", "delete", ...). */
const char *event_op_name(event_op_t op);

/* Iterates decoded tag names: `const char *t = NULL; while ((t =
 * event_tag_next(&ev->tags, t))) ...`. */
const char *event_tag_next(const event_tags_t *tags, const char *prev);

#endif
