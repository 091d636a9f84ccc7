#!/usr/bin/env bash
# Checkpoints and resume: a run stopped after step 20 and started again with the
# same command logs the same losses at steps 21-40 as an uninterrupted run;
# keep_latest_k prunes; load_step picks a checkpoint; a seed checkpoint holds the
# initial weights; a checkpoint of another shape, a damaged one, or a missing
# step is refused with its exit status.
. "$(dirname "$0")/lib.sh"
need_corpus
head -c 300000 "$CORPUS" >"$SCRATCH/text.txt"

train() { # train FOLDER [OPTION VALUE]...
    local folder=$1; shift
    exec_or_run "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
        --job.dump_folder "$folder" --training.batch_size 4 --training.seq_len 128 \
        --lr_scheduler.warmup_steps 5 --lr_scheduler.decay_ratio 0.5 "$@"
}
exec_or_run() { "$@"; }
losses() { sed 's/"tokens_per_s": [^,]*,//; s/"mem_gib": [^,]*,//' "$1"; }
newest_step() { ls "$1/checkpoint" | sed -n 's/^step-//p' | sort -n | tail -n 1; }

# --- exact resume: 40 steps at once; and the same command stopped after the
# step-20 checkpoint (SIGKILL: nothing saved after it, or SIGTERM: flame-run
# saves the step it is in and stops), then run again ---
train "$SCRATCH/whole" --training.steps 40 --checkpoint.interval 20 >/dev/null ||
    fail "the 40-step run failed"

# stop_after_step_20 SIGNAL FOLDER: prints the newest checkpoint's step once stopped
stop_after_step_20() {
    local signal=$1 folder=$2 attempt pid
    for attempt in 1 2 3; do
        rm -rf "$folder"
        # exec: the signal must reach flame-run itself, not a subshell
        (exec_or_run() { exec "$@"; }; train "$folder" --training.steps 40 --checkpoint.interval 20) \
            >"$SCRATCH/stop.log" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && [ ! -e "$folder/checkpoint/step-20/trainer.json" ]; do
            sleep 0.01
        done
        kill "-$signal" "$pid" 2>/dev/null
        wait "$pid" && continue # it ended before the signal came: try again
        newest_step "$folder"
        return
    done
}

resume_matches() { # FOLDER FROM_STEP: the rerun resumes and equals the whole run
    train "$1" --training.steps 40 --checkpoint.interval 20 >"$SCRATCH/log" || fail "the rerun failed"
    grep -q "resuming from .*step-$2\$" "$SCRATCH/log" || fail "the rerun did not resume from step-$2"
    if cmp -s <(losses "$SCRATCH/whole/metrics.jsonl") <(losses "$1/metrics.jsonl"); then
        echo "ok: stopped after step $2, resumed: steps 1-40 identical to one run"
    else
        fail "resumed run differs from the uninterrupted one"
        diff <(losses "$SCRATCH/whole/metrics.jsonl") <(losses "$1/metrics.jsonl") | head >&2
    fi
}

step=$(stop_after_step_20 KILL "$SCRATCH/killed")
if [ "$step" != 20 ]; then
    fail "could not kill a run between its step-20 and step-40 checkpoints (newest: '$step')"
else
    resume_matches "$SCRATCH/killed" 20
fi

step=$(stop_after_step_20 TERM "$SCRATCH/stopped")
if [ -z "$step" ] || [ "$step" -lt 20 ] || [ "$step" -ge 40 ]; then
    fail "could not stop a run between steps 20 and 40 (newest: '$step')"
else
    grep -q "interrupted after step $step; checkpoint saved" "$SCRATCH/stop.log" ||
        fail "SIGTERM: no interruption message: $(cat "$SCRATCH/stop.log")"
    resume_matches "$SCRATCH/stopped" "$step"
fi

# --- a finished run rerun: nothing to do, nothing changed ---
cp "$SCRATCH/whole/metrics.jsonl" "$SCRATCH/before.jsonl"
train "$SCRATCH/whole" --training.steps 40 --checkpoint.interval 20 >/dev/null ||
    fail "rerunning a finished run failed"
cmp -s "$SCRATCH/before.jsonl" "$SCRATCH/whole/metrics.jsonl" ||
    fail "rerunning a finished run changed metrics.jsonl"

# --- keep_latest_k and load_step N ---
kept="$SCRATCH/kept"
train "$kept" --training.steps 20 --checkpoint.interval 5 --checkpoint.keep_latest_k 2 >/dev/null
[ "$(ls "$kept/checkpoint" | tr '\n' ' ')" = "step-15 step-20 " ] ||
    fail "keep_latest_k 2 left: $(ls "$kept/checkpoint" | tr '\n' ' ')"
cp "$kept/metrics.jsonl" "$SCRATCH/kept.jsonl"
train "$kept" --training.steps 20 --checkpoint.interval 5 --checkpoint.load_step 15 \
    >"$SCRATCH/log" || fail "load_step 15 failed"
grep -q "resuming from .*step-15" "$SCRATCH/log" || fail "load_step 15 did not load step-15"
cmp -s <(losses "$SCRATCH/kept.jsonl") <(losses "$kept/metrics.jsonl") ||
    fail "steps 16-20 from step-15 differ"
expect_error 2 "load_step = 7.*step-7" -- \
    train "$kept" --training.steps 20 --checkpoint.load_step 7

# --- a seed checkpoint holds the initial weights: training from it is training from scratch ---
seed="$SCRATCH/seed"
train "$seed" --checkpoint.create_seed_checkpoint >/dev/null || fail "create_seed_checkpoint failed"
[ -f "$seed/checkpoint/step-0/model.safetensors" ] || fail "no step-0 seed checkpoint"
train "$seed" --training.steps 5 --checkpoint.load_step 0 >"$SCRATCH/log" ||
    fail "training from the seed checkpoint failed"
grep -q "resuming from .*step-0" "$SCRATCH/log" || fail "load_step 0 did not load step-0"
train "$SCRATCH/scratch" --training.steps 5 >/dev/null
cmp -s <(losses "$seed/metrics.jsonl") <(losses "$SCRATCH/scratch/metrics.jsonl") ||
    fail "training from the seed checkpoint differs from training from scratch"

# --- refusals ---
expect_error 2 "model.embeddings.weight is F32 \[257, 64\], the model needs F32 \[257, 32\]" -- \
    train "$kept" --training.steps 30 --model.hidden_size 32
damaged="$SCRATCH/damaged"
cp -r "$kept" "$damaged"
model="$damaged/checkpoint/step-20/model.safetensors"
truncate -s $(( $(stat -c %s "$model") - 100 )) "$model"
expect_error 3 "model.safetensors" -- train "$damaged" --training.steps 30
printf 'garbage!garbage!garbage' >"$model"
expect_error 3 "model.safetensors" -- train "$damaged" --training.steps 30
printf '{"step": ' >"$damaged/checkpoint/step-15/trainer.json"
expect_error 3 "trainer.json" -- train "$damaged" --training.steps 30 --checkpoint.load_step 15

finish
