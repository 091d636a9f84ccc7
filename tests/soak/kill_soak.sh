#!/usr/bin/env bash
# Kill soak: a run checkpointing every step, killed (SIGKILL) SOAK_KILLS times at
# random moments (seeded by SOAK_SEED) and resumed with the same command each
# time until done, ends with the metrics (timings aside) and the model and
# optimizer files of a run that was never killed, byte for byte.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
kills=${SOAK_KILLS:-20}
RANDOM=${SOAK_SEED:-1}
export OMP_NUM_THREADS=1 # tiny steps: threads only add contention on a shared machine

words=(the quick brown fox jumps over a lazy dog while flame learns tiny text again)
# one document a line: the kills land inside shuffled blocks of documents too
for i in $(seq 300); do
    line=
    for j in $(seq 12); do line+="${words[RANDOM % ${#words[@]}]} "; done
    echo "{\"text\": \"$line\"}"
done >"$SCRATCH/text.jsonl"

train() { # folder [steps]
    exec_or_run "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" \
        --training.dataset "$SCRATCH/text.jsonl" --training.shuffle_buffer 64 --job.dump_folder "$1" --training.steps "${2:-40}" \
        --training.batch_size 2 --training.seq_len 32 --checkpoint.interval 1 \
        --checkpoint.keep_latest_k 2
}
exec_or_run() { "$@"; }
metrics() { sed -E 's/, "(tokens_per_s|mfu|mem_gib)": [^,}]*//g' "$1"; }
now_ms() { date +%s%3N; }

newest() { ls "$1/checkpoint" 2>/dev/null | sed -n 's/^step-//p' | sort -n | tail -n 1 | grep . || echo 0; }

# A step's time (checkpoint included) is the difference of a 40- and a 20-step
# run over 20: the start-up, long against a tiny step, drops out of it.
timed_ms() { local t0; t0=$(now_ms); train "$@" >"$SCRATCH/log" 2>&1 || return; echo $(($(now_ms) - t0)); }
whole_ms=$(timed_ms "$SCRATCH/whole") || { fail "the uninterrupted run failed"; cat "$SCRATCH/log" >&2; finish; }
half_ms=$(timed_ms "$SCRATCH/half" 20) || { fail "the 20-step run failed"; cat "$SCRATCH/log" >&2; finish; }
step_ms=$(((whole_ms - half_ms) / 20 + 1))
((step_ms < 1)) && step_ms=1
echo "uninterrupted run: $whole_ms ms, $step_ms ms a step; $kills kills (SOAK_SEED=${SOAK_SEED:-1})"

# Each kill: pick a step a random way ahead of the newest checkpoint (at most
# twice the remaining steps' fair share, so the kills spread over the run and
# end by step 37), wait for its checkpoint, then kill at a random moment
# of the next step's time. No step ahead (none left, or a kill late in a step
# let one more land): the kill lands in the start-up.
run="$SCRATCH/killed"
landed=0 mid_write=0
while [ "$landed" -lt "$kills" ]; do
    from=$(newest "$run")
    ahead=$((2 * (37 - from) / (kills - landed + 1)))
    ((ahead < 0)) && ahead=0
    target=$((from + RANDOM % (ahead + 1)))
    delay=$((RANDOM % step_ms))
    touch "$SCRATCH/launch"
    (exec_or_run() { exec "$@"; }; train "$run") >"$SCRATCH/log" 2>&1 &
    pid=$!
    # Wait on the newest step, not on step-$target itself: keep_latest_k may
    # delete that folder between two looks on a busy machine.
    while kill -0 "$pid" 2>/dev/null && [ "$target" -gt 0 ] && [ "$(newest "$run")" -lt "$target" ]; do
        sleep 0.005
    done
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" != 137 ]; then
        fail "a resumed run ended (exit $status) before its kill:"; tail -n 5 "$SCRATCH/log" >&2
        finish
    fi
    landed=$((landed + 1))
    partial=
    if [ -n "$(find "$run/checkpoint" -maxdepth 1 -name '.step-*.tmp' -newer "$SCRATCH/launch" 2>/dev/null)" ]; then
        mid_write=$((mid_write + 1)) partial=" (during a checkpoint write)"
    fi
    moment="$delay ms after its start"
    [ "$target" -gt "$from" ] && moment="$delay ms after checkpoint step-$target"
    echo "kill $landed: resumed from step $from, killed $moment: newest step-$(newest "$run")$partial"
done
[ "$landed" = "$kills" ] || fail "the run finished after $landed of $kills kills"
echo "$mid_write kills landed during a checkpoint write"

train "$run" >"$SCRATCH/log" 2>&1 || { fail "the last resume failed"; cat "$SCRATCH/log" >&2; }
if cmp -s <(metrics "$SCRATCH/whole/metrics.jsonl") <(metrics "$run/metrics.jsonl"); then
    echo "ok: metrics.jsonl equal to the uninterrupted run's (timings aside)"
else
    fail "metrics.jsonl differs from the uninterrupted run's:"
    diff <(metrics "$SCRATCH/whole/metrics.jsonl") <(metrics "$run/metrics.jsonl") | head -n 20 >&2
fi
for f in model optimizer; do
    if cmp "$SCRATCH/whole/checkpoint/step-40/$f.safetensors" "$run/checkpoint/step-40/$f.safetensors"; then
        echo "ok: step-40/$f.safetensors byte-identical"
    else
        fail "step-40/$f.safetensors differs from the uninterrupted run's"
    fi
done
finish
