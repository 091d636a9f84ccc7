#!/usr/bin/env bash
# Mistakes a user of fla-org/flame's commands makes, made loud:
#  - a hub name where flame wants a local path (training.dataset,
#    model.tokenizer_path, model.config): one line saying flame reads local
#    files and how to download that name, exit 2, nothing trained;
#  - ~ in a config file or after --key= (no shell expands it there) is $HOME;
#  - a vocab_size far above the tokenizer's (32000 with the byte tokenizer)
#    and a warmup longer than the run are warnings naming both numbers;
#  - the start-up line names the tokenizer and its size.
. "$(dirname "$0")/lib.sh"

export HOME="$SCRATCH/home"
mkdir -p "$HOME/data"
write_sentences "$HOME/data/text.txt" "the quick brown fox jumps over the lazy dog." "a user's mistakes."
run() { "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.steps 2 "$@"; }

expect_error 2 "dataset HuggingFaceFW/fineweb-edu: no such local path; flame reads local files: download .*huggingface-cli download --repo-type dataset HuggingFaceFW/fineweb-edu" \
    run --training.dataset HuggingFaceFW/fineweb-edu --job.dump_folder "$SCRATCH/hub1"
expect_error 2 "fla-hub/transformer-1.3B-100B: not a local file or folder; flame does not download: fetch it \(huggingface-cli download fla-hub/transformer-1.3B-100B" \
    run --training.dataset "$HOME/data/text.txt" --model.tokenizer_path fla-hub/transformer-1.3B-100B --job.dump_folder "$SCRATCH/hub2"
expect_error 2 "fla-hub/gla-340M: not a local file; flame does not download: fetch the model's config.json" \
    run --training.dataset "$HOME/data/text.txt" --model.config fla-hub/gla-340M --job.dump_folder "$SCRATCH/hub3"
for d in hub1 hub2 hub3; do [ -e "$SCRATCH/$d/metrics.jsonl" ] && fail "$d trained"; done

# ~ in a job file and after --key=, warnings, the start-up line
printf '[training]\ndataset = ~/data/text.txt\n' >"$HOME/job.ini"
"$FLAME_RUN" --arch gla --config=~/job.ini --model.config "$CONFIGS/gla-tiny.ini" --training.steps 2 \
    --job.dump_folder=~/run --model.vocab_size 32000 --lr_scheduler.warmup_steps 50 \
    >"$SCRATCH/out" 2>"$SCRATCH/err" || { fail "the run with ~ paths failed"; cat "$SCRATCH/err"; finish; }
[ -s "$HOME/run/metrics.jsonl" ] && echo "ok: ~ expanded in --config=, the job file's dataset and --job.dump_folder=" ||
    fail "no metrics in \$HOME/run"
grep -q "warning: \[model\] vocab_size = 32000 is 125 times the tokenizer's 257 ids (byte)" "$SCRATCH/err" &&
    echo "ok: vocab_size warning" || fail "no vocab_size warning: $(cat "$SCRATCH/err")"
grep -q "warning: \[lr_scheduler\] warmup_steps = 50 is longer than the run's 2 steps: the learning rate ends at 3.2e-05, never reaching optimizer.lr = 0.0008" "$SCRATCH/err" &&
    echo "ok: warmup warning" || fail "no warmup warning: $(cat "$SCRATCH/err")"
grep -q "on cpu, tokenizer byte (257 ids), output in $HOME/run" "$SCRATCH/out" &&
    echo "ok: the start-up line names the tokenizer" || fail "start-up line: $(grep '^flame-run: gla' "$SCRATCH/out")"
finish
