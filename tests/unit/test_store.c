/* test_store.c - SKU rows, ids, automatic and free tags, attrs, delete and
 * id reuse through the retire list. */
#include <math.h>
#include <string.h>
#include "check.h"
#include "store.h"
#include "tags.h"

static bool has(tags_t *t, const char *tag, uint32_t id) {
    uint32_t tid;
    return tags_find(t, tag, strlen(tag), &tid) == 0 && tags_has(t, tid, id);
}

static void test_fields_and_auto_tags(void) {
    tags_t *t = tags_new();
    store_t *st = store_new(t);
    retire_list_t rl = {0};
    bool created;
    uint32_t a = store_upsert_id(st, "SG-1", 4, &created, &rl);
    CHECK(created);
    uint32_t again = store_upsert_id(st, "SG-1", 4, &created, &rl);
    CHECK(!created);
    CHECK_EQ_INT(a, again);
    store_set_dim(st, a, DIM_MARKET, "SG", 2);
    store_set_dim(st, a, DIM_CATEGORY, "electronics/phones", 18);
    store_set_dim(st, a, DIM_BRAND, "b0042", 5);
    CHECK(has(t, "market:SG", a));
    CHECK(has(t, "category:electronics", a));
    CHECK(has(t, "category:electronics/phones", a));
    CHECK(has(t, "brand:b0042", a));
    CHECK(strcmp(store_dim_name(st, store_row(st, a)->top_category), "electronics") == 0);
    /* changing a dimension moves the automatic tags */
    store_set_dim(st, a, DIM_MARKET, "MY", 2);
    CHECK(!has(t, "market:SG", a));
    CHECK(has(t, "market:MY", a));
    store_set_dim(st, a, DIM_CATEGORY, "home/kitchen", 12);
    CHECK(!has(t, "category:electronics", a));
    CHECK(!has(t, "category:electronics/phones", a));
    CHECK(has(t, "category:home", a));
    /* stock drives in_stock; flags drive their tags */
    store_set_stock(st, a, 5);
    CHECK(has(t, "in_stock", a));
    store_set_stock(st, a, 0);
    CHECK(!has(t, "in_stock", a));
    store_set_flag(st, a, true, true);
    CHECK(has(t, "lazmall", a));
    store_set_flag(st, a, true, false);
    CHECK(!has(t, "lazmall", a));
    /* discount is derived */
    store_set_price(st, a, 70);
    CHECK(store_row(st, a)->discount == 0);
    store_set_list_price(st, a, 100);
    CHECK(fabs(store_row(st, a)->discount - 0.3) < 1e-12);
    CHECK(store_row(st, a)->discount == 1.0 - 70.0 / 100.0);
    /* free tags: set replaces, add/remove */
    store_set_free_tags(st, a, "giftable\0eco", 2);
    CHECK(has(t, "giftable", a) && has(t, "eco", a));
    store_set_free_tags(st, a, "bundle", 1);
    CHECK(!has(t, "giftable", a) && !has(t, "eco", a) && has(t, "bundle", a));
    store_add_free_tag(st, a, "premium", 7);
    store_remove_free_tag(st, a, "bundle", 6);
    CHECK(has(t, "premium", a) && !has(t, "bundle", a));
    /* full reset clears everything but keeps the SKU */
    store_reset_fields(st, a);
    CHECK(!has(t, "market:MY", a) && !has(t, "premium", a) && !has(t, "category:home", a));
    CHECK(store_row(st, a)->live == 1);
    CHECK_EQ_INT(store_count(st), 1);
    retire_run(&rl);
    retire_free(&rl);
    store_free(st);
    tags_free(t);
}

