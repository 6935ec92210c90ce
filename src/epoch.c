/* epoch.c - retire lists; see epoch.h. */
#include <stdlib.h>
#include "epoch.h"
#include "util.h"

void retire_push(retire_list_t *rl, retire_fn fn, void *arg, void *ptr) {
    if (rl->n == rl->cap) {
        rl->cap = rl->cap ? rl->cap * 2 : 64;
        rl->items = xrealloc(rl->items, rl->cap * sizeof *rl->items);
    }
    rl->items[rl->n++] = (retire_item_t){fn, arg, ptr};
}

void retire_run(retire_list_t *rl) {
    for (size_t i = 0; i < rl->n; i++) {
        retire_item_t *it = &rl->items[i];
        if (it->fn) it->fn(it->arg, it->ptr);
        else free(it->ptr);
    }
    rl->n = 0;
}

void retire_move(retire_list_t *dst, retire_list_t *src) {
    for (size_t i = 0; i < src->n; i++)
        retire_push(dst, src->items[i].fn, src->items[i].arg, src->items[i].ptr);
    src->n = 0;
}

void retire_free(retire_list_t *rl) {
    free(rl->items);
    rl->items = NULL;
    rl->n = rl->cap = 0;
}
