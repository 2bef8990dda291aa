#!/usr/bin/env bash
# Builds every example outside the tree against an installed librayhpc,
# as a user would (cc x.c $(pkg-config --cflags --libs rayhpc)), runs each
# under the installed rayhpc-run (and some under mpirun) and checks the
# line by which it says its result equals the serial computation.
#
#   tests/examples.sh PREFIX
#
# PREFIX is where `make install` put the library (PREFIX/lib/pkgconfig,
# PREFIX/bin/rayhpc-run). Prints "ok: ..." or "FAILED: ..." per check and
# ends with "examples: N passed, N failed"; exits 1 when one failed.
set -uo pipefail

# One line per example:
#   file | ranks | nodes | arguments | pattern | lines | launchers
# pattern (grep -E) must be on exactly `lines` lines of the output;
# launchers: rayhpc-run, mpirun (4 ranks, one node), or both as
# "rayhpc-run mpirun". A file marked "internal" uses the library's
# internal headers: make check builds and runs it, this script cannot.
# Sizes are small, for a shared host; the examples take larger ones.
TABLE='
heat2d.c          | 4 | 2 | 128 32 12 3   | ^HEAT2D OK          | 1 | rayhpc-run mpirun
param_sweep.c     | 4 | 2 | 16 16 5000 64 | ^PARAM_SWEEP OK     | 1 | rayhpc-run mpirun
array_mapreduce.c | 4 | 2 | 16 1 2        | ^ARRAY_MAPREDUCE OK | 1 | rayhpc-run
pi.c              | 4 | 2 | 64 100000     | ^pi ~ 3\.1          | 1 | rayhpc-run
param_server.c    | 4 | 2 | 16384 4 4     | ^PARAM_SERVER OK    | 1 | rayhpc-run mpirun
sim_farm.c        | 4 | 2 | 6 10 256      | ^SIM_FARM OK        | 1 | rayhpc-run
am_exchange.c     | internal
'

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 PREFIX (a folder where librayhpc is installed)" >&2
    exit 2
fi
prefix=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../examples" && pwd)
run="$prefix/bin/rayhpc-run"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok: %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAILED: %s\n' "$*"; }
trim() { sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$1"; }

if [ ! -x "$run" ] || ! pkg-config --exists rayhpc; then
    echo "$0: no rayhpc-run in $prefix/bin or no rayhpc.pc in $prefix/lib/pkgconfig" >&2
    exit 2
fi
work=$(mktemp -d /tmp/rayhpc-examples.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The examples' shared header travels with them, as it would for a user
# who copied the folder.
cp "$src"/*.c "$src"/*.h "$work"/

# Every example is in the table, so that none is forgotten.
for f in "$src"/*.c; do
    name=$(basename "$f")
    if ! grep -qE "^$name[[:space:]]*\|" <<<"$TABLE"; then
        bad "$name is not in the table of $0"
    fi
done

# name, pattern, lines, command...: runs it and checks its output.
check_run() {
    local name=$1 pattern=$2 lines=$3; shift 3
    local out st n
    out=$(timeout 300 "$@" </dev/null 2>&1)
    st=$?
    n=$(grep -cE -- "$pattern" <<<"$out")
    if [ $st -eq 0 ] && [ "$n" -eq "$lines" ]; then
        ok "$name"
        grep -E '(/s|note:)' <<<"$out" | sed 's/^/    /'
    else
        echo "$out" | tail -30
        bad "$name (status $st, $n of $lines lines matching '$pattern')"
    fi
}

# The table comes on fd 3: the launchers read stdin.
while IFS='|' read -r -u 3 file ranks nodes args pattern lines launchers; do
    file=$(trim "$file")
    [ -n "$file" ] || continue
    [ "$(trim "$ranks")" = internal ] && continue
    ranks=$(trim "$ranks")
    nodes=$(trim "$nodes")
    args=$(trim "$args")
    pattern=$(trim "$pattern")
    lines=$(trim "$lines")
    exe="$work/${file%.c}"
    if [ ! -f "$src/$file" ]; then
        bad "$file is in the table but not in $src"
        continue
    fi
    # shellcheck disable=SC2046
    if ! (cd "$work" && cc -Wall -Wextra -Werror -o "$exe" "$file" \
            $(pkg-config --cflags --libs rayhpc)); then
        bad "build $file with pkg-config"
        continue
    fi
    ok "build $file with pkg-config"
    for launcher in $launchers; do
        # shellcheck disable=SC2086
        case $launcher in
        rayhpc-run)
            check_run "$file under rayhpc-run -n $ranks --nodes $nodes $args" \
                "$pattern" "$lines" "$run" -n "$ranks" --nodes "$nodes" "$exe" $args ;;
        mpirun)
            check_run "$file under mpirun -n $ranks $args" "$pattern" "$lines" \
                mpirun --allow-run-as-root --oversubscribe -n "$ranks" "$exe" $args ;;
        *)
            bad "$file: unknown launcher $launcher" ;;
        esac
    done
done 3<<<"$TABLE"

printf 'examples: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
