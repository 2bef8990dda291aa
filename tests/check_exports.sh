#!/bin/sh
# librayhpc.so exports exactly the functions that include/rayhpc.h declares:
# no internal function leaks into the ABI, and none of the API is missing.
# Run by `make check` (RH_TEST_BUILDDIR and RH_TEST_SRCDIR are set there).
build=${RH_TEST_BUILDDIR:-.}
src=${RH_TEST_SRCDIR:-.}
lib=$build/.libs/librayhpc.so
hdr=$src/include/rayhpc.h
tmp=${TMPDIR:-/tmp}/rh-exports.$$
trap 'rm -f "$tmp".*' EXIT

if [ ! -f "$lib" ]; then
    echo "check_exports: no $lib (built with --disable-shared?)" >&2
    exit 77
fi
# Functions the header declares: lines that start a declaration (not a
# comment, typedef, macro or inline body) and name rh_something(.
grep -E '^[A-Za-z]' "$hdr" | grep -vE '^(static|typedef|extern|#)' |
    grep -oE '\brh_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$tmp.declared"
# Defined dynamic symbols, without their version; "A" is the version node.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' |
    sed 's/@.*//' | sort -u > "$tmp.exported"
if [ ! -s "$tmp.declared" ]; then
    echo "check_exports: found no function in $hdr" >&2
    exit 1
fi
if ! cmp -s "$tmp.declared" "$tmp.exported"; then
    echo "check_exports: librayhpc.so's exports differ from rayhpc.h" >&2
    echo "(< declared only, > exported only):" >&2
    diff "$tmp.declared" "$tmp.exported" | grep '^[<>]' | head -50 >&2
    echo "$(grep -c . "$tmp.declared") declared, $(grep -c . "$tmp.exported") exported" >&2
    exit 1
fi
echo "check_exports: librayhpc.so exports the $(grep -c . "$tmp.declared") functions of rayhpc.h and nothing else"
