#!/usr/bin/env bash
# training.skip_nan_inf: a step whose loss or gradients are not finite is
# skipped, logged (loss null) and counted, and the run ends with a warning that
# counts them (exit 1 when every step was skipped); without it the run stops
# with exit 1.
# The model is a plugin built here the way a third party builds one: from the
# installed headers and flame.pc alone (tests/bigram_plugin.c), which also
# shows it trains.
. "$(dirname "$0")/lib.sh"
build_bigram "$SCRATCH/bigram.so" || finish
printf 'the quick brown fox jumps over the lazy dog. %.0s' $(seq 200) >"$SCRATCH/text.txt"
run() {
    "$FLAME_RUN" --arch "$SCRATCH/bigram.so" --training.dataset "$SCRATCH/text.txt" \
        --job.dump_folder "$1" --training.batch_size 2 --training.seq_len 32 \
        --lr_scheduler.warmup_steps 0 --optimizer.lr 0.1 --optimizer.weight_decay 0 \
        --checkpoint.enable_checkpoint false "${@:2}"
}
field() { sed "s/.*\"$1\": \([^,}]*\).*/\1/" "$2" | tr '\n' ' '; }

run "$SCRATCH/skip" --training.steps 10 --model.nan_every 3 --training.skip_nan_inf >/dev/null \
    2>"$SCRATCH/err" || fail "the run with skip_nan_inf failed"
[ "$(cat "$SCRATCH/err")" = "flame-run: warning: 3 of 10 steps were skipped for a non-finite loss or gradient norm" ] ||
    fail "no warning with the count of skipped steps: $(cat "$SCRATCH/err")"
[ "$(field skipped "$SCRATCH/skip/metrics.jsonl")" = "0 0 1 1 1 2 2 2 3 3 " ] ||
    fail "skipped counts: $(field skipped "$SCRATCH/skip/metrics.jsonl")"
[ "$(field loss "$SCRATCH/skip/metrics.jsonl" | tr ' ' '\n' | grep -n null | cut -d: -f1 | tr '\n' ' ')" = "3 6 9 " ] ||
    fail "losses logged: $(field loss "$SCRATCH/skip/metrics.jsonl")"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$SCRATCH/skip/metrics.jsonl" ||
    fail "metrics.jsonl with skipped steps is not valid JSON lines"

expect_error 1 "step 3: loss nan, gradient norm nan: training diverged" -- \
    run "$SCRATCH/stop" --training.steps 10 --model.nan_every 3
# every step skipped: the run learned nothing and says so
expect_error 1 "all 6 steps of this run were skipped for a non-finite loss or gradient norm" -- \
    run "$SCRATCH/all" --training.steps 6 --model.nan_every 1 --training.skip_nan_inf

run "$SCRATCH/learn" --training.steps 60 >/dev/null || fail "the bigram plugin did not train"
read -r first last < <(field loss "$SCRATCH/learn/metrics.jsonl" | awk '{ print $1, $NF }')
awk -v a="$last" -v b="$first" 'BEGIN { exit !(a < 0.5 * b) }' ||
    fail "the bigram model did not learn: loss $first -> $last"
echo "ok: bigram loss $first -> $last; skipped steps counted and logged"

finish
