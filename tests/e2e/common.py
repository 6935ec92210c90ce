"""Helpers shared by the small end-to-end scripts: a pass/fail tally that
ends with the "N passed, N failed" line, a free loopback port, JSON GETs."""
import json
import socket
import sys
import urllib.request

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# ----------------------------------------------------------------------------
# Helpers for the streaming tests (streams_test.py, crash_test.py,
# bench/bench_streams.py): a keep-alive client, a poold process, the Kafka
# mock cluster, member paging, Prometheus parsing.

import http.client as _http_client
import os as _os
import re as _re
import signal as _signal
import subprocess as _subprocess
import time as _time
import urllib.parse as _urlparse


def qs(s):
    """URL-quotes one path segment or query value."""
    return _urlparse.quote(str(s), safe="")


class HttpClient:
    """One keep-alive HTTP/1.1 connection (one per thread); reconnects once
    on a broken connection. request() raises OSError when the server is down."""

    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=None, retry=True):
        if isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = _http_client.HTTPConnection("127.0.0.1", self.port, timeout=timeout or self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (_http_client.HTTPException, ConnectionError, socket.timeout, OSError):
                self.close()
                if attempt or not retry:
                    raise

    def json(self, method, path, body=None, headers=None, timeout=None, retry=True):
        status, _, data = self.request(method, path, body, headers, timeout, retry)
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


def prom_values(text, name):
    """{label-string: value} of one Prometheus metric ("" = no labels)."""
    out = {}
    for line in text.splitlines():
        m = _re.match(r'^' + _re.escape(name) + r'(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def wait_until(fn, timeout=30.0, step=0.05):
    """Calls fn until it returns a true value (returned) or timeout (None)."""
    deadline = _time.time() + timeout
    while True:
        try:
            v = fn()
        except OSError:
            v = None
        if v:
            return v
        if _time.time() >= deadline:
            return None
        _time.sleep(step)


def fetch_pool(cli, name, page=1000):
    """Pages through a pool: (set of members, {"seq", "size", "seqs", "dups"})
    or (None, error text)."""
    members, cursor, seqs, size = [], None, set(), None
    for _ in range(100000):
        path = f"/api/pools/{qs(name)}/members?limit={page}"
        if cursor is not None:
            path += "&cursor=" + qs(cursor)
        status, r = cli.get(path)
        if status != 200:
            return None, f"GET {path} -> {status} {str(r)[:200]}"
        members += r.get("members") or []
        seqs.add(r.get("seq"))
        size = r.get("size")
        cursor = r.get("next")
        if cursor is None:
            break
    return set(members), {"seq": min(s for s in seqs if s is not None) if seqs - {None} else None,
                          "size": size, "seqs": seqs, "dups": len(members) - len(set(members))}


class KafkaMock:
    """`poold kafka-mock --topics SPEC` as a child process; runs until stop()
    (closing its stdin ends it)."""

    def __init__(self, binary, topics="events:4", log_path=None):
        self.log = open(log_path, "w") if log_path else _subprocess.DEVNULL
        self.proc = _subprocess.Popen([binary, "kafka-mock", "--topics", topics], stdin=_subprocess.PIPE,
                                      stdout=_subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = _re.match(r"bootstrap: (\S+)", line or "")
        if not m:
            self.stop()
            raise RuntimeError(f"kafka-mock printed {line!r} instead of 'bootstrap: HOST:PORT'")
        self.bootstrap = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, _subprocess.TimeoutExpired):
                self.proc.terminate()
                self.proc.wait(timeout=10)
        if self.log is not _subprocess.DEVNULL:
            self.log.close()
        return self.proc.returncode


def kafka_produce_file(binary, brokers, topic, path, timeout=120):
    """`poold kafka-produce`; returns the CompletedProcess."""
    return _subprocess.run([binary, "kafka-produce", "--brokers", brokers, "--topic", topic, path],
                           capture_output=True, text=True, timeout=timeout)


_proc_logs = [0]


class PooldProc:
    """One `poold serve` process with its own log file. start() picks a free
    port unless given; wait_ready() polls /healthz."""

    def __init__(self, binary, rules, data, log_dir, extra=(), clock="event"):
        self.binary, self.rules, self.data, self.log_dir = binary, rules, data, log_dir
        self.extra = list(extra)
        self.clock = clock
        self.proc = None
        self.port = None
        self.logs = []
        self.started_at = None

    def start(self, extra=(), port=None):
        self.port = port or free_port()
        _proc_logs[0] += 1
        path = _os.path.join(self.log_dir, f"poold-{_proc_logs[0]:03d}.log")
        self.logs.append(path)
        self._log = open(path, "w")
        cmd = [self.binary, "serve", "--rules", self.rules, "--data", self.data,
               "--listen", f"127.0.0.1:{self.port}", "--clock", self.clock] + self.extra + list(extra)
        self.started_at = _time.time()
        self.proc = _subprocess.Popen(cmd, stdout=self._log, stderr=_subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=60):
        """Polls /healthz until status ok and not loading; returns the health
        JSON or None (process died or timeout)."""
        cli = HttpClient(self.port, timeout=5)
        deadline = _time.time() + timeout
        health = None
        while _time.time() < deadline and self.proc.poll() is None:
            try:
                status, health = cli.get("/healthz")
                if status == 200 and health.get("status") == "ok" and health.get("loading") is False:
                    cli.close()
                    return health
            except OSError:
                pass
            _time.sleep(0.02)
        cli.close()
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(_signal.SIGKILL)
        return self.wait()

    def term(self, timeout=60):
        if self.alive():
            self.proc.send_signal(_signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=60):
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout=timeout)
        except _subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_text(self, i=-1):
        with open(self.logs[i], errors="replace") as f:
            return f.read()

    def print_logs(self, n=25):
        for path in self.logs:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
            asan = [i for i, ln in enumerate(lines) if "Sanitizer" in ln and "ERROR" in ln]
            tail = lines[asan[0]:asan[0] + 80] if asan else lines[-n:]
            print(f"--- {path} (" + ("sanitizer report" if asan else f"last {n} lines") + "):")
            print("\n".join(tail))
