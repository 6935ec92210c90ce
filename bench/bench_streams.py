#!/usr/bin/env python3
"""bench/bench_streams.py - the streaming benchmark of issue 5 (Kafka,
WAL, snapshots, change feed). Python 3 stdlib + bench/post_events.c.

    python3 bench/bench_streams.py [POOLD_BIN] [--snapshot-skus 1000000] [--skip-1m]
    (default binary: build/poold; data cached in build-bench/data/ like bench/run.sh)

Figures, each printed next to its target where the issue sets one:
  1. Kafka ingest: 200k events are produced to the mock broker first (topic
     events, 4 partitions; `poold kafka-mock` runs on the same 2 cores as
     poold), then `poold serve --kafka --load catalog(100k)` is started and
     timed from the partitions' assignment to lag 0 with everything applied.
     (The catalog is not sent through the mock: it keeps ~5 MB a partition.)
  2. HTTP updates with --fsync always | batch | everysec (catalog 100k loaded,
     then 200k events by bench/post_events: 1,000-line POSTs ?wait=applied
     over 2 connections; and 20k events as 10-line POSTs, where the fsync per
     acknowledgement shows). A "no WAL" run is not possible: poold has no
     flag to turn the WAL off, so there is no baseline without it.
  3. Snapshots at 1M SKUs: POST /api/admin/snapshot (took_ms, fork stall),
     the file size; restart time = process start to /healthz ok, from the
     snapshot after a clean stop (median of 3), and after kill -9 with 200k
     events to replay from the WAL. Target: start-up from a snapshot <= 3 s.
  4. Change-feed delivery: a follower long-polls /changes?wait=30 of a probe
     pool (tests/e2e/fixtures/streams/feed_latency.lua); each POST
     ?wait=applied adds or removes the probe SKU; latency = POST sent ->
     the follower has the change. p50/p99 over 300 changes, idle server.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import common as C  # noqa: E402

DATA = os.path.join(ROOT, "build-bench", "data")
KAFKA_PROPS = ["--kafka-prop", "session.timeout.ms=6000", "--kafka-prop", "heartbeat.interval.ms=500"]
ROWS = []


def row(name, value, target=""):
    ROWS.append((name, value, target))
    print(f"   {name}: {value}" + (f"   (target {target})" if target else ""))
    sys.stdout.flush()


def section(name):
    print(f"== {name}")
    sys.stdout.flush()


def cached(binary, kind, skus, events=None):
    """build-bench/data/catalog-N.ndjson or events-N-M.ndjson (bench/run.sh's
    names), generated once."""
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"catalog-{skus}.ndjson" if kind == "catalog" else f"events-{skus}-{events}.ndjson")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        args = ["catalog", "--skus", str(skus)] if kind == "catalog" else \
            ["events", "--skus", str(skus), "--events", str(events)]
        print(f"   generating {os.path.basename(path)}")
        subprocess.run([binary, "gen"] + args + ["--out", path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def head_lines(src, n, dst):
    with open(src) as f, open(dst, "w") as out:
        for i, ln in enumerate(f):
            if i >= n:
                break
            out.write(ln)
    return dst


def post_events(client, port, path, batch, conns=2, wait="applied"):
    r = subprocess.run([client, "events", f"127.0.0.1:{port}", path, "--batch", str(batch), "--conns", str(conns),
                        "--path", f"/api/events?wait={wait}"], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"post_events failed: {r.stdout} {r.stderr}")
    return dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)


def metric(port, name):
    cli = C.HttpClient(port)
    status, _, text = cli.request("GET", "/metrics")
    cli.close()
    return C.prom_values(text.decode(), name).get("", None)


def rules_dir(tmp, with_probe=False):
    d = os.path.join(tmp, "rules-probe" if with_probe else "rules")
    if not os.path.isdir(d):
        os.mkdir(d)
        for f in os.listdir(os.path.join(ROOT, "rules")):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(ROOT, "rules", f), d)
        if with_probe:
            shutil.copy(os.path.join(ROOT, "tests", "e2e", "fixtures", "streams", "feed_latency.lua"), d)
    return d


# -- 1. Kafka ingest -------------------------------------------------------------------

def bench_kafka(binary, tmp, cat, evs):
    section("Kafka ingest (mock broker on the same 2 cores)")
    mock = C.KafkaMock(binary, "events:4", os.path.join(tmp, "mock.log"))
    srv = None
    try:
        # The catalog comes from a file: librdkafka's mock broker keeps only
        # ~5 MB per partition (older messages are deleted), which 100k catalog
        # records (32 MB) exceed; 200k events (15 MB over 4 partitions) fit.
        t0 = time.time()
        r = C.kafka_produce_file(binary, mock.bootstrap, "events", evs, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"kafka-produce: {r.stderr[-300:]}")
        total = sum(1 for ln in open(evs) if ln.strip())
        row("kafka-produce into the mock broker (setup)", f"{total / (time.time() - t0):,.0f} msg/s ({total:,} messages)")
        rates, joins, pauses, skus = [], [], [], None
        for run in range(3):  # a new group and data directory each time: all from offset 0
            data = os.path.join(tmp, f"data-kafka-{run}")
            srv = C.PooldProc(binary, rules_dir(tmp), data, tmp,
                              ["--kafka", mock.bootstrap, "--topics", "events", "--group", f"bench{run}",
                               "--load", cat] + KAFKA_PROPS)
            srv.start()
            if srv.wait_ready(120) is None:
                raise RuntimeError("poold did not start")
            t_ready = time.time()
            cli = C.HttpClient(srv.port)
            t_assign = None
            m_assign = 0
            while time.time() - t_ready < 600:
                status, st = cli.get("/api/stats")
                k = st.get("kafka") or {}
                parts = k.get("partitions") or []
                if t_assign is None and parts:
                    t_assign, m_assign = time.time(), k.get("messages") or 0
                if (len(parts) == 4 and sum(p["high_watermark"] for p in parts) == total
                        and all(p["position"] == p["high_watermark"] for p in parts)):
                    break
                time.sleep(0.01)
            status, r = cli.json("POST", "/api/events?wait=applied", '{"op":"delete","sku":"ZZ-SYNC"}\n')
            t_done = time.time()
            if t_assign is None or status != 200:
                raise RuntimeError(f"not consumed: {st}")
            status, st = cli.get("/api/stats")
            if st.get("applied") != total + 1 + 100000 - (st.get("rejected") or 0):
                raise RuntimeError(f"applied {st.get('applied')} != catalog + {total} + 1 - rejected")
            rates.append((total - m_assign) / (t_done - t_assign))
            joins.append(t_assign - t_ready)
            pauses.append((st.get("kafka") or {}).get("paused"))
            skus = st.get("skus")
            srv.term()
            shutil.rmtree(data, ignore_errors=True)
        row("Kafka ingest into poold, partitions assigned -> lag 0 and all applied, mock broker on the same 2 cores, "
            "median of 3",
            f"{statistics.median(rates):,.0f} events/s (runs {', '.join(f'{x:,.0f}' for x in rates)}; "
            f"{total:,} messages, {skus:,} SKUs after)")
        row("  consumer group join after start (not in the rate)", f"{statistics.median(joins):.2f} s")
        row("  partitions paused by backpressure", f"{pauses}")
    finally:
        if srv and srv.alive():
            srv.term()
        mock.stop()


# -- 2. HTTP with each fsync mode --------------------------------------------------------

def bench_fsync(binary, tmp, client, cat, evs):
    section("HTTP updates by --fsync mode (catalog 100k loaded; WAL always on: no 'no WAL' baseline exists)")
    small = head_lines(evs, 20000, os.path.join(tmp, "events-20k.ndjson"))
    for mode in ("always", "batch", "everysec"):
        data = os.path.join(tmp, f"data-{mode}")
        srv = C.PooldProc(binary, rules_dir(tmp), data, tmp, ["--fsync", mode, "--snapshot-every", "0",
                                                              "--load", cat])
        srv.start()
        try:
            if srv.wait_ready(300) is None:
                raise RuntimeError(f"--fsync {mode}: poold did not start")
            f0, s0 = metric(srv.port, "poold_wal_fsyncs_total"), metric(srv.port, "poold_wal_fsync_seconds_total")
            big = post_events(client, srv.port, evs, 1000)
            f1, s1 = metric(srv.port, "poold_wal_fsyncs_total"), metric(srv.port, "poold_wal_fsync_seconds_total")
            sm = post_events(client, srv.port, small, 10)
            f2, s2 = metric(srv.port, "poold_wal_fsyncs_total"), metric(srv.port, "poold_wal_fsync_seconds_total")
            row(f"--fsync {mode}: 1,000-line POSTs ?wait=applied, 2 conns",
                f"{float(big['rate']):,.0f} events/s (p50 {big['p50_ms']} ms, p99 {big['p99_ms']} ms per POST; "
                f"{f1 - f0:.0f} fsyncs, {1000 * (s1 - s0) / max(1, f1 - f0):.2f} ms each)")
            row(f"--fsync {mode}: 10-line POSTs ?wait=applied, 2 conns",
                f"{float(sm['rate']):,.0f} events/s, {float(sm['rate']) / 10:,.0f} POSTs/s "
                f"(p50 {sm['p50_ms']} ms, p99 {sm['p99_ms']} ms; {f2 - f1:.0f} fsyncs, "
                f"{1000 * (s2 - s1) / max(1, f2 - f1):.2f} ms each)")
        finally:
            srv.term()
            shutil.rmtree(data, ignore_errors=True)


# -- 3. snapshots at 1M --------------------------------------------------------------------

def bench_snapshot(binary, tmp, client, cat1m, ev1m, nskus):
    section(f"snapshots at {nskus:,} SKUs")
    data = os.path.join(tmp, "data-1m")
    rules = rules_dir(tmp)
    srv = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
    srv.start(["--load", cat1m])  # the restarts below start from the snapshot alone
    try:
        if srv.wait_ready(600) is None:
            raise RuntimeError("the 1M load did not finish")
        row(f"bulk load of {nskus:,} SKUs (setup)", f"{time.time() - srv.started_at:.1f} s")
        cli = C.HttpClient(srv.port, timeout=300)
        took = []
        for _ in range(2):
            status, r = cli.json("POST", "/api/admin/snapshot", b"")
            if status != 200:
                raise RuntimeError(f"snapshot: {status} {r}")
            took.append(r["took_ms"])
            fork = metric(srv.port, "poold_snapshot_fork_seconds")
            # the second one has nothing new: post a line so that it is written
            cli.json("POST", "/api/events?wait=applied", '{"op":"view","sku":"SG-0000001"}\n')
        size = os.path.getsize(os.path.join(data, "snapshot.poold"))
        row("snapshot write, POST /api/admin/snapshot took_ms (fork + child write + fsync + rename)",
            f"{statistics.median(took):,.0f} ms (runs: {', '.join(f'{t:,.0f}' for t in took)})")
        row("  writer stall to fork (poold_snapshot_fork_seconds)", f"{fork * 1000:.1f} ms")
        row("snapshot file size", f"{size / 2**20:,.0f} MiB ({size / nskus:.0f} bytes/SKU)")
        rss = None
        try:
            with open(f"/proc/{srv.proc.pid}/status") as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024
        except (OSError, AttributeError):
            pass
        if rss:
            row("  RSS of poold at this point", f"{rss} MiB")
        t = time.time()
        rc = srv.term(300)
        row("clean stop (SIGTERM, shutdown snapshot)", f"{time.time() - t:.2f} s (exit {rc})")

        times, loaded = [], []
        for _ in range(3):
            srv.start()
            if srv.wait_ready(300) is None:
                raise RuntimeError("restart failed")
            times.append(time.time() - srv.started_at)
            m = re.search(r"snapshot \S+: .* loaded in (\d+) ms", srv.log_text())
            loaded.append(int(m.group(1)) if m else -1)
            srv.term(300)
        med = statistics.median(times)
        row(f"restart from the snapshot, process start -> /healthz ok, median of 3",
            f"{med:.2f} s (runs {', '.join(f'{x:.2f}' for x in times)}; snapshot read {statistics.median(loaded)} ms) "
            f"{'PASS' if med <= 3 else 'MISS'}", "<= 3 s at 1M SKUs")

        srv.start()
        if srv.wait_ready(300) is None:
            raise RuntimeError("restart failed")
        n = int(post_events(client, srv.port, ev1m, 1000)["lines"])
        srv.kill9()
        srv.start()
        if srv.wait_ready(600) is None:
            raise RuntimeError("restart after kill -9 failed")
        t = time.time() - srv.started_at
        m = re.search(r"wal: replayed (\d+) records \((\d+) events\) after the snapshot in (\d+) ms", srv.log_text())
        row(f"restart after kill -9: snapshot + WAL replay of {n:,} events, process start -> /healthz ok",
            f"{t:.2f} s" + (f" (replay {m.group(3)} ms for {int(m.group(2)):,} events)" if m else ""))
    finally:
        if srv.alive():
            srv.term(300)
        shutil.rmtree(data, ignore_errors=True)


# -- 4. change-feed latency -------------------------------------------------------------------

def bench_feed(binary, tmp, cat):
    section("change-feed delivery latency (POST ?wait=applied -> long-polling follower)")
    data = os.path.join(tmp, "data-feed")
    srv = C.PooldProc(binary, rules_dir(tmp, True), data, tmp, ["--snapshot-every", "0", "--load", cat])
    srv.start()
    try:
        if srv.wait_ready(300) is None:
            raise RuntimeError("poold did not start")
        cli = C.HttpClient(srv.port)
        status, h = cli.get("/healthz")
        ts = h.get("clock") or 1794268800000
        status, r = cli.get("/api/pools/feed_latency/members?limit=1")
        seq = r["seq"]
        lat = []
        got = {}
        cv = threading.Condition()

        def follower():
            c2 = C.HttpClient(srv.port, timeout=60)
            since = seq
            while True:
                status, r = c2.json("GET", f"/api/pools/feed_latency/changes?since={since}&wait=30")
                now = time.perf_counter()
                if status != 200:
                    break
                for ch in r.get("changes") or []:
                    with cv:
                        got[ch["seq"]] = now
                        cv.notify_all()
                    since = ch["seq"]
                if got.get("stop"):
                    break
        th = threading.Thread(target=follower, daemon=True)
        th.start()
        time.sleep(0.2)
        for i in range(300):
            op = "add" if i % 2 == 0 else "remove"
            body = json.dumps({"op": "tag", "sku": "SG-0000001", op: ["latency_probe"], "ts": ts}) + "\n"
            t0 = time.perf_counter()
            status, r = cli.json("POST", "/api/events?wait=applied", body)
            want = seq + i + 1
            with cv:
                cv.wait_for(lambda: want in got, timeout=10)
            if want not in got:
                raise RuntimeError(f"change {want} never reached the follower")
            lat.append((got[want] - t0) * 1000)
            time.sleep(0.005)
        got["stop"] = True
        lat.sort()
        p50 = lat[len(lat) // 2]
        p99 = lat[int(len(lat) * 0.99) - 1]
        row("change-feed delivery, POST sent -> follower has the change, p50 / p99 (idle server, 100k SKUs)",
            f"{p50:.2f} / {p99:.2f} ms ({len(lat)} changes)")
        # the follower's long-poll ends when the pool's next change is published
        cli.json("POST", "/api/events?wait=applied",
                 json.dumps({"op": "tag", "sku": "SG-0000001", "add": ["latency_probe"], "ts": ts}) + "\n")
        th.join(5)
    finally:
        srv.term()
        shutil.rmtree(data, ignore_errors=True)


def main():
    args = sys.argv[1:]
    binary = next((a for a in args if not a.startswith("--") and not a.isdigit()), None) \
        or os.environ.get("POOLD_BIN") or os.path.join(ROOT, "build", "poold")
    binary = os.path.abspath(binary)
    nskus = int(args[args.index("--snapshot-skus") + 1]) if "--snapshot-skus" in args else 1000000
    skip_1m = "--skip-1m" in args
    if not os.access(binary, os.X_OK):
        print(f"bench_streams: no executable at {binary}")
        sys.exit(2)
    tmp = tempfile.mkdtemp(prefix="poold-bench-streams-")
    try:
        client = os.path.join(tmp, "post_events")
        subprocess.run(["cc", "-std=c11", "-O2", "-pthread", os.path.join(HERE, "post_events.c"), "-o", client],
                       check=True)
        print(f"binary {binary}; {os.cpu_count()} cores; data in {DATA}")
        cat = cached(binary, "catalog", 100000)
        evs = cached(binary, "events", 100000, 200000)
        bench_kafka(binary, tmp, cat, evs)
        bench_fsync(binary, tmp, client, cat, evs)
        if not skip_1m:
            cat1m = cached(binary, "catalog", nskus)
            ev1m = head_lines(cached(binary, "events", 1000000, 2000000) if nskus == 1000000 else
                              cached(binary, "events", nskus, 200000), 200000,
                              os.path.join(tmp, "events-1m-200k.ndjson"))
            bench_snapshot(binary, tmp, client, cat1m, ev1m, nskus)
        bench_feed(binary, tmp, cat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| figure | measured | target |\n|---|---|---|")
    for name, value, target in ROWS:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
