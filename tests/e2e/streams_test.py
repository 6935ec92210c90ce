#!/usr/bin/env python3
"""End-to-end test of issue 5 (streams, WAL, snapshots) against real
processes: `poold kafka-mock`, `poold kafka-produce`, `poold serve`.
Python 3 stdlib only.

    python3 tests/e2e/streams_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)
    env STREAMS_SCALE=0.3   scales the catalog and the event counts down (ASan runs)

1. Kafka: a mock cluster with a 4-partition topic; a catalog (20k SKUs) and
   50k mixed events (an invalid line every 97) produced keyed by SKU; poold
   consumes them as a group. Once /api/stats says lag 0 on all 4 partitions
   and everything is applied: every pool equals reference.py, the windowed
   counters (sales_24h of every SKU with an order, all 15 counters of a
   sample) equal it, the invalid messages are in DATA/deadletter.ndjson with
   their partition (= CRC32(key) % 4, librdkafka's default partitioner) and
   offset and reason, /metrics counts them and shows the lag per partition.
   A tail of 4 invalid messages alone is consumed and dead-lettered once.
   Then SIGTERM, 5k more events produced while poold is down, restart with a
   DIFFERENT group id (Kafka has no committed offset for it): poold resumes
   from its own stored offsets: it consumes only the new messages, nothing
   is applied twice (7d counters), pools and counters equal the reference,
   and no dead letter is written twice (the invalid tail is not re-read).
2. Snapshot round trip (same server): rule versions published and rolled
   back, HTTP events, POST /api/admin/snapshot, more events, SIGTERM,
   restart: every SKU of a sample (fields, tags, attrs, counters, pools),
   every pool (members, size, seq, version), the rules (versions, history),
   applied seq and clock are equal; the change feed continues (200, the same
   changes from a pre-restart `since`, then a long-polling follower receives
   the next change with the next seq).
3. Snapshot format versions: the version u32 at offset 8 patched to 0 and 2
   -> the start is refused (non-zero exit) with a message naming the
   version; the file is left untouched; restored, it starts again.
4. WAL (HTTP input, --snapshot-every 0, kill -9 so that no snapshot is
   written): the segment is parsed here from the format documented in
   src/wal.c (magic, version, CRC-32C of header and data, one record per
   POST, seqs, payload = the body posted). (a) the last record cut in the
   middle, (b) a payload byte and (b2) a header byte of the last record
   flipped -> poold starts, logs the torn tail, cuts the file at that
   record, every acknowledged line before it is present (and the cut post
   absent, the hot SKU's sales_24h exact), and appends correctly after it;
   (c) a payload byte and (c2) a header byte of a middle record flipped ->
   the start fails with a message naming the file and the record's offset,
   the file is left as it was; restored, every line is back.
5. --fsync always, batch, everysec: POST ?wait=durable answers 200
   durable:true; the fsync counter moves as the mode says; after kill -9
   every acknowledged line is there.

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common as C  # noqa: E402
import reference as R  # noqa: E402

SCALE = float(os.environ.get("STREAMS_SCALE", "1"))
SKUS = max(2000, int(20000 * SCALE))
EVENTS = max(5000, int(50000 * SCALE))
EVENTS2 = max(1000, EVENTS // 10)
SEED = 42
INVALID_EVERY = 97
INVALID_EVERY2 = 89
PARTITIONS = 4
T0 = 1794268800000  # the generator's default catalog ts
KAFKA_PROPS = ["--kafka-prop", "session.timeout.ms=6000", "--kafka-prop", "heartbeat.interval.ms=500"]

passed = failed = 0
PROCS = []   # every PooldProc started, for the logs and the cleanup
MOCKS = []


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


def phase(name):
    print(f"== {name} ({time.time() - T_START:.1f} s)")
    sys.stdout.flush()


T_START = time.time()


def read_lines(path):
    with open(path) as f:
        return [ln for ln in f.read().split("\n") if ln.strip()]


def gen(binary, args, out):
    import subprocess
    r = subprocess.run([binary, "gen"] + args + ["--out", out], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"poold gen {args} failed: {r.stderr}")


def ts_of(line):
    try:
        return json.loads(line).get("ts")
    except ValueError:
        return None


# -- Kafka helpers ----------------------------------------------------------------

def kafka_stats(cli):
    status, st = cli.get("/api/stats")
    return st.get("kafka") if status == 200 else None


def wait_consumed(cli, total, timeout=90):
    """Waits until the 4 partitions are assigned, their high watermarks add
    up to `total` and every position has reached its watermark; then posts
    a no-op line (delete of an unknown SKU) with ?wait=applied: its input
    seq follows every delivered message, so once it is applied, everything
    consumed is. Returns the kafka stats or None."""
    def ready():
        k = kafka_stats(cli)
        parts = (k or {}).get("partitions") or []
        if (len(parts) == PARTITIONS and sum(p.get("high_watermark", -1) for p in parts) == total
                and all(p.get("position") == p.get("high_watermark") for p in parts) and k.get("lag") == 0):
            return k
        return None
    k = C.wait_until(ready, timeout, 0.1)
    if k is None:
        return None
    status, r = cli.json("POST", "/api/events?wait=applied", '{"op":"delete","sku":"ZZ-SYNC"}\n')
    if status != 200 or r.get("applied") is not True:
        return None
    return k


def crc_partition(key, n=PARTITIONS):
    """librdkafka's consistent_random partitioner: CRC-32 of the key % n."""
    return (zlib.crc32(key.encode()) & 0xFFFFFFFF) % n


def _skip_ws(s, i):
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def _skip_string(s, i):
    i += 1
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return i + 1
        i += 1
    return len(s)


def _skip_value(s, i):
    depth = 0
    while i < len(s):
        c = s[i]
        if c == '"':
            i = _skip_string(s, i)
            if depth == 0:
                return i
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == "," and depth == 0:
            return i
        i += 1
    return len(s)


