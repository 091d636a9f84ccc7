#!/usr/bin/env bash
# The tiny GSA learns on the CPU: on text this test writes, the mean loss of the
# last 20 of 300 steps falls below 60% of the first step's. The run prints its
# resolved configuration first (--job.print_args), the preset's values in it.
# Settings GSA cannot take are refused in one line with exit 2 before training.
. "$(dirname "$0")/lib.sh"

text="$SCRATCH/text.txt"
write_sentences "$text" \
    "the quick brown fox jumps over the lazy dog." \
    "gated slots keep a bounded memory of the past." \
    "each slot forgets at its own rate." \
    "the loss falls as the model learns the text." \
    "a softmax over the slots reads the memory."

tiny_preset_learns gsa-tiny "$text" "^num_slots = 8  ; .*gsa-tiny.ini:"

# what GSA refuses: each one line naming the key, exit 2, nothing trained
bad() { expect_error 2 "$1" "$FLAME_RUN" --config "$CONFIGS/gsa-tiny.ini" --training.dataset "$text" \
            --job.dump_folder "$SCRATCH/bad" --training.steps 1 "${@:2}"; }
bad 'num_slots' --model.num_slots 0
bad 'feature_map = relu' --model.feature_map relu
bad 'num_kv_heads' --model.num_kv_heads 1
bad 'expand_v = 1' --model.expand_v 0.5 --model.elementwise_affine true
bad 'unknown key \[model\] num_slot' --model.num_slot 8
[ -e "$SCRATCH/bad/metrics.jsonl" ] && fail "a refused configuration trained"
finish
