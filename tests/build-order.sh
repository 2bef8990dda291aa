#!/usr/bin/env bash
# The README's two commands work in either order in one clone: its first
# command's build and install (taken from README.md itself: the apt-get part
# left out, a temporary prefix instead of /usr/local), then the suite's
# build stage (`tests/run-all.sh --only build`), in one fresh copy of this
# tree (a git repository of its own, as a clone is); and the suite's build
# stage, then the README's build, in another.
# Prints "ok: ..." or "FAILED: ..." for each step; exits 1 when one failed.
#
#   tests/build-order.sh [WORKDIR]   (default: a temporary folder, removed
#                                     when every step passed)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-}
keep=0
if [ -n "$work" ]; then
    mkdir -p "$work" && work=$(cd "$work" && pwd) || exit 1
    keep=1
else
    work=$(mktemp -d /tmp/rayhpc-order.XXXXXX) || exit 1
fi
failed=0
ok() { printf 'ok: %s\n' "$*"; }
bad() { failed=1; printf 'FAILED: %s\n' "$*"; }

# The README's first command: the line of its first sh block.
line=$(sed -n '/^```sh$/{n;p;q}' "$top/README.md")
case $line in
*"autoreconf -fi && ./configure"*"&& make install"*) ;;
*)
    echo "build-order: README.md's first command is not 'apt-get ... && autoreconf -fi && ./configure ... && make install ...': $line" >&2
    exit 1 ;;
esac
# From autoreconf on, installing under a prefix of its own: its rayhpc-run
# first in PATH, ldconfig run on its lib folder only.
readme_build() {   # the copy, its prefix, the log (outside the copy)
    local dir=$1 prefix=$2 log=$3 cmd
    cmd="autoreconf -fi ${line#*autoreconf -fi }"
    cmd=${cmd/.\/configure/./configure --prefix=\'$prefix\'}
    cmd=${cmd//ldconfig/ldconfig -n \'$prefix/lib\'}
    echo "+ $cmd" >"$log"
    (cd "$dir" && PATH="$prefix/bin:$PATH" bash -c "set -e; $cmd") >>"$log" 2>&1
}

suite_build() {   # the copy, the log (outside the copy)
    (cd "$1" && ./tests/run-all.sh --only build) >"$2" 2>&1 &&
        grep -q '^suite: [1-9][0-9]* passed, 0 failed' "$2"
}

show() {   # the log of a failed step
    echo "--- $1 (last lines)"
    tail -15 "$1"
}

one_order() {   # name, first, second
    local name=$1 first=$2 second=$3 dir="$work/$1"
    rm -rf "$dir"
    if ! "$top/tests/copy-sources.sh" "$top" "$dir/src"; then
        bad "$name: copy the tree"
        return
    fi
    # A repository of its own, as a fresh clone is (the suite then copies
    # its sources as it does in a clone).
    if command -v git >/dev/null 2>&1 &&
       ! (cd "$dir/src" && git init -q && git add -A &&
          git -c user.name=build-order -c user.email=build-order@localhost \
              commit -qm "the tree as it is") >"$dir/git.out" 2>&1; then
        show "$dir/git.out"
        bad "$name: make the copy a git repository"
        return
    fi
    local step
    for step in "$first" "$second"; do
        case $step in
        readme)
            if readme_build "$dir/src" "$dir/prefix" "$dir/readme.out"; then
                ok "$name: the README's build and install"
            else
                show "$dir/readme.out"
                bad "$name: the README's build and install"
                return
            fi ;;
        suite)
            if suite_build "$dir/src" "$dir/suite-build.out"; then
                ok "$name: tests/run-all.sh --only build"
            else
                show "$dir/suite-build.out"
                bad "$name: tests/run-all.sh --only build"
                return
            fi ;;
        esac
    done
}

one_order readme-then-suite readme suite
one_order suite-then-readme suite readme

if [ $failed -eq 0 ] && [ $keep -eq 0 ]; then
    rm -rf "$work"
else
    echo "build-order: the copies are in $work"
fi
exit $failed
