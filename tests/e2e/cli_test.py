#!/usr/bin/env python3
"""The command line as SPEC.md promises it: exit codes 0/1/2, one-line
messages naming the file/line/flag, --help everywhere, a broken rule that is
reported with file:line and does not take down the other pools, and bulk
loads whose invalid lines land in the dead-letter file with their line
numbers while the valid lines around them are applied."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, finish, free_port, get  # noqa: E402

binary = sys.argv[1] if len(sys.argv) > 1 else "build/poold"


def run(*args, timeout=30):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)




tmp = tempfile.mkdtemp(prefix="poold-cli-")
try:
    # --help on every command, exit 0
    for cmd in (["--help"], ["serve", "--help"], ["check", "--help"], ["load", "--help"],
                ["demo", "--help"], ["gen", "--help"]):
        r = run(*cmd)
        check(r.returncode == 0 and "usage" in (r.stdout + r.stderr).lower(), f"{cmd} prints usage, exit 0")
    # user errors: exit 1 with one line naming the problem
    r = run("nonsense")
    check(r.returncode == 1 and "nonsense" in r.stderr, "unknown command: exit 1 naming it")
    r = run("serve", "--bogus")
    check(r.returncode == 1, "unknown flag: exit 1")
    r = run("serve", "--clock", "sideways")
    check(r.returncode == 1 and "--clock" in r.stderr, "bad --clock value: exit 1 naming the flag")
    r = run("serve", "--rules", os.path.join(tmp, "missing"), "--data", os.path.join(tmp, "d0"),
            "--listen", "127.0.0.1:0")
    check(r.returncode == 1 and "missing" in r.stderr, "missing rules dir: exit 1 naming it")
    r = run("serve", "--rules", "rules", "--load", os.path.join(tmp, "nope.ndjson"))
    check(r.returncode == 1 and "nope.ndjson" in r.stderr, "unreadable --load file: exit 1 naming it")
    r = run("serve", "--kafka", "localhost:9092")
    check(r.returncode == 1 and "kafka" in r.stderr.lower(), "--kafka (not in this version): exit 1, said so")
    # check: ok rules exit 0; broken ones exit 1 with file:line per broken file
    r = run("check", "rules")
    check(r.returncode == 0 and r.stdout.count("ok ") == 8, "check rules: 8 ok, exit 0")
    r = run("check", "tests/fixtures/rules/bad")
    check(r.returncode == 1, "check of broken rules: exit 1")
    for f, line in (("typo.lua", 4), ("wrong_name.lua", 1), ("failing_example.lua", 6)):
        check(f"tests/fixtures/rules/bad/{f}:{line}:" in r.stdout + r.stderr, f"check names {f}:{line}")
    r = run("load", os.path.join(tmp, "x.ndjson"), "--server", "ftp://nowhere")
    check(r.returncode == 1, "load with a bad --server URL: exit 1")

    # serve with one broken rule among good ones, and a file with bad lines
    rules = os.path.join(tmp, "rules")
    os.mkdir(rules)
    for f in ("flash_sale_sg.lua", "holiday_gifts.lua"):
        shutil.copy(os.path.join("rules", f), rules)
    with open(os.path.join(rules, "broken.lua"), "w") as f:
        f.write('return pool "broken" {\n  where = all { tag "a" },\n  match = function(s) return s.price > end,\n}\n')
    cat = os.path.join(tmp, "cat.ndjson")
    subprocess.run([binary, "gen", "catalog", "--skus", "2000", "--out", cat], check=True)
    lines = open(cat).read().splitlines()
    lines.insert(10, '{"sku": "BAD-1", "stock": -5}')            # line 11
    lines.insert(20, 'not json at all')                          # line 21
    lines.insert(30, '{"op": "refund", "sku": "X"}')             # line 31
    with open(cat, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = os.path.join(tmp, "data")
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--rules", rules, "--data", data, "--listen", f"127.0.0.1:{port}",
                             "--load", cat], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = None
        for _ in range(200):
            try:
                health = get(port, "/healthz")
                if not health["loading"] and health["skus"] >= 2000:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        check(health is not None and health["skus"] == 2000, f"the 2000 valid lines are applied: {health}")
        pools = {p["name"] for p in get(port, "/api/pools")}
        check(pools == {"flash_sale_sg", "holiday_gifts"}, f"the broken rule is not loaded, the others are: {pools}")
        dl = [json.loads(l) for l in open(os.path.join(data, "deadletter.ndjson"))]
        got = sorted((d["line"], d["reason"]) for d in dl)
        check(got == [(11, "bad_value"), (21, "bad_json"), (31, "unknown_op")],
              f"dead letters carry line numbers and reasons: {got}")
        check(all(d["source"] == "file:" + cat and d["raw"] for d in dl), "dead letters carry source and raw line")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    check(proc.returncode == 0, f"serve exits 0 on SIGTERM ({proc.returncode})")
    check("broken.lua:3:" in out, "the broken rule is reported with file:line in the log")
    check("rejected" in out and "lines/s" in out, "the load logs progress (lines, rate, rejects)")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
finish()
