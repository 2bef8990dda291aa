#!/bin/sh
# Writes the API reference (docs/api.md) from include/rayhpc.h: each section
# of the header, its notes, its types and macros, and every RH_EXPORT
# function with its prototype, the comment above it, its parameters and the
# errors that comment names. The header's comments are the documentation:
# a function the header leaves without a comment gets an entry saying so,
# which tests/check_docs.sh refuses.
#
#   tools/gen-api.sh [include/rayhpc.h] > docs/api.md
#
# Run it again after changing the header; `make check` fails while
# docs/api.md differs from its output (tests/check_docs.sh).
set -eu
hdr=${1:-$(dirname "$0")/../include/rayhpc.h}
[ -r "$hdr" ] || { echo "gen-api: cannot read $hdr" >&2; exit 1; }

LC_ALL=C awk '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
# The text of a comment line: without its /*, * and */ marks.
function comment_text(s) {
    sub(/^[ \t]*\/\*+ ?/, "", s); sub(/^[ \t]*\* ?/, "", s); sub(/ *\*\/[ \t]*$/, "", s)
    return s
}
function flush_code() {
    if (code != "") { out = out "\n```c\n" code "```\n"; code = "" }
}
# Prints what is pending: a note (comment then blank line), or the entry of
# the items that followed the comment.
function emit() {
    if (nfun > 0) { emit_functions() }
    else if (items != "") {
        if (doc != "") printf "\n%s\n", doc
        printf "\n```c\n%s```\n", items
    } else if (doc != "") { printf "\n%s\n", doc }
    doc = ""; items = ""; nfun = 0; protos = ""
}
function emit_functions(   i, title, errs, e, rest, plist, n, parts, p, name, type, k) {
    title = fname[1]
    for (i = 2; i <= nfun; i++) title = title ", " fname[i]
    printf "\n### %s\n\n```c\n%s```\n", title, protos
    if (doc != "") printf "\n%s\n", doc
    else printf "\n(no comment in rayhpc.h)\n"
    for (i = 1; i <= nfun; i++) {
        plist = fparams[i]
        if (plist == "void" || plist == "") continue
        if (nfun > 1) printf "\nParameters of `%s`:\n\n", fname[i]
        else printf "\nParameters:\n\n"
        n = split(plist, parts, ",")
        for (k = 1; k <= n; k++) {
            p = trim(parts[k])
            if (p == "...") { printf "- `...`: the arguments of the format\n"; continue }
            name = p; sub(/.*[ *]/, "", name); sub(/\[\]$/, "", name)
            type = substr(p, 1, length(p) - length(name)); type = trim(type)
            printf "- `%s` (`%s`)\n", name, type
        }
    }
    errs = ""; rest = doc
    while (match(rest, /RH_(ERR_[A-Z_]+|OK)/)) {
        e = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
        if (index(" " errs " ", " " e " ") == 0) errs = errs (errs == "" ? "" : " ") e
    }
    if (errs != "") {
        gsub(/ /, "`, `", errs)
        printf "\nStatus codes it names: `%s`; any call may also fail as the [conventions](#conventions) say.\n", errs
    }
}
BEGIN { state = "top"; depth = 0 }
# Section titles: a comment between two rules of dashes.
/^\/\* ----------------------------------------*-* \*\/$/ { emit(); cmt = ""; rule = !rule; next }
rule && /^\/\* / { title = comment_text($0); title = trim(title); printf "\n## %s\n", title; next }
# The file comment: the conventions.
NR == 1 && /^\/\*$/ { state = "file"; next }
state == "file" {
    if ($0 ~ /\*\//) { state = "top"; next }
    t = comment_text($0)
    if (t ~ /^Conventions:/) { printf "\n## Conventions\n\n"; conv = 1; next }
    if (!conv) { intro = intro (intro == "" ? "" : "\n") t; next }
    sub(/^  /, "", t); print t
    next
}
state == "cmt" {
    t = comment_text($0)
    cmt = cmt (cmt == "" || t == "" ? (t == "" ? "\n\n" : "") : " ") t
    if ($0 ~ /\*\//) { state = "top" }
    next
}
state == "top" && /^[ \t]*\/\*/ {
    # A comment on its own line starts a doc block, unless one is pending
    # for items (a comment between items of one entry ends the entry).
    if (items != "" || nfun > 0) emit()
    cmt = ""; t = comment_text($0)
    cmt = t
    if ($0 !~ /\*\//) state = "cmt"
    doc_pending = 1
    next
}
/^$/ {
    if (state == "item") next
    if (items != "" || nfun > 0) emit()
    else if (cmt != "") { doc = cmt; emit() }
    cmt = ""
    next
}
# Items: a function (RH_EXPORT ... ;), a typedef or a static inline body
# (to its closing brace at depth 0), a macro.
state == "top" && /^#(define RH_|ifdef|ifndef|endif|include|if |else)/ {
    if ($0 ~ /^#define RH_/ && $0 !~ /^#define RH_EXPORT/ && $0 !~ /RAYHPC_H/) {
        if (cmt != "") { doc = cmt; cmt = "" }
        items = items $0 "\n"
    } else {
        cmt = ""   # the comment of a conditional: about the build, not the API
    }
    next
}
state == "top" && /^(extern|}$)/ { next }
state == "top" && /^RH_EXPORT/ { state = "fn"; decl = "" }
state == "top" && /^(typedef|static inline)/ { state = "item"; depth = 0 }
state == "fn" {
    line = $0; sub(/^RH_EXPORT[ \t]*/, "", line)
    if (line != "") decl = decl (decl == "" ? "" : "\n") line
    if ($0 ~ /;[ \t]*$/) {
        if (cmt != "") { doc = cmt; cmt = "" }
        nfun++
        flat = decl; gsub(/\n[ \t]*/, " ", flat)
        name = flat; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
        fname[nfun] = name
        plist = flat; sub(/^[^(]*\(/, "", plist); sub(/\)[^)]*$/, "", plist)
        fparams[nfun] = trim(plist)
        protos = protos decl "\n"
        state = "top"
    }
    next
}
state == "item" {
    if (cmt != "") { doc = cmt; cmt = "" }
    items = items $0 "\n"
    n1 = gsub(/{/, "{"); n2 = gsub(/}/, "}"); depth += n1 - n2
    if (depth == 0 && ($0 ~ /;[ \t]*$/ || $0 ~ /^}$/)) state = "top"
    next
}
END { emit() }
' "$hdr" >"${TMPDIR:-/tmp}/gen-api.$$" || { rm -f "${TMPDIR:-/tmp}/gen-api.$$"; exit 1; }

cat <<'HEAD'
# librayhpc API reference

<!-- Generated by tools/gen-api.sh from include/rayhpc.h: edit the header's
     comments, then run `tools/gen-api.sh > docs/api.md`. -->

Everything a program uses is declared in `<rayhpc.h>` (`-lrayhpc`, or
`pkg-config --cflags --libs rayhpc`). Each function below is exported from
`librayhpc.so` under the version node `RAYHPC_0.1`. See
[getting-started.md](getting-started.md) for a first program and
[ray-mapping.md](ray-mapping.md) for the Ray call each one stands for.
HEAD
cat "${TMPDIR:-/tmp}/gen-api.$$"
rm -f "${TMPDIR:-/tmp}/gen-api.$$"
