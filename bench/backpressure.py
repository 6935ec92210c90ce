#!/usr/bin/env python3
"""bench/backpressure.py - issue 7, "Backpressure, not collapse", shown.

    python3 bench/backpressure.py [POOLD_BIN] [--skus 100000] [--overload-s 60]
        [--normal-s 20] [--factor 3] [--posters 32] [--procs 4]
        [--big-bodies N] [--kafka | --kafka-only] [--keep]

(POOLD_BIN or env POOLD_BIN; default build/poold.) ~2.5 min (+1.5 min with
--kafka), ~2 GB of WAL in a temp dir. Against one `poold serve` (the 8
example rules of rules/, a 100k-SKU catalog and 500k events from `poold
gen`, --clock event, default flags otherwise):
  1. sustainable rate R = the larger of: accepted events/s with 8
     connections posting 1,000-line bodies with ?wait=applied for 10 s, and
     applied events/s while 16 connections keep the queue full.
  2. overload: --posters keep-alive connections (over --procs processes)
     offer --factor x R for --overload-s seconds (1,000-line bodies, no
     wait; each poster paced to its share, sending at once when behind, so
     that the rate actually sent is what the server lets through); a
     503/429 is retried after its Retry-After; every acknowledged body's
     seq and accepted count is kept.
  3. normal: the same posters at R/2 for --normal-s seconds.
  Every second: poold's VmRSS, /api/stats queue_events, /metrics
  poold_ingest_queue_bytes; a reader does GET /api/pools every 10 ms.
Then it waits for the queue to drain and checks:
  - max RSS (VmHWM, reset after the load) <= state + the documented queue
    bound (256 MiB of text + 1M parsed events of sizeof(event_t)) + the
    posts in flight (each holds its body three times and its events); the
    state is the larger of the RSS after the load and at the end (queue
    empty, --settle-s later);
  - the backlog drains: queue_events back to ~0 after the overload;
  - reads kept answering: every GET /api/pools during the overload 200,
    p99 under 250 ms;
  - nothing accepted is lost: the accepted seq ranges of all acknowledged
    bodies are disjoint and cover exactly (seq before, applied_seq after];
    the sum of accepted lines = the growth of poold_events_applied_total;
    applied_seq = the last acknowledged seq.
--pad-to B: pad every posted line to B bytes (268: 1M lines = 256 MiB).
--big-bodies N: N more connections post ~60 MiB bodies during the overload
(a memory-bound demonstration: each waiting one holds ~0.4 GiB).
--kafka: then `poold kafka-mock --topics events:64` gets 3M events first
(keys spread uniformly: the mock keeps only 5 MiB per partition and deletes
older messages), and a second poold consumes them with 104 pools (the
example rules plus 12 renamed copies of each, so that its writer is slower
than the consumer): poold_kafka_paused_total > 0, RSS bounded as above
(+ librdkafka's 64 MiB prefetch), every message applied.
Prints a summary; exit 1 if a check fails.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
QUEUE_MAX_EVENTS = 1000000      # engine.c default queue_max_events
QUEUE_MAX_BYTES = 256 * MiB     # engine.c default queue_max_bytes
BATCH_LINES = 1000

# -- small helpers -----------------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_hwm(pid):
    """Resets VmHWM (peak RSS) of our own child (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def get_json(port, path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def prom(port, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode(errors="replace")
    finally:
        c.close()
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^(\S+?(?:\{[^}]*\})?)\s+(\S+)$", ln)
        if m and not ln.startswith("#"):
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def mib(n):
    return "?" if n is None else f"{n / MiB:.0f} MiB"


def event_t_size():
    """sizeof(event_t), compiled from src/event.h (208 on x86-64 when written)."""
    try:
        d = tempfile.mkdtemp(prefix="poold-sz-")
        src = os.path.join(d, "sz.c")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\n#include "event.h"\nint main(void){printf("%zu", sizeof(event_t));return 0;}\n')
        subprocess.run(["cc", "-I", os.path.join(ROOT, "src"), src, "-o", os.path.join(d, "sz")], check=True,
                       capture_output=True)
        n = int(subprocess.run([os.path.join(d, "sz")], capture_output=True, text=True).stdout)
        shutil.rmtree(d, ignore_errors=True)
        return n
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 208


# -- raw keep-alive HTTP client (posters) ------------------------------------------------------


class Conn:
    def __init__(self, port):
        self.port = port
        self.s = None
        self.buf = b""

    def open(self):
        self.s = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.s:
            self.s.close()
        self.s = None

    def roundtrip(self, req):
        """Sends prebuilt request bytes, returns (status, headers, body)."""
        if self.s is None:
            self.open()
        self.s.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed mid-body")
            rest += d
        self.buf = rest[n:]
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, rest[:n]


BODIES = []  # prebuilt request bytes, (plain, wait=applied); inherited by fork


def build_bodies(path, port, pad_to=0):
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    if pad_to:  # an ignored field makes each line pad_to bytes long (newline included)
        out = []
        for ln in lines:
            ln = ln.rstrip(b"\n")
            n = pad_to - len(ln) - len(b',"pad":""') - 1
            out.append(ln[:-1] + b',"pad":"' + b"p" * max(0, n) + b'"}\n')
        lines = out
    out = []
    for i in range(0, len(lines), BATCH_LINES):
        body = b"".join(lines[i:i + BATCH_LINES])
        if not body.endswith(b"\n"):
            body += b"\n"
        mk = lambda q: (b"POST /api/events%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/x-ndjson\r\n"
                        b"Content-Length: %d\r\n\r\n" % (q, port, len(body))) + body
        out.append((mk(b""), mk(b"?wait=applied"), body.count(b"\n")))
    return out, len(lines)


def poster_thread(port, tid, nthreads_total, phases, wait, out, stop):
    """phases: [(t_start, t_end, bodies_per_s for this thread or 0 = unpaced)].
    out gets (t_send, t_ack, phase, status, seq, accepted, tries, retry_wait) per body."""
    conn = Conn(port)
    k = 0
    for ph, (ts, te, rate) in enumerate(phases):
        now = time.time()
        if now < ts:
            time.sleep(ts - now)
        due = ts + (tid % 8) * 0.001
        while not stop.is_set():
            now = time.time()
            if now >= te:
                break
            if rate:
                if now < due:
                    time.sleep(min(due - now, te - now))
                    continue
                due += 1.0 / rate
            idx = (tid + k * nthreads_total) % len(BODIES)
            k += 1
            req = BODIES[idx][1 if wait else 0]
            t0 = time.time()
            tries, waited = 0, 0.0
            while True:
                tries += 1
                try:
                    st, hd, body = conn.roundtrip(req)
                except (OSError, ConnectionError, ValueError):
                    conn.close()
                    # The outcome is unknown (accepted or not): record it, do
                    # not resend (a resend could duplicate).
                    out.append((t0, time.time(), ph, -1, None, None, tries, waited))
                    break
                if st in (503, 429):
                    try:
                        r = json.loads(body)
                    except ValueError:
                        r = {}
                    if r.get("accepted"):  # accepted but not durable: not a retry case
                        out.append((t0, time.time(), ph, st, r.get("seq"), r.get("accepted"), tries, waited))
                        break
                    ra = hd.get("retry-after")
                    out.append((t0, time.time(), ph, -st if ra else -st - 1000, None, 0, tries, waited))
                    w = float(ra) if ra and ra.replace(".", "").isdigit() else 1.0
                    waited += w
                    time.sleep(w)
                    continue
                try:
                    r = json.loads(body)
                except ValueError:
                    r = {}
                out.append((t0, time.time(), ph, st, r.get("seq"), r.get("accepted"), tries, waited))
                break
    conn.close()


def poster_proc(port, pidx, nthreads, nthreads_total, phases, wait, q):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    outs = [[] for _ in range(nthreads)]
    ths = [threading.Thread(target=poster_thread, args=(port, pidx * nthreads + i, nthreads_total, phases, wait,
                                                         outs[i], stop)) for i in range(nthreads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    q.put([rec for o in outs for rec in o])


def big_poster(port, req, t_start, t_end, out):
    """Posts one big prebuilt body again and again from t_start to t_end."""
    time.sleep(max(0.0, t_start + 2 - time.time()))  # once the queue is full
    conn = Conn(port)
    while time.time() < t_end:
        t0 = time.time()
        try:
            st, hd, body = conn.roundtrip(req)
        except (OSError, ConnectionError, ValueError):
            conn.close()
            out.append((t0, time.time(), 0, -1, None, None, 1, 0.0))
            continue
        try:
            r = json.loads(body)
        except ValueError:
            r = {}
        if st in (503, 429) and not r.get("accepted"):
            ra = hd.get("retry-after")
            out.append((t0, time.time(), 0, -st if ra else -st - 1000, None, 0, 1, 0.0))
            time.sleep(float(ra) if ra and ra.isdigit() else 1.0)
            continue
        out.append((t0, time.time(), 0, st, r.get("seq"), r.get("accepted"), 1, 0.0))
    conn.close()


def run_posters(port, procs, threads_per, phases, wait):
    """Runs the posters in `procs` processes; returns every record."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    total = procs * threads_per
    ps = [ctx.Process(target=poster_proc, args=(port, i, threads_per, total, phases, wait, q)) for i in range(procs)]
    for p in ps:
        p.start()
    recs = []
    for _ in ps:
        recs += q.get()
    for p in ps:
        p.join()
    return recs


# -- monitors -----------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every second: RSS, /api/stats queue and applied; /metrics queue bytes."""

    def __init__(self, port, pid):
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.samples = []  # (t, rss, queue_events, applied, applied_seq, queue_bytes)
        self.stop = threading.Event()
        self.qbytes = None

    def run(self):
        mt = threading.Thread(target=self._metrics, daemon=True)
        mt.start()
        while not self.stop.is_set():
            t = time.time()
            rss = proc_status(self.pid, "VmRSS")
            try:
                _, s = get_json(self.port, "/api/stats", timeout=10)
                qe, ap, aseq = s.get("queue_events"), s.get("applied"), s.get("applied_seq")
            except (OSError, ValueError):
                qe = ap = aseq = None
            self.samples.append((t, rss, qe, ap, aseq, self.qbytes))
            self.stop.wait(max(0.0, 1.0 - (time.time() - t)))

    def _metrics(self):
        while not self.stop.is_set():
            t = time.time()
            try:
                self.qbytes = prom(self.port, timeout=10).get("poold_ingest_queue_bytes")
            except (OSError, ValueError):
                pass
            self.stop.wait(max(0.0, 1.0 - (time.time() - t)))


class Reader(threading.Thread):
    """GET /api/pools every 10 ms on one keep-alive connection."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.recs = []  # (t, latency_s, status, server_us)
        self.stop = threading.Event()

    def run(self):
        c = Conn(self.port)
        req = b"GET /api/pools HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        while not self.stop.is_set():
            t0 = time.time()
            try:
                st, hd, _ = c.roundtrip(req)
                us = int(hd.get("x-took-us", "-1"))
            except (OSError, ConnectionError, ValueError):
                c.close()
                st, us = -1, -1
            self.recs.append((t0, time.time() - t0, st, us))
            self.stop.wait(max(0.0, 0.01 - (time.time() - t0)))
        c.close()


# -- the server ---------------------------------------------------------------------------------


class Poold:
    def __init__(self, binary, tmp, name, args, rules=None):
        self.port = free_port()
        self.data = os.path.join(tmp, "data-" + name)
        os.makedirs(self.data, exist_ok=True)
        self.logpath = os.path.join(tmp, f"poold-{name}.log")
        self.log = open(self.logpath, "w")
        cmd = [binary, "serve", "--rules", rules or os.path.join(ROOT, "rules"), "--data", self.data,
               "--listen", f"127.0.0.1:{self.port}", "--clock", "event"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                st, h = get_json(self.port, "/healthz", timeout=5)
                if st == 200 and h.get("loading") is False:
                    return h
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_drained(port, target_seq, timeout):
    """Polls /api/stats until the queue is empty and applied_seq >= target."""
    t0 = time.time()
    s = {}
    while time.time() - t0 < timeout:
        try:
            _, s = get_json(port, "/api/stats", timeout=10)
            if s.get("queue_events") == 0 and (s.get("applied_seq") or 0) >= target_seq:
                return time.time() - t0, s
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return None, s


# -- main ---------------------------------------------------------------------------------------


results = []


def verdict(ok, what, detail):
    results.append((ok, what))
    print(f"  [{'PASS' if ok else 'FAIL'}] {what}: {detail}", flush=True)


def http_bench(args, binary, tmp, catalog, events, nlines_cat):
    global BODIES
    srv = Poold(binary, tmp, "http", ["--load", catalog])
    try:
        h = srv.wait_ready()
        if not h:
            print("poold did not start; log:", open(srv.logpath).read()[-2000:])
            return False
        pid = srv.proc.pid
        BODIES, nev = build_bodies(events, srv.port, args.pad_to)
        avg_line = sum(len(b[0]) for b in BODIES) / max(1, nev)  # includes the request head, ~0.1%
        print(f"poold pid {pid} on :{srv.port}: {h.get('skus')} SKUs, {h.get('pools')} pools; "
              f"{len(BODIES)} bodies of {BATCH_LINES} lines ({avg_line:.0f} B/line) cycled", flush=True)

        time.sleep(1)
        base_rss = proc_status(pid, "VmRSS")  # idle, after the load: the bound's baseline
        hwm_reset = reset_hwm(pid)  # VmHWM = the peak of everything below

        # 1. Sustainable rate: with acknowledgements once applied, and the
        # writer's rate when saturated; R is the larger.
        t = time.time() + 0.5
        recs = run_posters(srv.port, 2, 4, [(t, t + args.measure_s, 0)], True)
        ok = [r for r in recs if r[3] == 200]
        if not ok:
            print("no post succeeded:", sorted(set(r[3] for r in recs)))
            return False
        acc = sum(r[5] or 0 for r in ok)
        el = max(r[1] for r in ok) - t
        r_wait = acc / el
        lat = [r[1] - r[0] for r in ok]
        wait_drained(srv.port, max(r[4] or 0 for r in ok), 60)
        sat = {}

        def measure_sat():
            time.sleep(args.measure_s * 0.4)
            a0, t0 = prom(srv.port)["poold_events_applied_total"], time.time()
            time.sleep(args.measure_s * 0.5)
            sat["rate"] = (prom(srv.port)["poold_events_applied_total"] - a0) / (time.time() - t0)
            _, st = get_json(srv.port, "/api/stats")
            sat["queue"] = st.get("queue_events")
        mt = threading.Thread(target=measure_sat)
        t = time.time() + 0.5
        mt.start()
        recs = run_posters(srv.port, 2, 8, [(t, t + args.measure_s, 0)], False)
        mt.join()
        r_sat = sat.get("rate", 0)
        rate = max(r_wait, r_sat)
        print(f"1. sustainable rate: {r_wait:,.0f} events/s acknowledged with wait=applied (8 connections, "
              f"{args.measure_s:.0f} s, post p50 {pct(lat, 50) * 1000:.0f} ms p99 {pct(lat, 99) * 1000:.0f} ms); "
              f"{r_sat:,.0f} events/s applied when saturated (16 connections, queue {sat.get('queue')}) "
              f"-> R = {rate:,.0f} events/s", flush=True)
        wait_drained(srv.port, max((r[4] or 0 for r in recs), default=0), 120)

        # Baseline.
        time.sleep(1)
        m0 = prom(srv.port)
        _, s0 = get_json(srv.port, "/api/stats")
        base_seq, base_applied = s0["applied_seq"], m0["poold_events_applied_total"]

        # 2 + 3. Overload, then normal.
        nthreads = args.posters // args.procs
        total = nthreads * args.procs
        over_bps = args.factor * rate / BATCH_LINES / total
        norm_bps = 0.5 * rate / BATCH_LINES / total
        t_over = time.time() + 1.0
        t_norm = t_over + args.overload_s
        t_end = t_norm + args.normal_s
        print(f"2. overload: {total} posters offer {args.factor:g} x R = {args.factor * rate:,.0f} events/s for "
              f"{args.overload_s:.0f} s; 3. then R/2 = {0.5 * rate:,.0f} events/s for {args.normal_s:.0f} s",
              flush=True)
        sampler, reader = Sampler(srv.port, pid), Reader(srv.port)
        sampler.start()
        reader.start()
        big_recs, bigs = [], []
        if args.big_bodies:
            with open(events, "rb") as f:
                data = f.read()
            body = data * max(1, int(args.big_mib * MiB // len(data)))
            body += data[:data.rfind(b"\n", 0, int(args.big_mib * MiB) - len(body)) + 1]
            big_req = (b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            del data, body
            bigs = [threading.Thread(target=big_poster, args=(srv.port, big_req, t_over, t_norm, big_recs))
                    for _ in range(args.big_bodies)]
            for b in bigs:
                b.start()
        recs = run_posters(srv.port, args.procs, nthreads, [(t_over, t_norm, over_bps), (t_norm, t_end, norm_bps)],
                           False)
        for b in bigs:
            b.join()
        recs += big_recs
        t_posted = time.time()
        acks = [r for r in recs if r[3] in (200, 503, 429) and r[5]]
        last_seq = max((r[4] for r in acks if r[4]), default=base_seq)
        drain_s, s_end = wait_drained(srv.port, last_seq, 180)
        time.sleep(1.5)
        reader.stop.set()
        sampler.stop.set()
        reader.join()
        sampler.join()
        hwm = proc_status(pid, "VmHWM")
        time.sleep(args.settle_s)  # allocator decay: what stays is the state
        end_rss = proc_status(pid, "VmRSS")
        m1 = prom(srv.port)
        _, s1 = get_json(srv.port, "/api/stats")

        # -- figures
        print("\ntimeline (s from the overload start: RSS, queue events, queue MiB, applied/s):")
        prev = None
        rows = []
        for (t, rss, qe, ap, aseq, qb) in sampler.samples:
            rt = None if prev is None or ap is None or prev[3] is None else (ap - prev[3]) / max(1e-3, t - prev[0])
            rows.append((t - t_over, rss, qe, qb, rt))
            prev = (t, rss, qe, ap)
        for i, (tt, rss, qe, qb, rt) in enumerate(rows):
            if i % 5 == 0 or i == len(rows) - 1:
                print(f"  {tt:6.1f}  {mib(rss):>9}  {qe if qe is not None else '?':>8}  "
                      f"{(qb or 0) / MiB:6.1f}  {'?' if rt is None else round(rt):>9}")
        over_recs = [r for r in recs if r[2] == 0]
        norm_recs = [r for r in recs if r[2] == 1]
        n503 = sum(1 for r in recs if r[3] in (-503, -1503))
        n429 = sum(1 for r in recs if r[3] in (-429, -1429))
        no_ra = sum(1 for r in recs if r[3] in (-1503, -1429))
        unknown = sum(1 for r in recs if r[3] == -1)
        other = sorted(set(r[3] for r in recs if r[3] not in (200, -503, -1503, -429, -1429, -1)))
        acc_over = sum(r[5] or 0 for r in acks if r[2] == 0)
        acc_norm = sum(r[5] or 0 for r in acks if r[2] == 1)
        sent_over = len(set((r[0]) for r in over_recs))
        post_lat = [r[1] - r[0] for r in over_recs if r[3] == 200]
        applied_rates = [x[4] for x in rows if x[4] is not None and 0 <= x[0] <= args.overload_s]
        qmax = max((x[2] or 0 for x in rows), default=0)
        qbmax = max((x[3] or 0 for x in rows), default=0)
        print(f"\noverload phase: offered {args.factor * rate:,.0f} events/s, "
              f"sent {sent_over * BATCH_LINES / args.overload_s:,.0f}/s, "
              f"accepted {acc_over / args.overload_s:,.0f}/s, applied median "
              f"{statistics.median(applied_rates) if applied_rates else float('nan'):,.0f}/s; "
              f"post latency p50 {pct(post_lat, 50) * 1000:.0f} ms p99 {pct(post_lat, 99) * 1000:.0f} ms "
              f"max {max(post_lat, default=0) * 1000:.0f} ms")
        print(f"normal phase: accepted {acc_norm / args.normal_s:,.0f}/s; "
              f"503s {n503} ({no_ra} without Retry-After), 429s {n429}, unknown outcomes {unknown}, other {other}; "
              f"poold_ingest_queue_full_total {m1.get('poold_ingest_queue_full_total', 0):.0f}")
        print(f"queue max {qmax:,} events / {qbmax / MiB:.0f} MiB (bounds {QUEUE_MAX_EVENTS:,} / "
              f"{QUEUE_MAX_BYTES // MiB} MiB)")

        # -- checks
        print("\nchecks:")
        es = event_t_size()
        arr = (1 << (BATCH_LINES - 1).bit_length()) * es  # a body's event array (capacity doubles to 1024)
        queue_tight = QUEUE_MAX_EVENTS / BATCH_LINES * (BATCH_LINES * avg_line + arr)
        queue_doc = QUEUE_MAX_BYTES + QUEUE_MAX_EVENTS * es
        # In flight: a post waiting for room holds its connection buffer, the
        # handler's copy, the WAL copy and its parsed events.
        inflight = (total + 2) * (3 * BATCH_LINES * avg_line + arr)
        state_rss = max(base_rss, end_rss)
        bound = state_rss + queue_doc + inflight
        maxrss = hwm if hwm_reset and hwm else max((x[1] or 0 for x in rows), default=0)
        print(f"  memory: RSS after the load {mib(base_rss)}, at the end with the queue empty "
              f"({args.settle_s:.0f} s later) {mib(end_rss)}: state {mib(state_rss)}; documented queue bound 256 MiB "
              f"of text + 1M x {es} B "
              f"event_t = {mib(queue_doc)}; posts in flight ({total + 2} x {BATCH_LINES} lines) {mib(inflight)} "
              f"-> bound {mib(bound)}. (For these {avg_line:.0f}-byte lines the queue's own share is "
              f"{mib(queue_tight)}; measured: {(maxrss - state_rss) / max(1, qmax):.0f} B of RSS per queued "
              f"event at the peak.)")
        if args.big_bodies:
            print(f"  + {args.big_bodies} connections posting {args.big_mib} MiB bodies during the overload "
                  f"(not in the bound: each waiting one holds ~{3 * args.big_mib + args.big_mib * MiB / avg_line * es / MiB * 1.1:.0f} MiB)")
        verdict(maxrss <= bound, "max RSS under the bound",
                f"max {mib(maxrss)} ({'VmHWM' if hwm_reset else 'sampled VmRSS'}) vs bound {mib(bound)}; "
                f"above the state {mib(maxrss - state_rss)}")
        # Drain: the queue gauge back to ~0 once the overload ends.
        after = [x for x in rows if x[0] >= args.overload_s and x[2] is not None]
        low = next((x for x in after if x[2] <= 0.01 * QUEUE_MAX_EVENTS), None)
        verdict(low is not None and drain_s is not None, "the backlog drains",
                f"queue <= 1% of its bound {low[0] - args.overload_s:.1f} s after the overload ended"
                if low else "queue never fell to ~0", )
        over_reads = [r for r in reader.recs if t_over <= r[0] < t_norm]
        bad = [r for r in over_reads if r[2] != 200]
        rl = [r[1] for r in over_reads if r[2] == 200]
        su = [r[3] for r in over_reads if r[2] == 200 and r[3] >= 0]
        verdict(over_reads and not bad and pct(rl, 99) < 0.25, "reads kept answering during the overload",
                f"{len(over_reads)} GET /api/pools, {len(bad)} failed; client p50 {pct(rl, 50) * 1000:.1f} ms "
                f"p99 {pct(rl, 99) * 1000:.1f} ms max {max(rl, default=0) * 1000:.0f} ms; server p50 "
                f"{pct(su, 50):.0f} us p99 {pct(su, 99):.0f} us")
        # Nothing lost.
        ranges = sorted((r[4] - r[5] + 1, r[4]) for r in acks if r[4])
        gaps = overlaps = 0
        cur = base_seq
        for a, b in ranges:
            if a > cur + 1:
                gaps += 1
            elif a <= cur:
                overlaps += 1
            cur = max(cur, b)
        acc_total = sum(r[5] or 0 for r in acks)
        applied_delta = m1["poold_events_applied_total"] - base_applied
        verdict(unknown == 0 and gaps == 0 and overlaps == 0 and cur == s1["applied_seq"] == last_seq
                and applied_delta == acc_total, "nothing accepted is lost",
                f"{len(acks)} acknowledged bodies, {acc_total:,} lines accepted; poold_events_applied_total grew "
                f"{applied_delta:,.0f}; seq ranges ({base_seq}, {cur}]: {gaps} gaps, {overlaps} overlaps; "
                f"applied_seq {s1['applied_seq']} vs last acknowledged {last_seq}; {unknown} unknown outcomes")
        print(f"  503s: {n503} (Retry-After on all: {no_ra == 0}); 429s: {n429}; drain wait after the posters "
              f"stopped: {drain_s if drain_s is None else round(drain_s, 1)} s")
        return True
    finally:
        srv.stop()


def kafka_bench(args, binary, tmp, catalog, events):
    """Kafka: a backlog produced first (far faster than poold applies), then
    a poold consumes it. Keys are spread uniformly over the catalog and the
    topic has --kafka-partitions partitions, because librdkafka's mock
    cluster keeps only 5 MiB per partition (older messages are deleted, and
    a consumer behind them jumps ahead)."""
    import random
    print(f"\n-- Kafka: {args.kafka_events:,} messages produced first, then a poold consumes them", flush=True)
    skus = []
    with open(catalog, "rb") as f:
        for ln in f:
            m = re.search(rb'"sku":"([^"]+)"', ln)
            if m:
                skus.append(m.group(1))
    rnd = random.Random(7)
    path = os.path.join(tmp, "kafka.ndjson")
    n = 0
    with open(events, "rb") as f:
        lines = f.read().splitlines()
    with open(path, "wb") as out:
        while n < args.kafka_events:
            for ln in lines:
                out.write(re.sub(rb'"sku":"[^"]+"', b'"sku":"' + rnd.choice(skus) + b'"', ln, count=1) + b"\n")
                n += 1
                if n == args.kafka_events:
                    break
    size = os.path.getsize(path)
    print(f"  {n:,} messages, {size / MiB:.0f} MiB, ~{size / args.kafka_partitions / MiB:.1f} MiB per partition "
          f"(the mock keeps 5 MiB)", flush=True)
    mock = subprocess.Popen([binary, "kafka-mock", "--topics", f"events:{args.kafka_partitions}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = mock.stdout.readline()
        m = re.match(r"bootstrap: (\S+)", line or "")
        if not m:
            print("kafka-mock did not start:", line)
            return False
        boot = m.group(1)
        t0 = time.time()
        r = subprocess.run([binary, "kafka-produce", "--brokers", boot, "--topic", "events", path],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            print("kafka-produce failed:", r.stderr[-500:])
            return False
        print(f"  produced in {time.time() - t0:.1f} s ({n / (time.time() - t0):,.0f}/s): "
              f"{(r.stdout + r.stderr).strip()[-120:]}", flush=True)
        # A writer that falls behind: the example rules, each also copied
        # --kafka-rule-copies times under another name.
        rules = os.path.join(tmp, "rules-kafka")
        os.makedirs(rules, exist_ok=True)
        for fn in sorted(os.listdir(os.path.join(ROOT, "rules"))):
            if not fn.endswith(".lua"):
                continue
            name = fn[:-4]
            with open(os.path.join(ROOT, "rules", fn)) as f:
                src = f.read()
            shutil.copy(os.path.join(ROOT, "rules", fn), rules)
            for c in range(args.kafka_rule_copies):
                with open(os.path.join(rules, f"{name}_c{c}.lua"), "w") as f:
                    f.write(src.replace(f'pool "{name}"', f'pool "{name}_c{c}"', 1))
        srv = Poold(binary, tmp, "kafka", ["--load", catalog, "--kafka", boot, "--topics", "events", "--group", "bp"],
                    rules=rules)
        try:
            if not srv.wait_ready():
                print("poold (kafka) did not start:", open(srv.logpath).read()[-2000:])
                return False
            pid = srv.proc.pid
            base_rss = proc_status(pid, "VmRSS")
            reset_hwm(pid)
            sampler = Sampler(srv.port, pid)
            sampler.start()
            t1 = time.time()
            done = None
            m = {}
            while time.time() - t1 < 600:
                m = prom(srv.port)
                if m.get("poold_kafka_messages_total", 0) >= n and m.get("poold_ingest_queue_events", 1) == 0:
                    done = time.time() - t1
                    break
                time.sleep(0.5)
            sampler.stop.set()
            sampler.join()
            time.sleep(0.5)
            m = prom(srv.port)
            _, st = get_json(srv.port, "/api/stats")
            hwm = proc_status(pid, "VmHWM")
            time.sleep(args.settle_s)
            end_rss = proc_status(pid, "VmRSS")
            state_rss = max(base_rss, end_rss)
            paused = m.get("poold_kafka_paused_total", 0)
            qmax = max((x[2] or 0 for x in sampler.samples), default=0)
            got = m.get("poold_kafka_messages_total", 0)
            hw = sum(p.get("high_watermark", 0) for p in (st.get("kafka") or {}).get("partitions", []))
            es = event_t_size()
            bound = state_rss + QUEUE_MAX_BYTES + QUEUE_MAX_EVENTS * es + 64 * MiB + 32 * MiB
            print(f"  consumed {got:,.0f} messages in {'?' if done is None else round(done, 1)} s "
                  f"({got / (done or (time.time() - t1)):,.0f}/s); queue max {qmax:,} events; "
                  f"sum of high watermarks {hw:,}")
            print(f"  RSS timeline (s, MiB, queue): " + ", ".join(
                f"{x[0] - t1:.0f}:{(x[1] or 0) / MiB:.0f}:{x[2]}" for x in sampler.samples[::5]))
            verdict(paused > 0, "a full queue paused the Kafka partitions", f"poold_kafka_paused_total {paused:.0f}")
            verdict(hwm <= bound, "RSS bounded while consuming the backlog",
                    f"max {mib(hwm)} (RSS after the load {mib(base_rss)}, at the end with the queue empty "
                    f"{mib(end_rss)}) vs bound {mib(bound)} (state + 256 MiB + 1M x {es} B + librdkafka's 64 MiB "
                    f"prefetch + 32 MiB)")
            verdict(got == n == hw, "every message consumed and applied",
                    f"{got:,.0f} of {n:,} (poold_events_rejected_total "
                    f"{sum(v for k, v in m.items() if k.startswith('poold_events_rejected_total')):.0f})")
            return True
        finally:
            srv.stop()
    finally:
        try:
            mock.stdin.close()
            mock.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            mock.terminate()
            mock.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.environ.get("POOLD_BIN", os.path.join(ROOT, "build", "poold")))
    ap.add_argument("--skus", type=int, default=100000)
    ap.add_argument("--events", type=int, default=500000, help="events generated (cycled by the posters)")
    ap.add_argument("--measure-s", type=float, default=10)
    ap.add_argument("--overload-s", type=float, default=60)
    ap.add_argument("--normal-s", type=float, default=20)
    ap.add_argument("--factor", type=float, default=3)
    ap.add_argument("--posters", type=int, default=32)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--big-bodies", type=int, default=0,
                    help="N extra connections posting --big-mib bodies during the overload (memory hole demo)")
    ap.add_argument("--big-mib", type=float, default=60)
    ap.add_argument("--pad-to", type=int, default=0,
                    help="pad every posted line to this many bytes (268: both queue bounds bind at once)")
    ap.add_argument("--kafka", action="store_true", help="also run the Kafka demonstration")
    ap.add_argument("--kafka-events", type=int, default=3000000)
    ap.add_argument("--kafka-partitions", type=int, default=64)
    ap.add_argument("--kafka-only", action="store_true", help="skip the HTTP part")
    ap.add_argument("--kafka-rule-copies", type=int, default=12,
                    help="copies of each example rule for the Kafka server (a slower writer)")
    ap.add_argument("--settle-s", type=float, default=12,
                    help="wait after the drain before the end RSS (jemalloc returns freed pages in ~10 s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="poold-bp-")
    try:
        catalog = os.path.join(tmp, "catalog.ndjson")
        events = os.path.join(tmp, "events.ndjson")
        subprocess.run([binary, "gen", "catalog", "--skus", str(args.skus), "--out", catalog], check=True)
        subprocess.run([binary, "gen", "events", "--skus", str(args.skus), "--events", str(args.events),
                        "--out", events], check=True)
        if not args.kafka_only:
            http_bench(args, binary, tmp, catalog, events, args.skus)
        if args.kafka or args.kafka_only:
            kafka_bench(args, binary, tmp, catalog, events)
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    bad = [w for ok, w in results if not ok]
    print(f"\nbackpressure: {len(results) - len(bad)} checks passed, {len(bad)} failed" +
          (": " + "; ".join(bad) if bad else ""))
    sys.exit(1 if bad or not results else 0)


if __name__ == "__main__":
    main()
