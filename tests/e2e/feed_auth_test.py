#!/usr/bin/env python3
"""End-to-end test of the change feed (issue 5, "Change feed") and of access
control (issue 7, "Roles and tokens") against real `poold serve` processes.
Python 3 stdlib only.

    python3 tests/e2e/feed_auth_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)

Change feed (server A: 20k SKUs, --clock event, the rule
tests/e2e/fixtures/lifecycle/feed.lua, a deterministic event stream posted
with ?wait=applied, mirrored by reference.py):
  - a follower pages through the members (noting the first page's seq), then
    long-polls /changes?since=SEQ while events flow and while a new version
    of the rule is published; when the stream stops it holds exactly the
    pool (a final members read) and the reference; the change seqs are
    consecutive; every change has a cause: an event whose input seq names a
    line posted on that SKU, or the publish of version 2;
  - long-poll: answers at once when a change comes, after `wait` when none;
  - SSE: read some events, disconnect, reconnect with Last-Event-ID: the
    next seq follows, no gap, no duplicate, the same changes as the JSON API.
Retention and parameters (server B: --changes-retention 16): 410 with
resync:true for an old `since` (JSON and SSE), 200 just inside; bad limit,
since, wait -> 400; unknown pool -> 404.
Access (server B: --token-file, mode 0600, ingest/editor/admin tokens):
  401 JSON without or with a wrong token, 403 for the wrong role, reads
  open, the token's name is the author in history and the audit log
  (DATA/audit.log: who, addr, action per rule change), a rewritten token
  file (temp + rename) is picked up within seconds, tokens never logged;
  server C: --read-token-required; server D: 0.0.0.0 without --token-file
  exits 1 with a message, with --insecure it starts.

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "lifecycle")
sys.path.insert(0, HERE)
import reference as R  # noqa: E402

SKUS = 20000
SMALL = 2000
SEED = 42
T0 = 1794268800000
BATCH = 200

passed = failed = 0
SERVERS = []


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


def q(s):
    return urllib.parse.quote(str(s), safe="")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read(path):
    with open(path) as f:
        return f.read()


class Client:
    """One keep-alive HTTP/1.1 connection (one per thread); reconnects once."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=120):
        if isinstance(body, str):
            body = body.encode()
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"_raw": data[:300].decode(errors="replace")}

    def get(self, path, headers=None):
        return self.json("GET", path, None, headers)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Server:
    def __init__(self, binary, tmp, name, rules, skus, catalog, extra=(), listen_host="127.0.0.1"):
        self.binary, self.tmp, self.name, self.rules = binary, tmp, name, rules
        self.skus, self.catalog, self.extra, self.host = skus, catalog, list(extra), listen_host
        self.data = os.path.join(tmp, f"data-{name}")
        self.logpath = os.path.join(tmp, f"server-{name}.log")
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        self.log = open(self.logpath, "w")
        cmd = [self.binary, "serve", "--rules", self.rules, "--listen", f"{self.host}:{self.port}",
               "--data", self.data, "--clock", "event", "--load", self.catalog] + self.extra
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        SERVERS.append(self)
        cli = Client(self.port)
        health, deadline = None, time.time() + 90
        while time.time() < deadline and self.proc.poll() is None:
            try:
                status, health = cli.get("/healthz")
                if status == 200 and health.get("loading") is False and health.get("skus") == self.skus:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        cli.close()
        return health

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def print_log(self):
        if not os.path.exists(self.logpath):
            return
        lines = read(self.logpath).splitlines()
        asan = [i for i, ln in enumerate(lines) if "Sanitizer" in ln and "ERROR" in ln]
        tail = lines[asan[0]:asan[0] + 80] if asan else lines[-20:]
        print(f"--- server {self.name} log (" + ("sanitizer report" if asan else "last 20 lines") + "):")
        print("\n".join(tail))


class EventGen:
    """A deterministic stream of price/stock/tag changes (plus a few orders
    and views) over the given SKUs, ts rising from T0."""

    def __init__(self, ids, seed):
        self.rnd = random.Random(seed)
        self.ids = ids
        self.ts = T0 + 1000

    def line(self):
        r = self.rnd
        sku = r.choice(self.ids)
        self.ts += r.randint(20, 200)
        k = r.random()
        if k < 0.45:
            ev = {"op": "price", "sku": sku, "price": round(r.uniform(2, 120), 2)}
            if r.random() < 0.4:
                ev["list_price"] = round(ev["price"] * r.uniform(1.0, 2.5), 2)
        elif k < 0.7:
            ev = {"op": "stock", "sku": sku, "stock": 0 if r.random() < 0.3 else r.randint(1, 300)}
        elif k < 0.85:
            ev = {"op": "tag", "sku": sku, ("add" if r.random() < 0.5 else "remove"): ["blocked"]}
        elif k < 0.95:
            ev = {"op": "order", "sku": sku, "qty": 1, "amount": round(r.uniform(5, 90), 2)}
        else:
            ev = {"op": "view", "sku": sku}
        ev["ts"] = self.ts
        return json.dumps(ev, separators=(",", ":"))

    def lines(self, n):
        return [self.line() for _ in range(n)]


