#!/usr/bin/env bash
# Copies the sources of the librayhpc tree SRC, as they are now, to DEST,
# without anything a build left in SRC: a build may then configure from
# DEST whatever was built in SRC.
#   In a git work tree: the tracked files and the untracked ones that git
#   does not ignore, except programs (ELF files and libtool's wrapper
#   scripts) a build left that .gitignore does not name yet.
#   In an unpacked release: `make distdir` when SRC is configured, else
#   the whole tree but its _build*/_inst* folders.
# File times are kept, so a build from DEST stays incremental.
#
#   tests/copy-sources.sh SRC DEST
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: tests/copy-sources.sh SRC DEST" >&2
    exit 2
fi
src=$(cd "$1" && pwd -P)
dest=$2
mkdir -p "$dest"
dest=$(cd "$dest" && pwd -P)
if [ "$dest" = "$src" ]; then
    echo "copy-sources: DEST is SRC" >&2
    exit 2
fi

is_built_program() {
    [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] ||
        grep -qE '^# .* - temporary wrapper script for [.]libs/' <<<"$(head -c 2048 "$1")"
}

if [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" = "$src" ]; then
    cd "$src"
    {
        git ls-files -z --cached | while IFS= read -r -d '' f; do
            # a file deleted in the work tree is gone from the copy too
            if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
        done
        git ls-files -z --others --exclude-standard | while IFS= read -r -d '' f; do
            if [ -f "$f" ] && ! is_built_program "$f"; then printf '%s\0' "$f"; fi
        done
    } | tar --null -T - -cf - | tar -xf - -C "$dest"
elif [ -f "$src/config.status" ] && [ -f "$src/Makefile" ]; then
    rm -rf "$dest"
    make -s -C "$src" distdir distdir="$dest" >/dev/null
else
    (cd "$src" && tar --exclude='./_build*' --exclude='./_inst*' -cf - .) |
        tar -xf - -C "$dest"
fi
