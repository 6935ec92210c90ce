/* test_kafka.c - kafka_in (consumer group input) against librdkafka's mock
 * cluster (kafka_mock), through the real Kafka protocol on loopback.
 *
 * Phases (one mock, topic "events" with 4 partitions, keys = SKUs):
 *  1. group g1, no stored offsets, no commits: starts from earliest; every
 *     message exactly once, offsets increasing per partition, one SKU always
 *     in one partition, max_batch honoured, a payload newline flattened;
 *     partition 0 refuses its first batch 3 times (EAGAIN): the same batch is
 *     offered again >= 50 ms later and nothing is lost; stats show a lag
 *     meanwhile that falls to 0.
 *     Then commits half of each partition's offset and stops.
 *  2. g1 again with stored_offset() = recorded next offsets: nothing is
 *     re-delivered, messages produced while stopped are delivered.
 *  3. g1 again with stored_offset() = -1: resumes from the committed offsets.
 *  4. group g2 (consumer A started at the beginning, so that the mock's
 *     3 s initial group delay overlaps phase 1) has read everything alone;
 *     B joins: A is revoked, partitions are split, and A+B together get
 *     every message exactly once. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "check.h"
#include "kafka_in.h"
#include "kafka_mock.h"
#include "util.h"

#define NPART 4
#define NSKU 97
#define MAXN 4000
#define TOPIC "events"

typedef struct coll {
    pthread_mutex_t mu;
    int seen[MAXN];          /* deliveries per message number */
    int sku_part[NSKU];      /* partition of each SKU, -1 = not seen */
    int64_t next[NPART];     /* the "engine state": next offset per partition */
    int64_t first[NPART];    /* first offset delivered per partition, -1 */
    int64_t last_off[NPART]; /* last offset delivered per partition, -1 */
    size_t total;
    int order_errors, format_errors, part_errors, unknown_lines;
    size_t max_count;
    int newline_ok;
    bool use_stored; /* stored_offset returns next[] (else -1) */
    int stored_calls;
    /* backpressure on partition 0 */
    int refuse_p0, refused, reoffer_same, reoffer_diff;
    int64_t ref_first;
    size_t ref_count;
    uint64_t ref_hash, ref_ns, min_gap_ns;
} coll_t;

typedef struct cons {
    coll_t *c;
    int revoked;
    size_t got_after; /* messages with n >= after */
    int after;
} cons_t;

static void coll_init(coll_t *c, bool use_stored) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < NSKU; i++) c->sku_part[i] = -1;
    for (int p = 0; p < NPART; p++) c->next[p] = c->first[p] = c->last_off[p] = -1;
    c->use_stored = use_stored;
    c->min_gap_ns = UINT64_MAX;
}

