#!/usr/bin/env python3
"""End-to-end test of issue 7, "Limits with clear errors": every documented
limit is breached against a real `poold serve` and the answer checked: the
status code, a JSON error message that names the limit and its value, and a
/metrics counter that moved. The value just at each limit is accepted.
Python 3 stdlib only; < 60 s.

    python3 tests/e2e/limits_test.py [POOLD_BIN]   (or env POOLD_BIN; default build/poold)

Server A (2,000 SKUs, --max-body 100000, rule fixtures/limits/sg.lua):
  - request body: /api/events over 64 MiB (Content-Length, and chunked) -> 413
    naming 67108864, exactly 64 MiB accepted; other routes over --max-body
    (Content-Length, chunked) -> 413 naming 100000, /api/query over its
    64 KiB -> 413 naming 65536;
  - NDJSON line over 64 KiB -> rejected, reason too_long with its line
    number and 65536, the valid lines around it applied, a dead letter;
    exactly 64 KiB accepted;
  - JSON nesting over 16 levels (too_deep), over 64 tags in one event
    (too_many_tags), a tag over 100 characters (bad_tag), attrs over 16 KiB
    (bad_value): each rejected naming its value, each value at the limit
    accepted, poold_events_rejected_total{reason} moved;
  - free tags per SKU: 300 tags added by 5 tag ops -> the first 256 kept,
    poold_tags_per_sku_limit_total moved by 44;
  - rule source: PUT /api/rules/NAME over 256 KiB -> 413 naming 262144,
    exactly 256 KiB accepted, poold_limit_breaches_total moved; a rule file
    over 256 KiB dropped in the rules dir (hot reload) is refused too;
  - page size: members?limit=10001 -> 400 naming 10000, 10000 accepted.
Server B (--max-connections 8):
  - 20 idle sockets: 8 served, the others 503 (Retry-After, names 8) or
    refused; a normal request works once they close;
  - slow clients: 5 clients send request headers one byte a second and one
    stays idle; requests on fresh connections keep answering meanwhile;
    past the 30 s connection timeout (+8 s) every one of them has been
    dropped and 8 concurrent connections are served again.
Server C (512 rule files from fixtures/limits/pool_template.lua):
  - 512 live pools; publishing a 513th -> 409 naming 512; a 513th rule
    file (hot reload) is refused; after a restart with 513 files in the
    rules dir still at most 512 pools are live.
For every HTTP-layer limit (body, connections, timeouts, page size) a
/metrics counter must move too.

Prints "N passed, N failed" last; exits 1 on any failure.
"""
import http.client
import json
import os
import re
import select
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
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(HERE, "fixtures", "limits")

BODY_EVENTS = 64 << 20        # /api/events body limit
MAX_BODY = 100000             # --max-body given to server A
QUERY_BODY = 64 * 1024        # /api/query route limit
LINE = 64 * 1024              # EVENT_MAX_LINE_LEN
DEPTH = 16                    # EVENT_MAX_JSON_DEPTH
TAGS_EVENT = 64               # EVENT_MAX_TAGS
TAG_LEN = 100                 # EVENT_MAX_TAG_LEN
ATTRS = 16 * 1024             # EVENT_MAX_ATTRS_LEN
FREE_TAGS = 256               # STORE_MAX_FREE_TAGS
RULE_SOURCE = 256 * 1024      # MAX_RULE_SOURCE
POOLS = 512                   # MAX_POOLS
PAGE = 10000                  # MEMBERS_MAX_LIMIT
MAX_CONN = 8                  # --max-connections given to server B
CONN_TIMEOUT = 30             # http.c connection timeout (not configurable)

_lock = threading.Lock()
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    with _lock:
        if cond:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what + (f" ({str(detail)[:400]})" if detail != "" else ""), flush=True)
    return cond


