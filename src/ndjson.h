/* ndjson.h - line framing and the validating event parser (the NDJSON hot
 * path). One parser for every input: files, HTTP bodies, Kafka messages.
 *
 * ndjson_parse_event() parses one line (without its '\n') into an event_t,
 * allocation-free. The line buffer is mutable: the parser decodes JSON
 * string escapes in place, so the event's slices point into `line`.
 * It never reads outside [line, line+len), needs no NUL terminator, and is
 * fuzzed (tests/fuzz). jansson stays for the HTTP API's JSON; this parser
 * exists because jansson parses catalog records ~5x slower than the load
 * target needs (DESIGN.md, performance notes).
 *
 * `now_ms` is used for a missing ts (the event keeps EV_TS unset but ts set
 * to now_ms). Thread-safe: no global state. */
#ifndef POOLD_NDJSON_H
#define POOLD_NDJSON_H

#include <stddef.h>
#include "event.h"

/* Returns 0 and fills *ev, or -1 and fills *err. A blank line (only
 * whitespace) returns 1: skip it, it is neither accepted nor rejected.
 * err may be NULL; after -1, *ev is unspecified. Fields an op does not use
 * (e.g. "qty" on a price op) are ignored and left unflagged and zero.
 * Decoded tag lists (event_tags_t) hold their n names back to back, each
 * NUL-terminated, followed by one extra NUL; event_tag_next stops at that
 * empty name, so code that builds an event_tags_t by hand must add it too. */
int ndjson_parse_event(char *line, size_t len, int64_t now_ms, event_t *ev, event_error_t *err);

/* Splits buf into lines: returns the length of the next line starting at
 * *pos (without '\n' or a trailing '\r') and sets *line; advances *pos past
 * the newline. Returns -1 at the end of the buffer. */
long ndjson_next_line(char *buf, size_t len, size_t *pos, char **line);

/* Parses an ISO-8601 date-time ("2026-11-11T00:00+08:00",
 * "2026-11-11T00:00:00.123Z", "2026-11-11" = midnight UTC) into ms since
 * epoch. Returns 0 or -1. A missing zone means UTC. */
int parse_iso8601_ms(const char *s, size_t len, int64_t *out_ms);

#endif
