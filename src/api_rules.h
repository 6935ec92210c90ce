/* api_rules.h - HTTP handlers for rules and explain (api_rules.c); the
 * route table in api.c lists them. app = api_t. HTTP threads only. */
#ifndef POOLD_API_RULES_H
#define POOLD_API_RULES_H

#include "http.h"

void api_h_rules(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_rule(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_rule_put(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_rule_delete(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_draft_delete(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_preview(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_publish(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_rollback(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);
void api_h_explain(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp);

#endif
