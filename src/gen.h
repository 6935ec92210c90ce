/* gen.h - deterministic generator of catalogs and event streams (NDJSON), for
 * `poold gen`, the demo, the end-to-end test and the benchmarks.
 *
 * Everything is a pure function of (nskus, seed) plus, for events, the order
 * of calls: the same arguments give the same bytes (on x86-64 glibc; another
 * libm could round exp/log/pow differently in rare last-bit cases).
 *
 * SKU ids are "<MARKET>-<7 digits>" where the digits are the SKU index i
 * (0 <= i < nskus <= GEN_MAX_SKUS) and the market is gen_market(seed, i), so
 * an event can name SKU i without the catalog being kept in memory. The
 * stable attributes of SKU i (market, category, brand, seller, lazmall,
 * base price) depend on (seed, i) only; full records re-sent by the event
 * stream keep them and redraw the volatile ones (price, stock, rating,
 * tags, attrs, ...).
 *
 * Invalid lines (`gen events --invalid-every K`): line n (1-based) of the
 * output is invalid iff n % K == 0; the j-th invalid line (j from 0) is of
 * kind j % GEN_INVALID_KINDS, in this order, with the reject reason the
 * parser reports: bad JSON (bad_json), missing sku (missing_sku), negative
 * stock (bad_value), unknown op (unknown_op), price as a string (bad_type),
 * price above 1e9 (bad_value), a tag outside the alphabet (bad_tag).
 *
 * Threads: a gen_stream_t belongs to one thread; the other functions are
 * pure and safe from any thread. */
#ifndef POOLD_GEN_H
#define POOLD_GEN_H

#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_SKUS 10000000u /* 7-digit SKU numbers */
#define GEN_LINE_MAX 512       /* every generated line is shorter than this */
#define GEN_INVALID_KINDS 7
/* 2026-11-10T00:00:00Z: default catalog ts and event start. */
#define GEN_DEFAULT_TS 1794268800000LL

typedef struct gen_stream gen_stream_t;

/* `poold gen catalog|events ...` (argv[0] is "gen"). Returns the exit code:
 * 0, 1 on a usage error or an --out file that cannot be created (one line
 * on stderr), 2 on a write error. */
int gen_main(int argc, char **argv);

/* The market ("SG", "MY", ...) of SKU i: weights SG 20, MY 20, TH 20, VN 15,
 * PH 10, ID 15. Static storage. */
const char *gen_market(uint64_t seed, uint32_t i);

/* The external id of SKU i into buf (at least 16 bytes): "SG-0001234".
 * Returns its length. */
size_t gen_sku_id(uint64_t seed, uint32_t i, char *buf);

/* Full catalog record of SKU i (no "op", with "ts":ts) into buf, without a
 * newline and NUL-terminated when it fits. Returns its length, or 0 (buf
 * untouched beyond cap) if cap < GEN_LINE_MAX. */
size_t gen_catalog_line(uint32_t nskus, uint64_t seed, uint32_t i, int64_t ts, char *buf, size_t cap);

/* An event stream over the catalog of (nskus, seed): mix of price 30%,
 * stock 20%, order 20%, view/click/cart 15%, tag 8%, partial upsert 5%,
 * delete 1%, full record 1% (half of them re-inserting a recently deleted
 * SKU). SKUs are picked by Zipf popularity: a stable ranking (75%) and a
 * trending one (25%) that changes every 4 hours of event time, so windowed
 * sales rise and fall. NULL if nskus is 0 or above GEN_MAX_SKUS. */
gen_stream_t *gen_stream_new(uint32_t nskus, uint64_t seed);
void gen_stream_free(gen_stream_t *g);

/* Writes the next event, stamped `ts` (orders and behaviour events are
 * sometimes stamped up to 10 minutes earlier: late arrivals), into buf
 * without a newline, NUL-terminated. Returns its length, or 0 if
 * cap < GEN_LINE_MAX (nothing consumed). */
size_t gen_stream_next(gen_stream_t *g, int64_t ts, char *buf, size_t cap);

/* The k-th invalid line (kind k % GEN_INVALID_KINDS, see above) naming a
 * SKU of the stream. Same length / cap contract as gen_stream_next. */
size_t gen_stream_invalid(gen_stream_t *g, uint64_t k, int64_t ts, char *buf, size_t cap);

#endif
