/* kafka_feed.c - Kafka input wired to the engine: `serve --kafka BROKERS
 * --topics T1,T2 --group G`.
 *
 * kafka_in.c (librdkafka consumer group) hands batches of consecutive
 * messages of one partition to feed_deliver, which submits them like any
 * other input (same parser, same validation, dead letters named
 * topic/partition@offset) without blocking: a full queue pauses the
 * partition (backpressure) instead of growing memory. The engine records
 * each partition's next offset when the batch is applied, in its own state
 * (WAL and snapshots): on assign the consumer seeks there, so after any
 * crash poold resumes right after the last applied message. Kafka's
 * committed offsets are written too (kafka_feed_commit, about once a
 * second) for lag monitoring only. On a rebalance revoke the feed waits
 * until every delivered message is applied, so the offsets it leaves behind
 * are exact.
 *
 * Threads: deliver/stored_offset/revoked run on the consumer's thread;
 * kafka_feed_commit and kafka_feed_metrics on any thread. Nothing here
 * depends on the mock cluster. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kafka_feed.h"
#include "kafka_in.h"
#include "util.h"

#define FEED_MAX_PARTS 1024

/* Where the next message of a partition should start; a batch that starts
 * later means messages were skipped (retention deleted them before poold
 * read them, or compaction): counted and logged, never silent. */
typedef struct part_pos {
    char topic[128];
    int32_t partition;
    int64_t next;
} part_pos_t;

struct kafka_feed {
    engine_t *engine;
    kafka_in_t *in;
    part_pos_t pos[FEED_MAX_PARTS]; /* consumer thread only */
    size_t npos;
    atomic_uint_fast64_t skipped_messages, gaps;
    _Atomic uint64_t last_seq;   /* input seq of the last submitted event */
    atomic_uint_fast64_t accepted, rejected, batches, backpressure;
};

static part_pos_t *part_pos(kafka_feed_t *f, const char *topic, int32_t partition) {
    for (size_t i = 0; i < f->npos; i++)
        if (f->pos[i].partition == partition && strcmp(f->pos[i].topic, topic) == 0) return &f->pos[i];
    if (f->npos == FEED_MAX_PARTS) return NULL;
    part_pos_t *p = &f->pos[f->npos++];
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    p->next = engine_kafka_offset(f->engine, topic, partition); /* -1: nothing applied yet */
    return p;
}

static void note_gap(kafka_feed_t *f, const kafka_msgs_t *m) {
    part_pos_t *p = part_pos(f, m->topic, m->partition);
    if (!p) return;
    if (p->next >= 0 && m->first_offset > p->next) {
        uint64_t n = (uint64_t)(m->first_offset - p->next);
        atomic_fetch_add(&f->skipped_messages, n);
        if (atomic_fetch_add(&f->gaps, 1) < 100 || atomic_load(&f->gaps) % 1000 == 0)
            log_warn("kafka: %s[%d]: offsets %lld..%lld were never read (deleted by retention or compacted "
                     "before poold consumed them); continuing at %lld",
                     m->topic, m->partition, (long long)p->next, (long long)m->first_offset - 1,
                     (long long)m->first_offset);
    }
    p->next = m->last_offset + 1;
}

static int feed_deliver(void *arg, kafka_msgs_t *m) {
    kafka_feed_t *f = arg;
    char source[200];
    snprintf(source, sizeof source, "kafka:%s", m->topic);
    engine_input_t in = {0};
    in.source = source;
    in.kind = WAL_SRC_KAFKA;
    in.kafka_topic = m->topic;
    in.kafka_partition = m->partition;
    in.kafka_offset = m->last_offset;
    in.line_offsets = m->offsets;
    ingest_report_t rep = {0};
    /* The engine takes buf on success and on failure; keep a copy to offer
     * the same messages again after a refusal. */
    char *copy = xmalloc(m->len + 1);
    memcpy(copy, m->buf, m->len);
    copy[m->len] = '\0';
    int rc = engine_submit_input(f->engine, &in, copy, m->len, (uint64_t)0, ENGINE_NONBLOCKING, 0, &rep);
    if (rc != 0) {
        int err = errno;
        ingest_report_free(&rep);
        if (err == EAGAIN) atomic_fetch_add(&f->backpressure, 1);
        errno = EAGAIN;
        return -1;
    }
    note_gap(f, m);
    atomic_fetch_add(&f->accepted, rep.accepted);
    atomic_fetch_add(&f->rejected, rep.rejected);
    atomic_fetch_add(&f->batches, 1);
    if (rep.last_seq) atomic_store(&f->last_seq, rep.last_seq);
    ingest_report_free(&rep);
    free(m->buf);
    free(m->offsets);
    m->buf = NULL;
    m->offsets = NULL;
    return 0;
}

static int64_t feed_stored_offset(void *arg, const char *topic, int32_t partition) {
    kafka_feed_t *f = arg;
    return engine_kafka_offset(f->engine, topic, partition);
}

