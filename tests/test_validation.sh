#!/usr/bin/env bash
# [validation] and flame-eval, on the tiny GLA with the byte tokenizer:
#  - a run validating every 10 of 20 steps logs val_loss and val_perplexity at
#    steps 10 and 20 only, and the loss falls;
#  - flame-eval on the step-10 and step-20 checkpoints prints those losses;
#  - its token and byte counts are those of the rows it read, counted here
#    from the documents (each byte a token, EOS none), and bits per byte is
#    the loss over them;
#  - mistakes are one line and exit 2 before any training: validation on
#    without a dataset, a missing validation file, data smaller than a batch,
#    a checkpoint path of another form.
. "$(dirname "$0")/lib.sh"
EVAL="$top_builddir/flame-eval"

for i in $(seq 300); do echo "{\"text\": \"the fox $i jumps over the dog\"}"; done >"$SCRATCH/train.jsonl"
for i in $(seq 40); do echo "{\"text\": \"a dog $i sleeps under the tree\"}"; done >"$SCRATCH/held.jsonl"

run() {
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/train.jsonl" \
        --job.dump_folder "$SCRATCH/run" --training.steps 20 --training.batch_size 2 \
        --training.seq_len 64 --checkpoint.interval 10 --metrics.log_freq 5 "$@"
}
run --validation.enable --validation.dataset "$SCRATCH/held.jsonl" --validation.freq 10 \
    --validation.local_batch_size 3 --validation.seq_len 32 >"$SCRATCH/log" 2>&1 ||
    { fail "the validating run failed"; cat "$SCRATCH/log"; finish; }
val() { sed -n "s/^{\"step\": $1,.*\"val_loss\": \([^,]*\), \"val_perplexity\": \([^,]*\),.*/\1 \2/p" "$SCRATCH/run/metrics.jsonl"; }
read -r v10 p10 <<<"$(val 10)"
read -r v20 p20 <<<"$(val 20)"
others=$(grep -c val_loss "$SCRATCH/run/metrics.jsonl")
if [ -n "$v10" ] && [ -n "$v20" ] && [ "$others" = 2 ]; then
    echo "ok: val_loss $v10 at step 10, $v20 at step 20, no other row"
    awk -v a="$v20" -v b="$v10" 'BEGIN { exit !(a < b) }' || fail "val_loss did not fall: $v10 then $v20"
    awk -v l="$v20" -v p="$p20" 'BEGIN { exit !(p / exp(l) > 0.999999 && p / exp(l) < 1.000001) }' ||
        fail "val_perplexity $p20 is not exp($v20)"
else
    fail "val_loss rows: '$v10' '$v20', $others in all"
fi
grep -q "^step 10/20 .* val_loss [0-9.]*  val_ppl" "$SCRATCH/log" && echo "ok: the progress line shows val_loss" ||
    fail "no val_loss in the progress line"

for step in 10 20; do
    out=$("$EVAL" --checkpoint "$SCRATCH/run/checkpoint/step-$step" --dataset "$SCRATCH/held.jsonl" \
        --batch_size 3 --seq_len 32 2>&1) || { fail "flame-eval step-$step failed: $out"; continue; }
    loss=$(echo "$out" | sed -n 's/.* loss \([0-9.]*\) .*/\1/p')
    want=$([ $step = 10 ] && echo "$v10" || echo "$v20")
    awk -v a="$loss" -v b="$want" 'BEGIN { d = a - b; exit !(d < 1e-6 && d > -1e-6) }' &&
        echo "ok: flame-eval step-$step: loss $loss, as validation logged ($want)" ||
        fail "flame-eval step-$step: loss '$loss', validation logged $want ($out)"
done

# the rows flame-eval read: whole batches of 3 rows of 33 tokens within the first epoch
python3 - "$SCRATCH/held.jsonl" "$out" <<'PY' || fail "flame-eval's counts or bits per byte are wrong"
import json, math, re, sys
stream = []
for line in open(sys.argv[1]):
    stream += list(json.loads(line)["text"].encode()) + [256]
batches = len(stream) // (3 * 33)
targets = [t for i in range(batches * 3) for t in stream[i * 33 + 1:(i + 1) * 33]]
nbytes = sum(t != 256 for t in targets)
m = re.search(r"loss ([0-9.]+) .*bits/byte ([0-9.]+)\s+\((\d+) batches, (\d+) tokens, (\d+) bytes\)", sys.argv[2])
loss, bpb, b, tokens, byts = float(m[1]), float(m[2]), int(m[3]), int(m[4]), int(m[5])
ok = (b, tokens, byts) == (batches, len(targets), nbytes)
want_bpb = loss * tokens / (byts * math.log(2))
ok &= abs(bpb - want_bpb) < 1e-3
print(f"{'ok' if ok else 'FAIL'}: {b} batches, {tokens} tokens, {byts} bytes (expected {batches}, "
      f"{len(targets)}, {nbytes}); bits/byte {bpb} (expected {want_bpb:.4f})")
sys.exit(0 if ok else 1)
PY

mv "$SCRATCH/run" "$SCRATCH/run-kept"
expect_error 2 "\[validation\] enable is true but dataset is not set" run --validation.enable
expect_error 2 "nope.jsonl: No such file or directory \(\[validation\] dataset\)" \
    run --validation.enable --validation.dataset "$SCRATCH/nope.jsonl"
[ -e "$SCRATCH/run/metrics.jsonl" ] && fail "a refused validation trained"
head -1 "$SCRATCH/held.jsonl" >"$SCRATCH/one.jsonl"
expect_error 2 "one.jsonl holds fewer tokens than one batch of 3 x 33" \
    "$EVAL" --checkpoint "$SCRATCH/run-kept/checkpoint/step-20" --dataset "$SCRATCH/one.jsonl" --batch_size 3 --seq_len 32
expect_error 2 "--checkpoint $SCRATCH/run: expected DIR/checkpoint/step-N" "$EVAL" --checkpoint "$SCRATCH/run" --dataset x
expect_error 2 "--checkpoint DIR/checkpoint/step-N \(or HF_DIR\) is missing" "$EVAL" --dataset x
finish
