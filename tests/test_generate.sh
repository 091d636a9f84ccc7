#!/usr/bin/env bash
# Generation on the CPU, for the tiny GLA (a recurrent state), GSA (two),
# Mamba2 (the scan's state and the convolutions' windows), Based (a
# convolution's window, the Taylor sums, a sliding window's cache), the
# tiny transformer (a key and value cache; also with a sliding window) and the
# tiny GPT (a cache and a position table; also with rotary on half a head):
#  - logits by decode steps, position by position, equal the full forward's at
#    every position of three rows (tests/logits_tool --decode; under 1e-5), on
#    weights drawn with std 0.2, and they carry context: two rows that differ
#    only in their first token differ at the last position (with a window of
#    5 over 2 layers, at position 3, and not at the last);
#  - trained on a repeated phrase, GLA and the transformer generate the phrase
#    greedily from its first words;
#  - sampling: the same seed the same text, top_k 1 and a tiny top_p the
#    greedy text;
#  - from the model's Hugging Face folder (flame-convert to-hf), the same
#    text as from its checkpoint;
#  - mistakes are one line: a bad number (a plugin without a decode path:
#    tests/test_out_of_tree.sh).
# Where a GPU answers, the same on CUDA (bf16): the decode path's logits no
# further from the CPU's forward (‖decode − cpu‖ / ‖cpu‖) than the CUDA
# forward's own are, within a quarter of that plus 2e-3 (on an H200 both sit at
# 0.9e-2 to 2.1e-2 with these weights of std 0.2, the CPU's decode being exact);
# the phrase generated on the GPU. Without one the CUDA half is skipped with
# its reason.
. "$(dirname "$0")/lib.sh"
GENERATE="$top_builddir/flame-generate"
LOGITS="$top_builddir/tests/logits_tool"
for i in $(seq 300); do echo "{\"text\": \"line $i of the data\"}"; done >"$SCRATCH/data.jsonl"

# three rows of 24 ids; row 1 is row 0 with another first token
python3 - >"$SCRATCH/tokens.txt" <<'PY'
import random
random.seed(5)
rows = [[random.randrange(257) for _ in range(24)] for _ in range(2)]
rows.insert(1, [(rows[0][0] + 1) % 257] + rows[0][1:])
for r in rows:
    print(" ".join(map(str, r)))
PY
parity() { # NAME ARCH WINDOW [ARG...]
    local name=$1 arch=$2 window=$3; shift 3
    "$FLAME_RUN" --arch "$arch" --config "$CONFIGS/$arch-tiny.ini" --training.dataset "$SCRATCH/data.jsonl" \
        --job.dump_folder "$SCRATCH/$name" --checkpoint.create_seed_checkpoint \
        --model.initializer_range 0.2 "$@" >/dev/null 2>&1 || { fail "$name: no seed checkpoint"; return; }
    local devices=cpu mode device
    [ -n "$GPU" ] && devices="cpu cuda"
    for device in $devices; do
        for mode in forward decode; do
            "$LOGITS" --arch "$arch" --model.config "$CONFIGS/$arch-tiny.ini" "$@" --device $device \
                --weights "$SCRATCH/$name/checkpoint/step-0/model.safetensors" --tokens "$SCRATCH/tokens.txt" \
                --output "$SCRATCH/$name-$device-$mode.safetensors" $([ $mode = decode ] && echo --decode) \
                >/dev/null 2>"$SCRATCH/err" || { fail "$name: logits_tool $device $mode: $(cat "$SCRATCH/err")"; return; }
        done
    done
    python3 - "$SCRATCH/$name" "$window" "$devices" <<'PY' || fail "$name: decode logits differ from the forward's"
import sys
import numpy as np
from safetensors.numpy import load_file
base, windowed, devices = sys.argv[1], sys.argv[2] != "0", sys.argv[3].split()
name = base.split('/')[-1]
def logits(device, mode):
    return load_file(f"{base}-{device}-{mode}.safetensors")["logits"].reshape(3, 24, -1)
full, step = logits("cpu", "forward"), logits("cpu", "decode")
diff = float(np.abs(full - step).max())
at = 3 if windowed else 23
context = float(np.abs(step[0, at] - step[1, at]).max())
ok = diff < 1e-5 and context > 1e-3
if windowed:  # beyond the window's reach the first token changes nothing
    ok &= float(np.abs(step[0, -1] - step[1, -1]).max()) == 0
print(f"{'ok' if ok else 'FAIL'}: {name}: decode vs forward max |diff| {diff:.2e} over "
      f"3 x 24 positions (logits up to {float(np.abs(full).max()):.2f}); the first token changes "
      f"position {at}'s logits by {context:.3f}{', the last not at all' if windowed else ''}")
if "cuda" in devices:
    rel = lambda x: float(np.linalg.norm(x - full) / np.linalg.norm(full))
    fwd, dec = rel(logits("cuda", "forward")), rel(logits("cuda", "decode"))
    good = dec <= 1.25 * fwd + 2e-3
    ok &= good
    print(f"{'ok' if good else 'FAIL'}: {name} on CUDA: decode {dec:.2e}, forward {fwd:.2e} "
          f"from the CPU's logits (relative norm)")
sys.exit(0 if ok else 1)
PY
}
# a GPU to compare on: empty when logits_tool cannot open one (the reason printed)
GPU=cuda
printf '1 2\n' >"$SCRATCH/probe.txt"
if ! "$LOGITS" --arch gla --model.config "$CONFIGS/gla-tiny.ini" --device cuda --tokens "$SCRATCH/probe.txt" \
    --weights /nonexistent --output "$SCRATCH/probe.safetensors" 2>"$SCRATCH/err" >/dev/null &&
    grep -q -- "--device cuda" "$SCRATCH/err"; then
    echo "SKIP (CUDA half): $(cat "$SCRATCH/err")"
    GPU=
