/* durability.h - WAL, snapshots and start-up replay on the engine's side
 * (durability.c). Engine-internal: engine.c and lifecycle.c call it; the
 * public face is in engine.h (engine_snapshot, engine_wait_durable, ...). */
#ifndef POOLD_DURABILITY_H
#define POOLD_DURABILITY_H

#include "engine_internal.h"

/* Start-up (owner thread, writer not running): loads the snapshot, opens
 * the WAL, replays it; the pools' saved state waits for lifecycle_load. */
int durability_open(engine_t *e, char *err, size_t errlen);
/* The saved state of pool `name` from the snapshot (caller frees), or NULL. */
pool_saved_t *durability_take_saved(engine_t *e, const char *name);
/* After the writer stopped: final snapshot, WAL closed. */
void durability_close(engine_t *e);
void durability_free(engine_t *e);

/* Writer, once per cycle after publishing: starts a due snapshot (fork) or
 * reaps a finished one. */
void durability_w_cycle(engine_t *e);
void durability_request_snapshot(engine_t *e);
/* Writer, when a batch from Kafka is applied. */
void durability_set_offset(engine_t *e, const char *topic, int32_t partition, int64_t next);

/* Under the queue lock, in input-seq order. 0 or -1 (nothing accepted). */
int durability_wal_append(engine_t *e, const engine_input_t *in, const char *raw, size_t len, uint64_t first_seq,
                          uint32_t n, int64_t now);

#endif
