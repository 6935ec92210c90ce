/* durability.c - what makes a restart lose nothing: the write-ahead log of
 * every accepted input (wal.c), snapshots of the whole state (snapshot.c
 * plus the engine's own sections here), start-up = latest snapshot + WAL
 * replay, and the Kafka offsets stored with the state.
 *
 * Files in the data directory: snapshot.poold (the latest snapshot, replaced
 * by rename) and wal/ (segments). The WAL holds every accepted input in
 * input-seq order (HTTP, files, Kafka); a record is the raw text of one
 * submit plus the clock value its missing timestamps took, so replaying it
 * reproduces the same events with the same seqs. The Kafka offsets applied
 * are part of the state, so Kafka resumes exactly after the last applied
 * message, whatever Kafka's committed offsets say.
 *
 * Snapshots are written by a forked child: at a batch boundary the writer
 * rotates the WAL and forks (a few ms for the page tables); the child writes
 * its copy-on-write image and exits; the writer reaps it on a later cycle and
 * then deletes the WAL segments the snapshot covers. On SIGTERM the last
 * snapshot is written in-process after the writer stopped.
 *
 * Engine sections (besides STOR/TAGS/WIND from snapshot.c):
 *   ENGN: applied seq u64, clock ms i64, kafka offset count u32 and per
 *         entry topic str, partition i32 (as u32), next offset i64;
 *         event seq count u64 = N, N u64 (last input seq per id), then N
 *         field stamps (freshness.h: FG__COUNT i64 ts, then FG__COUNT u64
 *         seq, each little-endian).
 *   POOL: one per pool, see pool_snap_write (pools.c).
 *
 * Threads: durability_open/close run on the owner thread while the writer
 * is not running; durability_w_* on the writer; durability_wal_append under
 * the engine's queue lock (any input thread); the Kafka offset table has its
 * own mutex for the consumer thread. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "durability.h"
#include "engine_internal.h"
#include "ndjson.h"
#include "snapshot.h"
#include "util.h"

#define SNAP_TAG_ENGINE SNAP_TAG('E', 'N', 'G', 'N')
#define SNAP_TAG_POOL SNAP_TAG('P', 'O', 'O', 'L')

/* -- Kafka offsets ----------------------------------------------------------- */

void durability_set_offset(engine_t *e, const char *topic, int32_t partition, int64_t next) {
    pthread_mutex_lock(&e->offsets_lock);
    for (size_t i = 0; i < e->noffsets; i++)
        if (e->offsets[i].partition == partition && strcmp(e->offsets[i].topic, topic) == 0) {
            e->offsets[i].next = next;
            pthread_mutex_unlock(&e->offsets_lock);
            return;
        }
    e->offsets = xrealloc(e->offsets, (e->noffsets + 1) * sizeof *e->offsets);
    kafka_offset_t *o = &e->offsets[e->noffsets++];
    snprintf(o->topic, sizeof o->topic, "%s", topic);
    o->partition = partition;
    o->next = next;
    pthread_mutex_unlock(&e->offsets_lock);
}

int64_t engine_kafka_offset(engine_t *e, const char *topic, int32_t partition) {
    int64_t r = -1;
    pthread_mutex_lock(&e->offsets_lock);
    for (size_t i = 0; i < e->noffsets; i++)
        if (e->offsets[i].partition == partition && strcmp(e->offsets[i].topic, topic) == 0) r = e->offsets[i].next;
    pthread_mutex_unlock(&e->offsets_lock);
    return r;
}

size_t engine_kafka_offsets(engine_t *e, kafka_offset_t *out, size_t max) {
    pthread_mutex_lock(&e->offsets_lock);
    size_t n = e->noffsets < max ? e->noffsets : max;
    if (n) memcpy(out, e->offsets, n * sizeof *out);
    pthread_mutex_unlock(&e->offsets_lock);
    return n;
}

/* -- snapshot writing ----------------------------------------------------------- */

static void snap_path(engine_t *e, char *buf, size_t len) {
    snprintf(buf, len, "%s/snapshot.poold", e->data_dir);
}

/* Where the child of process `pid` writes; the parent renames it to the
 * snapshot once the child succeeded. An orphaned child's file is never
 * used (and is removed at the next start). */
static void partial_path(engine_t *e, pid_t pid, char *buf, size_t len) {
    snprintf(buf, len, "%s/snapshot.%ld.partial", e->data_dir, (long)pid);
}

