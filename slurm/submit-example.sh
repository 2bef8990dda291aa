#!/bin/bash
# submit-example.sh NAME [SBATCH OPTIONS...]: submits the example NAME of
# slurm/examples.tbl as a Slurm job, with the layout script the table names.
#
#   slurm/submit-example.sh pi -N 4
#   slurm/submit-example.sh am_exchange --wait -N 2   # waits, then checks
#
# The program is $RH_EXAMPLES_DIR/NAME (default: ./examples, the examples
# of a build tree); RH_ARGS replaces the table's arguments. The output goes
# to rayhpc-NAME-JOBID.out unless the options say --output. With --wait the
# script exits with the job's status, and fails when the output lacks the
# table's result line.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
table=$here/examples.tbl
usage() {
    echo "usage: $0 NAME [SBATCH OPTIONS...]; NAME is one of:" >&2
    grep -v '^#' "$table" | cut -d'|' -f1 | tr -d ' ' | grep . | sed 's/^/  /' >&2
    exit 2
}
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    usage
fi
name=$1
shift

trim() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }
line=$(grep -v '^#' "$table" | awk -F'|' -v OFS='|' -v n="$name" '{ gsub(/[ \t]/, "", $1) } $1 == n' | head -n 1)
[ -n "$line" ] || { echo "$0: no example '$name' in $table" >&2; usage; }
layout=$(cut -d'|' -f2 <<<"$line" | trim)
args=${RH_ARGS-$(cut -d'|' -f3 <<<"$line" | trim)}
expect=$(cut -d'|' -f4 <<<"$line" | trim)
script=$here/$layout.sbatch
[ -r "$script" ] || { echo "$0: example '$name' names layout '$layout', but $script does not exist" >&2; exit 1; }

dir=${RH_EXAMPLES_DIR:-examples}
prog=$(cd "$dir" 2>/dev/null && pwd)/$name
[ -x "$prog" ] || { echo "$0: no program $dir/$name: build the examples, or set RH_EXAMPLES_DIR to where they are" >&2; exit 1; }

wait=0 output=rayhpc-$name-%j.out
prev=
for o in "$@"; do
    case $o in
    -W | --wait) wait=1 ;;
    --output=*) output=${o#--output=} ;;
    -o*) [ "$o" = -o ] || output=${o#-o} ;;
    esac
    case $prev in -o | --output) output=$o ;; esac
    prev=$o
done

set +e
# shellcheck disable=SC2086  # args is a list of words
job=$(sbatch --parsable --job-name="rayhpc-$name" --output="$output" "$@" "$script" "$prog" $args)
status=$?
set -e
job=${job%%;*}   # --parsable prints "id;cluster" on federations
out=${output//%j/$job}
if [ $wait -eq 0 ]; then
    [ $status -ne 0 ] || echo "example $name: job $job, output in $out"
    exit $status
fi
if [ $status -ne 0 ]; then
    echo "example $name: job ${job:-?} failed with status $status (output in $out)" >&2
    exit $status
fi
if ! grep -qF -- "$expect" "$out"; then
    echo "example $name: job $job ended, but $out lacks '$expect'" >&2
    exit 1
fi
echo "example $name: job $job ok ('$expect' in $out)"
