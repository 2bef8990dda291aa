#!/bin/sh
# rayhpc-info --job from a host with none of the job's ranks: a 4-rank job
# on 2 nodes (tests/multi/jobstate) writes its contact record into
# RAYHPC_JOB_CONTACT_DIR; rayhpc-info --remote leaves this host's sockets
# out, as on a login node, reads the record, asks a serving rank over UCX
# and prints the job's 4 ranks and the 4 objects they put. Found by job id,
# without one (the records' directory), and by --contact FILE; and by job
# id without --remote once the job's sockets are not on this host. An
# unknown job: a clear line, status 1.
#
# Node 0's server (rank 0) stopped: it does not answer within the time
# given, and rayhpc-info asks node 1's. Then, over TCP, with the record
# saying rank 0 runs on another host (no pid to look at) and rank 0
# killed: the connection fails, and node 1's server answers with the 3
# ranks left. Once the job is gone: its record removed at rh_finalize (no
# record: a clear line); an old copy of it is stale (its servers ran here
# and ended: said, and removed); a record whose servers cannot be reached
# (rank 0 killed, and listed on another host): each one that does not
# answer is named and rayhpc-info fails. Never a hang.
#
# Run over shared memory (UCX's default transports) and over
# UCX_TLS=tcp,self. Run by `make check` (RH_TEST_BUILDDIR is set there).
build=${RH_TEST_BUILDDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-jobremote.$$
trap 'touch "$tmp".gate.*; rm -rf "$tmp".*' EXIT
fails=0
fail() { echo "check_jobremote ($label): $*" >&2; fails=$((fails + 1)); }
info() { timeout 60 "$build/rayhpc-info" "$@"; }
# shellcheck source=tests/jobstate_job.sh
. "$(dirname "$0")/jobstate_job.sh"

# Starts the job of round $label; sets job, job_pid, record.
start_job() {
    rm -f "$tmp.gate.$label"
    start_jobstate "check_jobremote ($label)" "$tmp.gate.$label" \
        "$tmp.out.$label" "$tmp.err.$label" -n 4 --nodes 2 --keep-going
    record="$RAYHPC_JOB_CONTACT_DIR/$job"
}

# The report in $1 shows the job's 4 ranks on 2 nodes and their objects.
check_report() {
    grep -q "^Job $job: 4 ranks on 2 nodes; 4 of them answered$" "$1" ||
        fail "$2: no header line for 4 ranks on 2 nodes, all answering"
    for r in 0 1 2 3; do
        grep -q "^  $r  *$((r / 2))  *[0-9][0-9]*  *CPU=" "$1" ||
            fail "$2: rank $r is not in the Ranks table"
    done
    check_objects "$1" "$tmp.out.$label" "$2: "
}

for tls in default tcp,self; do
    label=$tls
    export RAYHPC_JOB_CONTACT_DIR="$tmp.contacts.$label"
    if [ "$tls" = default ]; then unset UCX_TLS; else export UCX_TLS=$tls; fi
    start_job
    [ -f "$record" ] || fail "no contact record $record"
    grep -q "^server node 0 rank 0 pid " "$record" || fail "the record names no server for node 0"
    grep -q "^server node 1 rank 2 pid " "$record" || fail "the record names no server for node 1"
    cp "$record" "$tmp.saved.$label"

    info --job="$job" --remote >"$tmp.info" 2>"$tmp.ierr" ||
        fail "--job=$job --remote fails: $(cat "$tmp.ierr")"
    check_report "$tmp.info" "--job=ID --remote"
    info --job --remote >"$tmp.info" 2>"$tmp.ierr" ||
        fail "--job --remote fails: $(cat "$tmp.ierr")"
    check_report "$tmp.info" "--job --remote"
    info --contact "$record" >"$tmp.info" 2>"$tmp.ierr" ||
        fail "--contact FILE fails: $(cat "$tmp.ierr")"
    check_report "$tmp.info" "--contact FILE"
    info --gcs="$job" --remote >"$tmp.info" 2>"$tmp.ierr" ||
        fail "--gcs --remote fails: $(cat "$tmp.ierr")"
    grep -q '^  gcs epoch 1: 2 shards' "$tmp.info" || fail "--gcs --remote: no GCS"

    # Without --remote, the records are read when no rank of the job
    # answers here: its sockets moved away (its servers cannot read their
    # node's other ranks either, so some ranks are unreachable).
    sockdir="/tmp/rayhpc-$(id -u)/$job"
    if mv "$sockdir" "$sockdir.away"; then
        info --job="$job" >"$tmp.info" 2>"$tmp.ierr" ||
            fail "--job=$job with no socket here fails: $(cat "$tmp.ierr")"
        grep -q "^Job $job: 4 ranks on 2 nodes; " "$tmp.info" ||
            fail "--job=$job with no socket here: no report: $(cat "$tmp.ierr")"
        mv "$sockdir.away" "$sockdir"
    else
        fail "the job has no socket directory $sockdir"
    fi

    info --job=nosuchjob --remote >"$tmp.info" 2>"$tmp.ierr"
    st=$?
    [ $st -eq 1 ] || fail "an unknown job: status $st, not 1"
    grep -q "^rayhpc-info: job nosuchjob has no contact record ($RAYHPC_JOB_CONTACT_DIR/nosuchjob)$" "$tmp.ierr" ||
        fail "an unknown job: no clear line: $(cat "$tmp.ierr")"

    # Node 0's server stopped: asked within 2000 ms (+1000 to answer),
    # then node 1's, which finds node 0 silent too.
    info --job="$job" --remote >"$tmp.all" 2>/dev/null
    pid0=$(pid_of "$tmp.all" 0)
    kill -STOP "$pid0"
    info --job="$job" --remote --timeout 2000 >"$tmp.info" 2>"$tmp.ierr" ||
        fail "rank 0 stopped: rayhpc-info fails: $(cat "$tmp.ierr")"
    kill -CONT "$pid0"
    grep -q "^rayhpc-info: job $job: rank 0 (node 0) did not answer: it did not answer within 3000 ms$" "$tmp.ierr" ||
        fail "rank 0 stopped: not said: $(cat "$tmp.ierr")"
    grep -q "^Job $job: 4 ranks on 2 nodes; 2 of them answered, 2 unreachable$" "$tmp.info" ||
        fail "rank 0 stopped: node 1's server did not answer for the job: $(head -3 "$tmp.info")"
    grep -q "^  2  *1  *[0-9]*  *CPU=" "$tmp.info" || fail "rank 0 stopped: rank 2 is not listed"

    if [ "$tls" = default ]; then
        # The job ends: its record goes with it.
        touch "$tmp.gate.$label"
        wait $job_pid || fail "the job failed: $(cat "$tmp.err.$label")"
        [ -f "$record" ] && fail "the record is left behind after rh_finalize"
        info --job="$job" --remote >"$tmp.info" 2>"$tmp.ierr"
        st=$?
        [ $st -eq 1 ] || fail "the job ended: status $st, not 1"
        grep -q "^rayhpc-info: job $job has no contact record" "$tmp.ierr" ||
            fail "the job ended: no clear line: $(cat "$tmp.ierr")"
        # A record its job did not remove (killed): stale.
        cp "$tmp.saved.$label" "$record"
        info --job="$job" --remote >"$tmp.info" 2>"$tmp.ierr"
        st=$?
        [ $st -eq 1 ] || fail "a stale record: status $st, not 1"
        grep -q "^rayhpc-info: the contact record $record of job $job is stale: its serving ranks ran on this host and are gone (removed)$" "$tmp.ierr" ||
            fail "a stale record: no clear line: $(cat "$tmp.ierr")"
        [ -f "$record" ] && fail "the stale record is not removed"
        continue
    fi

    # Rank 0 dead, and listed on another host: the connection fails (no
    # pid to look at from here), and node 1's server answers.
    sed 's/^\(server node 0 .* host \)[^ ]*/\1elsewhere\/x/' "$tmp.saved.$label" >"$record"
    kill -KILL "$pid0"
    info --job="$job" --remote --timeout 2000 >"$tmp.info" 2>"$tmp.ierr" ||
        fail "rank 0 killed: rayhpc-info fails: $(cat "$tmp.ierr")"
    grep -q "^rayhpc-info: job $job: rank 0 (node 0) did not answer: " "$tmp.ierr" ||
        fail "rank 0 killed: not said: $(cat "$tmp.ierr")"
    grep -q "^Job $job: 4 ranks on 2 nodes; 3 of them answered, 1 unreachable$" "$tmp.info" ||
        fail "rank 0 killed: node 1's server did not answer for the 3 ranks left: $(head -3 "$tmp.info")"
    touch "$tmp.gate.$label"
    wait $job_pid   # rank 0 was killed: the status is not the point here
    # No server answers: each is named, then one line, status 1.
    info --job="$job" --remote --timeout 1000 >"$tmp.info" 2>"$tmp.ierr"
    st=$?
    [ $st -eq 1 ] || fail "no server answers: status $st, not 1"
    grep -q "^rayhpc-info: job $job: rank 0 (node 0) did not answer: " "$tmp.ierr" ||
        fail "no server answers: rank 0 not named: $(cat "$tmp.ierr")"
    grep -q "^rayhpc-info: job $job: rank 2 (node 1) is gone" "$tmp.ierr" ||
        fail "no server answers: rank 2 not named: $(cat "$tmp.ierr")"
    grep -q "^rayhpc-info: no serving rank of job $job answered (contact record $record)$" "$tmp.ierr" ||
        fail "no server answers: no last line: $(cat "$tmp.ierr")"
done

[ $fails -eq 0 ] || exit 1
echo "check_jobremote: rayhpc-info --remote and --contact reach a 4-rank job through its contact record over shared memory and TCP, fall over from a stopped or dead server to the next, and fail with one clear line for no record, a stale record and servers that do not answer"