def line_key(line):
    """The key `poold kafka-produce` gives a line (src/kafka_mock.c): the
    top-level "sku" string, scanned key by key from the start of the object;
    None when the scan meets something else first (then the partition is
    random)."""
    s = line
    i = _skip_ws(s, 0)
    if i >= len(s) or s[i] != "{":
        return None
    i = _skip_ws(s, i + 1)
    while i < len(s) and s[i] == '"':
        kend = _skip_string(s, i)
        is_sku = s[i:kend] == '"sku"'
        i = _skip_ws(s, kend)
        if i >= len(s) or s[i] != ":":
            return None
        i = _skip_ws(s, i + 1)
        if is_sku:
            if i >= len(s) or s[i] != '"':
                return None
            vend = _skip_string(s, i)
            if vend > len(s) or s[vend - 1] != '"' or vend - i < 2:
                return None
            return s[i + 1:vend - 1]
        i = _skip_ws(s, _skip_value(s, i))
        if i >= len(s) or s[i] != ",":
            return None
        i = _skip_ws(s, i + 1)
    return None


def check_deadletters(data, produced, ref_reasons, when):
    """Every invalid produced line is a dead letter "kafka:events/P@O" with
    the right reason, partition and a possible offset."""
    path = os.path.join(data, "deadletter.ndjson")
    recs = []
    with open(path) as f:
        for ln in f:
            if ln.strip():
                recs.append(json.loads(ln))
    kafka = [r for r in recs if str(r.get("source", "")).startswith("kafka:")]
    expected = {}  # raw line -> [index in production order]
    for i, (line, why) in enumerate(produced):
        if why:
            expected.setdefault(line, []).append(i)
    n_invalid = sum(len(v) for v in expected.values())
    check(len(kafka) == n_invalid, f"{when}: {n_invalid} dead letters from Kafka (got {len(kafka)})")
    # offset bounds per partition: keyed lines before i on partition p, plus
    # the unkeyed (randomly partitioned) lines before i
    keyed_before = [[0] * PARTITIONS]
    unkeyed_before = [0]
    parts = []
    for line, _ in produced:
        k = line_key(line)
        p = crc_partition(k) if k else None
        parts.append(p)
        row = list(keyed_before[-1])
        u = unkeyed_before[-1]
        if p is None:
            u += 1
        else:
            row[p] += 1
        keyed_before.append(row)
        unkeyed_before.append(u)
    bad, seen = [], set()
    for r in kafka:
        m = re.match(r"^kafka:events/(\d+)@(\d+)$", str(r.get("source")))
        if not m:
            bad.append(f"source {r.get('source')!r}")
            continue
        p, off = int(m.group(1)), int(m.group(2))
        if (p, off) in seen:
            bad.append(f"partition {p} offset {off} twice")
        seen.add((p, off))
        cands = expected.get(r.get("raw"), [])
        if not cands:
            bad.append(f"raw {r.get('raw')!r} is not an invalid produced line")
            continue
        ok = False
        for i in cands:
            want_p = parts[i]
            lo = keyed_before[i][p]
            hi = lo + unkeyed_before[i]
            if (want_p is None or want_p == p) and lo <= off <= hi and r.get("reason") == produced[i][1]:
                ok = True
                break
        if not ok:
            i = cands[0]
            bad.append(f"{r.get('source')} reason {r.get('reason')}: expected partition {parts[i]}, offset in "
                       f"[{keyed_before[i][p]}, {keyed_before[i][p] + unkeyed_before[i]}], reason {produced[i][1]}")
        if not r.get("error"):
            bad.append(f"{r.get('source')}: no error message")
    check(not bad, f"{when}: dead letters name the partition (CRC32(key) % 4), a possible offset and the reason "
                   f"({len(bad)} problems)", bad[:6])
    reasons = {}
    for r in kafka:
        reasons[r.get("reason")] = reasons.get(r.get("reason"), 0) + 1
    check(reasons == ref_reasons, f"{when}: dead-letter reasons {reasons} == reference {ref_reasons}")


# -- comparisons ------------------------------------------------------------------

def compare_pools(cli, ref, rules, when):
    expected = ref.pools(rules)
    for name, exp in sorted(expected.items()):
        got, info = C.fetch_pool(cli, name)
        if not check(got is not None, f"{when}: members of {name} readable", info):
            continue
        ok = check(got == exp and info["dups"] == 0 and info["size"] == len(got),
                   f"{when}: pool {name} equals the reference (expected {len(exp)}, got {len(got)}, "
                   f"size {info['size']}, dups {info['dups']})")
        if not ok:
            for sid in sorted(exp - got)[:3] + sorted(got - exp)[:3]:
                status, st = cli.get(f"/api/skus/{C.qs(sid)}")
                print(f"      {sid}: expected {sid in exp}; reference {json.dumps(ref.explain(sid))[:600]}")
                print(f"        server {status}: {json.dumps(st)[:600]}")
    return expected


def close(a, b):
    return isinstance(b, (int, float)) and abs(a - b) <= 1e-9 * max(1.0, abs(a))


