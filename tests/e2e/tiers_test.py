#!/usr/bin/env python3
"""Freshness tiers that never step back, end to end (issue "Streams").

A real `poold serve` loads yesterday's catalog file (ts = day 0), then a
price/stock stream arrives over HTTP (ts = day 1), then the same daily
catalog file is loaded again (still ts = day 0, as a late batch would be).
The newer price and stock must stay; catalog fields the stream did not set
follow the file. A pool whose rule reads price and stock must equal an
independent Python reference that applies the same rule to what the SKUs
should hold. /api/skus shows each field group's ts and source, and
/metrics counts the stale writes.

usage: tiers_test.py [POOLD_BIN]"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

DAY0 = 1794268800000          # 2026-11-10T00:00Z
DAY1 = DAY0 + 86400000
N = 400

RULE = '''return pool "cheap_in_stock" {
  where = tag "market:SG",
  match = function(s) return s.price < 20 and s.stock >= 5 end,
}
'''


def catalog_line(i):
    return json.dumps({"sku": f"SG-T{i:04d}", "market": "SG", "category": "home/kitchen", "brand": f"b{i % 7}",
                       "price": 10 + (i % 30), "list_price": 50, "stock": i % 9, "rating": 4.0,
                       "tags": ["daily"], "ts": DAY0})


def stream_lines():
    """Newer prices for even SKUs, newer stock for SKUs divisible by 3."""
    out = []
    for i in range(N):
        if i % 2 == 0:
            out.append(json.dumps({"op": "price", "sku": f"SG-T{i:04d}", "price": 5 + (i % 25), "ts": DAY1}))
        if i % 3 == 0:
            out.append(json.dumps({"op": "stock", "sku": f"SG-T{i:04d}", "stock": (i * 7) % 11, "ts": DAY1}))
    return out


def expected():
    """What each SKU must hold after file, stream, file again."""
    want = {}
    for i in range(N):
        price = 5 + (i % 25) if i % 2 == 0 else 10 + (i % 30)
        stock = (i * 7) % 11 if i % 3 == 0 else i % 9
        want[f"SG-T{i:04d}"] = (price, stock)
    return want


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/poold")
    tmp = tempfile.mkdtemp(prefix="poold-tiers-")
    try:
        rules = os.path.join(tmp, "rules")
        os.makedirs(rules)
        with open(os.path.join(rules, "cheap_in_stock.lua"), "w") as f:
            f.write(RULE)
        cat = os.path.join(tmp, "daily.ndjson")
        with open(cat, "w") as f:
            f.write("\n".join(catalog_line(i) for i in range(N)) + "\n")
        srv = C.PooldProc(binary, rules, os.path.join(tmp, "data"), tmp)
        srv.start(["--load", cat])
        if not C.check(srv.wait_ready(60) is not None, "poold starts with the daily catalog"):
            srv.print_logs()
            return
        cli = C.HttpClient(srv.port)
        st, r = cli.json("POST", "/api/events?wait=applied", "\n".join(stream_lines()) + "\n")
        C.check(st == 200 and r.get("rejected") == 0, f"the stream is accepted ({st} {r})")
        # The same daily file again, late: older than the stream.
        with open(cat, "rb") as f:
            body = f.read()
        st, r = cli.json("POST", "/api/events?wait=applied", body)
        C.check(st == 200 and r.get("accepted") == N, f"the late daily batch is accepted ({st})")

        want = expected()
        wrong = []
        for sku, (price, stock) in want.items():
            st, d = cli.get(f"/api/skus/{sku}")
            f = d.get("fields", {})
            if st != 200 or abs(f.get("price", -1) - price) > 1e-9 or f.get("stock") != stock:
                wrong.append((sku, f.get("price"), f.get("stock"), price, stock))
        C.check(not wrong, f"newer price/stock survive the late catalog ({len(wrong)} wrong, e.g. {wrong[:3]})")

        st, d = cli.get("/api/skus/SG-T0000")
        src = d.get("sources", {})
        C.check(src.get("price", {}).get("ts") == DAY1 and src.get("price", {}).get("source") == "http",
                f"SG-T0000's price comes from the HTTP stream at day 1: {src.get('price')}")
        C.check(src.get("catalog", {}).get("ts") == DAY0, f"its catalog fields from day 0: {src.get('catalog')}")
        st, d = cli.get("/api/skus/SG-T0001")
        src = d.get("sources", {})
        C.check(src.get("price", {}).get("ts") == DAY0, f"SG-T0001's price (no stream) from day 0: {src.get('price')}")

        ref = sorted(s for s, (p, k) in want.items() if p < 20 and k >= 5)
        members = C.fetch_pool(cli, "cheap_in_stock")
        got = sorted(members[0] if isinstance(members, tuple) else members)
        C.check(got == ref, f"the pool equals the reference applying the same rule ({len(got)} vs {len(ref)})")

        _, _, text = cli.request("GET", "/metrics")
        stale = C.prom_values(text.decode(), "poold_stale_field_writes_total").get("", 0)
        # The late file is older than the stream for the price group of even
        # SKUs and the stock group of SKUs divisible by 3.
        want_stale = sum(1 for i in range(N) if i % 2 == 0) + sum(1 for i in range(N) if i % 3 == 0)
        C.check(stale == want_stale, f"poold_stale_field_writes_total counts the refused groups ({stale} vs "
                                     f"{want_stale})")
        C.check(srv.term() == 0, "poold stops cleanly")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    C.finish()
    sys.exit(1 if C.failed else 0)
