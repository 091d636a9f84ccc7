#!/usr/bin/env bash
# The tiny transformer learns on the CPU: on text this test writes, the mean
# loss of the last 10 of 100 steps falls below 70% of the first step's.
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "a transformer attends to every token before it." \
    "rotary embeddings turn queries and keys by their position." \
    "the loss falls as the model learns the text." \
    "grouped heads share their keys and values."

run="$SCRATCH/run"
if ! "$FLAME_RUN" --arch transformer --config "$CONFIGS/transformer-tiny.ini" --training.dataset "$text" \
        --job.dump_folder "$run" --training.steps 100 >"$SCRATCH/log" 2>&1; then
    fail "training failed"; cat "$SCRATCH/log" >&2
else
    read -r first last10 rows < <(loss_summary "$run/metrics.jsonl" 10)
    echo "first loss $first, mean of the last 10: $last10, $rows rows"
    [ "$rows" = 100 ] || fail "expected 100 metrics rows, got $rows"
    awk -v a="$last10" -v b="$first" 'BEGIN { exit !(a < 0.7 * b) }' ||
        fail "loss did not fall below 70%: first $first, last 10 mean $last10"
fi
finish
