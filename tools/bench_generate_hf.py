#!/usr/bin/env python3
"""Decode speed of transformers' generate on a Hugging Face folder that
flame-convert to-hf (or checkpoint.export_hf) wrote: the Python side of
BENCHMARKS.md's generation rows, beside flame-generate on the same weights.

  bench_generate_hf.py --model HF_DIR --batch B --prompt_len P --new_tokens N
                       [--as_llama] [--reps R]

B copies of one prompt of P byte-tokenizer ids (seeded, printable bytes), in
bf16 on the GPU, greedy, use_cache, exactly N new tokens (min_new_tokens = N,
so EOS does not end the run early). Prefill time is generate with one new
token; decode tokens/s is B·(N − 1) over the rest of an N-token generate,
the best of R runs after one warm-up (flame-generate prints its own two
figures the same way: prefill, then the tokens after the first).

The model class comes from config.json through AutoModelForCausalLM, with fla
imported (from $FLA_PATH or PYTHONPATH) so that its GLA, GSA and Mamba2 are
known. fla's TransformerForCausalLM needs flash-attn, which the GPU machine
lacks, so --as_llama loads a transformer folder as transformers' own
LlamaForCausalLM instead (SDPA attention): the same weights under Llama's
names, strictly (no missing or unexpected tensor). Prints one JSON line."""
import argparse
import json
import os
import sys
import time


def fla_import():
    if os.environ.get("FLA_PATH"):
        sys.path.insert(0, os.environ["FLA_PATH"])
    import fla  # noqa: F401  registers fla's models with AutoModelForCausalLM


# fla's transformer names -> Llama's (the inverse of the transformer plugin's llama_tensors)
LLAMA_NAMES = [("model.embeddings.", "model.embed_tokens."),
               (".attn_norm.", ".input_layernorm."),
               (".mlp_norm.", ".post_attention_layernorm."),
               (".attn.", ".self_attn.")]


def load_as_llama(folder, torch, dtype):
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    config = LlamaConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        intermediate_size=c.get("intermediate_size") or 0, num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_heads"], num_key_value_heads=c.get("num_kv_heads") or c["num_heads"],
        rms_norm_eps=c["norm_eps"], rope_theta=c.get("rope_theta", 10000.0),
        max_position_embeddings=c.get("max_position_embeddings", 8192),
        tie_word_embeddings=c.get("tie_word_embeddings", False), hidden_act="silu",
        bos_token_id=c.get("bos_token_id"), eos_token_id=c.get("eos_token_id"),
        attn_implementation="sdpa")
    if not config.intermediate_size:  # fla: hidden_ratio·D·2/3, rounded up to 256
        hidden = int(c["hidden_size"] * c.get("hidden_ratio", 4) * 2 / 3)
        config.intermediate_size = 256 * ((hidden + 255) // 256)
    weights = load_file(os.path.join(folder, "model.safetensors"))
    renamed = {}
    for name, tensor in weights.items():
        for old, new in LLAMA_NAMES:
            name = name.replace(old, new)
        renamed[name] = tensor
    model = LlamaForCausalLM(config)
    model.load_state_dict(renamed, strict=True)
    return model.to(dtype)


def timed(fn, torch, reps):
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt_len", type=int, default=64)
    ap.add_argument("--new_tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--as_llama", action="store_true")
    a = ap.parse_args()
    import random
    import torch
    dtype = torch.bfloat16
    if a.as_llama:
        model = load_as_llama(a.model, torch, dtype)
    else:
        fla_import()
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    model = model.cuda().eval()
    random.seed(0)
    prompt = [random.randrange(32, 127) for _ in range(a.prompt_len)]
    ids = torch.tensor([prompt] * a.batch, device="cuda")
    mask = torch.ones_like(ids)

    def generate(n):
        with torch.inference_mode():
            return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, use_cache=True, pad_token_id=0)

    out = generate(a.new_tokens)  # warm-up (Triton compiles here)
    assert out.shape == (a.batch, a.prompt_len + a.new_tokens), out.shape
    generate(1)
    t_prefill = timed(lambda: generate(1), torch, a.reps)
    t_all = timed(lambda: generate(a.new_tokens), torch, a.reps)
    decode = a.batch * (a.new_tokens - 1) / (t_all - t_prefill)
    print(json.dumps({"model": type(model).__name__, "batch": a.batch, "prompt_len": a.prompt_len,
                      "new_tokens": a.new_tokens, "prefill_tokens_per_s": a.batch * a.prompt_len / t_prefill,
                      "decode_tokens_per_s": decode, "total_s": t_all,
                      "text": bytes(t for t in out[0, a.prompt_len:].tolist() if t < 256).decode("latin-1")}))


if __name__ == "__main__":
    main()
