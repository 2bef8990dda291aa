#!/bin/sh
# rayhpc-perf --report DIR --quick: the smoke run of the performance
# report. It writes DIR/report.md, whose table names every figure that
# rayhpc-perf --list names (measured or marked as not measured), each at
# most once, with the figures of the short run measured; and the plots it
# links to exist as well-formed SVG. A bad command line is a usage error.
# Run by `make check` (RH_TEST_BUILDDIR is set there).
build=${RH_TEST_BUILDDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-report.$$
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "check_report: $*" >&2; fails=$((fails + 1)); }

timeout 300 "$build/rayhpc-perf" --report "$tmp" --quick >"$tmp.out" 2>"$tmp.err"
st=$?
[ $st -eq 0 ] || { fail "rayhpc-perf --report --quick exits $st:"; cat "$tmp.err" >&2; }
[ -s "$tmp/report.md" ] || { fail "no $tmp/report.md"; exit 1; }
"$build/rayhpc-perf" --list >"$tmp.list" || fail "rayhpc-perf --list fails"
[ "$(grep -c . "$tmp.list")" -ge 20 ] || fail "rayhpc-perf --list names only $(grep -c . "$tmp.list") figures"
while read -r fig; do
    n=$(grep -c "^| \`$fig\` |" "$tmp/report.md")
    [ "$n" -eq 1 ] || fail "report.md has $n rows for $fig"
done <"$tmp.list"
rows=$(grep -c '^| `' "$tmp/report.md")
[ "$rows" -eq "$(grep -c . "$tmp.list")" ] || fail "report.md has $rows rows, --list names $(grep -c . "$tmp.list")"
for fig in get_lat remote_task_rtt balance_dev_pct; do
    grep "^| \`$fig\` |" "$tmp/report.md" | grep -q 'not measured\|no result' &&
        fail "$fig was not measured by --quick"
done
grep -o '([a-z]*\.svg)' "$tmp/report.md" | tr -d '()' >"$tmp.svgs"
[ -s "$tmp.svgs" ] || fail "report.md links no plot"
while read -r svg; do
    [ -s "$tmp/$svg" ] || fail "report.md links $svg, which is missing"
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' \
            "$tmp/$svg" 2>>"$tmp.err" || fail "$svg is not well-formed XML"
    fi
done <"$tmp.svgs"
"$build/rayhpc-perf" --quick >/dev/null 2>&1
[ $? -eq 2 ] || fail "--quick without --report is not a usage error"
"$build/rayhpc-perf" --report "$tmp/x" am_lat >/dev/null 2>&1
[ $? -eq 2 ] || fail "--report with a figure is not a usage error"
rm -f "$tmp".*
[ $fails -eq 0 ] || exit 1
echo "check_report: report.md names the $rows figures of --list"
