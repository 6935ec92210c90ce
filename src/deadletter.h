/* deadletter.h - the dead-letter sink: every rejected input line, with
 * where it came from and why, appended to DATA/deadletter.ndjson as
 *   {"ts":1732460000000,"source":"http","line":17,"reason":"bad_value",
 *    "error":"field \"stock\" must be ...","raw":"{...the line...}"}
 * Any thread; writes are serialised by a mutex and flushed per call (rejects
 * are rare; losing them on a crash would defeat their purpose). Raw text over
 * DEADLETTER_MAX_RAW bytes is truncated and marked "raw_truncated": true. */
#ifndef POOLD_DEADLETTER_H
#define POOLD_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#define DEADLETTER_MAX_RAW 8192

typedef struct deadletter deadletter_t;

deadletter_t *deadletter_open(const char *path, char *err, size_t errlen);
void deadletter_close(deadletter_t *dl);
void deadletter_write(deadletter_t *dl, const char *source, uint64_t line, const char *reason,
                      const char *error, const char *raw, size_t rawlen);
uint64_t deadletter_count(deadletter_t *dl);

#endif
