#!/usr/bin/env bash
# The tiny Mamba2 learns on the CPU: on text this test writes, the mean loss of the
# last 20 of 300 steps falls below 60% of the first step's. The run prints its
# resolved configuration first (--job.print_args), the preset's values in it.
# Settings Mamba2 cannot take are refused in one line with exit 2 before training.
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "a state space model keeps a bounded memory of the past." \
    "each head forgets at its own rate." \
    "the loss falls as the model learns the text." \
    "a short convolution sees the last few bytes."

tiny_preset_learns mamba2-tiny "$text" "^state_size = 16  ; .*mamba2-tiny.ini:"

# what Mamba2 refuses: each one line naming the key, exit 2, nothing trained
bad() { expect_error 2 "$1" "$FLAME_RUN" --config "$CONFIGS/mamba2-tiny.ini" --training.dataset "$text" \
            --job.dump_folder "$SCRATCH/bad" --training.steps 1 "${@:2}"; }
bad 'state_size' --model.state_size 0
bad 'use_bias' --model.use_bias true
bad 'n_groups = 3' --model.n_groups 3
bad 'head_dim = 24' --model.head_dim 24
bad 'unknown key \[model\] state_sizes' --model.state_sizes 8
[ -e "$SCRATCH/bad/metrics.jsonl" ] && fail "a refused configuration trained"
finish
