#!/usr/bin/env bash
# What guards a run's outputs: a second flame-run on a dump folder in use is
# refused (exit 2, naming the PID), a dead run's lock is taken over; a
# metrics.jsonl that cannot be written stops the run (exit 1); stdout closed
# by `| head` stops the progress lines, not the training.
. "$(dirname "$0")/lib.sh"
printf 'A line of text to learn from, again and again.\n%.0s' $(seq 400) >"$SCRATCH/text.txt"
train() { # train FOLDER [OPTION VALUE]...
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
        --job.dump_folder "$1" --training.batch_size 1 --training.seq_len 16 \
        --lr_scheduler.warmup_steps 1 "${@:2}"
}

# --- one run per dump folder ---
dump="$SCRATCH/shared"
(exec "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
    --job.dump_folder "$dump" --training.batch_size 1 --training.seq_len 16 \
    --training.steps 100000 --checkpoint.interval 100000) >/dev/null 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! grep -q . "$dump/.lock" 2>/dev/null; do sleep 0.01; done
expect_error 2 "shared: in use by another flame-run, PID $pid \(it holds the lock on .lock\)" -- \
    train "$dump" --training.steps 2 --training.seed 7
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
train "$dump" --training.steps 2 >/dev/null 2>"$SCRATCH/err" ||
    fail "the lock of a killed run was not taken over: $(cat "$SCRATCH/err")"
[ "$(wc -l <"$dump/metrics.jsonl")" = 2 ] || fail "the run after the killed one did not train"
echo "ok: a dead run's lock taken over"

# --- metrics.jsonl on a full disk ---
if [ -c /dev/full ]; then
    mkdir "$SCRATCH/full"
    ln -s /dev/full "$SCRATCH/full/metrics.jsonl"
    expect_error 1 "full/metrics.jsonl: cannot write: No space left on device" -- \
        train "$SCRATCH/full" --training.steps 3 --checkpoint.enable_checkpoint false
fi

# --- stdout closed: training and checkpoints go on, one note ---
piped="$SCRATCH/piped"
train "$piped" --training.steps 20 --checkpoint.interval 20 2>"$SCRATCH/err" | head -c 100 >/dev/null
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
    fail "flame-run | head -c 100: exit $status"
elif ! grep -q "^flame-run: note: stdout: Broken pipe: progress is no longer printed" "$SCRATCH/err" ||
    [ "$(wc -l <"$SCRATCH/err")" != 1 ]; then
    fail "flame-run | head -c 100: stderr: $(cat "$SCRATCH/err")"
elif [ ! -f "$piped/checkpoint/step-20/trainer.json" ] || [ "$(wc -l <"$piped/metrics.jsonl")" != 20 ]; then
    fail "flame-run | head -c 100 did not train to the end"
else
    echo "ok: flame-run | head -c 100: exit 0, one note, step-20 saved"
fi

finish
