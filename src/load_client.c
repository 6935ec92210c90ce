/* load_client.c - the `poold load` command; see load_client.h.
 *
 * A deliberately small HTTP/1.1 client over one keep-alive TCP connection
 * (plain http only: poold listens on loopback or behind a proxy). Each batch
 * is a whole number of lines; the server's line numbers are shifted by the
 * batch's first line so that errors name the line of the file. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "load_client.h"
#include "util.h"

typedef struct conn {
    int fd;
    char host[256];
    char port[16];
    char *rbuf;
    size_t rlen, rcap;
} conn_t;

static int parse_url(const char *url, char *host, size_t hl, char *port, size_t pl) {
    if (strncmp(url, "http://", 7) != 0) return -1;
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    const char *hend = colon ? colon : end;
    if (hend == h || (size_t)(hend - h) >= hl) return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    if (colon) {
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n >= pl) return -1;
        memcpy(port, colon + 1, n);
        port[n] = '\0';
    } else {
        snprintf(port, pl, "80");
    }
    return 0;
}

static int conn_open(conn_t *c) {
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0) return -1;
    c->fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    c->rlen = 0;
    return c->fd < 0 ? -1 : 0;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one request and reads the response; *body is malloc'd. */
static int request(conn_t *c, const char *path, const char *body, size_t len, int *status, char **out) {
    if (c->fd < 0 && conn_open(c) != 0) return -1;
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-ndjson\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      path, c->host, c->port, len);
    if (write_all(c->fd, head, (size_t)hn) != 0 || write_all(c->fd, body, len) != 0) return -1;
    size_t header_end = 0, content_length = 0;
    for (;;) {
        if (c->rcap - c->rlen < 65536) {
            c->rcap = c->rcap * 2 + 65536;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        if (!header_end) {
            char *e = c->rlen >= 4 ? memmem(c->rbuf, c->rlen, "\r\n\r\n", 4) : NULL;
            if (e) {
                header_end = (size_t)(e - c->rbuf) + 4;
                c->rbuf[header_end - 1] = '\0';
                if (sscanf(c->rbuf, "HTTP/1.%*d %d", status) != 1) return -1;
                char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
                if (!cl) return -1;
                content_length = strtoull(cl + 17, NULL, 10);
            }
        }
        if (header_end && c->rlen >= header_end + content_length) break;
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c->rlen += (size_t)r;
    }
    *out = xstrndup(c->rbuf + header_end, content_length);
    size_t used = header_end + content_length;
    memmove(c->rbuf, c->rbuf + used, c->rlen - used);
    c->rlen -= used;
    return 0;
}

static const char load_help[] =
    "usage: poold load FILE.ndjson... [--server URL] [--batch LINES]\n"
    "\n"
    "Streams NDJSON files to a running poold (POST /api/events?wait=applied) in\n"
    "batches of LINES lines (default 10000), each applied before the next is sent,\n"
    "printing progress. Rejected lines are printed as FILE:LINE: reason; they are\n"
    "also in the server's dead-letter file. Exit 0 when every file was sent (even\n"
    "with rejected lines), 1 on a usage or connection error.\n"
    "  --server URL   default http://127.0.0.1:8080\n";

int load_main(int argc, char **argv) {
    const char *server = "http://127.0.0.1:8080";
    long batch_lines = 10000;
    static const struct option opts[] = {{"server", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's') server = optarg;
        else if (ch == 'b') batch_lines = atol(optarg);
        else if (ch == 'h') {
            fputs(load_help, stdout);
            return 0;
        } else {
            fputs(load_help, stderr);
            return 1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "poold load: no input file (see poold load --help)\n");
        return 1;
    }
    if (batch_lines < 1 || batch_lines > 1000000) {
        fprintf(stderr, "poold load: --batch must be 1..1000000\n");
        return 1;
    }
    conn_t c = {.fd = -1};
    if (parse_url(server, c.host, sizeof c.host, c.port, sizeof c.port) != 0) {
        fprintf(stderr, "poold load: --server wants http://HOST[:PORT], got \"%s\"\n", server);
        return 1;
    }
    int rc = 0;
    uint64_t total_lines = 0, total_rej = 0, t0 = mono_ns();
    for (int fi = optind; fi < argc && rc == 0; fi++) {
        const char *path = argv[fi];
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "poold load: cannot open %s: %s\n", path, strerror(errno));
            rc = 1;
            break;
        }
        char *line = NULL;
        size_t lcap = 0;
        ssize_t l;
        size_t blen = 0, bcap = 1 << 20;
        char *batch = xmalloc(bcap);
        uint64_t lineno = 0, first = 1, last_print = mono_ns();
        long nb = 0;
        for (;;) {
            l = getline(&line, &lcap, f);
            if (l > 0) {
                if (blen + (size_t)l + 1 > bcap) {
                    while (blen + (size_t)l + 1 > bcap) bcap *= 2;
                    batch = xrealloc(batch, bcap);
                }
                memcpy(batch + blen, line, (size_t)l);
                blen += (size_t)l;
                if (batch[blen - 1] != '\n') batch[blen++] = '\n';
                lineno++;
                nb++;
            }
            if ((l < 0 && nb > 0) || nb == batch_lines) {
                int status = 0;
                char *resp = NULL;
                if (request(&c, "/api/events?wait=applied", batch, blen, &status, &resp) != 0) {
                    fprintf(stderr, "poold load: cannot reach %s: %s\n", server, strerror(errno));
                    rc = 1;
                    break;
                }
                json_t *j = json_loads(resp, 0, NULL);
                if (status != 200 || !j) {
                    fprintf(stderr, "poold load: %s: server answered %d: %.300s\n", path, status, resp);
                    json_decref(j);
                    free(resp);
                    rc = 1;
                    break;
                }
                json_t *errs = json_object_get(j, "errors");
                for (size_t i = 0; i < json_array_size(errs); i++) {
                    json_t *e = json_array_get(errs, i);
                    fprintf(stderr, "%s:%llu: %s\n", path,
                            (unsigned long long)(first - 1 + (uint64_t)json_integer_value(json_object_get(e, "line"))),
                            json_string_value(json_object_get(e, "error")));
                }
                total_rej += (uint64_t)json_integer_value(json_object_get(j, "rejected"));
                json_decref(j);
                free(resp);
                total_lines += (uint64_t)nb;
                first = lineno + 1;
                blen = 0;
                nb = 0;
                if (mono_ns() - last_print > 2000000000ull) {
                    double s = (double)(mono_ns() - t0) / 1e9;
                    fprintf(stderr, "poold load: %s: %llu lines, %llu rejected, %.0f lines/s\n", path,
                            (unsigned long long)lineno, (unsigned long long)total_rej, (double)total_lines / s);
                    last_print = mono_ns();
                }
            }
            if (l < 0) break;
        }
        free(line);
        free(batch);
        fclose(f);
    }
    double s = (double)(mono_ns() - t0) / 1e9;
    fprintf(stderr, "poold load: %llu lines sent, %llu rejected, %.2f s (%.0f lines/s)\n",
            (unsigned long long)total_lines, (unsigned long long)total_rej, s, s > 0 ? (double)total_lines / s : 0.0);
    if (c.fd >= 0) close(c.fd);
    free(c.rbuf);
    return rc;
}
