/* kafka_in.c - the Kafka consumer-group input; see kafka_in.h for the API.
 *
 * Owns one librdkafka high-level consumer and the thread that polls it. The
 * thread builds, per assigned partition, a batch of consecutive messages
 * (payloads joined as NDJSON lines) and hands it to cfg->deliver when it
 * reaches max_batch, when the local queue runs dry, or ~5 ms after its first
 * message, whichever comes first. All librdkafka callbacks (rebalance, offset
 * commit, errors) are served by consumer_poll on the same thread, so the
 * per-partition batch state needs no lock; k->mu guards only what other
 * threads read or write (stats, commit requests, the partition table).
 *
 * Offsets. enable.auto.commit and enable.auto.offset.store are off. On assign
 * each partition starts at cfg->stored_offset() when it is >= 0 (poold's own
 * state is the truth), else at Kafka's committed offset, else earliest.
 * kafka_in_commit() only records a wish; the thread commits it async every
 * ~500 ms and synchronously before partitions are revoked or at stop.
 *
 * Invariants: a message is offered to deliver at most once per assignment
 * unless deliver refused it (EAGAIN), in which case exactly the same batch is
 * offered again >= 50 ms later while the partition is paused; a message whose
 * offset is below the partition's position (already taken) is dropped; on
 * revoke the batches not yet taken are dropped, so the next owner (maybe us
 * again) resumes from the engine's recorded offsets.
 *
 * Rebalance: eager (range, roundrobin: rd_kafka_assign) and cooperative
 * (cooperative-sticky: incremental assign/unassign) protocols are handled. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kafka_in.h"
#include "util.h"

#define KIN_FLUSH_NS (5ull * 1000000)       /* deliver pending batches at least this often */
#define KIN_RETRY_NS (50ull * 1000000)      /* backpressure retry interval */
#define KIN_HOUSEKEEP_NS (100ull * 1000000) /* watermarks into stats */
#define KIN_COMMIT_NS (500ull * 1000000)    /* coalesced async commits */
#define KIN_IDLE_POLL_MS 100

/* Messages of one partition not yet taken by the engine. */
typedef struct kin_batch {
    char *buf;
    size_t len, cap;
    int64_t *offsets;
    size_t count, ocap;
} kin_batch_t;

typedef struct kin_part {
    char *topic;
    int32_t partition;
    /* Kafka thread only. */
    kin_batch_t batch;
    bool held;      /* batch refused (backpressure): retry at retry_ns */
    bool paused;    /* paused by us */
    bool need_seek; /* a message was dropped while held: seek on resume */
    bool resolve;   /* position unknown: ask the committed offset (stats) */
    uint64_t retry_ns;
    /* Under k->mu (written by the Kafka thread, read by anyone). */
    bool assigned;
    int64_t position;  /* next offset to hand over; below it nothing is offered */
    int64_t committed; /* Kafka's committed offset, for stats only, -1 unknown */
    int64_t hw, lo;
    int64_t commit_want, commit_sent;
} kin_part_t;

struct kafka_in {
    kafka_in_config_t cfg;
    char *brokers, *topics, *group, *client_id;
    rd_kafka_t *rk;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t mu;
    kin_part_t **parts; /* pointers, so entries never move (readers hold mu) */
    size_t nparts, cap;
    uint64_t messages_total, paused_total;
    /* Kafka thread only. */
    kin_part_t *last; /* lookup cache */
    uint64_t pending_since; /* mono ns of the first message not yet offered, 0 = none */
    size_t nheld;
    uint64_t next_housekeep_ns, next_commit_ns;
    uint64_t last_warn_ns, warn_suppressed;
};

/* -- Helpers --------------------------------------------------------------- */

/* Rate-limited warning (Kafka thread only): at most one a second. */
static void kin_warn(kafka_in_t *k, const char *what, const char *detail) {
    uint64_t now = mono_ns();
    if (k->last_warn_ns && now - k->last_warn_ns < 1000000000ull) {
        k->warn_suppressed++;
        return;
    }
    if (k->warn_suppressed)
        log_warn("kafka: %s: %s (%llu similar warnings suppressed)", what, detail,
                 (unsigned long long)k->warn_suppressed);
    else
        log_warn("kafka: %s: %s", what, detail);
    k->last_warn_ns = now;
    k->warn_suppressed = 0;
}

