/* embedded.h - files compiled into the binary (lua/ and web/ trees).
 *
 * The table is generated at build time by cmake/embed.cmake; each entry's
 * data is NUL-terminated (size excludes the NUL) and lives for the whole
 * process. Read-only, safe from any thread. */
#ifndef POOLD_EMBEDDED_H
#define POOLD_EMBEDDED_H
#include <stddef.h>

typedef struct embedded_file {
    const char *path;          /* e.g. "lua/dsl.lua", "web/index.html" */
    const unsigned char *data;
    size_t size;
} embedded_file_t;

extern const embedded_file_t embedded_files[];

/* Returns the entry for path, or NULL. */
const embedded_file_t *embedded_find(const char *path);

#endif