def note(msg):
    with _lock:
        print("  " + msg, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- HTTP helpers ---------------------------------------------------------------------


def request(port, method, path, body=None, headers=None, timeout=30):
    """One request on a fresh connection: (status, {header: value}, bytes)."""
    if isinstance(body, str):
        body = body.encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def jreq(port, method, path, body=None, headers=None, timeout=30):
    status, hdrs, data = request(port, method, path, body, headers, timeout)
    try:
        return status, hdrs, json.loads(data)
    except ValueError:
        return status, hdrs, {"_raw": data[:300].decode(errors="replace")}


def read_response(sock, timeout=30):
    """Reads one HTTP response from a raw socket: (status, headers, body) or
    (None, {}, b"") if the server closed without answering."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                return None, {}, b""
            buf += d
    except (ConnectionResetError, BrokenPipeError):
        return None, {}, b""
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    try:
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                break
            rest += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    return status, hdrs, rest[:n]


def raw_send(port, head, chunks=(), timeout=60):
    """Sends a request head and body chunks on a raw socket (stopping
    quietly if the server closes early), then reads the response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for ch in chunks:
            try:
                s.sendall(ch)
            except (BrokenPipeError, ConnectionResetError):
                break
        st, hd, body = read_response(s, timeout)
        try:
            return st, hd, json.loads(body) if body else {}
        except ValueError:
            return st, hd, {"_raw": body[:300].decode(errors="replace")}
    finally:
        s.close()


def chunked(total, piece=1 << 20, byte=b" "):
    """Chunked transfer-encoding of `total` bytes of `byte`, then the end."""
    block = byte * piece
    left = total
    while left > 0:
        n = min(piece, left)
        yield b"%x\r\n" % n + block[:n] + b"\r\n"
        left -= n
    yield b"0\r\n\r\n"


def metrics(port):
    """{"name{labels}": value} of every sample of /metrics."""
    _, _, data = request(port, "GET", "/metrics", timeout=10)
    out = {}
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^(\S+?(?:\{[^}]*\})?)\s+(\S+)$", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def metrics_text(port):
    return request(port, "GET", "/metrics", timeout=10)[2].decode(errors="replace")


def moved(before, after, pattern):
    """Samples matching `pattern` (regex on "name{labels}") that grew."""
    rx = re.compile(pattern)
    return {k: after[k] - before.get(k, 0) for k in after
            if rx.search(k) and after[k] > before.get(k, 0)}


def post_events(port, body, wait="applied"):
    path = "/api/events" + (f"?wait={wait}" if wait else "")
    return jreq(port, "POST", path, body, {"Content-Type": "application/x-ndjson"}, timeout=60)


def sku_json(port, sku):
    return jreq(port, "GET", "/api/skus/" + urllib.parse.quote(sku, safe=""))


# -- servers ---------------------------------------------------------------------------


class Server:
    def __init__(self, binary, name, tmp, rules, extra=()):
        self.binary, self.name, self.rules = binary, name, rules
        self.data = os.path.join(tmp, "data-" + name)
        os.makedirs(self.data, exist_ok=True)
        self.extra = list(extra)
        self.proc = None
        self.logs = []
        self.tmp = tmp

    def start(self):
        self.port = free_port()
        path = os.path.join(self.tmp, f"poold-{self.name}-{len(self.logs)}.log")
        self.logs.append(path)
        self.log = open(path, "w")
        cmd = [self.binary, "serve", "--rules", self.rules, "--data", self.data,
               "--listen", f"127.0.0.1:{self.port}", "--clock", "event", "--snapshot-every", "0"] + self.extra
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                st, _, h = jreq(self.port, "GET", "/healthz", timeout=5)
                if st == 200 and h.get("loading") is False:
                    return h
            except OSError:
                pass
            time.sleep(0.05)
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def log_text(self):
        with open(self.logs[-1], errors="replace") as f:
            return f.read()


def names_value(body, value):
    """The JSON error message names the value (as digits)."""
    msg = body.get("error") if isinstance(body, dict) else None
    return isinstance(msg, str) and re.search(r"(?<!\d)" + str(value) + r"(?!\d)", msg) is not None


# -- server A: bodies, parser limits, free tags, rule source, page size -------------------


