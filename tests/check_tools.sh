#!/bin/sh
# The tools' command lines and man pages agree: for rayhpc-run and
# rayhpc-info, --help and --version follow the usual conventions, every
# option --help names is one the parser accepts (the help is printed from
# the parser's own table, so the parser accepts none it does not name),
# a bad option is a usage error (status 2), and the man page renders and
# names every option; rayhpc-perf's --help and man page name its options.
# Run by `make check` (RH_TEST_BUILDDIR and RH_TEST_SRCDIR are set there).
build=${RH_TEST_BUILDDIR:-.}
src=${RH_TEST_SRCDIR:-.}
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$build/Makefile")
tmp=${TMPDIR:-/tmp}/rh-tools.$$
trap 'rm -f "$tmp".*' EXIT
fails=0
fail() { echo "check_tools: $*" >&2; fails=$((fails + 1)); }

if ! command -v man >/dev/null 2>&1; then
    echo "check_tools: no man command to render the pages (apt-get install man-db)" >&2
    exit 77
fi

# The options a --help output names, one a line: "-n ARG", "--nodes ARG",
# "--keep-going" (ARG when --help shows an argument).
help_options() {
    grep -E '^ +(-[A-Za-z], )?--[a-z]' "$1" | sed -E 's/^ +//; s/  .*//' |
        awk '{
            arg = ($NF ~ /^[A-Z]+$/) ? " ARG" : ""
            for (i = 1; i <= NF; i++) {
                o = $i; sub(/,$/, "", o)
                if (o ~ /^-/) print o arg
            }
        }'
}

# A tool's --help, --version, bad option and man page.
check_tool() {   # name, how to run it with one option (a shell function)
    tool=$1 run=$2
    "$build/$tool" --help >"$tmp.help" 2>"$tmp.err"
    st=$?
    [ $st -eq 0 ] || fail "$tool --help exits $st"
    [ -s "$tmp.err" ] && fail "$tool --help writes to stderr"
    head -1 "$tmp.help" | grep -q "^Usage: $tool " || fail "$tool --help does not start with 'Usage: $tool ...'"
    out=$("$build/$tool" --version 2>&1)
    [ "$out" = "$tool (librayhpc) $version" ] || fail "$tool --version prints '$out'"
    "$build/$tool" --no-such-option >/dev/null 2>"$tmp.err"
    st=$?
    [ $st -eq 2 ] || fail "$tool --no-such-option exits $st, not 2"
    grep -q '^Usage:' "$tmp.err" || fail "$tool --no-such-option prints no usage on stderr"
    help_options "$tmp.help" >"$tmp.opts"
    [ "$(grep -c . "$tmp.opts")" -ge 3 ] || fail "$tool --help names too few options: $(cat "$tmp.opts")"
    MANWIDTH=100 man --warnings -l "$src/man/$tool.1" >"$tmp.man" 2>"$tmp.manerr" ||
        fail "man -l man/$tool.1 fails"
    [ -s "$tmp.manerr" ] && fail "man/$tool.1 renders with warnings: $(head -3 "$tmp.manerr")"
    grep -q '^NAME' "$tmp.man" || fail "man/$tool.1 has no NAME section"
    while read -r opt arg; do
        $run "$opt" "$arg" >/dev/null 2>"$tmp.err"
        if grep -qiE 'unrecognized option|invalid option|unexpected argument' "$tmp.err"; then
            fail "$tool --help names $opt, which the parser refuses: $(head -1 "$tmp.err")"
        fi
        grep -qF -- "$opt" "$tmp.man" || fail "man/$tool.1 does not name $opt"
    done <"$tmp.opts"
}

# Runs rayhpc-run with one option (and a value for it) and a one-rank job.
run_run() {
    if [ -n "$2" ]; then
        timeout 60 "$build/rayhpc-run" "$1" 1 -n 1 true
    else
        timeout 60 "$build/rayhpc-run" "$1" -n 1 true
    fi
}
run_info() { timeout 60 "$build/rayhpc-info" "$1"; }

check_tool rayhpc-run run_run
check_tool rayhpc-info run_info

# The MPI spellings of rayhpc-run's rank count.
for n in "-n 1" "-np 1" "--np 1" "-n1" "-n=1" "--np=1"; do
    # shellcheck disable=SC2086
    timeout 60 "$build/rayhpc-run" $n true || fail "rayhpc-run $n true fails"
done

# rayhpc-perf: --help and its man page.
"$build/rayhpc-perf" --help >"$tmp.help" 2>&1 || fail "rayhpc-perf --help fails"
grep -q 'rayhpc-perf \[FIGURE' "$tmp.help" || fail "rayhpc-perf --help has no usage line"
MANWIDTH=100 man --warnings -l "$src/man/rayhpc-perf.1" >"$tmp.man" 2>"$tmp.manerr" ||
    fail "man -l man/rayhpc-perf.1 fails"
[ -s "$tmp.manerr" ] && fail "man/rayhpc-perf.1 renders with warnings: $(head -3 "$tmp.manerr")"
for opt in --help FIGURE --list --report --quick; do
    grep -qF -- "$opt" "$tmp.man" || fail "man/rayhpc-perf.1 does not name $opt"
done

[ $fails -eq 0 ] || exit 1
echo "check_tools: rayhpc-run, rayhpc-info and rayhpc-perf: --help, --version and man pages agree"
