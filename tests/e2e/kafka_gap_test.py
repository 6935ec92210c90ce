#!/usr/bin/env python3
"""Kafka messages deleted by retention before poold read them are never a
silent loss: poold consumes part of a topic, stops, more is produced than
the broker keeps (librdkafka's mock cluster keeps about the last 5 MB of a
partition), and on restart poold resumes from its stored offset, finds the
gap, logs its range and counts it in poold_kafka_skipped_messages_total;
applied + skipped = produced.

usage: kafka_gap_test.py [POOLD_BIN]"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

FIRST, SECOND = 2000, 150000


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/poold")
    tmp = tempfile.mkdtemp(prefix="poold-kgap-")
    mock = srv = None
    try:
        rules = os.path.join(tmp, "rules")
        os.makedirs(rules)
        shutil.copy(os.path.join(os.path.dirname(__file__), "..", "..", "rules", "brand_week.lua"), rules)
        a, b = os.path.join(tmp, "a.ndjson"), os.path.join(tmp, "b.ndjson")
        for path, n, seed in ((a, FIRST, "1"), (b, SECOND, "9")):
            with open(path, "w") as f:
                subprocess.run([binary, "gen", "events", "--skus", "20000", "--events", str(n), "--seed", seed],
                               stdout=f, check=True)
        mock = C.KafkaMock(binary, "events:1")
        C.check(C.kafka_produce_file(binary, mock.bootstrap, "events", a).returncode == 0, "first batch produced")
        extra = ["--kafka", mock.bootstrap, "--topics", "events", "--group", "gap",
                 "--kafka-prop", "session.timeout.ms=4000"]
        srv = C.PooldProc(binary, rules, os.path.join(tmp, "data"), tmp, extra=extra)
        srv.start()
        C.check(srv.wait_ready(60) is not None, "poold starts")
        cli = C.HttpClient(srv.port)
        C.check(C.wait_until(lambda: cli.get("/api/stats")[1].get("applied_seq") == FIRST, 60),
                f"the first {FIRST} messages are applied")
        C.check(srv.term() == 0, "poold stops cleanly")
        C.check(C.kafka_produce_file(binary, mock.bootstrap, "events", b).returncode == 0,
                "more produced while poold is down than the broker keeps")
        srv.start()
        C.check(srv.wait_ready(60) is not None, "poold restarts")
        cli = C.HttpClient(srv.port)
        total = FIRST + SECOND

        def settled():
            st = cli.get("/api/stats")[1]
            k = st.get("kafka") or {}
            done = st.get("applied_seq", 0) + k.get("skipped", 0) >= total and k.get("lag", 1) == 0
            return st if done else None
        st = C.wait_until(settled, 60)
        C.check(st is not None, "poold catches up with the topic")
        if st:
            applied, skipped = st["applied_seq"], st["kafka"]["skipped"]
            C.check(skipped > 0 and applied + skipped == total,
                    f"applied + skipped = produced ({applied} + {skipped} vs {total})")
            _, _, text = cli.request("GET", "/metrics")
            got = C.prom_values(text.decode(), "poold_kafka_skipped_messages_total").get("")
            C.check(got == skipped, f"poold_kafka_skipped_messages_total = {got}")
            log = srv.log_text()
            m = re.search(r"offsets (\d+)\.\.(\d+) were never read", log)
            C.check(m is not None and int(m.group(1)) == FIRST and int(m.group(2)) - int(m.group(1)) + 1 == skipped,
                    f"the log names the skipped range ({m.group(0) if m else 'no line'})")
        C.check(srv.term() == 0, "poold stops cleanly again")
    finally:
        if srv:
            srv.kill9()
        if mock:
            mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"kafka gap test took {time.time() - t0:.1f} s")
    C.finish()
    sys.exit(1 if C.failed else 0)
