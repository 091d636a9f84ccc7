#!/usr/bin/env python3
"""Loss curves across backends: how far apart two runs of the same job are.

  loss_curves.py compare A.jsonl B.jsonl
      A and B are metrics.jsonl files (flame-run's, or this script's): per
      logged step, |loss_B - loss_A| / loss_A. Prints the largest difference,
      how many steps are over 2 % and over 1 %, the first step over 1e-3, and
      the mean signed difference per hundred steps (a drift shows there).

  loss_curves.py means RUN.jsonl
      The run's mean loss per hundred logged steps, on one line: what the
      relative figures of compare are relative to.

  loss_curves.py torch-llama|fla-gla --corpus FILE --device cpu|cuda
                 [--dtype fp32|bf16] [--eps E] --out RUN.jsonl
      The job of configs/gla-tiny.ini (byte tokens, 8 x 128, 300 steps, AdamW
      lr 3e-3, betas 0.9/0.95, weight decay 0.01, 20 warm-up steps, cosine to
      0.1 of the peak, gradients clipped at 1.0) trained in PyTorch, on
      transformers' LlamaForCausalLM or fla's GLAForCausalLM of the tiny
      config's shape, from the same seed-42 weights and the same batches in
      every run: how far a Python stack's own runs of this job fall apart.
      bf16 is autocast over fp32 master weights, as flame's CUDA backend does.
"""
import argparse
import json
import math
import os
import sys

STEPS, BATCH, SEQ, VOCAB = 300, 8, 128, 257
LR, LR_MIN_RATIO, WARMUP = 3e-3, 0.1, 20


def read_losses(path):
    with open(path) as f:
        return {row["step"]: row["loss"] for row in map(json.loads, f) if "loss" in row}


def compare(path_a, path_b):
    a, b = read_losses(path_a), read_losses(path_b)
    steps = sorted(set(a) & set(b))
    if not steps:
        sys.exit(f"compare: {path_a} and {path_b} share no logged step")
    rel = {s: (b[s] - a[s]) / a[s] for s in steps}
    worst = max(steps, key=lambda s: abs(rel[s]))
    first = next((s for s in steps if abs(rel[s]) > 1e-3), None)
    print(f"steps compared        {len(steps)} ({steps[0]}..{steps[-1]})")
    print(f"largest difference    {100 * abs(rel[worst]):.2f} % (step {worst})")
    print(f"steps over 2 %        {sum(abs(r) > 0.02 for r in rel.values())}")
    print(f"steps over 1 %        {sum(abs(r) > 0.01 for r in rel.values())}")
    print(f"first step over 1e-3  {first}")
    for lo in range(steps[0], steps[-1] + 1, 100):
        window = [rel[s] for s in steps if lo <= s < lo + 100]
        if window:
            print(f"mean B-A, steps {lo}-{lo + 99}: {100 * sum(window) / len(window):+.2f} %")


def hundred_step_means(path):
    losses = read_losses(path)
    if not losses:
        sys.exit(f"means: {path} has no logged loss")
    steps = sorted(losses)
    means = []
    for lo in range(steps[0], steps[-1] + 1, 100):
        window = [losses[s] for s in steps if lo <= s < lo + 100]
        if window:
            means.append(f"{sum(window) / len(window):.4f}")
    print(" ".join(means))


def lr_at(step):
    """flame's schedule: linear warm-up to the peak, then cosine to the floor."""
    if step <= WARMUP:
        return LR * step / WARMUP
    progress = max(0, step - 1 - WARMUP) / (STEPS - WARMUP)
    floor = LR * LR_MIN_RATIO
    return floor + (LR - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def llama_model():
    """transformers' LlamaForCausalLM at the tiny config's width and depth"""
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=SEQ, rms_norm_eps=1e-6,
                         initializer_range=0.02, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    return model


def fla_gla_model():
    """fla's GLAForCausalLM with configs/gla-tiny.ini's settings (fla's Triton
    kernels: CUDA only); fla is imported from $FLA_PATH or PYTHONPATH"""
    if os.environ.get("FLA_PATH"):
        sys.path.insert(0, os.environ["FLA_PATH"])
    from fla.models import GLAConfig, GLAForCausalLM
    config = GLAConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_heads=2,
                       expand_k=0.5, expand_v=1.0, hidden_ratio=4, norm_eps=1e-6,
                       initializer_range=0.02, tie_word_embeddings=False,
                       fuse_cross_entropy=False)
    return GLAForCausalLM(config)


MODELS = {"torch-llama": llama_model, "fla-gla": fla_gla_model}


def train(make_model, corpus, device, dtype, eps, out):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(42)
    model = make_model().float()  # built on the CPU: the same weights on every device
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), eps=eps,
                            weight_decay=0.01)
    data = torch.frombuffer(bytearray(open(corpus, "rb").read()), dtype=torch.uint8).long()
    window = SEQ + 1
    windows = len(data) // window
    with open(out, "w", buffering=1) as log:  # line by line: a cut run keeps its steps
        for step in range(1, STEPS + 1):
            rows = [(step - 1) * BATCH + i for i in range(BATCH)]
            batch = torch.stack([data[(r % windows) * window:][:window] for r in rows]).to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
                logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB),
                                                     batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            log.write(json.dumps({"step": step, "loss": loss.item(),
                                  "grad_norm": norm.item(), "lr": lr_at(step)}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="per-step differences of two metrics.jsonl files")
    c.add_argument("a")
    c.add_argument("b")
    m = sub.add_parser("means", help="a metrics.jsonl file's mean loss per hundred steps")
    m.add_argument("run")
    for name in MODELS:
        t = sub.add_parser(name, help="the tiny job in PyTorch on one backend")
        t.add_argument("--corpus", required=True)
        t.add_argument("--device", choices=["cpu", "cuda"], required=True)
        t.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
        t.add_argument("--eps", type=float, default=1e-8)
        t.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "compare":
        compare(args.a, args.b)
    elif args.command == "means":
        hundred_step_means(args.run)
    else:
        train(MODELS[args.command], args.corpus, args.device, args.dtype, args.eps, args.out)


if __name__ == "__main__":
    main()
