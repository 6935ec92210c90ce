#!/usr/bin/env bash
# Runs every test of poold: installs what is missing, builds a normal and an
# ASan+UBSan build, runs the C unit tests (ctest), the Busted specs, the rule
# check, the end-to-end test against a real server, a demo smoke test, and
# the fuzz targets for a bounded time. Prints a summary; exits non-zero if
# anything failed.
#   FUZZ_SECONDS   seconds per fuzz target (default 15; 0 skips fuzzing)
#   SKIP_ASAN=1    skip the ASan+UBSan build (quick local runs)
#   SKIP_TSAN=1    skip the ThreadSanitizer build
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh || exit 2

jobs=2
passed=0
failed=0
failures=()
step() { # name, command...
    local name=$1; shift
    echo "=== $name"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1)); echo "--- ok: $name ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "--- FAILED: $name ($((SECONDS - t0)) s)"
    fi
}

build() { # dir, extra cmake args...
    local dir=$1; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null && make -C "$dir" -j"$jobs" --no-print-directory
}

step "console bundle up to date" bash scripts/build-web.sh --check
step "build" build build
step "unit tests" ctest --test-dir build --output-on-failure
step "busted specs" luajit /usr/bin/busted tests/lua
step "poold check rules" build/poold check rules
step "end-to-end" python3 tests/e2e/e2e_test.py build/poold
step "command line" python3 tests/e2e/cli_test.py build/poold
step "rule lifecycle" python3 tests/e2e/lifecycle_test.py build/poold
step "change feed and access" python3 tests/e2e/feed_auth_test.py build/poold
step "streams: Kafka, WAL, snapshots" python3 tests/e2e/streams_test.py build/poold
step "crash: kill -9 while consuming and posting" python3 tests/e2e/crash_test.py build/poold
step "freshness tiers" python3 tests/e2e/tiers_test.py build/poold
step "kafka retention gaps" python3 tests/e2e/kafka_gap_test.py build/poold
step "limits" python3 tests/e2e/limits_test.py build/poold
step "sandbox attacks" python3 tests/e2e/sandbox_test.py build/poold
step "demo smoke" python3 tests/e2e/demo_smoke.py build/poold
step "browser (console journey)" bash tests/browser/run.sh

if [ "${SKIP_ASAN:-0}" != 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
    step "asan build" build build-asan -DPOOLD_SANITIZE=ON
    step "asan unit tests" ctest --test-dir build-asan --output-on-failure
    step "asan end-to-end" python3 tests/e2e/e2e_test.py build-asan/poold
    step "asan command line" python3 tests/e2e/cli_test.py build-asan/poold
    step "asan rule lifecycle" python3 tests/e2e/lifecycle_test.py build-asan/poold
    step "asan change feed and access" python3 tests/e2e/feed_auth_test.py build-asan/poold
    step "asan streams" env STREAMS_SCALE=0.4 python3 tests/e2e/streams_test.py build-asan/poold
    step "asan sandbox attacks" python3 tests/e2e/sandbox_test.py build-asan/poold
fi

if [ "${SKIP_TSAN:-0}" != 1 ]; then
    # The writer and concurrent HTTP readers (pages, member checks, ad-hoc
    # queries, posts) under ThreadSanitizer: a data race fails the run
    # (poold exits 66, and the e2e test checks the exit code).
    step "tsan build" build build-tsan -DCMAKE_C_FLAGS=-fsanitize=thread \
        -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DJEMALLOC_LIB=JEMALLOC_LIB-NOTFOUND
    step "tsan end-to-end" env TSAN_OPTIONS=halt_on_error=1 python3 tests/e2e/e2e_test.py build-tsan/poold
    # Publishing jobs, hot reload and explain against concurrent readers; the
    # change feed (long-poll, SSE) and access. (librdkafka's threads cannot
    # run under this TSan, so the Kafka tests are not here.)
    step "tsan rule lifecycle" env TSAN_OPTIONS=halt_on_error=1 python3 tests/e2e/lifecycle_test.py build-tsan/poold
    step "tsan change feed and access" env TSAN_OPTIONS=halt_on_error=1 python3 tests/e2e/feed_auth_test.py build-tsan/poold
fi

if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
    step "fuzz (${FUZZ_SECONDS:-15} s per target)" bash tests/fuzz/run.sh "${FUZZ_SECONDS:-15}"
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
