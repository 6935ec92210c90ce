#!/usr/bin/env bash
# bench/run.sh - poold's benchmark, one command (issue 3, "Benchmark"):
#
#   bash bench/run.sh [--skus 1000000] [--events 2000000] [--runs 3] [--keep]
#   (env POOLD_BIN=path: benchmark that binary instead of building one)
#
# Builds a Release poold in build-bench/, generates the catalog and the event
# stream with `poold gen` (cached in build-bench/data/), then, with the 8
# example rules of rules/ and the event clock:
#   - bulk load: time from the start of `poold serve --load catalog` until
#     /healthz says "loading": false (every pool computed), polled every 20 ms;
#   - HTTP updates: bench/post_events posts the events in 1,000-line batches
#     with ?wait=applied over 2 keep-alive connections;
#   - in-process replay: `serve --load catalog --load events`, minus the load;
#   - apply latency per batch p50/p99 from /metrics (poold_apply_batch_seconds,
#     the HTTP phase only), query latency p50/p99 client side and server side
#     (X-Took-Us header) for pool size, first page of 1,000, member check and
#     an ad-hoc tag query;
#   - RSS (VmRSS) after the load and after the events.
# Each figure is the median of --runs runs where cheap (load, HTTP, replay),
# printed next to its target with PASS or MISS. Needs ~0.5 GB of disk at 1M/2M.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

skus=1000000
events=2000000
runs=3
keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --skus) skus=$2; shift 2 ;;
        --events) events=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done

B=$root/build-bench
mkdir -p "$B/data"
if [ -n "${POOLD_BIN:-}" ]; then
    poold=$POOLD_BIN   # benchmark an existing binary instead of building one
else
    echo "== building Release poold in $B"
    cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
    make -C "$B" -j2 --no-print-directory poold >/dev/null
    poold=$B/poold
fi
cc -std=c11 -O2 -Wall -Wextra -pthread bench/post_events.c -o "$B/post_events"
client=$B/post_events

cat=$B/data/catalog-$skus.ndjson
evs=$B/data/events-$skus-$events.ndjson
if [ ! -s "$cat" ]; then
    echo "== generating $skus SKUs"
    t=$(date +%s%N)
    "$poold" gen catalog --skus "$skus" --out "$cat.tmp" && mv "$cat.tmp" "$cat"
    echo "   $(( ( $(date +%s%N) - t ) / 1000000 )) ms, $(du -h "$cat" | cut -f1)"
fi
if [ ! -s "$evs" ]; then
    echo "== generating $events events"
    t=$(date +%s%N)
    "$poold" gen events --skus "$skus" --events "$events" --out "$evs.tmp" && mv "$evs.tmp" "$evs"
    echo "   $(( ( $(date +%s%N) - t ) / 1000000 )) ms, $(du -h "$evs" | cut -f1)"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hp=127.0.0.1:$port
work=$(mktemp -d "${TMPDIR:-/tmp}/poold-bench.XXXXXX")
server=
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill "$server"; wait "$server" 2>/dev/null || true; fi
    [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# start_server LOG ARGS... : starts poold serve in the background; sets $server, $t0.
start_server() {
    local log=$1; shift
    rm -rf "$work/data"
    t0=$(date +%s%N)
    "$poold" serve --rules rules --listen "$hp" --data "$work/data" --clock event "$@" >"$log" 2>&1 &
    server=$!
}
stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
}
wait_ready() { # prints seconds since $t0
    local out
    if ! out=$("$client" ready "$hp" --t0 "$t0" --timeout 600); then
        echo "bench: the server did not become ready; its log:" >&2; tail -20 "$work/server.log" >&2; exit 2
    fi
    echo "${out#seconds=}"
}
get_metrics() {
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=60).read().decode())' "$hp"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }
kv() { # kv KEY "k=v k=v ..." -> v
    tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}
