#!/usr/bin/env bash
# A run killed (SIGKILL) while it writes a checkpoint leaves the previous
# checkpoint whole: the same command resumes from it and ends with the losses
# of a run that was never killed.
. "$(dirname "$0")/lib.sh"
printf 'A line of text to learn from, again and again.\n%.0s' $(seq 400) >"$SCRATCH/text.txt"

# a large vocabulary makes checkpoints (~100 MB) slow to write next to tiny
# steps, so a kill lands in the middle of a write
train() {
    exec_or_run "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" \
        --training.dataset "$SCRATCH/text.txt" --job.dump_folder "$1" --training.steps 12 \
        --training.batch_size 1 --training.seq_len 16 --model.vocab_size 65536 \
        --checkpoint.interval 1 --checkpoint.keep_latest_k 2
}
exec_or_run() { "$@"; }
losses() { sed 's/"tokens_per_s": [^,]*,//; s/"mem_gib": [^,]*,//' "$1"; }

train "$SCRATCH/whole" >/dev/null || fail "the uninterrupted run failed"

run="$SCRATCH/killed"
mid_write=0
for attempt in $(seq 20); do
    rm -rf "$run"
    (exec_or_run() { exec "$@"; }; train "$run") >/dev/null 2>&1 &
    pid=$!
    # wait for the second checkpoint, then kill as soon as a write is under way
    while kill -0 "$pid" 2>/dev/null && [ ! -e "$run/checkpoint/step-2" ]; do sleep 0.005; done
    while kill -0 "$pid" 2>/dev/null && ! ls -d "$run"/checkpoint/.step-*.tmp >/dev/null 2>&1; do
        sleep 0.002
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null && continue # finished before the kill
    if ls -d "$run"/checkpoint/.step-*.tmp >/dev/null 2>&1; then
        mid_write=1
        break
    fi
done
if [ "$mid_write" != 1 ]; then
    fail "no kill landed during a checkpoint write in 20 attempts"
else
    partial=$(ls -d "$run"/checkpoint/.step-*.tmp)
    echo "killed while writing $(basename "$partial"); complete: $(ls "$run/checkpoint" | tr '\n' ' ')"
    train "$run" >"$SCRATCH/log" 2>&1 || { fail "the rerun failed"; cat "$SCRATCH/log" >&2; }
    grep -q "resuming from" "$SCRATCH/log" || fail "the rerun did not resume"
    cmp -s <(losses "$SCRATCH/whole/metrics.jsonl") <(losses "$run/metrics.jsonl") ||
        fail "the resumed run's losses differ from the uninterrupted run's"
    ls -d "$run"/checkpoint/.step-*.tmp >/dev/null 2>&1 && fail "a partial checkpoint was left behind"
    echo "ok: resumed after the kill; steps 1-12 identical to the uninterrupted run"
fi

finish
