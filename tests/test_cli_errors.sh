#!/usr/bin/env bash
# Bad configuration gets one clear line and exit status 2, and nothing is written.
. "$(dirname "$0")/lib.sh"

data="$SCRATCH/data.txt"
printf 'Some English text for the model to read.\n%.0s' $(seq 50) >"$data"
out="$SCRATCH/out-folder"
run() { "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
        --job.dump_folder "$out" --training.steps 2 "$@"; }

ini() { printf '%b' "$2" >"$SCRATCH/$1"; echo "$SCRATCH/$1"; }

expect_error 2 "bad_key.ini:3: .*unknown key \[training\] stepz.*did you mean steps" -- \
    run --config "$(ini bad_key.ini '[training]\nbatch_size = 2\nstepz = 5\n')"
expect_error 2 "bad_section.ini:2: .*\[trainng\]" -- \
    run --config "$(ini bad_section.ini '; a comment\n[trainng]\nsteps = 5\n')"
expect_error 2 "bad_type.ini:2: .*\[training\] steps.*ten.*integer" -- \
    run --config "$(ini bad_type.ini '[training]\nsteps = ten\n')"
expect_error 2 "malformed.ini:2:" -- \
    run --config "$(ini malformed.ini '[training]\nthis line has no equals sign\n')"
expect_error 2 "command line.*\[training\] batch_size.*many.*integer" -- run --training.batch_size many
expect_error 2 "command line.*\[optimizer\] lr.*fast.*number" -- run --optimizer.lr fast
expect_error 2 "unknown key \[training\] bogus" -- run --training.bogus 1
expect_error 2 "no_such.ini.*cannot open" -- run --config "$SCRATCH/no_such.ini"
expect_error 2 "dataset.*missing.txt.*No such file" -- run --training.dataset "$SCRATCH/missing.txt"
expect_error 2 "bad.json:3:[0-9]+" -- \
    run --model.config "$(ini bad.json '{\n  "hidden_size": 64,\n  "num_heads": ,\n}\n')"
expect_error 2 "wrong_type.json.*hidden_size.*integer" -- \
    run --model.config "$(ini wrong_type.json '{"hidden_size": "big"}\n')"
expect_error 2 "gsa.json.*model_type.*gsa.*gla" -- \
    run --model.config "$(ini gsa.json '{"model_type": "gsa", "hidden_size": 64}\n')"
expect_error 2 "use_short_conv" -- run --model.use_short_conv true
expect_error 2 "num_heads" -- run --model.num_heads 3
expect_error 2 "decay_type.*expected linear, cosine or sqrt" -- run --lr_scheduler.decay_type step
expect_error 2 "batch_size = 0" -- run --training.batch_size 0
expect_error 2 "device = \"gpu\": expected auto, cuda or cpu" -- run --training.device gpu
expect_error 2 "vocab_size = 100 .*257" -- run --model.vocab_size 100
expect_error 2 "no architecture" -- "$FLAME_RUN" --config "$CONFIGS/gla-tiny.ini"
# runs that cannot fit are refused before anything is allocated, with the need and what there is
expect_error 2 "[0-9]+ parameters need [0-9.]+ GiB for weights and AdamW state; the cpu has [0-9.]+ GiB available" -- \
    run --model.hidden_size 65536
expect_error 2 "parameters need [0-9.]+ GiB .* the cpu has" -- run --model.num_hidden_layers 100000
expect_error 2 "the activations of 800000000 tokens need [0-9.]+ GiB; the cpu has [0-9.]+ GiB available" -- \
    run --training.seq_len 100000000
[ -e "$out" ] && fail "a failed run wrote $out"

finish
