/* post_events.c - the benchmark's HTTP client: raw sockets, HTTP/1.1
 * keep-alive, no libcurl, so the client costs little next to the server.
 *
 *   post_events events HOST:PORT FILE [--batch 1000] [--conns 2] [--path P]
 *       Cuts FILE (NDJSON) into batches of --batch lines and POSTs them to
 *       P (default /api/events?wait=applied) over --conns connections, each
 *       connection taking the next batch when its previous answer is in.
 *   post_events get HOST:PORT PATH [--n 2000] [--warmup 100]
 *   post_events post HOST:PORT PATH BODY [--n 2000] [--warmup 100]
 *       Repeats one request on one connection.
 *   post_events ready HOST:PORT [--t0 EPOCH_NS] [--timeout S]
 *       Polls GET /healthz every 20 ms until it answers "loading": false;
 *       prints the seconds since --t0 (CLOCK_REALTIME ns, e.g. `date +%s%N`
 *       taken just before the server was started; default: now).
 *
 * Prints one line of key=value pairs (run.sh parses it):
 *   events: lines= batches= accepted= rejected= seconds= rate= p50_ms= p99_ms=
 *   get/post: n= client_p50_us= client_p99_us= server_p50_us= server_p99_us=
 *   ready: seconds=
 * where server_* come from the X-Took-Us response header (-1 if absent).
 * Any non-2xx answer or I/O error stops the run with exit code 1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "post_events: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* -- one keep-alive connection ------------------------------------------- */

typedef struct conn {
    int fd;
    char host[256];
    char port[16];
    char *buf; /* response buffer */
    size_t cap, len;
} conn_t;

typedef struct resp {
    int status;
    long took_us;          /* X-Took-Us, -1 if absent */
    const char *body;      /* into conn buffer, valid until the next request */
    size_t body_len;
} resp_t;

static void conn_open(conn_t *c) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, c->port, &hints, &ai) != 0) die("cannot resolve %s", c->host);
    c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) die("cannot connect: %s", strerror(errno));
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!c->buf) {
        c->cap = 1 << 20;
        c->buf = malloc(c->cap);
        if (!c->buf) die("%s", "out of memory");
    }
    c->len = 0;
}

static void conn_init(conn_t *c, const char *hostport) {
    memset(c, 0, sizeof *c);
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof c->host) die("expected HOST:PORT, got %s", hostport);
    memcpy(c->host, hostport, (size_t)(colon - hostport));
    snprintf(c->port, sizeof c->port, "%s", colon + 1);
    conn_open(c);
}

static void send_all(conn_t *c, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write: %s", strerror(errno));
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

static void fill(conn_t *c) {
    if (c->len == c->cap) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) die("%s", "out of memory");
    }
    ssize_t r;
    do r = read(c->fd, c->buf + c->len, c->cap - c->len);
    while (r < 0 && errno == EINTR);
    if (r <= 0) die("connection closed by the server (%s)", r < 0 ? strerror(errno) : "EOF");
    c->len += (size_t)r;
}

static const char *find_header(const char *h, size_t hlen, const char *name) {
    size_t n = strlen(name);
    for (const char *p = h; p + n + 1 < h + hlen; p++) {
        if ((p == h || p[-1] == '\n') && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ') p++;
            return p;
        }
    }
    return NULL;
}

/* Sends one request and reads its whole answer (Content-Length or chunked). */
static resp_t request(conn_t *c, const char *method, const char *path, const char *ctype, const char *body,
                      size_t body_len) {
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", method,
                      path, c->host, c->port, ctype, body_len);
    struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, body_len}};
    send_all(c, iov, body_len ? 2 : 1);
    c->len = 0;
    char *end;
    for (;;) {
        if (c->len >= 4 && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))) break;
        fill(c);
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    resp_t r = {0, -1, NULL, 0};
    if (sscanf(c->buf, "HTTP/1.%*d %d", &r.status) != 1) die("%s", "bad status line");
    const char *v = find_header(c->buf, hlen, "X-Took-Us");
    if (v) r.took_us = strtol(v, NULL, 10);
    const char *cl = find_header(c->buf, hlen, "Content-Length");
    const char *te = find_header(c->buf, hlen, "Transfer-Encoding");
    if (cl) {
        size_t n = (size_t)strtoull(cl, NULL, 10);
        while (c->len < hlen + n) fill(c);
        r.body = c->buf + hlen;
        r.body_len = n;
    } else if (te && strncasecmp(te, "chunked", 7) == 0) {
        /* De-chunk in place: the body is moved down over the chunk headers. */
        size_t rd = hlen, wr = hlen;
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf + rd, c->len - rd, "\r\n", 2))) fill(c);
            size_t n = (size_t)strtoull(c->buf + rd, NULL, 16);
            size_t data = (size_t)(crlf - c->buf) + 2;
            while (c->len < data + n + 2) fill(c);
            memmove(c->buf + wr, c->buf + data, n);
            wr += n;
            rd = data + n + 2;
            if (n == 0) break;
        }
        r.body = c->buf + hlen;
        r.body_len = wr - hlen;
    } else {
        die("%s", "answer without Content-Length or chunked encoding");
    }
    const char *conn_hdr = find_header(c->buf, hlen, "Connection");
    if (conn_hdr && strncasecmp(conn_hdr, "close", 5) == 0) {
        close(c->fd);
        conn_open(c);
    }
    return r;
}

