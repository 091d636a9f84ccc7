#!/usr/bin/env bash
# The shuffled data order end to end, on three .jsonl files written here:
#  - flame-data pack with a seed gives the same shard twice, another seed and
#    the files' order (--shuffle false) other shards of the same tokens;
#  - a shuffled run resumed from its step-8 checkpoint ends with the
#    uninterrupted run's metrics (timings aside), weights and optimizer state,
#    bit for bit, its data cursor inside a shuffled block.
. "$(dirname "$0")/lib.sh"
PACK="$top_builddir/flame-data"

words=(the quick brown fox jumps over a lazy dog while flame reads shuffled lines again)
RANDOM=7
for f in 0 1 2; do
    for d in $(seq 150); do
        line="file $f doc $d:"
        for j in $(seq 8); do line+=" ${words[RANDOM % ${#words[@]}]}"; done
        echo "{\"text\": \"$line\"}"
    done >"$SCRATCH/part-$f.jsonl"
done
data="$SCRATCH/part-0.jsonl,$SCRATCH/part-1.jsonl,$SCRATCH/part-2.jsonl"

pack() { "$PACK" pack --dataset "$data" --output "$SCRATCH/$1.flametok" "${@:2}" >/dev/null || fail "pack $1 failed"; }
pack a --seed 1
pack b --seed 1
pack c --seed 2
pack files --shuffle false
cmp -s "$SCRATCH/a.flametok" "$SCRATCH/b.flametok" && echo "ok: the same seed packs the same shard" ||
    fail "seed 1 packed two different shards"
for other in c files; do
    if cmp -s "$SCRATCH/a.flametok" "$SCRATCH/$other.flametok"; then fail "seed 1 and $other packed the same shard"; fi
    [ "$(stat -c %s "$SCRATCH/a.flametok")" = "$(stat -c %s "$SCRATCH/$other.flametok")" ] ||
        fail "$other's shard is not the same tokens in another order (sizes differ)"
done
echo "ok: another seed and the files' order give other orders of the same tokens"

train() {
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
        --job.dump_folder "$1" --training.steps 24 --training.batch_size 2 --training.seq_len 64 \
        --training.shuffle_buffer 32 --checkpoint.interval 8 --lr_scheduler.warmup_steps 4 \
        --training.num_workers 1 >"$SCRATCH/log" 2>&1 || { fail "training $1 failed"; cat "$SCRATCH/log"; }
}
train "$SCRATCH/whole"
cp -r "$SCRATCH/whole" "$SCRATCH/resumed"
rm -rf "$SCRATCH/resumed/checkpoint/step-16" "$SCRATCH/resumed/checkpoint/step-24"
index=$(sed -n 's/.*"index": \([0-9]*\).*/\1/p' "$SCRATCH/resumed/checkpoint/step-8/trainer.json")
[ -n "$index" ] && [ "$index" -gt 0 ] && echo "ok: the step-8 cursor is document $index of a shuffled block" ||
    fail "the step-8 cursor is not inside a block (index '$index')"
train "$SCRATCH/resumed"
grep -q "resuming from .*step-8" "$SCRATCH/log" || fail "the second run did not resume from step-8"
metrics() { sed -E 's/, "(tokens_per_s|mfu|mem_gib)": [^,}]*//g' "$1"; }
cmp -s <(metrics "$SCRATCH/whole/metrics.jsonl") <(metrics "$SCRATCH/resumed/metrics.jsonl") &&
    echo "ok: metrics.jsonl equal to the uninterrupted run's" || fail "metrics differ after the resume"
for f in model optimizer; do
    cmp -s "$SCRATCH/whole/checkpoint/step-24/$f.safetensors" "$SCRATCH/resumed/checkpoint/step-24/$f.safetensors" &&
        echo "ok: step-24/$f.safetensors bit for bit" || fail "step-24/$f.safetensors differs"
done
finish
