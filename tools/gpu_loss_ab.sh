#!/bin/sh
# Two builds' training loss side by side on one GPU machine, in one call: the
# tiny GLA job (configs/gla-tiny.ini, 300 steps, byte tokens) trained on the
# GPU by each build's flame-run twice, AdamW's eps 1e-8 and 1.0001e-8 (a
# change in the last bits), so that what a build's own runs do when they part
# stands beside what the two builds do:
#   tools/gpu_loss_ab.sh BUNDLE_A BUNDLE_B [LOGS]
# Each BUNDLE is what tools/gpu_bundle.sh made (bin/flame-run, lib/ with
# libflame and the plugins' .so files). Run it from the top of the source
# tree. The data is README.md and BENCHMARKS.md. GPU_LOSS_AB_LR sets the
# learning rate (1e-3 by default: at the config's 3e-3 GLA's runs part by a
# few percent on any backend, see BENCHMARKS.md); GPU_LOSS_AB_ARGS adds
# flame-run arguments to every run (a larger model, say).
# Prints tests/loss_curves.py's comparison of A with A perturbed, B with B
# perturbed, A with B and A perturbed with B perturbed (the largest step's
# difference, steps over 1 % and 2 %, and the mean per hundred steps), after
# each run's own mean loss per hundred steps; exits
# 1 when a run fails, 2 on bad arguments, 0 with a line saying so without a GPU.
set -u
usage() { echo "usage: $0 BUNDLE_A BUNDLE_B [LOGS]" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
for bundle in "$1" "$2"; do
    [ -x "$bundle/bin/flame-run" ] || { echo "$0: no bin/flame-run in $bundle" >&2; exit 2; }
done
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
logs=${3:-$(mktemp -d)}
mkdir -p "$logs"
[ -f configs/gla-tiny.ini ] || { echo "$0: run it from the top of the source tree" >&2; exit 2; }
if ! nvidia-smi -L > /dev/null 2>&1; then
    echo "skip: no GPU here (nvidia-smi -L fails)"
    exit 0
fi

cat README.md BENCHMARKS.md > "$logs/data.txt"
failed=0
for side in A B; do
    if [ $side = A ]; then bundle=$a; else bundle=$b; fi
    for eps in 1e-8 1.0001e-8; do
        run="$logs/$side-$eps"
        rm -rf "$run"
        # shellcheck disable=SC2086 # GPU_LOSS_AB_ARGS is words on purpose
        LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64" FLAME_PLUGIN_PATH="$bundle/lib" \
            timeout 600 "$bundle/bin/flame-run" --arch gla --config configs/gla-tiny.ini \
            --training.device cuda --training.dataset "$logs/data.txt" \
            --optimizer.lr "${GPU_LOSS_AB_LR:-1e-3}" --optimizer.eps "$eps" \
            ${GPU_LOSS_AB_ARGS:-} --job.dump_folder "$run" > "$run.log" 2>&1
        status=$?
        if [ $status -ne 0 ] || [ ! -s "$run/metrics.jsonl" ]; then
            echo "FAIL  $side eps $eps (exit $status): $(tail -1 "$run.log")"
            failed=1
        fi
    done
done
[ $failed -eq 0 ] || exit 1

compare() { # TITLE RUN RUN
    echo "== $1"
    python3 tests/loss_curves.py compare "$logs/$2/metrics.jsonl" "$logs/$3/metrics.jsonl"
}
echo "== mean loss per hundred steps"
for run in A-1e-8 A-1.0001e-8 B-1e-8 B-1.0001e-8; do
    echo "$run: $(python3 tests/loss_curves.py means "$logs/$run/metrics.jsonl")"
done
compare "A against A perturbed" A-1e-8 A-1.0001e-8
compare "B against B perturbed" B-1e-8 B-1.0001e-8
compare "A against B" A-1e-8 B-1e-8
compare "A perturbed against B perturbed" A-1.0001e-8 B-1.0001e-8
echo "logs in $logs"
