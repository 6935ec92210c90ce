#!/usr/bin/env python3
"""Smoke test of `poold demo`: it generates a catalog, loads the embedded
example rules, feeds a live stream and serves the API. Checks that every
example pool is there and non-empty, that the live stream is applied
(applied_seq grows), and that the demo stops cleanly with exit code 0."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, finish, free_port, get  # noqa: E402

binary = sys.argv[1] if len(sys.argv) > 1 else "build/poold"




port = free_port()
proc = subprocess.Popen([binary, "demo", "--listen", f"127.0.0.1:{port}", "--skus", "20000",
                         "--rate", "3000", "--duration", "16"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    deadline = time.time() + 60
    health = None
    while time.time() < deadline:
        try:
            health = get(port, "/healthz")
            if not health["loading"] and health["skus"] >= 19000:
                break
        except OSError:
            pass
        time.sleep(0.2)
    check(health is not None and health["skus"] >= 19000, f"demo catalog loaded: {health}")
    rules = sorted(f[:-4] for f in os.listdir("rules") if f.endswith(".lua"))
    pools = {p["name"]: p for p in get(port, "/api/pools")}
    check(sorted(pools) == rules, f"every example rule is a pool: {sorted(pools)} vs {rules}")
    for name, p in pools.items():
        if p["active"]:  # a scheduled pool outside its window is empty by design
            check(p["size"] > 0, f"pool {name} is not empty")
    check(sum(1 for p in pools.values() if p["active"]) >= 6, "most example pools are active")
    # The live stream goes through Kafka; the consumer group's first
    # assignment takes a few seconds (the broker's initial rebalance delay).
    seq1 = get(port, "/healthz")["applied_seq"]
    seq2, stats = seq1, None
    deadline = time.time() + 12
    while time.time() < deadline and seq2 <= seq1 + 1000:
        time.sleep(0.5)
        seq2 = get(port, "/healthz")["applied_seq"]
    check(seq2 > seq1 + 1000, f"live stream applied: {seq1} -> {seq2}")
    stats = get(port, "/api/stats")
    kafka = stats.get("kafka") or {}
    check(len(kafka.get("partitions", [])) == 4 and kafka.get("messages", 0) > 1000,
          f"the live stream comes through Kafka (4 partitions, messages consumed): {kafka}")
    out, _ = proc.communicate(timeout=30)
    check(proc.returncode == 0, f"demo exit code {proc.returncode}")
    check("poold is serving on" in out, "demo prints the URLs")
    check("events/s" in out, "demo prints a live status line")
finally:
    if proc.poll() is None:
        proc.kill()
finish()