static void test_attrs(void) {
    tags_t *t = tags_new();
    store_t *st = store_new(t);
    uint32_t a = store_upsert_id(st, "X", 1, NULL, NULL);
    const char *j = "{\"color\":\"r\\u00e9d\",\"warranty_months\":24,\"eco\":true,\"dims\":{\"w\":1},"
                    "\"n\":null,\"color\":\"blue\"}";
    store_set_attrs(st, a, j, strlen(j));
    attr_value_t v;
    store_attr_get(st, a, "warranty_months", 15, &v);
    CHECK(v.type == ATTR_NUMBER && v.num == 24);
    store_attr_get(st, a, "color", 5, &v); /* duplicate key: the last wins */
    CHECK(v.type == ATTR_STRING && v.len == 4 && memcmp(v.str, "blue", 4) == 0);
    store_attr_get(st, a, "eco", 3, &v);
    CHECK(v.type == ATTR_BOOL && v.num == 1);
    store_attr_get(st, a, "dims", 4, &v);
    CHECK(v.type == ATTR_JSON && v.len == 7 && memcmp(v.str, "{\"w\":1}", 7) == 0);
    store_attr_get(st, a, "n", 1, &v);
    CHECK(v.type == ATTR_NIL);
    store_attr_get(st, a, "missing", 7, &v);
    CHECK(v.type == ATTR_NIL);
    const char *j2 = "{\"c\":\"r\\u00e9d\"}";
    store_set_attrs(st, a, j2, strlen(j2));
    store_attr_get(st, a, "c", 1, &v);
    CHECK(v.type == ATTR_STRING && v.len == 4 && memcmp(v.str, "r\xc3\xa9" "d", 4) == 0);
    store_free(st);
    tags_free(t);
}

static void test_delete_and_reuse(void) {
    tags_t *t = tags_new();
    store_t *st = store_new(t);
    retire_list_t rl = {0};
    uint32_t a = store_upsert_id(st, "A", 1, NULL, &rl);
    store_set_dim(st, a, DIM_MARKET, "SG", 2);
    store_add_free_tag(st, a, "eco", 3);
    store_delete(st, a, &rl);
    CHECK_EQ_INT(store_count(st), 0);
    CHECK(!has(t, "market:SG", a));
    CHECK(!has(t, "eco", a));
    uint32_t id;
    CHECK(store_find(st, "A", 1, &id) != 0);
    CHECK(store_read_id(st, "A", 1, &id) != 0);
    CHECK(store_read_name(st, a) == NULL);
    /* until the retire list runs, the id is not reused */
    uint32_t b = store_upsert_id(st, "B", 1, NULL, &rl);
    CHECK(b != a);
    retire_run(&rl);
    uint32_t c = store_upsert_id(st, "C", 1, NULL, &rl);
    CHECK_EQ_INT(c, a);
    CHECK(strcmp(store_read_name(st, c), "C") == 0);
    CHECK(!has(t, "eco", c)); /* no stale tags on a reused id */
    CHECK(store_read_id(st, "C", 1, &id) == 0 && id == c);
    const roaring_bitmap_t *live = store_live(st);
    CHECK(roaring_bitmap_contains(live, b) && roaring_bitmap_contains(live, c));
    CHECK_EQ_INT(roaring_bitmap_get_cardinality(live), 2);
    retire_run(&rl);
    retire_free(&rl);
    store_free(st);
    tags_free(t);
}

/* Free tags per SKU are capped (an uncapped uint16 capacity used to wrap
 * around at 32768 tags and overflow the heap). */
static void test_free_tag_limit(void) {
    tags_t *t = tags_new();
    store_t *st = store_new(t);
    retire_list_t rl = {0};
    uint32_t a = store_upsert_id(st, "A", 1, NULL, &rl);
    char name[32];
    int refused = 0;
    for (int i = 0; i < 40000; i++) {
        int n = snprintf(name, sizeof name, "t%d", i);
        if (store_add_free_tag(st, a, name, (size_t)n) != 0) refused++;
    }
    CHECK_EQ_INT(refused, 40000 - STORE_MAX_FREE_TAGS);
    CHECK(has(t, "t0", a) && has(t, "t255", a));
    CHECK(!has(t, "t256", a));
    CHECK_EQ_INT(store_add_free_tag(st, a, "t7", 2), 0); /* already there: fine */
    store_remove_free_tag(st, a, "t7", 2);
    CHECK_EQ_INT(store_add_free_tag(st, a, "new", 3), 0); /* room again */
    CHECK(has(t, "new", a));
    retire_run(&rl);
    retire_free(&rl);
    store_free(st);
    tags_free(t);
}

int main(void) {
    test_free_tag_limit();
    test_fields_and_auto_tags();
    test_attrs();
    test_delete_and_reuse();
    return check_done();
}
