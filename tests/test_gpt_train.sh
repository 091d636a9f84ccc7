#!/usr/bin/env bash
# The tiny GPT learns on the CPU: on text this test writes, the mean loss of
# the last 20 of 300 steps falls below 60% of the first step's (the preset
# names its architecture: no --arch).
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "a small language model learns its text by heart." \
    "layer norms with biases keep every row centred." \
    "the position table gives each token its place." \
    "gelu bends the product before the second one."

tiny_preset_learns gpt-tiny "$text" "^n_positions = 128  ; .*gpt-tiny.ini:"
finish