class Poster(threading.Thread):
    """Posts batches with ?wait=applied, applies them to the reference, and
    maps each input seq to the SKU of its line (seqs of a batch are
    consecutive: checked against the answers' seq)."""

    def __init__(self, port, ref, gen, batches, seq_sku, token=None):
        super().__init__(daemon=True)
        self.cli = Client(port, token)
        self.ref, self.gen, self.batches, self.seq_sku = ref, gen, batches, seq_sku
        self.errors = []
        self.done = 0
        self.last_seq = None

    def run(self):
        try:
            for _ in range(self.batches):
                lines = self.gen.lines(BATCH)
                body = "\n".join(lines) + "\n"
                status, r = self.cli.json("POST", "/api/events?wait=applied", body,
                                          {"Content-Type": "application/x-ndjson"})
                rej = self.ref.apply_text(body)
                if status != 200 or r.get("accepted") != len(lines) or rej or r.get("applied") is not True:
                    self.errors.append((status, str(r)[:200]))
                    continue
                seq = r["seq"]
                if self.seq_sku and seq - len(lines) + 1 <= max(self.seq_sku):
                    self.errors.append(f"input seqs overlap: batch ends at {seq}")
                for i, ln in enumerate(lines):
                    self.seq_sku[seq - len(lines) + 1 + i] = json.loads(ln)["sku"]
                self.last_seq = seq
                self.done += 1
        except Exception as exc:
            self.errors.append(("exception", repr(exc)))
        finally:
            self.cli.close()

    def wait_batches(self, n, timeout=60):
        deadline = time.time() + timeout
        while self.done < n and self.is_alive() and time.time() < deadline:
            time.sleep(0.02)


def pool_members(cli, name, limit=10000):
    """One page holding the whole pool: (set, seq) or (None, error)."""
    st, r = cli.get(f"/api/pools/{q(name)}/members?limit={limit}")
    if st != 200 or r.get("next") is not None:
        return None, (st, str(r)[:200])
    return set(r.get("members") or []), r.get("seq")


# -- Server-Sent Events over a raw socket -------------------------------------------------------

