#!/usr/bin/env bash
# A damaged checkpoint is refused (exit 3, one line naming the file and what is
# wrong), never trusted: a header length field off by one, a trainer.json field
# out of range or malformed. Resuming from the newest passes over folders that
# are not whole checkpoints or not named step-N exactly, with a note each.
. "$(dirname "$0")/lib.sh"
printf 'A line of text to learn from, again and again.\n%.0s' $(seq 400) >"$SCRATCH/text.txt"
train() { # train FOLDER [OPTION VALUE]...
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
        --job.dump_folder "$1" --training.batch_size 1 --training.seq_len 16 \
        --checkpoint.interval 5 --training.steps 10 --lr_scheduler.warmup_steps 2 "${@:2}"
}
train "$SCRATCH/good" >/dev/null || fail "the 10-step run failed"
run="$SCRATCH/run"
fresh() { rm -rf "$run"; cp -r "$SCRATCH/good" "$run"; }

# --- safetensors: the header length one byte short still parses, but shifts the data ---
fresh
python3 - "$run/checkpoint/step-10/optimizer.safetensors" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    n, = struct.unpack('<Q', f.read(8)); f.seek(0); f.write(struct.pack('<Q', n - 1))
PY
expect_error 3 "step-10/optimizer.safetensors: the header length field .* leaves [0-9]+ bytes of data" -- \
    train "$run"

# a NaN written over the first weight: the model would train on it
fresh
python3 - "$run/checkpoint/step-10/model.safetensors" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    n, = struct.unpack('<Q', f.read(8)); f.seek(8 + n); f.write(struct.pack('<f', float('nan')))
PY
expect_error 3 "step-10/model.safetensors: tensor .* holds nan at index 0" -- train "$run"

# --- trainer.json: every field checked ---
json_case() { # FIELD SED-EXPRESSION: step-10's trainer.json edited, refused naming the field
    fresh
    sed -i "$2" "$run/checkpoint/step-10/trainer.json"
    expect_error 3 "step-10/trainer.json: $1 " -- train "$run" --training.steps 30
}
json_case step 's/"step": 10/"step": 5/'
json_case step 's/"step": 10/"step": 1099511627776/'
json_case step 's/"step": 10/"step": 4294967306/'
json_case step 's/"step": 10/"step": -1/'
json_case rng_state 's/"rng_state": "[0-9a-f]*"/"rng_state": "zz00000000000000"/'
json_case rng_state 's/"rng_state": "[0-9a-f]*"/"rng_state": "12"/'
json_case skipped 's/"skipped": 0/"skipped": -7/'
json_case skipped 's/"skipped": 0/"skipped": 11/'
json_case data_cursor 's/"data_cursor": {/"data_cursor": "x", "old": {/'
[ "$(wc -l <"$run/metrics.jsonl")" = 10 ] || fail "a refused resume touched metrics.jsonl"

# --- the newest whole checkpoint, the others passed over with a note each ---
fresh
mkdir "$run/checkpoint/step-50"
cp -r "$run/checkpoint/step-5" "$run/checkpoint/step-0007"
cp -r "$run/checkpoint/step-5" "$run/checkpoint/step-99999999999"
train "$run" >"$SCRATCH/out" 2>"$SCRATCH/err" || fail "resume with stray folders failed: $(cat "$SCRATCH/err")"
grep -q "resuming from .*/step-10\$" "$SCRATCH/out" || fail "did not resume from step-10: $(cat "$SCRATCH/out")"
for stray in "step-50: passed over: not a whole checkpoint \(no model.safetensors\)" \
    "step-0007: passed over: not named step-N" "step-99999999999: passed over: not named step-N"; do
    grep -Eq "^flame-run: note: .*$stray" "$SCRATCH/err" || fail "no note: $stray"
done
[ "$(wc -l <"$SCRATCH/err")" = 3 ] || fail "expected 3 notes: $(cat "$SCRATCH/err")"
echo "ok: stray step folders passed over with a note each"
# named by load_step, a folder that is not whole is refused as damaged
expect_error 3 "step-50/model.safetensors" -- train "$run" --checkpoint.load_step 50

finish
