/* main.c - the poold command line: serve, check, load, demo, gen.
 *
 * Exit codes (SPEC): 0 success, 1 user error (one line naming the file,
 * line or flag), 2 internal error. Every command answers --help. The main
 * thread parses flags, starts the engine and the HTTP server, runs bulk
 * loads, and waits for SIGINT/SIGTERM to shut down in order: stop accepting
 * requests, apply what is queued, free. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "embedded.h"
#include "engine.h"
#include "gen.h"
#include "http.h"
#include "kafka_feed.h"
#include "kafka_mock.h"
#include "load_client.h"
#include "loader.h"
#include "rules_check.h"
#include "util.h"

#define POOLD_VERSION "0.1.0"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static auth_t *volatile hup_auth; /* SIGHUP reloads the tokens */

static void on_hup(int sig) {
    (void)sig;
    if (hup_auth) auth_request_reload(hup_auth);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "poold %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see poold %s --help)\n", cmd);
    return 1;
}

static int parse_listen(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    if (hl >= hostlen) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

/* -- serve ----------------------------------------------------------------- */

typedef struct serve_opts {
    const char *rules, *data, *listen, *web, *token_file;
    bool read_token_required, insecure;
    size_t changes_retention;
    wal_fsync_t fsync_mode;
    unsigned snapshot_every_s;
    const char *kafka, *topics, *group;
    const char *kafka_props[33]; /* NULL-terminated */
    size_t nkafka_props;
    const char **loads;
    size_t nloads;
    bool clock_event;
    unsigned threads, max_connections;
    size_t max_body;
} serve_opts_t;

static const char serve_help[] =
    "usage: poold serve --rules DIR --listen HOST:PORT --data DIR [--load FILE.ndjson ...]\n"
    "                   [--clock wall|event] [--web DIR] [--threads N] [--max-connections N]\n"
    "\n"
    "Runs the engine: loads the rules of DIR (one pool per NAME.lua), bulk-loads the\n"
    "given NDJSON files, then serves the HTTP API and the console.\n"
    "\n"
    "  --rules DIR          rule directory (default: rules)\n"
    "  --listen HOST:PORT   address to serve on (default: 127.0.0.1:8080; port 0 = any free port)\n"
    "  --data DIR           data directory: dead letters (default: data)\n"
    "  --load FILE          NDJSON file to load at start (repeatable; progress is logged)\n"
    "  --clock wall|event   wall: windows follow the real time (default);\n"
    "                       event: the clock is the largest event ts seen (replays, tests)\n"
    "  --web DIR            serve the console from DIR instead of the embedded copy\n"
    "  --threads N          HTTP worker threads hint (default 4)\n"
    "  --max-connections N  concurrent HTTP connections (default 256)\n"
    "  --max-body BYTES     request body limit for other than /api/events (default 1 MiB)\n"
    "  --fsync always|batch|everysec  when an accepted input is on disk before it is\n"
    "                       acknowledged: always = fsync per request, batch = group commit\n"
    "                       (default), everysec = acknowledge at once, fsync every second\n"
    "  --snapshot-every S   write a snapshot every S seconds when something changed\n"
    "                       (default 300; 0 = only on POST /api/admin/snapshot and SIGTERM)\n"
    "  --changes-retention N  membership changes kept per pool for the change feed\n"
    "                       (default 100000; older positions get 410 resync)\n"
    "  --token-file FILE    access tokens, one \"name role token\" per line (roles: ingest,\n"
    "                       editor, admin); writes need a token; reloaded on change and SIGHUP\n"
    "  --read-token-required  reads need a token too\n"
    "  --insecure           allow listening on a non-loopback address without --token-file\n"
    "\n"
    "Rule changes (publish, rollback, delete, drafts) are recorded in DATA/rules/ and\n"
    "DATA/audit.log.\n"
    "\n"
    "  --kafka BROKERS --topics T1,T2 --group G\n"
    "                       consume NDJSON events from Kafka as consumer group G (one event\n"
    "                       per message, key = SKU); offsets are kept with poold's state\n"
    "  --kafka-prop KEY=VALUE  extra librdkafka setting (repeatable), e.g.\n"
    "                       session.timeout.ms=6000 or security.protocol=SSL\n"
    "\n"
    "Not in this version yet: --config (refused with exit code 1).\n";

typedef struct running {
    engine_t *engine;
    api_t api;
    http_server_t *http;
    auth_t *auth;
    audit_t *audit;
    kafka_feed_t *kafka;
} running_t;

static int start_running(running_t *r, const serve_opts_t *o, char *err, size_t errlen) {
    char host[256];
    int port;
    if (parse_listen(o->listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "--listen wants HOST:PORT, got \"%s\"", o->listen);
        return 1;
    }
    bool loopback = !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "::1") ||
                    !strncmp(host, "127.", 4);
    if (!loopback && !o->token_file && !o->insecure) {
        snprintf(err, errlen, "refusing to listen on %s without --token-file: anyone who can reach it could post "
                 "events and change rules (pass --insecure to do it anyway)", host);
        return 1;
    }
    engine_config_t ec = {0};
    ec.rules_dir = o->rules;
    ec.data_dir = o->data;
    ec.clock_event = o->clock_event;
    ec.changes_retention = o->changes_retention;
    ec.durable = true;
    ec.fsync_mode = o->fsync_mode;
    ec.snapshot_every_s = o->snapshot_every_s;
    r->engine = engine_new(&ec, err, errlen);
    if (!r->engine) return 1;
    if (o->nloads) engine_begin_bulk(r->engine);
    if (engine_start(r->engine, err, errlen) != 0) return 1;
    memset(&r->api, 0, sizeof r->api);
    r->api.engine = r->engine;
    if (o->token_file) {
        r->auth = auth_open(o->token_file, err, errlen);
        if (!r->auth) return 1;
        auth_set_read_required(r->auth, o->read_token_required);
        if (auth_watch_start(r->auth) != 0) log_warn("%s: cannot watch for changes; reload with SIGHUP", o->token_file);
        hup_auth = r->auth;
        log_info("access tokens: %zu from %s%s", auth_count(r->auth), o->token_file,
                 o->read_token_required ? " (reads need a token too)" : "");
    } else if (o->read_token_required) {
        snprintf(err, errlen, "--read-token-required needs --token-file");
        return 1;
    }
    char apath[4200];
    snprintf(apath, sizeof apath, "%s/audit.log", o->data);
    r->audit = audit_open(apath, err, errlen);
    if (!r->audit) return 1;
    r->api.auth = r->auth;
    r->api.audit = r->audit;
    r->api.cfg.max_body = o->max_body;
    r->api.cfg.submit_timeout_ms = 1000; /* then 503 + Retry-After: backpressure, not buffering */
    r->api.cfg.web_dir = o->web;
    r->api.started_ms = wall_ms();
    http_config_t hc = {0};
    hc.host = host;
    hc.port = port;
    hc.max_body = o->max_body;
    hc.max_connections = o->max_connections;
    hc.connection_timeout_s = 30;
    hc.threads = o->threads;
    size_t nroutes;
    const http_route_t *routes = api_routes(&nroutes);
    r->http = http_server_start(&hc, routes, nroutes, &r->api, err, errlen);
    if (!r->http) return 1;
    http_server_set_guard(r->http, api_guard);
    if (o->kafka) {
        r->kafka = kafka_feed_start(r->engine, o->kafka, o->topics, o->group, o->kafka_props, err, errlen);
        if (!r->kafka) return 1;
        r->api.kafka = r->kafka;
    }
    r->api.server = r->http;
    return 0;
}

