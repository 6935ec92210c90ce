/* view.h - what a rule's `match`/`rank` function sees of one SKU, shared
 * byte for byte between C and LuaJIT's FFI.
 *
 * The SKU row (sku_row_t) is declared once, in SKU_ROW_FIELDS, and the FFI
 * cdef text that Lua uses is generated from the same list (view_cdef()), so
 * the two cannot drift. lua/ reads rows through a `const` pointer: a rule
 * cannot write through the view.
 *
 * view_roots_t is the one object the trusted Lua glue is handed: base
 * pointers (re-read on every access, because the writer may grow the arrays
 * between two evaluations), the SKU being evaluated (`cur`), and accessor
 * callbacks for what is not a plain column (tags, attrs, the SKU's name).
 * Only the writer thread touches it; every pointer stays valid until the
 * writer next applies an event. */
#ifndef POOLD_VIEW_H
#define POOLD_VIEW_H

#include <stddef.h>
#include <stdint.h>

/* Typed columns of one SKU, indexed by internal id. Dimension fields
 * (market, category, top_category, brand, seller) hold ids into
 * view_roots_t.dims; 0 means unknown. Unknown numbers are 0. `win` is the
 * SKU's index into view_roots_t.win (0 = no windowed activity: all zero). */
#define SKU_ROW_FIELDS(X)                                                  \
    X(double, price) X(double, list_price) X(double, discount)             \
    X(double, rating) X(int32_t, stock) X(int32_t, reviews)                \
    X(uint32_t, market) X(uint32_t, category) X(uint32_t, top_category)    \
    X(uint32_t, brand) X(uint32_t, seller) X(uint32_t, win)                \
    X(uint8_t, lazmall) X(uint8_t, free_shipping) X(uint8_t, live)         \
    X(uint8_t, reserved)

#define SKU_ROW_DECLARE_FIELD(type, name) type name;
typedef struct sku_row {
    SKU_ROW_FIELDS(SKU_ROW_DECLARE_FIELD)
} sku_row_t;

/* Windowed counters of one SKU; index 0 = 1h, 1 = 24h, 2 = 7d. */
enum { WIN_1H = 0, WIN_24H = 1, WIN_7D = 2, WIN__COUNT = 3 };
typedef struct win_sums {
    uint32_t sales[3];  /* units ordered (qty) */
    uint32_t views[3];
    uint32_t clicks[3];
    uint32_t carts[3];
    double gmv[3];      /* order amounts */
} win_sums_t;

/* One value of the SKU's JSON attributes, as attr_get returns it. */
enum { ATTR_NIL = 0, ATTR_NUMBER = 1, ATTR_STRING = 2, ATTR_BOOL = 3, ATTR_JSON = 4 };
typedef struct attr_value {
    int32_t type;       /* ATTR_* */
    int32_t len;        /* string / JSON text length */
    double num;         /* ATTR_NUMBER; ATTR_BOOL: 0 or 1 */
    const char *str;    /* ATTR_STRING (decoded) or ATTR_JSON (raw text); not NUL-terminated */
} attr_value_t;

/* Bits of view_roots_t.reads: what kind of field a rule function read. */
#define VIEW_READ_WINDOWS 1u    /* any s.<metric>_<window> */
#define VIEW_READ_PRICE 2u      /* s.price, s.list_price, s.discount */
#define VIEW_READ_STOCK 4u      /* s.stock, and s:has() (stock moves the in_stock tag) */

typedef struct view_roots {
    const sku_row_t *rows;      /* by internal id */
    const win_sums_t *win;      /* by sku_row_t.win; entry 0 is all zero */
    const char *const *dims;    /* dimension strings by id; dims[0] = "" */
    uint32_t cur;               /* the SKU being evaluated */
    uint32_t reads;             /* VIEW_READ_* bits, set by the view on reads; the engine clears it */
    void *ctx;                  /* passed back to the callbacks */
    /* 1 if the SKU has the tag, else 0. */
    int (*has_tag)(void *ctx, uint32_t sku, const char *tag, size_t len);
    /* Fills *out with attrs[name] of the SKU (ATTR_NIL when absent). The
     * strings stay valid until the writer next applies an event. */
    void (*attr_get)(void *ctx, uint32_t sku, const char *name, size_t len, attr_value_t *out);
    /* The SKU's external id, NUL-terminated. */
    const char *(*sku_name)(void *ctx, uint32_t sku);
} view_roots_t;

/* The LuaJIT cdef text declaring sku_row_t, win_sums_t, attr_value_t and
 * view_roots_t exactly as above. Static storage; built on first call. */
const char *view_cdef(void);

#endif
