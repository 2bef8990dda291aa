#!/usr/bin/env bash
# The GPU checks of a CUDA build, on a node that has an NVIDIA GPU and its
# driver and nothing else of ours: no toolkit, no UCX, no criterion.
#
#   tests/gpu-node.sh pack BUILDDIR PACK   (on the build host)
#   tests/gpu-node.sh run DIR              (on the GPU node; DIR: a PACK, or
#                                           a build tree on a host that has
#                                           the libraries)
#
# pack copies what the checks run (the programs themselves, not libtool's
# wrappers, which name the build host's folders) into PACK with the build
# tree's layout, and into PACK/lib every shared library they load that is
# not the C library's, with UCX's and hwloc's plugins. Carry PACK and the
# source tree's tests/ to the node.
#
# run runs, each under a time limit and all within 8 minutes:
#   check_cuda.sh      fat binaries with PTX, no libcudart/libcuda needed
#                      (cross-checked with the node's cuobjdump if it has one)
#   test_gpu           the gpu/* tests (device objects byte for byte, a GPU
#                      task's device and stream, an actor's device), the
#                      nogpu/* ones where there is no GPU, the device choice
#   test_gpu_stage     the staged copy pipeline with host engines
#   test_gpu_multi     GPU placement over 3 ranks on 3 virtual nodes
#   heat_gpu           the stencil's tiles on the GPU, equal to the CPU's
#   rayhpc-perf        gpu_task_rtt gpu_put_bw gpu_get_bw gpu_ipc_bw
# and prints one summary line per check: PASS, SKIP (why) or FAIL (why).
# Where there is a GPU, a GPU check that skips is a failure. Exit status:
# 0 all passed on a GPU, 77 no GPU here (every check took its no-GPU path
# and passed), 1 a check failed, 2 the node cannot start the programs.
# RH_GPU_NODE_LOGS=DIR keeps each check's output in DIR.
set -uo pipefail

usage() {
    sed -n '2,12p' "$0" >&2
    exit 2
}

# What the checks run, relative to a build tree.
PROGS='rayhpc-run rayhpc-info rayhpc-perf tests/unit/test_gpu
tests/unit/test_gpu_stage tests/test_gpu_multi tests/multi/gpu_place
examples/heat_gpu'
FILES='config.h Makefile perf/perf_gpu_ref.o'

# The program of a build tree's name: libtool's .libs/ one when there is.
real() {
    local d b

    d=$(dirname "$2")
    b=$(basename "$2")

    if [ -f "$1/$d/.libs/$b" ]; then
        echo "$1/$d/.libs/$b"
    else
        echo "$1/$2"
    fi
}