/* -- statistics ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p) {
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static long json_int_field(const char *body, size_t len, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = memmem(body, len, pat, strlen(pat));
    if (!p) return -1;
    p += strlen(pat);
    while (*p == ' ') p++;
    return strtol(p, NULL, 10);
}

/* -- events ------------------------------------------------------------------ */

typedef struct events_job {
    const char *hostport, *path;
    const char *data;
    size_t *starts; /* batch i is data[starts[i] .. starts[i+1]) */
    size_t nbatches;
    atomic_size_t next;
    atomic_long accepted, rejected;
    uint64_t *lat_ns; /* per batch */
} events_job_t;

static void *events_worker(void *arg) {
    events_job_t *j = arg;
    conn_t c;
    conn_init(&c, j->hostport);
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->nbatches) break;
        uint64_t t0 = now_ns();
        resp_t r = request(&c, "POST", j->path, "application/x-ndjson", j->data + j->starts[i],
                           j->starts[i + 1] - j->starts[i]);
        j->lat_ns[i] = now_ns() - t0;
        if (r.status != 200) {
            fprintf(stderr, "post_events: batch %zu: HTTP %d: %.*s\n", i, r.status, (int)(r.body_len > 300 ? 300 : r.body_len),
                    r.body);
            exit(1);
        }
        atomic_fetch_add(&j->accepted, json_int_field(r.body, r.body_len, "accepted"));
        atomic_fetch_add(&j->rejected, json_int_field(r.body, r.body_len, "rejected"));
    }
    close(c.fd);
    free(c.buf);
    return NULL;
}

static int cmd_events(int argc, char **argv) {
    if (argc < 4) die("%s", "usage: post_events events HOST:PORT FILE [--batch N] [--conns N] [--path P]");
    size_t batch = 1000;
    int conns = 2;
    const char *path = "/api/events?wait=applied";
    for (int a = 4; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--batch")) batch = (size_t)atol(argv[a + 1]);
        else if (!strcmp(argv[a], "--conns")) conns = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--path")) path = argv[a + 1];
        else die("unknown option %s", argv[a]);
    }
    if (batch == 0 || conns < 1 || conns > 64) die("%s", "bad --batch or --conns");
    int fd = open(argv[3], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die("cannot open %s", argv[3]);
    size_t size = (size_t)st.st_size;
    const char *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : "";
    if (data == MAP_FAILED) die("cannot map %s", argv[3]);
    /* Batch boundaries: after every `batch` newlines. */
    size_t cap = 1024, n = 0, lines = 0;
    size_t *starts = malloc(cap * sizeof *starts);
    starts[n++] = 0;
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
        lines++;
        if (lines % batch == 0 || p == end) {
            if (n == cap) starts = realloc(starts, (cap *= 2) * sizeof *starts);
            starts[n++] = (size_t)(p - data);
        }
    }
    events_job_t j = {.hostport = argv[2], .path = path, .data = data, .starts = starts, .nbatches = n - 1};
    j.lat_ns = calloc(j.nbatches + 1, sizeof *j.lat_ns);
    pthread_t th[64];
    uint64_t t0 = now_ns();
    for (int i = 0; i < conns; i++) pthread_create(&th[i], NULL, events_worker, &j);
    for (int i = 0; i < conns; i++) pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t p50 = pct(j.lat_ns, j.nbatches, 0.50), p99 = pct(j.lat_ns, j.nbatches, 0.99);
    printf("lines=%zu batches=%zu accepted=%ld rejected=%ld seconds=%.3f rate=%.0f p50_ms=%.3f p99_ms=%.3f\n", lines,
           j.nbatches, (long)j.accepted, (long)j.rejected, secs, (double)lines / secs, (double)p50 / 1e6,
           (double)p99 / 1e6);
    free(j.lat_ns);
    free(starts);
    return 0;
}

/* -- repeated GET / POST ---------------------------------------------------------- */