static void batch_free(kin_batch_t *b) {
    free(b->buf);
    free(b->offsets);
    memset(b, 0, sizeof *b);
}

/* Appends one message as one line; '\n' and '\r' inside become ' '. */
static void batch_append(kin_batch_t *b, const char *v, size_t n, int64_t offset) {
    if (!v) n = 0;
    if (b->len + n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 2) cap *= 2;
        b->buf = xrealloc(b->buf, cap);
        b->cap = cap;
    }
    char *d = b->buf + b->len;
    if (n) {
        memcpy(d, v, n);
        for (char *q = d, *end = d + n; (q = memchr(q, '\n', (size_t)(end - q))); q++) *q = ' ';
        for (char *q = d, *end = d + n; (q = memchr(q, '\r', (size_t)(end - q))); q++) *q = ' ';
    }
    d[n] = '\n';
    b->len += n + 1;
    b->buf[b->len] = '\0';
    if (b->count == b->ocap) {
        b->ocap = b->ocap ? b->ocap * 2 : 64;
        b->offsets = xrealloc(b->offsets, b->ocap * sizeof *b->offsets);
    }
    b->offsets[b->count++] = offset;
}

static kin_part_t *part_find(kafka_in_t *k, const char *topic, int32_t partition) {
    if (k->last && k->last->partition == partition && strcmp(k->last->topic, topic) == 0)
        return k->last;
    for (size_t i = 0; i < k->nparts; i++) {
        kin_part_t *p = k->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) return k->last = p;
    }
    return NULL;
}

/* Kafka thread: finds or adds (under mu, since readers scan the table). */
static kin_part_t *part_get(kafka_in_t *k, const char *topic, int32_t partition) {
    kin_part_t *p = part_find(k, topic, partition);
    if (p) return p;
    p = xcalloc(1, sizeof *p);
    p->topic = xstrdup(topic);
    p->partition = partition;
    p->position = p->committed = p->hw = p->lo = p->commit_want = p->commit_sent = -1;
    pthread_mutex_lock(&k->mu);
    if (k->nparts == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->parts = xrealloc(k->parts, k->cap * sizeof *k->parts);
    }
    k->parts[k->nparts++] = p;
    pthread_mutex_unlock(&k->mu);
    return k->last = p;
}

static rd_kafka_topic_partition_list_t *one_partition(const kin_part_t *p, int64_t offset) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = offset;
    return l;
}