pack() {
    local build=$1 dest=$2 libdir=/usr/lib/x86_64-linux-gnu f src

    [ -f "$build/config.h" ] || { echo "gpu-node: $build is no build tree" >&2; exit 2; }
    grep -q '^#define HAVE_CUDA 1' "$build/config.h" ||
        echo "gpu-node: warning: $build was built without CUDA" >&2
    mkdir -p "$dest/lib" "$dest/.libs"
    for f in $PROGS; do
        src=$(real "$build" "$f")
        [ -f "$src" ] || { echo "gpu-node: $build/$f was not built (make check builds the tests)" >&2; exit 2; }
        mkdir -p "$dest/$(dirname "$f")"
        cp "$src" "$dest/$f"
    done
    for f in $FILES; do
        mkdir -p "$dest/$(dirname "$f")"
        cp "$build/$f" "$dest/$f"
    done
    cp -P "$build"/.libs/librayhpc.so* "$dest/.libs/"
    # The plugins that UCX and hwloc open at run time that matter on one
    # node: shared memory by cross-memory attach, and the PCI devices that
    # place a GPU near its cores (the others pull in X11, ICU, InfiniBand).
    mkdir -p "$dest/lib/ucx" "$dest/lib/hwloc"
    cp -L "$libdir"/ucx/libuct_cma.so* "$dest/lib/ucx/" 2>/dev/null
    cp -L "$libdir"/hwloc/hwloc_pci.so "$dest/lib/hwloc/" 2>/dev/null
    for f in $PROGS; do echo "$dest/$f"; done | xargs file | grep ELF |
        cut -d: -f1 > "$dest/.elf"
    ls "$dest"/lib/ucx/*.so "$dest"/lib/hwloc/*.so >> "$dest/.elf" 2>/dev/null
    LD_LIBRARY_PATH="$dest/.libs" xargs -n1 ldd < "$dest/.elf" |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
        grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
        grep -v "^$dest/" | while read -r f; do cp -L "$f" "$dest/lib/"; done
    rm -f "$dest/.elf"
    echo "gpu-node: packed $(du -sh "$dest" | cut -f1) into $dest:" \
         "$(find "$dest/lib" -maxdepth 1 -name '*.so*' | wc -l) libraries, the programs of $build"
}

[ $# -ge 1 ] || usage
case $1 in
    pack) [ $# -eq 3 ] || usage; pack "$2" "$3"; exit 0 ;;
    run) [ $# -eq 2 ] || usage ;;
    *) usage ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$2" && pwd) || exit 2
logs=${RH_GPU_NODE_LOGS:-${TMPDIR:-/tmp}/rh-gpu-node.$$}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$dir/.libs:$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -d "$dir/lib/ucx" ] && export UCX_MODULE_DIR="$dir/lib/ucx"
[ -d "$dir/lib/hwloc" ] && export HWLOC_PLUGINS_PATH="$dir/lib/hwloc"
RH_TEST_SRCDIR=$(dirname "$here")
export RH_TEST_BUILDDIR=$dir RH_TEST_SRCDIR CRITERION_JOBS=1
deadline=$(( $(date +%s) + 460 ))
results=()
failed=0

# Every program starts here: a library missing on the node is said first.
missing=$(for f in $PROGS; do ldd "$(real "$dir" "$f")" 2>&1; done |
          grep 'not found' | sort -u)
if [ -n "$missing" ]; then
    echo "gpu-node: the programs cannot start here; missing:" >&2
    echo "$missing" >&2
    echo "(run 'tests/gpu-node.sh pack BUILDDIR PACK' where they were built" \
         "and carry PACK)" >&2
    exit 2
fi

# Whether the node has a GPU that the CUDA runtime sees, and why not.
"$(real "$dir" rayhpc-info)" --build > "$logs/info.log" 2>&1
gpus_line=$(grep 'GPUs here:' "$logs/info.log" | sed 's/^#[ ]*GPUs here:[ ]*//')
gpus=${gpus_line%% *}
case $gpus in ''|*[!0-9]*) gpus=0 ;; esac
echo "gpu-node: GPUs here: ${gpus_line:-unknown (rayhpc-info --build failed)}"
command -v nvidia-smi > /dev/null && nvidia-smi -L 2>&1 | sed 's/^/gpu-node:   /'

# step NAME LIMIT COMMAND...: runs it with its output in $logs/NAME.log.
step() {
    local name=$1 limit=$2 left=$(( deadline - $(date +%s) ))

    shift 2
    [ $left -lt $limit ] && limit=$left
    if [ $limit -le 5 ]; then
        echo "out of time" > "$logs/$name.log"
        return 124
    fi
    timeout -k 10 "$limit" "$@" > "$logs/$name.log" 2>&1
}

note() {
    results+=("$(printf '%-16s %s' "$1" "$2")")
    case $2 in FAIL*) failed=1 ;; esac
}

