/* auth.h - access control: bearer tokens from a token file, roles, and the
 * permission check the HTTP handlers run before a write.
 *
 * Token file (--token-file): one `name role token` per line, fields separated
 * by spaces or tabs; `#` starts a comment line; blank lines are skipped.
 *     # who        role    token
 *     ci-loader    ingest  3f9c0a7e5d2b4c8e9a1f6b0d7c3e5a92
 *     alice        editor  b7e1c2d4f6a8091b3c5d7e9f1a2b4c6d
 * name: 1..64 of [A-Za-z0-9_.@+-] (recorded as the author in rule history and
 * the audit log). role: ingest (POST events), editor (rules: draft, preview,
 * publish, rollback, delete), admin (everything). token: 16..256 printable
 * ASCII characters without spaces. Names and tokens are unique. A file that
 * group or others can read is loaded with a warning. A file without any
 * token is an error (an editor's truncate-then-write must not lock everyone
 * out). Errors name FILE:LINE and never contain a token.
 *
 * Threads: auth_check, auth_count, auth_stats, auth_set_read_required from
 * any thread, concurrently with reloads (the table is an immutable snapshot,
 * swapped under a short mutex and kept alive by reader refcounts).
 * auth_request_reload is async-signal-safe (SIGHUP handler). auth_open,
 * auth_watch_start and auth_close from the owning (main) thread.
 * A NULL auth_t means "no --token-file": every check answers AUTH_OK. */
#ifndef POOLD_AUTH_H
#define POOLD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 256
#define AUTH_NAME_MAX 64

typedef enum { AUTH_PERM_READ = 1, AUTH_PERM_INGEST = 2, AUTH_PERM_EDIT = 4, AUTH_PERM_ADMIN = 8 } auth_perm_t;
typedef enum { AUTH_OK, AUTH_MISSING, AUTH_INVALID, AUTH_FORBIDDEN } auth_result_t;

typedef struct auth auth_t;

/* Loads the token file. NULL with a message in err (FILE:LINE: what) on
 * failure. The caller frees with auth_close. */
auth_t *auth_open(const char *path, char *err, size_t errlen);

/* Re-reads the file now. On success swaps the table in, logs
 * "tokens reloaded (N tokens)" and returns 0; on failure keeps the old table,
 * logs and fills err, counts a reload error and returns -1. Any thread. */
int auth_reload(auth_t *a, char *err, size_t errlen);

/* Starts the watch thread: inotify on the file's directory (catches in-place
 * writes, editors' write-temp-and-rename saves and symlink swaps), plus a
 * stat() comparison every second as a fallback (NFS, inotify unavailable).
 * Also serves auth_request_reload. 0, or -1 if the thread cannot start.
 * Calling it twice is harmless. */
int auth_watch_start(auth_t *a);

/* Asks the watch thread to reload (write to an eventfd; errno preserved).
 * Async-signal-safe. Needs auth_watch_start to have been called. */
void auth_request_reload(auth_t *a);

/* Reads (need == AUTH_PERM_READ) are open unless this is set to true. */
void auth_set_read_required(auth_t *a, bool required);

/* Checks an Authorization header value ("Bearer TOKEN"; scheme
 * case-insensitive, spaces around allowed; NULL = no header) against the
 * table and the permissions in need_perm (all bits needed). On AUTH_OK with a
 * token, name_out gets the token's name and *role_out its role ("ingest",
 * "editor", "admin"; static storage). On AUTH_FORBIDDEN they are filled too
 * (the caller may name the role in the message). On an open read, and with
 * a NULL auth_t, name_out is "" and *role_out NULL. name_out/role_out may be
 * NULL. The token is compared in constant time against every entry. */
auth_result_t auth_check(auth_t *a, const char *authorization_header, unsigned need_perm,
                         char *name_out, size_t name_len, const char **role_out);

/* "ok", "missing bearer token", "invalid token", "role may not do this". */
const char *auth_status_text(auth_result_t r);

/* The user-facing message for a result, naming the role and the permission
 * on AUTH_FORBIDDEN: "role editor may not post events (needs ingest or
 * admin)". Returns buf. */
const char *auth_message(auth_result_t r, const char *role, unsigned need_perm, char *buf,
                         size_t len);

/* The permission bits a role grants (0 for an unknown role). */
unsigned auth_role_perms(const char *role);

/* Number of tokens in the current table (0 for NULL). */
size_t auth_count(auth_t *a);

/* Counters for /metrics. ok/missing/invalid/forbidden count checks that
 * needed a token (open reads are not counted). Any pointer may be NULL. */
void auth_stats(auth_t *a, uint64_t *ok, uint64_t *missing, uint64_t *invalid, uint64_t *forbidden,
                uint64_t *reloads, uint64_t *reload_errors);

/* Stops the watch thread, wipes the tokens from memory, frees. NULL ok. */
void auth_close(auth_t *a);

#endif
