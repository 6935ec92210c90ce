#!/usr/bin/env bash
# run.sh - build and run every libFuzzer target in tests/fuzz.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, all)
#   e.g. tests/fuzz/run.sh 60    or    tests/fuzz/run.sh 10 fuzz_ndjson
#
# A target is tests/fuzz/fuzz_NAME.c defining LLVMFuzzerTestOneInput. It names
# the sources it needs in a comment line, and may add compiler/linker flags:
#   // fuzz-sources: src/ndjson.c src/util.c
#   // fuzz-libs: -lroaring -ljansson         (or fuzz-flags: any cc flags)
# Each target is built with clang -fsanitize=fuzzer,address,undefined and run
# for the given seconds on a scratch copy of tests/fuzz/corpus/NAME/ (the seed
# corpus in the repo is never modified; an optional tests/fuzz/NAME.dict is
# passed as -dict). Crash, leak and timeout inputs are written to tests/fuzz/
# (git-ignored). Exits non-zero if any target fails to build or finds a crash,
# printing the crashing file and how to replay it. Binaries, logs and scratch
# corpora go to a temporary directory, removed when everything passed, or to
# FUZZ_WORK=DIR if set (kept).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-30}
shift || true
case $secs in '' | *[!0-9]*) echo "usage: $0 [seconds-per-target] [target...]" >&2; exit 2 ;; esac

if [ -n "${FUZZ_WORK:-}" ]; then
    work=$FUZZ_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/poold-fuzz.XXXXXX)
    trap 'rm -rf "$work"' INT TERM
fi

CC=${CC:-clang}
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I $root/src"

if [ $# -gt 0 ]; then
    targets=()
    for t in "$@"; do targets+=("$here/${t%.c}.c"); done
else
    targets=("$here"/fuzz_*.c)
fi

# Names of the artifact files libFuzzer left in tests/fuzz, sorted.
artifacts() {
    find "$here" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) -printf '%f\n' | sort
}

failed=0
ran=0
for src in "${targets[@]}"; do
    [ -f "$src" ] || { echo "run.sh: no such target: $src" >&2; failed=1; continue; }
    target=$(basename "$src" .c)
    name=${target#fuzz_}
    sources=$(sed -n 's|^// *fuzz-sources: *||p' "$src" | head -n 1)
    extra=$(sed -n 's@^// *fuzz-\(flags\|libs\): *@@p' "$src" | tr '\n' ' ')
    srcs=()
    for s in $sources; do srcs+=("$root/$s"); done

    echo "== $target: building"
    # shellcheck disable=SC2086  # CFLAGS and extra are word lists
    if ! $CC $CFLAGS "$src" "${srcs[@]}" -o "$work/$target" $extra -lm; then
        echo "== $target: BUILD FAILED" >&2
        failed=1
        continue
    fi

    corpus="$work/corpus-$name"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    if [ -d "$here/corpus/$name" ]; then cp -R "$here/corpus/$name/." "$corpus/"; fi
    dict=()
    if [ -f "$here/$name.dict" ]; then dict=("-dict=$here/$name.dict"); fi

    echo "== $target: fuzzing for ${secs}s on $(find "$corpus" -type f | wc -l) seed inputs"
    log="$work/$target.log"
    before=$(artifacts)
    "$work/$target" "$corpus" -max_total_time="$secs" -max_len=70000 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$here/" "${dict[@]}" \
        >"$log" 2>&1
    rc=$?
    ran=$((ran + 1))
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" | sed "s/^/   /"
    after=$(artifacts)
    new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
    if [ $rc -ne 0 ] || [ -n "$new" ]; then
        failed=1
        echo "== $target: FAILED (exit $rc)" >&2
        grep -E -m 1 -A 12 '^==[0-9]+==ERROR|runtime error|deadly signal|^==[0-9]+== ERROR' "$log" >&2
        grep -E '^SUMMARY' "$log" >&2
        for f in $new; do
            echo "   crash file: $here/$f" >&2
            echo "   reproduce:  $work/$target $here/$f   (full log: $log)" >&2
        done
    else
        echo "== $target: ok"
    fi
done

if [ $failed -ne 0 ]; then
    echo "fuzz: FAILED (binaries and logs kept in $work)" >&2
    exit 1
fi
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
echo "fuzz: $ran target(s) ok"