/* Writes the whole state to `path`. Runs in the forked child or, at
 * shutdown, on the owner thread: the writer is not running either way. */
static int write_snapshot(engine_t *e, const char *path, uint64_t seq, char *err, size_t errlen) {
    snap_writer_t *w = snap_create(path, err, errlen);
    if (!w) return -1;
    snapshot_write_core(w, e->store, e->tags, e->windows);
    snap_begin(w, SNAP_TAG_ENGINE);
    snap_put_u64(w, seq);
    snap_put_i64(w, atomic_load(&e->clock_ms));
    snap_put_u32(w, (uint32_t)e->noffsets); /* the child has no other threads: no lock */
    for (size_t i = 0; i < e->noffsets; i++) {
        snap_put_str(w, e->offsets[i].topic, strlen(e->offsets[i].topic));
        snap_put_u32(w, (uint32_t)e->offsets[i].partition);
        snap_put_i64(w, e->offsets[i].next);
    }
    snap_put_u64(w, e->event_seq_cap);
    if (e->event_seq_cap) snap_put(w, e->event_seq, e->event_seq_cap * sizeof *e->event_seq);
    if (e->event_seq_cap) snap_put(w, e->stamps, e->event_seq_cap * sizeof *e->stamps); /* freshness stamps */
    snap_end(w);
    for (size_t i = 0; i < e->npools; i++) {
        snap_begin(w, SNAP_TAG_POOL);
        pool_snap_write(e->pools[i], w);
        snap_end(w);
    }
    return snap_commit(w, err, errlen);
}

void durability_request_snapshot(engine_t *e) { atomic_store(&e->snapshot_requested, true); }

