#!/usr/bin/env python3
"""A Llama from transformers gives flame's logits: a small random
LlamaForCausalLM (grouped-query attention, untied head, norms drawn around 1 so
that they matter), built and saved by transformers in fp32, converted by
`flame-convert from-hf`, run through flame's transformer plugin
(tests/logits_tool) on the same tokens:

    ||flame - transformers|| / ||transformers||  <  1e-4  transformers in fp32,
                                                 <  1e-2  transformers in bf16,
                                                 <  1e-2  flame on CUDA (bf16), when it has kernels there;

and the same checkpoint exported by `flame-convert to-hf` loads strictly into
fla's TransformerForCausalLM and gives its logits within the same bounds; a
TransformerForCausalLM that fla built and saved comes in through `from-hf` and
flame gives fla's fp32 logits (the fla parts are skipped, with the reason,
where fla cannot load). fla's attention layer
calls flash-attn's flash_attn_func; where the flash-attn package is missing, the
test hands that layer causal_attention below, the same function written with
torch's scaled_dot_product_attention, and says so in the comparisons' names.

Needs torch and transformers; exits 77 (skipped) with the reason otherwise.
The flame programs are the build tree's unless $FLAME_CONVERT and $LOGITS_TOOL
name others (plugins are also searched in $FLAME_PLUGIN_PATH); fla is imported
from $FLA_PATH or PYTHONPATH."""
import os
import random
import subprocess
import sys
import tempfile

B, T = 2, 100
BOUND_FP32, BOUND_BF16 = 1e-4, 1e-2
CONFIG = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=512, rms_norm_eps=1e-6, rope_theta=10000.0,
              max_position_embeddings=256, tie_word_embeddings=False, hidden_act="silu")


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def programs():
    top = os.environ.get("top_builddir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return (os.environ.get("FLAME_CONVERT", os.path.join(top, "flame-convert")),
            os.environ.get("LOGITS_TOOL", os.path.join(top, "tests", "logits_tool")))


def rel(a, b):
    return float((a - b).norm() / b.norm())


class Checks:
    """comparisons of logits against a bound, a line each, the failures counted"""

    def __init__(self):
        self.failures = 0

    def __call__(self, what, got, want, bound):
        e = rel(got, want)
        ok = e < bound
        self.failures += not ok
        print(f"{what:<56} rel {e:.3e}  bound {bound:.0e}  {'ok' if ok else 'FAIL'}")

    def result(self):
        print(f"{self.failures} comparisons over their bound")
        return 1 if self.failures else 0


def causal_attention(q, k, v, causal=True, window_size=(-1, -1)):
    """flash_attn_func as fla's Attention calls it without a mask or cu_seqlens:
    q [B, T, H, d], k and v [B, T, Hkv, d], query head h reading key/value head
    h // (H / Hkv), softmax scale 1/sqrt(d), causal, no window."""
    import torch
    assert causal and tuple(window_size) == (-1, -1)
    group = q.shape[2] // k.shape[2]
    k, v = (x.repeat_interleave(group, dim=2) for x in (k, v))
    o = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    return o.transpose(1, 2)


def fla_attention_note():
    """'' when fla's attention has flash-attn; else hands it causal_attention and says so"""
    import fla.layers.attn as attn
    if attn.flash_attn_func is not None:
        return ""
    attn.flash_attn_func = causal_attention
    return " (SDPA for flash-attn)"


def flame_logits(logits_tool, folder, tokens, out, device, arch="transformer", step=0, options=()):
    """flame's logits of the run or from-hf output in folder (its config.ini and
    checkpoint step, with --section.key value options on top), or None with the
    reason when this build cannot run on device"""
    r = subprocess.run([logits_tool, "--arch", arch, "--model.config",
                        os.path.join(folder, "config.ini"), "--weights",
                        os.path.join(folder, "checkpoint", f"step-{step}", "model.safetensors"),
                        "--tokens", tokens, "--output", out, "--device", device, *options],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    from safetensors.torch import load_file
    return load_file(out)["logits"].double(), ""


def random_norms(model):
    """norm weights drawn around 1, so that a norm read wrongly shows"""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.7, 1.3)


