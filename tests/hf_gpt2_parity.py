#!/usr/bin/env python3
"""Hugging Face's GPT-2 gives flame's logits, both ways:

  - a small random GPT2LMHeadModel (norms and biases drawn so that they
    matter, attention scaled by the inverse layer index as flash-attn's GPT-2
    configs have it), saved by transformers in fp32, converted by
    `flame-convert from-hf`, run through flame's gpt plugin (tests/logits_tool);
  - a GPT flame trained (configs/gpt-tiny.ini, a padded vocabulary, on the GPU
    when there is one), exported by `flame-convert to-hf --format gpt2`,
    loaded by GPT2LMHeadModel.from_pretrained with nothing missing or left
    over:

    ||flame - transformers|| / ||transformers||  <  1e-4  transformers in fp32,
                                                 <  1e-2  transformers in bf16,
                                                 <  1e-2  flame on CUDA (bf16), when it has kernels there,
                                                          and the same with its residual stream in fp32.

Needs torch and transformers; exits 77 (skipped) with the reason otherwise.
The flame programs are the build tree's unless $FLAME_CONVERT, $LOGITS_TOOL and
$FLAME_RUN name others (plugins are also searched in $FLAME_PLUGIN_PATH)."""
import os
import random
import subprocess
import sys
import tempfile

from hf_llama_parity import BOUND_BF16, BOUND_FP32, Checks, flame_logits, programs, skip

B, T = 2, 100
CONFIG = dict(n_embd=128, n_layer=2, n_head=2, n_positions=256, vocab_size=509, activation_function="gelu_new",
              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, scale_attn_by_inverse_layer_idx=True)


def random_norms_and_biases(model):
    """LayerNorm weights around 1, every bias nonzero, so that one read wrongly shows"""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                p.uniform_(0.7, 1.3)
            elif name.endswith("bias"):
                p.uniform_(-0.1, 0.1)


def write_tokens(path, vocab, seed):
    rnd = random.Random(seed)
    rows = [[rnd.randrange(vocab) for _ in range(T)] for _ in range(B)]
    with open(path, "w") as f:
        f.writelines(" ".join(map(str, r)) + "\n" for r in rows)
    return rows


def train_tiny(flame_run, tmp):
    """a few steps of configs/gpt-tiny.ini on text written here; the run's folder"""
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.writelines(f"the fox {i} jumps over the lazy dog, a model learns.\n" for i in range(400))
    run = os.path.join(tmp, "trained")
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([flame_run, "--arch", "gpt", "--config", os.path.join(top, "configs", "gpt-tiny.ini"),
                    "--training.dataset", text, "--training.steps", "20", "--checkpoint.interval", "20",
                    "--job.dump_folder", run], check=True, stdout=subprocess.DEVNULL)
    return run


def main():
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as e:
        skip(f"torch or transformers is not importable ({e})")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    convert, logits_tool = programs()
    top = os.environ.get("top_builddir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    flame_run = os.environ.get("FLAME_RUN", os.path.join(top, "flame-run"))
    check = Checks()

    def reference(m, dtype, rows):
        ids = torch.tensor(rows, device=device)
        m = m.to(device=device, dtype=dtype).eval()
        with torch.no_grad():
            return m(input_ids=ids).logits.reshape(B * T, -1).double().cpu()

    with tempfile.TemporaryDirectory() as tmp:
        # transformers' random GPT-2 into flame
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(**CONFIG, attn_implementation="eager"))
        random_norms_and_biases(model)
        hf, flame = os.path.join(tmp, "hf"), os.path.join(tmp, "flame")
        model.save_pretrained(hf, safe_serialization=True)
        subprocess.run([convert, "from-hf", "--model", hf, "--output", flame], check=True, stdout=subprocess.DEVNULL)
        tokens = os.path.join(tmp, "tokens.txt")
        rows = write_tokens(tokens, CONFIG["vocab_size"], 3)
        ours, why = flame_logits(logits_tool, flame, tokens, os.path.join(tmp, "cpu.safetensors"), "cpu", "gpt")
        if ours is None:
            print(f"FAIL: logits_tool on the CPU: {why}")
            return 1
        theirs32 = reference(model, torch.float32, rows)
        check("random GPT-2 in: flame CPU fp32 vs transformers fp32", ours, theirs32, BOUND_FP32)
        check("random GPT-2 in: flame CPU fp32 vs transformers bf16", ours, reference(model, torch.bfloat16, rows),
              BOUND_BF16)
        gpu, why = flame_logits(logits_tool, flame, tokens, os.path.join(tmp, "gpu.safetensors"), "cuda", "gpt")
        if gpu is None:
            print(f"skipped: flame on CUDA ({why})")
        else:
            check("random GPT-2 in: flame CUDA bf16 vs transformers fp32", gpu, theirs32, BOUND_BF16)
            gpu, why = flame_logits(logits_tool, flame, tokens, os.path.join(tmp, "gpu32.safetensors"), "cuda", "gpt",
                                    options=("--model.residual_in_fp32", "true"))
            if gpu is None:
                print(f"FAIL: flame on CUDA with residual_in_fp32: {why}")
                return 1
            check("random GPT-2 in: flame CUDA bf16, fp32 residual stream, vs transformers fp32", gpu, theirs32,
                  BOUND_BF16)

        # flame's trained GPT out to transformers
        run = train_tiny(flame_run, tmp)
        out = os.path.join(tmp, "exported")
        subprocess.run([convert, "to-hf", "--checkpoint", os.path.join(run, "checkpoint", "step-20"), "--output", out,
                        "--format", "gpt2", "--tokenizer", "none"], check=True, stdout=subprocess.DEVNULL)
        exported, info = GPT2LMHeadModel.from_pretrained(out, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        if problems:
            print(f"FAIL: GPT2LMHeadModel.from_pretrained reported {problems}")
            check.failures += 1
        rows = write_tokens(tokens, 257, 4)  # the byte tokenizer's ids
        ours, why = flame_logits(logits_tool, run, tokens, os.path.join(tmp, "trained.safetensors"), "cpu", "gpt", 20)
        if ours is None:
            print(f"FAIL: logits_tool on the trained run: {why}")
            return 1
        check("flame-trained out: flame CPU fp32 vs transformers fp32", ours, reference(exported, torch.float32, rows),
              BOUND_FP32)
        check("flame-trained out: flame CPU fp32 vs transformers bf16", ours,
              reference(exported, torch.bfloat16, rows), BOUND_BF16)
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
