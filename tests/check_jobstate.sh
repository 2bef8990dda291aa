#!/bin/sh
# rayhpc-info --job against a running 4-rank job on 2 nodes
# (tests/multi/jobstate): it names the job, shows its 4 ranks and 2 nodes,
# every object the ranks put (owner and size, in its node's store), the
# task running on node 1 and the one waiting for its return on rank 0.
# Without a job id it finds the same job. rayhpc-info --gcs shows the
# job's GCS: epoch, masters, chains, each replica with its table sizes,
# and the job's record.
# Once the job ended, asking for
# it fails (status 1) with a message, and its sockets are gone. With
# RAYHPC_SUMMARY=1 rank 0 prints the same report at rh_finalize.
# Across hosts (4 ranks on 4 virtual nodes, every other node treated as
# another host): with the sockets of ranks 1-3 moved away, rank 0 still
# gathers all 4 ranks and their objects over the job's transport; a
# stopped rank is reported unreachable at --timeout, and so is a killed
# one, and rayhpc-info returns.
# Run by `make check` (RH_TEST_BUILDDIR is set there).
build=${RH_TEST_BUILDDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-jobstate.$$
trap 'touch "$tmp.gate" "$tmp.gate4"; rm -f "$tmp".*' EXIT
fails=0
fail() { echo "check_jobstate: $*" >&2; fails=$((fails + 1)); }
# shellcheck source=tests/jobstate_job.sh
. "$(dirname "$0")/jobstate_job.sh"

start_jobstate check_jobstate "$tmp.gate" "$tmp.out" "$tmp.err" -n 4 --nodes 2

timeout 30 "$build/rayhpc-info" --job="$job" >"$tmp.info" 2>"$tmp.ierr" ||
    fail "rayhpc-info --job=$job fails: $(cat "$tmp.ierr")"
grep -q "^Job $job: 4 ranks on 2 nodes; 4 of them answered" "$tmp.info" ||
    fail "no header line for 4 ranks on 2 nodes"
for r in 0 1 2 3; do
    node=$((r / 2))
    grep -q "^  $r  *$node  *[0-9][0-9]*  *CPU=" "$tmp.info" ||
        fail "rank $r on node $node is not in the Ranks table"
done
check_objects "$tmp.info" "$tmp.out" ""
grep -q '^  node 0 store: 2 objects' "$tmp.info" || fail "node 0's store does not hold 2 objects"
grep -q '^  node 1 store: 2 objects' "$tmp.info" || fail "node 1's store does not hold 2 objects"
grep -q '^  node 0 spilled: 0 objects, 0 B in 0 files' "$tmp.info" || fail "node 0's spill line is missing"
# rank 2 (node 1's first rank) runs js_block; rank 0 holds js_after
awk '/^Tasks/ { t = 1; next } t && $1 == 2 { print $3 }' "$tmp.info" | grep -q '^1$' ||
    fail "the running task on node 1 is not shown"
awk '/^Tasks/ { t = 1; next } t && $1 == 0 { print $4 }' "$tmp.info" | grep -q '^1$' ||
    fail "the task waiting for its argument on rank 0 is not shown"
timeout 30 "$build/rayhpc-info" --job >"$tmp.all" 2>&1 ||
    fail "rayhpc-info --job fails: $(cat "$tmp.all")"
grep -q "^Job $job: 4 ranks" "$tmp.all" || fail "rayhpc-info --job does not find job $job"
grep -q '^GCS$' "$tmp.info" || fail "rayhpc-info --job has no GCS section"

# rayhpc-info --gcs: 2 shards (one per node), chains of 3 on the 4 ranks,
# epoch 1 (nobody died); each shard's 3 replicas listed by their ranks, and
# the 10 keys rank 0 wrote counted once at the tails.
timeout 30 "$build/rayhpc-info" --gcs="$job" >"$tmp.gcs" 2>"$tmp.ierr" ||
    fail "rayhpc-info --gcs=$job fails: $(cat "$tmp.ierr")"
grep -q "^Job $job: 4 ranks on 2 nodes" "$tmp.gcs" || fail "--gcs: no header line"
grep -q '^  gcs epoch 1: 2 shards, chains of 3, 0 ranks dropped' "$tmp.gcs" ||
    fail "--gcs: no epoch 1 line with 2 shards and chains of 3"
grep -q '^  gcs masters: [0-3] [0-3] [0-3]$' "$tmp.gcs" || fail "--gcs: no 3 masters"
for s in 0 1; do
    grep -q "^  gcs shard $s chain: [0-3] [0-3] [0-3]$" "$tmp.gcs" ||
        fail "--gcs: shard $s has no chain of 3"
    [ "$(grep -c "^  gcs rank [0-3] shard $s: \(head\|middle\|tail\), lsn" "$tmp.gcs")" -eq 3 ] ||
        fail "--gcs: shard $s does not list 3 replicas"
    grep -q "^  gcs rank [0-3] shard $s: tail, " "$tmp.gcs" || fail "--gcs: shard $s has no tail"
done
keys=$(sed -n 's/^  gcs rank [0-9]* shard [0-9]*: tail, .* test \([0-9]*\)$/\1/p' "$tmp.gcs" |
    awk '{ n += $1 } END { print n + 0 }')
[ "$keys" -eq 10 ] || fail "--gcs: the tails hold $keys test keys, not 10"
grep -q '^  gcs rank 0 job record: running, [0-9]* of [0-9]* writes acknowledged$' "$tmp.gcs" ||
    fail "--gcs: rank 0 shows no job record"
grep -q '^Nodes' "$tmp.gcs" && fail "--gcs prints the rest of the job report too"
timeout 30 "$build/rayhpc-info" --gcs >"$tmp.all" 2>&1 ||
    fail "rayhpc-info --gcs fails: $(cat "$tmp.all")"
grep -q "^Job $job: 4 ranks" "$tmp.all" || fail "rayhpc-info --gcs does not find job $job"
timeout 30 "$build/rayhpc-info" --gcs --job >/dev/null 2>&1 && fail "--gcs --job together is accepted"

touch "$tmp.gate"
wait $job_pid
st=$?
[ $st -eq 0 ] || { fail "the job failed ($st)"; cat "$tmp.err" >&2; }
timeout 30 "$build/rayhpc-info" --job="$job" >"$tmp.info" 2>"$tmp.ierr"
st=$?
[ $st -eq 1 ] || fail "rayhpc-info --job=$job exits $st after the job ended, not 1"
grep -q "no rank of job $job answers" "$tmp.ierr" || fail "no message for the ended job: $(cat "$tmp.ierr")"
[ -d "/tmp/rayhpc-$(id -u)/$job" ] && fail "/tmp/rayhpc-$(id -u)/$job is left behind"

# The summary at rh_finalize (the gate is open: the job ends at once).
RAYHPC_SUMMARY=1 timeout 120 "$build/rayhpc-run" -n 4 --nodes 2 \
    "$build/tests/multi/jobstate" "$tmp.gate" >"$tmp.out" 2>"$tmp.err" ||
    fail "the job with RAYHPC_SUMMARY=1 failed: $(cat "$tmp.err")"
grep -q '^# RAYHPC_SUMMARY' "$tmp.out" || fail "RAYHPC_SUMMARY=1 printed no summary"
grep -q '^Job .*: 4 ranks on 2 nodes; 4 of them answered' "$tmp.out" ||
    fail "the summary does not show the 4 ranks"
[ "$(grep -c '^    [0-9]*/[0-9]*/[0-9]*  *[0-3] ' "$tmp.out")" -ge 4 ] ||
    fail "the summary does not list the 4 objects"

# ---- 4 nodes: the other nodes' state comes over the network --------------
start_jobstate "check_jobstate (4 nodes)" "$tmp.gate4" "$tmp.out4" \
    "$tmp.err4" -n 4 --nodes 4
dir="/tmp/rayhpc-$(id -u)/$job"
for r in 1 2 3; do
    mv "$dir/rank$r.sock" "$dir/away$r" || fail "rank $r has no socket in $dir"
done
timeout 30 "$build/rayhpc-info" --job="$job" >"$tmp.info4" 2>"$tmp.ierr" ||
    fail "4 nodes: rayhpc-info --job=$job fails: $(cat "$tmp.ierr")"
grep -q "^Job $job: 4 ranks on 4 nodes; 4 of them answered$" "$tmp.info4" ||
    fail "4 nodes: the header does not say all 4 ranks answered"
for r in 0 1 2 3; do
    grep -q "^  $r  *$r  *[0-9][0-9]*  *CPU=" "$tmp.info4" ||
        fail "4 nodes: rank $r on node $r is not in the Ranks table"
    grep -q "^  node $r store: 1 objects" "$tmp.info4" ||
        fail "4 nodes: node $r's store does not hold 1 object"
done
check_objects "$tmp.info4" "$tmp.out4" "4 nodes: "
timeout 30 "$build/rayhpc-info" --gcs="$job" >"$tmp.gcs4" 2>&1 ||
    fail "4 nodes: rayhpc-info --gcs fails: $(cat "$tmp.gcs4")"
[ "$(grep -c '^  gcs rank [0-3] shard [0-9]*: ' "$tmp.gcs4")" -ge 4 ] ||
    fail "4 nodes: --gcs does not list the replicas of the other nodes"
for r in 1 2 3; do
    mv "$dir/away$r" "$dir/rank$r.sock"
done

# A stopped rank does not answer: reported at the timeout, no hang.
pid2=$(pid_of "$tmp.info4" 2)
kill -STOP "$pid2"
timeout 30 "$build/rayhpc-info" --job="$job" --timeout 3000 >"$tmp.stop" 2>&1 ||
    fail "4 nodes, rank 2 stopped: rayhpc-info fails: $(cat "$tmp.stop")"
kill -CONT "$pid2"
grep -q "^Job $job: 4 ranks on 4 nodes; 3 of them answered, 1 unreachable$" "$tmp.stop" ||
    fail "4 nodes, rank 2 stopped: the header does not say 3 answered, 1 unreachable"
grep -q '^  rank 2 node 2: node 2 did not answer within 3000 ms' "$tmp.stop" ||
    fail "4 nodes, rank 2 stopped: rank 2 is not reported unreachable"
grep -q '^  2  *(no answer)' "$tmp.stop" || fail "4 nodes, rank 2 stopped: node 2 is not shown without an answer"

# A killed rank: reported unreachable too (failed, or silent at the timeout).
pid3=$(pid_of "$tmp.info4" 3)
kill -KILL "$pid3"
timeout 30 "$build/rayhpc-info" --job="$job" --timeout 3000 >"$tmp.kill" 2>&1 ||
    fail "4 nodes, rank 3 killed: rayhpc-info fails: $(cat "$tmp.kill")"
grep -q "^Job $job: 4 ranks on 4 nodes; 3 of them answered, 1 unreachable$" "$tmp.kill" ||
    fail "4 nodes, rank 3 killed: the header does not say 3 answered, 1 unreachable"
grep -q '^  rank 3 node 3: ' "$tmp.kill" || fail "4 nodes, rank 3 killed: rank 3 is not reported unreachable"
touch "$tmp.gate4"
wait $job_pid   # a rank was killed: its status is not the point here

[ $fails -eq 0 ] || { cat "$tmp.info" "$tmp.gcs" "$tmp.info4" "$tmp.stop" "$tmp.kill" >&2 2>/dev/null; exit 1; }
echo "check_jobstate: rayhpc-info --job shows the job's 4 ranks, its objects and tasks; --gcs its GCS; across 4 nodes over the network, with a stopped and a killed rank unreachable"
