#!/usr/bin/env python3
"""Training-step throughput of HazyResearch/based's GPTLMHeadModel, the Python
row beside `flame-bench --arch based --model.config configs/based-360m.ini`.

The model is Based-360M as train/configs/experiment/reference/based-360m.yaml
builds it (27 layers of width 1024; Taylor linear attention at layers 1, 6, 11,
16, 21 with fla's parallel_based kernel, parallel_implementation
'fla_parallel'; sliding-window attention, window_size 256, at 2, 7, 12, 17, 22;
BaseConv elsewhere; GPT-2's vocabulary padded to 50264), trained as its
trainer runs it: fp32 weights under bf16 autocast, fused AdamW, gradients
clipped at 1.0. Without flash-attn, tools/hazy_based.py's stand-ins run: the
window through torch's scaled_dot_product_attention with a band mask, the
RMSNorm through HazyResearch's Triton kernel (--pure: its PyTorch reference).

Prints tokens/s and ms per step over the timed steps, torch's peak allocated
and reserved memory, and the device memory in use (context included, what
flame-bench reports). Needs BASED_PATH and fla on the path (for fla_parallel)."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BASED_360M = {
    "n_embd": 1024, "n_layer": 27, "n_head": 16, "n_inner": 2048, "vocab_size": 50257,
    "pad_vocab_size_multiple": 8, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
    "rms_norm": True, "activation_function": "swiglu", "residual_in_fp32": True,
    "max_position_embeddings": 0, "rotary_emb_fraction": 1, "tie_word_embeddings": True,
    "mlp_fc1_bias": False, "mlp_fc2_bias": False, "qkv_proj_bias": False, "out_proj_bias": False,
    "fused_mlp": False, "fused_bias_fc": False, "fused_dropout_add_ln": False,
    "attn_pdrop": 0, "embd_pdrop": 0, "resid_pdrop": 0,
    "alt_mixer_layers": [1, 6, 11, 16, 21], "alt_mixer_2_layers": [2, 7, 12, 17, 22],
    "mixer": {"_target_": "based.models.mixers.convolution.BaseConv", "l_max": 2048,
              "use_bias": True, "expand_proj": 4, "kernel_sizes": 3},
    "alt_mixer": {"_target_": "based.models.mixers.linear_attention.LinearAttention",
                  "l_max": 2048, "feature_dim": 16, "num_heads": 16,
                  "parallel_implementation": "fla_parallel",
                  "feature_map": {"_target_": "based.models.mixers.linear_attention.TaylorExp",
                                  "input_dim": 16}},
    "alt_mixer_2": {"_target_": "based.models.mixers.slide_attention.SlidingAttention",
                    "causal": True, "num_heads": 16, "window_size": 256},
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seq_len", type=int, default=2048)
    p.add_argument("--warmup_steps", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pure", action="store_true", help="RMSNorm through the PyTorch reference")
    p.add_argument("--quadratic", action="store_true",
                   help="Taylor layers through HazyResearch's PyTorch 'quadratic' path")
    a = p.parse_args()
    import torch
    import hazy_based
    config = dict(BASED_360M)
    if a.quadratic:
        config["alt_mixer"] = dict(config["alt_mixer"], parallel_implementation="quadratic")
    t0 = time.time()
    model = hazy_based.build_model(config, pure=a.pure, device="cuda", dtype=torch.float32)
    from based.models.mixers import linear_attention
    if not a.quadratic and not hasattr(linear_attention, "parallel_based"):
        print("fla's parallel_based is missing: the Taylor layers take the 'quadratic' path", flush=True)
        for layer in model.transformer.layers:
            if hasattr(layer.mixer, "parallel_implementation"):
                layer.mixer.parallel_implementation = "quadratic"
        config["alt_mixer"] = dict(config["alt_mixer"], parallel_implementation="quadratic")
    if not a.pure:
        try:  # HazyResearch's Triton kernel, written for the Triton of early 2024
            x = torch.randn(64, config["n_embd"], device="cuda", requires_grad=True)
            model.transformer.ln_f(x).sum().backward()
        except Exception as e:
            print(f"HazyResearch's Triton RMSNorm fails here ({type(e).__name__}: {e}); "
                  f"its PyTorch reference instead", flush=True)
            hazy_based.use_reference_rmsnorm()
            a.pure = True
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=8e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    vocab = model.lm_head.weight.shape[0]
    ids = torch.randint(0, 50257, (a.batch_size, a.seq_len + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    print(f"HazyResearch Based-360M: {n_params:,} parameters, batch {a.batch_size} x {a.seq_len}, "
          f"Taylor {config['alt_mixer']['parallel_implementation']}, RMSNorm "
          f"{'PyTorch reference' if a.pure else 'Triton'}", flush=True)
    for i in range(a.warmup_steps):
        loss = step()
        torch.cuda.synchronize()
        print(f"warmup step {i + 1}: loss {loss.item():.4f} at {time.time() - t0:.1f} s", flush=True)
    torch.cuda.reset_peak_memory_stats()
    start = time.time()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    elapsed = time.time() - start
    free, total = torch.cuda.mem_get_info()
    tokens = a.batch_size * a.seq_len * a.steps
    print(f"loss {loss.item():.4f}; {tokens / elapsed:,.0f} tokens/s, {1e3 * elapsed / a.steps:.1f} ms/step")
    print(f"peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, peak reserved "
          f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB, device memory in use "
          f"{(total - free) / 2**30:.2f} GiB (context included)")


if __name__ == "__main__":
    main()