static void part_pause(kafka_in_t *k, kin_part_t *p, bool pause) {
    rd_kafka_topic_partition_list_t *l = one_partition(p, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
    if (!e) e = l->elems[0].err;
    if (e) kin_warn(k, pause ? "pause" : "resume", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    p->paused = pause;
}

/* -- Delivery -------------------------------------------------------------- */

/* Offers p's batch to the engine; on refusal holds it and pauses p. */
static void deliver_part(kafka_in_t *k, kin_part_t *p, uint64_t now) {
    kin_batch_t *b = &p->batch;
    if (!b->count) return;
    kafka_msgs_t m = {
        .topic = p->topic,
        .partition = p->partition,
        .first_offset = b->offsets[0],
        .last_offset = b->offsets[b->count - 1],
        .count = b->count,
        .buf = b->buf,
        .len = b->len,
        .offsets = b->offsets,
    };
    errno = 0;
    if (k->cfg.deliver(k->cfg.arg, &m) == 0) {
        pthread_mutex_lock(&k->mu);
        p->position = m.last_offset + 1;
        k->messages_total += m.count;
        pthread_mutex_unlock(&k->mu);
        memset(b, 0, sizeof *b); /* buf and offsets now belong to the engine */
        if (p->held) {
            p->held = false;
            k->nheld--;
        }
        if (p->paused) {
            part_pause(k, p, false);
            if (p->need_seek) {
                rd_kafka_topic_partition_list_t *l = one_partition(p, m.last_offset + 1);
                rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 0);
                if (e) {
                    kin_warn(k, "seek", rd_kafka_error_string(e));
                    rd_kafka_error_destroy(e);
                }
                rd_kafka_topic_partition_list_destroy(l);
                p->need_seek = false;
            }
        }
        return;
    }
    if (errno != EAGAIN) kin_warn(k, "deliver refused a batch (will retry)", strerror(errno));
    if (!p->held) {
        p->held = true;
        k->nheld++;
    }
    p->retry_ns = now + KIN_RETRY_NS;
    if (!p->paused) {
        part_pause(k, p, true);
        pthread_mutex_lock(&k->mu);
        k->paused_total++;
        pthread_mutex_unlock(&k->mu);
    }
}

static void flush_pending(kafka_in_t *k, uint64_t now) {
    for (size_t i = 0; i < k->nparts; i++) {
        kin_part_t *p = k->parts[i];
        if (!p->held && p->batch.count) deliver_part(k, p, now);
    }
    k->pending_since = 0;
}

static void retry_held(kafka_in_t *k, uint64_t now) {
    for (size_t i = 0; i < k->nparts && k->nheld; i++) {
        kin_part_t *p = k->parts[i];
        if (p->held && now >= p->retry_ns) deliver_part(k, p, now);
    }
}

static void on_message(kafka_in_t *k, rd_kafka_message_t *m, uint64_t now) {
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
        char what[192];
        if (m->rkt)
            snprintf(what, sizeof what, "consume %s [%d]", rd_kafka_topic_name(m->rkt), (int)m->partition);
        else
            snprintf(what, sizeof what, "consume");
        kin_warn(k, what, rd_kafka_message_errstr(m));
        return;
    }
    kin_part_t *p = part_find(k, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p || !p->assigned) return; /* stale message of a revoked partition */
    if (p->held) {
        /* Cannot happen after the pause barrier; if it does, drop it and
         * fetch again from the end of the held batch on resume. */
        p->need_seek = true;
        return;
    }
    kin_batch_t *b = &p->batch;
    if (m->offset < p->position || (b->count && m->offset <= b->offsets[b->count - 1]))
        return; /* already taken or already in the batch */
    if (p->position < 0) {
        pthread_mutex_lock(&k->mu);
        p->position = m->offset;
        pthread_mutex_unlock(&k->mu);
    }
    batch_append(b, m->payload, m->len, m->offset);
    if (!k->pending_since) k->pending_since = now;
    if ((int)b->count >= k->cfg.max_batch) deliver_part(k, p, now);
}

/* -- Commits and stats ----------------------------------------------------- */

static void commit_pending(kafka_in_t *k, bool sync) {
    rd_kafka_topic_partition_list_t *l = NULL;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->nparts; i++) {
        kin_part_t *p = k->parts[i];
        if (!p->assigned || p->commit_want <= p->commit_sent) continue;
        if (!l) l = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->commit_want;
        p->commit_sent = p->commit_want;
    }
    pthread_mutex_unlock(&k->mu);
    if (!l) return;
    rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, l, sync ? 0 : 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_info("kafka: commit of %d partition(s) failed: %s (lag monitoring only)", l->cnt,
                 rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Result of an async (or sync) commit: a failed partition is retried with
 * the next request. */
static void kin_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                          void *opaque) {
    (void)rk;
    kafka_in_t *k = opaque;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets) return;
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < offsets->cnt; i++) {
        rd_kafka_topic_partition_t *e = &offsets->elems[i];
        if (!e->err) continue;
        kin_part_t *p = part_find(k, e->topic, e->partition);
        if (p && p->commit_sent == e->offset) p->commit_sent = -1;
    }
    pthread_mutex_unlock(&k->mu);
}

/* Watermarks (cached from fetch responses, no round trip) and, once per
 * assignment, the committed offset of partitions that have no position yet. */
