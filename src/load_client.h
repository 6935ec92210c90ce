/* load_client.h - `poold load FILE... --server URL`: streams NDJSON files to
 * a running server's POST /api/events in batches, waiting until each batch
 * is applied, with progress and the rejected lines reported by file:line. */
#ifndef POOLD_LOAD_CLIENT_H
#define POOLD_LOAD_CLIENT_H

int load_main(int argc, char **argv);

#endif
