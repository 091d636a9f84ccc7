#!/usr/bin/env bash
# make fuzz: builds each harness named on the command line (tests/fuzz/fuzz_NAME.c)
# with clang's libFuzzer, ASan and UBSan against libflame's C (and C++) sources, then runs
# it for FUZZ_SECONDS over its corpus (tests/fuzz/build/NAME/corpus in the
# build folder, kept between runs) and its seeds (tests/fuzz/NAME/seeds). One line per harness,
# "FUZZ PASS: NAME ..." or "FUZZ FAIL: NAME ..."; exits 1 on any failure.
# From Makefile.am: srcdir, FUZZ_CC, FUZZ_SECONDS, FUZZ_SRCS (the library's
# sources), FUZZ_CPPFLAGS, FUZZ_LIBS.
set -u
: "${FUZZ_CC:=clang}" "${FUZZ_CXX:=clang++}" "${FUZZ_SECONDS:=60}" "${FUZZ_JOBS:=2}"
out=tests/fuzz/build
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=gnu11 -g -O1 -fno-omit-frame-pointer $san $FUZZ_CPPFLAGS -I$srcdir/tests/fuzz -I$srcdir/tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

fail_all() { for h; do echo "FUZZ FAIL: $h (not built: $why)"; done; exit 1; }
mkdir -p "$out/obj"
why="$FUZZ_CC cannot build a libFuzzer program (install clang and libclang-rt-dev)"
echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return d && n; }' >"$out/probe.c"
$FUZZ_CC -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>"$out/probe.log" ||
    { cat "$out/probe.log"; fail_all "$@"; }

# the library, instrumented: rebuilt when its flags change or a source or header is newer
lib="$out/libflame-fuzz.a"
if [ ! -f "$lib" ] || [ "$(cat "$out/flags" 2>/dev/null)" != "$FUZZ_CC $cflags" ] || [ -n "$(find "$srcdir/core" "$srcdir/kernels" "$srcdir/include" -newer "$lib" -print -quit)" ]; then
    echo "  CC       libflame sources (fuzz)"
    rm -f "$out"/obj/*.o "$lib"
    compile() {
        local o; o=$(echo "$1" | tr / _)
        case "$1" in
        *.cc) $FUZZ_CXX ${cflags/-std=gnu11/-std=c++17} -fsanitize=fuzzer-no-link -c "$srcdir/$1" -o "$out/obj/${o%.cc}.o" ;;
        *) $FUZZ_CC $cflags -fsanitize=fuzzer-no-link -c "$srcdir/$1" -o "$out/obj/${o%.c}.o" ;;
        esac
    }
    export -f compile; export FUZZ_CC FUZZ_CXX cflags srcdir out
    printf '%s\n' $FUZZ_SRCS | grep -E '\.(c|cc)$' | xargs -P "$FUZZ_JOBS" -n 1 bash -c 'compile "$1"' _ ||
        { why="the library did not compile"; fail_all "$@"; }
    ar rcs "$lib" "$out"/obj/*.o
    echo "$FUZZ_CC $cflags" >"$out/flags"
fi

failed=0
for h; do
    dir="$out/$h"
    mkdir -p "$dir/corpus" "$dir/findings"
    echo "  CCLD     $dir/fuzz_$h"
    # linked by the C++ driver: the library holds C++ (the TOML reader) and its sanitizer runtime
    if ! { $FUZZ_CC $cflags -fsanitize=fuzzer-no-link -c "$srcdir/tests/fuzz/fuzz_$h.c" -o "$dir/fuzz_$h.o" &&
           $FUZZ_CXX $san -fsanitize=fuzzer "$dir/fuzz_$h.o" "$lib" $FUZZ_LIBS -o "$dir/fuzz_$h"; }; then
        echo "FUZZ FAIL: $h (did not build)"; failed=1; continue
    fi
    # the harnesses' temporary files (fuzz_file.h's folder, helper scripts) go in a
    # folder of this run's, removed after it (the harnesses keep theirs for the process's life)
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/flame-fuzz-run.XXXXXX")
    TMPDIR="$scratch" "$dir/fuzz_$h" -max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/findings/" \
        "$dir/corpus" "$srcdir/tests/fuzz/$h/seeds" >"$dir/log" 2>&1
    rc=$?
    rm -rf "$scratch"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    size=$(ls "$dir/corpus" | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "FUZZ PASS: $h (${runs:-?} runs in ${FUZZ_SECONDS} s, corpus $size inputs)"
    else
        failed=1
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$dir/log" | head -n 20
        echo "FUZZ FAIL: $h (exit $rc after ${runs:-?} runs; log $dir/log;" \
            "reproduce: $dir/fuzz_$h $(ls -t "$dir"/findings/* 2>/dev/null | head -n 1))"
    fi
done
exit $failed