static uint64_t fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int deliver(void *arg, kafka_msgs_t *m) {
    cons_t *k = arg;
    coll_t *c = k->c;
    int p = m->partition;
    pthread_mutex_lock(&c->mu);
    if (p < 0 || p >= NPART || strcmp(m->topic, TOPIC) != 0) {
        c->format_errors++;
        pthread_mutex_unlock(&c->mu);
        free(m->buf);
        free(m->offsets);
        return 0;
    }
    if (p == 0 && c->refused < c->refuse_p0 + 1 && c->refuse_p0 > 0) {
        uint64_t h = fnv(m->buf, m->len), now = mono_ns();
        if (c->refused == 0) {
            c->ref_first = m->first_offset;
            c->ref_count = m->count;
            c->ref_hash = h;
        } else {
            if (m->first_offset == c->ref_first && m->count == c->ref_count && h == c->ref_hash)
                c->reoffer_same++;
            else
                c->reoffer_diff++;
            if (now - c->ref_ns < c->min_gap_ns) c->min_gap_ns = now - c->ref_ns;
        }
        c->ref_ns = now;
        if (c->refused++ < c->refuse_p0) {
            pthread_mutex_unlock(&c->mu);
            errno = EAGAIN;
            return -1;
        }
    }
    if (m->count > c->max_count) c->max_count = m->count;
    if (m->len == 0 || m->buf[m->len - 1] != '\n' || m->buf[m->len] != '\0' || m->count == 0 ||
        m->offsets[0] != m->first_offset || m->offsets[m->count - 1] != m->last_offset)
        c->format_errors++;
    const char *s = m->buf, *end = m->buf + m->len;
    size_t i = 0;
    for (; s < end && i < m->count; i++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl) break;
        int64_t off = m->offsets[i];
        if (off <= c->last_off[p]) c->order_errors++;
        c->last_off[p] = off;
        if (c->first[p] < 0) c->first[p] = off;
        int sku = -1, n = -1;
        const char *q = strstr(s, "\"sku\":\"S");
        if (q && q < nl) sku = atoi(q + 8);
        q = strstr(s, "\"n\":");
        if (q && q < nl) n = atoi(q + 4);
        if (sku < 0 || sku >= NSKU || n < 0 || n >= MAXN) {
            c->unknown_lines++;
        } else {
            c->seen[n]++;
            if (n >= k->after) k->got_after++;
            if (c->sku_part[sku] < 0)
                c->sku_part[sku] = p;
            else if (c->sku_part[sku] != p)
                c->part_errors++;
            if (memmem(s, (size_t)(nl - s), "\"op\":\"view\", \"n\"", 16)) c->newline_ok++;
        }
        s = nl + 1;
    }
    if (i != m->count || s != end) c->format_errors++;
    c->next[p] = m->last_offset + 1;
    c->total += m->count;
    pthread_mutex_unlock(&c->mu);
    free(m->buf);
    free(m->offsets);
    return 0;
}

static int64_t stored_offset(void *arg, const char *topic, int32_t partition) {
    cons_t *k = arg;
    coll_t *c = k->c;
    if (strcmp(topic, TOPIC) != 0 || partition < 0 || partition >= NPART) return -1;
    pthread_mutex_lock(&c->mu);
    c->stored_calls++;
    int64_t r = c->use_stored ? c->next[partition] : -1;
    pthread_mutex_unlock(&c->mu);
    return r;
}

static void revoked(void *arg) {
    cons_t *k = arg;
    pthread_mutex_lock(&k->c->mu);
    k->revoked++;
    pthread_mutex_unlock(&k->c->mu);
}

/* The mock delays a group's first assignment by 3 s and drops members whose
 * session times out meanwhile: the session must outlast that delay. A join
 * or leave then settles after session - 1 s. */
static const char *const fast_group[] = {"session.timeout.ms=3200", "heartbeat.interval.ms=250", NULL};

static kafka_in_t *start(const char *brokers, const char *group, cons_t *k, int max_batch) {
    kafka_in_config_t cfg = {
        .brokers = brokers,
        .topics = TOPIC,
        .group = group,
        .client_id = "test",
        .deliver = deliver,
        .stored_offset = stored_offset,
        .revoked = revoked,
        .arg = k,
        .max_batch = max_batch,
        .rdkafka_props = fast_group,
    };
    char err[256] = "";
    kafka_in_t *in = kafka_in_start(&cfg, err, sizeof err);
    if (!in) fprintf(stderr, "kafka_in_start: %s\n", err);
    return in;
}

static void produce_range(kafka_producer_t *p, int from, int to) {
    char key[16], val[128];
    for (int n = from; n < to; n++) {
        int sku = (n * 7) % NSKU;
        int kl = snprintf(key, sizeof key, "S%03d", sku);
        int vl = snprintf(val, sizeof val, "{\"sku\":\"S%03d\",\"op\":\"view\",\"n\":%d}", sku, n);
        CHECK(kafka_produce(p, TOPIC, key, (size_t)kl, val, (size_t)vl) == 0);
    }
    CHECK(kafka_producer_flush(p, 10000) == 0);
}

