/* kafka_mock.c - librdkafka's mock cluster as a broker for tests and the
 * demo, a keyed idempotent producer, and the `poold kafka-mock` /
 * `poold kafka-produce` commands; see kafka_mock.h.
 *
 * The mock cluster (rdkafka_mock.h) needs an rd_kafka_t to hang on: we make
 * an idle producer handle that never produces. The cluster runs its own
 * thread and listens on 127.0.0.1 ephemeral ports; it supports produce,
 * fetch, consumer groups (join, sync, heartbeat, rebalance) and offset
 * commits, which is all poold's consumer needs. Its group coordinator waits
 * 3 s before the first assignment of a group (like a broker's default
 * group.initial.rebalance.delay.ms) and session.timeout.ms - 1 s when a
 * member joins or leaves a running group. It keeps roughly the last 5 MB of
 * each partition (older segments are dropped, earliest moves up) and
 * creates unknown topics on first use, with 4 partitions.
 *
 * The producer partitions by key with librdkafka's default partitioner
 * (consistent_random: CRC32 of the key), so all events of one SKU land in one
 * partition and keep their order. Delivery failures are counted by the
 * delivery-report callback (librdkafka threads via rd_kafka_poll) and
 * reported by kafka_producer_flush. */
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kafka_mock.h"
#include "util.h"

struct kafka_mock {
    rd_kafka_t *rk; /* idle handle owning the cluster */
    rd_kafka_mock_cluster_t *mc;
    char *bootstrap;
};

struct kafka_producer {
    rd_kafka_t *rk;
    atomic_ulong failed;  /* failed deliveries since the last flush */
    atomic_int last_err;  /* rd_kafka_resp_err_t of the last failure */
};

static void mock_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 3)
        log_error("kafka: %s: %s", fac, buf);
    else if (level == 4)
        log_warn("kafka: %s: %s", fac, buf);
    else
        log_info("kafka: %s: %s", fac, buf);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen) {
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
    snprintf(err, errlen, "kafka: %s=%s: %s", k, v, why);
    return -1;
}

/* -- Mock cluster ---------------------------------------------------------- */

/* Parses "name[:n]" items; calls the mock for each. 0 or -1 with err. */
static int create_topics(rd_kafka_mock_cluster_t *mc, const char *spec, char *err, size_t errlen) {
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0, ntopics = 0;
    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        char *colon = strchr(t, ':');
        long parts = 1;
        if (colon) {
            char *end;
            *colon = '\0';
            parts = strtol(colon + 1, &end, 10);
            if (end == colon + 1 || *end || parts < 1 || parts > 1000) {
                snprintf(err, errlen, "topic \"%s\": partitions must be 1..1000, got \"%s\"", t, colon + 1);
                rc = -1;
                break;
            }
        }
        size_t n = strlen(t);
        if (n == 0 || n > 249 || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n) {
            snprintf(err, errlen, "bad topic name \"%s\" (letters, digits, '.', '_', '-')", t);
            rc = -1;
            break;
        }
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, t, (int)parts, 1);
        if (e) {
            snprintf(err, errlen, "cannot create topic %s: %s", t, rd_kafka_err2str(e));
            rc = -1;
        }
        ntopics++;
    }
    if (rc == 0 && ntopics == 0) {
        snprintf(err, errlen, "no topic in \"%s\" (want NAME:PARTITIONS,...)", spec);
        rc = -1;
    }
    free(copy);
    return rc;
}

