#!/usr/bin/env bash
# tools/gpu_ab.sh's bookkeeping, with stand-ins: two bundles whose flame-bench
# prints a fixed tokens/s per row (A: GPT 500, 480 in the second round, the
# others 100 and 99; B: 550, 110, 109) and an nvidia-smi that answers. The
# means and changes it prints are then known: GPT 490 against 550 (+12.2 %),
# transformer +10.0 %, GLA +10.1 %; the two builds alternate, each run given
# its row's flame-bench arguments; GPU_AB_ROWS runs only the rows it names;
# a failing run is a FAIL line and exit 1;
# wrong arguments exit 2; without a GPU it says so and exits 0.
. "$(dirname "$0")/lib.sh"
AB="$top_srcdir/tools/gpu_ab.sh"
cd "$top_srcdir" || exit 1

fake_bench() { # BUNDLE GPT TRANSFORMER GLA [GPT's second round]
    mkdir -p "$1/bin" "$1/lib"
    cat >"$1/bin/flame-bench" <<SH
#!/bin/sh
echo "\$*" >> "$1/calls"
case "\$*" in
*"--arch gpt "*) if [ -f "$1/once" ]; then t=${5:-$2}; else t=$2; touch "$1/once"; fi ;;
*"--arch transformer "*) t=$3 ;;
*"--arch gla "*) t=$4 ;;
*) echo "unexpected arguments: \$*" >&2; exit 3 ;;
esac
echo "tokens/s: \$t"
echo "peak memory: 1.00 GiB (device memory in use, context included)"
SH
    chmod +x "$1/bin/flame-bench"
}
fake_bench "$SCRATCH/A" 500 100 99 480
fake_bench "$SCRATCH/B" 550 110 109
mkdir -p "$SCRATCH/path"
printf '#!/bin/sh\necho "GPU 0: a stand-in"\n' >"$SCRATCH/path/nvidia-smi"
chmod +x "$SCRATCH/path/nvidia-smi"

PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" 2 "$SCRATCH/logs" >"$SCRATCH/out" 2>&1
status=$?
[ $status -eq 0 ] || fail "two good builds: exit $status: $(cat "$SCRATCH/out")"
grep -Eq '^gpt2s +A +490 +B +550 tokens/s +B/A \+12\.2 %$' "$SCRATCH/out" || fail "GPT's row: $(cat "$SCRATCH/out")"
grep -Eq '^transformer +A +100 +B +110 tokens/s +B/A \+10\.0 %$' "$SCRATCH/out" || fail "transformer's row"
grep -Eq '^gla +A +99 +B +109 tokens/s +B/A \+10\.1 %$' "$SCRATCH/out" || fail "GLA's row"
order=$(grep -oE '^(gpt2s|transformer|gla) [AB] round [12]' "$SCRATCH/out" | tr '\n' ',')
want="gpt2s A round 1,transformer A round 1,gla A round 1,gpt2s B round 1,transformer B round 1,gla B round 1,"
want="${want}gpt2s A round 2,transformer A round 2,gla A round 2,gpt2s B round 2,transformer B round 2,gla B round 2,"
[ "$order" = "$want" ] || fail "the runs' order: $order"
[ "$(grep -c -- '--arch gpt .*--training.batch_size 32 --training.seq_len 1024' "$SCRATCH/A/calls")" -eq 2 ] ||
    fail "GPT's arguments: $(cat "$SCRATCH/A/calls")"
[ "$(grep -c -- '--model.config configs/gla-340M.ini --training.batch_size 8 --training.seq_len 2048' \
    "$SCRATCH/B/calls")" -eq 2 ] || fail "GLA's arguments: $(cat "$SCRATCH/B/calls")"

# GPU_AB_ROWS: only the rows named
GPU_AB_ROWS="transformer" PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" 1 "$SCRATCH/logs1" \
    >"$SCRATCH/out" 2>&1 || fail "GPU_AB_ROWS=transformer: exit $?"
order=$(grep -oE '^(gpt2s|transformer|gla) [AB] round [12]' "$SCRATCH/out" | tr '\n' ',')
[ "$order" = "transformer A round 1,transformer B round 1," ] || fail "GPU_AB_ROWS=transformer ran: $order"
grep -Eq '^transformer +A +100 +B +110 tokens/s +B/A \+10\.0 %$' "$SCRATCH/out" || fail "the one row's mean"
GPU_AB_ROWS="gpt2s llama" PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" 1 >"$SCRATCH/out" 2>&1
status=$?
if [ $status -ne 2 ] || ! grep -q "no row 'llama'" "$SCRATCH/out"; then
    fail "an unknown row: exit $status: $(cat "$SCRATCH/out")"
fi
GPU_AB_ROWS="  " PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" 1 >"$SCRATCH/out" 2>&1
status=$?
if [ $status -ne 2 ] || ! grep -q "names no row" "$SCRATCH/out"; then
    fail "GPU_AB_ROWS of spaces: exit $status: $(cat "$SCRATCH/out")"
fi

printf '#!/bin/sh\necho "error: out of memory" >&2\nexit 1\n' >"$SCRATCH/B/bin/flame-bench"
PATH="$SCRATCH/path:$PATH" "$AB" "$SCRATCH/A" "$SCRATCH/B" 1 "$SCRATCH/logs2" >"$SCRATCH/out" 2>&1
status=$?
[ $status -eq 1 ] || fail "a failing build: exit $status, expected 1"
grep -q '^FAIL  transformer B round 1 (exit 1): error: out of memory$' "$SCRATCH/out" ||
    fail "a failing run's line: $(cat "$SCRATCH/out")"

for args in "$SCRATCH/A" "$SCRATCH/A $SCRATCH/nowhere" "$SCRATCH/A $SCRATCH/B 0" "$SCRATCH/A $SCRATCH/B two"; do
    # shellcheck disable=SC2086 # the arguments are words on purpose
    refuses_words "$AB" $args
done
skips_without_gpu "$AB" "$SCRATCH/A" "$SCRATCH/B"
finish
