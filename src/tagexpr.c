/* tagexpr.c - tag expression parser, printer and evaluators; see tagexpr.h.
 *
 * Parsing is recursive descent over the bytes, one function per grammar
 * rule. Recursion is bounded: every nesting ("(" or "!") counts against
 * TAGEXPR_MAX_DEPTH before recursing, and the node count against
 * TAGEXPR_MAX_NODES, so any input costs O(len) time and bounded stack.
 * While parsing, children are kept as linked lists in a node pool, which
 * lets "(a & b) & c" splice its inner AND into the outer one; the result is
 * then packed into one node array, one child-pointer array and one buffer
 * of NUL-terminated tag names.
 *
 * Evaluation walks the tree (depth <= about 3 * TAGEXPR_MAX_DEPTH). Over
 * bitmaps, an intermediate result is either borrowed (a resolved tag bitmap
 * or the universe; never modified) or owned (made here; modified in place,
 * freed here). NOT children of an AND are applied as and-nots, after the
 * positive children sorted by cardinality, so "a & b & !c" materialises no
 * complement.
 *
 * Threads: parse/free/bind on any thread owning the expression; the
 * evaluators and printers only read it, from any number of threads. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tagexpr.h"
#include "util.h"

struct tagexpr {
    tagexpr_node_t *nodes;
    uint32_t nnodes;
    const tagexpr_node_t **kids;
    char *names; /* NUL-terminated tag names */
    const char **tags;
    size_t ntags;
    const tagexpr_node_t *root;
};

/* -- Lexing ------------------------------------------------------------- */

static inline bool is_tag_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == ':' || c == '/' || c == '.' || c == '+' || c == '-';
}

static inline bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool tagexpr_valid_tag(const char *name, size_t len) {
    if (len == 0 || len > TAGEXPR_MAX_TAG) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tag_char((unsigned char)name[i])) return false;
    return true;
}

/* -- Parsing ------------------------------------------------------------ */

typedef struct pnode {
    tagexpr_kind_t kind;
    uint32_t col;
    uint32_t tag_off, tag_len; /* TAG: in the source text */
    int first, last, next;     /* children list; next sibling */
    uint32_t nkids;
    bool dead; /* spliced into its parent */
} pnode_t;

typedef struct parser {
    const char *s;
    size_t len, pos;
    pnode_t *n;
    int nn, cap;
    int depth;
    char *err;
    size_t errlen;
} parser_t;

static void skip_ws(parser_t *p) {
    while (p->pos < p->len && is_space((unsigned char)p->s[p->pos])) p->pos++;
}

/* Describes the token at pos for an error message. */
static void describe(const parser_t *p, char *buf, size_t n) {
    if (p->pos >= p->len) {
        snprintf(buf, n, "end of expression");
        return;
    }
    unsigned char c = (unsigned char)p->s[p->pos];
    if (is_tag_char(c)) {
        size_t e = p->pos;
        while (e < p->len && is_tag_char((unsigned char)p->s[e])) e++;
        size_t l = e - p->pos;
        snprintf(buf, n, "\"%.*s%s\"", (int)(l > 32 ? 32 : l), p->s + p->pos, l > 32 ? "..." : "");
    } else if (c == '"' || c == '\\') {
        snprintf(buf, n, "\"\\%c\"", c);
    } else if (c > 0x20 && c < 0x7f) {
        snprintf(buf, n, "\"%c\"", c);
    } else {
        snprintf(buf, n, "byte 0x%02x", c);
    }
}

