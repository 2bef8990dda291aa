#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. a -Werror build and `make check` (unit tests, rayhpc-run, mpirun and
#      srun multi-rank tests over shared memory and TCP);
#   2. `make install` into a temporary prefix, and a program built outside
#      the tree with pkg-config, started as a singleton and under rayhpc-run,
#      mpirun and srun;
#   3. an ASan+UBSan build running the same `make check`;
#   4. libFuzzer targets (tests/fuzz/) for the AM handlers and the API;
#   5. a ThreadSanitizer build running the multi-rank programs.
# Ends with one line "suite: N passed, N failed".
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
passed=0
failed=0
failures=()

step() { printf '\n=== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok: %s\n' "$*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); printf 'FAILED: %s\n' "$*"; }

# Adds the test counts of one `make check` to the totals: each criterion
# program's "Synthesis" line, and automake's verdict for anything else.
count_check() {
    local dir=$1 log p=0 f=0 line
    for log in "$dir"/tests/*.log "$dir"/tests/unit/*.log; do
        [ -f "$log" ] || continue
        line=$(grep -h 'Synthesis: Tested:' "$log" | tail -1)
        if [ -n "$line" ]; then
            p=$((p + $(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")))
            f=$((f + $(sed -E 's/.*Failing: ([0-9]+) \| Crashing: ([0-9]+).*/\1 + \2/' <<<"$line")))
        elif grep -qE '^:test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
            f=$((f + 1))   # died before its synthesis line
        fi
    done
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -eq 0 ] || failures+=("make check in $dir")
}

