/* view.c - the FFI cdef text for view.h, generated from SKU_ROW_FIELDS so
 * that C and Lua agree on the row layout by construction. The other structs
 * are spelled out here once, next to the only place that must match them. */
#include <stdio.h>
#include <string.h>
#include "view.h"

#define CDEF_FIELD(type, name) #type " " #name "; "

const char *view_cdef(void) {
    static const char cdef[] =
        "typedef struct sku_row { " SKU_ROW_FIELDS(CDEF_FIELD) "} sku_row_t;\n"
        "typedef struct win_sums { uint32_t sales[3]; uint32_t views[3]; "
        "uint32_t clicks[3]; uint32_t carts[3]; double gmv[3]; } win_sums_t;\n"
        "typedef struct attr_value { int32_t type; int32_t len; double num; "
        "const char *str; } attr_value_t;\n"
        "typedef struct view_roots { const sku_row_t *rows; const win_sums_t *win; "
        "const char *const *dims; uint32_t cur; uint32_t reads; void *ctx; "
        "int (*has_tag)(void *ctx, uint32_t sku, const char *tag, size_t len); "
        "void (*attr_get)(void *ctx, uint32_t sku, const char *name, size_t len, "
        "attr_value_t *out); "
        "const char *(*sku_name)(void *ctx, uint32_t sku); } view_roots_t;\n";
    return cdef;
}
