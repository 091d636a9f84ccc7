#!/usr/bin/env bash
# metrics.enable_tensorboard: a tiny GLA run logging every 2 of 10 steps, with
# validation every 5, writes event files that TensorBoard's EventAccumulator
# (PyPI tensorboard) reads back: every value of every metrics.jsonl row, at its
# step, as a float32 of it; a record whose bytes are damaged is refused by the
# reader (the CRC-32C of each record is checked). Skips without tensorboard.
. "$(dirname "$0")/lib.sh"
python3 -c "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator" 2>/dev/null ||
    { echo "SKIP: the tensorboard package is not installed"; exit 77; }

for i in $(seq 200); do echo "{\"text\": \"the fox $i jumps over the dog\"}"; done >"$SCRATCH/train.jsonl"
head -30 "$SCRATCH/train.jsonl" >"$SCRATCH/held.jsonl"
"$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/train.jsonl" \
    --job.dump_folder "$SCRATCH/run" --training.steps 10 --training.batch_size 2 --training.seq_len 32 \
    --metrics.log_freq 2 --metrics.enable_tensorboard --validation.enable \
    --validation.dataset "$SCRATCH/held.jsonl" --validation.freq 5 >"$SCRATCH/log" 2>&1 ||
    { fail "the run failed"; cat "$SCRATCH/log"; finish; }
python3 - "$SCRATCH/run" <<'PY' || fail "TensorBoard does not read back what metrics.jsonl holds"
import glob, json, math, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
run = sys.argv[1]
files = glob.glob(f"{run}/tb/events.out.tfevents.*")
acc = EventAccumulator(f"{run}/tb", size_guidance={"scalars": 0})
acc.Reload()
got = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
checked, bad = 0, []
for line in open(f"{run}/metrics.jsonl"):
    row = json.loads(line)
    for key, value in row.items():
        if key in ("step", "skipped", "data_epochs") or value is None:
            continue
        seen = got.get(key, {}).get(row["step"])
        checked += 1
        # metrics.jsonl prints these two with 6 and 4 digits, the others with 9
        rel = {"tokens_per_s": 1e-5, "mem_gib": 1e-3}.get(key)
        if seen is None or (seen != f32(value) if rel is None else abs(seen - value) > rel * abs(value)):
            bad.append((key, row["step"], value, seen))
steps = sorted(got["loss"])
ok = len(files) == 1 and not bad and steps == [2, 4, 5, 6, 8, 10] and sorted(got["val_loss"]) == [5, 10]
print(f"{'ok' if ok else 'FAIL'}: {checked} values of {len(steps)} rows read back from "
      f"{len(files)} events file(s), tags {sorted(got)}; mismatches {bad[:3]}")
sys.exit(0 if ok else 1)
PY

# a damaged record: the reader stops there (its CRC no longer matches)
f=$(ls "$SCRATCH"/run/tb/events.out.tfevents.*)
size=$(stat -c %s "$f")
printf '\x55' | dd of="$f" bs=1 seek=$((size - 20)) conv=notrunc status=none
python3 - "$SCRATCH/run" <<'PY' || fail "a damaged record was read"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(f"{sys.argv[1]}/tb", size_guidance={"scalars": 0})
acc.Reload()
steps = sorted(e.step for e in acc.Scalars("loss"))
print(f"{'ok' if steps[-1] < 10 else 'FAIL'}: after damaging the last record, steps {steps}")
sys.exit(0 if steps[-1] < 10 else 1)
PY
expect_error 2 "save_tb_folder = \"../x\": expected a folder name inside job.dump_folder" \
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/train.jsonl" \
    --job.dump_folder "$SCRATCH/bad" --metrics.enable_tensorboard --metrics.save_tb_folder ../x
finish