static void stop_running(running_t *r) {
    /* HTTP first (handlers read the Kafka feed and the engine), then Kafka
     * (what it delivered is applied and its offsets recorded), then the
     * engine (final snapshot). */
    if (r->http) http_server_stop(r->http);
    r->http = NULL;
    kafka_feed_stop(r->kafka);
    r->kafka = NULL;
    r->api.kafka = NULL;
    if (r->engine) {
        engine_stop(r->engine);
        engine_free(r->engine);
    }
    r->engine = NULL;
    hup_auth = NULL;
    auth_close(r->auth);
    r->auth = NULL;
    audit_close(r->audit);
    r->audit = NULL;
}

static void print_urls(const char *host, int port) {
    const char *h = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host;
    printf("poold is serving on http://%s:%d/\n", h, port);
    printf("  pools:        curl -s http://%s:%d/api/pools\n", h, port);
    printf("  members:      curl -s 'http://%s:%d/api/pools/NAME/members?limit=10'\n", h, port);
    printf("  one SKU:      curl -s http://%s:%d/api/skus/SG-0000001\n", h, port);
    printf("  ad-hoc query: curl -s -d '{\"where\":\"market:SG & lazmall & !blocked\"}' http://%s:%d/api/query\n", h,
           port);
    printf("  post events:  curl -s --data-binary @events.ndjson 'http://%s:%d/api/events?wait=applied'\n", h, port);
    printf("  metrics:      curl -s http://%s:%d/metrics\n", h, port);
    fflush(stdout);
}

