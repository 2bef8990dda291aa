#!/usr/bin/env bash
# The long soak: a mixed task graph (nested trees spread over the nodes,
# large objects pulled between nodes, tasks in placement groups) while ranks
# are SIGKILLed at random moments, run after run with a new seed each time.
# Each run must end by itself (no hang), print "SOAK OK" (every answer right
# or explained by a death), and leave no store segment and no process
# behind. The suite runs a short version (tests/test_multirank.c).
#
# usage: tests/soak.sh [-b BUILD_DIR] [-r RUNS] [-n RANKS] [-N NODES]
#                      [-k KILLS] [-R ROUNDS] [-w WINDOW_S] [-s FIRST_SEED]
#        tests/soak.sh -g [-b BUILD_DIR] [-r RUNS] [-s FIRST_SEED]
#        tests/soak.sh -f [-S] [-b BUILD_DIR] [-r RUNS] [-s FIRST_SEED] [-m MODES]
# defaults: _build, 5 runs of 64 ranks on 8 nodes, 6 killed within 20 s,
# 40 rounds each. With -g it soaks the GCS instead: RUNS (default 20) runs,
# in turn, of tests/multi/gcs_kill, each killing the head, middle or tail of
# a chain after a random number of its 100 000 writes (it must print GCS
# KILL OK), and of tests/multi/gcs_grow, killing the three original members
# of a chain at three random points of its 100 000 writes, the chain grown
# back before each (it must print GCS GROW OK).
# -f: fault tolerance (docs/fault-tolerance.md), 8 ranks on 4 nodes, 20 runs
# by default, taking in turn the MODES (comma-separated; default all):
# mapreduce and recursion (tests/multi/ft_kill: two random ranks killed at
# random tasks, every get must return the right value) and checkpoint
# (tests/multi/ft_actor: a checkpointed counter's rank killed at a random
# count among 1,000 pipelined increments, the count must be exact) and
# pg_bundle (tests/multi/ft_kill: the ranks of a random node, 1 to 3, killed
# in turn by the task in their placement group's bundle: placed again once,
# then lost with the right errors) and home (tests/multi/ft_actor, one
# worker a rank: as checkpoint, the counter restarted on the caller's own
# rank).
# -S: the same under Slurm, as `srun --mpi=pmix --no-kill
# --kill-on-bad-exit=0 -n 8` (4 virtual nodes of 2 tasks), on the cluster
# RH_TEST_SLURM_DIR names or on a private one started for the soak
# (tests/slurm/local-slurm.sh) and stopped after it.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/_build runs=5 ranks=64 nodes=8 kills=6 rounds=40 window=20
seed=$(( $(date +%s) % 100000 ))
gcs=0 ft=0 slurm=0 runs_set=0 modes=mapreduce,recursion,checkpoint,pg_bundle,home
while getopts "gfSb:r:n:N:k:R:w:s:m:" o; do
    case $o in
        g) gcs=1 ;;
        f) ft=1 ;;
        S) slurm=1 ;;
        m) modes=$OPTARG ;;
        b) build=$OPTARG ;; r) runs=$OPTARG runs_set=1 ;; n) ranks=$OPTARG ;;
        N) nodes=$OPTARG ;; k) kills=$OPTARG ;; R) rounds=$OPTARG ;;
        w) window=$OPTARG ;; s) seed=$OPTARG ;;
        *) sed -n '2,27p' "$0"; exit 2 ;;
    esac