static void snapshot_finished(engine_t *e, bool ok, const char *why) {
    if (ok) { /* the child's file becomes the snapshot */
        char from[4200], to[4200];
        partial_path(e, e->snapshot_child, from, sizeof from);
        snap_path(e, to, sizeof to);
        if (rename(from, to) != 0) {
            ok = false;
            why = strerror(errno);
            unlink(from);
        } else {
            int dfd = open(e->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    }
    if (ok) {
        atomic_fetch_add(&e->snapshots_written, 1);
        atomic_store(&e->snapshot_seq, e->snapshot_pending_seq);
        atomic_store(&e->snapshot_at, wall_ms());
        log_info("snapshot written (input seq %llu, %.0f ms)", (unsigned long long)e->snapshot_pending_seq,
                 (double)(mono_ns() - e->snapshot_started_ns) / 1e6);
        if (e->wal && wal_truncate_before(e->wal, e->snapshot_pending_seq + 1) != 0)
            log_warn("wal: cannot delete the segments the snapshot covers");
    } else {
        atomic_fetch_add(&e->snapshot_failures, 1);
        log_error("snapshot failed: %s", why);
    }
    e->snapshot_child = 0;
    pthread_mutex_lock(&e->alock);
    e->snapshot_done_count++;
    pthread_cond_broadcast(&e->acond);
    pthread_mutex_unlock(&e->alock);
}

void durability_w_cycle(engine_t *e) {
    if (!e->durable) return;
    if (e->snapshot_child > 0) {
        int status;
        pid_t r = waitpid(e->snapshot_child, &status, WNOHANG);
        if (r == e->snapshot_child) {
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            snapshot_finished(e, ok, WIFSIGNALED(status) ? "the snapshot process was killed" : "see the log above");
        }
        return;
    }
    bool due = atomic_exchange(&e->snapshot_requested, false);
    if (!due && e->cfg.snapshot_every_s > 0 &&
        wall_ms() - atomic_load(&e->snapshot_at) >= (int64_t)e->cfg.snapshot_every_s * 1000 &&
        e->pending_seq != atomic_load(&e->snapshot_seq))
        due = true;
    if (!due || e->deferred) {
        if (due) atomic_store(&e->snapshot_requested, true); /* after the bulk load */
        return;
    }
    e->snapshot_pending_seq = e->pending_seq;
    e->snapshot_started_ns = mono_ns();
    uint64_t next;
    if (e->wal) wal_rotate(e->wal, &next);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the parent: a stale child must not write into the next
         * run's files (it also holds the data directory lock meanwhile). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        char err[512], path[4200];
        partial_path(e, getpid(), path, sizeof path);
        int rc = write_snapshot(e, path, e->snapshot_pending_seq, err, sizeof err);
        if (rc != 0) {
            ssize_t w = write(2, err, strlen(err));
            (void)w;
            ssize_t w2 = write(2, "\n", 1);
            (void)w2;
        }
        _exit(rc == 0 ? 0 : 1);
    }
    if (pid < 0) {
        snapshot_finished(e, false, strerror(errno));
        return;
    }
    e->snapshot_child = pid;
    atomic_store(&e->snapshot_fork_ns, mono_ns() - e->snapshot_started_ns);
}

/* Waits for the snapshot that a request triggers (POST /api/admin/snapshot). */
int engine_snapshot(engine_t *e, int timeout_ms, uint64_t *seq_out) {
    if (!e->durable) return -1;
    pthread_mutex_lock(&e->alock);
    uint64_t before = e->snapshot_done_count;
    pthread_mutex_unlock(&e->alock);
    uint64_t failures = atomic_load(&e->snapshot_failures);
    durability_request_snapshot(e);
    pthread_mutex_lock(&e->qlock);
    pthread_cond_signal(&e->qcond);
    pthread_mutex_unlock(&e->qlock);
    int64_t deadline = wall_ms() + timeout_ms;
    pthread_mutex_lock(&e->alock);
    /* The first completion may be a snapshot already running: wait for ours. */
    while (e->snapshot_done_count < before + 2 && wall_ms() < deadline) {
        if (e->snapshot_done_count == before + 1 && !atomic_load(&e->snapshot_requested)) break;
        pthread_mutex_unlock(&e->alock);
        usleep(5000);
        pthread_mutex_lock(&e->alock);
    }
    bool done = e->snapshot_done_count > before;
    pthread_mutex_unlock(&e->alock);
    if (seq_out) *seq_out = atomic_load(&e->snapshot_seq);
    return done && atomic_load(&e->snapshot_failures) == failures ? 0 : -1;
}

/* -- start-up ------------------------------------------------------------------- */

static int read_engine_section(engine_t *e, snap_reader_t *r, uint64_t *seq) {
    int64_t clock;
    uint32_t noff;
    if (snap_get_u64(r, seq) || snap_get_i64(r, &clock) || snap_get_u32(r, &noff)) return -1;
    atomic_store(&e->clock_ms, clock);
    for (uint32_t i = 0; i < noff; i++) {
        size_t len;
        const char *t = snap_get_str(r, &len);
        uint32_t part;
        int64_t next;
        if (!t || len >= sizeof e->offsets[0].topic || snap_get_u32(r, &part) || snap_get_i64(r, &next)) return -1;
        char topic[sizeof e->offsets[0].topic];
        memcpy(topic, t, len);
        topic[len] = '\0';
        durability_set_offset(e, topic, (int32_t)part, next);
    }
    uint64_t n;
    if (snap_get_u64(r, &n) || n > snap_remaining(r) / 8) return -1;
    if (n > snap_remaining(r) / (8 + sizeof *e->stamps)) return -1;
    if (n) {
        e->event_seq = xmalloc(n * sizeof *e->event_seq);
        e->stamps = xmalloc(n * sizeof *e->stamps);
        e->event_seq_cap = n;
        if (snap_get(r, e->event_seq, n * sizeof *e->event_seq)) return -1;
        if (snap_get(r, e->stamps, n * sizeof *e->stamps)) return -1;
    }
    return snap_section_done(r);
}

static int load_snapshot(engine_t *e, uint64_t *seq, char *err, size_t errlen) {
    char path[4200];
    snap_path(e, path, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* none yet */
    uint64_t t0 = mono_ns();
    uint32_t version;
    snap_reader_t *r = snap_open(path, &version, err, errlen);
    if (!r) return -1;
    if (snapshot_read_core(r, e->store, e->tags, e->windows, err, errlen) != 0) {
        snap_close(r);
        return -1;
    }
    uint32_t tag;
    int got;
    bool engine_seen = false;
    while ((got = snap_next_section(r, &tag)) == 1) {
        if (tag == SNAP_TAG_ENGINE) {
            if (read_engine_section(e, r, seq) != 0) break;
            engine_seen = true;
        } else if (tag == SNAP_TAG_POOL) {
            pool_saved_t *s = pool_snap_read(r);
            if (!s) break;
            e->saved = xrealloc(e->saved, (e->nsaved + 1) * sizeof *e->saved);
            e->saved[e->nsaved++] = s;
        }
        /* unknown sections of the same format version are skipped */
    }
    if (got != 0 || !engine_seen) {
        snprintf(err, errlen, "%s", got != 0 && *snap_error(r) ? snap_error(r) : "snapshot: no engine section");
        snap_close(r);
        return -1;
    }
    snap_close(r);
    log_info("snapshot %s: %u SKUs, %zu pools, input seq %llu, loaded in %.0f ms", path, store_count(e->store),
             e->nsaved, (unsigned long long)*seq, (double)(mono_ns() - t0) / 1e6);
    return 0;
}

/* -- generations and the data directory lock -------------------------------------
 *
 * DATA/state holds "GENERATION CLEAN\n": the count of starts, and whether
 * the last run stopped cleanly (final snapshot written). A start after an
 * unclean stop cannot know which membership changes it had served after
 * the last snapshot (window ticks change pools without any input), so every
 * pool's seq moves to GENERATION << 32: followers get 410 resync, and a
 * seq is never handed out twice, even after repeated crashes. DATA/lock is
 * locked (fcntl record lock) for the life of the process; a snapshot
 * child does not inherit the lock, and writes to a file of its own that
 * only the parent makes the snapshot (rename), so an orphaned child can
 * neither block nor spoil the next run. */

static int state_write(engine_t *e, uint64_t gen, int clean) {
    char path[4200], text[64];
    snprintf(path, sizeof path, "%s/state", e->data_dir);
    int n = snprintf(text, sizeof text, "%llu %d\n", (unsigned long long)gen, clean);
    return write_file_atomic(path, text, (size_t)n, 1);
}

static int lock_and_count(engine_t *e, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/lock", e->data_dir);
    /* A POSIX record lock: not inherited by a snapshot child, so a stopped
     * orphan never blocks the next start. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    e->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (e->lock_fd < 0 || fcntl(e->lock_fd, F_SETLK, &fl) != 0) {
        snprintf(err, errlen, "the data directory %s is in use by another poold (%s is locked)", e->data_dir, path);
        return -1;
    }
    DIR *d = opendir(e->data_dir); /* snapshots of children that never finished */
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l > 8 && strncmp(de->d_name, "snapshot.", 9) == 0 &&
            (strstr(de->d_name, ".partial") || strcmp(de->d_name + l - 4, ".tmp") == 0)) {
            snprintf(path, sizeof path, "%s/%s", e->data_dir, de->d_name);
            unlink(path);
        }
    }
    if (d) closedir(d);
    snprintf(path, sizeof path, "%s/state", e->data_dir);
    unsigned long long gen = 0;
    int clean = 1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llu %d", &gen, &clean) != 2) clean = 0;
        fclose(f);
    }
    e->generation = gen + 1;
    e->unclean_restart = f != NULL && !clean;
    if (state_write(e, e->generation, 0) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (e->unclean_restart)
        log_warn("poold did not stop cleanly last time: pools continue at seq %llu << 32 (followers resync)",
                 (unsigned long long)e->generation);
    return 0;
}

