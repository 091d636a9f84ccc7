#!/bin/sh
# The data-parallel measurements of a machine with several GPUs, in one go, from
# a bundle that tools/gpu_bundle.sh made (flame-run, flame-bench, its lib/):
#   tools/gpu_ranks.sh BUNDLE [N [LOGS]]
# run from the top of the source tree. N: the ranks (default: every GPU that
# nvidia-smi lists). Prints
#  - GLA-340M, batch 8 × 2048 a GPU: tokens/s and rank 0's peak memory on one
#    GPU and on N (flame-bench --nproc), and their ratio;
#  - the losses of N ranks of batch 2 against one rank of batch 2·N (the same
#    global batch and rows), 20 steps of gla-tiny on a small text: the
#    largest relative difference.
# Leaves NCCL_NVLS_ENABLE as the environment sets it. Exits 1 when a run failed.
set -u
[ $# -ge 1 ] || { echo "usage: $0 BUNDLE [N [LOGS]]" >&2; exit 2; }
bundle=$(cd "$1" && pwd) || exit 2
n=${2:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
logs=${3:-$(mktemp -d)}
mkdir -p "$logs"
[ -f configs/gla-340M.ini ] || { echo "$0: run it from the top of the source tree" >&2; exit 2; }
[ "$n" -ge 1 ] 2>/dev/null || { echo "$0: no GPU listed by nvidia-smi" >&2; exit 2; }
LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
FLAME_PLUGIN_PATH="$bundle/lib"
export LD_LIBRARY_PATH FLAME_PLUGIN_PATH
failed=0

# bench RANKS: "tokens/s GiB" of GLA-340M at 8 × 2048 a rank
bench() {
    timeout 500 "$bundle/bin/flame-bench" --arch gla --model.config configs/gla-340M.ini --training.batch_size 8 \
        --training.seq_len 2048 --nproc "$1" > "$logs/bench-$1.log" 2>&1 || { echo "FAIL FAIL"; return 1; }
    printf '%s %s\n' "$(sed -n 's/^tokens\/s: \([0-9.]*\).*/\1/p' "$logs/bench-$1.log")" \
        "$(sed -n 's/^peak memory: \([0-9.]*\) GiB.*/\1/p' "$logs/bench-$1.log")"
}
one=$(bench 1) || failed=1
many=$(bench "$n") || failed=1
echo "GLA-340M, 8 x 2048 a GPU: 1 GPU $one; $n GPUs $many (tokens/s, rank 0's GiB)"
echo "$one $many" | awk -v n="$n" '$1 > 0 { printf "ratio %.2f (the issue asks 1.9 at 2, 7.2 at 8); memory %.2f GiB lower\n", $3 / $1, $2 - $4 }'

# the same global batch on 1 and on N ranks
i=0
while [ $i -lt 200 ]; do echo "the fox jumps over the lazy dog. a model learns from its data."; i=$((i + 1)); done \
    > "$logs/text.txt"
train() { # DUMP BATCH RANKS
    timeout 300 "$bundle/bin/flame-run" --arch gla --config configs/gla-tiny.ini --training.dataset "$logs/text.txt" \
        --training.device cuda --training.steps 20 --training.batch_size "$2" --training.seq_len 128 \
        --checkpoint.interval 100 --job.dump_folder "$1" --nproc "$3" > "$1.log" 2>&1
}
losses() { sed -n 's/.*"step": \([0-9]*\),.*"loss": \([^,]*\),.*/\1 \2/p' "$1/metrics.jsonl"; }
if train "$logs/one" $((2 * n)) 1 && train "$logs/many" 2 "$n"; then
    losses "$logs/one" > "$logs/one.txt"
    losses "$logs/many" > "$logs/many.txt"
    join "$logs/one.txt" "$logs/many.txt" | awk -v n="$n" '
        { d = ($2 - $3) / $3; if (d < 0) d = -d; if (d > w) w = d; k++ }
        END { printf "losses, %d steps: %d ranks of batch 2 against 1 of batch %d within a relative %.2e\n", k, n, 2 * n, w }'
else
    echo "FAIL  the loss runs: $(tail -1 "$logs/one.log") $(tail -1 "$logs/many.log" 2>/dev/null)"
    failed=1
fi
echo "logs in $logs"
exit $failed
