#!/usr/bin/env bash
# Data parallel on the CPU backend (Gloo), launched by flame-run --nproc and
# as torchrun launches (RANK, WORLD_SIZE, ... set by hand):
#  - 2 ranks of batch 2 give the loss curve of 1 rank of batch 4 (the same
#    rows: the data loader deals the global batch's rows out to the ranks),
#    with the optimizer state cut into the ranks' shards (ZeRO-1, the
#    default; the gradients sent a layer at a time during the backward) and
#    whole on each (data_parallel_shard_degree 1; sent at its end); sharded,
#    rank 0's peak memory is lower by the half of the moments it does not keep;
#    The two differ only in the order float sums are taken: the first 5 steps
#    agree within a relative 1e-6 (seen: 5e-8), and AdamW's updates grow that
#    rounding over the run, so 20 steps agree within 1e-3 (seen: 1.3e-4); rows
#    dealt out wrongly differ by far more from the first step on;
#  - 2 ranks of 2 micro-batches of 1 row give the same curve;
#  - NGPU=2 starts 2 ranks; under torchrun (TORCHELASTIC_USE_AGENT_STORE)
#    the ranks meet one port past MASTER_PORT, which torchrun's agent holds;
#  - 1 rank under launcher variables (torchrun --nproc_per_node 1) goes
#    through the collectives and gives the plain run's losses exactly;
#  - a checkpoint of 2 ranks resumes with 1, and one of 1 with 2, each ending
#    on the losses of the uninterrupted 1-rank run (within 1e-3);
#  - a rank killed mid-run ends the other at once (its connection closes),
#    a rank stopped (SIGSTOP: hung) within comm.train_timeout_seconds (5 here),
#    each non-zero with a line naming the rank; a rank killed under --nproc
#    makes the launcher stop the other and fail;
#  - SIGTERM to the --nproc launcher stops every rank after its step with a
#    checkpoint, which the same command resumes;
#  - bad launcher values and unbuilt parallelisms: exit 2 with one line.
. "$(dirname "$0")/lib.sh"
write_sentences "$SCRATCH/text.txt" "the fox jumps over the lazy dog." "a model learns from its data." \
    "ranks add their gradients together."

train() { # DUMP STEPS BATCH [flame-run arguments...]
    local dump=$1 steps=$2 batch=$3; shift 3
    exec_or_run "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" \
        --job.dump_folder "$dump" --training.steps "$steps" --training.batch_size "$batch" \
        --training.seq_len 32 --checkpoint.interval 10 --lr_scheduler.warmup_steps 5 "$@"
}
exec_or_run() { "$@"; }

# "step loss" per metrics row
losses() { sed -n 's/.*"step": \([0-9]*\),.*"loss": \([^,]*\),.*/\1 \2/p' "$1"; }

