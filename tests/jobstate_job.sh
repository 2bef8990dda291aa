# shellcheck shell=sh
# Sourced by tests/check_jobstate.sh and tests/check_jobremote.sh: starts
# the job of tests/multi/jobstate and reads what rayhpc-info says of it.
# The script that sources it sets build (the build tree) and tmp (a prefix
# for scratch files), and defines fail MESSAGE.
# shellcheck disable=SC2154  # build and tmp: set by that script

# start_jobstate WHO GATE OUT ERR RAYHPC-RUN-OPTIONS...: starts the 4-rank
# job, held until the file GATE exists, in the background with its output
# in OUT and ERR; waits up to 60 s for it to be ready and sets job_pid and
# job (its id). A job that ends or is not ready by then: its output, and
# the script exits 1 (nothing more can be checked).
start_jobstate() {
    who=$1 gate=$2 out=$3 err=$4
    shift 4
    timeout 120 "$build/rayhpc-run" "$@" "$build/tests/multi/jobstate" \
        "$gate" >"$out" 2>"$err" &
    job_pid=$!
    i=0
    while ! grep -q '^JOBSTATE READY' "$out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $job_pid 2>/dev/null; then
            echo "$who: the job never got ready:" >&2
            cat "$out" "$err" >&2
            exit 1
        fi
        sleep 0.1
    done
    # shellcheck disable=SC2034  # read by the script that sources this
    job=$(sed -n 's/^JOBSTATE READY //p' "$out")
}

# check_objects REPORT OUT WHAT: the job's ranks put 4 objects (their
# JOBSTATE PUT lines in OUT), and REPORT lists each of them sealed; a
# failure's message starts with WHAT.
check_objects() {
    grep '^JOBSTATE PUT' "$2" >"$tmp.puts"
    puts=$(grep -c . "$tmp.puts")
    [ "$puts" -eq 4 ] || fail "$3the job put $puts objects, not 4"
    while read -r _ _ rank id size; do
        grep -q "^    $id  *$rank  *$size  *[0-9]*  *sealed" "$1" ||
            fail "$3object $id of rank $rank ($size bytes) is not listed"
    done <"$tmp.puts"
}

# pid_of REPORT RANK: the pid of RANK in the Ranks table of REPORT.
pid_of() {
    awk -v r="$2" '/^Ranks/ { t = 1; next } t && $1 == r { print $3; exit }' "$1"
}
