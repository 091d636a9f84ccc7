#!/usr/bin/env bash
# .parquet, .arrow (the datasets library's IPC stream, and the IPC file format)
# and .json (an array of objects, and JSON lines) read through pyarrow: made
# here with pyarrow from the same documents as a .jsonl (unicode, quotes,
# newlines, an extra column, a null row skipped), each packs to the .jsonl's
# shard byte for byte, and trains. Damaged files and a missing column stop
# with exit 3 and one line naming the file; without pyarrow, one line saying
# to install it, exit 2. Skips when python3 cannot import pyarrow.
. "$(dirname "$0")/lib.sh"
python3 -c "import pyarrow" 2>/dev/null || { echo "SKIP: python3 cannot import pyarrow (pip install pyarrow)"; exit 77; }
PACK="$top_builddir/flame-data"

python3 - "$SCRATCH" <<'PY'
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
docs = [f"doc {i}: caf\u00e9 \"quoted\" \\ back\nslash \u4e16\u754c {'x' * (i % 50)}" for i in range(2500)]
rows = docs[:1200] + [None] + docs[1200:]
table = pa.table({"id": list(range(len(rows))), "text": rows})
pq.write_table(table, f"{d}/docs.parquet", row_group_size=600)
with pa.OSFile(f"{d}/docs.arrow", "wb") as f:  # as datasets caches: the IPC stream format
    with pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table, max_chunksize=700)
with pa.OSFile(f"{d}/file.arrow", "wb") as f:
    with pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table, max_chunksize=700)
with open(f"{d}/docs.json", "w") as f:
    json.dump([{"id": i, "text": t} for i, t in enumerate(rows)], f, indent=1)
with open(f"{d}/lines.json", "w") as f:
    f.writelines(json.dumps({"text": t}) + "\n" for t in rows)
with open(f"{d}/docs.jsonl", "w") as f:
    f.writelines(json.dumps({"text": t}) + "\n" for t in docs)
with open(f"{d}/number.json", "w") as f:
    json.dump([{"text": "fine"}, {"text": 7}], f)
with open(f"{d}/scalar.json", "w") as f:
    json.dump([{"text": "fine"}, 3], f)
pq.write_table(pa.table({"text": list(range(10))}), f"{d}/ints.parquet")
data = open(f"{d}/docs.parquet", "rb").read()
open(f"{d}/cut.parquet", "wb").write(data[: len(data) // 2])
PY

"$PACK" pack --dataset "$SCRATCH/docs.jsonl" --output "$SCRATCH/want.flametok" --shuffle false >/dev/null ||
    fail "packing the .jsonl failed"
for f in docs.parquet docs.arrow file.arrow docs.json lines.json; do
    if "$PACK" pack --dataset "$SCRATCH/$f" --output "$SCRATCH/got.flametok" --shuffle false >/dev/null 2>"$SCRATCH/err"; then
        cmp -s "$SCRATCH/want.flametok" "$SCRATCH/got.flametok" && echo "ok: $f packs to the .jsonl's shard" ||
            fail "$f packs to another shard than the .jsonl"
    else
        fail "packing $f failed: $(cat "$SCRATCH/err")"
    fi
done

"$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/docs.parquet" \
    --job.dump_folder "$SCRATCH/run" --training.steps 3 --lr_scheduler.warmup_steps 1 >"$SCRATCH/log" 2>&1 &&
    [ "$(wc -l <"$SCRATCH/run/metrics.jsonl")" = 3 ] && echo "ok: trains on the .parquet" ||
    { fail "training on the .parquet failed"; cat "$SCRATCH/log"; }

# resumed inside the parquet file (unshuffled: the cursor counts its rows), bit for bit
train() {
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/docs.parquet" \
        --job.dump_folder "$1" --training.steps 6 --checkpoint.interval 3 --lr_scheduler.warmup_steps 1 \
        --training.shuffle false --training.batch_size 2 --training.seq_len 64 >"$SCRATCH/log" 2>&1 ||
        { fail "training $1 failed"; cat "$SCRATCH/log"; }
}
train "$SCRATCH/whole"
cp -r "$SCRATCH/whole" "$SCRATCH/resumed"
rm -rf "$SCRATCH/resumed/checkpoint/step-6"
train "$SCRATCH/resumed"
grep -q '"document": [1-9]' "$SCRATCH/whole/checkpoint/step-3/trainer.json" || fail "the step-3 cursor is not inside the file"
cmp -s "$SCRATCH/whole/checkpoint/step-6/model.safetensors" "$SCRATCH/resumed/checkpoint/step-6/model.safetensors" &&
    echo "ok: resumed from step 3 inside the parquet file, step-6 bit for bit" || fail "the resumed run differs"

bad() { expect_error 3 "$2" "$PACK" pack --dataset "$SCRATCH/$1" --output "$SCRATCH/bad.flametok" "${@:3}"; }
bad cut.parquet "cut.parquet: cannot read: .*"
bad docs.parquet "docs.parquet: no column 'body' \(columns: id, text\); set training.text_field" --text_field body
bad ints.parquet "ints.parquet: column 'text' holds int64, not text"
bad number.json "number.json: row 2: 'text' holds int, not text"
bad scalar.json "scalar.json: expected JSON objects \(rows\), found int"

mkdir -p "$SCRATCH/nopyarrow"
echo 'raise ImportError("no pyarrow here")' >"$SCRATCH/nopyarrow/pyarrow.py"
PYTHONPATH="$SCRATCH/nopyarrow" expect_error 2 "docs.parquet: pyarrow is not importable \(no pyarrow here\): pip install pyarrow" \
    "$PACK" pack --dataset "$SCRATCH/docs.parquet" --output "$SCRATCH/bad.flametok"
finish