static size_t coll_total(coll_t *c) {
    pthread_mutex_lock(&c->mu);
    size_t t = c->total;
    pthread_mutex_unlock(&c->mu);
    return t;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until c->total >= want (or the timeout); returns the total. With
 * in, also samples the largest lag reported meanwhile into *max_lag. */
static size_t wait_total_lag(coll_t *c, size_t want, int timeout_ms, kafka_in_t *in, int64_t *max_lag) {
    uint64_t t0 = mono_ns();
    while (coll_total(c) < want && mono_ns() - t0 < (uint64_t)timeout_ms * 1000000) {
        kafka_partition_stat_t st[NPART];
        size_t n = in ? kafka_in_stats(in, st, NPART, NULL, NULL) : 0;
        for (size_t i = 0; i < n && i < NPART; i++)
            if (st[i].lag > *max_lag) *max_lag = st[i].lag;
        sleep_ms(10);
    }
    return coll_total(c);
}

static size_t wait_total(coll_t *c, size_t want, int timeout_ms) {
    return wait_total_lag(c, want, timeout_ms, NULL, NULL);
}

/* Waits until every assigned partition of in reports lag 0; returns the
 * number of assigned partitions (0 on timeout). */
static size_t wait_lag0(kafka_in_t *in, int timeout_ms, kafka_partition_stat_t *st) {
    uint64_t t0 = mono_ns();
    for (;;) {
        size_t n = kafka_in_stats(in, st, NPART, NULL, NULL), zero = 0;
        for (size_t i = 0; i < n && i < NPART; i++) zero += st[i].lag == 0;
        if (n && zero == n) return n;
        if (mono_ns() - t0 > (uint64_t)timeout_ms * 1000000) return 0;
        sleep_ms(20);
    }
}

static int count_seen(coll_t *c, int from, int to, int times) {
    int k = 0;
    pthread_mutex_lock(&c->mu);
    for (int n = from; n < to; n++) k += c->seen[n] == times;
    pthread_mutex_unlock(&c->mu);
    return k;
}

static void check_clean(coll_t *c) {
    CHECK_EQ_INT(c->order_errors, 0);
    CHECK_EQ_INT(c->format_errors, 0);
    CHECK_EQ_INT(c->part_errors, 0);
    CHECK_EQ_INT(c->unknown_lines, 0);
}

int main(void) {
    log_quiet = getenv("KAFKA_TEST_VERBOSE") ? 0 : 1;
    uint64_t t_start = mono_ns();
    char err[256] = "";

    /* Argument errors. */
    CHECK(kafka_mock_start("events:0", 1, err, sizeof err) == NULL);
    CHECK(kafka_mock_start("", 1, err, sizeof err) == NULL);
    kafka_in_config_t bad = {.brokers = "127.0.0.1:1", .topics = " , ", .group = "g", .deliver = deliver};
    CHECK(kafka_in_start(&bad, err, sizeof err) == NULL);
    CHECK(strstr(err, "topic") != NULL);
    bad.topics = "events";
    bad.group = NULL;
    CHECK(kafka_in_start(&bad, err, sizeof err) == NULL);
    kafka_in_stop(NULL);
    kafka_mock_stop(NULL);
    kafka_producer_free(NULL);

    kafka_mock_t *mock = kafka_mock_start("events:4,other:1", 1, err, sizeof err);
    CHECK(mock != NULL);
    if (!mock) {
        fprintf(stderr, "kafka_mock_start: %s\n", err);
        return check_done();
    }
    const char *bs = kafka_mock_bootstrap(mock);
    CHECK(bs && strncmp(bs, "127.0.0.1:", 10) == 0);
    kafka_producer_t *prod = kafka_producer_new(bs, err, sizeof err);
    CHECK(prod != NULL);
    if (!prod) return check_done();

    /* Phase 4's first member starts now; it reads phases 1 and 2 as they come. */
    static coll_t c4;
    coll_init(&c4, true);
    const int T2 = 2000 + 1 + 500, N4 = 1000;
    cons_t ka = {.c = &c4, .after = T2}, kb = {.c = &c4, .after = T2};
    kafka_in_t *a = start(bs, "g2", &ka, 0);
    CHECK(a != NULL);

    /* -- Phase 1: earliest, exactly once, order, backpressure ------------- */
    const int N1 = 2000;
    produce_range(prod, 0, N1);
    const char nlmsg[] = "{\"sku\":\"S001\",\"op\":\"view\",\n\"n\":2000}";
    CHECK(kafka_produce(prod, TOPIC, "S001", 4, nlmsg, sizeof nlmsg - 1) == 0);
    CHECK(kafka_producer_flush(prod, 10000) == 0);
    const int T1 = N1 + 1;

    static coll_t c1;
    coll_init(&c1, false);
    c1.refuse_p0 = 3;
    cons_t k1c = {.c = &c1};
    kafka_in_t *k1 = start(bs, "g1", &k1c, 100);
    CHECK(k1 != NULL);
    int64_t max_lag = -1;
    CHECK_EQ_INT(wait_total_lag(&c1, (size_t)T1, 15000, k1, &max_lag), T1);
    CHECK(max_lag > 0); /* seen while partition 0 was held back */
    sleep_ms(200);
    CHECK_EQ_INT(coll_total(&c1), T1);
    CHECK_EQ_INT(count_seen(&c1, 0, T1, 1), T1); /* every message exactly once */
    check_clean(&c1);
    CHECK(c1.max_count <= 100 && c1.max_count > 1);
    CHECK_EQ_INT(c1.newline_ok, 1);
    CHECK_EQ_INT(c1.stored_calls, NPART);
    CHECK_EQ_INT(c1.refused, 4);      /* 3 refusals + the accepted offer */
    CHECK_EQ_INT(c1.reoffer_same, 3); /* each re-offer was the same batch */
    CHECK_EQ_INT(c1.reoffer_diff, 0);
    CHECK(c1.min_gap_ns >= 45000000ull);
    for (int p = 0; p < NPART; p++) CHECK_EQ_INT(c1.first[p], 0); /* earliest */
    int used = 0;
    for (int s = 0; s < NSKU; s++) used |= c1.sku_part[s] >= 0 ? 1 << c1.sku_part[s] : 0;
    CHECK_EQ_INT(used, (1 << NPART) - 1); /* keys spread over all partitions */

    kafka_partition_stat_t st[NPART];
    uint64_t msgs = 0, paused = 0;
    CHECK_EQ_INT(wait_lag0(k1, 3000, st), NPART);
    size_t nst = kafka_in_stats(k1, st, NPART, &msgs, &paused);
    CHECK_EQ_INT(nst, NPART);
    CHECK_EQ_INT(msgs, T1);
    CHECK_EQ_INT(paused, 1);
    int64_t sum_pos = 0;
    for (size_t i = 0; i < nst && i < NPART; i++) {
        CHECK(strcmp(st[i].topic, TOPIC) == 0);
        CHECK_EQ_INT(st[i].position, c1.next[st[i].partition]);
        CHECK_EQ_INT(st[i].high_watermark, st[i].position);
        sum_pos += st[i].position;
    }
    CHECK_EQ_INT(sum_pos, T1);

    /* Commit half of each partition (Kafka's fallback, not the truth). */
    int64_t half[NPART];
    for (int p = 0; p < NPART; p++) {
        half[p] = c1.next[p] / 2;
        kafka_in_commit(k1, TOPIC, p, half[p]);
    }
    kafka_in_commit(k1, "nosuch", 0, 5); /* not assigned: ignored */
    kafka_in_stop(k1);
    double t_phase1 = (double)(mono_ns() - t_start) / 1e9;

    /* -- Phase 2: restart from stored offsets ---------------------------- */
    const int N2 = 500;
    produce_range(prod, T1, T1 + N2);
    static coll_t c2;
    coll_init(&c2, true);
    memcpy(c2.next, c1.next, sizeof c2.next);
    cons_t k2c = {.c = &c2};
    kafka_in_t *k2 = start(bs, "g1", &k2c, 0);
    CHECK(k2 != NULL);
    CHECK_EQ_INT(wait_total(&c2, (size_t)N2, 15000), N2);
    sleep_ms(300);
    CHECK_EQ_INT(coll_total(&c2), N2);
    CHECK_EQ_INT(count_seen(&c2, 0, T1, 0), T1); /* nothing re-delivered */
    CHECK_EQ_INT(count_seen(&c2, T1, T1 + N2, 1), N2);
    check_clean(&c2);
    for (int p = 0; p < NPART; p++) CHECK_EQ_INT(c2.first[p], c1.next[p]); /* seeked to stored */
    kafka_in_stop(k2);

    /* -- Phase 3: no stored offset -> Kafka's committed offset ------------ */
    static coll_t c3;
    coll_init(&c3, false);
    cons_t k3c = {.c = &c3};
    int64_t want3 = 0;
    for (int p = 0; p < NPART; p++) want3 += c2.next[p] - half[p];
    kafka_in_t *k3 = start(bs, "g1", &k3c, 0);
    CHECK(k3 != NULL);
    CHECK_EQ_INT(wait_total(&c3, (size_t)want3, 15000), want3);
    sleep_ms(200);
    CHECK_EQ_INT(coll_total(&c3), want3);
    for (int p = 0; p < NPART; p++) CHECK_EQ_INT(c3.first[p], half[p]);
    check_clean(&c3);
    kafka_in_stop(k3);

    /* -- Phase 4: a second member joins: rebalance ------------------------ */
    CHECK_EQ_INT(T2, T1 + N2);
    CHECK_EQ_INT(wait_total(&c4, (size_t)T2, 15000), T2);
    CHECK_EQ_INT(kafka_in_stats(a, NULL, 0, NULL, NULL), NPART);
    kafka_in_t *b = start(bs, "g2", &kb, 0);
    CHECK(b != NULL);
    uint64_t t0 = mono_ns();
    size_t na = 0, nb = 0;
    while (mono_ns() - t0 < 15000000000ull) {
        na = kafka_in_stats(a, NULL, 0, NULL, NULL);
        nb = kafka_in_stats(b, NULL, 0, NULL, NULL);
        if (ka.revoked && na && nb && na + nb == NPART) break;
        sleep_ms(20);
    }
    CHECK(ka.revoked >= 1);
    CHECK(na >= 1 && nb >= 1);
    CHECK_EQ_INT(na + nb, NPART);
    produce_range(prod, T2, T2 + N4);
    CHECK_EQ_INT(wait_total(&c4, (size_t)(T2 + N4), 15000), T2 + N4);
    sleep_ms(300);
    CHECK_EQ_INT(coll_total(&c4), T2 + N4);
    CHECK_EQ_INT(count_seen(&c4, 0, T2 + N4, 1), T2 + N4); /* exactly once across A and B */
    check_clean(&c4);
    CHECK(ka.got_after > 0 && kb.got_after > 0);
    CHECK_EQ_INT(ka.got_after + kb.got_after, N4);
    kafka_partition_stat_t sa[NPART], sb[NPART];
    na = wait_lag0(a, 3000, sa);
    nb = wait_lag0(b, 3000, sb);
    CHECK_EQ_INT(na + nb, NPART);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) CHECK(sa[i].partition != sb[j].partition); /* split, disjoint */
    kafka_in_stop(b);
    kafka_in_stop(a);

    kafka_producer_free(prod);
    kafka_mock_stop(mock);
    printf("test_kafka: phase 1 %.1f s, total %.1f s\n", t_phase1, (double)(mono_ns() - t_start) / 1e9);
    return check_done();
}