def save_like_fla(model, folder):
    """What fla's save_pretrained writes: config.json from fla's config class and
    model.safetensors with the state dict's names. (save_pretrained itself stops
    on newer transformers, which want _tied_weights_keys as a dict where fla
    gives a list.)"""
    from safetensors.torch import save_file
    os.makedirs(folder, exist_ok=True)
    model.config.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def fla_checks(convert, logits_tool, tmp, flame, tokens, ours, reference, check):
    """Both directions with fla's TransformerForCausalLM: to-hf's export loads
    strictly and gives flame's logits; fla's own model, saved by fla, comes in
    through from-hf and flame gives fla's logits. Skipped, with the reason,
    where fla cannot load."""
    import torch
    fla_path = os.environ.get("FLA_PATH")
    if fla_path:
        sys.path.insert(0, fla_path)
    try:
        from fla.models import TransformerConfig, TransformerForCausalLM
        note = fla_attention_note()
        fla_dir = os.path.join(tmp, "fla")
        subprocess.run([convert, "to-hf", "--checkpoint", os.path.join(flame, "checkpoint", "step-0"),
                        "--output", fla_dir],
                       check=True, stdout=subprocess.DEVNULL)
        fla_model, info = TransformerForCausalLM.from_pretrained(fla_dir, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        if problems:
            raise AssertionError(f"fla's from_pretrained reported {problems}")
        fla32 = reference(fla_model, torch.float32)
    except Exception as e:  # fla absent, or its attention needs a package this machine lacks
        print(f"skipped: fla's TransformerForCausalLM ({type(e).__name__}: {str(e)[:200]})")
        return
    check("flame CPU fp32 vs fla fp32" + note, ours, fla32, BOUND_FP32)
    check("flame CPU fp32 vs fla bf16" + note, ours, reference(fla_model, torch.bfloat16), BOUND_BF16)

    torch.manual_seed(1)
    own = TransformerForCausalLM(TransformerConfig(
        hidden_size=CONFIG["hidden_size"], num_hidden_layers=CONFIG["num_hidden_layers"],
        num_heads=CONFIG["num_attention_heads"], num_kv_heads=CONFIG["num_key_value_heads"],
        intermediate_size=CONFIG["intermediate_size"], vocab_size=CONFIG["vocab_size"],
        norm_eps=CONFIG["rms_norm_eps"], rope_theta=CONFIG["rope_theta"],
        max_position_embeddings=CONFIG["max_position_embeddings"], tie_word_embeddings=False))
    random_norms(own)
    own_dir, own_flame = os.path.join(tmp, "fla_own"), os.path.join(tmp, "fla_own_flame")
    save_like_fla(own, own_dir)
    subprocess.run([convert, "from-hf", "--model", own_dir, "--output", own_flame], check=True,
                   stdout=subprocess.DEVNULL)
    got, why = flame_logits(logits_tool, own_flame, tokens, os.path.join(tmp, "own.safetensors"), "cpu")
    if got is None:
        raise RuntimeError(f"logits_tool on fla's own folder: {why}")
    check("flame CPU fp32 vs fla fp32, fla's folder" + note, got, reference(own, torch.float32), BOUND_FP32)


def main():
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        skip(f"torch or transformers is not importable ({e})")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    convert, logits_tool = programs()
    check = Checks()

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**CONFIG, attn_implementation="eager"))
        random_norms(model)
        hf = os.path.join(tmp, "hf")
        model.save_pretrained(hf, safe_serialization=True)
        flame = os.path.join(tmp, "flame")
        subprocess.run([convert, "from-hf", "--model", hf, "--output", flame], check=True,
                       stdout=subprocess.DEVNULL)
        rnd = random.Random(3)
        rows = [[rnd.randrange(CONFIG["vocab_size"]) for _ in range(T)] for _ in range(B)]
        tokens = os.path.join(tmp, "tokens.txt")
        with open(tokens, "w") as f:
            f.writelines(" ".join(map(str, r)) + "\n" for r in rows)
        ids = torch.tensor(rows, device=device)

        def reference(m, dtype):
            m = m.to(device=device, dtype=dtype).eval()
            with torch.no_grad():
                return m(input_ids=ids).logits.reshape(B * T, -1).double().cpu()

        ours, why = flame_logits(logits_tool, flame, tokens, os.path.join(tmp, "cpu.safetensors"), "cpu")
        if ours is None:
            print(f"FAIL: logits_tool on the CPU: {why}")
            return 1
        theirs32 = reference(model, torch.float32)
        theirs16 = reference(model, torch.bfloat16)
        check("flame CPU fp32 vs transformers fp32", ours, theirs32, BOUND_FP32)
        check("flame CPU fp32 vs transformers bf16", ours, theirs16, BOUND_BF16)
        gpu, why = flame_logits(logits_tool, flame, tokens, os.path.join(tmp, "gpu.safetensors"), "cuda")
        if gpu is None:
            print(f"skipped: flame on CUDA ({why})")
        else:
            check("flame CUDA bf16 vs transformers fp32", gpu, theirs32, BOUND_BF16)

        fla_checks(convert, logits_tool, tmp, flame, tokens, ours, reference, check)
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