class SSE:
    """GET with Accept: text/event-stream; yields {"id", "event", "data"}."""

    def __init__(self, port, path, headers=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                          f"Connection: close\r\n{extra}\r\n"
                          .encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, self.raw = raw.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.text = b""
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        if not self.chunked:
            if self.raw:
                self.text += self.raw
                self.raw = b""
                return True
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return False
            self.text += chunk
            return True
        while True:
            nl = self.raw.find(b"\r\n")
            if nl >= 0:
                size = int(self.raw[:nl].split(b";")[0], 16)
                if size == 0:
                    self.eof = True
                    return False
                if len(self.raw) >= nl + 2 + size + 2:
                    self.text += self.raw[nl + 2:nl + 2 + size]
                    self.raw = self.raw[nl + 2 + size + 2:]
                    return True
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return False
            self.raw += chunk

    def next_event(self):
        """The next event with data (comments and retry lines skipped), or None at the end."""
        while True:
            while b"\n\n" not in self.text:
                if not self._fill():
                    return None
            block, _, self.text = self.text.partition(b"\n\n")
            ev = {}
            for ln in block.decode().split("\n"):
                if ln.startswith(":") or not ln:
                    continue
                k, _, v = ln.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v
            if "data" in ev:
                return ev

    def body(self):
        n = int(self.headers.get("content-length", "-1"))
        while (n < 0 or len(self.text) < n) and self._fill():
            pass
        return self.text

    def close(self):
        self.sock.close()


# -- change feed -----------------------------------------------------------------------------------

def feed_tests(binary, tmp):
    cat = os.path.join(tmp, "catalog.ndjson")
    r = subprocess.run([binary, "gen", "catalog", "--skus", str(SKUS), "--seed", str(SEED), "--out", cat],
                       capture_output=True, text=True, timeout=60)
    if not check(r.returncode == 0, "poold gen catalog", r.stderr):
        return
    rules = os.path.join(tmp, "rules-a")
    os.mkdir(rules)
    shutil.copy(os.path.join(FIX, "feed.lua"), rules)
    srv = Server(binary, tmp, "A", rules, SKUS, cat)
    health = srv.start()
    if not check(health and health.get("skus") == SKUS, f"server A up with {SKUS} SKUs: {health}"):
        return
    cli = Client(srv.port)
    ref = R.Reference()
    ref.apply_text(read(cat))
    feed_v1 = R.Rule("feed", where="(market:SG | market:MY) & in_stock & !blocked", match=lambda s: s.price < 60)
    feed_v2 = R.Rule("feed", where="(market:SG | market:MY) & in_stock & !blocked",
                     match=lambda s: s.price < 45 or s.discount >= 0.5)
    # Hot SKUs: most of the stream on the pool's markets, so it churns.
    ids = sorted(s for s in ref.skus if s[:3] in ("SG-", "MY-"))[:3000] + sorted(ref.skus)[:500]
    gen = EventGen(ids, 3)
    seq_sku = {}

    # 1. list + follow while events flow and a publish happens.
    poster = Poster(srv.port, ref, gen, 40, seq_sku)
    poster.start()
    poster.wait_batches(3)
    fcli = Client(srv.port)
    held, cursor, first_seq, pages = set(), None, None, 0
    while True:
        path = "/api/pools/feed/members?limit=500" + (f"&cursor={q(cursor)}" if cursor is not None else "")
        st, page = fcli.get(path)
        if not check(st == 200, f"members page {pages}: {st}", page):
            return
        pages += 1
        if first_seq is None:
            first_seq = page.get("seq")
        held |= set(page.get("members") or [])
        cursor = page.get("next")
        if cursor is None:
            break
    check(pages > 1 and isinstance(first_seq, int), f"the follower paged through {pages} pages from seq {first_seq}")
    changes, since, target = [], first_seq, [None]
    follow_errors = []

    def follow():
        nonlocal since
        try:
            while target[0] is None or since < target[0]:
                st, r = fcli.get(f"/api/pools/feed/changes?since={since}&wait=2&limit=300")
                if st != 200:
                    follow_errors.append((st, r))
                    return
                for c in r.get("changes") or []:
                    changes.append(c)
                    if c.get("op") == "add":
                        held.add(c.get("sku"))
                    else:
                        held.discard(c.get("sku"))
                since = r.get("next", since)
        except Exception as exc:
            follow_errors.append(repr(exc))

    ft = threading.Thread(target=follow, daemon=True)
    ft.start()
    poster.wait_batches(15)
    st, r = cli.json("PUT", "/api/rules/feed", read(os.path.join(FIX, "feed_v2.lua")),
                     {"Content-Type": "text/x-lua", "X-Poold-Author": "feeder"})
    st, pub = cli.json("POST", "/api/rules/feed/publish", b"", {"X-Poold-Author": "feeder"})
    during = poster.done
    check(st == 200 and pub.get("version") == 2, "feed v2 published while the follower follows", pub)
    poster.join(120)
    check(not poster.errors, "the stream was accepted and applied", poster.errors[:3])
    check(0 < during < 40, f"the publish happened mid-stream (after {during} of 40 batches)")
    final, final_seq = pool_members(cli, "feed")
    target[0] = final_seq
    ft.join(60)
    fcli.close()
    check(not follow_errors and not ft.is_alive(), "the follower followed to the final seq", follow_errors[:2])
    exp = ref.pool(feed_v2)
    check(final == exp, f"the pool equals the reference at the end ({len(final or ())} vs {len(exp)})",
          (sorted((final or set()) - exp)[:5], sorted(exp - (final or set()))[:5]))
    check(held == final, f"list + follow from seq {first_seq} holds exactly the pool ({len(held)} vs "
                         f"{len(final or ())})", (sorted(held - (final or set()))[:5],
                                                 sorted((final or set()) - held)[:5]))
    seqs = [c.get("seq") for c in changes]
    check(seqs == list(range(first_seq + 1, final_seq + 1)),
          f"change seqs run from {first_seq + 1} to {final_seq} without a gap or a duplicate ({len(seqs)} changes)",
          [(a, b) for a, b in zip(seqs, range(first_seq + 1, final_seq + 1)) if a != b][:5])
    bad, kinds, pub_changes = [], {}, 0
    last_op = {}
    for c in changes:
        cause = c.get("cause") or {}
        kinds[cause.get("kind")] = kinds.get(cause.get("kind"), 0) + 1
        if cause.get("kind") == "event":
            if seq_sku.get(cause.get("seq")) != c.get("sku"):
                bad.append(f"change {c.get('seq')} of {c.get('sku')} names event {cause.get('seq')} on "
                           f"{seq_sku.get(cause.get('seq'))}")
        elif cause.get("kind") == "publish":
            pub_changes += 1
            if cause.get("version") != 2:
                bad.append(f"change {c.get('seq')}: publish of version {cause.get('version')}")
        elif cause.get("kind") != "tick":
            bad.append(f"change {c.get('seq')}: cause {cause}")
        if c.get("op") not in ("add", "remove") or last_op.get(c.get("sku")) == c.get("op"):
            bad.append(f"change {c.get('seq')}: {c.get('op')} of {c.get('sku')} after {last_op.get(c.get('sku'))}")
        last_op[c.get("sku")] = c.get("op")
    check(not bad, f"every change has a cause naming an event on its SKU or the publish ({kinds})", bad[:5])
    check(kinds.get("event", 0) > 100 and pub_changes == pub.get("joins", -1) + pub.get("leaves", -1),
          f"{kinds.get('event', 0)} changes caused by events, {pub_changes} by the publish "
          f"(== its joins + leaves {pub.get('joins')} + {pub.get('leaves')})")

    # 2. long-poll.
    t = time.time()
    st, r = cli.get(f"/api/pools/feed/changes?since={final_seq}&wait=1")
    took = time.time() - t
    check(st == 200 and r.get("changes") == [] and r.get("next") == final_seq and 0.8 <= took < 3,
          f"long-poll with nothing new answers empty after the wait ({took:.2f} s)", r)
    cand = sorted(s for s in ref.where_set(feed_v2.where) if s not in exp and ref.skus[s].discount < 0.5)[0]
    got = {}

    def longpoll():
        c = Client(srv.port)
        t1 = time.time()
        got["r"] = c.get(f"/api/pools/feed/changes?since={final_seq}&wait=10")
        got["took"] = time.time() - t1
        c.close()

    lp = threading.Thread(target=longpoll, daemon=True)
    lp.start()
    time.sleep(0.4)
    body = json.dumps({"op": "price", "sku": cand, "price": 9.5, "ts": gen.ts + 10}) + "\n"
    ref.apply_text(body)
    st, pr = cli.json("POST", "/api/events?wait=applied", body)
    lp.join(15)
    st, r = got.get("r", (0, {}))
    ch = r.get("changes") or []
    check(st == 200 and len(ch) == 1 and ch[0].get("sku") == cand and ch[0].get("op") == "add"
          and (ch[0].get("cause") or {}).get("seq") == pr.get("seq") and got.get("took", 99) < 3,
          f"a waiting long-poll answers with the change of {cand} ({got.get('took', 0):.2f} s)", r)

    # 3. SSE: read, disconnect, resume with Last-Event-ID.
    start_seq = final_seq + 1
    poster = Poster(srv.port, ref, gen, 12, seq_sku)
    poster.start()
    s1 = SSE(srv.port, f"/api/pools/feed/changes?since={start_seq}")
    check(s1.status == 200 and s1.headers.get("content-type", "").startswith("text/event-stream"),
          f"SSE answers 200 text/event-stream ({s1.status}, {s1.headers.get('content-type')})")
    got_ev = []
    while len(got_ev) < 40:
        ev = s1.next_event()
        if ev is None:
            break
        got_ev.append(ev)
    s1.close()
    check(len(got_ev) == 40, f"read 40 SSE events before disconnecting ({len(got_ev)})")
    last_id = got_ev[-1].get("id") if got_ev else str(start_seq)
    poster.join(120)
    check(not poster.errors, "the stream during SSE was accepted", poster.errors[:3])
    _, end_seq = pool_members(cli, "feed")
    s2 = SSE(srv.port, "/api/pools/feed/changes", {"Last-Event-ID": last_id})
    check(s2.status == 200, f"SSE reconnect with Last-Event-ID {last_id}: {s2.status}")
    while True:
        ev = s2.next_event()
        if ev is None:
            break
        got_ev.append(ev)
        if int(ev.get("id", 0)) >= end_seq:
            break
    s2.close()
    ids = [int(e.get("id", -1)) for e in got_ev]
    check(ids == list(range(start_seq + 1, end_seq + 1)) and end_seq > int(last_id),
          f"SSE ids resume after Last-Event-ID {last_id}: {start_seq + 1}..{end_seq}, no gap or duplicate",
          [(a, b) for a, b in zip(ids, range(start_seq + 1, end_seq + 1)) if a != b][:5])
    st, r = cli.get(f"/api/pools/feed/changes?since={start_seq}&limit=10000")
    as_json = [(c["seq"], c["sku"], c["op"], json.dumps(c.get("cause"), sort_keys=True)) for c in r.get("changes") or []]
    as_sse = []
    for e in got_ev:
        d = json.loads(e["data"])
        as_sse.append((d.get("seq"), d.get("sku"), d.get("op"), json.dumps(d.get("cause"), sort_keys=True)))
    check(as_sse == as_json and all(e.get("event") == "change" for e in got_ev),
          "the SSE events (event: change, id = seq) carry the same changes as the JSON feed",
          [(a, b) for a, b in zip(as_sse, as_json) if a != b][:3])
    s3 = SSE(srv.port, "/api/pools/nope/changes")
    check(s3.status == 404, f"SSE on an unknown pool: 404 ({s3.status})")
    s3.close()
    final, s_now = pool_members(cli, "feed")
    check(final == ref.pool(feed_v2), "the pool equals the reference after the SSE stream")

    # 4. The pool is deleted and re-created (rollback to version 1) under a follower.
    sse = SSE(srv.port, f"/api/pools/feed/changes?since={s_now}")
    st, d = cli.json("DELETE", "/api/rules/feed", None, {"X-Poold-Author": "feeder"})
    check(st == 200 and d.get("deleted") is True, f"DELETE /api/rules/feed ({st})", d)
    ev = sse.next_event()
    sse.close()
    check(ev is not None and ev.get("event") == "deleted", "an open SSE stream says event: deleted", ev)
    st, r = cli.get(f"/api/pools/feed/changes?since={s_now}")
    check(st == 404, f"/changes of the deleted pool: 404 ({st})")
    st, rb = cli.json("POST", "/api/rules/feed/rollback?version=1", b"", {"X-Poold-Author": "feeder"})
    now_members, now_seq = pool_members(cli, "feed")
    check(st == 200 and now_members == ref.pool(feed_v1), f"the pool is back with version 1's rule ({st})", rb)
    held, since, resynced, answers = set(final), s_now, False, []
    for _ in range(50):
        st, r = cli.get(f"/api/pools/feed/changes?since={since}&limit=10000")
        answers.append((st, since, r.get("next"), r.get("seq"), len(r.get("changes") or [])))
        if st == 410 and r.get("resync") is True:
            resynced = True
            break
        if st != 200:
            break
        for c in r.get("changes") or []:
            (held.add if c.get("op") == "add" else held.discard)(c.get("sku"))
        since = r.get("next", since)
        if not r.get("more"):
            break
    check(resynced or held == now_members,
          f"a follower at seq {s_now} from before the delete gets 410 resync or ends with exactly the re-created "
          f"pool (it holds {len(held)}, the pool {len(now_members or ())}, pool seq now {now_seq})", answers[:4])
    st, r = cli.get(f"/api/pools/feed/changes?since={now_seq + 1000}")
    check(st in (400, 410), f"since beyond the pool's seq ({now_seq + 1000} > {now_seq}) is refused, not answered "
                            f"as \"nothing new\" ({st})", r)
    cli.close()
    check(srv.stop() == 0, "server A exits cleanly on SIGTERM")


# -- retention, parameters, access -------------------------------------------------------------------

def token(n):
    r = random.Random(n)
    return "".join(r.choice("0123456789abcdef") for _ in range(32))


def write_tokens(path, entries):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# who  role  token\n")
        for name, role, tok in entries:
            f.write(f"{name}\t{role}\t{tok}\n")
    os.rename(tmp, path)


RULE_R16 = """return pool "r16" {
  where = all { tag "market:SG", tag "in_stock" },
  match = function(s) return s.price < %s end,
}
"""


def access_tests(binary, tmp):
    cat = os.path.join(tmp, "small.ndjson")
    subprocess.run([binary, "gen", "catalog", "--skus", str(SMALL), "--seed", str(SEED), "--out", cat],
                   check=True, capture_output=True, timeout=60)
    rules = os.path.join(tmp, "rules-b")
    os.mkdir(rules)
    tok_ingest, tok_editor, tok_admin, tok_editor2, tok_bob = (token(i) for i in range(1, 6))
    tfile = os.path.join(tmp, "tokens")
    write_tokens(tfile, [("ci-loader", "ingest", tok_ingest), ("alice", "editor", tok_editor),
                         ("root", "admin", tok_admin)])
    srv = Server(binary, tmp, "B", rules, SMALL, cat, ["--token-file", tfile, "--changes-retention", "16"])
    health = srv.start()
    if not check(health and health.get("skus") == SMALL, f"server B up with --token-file: {health}"):
        return
    port = srv.port
    anon, ingest, editor, admin = (Client(port), Client(port, tok_ingest), Client(port, tok_editor),
                                   Client(port, tok_admin))
    ev = json.dumps({"op": "view", "sku": "SG-0000004", "ts": T0 + 1000}) + "\n"

    # 401 / 403 / 200, JSON errors.
    st, hd, body = anon.request("POST", "/api/events", ev)
    try:
        js = json.loads(body)
    except ValueError:
        js = {}
    check(st == 401 and js.get("error") and "bearer" in hd.get("www-authenticate", "").lower(),
          f"POST /api/events without a token: 401 JSON with WWW-Authenticate ({st})", body[:200])
    st, js = anon.json("POST", "/api/events", ev, {"Authorization": "Bearer " + "0" * 32})
    check(st == 401 and js.get("error"), f"a wrong token: 401 ({st})", js)
    st, js = anon.json("POST", "/api/events", ev, {"Authorization": "Basic " + tok_ingest})
    check(st == 401, f"a token in another scheme: 401 ({st})", js)
    st, js = ingest.json("POST", "/api/events?wait=applied", ev)
    check(st == 200 and js.get("accepted") == 1, f"the ingest token posts events ({st})", js)
    st, js = editor.json("POST", "/api/events", ev)
    check(st == 403 and js.get("error"), f"the editor token may not post events: 403 ({st})", js)
    st, js = ingest.json("PUT", "/api/rules/r16", RULE_R16 % 50, {"Content-Type": "text/x-lua"})
    check(st == 403 and js.get("error"), f"the ingest token may not PUT a rule: 403 JSON ({st})", js)
    st, js = anon.json("PUT", "/api/rules/r16", RULE_R16 % 50, {"Content-Type": "text/x-lua"})
    check(st == 401, f"PUT a rule without a token: 401 ({st})", js)
    st, js = editor.json("PUT", "/api/rules/r16", RULE_R16 % 50,
                         {"Content-Type": "text/x-lua", "X-Poold-Author": "mallory"})
    check(st == 200 and (js.get("draft") or {}).get("author") == "alice",
          f"the editor saves a draft; its author is the token's name, not X-Poold-Author ({st})", js)
    for method, path in (("POST", "/api/rules/r16/preview"), ("POST", "/api/rules/r16/publish"),
                         ("DELETE", "/api/rules/r16"), ("POST", "/api/rules/r16/rollback?version=1")):
        st, js = ingest.json(method, path, b"")
        check(st == 403, f"{method} {path} with the ingest token: 403 ({st})", js)
        st, js = anon.json(method, path, b"")
        check(st == 401, f"{method} {path} without a token: 401 ({st})", js)
    st, pv = editor.json("POST", "/api/rules/r16/preview", b"")
    check(st == 200 and "size" in pv, f"the editor previews ({st})")
    st, pub = editor.json("POST", "/api/rules/r16/publish", b"", {"X-Poold-Author": "mallory"})
    check(st == 200 and pub.get("version") == 1, f"the editor publishes ({st})", pub)
    st, js = admin.json("PUT", "/api/rules/r16", RULE_R16 % 60, {"Content-Type": "text/x-lua"})
    st2, pub2 = admin.json("POST", "/api/rules/r16/publish", b"")
    st3, js3 = admin.json("POST", "/api/events?wait=applied", ev)
    check(st == 200 and st2 == 200 and pub2.get("version") == 2 and st3 == 200,
          f"the admin token edits rules and posts events ({st}, {st2}, {st3})")
    st, rb = editor.json("POST", "/api/rules/r16/rollback?version=1", b"")
    check(st == 200 and rb.get("version") == 3, f"the editor rolls back ({st})", rb)
    st, who = editor.get("/api/whoami")
    check(who.get("name") == "alice" and who.get("role") == "editor", "GET /api/whoami names alice, editor", who)
    # Reads stay open.
    for path in ("/api/pools", "/api/pools/r16", "/api/pools/r16/members", "/api/rules", "/api/rules/r16",
                 "/api/skus/SG-0000004", "/api/pools/r16/changes?since=0&limit=1", "/metrics", "/healthz"):
        st, _, _ = anon.request("GET", path)
        check(st in (200, 410), f"GET {path} without a token: open ({st})")
    h = (editor.get("/api/rules/r16")[1].get("history")) or []
    check([(x.get("version"), x.get("kind"), x.get("author")) for x in h]
          == [(1, "publish", "alice"), (2, "publish", "root"), (3, "rollback", "alice")],
          "history authors are the tokens' names", h)

    # Retention 16: publish a version with many members, then 410 for old positions.
    st, p = anon.get("/api/pools/r16")
    seq = p.get("seq")
    retained = p.get("changes_retained_from")
    check(seq > 40 and retained == seq - 15, f"--changes-retention 16: {seq} changes, oldest kept {retained}", p)
    st, js = anon.get("/api/pools/r16/changes?since=0")
    check(st == 410 and js.get("resync") is True and js.get("error"), f"since=0 past retention: 410 resync ({st})",
          js)
    st, js = anon.get(f"/api/pools/r16/changes?since={retained - 2}")
    check(st == 410 and js.get("resync") is True, f"since just before the retained changes: 410 ({st})", js)
    st, js = anon.get(f"/api/pools/r16/changes?since={retained - 1}")
    ch = js.get("changes") or []
    check(st == 200 and [c.get("seq") for c in ch] == list(range(retained, seq + 1)),
          f"since = oldest kept - 1: 200 with all 16 retained changes ({st})", js)
    st, js = anon.get(f"/api/pools/r16/changes?since={seq - 10}&limit=3")
    ch = js.get("changes") or []
    check(st == 200 and [c.get("seq") for c in ch] == [seq - 9, seq - 8, seq - 7] and js.get("next") == seq - 7
          and js.get("more") is True, f"limit=3 answers 3 changes and says there are more ({st})", js)
    s = SSE(port, "/api/pools/r16/changes", {"Last-Event-ID": "1"})
    body = s.body() if s.status != 200 else b""
    s.close()
    try:
        js = json.loads(body)
    except ValueError:
        js = {}
    check(s.status == 410 and js.get("resync") is True, f"SSE with a Last-Event-ID past retention: 410 resync "
                                                        f"({s.status})", body[:200])
    for params in ("limit=0", "limit=abc", "limit=10001", "since=-1", "since=abc", "wait=61", "wait=-1",
                   "wait=x", "limit="):
        st, js = anon.get(f"/api/pools/r16/changes?{params}")
        check(st == 400 and js.get("error"), f"/changes?{params}: 400 with an error ({st})", js)
    st, js = anon.get("/api/pools/nope/changes?since=0")
    check(st == 404, f"/changes of an unknown pool: 404 ({st})")
    for params in ("limit=0", "limit=10001", "cursor=x"):
        st, js = anon.get(f"/api/pools/r16/members?{params}")
        check(st == 400, f"/members?{params}: 400 ({st})", js)

    # Delete by the editor; the audit log.
    st, d = editor.json("DELETE", "/api/rules/r16", None)
    check(st == 200 and d.get("deleted") is True, f"the editor deletes ({st})", d)
    audit_path = os.path.join(srv.data, "audit.log")
    lines = [json.loads(ln) for ln in read(audit_path).splitlines() if ln.strip()] if os.path.exists(
        audit_path) else []
    acts = [(a.get("who"), a.get("action"), a.get("target")) for a in lines]
    want = [("alice", "draft", "r16"), ("alice", "publish", "r16"), ("root", "draft", "r16"),
            ("root", "publish", "r16"), ("alice", "rollback", "r16"), ("alice", "delete", "r16")]
    check(acts == want, "DATA/audit.log has one JSON line per rule change, with who and action", acts)
    check(lines and all(a.get("addr") == "127.0.0.1" and a.get("ts") for a in lines),
          "every audit line carries the client's address and a time", lines[:2])
    if os.path.exists(audit_path):
        check(os.stat(audit_path).st_mode & 0o077 == 0, "audit.log is not readable by others",
              oct(os.stat(audit_path).st_mode))

    # A broken token file (a duplicate token) keeps the previous tokens.
    write_tokens(tfile, [("ci-loader", "ingest", tok_ingest), ("alice", "editor", tok_editor2),
                         ("bob", "editor", tok_editor2), ("root", "admin", tok_admin)])
    time.sleep(1.5)
    st, js = editor.json("POST", "/api/rules/r16/preview", b"")
    st2, js2 = Client(port, tok_editor2).json("POST", "/api/rules/r16/preview", b"")
    check(st == 404 and st2 == 401, f"a token file with a duplicate token is refused, the old tokens stay "
                                    f"({st}, {st2})", (js, js2))
    # The token file is rewritten (temp + rename): picked up within seconds.
    write_tokens(tfile, [("ci-loader", "ingest", tok_ingest), ("alice", "editor", tok_editor2),
                         ("bob", "editor", tok_bob), ("root", "admin", tok_admin)])
    t = time.time()
    ok = False
    while time.time() - t < 6:
        st, _ = editor.json("PUT", "/api/rules/r17", RULE_R16.replace("r16", "r17") % 10,
                            {"Content-Type": "text/x-lua"})
        if st == 401:
            ok = True
            break
        time.sleep(0.1)
    took = time.time() - t
    check(ok and took < 5, f"the replaced token stops working {took:.1f} s after the token file's rename")
    bob = Client(port, tok_bob)
    st, js = bob.json("PUT", "/api/rules/r17", RULE_R16.replace("r16", "r17") % 10, {"Content-Type": "text/x-lua"})
    st2, pub = bob.json("POST", "/api/rules/r17/publish", b"")
    h = (anon.get("/api/rules/r17")[1].get("history")) or []
    check(st == 200 and st2 == 200 and h and h[-1].get("author") == "bob",
          f"a token added to the file works and is the author ({st}, {st2})", h[-1:])
    st, js = Client(port, tok_editor2).json("PUT", "/api/rules/r17", RULE_R16.replace("r16", "r17") % 11,
                                            {"Content-Type": "text/x-lua"})
    check(st == 200 and (js.get("draft") or {}).get("author") == "alice", f"alice's new token works ({st})", js)
    for c in (anon, ingest, editor, admin, bob):
        c.close()
    check(srv.stop() == 0, "server B exits cleanly on SIGTERM")
    text = read(srv.logpath)
    check(not any(t in text for t in (tok_ingest, tok_editor, tok_admin, tok_editor2, tok_bob)),
          "no token appears in the server's log")

    # --read-token-required.
    srv = Server(binary, tmp, "C", rules, SMALL, cat, ["--token-file", tfile, "--read-token-required"])
    health = srv.start()
    check(health and health.get("skus") == SMALL, f"server C up with --read-token-required: {health}")
    anon, ingest = Client(srv.port), Client(srv.port, tok_ingest)
    for path in ("/api/pools", "/api/rules", "/api/skus/SG-0000004", "/api/pools/r17/changes?since=0",
                 "/metrics"):
        st, _, body = anon.request("GET", path)
        st2, _, _ = ingest.request("GET", path)
        check(st == 401 and st2 == 200, f"GET {path}: 401 without a token, 200 with one ({st}, {st2})", body[:150])
    st, _, _ = anon.request("GET", "/api/pools", None, {"Authorization": "Bearer " + "f" * 32})
    check(st == 401, f"a wrong token cannot read ({st})")
    anon.close()
    ingest.close()
    check(srv.stop() == 0, "server C exits cleanly on SIGTERM")

    # Non-loopback listening.
    port = free_port()
    r = subprocess.run([binary, "serve", "--rules", rules, "--listen", f"0.0.0.0:{port}", "--data",
                        os.path.join(tmp, "data-D")], capture_output=True, text=True, timeout=30)
    msg = r.stderr + r.stdout
    check(r.returncode == 1 and "--token-file" in msg and "--insecure" in msg,
          f"0.0.0.0 without --token-file: exit 1 naming --token-file and --insecure ({r.returncode})", msg[:300])
    srv = Server(binary, tmp, "D", rules, SMALL, cat, ["--insecure"], listen_host="0.0.0.0")
    health = srv.start()
    check(health and health.get("skus") == SMALL, f"0.0.0.0 with --insecure starts: {health}")
    check(srv.stop() == 0, "server D exits cleanly on SIGTERM")


def main():
    binary = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN")) or "build/poold"
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"feed_auth_test: no executable at {binary} (build first, or pass the poold binary)")
        sys.exit(2)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="poold-feed-auth-")
    global failed
    try:
        feed_tests(binary, tmp)
        print(f"change feed done after {time.time() - t0:.1f} s")
        access_tests(binary, tmp)
    except Exception:  # a crash of the test itself is a failure, reported with its trace
        traceback.print_exc()
        failed += 1
    finally:
        for s in SERVERS:
            if s.proc is not None:
                check(s.stop() == 0, f"server {s.name} exits cleanly on SIGTERM")
        if failed:
            for s in SERVERS:
                s.print_log()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"feed/auth test took {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
