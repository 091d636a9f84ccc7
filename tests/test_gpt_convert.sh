#!/usr/bin/env bash
# GPT-2's Hugging Face layout through flame-convert, on the tiny GPT:
#  - to-hf --format gpt2 writes GPT2LMHeadModel's folder: model_type gpt2,
#    vocab_size the padded embedding's 264 rows, null token ids (--tokenizer
#    none), tensors under GPT-2's names,
#    its Conv1D weights [in, out]: read by the safetensors library, c_attn's
#    weight is flame's Wqkv transposed and the biases and norms are flame's
#    (when safetensors and numpy are installed);
#  - from-hf of that folder gives back the checkpoint bit for bit (float32);
#  - a rotary model is refused for gpt2 (it has no rotary), an unknown
#    --format is refused naming the formats, a gpt2 folder whose weights file
#    is cut short, or whose c_attn weight has another shape, is refused as
#    damaged, and one whose config asks for rotary is refused: exit 2, 2, 3, 3
#    and 2, one line each.
. "$(dirname "$0")/lib.sh"
CONVERT="$top_builddir/flame-convert"
DUMP="$top_builddir/tests/safetensors_tool"

write_sentences "$SCRATCH/text.txt" "the fox jumps over the dog." "a small model learns."
run() {
    "$FLAME_RUN" --arch gpt --config "$CONFIGS/gpt-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
        --training.steps 2 --training.batch_size 2 --training.seq_len 32 --checkpoint.interval 2 "$@"
}
run --job.dump_folder "$SCRATCH/run" >"$SCRATCH/log" 2>&1 || { fail "training failed"; cat "$SCRATCH/log"; finish; }
step="$SCRATCH/run/checkpoint/step-2"
"$CONVERT" to-hf --checkpoint "$step" --output "$SCRATCH/hf" --format gpt2 --tokenizer none >"$SCRATCH/log" 2>&1 ||
    { fail "to-hf --format gpt2 failed"; cat "$SCRATCH/log"; finish; }

python3 - "$SCRATCH/hf/config.json" <<'PY' || fail "config.json is not GPT-2's"
import json, sys
c = json.load(open(sys.argv[1]))
ok = (c["model_type"], c["architectures"], c["vocab_size"], c["n_embd"], c["n_layer"]) == \
    ("gpt2", ["GPT2LMHeadModel"], 264, 64, 2)
ok &= c["bos_token_id"] is None and c["eos_token_id"] is None  # --tokenizer none: not GPT-2's 50256
print(f"{'ok' if ok else 'FAIL'}: config.json {c['model_type']} {c['architectures']} vocab {c['vocab_size']}")
sys.exit(0 if ok else 1)
PY
"$DUMP" dump "$SCRATCH/hf/model.safetensors" >"$SCRATCH/hf.dump"
grep -q '^tensor transformer.h.0.attn.c_attn.weight F32 \[64,192\] ' "$SCRATCH/hf.dump" &&
    grep -q '^tensor transformer.h.1.mlp.c_proj.weight F32 \[256,64\] ' "$SCRATCH/hf.dump" &&
    grep -q '^tensor transformer.wpe.weight F32 \[128,64\] ' "$SCRATCH/hf.dump" &&
    ! grep -q 'layers\|lm_head' "$SCRATCH/hf.dump" && echo "ok: GPT-2's names, Conv1D weights [in, out]" ||
    fail "the folder's tensors are not GPT-2's: $(grep -c . "$SCRATCH/hf.dump") lines"
if python3 -c "import safetensors, numpy" 2>/dev/null; then
    python3 - "$step/model.safetensors" "$SCRATCH/hf/model.safetensors" <<'PY' || fail "a tensor is not flame's as GPT-2 lays it out"
import sys
from safetensors.numpy import load_file
flame, hf = load_file(sys.argv[1]), load_file(sys.argv[2])
pairs = [("transformer.layers.0.mixer.Wqkv.weight", "transformer.h.0.attn.c_attn.weight", True),
         ("transformer.layers.1.mlp.fc2.weight", "transformer.h.1.mlp.c_proj.weight", True),
         ("transformer.layers.0.mixer.Wqkv.bias", "transformer.h.0.attn.c_attn.bias", False),
         ("transformer.layers.1.norm2.weight", "transformer.h.1.ln_2.weight", False),
         ("transformer.embeddings.word_embeddings.weight", "transformer.wte.weight", False)]