median() { tr ' ' '\n' <<<"$*" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

load_s=() http_rate=() rss_load=() rss_events=() replay_s=() replay_rate=()
for r in $(seq 1 "$runs"); do
    echo "== run $r/$runs: bulk load, then HTTP updates"
    start_server "$work/server.log" --load "$cat"
    s=$(wait_ready); load_s+=("$s")
    rss_load+=("$(rss_kib)")
    echo "   load $s s, RSS $(( $(rss_kib) / 1024 )) MiB"
    if [ "$r" = "$runs" ]; then metrics_before=$(get_metrics); fi
    out=$("$client" events "$hp" "$evs" --batch 1000 --conns 2)
    echo "   HTTP: $out"
    http_rate+=("$(kv rate "$out")")
    rss_events+=("$(rss_kib)")
    if [ "$r" != "$runs" ]; then stop_server; fi
done

echo "== apply and query latency (server of the last run)"
metrics_after=$(get_metrics)
apply=$(python3 - <(echo "$metrics_before") <(echo "$metrics_after") <<'EOF'
import re, sys
def buckets(path):
    b = {}
    for line in open(path):
        m = re.match(r'^poold_apply_batch_seconds_bucket\{le="([^"]+)"\}\s+(\S+)', line)
        if m:
            b[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
    return b
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
les = sorted(b)
cum = [b[le] - a.get(le, 0) for le in les]
def q(p):
    if not cum or cum[-1] == 0:
        return -1
    want = p * cum[-1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= want:
            if le == float("inf"):
                return prev_le * 1e3
            return (prev_le + (le - prev_le) * (want - prev_c) / max(c - prev_c, 1e-12)) * 1e3
        prev_le, prev_c = le, c
    return -1
print(f"p50={q(0.5):.3f} p99={q(0.99):.3f} n={int(cum[-1]) if cum else 0}")
EOF
)
pool=holiday_gifts
sku=$(python3 - "$hp" "$pool" <<'EOF'
import json, sys, urllib.request
r = json.loads(urllib.request.urlopen(f"http://{sys.argv[1]}/api/pools/{sys.argv[2]}/members?limit=1", timeout=30).read())
print(r["members"][0] if r["members"] else "SG-0000000")
EOF
)
q_size=$("$client" get "$hp" "/api/pools/$pool")
q_page=$("$client" get "$hp" "/api/pools/$pool/members?limit=1000")
q_member=$("$client" get "$hp" "/api/pools/$pool/members/$sku")
q_query=$("$client" post "$hp" /api/query '{"where": "market:SG & lazmall & giftable & !blocked"}')
stop_server

for r in $(seq 1 "$runs"); do
    echo "== run $r/$runs: in-process replay (serve --load catalog --load events)"
    start_server "$work/server.log" --load "$cat" --load "$evs"
    s=$(wait_ready)
    # the events' share: from the log line that ends the catalog file to
    # ready (both on the server's clock; the first log line is its start)
    cat_done=$(python3 - "$work/server.log" "$(basename "$cat")" <<'PYEOF'
import datetime, re, sys
ts = lambda l: datetime.datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
lines = [l for l in open(sys.argv[1]) if re.match(r"\d{4}-\d\d-\d\dT", l)]
done = [l for l in lines if sys.argv[2] in l and ": done:" in l]
print(f"{ts(done[0]) - ts(lines[0]):.3f}" if done else "0")
PYEOF
)
    replay_s+=("$(python3 -c "import sys; print(max(float(sys.argv[1]) - float(sys.argv[2]), 0.001))" "$s" "$cat_done")")
    # the loader's own rate for the events file ("... done: N lines, ... R lines/s"), if it logs one
    lr=$(grep -F "$(basename "$evs")" "$work/server.log" | grep -o 'done:.* \([0-9]*\) lines/s' | grep -o '[0-9]* lines/s' | cut -d' ' -f1 | tail -1 || true)
    [ -n "$lr" ] && replay_rate+=("$lr")
    echo "   $s s until ready${lr:+, loader: $lr lines/s for the events}"
    stop_server
done

L=$(median "${load_s[@]}")
H=$(median "${http_rate[@]}")
P=$(median "${replay_s[@]}")
RL=$(median "${rss_load[@]}")
RE=$(median "${rss_events[@]}")
LR=-1
if [ ${#replay_rate[@]} -gt 0 ]; then LR=$(median "${replay_rate[@]}"); fi

python3 - "$skus" "$events" "$L" "$H" "$P" "$RL" "$RE" "$apply" "$q_size" "$q_page" "$q_member" "$q_query" "$LR" <<'EOF'
import sys
skus, events = int(sys.argv[1]), int(sys.argv[2])
L, H, P, RL, RE = (float(x) for x in sys.argv[3:8])
def kv(s):
    return {k: float(v) for k, v in (p.split("=") for p in s.split())}
apply = kv(sys.argv[8])
qs = [("pool size", kv(sys.argv[9])), ("first page of 1,000", kv(sys.argv[10])),
      ("member check", kv(sys.argv[11])), ("ad-hoc tag query", kv(sys.argv[12]))]
rows = []
def row(name, value, unit, target="", ok=None):
    mark = "" if ok is None else ("PASS" if ok else "MISS")
    rows.append((name, value, unit, target, mark))
load_rate = skus / L
replay_rate = events / P
row("bulk load", f"{load_rate:,.0f}", "SKUs/s", ">= 1,000,000", load_rate >= 1e6)
row("  (load time)", f"{L:.2f}", "s")
row("HTTP updates, 1,000/POST, 2 conns", f"{H:,.0f}", "events/s", ">= 650,000", H >= 650000)
row("in-process replay (file)", f"{replay_rate:,.0f}", "events/s", "(catalog loaded -> ready)")
LR = float(sys.argv[13])
if LR > 0:
    row("  (loader's own rate for the events)", f"{LR:,.0f}", "events/s")
row("apply latency per batch p50", f"{apply['p50']:.3f}", "ms", f"({int(apply['n'])} batches)")
row("apply latency per batch p99", f"{apply['p99']:.3f}", "ms")
for name, q in qs:
    sp = q["server_p50_us"]
    if name == "ad-hoc tag query":
        row(f"{name} p50, server", f"{sp:.1f}" if sp >= 0 else "n/a", "us", "<= 100 us",
            (sp >= 0 and sp <= 100) if sp >= 0 else False)
    else:
        row(f"{name} p50, server", f"{sp:.1f}" if sp >= 0 else "n/a", "us")
    row(f"{name} p99, server", f"{q['server_p99_us']:.1f}" if q["server_p99_us"] >= 0 else "n/a", "us")
    row(f"{name} p50 / p99, client", f"{q['client_p50_us']:.1f} / {q['client_p99_us']:.1f}", "us")
row("RSS after load", f"{RL / 1024:.0f}", "MiB", "<= 200 MiB", RL / 1024 <= 200)
row("RSS after the events", f"{RE / 1024:.0f}", "MiB", "<= 200 MiB", RE / 1024 <= 200)
print()
print(f"poold benchmark: {skus:,} SKUs, {events:,} events, 8 example rules, event clock (medians)")
for name, value, unit, target, mark in rows:
    print(f"  {name:38s} {value:>20s} {unit:9s} {target:22s} {mark}")
EOF