static int cmd_serve(int argc, char **argv) {
    serve_opts_t o = {0};
    o.fsync_mode = WAL_FSYNC_BATCH;
    o.snapshot_every_s = 300;
    o.rules = "rules";
    o.data = "data";
    o.listen = "127.0.0.1:8080";
    o.threads = 4;
    o.max_connections = 256;
    o.max_body = 1u << 20;
    o.loads = xcalloc((size_t)argc + 1, sizeof *o.loads);
    static const struct option opts[] = {
        {"rules", required_argument, 0, 'r'},   {"listen", required_argument, 0, 'l'},
        {"data", required_argument, 0, 'd'},    {"load", required_argument, 0, 'L'},
        {"clock", required_argument, 0, 'c'},   {"web", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'}, {"max-connections", required_argument, 0, 'm'},
        {"max-body", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
        {"kafka", required_argument, 0, 'K'},   {"topics", required_argument, 0, 'P'},
        {"group", required_argument, 0, 'G'},   {"token-file", required_argument, 0, 'T'},
        {"read-token-required", no_argument, 0, 'R'}, {"insecure", no_argument, 0, 'I'},
        {"changes-retention", required_argument, 0, 'H'},
        {"fsync", required_argument, 0, 'F'},   {"snapshot-every", required_argument, 0, 'S'},
        {"kafka-prop", required_argument, 0, 'k'},
        {"config", required_argument, 0, 'C'},  {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.rules = optarg; break;
        case 'l': o.listen = optarg; break;
        case 'd': o.data = optarg; break;
        case 'L': o.loads[o.nloads++] = optarg; break;
        case 'c':
            if (strcmp(optarg, "event") == 0) o.clock_event = true;
            else if (strcmp(optarg, "wall") == 0) o.clock_event = false;
            else {
                free(o.loads);
                return usage_error("serve", "--clock must be wall or event, got \"%s\"", optarg);
            }
            break;
        case 'w': o.web = optarg; break;
        case 't': o.threads = (unsigned)atoi(optarg); break;
        case 'm': o.max_connections = (unsigned)atoi(optarg); break;
        case 'b': o.max_body = (size_t)strtoull(optarg, NULL, 10); break;
        case 'h': fputs(serve_help, stdout); free(o.loads); return 0;
        case 'K': o.kafka = optarg; break;
        case 'P': o.topics = optarg; break;
        case 'G': o.group = optarg; break;
        case 'k':
            if (!strchr(optarg, '=') || o.nkafka_props == 32) {
                free(o.loads);
                return usage_error("serve", "--kafka-prop wants KEY=VALUE (at most 32), got \"%s\"", optarg);
            }
            o.kafka_props[o.nkafka_props++] = optarg;
            break;
        case 'T': o.token_file = optarg; break;
        case 'R': o.read_token_required = true; break;
        case 'F':
            if (wal_fsync_parse(optarg, &o.fsync_mode) != 0) {
                free(o.loads);
                return usage_error("serve", "--fsync must be always, batch or everysec, got \"%s\"", optarg);
            }
            break;
        case 'S': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || !*optarg || v > 86400 * 7) {
                free(o.loads);
                return usage_error("serve", "--snapshot-every must be 0..604800 seconds, got \"%s\"", optarg);
            }
            o.snapshot_every_s = (unsigned)v;
            break;
        }
        case 'I': o.insecure = true; break;
        case 'H': {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || v < 16 || v > 100000000) {
                free(o.loads);
                return usage_error("serve", "--changes-retention must be 16..100000000, got \"%s\"", optarg);
            }
            o.changes_retention = (size_t)v;
            break;
        }
        case 'C': free(o.loads); return usage_error("serve", "%s: config files are not in this version yet", "--config");
        default: free(o.loads); return usage_error("serve", "%s", "unknown option");
        }
    }
    if (optind < argc) {
        free(o.loads);
        return usage_error("serve", "unexpected argument \"%s\"", argv[optind]);
    }
    if ((o.kafka || o.topics || o.group) && !(o.kafka && o.topics && o.group)) {
        free(o.loads);
        return usage_error("serve", "%s", "--kafka, --topics and --group go together");
    }
    for (size_t i = 0; i < o.nloads; i++) {
        if (access(o.loads[i], R_OK) != 0) {
            fprintf(stderr, "poold serve: cannot read --load file %s: %s\n", o.loads[i], strerror(errno));
            free(o.loads);
            return 1;
        }
    }
    install_signals();
    running_t r = {0};
    char err[1024] = "";
    if (start_running(&r, &o, err, sizeof err) != 0) {
        fprintf(stderr, "poold serve: %s\n", err);
        stop_running(&r);
        free(o.loads);
        return 1;
    }
    char host[256];
    int port;
    parse_listen(o.listen, host, sizeof host, &port);
    print_urls(host, http_server_port(r.http));
    int rc = 0;
    if (o.nloads) {
        load_totals_t tot;
        if (loader_load_files(r.engine, o.loads, o.nloads, &tot, &stop_requested, err, sizeof err) != 0) {
            fprintf(stderr, "poold serve: %s\n", err);
            rc = 1;
        } else {
            log_info("loaded %llu lines (%llu rejected) in %.2f s", (unsigned long long)tot.lines,
                     (unsigned long long)tot.rejected, tot.seconds);
        }
    }
    for (unsigned tick = 0; !stop_requested && rc == 0; tick++) {
        usleep(100000);
        if (tick % 10 == 9) {
            api_sample_rates(&r.api);
            kafka_feed_commit(r.kafka);
        }
    }
    log_info("shutting down");
    stop_running(&r);
    free(o.loads);
    return rc;
}