done
if [ $gcs -eq 1 ]; then
    [ $runs_set -eq 1 ] || runs=20
    prog=$build/tests/multi/gcs_kill grow=$build/tests/multi/gcs_grow
    if [ ! -x "$prog" ] || [ ! -x "$grow" ] || [ ! -x "$build/rayhpc-run" ]; then
        echo "soak: build first: make -C $build tests/multi/gcs_kill tests/multi/gcs_grow rayhpc-run" >&2
        exit 2
    fi
    roles=(head middle tail) passed=0 failed=0
    RANDOM=$seed
    for ((i = 0; i < runs; i++)); do
        if [ $((i % 2)) -eq 1 ]; then
            # three kill points in 500..99500, increasing
            a=$(( (RANDOM * 32768 + RANDOM) % 33000 + 500 ))
            b=$(( a + (RANDOM * 32768 + RANDOM) % 33000 + 1 ))
            c=$(( b + (RANDOM * 32768 + RANDOM) % 33000 + 1 ))
            out=$(RAYHPC_FAILURE_TIMEOUT_MS=3000 timeout 600 \
                  "$build/rayhpc-run" --keep-going -n 6 --nodes 4 "$grow" 100000 "$a" "$b" "$c" 2>&1)
            st=$?
            if [ $st -eq 137 ] && grep -q "GCS GROW OK" <<<"$out"; then
                passed=$((passed + 1))
                echo "gcs soak run $((i + 1))/$runs: a chain's members killed after $a, $b, $c writes: grew back each time"
            else
                failed=$((failed + 1))
                echo "gcs soak run $((i + 1))/$runs: a chain's members killed after $a, $b, $c writes: FAILED (status $st)"
                tail -20 <<<"$out"
            fi
            continue
        fi
        role=${roles[RANDOM % 3]} at=$(( (RANDOM * 32768 + RANDOM) % 99000 + 500 ))
        out=$(RAYHPC_GCS_SHARDS=2 RAYHPC_FAILURE_TIMEOUT_MS=1000 timeout 600 \
              "$build/rayhpc-run" --keep-going -n 4 --nodes 4 "$prog" "$role" "$at" 100000 2>&1)
        st=$?
        if [ $st -eq 137 ] && grep -q "GCS KILL OK" <<<"$out"; then
            passed=$((passed + 1))
            echo "gcs soak run $((i + 1))/$runs: $role killed after $at writes: $(grep -o 'failover.*' <<<"$out")"
        else
            failed=$((failed + 1))
            echo "gcs soak run $((i + 1))/$runs: $role killed after $at writes: FAILED (status $st)"
            tail -20 <<<"$out"
        fi
    done
    echo "soak: $passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
fi
if [ $ft -eq 1 ]; then
    prog=$build/tests/multi/ft_kill
    actor=$build/tests/multi/ft_actor
    run=$build/rayhpc-run
    if [ ! -x "$prog" ] || [ ! -x "$actor" ] || [ ! -x "$run" ]; then
        echo "soak: build first: make -C $build tests/multi/ft_kill tests/multi/ft_actor rayhpc-run" >&2
        exit 2
    fi
    IFS=, read -r -a mlist <<<"$modes"
    [ $runs_set -eq 1 ] || runs=20
    where=rayhpc-run
    if [ $slurm -eq 1 ]; then
        where=srun
        sdir=${RH_TEST_SLURM_DIR:-}
        if [ -z "$sdir" ]; then
            sdir=$(mktemp -d /tmp/rayhpc-soak-slurm.XXXXXX)
            trap '"$top/tests/slurm/local-slurm.sh" stop "$sdir" --purge >/dev/null 2>&1' EXIT
            if ! LOCAL_SLURM_CPUS=8 "$top/tests/slurm/local-slurm.sh" start "$sdir" >/dev/null; then
                echo "soak: could not start a private Slurm in $sdir" >&2
                exit 2
            fi
        fi
        # shellcheck disable=SC1091
        . "$sdir/env.sh" || exit 2
    fi
    # 8 ranks on 4 nodes under rayhpc-run or srun; under srun each task
    # names its virtual node from its own SLURM_PROCID.
    ft_launch() {
        if [ $slurm -eq 1 ]; then
            timeout 300 srun --mpi=pmix --no-kill --kill-on-bad-exit=0 -n 8 \
                sh -c 'RAYHPC_NODE_ID=srun-$((SLURM_PROCID / 2)) exec "$0" "$@"' \
                "$@"
        else
            timeout 300 "$run" -n 8 --nodes 4 "$@"
        fi
    }
    passed=0 failed=0
    for ((i = 0; i < runs; i++)); do
        RANDOM=$((seed + i))
        mode=${mlist[i % ${#mlist[@]}]}
        log=$(mktemp /tmp/rayhpc-soak-ft.XXXXXX)
        survivors=6
        case $mode in
        mapreduce|recursion)
            ok="FT MAPREDUCE OK sum 85408"
            [ "$mode" = recursion ] && ok="FT RECURSION OK value 63"
            v1=$((1 + RANDOM % 7)) v2=$((1 + RANDOM % 7))
            while [ $v2 -eq $v1 ]; do v2=$((1 + RANDOM % 7)); done
            at=$((1 + RANDOM % 56))
            what="$mode, ranks $v1 and $v2 killed by tasks $at and $((at + 7))"
            RAYHPC_INLINE_MAX=1K FT_VICTIMS=$v1,$v2 FT_KILL_AT=$at \
                ft_launch "$prog" $mode >"$log" 2>&1
            st=$? ;;
        checkpoint)
            ok="FT ACTOR CHECKPOINT OK" at=$((1 + RANDOM % 999))
            what="checkpoint, the counter's rank killed at count $at"
            ft_launch "$actor" checkpoint $at >"$log" 2>&1
            st=$? ;;
        home)
            ok="FT ACTOR HOME OK" at=$((1 + RANDOM % 999)) survivors=7
            what="home, the counter's rank killed at count $at"
            RAYHPC_NUM_WORKERS=1 ft_launch "$actor" home $at >"$log" 2>&1
            st=$? ;;
        pg_bundle)
            ok="FT PG_BUNDLE OK" at=$((1 + RANDOM % 3))
            what="pg_bundle, the ranks of node $at killed in their bundle"
            RAYHPC_INLINE_MAX=1K FT_PG_NODE=$at ft_launch "$prog" pg_bundle >"$log" 2>&1
            st=$? ;;
        *)
            echo "soak -f: unknown mode $mode (mapreduce, recursion, checkpoint, pg_bundle, home)" >&2
            exit 2 ;;
        esac
        why=
        if [ $st -eq 124 ]; then why="hung (killed after 300 s)"
        elif [ $st -ne 137 ]; then why="exit status $st"
        elif ! grep -q "^$ok" "$log"; then why="no \"$ok\" line"
        elif [ "$(grep -c '^FT DONE' "$log")" -ne "$survivors" ]; then why="a survivor did not finalize"
        elif pgrep -f "^($prog|$actor)" >/dev/null; then why="left processes behind"
        fi
        if [ -z "$why" ]; then
            passed=$((passed + 1))
            echo "soak -f run $((i + 1))/$runs under $where: ok ($what)"
            rm -f "$log"
        else
            failed=$((failed + 1))
            echo "soak -f run $((i + 1))/$runs under $where: FAILED ($why; $what); log in $log"
            grep -E 'FT FAIL' "$log" | head -5
        fi
    done
    echo "soak -f under $where: $passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
