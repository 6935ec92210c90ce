/* api_rules.c - the HTTP handlers of the rule lifecycle (SPEC "HTTP API":
 * rules, drafts, preview, publish, rollback, delete) and of explain. They
 * parse the request, call lifecycle.h (which runs the work on the writer
 * and waits for it), and send its JSON. HTTP threads only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "api_rules.h"
#include "lifecycle.h"

#define MAX_AUTHOR 200

static void send(http_resp_t *resp, int status, json_t *body) {
    if (!body) body = json_pack("{s:s}", "error", "internal error");
    http_resp_json(resp, status, body);
}

/* The author recorded in rule history (api_principal). */
static void author_of(const http_req_t *req, char *buf, size_t len) { api_principal(req, buf, len); }

/* Audits a successful rule change: "version N" or the HTTP status. */
static void audit_change(api_t *api, const http_req_t *req, const char *action, const char *name, int st,
                         json_t *out) {
    char detail[96];
    json_t *v = json_object_get(out, "version");
    if (st == 200 && json_is_integer(v)) snprintf(detail, sizeof detail, "version %lld", (long long)json_integer_value(v));
    else snprintf(detail, sizeof detail, "status %d", st);
    api_audit(api, req, action, name, detail);
}

void api_h_rules(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    (void)args;
    api_t *api = app;
    json_t *out;
    int st = lifecycle_rules(api->engine, &out);
    send(resp, st, out);
}

void api_h_rule(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    json_t *out;
    int st = lifecycle_rule(api->engine, args[0], &out);
    send(resp, st, out);
}

void api_h_rule_put(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    const char *ct = http_header(req, "Content-Type");
    char *source = NULL;
    if (ct && strncmp(ct, "application/json", 16) == 0) {
        json_error_t jerr;
        json_t *o = json_loadb(req->body, req->body_len, 0, &jerr);
        const char *s = o ? json_string_value(json_object_get(o, "source")) : NULL;
        if (!s) {
            json_decref(o);
            http_resp_error(resp, 400, "expected {\"source\": \"<Lua text>\"} or a text/x-lua body");
            return;
        }
        source = strdup(s);
        json_decref(o);
    } else {
        if (memchr(req->body, '\0', req->body_len)) {
            http_resp_error(resp, 400, "the rule source contains a NUL byte");
            return;
        }
        source = strdup(req->body);
    }
    if (!source || !*source) {
        free(source);
        http_resp_error(resp, 400, "empty rule source");
        return;
    }
    char author[MAX_AUTHOR + 1];
    author_of(req, author, sizeof author);
    json_t *out;
    int st = lifecycle_put_draft(api->engine, args[0], source, author, &out);
    audit_change(api, req, "draft", args[0], st, out);
    free(source);
    send(resp, st, out);
}

void api_h_draft_delete(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    json_t *out;
    int st = lifecycle_discard_draft(api->engine, args[0], &out);
    send(resp, st, out);
}

void api_h_rule_delete(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    char author[MAX_AUTHOR + 1];
    author_of(req, author, sizeof author);
    json_t *out;
    int st = lifecycle_delete(api->engine, args[0], author, &out);
    audit_change(api, req, "delete", args[0], st, out);
    send(resp, st, out);
}

void api_h_preview(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    (void)req;
    api_t *api = app;
    json_t *out;
    int st = lifecycle_preview(api->engine, args[0], &out);
    send(resp, st, out);
}

void api_h_publish(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    char author[MAX_AUTHOR + 1];
    author_of(req, author, sizeof author);
    json_t *out;
    int st = lifecycle_publish(api->engine, args[0], author, &out);
    audit_change(api, req, "publish", args[0], st, out);
    send(resp, st, out);
}

void api_h_rollback(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    const char *vs = http_query(req, "version");
    char *end = NULL;
    errno = 0;
    unsigned long v = vs ? strtoul(vs, &end, 10) : 0;
    if (!vs || !*vs || *end || errno || v < 1 || v > UINT32_MAX || vs[0] == '-') {
        http_resp_error(resp, 400, "rollback needs ?version=V (a version number from the rule's history)");
        return;
    }
    char author[MAX_AUTHOR + 1];
    author_of(req, author, sizeof author);
    json_t *out;
    int st = lifecycle_rollback(api->engine, args[0], (uint32_t)v, author, &out);
    audit_change(api, req, "rollback", args[0], st, out);
    send(resp, st, out);
}

void api_h_explain(void *app, const http_req_t *req, const char *const *args, http_resp_t *resp) {
    api_t *api = app;
    const char *pool = http_query(req, "pool");
    if (!pool || !*pool) {
        http_resp_error(resp, 400, "explain needs ?pool=NAME");
        return;
    }
    json_t *out;
    int st = lifecycle_explain(api->engine, args[0], pool, &out);
    send(resp, st, out);
}
