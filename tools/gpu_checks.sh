#!/bin/sh
# Every CUDA test and the 340M training benchmarks, in one go on a GPU machine,
# from a bundle that tools/gpu_bundle.sh made (its bin/ with the test_*_cuda
# programs, test_comm when bundled (the collectives: one NCCL rank), and
# flame-bench, its lib/ with libflame and the plugins' .so files):
#   tools/gpu_checks.sh BUNDLE [LOGS]
# run from the top of the source tree (the configs are read from there).
# Each program's output goes to LOGS/NAME.log (default: a temporary folder); a
# line per program says how it ended, the benchmarks' tokens/s and memory
# follow. Exits 1 when a test failed or a program could not run, 0 otherwise
# (a test that skips, exit 77, says why in its log).
set -u
[ $# -ge 1 ] || { echo "usage: $0 BUNDLE [LOGS]" >&2; exit 2; }
bundle=$(cd "$1" && pwd) || exit 2
logs=${2:-$(mktemp -d)}
mkdir -p "$logs"
[ -f configs/gla-340M.ini ] || { echo "$0: run it from the top of the source tree" >&2; exit 2; }
LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
FLAME_PLUGIN_PATH="$bundle/lib"
export LD_LIBRARY_PATH FLAME_PLUGIN_PATH

failed=0
for test in "$bundle"/bin/test_*_cuda "$bundle"/bin/test_comm; do
    [ -x "$test" ] || continue
    name=$(basename "$test")
    start=$(date +%s)
    timeout 600 "$test" > "$logs/$name.log" 2>&1
    status=$?
    took=$(( $(date +%s) - start ))
    case $status in
    0) echo "ok    $name ($took s)" ;;
    77) echo "skip  $name: $(tail -1 "$logs/$name.log")" ;;
    *) echo "FAIL  $name (exit $status, $took s): $(grep -m 3 FAIL "$logs/$name.log" | tr '\n' ' ')"
       failed=1 ;;
    esac
done

if ! nvidia-smi -L > /dev/null 2>&1; then
    echo "skip  the benchmarks: no GPU here (nvidia-smi -L fails)"
    echo "logs in $logs"
    exit $failed
fi
for arch in gla transformer; do
    if [ ! -x "$bundle/bin/flame-bench" ]; then
        echo "FAIL  flame-bench: not in $bundle/bin"
        failed=1
        break
    fi
    timeout 300 "$bundle/bin/flame-bench" --arch "$arch" --model.config "configs/$arch-340M.ini" \
        --training.batch_size 8 --training.seq_len 2048 > "$logs/bench-$arch.log" 2>&1
    status=$?
    if [ $status -eq 0 ]; then
        echo "bench $arch-340M: $(grep -E '^(tokens/s|peak memory)' "$logs/bench-$arch.log" | tr '\n' ' ')"
    else
        echo "FAIL  flame-bench $arch (exit $status): $(tail -1 "$logs/bench-$arch.log")"
        failed=1
    fi
done
echo "logs in $logs"
exit $failed
