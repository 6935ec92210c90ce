/* publish.c - read versions and their reclamation; see publish.h. */
#include <stdlib.h>
#include <string.h>
#include "publish.h"
#include "util.h"

void pool_view_free(pool_view_t *pv) {
    if (!pv) return;
    free(pv->name);
    free(pv->title);
    free(pv->file);
    free(pv->where);
    free(pv->last_error);
    free(pv->order);
    free(pv->author);
    free(pv->compile_error);
    roaring_bitmap_free(pv->members);
    free(pv);
}

const char *pool_view_state(const pool_view_t *pv) {
    if (pv->compile_error || pv->failing) return "failing";
    if (pv->active) return "live";
    if (pv->active_from && pv->clock_at_publish < pv->active_from) return "scheduled";
    return "inactive";
}

void publish_init(publisher_t *p) {
    pthread_mutex_init(&p->lock, NULL);
    p->current = NULL;
    p->oldest = NULL;
}

void publish_swap(publisher_t *p, view_t *v, retire_list_t *retired) {
    atomic_init(&v->refs, 1);
    v->next = NULL;
    pthread_mutex_lock(&p->lock);
    view_t *old = p->current;
    p->current = v;
    pthread_mutex_unlock(&p->lock);
    if (old) {
        retire_move(&old->retired, retired);
        old->next = v;
        publish_release(old);
    } else {
        p->oldest = v;
        retire_run(retired);
    }
}

static void view_destroy(view_t *v) {
    retire_run(&v->retired);
    retire_free(&v->retired);
    free(v->pools);
    free(v);
}

void publish_collect(publisher_t *p) {
    while (p->oldest && p->oldest != p->current &&
           atomic_load_explicit(&p->oldest->refs, memory_order_acquire) == 0) {
        view_t *v = p->oldest;
        p->oldest = v->next;
        view_destroy(v);
    }
}

void publish_destroy(publisher_t *p) {
    while (p->oldest) {
        view_t *v = p->oldest;
        p->oldest = v->next;
        view_destroy(v);
    }
    p->current = NULL;
    pthread_mutex_destroy(&p->lock);
}

view_t *publish_acquire(publisher_t *p) {
    pthread_mutex_lock(&p->lock);
    view_t *v = p->current;
    if (v) atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->lock);
    return v;
}

void publish_release(view_t *v) {
    if (v) atomic_fetch_sub_explicit(&v->refs, 1, memory_order_release);
}

const pool_view_t *view_pool(const view_t *v, const char *name) {
    for (size_t i = 0; i < v->npools; i++)
        if (strcmp(v->pools[i]->name, name) == 0) return v->pools[i];
    return NULL;
}
