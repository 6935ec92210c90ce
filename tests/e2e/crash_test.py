#!/usr/bin/env python3
"""Crash test of issue 5: `kill -9` poold again and again while it consumes
Kafka and while HTTP clients post with ?wait=durable; at the end nothing
acknowledged or consumed is lost and nothing is applied twice.
Python 3 stdlib only.

    python3 tests/e2e/crash_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)
    env CRASH_SCALE=0.3   fewer SKUs/events (ASan runs); CRASH_CYCLES=N kills (default 6)
    env CRASH_SEED=S      the random kill moments (default: printed, from the time)

Setup: `poold kafka-mock` (topic events, 4 partitions); a 5k-SKU catalog
produced first; then a producer (`poold kafka-produce ... -`, fed at a steady
rate through its stdin) keeps producing 40k generated events (an invalid one
every 101) during the whole test; two HTTP clients keep posting small
bodies with ?wait=durable on their own SKUs (disjoint from Kafka's, so the
order between the two inputs does not matter), each body with a marker SKU
of its own so that a post whose answer was lost in a crash can be told
applied or not (a body is one WAL record: all or nothing).

Cycles (>= 5): start `poold serve --kafka ... --clock event` with
--snapshot-every 0, 1 or 2 (so that restarts replay the WAL alone, or a
snapshot plus the WAL), wait until the partitions are assigned, let it
consume and serve for a random moment, then SIGKILL. After each restart:
the log says what was replayed; a change-feed position taken before the
crash answers 410 {"resync": true} when WAL records were replayed (README:
changes after the snapshot were never written) and the pool seqs jumped by
2^32 rather than going back.

End: the producer finishes, poold consumes everything (lag 0, applied);
every acknowledged post is present (its marker), every lost-answer post is
all there or all absent; every pool equals reference.py over exactly the
produced Kafka events plus the applied HTTP posts; sales_24h and sales_7d
of every SKU with an order (an order applied twice would show), all
counters of a sample, the SKU count and the event clock equal it too.

Two more crash cases, each on a fresh data directory:
  - two `poold serve` on one data directory, both killed: every line either
    one acknowledged must be there after a restart (a lock would refuse the
    second one);
  - kill -9 while the forked snapshot writer is still writing (SIGSTOP holds
    it, as a slow disk would): the orphan outlives its parent; the next poold
    writes its own snapshot, then the orphan finishes; after another kill -9
    poold must still start, with every acknowledged line.

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common as C  # noqa: E402
import reference as R  # noqa: E402

SCALE = float(os.environ.get("CRASH_SCALE", "1"))
CYCLES = max(5, int(os.environ.get("CRASH_CYCLES", "6")))
SKUS = max(1000, int(5000 * SCALE))
EVENTS = max(8000, int(40000 * SCALE))
PRODUCE_SECONDS = 6.5 * CYCLES  # the producer spreads the events over about this long
SEED = 42
INVALID_EVERY = 101
PARTITIONS = 4
T0 = 1794268800000
KAFKA_PROPS = ["--kafka-prop", "session.timeout.ms=6000", "--kafka-prop", "heartbeat.interval.ms=500"]
HTTP_CLIENTS = 2
HTTP_SKUS = 150      # per client
MAX_POSTS = 4000     # per client (ts stays inside the Kafka stream's 30 h)

passed = failed = 0
T_START = time.time()


def check(cond, what, detail=None):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)
        if detail is not None:
            print("     ", str(detail)[:1500])
    return cond


def say(msg):
    print(f"[{time.time() - T_START:6.1f} s] {msg}")
    sys.stdout.flush()


def read_lines(path):
    with open(path) as f:
        return [ln for ln in f.read().split("\n") if ln.strip()]


# -- inputs ----------------------------------------------------------------------------

class Producer:
    """`poold kafka-produce --brokers B --topic events -` fed from a thread
    at a steady rate; every line written is eventually delivered (exit 0)."""

    def __init__(self, binary, brokers, lines, seconds, log_path):
        self.lines = lines
        self.seconds = seconds
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "kafka-produce", "--brokers", brokers, "--topic", "events", "-"],
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=self.log, text=True)
        self.written = 0
        self.stop_now = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        t0 = time.time()
        n = len(self.lines)
        try:
            while self.written < n and not self.stop_now.is_set():
                due = min(n, int(n * (time.time() - t0) / self.seconds) + 1)
                if due > self.written:
                    self.proc.stdin.write("\n".join(self.lines[self.written:due]) + "\n")
                    self.proc.stdin.flush()
                    self.written = due
                time.sleep(0.02)
        except (BrokenPipeError, OSError):
            pass

    def finish(self, timeout=120):
        """Writes what is left, closes stdin, waits for the exit code."""
        self.stop_now.set()
        self.thread.join()
        try:
            if self.written < len(self.lines):
                self.proc.stdin.write("\n".join(self.lines[self.written:]) + "\n")
                self.written = len(self.lines)
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


class Poster(threading.Thread):
    """An HTTP client posting body i = [marker upsert of ZM-c-i] + a few ops
    on its own SKUs, with ?wait=durable, one at a time. A post refused at
    connect (server down) is retried as is; any other failure makes its
    fate unknown (the marker tells at the end)."""

    MARKETS = ("SG", "MY")

    def __init__(self, cid, state):
        super().__init__(daemon=True)
        self.cid = cid
        self.state = state  # dict: port, stop (Event)
        self.rnd = random.Random(1000 + cid)
        self.bodies = []
        self.acked = set()
        self.unknown = set()
        self.refused = 0
        self.posted = 0
        self.skus = [f"{self.MARKETS[j % 2]}-{9000000 + cid * 10000 + j:07d}" for j in range(HTTP_SKUS)]

    def marker(self, i):
        return f"ZM-{self.cid}-{i:05d}"

    def make_body(self, i):
        ts = T0 + i * 20000
        rnd = self.rnd
        lines = [{"op": "upsert", "sku": self.marker(i), "market": "ZZ", "ts": ts}]
        if i * 10 < HTTP_SKUS:  # the first posts create the SKUs, 10 each
            for j in range(i * 10, min(HTTP_SKUS, i * 10 + 10)):
                lp = rnd.choice([20, 40, 80, 120])
                lines.append({"sku": self.skus[j], "market": self.MARKETS[j % 2], "category": "toys/puzzles",
                              "brand": f"b{rnd.randint(1, 20):04d}", "seller": "s00001",
                              "price": round(lp * rnd.uniform(0.4, 1.0), 2), "list_price": lp,
                              "stock": rnd.randint(0, 80), "rating": rnd.choice([3.5, 4.2, 4.8]),
                              "reviews": rnd.randint(0, 100), "lazmall": rnd.random() < 0.5,
                              "free_shipping": rnd.random() < 0.5,
                              "tags": rnd.sample(["giftable", "flash_eligible", "eco", "bundle"], 2), "ts": ts + 1})
        else:
            for k in range(rnd.randint(3, 8)):
                sid = rnd.choice(self.skus)
                kind = rnd.random()
                t = ts + 1 + k
                if kind < 0.45:
                    lines.append({"op": "order", "sku": sid, "qty": rnd.randint(1, 3),
                                  "amount": round(rnd.uniform(5, 60), 2), "ts": t})
                elif kind < 0.65:
                    lines.append({"op": "price", "sku": sid, "price": round(rnd.uniform(5, 130), 2), "ts": t})
                elif kind < 0.8:
                    lines.append({"op": "stock", "sku": sid, "stock": rnd.choice([0, 5, 25, 60]), "ts": t})
                elif kind < 0.92:
                    lines.append({"op": "tag", "sku": sid, "add": [rnd.choice(["giftable", "blocked", "clearance"])],
                                  "remove": [rnd.choice(["giftable", "blocked", "flash_eligible"])], "ts": t})
                else:
                    lines.append({"op": "view", "sku": sid, "ts": t})
        return "\n".join(json.dumps(x, separators=(",", ":")) for x in lines) + "\n", len(lines)

    def run(self):
        cli, port = None, None
        i = 0
        while not self.state["stop"].is_set() and i < MAX_POSTS:
            if i == len(self.bodies):
                self.bodies.append(self.make_body(i))
            body, n = self.bodies[i]
            if self.state["port"] != port or cli is None:
                port = self.state["port"]
                if port is None:
                    time.sleep(0.05)
                    continue
                cli = C.HttpClient(port, timeout=15)
            try:
                status, r = cli.json("POST", "/api/events?wait=durable", body, retry=False)
            except ConnectionRefusedError:
                cli = None
                self.refused += 1
                time.sleep(0.05)
                continue  # never sent: the same post again
            except Exception:  # sent, perhaps: its fate is unknown
                self.unknown.add(i)
                cli = None
                i += 1
                self.posted = i
                time.sleep(0.05)
                continue
            if status == 200 and r.get("accepted") == n and r.get("durable") is True:
                self.acked.add(i)
            else:
                self.unknown.add(i)
                if status >= 500:
                    time.sleep(0.05)
            i += 1
            self.posted = i
            time.sleep(0.02)


# -- the server ------------------------------------------------------------------------------

def kafka_stats(cli):
    status, st = cli.get("/api/stats")
    return (st.get("kafka") or {}) if status == 200 else {}


def follower_position(cli):
    """(busiest pool, its seq) and every pool's seq, as a follower would hold them."""
    try:
        status, pools = cli.get("/api/pools")
        seqs = {p["name"]: p.get("seq", 0) for p in pools}
        busiest = max(pools, key=lambda p: p.get("seq", 0))
        return (busiest["name"], busiest.get("seq", 0)), seqs
    except (OSError, ValueError, KeyError):
        return None, {}


