#!/usr/bin/env bash
# flame-bench runs full training steps on random tokens and reports what it
# measured (a smoke test: the figures themselves are benchmarks, not tested).
. "$(dirname "$0")/lib.sh"
FLAME_BENCH="$top_builddir/flame-bench"

if ! "$FLAME_BENCH" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.device cpu \
        --training.batch_size 2 --training.seq_len 64 --bench.warmup_steps 1 --bench.steps 2 \
        >"$SCRATCH/out" 2>&1; then
    fail "flame-bench failed"; cat "$SCRATCH/out" >&2
fi
grep -q "^gla, 167488 parameters, 2 x 64 tokens x 1 micro-batches a step, 1 warm-up + 2 timed steps$" "$SCRATCH/out" ||
    fail "no run description: $(cat "$SCRATCH/out")"
for line in "tokens/s: [1-9][0-9]*" "ms/step: [0-9.]*[1-9]" "peak memory: [0-9.]* GiB" \
            "first step ended [0-9.]* s after the process started"; do
    grep -Eq "^$line" "$SCRATCH/out" || fail "no line /$line/ in: $(cat "$SCRATCH/out")"
done
expect_error 2 "\[bench\] steps = 0" -- "$FLAME_BENCH" --arch gla --config "$CONFIGS/gla-tiny.ini" \
    --bench.steps 0
cat "$SCRATCH/out"
finish
