#!/usr/bin/env python3
"""End-to-end test of the rule lifecycle (issue 4) against a real `poold serve`
and the independent Python reference (reference.py). Python 3 stdlib only.

    python3 tests/e2e/lifecycle_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)

One server (20k SKUs from `poold gen catalog`, --clock event) with the rules
of tests/e2e/fixtures/lifecycle/ (hot, top, sched); the test posts its own
deterministic event stream (EventGen below) and mirrors
every rule in Python, so each membership is checked against a reference
computed from what the test posted:

 1. drafts: a syntax error is a 400 naming the right line (two lines tried),
    the live pool is untouched;
 2. preview of a new rule and of a new version: size, joins, leaves (counts
    and samples), sampled member fields and per-clause `where` counts equal
    the reference; the live pool is untouched;
 3. publish while a thread posts events with ?wait=applied: at the end the
    pool equals the reference; history has the version, its author (from
    X-Poold-Author) and its size;
 4. rollback: to V gives a new version (kind "rollback", from V) equal to
    the old rule on the current state, and with no events in between the
    membership is restored exactly;
 5. pins and exclusions against rule results, deletes and re-creation,
    through publish and rollback, in a plain and in a ranked pool;
 6. rank/limit: after streams of events the members page order equals the
    reference sort (score desc, ties by SKU id), pins first;
 7. explain for ~60 SKUs: member, where clauses against the SKU's tags,
    match reads against GET /api/skus/SKU, rank score, pinned/excluded, and
    last_change naming the event seq (or the publish) that caused it;
 8. hot reload: rules/hot.lua is replaced (temp + rename) while events flow
    and a reader polls whole members pages: no page mixes the two versions
    (SG-only vs MY-only), both were seen, the end equals the reference; a
    broken file keeps the version live and is reported in /api/rules/hot
    (error.line) and /metrics (poold_rule_compile_error{rule="hot"} 1);
 9. sandbox: an infinite loop, unbounded recursion and a string bomb in
    match are stopped and counted (runtime_errors), as a new pool and as a
    new version of a live pool, and every other pool stays exact;
10. delete: 404 on the pool, "delete" in history, the file is gone, a
    rollback brings it back;
11. schedules: with the event clock the pool is "scheduled" (empty) until
    its `from`, "live" (equal to the reference) until `to`, then "inactive";
12. restart with the same --data: every rule's history (versions, kinds,
    authors, sizes, sources) and live version survive.

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import http.client
import json
import math
import os
import random
import re
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
SEED = 42
T0 = 1794268800000          # the catalog's ts (poold gen default): 2026-11-10T00:00Z
SCHED_FROM = T0 + 3 * 3600000
SCHED_TO = T0 + 4 * 3600000
BATCH = 200

passed = failed = 0


T_START = time.time()


def phase(name):
    print(f"[{time.time() - T_START:6.1f} s] {name}")


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


class Client:
    """One keep-alive HTTP/1.1 connection (one per thread); reconnects once."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=120):
        if isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, dict(r.getheaders()), data
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

    def get(self, path):
        return self.json("GET", path)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- the server ------------------------------------------------------------------

class Server:
    def __init__(self, binary, tmp, rules, data, catalog):
        self.binary, self.tmp, self.rules, self.data, self.catalog = binary, tmp, rules, data, catalog
        self.proc = None
        self.log = None
        self.port = None
        self.logs = []

    def start(self, load=True):
        """Starts poold (with --load CATALOG unless load is False) and waits
        until it has loaded: SKUS SKUs, or any number without the load."""
        self.port = free_port()
        path = os.path.join(self.tmp, f"server{len(self.logs)}.log")
        self.logs.append(path)
        self.log = open(path, "w")
        cmd = [self.binary, "serve", "--rules", self.rules, "--listen", f"127.0.0.1:{self.port}",
               "--data", self.data, "--clock", "event"] + (["--load", self.catalog] if load else [])
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        cli = Client(self.port)
        health, deadline = None, time.time() + 90
        while time.time() < deadline and self.proc.poll() is None:
            try:
                status, health = cli.get("/healthz")
                if status == 200 and health.get("loading") is False and (health.get("skus") == SKUS or not load):
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
        for path in self.logs:
            with open(path) as f:
                lines = f.read().splitlines()
            asan = [i for i, ln in enumerate(lines) if "Sanitizer" in ln and "ERROR" in ln]
            tail = lines[asan[0]:asan[0] + 80] if asan else lines[-25:]
            print(f"--- {os.path.basename(path)} (" + ("sanitizer report" if asan else "last 25 lines") + "):")
            print("\n".join(tail))


# -- events ----------------------------------------------------------------------

class EventGen:
    """A deterministic stream over the catalog's SKUs: prices, stock, tags,
    orders, ratings, views; ts rising from T0. Never changes a market, so a
    SKU id's prefix (SG-, MY-, ...) stays its market or it has none."""

    FREE_TAGS = ["bestseller", "giftable", "flash_eligible", "clearance", "blocked"]

    def __init__(self, ids, seed):
        self.rnd = random.Random(seed)
        self.ids = ids
        self.ts = T0 + 1000

    def line(self, sku=None):
        r = self.rnd
        sku = sku or r.choice(self.ids)
        self.ts += r.randint(20, 200)
        k = r.random()
        if k < 0.35:
            ev = {"op": "price", "sku": sku, "price": round(r.uniform(2, 120), 2)}
            if r.random() < 0.5:
                ev["list_price"] = round(ev["price"] * r.uniform(1.0, 2.2), 2)
        elif k < 0.55:
            ev = {"op": "stock", "sku": sku, "stock": 0 if r.random() < 0.25 else r.randint(1, 300)}
        elif k < 0.70:
            t = r.choice(self.FREE_TAGS[:4]) if r.random() < 0.85 else "blocked"
            ev = {"op": "tag", "sku": sku, ("add" if r.random() < 0.5 else "remove"): [t]}
        elif k < 0.85:
            qty = r.randint(1, 3)
            ev = {"op": "order", "sku": sku, "qty": qty, "amount": round(qty * r.uniform(5, 90), 2)}
        elif k < 0.95:
            ev = {"op": "upsert", "sku": sku, "rating": round(r.uniform(3, 5), 1), "reviews": r.randint(0, 500)}
        else:
            ev = {"op": "view", "sku": sku}
        ev["ts"] = self.ts
        return json.dumps(ev, separators=(",", ":"))

    def lines(self, n):
        return [self.line() for _ in range(n)]

    def next_ts(self):
        self.ts += 50
        return self.ts


def post(cli, ref, lines, what):
    """Posts NDJSON lines with ?wait=applied, applies them to the reference;
    returns the answer (or None after a failed check)."""
    body = "\n".join(lines) + "\n"
    POSTED.extend(json.loads(ln)["sku"] for ln in lines)
    status, r = cli.json("POST", "/api/events?wait=applied", body, {"Content-Type": "application/x-ndjson"})
    rej = ref.apply_text(body)
    if not check(status == 200 and r.get("accepted") == len(lines) and not rej and r.get("applied") is True,
                 f"{what}: POST /api/events accepted every line and applied it ({status})", r):
        return None
    return r


