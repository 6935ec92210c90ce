/* test_publish.c - read versions: a retired object stays alive while a
 * reader holds the version it belonged to (or an older one), and is freed
 * once no reader can see it. */
#include <stdlib.h>
#include "check.h"
#include "publish.h"

static int freed[8];
static void mark_freed(void *arg, void *ptr) {
    (void)arg;
    freed[(int)(intptr_t)ptr]++;
}

int main(void) {
    publisher_t p;
    publish_init(&p);
    retire_list_t rl = {0};
    view_t *v1 = calloc(1, sizeof *v1);
    publish_swap(&p, v1, &rl);
    view_t *r1 = publish_acquire(&p);
    CHECK(r1 == v1);

    /* version 2 replaces object 1, which version 1 showed */
    retire_push(&rl, mark_freed, NULL, (void *)(intptr_t)1);
    view_t *v2 = calloc(1, sizeof *v2);
    publish_swap(&p, v2, &rl);
    CHECK(rl.n == 0);
    publish_collect(&p);
    CHECK_EQ_INT(freed[1], 0); /* a reader still holds version 1 */
    view_t *r2 = publish_acquire(&p);
    CHECK(r2 == v2);

    /* version 3 replaces object 2 (shown by version 2) */
    retire_push(&rl, mark_freed, NULL, (void *)(intptr_t)2);
    view_t *v3 = calloc(1, sizeof *v3);
    publish_swap(&p, v3, &rl);
    publish_release(r2);
    publish_collect(&p);
    /* version 2 is unused, but version 1 (older) is held: nothing runs */
    CHECK_EQ_INT(freed[1], 0);
    CHECK_EQ_INT(freed[2], 0);
    publish_release(r1);
    publish_collect(&p);
    CHECK_EQ_INT(freed[1], 1);
    CHECK_EQ_INT(freed[2], 1);
    CHECK(publish_acquire(&p) == v3);
    publish_release(v3);
    publish_destroy(&p);
    retire_free(&rl);
    return check_done();
}