kafka_mock_t *kafka_mock_start(const char *topics_spec, int nbrokers, char *err, size_t errlen) {
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (nbrokers <= 0) nbrokers = 1;
    kafka_mock_t *m = xcalloc(1, sizeof *m);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, mock_log_cb);
    /* The idle handle has no bootstrap servers on purpose; keep it quiet. */
    if (set(conf, "log_level", "3", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        free(m);
        return NULL;
    }
    char why[256];
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!m->rk) {
        snprintf(err, errlen, "kafka mock: %s", why);
        rd_kafka_conf_destroy(conf);
        free(m);
        return NULL;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
    if (!m->mc) {
        snprintf(err, errlen, "kafka mock: cannot start a cluster of %d broker(s)", nbrokers);
        kafka_mock_stop(m);
        return NULL;
    }
    if (create_topics(m->mc, topics_spec ? topics_spec : "", err, errlen) != 0) {
        kafka_mock_stop(m);
        return NULL;
    }
    m->bootstrap = xstrdup(rd_kafka_mock_cluster_bootstraps(m->mc));
    return m;
}

const char *kafka_mock_bootstrap(const kafka_mock_t *m) {
    return m ? m->bootstrap : NULL;
}

void kafka_mock_stop(kafka_mock_t *m) {
    if (!m) return;
    if (m->mc) rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk) rd_kafka_destroy(m->rk);
    free(m->bootstrap);
    free(m);
}

/* -- Producer -------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    kafka_producer_t *p = opaque;
    if (!msg->err) return;
    if (atomic_fetch_add(&p->failed, 1) == 0)
        log_warn("kafka: delivery to %s failed: %s", msg->rkt ? rd_kafka_topic_name(msg->rkt) : "?",
                 rd_kafka_err2str(msg->err));
    atomic_store(&p->last_err, (int)msg->err);
}

kafka_producer_t *kafka_producer_new(const char *brokers, char *err, size_t errlen) {
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!brokers || !*brokers) {
        snprintf(err, errlen, "kafka: no brokers given");
        return NULL;
    }
    kafka_producer_t *p = xcalloc(1, sizeof *p);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", brokers, err, errlen) || set(conf, "enable.idempotence", "true", err, errlen) ||
        set(conf, "linger.ms", "5", err, errlen) || set(conf, "message.timeout.ms", "30000", err, errlen) ||
        set(conf, "client.id", "poold-producer", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, mock_log_cb);
    char why[256];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!p->rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    return p;
}

int kafka_produce(kafka_producer_t *p, const char *topic, const char *key, size_t klen, const char *val,
                  size_t vlen) {
    if (!p || !topic) {
        errno = EINVAL;
        return -1;
    }
    uint64_t deadline = 0;
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, key ? klen : 0),
                              RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_END);
        if (!e) break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            log_warn("kafka: produce to %s: %s", topic, rd_kafka_err2str(e));
            atomic_store(&p->last_err, (int)e);
            errno = EIO;
            return -1;
        }
        uint64_t now = mono_ns();
        if (!deadline) deadline = now + 10ull * 1000000000;
        if (now >= deadline) {
            errno = EAGAIN;
            return -1;
        }
        rd_kafka_poll(p->rk, 10); /* delivery reports free queue space */
    }
    rd_kafka_poll(p->rk, 0);
    return 0;
}

int kafka_producer_flush(kafka_producer_t *p, int timeout_ms) {
    if (!p) return 0;
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    unsigned long failed = atomic_exchange(&p->failed, 0);
    return e || failed ? -1 : 0;
}

void kafka_producer_free(kafka_producer_t *p) {
    if (!p) return;
    rd_kafka_destroy(p->rk);
    free(p);
}

/* -- poold kafka-mock ------------------------------------------------------ */

static volatile sig_atomic_t mock_stop;
static void on_stop_signal(int sig) {
    (void)sig;
    mock_stop = 1;
}

static const char mock_help[] =
    "usage: poold kafka-mock [--topics NAME:PARTITIONS,...] [--brokers N]\n"
    "\n"
    "Starts an in-process Kafka cluster (librdkafka's mock broker) on loopback\n"
    "ports for tests and the demo, prints \"bootstrap: HOST:PORT\" on stdout and\n"
    "serves until SIGINT/SIGTERM, or end of input when stdin is a pipe or a\n"
    "terminal. Data lives in memory only. Not a production broker.\n"
    "  --topics SPEC   topics to create, default events:4\n"
    "  --brokers N     number of brokers, default 1 (1..16)\n";

