#!/usr/bin/env python3
"""End-to-end test: a real `poold serve` on a loopback port against the
independent Python reference (reference.py). Python 3 stdlib only.

    python3 tests/e2e/e2e_test.py [POOLD_BIN]      (or env POOLD_BIN; default build/poold)

1. `poold gen` makes a 20k-SKU catalog and 50k events with an invalid line
   every 97 lines (seven kinds of invalid lines).
2. `poold serve --clock event --load catalog.ndjson` with the rules of rules/
   plus tests/e2e/fixtures/ (an inactive scheduled pool); wait for /healthz.
3. Every pool, paged through GET /api/pools/NAME/members, must equal the
   reference after the load, at the middle of the stream and at its end.
4. The events are posted in batches of 1000 lines to
   POST /api/events?wait=applied; the rejected line numbers (and reasons)
   must be exactly the invalid lines of the batch, every other line accepted.
5. At the end: GET /api/pools sizes and active flags, 50 member checks,
   ad-hoc POST /api/query counts, rejects per reason in /metrics, and SKUs
   that left the sales_24h pool only because their sales fell out of the
   24 h window (they were members mid-stream).
6. SIGTERM: the server must exit with code 0 (under ASan: no leaks).

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402

SKUS = 20000
EVENTS = 50000
SEED = 42
INVALID_EVERY = 97
BATCH = 1000
PAGE = 1000

passed = failed = skipped = 0


def check(cond, what, detail=None):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)
        if detail:
            print("     ", detail)
    return cond


def skip(what):
    global skipped
    skipped += 1
    print("SKIP:", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once on a broken one."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=120):
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


def q(s):
    return urllib.parse.quote(s, safe="")


def gen(binary, args, out):
    cmd = [binary, "gen"] + args + ["--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print("poold gen failed:", " ".join(cmd), r.stderr)
        sys.exit(2)


def fetch_members(cli, name):
    """Pages through the members; returns (set, info) or (None, error)."""
    members, cursor, seqs, pages, size = [], None, set(), 0, None
    while True:
        path = f"/api/pools/{q(name)}/members?limit={PAGE}"
        if cursor is not None:
            path += "&cursor=" + q(str(cursor))
        status, page = cli.get(path)
        if status != 200:
            return None, f"GET {path} -> {status} {page}"
        pages += 1
        got = page.get("members")
        if not isinstance(got, list) or len(got) > PAGE:
            return None, f"bad page {path}: {str(page)[:200]}"
        members += got
        seqs.add(page.get("seq"))
        size = page.get("size")
        cursor = page.get("next")
        if cursor is None:
            break
        if pages > SKUS // PAGE + 50:
            return None, "too many pages (cursor does not advance?)"
    info = {"pages": pages, "size": size, "seqs": seqs, "dups": len(members) - len(set(members)),
            "list": members}
    return set(members), info


def compare_pools(cli, ref, when, ranked_ok):
    """Compares every pool with the reference; returns the server's sets."""
    expected = ref.pools(R.RULES.values())
    got_all = {}
    for name, exp in expected.items():
        rule = R.RULES[name]
        if rule.rank is not None and not ranked_ok.get(name):
            skip(f"{when}: pool {name} (rank/limit) not compared: the server does not report \"ranked\": true")
            continue
        got, info = fetch_members(cli, name)
        if not check(got is not None, f"{when}: members of {name} readable", info):
            continue
        got_all[name] = got
        check(info["dups"] == 0, f"{when}: {name}: no SKU listed twice ({info['dups']} duplicates)")
        check(info["size"] == len(got), f"{when}: {name}: size {info['size']} == members listed {len(got)}")
        check(len(info["seqs"]) == 1, f"{when}: {name}: one seq over the pages {info['seqs']}")
        ok = check(got == exp, f"{when}: pool {name} equals the reference "
                               f"(expected {len(exp)}, got {len(got)}, {info['pages']} pages)")
        if not ok:
            show_diff(cli, ref, name, exp, got)
        elif rule.rank is not None:
            order = ref.ranked_order(rule)
            check(info["list"] == order, f"{when}: ranked pool {name} is listed in rank order",
                  [(i, a, b) for i, (a, b) in enumerate(zip(info["list"], order)) if a != b][:5])
    return expected, got_all


def show_diff(cli, ref, name, exp, got):
    missing, extra = sorted(exp - got), sorted(got - exp)
    print(f"      missing (expected, not served): {len(missing)}; extra (served, not expected): {len(extra)}")
    for sid, e, g in [(s, True, False) for s in missing[:4]] + [(s, False, True) for s in extra[:4]]:
        print(f"      {sid}: expected member={e}, got member={g}")
        print(f"        reference: {json.dumps(ref.explain(sid), sort_keys=True)[:900]}")
        status, st = cli.get(f"/api/skus/{q(sid)}")
        if status == 200:
            st.pop("pools", None)
        print(f"        server ({status}): {json.dumps(st, sort_keys=True)[:900]}")


