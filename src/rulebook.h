/* rulebook.h - every version of every rule, the drafts, and the last failed
 * reload of each rule file: what GET /api/rules shows and what survives a
 * restart.
 *
 * On disk, in the data directory:
 *   rules/history.ndjson   one JSON line per published version, appended and
 *                          fsync'd when the version goes live:
 *                          {"name","version","kind","author","at","size","source","from"}
 *   rules/drafts/NAME.json {"source","author","saved_at"}, replaced by rename
 * Versions count from 1 per rule name; kind is "file" (read from the rules
 * directory), "publish", "rollback" (from = the version it restores) or
 * "delete". The rules directory stays the source of truth for what is live:
 * at start the engine compares each file with the last recorded version.
 *
 * Writer thread only (the engine's writer, or a function it runs). */
#ifndef POOLD_RULEBOOK_H
#define POOLD_RULEBOOK_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RV_FILE, RV_PUBLISH, RV_ROLLBACK, RV_DELETE } rule_version_kind_t;
const char *rule_version_kind_name(rule_version_kind_t k);

typedef struct rule_version {
    uint32_t version;
    rule_version_kind_t kind;
    char *author;
    int64_t at;          /* ms since the epoch */
    uint64_t size;       /* pool size when it went live */
    char *source;        /* "" for a delete */
    uint32_t from;       /* rollback: the version restored; else 0 */
    uint64_t seq;        /* delete: the pool's last change seq (a re-created pool continues past it) */
} rule_version_t;

typedef struct rule_entry {
    char *name;
    rule_version_t *versions;   /* versions[i].version == i + 1 */
    size_t nversions;
    uint32_t live;              /* live version, 0 = none (deleted) */
    char *draft, *draft_author; /* NULL when there is no draft */
    int64_t draft_at;
    char *error;                /* last failed reload of the file: "file:line: message" */
    char *error_file, *error_msg;
    int error_line;
    uint64_t compile_failures;
} rule_entry_t;

typedef struct rulebook rulebook_t;

/* Reads the history and the drafts. NULL with err on an unreadable or
 * corrupt history (the line number is named). */
rulebook_t *rulebook_open(const char *data_dir, char *err, size_t errlen);
void rulebook_free(rulebook_t *rb);

size_t rulebook_count(const rulebook_t *rb);
rule_entry_t *rulebook_at(rulebook_t *rb, size_t i);   /* sorted by name */
rule_entry_t *rulebook_get(rulebook_t *rb, const char *name);
rule_entry_t *rulebook_ensure(rulebook_t *rb, const char *name);
const rule_version_t *rulebook_live(const rule_entry_t *e); /* NULL if none */

/* Appends the next version (number nversions + 1) and makes it live (or
 * none, for RV_DELETE). Its history line is written and fsync'd now, or,
 * with deferred_line, handed to the caller (malloc'd) to write with
 * rulebook_write_line before telling anyone. 0 or -1 with err. */
int rulebook_add_version(rulebook_t *rb, rule_entry_t *e, rule_version_kind_t kind, const char *author,
                         int64_t at, uint64_t size, const char *source, uint32_t from, uint64_t seq,
                         char **deferred_line, char *err, size_t errlen);
/* Appends a history line and fsyncs (any thread; serialized). */
int rulebook_write_line(rulebook_t *rb, const char *line, char *err, size_t errlen);

/* A draft file to write (text) or remove (text NULL); path "" = nothing. */
typedef struct draft_write {
    char path[4200];
    char *text;
} draft_write_t;
/* Saves (source != NULL) or removes the draft in memory; *out says what to
 * do on disk (rulebook_write_draft, any thread). */
void rulebook_set_draft(rulebook_t *rb, rule_entry_t *e, const char *source, const char *author, int64_t at,
                        draft_write_t *out);
int rulebook_write_draft(draft_write_t *w, char *err, size_t errlen); /* frees w->text */
/* Records (msg != NULL) or clears the file's reload failure. */
void rulebook_set_error(rule_entry_t *e, const char *file, int line, const char *msg);

/* Whether name is a valid rule name: 1..64 of [A-Za-z0-9_-]. */
int rulebook_valid_name(const char *name);

#endif