class Poster(threading.Thread):
    """Posts `batches` batches with ?wait=applied on its own connection and
    applies them to the reference (only this thread touches ref while it
    runs). Failures are collected and checked by the main thread."""

    def __init__(self, port, ref, gen, batches, size=BATCH):
        super().__init__(daemon=True)
        self.cli = Client(port)
        self.ref, self.gen, self.batches, self.size = ref, gen, batches, size
        self.errors = []
        self.done = 0
        self.progress = threading.Event()
        self.stop = threading.Event()

    def run(self):
        try:
            for _ in range(self.batches):
                if self.stop.is_set():
                    break
                lines = self.gen.lines(self.size)
                body = "\n".join(lines) + "\n"
                POSTED.extend(json.loads(ln)["sku"] for ln in lines)
                status, r = self.cli.json("POST", "/api/events?wait=applied", body,
                                          {"Content-Type": "application/x-ndjson"})
                rej = self.ref.apply_text(body)
                if status != 200 or r.get("accepted") != len(lines) or rej or r.get("applied") is not True:
                    self.errors.append((status, str(r)[:200], rej[:3]))
                self.done += 1
                self.progress.set()
        except Exception as exc:  # reported by the main thread
            self.errors.append(("exception", repr(exc)))
        finally:
            self.cli.close()

    def wait_batches(self, n, timeout=60):
        deadline = time.time() + timeout
        while self.done < n and self.is_alive() and time.time() < deadline:
            self.progress.wait(0.2)
            self.progress.clear()


# -- reading pools -----------------------------------------------------------------

def members(cli, name, page=1000):
    """Pages through a pool. Returns (list, info) or (None, error text)."""
    out, cursor, seqs, size, version = [], None, set(), None, None
    for _ in range(200):
        path = f"/api/pools/{q(name)}/members?limit={page}" + (f"&cursor={q(cursor)}" if cursor is not None else "")
        status, r = cli.get(path)
        if status != 200:
            return None, f"GET {path} -> {status} {r}"
        out += r.get("members") or []
        seqs.add(r.get("seq"))
        size, version = r.get("size"), r.get("version")
        cursor = r.get("next")
        if cursor is None:
            return out, {"size": size, "seqs": seqs, "version": version}
    return None, "the cursor does not advance"


def compare_pool(cli, ref, rule, when, ordered=False):
    """The pool equals the reference (and is listed in rank order if asked)."""
    got, info = members(cli, rule.name, page=7 if ordered else 1000)  # small pages: the rank-order cursor
    if not check(got is not None, f"{when}: members of {rule.name} readable", info):
        return None
    exp = ref.pool(rule)
    gs = set(got)
    ok = check(gs == exp and len(got) == len(gs) and info["size"] == len(got),
               f"{when}: pool {rule.name} equals the reference (expected {len(exp)}, got {len(gs)}, "
               f"size {info['size']}, {len(got) - len(gs)} listed twice)",
               f"missing {sorted(exp - gs)[:6]} extra {sorted(gs - exp)[:6]}")
    if not ok:
        for sid in (sorted(exp - gs)[:2] + sorted(gs - exp)[:2]):
            print(f"        reference {sid}: {json.dumps(ref.explain(sid), sort_keys=True)[:600]}")
            st, ex = cli.get(f"/api/skus/{q(sid)}/explain?pool={q(rule.name)}")
            print(f"        explain ({st}): {json.dumps(ex, sort_keys=True)[:600]}")
    if ok and ordered:
        order = ref.ranked_order(rule)
        check(got == order, f"{when}: {rule.name} listed in rank order (score desc, ties by SKU id, pins first)",
              [(i, a, b) for i, (a, b) in enumerate(zip(got, order)) if a != b][:5])
    return gs


def rule_info(cli, name):
    status, r = cli.get(f"/api/rules/{q(name)}")
    return r if status == 200 else None


def metric_values(text, name):
    out = {}
    for line in text.splitlines():
        m = re.match(r'^' + re.escape(name) + r'(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def put_rule(cli, name, source, author=None):
    h = {"Content-Type": "text/x-lua"}
    if author:
        h["X-Poold-Author"] = author
    return cli.json("PUT", f"/api/rules/{q(name)}", source, h)


def publish(cli, name, author=None):
    return cli.json("POST", f"/api/rules/{q(name)}/publish", b"", {"X-Poold-Author": author} if author else {})


def rollback(cli, name, version, author=None):
    return cli.json("POST", f"/api/rules/{q(name)}/rollback?version={version}", b"",
                    {"X-Poold-Author": author} if author else {})


def write_rule_file(rules_dir, name, source):
    """As editors save: a temp file in the same directory, then rename."""
    tmp = os.path.join(rules_dir, f"{name}.lua.tmp~")
    with open(tmp, "w") as f:
        f.write(source)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(rules_dir, f"{name}.lua"))