static int cmd_repeat(int argc, char **argv, int post) {
    int need = post ? 5 : 4;
    if (argc < need) die("%s", "usage: post_events get HOST:PORT PATH | post HOST:PORT PATH BODY [--n N] [--warmup N]");
    long n = 2000, warm = 100;
    for (int a = need; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--n")) n = atol(argv[a + 1]);
        else if (!strcmp(argv[a], "--warmup")) warm = atol(argv[a + 1]);
        else die("unknown option %s", argv[a]);
    }
    if (n < 1) die("%s", "--n must be >= 1");
    const char *body = post ? argv[4] : "";
    size_t blen = strlen(body);
    conn_t c;
    conn_init(&c, argv[2]);
    uint64_t *cl = malloc((size_t)n * sizeof *cl), *sv = malloc((size_t)n * sizeof *sv);
    long nsv = 0;
    for (long i = -warm; i < n; i++) {
        uint64_t t0 = now_ns();
        resp_t r = request(&c, post ? "POST" : "GET", argv[3], "application/json", body, blen);
        uint64_t dt = now_ns() - t0;
        if (r.status < 200 || r.status > 299) {
            fprintf(stderr, "post_events: %s %s: HTTP %d: %.*s\n", post ? "POST" : "GET", argv[3], r.status,
                    (int)(r.body_len > 300 ? 300 : r.body_len), r.body);
            return 1;
        }
        if (i < 0) continue;
        cl[i] = dt;
        if (r.took_us >= 0) sv[nsv++] = (uint64_t)r.took_us * 1000;
    }
    uint64_t c50 = pct(cl, (size_t)n, 0.5), c99 = pct(cl, (size_t)n, 0.99);
    double s50 = nsv ? (double)pct(sv, (size_t)nsv, 0.5) / 1e3 : -1, s99 = nsv ? (double)pct(sv, (size_t)nsv, 0.99) / 1e3 : -1;
    printf("n=%ld client_p50_us=%.1f client_p99_us=%.1f server_p50_us=%.1f server_p99_us=%.1f\n", n,
           (double)c50 / 1e3, (double)c99 / 1e3, s50, s99);
    free(cl);
    free(sv);
    close(c.fd);
    free(c.buf);
    return 0;
}

/* -- readiness ----------------------------------------------------------------------- */

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Connects, or returns -1 while nothing listens yet. */
static int try_connect(conn_t *c) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, c->port, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int rc = fd >= 0 ? connect(fd, ai->ai_addr, ai->ai_addrlen) : -1;
    freeaddrinfo(ai);
    if (rc != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int loading_done(const char *body, size_t len) {
    const char *p = memmem(body, len, "\"loading\"", 9);
    if (!p) return 0;
    p += 9;
    while (p < body + len && (*p == ' ' || *p == ':')) p++;
    return (size_t)(body + len - p) >= 5 && memcmp(p, "false", 5) == 0;
}

static int cmd_ready(int argc, char **argv) {
    if (argc < 3) die("%s", "usage: post_events ready HOST:PORT [--t0 EPOCH_NS] [--timeout S]");
    uint64_t t0 = real_ns();
    double timeout = 600;
    for (int a = 3; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--t0")) t0 = strtoull(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--timeout")) timeout = atof(argv[a + 1]);
        else die("unknown option %s", argv[a]);
    }
    conn_t c;
    memset(&c, 0, sizeof c);
    const char *hp = argv[2], *colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof c.host) die("expected HOST:PORT, got %s", hp);
    memcpy(c.host, hp, (size_t)(colon - hp));
    snprintf(c.port, sizeof c.port, "%s", colon + 1);
    struct timespec tick = {0, 20 * 1000000};
    while (try_connect(&c) != 0) {
        if ((double)(real_ns() - t0) / 1e9 > timeout) die("%s", "timed out waiting for the server to listen");
        nanosleep(&tick, NULL);
    }
    conn_open(&c);
    for (;;) {
        resp_t r = request(&c, "GET", "/healthz", "application/json", "", 0);
        if (r.status == 200 && loading_done(r.body, r.body_len)) break;
        if ((double)(real_ns() - t0) / 1e9 > timeout) die("%s", "timed out waiting for loading: false");
        nanosleep(&tick, NULL);
    }
    printf("seconds=%.3f\n", (double)(real_ns() - t0) / 1e9);
    close(c.fd);
    free(c.buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("%s", "usage: post_events events|get|post ... (see the comment at the top of post_events.c)");
    if (!strcmp(argv[1], "events")) return cmd_events(argc, argv);
    if (!strcmp(argv[1], "get")) return cmd_repeat(argc, argv, 0);
    if (!strcmp(argv[1], "post")) return cmd_repeat(argc, argv, 1);
    if (!strcmp(argv[1], "ready")) return cmd_ready(argc, argv);
    die("unknown command %s", argv[1]);
    return 1;
}
