/* kafka_in.h - the Kafka consumer-group input of `poold serve --kafka
 * BROKERS --topics T1,T2 --group G` (librdkafka).
 *
 * One thread per kafka_in_t polls librdkafka and hands the engine batches of
 * consecutive messages of one partition through cfg->deliver. Offsets are
 * never auto-committed nor auto-stored: poold's own state (WAL/snapshot) is
 * the truth, asked through cfg->stored_offset when partitions are assigned;
 * Kafka's committed offset is only the fallback and is written (async,
 * coalesced) for lag monitoring through kafka_in_commit.
 *
 * Callbacks (deliver, stored_offset, revoked) run on the Kafka thread, one at
 * a time. kafka_in_commit and kafka_in_stats may be called from any thread.
 * Nothing here depends on the mock cluster (kafka_mock.h). */
#ifndef POOLD_KAFKA_IN_H
#define POOLD_KAFKA_IN_H

#include <stddef.h>
#include <stdint.h>

typedef struct kafka_in kafka_in_t;

/* Consecutive messages of ONE partition, in offset order. buf holds one line
 * per message: the payload with every '\n' or '\r' replaced by ' ', then
 * '\n' (so line i <-> offsets[i]; an empty or NULL payload is an empty
 * line). buf[len] is a NUL not counted in len. buf and offsets are malloc'd;
 * when deliver returns 0 their ownership passes to the callee (free() both);
 * otherwise kafka_in keeps them and offers the same batch again later, so a
 * callee that refuses must leave buf unmodified (ndjson_parse_event decodes
 * in place: refuse before parsing, or parse a copy). topic stays valid until
 * kafka_in_stop. */
typedef struct kafka_msgs {
    const char *topic;
    int32_t partition;
    int64_t first_offset, last_offset;
    size_t count;
    char *buf;
    size_t len;
    int64_t *offsets;
} kafka_msgs_t;

typedef struct kafka_in_config {
    const char *brokers;   /* bootstrap.servers */
    const char *topics;    /* comma list */
    const char *group;     /* group.id */
    const char *client_id; /* NULL = "poold" */
    /* 0 = taken (m->buf and m->offsets now belong to the callee). -1 with
     * errno EAGAIN = backpressure: the partition is paused and the same batch
     * offered again after >= 50 ms, then resumed once taken. Any other -1 is
     * logged and treated the same way (nothing is ever dropped). */
    int (*deliver)(void *arg, kafka_msgs_t *m);
    /* Next offset to read for a newly assigned partition from poold's own
     * state, or -1 = none (then Kafka's committed offset, else earliest).
     * May be NULL (= always -1). */
    int64_t (*stored_offset)(void *arg, const char *topic, int32_t partition);
    /* Called in a rebalance revoke (and in kafka_in_stop when partitions are
     * assigned) before the partitions are given up: batches not yet taken are
     * dropped (they will be read again by the next owner), so the engine
     * applies what was delivered and records its offsets now. kafka_in_commit
     * calls made before it returns are committed before the partitions go.
     * May be NULL. */
    void (*revoked)(void *arg);
    void *arg;
    int max_batch; /* messages per deliver; <= 0 = 1000. Batches are delivered
                      at least every ~5 ms while messages are waiting. */
    /* Optional extra librdkafka properties, "key=value", NULL-terminated
     * (security.protocol, sasl.*, session.timeout.ms, ...). Applied last;
     * the offset settings above cannot be overridden. */
    const char *const *rdkafka_props;
} kafka_in_config_t;

/* Creates the consumer, subscribes and starts the thread. NULL with a
 * one-line message in err on a configuration error (brokers unreachable is
 * not one: librdkafka retries and logs). cfg's strings are copied. */
kafka_in_t *kafka_in_start(const kafka_in_config_t *cfg, char *err, size_t errlen);

/* Records that the engine has applied everything before next_offset; the
 * Kafka thread commits it asynchronously (coalesced, ~every 500 ms, and at
 * revoke/stop) for lag monitoring only. Ignored for partitions not assigned.
 * Any thread. */
void kafka_in_commit(kafka_in_t *k, const char *topic, int32_t partition, int64_t next_offset);

/* Stops the thread: undelivered batches are dropped, revoked() runs if
 * partitions are assigned, pending commits are written, the consumer leaves
 * the group and is destroyed. Accepts NULL. Not from a callback. */
void kafka_in_stop(kafka_in_t *k);

/* position = next offset to hand to the engine (before the first message of
 * a partition assigned without a stored offset: Kafka's committed offset,
 * or -1 when unknown); high_watermark from the last
 * fetch (-1 unknown; not refreshed while a partition is paused); lag =
 * high_watermark - position (0 for an empty partition whose position is
 * unknown), -1 when unknown. */
typedef struct kafka_partition_stat {
    char topic[128];
    int32_t partition;
    int64_t position, high_watermark, lag;
} kafka_partition_stat_t;

/* Fills up to max assigned partitions, returns how many are assigned (may be
 * more than max). messages_total = messages taken by deliver; paused_total =
 * times a partition was paused for backpressure. Either pointer may be NULL.
 * Any thread. */
size_t kafka_in_stats(kafka_in_t *k, kafka_partition_stat_t *out, size_t max,
                      uint64_t *messages_total, uint64_t *paused_total);

#endif
