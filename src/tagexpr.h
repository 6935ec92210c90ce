/* tagexpr.h - tag expressions (SPEC "Tag expressions"): parse, print,
 * evaluate over bitmaps or for one SKU.
 *
 *     expr   := term { "|" term }
 *     term   := factor { "&" factor }
 *     factor := "!" factor | "(" expr ")" | TAG | "*"
 *     TAG    := [A-Za-z0-9_:/.+-]+         ("*" = every live SKU)
 *
 * Whitespace may separate tokens; the empty expression is an error. A
 * parsed expression is a tree of at most TAGEXPR_MAX_NODES nodes nested at
 * most TAGEXPR_MAX_DEPTH "(" / "!" deep; chains of one operator are
 * flattened: "(a & b) & c" is one AND node with three children.
 *
 * A parsed tagexpr_t is immutable except for tagexpr_bind; evaluating it
 * from several threads at once is safe (bind must not run concurrently). */
#ifndef POOLD_TAGEXPR_H
#define POOLD_TAGEXPR_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAGEXPR_MAX_NODES 1024
#define TAGEXPR_MAX_DEPTH 64
#define TAGEXPR_MAX_TAG 256 /* bytes in one tag name */

typedef enum tagexpr_kind {
    TAGEXPR_TAG, /* a tag: tag, tag_len, id */
    TAGEXPR_ALL, /* "*": every SKU of the universe */
    TAGEXPR_NOT, /* nchild == 1 */
    TAGEXPR_AND, /* nchild >= 2 */
    TAGEXPR_OR,  /* nchild >= 2 */
} tagexpr_kind_t;

/* One node of the tree, for explain and other walkers. Owned by the
 * tagexpr_t; valid until tagexpr_free. */
typedef struct tagexpr_node {
    tagexpr_kind_t kind;
    uint32_t column;  /* 1-based byte column of the node's first token */
    uint32_t nchild;
    const struct tagexpr_node *const *child;
    const char *tag;  /* TAG: NUL-terminated name; ALL: "*"; else NULL */
    uint32_t tag_len;
    int64_t id;       /* TAG: id set by tagexpr_bind; -1 unknown/unbound */
} tagexpr_node_t;

typedef struct tagexpr tagexpr_t;

/* The bitmap of a tag, NULL for an unknown or empty tag. */
typedef const roaring_bitmap_t *(*tagexpr_resolve_fn)(void *ctx, const char *tag, size_t len);
/* Whether sku has the tag. */
typedef bool (*tagexpr_has_fn)(void *ctx, const char *tag, size_t len, uint32_t sku);
/* An id for the tag, -1 if unknown. */
typedef int64_t (*tagexpr_bind_fn)(void *ctx, const char *tag, size_t len);
/* Whether sku has the tag of id tag_id (always >= 0). */
typedef bool (*tagexpr_has_id_fn)(void *ctx, int64_t tag_id, uint32_t sku);

/* Parses text[0..len). NULL on error with a message in err (if errlen > 0)
 * such as: at column 12: expected a tag, "(" or "!" but found "&". */
tagexpr_t *tagexpr_parse(const char *text, size_t len, char *err, size_t errlen);
void tagexpr_free(tagexpr_t *e);

/* Canonical text, minimal parentheses, single spaces around & and |:
 * "a | b & !(c | d)". malloc'd, caller frees. Parsing it gives back the
 * same tree. */
char *tagexpr_to_string(const tagexpr_t *e);
/* The same for one subtree (explain's clause text). */
char *tagexpr_node_to_string(const tagexpr_node_t *n);

const tagexpr_node_t *tagexpr_root(const tagexpr_t *e);
/* Distinct tag names in order of first appearance ("*" is not a tag).
 * *names points into e (valid until tagexpr_free); returns the count. */
size_t tagexpr_tags(const tagexpr_t *e, const char ***names);

/* The SKUs of universe (every live SKU) matching e, as a new bitmap the
 * caller frees. "!x" is universe minus x and "*" is universe (NULL = empty).
 * Exact when every resolved bitmap is a subset of universe; otherwise
 * members outside universe may appear through positive tags. Intersections
 * start from the smallest operand and stop when empty; "a & !b" runs as an
 * and-not; unions use roaring_bitmap_or_many. */
roaring_bitmap_t *tagexpr_eval_bitmap(const tagexpr_t *e, tagexpr_resolve_fn resolve, void *ctx,
                                      const roaring_bitmap_t *universe);
/* The cardinality of tagexpr_eval_bitmap's result; the last operation of
 * the root (and the whole of "a & b", "a & !b", "a | b", "!a") is done as a
 * cardinality without materialising the result. */
uint64_t tagexpr_count(const tagexpr_t *e, tagexpr_resolve_fn resolve, void *ctx,
                       const roaring_bitmap_t *universe);

/* Whether one live SKU matches ("*" is true). */
bool tagexpr_eval_one(const tagexpr_t *e, tagexpr_has_fn has, void *ctx, uint32_t sku);
/* The same for a subtree (explain, clause by clause). */
bool tagexpr_node_eval_one(const tagexpr_node_t *n, tagexpr_has_fn has, void *ctx, uint32_t sku);

/* Resolves every TAG node to an id once (node->id; -1 when bind returns
 * -1). Re-bind when new tags may have appeared (e.g. tags_count grew).
 * Writer only: not concurrently with evaluations of e. */
void tagexpr_bind(tagexpr_t *e, tagexpr_bind_fn bind, void *ctx);
/* tagexpr_eval_one over bound ids: an unknown tag (-1) has no SKU, so
 * has_id is only called with ids >= 0. */
bool tagexpr_eval_one_ids(const tagexpr_t *e, tagexpr_has_id_fn has_id, void *ctx, uint32_t sku);

/* Whether name[0..len) is a valid TAG token (1..TAGEXPR_MAX_TAG bytes of
 * [A-Za-z0-9_:/.+-]), i.e. reachable from an expression. */
bool tagexpr_valid_tag(const char *name, size_t len);

#endif
