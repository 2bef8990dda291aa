#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang against a
# static build of the library instrumented for libFuzzer, ASan and UBSan,
# and runs each from its seed corpus (tests/fuzz/corpus/<target>) for a
# bounded number of inputs: fuzz_am as a one-rank job, then again as rank 0
# of a job of 2 ranks on 2 nodes (messages from rank 1 too, answers that go
# to it), fuzz_api as a one-rank job. Fails on any crash, sanitizer report,
# leak or timeout, and when the AM runs delivered fewer messages than asked.
# Exits 77 (skipped) with one line when clang cannot link libFuzzer.
#
#   tests/fuzz/run.sh              build, then run every target
#   tests/fuzz/run.sh --seeds      rewrite the seed corpora in the tree
#
# Environment: RH_FUZZ_BUILDDIR (default _build-fuzz), RH_FUZZ_CC (clang),
# RH_FUZZ_RUNS_AM / RH_FUZZ_RUNS_AM2 / RH_FUZZ_RUNS_API (inputs per run),
# RH_FUZZ_MESSAGES (AM messages the runs must reach together, default
# 10^6), RH_FUZZ_JOBS (make -j).
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${RH_FUZZ_BUILDDIR:-$top/_build-fuzz}
cc=${RH_FUZZ_CC:-clang}
jobs=${RH_FUZZ_JOBS:-2}
runs_am=${RH_FUZZ_RUNS_AM:-120000}
runs_am2=${RH_FUZZ_RUNS_AM2:-100000}
runs_api=${RH_FUZZ_RUNS_API:-12000}
min_messages=${RH_FUZZ_MESSAGES:-1000000}
targets="am api"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"

mkdir -p "$build/tests/fuzz" || exit 1
out="$build/tests/fuzz"

# Can clang link a libFuzzer program here?
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$out/probe.c"
if ! "$cc" $san -o "$out/probe" "$out/probe.c" >/dev/null 2>&1; then
    echo "fuzz: skipped: $cc cannot link libFuzzer (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi

# The library: its own configure, static only, instrumented throughout.
if [ ! -f "$build/Makefile" ]; then
    [ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null 2>&1) || {
        echo "fuzz: autoreconf failed"; exit 1; }
    if ! (cd "$build" && "$top/configure" CC="$cc" CFLAGS="-g -O1 -fsanitize=fuzzer-no-link" \
            --enable-werror --enable-sanitizers=address,undefined --disable-shared \
            >configure.out 2>&1); then
        tail -20 "$build/configure.out"; echo "fuzz: configure failed"; exit 1
    fi
fi
if ! make -C "$build" -j"$jobs" librayhpc.la rayhpc-run >"$out/make.out" 2>&1; then
    grep -E 'error' "$out/make.out" | head -20; echo "fuzz: building the library failed"; exit 1
fi
# What the static library needs at link time, as libtool recorded it.
libs=$(sed -n "s/^dependency_libs='\(.*\)'/\1/p" "$build/librayhpc.la")
for t in $targets; do
    # shellcheck disable=SC2086
    if ! "$cc" -std=gnu11 -g -O1 -Wall -Wextra -Werror $san -fno-omit-frame-pointer \
            -include "$build/config.h" -I"$top/include" -I"$top/src" \
            "$top/tests/fuzz/fuzz_$t.c" "$top/tests/fuzz/fuzz_runtime.c" \
            "$build/.libs/librayhpc.a" $libs -o "$out/fuzz_$t"; then
        echo "fuzz: building fuzz_$t failed"; exit 1
    fi
done

if [ "${1:-}" = "--seeds" ]; then
    for t in $targets; do
        RH_FUZZ_SEEDS="$top/tests/fuzz/corpus/$t" "$out/fuzz_$t" || exit 1
    done
    echo "fuzz: seeds written under tests/fuzz/corpus"
    exit 0
fi

export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=0
messages=0
for run in am am2 api; do
    t=${run%2}                # the target: am2 is fuzz_am on 2 ranks
    runs=runs_$run
    launch=()
    [ "$run" = am2 ] && launch=("$build/rayhpc-run" -n 2 --nodes 2)
    work="$out/corpus-$run"   # what the run finds goes here, not in the tree
    mkdir -p "$work"
    start=$(date +%s)
    # -timeout: an input that takes 60 s hangs; -len_control=0: long inputs
    # (many messages each) from the start; -detect_leaks=0: no leak check
    # after each input that kept memory (the runtime keeps state from one
    # input to the next: that check cost 40x the inputs a second); LSan
    # still checks the whole process at exit, after rh_finalize.
    timeout 1800 "${launch[@]}" "$out/fuzz_$t" -runs="${!runs}" -max_len=4096 \
        -len_control=0 -detect_leaks=0 -timeout=60 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$out/$run-" \
        "$work" "$top/tests/fuzz/corpus/$t" >"$out/fuzz_$run.log" 2>&1
    st=$?
    secs=$(( $(date +%s) - start ))
    summary=$(grep -E "^fuzz_$t: " "$out/fuzz_$run.log" | tail -1)
    name="fuzz_$t${launch[*]:+ (2 ranks on 2 nodes)}"
    if [ "$t" = am ]; then
        n=$(sed -nE 's/^fuzz_am: ([0-9]+) messages.*/\1/p' <<<"$summary")
        messages=$((messages + ${n:-0}))
    fi
    if [ $st -eq 0 ] && [ -n "$summary" ]; then
        echo "ok: $name: ${!runs} inputs in ${secs}s; $summary"
    else
        failed=$((failed + 1))
        grep -E -A40 "ERROR: |runtime error|deadly signal|Timeout|out-of-memory" \
            "$out/fuzz_$run.log" | head -80
        ls "$out/$run-"* 2>/dev/null | sed 's/^/fuzz: the input that failed: /'
        echo "FAILED: $name (status $st, ${secs}s; log $out/fuzz_$run.log)"
    fi
done
if [ "$messages" -lt "$min_messages" ]; then
    echo "FAILED: fuzz_am delivered $messages messages, fewer than $min_messages (raise RH_FUZZ_RUNS_AM)"
    failed=$((failed + 1))
fi
[ "$failed" -eq 0 ]
