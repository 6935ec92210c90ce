/* wal.h - the write-ahead log: one ordered log of every input poold applies
 * (HTTP bodies, file chunks, Kafka batches), as segment files
 * DATA/wal/wal-<base seq, 16 hex>.log. The byte format is at the top of
 * wal.c.
 *
 * Writing (wal_t, any thread; one mutex inside):
 *   - the engine assigns input seqs and calls wal_append() in seq order (under
 *     its queue lock): records must come with first_seq >= the end of the
 *     previous one, nevents >= 1;
 *   - wal_append() only write()s; wal_sync() makes everything appended so far
 *     durable (fdatasync; concurrent callers share one fdatasync: group
 *     commit) and advances wal_durable_seq();
 *   - who calls wal_sync() depends on --fsync:
 *       always    each input thread, right after its submit, before it acks;
 *       batch     the writer thread, once per batch it dequeues (inputs that
 *                 ack only after the disk call wal_wait_durable(seq));
 *       everysec  the WAL's own thread, every second (started by wal_open);
 *     ?wait=durable is wal_wait_durable(last seq of the request) in any mode;
 *   - after an I/O error the log is failed for good (a retried fdatasync
 *     cannot be trusted): every later append/sync returns -1 with errno EIO.
 *
 * Restart: wal_open() (validates every segment, truncates a torn tail of the
 * last one with a log line, refuses a corrupt record followed by valid data),
 * then load the snapshot (input seq S), then wal_replay(dir, S, ...). After a
 * snapshot that contains every seq < X: wal_rotate() when it is taken, and
 * wal_truncate_before(X) once it is durable. */
#ifndef POOLD_WAL_H
#define POOLD_WAL_H

#include <stddef.h>
#include <stdint.h>

#define WAL_FORMAT_VERSION 1
#define WAL_MAX_SOURCE 1024u          /* bytes of a record's source name */
#define WAL_MAX_PAYLOAD (1u << 30)    /* bytes of a record's payload */

typedef enum { WAL_FSYNC_ALWAYS, WAL_FSYNC_BATCH, WAL_FSYNC_EVERYSEC } wal_fsync_t;
/* "always" | "batch" | "everysec" -> 0; anything else -> -1. */
int wal_fsync_parse(const char *s, wal_fsync_t *out);
const char *wal_fsync_name(wal_fsync_t m);

enum { WAL_SRC_HTTP = 0, WAL_SRC_FILE = 1, WAL_SRC_KAFKA = 2 };

/* One input as submitted: events [first_seq, first_seq + nevents). The
 * payload is the raw text, rejected lines included (replay re-parses it with
 * the same ingest_ms). For Kafka, kafka_partition/kafka_offset are the
 * partition and the last offset the record contains (both >= 0); for other
 * sources both are -1. source/payload are not NUL-terminated; in a replay
 * callback they point into a read-only mapping valid during the call only. */
typedef struct wal_record {
    uint64_t first_seq;
    uint32_t nevents;
    int64_t ingest_ms;
    uint8_t source_kind;       /* WAL_SRC_* */
    const char *source;        /* "http", "kafka:events", "file:catalog.ndjson" */
    uint32_t source_len;       /* <= WAL_MAX_SOURCE */
    int32_t kafka_partition;
    int64_t kafka_offset;
    const char *payload;
    uint32_t payload_len;      /* <= WAL_MAX_PAYLOAD */
} wal_record_t;

typedef struct wal wal_t;

/* Opens (creating dir and its parents if missing) for appending after the
 * last valid record. *last_seq_out (may be NULL) = the last seq the log
 * holds or its newest segment's base - 1, whichever is larger (0 for a new
 * log): the engine's next seq is max(this, snapshot seq) + 1. NULL + err
 * ("wal: corrupt record at PATH offset N (reason)", unknown version, I/O). */
wal_t *wal_open(const char *dir, wal_fsync_t mode, uint64_t *last_seq_out, char *err,
                size_t errlen);
/* Appends one record (write(), no sync). 0, or -1 with errno: EINVAL (bad
 * record, or first_seq before the end of the previous record), EIO (failed
 * log), or the write's error (the partial record is cut off again). */