static int fail(parser_t *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser_t *p, size_t pos, const char *fmt, ...) {
    if (p->err && p->errlen) {
        int k = snprintf(p->err, p->errlen, "at column %zu: ", pos + 1);
        if (k >= 0 && (size_t)k < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int fail_found(parser_t *p, const char *expected) {
    char tok[48];
    describe(p, tok, sizeof tok);
    return fail(p, p->pos, "expected %s but found %s", expected, tok);
}

static int new_node(parser_t *p, tagexpr_kind_t kind, uint32_t col) {
    if (p->nn == TAGEXPR_MAX_NODES)
        return fail(p, col - 1, "expression too large (more than %d nodes)", TAGEXPR_MAX_NODES);
    if (p->nn == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->n = xrealloc(p->n, (size_t)p->cap * sizeof *p->n);
    }
    p->n[p->nn] = (pnode_t){kind, col, 0, 0, -1, -1, -1, 0, false};
    return p->nn++;
}

/* Adds child to parent's children; an AND under an AND (or OR under OR)
 * gives its own children instead. */
static void append(parser_t *p, int parent, int child) {
    pnode_t *pa = &p->n[parent], *c = &p->n[child];
    int first = child, last = child;
    uint32_t k = 1;
    if (c->kind == pa->kind && (c->kind == TAGEXPR_AND || c->kind == TAGEXPR_OR)) {
        first = c->first;
        last = c->last;
        k = c->nkids;
        c->dead = true;
    }
    if (pa->last >= 0) p->n[pa->last].next = first;
    else pa->first = first;
    pa->last = last;
    pa->nkids += k;
}

static int parse_expr(parser_t *p);

static int parse_factor(parser_t *p) {
    skip_ws(p);
    size_t start = p->pos;
    uint32_t col = (uint32_t)start + 1;
    if (p->pos >= p->len) return fail_found(p, "a tag, \"(\" or \"!\"");
    char c = p->s[p->pos];
    if (c == '!' || c == '(') {
        if (p->depth >= TAGEXPR_MAX_DEPTH)
            return fail(p, start, "expression nested deeper than %d levels", TAGEXPR_MAX_DEPTH);
        p->depth++;
        p->pos++;
        int r;
        if (c == '!') {
            int child = parse_factor(p);
            if (child < 0) return -1;
            r = new_node(p, TAGEXPR_NOT, col);
            if (r < 0) return -1;
            append(p, r, child);
        } else {
            r = parse_expr(p);
            if (r < 0) return -1;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ')')
                return fail_found(p, "\"&\", \"|\" or \")\"");
            p->pos++;
        }
        p->depth--;
        return r;
    }
    if (c == '*') {
        p->pos++;
        return new_node(p, TAGEXPR_ALL, col);
    }
    if (!is_tag_char((unsigned char)c)) return fail_found(p, "a tag, \"(\" or \"!\"");
    while (p->pos < p->len && is_tag_char((unsigned char)p->s[p->pos])) p->pos++;
    if (p->pos - start > TAGEXPR_MAX_TAG)
        return fail(p, start, "tag longer than %d bytes", TAGEXPR_MAX_TAG);
    int r = new_node(p, TAGEXPR_TAG, col);
    if (r < 0) return -1;
    p->n[r].tag_off = (uint32_t)start;
    p->n[r].tag_len = (uint32_t)(p->pos - start);
    return r;
}

/* term := factor { "&" factor }, and expr := term { "|" term }. */
static int parse_list(parser_t *p, tagexpr_kind_t kind) {
    char op = kind == TAGEXPR_AND ? '&' : '|';
    int first = kind == TAGEXPR_AND ? parse_factor(p) : parse_list(p, TAGEXPR_AND);
    if (first < 0) return -1;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != op) return first;
    int node = new_node(p, kind, p->n[first].col);
    if (node < 0) return -1;
    append(p, node, first);
    while (p->pos < p->len && p->s[p->pos] == op) {
        p->pos++;
        int next = kind == TAGEXPR_AND ? parse_factor(p) : parse_list(p, TAGEXPR_AND);
        if (next < 0) return -1;
        append(p, node, next);
        skip_ws(p);
    }
    return node;
}

static int parse_expr(parser_t *p) { return parse_list(p, TAGEXPR_OR); }

/* Packs the pool into the final arrays. */
static tagexpr_t *pack(parser_t *p, int root) {
    int *map = xmalloc((size_t)p->nn * sizeof *map);
    uint32_t live = 0, nkids = 0;
    size_t name_bytes = 0;
    for (int i = 0; i < p->nn; i++) {
        map[i] = p->n[i].dead ? -1 : (int)live++;
        if (p->n[i].dead) continue;
        nkids += p->n[i].nkids;
        if (p->n[i].kind == TAGEXPR_TAG) name_bytes += p->n[i].tag_len + 1;
    }
    tagexpr_t *e = xcalloc(1, sizeof *e);
    e->nodes = xcalloc(live, sizeof *e->nodes);
    e->nnodes = live;
    e->kids = xmalloc((nkids ? nkids : 1) * sizeof *e->kids);
    e->names = xmalloc(name_bytes ? name_bytes : 1);
    e->tags = xmalloc((live ? live : 1) * sizeof *e->tags);
    uint32_t k = 0;
    size_t off = 0;
    for (int i = 0; i < p->nn; i++) {
        const pnode_t *pn = &p->n[i];
        if (pn->dead) continue;
        tagexpr_node_t *n = &e->nodes[map[i]];
        n->kind = pn->kind;
        n->column = pn->col;
        n->nchild = pn->nkids;
        n->child = e->kids + k;
        n->id = -1;
        for (int c = pn->first; c >= 0; c = p->n[c].next) e->kids[k++] = &e->nodes[map[c]];
        if (pn->kind == TAGEXPR_ALL) {
            n->tag = "*";
            n->tag_len = 1;
        } else if (pn->kind == TAGEXPR_TAG) {
            char *name = e->names + off;
            memcpy(name, p->s + pn->tag_off, pn->tag_len);
            name[pn->tag_len] = '\0';
            off += pn->tag_len + 1;
            n->tag = name;
            n->tag_len = pn->tag_len;
            /* leaves are made left to right: first appearance order */
            bool seen = false;
            for (size_t t = 0; t < e->ntags && !seen; t++)
                seen = strlen(e->tags[t]) == n->tag_len && memcmp(e->tags[t], name, n->tag_len) == 0;
            if (!seen) e->tags[e->ntags++] = name;
        }
    }
    e->root = &e->nodes[map[root]];
    free(map);
    return e;
}

tagexpr_t *tagexpr_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser_t p = {.s = text, .len = len, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = '\0';
    tagexpr_t *e = NULL;
    int root = parse_expr(&p);
    if (root >= 0) {
        skip_ws(&p);
        if (p.pos < p.len) fail_found(&p, "\"&\", \"|\" or end of expression");
        else e = pack(&p, root);
    }
    free(p.n);
    return e;
}

void tagexpr_free(tagexpr_t *e) {
    if (!e) return;
    free(e->nodes);
    free(e->kids);
    free(e->names);
    free(e->tags);
    free(e);
}

const tagexpr_node_t *tagexpr_root(const tagexpr_t *e) { return e->root; }

size_t tagexpr_tags(const tagexpr_t *e, const char ***names) {
    if (names) *names = e->tags;
    return e->ntags;
}

/* -- Printing ----------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static int prec(tagexpr_kind_t k) {
    return k == TAGEXPR_OR ? 1 : k == TAGEXPR_AND ? 2 : k == TAGEXPR_NOT ? 3 : 4;
}

static void emit(sbuf_t *b, const tagexpr_node_t *n, int min_prec) {
    if (prec(n->kind) < min_prec) {
        sb_put(b, "(", 1);
        emit(b, n, 0);
        sb_put(b, ")", 1);
        return;
    }
    switch (n->kind) {
    case TAGEXPR_TAG:
    case TAGEXPR_ALL:
        sb_put(b, n->tag, n->tag_len);
        break;
    case TAGEXPR_NOT:
        sb_put(b, "!", 1);
        emit(b, n->child[0], 3);
        break;
    case TAGEXPR_AND:
    case TAGEXPR_OR:
        for (uint32_t i = 0; i < n->nchild; i++) {
            if (i) sb_put(b, n->kind == TAGEXPR_AND ? " & " : " | ", 3);
            emit(b, n->child[i], prec(n->kind) + 1);
        }
        break;
    }
}

char *tagexpr_node_to_string(const tagexpr_node_t *n) {
    sbuf_t b = {0};
    sb_put(&b, "", 0);
    emit(&b, n, 0);
    return b.p;
}

char *tagexpr_to_string(const tagexpr_t *e) { return tagexpr_node_to_string(e->root); }

/* -- Single-SKU evaluation ---------------------------------------------- */

bool tagexpr_node_eval_one(const tagexpr_node_t *n, tagexpr_has_fn has, void *ctx, uint32_t sku) {
    switch (n->kind) {
    case TAGEXPR_TAG:
        return has(ctx, n->tag, n->tag_len, sku);
    case TAGEXPR_ALL:
        return true;
    case TAGEXPR_NOT:
        return !tagexpr_node_eval_one(n->child[0], has, ctx, sku);
    case TAGEXPR_AND:
        for (uint32_t i = 0; i < n->nchild; i++)
            if (!tagexpr_node_eval_one(n->child[i], has, ctx, sku)) return false;
        return true;
    case TAGEXPR_OR:
        for (uint32_t i = 0; i < n->nchild; i++)
            if (tagexpr_node_eval_one(n->child[i], has, ctx, sku)) return true;
        return false;
    }
    return false;
}

bool tagexpr_eval_one(const tagexpr_t *e, tagexpr_has_fn has, void *ctx, uint32_t sku) {
    return tagexpr_node_eval_one(e->root, has, ctx, sku);
}

void tagexpr_bind(tagexpr_t *e, tagexpr_bind_fn bind, void *ctx) {
    for (uint32_t i = 0; i < e->nnodes; i++)
        if (e->nodes[i].kind == TAGEXPR_TAG) e->nodes[i].id = bind(ctx, e->nodes[i].tag, e->nodes[i].tag_len);
}

static bool one_ids(const tagexpr_node_t *n, tagexpr_has_id_fn has_id, void *ctx, uint32_t sku) {
    switch (n->kind) {
    case TAGEXPR_TAG:
        return n->id >= 0 && has_id(ctx, n->id, sku);
    case TAGEXPR_ALL:
        return true;
    case TAGEXPR_NOT:
        return !one_ids(n->child[0], has_id, ctx, sku);
    case TAGEXPR_AND:
        for (uint32_t i = 0; i < n->nchild; i++)
            if (!one_ids(n->child[i], has_id, ctx, sku)) return false;
        return true;
    case TAGEXPR_OR:
        for (uint32_t i = 0; i < n->nchild; i++)
            if (one_ids(n->child[i], has_id, ctx, sku)) return true;
        return false;
    }
    return false;
}

bool tagexpr_eval_one_ids(const tagexpr_t *e, tagexpr_has_id_fn has_id, void *ctx, uint32_t sku) {
    return one_ids(e->root, has_id, ctx, sku);
}

/* -- Bitmap evaluation -------------------------------------------------- */

typedef struct ev {
    tagexpr_resolve_fn resolve;
    void *ctx;
    const roaring_bitmap_t *u; /* universe, may be NULL */
} ev_t;

/* A result: bm (NULL = empty) and own == bm when it was made here. */
typedef struct res {
    const roaring_bitmap_t *bm;
    roaring_bitmap_t *own;
} res_t;

static const res_t EMPTY = {NULL, NULL};

static inline res_t borrowed(const roaring_bitmap_t *bm) { return (res_t){bm, NULL}; }
static inline res_t owned(roaring_bitmap_t *bm) { return (res_t){bm, bm}; }
static inline void res_free(res_t r) {
    if (r.own) roaring_bitmap_free(r.own);
}
static inline bool res_empty(res_t r) { return !r.bm || roaring_bitmap_is_empty(r.bm); }
static inline uint64_t card(const roaring_bitmap_t *bm) {
    return bm ? roaring_bitmap_get_cardinality(bm) : 0;
}

static res_t eval(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count);

/* universe \ x, or its cardinality when count != NULL. */
static res_t eval_not(const ev_t *ev, const tagexpr_node_t *child, uint64_t *count) {
    res_t x = eval(ev, child, NULL);
    res_t r = EMPTY;
    if (count) {
        *count = card(ev->u) - (res_empty(x) || !ev->u ? 0 : roaring_bitmap_and_cardinality(ev->u, x.bm));
    } else if (ev->u) {
        r = res_empty(x) ? borrowed(ev->u) : owned(roaring_bitmap_andnot(ev->u, x.bm));
    }
    res_free(x);
    return r;
}

/* acc op x, where acc may be borrowed; consumes x. */
static res_t apply(res_t acc, res_t x, bool andnot) {
    if (acc.own) {
        if (andnot) roaring_bitmap_andnot_inplace(acc.own, x.bm);
        else roaring_bitmap_and_inplace(acc.own, x.bm);
    } else {
        acc = owned(andnot ? roaring_bitmap_andnot(acc.bm, x.bm) : roaring_bitmap_and(acc.bm, x.bm));
    }
    res_free(x);
    return acc;
}

/* Scratch arrays of an AND/OR node: on the stack for small nodes, else on
 * the heap (a wide node deep in the tree must not cost 1024 slots a level). */
#define SMALL 16

typedef struct scratch {
    res_t r[SMALL];
    uint64_t c[SMALL];
    const tagexpr_node_t *nodes[SMALL];
    const roaring_bitmap_t *bms[SMALL];
} scratch_t;

static void *scratch_get(void *small, size_t each, uint32_t n) {
    return n <= SMALL ? small : xmalloc(each * n);
}

static void scratch_put(void *small, void *p) {
    if (p != small) free(p);
}

static res_t eval_and_with(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count, res_t *pos,
                           uint64_t *pcard, const tagexpr_node_t **neg);

static res_t eval_and(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count) {
    scratch_t sc;
    res_t *pos = scratch_get(sc.r, sizeof *pos, n->nchild);
    uint64_t *pcard = scratch_get(sc.c, sizeof *pcard, n->nchild);
    const tagexpr_node_t **neg = scratch_get(sc.nodes, sizeof *neg, n->nchild);
    res_t r = eval_and_with(ev, n, count, pos, pcard, neg);
    scratch_put(sc.r, pos);
    scratch_put(sc.c, pcard);
    scratch_put(sc.nodes, neg);
    return r;
}

static res_t eval_and_with(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count, res_t *pos,
                           uint64_t *pcard, const tagexpr_node_t **neg) {
    uint32_t npos = 0, nneg = 0;
    if (count) *count = 0;
    for (uint32_t i = 0; i < n->nchild; i++) {
        const tagexpr_node_t *c = n->child[i];
        if (c->kind == TAGEXPR_NOT) {
            neg[nneg++] = c->child[0];
            continue;
        }
        res_t r = eval(ev, c, NULL);
        uint64_t k = card(r.bm);
        if (k == 0) { /* an empty operand empties the AND */
            res_free(r);
            for (uint32_t j = 0; j < npos; j++) res_free(pos[j]);
            return EMPTY;
        }
        uint32_t j = npos++; /* insertion sort by cardinality */
        while (j > 0 && pcard[j - 1] > k) {
            pos[j] = pos[j - 1];
            pcard[j] = pcard[j - 1];
            j--;
        }
        pos[j] = r;
        pcard[j] = k;
    }
    res_t acc = npos ? pos[0] : borrowed(ev->u);
    if (res_empty(acc)) {
        res_free(acc);
        return EMPTY;
    }
    uint32_t steps = (npos ? npos - 1 : 0) + nneg;
    for (uint32_t s = 0; s < steps; s++) {
        bool andnot = s + 1 >= npos;
        res_t x = andnot ? eval(ev, neg[s - (npos ? npos - 1 : 0)], NULL) : pos[s + 1];
        if (res_empty(x)) { /* and-not of nothing; and with nothing can't be */
            res_free(x);
            continue;
        }
        if (count && s + 1 == steps) {
            *count = andnot ? roaring_bitmap_andnot_cardinality(acc.bm, x.bm)
                            : roaring_bitmap_and_cardinality(acc.bm, x.bm);
            res_free(x);
            res_free(acc);
            return EMPTY;
        }
        acc = apply(acc, x, andnot);
        if (roaring_bitmap_is_empty(acc.bm)) {
            for (uint32_t j = s + 2; j < npos; j++) res_free(pos[j]);
            res_free(acc);
            return EMPTY;
        }
    }
    if (count) {
        *count = card(acc.bm);
        res_free(acc);
        return EMPTY;
    }
    return acc;
}

static res_t eval_or_with(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count,
                          const roaring_bitmap_t **in, res_t *held);

static res_t eval_or(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count) {
    scratch_t sc;
    const roaring_bitmap_t **in = scratch_get(sc.bms, sizeof *in, n->nchild);
    res_t *held = scratch_get(sc.r, sizeof *held, n->nchild);
    res_t r = eval_or_with(ev, n, count, in, held);
    scratch_put(sc.bms, in);
    scratch_put(sc.r, held);
    return r;
}

static res_t eval_or_with(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count,
                          const roaring_bitmap_t **in, res_t *held) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n->nchild; i++) {
        res_t r = eval(ev, n->child[i], NULL);
        if (res_empty(r)) {
            res_free(r);
            continue;
        }
        held[k] = r;
        in[k++] = r.bm;
    }
    res_t out = EMPTY;
    if (count) {
        if (k == 0) *count = 0;
        else if (k == 1) *count = card(in[0]);
        else if (k == 2) *count = roaring_bitmap_or_cardinality(in[0], in[1]);
        else {
            roaring_bitmap_t *head = roaring_bitmap_or_many(k - 1, in);
            *count = roaring_bitmap_or_cardinality(head, in[k - 1]);
            roaring_bitmap_free(head);
        }
    } else if (k == 1) {
        return held[0]; /* ownership passes on */
    } else if (k > 1) {
        out = owned(roaring_bitmap_or_many(k, in));
    }
    for (uint32_t i = 0; i < k; i++) res_free(held[i]);
    return out;
}

