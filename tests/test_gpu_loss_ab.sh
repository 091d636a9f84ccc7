#!/usr/bin/env bash
# tools/gpu_loss_ab.sh's bookkeeping, with stand-ins: two bundles whose
# flame-run writes a metrics.jsonl of 300 steps with a loss known in advance
# (A: 3.00 at every step, 3.03 with the perturbed eps; B: 3.09, and 3.06
# perturbed) and an nvidia-smi that answers. The comparisons it prints are
# then known: A against A perturbed +1.00 % in every hundred steps, B against
# B perturbed -0.97 %, A against B +3.00 %, A perturbed against B perturbed
# +0.99 %, and each run's mean per hundred steps is its loss; every run gets the job's arguments and its own eps and folder;
# GPU_LOSS_AB_LR and GPU_LOSS_AB_ARGS reach every run; a failing run is a
# FAIL line and exit 1; wrong arguments exit 2; without a GPU it says so and
# exits 0.
. "$(dirname "$0")/lib.sh"
AB="$top_srcdir/tools/gpu_loss_ab.sh"
cd "$top_srcdir" || exit 1

fake_run() { # BUNDLE LOSS LOSS_PERTURBED
    mkdir -p "$1/bin" "$1/lib"
    cat >"$1/bin/flame-run" <<SH
#!/bin/sh
echo "\$*" >> "$1/calls"
dump= eps= previous=
for arg in "\$@"; do
    case \$previous in
    --job.dump_folder) dump=\$arg ;;
    --optimizer.eps) eps=\$arg ;;
    esac
    previous=\$arg
done
loss=$2
[ "\$eps" = 1.0001e-8 ] && loss=$3
mkdir -p "\$dump"
i=1
while [ \$i -le 300 ]; do
    echo "{\"step\": \$i, \"loss\": \$loss}"
    i=\$((i + 1))
done > "\$dump/metrics.jsonl"
SH
    chmod +x "$1/bin/flame-run"
}
fake_run "$SCRATCH/A" 3.00 3.03
fake_run "$SCRATCH/B" 3.09 3.06
mkdir -p "$SCRATCH/path"
printf '#!/bin/sh\necho "GPU 0: a stand-in"\n' >"$SCRATCH/path/nvidia-smi"
chmod +x "$SCRATCH/path/nvidia-smi"

GPU_LOSS_AB_LR=2e-3 GPU_LOSS_AB_ARGS="--model.hidden_size 128 --training.steps 300" PATH="$SCRATCH/path:$PATH" \
    "$AB" "$SCRATCH/A" "$SCRATCH/B" "$SCRATCH/logs" >"$SCRATCH/out" 2>&1
status=$?
[ $status -eq 0 ] || fail "two good builds: exit $status: $(cat "$SCRATCH/out")"
# the mean difference of each pair's first hundred steps, in the order printed
means=$(grep -E '^mean B-A, steps 1-100: ' "$SCRATCH/out" | sed 's/.*: //' | tr '\n' ',')
[ "$means" = "+1.00 %,-0.97 %,+3.00 %,+0.99 %," ] || fail "the four comparisons' means: $means: $(cat "$SCRATCH/out")"
[ "$(grep -c '^mean B-A, steps 201-300: ' "$SCRATCH/out")" -eq 4 ] || fail "the last hundred steps of each pair"
runs=$(grep -E '^[AB]-1' "$SCRATCH/out" | tr '\n' ',')
[ "$runs" = "A-1e-8: 3.0000 3.0000 3.0000,A-1.0001e-8: 3.0300 3.0300 3.0300,B-1e-8: 3.0900 3.0900 3.0900,B-1.0001e-8: 3.0600 3.0600 3.0600," ] ||
    fail "each run's hundred-step means: $runs"
titles=$(grep -E '^== ' "$SCRATCH/out" | tr '\n' ',')
[ "$titles" = "== mean loss per hundred steps,== A against A perturbed,== B against B perturbed,== A against B,== A perturbed against B perturbed," ] ||
    fail "the comparisons' titles: $titles"
for side in A B; do
    [ "$(wc -l <"$SCRATCH/$side/calls")" -eq 2 ] || fail "$side ran $(wc -l <"$SCRATCH/$side/calls") times, expected 2"
    [ "$(grep -c -- '--arch gla --config configs/gla-tiny.ini --training.device cuda' "$SCRATCH/$side/calls")" -eq 2 ] ||
        fail "$side's job: $(cat "$SCRATCH/$side/calls")"
    [ "$(grep -c -- "--optimizer.lr 2e-3 --optimizer.eps 1e-8 --model.hidden_size 128 --training.steps 300 --job.dump_folder $SCRATCH/logs/$side-1e-8\$" "$SCRATCH/$side/calls")" -eq 1 ] ||
        fail "$side's first run: $(cat "$SCRATCH/$side/calls")"
    grep -q -- "--optimizer.eps 1.0001e-8 .*--job.dump_folder $SCRATCH/logs/$side-1.0001e-8\$" "$SCRATCH/$side/calls" ||
        fail "$side's perturbed run: $(cat "$SCRATCH/$side/calls")"
done
grep -q -- "--training.dataset $SCRATCH/logs/data.txt " "$SCRATCH/A/calls" || fail "the data file"
[ "$(cat README.md BENCHMARKS.md | wc -c)" -eq "$(wc -c <"$SCRATCH/logs/data.txt")" ] || fail "the data is not README + BENCHMARKS"

# the default learning rate
rm -f "$SCRATCH/A/calls"
PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" "$SCRATCH/logs1" >"$SCRATCH/out" 2>&1 ||
    fail "the default lr: exit $?"
[ "$(grep -c -- '--optimizer.lr 1e-3 ' "$SCRATCH/A/calls")" -eq 2 ] || fail "the default lr: $(cat "$SCRATCH/A/calls")"

printf '#!/bin/sh\necho "error: out of memory" >&2\nexit 1\n' >"$SCRATCH/B/bin/flame-run"
PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" "$SCRATCH/logs2" >"$SCRATCH/out" 2>&1
status=$?
[ $status -eq 1 ] || fail "a failing build: exit $status, expected 1"
grep -q '^FAIL  B eps 1e-8 (exit 1): error: out of memory$' "$SCRATCH/out" ||
    fail "a failing run's line: $(cat "$SCRATCH/out")"
grep -q '^== ' "$SCRATCH/out" && fail "compared after a failing run: $(cat "$SCRATCH/out")"

for args in "$SCRATCH/A" "$SCRATCH/A $SCRATCH/nowhere" "$SCRATCH/A $SCRATCH/B $SCRATCH/l extra"; do
    # shellcheck disable=SC2086 # the arguments are words on purpose
    refuses_words "$AB" $args
done
skips_without_gpu "$AB" "$SCRATCH/A" "$SCRATCH/A"
finish