int wal_append(wal_t *w, const wal_record_t *r);
/* Makes every record appended before the call durable. 0, or -1 (errno). */
int wal_sync(wal_t *w);
uint64_t wal_durable_seq(wal_t *w);    /* last seq known to be on disk */
uint64_t wal_appended_seq(wal_t *w);   /* last seq appended */
/* Waits until wal_durable_seq() >= seq. 0, or -1 on timeout (errno
 * ETIMEDOUT) or on a failed log (EIO). timeout_ms < 0 waits forever. */
int wal_wait_durable(wal_t *w, uint64_t seq, int timeout_ms);
/* Syncs the current segment and starts a new one whose base is the next seq
 * (*next_first_seq_out, may be NULL). 0 or -1 (errno). */
int wal_rotate(wal_t *w, uint64_t *next_first_seq_out);
/* Deletes the segments (never the current one) whose events are all < seq.
 * 0 or -1 (errno of the first failed unlink; the others are still tried). */
int wal_truncate_before(wal_t *w, uint64_t seq);
/* Stops the everysec thread, syncs, closes. Accepts NULL. */
void wal_close(wal_t *w);

typedef struct wal_stats {
    uint64_t appends, bytes, syncs, sync_ns_total, segments;
} wal_stats_t;
void wal_stats(wal_t *w, wal_stats_t *out);

/* Callback for replay and parsing: 0 to go on, anything else stops the
 * replay with an error. */
typedef int (*wal_replay_fn)(void *arg, const wal_record_t *r);

/* Calls fn, in order across segments, for every record holding an event
 * with seq > after_seq. Reads only; a torn tail of the last segment ends the
 * replay (log_warn), a corrupt record followed by valid data is an error.
 * *records_out (may be NULL) = records passed to fn. 0 or -1 with err. Run
 * it with no wal_t appending to the same dir (at start-up). */
int wal_replay(const char *dir, uint64_t after_seq, wal_replay_fn fn, void *arg,
               uint64_t *records_out, char *err, size_t errlen);

/* -- the segment reader, on bytes (used by wal_open/wal_replay; fuzzed) ---- */
typedef struct wal_scan {
    /* in */
    const char *name;          /* for messages; NULL = "buffer" */
    uint64_t min_seq;          /* records must start at or after this */
    uint64_t after_seq;        /* fn only for records with a seq > after_seq */
    wal_replay_fn fn;          /* may be NULL */
    void *arg;
    /* out */
    uint64_t base_seq;         /* from the file header */
    uint64_t end_seq;          /* first_seq + nevents of the last valid record,
                                  else max(min_seq, base_seq) */
    uint64_t records;          /* valid records */
    uint64_t delivered;        /* records passed to fn */
    size_t valid_len;          /* header + whole valid records, in bytes */
    int torn;                  /* 1: bytes after valid_len are a torn tail */
    char torn_reason[96];      /* why the tail was judged torn */
} wal_scan_t;

/* Parses one whole segment file image data[0..len). 0 when every byte is a
 * valid header or record, or when the bytes after the last valid record are
 * a torn tail (s->torn = 1: incomplete or checksum-failing, with no valid
 * record after it); -1 with err for a bad file header (magic, version,
 * checksum), a corrupt record followed by a valid one, a record with valid
 * checksums but impossible fields, or fn returning non-zero. A file shorter
 * than the header is torn at offset 0 (valid_len 0). */
int wal_parse_buffer(const uint8_t *data, size_t len, wal_scan_t *s, char *err, size_t errlen);

/* Builds a file header (WAL_FILE_HEADER bytes) and record headers; the fuzz
 * target and tests make valid images with them. */
#define WAL_FILE_HEADER 32
#define WAL_RECORD_HEADER 48
void wal_encode_file_header(uint8_t out[WAL_FILE_HEADER], uint64_t base_seq);
/* 0, or -1 when r is not a valid record (bad kind, sizes, nevents 0, ...). */
int wal_encode_record_header(uint8_t out[WAL_RECORD_HEADER], const wal_record_t *r);

/* CRC-32C (Castagnoli), as used in the format: crc32c(0, p, n) starts. */
uint32_t wal_crc32c(uint32_t crc, const void *p, size_t n);

#endif
