#!/usr/bin/env bash
# A plugin that initializes a parameter itself (FLAME_INIT_PLUGIN, init_values):
# flame-run and flame-convert draw the same values from the same seed, values
# the plugin's rule allows; a plugin whose values are not finite, or that
# declares the rule without the function, is refused with exit status 4.
. "$(dirname "$0")/lib.sh"

data="$SCRATCH/data.txt"
echo "A little text, long enough for a few batches of eight bytes." >"$data"
build_bigram "$SCRATCH/own.so" -DBIGRAM_OWN_INIT=1 || finish
build_bigram "$SCRATCH/nan.so" -DBIGRAM_OWN_INIT=2 || finish
build_bigram "$SCRATCH/missing.so" -DBIGRAM_OWN_INIT=3 || finish

# the table's values of a safetensors file, one per line (fp32, little-endian)
table_values() {
    python3 - "$1" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    size = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(size))
    base = 8 + size
    t = header["model.bigram.weight"]
    assert t["dtype"] == "F32", t["dtype"]
    begin, end = t["data_offsets"]
    f.seek(base + begin)
    raw = f.read(end - begin)
for (v,) in struct.iter_unpack("<f", raw):
    print(repr(v))
PY
}

# learning rate 0: the checkpoint after one step holds the initial values
train() { # SO DUMP
    "$FLAME_RUN" --arch "$1" --training.dataset "$data" --job.dump_folder "$2" --training.seed 7 \
        --training.batch_size 1 --training.seq_len 8 --training.steps 1 --optimizer.lr 0 \
        --checkpoint.interval 1
}
if train "$SCRATCH/own.so" "$SCRATCH/run" >"$SCRATCH/run.out" 2>&1; then
    table_values "$SCRATCH/run/checkpoint/step-1/model.safetensors" >"$SCRATCH/trained.txt"
    python3 - "$SCRATCH/trained.txt" <<'PY' && echo "ok: 257 x 257 values drawn by the plugin, in [0.25, 0.75), not all equal" || fail "flame-run's values are not the plugin's rule's"
import sys
v = [float(x) for x in open(sys.argv[1])]
assert len(v) == 257 * 257, len(v)
assert all(0.25 <= x < 0.75 for x in v), (min(v), max(v))
assert len(set(v)) > 257 * 257 // 2, len(set(v))
PY
else
    fail "a plugin with its own initialization did not train: $(tail -n 3 "$SCRATCH/run.out")"
fi

# flame-convert from-hf draws a tensor the source lacks by the same rule and seed
hf="$SCRATCH/hf"
mkdir -p "$hf"
echo '{"model_type": "bigram", "architectures": ["BigramForCausalLM"], "vocab_size": 257}' >"$hf/config.json"
python3 - "$hf/model.safetensors" <<'PY'
import json, struct, sys
header = json.dumps({"other.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.0))
PY
printf '[model]\nvocab_size = 257\n' >"$SCRATCH/bigram.ini"
mkdir -p "$SCRATCH/plugins" && cp "$SCRATCH/own.so" "$SCRATCH/plugins/bigram.so" # found by model_type
if FLAME_PLUGIN_PATH="$SCRATCH/plugins" "$top_builddir/flame-convert" from-hf --model "$hf" --arch "$SCRATCH/own.so" --config "$SCRATCH/bigram.ini" --seed 7 \
    --output "$SCRATCH/converted" >"$SCRATCH/convert.out" 2>&1; then
    grep -q "initialize  model.bigram.weight .* the plugin's own" "$SCRATCH/convert.out" ||
        fail "the table does not say the plugin's own rule: $(cat "$SCRATCH/convert.out")"
    table_values "$(ls -d "$SCRATCH"/converted/checkpoint/step-*)/model.safetensors" >"$SCRATCH/converted.txt"
    cmp -s "$SCRATCH/trained.txt" "$SCRATCH/converted.txt" &&
        echo "ok: flame-convert drew the same 66049 values from seed 7 as flame-run" ||
        fail "flame-convert's values differ from flame-run's"
else
    fail "flame-convert from-hf failed: $(tail -n 3 "$SCRATCH/convert.out")"
fi

expect_error 4 "plugin parameter model.bigram.weight: its init_values gave nan at value 33024" -- \
    "$FLAME_RUN" --arch "$SCRATCH/nan.so" --training.dataset "$data" --job.dump_folder "$SCRATCH/nan" \
    --training.steps 1
expect_error 4 "plugin parameter model.bigram.weight: init rule FLAME_INIT_PLUGIN, but the plugin has no init_values" -- \
    "$FLAME_RUN" --arch "$SCRATCH/missing.so" --training.dataset "$data" --job.dump_folder "$SCRATCH/missing" \
    --training.steps 1
finish