def compare_counters(cli, ref, when, n_top=100, n_random=50):
    """Every windowed counter (sales, gmv, views, clicks, carts over 1h, 24h,
    7d) of the most active SKUs and of random active ones, via GET /api/skus."""
    active = sorted((s for s in ref.skus.values() if s.events), key=lambda s: (-len(s.events), s.id))
    rnd = random.Random(11)
    picks = active[:n_top] + rnd.sample(active[n_top:], min(n_random, max(0, len(active) - n_top)))
    bad = []
    for sku in picks:
        status, st = cli.get(f"/api/skus/{q(sku.id)}")
        counters = st.get("counters") if status == 200 else None
        if counters is None:
            bad.append((sku.id, f"status {status}, no counters"))
            continue
        exp = R.window_sums(sku.events, ref.clock)
        for w in ("1h", "24h", "7d"):
            got = counters.get(w) or {}
            for m in ("sales", "views", "clicks", "carts", "gmv"):
                e, g = exp[f"{m}_{w}"], got.get(m)
                ok = (isinstance(g, (int, float)) and abs(g - e) <= 1e-9 * max(1.0, abs(e))) if m == "gmv" else g == e
                if not ok:
                    bad.append((sku.id, f"{m}_{w}: expected {e}, got {g}"))
    check(not bad, f"{when}: windowed counters of {len(picks)} active SKUs equal the reference "
                   f"({len(bad)} differences)", "; ".join(f"{a}: {b}" for a, b in bad[:6]))


def post_batches(cli, ref, batches, first_line):
    """Posts the batches; checks each answer against the reference."""
    global_line = first_line
    last_seq = None
    for bi, lines in enumerate(batches):
        body = "\n".join(lines) + "\n"
        expected = ref.apply_text(body)
        gen_invalid = [n for n in range(1, len(lines) + 1) if (global_line + n) % INVALID_EVERY == 0]
        check([n for n, _ in expected] == gen_invalid,
              f"batch at line {global_line + 1}: reference rejects exactly the generator's invalid lines",
              f"{expected} vs {gen_invalid}")
        status, r = cli.json("POST", "/api/events?wait=applied", body.encode(),
                             {"Content-Type": "application/x-ndjson"})
        global_line += len(lines)
        if not check(status == 200, f"POST /api/events batch {bi}: status {status}", str(r)[:300]):
            continue
        nonblank = sum(1 for ln in lines if ln.strip())
        errs = r.get("errors") or []
        got_lines = [e.get("line") for e in errs]
        check(r.get("rejected") == len(expected) and r.get("accepted") == nonblank - len(expected),
              f"batch {bi}: accepted {r.get('accepted')} rejected {r.get('rejected')}, "
              f"expected {nonblank - len(expected)} / {len(expected)}")
        check(got_lines == [n for n, _ in expected], f"batch {bi}: rejected line numbers",
              f"expected {[n for n, _ in expected]}, got {got_lines}")
        if errs and "reason" in errs[0]:
            check([e.get("reason") for e in errs] == [why for _, why in expected],
                  f"batch {bi}: reject reasons",
                  f"expected {[w for _, w in expected]}, got {[e.get('reason') for e in errs]}")
        check(all(isinstance(e.get("error"), str) and e["error"] for e in errs),
              f"batch {bi}: every reject carries a message")
        seq = r.get("seq")
        check(isinstance(seq, int) and (last_seq is None or seq > last_seq),
              f"batch {bi}: seq grows ({last_seq} -> {seq})")
        last_seq = seq
    return global_line


