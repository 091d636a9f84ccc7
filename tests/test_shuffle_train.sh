#!/usr/bin/env bash
# The shuffled data order end to end, on three .jsonl files written here:
#  - flame-data pack with a seed gives the same shard twice, another seed and
#    the files' order (--shuffle false) other shards of the same tokens;
#  - a shuffled run resumed from its step-8 checkpoint ends with the
#    uninterrupted run's metrics (timings aside), weights and optimizer state,
#    bit for bit, its data cursor inside a shuffled block;
#  - the same with two of the files mixed by training.data_probs 0.7,0.3, the
#    second source's epochs counted in metrics.jsonl; its checkpoint is refused
#    by a run that does not mix.
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
    local dump=$1; shift
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
        --job.dump_folder "$dump" --training.steps 24 --training.batch_size 2 --training.seq_len 64 \
        --training.shuffle_buffer 32 --checkpoint.interval 8 --lr_scheduler.warmup_steps 4 \
        --training.num_workers 1 "$@" >"$SCRATCH/log" 2>&1 || { fail "training $dump failed"; cat "$SCRATCH/log"; }
}
metrics() { sed -E 's/, "(tokens_per_s|mfu|mem_gib)": [^,}]*//g' "$1"; }

# resumed NAME [ARG...]: trains NAME whole, then again from its step-8 checkpoint
resumed() {
    local name=$1; shift
    train "$SCRATCH/$name" "$@"
    cp -r "$SCRATCH/$name" "$SCRATCH/$name-resumed"
    rm -rf "$SCRATCH/$name-resumed/checkpoint/step-16" "$SCRATCH/$name-resumed/checkpoint/step-24"
    train "$SCRATCH/$name-resumed" "$@"
    grep -q "resuming from .*step-8" "$SCRATCH/log" || fail "$name: the second run did not resume from step-8"
    cmp -s <(metrics "$SCRATCH/$name/metrics.jsonl") <(metrics "$SCRATCH/$name-resumed/metrics.jsonl") &&
        echo "ok: $name: metrics.jsonl equal to the uninterrupted run's" || fail "$name: metrics differ after the resume"
    for f in model optimizer; do
        cmp -s "$SCRATCH/$name/checkpoint/step-24/$f.safetensors" "$SCRATCH/$name-resumed/checkpoint/step-24/$f.safetensors" &&
            echo "ok: $name: step-24/$f.safetensors bit for bit" || fail "$name: step-24/$f.safetensors differs"
    done
}

resumed whole
index=$(sed -n 's/.*"index": \([0-9]*\).*/\1/p' "$SCRATCH/whole/checkpoint/step-8/trainer.json")
[ -n "$index" ] && [ "$index" -gt 0 ] && echo "ok: the step-8 cursor is document $index of a shuffled block" ||
    fail "the step-8 cursor is not inside a block (index '$index')"

# the second source is 4 documents of about 60 tokens: it gives about 0.3 of the
# 48 x 65 tokens read, so it runs out several times
head -4 "$SCRATCH/part-1.jsonl" >"$SCRATCH/small.jsonl"
data="$SCRATCH/part-0.jsonl,$SCRATCH/small.jsonl"
resumed mixed --training.data_probs 0.7,0.3
last=$(tail -1 "$SCRATCH/mixed/metrics.jsonl")
epochs=$(echo "$last" | sed -n 's/.*"data_epochs": \[0, \([0-9]*\)\].*/\1/p')
[ -n "$epochs" ] && [ "$epochs" -ge 2 ] && echo "ok: the small source started over: $epochs epochs" ||
    fail "metrics.jsonl does not count the small source's epochs: $last"
rm -rf "$SCRATCH/mixed/checkpoint/step-16" "$SCRATCH/mixed/checkpoint/step-24"
expect_error 3 "data cursor: saved for mixed text \(training.data_probs\), but dataset .* is text" \
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
    --job.dump_folder "$SCRATCH/mixed" --training.steps 24 --training.batch_size 2 --training.seq_len 64
expect_error 2 "training.data_probs gives 3 probabilities, but training.dataset has 2" \
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
    --training.data_probs 1,2,3 --job.dump_folder "$SCRATCH/bad" --training.steps 2
expect_error 2 "\[training\] data_probs = \"0.7,x\": expected" \
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
    --training.data_probs 0.7,x --job.dump_folder "$SCRATCH/bad" --training.steps 2
finish
