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
