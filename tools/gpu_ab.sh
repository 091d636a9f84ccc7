#!/bin/sh
# Two builds' training speed side by side on one GPU machine, in one call: the
# same flame-bench rows (GPT-2 small at 32 × 1024, transformer-340M and
# GLA-340M at 8 × 2048), each build's libflame and plugins in turn, the
# builds alternating ROUNDS times so that drift of the machine falls on both:
#   tools/gpu_ab.sh BUNDLE_A BUNDLE_B [ROUNDS [LOGS]]
# Each BUNDLE is what tools/gpu_bundle.sh made (bin/flame-bench, lib/ with
# libflame and the plugins' .so files); each build runs its own flame-bench.
# Run it from the top of the source tree (the configs are read from there).
# GPU_AB_ROWS, when set, names the rows to run (of gpt2s, transformer, gla;
# all three by default; one naming none is refused), for a call with little
# device time left.
# Prints a line per run (tokens/s and peak memory, "FAIL" and the log's last
# line when a run fails), then each row's mean tokens/s for A and B and B's
# change; exits 1 when a run failed, 2 on bad arguments.
set -u
usage() { echo "usage: $0 BUNDLE_A BUNDLE_B [ROUNDS [LOGS]]" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 4 ]; then usage; fi
for bundle in "$1" "$2"; do
    [ -d "$bundle" ] || { echo "$0: no folder $bundle" >&2; exit 2; }
done
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
rounds=${3:-2}
case $rounds in '' | *[!0-9]* | 0) echo "$0: ROUNDS must be a whole number above 0, not '$rounds'" >&2; exit 2 ;; esac
logs=${4:-$(mktemp -d)}
mkdir -p "$logs"
[ -f configs/gla-340M.ini ] || { echo "$0: run it from the top of the source tree" >&2; exit 2; }
for bundle in "$a" "$b"; do
    [ -x "$bundle/bin/flame-bench" ] || { echo "$0: no bin/flame-bench in $bundle" >&2; exit 2; }
done
rows=${GPU_AB_ROWS:-gpt2s transformer gla}
named=0
for row in $rows; do
    named=$((named + 1))
    case $row in gpt2s | transformer | gla) ;; *) echo "$0: GPU_AB_ROWS: no row '$row' (gpt2s, transformer, gla)" >&2; exit 2 ;; esac
done
[ $named -gt 0 ] || { echo "$0: GPU_AB_ROWS names no row (of gpt2s, transformer, gla)" >&2; exit 2; }
if ! nvidia-smi -L > /dev/null 2>&1; then
    echo "skip: no GPU here (nvidia-smi -L fails)"
    exit 0
fi

# flame-bench's arguments for a row
row_args() {
    case $1 in
    gpt2s) echo "--arch gpt --model.n_embd 768 --model.n_layer 12 --model.n_head 12 --model.pad_vocab_size_multiple 8" \
                "--model.scale_attn_by_inverse_layer_idx true --training.batch_size 32 --training.seq_len 1024" \
                "--bench.steps 10" ;;
    transformer) echo "--arch transformer --model.config configs/transformer-340M.ini" \
                      "--training.batch_size 8 --training.seq_len 2048" ;;
    gla) echo "--arch gla --model.config configs/gla-340M.ini --training.batch_size 8 --training.seq_len 2048" ;;
    esac
}

failed=0
results="$logs/results"
: > "$results"
for round in $(seq "$rounds"); do
    for side in A B; do
        if [ $side = A ]; then bundle=$a; else bundle=$b; fi
        for row in $rows; do
            log="$logs/$row-$side-$round.log"
            # shellcheck disable=SC2046 # the arguments are words on purpose
            LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64" FLAME_PLUGIN_PATH="$bundle/lib" \
                timeout 300 "$bundle/bin/flame-bench" $(row_args "$row") > "$log" 2>&1
            status=$?
            tokens=$(sed -n 's/^tokens\/s: //p' "$log")
            if [ $status -ne 0 ] || [ -z "$tokens" ]; then
                echo "FAIL  $row $side round $round (exit $status): $(tail -1 "$log")"
                failed=1
                continue
            fi
            echo "$row $side round $round: $tokens tokens/s, $(sed -n 's/^peak memory: //p' "$log")"
            echo "$row $side $tokens" >> "$results"
        done
    done
done
awk '{ sum[$1 " " $2] += $3; n[$1 " " $2]++ }
     END { split("gpt2s transformer gla", rows, " ")
           for (i = 1; i <= 3; i++) {
               r = rows[i]; ka = r " A"; kb = r " B"
               if (!n[ka] || !n[kb]) continue
               ma = sum[ka] / n[ka]; mb = sum[kb] / n[kb]
               printf "%-12s A %9.0f  B %9.0f tokens/s  B/A %+.1f %%\n", r, ma, mb, 100 * (mb / ma - 1) } }' "$results"
echo "logs in $logs"
exit $failed
