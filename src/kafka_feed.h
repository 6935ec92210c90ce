/* kafka_feed.h - the Kafka input of `poold serve --kafka` (kafka_feed.c):
 * a consumer group feeding the engine, offsets kept with poold's state. */
#ifndef POOLD_KAFKA_FEED_H
#define POOLD_KAFKA_FEED_H

#include <jansson.h>
#include "engine.h"

typedef struct kafka_feed kafka_feed_t;

/* Joins group `group` on brokers and consumes the comma-separated topics;
 * props: extra librdkafka "key=value" settings, NULL-terminated (or NULL).
 * NULL with err on a configuration error (unreachable brokers are retried
 * by librdkafka, not an error here). */
kafka_feed_t *kafka_feed_start(engine_t *e, const char *brokers, const char *topics, const char *group,
                               const char *const *props, char *err, size_t errlen);
/* Commits the applied offsets to Kafka (for lag monitoring; any thread). */
void kafka_feed_commit(kafka_feed_t *f);
/* Applies what was delivered, commits, leaves the group. NULL is fine. */
void kafka_feed_stop(kafka_feed_t *f);
/* Prometheus lines (lag per partition, messages, rejects, pauses). */
void kafka_feed_metrics(kafka_feed_t *f, void (*emit)(void *arg, const char *line), void *arg);
/* {lag, messages, rejected, paused, partitions:[...]}, or JSON null for NULL. */
json_t *kafka_feed_json(kafka_feed_t *f);

#endif
