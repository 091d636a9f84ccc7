#!/usr/bin/env python3
"""torch's scaled_dot_product_attention (causal, bf16, the flash backend) at
the shapes `test_transformer_cuda --bench` times flame's attention, with its
FLOP convention (forward 4·B·H·T²·hd/2, backward 2.5 times that), so that
the two sit side by side in BENCHMARKS.md.

  bench_attention_torch.py [--reps N]

The backward's time is that of forward and backward together less the
forward's; each is the mean over N repetitions after a warm-up, between CUDA
events."""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(8, 2048, 16, 64), (8, 2048, 8, 128)]  # B, T, H, hd: the 340M shape and hd 128


def mean_ms(run, reps):
    run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    total = 0.0
    for _ in range(reps):
        torch.cuda.synchronize()
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        total += start.elapsed_time(end)
    return total / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for B, T, H, hd in SHAPES:
        q, k, v = (torch.randn(B, H, T, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        dout = torch.randn_like(q)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            def forward():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)

            def both():
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                torch.autograd.grad(o, (q, k, v), dout)

            fwd = mean_ms(forward, args.reps)
            bwd = mean_ms(both, args.reps) - fwd
        flops = 4.0 * B * H * T * T * hd / 2
        print(f"sdpa flash B={B} T={T} H={H} hd={hd}: forward {fwd:.3f} ms ({flops / fwd / 1e9:.1f} TFLOP/s), "
              f"backward {bwd:.3f} ms ({2.5 * flops / bwd / 1e9:.1f} TFLOP/s) (mean of {args.reps})")


if __name__ == "__main__":
    main()