# same_losses A B FIRST LAST BOUND: steps FIRST..LAST of two metrics files within a relative BOUND
same_losses() {
    local worst
    worst=$(join <(losses "$1") <(losses "$2") | awk -v a="$3" -v b="$4" '
        $1 >= a && $1 <= b { n++; d = ($2 - $3) / $3; if (d < 0) d = -d; if (d > w) w = d }
        END { if (n != b - a + 1) print "missing"; else printf "%.2e", w }')
    if [ "$worst" = missing ]; then
        fail "steps $3-$4: rows missing in $1 or $2"
    elif awk -v w="$worst" -v bound="$5" 'BEGIN { exit !(w < bound) }'; then
        echo "ok: steps $3-$4 within a relative $worst of the 1-rank run (bound $5)"
    else
        fail "steps $3-$4: losses differ by a relative $worst (bound $5)"
    fi
}

if ! train "$SCRATCH/probe" 1 2 --nproc 2 >"$SCRATCH/log" 2>&1; then
    if grep -q "needs Gloo" "$SCRATCH/log"; then
        echo "SKIP: this build has no Gloo (install libgloo-dev and configure again)"
        exit 77
    fi
    fail "a 2-rank run of one step failed"; cat "$SCRATCH/log" >&2
fi

# the same global batch on 1 and 2 ranks
train "$SCRATCH/one" 20 4 >/dev/null 2>&1 || fail "the 1-rank run failed"
# each layer's gradients sent as the backward completes them (buckets of 0 MiB)
train "$SCRATCH/two" 20 2 --nproc 2 --comm.bucket_mb 0 >"$SCRATCH/log" 2>&1 ||
    { fail "the 2-rank run failed"; cat "$SCRATCH/log" >&2; }
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/two/metrics.jsonl" 1 5 1e-6
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/two/metrics.jsonl" 1 20 1e-3
# the optimizer state whole on both ranks (replicas, no shards): the same curve
train "$SCRATCH/replicas" 20 2 --nproc 2 --training.data_parallel_replicate_degree 2 \
    --training.data_parallel_shard_degree 1 >"$SCRATCH/log" 2>&1 || { fail "the 2-replica run failed"; cat "$SCRATCH/log" >&2; }
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/replicas/metrics.jsonl" 1 5 1e-6
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/replicas/metrics.jsonl" 1 20 1e-3
[ "$(grep -c '"step"' "$SCRATCH/two/metrics.jsonl")" = 20 ] || fail "the 2-rank run logged other than 20 rows"
grep -q "resuming\|flame-run: gla" "$SCRATCH/log" && [ "$(grep -c "^flame-run: gla" "$SCRATCH/log")" = 1 ] ||
    fail "the 2-rank run did not announce itself once (rank 0 alone writes)"

# ZeRO-1's memory: rank 0 of 2 holds half of AdamW's two moments, so a GLA of
# 117,026,816 parameters peaks 4 bytes a parameter (0.436 GiB) lower than with
# the moments whole on each rank; flame-bench's peak is rank 0's resident set
peak() { # SHARD_DEGREE REPLICATE_DEGREE
    "$top_builddir/flame-bench" --nproc 2 --arch gla --model.hidden_size 1024 --model.num_hidden_layers 4 \
        --model.vocab_size 32000 --training.device cpu --training.batch_size 1 --training.seq_len 16 \
        --bench.warmup_steps 1 --bench.steps 1 --training.data_parallel_shard_degree "$1" \
        --training.data_parallel_replicate_degree "$2" 2>&1 | sed -n 's/^peak memory: \([0-9.]*\) GiB.*/\1/p'
}
whole=$(peak 1 2) sharded=$(peak -1 1)
if [ -n "$whole" ] && [ -n "$sharded" ] &&
    awk -v a="$whole" -v b="$sharded" 'BEGIN { d = a - b; exit !(d > 0.436 * 0.75 && d < 0.436 * 1.25) }'; then
    echo "ok: rank 0's peak $whole GiB with the moments whole, $sharded GiB sharded (0.436 GiB expected less)"
else
    fail "peak memory whole ${whole:-?} GiB, sharded ${sharded:-?} GiB: expected about 0.436 GiB less sharded"
fi

# one rank as a launcher starts it (torchrun --nproc_per_node 1) takes the
# collectives' path, sums over one rank sent a layer at a time during the
# backward: the plain run's losses bit for bit
(export RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(( 20000 + RANDOM % 20000 ))
 train "$SCRATCH/alone" 20 4 --comm.bucket_mb 0) >/dev/null 2>&1 || fail "one rank under launcher variables failed"
cmp -s <(losses "$SCRATCH/one/metrics.jsonl") <(losses "$SCRATCH/alone/metrics.jsonl") &&
    echo "ok: one rank through the collectives: the plain run's 20 losses exactly" ||
    fail "one rank through the collectives differs from the plain run"

# a checkpoint of one world size resumes at the other: steps 11-20 again from
# step 10's checkpoint (the schedule is the 20-step run's either way)
cp -r "$SCRATCH/two" "$SCRATCH/two-one"
train "$SCRATCH/two-one" 20 4 --checkpoint.load_step 10 >"$SCRATCH/log" 2>&1 || fail "1 rank resuming at step 10 failed"
grep -q "resuming from .*step-10" "$SCRATCH/log" || fail "1 rank did not resume the 2-rank checkpoint"
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/two-one/metrics.jsonl" 11 20 1e-3
cp -r "$SCRATCH/one" "$SCRATCH/one-two"
train "$SCRATCH/one-two" 20 2 --nproc 2 --checkpoint.load_step 10 >"$SCRATCH/log" 2>&1 ||
    fail "2 ranks resuming at step 10 failed"
grep -q "resuming from .*step-10" "$SCRATCH/log" || fail "2 ranks did not resume the 1-rank checkpoint"
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/one-two/metrics.jsonl" 11 20 1e-3

# NGPU=2, as fla-org/flame's train.sh reads it: 2 ranks, the same rows
NGPU=2 train "$SCRATCH/ngpu" 5 2 >"$SCRATCH/log" 2>&1 || { fail "NGPU=2 failed"; cat "$SCRATCH/log" >&2; }
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/ngpu/metrics.jsonl" 1 5 1e-6

# 2 micro-batches of 1 row a rank: the rows of one rank of batch 4, the
# gradients sent during the second micro-batch's backward alone
train "$SCRATCH/accumulated" 5 1 --nproc 2 --training.gradient_accumulation_steps 2 --comm.bucket_mb 0 \
    >"$SCRATCH/log" 2>&1 || { fail "2 ranks accumulating 2 micro-batches failed"; cat "$SCRATCH/log" >&2; }
same_losses "$SCRATCH/one/metrics.jsonl" "$SCRATCH/accumulated/metrics.jsonl" 1 5 1e-6

# under torchrun the agent's store holds MASTER_PORT (it says so in
# TORCHELASTIC_USE_AGENT_STORE): rank 0 serves flame's one port up
port=$(( 20000 + RANDOM % 20000 ))
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(120)' "$port" &
agent=$!
sleep 0.5
agent_rank() { # RANK DUMP
    RANK=$1 WORLD_SIZE=2 LOCAL_RANK=$1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        TORCHELASTIC_USE_AGENT_STORE=True train "$2" 3 2
}
agent_rank 1 "$SCRATCH/agent" >/dev/null 2>&1 &
other=$!
agent_rank 0 "$SCRATCH/agent" >"$SCRATCH/log" 2>&1 || { fail "rank 0 beside a store on MASTER_PORT failed"; cat "$SCRATCH/log" >&2; }
wait "$other" || fail "rank 1 beside a store on MASTER_PORT failed"
kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null
[ "$(grep -c '"step"' "$SCRATCH/agent/metrics.jsonl" 2>/dev/null)" = 3 ] &&
    echo "ok: 2 ranks under TORCHELASTIC_USE_AGENT_STORE met one port past the agent's" ||
    fail "the run beside the agent's store did not log 3 steps"

# rank 1 of a torchrun-style launch killed: rank 0 ends within the timeout
port=$(( 20000 + RANDOM % 20000 ))
launch() { # RANK DUMP: this shell becomes the rank's flame-run
    export RANK=$1 WORLD_SIZE=2 LOCAL_RANK=$1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port
    exec_or_run() { exec "$@"; }
    # buckets of a layer: the failure meets the sums during the backward too
    train "$2" 100000 2 --comm.train_timeout_seconds 5 --checkpoint.interval 100000 --comm.bucket_mb 0
}
(launch 0 "$SCRATCH/killed") >/dev/null 2>"$SCRATCH/rank0.err" &
rank0=$!
(launch 1 "$SCRATCH/killed") >/dev/null 2>&1 &
rank1=$!
for _ in $(seq 300); do [ -s "$SCRATCH/killed/metrics.jsonl" ] && break; sleep 0.1; done
[ -s "$SCRATCH/killed/metrics.jsonl" ] || fail "the 2-rank run never logged a step"
kill -KILL "$rank1"
start=$(date +%s)
for _ in $(seq 300); do kill -0 "$rank0" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$rank0" 2>/dev/null; then
    fail "rank 0 still runs 30 s after rank 1 was killed"; kill -KILL "$rank0"
fi
wait "$rank0"; status=$?
took=$(( $(date +%s) - start ))
[ "$status" != 0 ] || fail "rank 0 exited 0 after rank 1 was killed"
grep -q "rank 0: .*failed" "$SCRATCH/rank0.err" || { fail "rank 0 said nothing of the failure"; cat "$SCRATCH/rank0.err" >&2; }
echo "ok: rank 1 killed; rank 0 ended in ${took} s with exit $status: $(tail -n 1 "$SCRATCH/rank0.err" | head -c 200)"

# rank 1 hung (stopped): rank 0 gives up after comm.train_timeout_seconds
port=$(( port + 1 ))
(launch 0 "$SCRATCH/hung") >/dev/null 2>"$SCRATCH/rank0.err" &
rank0=$!
(launch 1 "$SCRATCH/hung") >/dev/null 2>&1 &
rank1=$!
for _ in $(seq 300); do [ -s "$SCRATCH/hung/metrics.jsonl" ] && break; sleep 0.1; done
kill -STOP "$rank1"
start=$(date +%s)
for _ in $(seq 600); do kill -0 "$rank0" 2>/dev/null || break; sleep 0.1; done
kill -0 "$rank0" 2>/dev/null && { fail "rank 0 still runs 60 s after rank 1 hung"; kill -KILL "$rank0"; }
wait "$rank0"; status=$?
took=$(( $(date +%s) - start ))
kill -KILL "$rank1"; wait "$rank1" 2>/dev/null
[ "$status" != 0 ] && [ "$took" -ge 4 ] && [ "$took" -le 20 ] ||
    fail "rank 0 ended in $took s with exit $status after rank 1 hung (expected non-zero after about 5 s)"
grep -q "rank 0: .*failed" "$SCRATCH/rank0.err" || { fail "rank 0 said nothing of the hang"; cat "$SCRATCH/rank0.err" >&2; }
echo "ok: rank 1 hung; rank 0 ended in ${took} s with exit $status: $(tail -n 1 "$SCRATCH/rank0.err" | head -c 200)"

# the same under --nproc: the launcher stops the rest and fails
(exec_or_run() { exec "$@"; }; train "$SCRATCH/nproc-killed" 100000 2 --nproc 2 --checkpoint.interval 100000) \
    >/dev/null 2>"$SCRATCH/launcher.err" &
launcher=$!
for _ in $(seq 300); do [ -s "$SCRATCH/nproc-killed/metrics.jsonl" ] && break; sleep 0.1; done
victim=$(pgrep -P "$launcher" | tail -n 1)
[ -n "$victim" ] && kill -KILL "$victim" || fail "no rank process found under the launcher"
for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
kill -0 "$launcher" 2>/dev/null && { fail "the launcher still runs 30 s after a rank was killed"; kill -KILL "$launcher"; }
wait "$launcher"; status=$?
[ "$status" != 0 ] || fail "the launcher exited 0 after a rank was killed"
grep -q "killed by signal 9" "$SCRATCH/launcher.err" || fail "the launcher did not say which rank was killed"
echo "ok: --nproc 2 with a rank killed: exit $status"

# SIGTERM to the launcher: every rank ends its step, rank 0 saves a
# checkpoint, and the same command resumes from it
(exec_or_run() { exec "$@"; }; train "$SCRATCH/stopped" 100000 2 --nproc 2 --checkpoint.interval 100000) \
    >"$SCRATCH/log" 2>&1 &
launcher=$!
for _ in $(seq 300); do [ -s "$SCRATCH/stopped/metrics.jsonl" ] && break; sleep 0.1; done
kill -TERM "$launcher"
wait "$launcher"; status=$?
saved=$(ls "$SCRATCH/stopped/checkpoint" 2>/dev/null)
if [ "$status" = 1 ] && [ -n "$saved" ] && grep -q "interrupted after step" "$SCRATCH/log"; then
    step=${saved#step-}
    train "$SCRATCH/stopped" $((step + 2)) 2 --nproc 2 >"$SCRATCH/log" 2>&1 &&
        grep -q "resuming from .*step-$step" "$SCRATCH/log" &&
        echo "ok: SIGTERM to the launcher: exit 1, $saved saved, two more steps resumed from it" ||
        { fail "the stopped run did not resume from $saved"; cat "$SCRATCH/log" >&2; }
else
    fail "SIGTERM to the launcher: exit $status, checkpoints: ${saved:-none}"; cat "$SCRATCH/log" >&2
fi

# refused before anything runs
expect_error 2 "--nproc 0: expected a whole number of ranks" -- train "$SCRATCH/bad" 1 2 --nproc 0
expect_error 2 "NGPU" -- env NGPU=two "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini"
expect_error 2 "tensor_parallel_degree = 2: not built" -- train "$SCRATCH/bad" 1 2 --training.tensor_parallel_degree 2
expect_error 2 "\[comm\] bucket_mb = -1: expected a number from 0" -- train "$SCRATCH/bad" 1 2 --comm.bucket_mb -1
expect_error 2 "\[comm\] train_timeout_seconds = 0: expected a whole number from 1" -- \
    train "$SCRATCH/bad" 1 2 --comm.train_timeout_seconds 0
expect_error 2 "\[comm\] init_timeout_seconds" -- train "$SCRATCH/bad" 1 2 --comm.init_timeout_seconds soon
expect_error 2 "data_parallel_shard_degree = 0: expected -1" -- train "$SCRATCH/bad" 1 2 \
    --training.data_parallel_shard_degree 0
expect_error 2 "WORLD_SIZE is set but RANK is not" -- env WORLD_SIZE=2 "$FLAME_RUN" --arch gla \
    --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/text.txt" --job.dump_folder "$SCRATCH/bad"
expect_error 2 "data_parallel_shard_degree = 3 is not the run's 2 ranks" -- env RANK=0 WORLD_SIZE=2 \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" \
    --training.dataset "$SCRATCH/text.txt" --job.dump_folder "$SCRATCH/bad" --training.data_parallel_shard_degree 3
expect_error 2 "data_parallel_shard_degree = 2: shards over some of the 4 ranks" -- env RANK=0 WORLD_SIZE=4 \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" \
    --training.dataset "$SCRATCH/text.txt" --job.dump_folder "$SCRATCH/bad" --training.data_parallel_replicate_degree 2
[ ! -e "$SCRATCH/bad" ] || fail "a refused run left $SCRATCH/bad behind"

finish