# criterion suites: pass, and on a GPU node no gpu:: test skipped.
criterion() {
    local name=$1 limit=$2 rc skips

    shift 2
    step "$name" "$limit" "$@" --verbose
    rc=$?
    skips=$(grep -c '^\[SKIP\]' "$logs/$name.log")
    if [ $rc -ne 0 ]; then
        note "$name" "FAIL (exit $rc): $(grep -E 'FAIL|Synthesis|out of time' "$logs/$name.log" | head -3 | tr '\n' ' ')"
    elif [ "$gpus" -gt 0 ] && grep -q '^\[SKIP\] gpu::' "$logs/$name.log"; then
        note "$name" "FAIL: GPU tests skipped on a node with $gpus GPU(s): $(grep -m1 '^\[SKIP\] gpu::' "$logs/$name.log")"
    else
        note "$name" "PASS ($(grep -o 'Tested: [0-9]*' "$logs/$name.log" | tail -1), $skips skipped)"
    fi
}

step check_cuda 60 sh "$here/check_cuda.sh"
case $? in
    0) note check_cuda "PASS ($(grep -c '^check_cuda: [^ ]* carries' "$logs/check_cuda.log") binaries$(grep -q 'no cuobjdump' "$logs/check_cuda.log" && echo ', no cuobjdump here' || echo ', cuobjdump agrees'))" ;;
    77) note check_cuda "SKIP ($(tail -1 "$logs/check_cuda.log"))" ;;
    *) note check_cuda "FAIL: $(grep -v carries "$logs/check_cuda.log" | head -2 | tr '\n' ' ')" ;;
esac
criterion test_gpu 120 "$dir/tests/unit/test_gpu"
criterion test_gpu_stage 30 "$dir/tests/unit/test_gpu_stage"
criterion test_gpu_multi 150 "$dir/tests/test_gpu_multi"

step heat_gpu 120 "$dir/rayhpc-run" -n 2 --nodes 2 "$dir/examples/heat_gpu" 1024 256 20
rc=$?
if [ $rc -eq 0 ] && grep -q '^HEAT_GPU OK' "$logs/heat_gpu.log"; then
    note heat_gpu "PASS: $(grep -m1 '^HEAT_GPU OK' "$logs/heat_gpu.log")"
elif [ $rc -eq 0 ] && [ "$gpus" -eq 0 ] && grep -q '^heat_gpu: skipped: ' "$logs/heat_gpu.log"; then
    note heat_gpu "SKIP (no GPU: the example said so)"
else
    note heat_gpu "FAIL (exit $rc): $(tail -3 "$logs/heat_gpu.log" | tr '\n' ' ')"
fi

step perf 150 "$dir/rayhpc-perf" gpu_task_rtt gpu_put_bw gpu_get_bw gpu_ipc_bw
rc=$?
for fig in gpu_task_rtt gpu_put_bw gpu_get_bw gpu_ipc_bw; do
    line=$(grep -E "^${fig}[ /]" "$logs/perf.log" | tr '\n' ' ')
    [ -n "$line" ] || line=$(grep -m1 "^# $fig skipped" "$logs/perf.log")
    if [ $rc -ne 0 ]; then
        note "$fig" "FAIL (rayhpc-perf exit $rc): $(grep "$fig" "$logs/perf.log" | tail -1)"
    elif [ -z "$line" ]; then
        note "$fig" "FAIL: no line for it: $(tail -2 "$logs/perf.log" | tr '\n' ' ')"
    elif [[ $line == "# $fig skipped"* ]]; then
        if [ "$gpus" -gt 0 ] && [ "$fig" != gpu_ipc_bw ]; then
            note "$fig" "FAIL: skipped on a node with $gpus GPU(s): $line"
        else
            note "$fig" "SKIP (${line#\# $fig skipped: })"
        fi
    else
        note "$fig" "$line"
    fi
done

echo "gpu-node: summary (logs in $logs)"
for r in "${results[@]}"; do
    echo "  $r"
done
if [ $failed -ne 0 ]; then
    echo "gpu-node: FAILED"
    exit 1
fi
if [ "$gpus" -eq 0 ]; then
    echo "gpu-node: no GPU here: every check took its no-GPU path and passed"
    exit 77
fi
echo "gpu-node: all passed on $gpus GPU(s)"
exit 0