/* -- check ------------------------------------------------------------------- */

static int cmd_check(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs("usage: poold check DIR|FILE\n\n"
              "Compiles every rule (DIR/*.lua, or the one FILE) in the sandbox, checks its\n"
              "`where` expression and runs its `examples`. Prints one line per rule; errors as\n"
              "file:line: message. Exit 0 if all rules are fine, 1 if any is not.\n",
              argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 1;
    }
    return rules_check_path(argv[1], stdout);
}

/* -- demo --------------------------------------------------------------------- */

static const char demo_help[] =
    "usage: poold demo [--listen HOST:PORT] [--skus N] [--rate EVENTS_PER_S] [--rules DIR]\n"
    "                  [--data DIR] [--duration S]\n"
    "\n"
    "The whole thing on an embedded default: generates a catalog (default 100000 SKUs over\n"
    "SG MY TH VN PH ID), loads it, loads the example rules (embedded copy unless --rules),\n"
    "feeds a live stream of price/stock/order/tag events (default 2000/s) through Kafka (a\n"
    "local mock cluster: the generator produces to topic events, poold consumes it as a\n"
    "consumer group), serves the API and the console, and prints a live status line\n"
    "(events/s, Kafka lag, pool sizes). Ctrl-C stops it.\n";

static int write_embedded_rules(const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    int n = 0;
    for (const embedded_file_t *f = embedded_files; f->path; f++) {
        if (strncmp(f->path, "rules/", 6) != 0) continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, f->path + 6) >= sizeof path) return -1;
        FILE *out = fopen(path, "wb");
        if (!out) return -1;
        fwrite(f->data, 1, f->size, out);
        fclose(out);
        n++;
    }
    return n;
}

/* The "sku" value of an NDJSON line (the Kafka message key), or the whole
 * line when there is none. */
static const char *line_sku(const char *line, size_t len, size_t *klen) {
    const char *p = memmem(line, len, "\"sku\":\"", 7);
    if (p) {
        p += 7;
        const char *q = memchr(p, '"', len - (size_t)(p - line));
        if (q) {
            *klen = (size_t)(q - p);
            return p;
        }
    }
    *klen = len;
    return line;
}

static void demo_status(engine_t *e, kafka_feed_t *k, uint64_t applied_before, double secs) {
    view_t *v = engine_acquire(e);
    char line[2048];
    json_t *kj = kafka_feed_json(k);
    long long lag = json_integer_value(json_object_get(kj, "lag"));
    json_decref(kj);
    size_t n = (size_t)snprintf(line, sizeof line, "\r%u SKUs, %.0f events/s, kafka lag %lld |", v->skus,
                                (double)(v->applied_seq - applied_before) / secs, lag);
    for (size_t i = 0; i < v->npools && n < sizeof line - 64; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, " %s=%llu", v->pools[i]->name,
                              (unsigned long long)v->pools[i]->size);
    engine_release(v);
    fprintf(stdout, "%s   ", line);
    fflush(stdout);
}