def replay_kind(log):
    snap = re.search(r"snapshot \S+: (\d+) SKUs, .*input seq (\d+), loaded", log)
    wal = re.search(r"wal: replayed (\d+) records \((\d+) events\)", log)
    return (int(snap.group(2)) if snap else None), (int(wal.group(2)) if wal else 0)


# -- two more crash cases -----------------------------------------------------------------

def order_line(sku, ts=T0):
    return json.dumps({"op": "order", "sku": sku, "qty": 1, "amount": 1.0, "ts": ts}) + "\n"


def two_servers(binary, tmp, rules):
    """A second poold started on the same data directory (a restart script
    racing a slow stop, an operator mistake) must not make acknowledged
    lines disappear: refused, or harmless."""
    say("two servers on one data directory")
    data = os.path.join(tmp, "data-two")
    a = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
    b = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
    try:
        a.start()
        if not check(a.wait_ready(30) is not None, "server A starts"):
            return
        b.start()
        hb = b.wait_ready(10)
        acked = []
        for srv, sku in ((a, "TWO-A1"), (b, "TWO-B1"), (a, "TWO-A2")):
            if not srv.alive():
                continue
            try:
                status, r = C.HttpClient(srv.port, 10).json("POST", "/api/events?wait=durable", order_line(sku))
                if status == 200 and r.get("durable") is True:
                    acked.append(sku)
            except OSError:
                pass
        say(f"second server on the same data directory: {'running' if hb else 'refused (exit %s)' % b.proc.poll()}; "
            f"acknowledged {acked}")
        a.kill9()
        b.kill9()
        a.start()
        if not check(a.wait_ready(30) is not None, "after kill -9 of both, poold restarts on the data directory",
                     a.log_text()[-500:]):
            return
        cli = C.HttpClient(a.port)
        missing = [s for s in acked if cli.get(f"/api/skus/{s}")[0] != 200]
        check(not missing, f"two servers on one data directory: every acknowledged line survives "
                           f"(acknowledged {acked}, lost {missing})")
        a.term()
    finally:
        for p in (a, b):
            if p.alive():
                p.kill9()


