/* rules_watch.c - hot reload: watches the rules directory with inotify and
 * asks the lifecycle to reload a rule file once it has settled. A name is
 * reloaded when no event about it came for DEBOUNCE_MS (editors write a
 * temp file, then rename it over the rule, and may touch it several times).
 *
 * One thread of its own; it calls lifecycle_reload_file, which runs the
 * reload on the writer and waits for it. Started and stopped by the engine
 * (engine_start / engine_stop) through lifecycle_watch_start/stop. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include "engine_internal.h"
#include "lifecycle.h"
#include "util.h"

#define DEBOUNCE_MS 150

struct rules_watch {
    engine_t *e;
    int fd, stop_pipe[2];
    pthread_t thread;
    char **pending;
    int64_t *due;
    size_t npending;
};

static void watch_note(struct rules_watch *w, const char *file) {
    size_t l = strlen(file);
    if (l <= 4 || strcmp(file + l - 4, ".lua") != 0 || file[0] == '.') return;
    char name[80];
    if (l - 4 >= sizeof name) return;
    memcpy(name, file, l - 4);
    name[l - 4] = '\0';
    int64_t due = wall_ms() + DEBOUNCE_MS;
    for (size_t i = 0; i < w->npending; i++)
        if (strcmp(w->pending[i], name) == 0) {
            w->due[i] = due;
            return;
        }
    w->pending = xrealloc(w->pending, (w->npending + 1) * sizeof *w->pending);
    w->due = xrealloc(w->due, (w->npending + 1) * sizeof *w->due);
    w->pending[w->npending] = xstrdup(name);
    w->due[w->npending++] = due;
}

static void *watch_main(void *arg) {
    struct rules_watch *w = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        int timeout = -1;
        int64_t now = wall_ms();
        for (size_t i = 0; i < w->npending; i++) {
            int64_t left = w->due[i] - now;
            if (left < 0) left = 0;
            if (timeout < 0 || left < timeout) timeout = (int)left;
        }
        struct pollfd pfd[2] = {{w->fd, POLLIN, 0}, {w->stop_pipe[0], POLLIN, 0}};
        int rc = poll(pfd, 2, timeout);
        if (rc < 0 && errno != EINTR) break;
        if (pfd[1].revents) break;
        if (rc > 0 && (pfd[0].revents & POLLIN)) {
            ssize_t n = read(w->fd, buf, sizeof buf);
            for (char *p = buf; n > 0 && p < buf + n;) {
                struct inotify_event *ev = (struct inotify_event *)p;
                if (ev->len) watch_note(w, ev->name);
                p += sizeof *ev + ev->len;
            }
        }
        now = wall_ms();
        for (size_t i = 0; i < w->npending;) {
            if (w->due[i] > now) {
                i++;
                continue;
            }
            char *name = w->pending[i];
            w->pending[i] = w->pending[w->npending - 1];
            w->due[i] = w->due[w->npending - 1];
            w->npending--;
            lifecycle_reload_file(w->e, name);
            free(name);
        }
    }
    return NULL;
}

int lifecycle_watch_start(engine_t *e, char *err, size_t errlen) {
    struct rules_watch *w = xcalloc(1, sizeof *w);
    w->e = e;
    w->fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (w->fd < 0 || pipe(w->stop_pipe) != 0 ||
        inotify_add_watch(w->fd, e->rules_dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE) < 0) {
        snprintf(err, errlen, "cannot watch %s for changes: %s", e->rules_dir, strerror(errno));
        if (w->fd >= 0) close(w->fd);
        free(w);
        return -1;
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        snprintf(err, errlen, "cannot start the rules watcher");
        close(w->fd);
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
        free(w);
        return -1;
    }
    e->watch = w;
    return 0;
}

void lifecycle_watch_stop(engine_t *e) {
    struct rules_watch *w = e->watch;
    if (!w) return;
    ssize_t r = write(w->stop_pipe[1], "x", 1);
    (void)r;
    pthread_join(w->thread, NULL);
    close(w->fd);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    for (size_t i = 0; i < w->npending; i++) free(w->pending[i]);
    free(w->pending);
    free(w->due);
    free(w);
    e->watch = NULL;
}
