/* kafka_mock.h - a Kafka broker for tests and the demo (librdkafka's mock
 * cluster, rdkafka_mock.h) and a small keyed producer.
 *
 * The mock serves the real Kafka protocol on loopback ports from its own
 * threads, so other processes (poold serve --kafka, kcat) connect to it like
 * to any cluster. Nothing in poold's consumer path depends on this file.
 * All functions may be called from any thread; one producer handle may be
 * shared by threads (librdkafka is thread-safe). */
#ifndef POOLD_KAFKA_MOCK_H
#define POOLD_KAFKA_MOCK_H

#include <stddef.h>

typedef struct kafka_mock kafka_mock_t;
typedef struct kafka_producer kafka_producer_t;

/* topics_spec: "events:4,changes:1" (NAME[:PARTITIONS], default 1
 * partition). nbrokers <= 0 means 1. NULL with a message in err. */
kafka_mock_t *kafka_mock_start(const char *topics_spec, int nbrokers, char *err, size_t errlen);
/* "127.0.0.1:PORT[,127.0.0.1:PORT...]", valid until kafka_mock_stop. */
const char *kafka_mock_bootstrap(const kafka_mock_t *m);
/* Accepts NULL. Clients still connected see the brokers go away. */
void kafka_mock_stop(kafka_mock_t *m);

/* Idempotent producer (acks=all, linger ~5 ms, delivery timeout 30 s). */
kafka_producer_t *kafka_producer_new(const char *brokers, char *err, size_t errlen);
/* Queues one message (copied), partitioned by key with librdkafka's default
 * partitioner (NULL key: random partition); blocks (up to ~10 s) while the
 * local queue is full. 0 or -1. */
int kafka_produce(kafka_producer_t *p, const char *topic, const char *key, size_t klen, const char *val,
                  size_t vlen);
/* Waits until every queued message is delivered. 0, or -1 if the timeout
 * passed or any message (since the last flush) failed. */
int kafka_producer_flush(kafka_producer_t *p, int timeout_ms);
/* Destroys without waiting for queued messages (flush first). NULL ok. */
void kafka_producer_free(kafka_producer_t *p);

/* `poold kafka-mock --topics events:4 [--brokers N]`: prints
 * "bootstrap: HOST:PORT" on stdout and runs until SIGINT/SIGTERM, or EOF on
 * stdin when stdin is a pipe, socket or terminal. */
int kafka_mock_main(int argc, char **argv);
/* `poold kafka-produce --brokers B --topic T FILE|-`: one message per
 * non-blank NDJSON line, key = the line's top-level "sku" string. */
int kafka_produce_main(int argc, char **argv);

#endif
