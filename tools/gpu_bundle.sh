#!/bin/sh
# Packs built programs to run on a machine that has the NVIDIA driver and the
# CUDA toolkit but none of flame's other libraries (the lent GPU machine):
#   DIR/bin  the real binaries (from .libs/, not the libtool wrapper scripts)
#   DIR/lib  libflame and every shared library they load, except glibc, the
#            GCC runtime, CUDA's own and libxml2 with ICU (libarchive's; ICU's
#            data alone is 30 MB), which that machine has
# Everything is stripped of its symbols: the device tool carries at most 64 MiB.
# Usage, from the top of a built tree:  tools/gpu_bundle.sh DIR PROGRAM...
# Then there:  LD_LIBRARY_PATH=DIR/lib:/usr/local/cuda/lib64 DIR/bin/PROGRAM
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR PROGRAM..." >&2; exit 2; }
dir=$1
shift
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/lib"

# the binary libtool built for PROGRAM (PROGRAM itself when it is no wrapper)
real_binary() {
    libs="$(dirname "$1")/.libs/$(basename "$1")"
    if [ -x "$libs" ]; then echo "$libs"; else echo "$1"; fi
}

# "soname path" of each library the binary loads, libflame found in the build tree
libraries_of() {
    LD_LIBRARY_PATH="$PWD/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$1" |
        awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
}

for program in "$@"; do
    binary=$(real_binary "$program")
    cp "$binary" "$dir/bin/"
    libraries_of "$binary" | while read -r soname path; do
        case $soname in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) ;;
        libstdc++.so.* | libgcc_s.so.*) ;;
        libcuda.so.* | libcudart.so.* | libcublas*.so.* | libnccl.so.* | libnvidia*) ;;
        libxml2.so.* | libicu*.so.*) ;;
        *) cp -L "$path" "$dir/lib/$soname" ;;
        esac
    done
done
strip "$dir"/bin/* "$dir"/lib/*
echo "$dir: $# programs and their libraries, $(du -sh "$dir" | cut -f1)"
