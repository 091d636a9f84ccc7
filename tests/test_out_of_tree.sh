#!/usr/bin/env bash
# A plugin built outside the tree from the installed headers alone
# (tests/bigram_plugin.c) declares its Hugging Face identity and goes through
# every tool with no tool knowing it: flame-run trains it; to-hf exports the
# run's checkpoint with no flag but the checkpoint (config.ini names the
# plugin); from-hf finds the plugin by config.json's model_type and writes a
# seed whose config.ini flame-run trains on from with no --arch; to-hf of that
# seed gives the first export again, bit for bit.
. "$(dirname "$0")/lib.sh"
CONVERT="$top_builddir/flame-convert"
mkdir -p "$SCRATCH/plugins"
build_bigram "$SCRATCH/plugins/bigram.so" || finish
printf 'the quick brown fox jumps over the lazy dog. %.0s' $(seq 100) >"$SCRATCH/text.txt"
common=(--training.dataset "$SCRATCH/text.txt" --training.batch_size 2 --training.seq_len 16
        --checkpoint.interval 4)

"$FLAME_RUN" --arch "$SCRATCH/plugins/bigram.so" "${common[@]}" --job.dump_folder "$SCRATCH/run" \
    --training.steps 4 >"$SCRATCH/run.out" 2>&1 || fail "flame-run of the bigram plugin: $(tail -n 2 "$SCRATCH/run.out")"
grep -q "^arch = $SCRATCH/plugins/bigram.so" "$SCRATCH/run/config.ini" ||
    fail "config.ini does not record the plugin: $(grep arch "$SCRATCH/run/config.ini")"

"$CONVERT" to-hf --checkpoint "$SCRATCH/run/checkpoint/step-4" --output "$SCRATCH/hf1" >/dev/null ||
    fail "to-hf of the run's checkpoint"
python3 - "$SCRATCH/hf1/config.json" <<'PY' || fail "config.json of the export"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["model_type"] == "bigram" and c["architectures"] == ["BigramForCausalLM"], c
assert c["vocab_size"] == 257 and c["nan_every"] == 0, c
PY

# no --arch: the plugin is the one on FLAME_PLUGIN_PATH that reads model_type
# "bigram", and its bare name is what the seed's config.ini records
export FLAME_PLUGIN_PATH="$SCRATCH/plugins"
"$CONVERT" from-hf --model "$SCRATCH/hf1" --output "$SCRATCH/seed" \
    >/dev/null || fail "from-hf of the export"
"$CONVERT" to-hf --checkpoint "$SCRATCH/seed/checkpoint/step-0" --output "$SCRATCH/hf2" >/dev/null ||
    fail "to-hf of the from-hf seed"
cmp -s "$SCRATCH/hf1/model.safetensors" "$SCRATCH/hf2/model.safetensors" ||
    fail "from-hf then to-hf changed model.safetensors"
cmp -s "$SCRATCH/hf1/config.json" "$SCRATCH/hf2/config.json" || fail "from-hf then to-hf changed config.json"

# flame-run on from the seed: its config.ini names the plugin and the dump folder
"$FLAME_RUN" --config "$SCRATCH/seed/config.ini" "${common[@]}" --checkpoint.load_step 0 \
    --training.steps 2 >"$SCRATCH/seed.out" 2>&1 || fail "flame-run --config seed/config.ini: $(tail -n 2 "$SCRATCH/seed.out")"
grep -q "resuming from .*seed/checkpoint/step-0" "$SCRATCH/seed.out" || fail "the run did not start from the seed"
[ -d "$SCRATCH/seed/checkpoint/step-2" ] || fail "no step-2 checkpoint in the seed's folder"
[ "$failures" -eq 0 ] && echo "ok: bigram plugin: flame-run, to-hf, from-hf, to-hf (bit for bit), flame-run from the seed"
# it declares no decode entries: flame-generate says so in one line
expect_error 2 "flame-generate: bigram cannot generate on cpu \(no decode path there yet\)" \
    "$top_builddir/flame-generate" --checkpoint "$SCRATCH/run/checkpoint/step-4" --prompt x
finish