static void housekeep(kafka_in_t *k, uint64_t now) {
    rd_kafka_topic_partition_list_t *unresolved = NULL;
    for (size_t i = 0; i < k->nparts; i++) {
        kin_part_t *p = k->parts[i];
        if (!p->assigned) continue;
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) != 0) lo = hi = -1;
        pthread_mutex_lock(&k->mu);
        if (hi >= 0) p->hw = hi;
        if (lo >= 0) p->lo = lo;
        pthread_mutex_unlock(&k->mu);
        if (p->resolve && p->position < 0) {
            if (!unresolved) unresolved = rd_kafka_topic_partition_list_new(4);
            rd_kafka_topic_partition_list_add(unresolved, p->topic, p->partition);
        }
        p->resolve = false;
    }
    if (unresolved) {
        if (rd_kafka_committed(k->rk, unresolved, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            pthread_mutex_lock(&k->mu);
            for (int i = 0; i < unresolved->cnt; i++) {
                rd_kafka_topic_partition_t *e = &unresolved->elems[i];
                kin_part_t *p = part_find(k, e->topic, e->partition);
                if (p && !e->err && e->offset >= 0) p->committed = e->offset;
            }
            pthread_mutex_unlock(&k->mu);
        }
        rd_kafka_topic_partition_list_destroy(unresolved);
    }
    k->next_housekeep_ns = now + KIN_HOUSEKEEP_NS;
    if (now >= k->next_commit_ns) {
        commit_pending(k, false);
        k->next_commit_ns = now + KIN_COMMIT_NS;
    }
}

/* -- Rebalance ------------------------------------------------------------- */

static void log_partitions(kafka_in_t *k, const char *what, const rd_kafka_topic_partition_list_t *l) {
    char buf[900];
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && n < sizeof buf - 40; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        int w;
        if (e->offset >= 0)
            w = snprintf(buf + n, sizeof buf - n, " %s[%d]@%lld", e->topic, (int)e->partition,
                         (long long)e->offset);
        else
            w = snprintf(buf + n, sizeof buf - n, " %s[%d]", e->topic, (int)e->partition);
        if (w < 0 || (size_t)w >= sizeof buf - n) {
            snprintf(buf + n, sizeof buf - n, " ...");
            break;
        }
        n += (size_t)w;
    }
    log_info("kafka: group %s %s %d partition(s):%s", k->group, what, l->cnt, buf);
}

static void on_assign(kafka_in_t *k, rd_kafka_topic_partition_list_t *parts) {
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *e = &parts->elems[i];
        kin_part_t *p = part_get(k, e->topic, e->partition);
        int64_t off = k->cfg.stored_offset ? k->cfg.stored_offset(k->cfg.arg, e->topic, e->partition) : -1;
        e->offset = off >= 0 ? off : RD_KAFKA_OFFSET_INVALID; /* INVALID = committed, else reset */
        batch_free(&p->batch);
        if (p->held) k->nheld--;
        p->held = p->paused = p->need_seek = false;
        p->resolve = off < 0;
        pthread_mutex_lock(&k->mu);
        p->assigned = true;
        p->position = off >= 0 ? off : -1;
        p->committed = p->hw = p->lo = -1;
        p->commit_want = p->commit_sent = -1;
        pthread_mutex_unlock(&k->mu);
    }
    if (parts->cnt) log_partitions(k, "assigned", parts);
}

/* Drops what the engine has not taken, lets it record its offsets, commits
 * them, then forgets the partitions. lost: another member may own them
 * already, so nothing is committed. */
static void on_revoke(kafka_in_t *k, const rd_kafka_topic_partition_list_t *parts, bool lost) {
    if (parts->cnt == 0) return; /* cooperative: nothing of ours is moving */
    for (int i = 0; i < parts->cnt; i++) {
        kin_part_t *p = part_find(k, parts->elems[i].topic, parts->elems[i].partition);
        if (!p) continue;
        batch_free(&p->batch);
        if (p->held) k->nheld--;
        if (p->paused) part_pause(k, p, false);
        p->held = p->need_seek = p->resolve = false;
    }
    log_partitions(k, lost ? "lost" : "revoking", parts);
    if (k->cfg.revoked) k->cfg.revoked(k->cfg.arg);
    if (!lost) commit_pending(k, true);
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < parts->cnt; i++) {
        kin_part_t *p = part_find(k, parts->elems[i].topic, parts->elems[i].partition);
        if (p) p->assigned = false;
    }
    pthread_mutex_unlock(&k->mu);
}

static rd_kafka_topic_partition_list_t *assigned_list(kafka_in_t *k) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < k->nparts; i++)
        if (k->parts[i]->assigned) rd_kafka_topic_partition_list_add(l, k->parts[i]->topic, k->parts[i]->partition);
    return l;
}

