#!/usr/bin/env bash
# Builds the web console: console/src -> web/index.html, web/app.js,
# web/app.css, web/cm.js (embedded in poold by CMake; the built files are
# committed, so a plain cmake build needs no Node). Installs the locked npm
# packages first (npm ci) unless console/node_modules already matches
# console/package-lock.json, so it runs offline once they are installed.
#   scripts/build-web.sh           build into web/
#   scripts/build-web.sh --check   fail if web/ is not what the sources build
#   scripts/build-web.sh --watch   rebuild on change (poold serve --web web)
set -euo pipefail
cd "$(dirname "$0")/../console"
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "build-web: needs node and npm (apt-get install nodejs npm)" >&2; exit 1; }
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
exec node build.mjs "$@"
