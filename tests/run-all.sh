#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. a -Werror build and `make check` (unit tests, rayhpc-run, mpirun and
#      srun multi-rank tests over shared memory and TCP);
#   2. `make install` into a temporary prefix, and a program built outside
#      the tree with pkg-config, started as a singleton and under rayhpc-run,
#      mpirun, srun and sbatch of the installed slurm/ job script; every
#      example built the same way and its result checked (tests/examples.sh);
#   3. an ASan+UBSan build running the same `make check`;
#   4. libFuzzer targets (tests/fuzz/) for the AM handlers and the API;
#   5. a ThreadSanitizer build running the multi-rank programs;
#   6. `make distcheck`, and a check that the tarball holds every file of
#      the tree;
#   7. the README's build command and the suite's build, in either order,
#      in fresh copies of the tree (tests/build-order.sh);
#   8. a -Werror build configured --without-cuda, even where a toolkit is,
#      running the GPU tests (their no-CUDA paths) and the checks of the
#      exports and the docs.
# Ends with one line "suite: N passed, N failed".
#
#   tests/run-all.sh                      every stage
#   tests/run-all.sh --only STAGE[,...]   those stages (--list names them)
set -uo pipefail

all_stages="build check install asan fuzz tsan distcheck order nocuda"
usage() {
    echo "usage: tests/run-all.sh [--only STAGE[,STAGE...]] [--list]"
    echo "stages: $all_stages"
}
stages=$all_stages
while [ $# -gt 0 ]; do
    case $1 in
    --only) [ $# -ge 2 ] || { usage >&2; exit 2; }; stages=${2//,/ }; shift 2 ;;
    --only=*) stages=${1#--only=}; stages=${stages//,/ }; shift ;;
    --list) echo "$all_stages"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-all.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for s in $stages; do
    case " $all_stages " in
    *" $s "*) ;;
    *) echo "run-all.sh: unknown stage '$s'" >&2; usage >&2; exit 2 ;;
    esac
done
want() { case " $stages " in *" $1 "*) return 0 ;; esac; return 1; }

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

# configure + make in a build folder of its own, from the sources in $srcd.
build_dir() {
    local dir=$1; shift
    step "build in $dir: configure $*"
    mkdir -p "$dir"
    if ! (cd "$dir" && "$srcd/configure" "$@" >configure.out 2>&1); then
        tail -30 "$dir/configure.out"
        bad "configure $*"
        return 1
    fi
    if ! make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1; then
        grep -E 'error|warning' "$dir/make.out" | head -40
        bad "build in $dir"
        return 1
    fi
    ok "build in $dir"
}