static void kin_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                             void *opaque) {
    kafka_in_t *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(k, parts);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            e = rd_kafka_assign(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(k, parts, rd_kafka_assignment_lost(rk));
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            e = rd_kafka_assign(rk, NULL);
    } else {
        log_warn("kafka: group %s: rebalance error: %s; dropping the assignment", k->group, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_t *all = assigned_list(k);
        on_revoke(k, all, true);
        rd_kafka_topic_partition_list_destroy(all);
        e = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        log_warn("kafka: group %s: %s", k->group, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (e) {
        log_warn("kafka: group %s: assign: %s", k->group, rd_kafka_err2str(e));
    }
}

static void kin_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    kafka_in_t *k = opaque;
    kin_warn(k, rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void kin_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 3)
        log_error("kafka: %s: %s", fac, buf);
    else if (level == 4)
        log_warn("kafka: %s: %s", fac, buf);
    else
        log_info("kafka: %s: %s", fac, buf);
}

/* -- Thread ---------------------------------------------------------------- */

static int poll_timeout_ms(kafka_in_t *k, uint64_t now) {
    uint64_t until = k->next_housekeep_ns;
    for (size_t i = 0; i < k->nparts && k->nheld; i++)
        if (k->parts[i]->held && k->parts[i]->retry_ns < until) until = k->parts[i]->retry_ns;
    if (until <= now) return 0;
    uint64_t ms = (until - now + 999999) / 1000000;
    return ms > KIN_IDLE_POLL_MS ? KIN_IDLE_POLL_MS : (int)ms;
}

static void *kin_thread(void *arg) {
    kafka_in_t *k = arg;
    while (!atomic_load(&k->stop)) {
        uint64_t now = mono_ns();
        int timeout = k->pending_since ? 0 : poll_timeout_ms(k, now);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, timeout);
        now = mono_ns();
        if (m) {
            on_message(k, m, now);
            rd_kafka_message_destroy(m);
        }
        if (k->pending_since && (!m || now - k->pending_since >= KIN_FLUSH_NS)) flush_pending(k, now);
        if (k->nheld) retry_held(k, now);
        if (now >= k->next_housekeep_ns) housekeep(k, now);
    }
    /* Stop: what the engine has not taken is read again next time. */
    for (size_t i = 0; i < k->nparts; i++) {
        batch_free(&k->parts[i]->batch);
        k->parts[i]->held = false;
    }
    k->nheld = 0;
    k->pending_since = 0;
    commit_pending(k, true);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk); /* revokes through the rebalance callback */
    if (e) log_warn("kafka: group %s: close: %s", k->group, rd_kafka_err2str(e));
    return NULL;
}