static void feed_revoked(void *arg) {
    kafka_feed_t *f = arg;
    f->npos = 0; /* the next owner of each partition starts from the stored offsets */
    uint64_t seq = atomic_load(&f->last_seq);
    if (seq && engine_wait_applied(f->engine, seq, 60000) != 0)
        log_warn("kafka: partitions revoked before input seq %llu was applied", (unsigned long long)seq);
    kafka_feed_commit(f);
}

kafka_feed_t *kafka_feed_start(engine_t *e, const char *brokers, const char *topics, const char *group,
                               const char *const *props, char *err, size_t errlen) {
    kafka_feed_t *f = xcalloc(1, sizeof *f);
    f->engine = e;
    kafka_in_config_t cfg = {0};
    cfg.brokers = brokers;
    cfg.topics = topics;
    cfg.group = group;
    cfg.client_id = "poold";
    cfg.deliver = feed_deliver;
    cfg.stored_offset = feed_stored_offset;
    cfg.revoked = feed_revoked;
    cfg.arg = f;
    cfg.max_batch = 5000;
    cfg.rdkafka_props = props;
    f->in = kafka_in_start(&cfg, err, errlen);
    if (!f->in) {
        free(f);
        return NULL;
    }
    return f;
}

void kafka_feed_commit(kafka_feed_t *f) {
    if (!f) return;
    kafka_offset_t offs[256];
    size_t n = engine_kafka_offsets(f->engine, offs, 256);
    for (size_t i = 0; i < n; i++) kafka_in_commit(f->in, offs[i].topic, offs[i].partition, offs[i].next);
}

void kafka_feed_stop(kafka_feed_t *f) {
    if (!f) return;
    kafka_in_stop(f->in); /* revoked() runs: delivered messages are applied first */
    free(f);
}

void kafka_feed_metrics(kafka_feed_t *f, void (*emit)(void *arg, const char *line), void *arg) {
    if (!f) return;
    kafka_partition_stat_t st[256];
    uint64_t messages = 0, paused = 0;
    size_t n = kafka_in_stats(f->in, st, 256, &messages, &paused);
    if (n > 256) n = 256;
    char line[400];
    emit(arg, "# HELP poold_kafka_messages_total Kafka messages taken by poold.\n"
              "# TYPE poold_kafka_messages_total counter\n");
    snprintf(line, sizeof line, "poold_kafka_messages_total %llu\n", (unsigned long long)messages);
    emit(arg, line);
    emit(arg, "# HELP poold_kafka_rejected_total Kafka messages rejected (dead letters).\n"
              "# TYPE poold_kafka_rejected_total counter\n");
    snprintf(line, sizeof line, "poold_kafka_rejected_total %llu\n", (unsigned long long)atomic_load(&f->rejected));
    emit(arg, line);
    emit(arg, "# HELP poold_kafka_paused_total Times a partition was paused because the ingest queue was full.\n"
              "# TYPE poold_kafka_paused_total counter\n");
    snprintf(line, sizeof line, "poold_kafka_paused_total %llu\n", (unsigned long long)paused);
    emit(arg, line);
    emit(arg, "# HELP poold_kafka_skipped_messages_total Offsets never read: deleted by retention (or compacted) "
              "before poold consumed them.\n# TYPE poold_kafka_skipped_messages_total counter\n");
    snprintf(line, sizeof line, "poold_kafka_skipped_messages_total %llu\n",
             (unsigned long long)atomic_load(&f->skipped_messages));
    emit(arg, line);
    emit(arg, "# HELP poold_kafka_lag_messages Consumer lag per assigned partition (high watermark - position).\n"
              "# TYPE poold_kafka_lag_messages gauge\n");
    for (size_t i = 0; i < n; i++) {
        snprintf(line, sizeof line, "poold_kafka_lag_messages{topic=\"%s\",partition=\"%d\"} %lld\n", st[i].topic,
                 st[i].partition, (long long)(st[i].lag < 0 ? 0 : st[i].lag));
        emit(arg, line);
    }
}

json_t *kafka_feed_json(kafka_feed_t *f) {
    if (!f) return json_null();
    kafka_partition_stat_t st[256];
    uint64_t messages = 0, paused = 0;
    size_t n = kafka_in_stats(f->in, st, 256, &messages, &paused);
    if (n > 256) n = 256;
    json_t *parts = json_array();
    int64_t lag = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "topic", json_string(st[i].topic));
        json_object_set_new(p, "partition", json_integer(st[i].partition));
        json_object_set_new(p, "position", json_integer(st[i].position));
        json_object_set_new(p, "high_watermark", json_integer(st[i].high_watermark));
        json_object_set_new(p, "lag", json_integer(st[i].lag < 0 ? 0 : st[i].lag));
        if (st[i].lag > 0) lag += st[i].lag;
        json_array_append_new(parts, p);
    }
    json_t *o = json_object();
    json_object_set_new(o, "lag", json_integer(lag));
    json_object_set_new(o, "messages", json_integer((json_int_t)messages));
    json_object_set_new(o, "rejected", json_integer((json_int_t)atomic_load(&f->rejected)));
    json_object_set_new(o, "paused", json_integer((json_int_t)paused));
    json_object_set_new(o, "skipped", json_integer((json_int_t)atomic_load(&f->skipped_messages)));
    json_object_set_new(o, "partitions", parts);
    return o;
}
