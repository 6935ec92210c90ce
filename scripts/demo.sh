#!/usr/bin/env bash
# The README's first command: install what is missing, build, run `poold demo`.
# Extra arguments go to `poold demo` (e.g. --listen 127.0.0.1:9090 --skus 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build-web.sh   # the console, from the npm lockfile (built files are committed too)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C build -j2 --no-print-directory poold
exec build/poold demo "$@"
