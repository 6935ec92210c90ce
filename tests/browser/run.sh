#!/usr/bin/env bash
# Browser tests of the console: starts a real `poold serve` on a free
# loopback port with a generated catalog (5000 SKUs) and the example rules
# copied to a temporary rules directory, then runs journey.mjs in Debian's
# chromium through npm playwright-core (never a browser download); events
# keep flowing during the run.
#   POOLD_BIN   poold binary (default build/poold)
#   POOLD_WEB   serve the console from this directory (--web) instead of the
#               copy embedded in the binary (e.g. web/ while developing)
#   ARTIFACTS   screenshots, page-weight.json, export.csv, poold's log
#               (default: <dir of POOLD_BIN>/browser-artifacts)
#   CHROMIUM    browser (default /usr/bin/chromium)
#   ONLY        regular expression: run only the checks whose name matches
# Prints "N passed, N failed"; exits non-zero on a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=${POOLD_BIN:-build/poold}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
art=${ARTIFACTS:-$(dirname "$bin")/browser-artifacts}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

die() { echo "browser tests: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$bin" ] || die "no poold binary at $bin (build it, or set POOLD_BIN)"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM (apt-get install chromium)"
command -v node >/dev/null || die "no node (apt-get install nodejs npm)"
if [ ! -d console/node_modules/playwright-core ]; then
    (cd console && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in console/"
fi

tmp=$(mktemp -d /tmp/poold-browser.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    mkdir -p "$art" && cp "$tmp/serve.log" "$art/poold.log" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$art" "$tmp/data"
rm -f "$art"/*.png "$art/page-weight.json" "$art/export.csv" "$art/poold.log"
cp -r rules "$tmp/rules"
"$bin" gen catalog --skus 5000 --out "$tmp/catalog.ndjson" || die "poold gen catalog failed"
"$bin" gen events --skus 5000 --events 20000 --span-hours 2 --out "$tmp/events.ndjson" || die "poold gen events failed"

web=()
[ -n "${POOLD_WEB:-}" ] && web=(--web "$POOLD_WEB")
# --clock event: the windows and schedules follow the generated events'
# time (the example flash sale is live during the catalog's week).
"$bin" serve --rules "$tmp/rules" --listen 127.0.0.1:0 --data "$tmp/data" --load "$tmp/catalog.ndjson" \
    --clock event "${web[@]}" >"$tmp/serve.log" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's|.*serving on \(http://[^/ ]*\)/.*|\1|p' "$tmp/serve.log" | head -1)
    [ -n "$url" ] && curl -sf "$url/healthz" | grep -q '"loading":false' && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; die "poold serve exited"; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/serve.log" >&2; die "poold serve did not start"; }
echo "poold at $url (log: $art/poold.log)"

node tests/browser/journey.mjs --base "$url" --events "$tmp/events.ndjson" --artifacts "$art" \
    --bin "$bin" --rules "$tmp/rules"
rc=$?
kill -0 "$pid" 2>/dev/null || { echo "poold died during the browser tests"; rc=1; }
exit $rc
