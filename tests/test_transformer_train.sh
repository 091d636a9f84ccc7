#!/usr/bin/env bash
# The tiny transformer learns on the CPU: on text this test writes, the mean
# loss of the last 10 of 100 steps falls below 70% of the first step's.
. "$(dirname "$0")/lib.sh"

# a few sentences in a shuffled order: learnable, yet more than one string
text="$SCRATCH/text.txt"
for i in $(seq 1 400); do
    case $((i * 7 % 5)) in
        0) echo "the quick brown fox jumps over the lazy dog." ;;
        1) echo "a transformer attends to every token before it." ;;
        2) echo "rotary embeddings turn queries and keys by their position." ;;
        3) echo "the loss falls as the model learns the text." ;;
        4) echo "grouped heads share their keys and values." ;;
    esac
done >"$text"

run="$SCRATCH/run"
if ! "$FLAME_RUN" --arch transformer --config "$CONFIGS/transformer-tiny.ini" --training.dataset "$text" \
        --job.dump_folder "$run" --training.steps 100 >"$SCRATCH/log" 2>&1; then
    fail "training failed"; cat "$SCRATCH/log" >&2
else
    read -r first last10 rows < <(awk '{ match($0, /"loss": [^,]*/); l[NR] = substr($0, RSTART + 8, RLENGTH - 8) }
        END { s = 0; for (i = NR - 9; i <= NR; i++) s += l[i]; print l[1], s / 10, NR }' "$run/metrics.jsonl")
    echo "first loss $first, mean of the last 10: $last10, $rows rows"
    [ "$rows" = 100 ] || fail "expected 100 metrics rows, got $rows"
    awk -v a="$last10" -v b="$first" 'BEGIN { exit !(a < 0.7 * b) }' ||
        fail "loss did not fall below 70%: first $first, last 10 mean $last10"
fi
finish