ok = all(((flame[a].T if t else flame[a]) == hf[b]).all() for a, b, t in pairs) and len(flame) == len(hf)
print(f"{'ok' if ok else 'FAIL'}: safetensors reads c_attn as Wqkv transposed ({len(hf)} tensors)")
sys.exit(0 if ok else 1)
PY
else
    echo "skip: the safetensors library comparison (python3 safetensors and numpy not installed)"
fi

"$CONVERT" from-hf --model "$SCRATCH/hf" --output "$SCRATCH/back" >"$SCRATCH/log" 2>&1 ||
    { fail "from-hf of the gpt2 folder failed"; cat "$SCRATCH/log"; finish; }
"$DUMP" dump "$step/model.safetensors" | sort >"$SCRATCH/a"
"$DUMP" dump "$SCRATCH/back/checkpoint/step-0/model.safetensors" | sort >"$SCRATCH/b"
cmp -s "$SCRATCH/a" "$SCRATCH/b" && echo "ok: from-hf gives back every tensor bit for bit ($(grep -c . "$SCRATCH/a") tensors)" ||
    fail "the round trip changed tensors: $(diff "$SCRATCH/a" "$SCRATCH/b" | head -3)"

run --job.dump_folder "$SCRATCH/rotary" --model.n_positions 0 --model.rotary_emb_fraction 0.5 >"$SCRATCH/log" 2>&1 ||
    { fail "the rotary run failed"; cat "$SCRATCH/log"; }
expect_error 2 'format gpt2 cannot hold \[model\] rotary_emb_fraction = 0.5' \
    "$CONVERT" to-hf --checkpoint "$SCRATCH/rotary/checkpoint/step-2" --output "$SCRATCH/hf2" --format gpt2
expect_error 2 '--format llama: plugin gpt writes gpt, gpt2' \
    "$CONVERT" to-hf --checkpoint "$step" --output "$SCRATCH/hf3" --format llama
# the weights cut short
mkdir -p "$SCRATCH/short"
cp "$SCRATCH/hf/config.json" "$SCRATCH/short/"
size=$(wc -c <"$SCRATCH/hf/model.safetensors")
head -c $((size - 1000)) "$SCRATCH/hf/model.safetensors" >"$SCRATCH/short/model.safetensors"
expect_error 3 'model.safetensors' "$CONVERT" from-hf --model "$SCRATCH/short" --output "$SCRATCH/short-out"
# a config GPT-2 cannot be: rotary
mkdir -p "$SCRATCH/rot"
cp "$SCRATCH/hf/model.safetensors" "$SCRATCH/rot/"
sed 's/"rotary_emb_fraction": 0,/"rotary_emb_fraction": 0.5,/' "$SCRATCH/hf/config.json" >"$SCRATCH/rot/config.json"
expect_error 2 'rotary_emb_fraction = 0.5: only 0 is supported' \
    "$CONVERT" from-hf --model "$SCRATCH/rot" --output "$SCRATCH/rot-out"
# c_attn's weight as flame stores it ([192, 64]), not as GPT-2 does
mkdir -p "$SCRATCH/bad"
cp "$SCRATCH/hf/config.json" "$SCRATCH/bad/"
python3 - "$SCRATCH/hf/model.safetensors" "$SCRATCH/bad/model.safetensors" <<'PY' 2>/dev/null &&
import sys
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
t["transformer.h.0.attn.c_attn.weight"] = t["transformer.h.0.attn.c_attn.weight"].T.copy()
save_file(t, sys.argv[2], metadata={"format": "pt"})
PY
    expect_error 3 'transformer.layers.0.mixer.Wqkv.weight.*shape differs' \
        "$CONVERT" from-hf --model "$SCRATCH/bad" --output "$SCRATCH/bad-out" ||
    echo "skip: the damaged folder (python3 safetensors not installed)"
finish
