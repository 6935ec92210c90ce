#!/usr/bin/env python3
"""End-to-end sandbox test: a real `poold serve` whose rules directory holds
the attack rules of tests/e2e/fixtures/attack_rules/ next to three normal
rules, against the independent Python reference (reference.py).

    python3 tests/e2e/sandbox_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)

1. `poold gen catalog --skus 2000`; `poold serve --clock event --load` it.
   The server must become ready: no attack may stall the startup recompute.
2. Compile-time attacks (top_spin, top_bomb) are not loaded and are
   reported: /metrics poold_rule_compile_error{rule=...} 1 and
   GET /api/rules/NAME names the file.
3. Every run-time attack is loaded and fails on each SKU it is evaluated on:
   /api/pools counts errors, /api/pools/NAME last_error names its file and
   the reason (budget, pattern, memory, read-only view, no escape), and
   /metrics poold_rule_errors_total counts them.
4. The normal pools equal the reference after the load and after 600
   events posted with wait=applied, whose answers stay bounded in time.
5. Each attack was stopped within its budget: its mean evaluation time per
   SKU (/metrics poold_rule_eval_seconds / evaluations) stays small.
6. The same over HTTP: a draft whose top level loops is refused (400 with
   its line); a draft whose match loops previews in bounded time with its
   errors counted.
7. The server is alive throughout and exits 0 on SIGTERM.

Prints figures and "N passed, N failed" last; exits 1 on any failure.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
from common import (HttpClient, PooldProc, check, fetch_pool, finish,  # noqa: E402
                    prom_values, qs)

binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN", os.path.join(ROOT, "build", "poold"))
binary = os.path.abspath(binary)
ATTACKS = os.path.join(HERE, "fixtures", "attack_rules")
SKUS = 2000
EVENTS = 600
SEED = 7

# The normal rules: sources written here, mirrored by hand in Python.
NORMAL_SRC = {
    "normal_alloc": '''-- Allocates on every evaluation (a table and a string), so that a rule
-- hoarding the VM's memory would make it fail.
return pool "normal_alloc" {
  where = any { tag "market:SG", tag "market:MY", tag "market:TH" },
  match = function(s)
    local parts = { s.market, s.brand, tostring(s.stock) }
    return table.concat(parts, "/"):find("^%u%u/b00[0-4]") ~= nil and s.stock > 50
  end,
}
''',
    "normal_ranked": '''-- Top 40 by discount, ties by rating; reads prices that view_write tries
-- to change.
return pool "normal_ranked" {
  where = all { tag "in_stock", no_tag "blocked" },
  match = function(s) return s.discount >= 0.2 and s.price < 500 end,
  rank = function(s) return math.floor(s.discount * 100) * 10 + s.rating end,
  limit = 40,
}
''',
}


def _alloc_match(s):
    text = f"{s.market}/{s.brand}/{s.stock}"
    return (len(text) >= 7 and text[0:2].isupper() and text[0:2].isalpha() and text[2:6] == "/b00"
            and text[6] in "01234" and s.stock > 50)


def _ranked_rank(s):
    import math
    return math.floor(s.discount * 100) * 10 + s.rating


NORMAL = [
    R.Rule("normal_alloc", where="market:SG | market:MY | market:TH", match=_alloc_match),
    R.Rule("normal_ranked", where="in_stock & !blocked",
           match=lambda s: s.discount >= 0.2 and s.price < 500, rank=_ranked_rank, limit=40),
    R.RULES["holiday_gifts"],
]

# Run-time attacks: (rule, what its last_error must contain).
RUNTIME = {
    "spin_match": "instruction budget exceeded",
    "spin_rank_jit": "instruction budget exceeded",
    "pattern_bomb": "is too costly",
    "string_bomb": ("instruction budget exceeded", "exceed 16 MB", "memory limit"),
    "move_hang": "instruction budget exceeded",
    "xpcall_trap": "instruction budget exceeded",
    "mem_hog": "rule stopped: its state holds",
    "escape": "refused",
    "view_write": "SKU view is read-only",
    "poison": "refused poisoning",
}
COMPILE_TIME = {"top_spin": "instruction budget exceeded",
                "top_bomb": ("instruction budget exceeded", "exceed 16 MB", "memory limit")}
MAX_EVAL_MS = 100.0  # mean time per evaluated SKU of an attack rule


def has(text, want):
    return any(w in (text or "") for w in ((want,) if isinstance(want, str) else want))


def make_events(catalog, ts0):
    rnd = random.Random(SEED)
    skus = [c["sku"] for c in catalog]
    out = []
    for i in range(EVENTS):
        sku = rnd.choice(skus)
        ts = ts0 + (i + 1) * 1000
        k = rnd.random()
        if k < 0.35:
            lp = round(rnd.uniform(20, 400), 2)
            out.append({"op": "price", "sku": sku, "price": round(lp * rnd.uniform(0.4, 1.0), 2), "list_price": lp,
                        "ts": ts})
        elif k < 0.6:
            out.append({"op": "stock", "sku": sku, "stock": rnd.choice([0, 5, 60, 200]), "ts": ts})
        elif k < 0.8:
            out.append({"op": "order", "sku": sku, "qty": rnd.randint(1, 3), "amount": 10.5, "ts": ts})
        elif k < 0.9:
            out.append({"op": "tag", "sku": sku, "add": ["giftable"], "ts": ts})
        else:
            out.append({"op": "upsert", "sku": sku, "brand": rnd.choice(["b0001", "b0003", "b0007", "b0100"]),
                        "rating": round(rnd.uniform(3, 5), 1), "ts": ts})
    return out


def compare_normal(cli, ref, when):
    pools = ref.pools(NORMAL)
    for rule in NORMAL:
        got, info = fetch_pool(cli, rule.name)
        want = pools[rule.name]
        ok = got == want
        check(ok, f"{when}: pool {rule.name} equals the reference ({len(want)} members)")
        if not ok:
            print(f"  {rule.name}: got {None if got is None else len(got)} ({info if got is None else ''}), "
                  f"missing {sorted(want - (got or set()))[:5]}, extra {sorted((got or set()) - want)[:5]}")


def main():
    tmp = tempfile.mkdtemp(prefix="poold-sandbox-")
    proc = None
    try:
        rules = os.path.join(tmp, "rules")
        os.mkdir(rules)
        for f in sorted(os.listdir(ATTACKS)):
            shutil.copy(os.path.join(ATTACKS, f), rules)
        for name, src in NORMAL_SRC.items():
            with open(os.path.join(rules, name + ".lua"), "w") as f:
                f.write(src)
        shutil.copy(os.path.join(ROOT, "rules", "holiday_gifts.lua"), rules)
        cat = os.path.join(tmp, "catalog.ndjson")
        subprocess.run([binary, "gen", "catalog", "--skus", str(SKUS), "--out", cat], check=True,
                       capture_output=True)
        with open(cat) as f:
            cat_text = f.read()
        catalog = [json.loads(line) for line in cat_text.splitlines() if line.strip()]
        ref = R.Reference()
        ref.apply_text(cat_text)

        proc = PooldProc(binary, rules, os.path.join(tmp, "data"), tmp, extra=["--load", cat])
        t0 = time.time()
        proc.start()
        health = proc.wait_ready(timeout=120)
        ready_s = time.time() - t0
        if not check(health is not None and health.get("skus") == SKUS,
                     f"the server is ready with {SKUS} SKUs despite the attacks ({health})"):
            proc.print_logs(40)
            return
        print(f"figure: ready (load {SKUS} SKUs, every pool computed) in {ready_s:.1f} s")
        cli = HttpClient(proc.port, timeout=120)

        # -- 2. compile-time attacks: not loaded, reported -------------------------
        status, pools = cli.get("/api/pools")
        names = {p["name"] for p in pools} if status == 200 else set()
        want_names = {r.name for r in NORMAL} | set(RUNTIME)
        check(names == want_names, f"pools loaded: the normal and run-time attack rules only ({sorted(names)})")
        _, _, metrics = cli.request("GET", "/metrics")
        metrics = metrics.decode()
        compile_err = prom_values(metrics, "poold_rule_compile_error")
        log = proc.log_text()
        for name, want in COMPILE_TIME.items():
            check(compile_err.get(f'{{rule="{name}"}}') == 1.0, f"/metrics: poold_rule_compile_error for {name}")
            path = os.path.join(rules, name + ".lua")
            check(any(path + ":" in line and has(line, want) for line in log.splitlines()),
                  f"the log names {name}.lua with its line and why it was refused")
            status, info = cli.get(f"/api/rules/{qs(name)}")
            text = json.dumps(info)
            check(status == 200 and name + ".lua" in text and has(text, want),
                  f"GET /api/rules/{name} reports the failure ({status} {text[:200]})")

        # -- 3. run-time attacks: each evaluation fails, reported ------------------
        errors_total = prom_values(metrics, "poold_rule_errors_total")
        by_name = {p["name"]: p for p in pools}
        for name, want in RUNTIME.items():
            p = by_name.get(name, {})
            status, one = cli.get(f"/api/pools/{qs(name)}")
            last = one.get("last_error") if status == 200 else None
            check(p.get("errors", 0) > 0, f"/api/pools counts the errors of {name} ({p.get('errors')})")
            check(has(last, want) and (name + ".lua") in (last or ""),
                  f"/api/pools/{name} last_error names {name}.lua and says why ({last})")
            check(errors_total.get(f'{{pool="{name}"}}', 0) > 0, f"/metrics poold_rule_errors_total counts {name}")
            check("ESCAPED" not in (last or ""), f"{name}: nothing escaped")

        compare_normal(cli, ref, "after the load")

        # -- 4. events flow; answers stay bounded -----------------------------------
        events = make_events(catalog, max(c.get("ts", 0) for c in catalog))
        lat = []
        for i in range(0, len(events), 100):
            chunk = events[i:i + 100]
            body = "\n".join(json.dumps(e) for e in chunk) + "\n"
            t1 = time.time()
            status, r = cli.json("POST", "/api/events?wait=applied", body, {"Content-Type": "application/x-ndjson"})
            lat.append(time.time() - t1)
            check(status == 200 and r.get("accepted") == len(chunk), f"events {i}..{i + len(chunk)} accepted "
                  f"({status} {str(r)[:120]})")
            ref.apply_text(body)
        print(f"figure: POST /api/events?wait=applied, 100 events a batch: max {max(lat) * 1000:.0f} ms, "
              f"mean {sum(lat) / len(lat) * 1000:.0f} ms")
        check(max(lat) < 10.0, f"every batch of 100 events is applied within 10 s (max {max(lat):.2f} s)")
        status, health = cli.get("/healthz")
        check(status == 200 and health.get("status") == "ok", "the server is alive after the events")
        compare_normal(cli, ref, "after the events")

        # -- 5. each runaway stopped within its budget -------------------------------
        _, _, metrics = cli.request("GET", "/metrics")
        metrics = metrics.decode()
        evals = prom_values(metrics, "poold_rule_evaluations_total")
        secs = prom_values(metrics, "poold_rule_eval_seconds_sum")
        for name in RUNTIME:
            n = evals.get(f'{{rule="{name}"}}', 0)
            s = secs.get(f'{{rule="{name}"}}', 0)
            per = s / n * 1000 if n else float("inf")
            print(f"figure: {name:14s} {int(n):6d} evaluations, {s:7.3f} s, {per:7.3f} ms per SKU")
            check(n > 0 and per < MAX_EVAL_MS, f"{name}: stopped within its budget ({per:.2f} ms per SKU)")

        # -- 6. drafts over HTTP ---------------------------------------------------------
        hdr = {"Content-Type": "text/x-lua"}
        status, r = cli.json("PUT", "/api/rules/draft_top", "local n = 0\nwhile true do n = n + 1 end\n"
                             "return pool \"draft_top\" {}\n", hdr)
        text = json.dumps(r)
        check(status == 400 and "instruction budget exceeded" in text and ("line" in r or ":2:" in text),
              f"PUT a draft that loops at its top level: 400 with the line ({status} {text[:200]})")
        status, r = cli.json("PUT", "/api/rules/draft_spin",
                             'return pool "draft_spin" {\n  where = tag "market:SG",\n'
                             '  match = function(s) while true do end end,\n}\n', hdr)
        check(status in (200, 201), f"PUT a draft whose match loops is saved ({status} {str(r)[:200]})")
        t1 = time.time()
        status, r = cli.json("POST", "/api/rules/draft_spin/preview")
        took = time.time() - t1
        print(f"figure: preview of a looping draft over {SKUS} SKUs answered in {took * 1000:.0f} ms")
        check(status == 200 and r.get("errors", 0) > 0 and r.get("size") == 0,
              f"preview counts the draft's errors and adds no member ({status} {str(r)[:200]})")
        check("draft_spin" in (r.get("last_error") or "") and "instruction budget exceeded" in (r.get("last_error") or ""),
              f"preview's last_error names the draft and the budget ({r.get('last_error')})")
        check(took < 30, f"the preview answers in bounded time ({took:.1f} s)")
        status, r = cli.json("PUT", "/api/rules/draft_escape",
                             'return pool "draft_escape" { match = function(s) return io.open("/etc/passwd") end }\n',
                             hdr)
        if status in (200, 201):
            status, r = cli.json("POST", "/api/rules/draft_escape/preview")
            check(status == 200 and "global 'io'" in (r.get("last_error") or ""),
                  f"a draft reaching for io fails in preview ({str(r)[:200]})")
        else:
            check(status == 400, f"a draft reaching for io is refused ({status})")

        status, health = cli.get("/healthz")
        check(status == 200, "the server is alive at the end")
        compare_normal(cli, ref, "at the end")
        cli.close()
    finally:
        if proc is not None:
            rc = proc.term()
            check(rc == 0, f"serve exits 0 on SIGTERM ({rc})")
            if rc != 0:
                proc.print_logs(40)
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