typedef struct replay_ctx {
    engine_t *e;
    uint64_t next_seq; /* the seq the next record must start at */
    uint64_t events, records;
    char err[256];
} replay_ctx_t;

static int replay_record(void *arg, const wal_record_t *rec) {
    replay_ctx_t *rc = arg;
    engine_t *e = rc->e;
    if (rec->first_seq != rc->next_seq) {
        snprintf(rc->err, sizeof rc->err, "record with input seq %llu where %llu was expected",
                 (unsigned long long)rec->first_seq, (unsigned long long)rc->next_seq);
        return -1;
    }
    char *buf = xmalloc(rec->payload_len + 1);
    memcpy(buf, rec->payload, rec->payload_len);
    buf[rec->payload_len] = '\0';
    char source[WAL_MAX_SOURCE + 1];
    memcpy(source, rec->source, rec->source_len);
    source[rec->source_len] = '\0';
    uint32_t n = engine_apply_text(e, buf, rec->payload_len, rec->ingest_ms, rec->first_seq, source, rec->source_kind,
                                   rec->kafka_partition, rec->kafka_offset);
    free(buf);
    if (n != rec->nevents) {
        snprintf(rc->err, sizeof rc->err, "record at input seq %llu: %u events parsed, %u recorded",
                 (unsigned long long)rec->first_seq, n, rec->nevents);
        return -1;
    }
    if (rec->source_kind == WAL_SRC_KAFKA && rec->kafka_offset >= 0) {
        char topic[160];
        const char *t = rec->source;
        size_t tl = rec->source_len;
        if (tl > 6 && memcmp(t, "kafka:", 6) == 0) {
            t += 6;
            tl -= 6;
        }
        snprintf(topic, sizeof topic, "%.*s", (int)tl, t);
        durability_set_offset(e, topic, rec->kafka_partition, rec->kafka_offset + 1);
    }
    rc->next_seq += rec->nevents;
    rc->events += rec->nevents;
    rc->records++;
    return 0;
}