int kafka_mock_main(int argc, char **argv) {
    const char *topics = "events:4";
    long nbrokers = 1;
    static const struct option opts[] = {{"topics", required_argument, 0, 't'},
                                         {"brokers", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 't') {
            topics = optarg;
        } else if (ch == 'b') {
            char *end;
            nbrokers = strtol(optarg, &end, 10);
            if (*end || nbrokers < 1 || nbrokers > 16) {
                fprintf(stderr, "poold kafka-mock: --brokers must be 1..16, got \"%s\"\n", optarg);
                return 1;
            }
        } else if (ch == 'h') {
            fputs(mock_help, stdout);
            return 0;
        } else {
            fputs(mock_help, stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "poold kafka-mock: unexpected argument \"%s\" (see poold kafka-mock --help)\n", argv[optind]);
        return 1;
    }
    char err[512];
    kafka_mock_t *m = kafka_mock_start(topics, (int)nbrokers, err, sizeof err);
    if (!m) {
        bool user = strncmp(err, "kafka mock:", 11) != 0;
        fprintf(stderr, "poold kafka-mock: %s\n", err);
        return user ? 1 : 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("bootstrap: %s\n", kafka_mock_bootstrap(m));
    fflush(stdout);
    log_info("kafka-mock: serving topics %s on %s", topics, kafka_mock_bootstrap(m));

    /* /dev/null or a file as stdin (e.g. `poold kafka-mock &` in a script)
     * would end at once: watch stdin only when EOF means "stop". */
    struct stat st;
    bool watch = fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(0));
    while (!mock_stop) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r = poll(&pfd, watch ? 1 : 0, 200);
        if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            char buf[4096];
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
        }
    }
    log_info("kafka-mock: stopping");
    kafka_mock_stop(m);
    return 0;
}

/* -- poold kafka-produce --------------------------------------------------- */

/* Index just past the JSON string starting at s[i] == '"', or n. */
static size_t skip_string(const char *s, size_t n, size_t i) {
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

/* Index just past the JSON value at s[i] (object, array, string, scalar). */
static size_t skip_value(const char *s, size_t n, size_t i) {
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, n, i);
            if (depth == 0) return i;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return i;
            if (--depth == 0) return i + 1;
        } else if (c == ',' && depth == 0) {
            return i;
        }
        i++;
    }
    return n;
}

/* The raw bytes of the top-level "sku" string of a JSON object line (JSON
 * escapes left as written), or 0 when there is none. */
static size_t sku_key(const char *s, size_t n, const char **key) {
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') return 0;
    i = skip_ws(s, n, i + 1);
    while (i < n && s[i] == '"') {
        size_t kend = skip_string(s, n, i);
        bool is_sku = kend - i == 5 && memcmp(s + i, "\"sku\"", 5) == 0;
        i = skip_ws(s, n, kend);
        if (i >= n || s[i] != ':') return 0;
        i = skip_ws(s, n, i + 1);
        if (is_sku) {
            if (i >= n || s[i] != '"') return 0;
            size_t vend = skip_string(s, n, i);
            if (vend > n || s[vend - 1] != '"' || vend - i < 2) return 0;
            *key = s + i + 1;
            return vend - i - 2;
        }
        i = skip_ws(s, n, skip_value(s, n, i));
        if (i >= n || s[i] != ',') return 0;
        i = skip_ws(s, n, i + 1);
    }
    return 0;
}

static const char produce_help[] =
    "usage: poold kafka-produce --brokers HOST:PORT[,...] --topic T FILE|-\n"
    "\n"
    "Produces one Kafka message per non-blank line of an NDJSON file (- = stdin),\n"
    "keyed by the line's \"sku\" so that every event of a SKU goes to the same\n"
    "partition, in order (idempotent producer). Lines are sent as they are;\n"
    "poold validates them when it consumes. Progress on stderr. Exit 0 when all\n"
    "were delivered, 1 on a usage error, an unknown topic or unreachable\n"
    "brokers, 2 on another delivery failure.\n"
    "  --brokers LIST  bootstrap servers (e.g. the address poold kafka-mock prints)\n"
    "  --topic T       topic to produce to\n";

