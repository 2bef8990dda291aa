#!/bin/sh
# The reference pages in docs/ are current: docs/api.md is what
# tools/gen-api.sh makes of include/rayhpc.h, and every function
# librayhpc.so exports has an entry there with a comment; docs/
# configuration.md is what tools/gen-config.sh makes of this build's
# `rayhpc-info -c`, and every RAYHPC_ variable the sources read is in it;
# the program of docs/getting-started.md and the first of README.md build
# and print what they say, and README's task and actor fragments build and
# run.
# Run by `make check` (RH_TEST_BUILDDIR and RH_TEST_SRCDIR are set there).
build=${RH_TEST_BUILDDIR:-.}
src=${RH_TEST_SRCDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-docs.$$
trap 'rm -f "$tmp".*' EXIT
fails=0
fail() { echo "check_docs: $*" >&2; fails=$((fails + 1)); }

# The API reference.
if ! "$src/tools/gen-api.sh" "$src/include/rayhpc.h" >"$tmp.api"; then
    fail "tools/gen-api.sh failed"
elif ! cmp -s "$tmp.api" "$src/docs/api.md"; then
    fail "docs/api.md is not current: run tools/gen-api.sh > docs/api.md"
    diff "$src/docs/api.md" "$tmp.api" | head -20 >&2
fi
lib=$build/.libs/librayhpc.so
if [ -f "$lib" ]; then
    nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' |
        sort -u >"$tmp.exported"
    [ -s "$tmp.exported" ] || fail "no exported function found in $lib"
    grep '^### ' "$tmp.api" | sed 's/^### //; s/, /\n/g' | sort -u >"$tmp.entries"
    for f in $(comm -23 "$tmp.exported" "$tmp.entries"); do
        fail "librayhpc.so exports $f, which docs/api.md has no entry for"
    done
else
    echo "check_docs: no $lib (built with --disable-shared?): exports not compared" >&2
fi
if grep -q '(no comment in rayhpc.h)' "$tmp.api"; then
    grep -B6 '(no comment in rayhpc.h)' "$tmp.api" | grep '^### ' |
        while read -r _ f; do
            echo "check_docs: $f has no comment in include/rayhpc.h" >&2
        done
    fail "functions without a comment in include/rayhpc.h"
fi

# The settings.
if ! "$src/tools/gen-config.sh" "$build/rayhpc-info" >"$tmp.cfg"; then
    fail "tools/gen-config.sh failed"
elif ! cmp -s "$tmp.cfg" "$src/docs/configuration.md"; then
    fail "docs/configuration.md is not current: run tools/gen-config.sh $build/rayhpc-info > docs/configuration.md"
    diff "$src/docs/configuration.md" "$tmp.cfg" | head -20 >&2
fi
for v in $(cat "$src"/src/*/*.c "$src"/tools/*.c "$src"/perf/*.c |
           grep -oE '"RAYHPC_[A-Z0-9_]+' | tr -d '"' | sort -u); do
    grep -q "$v" "$src/docs/configuration.md" ||
        fail "the sources read $v, which docs/configuration.md does not name"
done

# The first program of getting-started.md, against this build's library.
sed -n '/^```c$/,/^```$/p' "$src/docs/getting-started.md" | sed '1d;$d' >"$tmp.c"
san=$(sed -n 's/^SAN_CFLAGS = //p' "$build/Makefile")
# shellcheck disable=SC2086
if ! ${CC:-cc} -Wall -Wextra -Werror $san -o "$tmp.prog" "$tmp.c" -I"$src/include" \
        -L"$build/.libs" -lrayhpc 2>"$tmp.err"; then
    fail "the program of docs/getting-started.md does not build: $(head -5 "$tmp.err")"
else
    out=$(LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
          timeout 120 "$build/rayhpc-run" -n 2 --nodes 2 "$tmp.prog" 2>&1)
    [ "$out" = "0 1 4 9 16 25 36 49 64 81" ] ||
        fail "the program of docs/getting-started.md printed: $out"
fi

# The first program of README.md ("Using it"), printed whole: it builds
# and runs alone and on 2 ranks of 2 nodes.
awk '/^```c$/ { n++; next } /^```$/ { if (n == 1) exit } n == 1' \
    "$src/README.md" >"$tmp.readme.c"
# shellcheck disable=SC2086
if ! ${CC:-cc} -Wall -Wextra -Werror $san -o "$tmp.readme" "$tmp.readme.c" \
        -I"$src/include" -L"$build/.libs" -lrayhpc 2>"$tmp.err"; then
    fail "the first program of README.md does not build: $(head -5 "$tmp.err")"
else
    out=$(LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
          timeout 120 "$build/rayhpc-run" -n 2 --nodes 2 "$tmp.readme" 2>&1 |
          sort)
    [ "$out" = "rank 0 of 2 on node 0 of 2
rank 1 of 2 on node 1 of 2" ] ||
        fail "the first program of README.md printed: $out"
fi

# README's fragments of tasks (the 2nd C block) and actors (the 4th), as a
# reader completes them: its functions above main, the rest as main's body.
for n in 2 4; do
    awk -v n=$n '/^```c$/ { b++; next } /^```$/ { if (b == n) exit } b == n' \
        "$src/README.md" >"$tmp.frag"
    {
        printf '#include <stdlib.h>\n#include <string.h>\n#include <rayhpc.h>\n'
        awk '/^(rh_register|static const rh_method_def_t)/ { exit } { print }' \
            "$tmp.frag"
        printf 'int main(int argc, char **argv)\n{\n'
        awk '/^(rh_register|static const rh_method_def_t)/ { f = 1 } f' \
            "$tmp.frag"
        printf 'return rh_finalize() == RH_OK ? 0 : 1;\n}\n'
    } >"$tmp.frag.c"
    # shellcheck disable=SC2086
    if ! ${CC:-cc} -Wall -Wextra -Werror $san -o "$tmp.frag" "$tmp.frag.c" \
            -I"$src/include" -L"$build/.libs" -lrayhpc 2>"$tmp.err"; then
        fail "C block $n of README.md does not build: $(head -5 "$tmp.err")"
    elif ! LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            timeout 120 "$build/rayhpc-run" -n 2 --nodes 2 "$tmp.frag" \
            >"$tmp.err" 2>&1; then
        fail "C block $n of README.md failed: $(tail -5 "$tmp.err")"
    fi
done

[ $fails -eq 0 ] || exit 1
echo "check_docs: docs/api.md and docs/configuration.md are current and complete, the programs of getting-started.md and README.md run"
