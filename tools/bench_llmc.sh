#!/usr/bin/env bash
# karpathy/llm.c's train_gpt2cu beside flame on one GPU: builds it from a
# copy of a checkout (bf16, no cuDNN, one GPU: no MPI, no NCCL; under CUDA 13,
# whose cudaMemAdvise takes a cudaMemLocation, the one call llm.c makes with a
# device number, in its managed-memory fallback, is rewritten to the host
# location it names), writes it a shard of
# random GPT-2 tokens in its data format (dev/data/data_common.py: a header of
# 256 int32, magic 20240520, version 1, the token count, then uint16 tokens),
# and trains a model it initializes itself (-e d12: GPT-2 small; d48: xl) for
# a few steps at batch B × T. Prints the steps' lines and, last,
#   llm.c tokens/s: N   (the mean over the steps after the first 5, from its ms per step)
# Usage: tools/bench_llmc.sh LLMC_CHECKOUT WORK_DIR [B=32] [T=1024] [STEPS=30] [MODEL=d12]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LLMC_CHECKOUT WORK_DIR [B] [T] [STEPS] [MODEL]" >&2; exit 2; }
src=$1 work=$2 B=${3:-32} T=${4:-1024} steps=${5:-30} model=${6:-d12}
[ -f "$src/train_gpt2.cu" ] || { echo "$0: $src: no train_gpt2.cu there" >&2; exit 2; }
mkdir -p "$work"
rm -rf "$work/llmc"
cp -r "$src" "$work/llmc"
if nvcc --version | grep -q "release 1[3-9]"; then
    sed -i 's/cudaMemAdviseSetPreferredLocation, cudaCpuDeviceId)/cudaMemAdviseSetPreferredLocation, cudaMemLocation{cudaMemLocationTypeHost, 0})/' \
        "$work/llmc/llmc/cuda_utils.cuh"
fi
make -C "$work/llmc" train_gpt2cu GPU_COMPUTE_CAPABILITY=90 NO_MULTI_GPU=1 NO_USE_MPI=1 USE_CUDNN=0 \
    >"$work/build.log" 2>&1 || { echo "$0: building train_gpt2cu failed, see $work/build.log" >&2; exit 1; }

# one shard serves training and validation: 4 M random tokens below 50257
python3 - "$work/tokens.bin" <<'PY'
import sys
import numpy as np
n = 1 << 22
header = np.zeros(256, dtype=np.int32)
header[:3] = (20240520, 1, n)
tokens = np.random.default_rng(1).integers(0, 50257, size=n, dtype=np.uint16)
with open(sys.argv[1], "wb") as f:
    f.write(header.tobytes())
    f.write(tokens.tobytes())
PY

(cd "$work" && ./llmc/train_gpt2cu -i tokens.bin -j tokens.bin -e "$model" -b "$B" -t "$T" \
    -x "$steps" -v 1000000 -m 1 -s 0 -h 0 -l 6e-4 >"$work/train.log" 2>&1) ||
    { echo "$0: train_gpt2cu failed, see $work/train.log" >&2; tail -5 "$work/train.log" >&2; exit 1; }
grep -E "^step" "$work/train.log"
# its ms per step, steps 6 on (the first are warm-up)
awk -v tokens=$((B * T)) '/^step/ { for (i = 1; i < NF; i++) if ($(i+1) == "ms") { n++; if (n > 5) { ms += $i; k++ } } }
    END { if (k) printf "llm.c tokens/s: %.0f (%d steps, %.1f ms/step)\n", tokens * k * 1000 / ms, k, ms / k;
          else { print "llm.c: no step lines" > "/dev/stderr"; exit 1 } }' "$work/train.log"
