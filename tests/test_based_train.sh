#!/usr/bin/env bash
# The tiny Based hybrid (BaseConv, Taylor and sliding-window layers) learns on
# the CPU: on text this test writes, the mean loss of the last 20 of 300 steps
# falls below 60% of the first step's. The run prints its resolved
# configuration first (--job.print_args), the preset's values in it.
# Settings Based cannot take are refused in one line with exit 2 before training.
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "a linear attention keeps a running sum of keys and values." \
    "a sliding window sees only the last few tokens." \
    "the loss falls as the model learns the text." \
    "a short convolution sees the last few bytes."

tiny_preset_learns based-tiny "$text" "^alt_mixer_2_layers = 2  ; .*based-tiny.ini:"

# what Based refuses: each one line naming the key, exit 2, nothing trained
bad() { expect_error 2 "$1" "$FLAME_RUN" --config "$CONFIGS/based-tiny.ini" --training.dataset "$text" \
            --job.dump_folder "$SCRATCH/bad" --training.steps 1 "${@:2}"; }
bad 'alt_mixer_layers: expected layer indices from 0 to n_layer - 1 = 3' --model.alt_mixer_layers 4
bad 'alt_mixer_2_layers: layer 1 is in alt_mixer_layers too' --model.alt_mixer_2_layers 1
bad 'n_head = 3' --model.n_head 3
bad 'unknown key \[model\] hidden_size' --model.hidden_size 64
[ -e "$SCRATCH/bad/metrics.jsonl" ] && fail "a refused configuration trained"
finish