def wait_for(fn, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


def read(path):
    with open(path) as f:
        return f.read()


# -- rules and their Python mirrors -----------------------------------------------------

def top_rank(s):
    return math.floor(s.discount * 20) + (0.5 if s.has("bestseller") else 0)


HOT_OLD = R.Rule("hot", where="market:SG & in_stock & !blocked", match=lambda s: s.price < 60)
HOT_NEW = R.Rule("hot", where="market:MY & in_stock & !blocked", match=lambda s: s.price < 60)
TOP = R.Rule("top", where="in_stock & !blocked", match=lambda s: s.discount >= 0.05, rank=top_rank, limit=60,
             pin=["ZZ-PIN-1"], exclude=["ZZ-EXC-1"])
TOP_V2 = """-- top, version 2 (lifecycle_test.py): other rank, limit and pins
return pool "top" {
  title = "Top by price band (ranked v2)",
  where = all { tag "in_stock", no_tag "blocked" },
  match = function(s) return s.discount >= 0.1 end,
  rank = function(s) return math.floor(s.price / 10) end,
  limit = 25,
  pin = { "ZZ-PIN-1", "MY-0000006" },
  exclude = { "ZZ-EXC-1" },
}
"""
TOP_V2_RULE = R.Rule("top", where="in_stock & !blocked", match=lambda s: s.discount >= 0.1,
                     rank=lambda s: math.floor(s.price / 10), limit=25, pin=["ZZ-PIN-1", "MY-0000006"],
                     exclude=["ZZ-EXC-1"])
FRESH = """return pool "fresh" {
  where = all { tag "fresh_tag_x", tag "in_stock" },
}
"""
FRESH_RULE = R.Rule("fresh", where="fresh_tag_x & in_stock")
SCHED = R.Rule("sched", where="market:ID & lazmall",
               active=("2026-11-10T11:00:00+08:00", "2026-11-10T12:00:00+08:00"))

PROMO_V1 = """-- promo, version 1 (lifecycle_test.py)
return pool "promo" {
  title = "Promo v1",
  where = all { tag "market:SG", tag "in_stock", no_tag "blocked" },
  match = function(s)
    return s.price < 40
  end,
  pin = { "%(P1)s", "%(PX)s" },
  exclude = { "%(X1)s", "%(PX)s" },
}
"""
PROMO_V2 = """-- promo, version 2 (lifecycle_test.py)
return pool "promo" {
  title = "Promo v2",
  where = all { any { tag "market:SG", tag "market:MY" }, tag "in_stock", no_tag "blocked" },
  match = function(s)
    return s.discount >= 0.2 and s.price < 80
  end,
  pin = { "%(P2)s" },
  exclude = { "%(X2)s" },
}
"""
BAD_LINE6 = """return pool "promo" {
  where = all { tag "market:SG" },
  match = function(s)
    local x = s.price
    return x <
  end,
}
"""
BAD_LINE2 = """return pool "promo" {
  where = all { tag "market:SG" tag "in_stock" },
}
"""
RUNAWAY = {
    # name: (match body, error text expected in last_runtime_error)
    "loop": ("if s.price > 300 then while true do end end", "budget"),
    "recur": ("if s.price > 300 then local function f(n) return f(n + 1) + 1 end return f(1) end", None),
    "bomb": ("if s.price > 300 then local x = string.rep(\"x\", 1000000000) return #x > 0 end", None),
}


HARMLESS = "local _ = s.price"


def runaway_source(name, body):
    """SKUs priced above 300 run away in match (unless body is HARMLESS);
    the others are members when cheaper than 50, and the runaway ones would
    be members too if match returned."""
    return f"""return pool "{name}" {{
  where = all {{ tag "market:SG", tag "in_stock" }},
  match = function(s)
    {body}
    return s.price < 50 or s.price > 300
  end,
}}
"""


def runaway_rule(name):
    """A stopped evaluation leaves the SKU out of the pool."""
    return R.Rule(name, where="market:SG & in_stock", match=lambda s: s.price < 50)


def harmless_rule(name):
    return R.Rule(name, where="market:SG & in_stock", match=lambda s: s.price < 50 or s.price > 300)


def promo_rules(ids):
    v1 = R.Rule("promo", where="market:SG & in_stock & !blocked", match=lambda s: s.price < 40,
                pin=[ids["P1"], ids["PX"]], exclude=[ids["X1"], ids["PX"]])
    v2 = R.Rule("promo", where="(market:SG | market:MY) & in_stock & !blocked",
                match=lambda s: s.discount >= 0.2 and s.price < 80, pin=[ids["P2"]], exclude=[ids["X2"]])
    return v1, v2


def pick_ids(ref):
    """Pins/exclusions for promo, chosen from the catalog by the reference."""
    v1 = R.Rule("promo", where="market:SG & in_stock & !blocked", match=lambda s: s.price < 40)
    v2 = R.Rule("promo", where="(market:SG | market:MY) & in_stock & !blocked",
                match=lambda s: s.discount >= 0.2 and s.price < 80)
    m1, m2 = sorted(ref.pool(v1)), sorted(ref.pool(v2))
    th = sorted(s for s in ref.skus if s.startswith("TH-"))
    return {"P1": th[3], "PX": m1[5], "X1": m1[7], "P2": th[11], "X2": m2[9]}


# -- explain ---------------------------------------------------------------------------------

METRIC_RE = re.compile(r"^(sales|gmv|views|clicks|carts)_(1h|24h|7d)$")


def read_value(key, sku):
    """The value of a field a rule read (explain's match.reads key) in GET /api/skus/SKU."""
    f = sku.get("fields") or {}
    if key in f:
        return f[key]
    if key == "sku":
        return sku.get("sku")
    if key.startswith("attrs."):
        return (sku.get("attrs") or {}).get(key[6:])
    m = re.match(r"^has\((.*)\)$", key)
    if m:
        return m.group(1) in (sku.get("tags") or [])
    m = METRIC_RE.match(key)
    if m:
        return ((sku.get("counters") or {}).get(m.group(2)) or {}).get(m.group(1))
    raise KeyError(key)


def same_value(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def explain_checks(cli, ref, rule, sids, when):
    """Explain vs the members API, the SKU's tags and fields, the reference."""
    bad = []
    exp = ref.pool(rule)
    for sid in sids:
        st, ex = cli.get(f"/api/skus/{q(sid)}/explain?pool={q(rule.name)}")
        st2, mem = cli.get(f"/api/pools/{q(rule.name)}/members/{q(sid)}")
        st3, sku = cli.get(f"/api/skus/{q(sid)}")
        if st != 200 or st2 != 200 or st3 != 200:
            bad.append(f"{sid}: status explain {st} member {st2} sku {st3}: {ex}")
            continue
        if ex.get("member") is not mem.get("member"):
            bad.append(f"{sid}: explain member {ex.get('member')} != members API {mem.get('member')}")
        if ex.get("member") is not (sid in exp):
            bad.append(f"{sid}: explain member {ex.get('member')} != reference {sid in exp}")
        tags = set(sku.get("tags") or [])
        for w in ex.get("where") or []:
            try:
                want = R.eval_tagexpr(R.parse_tagexpr(w["clause"]), tags)
            except (KeyError, R.TagExprError) as e:
                bad.append(f"{sid}: where clause {w} unreadable: {e}")
                continue
            if w.get("has") is not want:
                bad.append(f"{sid}: where {w['clause']!r} has={w.get('has')} but the SKU's tags say {want}")
        where_ok = R.eval_tagexpr(rule.tree, tags)
        if ex.get("where_result") is not where_ok:
            bad.append(f"{sid}: where_result {ex.get('where_result')} != {where_ok}")
        if bool(ex.get("pinned")) != (sid in rule.pin) or bool(ex.get("excluded")) != (sid in rule.exclude):
            bad.append(f"{sid}: pinned/excluded {ex.get('pinned')}/{ex.get('excluded')}")
        view = R.View(ref.skus[sid], ref.clock)
        if rule.match is not None:
            m = ex.get("match")
            if not isinstance(m, dict):
                bad.append(f"{sid}: no match section: {ex}")
            else:
                if m.get("result") is not bool(rule.match(view)):
                    bad.append(f"{sid}: match.result {m.get('result')} != reference {bool(rule.match(view))}")
                reads = m.get("reads") or {}
                if not reads:
                    bad.append(f"{sid}: match.reads is empty")
                for k, v in reads.items():
                    try:
                        want = read_value(k, sku)
                    except KeyError:
                        bad.append(f"{sid}: match read {k!r} is not a field of /api/skus/{sid}")
                        continue
                    if not same_value(v, want):
                        bad.append(f"{sid}: match read {k}={v!r} but /api/skus says {want!r}")
        if rule.rank is not None and where_ok and (rule.match is None or rule.match(view)):
            score = (ex.get("rank") or {}).get("score")
            if not (isinstance(score, (int, float)) and same_value(score, rule.rank(view))):
                bad.append(f"{sid}: rank score {score} != reference {rule.rank(view)}")
    check(not bad, f"{when}: explain of {len(sids)} SKUs agrees with the members API, the SKU's tags and fields "
                   f"and the reference ({len(bad)} differences)", "; ".join(bad[:6]))


# -- the test ------------------------------------------------------------------------------------

SERVER = []
POSTED = []  # the SKU of every line posted, in order (for "untouched since")


def main():
    binary = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN")) or "build/poold"
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"lifecycle_test: no executable at {binary} (build first, or pass the poold binary)")
        sys.exit(2)
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="poold-lifecycle-")
    global failed
    try:
        run(binary, tmp, t_start)
    except Exception:  # a crash of the test itself is a failure, reported with its trace
        traceback.print_exc()
        failed += 1
    finally:
        for s in SERVER:
            if s.proc is not None:
                check(s.stop() == 0, "poold exits cleanly on SIGTERM")
        if failed and SERVER:
            SERVER[0].print_log()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"lifecycle test took {time.time() - t_start:.1f} s")