def children_of(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def orphan_snapshot_writer(binary, tmp, rules, cat):
    """kill -9 while the forked snapshot child is still writing (SIGSTOP
    holds it, as a slow disk would): the child outlives its parent. The next
    poold starts, takes its own snapshot; then the orphan finishes. After
    another kill -9, poold must still start with every acknowledged line."""
    say("an orphaned snapshot writer")
    data = os.path.join(tmp, "data-orphan")
    srv = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
    kid = None
    try:
        srv.start(["--load", cat])
        if not check(srv.wait_ready(60) is not None, "orphan case: poold starts with the catalog"):
            return
        for attempt in range(5):
            def snap():
                try:
                    C.HttpClient(srv.port, 30).json("POST", "/api/admin/snapshot", b"", retry=False)
                except Exception:  # the server is killed under it
                    pass
            th = threading.Thread(target=snap, daemon=True)
            th.start()
            t = time.time()
            while time.time() - t < 5 and kid is None:
                ks = children_of(srv.proc.pid)
                if ks:
                    kid = ks[0]
                    os.kill(kid, signal.SIGSTOP)
            if kid is not None:
                break
            th.join(10)
            C.HttpClient(srv.port).json("POST", "/api/events?wait=applied", order_line(f"ORPH-PRE{attempt}"))
        if kid is None:
            print("SKIP: orphan case: could not catch the snapshot child")
            return
        cli = C.HttpClient(srv.port)
        acked = []
        for sku in ("ORPH-1",):
            status, r = cli.json("POST", "/api/events?wait=applied", order_line(sku))
            if status == 200:
                acked.append(sku)
        srv.kill9()
        srv.start()
        if not check(srv.wait_ready(60) is not None, "orphan case: poold restarts while the old snapshot child "
                                                     "is stopped", srv.log_text()[-500:]):
            return
        cli = C.HttpClient(srv.port)
        status, r = cli.json("POST", "/api/events?wait=applied", order_line("ORPH-2"))
        if status == 200:
            acked.append("ORPH-2")
        status, r = cli.json("POST", "/api/admin/snapshot", b"")
        check(status == 200, f"orphan case: the new poold writes a snapshot ({status})")
        status, r = cli.json("POST", "/api/events?wait=applied", order_line("ORPH-3"))
        if status == 200:
            acked.append("ORPH-3")
        os.kill(kid, signal.SIGCONT)
        C.wait_until(lambda: proc_state(kid) in (None, "Z", "X"), 20, 0.05)
        kid = None
        srv.kill9()
        srv.start()
        h = srv.wait_ready(60)
        log = srv.log_text()
        if not check(h is not None, "orphan case: after the old snapshot child finished late, poold still starts",
                     [ln for ln in log.splitlines() if "snapshot" in ln or "wal" in ln or "serve:" in ln][-3:]):
            return
        cli = C.HttpClient(srv.port)
        missing = [s for s in acked if cli.get(f"/api/skus/{s}")[0] != 200]
        check(not missing, f"orphan case: every acknowledged line is there ({acked}, missing {missing})")
        srv.term()
    finally:
        if kid is not None:
            try:
                os.kill(kid, signal.SIGKILL)
            except OSError:
                pass
        if srv.alive():
            srv.kill9()


def main():
    binary = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN")) or "build/poold"
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"crash_test: no executable at {binary} (build first, or pass the poold binary)")
        sys.exit(2)
    seed = int(os.environ.get("CRASH_SEED", str(int(time.time()) % 100000)))
    print(f"crash test: {CYCLES} kills, {SKUS} SKUs, {EVENTS} Kafka events, seed {seed} (CRASH_SEED={seed} "
          f"repeats the kill moments)")
    rnd = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="poold-crash-")
    mock = producer = srv = None
    state = {"port": None, "stop": threading.Event()}
    posters = []
    try:
        rules = os.path.join(tmp, "rules")
        os.mkdir(rules)
        for f in sorted(os.listdir(os.path.join(ROOT, "rules"))):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(ROOT, "rules", f), rules)
        cat, evf = os.path.join(tmp, "catalog.ndjson"), os.path.join(tmp, "events.ndjson")
        for args, out in ((["catalog", "--skus", str(SKUS)], cat),
                          (["events", "--skus", str(SKUS), "--events", str(EVENTS), "--invalid-every",
                            str(INVALID_EVERY)], evf)):
            r = subprocess.run([binary, "gen"] + args + ["--seed", str(SEED), "--out", out], capture_output=True,
                               text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"poold gen failed: {r.stderr}")
        cat_lines, ev_lines = read_lines(cat), read_lines(evf)

        mock = C.KafkaMock(binary, f"events:{PARTITIONS}", os.path.join(tmp, "mock.log"))
        r = C.kafka_produce_file(binary, mock.bootstrap, "events", cat)
        check(r.returncode == 0, f"the catalog is produced ({r.returncode})", r.stderr[-300:])
        producer = Producer(binary, mock.bootstrap, ev_lines, PRODUCE_SECONDS, os.path.join(tmp, "producer.log"))

        data = os.path.join(tmp, "data")
        srv = C.PooldProc(binary, rules, data, tmp, ["--kafka", mock.bootstrap, "--topics", "events",
                                                     "--group", "crash"] + KAFKA_PROPS)
        posters = [Poster(c, state) for c in range(HTTP_CLIENTS)]
        for p in posters:
            p.start()

        snap_every = ["0"] + [rnd.choice(["1", "2"]) for _ in range(CYCLES)]
        kinds = []         # (snapshot seq or None, wal events replayed) per restart
        in_flight = 0      # kills with Kafka messages not yet consumed, or queued
        follow = None      # (pool, seq) read just before the last kill
        early_follow = None  # (pool, seq) read 0.3 s after the last start
        prev_seqs = {}
        for cycle in range(CYCLES + 1):
            final = cycle == CYCLES
            if final:
                say("stopping the HTTP clients and the producer")
                state["stop"].set()
                for p in posters:
                    p.join(60)
                state["port"] = None
                rc = producer.finish()
                check(rc == 0, f"kafka-produce delivered every event (exit {rc})",
                      open(os.path.join(tmp, "producer.log")).read()[-400:])
            srv.start(["--snapshot-every", snap_every[min(cycle, CYCLES)]])
            health = srv.wait_ready(60)
            if not check(health is not None, f"cycle {cycle}: poold (re)starts after kill -9",
                         srv.log_text()[-1500:]):
                break
            cli = C.HttpClient(srv.port, timeout=15)
            if not final:
                state["port"] = srv.port
            if cycle > 0:
                log = srv.log_text()
                kind = replay_kind(log)
                kinds.append(kind)
                say(f"cycle {cycle}: restarted ({'snapshot at seq %d' % kind[0] if kind[0] is not None else 'no snapshot'}"
                    f" + {kind[1]} WAL events replayed)")
                # followers: one up to date at the kill, one that lagged (its
                # position from the start of the previous run)
                for who, fpos in (("an up-to-date", follow), ("a lagging", early_follow)):
                    if not fpos or fpos[1] == 0:
                        continue
                    pool, since = fpos
                    status, ch = cli.get(f"/api/pools/{pool}/changes?since={since}")
                    if kind[1] > 0:
                        check(status == 410 and ch.get("resync") is True,
                              f"cycle {cycle}: after a crash with WAL replay, {who} follower's changes?since={since} "
                              f"of {pool} answers 410 resync ({status} {str(ch)[:200]})")
                    else:
                        check(status in (200, 410), f"cycle {cycle}: changes since {since}: {status}")
                if follow:
                    # a seq handed out before the crash is never handed out again
                    # for another change (README: the seqs jump by 2^32)
                    status, pools = cli.get("/api/pools")
                    reused = []
                    for p in pools if status == 200 else []:
                        old = prev_seqs.get(p["name"])
                        if old is not None and kind[1] > 0 and not p.get("seq", 0) > old:
                            reused.append(f"{p['name']} {old} -> {p.get('seq')}")
                    check(not reused, f"cycle {cycle}: after a crash every pool's seq is past the seqs served "
                                      f"before it", reused)
            if final:
                break
            time.sleep(0.3)
            early_follow, _ = follower_position(cli)
            # wait for the partitions (after a kill the dead member's session
            # must time out first), then kill at a random moment
            if cycle == 2:
                wait_s = rnd.uniform(0.3, 2.0)  # one kill before the assignment
                time.sleep(wait_s)
                say(f"cycle {cycle}: kill {wait_s:.2f} s after ready (before the Kafka assignment)")
            elif cycle % 3 == 1:
                # kill during the catch-up: as soon as the first messages are taken
                # (the backlog produced while poold was down is being consumed)
                follow, prev_seqs = follower_position(cli)
                took = C.wait_until(lambda: (lambda k: k if (k.get("messages") or 0) > 0 else None)(kafka_stats(cli)),
                                    20, 0.002)
                check(took, f"cycle {cycle}: poold takes Kafka messages within 20 s")
                check(srv.kill9() == -9, f"cycle {cycle}: kill -9")
                state["port"] = None
                lag = (took or {}).get("lag", 0)
                in_flight += lag > 0
                say(f"cycle {cycle}: killed as soon as Kafka messages were taken ({(took or {}).get('messages')} "
                    f"taken, lag {lag})")
                cli.close()
                time.sleep(rnd.uniform(0.0, 0.5))
                continue
            else:
                assigned = C.wait_until(lambda: len(kafka_stats(cli).get("partitions") or []) == PARTITIONS,
                                        20, 0.1)
                check(assigned, f"cycle {cycle}: the {PARTITIONS} partitions are assigned within 20 s")
                wait_s = rnd.uniform(0.0, 1.5)
                time.sleep(wait_s)
                say(f"cycle {cycle}: kill {wait_s:.2f} s after the assignment")
            k = kafka_stats(cli)
            if k.get("lag", 0) > 0:
                in_flight += 1
            follow, prev_seqs = follower_position(cli)
            cli.close()
            check(srv.kill9() == -9, f"cycle {cycle}: kill -9")
            state["port"] = None
            time.sleep(rnd.uniform(0.0, 0.5))

        acked = sum(len(p.acked) for p in posters)
        unknown = sum(len(p.unknown) for p in posters)
        say(f"{acked} posts acknowledged, {unknown} with a lost answer, "
            f"{sum(p.refused for p in posters)} refused at connect (retried)")
        check(len(kinds) >= 5, f"at least 5 restarts after kill -9 ({len(kinds)})")
        check(any(k[0] is None and k[1] > 0 for k in kinds) or any(k[0] is not None and k[1] > 0 for k in kinds),
              "restarts replayed the WAL", kinds)
        check(any(k[0] is not None and k[1] > 0 for k in kinds),
              f"some restarts loaded a snapshot and replayed the WAL after it ({kinds})")
        check(any(k[0] is None and k[1] > 0 for k in kinds),
              f"some restarts replayed the WAL alone ({kinds})")
        say(f"{in_flight} kills with a Kafka lag > 0 at the last look")
        check(acked > 50, f"the HTTP clients had posts acknowledged ({acked})")

        # -- everything consumed? ---------------------------------------------------
        cli = C.HttpClient(srv.port, timeout=30)
        total = len(cat_lines) + len(ev_lines)

        def caught_up():
            k = kafka_stats(cli)
            parts = k.get("partitions") or []
            return (len(parts) == PARTITIONS and sum(p.get("high_watermark", -1) for p in parts) == total
                    and all(p.get("position") == p.get("high_watermark") for p in parts) and k.get("lag") == 0)
        ok = C.wait_until(caught_up, 90, 0.1)
        if not check(ok, f"poold consumed all {total} messages (lag 0)", kafka_stats(cli)):
            return
        status, r = cli.json("POST", "/api/events?wait=applied", '{"op":"delete","sku":"ZZ-SYNC"}\n')
        check(status == 200 and r.get("applied") is True, f"a final no-op post is applied ({status} {r})")
        say("everything consumed and applied")

        # -- the reference ----------------------------------------------------------------
        ref = R.Reference()
        ref.apply_text("\n".join(cat_lines))
        ref.apply_text("\n".join(ev_lines))
        bad_ack, partial = [], []
        applied_unknown = 0
        for p in posters:
            for i in range(p.posted):
                body, n = p.bodies[i]
                status, _ = cli.get(f"/api/skus/{p.marker(i)}")
                present = status == 200
                if i in p.acked and not present:
                    bad_ack.append(p.marker(i))
                if i in p.unknown and present:
                    applied_unknown += 1
                if present:
                    rej = ref.apply_text(body)
                    if rej:
                        partial.append((p.marker(i), rej))
                elif i not in p.unknown:
                    bad_ack.append(f"{p.marker(i)} (neither acknowledged nor lost, yet absent)")
        check(not bad_ack, f"every acknowledged post is present ({len(bad_ack)} missing)", bad_ack[:8])
        check(not partial, "the reference accepts every posted line", partial[:3])
        say(f"{applied_unknown} of {unknown} lost-answer posts were applied")

        status, h = cli.get("/healthz")
        check(h.get("skus") == len(ref.skus), f"SKUs {h.get('skus')} == reference {len(ref.skus)}")
        check(h.get("clock") == ref.clock, f"event clock {h.get('clock')} == reference {ref.clock}")
        expected = ref.pools(R.RULE_LIST)
        for name, exp in sorted(expected.items()):
            got, info = C.fetch_pool(cli, name)
            ok = check(got == exp, f"pool {name} equals the reference (expected {len(exp)}, "
                                   f"got {len(got) if got is not None else info})")
            if not ok and got is not None:
                for sid in sorted(exp - got)[:3] + sorted(got - exp)[:3]:
                    status, st = cli.get(f"/api/skus/{C.qs(sid)}")
                    print(f"      {sid}: expected member {sid in exp}; ref {json.dumps(ref.explain(sid))[:500]}")
                    print(f"        server {status}: {json.dumps(st)[:500]}")
        # every SKU with an order: sales_24h and sales_7d
        with_orders = sorted(s.id for s in ref.skus.values() if any(e[1] == "o" for e in s.events))
        bad = []
        for sid in with_orders:
            status, st = cli.get(f"/api/skus/{C.qs(sid)}")
            c = st.get("counters") if status == 200 else {}
            exp = R.window_sums(ref.skus[sid].events, ref.clock)
            for w in ("24h", "7d"):
                g = ((c or {}).get(w) or {}).get("sales")
                if g != exp["sales_" + w]:
                    bad.append(f"{sid} sales_{w}: expected {exp['sales_' + w]}, got {g}")
        http_with_orders = sum(1 for s in with_orders if s.startswith(("SG-9", "MY-9")))
        check(not bad, f"sales_24h and sales_7d of every SKU with an order ({len(with_orders)}, "
                       f"{http_with_orders} from HTTP) equal the reference ({len(bad)} differ)", bad[:8])
        active = sorted((s for s in ref.skus.values() if s.events), key=lambda s: (-len(s.events), s.id))
        sample = active[:60] + random.Random(2).sample(active, min(60, len(active)))
        bad = []
        for s in sample:
            status, st = cli.get(f"/api/skus/{C.qs(s.id)}")
            c = st.get("counters") if status == 200 else {}
            exp = R.window_sums(s.events, ref.clock)
            for w in ("1h", "24h", "7d"):
                for m in ("sales", "gmv", "views", "clicks", "carts"):
                    e, g = exp[f"{m}_{w}"], ((c or {}).get(w) or {}).get(m)
                    same = (isinstance(g, (int, float)) and abs(g - e) <= 1e-9 * max(1.0, abs(e))) \
                        if m == "gmv" else g == e
                    if not same:
                        bad.append(f"{s.id} {m}_{w}: expected {e}, got {g}")
        check(not bad, f"all counters of {len(sample)} active SKUs equal the reference ({len(bad)} differ)", bad[:8])
        rc = srv.term()
        check(rc == 0, f"the last poold stops cleanly on SIGTERM ({rc})")
        two_servers(binary, tmp, rules)
        orphan_snapshot_writer(binary, tmp, rules, cat)
    except Exception:
        traceback.print_exc()
        check(False, "the test ran to its end without an exception")
    finally:
        state["stop"].set()
        if producer is not None and producer.proc.poll() is None:
            producer.stop_now.set()
            producer.proc.kill()
            producer.proc.wait()
        if srv is not None and srv.alive():
            srv.kill9()
        if mock is not None:
            mock.stop()
        if failed and srv is not None:
            srv.print_logs(20)
        if os.environ.get("KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"crash test took {time.time() - T_START:.1f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