static void *syncer_main(void *arg) {
    engine_t *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->qlock);
        while (!e->syncer_stop && wal_appended_seq(e->wal) == wal_durable_seq(e->wal))
            pthread_cond_wait(&e->synccond, &e->qlock);
        bool stop = e->syncer_stop;
        pthread_mutex_unlock(&e->qlock);
        if (wal_sync(e->wal) != 0) log_error("wal: fsync failed: %s", strerror(errno));
        if (stop) break;
    }
    return NULL;
}

int durability_open(engine_t *e, char *err, size_t errlen) {
    atomic_store(&e->snapshot_at, wall_ms());
    e->durable = e->cfg.durable;
    if (!e->durable) return 0;
    if (lock_and_count(e, err, errlen) != 0) return -1;
    uint64_t seq = 0;
    if (load_snapshot(e, &seq, err, errlen) != 0) return -1;
    atomic_store(&e->snapshot_seq, seq);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/wal", e->data_dir);
    uint64_t last = 0;
    e->wal = wal_open(dir, e->cfg.fsync_mode, &last, err, errlen); /* checks and repairs a torn tail */
    if (!e->wal) return -1;
    replay_ctx_t rc = {e, seq + 1, 0, 0, ""};
    uint64_t t0 = mono_ns(), records = 0;
    char werr[512] = "";
    if (wal_replay(dir, seq, replay_record, &rc, &records, werr, sizeof werr) != 0) {
        snprintf(err, errlen, "%s%s%s", werr, rc.err[0] ? ": " : "", rc.err);
        return -1;
    }
    uint64_t applied = rc.next_seq - 1;
    if (rc.records == 0 && last > applied) applied = last; /* segments emptied by a snapshot */
    if (last > applied) {
        snprintf(err, errlen, "wal: ends at input seq %llu but replay reached %llu", (unsigned long long)last,
                 (unsigned long long)applied);
        return -1;
    }
    if (rc.records)
        log_info("wal: replayed %llu records (%llu events) after the snapshot in %.0f ms",
                 (unsigned long long)rc.records, (unsigned long long)rc.events, (double)(mono_ns() - t0) / 1e6);
    e->next_seq = applied;
    e->pending_seq = applied;
    atomic_store(&e->applied_seq, applied);
    e->pctx.event_floor = seq; /* changes of replayed SKUs name their events */
    if (e->cfg.fsync_mode == WAL_FSYNC_BATCH || e->cfg.fsync_mode == WAL_FSYNC_ALWAYS) {
        if (pthread_create(&e->syncer, NULL, syncer_main, e) != 0) {
            snprintf(err, errlen, "cannot start the WAL syncer thread");
            return -1;
        }
        e->syncer_running = true;
    }
    return 0;
}

pool_saved_t *durability_take_saved(engine_t *e, const char *name) {
    for (size_t i = 0; i < e->nsaved; i++)
        if (e->saved[i] && strcmp(e->saved[i]->name, name) == 0) {
            pool_saved_t *s = e->saved[i];
            e->saved[i] = NULL;
            return s;
        }
    return NULL;
}