/* -- Public ---------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *err, size_t errlen) {
    char why[256];
    if (rd_kafka_conf_set(conf, key, val, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka: %s=%s: %s", key, val, why);
        return -1;
    }
    return 0;
}

static void kafka_in_free(kafka_in_t *k) {
    if (!k) return;
    if (k->rk) rd_kafka_destroy(k->rk);
    for (size_t i = 0; i < k->nparts; i++) {
        batch_free(&k->parts[i]->batch);
        free(k->parts[i]->topic);
        free(k->parts[i]);
    }
    free(k->parts);
    free(k->brokers);
    free(k->topics);
    free(k->group);
    free(k->client_id);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

kafka_in_t *kafka_in_start(const kafka_in_config_t *cfg, char *err, size_t errlen) {
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!cfg || !cfg->brokers || !*cfg->brokers || !cfg->topics || !cfg->group || !*cfg->group || !cfg->deliver) {
        snprintf(err, errlen, "kafka: --kafka BROKERS, --topics and --group are all needed");
        return NULL;
    }
    kafka_in_t *k = xcalloc(1, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    k->cfg = *cfg;
    k->brokers = xstrdup(cfg->brokers);
    k->topics = xstrdup(cfg->topics);
    k->group = xstrdup(cfg->group);
    k->client_id = xstrdup(cfg->client_id && *cfg->client_id ? cfg->client_id : "poold");
    k->cfg.brokers = k->brokers;
    k->cfg.topics = k->topics;
    k->cfg.group = k->group;
    k->cfg.client_id = k->client_id;
    k->cfg.rdkafka_props = NULL;
    if (k->cfg.max_batch <= 0) k->cfg.max_batch = 1000;

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(4);
    char *save = NULL, *copy = xstrdup(cfg->topics);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = '\0';
        if (n) rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
    }
    free(copy);
    if (subs->cnt == 0) {
        snprintf(err, errlen, "kafka: --topics names no topic");
        goto fail;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", k->brokers, err, errlen) ||
        conf_set(conf, "group.id", k->group, err, errlen) ||
        conf_set(conf, "client.id", k->client_id, err, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        conf_set(conf, "enable.partition.eof", "false", err, errlen) ||
        /* A real broker answers a fetch as soon as data arrives; the mock
         * only after the full wait: 100 ms bounds the demo's latency and
         * costs an idle cluster ~10 small requests/s per broker. */
        conf_set(conf, "fetch.wait.max.ms", "100", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    for (const char *const *pp = cfg->rdkafka_props; pp && *pp; pp++) {
        const char *eq = strchr(*pp, '=');
        if (!eq || eq == *pp) {
            snprintf(err, errlen, "kafka: property \"%s\" is not key=value", *pp);
            rd_kafka_conf_destroy(conf);
            goto fail;
        }
        char *key = xstrndup(*pp, (size_t)(eq - *pp));
        int rc = conf_set(conf, key, eq + 1, err, errlen);
        free(key);
        if (rc) {
            rd_kafka_conf_destroy(conf);
            goto fail;
        }
    }
    /* Not overridable: poold's state owns the offsets. */
    if (conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_rebalance_cb(conf, kin_rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, kin_commit_cb);
    rd_kafka_conf_set_error_cb(conf, kin_error_cb);
    rd_kafka_conf_set_log_cb(conf, kin_log_cb);

    char why[512];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!k->rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(k->rk);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, subs);
    if (e) {
        snprintf(err, errlen, "kafka: subscribe to %s: %s", k->topics, rd_kafka_err2str(e));
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(subs);
    subs = NULL;
    if (pthread_create(&k->thread, NULL, kin_thread, k) != 0) {
        snprintf(err, errlen, "kafka: cannot start the consumer thread");
        rd_kafka_consumer_close(k->rk);
        goto fail;
    }
    k->thread_started = true;
    log_info("kafka: consuming %s from %s as group %s", k->topics, k->brokers, k->group);
    return k;
fail:
    rd_kafka_topic_partition_list_destroy(subs);
    kafka_in_free(k);
    return NULL;
}

void kafka_in_stop(kafka_in_t *k) {
    if (!k) return;
    if (k->thread_started) {
        atomic_store(&k->stop, true);
        pthread_join(k->thread, NULL);
    }
    kafka_in_free(k);
}

void kafka_in_commit(kafka_in_t *k, const char *topic, int32_t partition, int64_t next_offset) {
    if (!k || !topic || next_offset < 0) return;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->nparts; i++) {
        kin_part_t *p = k->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            if (p->assigned && next_offset > p->commit_want) p->commit_want = next_offset;
            break;
        }
    }
    pthread_mutex_unlock(&k->mu);
}

size_t kafka_in_stats(kafka_in_t *k, kafka_partition_stat_t *out, size_t max, uint64_t *messages_total,
                      uint64_t *paused_total) {
    if (messages_total) *messages_total = 0;
    if (paused_total) *paused_total = 0;
    if (!k) return 0;
    size_t n = 0;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->nparts; i++) {
        const kin_part_t *p = k->parts[i];
        if (!p->assigned) continue;
        if (out && n < max) {
            kafka_partition_stat_t *s = &out[n];
            snprintf(s->topic, sizeof s->topic, "%s", p->topic);
            s->partition = p->partition;
            /* Before the first message without a stored offset, the
             * consumer starts at the committed offset. */
            s->position = p->position >= 0 ? p->position : p->committed;
            s->high_watermark = p->hw;
            if (s->position >= 0 && p->hw >= 0)
                s->lag = p->hw > s->position ? p->hw - s->position : 0;
            else if (p->hw >= 0 && p->hw == p->lo)
                s->lag = 0; /* empty partition */
            else
                s->lag = -1;
        }
        n++;
    }
    if (messages_total) *messages_total = k->messages_total;
    if (paused_total) *paused_total = k->paused_total;
    pthread_mutex_unlock(&k->mu);
    return n;
}