# configure + make + make check in a build folder of its own.
build_and_check() {
    local dir=$1; shift
    step "build in $dir: configure $*"
    mkdir -p "$dir"
    if ! (cd "$dir" && "$top/configure" "$@" >configure.out 2>&1); then
        tail -30 "$dir/configure.out"
        bad "configure $*"
        return 1
    fi
    if ! make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1; then
        grep -E 'error|warning' "$dir/make.out" | head -40
        bad "build in $dir"
        return 1
    fi
    step "make check in $dir"
    make -C "$dir" -j1 check 2>&1 | tee "$dir/check.out" | grep -E '^(PASS|FAIL|ERROR|XPASS|# )'
    count_check "$dir"
    if grep -qE '^(FAIL|ERROR)' "$dir/check.out"; then
        for log in "$dir"/tests/*.log "$dir"/tests/unit/*.log; do
            [ -f "$log" ] || continue
            grep -qE 'Failing: [1-9]|Crashing: [1-9]' "$log" && {
                echo "--- $log (failures)"
                grep -E '^\[(FAIL|----)\]|Assertion|Synthesis' "$log" | head -60
            }
        done
    fi
}

cd "$top" || exit 1
if [ ! -x configure ]; then
    step "autoreconf"
    autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }
fi

# A Slurm cluster for the whole run (the srun tests and the installed-program
# check use it); it is stopped on exit, whatever happens.
slurm_dir=$(mktemp -d /tmp/rayhpc-slurm.XXXXXX)
trap '"$top/tests/slurm/local-slurm.sh" stop "$slurm_dir" --purge >/dev/null 2>&1' EXIT
step "start a private Slurm cluster"
if "$top/tests/slurm/local-slurm.sh" start "$slurm_dir" >/dev/null; then
    export RH_TEST_SLURM_DIR=$slurm_dir
    ok "Slurm cluster in $slurm_dir"
else
    bad "start the test Slurm cluster"
fi

build="$top/_build"
prefix="$top/_inst"
build_and_check "$build" --enable-werror --prefix="$prefix"

step "make install into $prefix and build a program outside the tree"
rm -rf "$prefix"
if make -C "$build" install >"$build/install.out" 2>&1; then
    ok "make install"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    oot=$(mktemp -d /tmp/rayhpc-oot.XXXXXX)
    cp "$top/tests/multi/hello.c" "$oot/x.c"
    # shellcheck disable=SC2046
    if cc -Wall -Wextra -Werror -o "$oot/x" "$oot/x.c" $(pkg-config --cflags --libs rayhpc); then
        ok "cc x.c \$(pkg-config --cflags --libs rayhpc)"
        check_ranks() {   # name, expected ranks, command...
            local name=$1 n=$2; shift 2
            local out
            out=$(timeout 120 "$@" 2>&1)
            local st=$? good=1
            for ((r = 0; r < n; r++)); do
                grep -q "HELLO rank=$r size=$n " <<<"$out" || good=0
            done
            if [ $st -eq 0 ] && [ $good -eq 1 ]; then ok "$name"; else echo "$out"; bad "$name"; fi
        }
        check_ranks "installed program as a singleton" 1 "$oot/x"
        check_ranks "installed program under rayhpc-run -n 4" 4 "$prefix/bin/rayhpc-run" -n 4 "$oot/x"
        check_ranks "installed program under mpirun -n 4" 4 mpirun --allow-run-as-root --oversubscribe -n 4 "$oot/x"
        if [ -n "${RH_TEST_SLURM_DIR:-}" ]; then
            check_ranks "installed program under srun --mpi=pmix -n 4" 4 \
                sh -c ". '$slurm_dir/env.sh' && srun --mpi=pmix -n 4 '$oot/x'"
        fi
        if "$prefix/bin/rayhpc-info" >"$oot/info.out" 2>&1 && grep -q RAYHPC_LOG_LEVEL "$oot/info.out"; then
            ok "installed rayhpc-info"
        else
            cat "$oot/info.out"; bad "installed rayhpc-info"
        fi
    else
        bad "build a program with pkg-config"
    fi
    rm -rf "$oot"
else
    tail -20 "$build/install.out"
    bad "make install"
fi

# Sanitizers: UCX, PMIx, MPI and hwloc are not built with ASan and keep some
# allocations until exit; leaks are checked in our code only (suppressions,
# which need full stacks to match: fast_unwind_on_malloc=0).
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
build_and_check "$top/_build-asan" --enable-werror --enable-sanitizers=address,undefined

# libFuzzer: every AM handler's parser and the public API's argument
# checks, each for a bounded number of inputs from its seed corpus; a
# crash, sanitizer report or leak fails its target (tests/fuzz/run.sh,
# which builds its own instrumented static library with clang).
unset ASAN_OPTIONS LSAN_OPTIONS
step "fuzz targets in $top/_build-fuzz"
fuzz_out=$(RH_FUZZ_BUILDDIR="$top/_build-fuzz" RH_FUZZ_JOBS="$jobs" "$top/tests/fuzz/run.sh" 2>&1)
fuzz_st=$?
echo "$fuzz_out"
if [ $fuzz_st -ne 77 ]; then   # 77: skipped, run.sh said why
    passed=$((passed + $(grep -c '^ok: fuzz_' <<<"$fuzz_out")))
    n=$(grep -c '^FAILED: ' <<<"$fuzz_out")
    if [ "$n" -gt 0 ]; then
        failed=$((failed + n))
        failures+=("fuzz targets (see $top/_build-fuzz/tests/fuzz/*.log)")
    elif [ $fuzz_st -ne 0 ]; then
        bad "build the fuzz targets"
    fi
fi

# ThreadSanitizer over the threaded core (progress thread, op queue, peer
# failure, finalize): the rank programs themselves, through rayhpc-run.
# Criterion cannot run under TSan (its fixed-address arena), so these run
# directly. UCX's memory hooks run at thread exit, after TSan has torn the
# thread down: UCX_MEM_EVENTS=no keeps them out of this build's runs.
tsan="$top/_build-tsan"
step "build in $tsan: configure --enable-sanitizers=thread"
mkdir -p "$tsan"
if (cd "$tsan" && "$top/configure" --enable-werror --enable-sanitizers=thread >configure.out 2>&1) &&
   make -C "$tsan" -j"$jobs" all >"$tsan/make.out" 2>&1 &&
   make -C "$tsan" -j"$jobs" examples/am_exchange examples/pi tests/multi/alltoall tests/multi/hello \
        tests/multi/peer_kill tests/multi/malformed tests/multi/objects \
        tests/multi/tasks_stress tests/multi/forward tests/multi/pull \
        tests/multi/placement tests/multi/release tests/multi/resources \
        tests/multi/send_faults tests/multi/burst tests/multi/recursion \
        tests/multi/finalize tests/multi/reader_dies >>"$tsan/make.out" 2>&1; then
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" UCX_MEM_EVENTS=no
    tsan_run() {   # name, expected status, expected line, count, args...
        local name=$1 want=$2 line=$3 count=$4; shift 4
        local out st
        out=$(cd "$tsan" && timeout 300 ./rayhpc-run "$@" 2>&1)
        st=$?
        if [ $st -eq "$want" ] && [ "$(grep -c -- "$line" <<<"$out")" -eq "$count" ] &&
           ! grep -q "ThreadSanitizer" <<<"$out"; then
            ok "tsan: $name"
        else
            echo "$out" | tail -60
            bad "tsan: $name (status $st)"
        fi
    }
    tsan_run "alltoall, 2 ranks, adaptive" 0 "ALLTOALL OK" 2 -n 2 ./tests/multi/alltoall
    RAYHPC_PROGRESS=polling tsan_run "alltoall, 2 ranks, polling" 0 "ALLTOALL OK" 2 -n 2 ./tests/multi/alltoall
    RAYHPC_PROGRESS=blocking tsan_run "alltoall, 2 ranks, blocking" 0 "ALLTOALL OK" 2 -n 2 ./tests/multi/alltoall
    tsan_run "alltoall, 4 ranks on 2 nodes" 0 "ALLTOALL OK" 4 -n 4 --nodes 2 ./tests/multi/alltoall
    UCX_TLS=tcp,self tsan_run "alltoall over tcp" 0 "ALLTOALL OK" 2 -n 2 --nodes 2 ./tests/multi/alltoall
    tsan_run "killed rank" 137 "status=success" 2 --keep-going -n 3 ./tests/multi/peer_kill
    RAYHPC_FINALIZE_TIMEOUT=30s PEER_KILL_FLOOD=1 tsan_run "finalize after a kill with sends in flight" 137 "status=success" 3 --keep-going -n 4 --nodes 2 ./tests/multi/peer_kill
    tsan_run "malformed messages" 0 "MALFORMED OK" 1 -n 2 ./tests/multi/malformed
    tsan_run "flagship example" 0 "checksum ok" 3 -n 3 ./examples/am_exchange
    tsan_run "tasks: pi map-reduce" 0 "pi ~ 3.14" 1 -n 1 ./examples/pi 200 20000
    RAYHPC_NUM_WORKERS=4 tsan_run "tasks: 4 workers" 0 "pi ~ 3.14" 1 -n 1 ./examples/pi 500 1000
    tsan_run "objects between ranks" 0 "SHARED OK" 2 -n 3 ./tests/multi/objects share
    tsan_run "tasks: 3 drivers on one rank" 0 "STRESS OK" 1 -n 1 ./tests/multi/tasks_stress 10
    RAYHPC_NUM_WORKERS=3 tsan_run "tasks: 2 ranks, 3 workers each" 0 "STRESS OK" 2 -n 2 ./tests/multi/tasks_stress 5
    RAYHPC_NUM_WORKERS=3 tsan_run "tasks waiting for CPUs in the ledger" 0 "RESOURCES OK" 1 -n 1 ./tests/multi/resources 200
    tsan_run "tasks forwarded between 3 nodes" 0 "FORWARD OK" 1 -n 3 --nodes 3 ./tests/multi/forward check
    tsan_run "forwarded task whose rank dies" 137 "FORWARD KILL OK" 1 --keep-going -n 2 --nodes 2 ./tests/multi/forward kill
    tsan_run "pulls: a chain of ref arguments across nodes" 0 "PULL CHAIN OK" 1 -n 3 --nodes 3 ./tests/multi/pull chain
    tsan_run "pulls: 16 threads get one remote object" 0 "PULL CONCURRENT OK" 1 -n 3 --nodes 3 ./tests/multi/pull concurrent
    RAYHPC_NUM_WORKERS=1 RAYHPC_SPILLBACK_THRESHOLD=2 tsan_run "busy rank spills to the global scheduler" 0 "PLACEMENT BUSY OK" 1 -n 4 --nodes 4 ./tests/multi/placement busy
    RAYHPC_NUM_WORKERS=2 tsan_run "placement groups" 0 "PLACEMENT PG OK" 1 -n 4 --nodes 4 ./tests/multi/placement pg
    RAYHPC_NUM_WORKERS=1 tsan_run "tasks in bundles wait for children in and out of the group" 0 "PLACEMENT PG WAIT OK" 1 -n 4 --nodes 4 ./tests/multi/placement pg_wait
    RAYHPC_NUM_WORKERS=1 tsan_run "pulls: a ref handed on outlives its owner's release" 0 "PULL BORROW OK" 1 -n 3 --nodes 3 ./tests/multi/pull borrow
    RAYHPC_NUM_WORKERS=1 tsan_run "pulls: a dead owner's copies leave the stores" 137 "PULL OWNER_DIES OK" 1 --keep-going -n 3 --nodes 3 ./tests/multi/pull owner_dies
    RAYHPC_NUM_WORKERS=1 RAYHPC_FINALIZE_TIMEOUT=600s tsan_run "releases race pulls and borrows of the objects" 0 "RELEASE RACE OK" 1 -n 3 --nodes 3 ./tests/multi/release 20
    RAYHPC_FAULT_SENDS=7 tsan_run "every 7th send lost: every get still ends" 0 "SEND FAULTS OK" 1 -n 3 --nodes 3 ./tests/multi/send_faults
    RAYHPC_REMOTE_TASKS_MAX=1024 RAYHPC_FINALIZE_TIMEOUT=280s tsan_run "a burst waits for room" 0 "BURST OK" 1 -n 2 --nodes 2 ./tests/multi/burst 20000
    RAYHPC_NUM_WORKERS=2 RAYHPC_HELP_DEPTH=16 tsan_run "recursion: nested gets park and resume" 0 "RECURSION CHAIN OK" 1 -n 1 ./tests/multi/recursion chain 3000
    RAYHPC_NUM_WORKERS=1 RAYHPC_FINALIZE_TIMEOUT=600s tsan_run "recursion: nested gets spread over 3 nodes" 0 "RECURSION SPREAD OK" 1 -n 3 --nodes 3 ./tests/multi/recursion spread 300
    RAYHPC_NUM_WORKERS=1 RAYHPC_STORE_SIZE=32M tsan_run "finalize right after nested spread tasks" 0 ": success" 8 -n 8 --nodes 4 ./tests/multi/finalize 16 4
    RAYHPC_STORE_SIZE=64M tsan_run "a reader killed mid-read" 137 "READER DIES OK" 1 --keep-going -n 2 --nodes 2 ./tests/multi/reader_dies
    RAYHPC_STORE_SIZE=64M RAYHPC_FINALIZE_TIMEOUT=2s tsan_run "finalize cuts a large send to a stalled rank short" 0 "RANK STALLS OK" 1 --keep-going -n 2 --nodes 2 ./tests/multi/reader_dies stall
    unset TSAN_OPTIONS UCX_MEM_EVENTS
else
    grep -E 'error' "$tsan/make.out" "$tsan/configure.out" | head -20
    bad "build with ThreadSanitizer"
fi

printf '\n'
for f in "${failures[@]}"; do printf 'failed: %s\n' "$f"; done
printf 'suite: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