def test_body_size(port):
    before = metrics(port)
    # /api/events: over 64 MiB by Content-Length -> 413 at once.
    st, hd, b = raw_send(port, b"POST /api/events HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % (BODY_EVENTS + 1), [b" " * 4096])
    check(st == 413, "POST /api/events with Content-Length 64 MiB + 1 -> 413", (st, b))
    check(names_value(b, BODY_EVENTS), "the 413 of /api/events names the limit 67108864", b)
    # /api/events, chunked past 64 MiB: read and dropped, 413 at the end.
    st, hd, b = raw_send(port, b"POST /api/events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                         chunked(BODY_EVENTS + (512 << 10)))
    check(st == 413, "chunked POST /api/events of 64.5 MiB -> 413", (st, b))
    check(names_value(b, BODY_EVENTS), "the chunked 413 of /api/events names 67108864", b)
    # Exactly 64 MiB (whitespace lines: nothing to apply) is accepted.
    line = b" " * (LINE - 1) + b"\n"
    body = line * (BODY_EVENTS // len(line))
    body += b" " * (BODY_EVENTS - len(body))
    st, hd, b = raw_send(port, b"POST /api/events HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % len(body), [body])
    check(st == 200, "POST /api/events of exactly 64 MiB is accepted", (st, b))
    del body
    # Another route, default limit --max-body 100000.
    st, hd, b = raw_send(port, b"POST /api/rules/sg/preview HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % (MAX_BODY + 1), [b"x" * 1000])
    check(st == 413, "POST /api/rules/sg/preview over --max-body -> 413", (st, b))
    check(names_value(b, MAX_BODY), "the 413 names --max-body's value 100000", b)
    st, hd, b = raw_send(port, b"POST /api/rules/sg/preview HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                         chunked(MAX_BODY + 50000, 10000, b"x"))
    check(st == 413 and names_value(b, MAX_BODY), "chunked body over --max-body -> 413 naming 100000", (st, b))
    st, hd, b = raw_send(port, b"POST /api/rules/sg/preview HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % MAX_BODY, [b"x" * MAX_BODY])
    check(st is not None and st != 413, "a body of exactly --max-body is not refused as too large", (st, b))
    st, hd, b = raw_send(port, b"POST /api/query HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % (QUERY_BODY + 1), [b"x" * 100])
    check(st == 413 and names_value(b, QUERY_BODY), "POST /api/query over 64 KiB -> 413 naming 65536", (st, b))
    after = metrics(port)
    m = moved(before, after, r"(?i)too_large|body|413|limit_breach")
    check(m, "a /metrics counter counts the 413s (request body limit)",
          "no counter moved; poold_http_* / limit counters are not exported")


def test_line_length(port, data_dir):
    before = metrics(port)
    pad = lambda n, sku: ('{"op":"upsert","sku":"%s","pad":"' % sku) + "x" * (n - len('{"op":"upsert","sku":"%s","pad":""}' % sku)) + '"}'
    long_line = pad(LINE + 1, "LIM-LONG")
    body = "\n".join([
        '{"op":"price","sku":"LIM-A","price":11.5}',
        long_line,
        '{"op":"price","sku":"LIM-B","price":22.5}',
    ]) + "\n"
    st, _, r = post_events(port, body)
    check(st == 200, "POST with a too long line -> 200 for the rest", (st, r))
    check(r.get("accepted") == 2 and r.get("rejected") == 1, "2 lines accepted, 1 rejected", r)
    errs = r.get("errors") or [{}]
    e = errs[0]
    check(e.get("line") == 2 and e.get("reason") == "too_long", "the long line is line 2, reason too_long", errs)
    check(names_value(e, LINE), "the too_long message names 65536", e)
    st_a, _, a = sku_json(port, "LIM-A")
    st_b, _, bb = sku_json(port, "LIM-B")
    check(st_a == 200 and (a.get("fields") or {}).get("price") == 11.5, "the line before it is applied", a)
    check(st_b == 200 and (bb.get("fields") or {}).get("price") == 22.5, "the line after it is applied", bb)
    st, _, _ = sku_json(port, "LIM-LONG")
    check(st == 404, "the too long line is not applied", st)
    st, _, r = post_events(port, pad(LINE, "LIM-EXACT") + "\n")
    check(st == 200 and r.get("accepted") == 1, "a line of exactly 64 KiB is accepted", r)
    after = metrics(port)
    d = after.get('poold_events_rejected_total{reason="too_long"}', 0) - before.get(
        'poold_events_rejected_total{reason="too_long"}', 0)
    check(d == 1, 'poold_events_rejected_total{reason="too_long"} moved by 1', d)
    dl = os.path.join(data_dir, "deadletter.ndjson")
    found = False
    if os.path.exists(dl):
        with open(dl, errors="replace") as f:
            for ln in f:
                try:
                    o = json.loads(ln)
                except ValueError:
                    continue
                found = found or (o.get("reason") == "too_long" and o.get("line") == 2)
    check(found, "the too long line is in DATA/deadletter.ndjson with its line number")


def parser_limit(port, name, reason, bad_line, good_line, value):
    before = metrics(port)
    st, _, r = post_events(port, bad_line + "\n")
    errs = r.get("errors") or [{}]
    check(st == 200 and r.get("rejected") == 1 and errs[0].get("reason") == reason,
          f"{name}: over the limit -> rejected with reason {reason}", (st, r))
    check(names_value(errs[0], value), f"{name}: the message names the limit {value}", errs[0])
    st, _, r = post_events(port, good_line + "\n")
    check(st == 200 and r.get("accepted") == 1, f"{name}: exactly at the limit is accepted", (st, r))
    after = metrics(port)
    key = f'poold_events_rejected_total{{reason="{reason}"}}'
    check(after.get(key, 0) - before.get(key, 0) == 1, f"{name}: {key} moved by 1",
          after.get(key, 0) - before.get(key, 0))


def test_parser_limits(port):
    def nested(levels):  # `levels` = total depth including the top-level object
        inner = levels - 1
        return '{"op":"upsert","sku":"LIM-D","attrs":' + '{"a":' * (inner - 1) + "{}" + "}" * (inner - 1) + "}"
    parser_limit(port, "JSON nesting depth", "too_deep", nested(DEPTH + 1), nested(DEPTH), DEPTH)
    tags = lambda n: json.dumps({"op": "tag", "sku": "LIM-T", "add": ["t%d" % i for i in range(n)]})
    parser_limit(port, "tags per event", "too_many_tags", tags(TAGS_EVENT + 1), tags(TAGS_EVENT), TAGS_EVENT)
    tag = lambda n: json.dumps({"op": "tag", "sku": "LIM-L", "add": ["a" * n]})
    parser_limit(port, "tag length", "bad_tag", tag(TAG_LEN + 1), tag(TAG_LEN), TAG_LEN)

    def attrs(n):  # attrs object text of exactly n bytes
        return '{"op":"upsert","sku":"LIM-ATTR","attrs":{"a":"' + "x" * (n - len('{"a":""}')) + '"}}'
    parser_limit(port, "attributes size", "bad_value", attrs(ATTRS + 1), attrs(ATTRS), ATTRS)


def test_free_tags(port):
    before = metrics(port)
    lines = [json.dumps({"op": "tag", "sku": "LIM-FT", "add": ["ft%03d" % i for i in range(k, min(300, k + 60))]})
             for k in range(0, 300, 60)]
    st, _, r = post_events(port, "\n".join(lines) + "\n")
    check(st == 200 and r.get("accepted") == 5 and r.get("applied") is True, "5 tag ops of 300 tags applied", r)
    st, _, s = sku_json(port, "LIM-FT")
    free = [t for t in (s.get("tags") or []) if t.startswith("ft")]
    check(st == 200 and len(free) <= FREE_TAGS, f"at most {FREE_TAGS} free tags kept on one SKU", len(free))
    check(sorted(free) == ["ft%03d" % i for i in range(FREE_TAGS)], "the first 256 added are the ones kept",
          (len(free), sorted(free)[-3:]))
    after = metrics(port)
    d = after.get("poold_tags_per_sku_limit_total", 0) - before.get("poold_tags_per_sku_limit_total", 0)
    check(d == 300 - FREE_TAGS, "poold_tags_per_sku_limit_total moved by 44", d)
    text = metrics_text(port)
    help_ = [ln for ln in text.splitlines() if ln.startswith("# HELP poold_tags_per_sku_limit_total")]
    check(help_ and "256" in help_[0], "the counter's HELP names the limit 256", help_)
    # Room again after removing one: the limit is a count, not a ban.
    st, _, r = post_events(port, json.dumps({"op": "tag", "sku": "LIM-FT", "remove": ["ft000"], "add": []}) + "\n" +
                           json.dumps({"op": "tag", "sku": "LIM-FT", "add": ["ft299"]}) + "\n")
    st, _, s = sku_json(port, "LIM-FT")
    free = set(t for t in (s.get("tags") or []) if t.startswith("ft"))
    check("ft299" in free and "ft000" not in free and len(free) == FREE_TAGS,
          "after removing one free tag, one more can be added", len(free))


def lua_rule(name, size):
    """A valid rule source of exactly `size` bytes (padded with a comment)."""
    tail = '\nreturn pool "%s" { where = all { tag "market:SG" } }\n' % name
    return "-- " + "x" * (size - 3 - len(tail)) + tail


def test_rule_source(port, rules_dir):
    before = metrics(port)
    src = lua_rule("lim_big", RULE_SOURCE + 1)
    st, _, r = jreq(port, "PUT", "/api/rules/lim_big", src, {"Content-Type": "text/x-lua"})
    check(st == 413, "PUT /api/rules/NAME of 256 KiB + 1 -> 413", (st, r))
    check(names_value(r, RULE_SOURCE), "the rule-source 413 names 262144", r)
    st, _, r = jreq(port, "PUT", "/api/rules/lim_exact", lua_rule("lim_exact", RULE_SOURCE),
                    {"Content-Type": "text/x-lua"})
    check(st == 200, "PUT of a rule of exactly 256 KiB is accepted", (st, r))
    st, _, r = jreq(port, "PUT", "/api/rules/lim_big_json", json.dumps({"source": lua_rule("lim_big_json", RULE_SOURCE + 10)}),
                    {"Content-Type": "application/json"})
    check(st == 413 and names_value(r, RULE_SOURCE), "the same as {\"source\": ...} -> 413 naming 262144", (st, r))
    after = metrics(port)
    key = 'poold_limit_breaches_total{limit="rule_source_bytes",value="262144"}'
    check(after.get(key, 0) - before.get(key, 0) == 2, f"{key} moved by 2", after.get(key, 0) - before.get(key, 0))
    # The same limit for a rule file dropped in the rules dir (hot reload).
    before = after
    tmp = os.path.join(rules_dir, ".lim_file.tmp")
    with open(tmp, "w") as f:
        f.write(lua_rule("lim_file", RULE_SOURCE + 1))
    os.rename(tmp, os.path.join(rules_dir, "lim_file.lua"))
    deadline = time.time() + 3
    st = None
    while time.time() < deadline:
        st, _, _ = jreq(port, "GET", "/api/pools/lim_file")
        if st == 200:
            break
        time.sleep(0.2)
    check(st == 404, "a rule FILE over 256 KiB (hot reload) does not go live", st)
    after = metrics(port)
    check(after.get(key, 0) > before.get(key, 0), "the refused rule file moves " + key,
          after.get(key, 0) - before.get(key, 0))


def test_page_size(port):
    before = metrics(port)
    st, _, r = jreq(port, "GET", "/api/pools/sg/members?limit=%d" % (PAGE + 1))
    check(st == 400, "members?limit=10001 -> 400", (st, r))
    check(names_value(r, PAGE), "the 400 names the page-size limit 10000", r)
    st, _, r = jreq(port, "GET", "/api/pools/sg/members?limit=%d" % PAGE)
    check(st == 200, "members?limit=10000 -> 200", (st, r))
    after = metrics(port)
    m = moved(before, after, r"(?i)limit_breach|page|400|bad_request")
    check(m, "a /metrics counter counts the refused page size", "no counter moved")


def run_server_a(binary, tmp, catalog):
    rules = os.path.join(tmp, "rules-a")
    os.makedirs(rules)
    shutil.copy(os.path.join(FIX, "sg.lua"), rules)
    a = Server(binary, "a", tmp, rules, ["--load", catalog, "--max-body", str(MAX_BODY)]).start()
    try:
        if not check(a.wait_ready(), "server A starts", a.log_text()[-500:] if a.logs else ""):
            return
        for fn, args in ((test_body_size, (a.port,)), (test_line_length, (a.port, a.data)),
                         (test_parser_limits, (a.port,)), (test_free_tags, (a.port,)),
                         (test_rule_source, (a.port, rules)), (test_page_size, (a.port,))):
            try:
                fn(*args)
            except Exception as ex:  # noqa: BLE001
                check(False, f"{fn.__name__} raised", traceback.format_exc()[-600:])
        check(a.proc.poll() is None, "server A still running after every breach")
    finally:
        a.stop()


# -- server B: concurrent connections, slow clients ------------------------------------


def test_connections(port):
    before = metrics(port)
    time.sleep(0.3)  # the server has seen that connection close
    socks = []
    for _ in range(20):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            socks.append(None)
    time.sleep(0.5)
    ok = busy = refused = 0
    busy_body, busy_hdr = None, None
    for s in socks:
        if s is None:
            refused += 1
            continue
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            st, hd, body = read_response(s, 5)
        except OSError:
            st, hd, body = None, {}, b""
        if st == 200:
            ok += 1
        elif st == 503:
            busy += 1
            busy_hdr = hd
            try:
                busy_body = json.loads(body)
            except ValueError:
                busy_body = {"_raw": body[:200]}
        else:
            refused += 1
    for s in socks:
        if s:
            s.close()
    note(f"20 sockets at --max-connections {MAX_CONN}: {ok} served, {busy} got 503, {refused} refused")
    check(ok == MAX_CONN, f"exactly {MAX_CONN} of 20 connections are served", ok)
    check(busy + refused == 20 - MAX_CONN and busy >= 1, "the others get 503 or are refused", (busy, refused))
    check(busy_hdr is not None and busy_hdr.get("retry-after"), "the 503 carries Retry-After", busy_hdr)
    check(busy_body is not None and names_value(busy_body, MAX_CONN), "the 503 names the connection limit 8",
          busy_body)
    got = None
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            got = request(port, "GET", "/healthz", timeout=3)[0]
        except OSError:
            got = None
        if got == 200:
            break
        time.sleep(0.1)
    check(got == 200, "a normal request works again once they are closed", got)
    after = metrics(port)
    m = moved(before, after, r"(?i)conn|503|limit_breach|too_many")
    check(m, "a /metrics counter counts the connections refused (connection limit)", "no counter moved")


def proc_threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("Threads:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


def test_slow_clients(port, pid, drips=5):
    """drips clients send their request head one byte a second, one stays
    idle; a monitor keeps asking on fresh connections."""
    time.sleep(0.5)  # the sockets of test_connections are gone
    before = metrics(port)
    threads_before = proc_threads(pid)
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
    closed_at = {}
    t0 = time.time()
    stop = threading.Event()

    def gone(s):
        try:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                d = s.recv(4096)
                return True if not d else None  # data (an error answer) then close
        except OSError:
            return True
        return False

    def drip(i):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        k = 0
        while not stop.is_set():
            g = gone(s)
            if g is None:  # got an answer: wait for the close
                g = False
            if g:
                closed_at[i] = time.time() - t0
                break
            if i >= 0 and k < len(head):  # i < 0: the idle client sends nothing
                try:
                    s.send(head[k:k + 1])
                    k += 1
                except OSError:
                    closed_at[i] = time.time() - t0
                    break
            stop.wait(1.0)
        s.close()

    threads = [threading.Thread(target=drip, args=(i,), daemon=True) for i in list(range(drips)) + [-1]]
    for t in threads:
        t.start()
    lat, bad = [], []
    end = t0 + CONN_TIMEOUT + 8
    while time.time() < end:
        t1 = time.time()
        try:
            st = request(port, "GET", "/healthz", headers={"Connection": "close"}, timeout=5)[0]
        except OSError as ex:
            st = repr(ex)
        lat.append(time.time() - t1)
        if st != 200:
            bad.append(st)
        time.sleep(max(0.0, 1.0 - (time.time() - t1)))
    # Past the timeout every slow client should be gone, so MAX_CONN
    # connections at once are served (while the slow clients, if still
    # connected, keep dripping).
    threads_now = proc_threads(pid)
    time.sleep(0.3)  # the monitor's last connection is closed on the server too
    socks = []
    for _ in range(MAX_CONN):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            socks.append(None)
    codes = []
    for s in socks:
        if s is None:
            codes.append("refused")
            continue
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            codes.append(read_response(s, 5)[0])
        except OSError as ex:
            codes.append(repr(ex))
    for s in socks:
        if s:
            s.close()
    time.sleep(0.3)
    try:  # before the slow clients hang up themselves
        after = metrics(port)
    except OSError as ex:
        after = None
        check(False, "GET /metrics after the slow-client test", repr(ex))
    stop.set()
    note(f"slow clients: {drips} dripping 1 byte/s + 1 idle for {time.time() - t0:.0f} s; "
         f"closed by the server at {sorted((k, round(v, 1)) for k, v in closed_at.items())}; "
         f"monitor: {len(lat)} requests, {len(bad)} not 200, max latency {max(lat) * 1000:.0f} ms; "
         f"poold threads {threads_before} before, {threads_now} at {CONN_TIMEOUT + 8} s")
    check(not bad and max(lat) < 1.0, "normal requests keep answering while slow clients hang on", bad[:5])
    check(-1 in closed_at and closed_at[-1] <= CONN_TIMEOUT + 5, "an idle client is dropped after the 30 s timeout",
          closed_at.get(-1))
    dropped = [i for i in range(drips) if i in closed_at and closed_at[i] <= CONN_TIMEOUT + 8]
    check(len(dropped) == drips, "a client sending its headers one byte a second is dropped after the "
          "connection timeout (30 s)", f"{drips - len(dropped)} of {drips} still connected after "
          f"{CONN_TIMEOUT + 8} s: no header/request timeout, the idle timer restarts on every byte")
    check(all(c == 200 for c in codes), f"past the timeout, {MAX_CONN} concurrent connections are served "
          "(the slow clients hold no slot or thread)", codes)
    for t in threads:
        t.join(timeout=3)
    if after is not None:
        m = moved(before, after, r"(?i)timeout|timed_out|aborted|slow|idle")
        check(m, "a /metrics counter counts the connections dropped by the timeout", "no counter moved")


def run_server_b(binary, tmp):
    rules = os.path.join(tmp, "rules-b")
    os.makedirs(rules)
    shutil.copy(os.path.join(FIX, "sg.lua"), rules)
    b = Server(binary, "b", tmp, rules, ["--max-connections", str(MAX_CONN)]).start()
    try:
        if not check(b.wait_ready(), "server B starts"):
            return
        for fn, args in ((test_connections, (b.port,)), (test_slow_clients, (b.port, b.proc.pid))):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001
                check(False, f"{fn.__name__} raised", traceback.format_exc()[-600:])
        check(b.proc.poll() is None, "server B still running")
    finally:
        b.stop()


# -- server C: number of pools -----------------------------------------------------------


def write_rule_file(rules_dir, name):
    with open(os.path.join(FIX, "pool_template.lua")) as f:
        src = f.read().replace("@NAME@", name)
    tmp = os.path.join(rules_dir, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(src)
    os.rename(tmp, os.path.join(rules_dir, name + ".lua"))


def run_server_c(binary, tmp, catalog):
    rules = os.path.join(tmp, "rules-c")
    os.makedirs(rules)
    for i in range(POOLS):
        write_rule_file(rules, "p%03d" % i)
    c = Server(binary, "c", tmp, rules, ["--load", catalog])
    t0 = time.time()
    c.start()
    try:
        h = c.wait_ready(90)
        if not check(h, "server C starts with 512 rule files"):
            return
        note(f"server C: {h.get('pools')} pools live {time.time() - t0:.1f} s after the start")
        check(h.get("pools") == POOLS, "512 pools (the limit) are live", h.get("pools"))
        key = f'poold_limit_breaches_total{{limit="pools",value="{POOLS}"}}'
        before = metrics(c.port)
        st, _, r = jreq(c.port, "PUT", "/api/rules/extra", 'return pool "extra" { where = all { tag "market:MY" } }',
                        {"Content-Type": "text/x-lua"})
        check(st == 200, "a 513th rule can be saved as a draft", (st, r))
        st, _, r = jreq(c.port, "POST", "/api/rules/extra/publish")
        check(st == 409, "publishing a 513th pool -> 409", (st, r))
        check(names_value(r, POOLS), "the refusal names the limit 512", r)
        st, _, _ = jreq(c.port, "GET", "/api/pools/extra")
        check(st == 404, "the 513th pool is not live", st)
        after = metrics(c.port)
        check(after.get(key, 0) - before.get(key, 0) == 1, f"{key} moved by 1", after.get(key, 0) - before.get(key, 0))
        # A 513th rule file (hot reload) is refused as well.
        write_rule_file(rules, "p512")
        deadline = time.time() + 3
        hit = False
        while time.time() < deadline and not hit:
            time.sleep(0.2)
            hit = metrics(c.port).get(key, 0) > after.get(key, 0)
        st, _, _ = jreq(c.port, "GET", "/api/pools/p512")
        _, _, h = jreq(c.port, "GET", "/healthz")
        check(st == 404 and h.get("pools") == POOLS and hit, "a 513th rule file (hot reload) is refused and counted",
              (st, h.get("pools"), hit))
        check("512" in c.log_text() and "too many pools" in c.log_text(), "the log names the pool limit 512")
        # Restart with 513 files in the rules dir: the limit still holds.
        c.stop()
        c.start()
        h = c.wait_ready(90)
        if check(h, "server C restarts with 513 rule files"):
            check(h.get("pools", 0) <= POOLS, "after a restart with 513 rule files at most 512 pools are live",
                  f"{h.get('pools')} pools live: loading the rules dir at start skips the pool limit")
            m = metrics(c.port)
            check(m.get(key, 0) >= 1, "the rule file refused at start is counted in " + key, m.get(key, 0))
    finally:
        c.stop()


# -------------------------------------------------------------------------------------------


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOLD_BIN", os.path.join(ROOT, "build", "poold"))
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print(f"no poold binary at {binary}")
        print("0 passed, 1 failed")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="poold-limits-")
    t0 = time.time()
    ok = False
    try:
        catalog = os.path.join(tmp, "catalog.ndjson")
        small = os.path.join(tmp, "catalog-small.ndjson")
        subprocess.run([binary, "gen", "catalog", "--skus", "2000", "--out", catalog], check=True,
                       capture_output=True)
        subprocess.run([binary, "gen", "catalog", "--skus", "200", "--out", small], check=True,
                       capture_output=True)
        threads = [threading.Thread(target=run_server_b, args=(binary, tmp)),
                   threading.Thread(target=run_server_c, args=(binary, tmp, small))]
        for t in threads:
            t.start()
        run_server_a(binary, tmp, catalog)
        for t in threads:
            t.join()
        ok = True
    except Exception:  # noqa: BLE001
        check(False, "the test harness raised", traceback.format_exc()[-800:])
    finally:
        if failed or not ok:
            print(f"(logs kept in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"limits_test: {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
