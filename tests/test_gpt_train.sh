#!/usr/bin/env bash
# The tiny GPT learns on the CPU: on text this test writes, the mean loss of
# the last 20 of 300 steps falls below 60% of the first step's.
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "a small language model learns its text by heart." \
    "layer norms with biases keep every row centred." \
    "the position table gives each token its place." \
    "gelu bends the product before the second one."

run="$SCRATCH/run"
if ! "$FLAME_RUN" --arch gpt --config "$CONFIGS/gpt-tiny.ini" --training.dataset "$text" \
        --job.dump_folder "$run" --training.steps 300 >"$SCRATCH/log" 2>&1; then
    fail "training failed"; cat "$SCRATCH/log" >&2
else
    read -r first last20 rows < <(loss_summary "$run/metrics.jsonl" 20)
    echo "first loss $first, mean of the last 20: $last20, $rows rows"
    [ "$rows" = 300 ] || fail "expected 300 metrics rows, got $rows"
    awk -v a="$last20" -v b="$first" 'BEGIN { exit !(a < 0.6 * b) }' ||
        fail "loss did not fall below 60%: first $first, last 20 mean $last20"
fi
finish