void durability_close(engine_t *e) {
    if (e->syncer_running) {
        pthread_mutex_lock(&e->qlock);
        e->syncer_stop = true;
        pthread_cond_broadcast(&e->synccond);
        pthread_mutex_unlock(&e->qlock);
        pthread_join(e->syncer, NULL);
        e->syncer_running = false;
    }
    if (e->snapshot_child > 0) {
        int status;
        waitpid(e->snapshot_child, &status, 0);
        e->snapshot_child = 0;
    }
    /* Always a final snapshot: window ticks may have changed pools (and
     * their seqs) since the last one, even with no new input. */
    if (e->durable && e->writer_started) {
        char err[512], path[4200];
        uint64_t t0 = mono_ns();
        snap_path(e, path, sizeof path);
        if (write_snapshot(e, path, e->pending_seq, err, sizeof err) == 0) {
            log_info("snapshot written at shutdown (input seq %llu, %.0f ms)", (unsigned long long)e->pending_seq,
                     (double)(mono_ns() - t0) / 1e6);
            uint64_t next;
            if (e->wal && wal_rotate(e->wal, &next) == 0) wal_truncate_before(e->wal, e->pending_seq + 1);
            if (state_write(e, e->generation, 1) != 0) log_warn("cannot mark the clean stop in %s/state", e->data_dir);
        } else {
            log_error("snapshot at shutdown failed: %s (the WAL still has everything)", err);
        }
    }
    wal_close(e->wal);
    e->wal = NULL;
    e->durable = false; /* closed: a second call does nothing */
    for (size_t i = 0; i < e->nsaved; i++) pool_saved_free(e->saved[i]);
    free(e->saved);
    e->saved = NULL;
    e->nsaved = 0;
}

void durability_free(engine_t *e) {
    if (e->lock_fd > 0) close(e->lock_fd);
    e->lock_fd = -1;
    free(e->offsets);
    pthread_mutex_destroy(&e->offsets_lock);
    pthread_cond_destroy(&e->synccond);
}

/* -- appending (under the queue lock) --------------------------------------------- */

int durability_wal_append(engine_t *e, const engine_input_t *in, const char *raw, size_t len, uint64_t first_seq,
                          uint32_t n, int64_t now) {
    if (!e->wal || in->replay) return 0;
    wal_record_t r = {0};
    r.first_seq = first_seq;
    r.nevents = n;
    r.ingest_ms = now;
    r.source_kind = in->kind;
    r.source = in->source ? in->source : "";
    r.source_len = (uint32_t)strlen(r.source);
    if (r.source_len > WAL_MAX_SOURCE) r.source_len = WAL_MAX_SOURCE;
    r.kafka_partition = in->kind == WAL_SRC_KAFKA ? in->kafka_partition : -1;
    r.kafka_offset = in->kind == WAL_SRC_KAFKA ? in->kafka_offset : -1;
    r.payload = raw;
    r.payload_len = (uint32_t)len;
    if (wal_append(e->wal, &r) != 0) return -1;
    pthread_cond_signal(&e->synccond);
    return 0;
}

int engine_wait_durable(engine_t *e, uint64_t seq, int timeout_ms) {
    if (!e->wal) return 0;
    if (e->cfg.fsync_mode == WAL_FSYNC_ALWAYS && wal_durable_seq(e->wal) < seq) wal_sync(e->wal);
    return wal_wait_durable(e->wal, seq, timeout_ms);
}

bool engine_durable(engine_t *e, uint64_t seq) { return !e->wal || wal_durable_seq(e->wal) >= seq; }

bool engine_acks_wait_for_disk(engine_t *e) {
    return e->wal && (e->cfg.fsync_mode == WAL_FSYNC_ALWAYS || e->cfg.fsync_mode == WAL_FSYNC_BATCH);
}

void engine_durability_stats(engine_t *e, engine_durability_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->enabled = e->durable;
    out->snapshots = atomic_load(&e->snapshots_written);
    out->snapshot_failures = atomic_load(&e->snapshot_failures);
    out->snapshot_seq = atomic_load(&e->snapshot_seq);
    out->snapshot_at = atomic_load(&e->snapshot_at);
    out->snapshot_fork_ns = atomic_load(&e->snapshot_fork_ns);
    if (e->wal) {
        wal_stats_t ws;
        wal_stats(e->wal, &ws);
        out->wal_appends = ws.appends;
        out->wal_bytes = ws.bytes;
        out->wal_syncs = ws.syncs;
        out->wal_sync_seconds = (double)ws.sync_ns_total / 1e9;
        out->wal_segments = ws.segments;
        out->durable_seq = wal_durable_seq(e->wal);
    }
}