def metric_values(text, name):
    out = {}
    for line in text.splitlines():
        m = re.match(r'^' + re.escape(name) + r'(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def main():
    binary = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN")) or "build/poold"
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"e2e: no executable at {binary} (build first, or pass the poold binary)")
        sys.exit(2)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="poold-e2e-")
    proc = None
    log = None
    try:
        cat = os.path.join(tmp, "catalog.ndjson")
        evf = os.path.join(tmp, "events.ndjson")
        gen(binary, ["catalog", "--skus", str(SKUS), "--seed", str(SEED)], cat)
        gen(binary, ["events", "--skus", str(SKUS), "--events", str(EVENTS), "--seed", str(SEED),
                     "--invalid-every", str(INVALID_EVERY)], evf)
        rules = os.path.join(tmp, "rules")
        os.mkdir(rules)
        for d in (os.path.join(ROOT, "rules"), os.path.join(HERE, "fixtures")):
            for f in sorted(os.listdir(d)):
                if f.endswith(".lua"):
                    shutil.copy(os.path.join(d, f), rules)
        rule_files = sorted(f[:-4] for f in os.listdir(rules) if f.endswith(".lua"))
        check(rule_files == sorted(R.RULES), "the reference mirrors every rule file",
              f"{rule_files} vs {sorted(R.RULES)}")
        ex_rules = [f for f in os.listdir(os.path.join(ROOT, "rules")) if f.endswith(".lua")]
        check(len(ex_rules) == 8, f"8 example rules in rules/ ({len(ex_rules)})")

        port = free_port()
        data = os.path.join(tmp, "data")
        log = open(os.path.join(tmp, "server.log"), "w+")
        cmd = [binary, "serve", "--rules", rules, "--listen", f"127.0.0.1:{port}", "--data", data,
               "--clock", "event", "--load", cat]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        cli = Client(port)

        ref = R.Reference()
        with open(cat) as f:
            rej = ref.apply_text(f.read())
        check(not rej, f"the catalog is valid for the reference ({len(rej)} rejects)")

        health, deadline = None, time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                status, health = cli.get("/healthz")
                if status == 200 and health.get("loading") is False and health.get("skus") == SKUS:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not check(health is not None and health.get("loading") is False and health.get("skus") == SKUS,
                     f"server up with the catalog loaded: {health}"):
            return
        print(f"server ready after {time.time() - t0:.1f} s (catalog {SKUS} SKUs)")

        status, pools = cli.get("/api/pools")
        check(status == 200 and sorted(p.get("name") for p in pools) == sorted(R.RULES),
              "GET /api/pools lists every rule", str(pools)[:300])
        ranked_ok = {}
        for name, rule in R.RULES.items():
            status, p = cli.get(f"/api/pools/{q(name)}")
            check(status == 200, f"GET /api/pools/{name}: {status}")
            if status == 200 and "where" in p:
                check(p["where"] == rule.where, f"{name}: canonical where {p['where']!r} == {rule.where!r}")
            if rule.rank is not None:
                ranked_ok[name] = status == 200 and p.get("ranked") is True

        compare_pools(cli, ref, "after load", ranked_ok)

        with open(evf) as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        check(len(lines) - len(lines) // INVALID_EVERY == EVENTS,
              f"generator wrote {EVENTS} valid lines plus every {INVALID_EVERY}th invalid ({len(lines)} lines)")
        batches = [lines[i:i + BATCH] for i in range(0, len(lines), BATCH)]
        half = len(batches) // 2
        t1 = time.time()
        done = post_batches(cli, ref, batches[:half], 0)
        mid_clock = ref.clock
        mid_expected, mid_got = compare_pools(cli, ref, "mid-stream", ranked_ok)
        compare_counters(cli, ref, "mid-stream")
        mid_sales = {s: R.View(ref.skus[s], ref.clock).sales_24h
                     for s in mid_expected["bestsellers_24h"] if s in ref.skus}
        post_batches(cli, ref, batches[half:], done)
        print(f"posted {len(lines)} lines in {len(batches)} batches in {time.time() - t1:.1f} s")

        status, health = cli.get("/healthz")
        check(health.get("clock") in (None, ref.clock), f"event clock {health.get('clock')} == {ref.clock}")
        check(health.get("skus") in (None, len(ref.skus)), f"live SKUs {health.get('skus')} == {len(ref.skus)}")
        end_expected, end_got = compare_pools(cli, ref, "end", ranked_ok)
        compare_counters(cli, ref, "end")

        # The sales_24h pool lost members only because time moved on.
        best = "bestsellers_24h"
        rule = R.RULES[best]
        tags = ref.all_tags()
        fell = sorted(s for s in mid_expected[best] - end_expected[best]
                      if s in ref.skus and R.eval_tagexpr(rule.tree, tags[s]) and s not in rule.exclude
                      and R.View(ref.skus[s], ref.clock).sales_24h < mid_sales.get(s, 0))
        check(len(fell) > 0, f"some SKUs left {best} as their 24 h sales fell ({len(fell)}), "
                             f"clock {mid_clock} -> {ref.clock}")
        for s in fell[:5]:
            check(s in mid_got.get(best, set()) and s not in end_got.get(best, {s}),
                  f"{s} was served in {best} mid-stream and not at the end")
            status, st = cli.get(f"/api/skus/{q(s)}")
            c = (st.get("counters") or {}).get("24h") if status == 200 else None
            if c is not None:
                exp = R.View(ref.skus[s], ref.clock)
                # the API prints reals with 15 significant digits
                gmv = c.get("gmv")
                check(c.get("sales") == exp.sales_24h and isinstance(gmv, (int, float))
                      and abs(gmv - exp.gmv_24h) <= 1e-9 * max(1.0, abs(exp.gmv_24h)),
                      f"{s}: 24h counters {c} == sales {exp.sales_24h} gmv {exp.gmv_24h}")

        # GET /api/pools: sizes and schedule flags.
        status, pools = cli.get("/api/pools")
        by_name = {p.get("name"): p for p in pools} if status == 200 else {}
        for name, exp in end_expected.items():
            if name in end_got:
                check(by_name.get(name, {}).get("size") == len(exp),
                      f"GET /api/pools size of {name}: {by_name.get(name, {}).get('size')} == {len(exp)}")
            a = R.RULES[name].active
            want_active = a is None or a[0] <= ref.clock < a[1]
            if "active" in by_name.get(name, {}):
                check(by_name[name]["active"] == want_active, f"{name}: active == {want_active}")

        # 50 single-SKU membership checks: members, non-members, deleted SKUs.
        rnd = random.Random(7)
        names = [n for n in end_expected if n in end_got]
        deleted = sorted({json.loads(ln)["sku"] for ln in lines if '"op":"delete"' in ln} - set(ref.skus))
        check(len(deleted) > 0, f"some SKUs were deleted and not re-created ({len(deleted)})")
        probes = []
        for _ in range(50):
            name = rnd.choice(names)
            exp = sorted(end_expected[name])
            if exp and rnd.random() < 0.5:
                sid = rnd.choice(exp)
            else:
                i = rnd.randrange(SKUS)
                sid = rnd.choice([s for s in ref.skus if s.endswith(f"-{i:07d}")] or [f"SG-{i:07d}"])
            probes.append((name, sid))
        probes += [(names[0], "XX-9999999")] + [(n, s) for n, s in zip(names, deleted[:len(names)])]
        for name, sid in probes:
            status, r = cli.get(f"/api/pools/{q(name)}/members/{q(sid)}")
            want = sid in end_expected[name]
            check(status == 200 and r.get("member") is want,
                  f"GET /api/pools/{name}/members/{sid}: member {r.get('member')} == {want}")

        # Ad-hoc tag queries.
        queries = ["market:SG & lazmall & giftable & !blocked", "*", "!in_stock",
                   "(category:electronics | category:home) & in_stock & !blocked",
                   "brand:b0001 | brand:b0002 | brand:b0003", "category:electronics/phones & free_shipping",
                   "seller:s00001 | seller:s00002", "eco & !(market:SG | market:MY)", "nonexistent_tag",
                   "clearance & premium & bundle"] + [r.where for r in R.RULE_LIST]
        for wq in queries:
            status, r = cli.json("POST", "/api/query", json.dumps({"where": wq}).encode(),
                                 {"Content-Type": "application/json"})
            exp = ref.where_set(wq, tags)
            check(status == 200 and r.get("count") == len(exp),
                  f"POST /api/query {wq!r}: count {r.get('count')} == {len(exp)}")
            sample = r.get("sample") or []
            check(all(s in exp for s in sample), f"query {wq!r}: sample within the expected set")
        status, r = cli.json("POST", "/api/query", json.dumps({"where": "market:SG & (lazmall"}).encode(),
                             {"Content-Type": "application/json"})
        check(status == 400 and "error" in r, f"a malformed query is a 400 with an error ({status})")

        # /metrics: rejects per reason.
        status, _, text = cli.request("GET", "/metrics")
        vals = metric_values(text.decode(), "poold_events_rejected_total")
        for reason, n in sorted(ref.rejects.items()):
            got = vals.get(f'{{reason="{reason}"}}')
            check(got == n, f"/metrics rejects {reason}: {got} == {n}")
        check(sum(vals.values()) == sum(ref.rejects.values()),
              f"/metrics rejects total {sum(vals.values())} == {sum(ref.rejects.values())}")
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            check(proc.returncode == 0, f"server exits cleanly on SIGTERM (code {proc.returncode})")
        if log is not None:
            if failed:
                log.seek(0)
                lines = log.read().splitlines()
                asan = [i for i, l in enumerate(lines) if "Sanitizer" in l and "ERROR" in l]
                tail = lines[asan[0]:asan[0] + 80] if asan else lines[-30:]
                print("--- server log (" + ("sanitizer report" if asan else "last 30 lines") + "):")
                print("\n".join(tail))
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"e2e took {time.time() - t0:.1f} s, {skipped} skipped")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a crash of the test itself is a failure, reported with its trace
        traceback.print_exc()
        failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
