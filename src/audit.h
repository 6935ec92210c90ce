/* audit.h - the audit log: who changed what, when, from where. One JSON
 * object a line, appended to DATA/audit.log (created 0600):
 *   {"ts":"2026-11-11T08:00:00.123Z","who":"alice","addr":"10.0.0.7",
 *    "action":"publish","target":"flash_sale_sg","detail":"version 4"}
 * ts is UTC with milliseconds; a NULL field is written as null; text that is
 * not valid UTF-8 has its bad bytes replaced by U+FFFD; each field is cut at
 * AUDIT_MAX_FIELD bytes. Actions used by poold: "draft", "publish",
 * "rollback", "delete", "reload", "snapshot".
 *
 * Any thread. Each record is one write() on an O_APPEND descriptor (records
 * never interleave, also with other processes appending), serialised by a
 * mutex and followed by fdatasync: the audit trail must survive a crash, and
 * rule changes are rare. */
#ifndef POOLD_AUDIT_H
#define POOLD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_MAX_FIELD 4096

typedef struct audit audit_t;

/* Opens (creates 0600) the log for appending. NULL with a message in err. */
audit_t *audit_open(const char *path, char *err, size_t errlen);

/* Appends one record. A write failure is logged and counted, never fatal.
 * NULL audit_t: does nothing. */
void audit_write(audit_t *a, const char *who, const char *remote_addr, const char *action,
                 const char *target, const char *detail);

/* Records written / failed since open (for /metrics); pointers may be NULL. */
void audit_stats(audit_t *a, uint64_t *written, uint64_t *errors);

void audit_close(audit_t *a);

#endif