static int cmd_demo(int argc, char **argv) {
    const char *listen = "127.0.0.1:8080", *rules = NULL, *data = NULL;
    long skus = 100000, rate = 2000, duration = 0;
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'}, {"skus", required_argument, 0, 's'},
        {"rate", required_argument, 0, 'R'},   {"rules", required_argument, 0, 'r'},
        {"data", required_argument, 0, 'd'},   {"duration", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 's': skus = atol(optarg); break;
        case 'R': rate = atol(optarg); break;
        case 'r': rules = optarg; break;
        case 'd': data = optarg; break;
        case 'D': duration = atol(optarg); break;
        case 'h': fputs(demo_help, stdout); return 0;
        default: return usage_error("demo", "%s", "unknown option");
        }
    }
    if (skus < 1 || skus > 50000000) return usage_error("demo", "--skus must be 1..50000000, got %s", "?");
    if (rate < 0 || rate > 10000000) return usage_error("demo", "--rate must be 0..10000000, got %s", "?");
    char tmpl[] = "/tmp/poold-demo-......";
    memset(tmpl + sizeof tmpl - 7, 'X', 6); /* mkdtemp's template: six X at the end */
    char rules_dir[4096];
    if (!data) {
        data = mkdtemp(tmpl);
        if (!data) {
            perror("poold demo: mkdtemp");
            return 2;
        }
    }
    if (!rules) {
        snprintf(rules_dir, sizeof rules_dir, "%s/rules", data);
        if (write_embedded_rules(rules_dir) < 0) {
            fprintf(stderr, "poold demo: cannot write the example rules to %s\n", rules_dir);
            return 2;
        }
        rules = rules_dir;
    }
    printf("poold demo: data in %s, rules in %s\n", data, rules);
    install_signals();
    /* The live stream goes through Kafka: a local mock cluster (librdkafka's
     * rdkafka_mock, the real protocol on loopback), a producer keyed by SKU,
     * and poold consuming the topic as a consumer group. */
    char kerr[512];
    kafka_mock_t *mock = kafka_mock_start("events:4", 1, kerr, sizeof kerr);
    if (!mock) {
        fprintf(stderr, "poold demo: cannot start the local Kafka: %s\n", kerr);
        return 2;
    }
    kafka_producer_t *producer = kafka_producer_new(kafka_mock_bootstrap(mock), kerr, sizeof kerr);
    if (!producer) {
        fprintf(stderr, "poold demo: cannot create the Kafka producer: %s\n", kerr);
        kafka_mock_stop(mock);
        return 2;
    }
    printf("poold demo: Kafka (local mock cluster) at %s, topic events (4 partitions)\n", kafka_mock_bootstrap(mock));
    serve_opts_t o = {0};
    o.kafka = kafka_mock_bootstrap(mock);
    o.topics = "events";
    o.group = "poold-demo";
    o.kafka_props[0] = "session.timeout.ms=6000";
    o.fsync_mode = WAL_FSYNC_EVERYSEC;
    o.snapshot_every_s = 60;
    o.rules = rules;
    o.data = data;
    o.listen = listen;
    o.threads = 4;
    o.max_connections = 256;
    o.max_body = 1u << 20;
    running_t r = {0};
    char err[1024] = "";
    if (start_running(&r, &o, err, sizeof err) != 0) {
        fprintf(stderr, "poold demo: %s\n", err);
        stop_running(&r);
        kafka_producer_free(producer);
        kafka_mock_stop(mock);
        return 1;
    }
    char host[256];
    int port;
    parse_listen(listen, host, sizeof host, &port);
    print_urls(host, http_server_port(r.http));

    /* Catalog: generated in memory, loaded in bulk. */
    uint64_t seed = 42;
    int64_t now = wall_ms();
    uint64_t t0 = mono_ns();
    engine_begin_bulk(r.engine);
    size_t cap = 4u << 20, len = 0;
    char *buf = xmalloc(cap);
    for (long i = 0; i < skus && !stop_requested; i++) {
        if (cap - len < 4096) {
            ingest_report_t rep = {0};
            engine_submit(r.engine, buf, len, "demo", 0, ENGINE_DEFER_EVAL, -1, &rep);
            ingest_report_free(&rep);
            buf = xmalloc(cap);
            len = 0;
        }
        len += gen_catalog_line((uint32_t)skus, seed, (uint32_t)i, now, buf + len, cap - len - 1);
        buf[len++] = '\n';
    }
    ingest_report_t rep = {0};
    engine_submit(r.engine, buf, len, "demo", 0, ENGINE_DEFER_EVAL, -1, &rep);
    ingest_report_free(&rep);

    /* A day of history, so that the windowed pools (sales_24h ...) have
     * members from the start: as many events as SKUs, stamped over the last
     * 24 hours in order, loaded in bulk like the catalog. */
    gen_stream_t *g = gen_stream_new((uint32_t)skus, seed);
    long history = skus < 50000 ? 50000 : skus;
    len = 0;
    buf = xmalloc(cap);
    for (long i = 0; i < history && !stop_requested; i++) {
        if (cap - len < GEN_LINE_MAX + 2) {
            ingest_report_t hr = {0};
            engine_submit(r.engine, buf, len, "demo-history", 0, ENGINE_DEFER_EVAL, -1, &hr);
            ingest_report_free(&hr);
            buf = xmalloc(cap);
            len = 0;
        }
        int64_t ts = now - 86400000LL + (int64_t)(86400000.0 * (double)i / (double)history);
        len += gen_stream_next(g, ts, buf + len, cap - len - 1);
        buf[len++] = '\n';
    }
    ingest_report_t hrep = {0};
    engine_submit(r.engine, buf, len, "demo-history", 0, ENGINE_DEFER_EVAL | ENGINE_END_BULK, -1, &hrep);
    ingest_report_free(&hrep);
    while (engine_loading(r.engine) && !stop_requested) usleep(20000);
    printf("catalog of %ld SKUs and %ld events of history (last 24 h) generated and applied in %.2f s\n"
           "live stream at %ld events/s (Ctrl-C stops)\n",
           skus, history, (double)(mono_ns() - t0) / 1e9, rate);

    uint64_t start = mono_ns(), last_status = start, tick = 0;
    uint64_t applied_at_status = engine_applied_seq(r.engine);
    while (!stop_requested) {
        tick++;
        uint64_t due = (uint64_t)rate * tick / 10; /* events due after `tick` ticks of 100 ms */
        uint64_t have = (uint64_t)rate * (tick - 1) / 10;
        size_t n = (size_t)(due - have);
        char line[GEN_LINE_MAX + 1];
        for (size_t i = 0; i < n; i++) {
            size_t ll = gen_stream_next(g, wall_ms(), line, GEN_LINE_MAX);
            size_t klen;
            const char *key = line_sku(line, ll, &klen);
            kafka_produce(producer, "events", key, klen, line, ll);
        }
        uint64_t next = start + tick * 100000000ull, nowns = mono_ns();
        if (next > nowns) usleep((useconds_t)((next - nowns) / 1000));
        if (mono_ns() - last_status >= 2000000000ull) {
            double secs = (double)(mono_ns() - last_status) / 1e9;
            demo_status(r.engine, r.kafka, applied_at_status, secs);
            kafka_feed_commit(r.kafka);
            applied_at_status = engine_applied_seq(r.engine);
            last_status = mono_ns();
        }
        if (duration && mono_ns() - start >= (uint64_t)duration * 1000000000ull) break;
    }
    printf("\npoold demo: stopping\n");
    gen_stream_free(g);
    kafka_producer_flush(producer, 2000);
    stop_running(&r);
    kafka_producer_free(producer);
    kafka_mock_stop(mock);
    return 0;
}

/* -- main ----------------------------------------------------------------------- */

static const char main_help[] =
    "poold " POOLD_VERSION " - real-time product pools\n"
    "\n"
    "usage: poold COMMAND [options]   (poold COMMAND --help for each)\n"
    "\n"
    "  serve   run the engine and the HTTP API on a rules directory\n"
    "  check   compile rules and run their examples (exit 1 on error)\n"
    "  load    stream NDJSON files to a running server, with progress\n"
    "  demo    the whole thing on a generated catalog with live events\n"
    "  gen     generate a catalog or an event stream as NDJSON\n"
    "  kafka-mock     a local Kafka (librdkafka's mock cluster) for tests and trials\n"
    "  kafka-produce  produce NDJSON lines to a Kafka topic, keyed by sku\n"
    "  version print the version\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(main_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "kafka-mock")) return kafka_mock_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "kafka-produce")) return kafka_produce_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "gen")) return gen_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "load")) return load_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        puts("poold " POOLD_VERSION);
        return 0;
    }
    fprintf(stderr, "poold: unknown command \"%s\" (see poold --help)\n", cmd);
    return 1;
}
