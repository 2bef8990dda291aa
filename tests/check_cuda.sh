#!/bin/sh
# What a CUDA build must hand a GPU node that has only the driver:
#   - kernels as fat binaries: machine code for every code=sm_NN and PTX for
#     every code=compute_NN of NVCC_GENCODE (the PTX is what the driver of a
#     newer GPU compiles), read from each binary's .nv_fatbin section, and
#     cross-checked with cuobjdump --list-elf/--list-ptx where it is installed;
#   - the CUDA runtime linked statically: no binary needs libcudart.so, nor
#     libcuda.so (the runtime opens the driver when it is first called, so
#     that the same binaries start, and say why they skip, without one).
# Run by `make check` (RH_TEST_BUILDDIR is set there); skips (77) when the
# library was built without CUDA.
build=${RH_TEST_BUILDDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-cuda.$$
trap 'rm -f "$tmp".*' EXIT
fail=0

if ! grep -q '^#define HAVE_CUDA 1' "$build/config.h" 2>/dev/null; then
    echo "check_cuda: skipped: built without CUDA (configure --with-cuda)"
    exit 77
fi
cuda_dir=$(sed -n 's/^#define RH_CUDA_DIR "\(.*\)"$/\1/p' "$build/config.h")
gencode=$(sed -n 's/^NVCC_GENCODE = //p' "$build/Makefile")
# What each kernel binary must carry, as "ELF 80" / "PTX 90" lines.
for word in $gencode; do
    case $word in
        *code=sm_*) echo "ELF ${word##*code=sm_}" ;;
        *code=compute_*) echo "PTX ${word##*code=compute_}" ;;
    esac
done | sort -u > "$tmp.want"
if ! grep -q '^PTX' "$tmp.want"; then
    echo "check_cuda: NVCC_GENCODE ($gencode) embeds no PTX: a GPU newer" \
         "than its machine code could not load the kernels" >&2
    fail=1
fi

# The program itself, not libtool's wrapper script.
real() {
    if [ -f "$build/$(dirname "$1")/.libs/$(basename "$1")" ]; then
        echo "$build/$(dirname "$1")/.libs/$(basename "$1")"
    else
        echo "$build/$1"
    fi
}

# "ELF 80" / "PTX 90" for each image in the fat binaries of file $1: the
# section holds fat binaries one after the other, each a 16-byte header
# (magic 0xba55ed50, version, header size, size) and images, each with a
# header (kind 1 PTX / 2 ELF, header size, payload size, arch at +28).
images() {
    python3 - "$1" <<'EOF'
import struct, subprocess, sys
path = sys.argv[1]
out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True,
                     text=True).stdout
for line in out.splitlines():
    f = line.replace("[ ", "[").split()
    if len(f) > 5 and f[1] == ".nv_fatbin":
        off, size = int(f[4], 16), int(f[5], 16)
        break
else:
    sys.exit(0)
with open(path, "rb") as fh:
    fh.seek(off)
    data = fh.read(size)
pos = 0
while pos + 16 <= len(data):
    magic, _, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
    if magic != 0xBA55ED50:
        pos += 8          # padding between the fat binaries of units
        continue
    img, end = pos + hsize, pos + hsize + fsize
    while img + 32 <= end:
        kind, _, ihsize, isize = struct.unpack_from("<HHIQ", data, img)
        arch = struct.unpack_from("<I", data, img + 28)[0]
        print({1: "PTX", 2: "ELF"}.get(kind, "kind%d" % kind), arch)
        img += ihsize + isize
    pos = end
EOF
}

cuobjdump=
for c in "$cuda_dir/bin/cuobjdump" "$(command -v cuobjdump 2>/dev/null)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
        cuobjdump=$c
        break
    fi
done

for f in perf/perf_gpu_ref.o examples/heat_gpu rayhpc-perf; do
    bin=$(real "$f")
    if [ ! -f "$bin" ]; then
        echo "check_cuda: $f was not built" >&2
        fail=1
        continue
    fi
    images "$bin" | sort -u > "$tmp.have"
    missing=$(comm -23 "$tmp.want" "$tmp.have" | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "check_cuda: $f lacks $missing(it has: $(tr '\n' ' ' < "$tmp.have"))" >&2
        fail=1
    else
        echo "check_cuda: $f carries $(tr '\n' ' ' < "$tmp.have")"
    fi
    if [ -n "$cuobjdump" ]; then
        "$cuobjdump" --list-elf "$bin" 2>/dev/null |
            sed -n 's/.*[._]\(sm\|compute\)_\([0-9a-z]*\)\.cubin$/ELF \2/p' > "$tmp.cuobj"
        "$cuobjdump" --list-ptx "$bin" 2>/dev/null |
            sed -n 's/.*[._]\(sm\|compute\)_\([0-9a-z]*\)\.ptx$/PTX \2/p' >> "$tmp.cuobj"
        if ! sort -u "$tmp.cuobj" | cmp -s - "$tmp.have"; then
            echo "check_cuda: $f: cuobjdump lists $(sort -u "$tmp.cuobj" |
                 tr '\n' ' '), the section reads $(tr '\n' ' ' < "$tmp.have")" >&2
            fail=1
        fi
    fi
done
[ -n "$cuobjdump" ] || echo "check_cuda: no cuobjdump in $cuda_dir/bin or" \
    "PATH: the images were read from .nv_fatbin alone"

for f in .libs/librayhpc.so examples/heat_gpu rayhpc-perf; do
    bin=$(real "$f")
    [ -f "$bin" ] || continue
    needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
             grep -E '^lib(cudart|cuda)\.so' | tr '\n' ' ')
    if [ -n "$needed" ]; then
        echo "check_cuda: $f needs $needed: a node with only the driver" \
             "cannot start it" >&2
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "check_cuda: the CUDA runtime is linked statically" \
    "and every kernel binary carries $(tr '\n' ' ' < "$tmp.want")"
exit $fail
