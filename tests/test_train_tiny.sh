#!/usr/bin/env bash
# The tiny GLA learns English on the CPU: the mean loss of the last 20 of 300
# steps falls below 60% of the first step's; with stdout not a terminal the
# progress is one line per metrics.log_freq steps; --arch PATH.so trains exactly like
# --arch NAME; the resolved config.ini reproduces the run.
. "$(dirname "$0")/lib.sh"
need_corpus

loss_summary() { # first-step loss, mean of the last 20, number of rows
    awk '{ match($0, /"loss": [^,]*/); l[NR] = substr($0, RSTART + 8, RLENGTH - 8) }
         END { s = 0; for (i = NR - 19; i <= NR; i++) s += l[i]; print l[1], s / 20, NR }' "$1"
}

run="$SCRATCH/run"
if ! "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$CORPUS" \
        --job.dump_folder "$run" --training.steps 300 >"$SCRATCH/log" 2>&1; then
    fail "training failed"; cat "$SCRATCH/log" >&2
else
    read -r first last20 rows < <(loss_summary "$run/metrics.jsonl")
    echo "first loss $first, mean of the last 20: $last20, $rows rows"
    [ "$rows" = 300 ] || fail "expected 300 metrics rows, got $rows"
    awk -v a="$last20" -v b="$first" 'BEGIN { exit !(a < 0.6 * b) }' ||
        fail "loss did not fall below 60%: first $first, last 20 mean $last20"
    grep -q '"tokens_per_s"' "$run/metrics.jsonl" || fail "metrics rows lack tokens_per_s"
fi

# a batch job's log (stdout a file): step 1, then one line per metrics.log_freq
# steps and the last, each with the tokens seen (4 x 128 a step) and the time
"$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$CORPUS" \
    --job.dump_folder "$SCRATCH/logged" --training.steps 25 --training.batch_size 4 \
    --training.seq_len 128 --metrics.log_freq 10 >"$SCRATCH/out" 2>"$SCRATCH/err" || fail "the logged run failed"
steps=$(sed -n 's/^step *\([0-9]*\)\/25 .*tokens \([0-9]*\)  elapsed [0-9]*:[0-9][0-9]  eta .*/\1:\2/p' "$SCRATCH/out" | tr '\n' ' ')
[ "$steps" = "1:512 10:5120 20:10240 25:12800 " ] && echo "ok: progress lines at steps 1, 10, 20, 25 with tokens and time" ||
    { fail "progress lines (step:tokens) '$steps', expected 1:512 10:5120 20:10240 25:12800"; cat "$SCRATCH/out"; }
rows=$(sed -n 's/^{"step": \([0-9]*\), "tokens": \([0-9]*\),.*/\1:\2/p' "$SCRATCH/logged/metrics.jsonl" | tr '\n' ' ')
[ "$rows" = "10:5120 20:10240 25:12800 " ] && echo "ok: metrics.jsonl rows at 10, 20, 25" ||
    fail "metrics.jsonl rows '$rows', expected 10:5120 20:10240 25:12800"

# --arch PATH.so and --arch NAME: the same plugin, the same numbers
short() { "$FLAME_RUN" --config "$CONFIGS/gla-tiny.ini" --training.dataset "$CORPUS" \
          --training.steps 5 "$@" >/dev/null 2>&1; }
short --arch gla --job.dump_folder "$SCRATCH/by-name" || fail "--arch gla failed"
short --arch "$GLA_SO" --job.dump_folder "$SCRATCH/by-path" || fail "--arch $GLA_SO failed"
strip_speed() { sed 's/"tokens_per_s": [^,]*,//; s/"mem_gib": [^,]*,//' "$1"; }
cmp -s <(strip_speed "$SCRATCH/by-name/metrics.jsonl") <(strip_speed "$SCRATCH/by-path/metrics.jsonl") ||
    fail "--arch PATH.so and --arch gla gave different losses"

# the written config.ini, given back as --config, reproduces the run
"$FLAME_RUN" --arch gla --config "$SCRATCH/by-name/config.ini" \
    --job.dump_folder "$SCRATCH/again" >/dev/null 2>&1 || fail "config.ini did not load back"
cmp -s <(strip_speed "$SCRATCH/by-name/metrics.jsonl") <(strip_speed "$SCRATCH/again/metrics.jsonl") ||
    fail "a run from the written config.ini differs"

finish
