#!/usr/bin/env bash
# Based's Hugging Face folder, as HazyResearch's GPTLMHeadModel is built from
# it: flame-convert to-hf writes config.json with the mixers' settings nested
# under mixer / alt_mixer / alt_mixer_2 with their _target_ classes (the feature
# map's input_dim beside feature_dim), the layer lists as JSON lists, and
# model_type "based"; from-hf reads that folder back into the same weights, bit
# for bit. A folder whose settings flame cannot take is refused in one line,
# exit 2: another mixer class, two names of one setting that disagree.
. "$(dirname "$0")/lib.sh"
CONVERT="$top_builddir/flame-convert"

text="$SCRATCH/text.txt"
write_sentences "$text" "the quick brown fox jumps over the lazy dog." "a short convolution sees bytes."
"$FLAME_RUN" --config "$CONFIGS/based-tiny.ini" --training.dataset "$text" --job.dump_folder "$SCRATCH/run" \
    --training.steps 2 --checkpoint.interval 2 >"$SCRATCH/log" 2>&1 || { fail "training failed"; cat "$SCRATCH/log"; finish; }
step="$SCRATCH/run/checkpoint/step-2"
"$CONVERT" to-hf --checkpoint "$step" --output "$SCRATCH/hf" >/dev/null || fail "to-hf failed"

python3 - "$SCRATCH/hf/config.json" <<'PY' || fail "config.json is not the one HazyResearch's GPT2MixerConfig takes"
import json, sys
c = json.load(open(sys.argv[1]))
mixers = "based.models.mixers."
want = {("model_type",): "based", ("architectures",): ["GPTLMHeadModel"],
        ("alt_mixer_layers",): [1], ("alt_mixer_2_layers",): [2], ("n_embd",): 64, ("n_inner",): 128,
        ("mixer", "_target_"): mixers + "convolution.BaseConv", ("mixer", "use_bias"): True,
        ("mixer", "expand_proj"): 4, ("mixer", "kernel_size"): 3, ("mixer", "l_max"): 2048,
        ("alt_mixer", "_target_"): mixers + "linear_attention.LinearAttention",
        ("alt_mixer", "feature_dim"): 16, ("alt_mixer", "num_heads"): 4,
        ("alt_mixer", "feature_map", "_target_"): mixers + "linear_attention.TaylorExp",
        ("alt_mixer", "feature_map", "input_dim"): 16,
        ("alt_mixer_2", "_target_"): mixers + "slide_attention.SlidingAttention",
        ("alt_mixer_2", "window_size"): 64, ("alt_mixer_2", "causal"): True}
bad = 0
for path, value in want.items():
    got = c
    for part in path:
        got = got.get(part) if isinstance(got, dict) else None
    if got != value:
        print(f"FAIL: {'.'.join(path)} = {got!r}, expected {value!r}", file=sys.stderr)
        bad += 1
sys.exit(bad > 0)
PY
"$CONVERT" from-hf --model "$SCRATCH/hf" --output "$SCRATCH/back" >/dev/null || fail "from-hf failed"
if cmp -s "$step/model.safetensors" "$SCRATCH/back/checkpoint/step-0/model.safetensors"; then
    echo "ok: to-hf then from-hf gives the checkpoint's weights bit for bit"
else
    fail "from-hf of the to-hf folder differs from the checkpoint"
fi

# damaged folders: config.json edited, the weights kept
edited() { mkdir -p "$SCRATCH/$1" && cp "$SCRATCH/hf/model.safetensors" "$SCRATCH/$1/" &&
           sed "$2" "$SCRATCH/hf/config.json" >"$SCRATCH/$1/config.json"; }
edited mha 's/slide_attention.SlidingAttention/mha.MHA/'
expect_error 2 'alt_mixer_2._target_ = .*only "based.models.mixers.slide_attention.SlidingAttention"' \
    "$CONVERT" from-hf --model "$SCRATCH/mha" --output "$SCRATCH/out1"
edited input_dim 's/"input_dim": 16/"input_dim": 8/'
expect_error 2 'input_dim = 8, but an earlier key gave \[model\] feature_dim = 16' \
    "$CONVERT" from-hf --model "$SCRATCH/input_dim" --output "$SCRATCH/out2"
finish