# make check in a built folder.
check_dir() {
    local dir=$1
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

# The builds configure from the tree itself, or, when it was configured in
# place (the README's `./configure && make`, which automake's builds in
# other folders refuse), from a copy of its sources in _src.
cd "$top" || exit 1
srcd=$top
if [ -f "$top/config.status" ]; then
    srcd="$top/_src"
    step "the tree is configured in place: builds use a copy of its sources in $srcd"
    rm -rf "$srcd"
    "$top/tests/copy-sources.sh" "$top" "$srcd" || { echo "copying the sources failed"; exit 1; }
fi
if [ ! -x "$srcd/configure" ]; then
    step "autoreconf"
    (cd "$srcd" && autoreconf -fi >/dev/null 2>&1) || { echo "autoreconf failed"; exit 1; }
fi

build="$top/_build"
prefix="$top/_inst"
build_ok=0   # 1 built, 2 failed (reported once)
# configure + make of the main build, once, for the stages that need it.
need_build() {
    [ $build_ok -eq 0 ] || return $((build_ok - 1))
    build_ok=2
    build_dir "$build" --enable-werror --prefix="$prefix" && build_ok=1
}

# A Slurm cluster for the whole run (the srun tests and the installed-program
# check use it); it is stopped on exit, whatever happens.
if want check || want install; then
    slurm_dir=$(mktemp -d /tmp/rayhpc-slurm.XXXXXX)
    trap '"$top/tests/slurm/local-slurm.sh" stop "$slurm_dir" --purge >/dev/null 2>&1' EXIT
    step "start a private Slurm cluster"
    # At least 4 CPUs declared (slurmd accepts more than the host has), so
    # that 4-rank jobs fit under sbatch on a small host as they do on a node.
    cpus=$(nproc)
    [ "$cpus" -ge 4 ] || cpus=4
    start_slurm() {
        LOCAL_SLURM_CPUS=${LOCAL_SLURM_CPUS:-$cpus} \
            "$top/tests/slurm/local-slurm.sh" start "$slurm_dir" >/dev/null
    }
    # Once, a slurmd on a loaded host had not registered after 30 s (its
    # node still "unknown", munged refusing a credential) and started at
    # once when tried again: a failed start gets one more, from scratch.
    if start_slurm ||
       { "$top/tests/slurm/local-slurm.sh" stop "$slurm_dir" --purge \
             >/dev/null 2>&1
         mkdir -p "$slurm_dir"
         echo "local-slurm: starting it again"
         start_slurm; }; then
        export RH_TEST_SLURM_DIR=$slurm_dir
        ok "Slurm cluster in $slurm_dir"
    else
        bad "start the test Slurm cluster"
    fi
fi

if want build; then
    need_build
fi

if want check && need_build; then
    check_dir "$build"
fi

if want install && need_build; then

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
                # The installed job script: 4 ranks as 2 virtual nodes.
                check_ranks "installed program under sbatch -n 4 of the installed slurm/rank-per-node.sbatch" 4 \
                    sh -c ". '$slurm_dir/env.sh' && RH_VNODE_RANKS=2 sbatch --wait --nodes=1 --ntasks-per-node=4 \
                          --output='$oot/job.out' '$prefix/share/rayhpc/slurm/rank-per-node.sbatch' '$oot/x';
                          st=\$?; cat '$oot/job.out'; exit \$st"
            fi
            # librayhpc.a with the libraries rayhpc.pc's Libs.private names
            # (they may stay shared): the program needs no librayhpc.so.
            libs=$(pkg-config --static --libs rayhpc)
            # shellcheck disable=SC2046,SC2086
            if cc -Wall -Wextra -Werror -o "$oot/xs" "$oot/x.c" $(pkg-config --cflags rayhpc) \
                    ${libs/-lrayhpc/-l:librayhpc.a} &&
               ! grep -q 'librayhpc\.so' <<<"$(readelf -d "$oot/xs")"; then
                ok "cc x.c with librayhpc.a and \$(pkg-config --static --libs rayhpc)"
                check_ranks "program linked with librayhpc.a under rayhpc-run -n 2" 2 \
                    "$prefix/bin/rayhpc-run" -n 2 "$oot/xs"
            else
                bad "link a program with librayhpc.a and pkg-config --static"
            fi
            # The shared library: soname librayhpc.so.<major>, every symbol
            # in the version node of src/librayhpc.map.
            so="$prefix/lib/librayhpc.so"
            unversioned=$(objdump -T "$so" | awk '$4 == ".text" && $NF ~ /^rh_/ && $(NF-1) !~ /^RAYHPC_/')
            # (grep -q on a captured output: under pipefail, grep -q leaving
            # early fails the pipe when the writer gets SIGPIPE)
            if grep -q 'SONAME.*\[librayhpc\.so\.0\]' <<<"$(readelf -d "$so")" &&
               [ -z "$unversioned" ] &&
               grep -q 'RAYHPC_0.1 *rh_init$' <<<"$(objdump -T "$so")"; then
                ok "librayhpc.so: soname librayhpc.so.0, symbols versioned RAYHPC_0.1"
            else
                readelf -d "$so" | grep SONAME; echo "$unversioned"
                bad "librayhpc.so: soname and symbol versions"
            fi
            # The man pages render.
            for m in rayhpc-run rayhpc-info rayhpc-perf; do
                page="$prefix/share/man/man1/$m.1"
                if [ -f "$page" ] && grep -q "^NAME" <<<"$(MANWIDTH=80 man -l "$page" 2>&1)"; then
                    ok "installed man page $m.1"
                else
                    bad "installed man page $m.1"
                fi
            done
            if "$prefix/bin/rayhpc-info" >"$oot/info.out" 2>&1 && grep -q RAYHPC_LOG_LEVEL "$oot/info.out"; then
                ok "installed rayhpc-info"
            else
                cat "$oot/info.out"; bad "installed rayhpc-info"
            fi
        else
            bad "build a program with pkg-config"
        fi
        rm -rf "$oot"
        step "the examples built with pkg-config against $prefix"
        ex_out=$("$top/tests/examples.sh" "$prefix" 2>&1)
        echo "$ex_out"
        passed=$((passed + $(grep -c '^ok: ' <<<"$ex_out")))
        n=$(grep -c '^FAILED: ' <<<"$ex_out")
        if [ "$n" -gt 0 ] || ! grep -q '^examples: ' <<<"$ex_out"; then
            failed=$((failed + (n > 0 ? n : 1)))
            failures+=("examples against the installed library (tests/examples.sh)")
        fi
    else
        tail -20 "$build/install.out"
        bad "make install"
    fi
fi

# Sanitizers: UCX, PMIx, MPI and hwloc are not built with ASan and keep some
# allocations until exit; leaks are checked in our code only (suppressions,
# which need full stacks to match: fast_unwind_on_malloc=0).
if want asan; then
    export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    build_dir "$top/_build-asan" --enable-werror --enable-sanitizers=address,undefined &&
        check_dir "$top/_build-asan"
    unset ASAN_OPTIONS LSAN_OPTIONS
fi

# libFuzzer: every AM handler's parser and the public API's argument
# checks, each for a bounded number of inputs from its seed corpus; a
# crash, sanitizer report or leak fails its target (tests/fuzz/run.sh,
# which builds its own instrumented static library with clang).
if want fuzz; then
    step "fuzz targets in $top/_build-fuzz"
    fuzz_out=$(RH_FUZZ_BUILDDIR="$top/_build-fuzz" RH_FUZZ_JOBS="$jobs" "$srcd/tests/fuzz/run.sh" 2>&1)
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
fi

# ThreadSanitizer over the threaded core (progress thread, op queue, peer
# failure, finalize): the rank programs themselves, through rayhpc-run.
# Criterion cannot run under TSan (its fixed-address arena), so these run
# directly. UCX's memory hooks run at thread exit, after TSan has torn the
# thread down: UCX_MEM_EVENTS=no keeps them out of this build's runs.
if want tsan; then
    tsan="$top/_build-tsan"
    step "build in $tsan: configure --enable-sanitizers=thread"
    mkdir -p "$tsan"
    if (cd "$tsan" && "$srcd/configure" --enable-werror --enable-sanitizers=thread >configure.out 2>&1) &&
       make -C "$tsan" -j"$jobs" all >"$tsan/make.out" 2>&1 &&
       make -C "$tsan" -j"$jobs" examples/am_exchange examples/pi examples/heat2d \
            examples/param_sweep examples/array_mapreduce examples/param_server examples/sim_farm tests/multi/alltoall tests/multi/hello \
            tests/multi/peer_kill tests/multi/shm_stall tests/multi/ring_threads \
            tests/multi/malformed tests/multi/objects \
            tests/multi/tasks_stress tests/multi/forward tests/multi/pull \
            tests/multi/placement tests/multi/release tests/multi/resources \
            tests/multi/resources_late \
            tests/multi/send_faults tests/multi/burst tests/multi/recursion \
            tests/multi/finalize tests/multi/actors_core tests/multi/reader_dies \
            tests/multi/timeline tests/multi/jobstate \
            tests/multi/gpu_place tests/multi/spill \
            tests/multi/gcs_keys tests/multi/gcs_pubsub tests/multi/gcs_kill \
            tests/multi/gcs_partition tests/multi/gcs_named \
            tests/multi/gcs_nodes tests/multi/gcs_actors tests/multi/ft_kill \
            tests/multi/ft_actor tests/multi/gcs_records tests/multi/gcs_grow \
            tests/multi/gcs_spill_order tests/multi/gcs_suspect \
            tests/multi/user_api >>"$tsan/make.out" 2>&1; then
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
        RAYHPC_PROGRESS=polling tsan_run "alltoall, 4 ranks on 2 nodes, polling" 0 "ALLTOALL OK" 4 -n 4 --nodes 2 ./tests/multi/alltoall
        UCX_TLS=tcp,self tsan_run "alltoall over tcp" 0 "ALLTOALL OK" 2 -n 2 --nodes 2 ./tests/multi/alltoall
        tsan_run "killed rank" 137 "status=success" 2 --keep-going -n 3 ./tests/multi/peer_kill
        RAYHPC_NUM_WORKERS=1 tsan_run "a receive queue stalled by a kill ends its rank, not the job" 137 "SHM_STALL OK" 1 --keep-going -n 5 ./tests/multi/shm_stall
        RAYHPC_NUM_WORKERS=1 RAYHPC_RX_WATCH=0 tsan_run "a sender killed mid-message stalls no receiver over the rings" 137 "SHM_STALL OK.*ended=0$" 1 --keep-going -n 5 ./tests/multi/shm_stall
        tsan_run "threads sending over a ring keep their order" 0 "RING THREADS OK" 1 -n 2 ./tests/multi/ring_threads
        RAYHPC_SHM_RING_BYTES=4096 tsan_run "threads sending over a full ring keep their order" 0 "RING THREADS OK" 1 -n 2 ./tests/multi/ring_threads
        RAYHPC_SHM_RING=0 tsan_run "alltoall, 2 ranks, over UCX's shared memory" 0 "ALLTOALL OK" 2 -n 2 ./tests/multi/alltoall
        RAYHPC_FINALIZE_TIMEOUT=30s PEER_KILL_FLOOD=1 tsan_run "finalize after a kill with sends in flight" 137 "status=success" 3 --keep-going -n 4 --nodes 2 ./tests/multi/peer_kill
        tsan_run "malformed messages" 0 "MALFORMED OK" 1 -n 2 ./tests/multi/malformed
        tsan_run "calls after a kill that restarts the actor, on its rank and on another node" 0 "USER RESTART OK" 1 -n 4 --nodes 2 ./tests/multi/user_api restart
        tsan_run "tasks into placement groups never made, also another rank's" 0 "USER PG OK" 1 -n 4 --nodes 2 ./tests/multi/user_api pg
        tsan_run "4 threads of a rank submit, get and release nested tasks at once" 0 "USER THREADS OK" 1 -n 4 --nodes 2 ./tests/multi/user_api threads
        tsan_run "tasks into groups of a rank that died" 137 "USER PGDEAD OK" 3 -n 4 --nodes 2 ./tests/multi/user_api pgdead
        tsan_run "tasks into groups of a rank that dies before it answers" 137 "USER PGSTOP OK" 3 -n 4 --nodes 2 ./tests/multi/user_api pgstop
        tsan_run "placement groups once a group's owner and the global scheduler died" 137 "USER PGBOTH OK" 2 --keep-going -n 4 --nodes 2 ./tests/multi/user_api pgboth
        rm -rf "$tsan/contacts" "$tsan/jobremote.gate"
        RAYHPC_JOB_CONTACT_DIR="$tsan/contacts" tsan_run "job state asked from outside the job, at each node's server" 0 "JOBSTATE REMOTE OK 2" 1 -n 4 --nodes 2 ./tests/multi/jobstate "$tsan/jobremote.gate" remote
        tsan_run "gcs: keys over 3 nodes" 0 "GCS KEYS OK" 3 -n 3 --nodes 3 ./tests/multi/gcs_keys 6000
        tsan_run "gcs: pub-sub" 0 "PUBSUB OK" 3 -n 3 --nodes 3 ./tests/multi/gcs_pubsub 300
        RAYHPC_GCS_SHARDS=2 RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: the tail dies mid-stream" 137 "GCS KILL OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_kill tail 3000 10000
        RAYHPC_FAILURE_TIMEOUT_MS=3000 tsan_run "gcs: a chain grows back after each of 3 deaths" 137 "GCS GROW OK" 1 --keep-going -n 6 --nodes 4 ./tests/multi/gcs_grow 10000
        RAYHPC_FAILURE_TIMEOUT_MS=3000 tsan_run "gcs: a tail dies while a rank joins its chain" 137 "GCS MIDJOIN OK" 1 --keep-going -n 6 --nodes 4 ./tests/multi/gcs_grow 10000 midjoin
        RAYHPC_GCS_SHARDS=2 RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: a suspect heard again is kept, a later death re-forms" 137 "GCS SUSPECT OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_suspect 1000
        RAYHPC_GCS_SHARDS=2 RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: a master the others hear is not dropped by the leader alone" 137 "GCS DEAF OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_suspect 1000 one
        tsan_run "gcs: spill records of two ranks of a node end right in any order" 0 "SPILL ORDER OK" 1 -n 2 ./tests/multi/gcs_spill_order
        RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: a partition" 0 "MAJORITY WROTE 8" 2 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_partition
        RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: a named actor outlives a replica" 137 "NAMED FOUND" 3 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_named
        RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: node and group records outlive a replica" 137 "NODES OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_nodes
        RAYHPC_FAILURE_TIMEOUT_MS=2000 tsan_run "gcs: actor records outlive their ranks and owners" 137 "ACTOR RECORDS OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_actors
        gcs_spill=$(mktemp -d /tmp/rh-gcs-spill-XXXXXX)
        RAYHPC_FAILURE_TIMEOUT_MS=2000 RAYHPC_STORE_SIZE=32M RAYHPC_SPILL_DIR=$gcs_spill tsan_run "gcs: job and spilled object records outlive a replica" 137 "RECORDS OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/gcs_records
        rm -rf "$gcs_spill"
        tsan_run "flagship example" 0 "checksum ok" 3 -n 3 ./examples/am_exchange
        tsan_run "tasks: pi map-reduce" 0 "pi ~ 3.14" 1 -n 1 ./examples/pi 200 20000
        CUDA_VISIBLE_DEVICES= tsan_run "GPU tasks forwarded to the node offering a GPU" 0 "GPU_PLACE TASKS OK" 1 -n 3 --nodes 3 ./tests/multi/gpu_place tasks
        RAYHPC_NUM_WORKERS=4 tsan_run "tasks: 4 workers" 0 "pi ~ 3.14" 1 -n 1 ./examples/pi 500 1000
        tsan_run "example: heat stencil, halos between 2 nodes" 0 "HEAT2D OK" 1 -n 4 --nodes 2 ./examples/heat2d 64 16 4 2
        tsan_run "example: parameter sweep collected by an actor" 0 "PARAM_SWEEP OK" 1 -n 4 --nodes 2 ./examples/param_sweep 8 8 1000 16
        tsan_run "example: map-reduce over chunks on 2 nodes" 0 "ARRAY_MAPREDUCE OK" 1 -n 4 --nodes 2 ./examples/array_mapreduce 4 1 1
        tsan_run "objects between ranks" 0 "SHARED OK" 2 -n 3 ./tests/multi/objects share
        tsan_run "tasks: 3 drivers on one rank" 0 "STRESS OK" 1 -n 1 ./tests/multi/tasks_stress 10
        RAYHPC_NUM_WORKERS=3 tsan_run "tasks: 2 ranks, 3 workers each" 0 "STRESS OK" 2 -n 2 ./tests/multi/tasks_stress 5
        RAYHPC_NUM_WORKERS=3 tsan_run "tasks waiting for CPUs in the ledger" 0 "RESOURCES OK" 1 -n 1 ./tests/multi/resources 200
        RAYHPC_NUM_WORKERS=2 tsan_run "an all-CPUs task waits for one-CPU tasks begun uncounted" 0 "LATE OK" 1 -n 1 ./tests/multi/resources_late late
        RAYHPC_NUM_WORKERS=2 tsan_run "an uncounted task lends its CPU to an all-CPUs child" 0 "LATE OK" 1 -n 1 ./tests/multi/resources_late lend
        tsan_run "tasks forwarded between 3 nodes" 0 "FORWARD OK" 1 -n 3 --nodes 3 ./tests/multi/forward check
        tsan_run "forwarded task whose rank dies" 137 "FORWARD KILL OK" 1 --keep-going -n 2 --nodes 2 ./tests/multi/forward kill
        tsan_run "lineage of a forwarded stream: answers and releases hand entries on without the lock" 0 "FT ACCOUNTING OK" 1 -n 2 --nodes 2 ./tests/multi/ft_kill accounting
        RAYHPC_PROGRESS=polling tsan_run "lineage of a forwarded stream, polling progress" 0 "FT ACCOUNTING OK" 1 -n 2 --nodes 2 ./tests/multi/ft_kill accounting
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
        RAYHPC_STORE_SIZE=32M tsan_run "spilling: a task graph larger than the store, 2 ranks of a node" 0 "SPILL GRAPH OK" 1 -n 2 ./tests/multi/spill graph
        RAYHPC_STORE_SIZE=32M RAYHPC_PUT_TIMEOUT_MS=2000 tsan_run "spilling: a put waits for a reader thread" 0 "SPILL WAIT OK" 1 -n 1 ./tests/multi/spill wait
        RAYHPC_STORE_SIZE=32M tsan_run "spilling: evicted copies pulled again on 4 nodes" 0 "SPILL NODES OK" 1 -n 4 --nodes 4 ./tests/multi/spill nodes
        RAYHPC_STORE_SIZE=32M tsan_run "spilling: 4x the store put while the leader's thread spills, read back" 0 "SPILL WORKSET OK" 1 -n 1 ./tests/multi/spill workset
        tsan_run "actors: ordered calls, kill, max_concurrency, destructors" 0 "ACTORS LOCAL OK" 1 -n 1 ./tests/multi/actors_core local
        tsan_run "actors on other nodes: order, handles, names, kill" 0 "ACTORS REMOTE OK" 1 -n 3 --nodes 3 ./tests/multi/actors_core remote
        tsan_run "actors: 4 callers on 2 nodes each in order" 0 "ACTORS CALLERS OK" 1 -n 4 --nodes 2 ./tests/multi/actors_core callers
        tsan_run "actors: the actor's rank dies" 137 "ACTORS RANKDEATH OK" 1 --keep-going -n 3 --nodes 3 ./tests/multi/actors_core rankdeath
        RAYHPC_NUM_WORKERS=2 tsan_run "actors: CPUs kept for an actor's life" 0 "ACTORS KEEP OK" 1 -n 1 ./tests/multi/actors_core keep
        RAYHPC_TIMELINE="$tsan/timeline.json" tsan_run "timeline of tasks, pulls and actor calls on 2 nodes" 0 "TIMELINE OK" 1 -n 2 --nodes 2 ./tests/multi/timeline
        touch "$tsan/jobstate.gate"
        RAYHPC_SUMMARY=1 tsan_run "job state served and summed up at finalize" 0 "RAYHPC_SUMMARY" 1 -n 4 --nodes 2 ./tests/multi/jobstate "$tsan/jobstate.gate"
        RAYHPC_SUMMARY=1 tsan_run "job state gathered over the network from 4 nodes" 0 "4 ranks on 4 nodes; 4 of them answered$" 1 -n 4 --nodes 4 ./tests/multi/jobstate "$tsan/jobstate.gate"
        UCX_TLS=tcp,self tsan_run "actors: the actor's owner dies" 137 "ACTORS OWNERDEATH OK" 1 --keep-going -n 3 --nodes 3 ./tests/multi/actors_core ownerdeath
        tsan_run "actors: a detached actor outlives its owner, then a kill frees its name" 137 "ACTORS DETACHEDORPHAN OK" 1 --keep-going -n 4 --nodes 4 ./tests/multi/actors_core detachedorphan
        UCX_TLS=tcp,self tsan_run "actors: the owner of a restartable actor dies with calls in flight" 137 "ACTORS OWNERFLIGHT OK" 1 --keep-going -n 3 --nodes 3 ./tests/multi/actors_core ownerretry
        tsan_run "actors: parameter server, 4 workers on 2 nodes" 0 "PARAM_SERVER OK" 1 -n 4 --nodes 2 ./examples/param_server 16384 4 4
        tsan_run "actors: simulation farm, 6 rods on 2 nodes" 0 "SIM_FARM OK" 1 -n 4 --nodes 2 ./examples/sim_farm 6 10 256
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: map-reduce, 2 ranks killed" 137 "FT MAPREDUCE OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill mapreduce
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: nested recursion, 2 ranks killed" 137 "FT RECURSION OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill recursion
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: a node lost, its object rebuilt" 137 "FT LOST_NODE OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill lost_node
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: gets racing rebuilds of their object" 0 "FT REBUILD_RACE OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill rebuild_race
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: retry_exceptions" 0 "FT EXCEPTIONS OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill exceptions
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: a placement group's bundle placed again" 137 "FT PG_BUNDLE OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill pg_bundle
        RAYHPC_INLINE_MAX=1K RAYHPC_NUM_WORKERS=1 tsan_run "fault tolerance: a group's bundle placed again on the owner's rank" 137 "FT PG_HOME OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill pg_home
        RAYHPC_INLINE_MAX=1K RAYHPC_NUM_WORKERS=1 tsan_run "fault tolerance: a rerun avoids ranks whose CPUs bundles hold" 137 "FT PG_FULL OK" 1 -n 8 --nodes 4 ./tests/multi/ft_kill pg_full
        RAYHPC_INLINE_MAX=1K RAYHPC_NUM_WORKERS=1 RAYHPC_RESOURCES=slot=1 tsan_run "fault tolerance: a lost bundle placed once an actor frees its CPUs" 137 "FT PG_ACTOR OK" 1 -n 4 --nodes 4 ./tests/multi/ft_kill pg_actor
        RAYHPC_INLINE_MAX=1K tsan_run "fault tolerance: a rerun takes over the sealed return its lost run left" 137 "FT SAME_NODE SEALED OK" 1 -n 4 --nodes 2 ./tests/multi/ft_kill same_node_sealed
        tsan_run "fault tolerance: an actor restarted after its rank died" 137 "FT ACTOR RESTART OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor restart
        tsan_run "fault tolerance: a checkpointed actor restored, its calls resent" 137 "FT ACTOR CHECKPOINT OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor checkpoint
        tsan_run "fault tolerance: a checkpoint asked by a method" 137 "FT ACTOR CHECKPOINT OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor request
        tsan_run "fault tolerance: a call resent max_task_retries times" 137 "FT ACTOR RETRIES OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor retries
        tsan_run "fault tolerance: calls queued at a kill that restarts are resent" 0 "FT ACTOR KILL RESEND OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor killresend
        RAYHPC_NUM_WORKERS=1 tsan_run "fault tolerance: calls resent to an actor restarted on the caller's rank" 137 "FT ACTOR HOME OK" 1 -n 8 --nodes 4 ./tests/multi/ft_actor home
        unset TSAN_OPTIONS UCX_MEM_EVENTS
    else
        grep -E 'error' "$tsan/make.out" "$tsan/configure.out" | head -20
        bad "build with ThreadSanitizer"
    fi
fi

# The release tarball builds, installs and passes its checks in a read-only
# copy of its sources (`make distcheck`). Inside it, only the unit tests and
# the build checks run: the multi-rank tests need minutes and run in the
# check stage, on the same files. Then every file of the tree (but
# .gitignore) must be in the tarball.
if want distcheck && need_build; then
    step "make distcheck in $build (unit and build checks inside; the multi-rank tests run in the check stage)"
    if make -C "$build" distcheck TESTS='$(UNIT_TESTS) $(SCRIPT_TESTS)' \
            >"$build/distcheck.out" 2>&1; then
        ok "make distcheck"
    else
        grep -E 'error|^(FAIL|ERROR)' "$build/distcheck.out" | head -30
        tail -15 "$build/distcheck.out"
        bad "make distcheck"
    fi
    tarball="$build/$(sed -n 's/^PACKAGE_TARNAME = //p' "$build/Makefile")-$(sed -n 's/^VERSION = //p' "$build/Makefile").tar.gz"
    tree=$(mktemp -d /tmp/rayhpc-dist.XXXXXX)
    if [ -f "$tarball" ] && "$top/tests/copy-sources.sh" "$top" "$tree"; then
        missing=$(comm -23 <(cd "$tree" && find . -type f ! -name .gitignore | sed 's|^\./||' | sort) \
                           <(tar -tzf "$tarball" | sed 's|^[^/]*/||' | sort))
        if [ -z "$missing" ]; then
            ok "the tarball holds every file of the tree"
        else
            echo "not in $tarball (add them to EXTRA_DIST or a _SOURCES list in Makefile.am):"
            echo "$missing" | head -30
            bad "the tarball holds every file of the tree"
        fi
    else
        bad "the tarball holds every file of the tree (no $tarball, or the copy failed)"
    fi
    rm -rf "$tree"
fi

# The library without CUDA: configure --without-cuda builds no CUDA code
# even where the toolkit is (the main build has it where it is), and every
# GPU call says so; the GPU tests take those paths, check_cuda.sh skips.
if want nocuda; then
    nocuda="$top/_build-nocuda"
    if build_dir "$nocuda" --enable-werror --without-cuda; then
        step "GPU tests, exports and docs in $nocuda"
        # only this run's results are counted
        rm -f "$nocuda"/tests/*.log "$nocuda"/tests/*.trs \
              "$nocuda"/tests/unit/*.log "$nocuda"/tests/unit/*.trs
        make -C "$nocuda" -j1 check TESTS='tests/unit/test_gpu tests/unit/test_gpu_stage tests/test_gpu_multi tests/check_exports.sh tests/check_docs.sh tests/check_cuda.sh' \
            2>&1 | tee "$nocuda/check.out" | grep -E '^(PASS|FAIL|ERROR|SKIP|# )'
        count_check "$nocuda"
    fi
fi

# The README's first command (its build and install, tests/build-order.sh
# takes it from README.md) and this suite's build stage, one after the
# other in either order, each order in a fresh copy of this tree.
if want order; then
    step "the README's build and the suite's build, in either order"
    order_out=$("$top/tests/build-order.sh" 2>&1)
    order_st=$?
    echo "$order_out" | grep -E '^(ok|FAILED): '
    passed=$((passed + $(grep -c '^ok: ' <<<"$order_out")))
    n=$(grep -c '^FAILED: ' <<<"$order_out")
    if [ "$n" -gt 0 ] || [ $order_st -ne 0 ]; then
        echo "$order_out" | tail -40
        [ "$n" -gt 0 ] || n=1
        failed=$((failed + n))
        failures+=("build order (tests/build-order.sh)")
    fi
fi


printf '\n'
for f in "${failures[@]}"; do printf 'failed: %s\n' "$f"; done
printf 'suite: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