def compare_counters(cli, ref, when, n_full=150):
    """sales_24h and sales_7d of every SKU with an order event, and every
    counter of the n_full most active SKUs plus a random sample."""
    with_orders = sorted(s.id for s in ref.skus.values() if any(e[1] == "o" for e in s.events))
    active = sorted((s for s in ref.skus.values() if s.events), key=lambda s: (-len(s.events), s.id))
    rnd = random.Random(5)
    full = {s.id for s in active[:n_full // 2]}
    full |= {s.id for s in rnd.sample(active, min(len(active), n_full // 2))}
    bad_sales, bad_full = [], []
    for sid in sorted(set(with_orders) | full):
        status, st = cli.get(f"/api/skus/{C.qs(sid)}")
        c = st.get("counters") if status == 200 else None
        if c is None:
            bad_sales.append((sid, f"status {status}"))
            continue
        exp = R.window_sums(ref.skus[sid].events, ref.clock)
        for w in ("24h", "7d"):
            if (c.get(w) or {}).get("sales") != exp["sales_" + w]:
                bad_sales.append((sid, f"sales_{w} expected {exp['sales_' + w]}, got {(c.get(w) or {}).get('sales')}"))
        if sid in full:
            for w in ("1h", "24h", "7d"):
                for m in ("sales", "gmv", "views", "clicks", "carts"):
                    e, g = exp[f"{m}_{w}"], (c.get(w) or {}).get(m)
                    if not (close(e, g) if m == "gmv" else g == e):
                        bad_full.append((sid, f"{m}_{w} expected {e}, got {g}"))
    check(not bad_sales, f"{when}: sales_24h and sales_7d of all {len(with_orders)} SKUs with orders equal the "
                         f"reference ({len(bad_sales)} differences)", bad_sales[:6])
    check(not bad_full, f"{when}: all 15 counters of {len(full)} active SKUs equal the reference "
                        f"({len(bad_full)} differences)", bad_full[:6])


def compare_health(cli, ref, when):
    status, h = cli.get("/healthz")
    check(status == 200 and h.get("skus") == len(ref.skus) and h.get("clock") == ref.clock,
          f"{when}: /healthz skus {h.get('skus')} == {len(ref.skus)}, clock {h.get('clock')} == {ref.clock}")
    return h


def metrics(cli):
    status, _, text = cli.request("GET", "/metrics")
    return text.decode() if status == 200 else ""


# -- 1. Kafka ---------------------------------------------------------------------

def kafka_section(binary, tmp, rules):
    phase("Kafka end to end")
    mock = C.KafkaMock(binary, f"events:{PARTITIONS}", os.path.join(tmp, "mock.log"))
    MOCKS.append(mock)
    cat = os.path.join(tmp, "catalog.ndjson")
    ev1 = os.path.join(tmp, "events1.ndjson")
    ev2 = os.path.join(tmp, "events2.ndjson")
    gen(binary, ["catalog", "--skus", str(SKUS), "--seed", str(SEED)], cat)
    gen(binary, ["events", "--skus", str(SKUS), "--events", str(EVENTS), "--seed", str(SEED),
                 "--invalid-every", str(INVALID_EVERY)], ev1)
    cat_lines, ev1_lines = read_lines(cat), read_lines(ev1)
    # The second stream starts after the first ends, so that no field write
    # is older than the value it would replace.
    end1 = max(t for t in (ts_of(ln) for ln in ev1_lines) if isinstance(t, int))
    gen(binary, ["events", "--skus", str(SKUS), "--events", str(EVENTS2), "--seed", str(SEED + 1),
                 "--start", str(end1 + 60000), "--span-hours", "6", "--invalid-every", str(INVALID_EVERY2)], ev2)
    ev2_lines = read_lines(ev2)

    data = os.path.join(tmp, "data-kafka")
    srv = C.PooldProc(binary, rules, data, tmp,
                      ["--kafka", mock.bootstrap, "--topics", "events", "--snapshot-every", "0"] + KAFKA_PROPS)
    PROCS.append(srv)
    srv.start(["--group", "g1"])
    if not check(srv.wait_ready() is not None, "poold --kafka starts"):
        return None
    cli = C.HttpClient(srv.port)

    t0 = time.time()
    for path in (cat, ev1):
        r = C.kafka_produce_file(binary, mock.bootstrap, "events", path)
        check(r.returncode == 0, f"kafka-produce {os.path.basename(path)}: exit {r.returncode}", r.stderr[-500:])
    total1 = len(cat_lines) + len(ev1_lines)
    k = wait_consumed(cli, total1)
    if not check(k is not None, f"poold consumed all {total1} messages (lag 0 on {PARTITIONS} partitions)",
                 kafka_stats(cli)):
        return None
    print(f"   {total1} messages produced and consumed in {time.time() - t0:.1f} s")

    ref = R.Reference()
    check(not ref.apply_text("\n".join(cat_lines)), "the catalog is valid for the reference")
    produced = []  # (line, reject reason or None) in production order
    for ln in cat_lines:
        produced.append((ln, None))
    rej = dict(ref.apply_text("\n".join(ev1_lines)))
    for i, ln in enumerate(ev1_lines, 1):
        produced.append((ln, rej.get(i)))
    check(len(rej) == len(ev1_lines) // INVALID_EVERY,
          f"the reference rejects every {INVALID_EVERY}th line ({len(rej)})")

    st = C.get(srv.port, "/api/stats")
    # + 1: the no-op line of wait_consumed
    check(st.get("applied") == total1 - len(rej) + 1 and st.get("rejected") == len(rej),
          f"/api/stats applied {st.get('applied')} == {total1 - len(rej)} + 1, rejected {st.get('rejected')} == "
          f"{len(rej)}")
    check(k.get("messages") == total1 and k.get("rejected") == len(rej),
          f"/api/stats kafka messages {k.get('messages')} == {total1}, rejected {k.get('rejected')} == {len(rej)}")
    compare_health(cli, ref, "kafka")
    compare_pools(cli, ref, R.RULE_LIST, "kafka")
    compare_counters(cli, ref, "kafka")

    text = metrics(cli)
    lag = C.prom_values(text, "poold_kafka_lag_messages")
    want = {f'{{topic="events",partition="{p}"}}' for p in range(PARTITIONS)}
    check(set(lag) == want and all(v == 0 for v in lag.values()),
          f"/metrics poold_kafka_lag_messages for each of the {PARTITIONS} partitions, all 0", lag)
    rejected = C.prom_values(text, "poold_kafka_rejected_total").get("")
    check(rejected == len(rej), f"/metrics poold_kafka_rejected_total {rejected} == {len(rej)}")
    msgs = C.prom_values(text, "poold_kafka_messages_total").get("")
    check(msgs == total1, f"/metrics poold_kafka_messages_total {msgs} == {total1}")
    by_reason = C.prom_values(text, "poold_events_rejected_total")
    want_reasons = {}
    for _, why in rej.items():
        want_reasons[why] = want_reasons.get(why, 0) + 1
    check({k_[len('{reason="'):-2]: v for k_, v in by_reason.items() if v} == {r_: float(n) for r_, n in want_reasons.items()},
          "/metrics poold_events_rejected_total per reason == the reference", (by_reason, want_reasons))
    check_deadletters(data, produced, want_reasons, "kafka")

    # A tail of invalid messages only (no valid line in their batch): consumed
    # and rejected once; after the restart they must not come back.
    bad_tail = os.path.join(tmp, "invalid-tail.ndjson")
    tail_lines = [json.dumps({"op": "stock", "sku": f"SG-{i:07d}", "stock": -5, "ts": end1}) for i in range(3)]
    tail_lines.append(json.dumps({"op": "explode", "sku": "SG-0000003", "ts": end1}))
    with open(bad_tail, "w") as f:
        f.write("\n".join(tail_lines) + "\n")
    r = C.kafka_produce_file(binary, mock.bootstrap, "events", bad_tail)
    check(r.returncode == 0, f"kafka-produce invalid-tail: exit {r.returncode}", r.stderr[-500:])
    total1 += len(tail_lines)
    k = wait_consumed(cli, total1)
    check(k is not None and k.get("rejected") == len(rej) + len(tail_lines),
          f"a tail of {len(tail_lines)} invalid messages is consumed and rejected", k)
    rej_tail = dict(ref.apply_text("\n".join(tail_lines)))
    check(len(rej_tail) == len(tail_lines), "the reference rejects the invalid tail")
    for i, ln in enumerate(tail_lines, 1):
        produced.append((ln, rej_tail.get(i)))
        want_reasons[rej_tail[i]] = want_reasons.get(rej_tail[i], 0) + 1
    check_deadletters(data, produced, want_reasons, "kafka invalid tail")

    # -- resume from the stored offsets, under another group id --------------
    phase("Kafka: stop, produce while down, restart under another group id")
    rc = srv.term()
    check(rc == 0, f"SIGTERM: poold exits 0 ({rc})")
    check("snapshot written at shutdown" in srv.log_text(), "a snapshot is written at shutdown")
    r = C.kafka_produce_file(binary, mock.bootstrap, "events", ev2)
    check(r.returncode == 0, f"kafka-produce events2: exit {r.returncode}", r.stderr[-500:])
    srv.start(["--group", "g-other"])
    if not check(srv.wait_ready() is not None, "poold restarts"):
        return None
    cli = C.HttpClient(srv.port)
    total2 = total1 + len(ev2_lines)
    k = wait_consumed(cli, total2)
    if not check(k is not None, f"after the restart poold consumed up to {total2} messages", kafka_stats(cli)):
        return None
    rej2 = dict(ref.apply_text("\n".join(ev2_lines)))
    for i, ln in enumerate(ev2_lines, 1):
        produced.append((ln, rej2.get(i)))
    check(k.get("messages") == len(ev2_lines),
          f"a new group id with no committed offsets: poold reads only the {len(ev2_lines)} new messages from its "
          f"stored offsets (took {k.get('messages')})")
    compare_health(cli, ref, "kafka resumed")
    compare_pools(cli, ref, R.RULE_LIST, "kafka resumed")
    compare_counters(cli, ref, "kafka resumed")
    for why in rej2.values():
        want_reasons[why] = want_reasons.get(why, 0) + 1
    check_deadletters(data, produced, want_reasons, "kafka resumed")
    return {"srv": srv, "cli": cli, "ref": ref, "data": data, "mock": mock, "total": total2}


# -- 2. snapshot round trip ---------------------------------------------------------

def sku_sample(ref, cat_ids, n=300):
    rnd = random.Random(3)
    ids = sorted(ref.skus)
    sample = set(rnd.sample(ids, min(n, len(ids))))
    active = sorted((s for s in ref.skus.values() if s.events), key=lambda s: -len(s.events))
    sample |= {s.id for s in active[:50]}
    sample |= set(sorted(set(cat_ids) - set(ref.skus))[:20])  # deleted: 404 both times
    return sorted(sample)


SOURCE_KEYS = ("source", "input", "partition", "offset", "offset_at_most")


def capture(cli, sample, pools, rules_changed, since):
    """The state a restart must keep. The origin of a field group (sources:
    source, input, partition, offset) is only kept for the last 4096 inputs
    in memory (README, freshness tiers): compared apart, without it."""
    st = {"skus": {}, "pools": {}, "members": {}, "rules": {}, "history": {}, "origins": 0}
    for sid in sample:
        status, j = cli.get(f"/api/skus/{C.qs(sid)}")
        for g in (j.get("sources") or {}).values() if status == 200 else []:
            if isinstance(g, dict) and any(k in g for k in SOURCE_KEYS):
                st["origins"] += 1
                for k in SOURCE_KEYS:
                    g.pop(k, None)
        st["skus"][sid] = (status, j)
    status, lst = cli.get("/api/pools")
    for p in lst if status == 200 else []:
        st["pools"][p["name"]] = {k: p.get(k) for k in ("name", "title", "size", "version", "active", "state",
                                                        "seq", "published_at", "author")}
    for name in pools:
        got, info = C.fetch_pool(cli, name)
        st["members"][name] = (sorted(got) if got is not None else None, info.get("seq") if got else info)
    status, rl = cli.get("/api/rules")
    for r in (rl.get("rules") or []) if status == 200 else []:
        st["rules"][r["name"]] = {k: r.get(k) for k in ("name", "version", "state", "versions", "published_at",
                                                         "author", "has_draft", "error")}
    for name in rules_changed:
        status, r = cli.get(f"/api/rules/{C.qs(name)}")
        st["history"][name] = (status, r.get("version"), r.get("source"), r.get("history"))
    status, h = cli.get("/healthz")
    st["health"] = {k: h.get(k) for k in ("skus", "pools", "applied_seq", "clock")}
    st["changes"] = {}
    for name, s in since.items():
        status, ch = cli.get(f"/api/pools/{C.qs(name)}/changes?since={s}&limit=10000")
        st["changes"][name] = (status, ch.get("changes"), ch.get("next"))
    return st


def diff_dicts(a, b, path=""):
    """Paths where two JSON-like values differ (first few)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only {'after' if k in b else 'before'}")
            else:
                out += diff_dicts(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_dicts(x, y, f"{path}[{i}]")
    elif a != b:
        out.append(f"{path}: {str(a)[:120]} != {str(b)[:120]}")
    return out


def snapshot_section(binary, tmp, rules, k, cat_ids):
    phase("snapshot round trip")
    srv, cli, ref, data = k["srv"], k["cli"], k["ref"], k["data"]
    # rule versions: bestsellers_24h v2 (published), clearance v2 then rolled back to v1
    with open(os.path.join(rules, "bestsellers_24h.lua")) as f:
        src = f.read()
    v2 = src.replace("s.sales_24h >= 5", "s.sales_24h >= 3")
    check(v2 != src, "the bestsellers rule text has the threshold to change")
    status, r = cli.json("PUT", "/api/rules/bestsellers_24h", v2, {"Content-Type": "text/x-lua"})
    check(status == 200, f"PUT bestsellers_24h v2: {status}", r)
    status, r = cli.json("POST", "/api/rules/bestsellers_24h/publish", b"")
    check(status == 200 and r.get("version") == 2, f"publish bestsellers_24h v2: {status} {r}")
    with open(os.path.join(rules, "clearance.lua")) as f:
        csrc = f.read()
    status, r = cli.json("PUT", "/api/rules/clearance", csrc.replace("limit = 300", "limit = 120"),
                         {"Content-Type": "text/x-lua"})
    check(status == 200, f"PUT clearance v2: {status}", r)
    status, r = cli.json("POST", "/api/rules/clearance/publish", b"")
    check(status == 200 and r.get("version") == 2, f"publish clearance v2: {status} {r}")
    status, r = cli.json("POST", "/api/rules/clearance/rollback?version=1", b"")
    check(status == 200, f"rollback clearance to v1: {status} {r}")
    status, r = cli.json("PUT", "/api/rules/eco_picks", "-- a draft only\n" + open(
        os.path.join(rules, "eco_picks.lua")).read(), {"Content-Type": "text/x-lua"})
    check(status == 200, f"a draft of eco_picks is saved: {status}", r)

    # a follower's position before the restart
    names = [r_.name for r_ in R.RULE_LIST]
    since = {}
    for name in names:
        got, info = C.fetch_pool(cli, name)
        since[name] = info["seq"] if got is not None else 0

    # HTTP events that move pools: orders on in-stock SKUs, price cuts, tags
    rnd = random.Random(17)
    ids = sorted(ref.skus)
    lines = []
    ts = ref.clock
    for i in range(400):
        sid = rnd.choice(ids)
        ts += 1000
        kind = i % 4
        if kind == 0:
            lines.append({"op": "order", "sku": sid, "qty": rnd.randint(1, 4), "amount": 9.5, "ts": ts})
        elif kind == 1:
            lines.append({"op": "price", "sku": sid, "price": round(rnd.uniform(1, 400), 2), "ts": ts})
        elif kind == 2:
            lines.append({"op": "stock", "sku": sid, "stock": rnd.randint(0, 60), "ts": ts})
        else:
            lines.append({"op": "tag", "sku": sid, "add": ["giftable"], "remove": ["blocked"], "ts": ts})
    body1 = "\n".join(json.dumps(x) for x in lines[:200]) + "\n"
    body2 = "\n".join(json.dumps(x) for x in lines[200:]) + "\n"
    status, r = cli.json("POST", "/api/events?wait=applied", body1)
    check(status == 200 and r.get("accepted") == 200, f"POST 200 lines: {status} {r}")

    status, r = cli.json("POST", "/api/admin/snapshot", b"")
    check(status == 200 and isinstance(r.get("took_ms"), (int, float)) and isinstance(r.get("seq"), int),
          f"POST /api/admin/snapshot: {status} {r}")
    snap = os.path.join(data, "snapshot.poold")
    check(os.path.exists(snap), "DATA/snapshot.poold exists")
    status, h = cli.get("/healthz")
    check(r.get("seq") == h.get("applied_seq"), f"snapshot seq {r.get('seq')} == applied seq {h.get('applied_seq')}")
    status, r = cli.json("POST", "/api/events?wait=applied", body2)
    check(status == 200 and r.get("accepted") == 200, f"POST 200 more lines after the snapshot: {status} {r}")

    sample = sku_sample(ref, cat_ids)
    before = capture(cli, sample, names, ["bestsellers_24h", "clearance", "eco_picks"], since)
    moved = {n: len(c[1] or []) for n, c in before["changes"].items()}
    check(sum(moved.values()) > 0, f"the posted events changed pools ({moved})")
    check(before["rules"].get("bestsellers_24h", {}).get("version") == 2
          and (before["rules"].get("clearance", {}).get("version") or 0) >= 2
          and before["rules"].get("eco_picks", {}).get("has_draft") is True,
          "rule versions before: bestsellers_24h 2, clearance rolled back, eco_picks with a draft",
          {n: before["rules"].get(n) for n in ("bestsellers_24h", "clearance", "eco_picks")})

    rc = srv.term()
    check(rc == 0, f"SIGTERM: exit 0 ({rc})")
    check("snapshot written at shutdown" in srv.log_text(), "the shutdown snapshot is written")
    t0 = time.time()
    srv.start(["--group", "g-other"])
    health = srv.wait_ready()
    if not check(health is not None, "poold restarts from the snapshot"):
        return None
    print(f"   restart from the snapshot: ready in {time.time() - t0:.2f} s")
    log = srv.log_text()
    check(re.search(r"snapshot .* loaded in", log) is not None, "the log says the snapshot was loaded")
    check("wal: replayed" not in log, "a clean stop leaves nothing to replay from the WAL")
    cli = C.HttpClient(srv.port)
    after = capture(cli, sample, names, ["bestsellers_24h", "clearance", "eco_picks"], since)

    d = [(sid, diff_dicts(before["skus"][sid], after["skus"][sid])) for sid in sample]
    d = [(s, x) for s, x in d if x]
    check(not d, f"{len(sample)} SKUs (fields, tags, attrs, counters, pools) equal before and after "
                 f"({len(d)} differ)", d[:4])
    n404 = sum(1 for s in sample if before["skus"][s][0] == 404)
    check(n404 > 0 and n404 < len(sample), f"the sample has deleted SKUs (404) and live ones ({n404} deleted)")
    print(f"   field-group origins shown: {before['origins']} before the restart, {after['origins']} after "
          f"(kept in memory only)")
    for key in ("pools", "members", "rules", "history", "health", "changes"):
        dd = diff_dicts(before[key], after[key])
        check(not dd, f"{key} equal before and after the restart", dd[:5])
    for name in names:
        st_b = before["changes"][name]
        check(st_b[0] == 200, f"changes of {name} since {since[name]}: 200 before the restart ({st_b[0]})")
        check(after["changes"][name][0] == 200, f"changes of {name} since {since[name]} after a clean restart: "
                                                f"200, no 410 ({after['changes'][name][0]})")

    # the follower continues: a long-poll from the last seq gets the next change
    name = "bestsellers_24h"
    last = before["members"][name][1]
    got = {}

    def follow():
        c2 = C.HttpClient(srv.port)
        t = time.time()
        got["status"], got["r"] = c2.json("GET", f"/api/pools/{name}/changes?since={last}&wait=20", timeout=30)
        got["took"] = time.time() - t
        c2.close()
    th = threading.Thread(target=follow)
    th.start()
    time.sleep(0.3)
    members = set(before["members"][name][0])
    cand = next(s for s in sorted(ref.skus) if s not in members and s != "TH-0012592")
    ts = after["health"]["clock"] + 1000
    body = "\n".join(json.dumps(x) for x in [
        {"op": "upsert", "sku": cand, "stock": 50, "tags": ["followed"], "ts": ts},
        {"op": "order", "sku": cand, "qty": 9, "amount": 90.0, "ts": ts}]) + "\n"
    status, r = cli.json("POST", "/api/events?wait=applied", body)
    check(status == 200, f"POST an event that makes {cand} join {name}: {status} {r}")
    th.join(35)
    ch = (got.get("r") or {}).get("changes") or []
    check(got.get("status") == 200 and ch and ch[0].get("seq") == last + 1 and ch[0].get("sku") == cand
          and ch[0].get("op") == "add" and got.get("took", 99) < 15,
          f"a follower long-polling from seq {last} after the restart receives {cand} joining with seq {last + 1}",
          got)
    return {"srv": srv, "cli": cli}


# -- 3. snapshot versions -------------------------------------------------------------

def version_section(binary, tmp, rules, data, srv):
    phase("snapshot format versions")
    rc = srv.term()
    check(rc == 0, f"SIGTERM: exit 0 ({rc})")
    snap = os.path.join(data, "snapshot.poold")
    with open(snap, "rb") as f:
        orig = f.read()
    check(orig[:8] == b"POOLDSNP" and int.from_bytes(orig[8:12], "little") == 1,
          f"the snapshot starts with the documented magic and version 1 ({orig[:12]!r})")
    for ver, word in ((2, "newer"), (0, "older"), (0xFFFFFFFF, "newer")):
        patched = orig[:8] + ver.to_bytes(4, "little") + orig[12:]
        with open(snap, "wb") as f:
            f.write(patched)
        p = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
        PROCS.append(p)
        p.start()
        rc = p.wait(30)
        log = p.log_text()
        check(rc not in (0, None), f"a snapshot of format {ver} is refused: exit {rc}")
        check(f"format {ver}" in log and word in log and "snapshot" in log,
              f"the message names format {ver} and says {word!r}", log.strip().splitlines()[-1:] if log else log)
        with open(snap, "rb") as f:
            check(f.read() == patched, f"the refused snapshot (format {ver}) is left as it was")
    with open(snap, "wb") as f:
        f.write(orig)
    p = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0"])
    PROCS.append(p)
    p.start()
    h = p.wait_ready()
    check(h is not None and h.get("skus", 0) > 0, f"restored, the snapshot loads again ({h})")
    check(p.term() == 0, "and poold stops cleanly")


# -- 4. WAL -------------------------------------------------------------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_T = _crc_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = CRC_T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def u32(b, o):
    return int.from_bytes(b[o:o + 4], "little")


def parse_wal(path):
    """Parses a segment as src/wal.c documents it. Returns (header, records,
    problems); a record: dict(off, len, crc_ok, first_seq, nevents, kind,
    partition, offset, ingest_ms, source, payload)."""
    with open(path, "rb") as f:
        b = f.read()
    problems = []
    hdr = {"magic": b[:8], "version": u32(b, 8), "hlen": u32(b, 12),
           "base": int.from_bytes(b[16:24], "little"), "reserved": u32(b, 24), "crc": u32(b, 28)}
    if hdr["magic"] != b"POOLDWAL" or hdr["version"] != 1 or hdr["hlen"] != 32 or hdr["reserved"] != 0:
        problems.append(f"file header {hdr}")
    if crc32c(b[:28]) != hdr["crc"]:
        problems.append("file header CRC")
    recs = []
    off = 32
    while off < len(b):
        h = b[off:off + 48]
        if len(h) < 48:
            problems.append(f"short record header at {off}")
            break
        plen, slen = u32(h, 8), int.from_bytes(h[12:14], "little")
        r = {"off": off, "len": 48 + slen + plen, "hcrc_ok": crc32c(h[4:48]) == u32(h, 0),
             "plen": plen, "slen": slen, "kind": h[14], "flags": h[15],
             "first_seq": int.from_bytes(h[16:24], "little"), "nevents": u32(h, 24),
             "partition": int.from_bytes(h[28:32], "little", signed=True),
             "offset": int.from_bytes(h[32:40], "little", signed=True),
             "ingest_ms": int.from_bytes(h[40:48], "little", signed=True),
             "source": b[off + 48:off + 48 + slen], "payload": b[off + 48 + slen:off + 48 + slen + plen]}
        r["dcrc_ok"] = crc32c(b[off + 48:off + 48 + slen + plen]) == u32(h, 4)
        if off + r["len"] > len(b):
            problems.append(f"record at {off} runs past the end")
            break
        recs.append(r)
        off += r["len"]
    return hdr, recs, problems


def wal_segments(data):
    d = os.path.join(data, "wal")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if re.match(r"^wal-[0-9a-f]{16}\.log$", f))


class WalPosts:
    """Posts numbered i: 4 SKUs WL-iiii-j (price 10+i, tag wl, ts rising) and
    an order of qty (i % 5) + 1 on WL-HOT; each POST is one WAL record."""

    def __init__(self):
        self.bodies = {}

    def body(self, i):
        ts = T0 + i * 10000
        lines = [{"sku": f"WL-{i:04d}-{j}", "market": "SG", "price": 10 + i, "list_price": 100, "stock": j + 1,
                  "tags": ["wl", f"wp{i}"], "ts": ts + j} for j in range(4)]
        lines.append({"op": "order", "sku": "WL-HOT", "qty": i % 5 + 1, "amount": 1.0, "ts": ts + 5})
        self.bodies[i] = "\n".join(json.dumps(x, separators=(",", ":")) for x in lines) + "\n"
        return self.bodies[i]

    def post(self, cli, ids, wait="durable"):
        acked = []
        for i in ids:
            status, r = cli.json("POST", f"/api/events?wait={wait}", self.body(i))
            if status == 200 and r.get("accepted") == 5 and r.get("durable") is True:
                acked.append(i)
        return acked

    @staticmethod
    def present(cli, ids_present, ids_absent, when):
        bad = []
        for i in ids_present:
            for j in range(4):
                status, s = cli.get(f"/api/skus/WL-{i:04d}-{j}")
                if status != 200 or (s.get("fields") or {}).get("price") != 10 + i:
                    bad.append(f"WL-{i:04d}-{j}: {status}")
        for i in ids_absent:
            status, _ = cli.get(f"/api/skus/WL-{i:04d}-0")
            if status != 404:
                bad.append(f"post {i} should be absent: {status}")
        check(not bad, f"{when}: posts {C_range(ids_present)} present, {C_range(ids_absent)} absent "
                       f"({len(bad)} problems)", bad[:5])
        status, s = cli.get("/api/skus/WL-HOT")
        want = sum(i % 5 + 1 for i in ids_present)
        got = ((s.get("counters") or {}).get("24h") or {}).get("sales") if status == 200 else None
        check(got == want, f"{when}: WL-HOT sales_24h {got} == {want} (each present post counted once)")


def C_range(ids):
    ids = sorted(ids)
    if not ids:
        return "[]"
    out, start, prev = [], ids[0], ids[0]
    for x in ids[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


def wal_section(binary, tmp, rules):
    phase("WAL: torn tail, flipped bytes")
    data = os.path.join(tmp, "data-wal")
    srv = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0", "--fsync", "batch"])
    PROCS.append(srv)
    wp = WalPosts()

    def up(when):
        srv.start()
        h = srv.wait_ready(30)
        check(h is not None, f"{when}: poold starts", srv.log_text()[-600:] if h is None else None)
        return C.HttpClient(srv.port) if h else None

    cli = up("fresh")
    if not cli:
        return
    acked = wp.post(cli, range(30))
    check(acked == list(range(30)), f"30 posts acknowledged with durable:true ({len(acked)})")
    check(srv.kill9() == -9, "kill -9")
    check(not os.path.exists(os.path.join(data, "snapshot.poold")), "no snapshot was written (--snapshot-every 0)")

    segs = wal_segments(data)
    check(len(segs) >= 1, f"DATA/wal has segments ({segs})")
    seg = segs[-1]
    hdr, recs, probs = parse_wal(seg)
    check(not probs, f"the segment follows the documented format: {probs}")
    check(all(r["hcrc_ok"] and r["dcrc_ok"] for r in recs), "every record's header and data CRC-32C match")
    check(crc32c(b"123456789") == 0xE3069283, "CRC-32C check value")
    http_recs = [r for r in recs if r["kind"] == 0]
    check(len(http_recs) == 30 and [r["payload"].decode() for r in http_recs] == [wp.bodies[i] for i in range(30)],
          f"one record per POST holding the body as posted ({len(http_recs)} http records)")
    seqs_ok = all(recs[i + 1]["first_seq"] == recs[i]["first_seq"] + recs[i]["nevents"] for i in range(len(recs) - 1))
    check(seqs_ok and all(r["nevents"] == 5 and r["source"] == b"http" and r["partition"] == -1 and r["offset"] == -1
                          and r["flags"] == 0 for r in http_recs),
          "records: consecutive seqs, 5 events each, source http, partition/offset -1")
    check(hdr["base"] <= recs[0]["first_seq"] and os.path.basename(seg) == f"wal-{hdr['base']:016x}.log",
          f"the segment is named after its base seq {hdr['base']}")

    present = list(range(29))

    # (a) the last record cut in the middle
    last = recs[-1]
    cut = last["off"] + last["len"] // 2
    with open(seg, "r+b") as f:
        f.truncate(cut)
    cli = up("(a) torn tail")
    log = srv.log_text()
    check(re.search(r"torn tail at offset %d" % last["off"], log) is not None and "truncated" in log,
          f"(a) the log names the torn tail at offset {last['off']}", [ln for ln in log.splitlines() if "wal" in ln][:3])
    if cli:
        check(os.path.getsize(seg) == last["off"], f"(a) the segment is cut at the torn record "
                                                     f"({os.path.getsize(seg)} == {last['off']})")
        WalPosts.present(cli, present, [29], "(a)")
        acked = wp.post(cli, range(30, 40))
        check(acked == list(range(30, 40)), "(a) new posts after the repair are acknowledged")
        present += acked
    srv.kill9()
    cli = up("(a) restart after appending to a repaired segment")
    if cli:
        WalPosts.present(cli, present, [29], "(a) after more posts")
    srv.kill9()

    # (b) a flipped payload byte in the last record; (b2) a flipped header byte
    for label, where in (("(b)", "payload"), ("(b2)", "header")):
        hdr, recs, probs = parse_wal(wal_segments(data)[-1])
        seg = wal_segments(data)[-1]
        last = recs[-1]
        victim = int(last["payload"].decode().split('"WL-')[1][:4])
        pos = last["off"] + 48 + last["slen"] + 10 if where == "payload" else last["off"] + 24  # nevents
        with open(seg, "r+b") as f:
            f.seek(pos)
            byte = f.read(1)
            f.seek(pos)
            f.write(bytes([byte[0] ^ 0x5A]))
        cli = up(f"{label} flipped {where} byte in the last record")
        log = srv.log_text()
        check(re.search(r"torn tail at offset %d" % last["off"], log) is not None,
              f"{label} the log names the cut at offset {last['off']}",
              [ln for ln in log.splitlines() if "wal" in ln][:3])
        present = [i for i in present if i != victim]
        if cli:
            check(os.path.getsize(seg) == last["off"], f"{label} the segment is cut at the bad record")
            WalPosts.present(cli, present, [29, victim], label)
            nxt = max(present) + 1
            acked = wp.post(cli, range(nxt, nxt + 5))
            present += acked
        srv.kill9()

    # (c) a flipped payload byte in a middle record; (c2) a flipped header byte
    for label, where in (("(c)", "payload"), ("(c2)", "header")):
        seg = wal_segments(data)[-1]
        hdr, recs, probs = parse_wal(seg)
        mid = recs[len(recs) // 2]
        pos = mid["off"] + 48 + mid["slen"] + 7 if where == "payload" else mid["off"] + 40  # ingest_ms
        with open(seg, "rb") as f:
            orig = f.read()
        broken = bytearray(orig)
        broken[pos] ^= 0x20
        with open(seg, "wb") as f:
            f.write(broken)
        srv.start()
        rc = srv.wait(30)
        log = srv.log_text()
        check(rc not in (0, None), f"{label} a corrupt middle record stops the start (exit {rc})")
        check(seg in log and re.search(r"offset %d\b" % mid["off"], log) is not None and "corrupt" in log,
              f"{label} the message names {os.path.basename(seg)} and offset {mid['off']}",
              log.strip().splitlines()[-2:])
        with open(seg, "rb") as f:
            check(f.read() == bytes(broken), f"{label} the corrupt segment is left as it was (not truncated)")
        with open(seg, "wb") as f:
            f.write(orig)
        cli = up(f"{label} restored")
        if cli:
            WalPosts.present(cli, present, [29], f"{label} restored")
        srv.kill9()


# -- 5. fsync modes ------------------------------------------------------------------------

def fsync_section(binary, tmp, rules):
    phase("--fsync always, batch, everysec")
    for mode in ("always", "batch", "everysec"):
        data = os.path.join(tmp, f"data-fsync-{mode}")
        srv = C.PooldProc(binary, rules, data, tmp, ["--snapshot-every", "0", "--fsync", mode])
        PROCS.append(srv)
        srv.start()
        if not check(srv.wait_ready(30) is not None, f"--fsync {mode}: poold starts"):
            continue
        cli = C.HttpClient(srv.port)
        wp = WalPosts()
        f0 = C.prom_values(metrics(cli), "poold_wal_fsyncs_total").get("", -1)
        answers = []
        for i in range(10):
            status, r = cli.json("POST", "/api/events?wait=durable", wp.body(i))
            answers.append((status, r.get("durable"), r.get("accepted")))
        check(all(a == (200, True, 5) for a in answers), f"--fsync {mode}: POST ?wait=durable answers 200 "
                                                        f"durable:true", answers)
        f1 = C.prom_values(metrics(cli), "poold_wal_fsyncs_total").get("", -1)
        # every durable answer needs a sync that covers it: sequential posts, one sync each at least
        check(f1 - f0 >= 10, f"--fsync {mode}: 10 sequential durable posts -> >= 10 fsyncs ({f1 - f0})")
        t = time.time()
        for i in range(10, 30):
            status, r = cli.json("POST", "/api/events", wp.body(i))
            check(status == 200, f"--fsync {mode}: plain POST {i}: {status}")
        dt = time.time() - t
        f2 = C.prom_values(metrics(cli), "poold_wal_fsyncs_total").get("", -1)
        if mode in ("always", "batch"):
            check(f2 - f1 >= 20, f"--fsync {mode}: plain posts wait for the disk too ({f2 - f1} fsyncs for 20)")
        else:
            check(f2 - f1 <= 3 + 2 * dt, f"--fsync everysec: plain posts do not fsync each ({f2 - f1} fsyncs "
                                        f"in {dt:.2f} s)")
            time.sleep(1.3)
            f3 = C.prom_values(metrics(cli), "poold_wal_fsyncs_total").get("", -1)
            check(f3 > f2, f"--fsync everysec: the background fsync runs ({f2} -> {f3})")
        check(srv.kill9() == -9, f"--fsync {mode}: kill -9")
        srv.start()
        if check(srv.wait_ready(30) is not None, f"--fsync {mode}: restart after kill -9"):
            WalPosts.present(C.HttpClient(srv.port), list(range(30)), [], f"--fsync {mode} after kill -9")
        check(srv.term() == 0, f"--fsync {mode}: clean stop")


# -- main ---------------------------------------------------------------------------------

def main():
    binary = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN")) or "build/poold"
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"streams_test: no executable at {binary} (build first, or pass the poold binary)")
        sys.exit(2)
    tmp = tempfile.mkdtemp(prefix="poold-streams-")
    try:
        rules = os.path.join(tmp, "rules")
        os.mkdir(rules)
        for f in sorted(os.listdir(os.path.join(ROOT, "rules"))):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(ROOT, "rules", f), rules)
        check(sorted(f[:-4] for f in os.listdir(rules)) == sorted(r.name for r in R.RULE_LIST),
              "the reference mirrors every rule of rules/")
        k = kafka_section(binary, tmp, rules)
        if k:
            cat_ids = [json.loads(ln)["sku"] for ln in read_lines(os.path.join(tmp, "catalog.ndjson"))]
            s = snapshot_section(binary, tmp, rules, k, cat_ids)
            if s:
                version_section(binary, tmp, rules, k["data"], s["srv"])
        wal_section(binary, tmp, rules)
        fsync_section(binary, tmp, rules)
    except Exception:
        traceback.print_exc()
        check(False, "the test ran to its end without an exception")
    finally:
        for p in PROCS:
            if p.alive():
                p.kill9()
        for m in MOCKS:
            m.stop()
        if failed:
            for p in PROCS:
                p.print_logs(15)
        if os.environ.get("KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"streams test took {time.time() - T_START:.1f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