static bool user_side_error(int e) {
    return e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ||
           e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
           e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
}

int kafka_produce_main(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL;
    static const struct option opts[] = {{"brokers", required_argument, 0, 'b'},
                                         {"topic", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'b') {
            brokers = optarg;
        } else if (ch == 't') {
            topic = optarg;
        } else if (ch == 'h') {
            fputs(produce_help, stdout);
            return 0;
        } else {
            fputs(produce_help, stderr);
            return 1;
        }
    }
    if (!brokers || !topic || !*topic) {
        fprintf(stderr, "poold kafka-produce: --brokers and --topic are required (see poold kafka-produce --help)\n");
        return 1;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "poold kafka-produce: want exactly one input, FILE or - (see poold kafka-produce --help)\n");
        return 1;
    }
    const char *path = argv[optind];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "poold kafka-produce: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char err[512];
    kafka_producer_t *p = kafka_producer_new(brokers, err, sizeof err);
    if (!p) {
        fprintf(stderr, "poold kafka-produce: %s\n", err);
        if (f != stdin) fclose(f);
        return 1;
    }
    int rc = 0;
    /* Fail early, with a clear message, on unreachable brokers or a topic
     * that does not exist. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, rkt, &md, 5000);
    if (e) {
        fprintf(stderr, "poold kafka-produce: cannot reach %s: %s\n", brokers, rd_kafka_err2str(e));
        rc = 1;
    } else if (md->topic_cnt < 1 || md->topics[0].err) {
        fprintf(stderr, "poold kafka-produce: topic %s: %s\n", topic,
                rd_kafka_err2str(md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : md->topics[0].err));
        rc = 1;
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    char *line = NULL;
    size_t lcap = 0;
    ssize_t l;
    uint64_t lineno = 0, sent = 0, t0 = mono_ns(), last_print = t0;
    while (rc == 0 && (l = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)l;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (skip_ws(line, n, 0) == n) continue;
        const char *key = NULL;
        size_t klen = sku_key(line, n, &key);
        if (kafka_produce(p, topic, klen ? key : NULL, klen, line, n) != 0) {
            int le = atomic_load(&p->last_err);
            fprintf(stderr, "poold kafka-produce: %s:%llu: cannot produce: %s\n", path, (unsigned long long)lineno,
                    le ? rd_kafka_err2str((rd_kafka_resp_err_t)le) : "local queue stays full");
            rc = le && user_side_error(le) ? 1 : 2;
            break;
        }
        sent++;
        uint64_t now = mono_ns();
        if (now - last_print >= 1000000000ull) {
            fprintf(stderr, "kafka-produce: %llu messages (%.0f/s)\n", (unsigned long long)sent,
                    (double)sent * 1e9 / (double)(now - t0));
            last_print = now;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "poold kafka-produce: read %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    free(line);
    if (f != stdin) fclose(f);
    if (rc == 0 || sent) {
        if (kafka_producer_flush(p, 60000) != 0) {
            int le = atomic_load(&p->last_err);
            fprintf(stderr, "poold kafka-produce: not every message was delivered: %s\n",
                    le ? rd_kafka_err2str((rd_kafka_resp_err_t)le) : "timed out");
            if (rc == 0) rc = le && !user_side_error(le) ? 2 : 1;
        }
    }
    if (rc == 0) {
        double s = (double)(mono_ns() - t0) / 1e9;
        fprintf(stderr, "kafka-produce: %llu messages to %s in %.2f s (%.0f/s)\n", (unsigned long long)sent, topic, s,
                s > 0 ? (double)sent / s : 0.0);
    }
    kafka_producer_free(p);
    return rc;
}