fi
if python3 -c "import numpy, safetensors" 2>/dev/null; then
    parity gla gla 0
    parity transformer transformer 0
    parity window transformer 5 --model.window_size 5
    parity gsa gsa 0
    parity mamba2 mamba2 0
    parity based based 0
    parity based-window based 0 --model.window_size 6
    parity gpt gpt 0
    parity gpt-rotary gpt 0 --model.n_positions 0 --model.rotary_emb_fraction 0.5
else
    echo "note: numpy or safetensors is not installed: decode logits not compared"
fi

# the phrase, greedily, from its first words
python3 -c "print('the quick brown fox jumps over the lazy dog. ' * 300)" >"$SCRATCH/phrase.txt"
want="the quick brown fox jumps over the lazy dog. the quick brown fox"
for arch in gla transformer; do
    "$FLAME_RUN" --arch $arch --config "$CONFIGS/$arch-tiny.ini" --training.dataset "$SCRATCH/phrase.txt" \
        --job.dump_folder "$SCRATCH/p-$arch" --training.steps 80 --training.batch_size 4 \
        --training.seq_len 64 --optimizer.lr 3e-3 >/dev/null 2>&1 || { fail "$arch: training failed"; continue; }
    out=$("$GENERATE" --checkpoint "$SCRATCH/p-$arch/checkpoint/step-80" --prompt "the quick" \
        --max_new_tokens 60 2>"$SCRATCH/err")
    case "$out" in
    "$want"*) echo "ok: $arch: \"$out\"; $(cat "$SCRATCH/err")" ;;
    *) fail "$arch: generated \"$out\", expected it to start \"$want\"" ;;
    esac
    [ -n "$GPU" ] || continue
    out=$("$GENERATE" --checkpoint "$SCRATCH/p-$arch/checkpoint/step-80" --prompt "the quick" \
        --max_new_tokens 60 --training.device cuda 2>"$SCRATCH/err")
    case "$out" in
    "$want"*) echo "ok: $arch on CUDA: \"$out\"; $(cat "$SCRATCH/err")" ;;
    *) fail "$arch on CUDA: generated \"$out\", expected it to start \"$want\"" ;;
    esac
done

# the same model from its Hugging Face folder: the same text, the temporary
# conversion gone afterwards; a folder that is not a model is one line
"$top_builddir/flame-convert" to-hf --checkpoint "$SCRATCH/p-gla/checkpoint/step-80" --output "$SCRATCH/p-gla-hf" \
    >/dev/null 2>&1 || fail "to-hf of the phrase model failed"
mkdir -p "$SCRATCH/tmp"
from_ckpt=$("$GENERATE" --checkpoint "$SCRATCH/p-gla/checkpoint/step-80" --prompt "the quick" --max_new_tokens 60 2>/dev/null)
from_hf=$(TMPDIR="$SCRATCH/tmp" "$GENERATE" --checkpoint "$SCRATCH/p-gla-hf" --prompt "the quick" --max_new_tokens 60 2>"$SCRATCH/err")
[ -n "$from_hf" ] && [ "$from_hf" = "$from_ckpt" ] && [ -z "$(ls "$SCRATCH/tmp")" ] &&
    echo "ok: from the HF folder the same text: \"$from_hf\"; its temporary conversion removed" ||
    fail "from the HF folder: \"$from_hf\" ($(cat "$SCRATCH/err")), from the checkpoint \"$from_ckpt\"; left: $(ls "$SCRATCH/tmp")"
mkdir -p "$SCRATCH/not-hf" && echo '{"model_type": "nonesuch"}' >"$SCRATCH/not-hf/config.json"
expect_error 4 "flame-generate: --checkpoint $SCRATCH/not-hf: .*nonesuch" "$GENERATE" --checkpoint "$SCRATCH/not-hf" --prompt x

gen() { "$GENERATE" --checkpoint "$SCRATCH/p-gla/checkpoint/step-80" --prompt "the" --max_new_tokens 40 "$@" 2>/dev/null; }
greedy=$(gen)
a=$(gen --temperature 1.5 --seed 7) && b=$(gen --temperature 1.5 --seed 7) && c=$(gen --temperature 1.5 --seed 8)
[ "$a" = "$b" ] && [ "$a" != "$c" ] && echo "ok: seed 7 twice the same text, seed 8 another" ||
    fail "sampling with seeds: '$a' / '$b' / '$c'"
[ "$(gen --temperature 1.5 --top_k 1)" = "$greedy" ] && [ "$(gen --temperature 1.5 --top_p 0.000001)" = "$greedy" ] &&
    echo "ok: top_k 1 and top_p 1e-6 give the greedy text" || fail "top_k 1 or top_p 1e-6 is not greedy"
samples=$(gen --num_samples 3 --temperature 1 | grep -c "^--- sample [123] ---$")
[ "$samples" = 3 ] && echo "ok: three samples printed in turn" || fail "--num_samples 3 printed $samples samples"

p80=(--checkpoint "$SCRATCH/p-gla/checkpoint/step-80" --prompt x)
expect_error 2 "flame-generate: --num_samples 0: expected a number from 1 to 4096" "$GENERATE" "${p80[@]}" --num_samples 0
expect_error 2 "flame-generate: --temperature -1: expected a number from 0 to 100" "$GENERATE" "${p80[@]}" --temperature -1
expect_error 2 "flame-generate: \[checkpoint\] load_step = 81: there is no .*step-81" \
    "$GENERATE" --checkpoint "$SCRATCH/p-gla/checkpoint/step-81" --prompt x
finish
