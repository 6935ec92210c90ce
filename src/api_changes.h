/* api_changes.h - the per-pool change feed handler (api_changes.c); app =
 * api_t. HTTP threads only. */
#ifndef POOLD_API_CHANGES_H
#define POOLD_API_CHANGES_H

#include "http.h"

void api_h_changes(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);

#endif
