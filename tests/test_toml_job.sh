#!/usr/bin/env bash
# A TOML job file of fla-org/flame's kind runs unchanged through
# --job.config_file: this test writes one with every section and key that
# flame/models/fla.toml has (hub names in it, a local dataset, model config and
# tokenizer given on the command line, as a user of that file would), and
# checks that its values take effect with the file's line as their source,
# that each key only the Python stack reads is reported exactly once, and that
# training runs. A TOML syntax error or an unknown key is one line naming the
# file and line, exit 2. With FLA_FLAME_PATH naming a fla-org/flame checkout,
# its own flame/models/fla.toml is run the same way.
. "$(dirname "$0")/lib.sh"

cat >"$SCRATCH/fla.toml" <<'TOML'
[model]
config = "fla-hub/transformer-1.3B-100B"
tokenizer_path = "fla-hub/transformer-1.3B-100B"

[job]
dump_folder = "exp"
print_args = true

[training]
batch_size = 32
seq_len = 2048
context_len = 2048
gradient_accumulation_steps = 1
steps = 20480
max_norm = 1.0
skip_nan_inf = true
data_parallel_replicate_degree = 1
data_parallel_shard_degree = -1
tensor_parallel_degree = 1
compile = false
dataset = "HuggingFaceFW/fineweb-edu"
dataset_name = "default"
num_workers = 32
pin_memory = false
persistent_workers = false
prefetch_factor = 2
seed = 42
varlen = false

[optimizer]
name = "AdamW"
eps = 1e-15
lr = 3e-4

[lr_scheduler]
warmup_steps = 1024
decay_type = "cosine"
lr_min = 0.1

[checkpoint]
enable_checkpoint = true
folder = "checkpoint"
interval_type = "steps"
interval = 2048
model_weights_only = false
export_dtype = "float32"
async_mode = "disabled"    # ["disabled", "async", "async_with_pinned_mem"]

[profiling]
enable_profiling = true
save_traces_folder = "profile_trace"
profile_freq = 512

[metrics]
log_freq = 32
enable_wandb = true

[experimental]
context_parallel_degree = 1
pipeline_parallel_degree = 1

[float8]
enable_fsdp_float8_all_gather = false
precompute_float8_dynamic_scale_for_fsdp = false

[activation_checkpoint]
mode = "none"
TOML

text="$SCRATCH/text.txt"
write_sentences "$text" "the quick brown fox jumps over the lazy dog." "a job file of another trainer."

# a user's command: the file unchanged, the hub names replaced by local files
run_job() {
    "$FLAME_RUN" --arch gla --job.config_file "$1" --model.config "$CONFIGS/gla-tiny.ini" \
        --model.tokenizer_path byte --training.dataset "$text" --job.dump_folder "$2" \
        --training.steps 2 --training.batch_size 2 --training.seq_len 64 --training.num_workers 1 \
        --metrics.log_freq 1
}
run_job "$SCRATCH/fla.toml" "$SCRATCH/run" >"$SCRATCH/log" 2>&1 || { fail "the TOML job failed"; cat "$SCRATCH/log"; finish; }
rows=$(wc -l <"$SCRATCH/run/metrics.jsonl")
[ "$rows" = 2 ] && echo "ok: trained 2 steps" || fail "metrics.jsonl has $rows rows, expected 2"
# each value as --job.print_args prints it, with the file's line of it
line_of() { grep -n "^$1 = " "$SCRATCH/fla.toml" | cut -d: -f1; }
# (the parallel degrees of one process are flame's own keys: read, not ignored)
for kv in "lr 0.0003" "eps 1e-15" "decay_type cosine" "max_norm 1" "warmup_steps 1024" \
    "data_parallel_replicate_degree 1" "data_parallel_shard_degree -1" "tensor_parallel_degree 1" \
    "context_parallel_degree 1" "pipeline_parallel_degree 1"; do
    set -- $kv
    line="$1 = $2  ; $SCRATCH/fla.toml:$(line_of "$1")"
    grep -qF -- "$line" "$SCRATCH/log" && echo "ok: $line" || fail "the resolved config lacks '$line'"
done
ignored="compile dataset_name pin_memory persistent_workers interval_type model_weights_only
    async_mode enable_wandb enable_profiling save_traces_folder profile_freq
    enable_fsdp_float8_all_gather precompute_float8_dynamic_scale_for_fsdp mode"
want=0
for key in $ignored; do
    want=$((want + 1))
    n=$(grep -c "^flame-run: ignoring \[[a-z_0-9]*\] $key (" "$SCRATCH/log")
    [ "$n" = 1 ] || fail "$key reported $n times, expected once"
done
got=$(grep -c "^flame-run: ignoring " "$SCRATCH/log")
[ "$got" = "$want" ] && echo "ok: the $want keys only the Python stack reads, each reported once" ||
    fail "$got keys reported as ignored, expected $want"

bad() { printf "$2" >"$SCRATCH/$1"; expect_error 2 "$3" run_job "$SCRATCH/$1" "$SCRATCH/bad"; }
bad syntax.toml '[training]\nsteps = 3\nseq_len = = 4\n' "syntax.toml:3:[0-9]+: invalid TOML"
bad typo.toml '[training]\nsteps = 3\npin_memroy = false\n' "typo.toml:3: unknown key \[training\] pin_memroy \(did you mean pin_memory\?\)"
[ -e "$SCRATCH/bad/metrics.jsonl" ] && fail "a refused job file trained"

theirs="${FLA_FLAME_PATH:-}/flame/models/fla.toml"
if [ -n "${FLA_FLAME_PATH:-}" ] && [ -f "$theirs" ]; then
    run_job "$theirs" "$SCRATCH/theirs" >"$SCRATCH/log" 2>&1 && echo "ok: $theirs runs unchanged" ||
        { fail "$theirs failed"; cat "$SCRATCH/log"; }
else
    echo "note: FLA_FLAME_PATH unset: fla-org/flame's own fla.toml not run"
fi
finish