def run(binary, tmp, t_start):
    cat = os.path.join(tmp, "catalog.ndjson")
    r = subprocess.run([binary, "gen", "catalog", "--skus", str(SKUS), "--seed", str(SEED), "--out", cat],
                       capture_output=True, text=True, timeout=60)
    if not check(r.returncode == 0, "poold gen catalog", r.stderr):
        return
    rules = os.path.join(tmp, "rules")
    os.mkdir(rules)
    for f in ("hot.lua", "top.lua", "sched.lua"):
        shutil.copy(os.path.join(FIX, f), rules)
    data = os.path.join(tmp, "data")
    srv = Server(binary, tmp, rules, data, cat)
    SERVER.append(srv)
    health = srv.start()
    if not check(health is not None and health.get("skus") == SKUS and health.get("loading") is False,
                 f"server up with the catalog loaded: {health}"):
        return
    port = srv.port
    cli = Client(port)
    ref = R.Reference()
    check(not ref.apply_text(read(cat)), "the catalog is valid for the reference")
    gen = EventGen(sorted(ref.skus), 7)
    print(f"server ready after {time.time() - t_start:.1f} s")

    # -- 0. the rules of the directory, as loaded ---------------------------------------------
    phase("0 rules as loaded")
    for rule in (HOT_OLD, TOP, SCHED):
        st, p = cli.get(f"/api/pools/{rule.name}")
        check(st == 200 and p.get("where") == rule.where and p.get("version") == 1,
              f"{rule.name}: loaded from the rules directory, version 1, where {rule.where!r}", p)
        info = rule_info(cli, rule.name)
        h = (info or {}).get("history") or []
        check(len(h) == 1 and h[0].get("kind") == "file" and h[0].get("author") == "file",
              f"{rule.name}: history starts with one version of kind file by \"file\"", h)
    compare_pool(cli, ref, HOT_OLD, "start")
    compare_pool(cli, ref, TOP, "start", ordered=True)
    st, p = cli.get("/api/pools/sched")
    check(p.get("size") == 0 and p.get("active") is False and p.get("state") == "scheduled",
          "sched: before its window the pool is empty, inactive and \"scheduled\"", p)

    # -- 1. drafts with errors ------------------------------------------------------------------
    phase("1 drafts")
    for src, line in ((BAD_LINE6, 6), (BAD_LINE2, 2)):
        st, r = put_rule(cli, "promo", src, "alice")
        check(st == 400 and r.get("line") == line and str(r.get("file", "")).endswith("promo.lua")
              and r.get("message") and r.get("error"),
              f"PUT /api/rules/promo with a syntax error on line {line}: 400 naming line {line}", (st, r))
    st, _ = cli.get("/api/pools/promo")
    check(st == 404, f"no pool promo after rejected drafts ({st})")
    info = rule_info(cli, "promo")
    check(info is None or info.get("draft") is None, "a rejected draft is not saved", info)
    st, r = put_rule(cli, "hot", BAD_LINE6.replace('"promo"', '"hot"'), "alice")
    info = rule_info(cli, "hot")
    check(st == 400 and r.get("line") == 6 and info.get("draft") is None and info.get("version") == 1,
          "a broken draft of a live rule: 400, no draft saved, the live version untouched", (st, r))
    compare_pool(cli, ref, HOT_OLD, "after a broken draft of hot")

    # -- 2. a new rule: draft, preview, publish -------------------------------------------------
    phase("2 new rule")
    ids = pick_ids(ref)
    v1_rule, v2_rule = promo_rules(ids)
    src_v1, src_v2 = PROMO_V1 % ids, PROMO_V2 % ids
    st, r = put_rule(cli, "promo", src_v1, "alice")
    check(st == 200 and (r.get("draft") or {}).get("source") == src_v1, "PUT promo v1 draft: 200", (st, r))
    info = rule_info(cli, "promo")
    check(info and (info.get("draft") or {}).get("author") == "alice" and info.get("version") is None,
          "GET /api/rules/promo shows the draft by alice and no live version", info)
    st, pv = cli.json("POST", "/api/rules/promo/preview", b"")
    exp1 = ref.pool(v1_rule)
    check(st == 200 and pv.get("size") == len(exp1) and (pv.get("joins") or {}).get("count") == len(exp1)
          and (pv.get("leaves") or {}).get("count") == 0,
          f"preview of a new rule: size == joins == {len(exp1)}, no leaves", (st, {k: pv.get(k) for k in
                                                                                ("size", "joins", "leaves")}))
    st, _ = cli.get("/api/pools/promo")
    check(st == 404, "preview does not create the pool")
    st, pub = publish(cli, "promo", "alice")
    check(st == 200 and pub.get("version") == 1 and pub.get("size") == len(exp1),
          f"publish promo v1 by alice: version 1, size {len(exp1)}", pub)
    sizes = {1: pub.get("size")}
    compare_pool(cli, ref, v1_rule, "promo v1 published")
    check(read(os.path.join(rules, "promo.lua")) == src_v1, "publish wrote rules/promo.lua with the v1 source")
    got = set(members(cli, "promo")[0] or [])
    check(ids["P1"] in got and ids["X1"] not in got and ids["PX"] not in got,
          "promo v1: the pin outside `where` is a member, the excluded match is not, pinned+excluded is not")

    # -- 3. preview of a new version against an independent reference -----------------------------
    phase("3 preview")
    st, r = put_rule(cli, "promo", src_v2, "bob")
    check(st == 200, "PUT promo v2 draft by bob", (st, r))
    live = set(members(cli, "promo")[0] or [])
    exp2 = ref.pool(v2_rule)
    st, pv = cli.json("POST", "/api/rules/promo/preview", b"")
    joins, leaves = exp2 - live, live - exp2
    pj, pl = pv.get("joins") or {}, pv.get("leaves") or {}
    check(st == 200 and pv.get("size") == len(exp2), f"preview v2 size {pv.get('size')} == reference {len(exp2)}")
    check(pj.get("count") == len(joins) and pl.get("count") == len(leaves) and len(joins) > 0 and len(leaves) > 0,
          f"preview v2 joins {pj.get('count')} / leaves {pl.get('count')} == reference {len(joins)} / {len(leaves)}")
    check(pj.get("sample") and set(pj["sample"]) <= joins and pl.get("sample") and set(pl["sample"]) <= leaves,
          "preview samples of joins and leaves are within the reference's joins and leaves",
          (pj.get("sample"), pl.get("sample")))
    bad = []
    for m in pv.get("sample") or []:
        s = ref.skus.get(m.get("sku"))
        if m.get("sku") not in exp2 or s is None:
            bad.append(f"{m.get('sku')} not a member of the new version")
            continue
        for f in ("market", "price", "list_price", "stock", "rating", "discount", "category", "brand"):
            if f in m and not same_value(m[f], getattr(s, f)):
                bad.append(f"{m['sku']}.{f} = {m[f]} != {getattr(s, f)}")
    check(pv.get("sample") and not bad, "preview sample: members of the new version with the reference's fields",
          bad[:5])
    tags = ref.all_tags()
    clauses = pv.get("where") or []
    acc = set(tags)
    bad = []
    for c in clauses:
        one = ref.where_set(c.get("clause", ""), tags)
        acc &= one
        if c.get("count") != len(one) or c.get("cumulative") != len(acc):
            bad.append(f"{c} vs {len(one)}/{len(acc)}")
    check(len(clauses) == 3 and not bad, "preview per-clause where counts (alone, cumulative) equal the reference",
          (clauses, bad))
    check(pv.get("candidates") == len(acc | {p for p in v2_rule.pin if p in ref.skus}),
          f"preview candidates {pv.get('candidates')} == where + pins")
    info = rule_info(cli, "promo")
    check(info.get("version") == 1 and info.get("has_draft") is True and set(members(cli, "promo")[0]) == live,
          "preview leaves the live pool and the draft alone")

    # -- 4. publish while events flow ----------------------------------------------------------
    phase("4 publish while events flow")
    poster = Poster(port, ref, gen, 200)
    poster.start()
    poster.wait_batches(6)
    st, pub = publish(cli, "promo", "bob")
    during = poster.done
    poster.wait_batches(during + 6)
    poster.stop.set()
    poster.join(120)
    check(not poster.errors, "events posted during the publish were all accepted and applied", poster.errors[:3])
    check(st == 200 and pub.get("version") == 2, f"publish promo v2 by bob while events flow: version 2 ({st})",
          pub)
    check(6 <= during < poster.done, f"the publish happened while the stream ran (after {during} of "
                                     f"{poster.done} batches)")
    sizes[2] = pub.get("size")
    compare_pool(cli, ref, v2_rule, "promo v2 after the stream")
    compare_pool(cli, ref, HOT_OLD, "hot after the stream")
    compare_pool(cli, ref, TOP, "top after the stream", ordered=True)
    info = rule_info(cli, "promo")
    h = info.get("history") or []
    check([(x.get("version"), x.get("kind"), x.get("author")) for x in h] == [(1, "publish", "alice"),
                                                                             (2, "publish", "bob")],
          "promo history: v1 publish by alice, v2 publish by bob", h)
    check([x.get("size") for x in h] == [sizes[1], sizes[2]], "history sizes are the sizes at publish",
          ([x.get("size") for x in h], sizes))
    check(info.get("has_draft") is False and info.get("source") == src_v2 and h[-1].get("source") == src_v2,
          "after publish the draft is gone and the live source is v2")
    check(read(os.path.join(rules, "promo.lua")) == src_v2, "rules/promo.lua holds the v2 source")

    # -- 5. rollback -------------------------------------------------------------------------
    phase("5 rollback")
    st, rb = rollback(cli, "promo", 1, "carol")
    check(st == 200 and rb.get("version") == 3, f"rollback promo to version 1: new version 3 ({st})", rb)
    m3 = compare_pool(cli, ref, v1_rule, "promo rolled back to v1 (v3)")
    h = (rule_info(cli, "promo") or {}).get("history") or []
    check(len(h) == 3 and h[2].get("kind") == "rollback" and h[2].get("from") == 1 and h[2].get("author") == "carol"
          and h[2].get("source") == src_v1 and h[2].get("live") is True,
          "history v3: kind rollback, from 1, by carol, v1's source, live", h[-1:])
    check(read(os.path.join(rules, "promo.lua")) == src_v1, "rules/promo.lua holds v1's source again")
    sizes[3] = rb.get("size")
    # Exactly the old membership: publish v4 = v2's source, then roll back to
    # v3 with no event in between.
    put_rule(cli, "promo", src_v2, "dave")
    st, pub = publish(cli, "promo", "dave")
    sizes[4] = pub.get("size")
    m4 = compare_pool(cli, ref, v2_rule, "promo v4 (v2's source)") or set()
    st, rb = rollback(cli, "promo", 3, "erin")
    posted_at_v5 = len(POSTED)
    sizes[5] = rb.get("size")
    got = set(members(cli, "promo")[0] or [])
    check(st == 200 and rb.get("version") == 5 and m3 is not None and got == m3,
          f"rollback to v3 with no events in between restores its membership exactly ({len(got)} vs "
          f"{len(m3 or ())})", (rb, sorted((m3 or set()) ^ got)[:5]))

    # -- 6. pins and exclusions under events ------------------------------------------------
    phase("6 pins")
    P1, PX, X1 = ids["P1"], ids["PX"], ids["X1"]
    post(cli, ref, [json.dumps({"op": "upsert", "sku": X1, "price": 1.0, "list_price": 50.0, "stock": 100,
                                "ts": gen.next_ts()}),
                    json.dumps({"op": "tag", "sku": X1, "remove": ["blocked"], "ts": gen.next_ts()}),
                    json.dumps({"op": "stock", "sku": P1, "stock": 0, "ts": gen.next_ts()}),
                    json.dumps({"op": "tag", "sku": P1, "add": ["blocked"], "ts": gen.next_ts()}),
                    json.dumps({"op": "price", "sku": PX, "price": 1.0, "ts": gen.next_ts()})], "pins")
    compare_pool(cli, ref, v1_rule, "pins: excluded SKU made to match, pinned SKU made to fail")
    st, m = cli.get(f"/api/pools/promo/members/{q(P1)}")
    st2, m2 = cli.get(f"/api/pools/promo/members/{q(X1)}")
    check(m.get("member") is True and m2.get("member") is False,
          "a pin failing `where` stays a member; an exclusion matching everything stays out")
    post(cli, ref, [json.dumps({"op": "delete", "sku": P1, "ts": gen.next_ts()})], "delete pin")
    st, m = cli.get(f"/api/pools/promo/members/{q(P1)}")
    check(m.get("member") is False, "a deleted pinned SKU is not a member", m)
    compare_pool(cli, ref, v1_rule, "pins: pinned SKU deleted")
    post(cli, ref, [json.dumps({"sku": P1, "market": "TH", "category": "toys/dolls", "price": 500, "stock": 0,
                                "ts": gen.next_ts()})], "re-create pin")
    st, m = cli.get(f"/api/pools/promo/members/{q(P1)}")
    check(m.get("member") is True, "a pinned SKU created again is a member again", m)
    compare_pool(cli, ref, v1_rule, "pins: pinned SKU re-created")
    # The ranked pool: its pin and exclusion do not exist yet.
    compare_pool(cli, ref, TOP, "top before its pin exists", ordered=True)
    post(cli, ref, [json.dumps({"sku": "ZZ-PIN-1", "market": "VN", "price": 100, "list_price": 100, "stock": 0,
                                "ts": gen.next_ts()}),
                    json.dumps({"sku": "ZZ-EXC-1", "market": "VN", "price": 1, "list_price": 100, "stock": 50,
                                "tags": ["bestseller"], "ts": gen.next_ts()})], "ranked pins")
    got, _ = members(cli, "top")
    check(got and got[0] == "ZZ-PIN-1" and "ZZ-EXC-1" not in got,
          "top: the new pin is listed first, the excluded top scorer is not listed", (got or [])[:3])
    compare_pool(cli, ref, TOP, "top with its pin", ordered=True)

    # -- 7. rank/limit after a stream ------------------------------------------------------------
    phase("7 rank/limit")
    poster = Poster(port, ref, gen, 15)
    poster.run()  # in this thread
    check(not poster.errors, "stream for rank/limit accepted", poster.errors[:3])
    compare_pool(cli, ref, TOP, "top after a stream of events", ordered=True)
    compare_pool(cli, ref, v1_rule, "promo after a stream of events")
    compare_pool(cli, ref, HOT_OLD, "hot after a stream of events")
    # A new version of the ranked pool published while events flow, then rolled back.
    poster = Poster(port, ref, gen, 200)
    poster.start()
    poster.wait_batches(3)
    put_rule(cli, "top", TOP_V2, "rita")
    st, pub = publish(cli, "top", "rita")
    poster.wait_batches(poster.done + 4)
    poster.stop.set()
    poster.join(120)
    check(not poster.errors and st == 200 and pub.get("version") == 2,
          f"top v2 (ranked) published by rita while events flow ({st})", (pub, poster.errors[:2]))
    compare_pool(cli, ref, TOP_V2_RULE, "top v2 after the stream", ordered=True)
    st, rb = rollback(cli, "top", 1, "rita")
    check(st == 200 and rb.get("version") == 3, f"top rolled back to version 1 as version 3 ({st})", rb)
    compare_pool(cli, ref, TOP, "top rolled back to v1", ordered=True)
    # A rule on a tag no SKU has yet: it fills as events bring the tag.
    put_rule(cli, "fresh", FRESH, "rita")
    st, pub = publish(cli, "fresh", "rita")
    check(st == 200 and pub.get("size") == 0, "a rule on a tag nobody has yet is published empty", pub)
    post(cli, ref, [json.dumps({"op": "tag", "sku": sid, "add": ["fresh_tag_x"], "ts": gen.next_ts()})
                    for sid in sorted(ref.skus)[100:160]], "new tag")
    got = compare_pool(cli, ref, FRESH_RULE, "fresh after the tag appeared")
    check(got is not None and len(got) > 20, f"fresh filled with the tag ({len(got or ())} members)")

    # -- 8. explain ---------------------------------------------------------------------------
    phase("8 explain")
    rnd = random.Random(5)
    exp = ref.pool(v1_rule)
    where1 = ref.where_set(v1_rule.where)
    sample = (rnd.sample(sorted(exp), 20) + rnd.sample(sorted(where1 - exp), 15)
              + rnd.sample(sorted(set(ref.skus) - where1), 8) + [P1, PX, X1])
    explain_checks(cli, ref, v1_rule, sample, "promo")
    texp = ref.pool(TOP)
    twhere = ref.where_set(TOP.where)
    tsample = rnd.sample(sorted(texp - {"ZZ-PIN-1"}), 6) + rnd.sample(sorted(twhere - texp), 6) + ["ZZ-PIN-1",
                                                                                                    "ZZ-EXC-1"]
    explain_checks(cli, ref, TOP, tsample, "top")
    st, ex = cli.get(f"/api/skus/{q(P1)}/explain?pool=promo")
    check(ex.get("pinned") is True and ex.get("member") is True and "pin" in str(ex.get("reason")),
          "explain names a pin", ex.get("reason"))
    st, ex = cli.get(f"/api/skus/{q(X1)}/explain?pool=promo")
    check(ex.get("excluded") is True and ex.get("member") is False and "exclu" in str(ex.get("reason")),
          "explain names an exclusion", ex.get("reason"))
    st, ex = cli.get("/api/skus/NOPE-1/explain?pool=promo")
    check(st == 404, f"explain of an unknown SKU: 404 ({st})")
    st, ex = cli.get(f"/api/skus/{q(P1)}/explain?pool=nope")
    check(st == 404, f"explain in an unknown pool: 404 ({st})")
    # last_change names the event that caused it.
    cand = sorted(s for s in where1 - exp if s not in (P1, PX, X1))
    j = cand[0]
    r1 = post(cli, ref, [json.dumps({"op": "price", "sku": j, "price": 5.0, "ts": gen.next_ts()})], "join")
    st, ex = cli.get(f"/api/skus/{q(j)}/explain?pool=promo")
    lc = ex.get("last_change") or {}
    check(r1 and ex.get("member") is True and lc.get("op") == "add" and (lc.get("cause") or {}).get("kind") == "event"
          and (lc.get("cause") or {}).get("seq") == r1.get("seq"),
          f"{j} joined by a price change: last_change is an add caused by the event's seq {r1 and r1.get('seq')}",
          lc)
    r2 = post(cli, ref, [json.dumps({"op": "view", "sku": j, "ts": gen.next_ts()}),
                         json.dumps({"op": "price", "sku": j, "price": 99.0, "ts": gen.next_ts()})], "leave")
    st, ex = cli.get(f"/api/skus/{q(j)}/explain?pool=promo")
    lc = ex.get("last_change") or {}
    check(r2 and ex.get("member") is False and lc.get("op") == "remove"
          and (lc.get("cause") or {}).get("seq") == r2.get("seq"),
          f"{j} left by a price change: last_change is a remove caused by seq {r2 and r2.get('seq')}", lc)
    # A SKU that joined with the rollback to v3 (v5) and was not touched since.
    touched = set(POSTED[posted_at_v5:])
    untouched = sorted(s for s in (m3 or set()) - m4 if s in exp and s not in touched)
    if check(untouched, "some SKUs joined with the rollback to v3 and had no event since"):
        st, ex = cli.get(f"/api/skus/{q(untouched[0])}/explain?pool=promo")
        lc = ex.get("last_change") or {}
        cause = lc.get("cause") or {}
        check(lc.get("op") == "add" and cause.get("kind") == "publish" and cause.get("version") == 5,
              f"{untouched[0]}: last_change is the add caused by the rollback (publish, version 5)", lc)

    # -- 9. hot reload while events flow and a reader polls -------------------------------------
    phase("9 hot reload")
    observed = []
    stop_reader = threading.Event()
    reader_errors = []

    def reader():
        c = Client(port)
        try:
            while not stop_reader.is_set():
                st, r = c.get("/api/pools/hot/members?limit=10000")
                if st != 200:
                    reader_errors.append((st, r))
                    continue
                ms = r.get("members") or []
                observed.append((r.get("version"), r.get("size"), len(ms), {m[:3] for m in ms}, r.get("next")))
        except Exception as exc:
            reader_errors.append(repr(exc))
        finally:
            c.close()

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    poster = Poster(port, ref, gen, 300)
    poster.start()
    poster.wait_batches(5)
    write_rule_file(rules, "hot", read(os.path.join(FIX, "hot_new.lua")))
    t_write = time.time()
    at_write = poster.done
    switched = wait_for(lambda: (cli.get("/api/pools/hot")[1].get("version") or 0) >= 2, 15)
    t_switch = time.time() - t_write
    at_switch = poster.done
    poster.wait_batches(at_switch + 8)
    poster.stop.set()
    poster.join(120)
    check(at_write < at_switch < poster.done, f"events flowed while the file was reloaded (batches {at_write} at the "
                                              f"rename, {at_switch} at the switch, {poster.done} in all)")
    time.sleep(0.2)
    stop_reader.set()
    rt.join(30)
    check(not poster.errors and not reader_errors, "events and reads during the hot reload succeeded",
          (poster.errors[:2], reader_errors[:2]))
    check(switched, f"the rewritten rules/hot.lua went live as version 2 ({t_switch:.2f} s after the rename)")
    mixed = [o for o in observed if len(o[3]) > 1 or o[2] != o[1] or o[4] is not None]
    by_version = {}
    for v, _, _, prefixes, _ in observed:
        by_version.setdefault(v, set()).update(prefixes)
    old_pages = sum(1 for o in observed if o[3] == {"SG-"})
    new_pages = sum(1 for o in observed if o[3] == {"MY-"})
    check(not mixed, f"no members page mixes the old and the new rule ({len(observed)} pages read)", mixed[:3])
    check(by_version.get(1) == {"SG-"} and by_version.get(2) == {"MY-"},
          "pages of version 1 hold only SG SKUs, pages of version 2 only MY SKUs", by_version)
    check(old_pages > 0 and new_pages > 0, f"the reader saw both versions ({old_pages} old, {new_pages} new pages)")
    compare_pool(cli, ref, HOT_NEW, "hot after the reload and the stream")
    h = (rule_info(cli, "hot") or {}).get("history") or []
    check(len(h) == 2 and h[1].get("kind") == "file" and h[1].get("author") == "file"
          and h[1].get("source") == read(os.path.join(FIX, "hot_new.lua")),
          "hot history: version 2 of kind file by \"file\" with the new source", h[-1:])
    # A broken file keeps the previous version live and is reported.
    write_rule_file(rules, "hot", read(os.path.join(FIX, "hot_broken.lua")))
    info = wait_for(lambda: (lambda i: i if i and i.get("error") else None)(rule_info(cli, "hot")), 10)
    err = (info or {}).get("error") or {}
    check(err.get("line") == 4 and str(err.get("file", "")).endswith("hot.lua") and err.get("message"),
          "a broken rules/hot.lua is reported in /api/rules/hot with its line (4)", info and info.get("error"))
    check(info and info.get("version") == 2 and info.get("source") == read(os.path.join(FIX, "hot_new.lua")),
          "the previous version (2) stays live", info and info.get("version"))
    _, _, text = cli.request("GET", "/metrics")
    ce = metric_values(text.decode(), "poold_rule_compile_error")
    check(ce.get('{rule="hot"}') == 1.0 and ce.get('{rule="promo"}') == 0.0,
          "/metrics: poold_rule_compile_error{rule=\"hot\"} 1 (promo 0)", ce)
    st, p = cli.get("/api/pools/hot")
    check(p.get("compile_error") and p.get("state") == "failing", "GET /api/pools/hot reports the compile error",
          {k: p.get(k) for k in ("compile_error", "state")})
    post(cli, ref, gen.lines(BATCH), "after the broken file")
    compare_pool(cli, ref, HOT_NEW, "hot (version 2) still maintained while its file is broken")
    write_rule_file(rules, "hot", read(os.path.join(FIX, "hot_new.lua")))
    info = wait_for(lambda: (lambda i: i if i and i.get("error") is None else None)(rule_info(cli, "hot")), 10)
    _, _, text = cli.request("GET", "/metrics")
    ce = metric_values(text.decode(), "poold_rule_compile_error")
    check(info and info.get("version") == 2 and ce.get('{rule="hot"}') == 0.0,
          "restoring the file clears the error without a new version", (info and info.get("version"), ce))

    # -- 10. sandbox: runaway rules ----------------------------------------------------------------
    phase("10 sandbox")
    for name, (body, _) in RUNAWAY.items():
        put_rule(cli, name, runaway_source(name, HARMLESS), "sandbox")
        st, pub = publish(cli, name, "sandbox")
        check(st == 200 and pub.get("version") == 1, f"{name}: a harmless first version published", pub)
        compare_pool(cli, ref, harmless_rule(name), f"{name}: harmless version")
    runaway_cands = sum(1 for s in ref.where_set("market:SG & in_stock") if ref.skus[s].price > 300)
    check(runaway_cands > 0, f"some SKUs make the runaway rules run away ({runaway_cands})")
    for name, (body, want) in RUNAWAY.items():
        st, r = put_rule(cli, name, runaway_source(name, body), "sandbox")
        check(st == 200, f"{name}: the runaway draft compiles (the runaway is at run time)", r)
        t = time.time()
        st, pub = publish(cli, name, "sandbox")
        took = time.time() - t
        check(st == 200 and pub.get("version") == 2, f"{name}: runaway version published in {took:.2f} s", pub)
        info = rule_info(cli, name) or {}
        check((info.get("runtime_errors") or 0) >= runaway_cands,
              f"{name}: runtime_errors {info.get('runtime_errors')} counts the {runaway_cands} stopped evaluations "
              f"of the new version", {k: info.get(k) for k in ("runtime_errors", "last_runtime_error", "state")})
        if want:
            check(want in str(info.get("last_runtime_error")), f"{name}: the error says {want!r}",
                  info.get("last_runtime_error"))
        compare_pool(cli, ref, runaway_rule(name), f"{name}: stopped SKUs are not members")
    # A runaway rule that is new (not a version of a live pool).
    put_rule(cli, "loop2", runaway_source("loop2", RUNAWAY["loop"][0]), "sandbox")
    st, pub = publish(cli, "loop2", "sandbox")
    info = rule_info(cli, "loop2") or {}
    check(st == 200 and (info.get("runtime_errors") or 0) >= runaway_cands and info.get("state") == "failing",
          f"loop2 (new pool): runtime_errors {info.get('runtime_errors')} >= {runaway_cands}, state failing",
          {k: info.get(k) for k in ("runtime_errors", "last_runtime_error", "state")})
    hot_runaway = [s for s in sorted(ref.where_set("market:SG & in_stock")) if ref.skus[s].price > 300][:5]
    before = (rule_info(cli, "loop2") or {}).get("runtime_errors") or 0
    post(cli, ref, [json.dumps({"op": "price", "sku": s, "price": 400 + i, "ts": gen.next_ts()})
                    for i, s in enumerate(hot_runaway)] + gen.lines(BATCH), "runaway SKUs touched")
    after = (rule_info(cli, "loop2") or {}).get("runtime_errors") or 0
    check(after >= before + len(hot_runaway), f"events on runaway SKUs are stopped and counted ({before} -> {after})")
    st, h = cli.get("/healthz")
    check(st == 200 and h.get("status") == "ok", "poold is healthy after the runaway rules")
    for rule in [runaway_rule(n) for n in list(RUNAWAY) + ["loop2"]] + [v1_rule, HOT_NEW]:
        compare_pool(cli, ref, rule, f"{rule.name} exact next to the runaway rules")
    compare_pool(cli, ref, TOP, "top exact next to the runaway rules", ordered=True)

    # -- 11. delete ----------------------------------------------------------------------------
    phase("11 delete")
    st, d = cli.json("DELETE", "/api/rules/loop2", None, {"X-Poold-Author": "frank"})
    check(st == 200 and d.get("deleted") is True and d.get("version") == 2, "DELETE /api/rules/loop2: 200, version 2",
          d)
    st, _ = cli.get("/api/pools/loop2")
    st2, _ = cli.get("/api/pools/loop2/members")
    check(st == 404 and st2 == 404, f"the deleted pool is gone: 404 ({st}, {st2})")
    st, pools = cli.get("/api/pools")
    check("loop2" not in [p.get("name") for p in pools], "GET /api/pools no longer lists loop2")
    check(not os.path.exists(os.path.join(rules, "loop2.lua")), "rules/loop2.lua is removed")
    info = rule_info(cli, "loop2") or {}
    h = info.get("history") or []
    check(info.get("state") == "deleted" and h and h[-1].get("kind") == "delete" and h[-1].get("author") == "frank",
          "history keeps a delete version by frank", h[-1:])
    time.sleep(0.4)  # the watcher sees the unlink: it must not resurrect or re-delete anything
    st, rb = rollback(cli, "loop2", 1, "frank")
    check(st == 200 and rb.get("version") == 3, f"rollback of a deleted rule to version 1: version 3 ({st})", rb)
    compare_pool(cli, ref, runaway_rule("loop2"), "loop2 back from the delete")
    check(os.path.exists(os.path.join(rules, "loop2.lua"))
          and read(os.path.join(rules, "loop2.lua")) == runaway_source("loop2", RUNAWAY["loop"][0]),
          "the rollback wrote rules/loop2.lua back")
    st, r = rollback(cli, "loop2", 2, "frank")
    check(st == 400, f"rollback to a delete version: 400 ({st})", r)
    st, r = rollback(cli, "loop2", 9, "frank")
    check(st == 404, f"rollback to a version that does not exist: 404 ({st})", r)
    for name in ("recur", "bomb"):
        st, d = cli.json("DELETE", f"/api/rules/{name}", None, {"X-Poold-Author": "frank"})
        check(st == 200 and d.get("deleted") is True, f"DELETE {name}", d)
    st, d = cli.json("DELETE", "/api/rules/recur", None, {"X-Poold-Author": "frank"})
    check(st == 404, f"deleting a deleted rule: 404 ({st})")

    # -- 12. schedules on the event clock --------------------------------------------------------
    phase("12 schedules")
    def sched_state():
        st, p = cli.get("/api/pools/sched")
        return p.get("state"), p.get("active"), p.get("size")

    for ts, want in ((SCHED_FROM - 1, "scheduled"), (SCHED_FROM, "live"), (SCHED_TO - 1, "live"),
                     (SCHED_TO, "inactive")):
        sku = gen.rnd.choice(gen.ids)
        post(cli, ref, [json.dumps({"op": "view", "sku": sku, "ts": ts})], f"clock {ts}")
        state, active, size = sched_state()
        exp = ref.pool(SCHED)
        check(state == want and active == (want == "live") and size == len(exp)
              and (want != "live" or len(exp) > 0) and (want == "live" or size == 0),
              f"sched at clock {ts - T0} ms after T0: {want}, size {len(exp)} (got {state}, {active}, {size})")
        if want == "live":
            compare_pool(cli, ref, SCHED, f"sched live at clock T0+{(ts - T0) / 3.6e6:.2f} h")
        info = rule_info(cli, "sched") or {}
        check(info.get("state") == want, f"/api/rules/sched state {info.get('state')} == {want}")
    st, ch = cli.get("/api/pools/sched/changes?since=0&limit=5")
    causes = {(c.get("cause") or {}).get("kind") for c in ch.get("changes") or []}
    check(causes == {"schedule"}, f"the schedule's joins are caused by the schedule ({causes})")

    # -- 13. restart: history survives ---------------------------------------------------------------
    phase("13 restart")
    before = {}
    st, lst = cli.get("/api/rules")
    names = sorted(x.get("name") for x in lst.get("rules") or [])
    for n in names:
        info = rule_info(cli, n) or {}
        before[n] = (info.get("version"), info.get("state") == "deleted", info.get("history"))
    cli.close()
    rc = srv.stop()
    check(rc == 0, f"poold exits cleanly on SIGTERM ({rc})")
    health = srv.start(load=False)
    check(health is not None and health.get("loading") is False, f"poold restarted with the same --data: {health}")
    cli = Client(srv.port)
    st, lst = cli.get("/api/rules")
    check(sorted(x.get("name") for x in lst.get("rules") or []) == names, "the same rules after the restart",
          names)
    for n in names:
        info = rule_info(cli, n) or {}
        got = (info.get("version"), info.get("state") == "deleted", info.get("history"))
        check(got == before[n], f"{n}: live version, deleted state and history survive the restart "
                                f"({len(before[n][2] or [])} versions)",
              (got[:2], before[n][:2]))
    st, _ = cli.get("/api/pools/recur")
    check(st == 404, "a deleted pool stays deleted after the restart")
    check(os.path.exists(os.path.join(data, "rules", "history.ndjson")), "DATA/rules/history.ndjson exists")
    # Restarted without --load: the pools are computed on whatever state
    # poold keeps across restarts (none, or everything it acknowledged).
    skus = (health or {}).get("skus")
    if skus:
        check(skus == len(ref.skus), f"the state kept across the restart has every SKU ({skus} vs {len(ref.skus)})")
        for rule in (v1_rule, HOT_NEW, runaway_rule("loop")):
            compare_pool(cli, ref, rule, "after the restart")
        compare_pool(cli, ref, TOP, "after the restart", ordered=True)
    else:
        got = members(cli, "promo")[0]
        check(got == [], "with no state kept across restarts, promo is empty", got)
    cli.close()
    rc = srv.stop()
    check(rc == 0, f"poold exits cleanly on SIGTERM after the restart ({rc})")


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