fi
prog=$build/tests/multi/soak
run=$build/rayhpc-run
if [ ! -x "$prog" ] || [ ! -x "$run" ]; then
    echo "soak: build first: make -C $build tests/multi/soak rayhpc-run" >&2
    exit 2
fi
# Ranks far outnumber cores here: one worker each and a small store.
export RAYHPC_NUM_WORKERS=${RAYHPC_NUM_WORKERS:-1}
export RAYHPC_STORE_SIZE=${RAYHPC_STORE_SIZE:-64M}
passed=0 failed=0
for ((i = 0; i < runs; i++)); do
    s=$((seed + i))
    log=$(mktemp /tmp/rayhpc-soak.XXXXXX)
    start=$(date +%s)
    SOAK_ROUNDS=$rounds SOAK_KILL=$kills SOAK_SEED=$s SOAK_WINDOW=$window \
        timeout 1200 "$run" --keep-going -n "$ranks" --nodes "$nodes" "$prog" \
        >"$log" 2>&1 &
    pid=$!
    # On a terminal, one line shows the run going; piped, nothing.
    while [ -t 2 ] && kill -0 $pid 2>/dev/null; do
        printf '\r\033[Ksoak run %d/%d seed %d: %ds' $((i + 1)) "$runs" "$s" \
            $(( $(date +%s) - start )) >&2
        sleep 1
    done
    wait $pid
    st=$?
    [ -t 2 ] && printf '\r\033[K' >&2
    secs=$(( $(date +%s) - start ))
    job=$(sed -n 's/^SOAK JOB \(rayhpc-[0-9]*-\)$/\1/p' "$log" | head -1)
    why=
    if [ $st -eq 124 ]; then why="hung (killed after 1200 s)"
    elif [ $st -ne 0 ] && [ $st -ne 137 ]; then why="exit status $st"
    elif ! grep -q '^SOAK OK' "$log"; then why="no SOAK OK line"
    elif [ -z "$job" ]; then why="no SOAK JOB line"
    elif ls /dev/shm/"$job"* >/dev/null 2>&1; then
        why="left store segments behind: $(ls /dev/shm/"$job"* | tr '\n' ' ')"
    elif pgrep -f "^$prog" >/dev/null; then why="left processes behind"
    fi
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        echo "soak run $((i + 1))/$runs seed $s: ok in ${secs}s: $(grep '^SOAK OK' "$log")"
        rm -f "$log"
    else
        failed=$((failed + 1))
        echo "soak run $((i + 1))/$runs seed $s: FAILED ($why); log in $log"
        grep -E 'SOAK BAD|SOAK FAILED' "$log" | head -5
        pkill -KILL -f "^$prog" 2>/dev/null
    fi
done
echo "soak: $passed passed, $failed failed"
[ $failed -eq 0 ]