/* n's result; when count != NULL, only *count (the result's cardinality)
 * and an empty result. */
static res_t eval(const ev_t *ev, const tagexpr_node_t *n, uint64_t *count) {
    res_t r = EMPTY;
    switch (n->kind) {
    case TAGEXPR_TAG:
        r = borrowed(ev->resolve(ev->ctx, n->tag, n->tag_len));
        break;
    case TAGEXPR_ALL:
        r = borrowed(ev->u);
        break;
    case TAGEXPR_NOT:
        return eval_not(ev, n->child[0], count);
    case TAGEXPR_AND:
        return eval_and(ev, n, count);
    case TAGEXPR_OR:
        return eval_or(ev, n, count);
    }
    if (count) *count = card(r.bm);
    return r;
}

roaring_bitmap_t *tagexpr_eval_bitmap(const tagexpr_t *e, tagexpr_resolve_fn resolve, void *ctx,
                                      const roaring_bitmap_t *universe) {
    ev_t ev = {resolve, ctx, universe};
    res_t r = eval(&ev, e->root, NULL);
    if (r.own) return r.own;
    return r.bm ? roaring_bitmap_copy(r.bm) : roaring_bitmap_create();
}

uint64_t tagexpr_count(const tagexpr_t *e, tagexpr_resolve_fn resolve, void *ctx,
                       const roaring_bitmap_t *universe) {
    ev_t ev = {resolve, ctx, universe};
    uint64_t n = 0;
    eval(&ev, e->root, &n);
    return n;
}
