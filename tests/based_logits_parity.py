#!/usr/bin/env python3
"""flame's Based gives HazyResearch's logits: a hybrid (BaseConv, Taylor linear
attention, sliding-window attention) trained a few steps by flame-run on the
CPU and exported by flame-convert to-hf is built by HazyResearch/based's own
GPTLMHeadModel from that config.json (GPT2MixerConfig, its mixers instantiated
from their _target_ classes) and loaded from the folder's model.safetensors,
where the only key the file lacks is the tied lm_head.weight (the embedding's
second name). The same tokens go through flame (tests/logits_tool) and through
HazyResearch's model, and

    ||flame - theirs|| / ||theirs||  <  1e-4  theirs in fp32, flame on the CPU (fp32),
                                     <  1e-2  theirs under bf16 autocast (as its
                                              trainer runs), flame on the CPU and,
                                              where built, on CUDA (bf16),

for the logits and for the loss. Two cases: a window shorter than the sequence
and one longer. HazyResearch's Taylor layers run their 'quadratic' PyTorch path
(the config's default). Not their 'fla_parallel': it calls fla's parallel_based
as fla had it in early 2024 ([B, H, T, K] inputs, booleans for scale and
normalization), which today's fla reads as [B, T, H, K] with scale 1, so it
computes another function (6e-2 away on the H200, 2026-12-03). flash-attn is
not needed: tools/hazy_based.py says which stand-ins replace it.

Needs torch and a HazyResearch/based checkout ($BASED_PATH, with hydra-core and
transformers importable); exits 77 (skipped) with the reason otherwise, so CI
skips it. Runs on CUDA when torch sees a GPU, else on the CPU. The flame
programs are the build tree's unless $FLAME_RUN, $LOGITS_TOOL and
$FLAME_CONVERT name others."""
import json
import math
import os
import random
import subprocess
import sys
import tempfile

BOUND_FP32, BOUND_BF16 = 1e-4, 1e-2
TRAIN_STEPS, B, T = 12, 2, 256
TOP = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("top_builddir", TOP)

# flame [model] settings (an INI fragment) of each case; the byte tokenizer's 257 ids
BASE = {"n_embd": 128, "n_layer": 4, "n_inner": 256, "vocab_size": 257, "n_head": 4,
        "alt_mixer_layers": "1", "alt_mixer_2_layers": "2", "feature_dim": 16, "num_heads": 4}
CASES = [("window 64", dict(BASE, window_size=64)), ("window 1024", dict(BASE, window_size=1024))]
WORDS = ("a short convolution a linear attention with a taylor feature map and a sliding "
         "window of softmax attention make the based hybrid recall well").split()


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def imports():
    # fla's fp32 kernels would round their dot products (TF32) unless told
    os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
    try:
        import torch
        from safetensors.torch import load_file
    except ImportError as e:
        skip(f"torch or safetensors is not importable ({e})")
    path = os.environ.get("BASED_PATH")
    if not path or not os.path.isfile(os.path.join(path, "based", "models", "gpt.py")):
        skip("BASED_PATH does not name a HazyResearch/based checkout")
    sys.path.insert(0, os.path.join(TOP, "tools"))
    try:
        import hydra  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        skip(f"HazyResearch's model needs hydra-core and transformers ({e})")
    import hazy_based
    return torch, load_file, hazy_based


def program(env, name):
    return os.environ.get(env, os.path.join(BUILD, name))


def write_inputs(folder, settings):
    rnd = random.Random(1)
    text = os.path.join(folder, "text.txt")
    with open(text, "w") as f:
        for _ in range(400):
            f.write(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 30))) + ".\n")
    ini = os.path.join(folder, "model.ini")
    with open(ini, "w") as f:
        f.write("[model]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    sample = " ".join(rnd.choice(WORDS) for _ in range(200)).encode()
    rows = [list(sample[:T]), [rnd.randrange(256) for _ in range(T)]]
    tokens = os.path.join(folder, "tokens.txt")
    with open(tokens, "w") as f:
        f.write("".join(" ".join(map(str, r)) + "\n" for r in rows))
    return text, ini, tokens, rows


def train_and_export(folder, text, ini):
    run = os.path.join(folder, "run")
    subprocess.run([program("FLAME_RUN", "flame-run"), "--arch", "based", "--model.config", ini,
                    "--training.device", "cpu", "--training.dataset", text, "--job.dump_folder", run,
                    "--training.steps", str(TRAIN_STEPS), "--training.batch_size", "4",
                    "--training.seq_len", "128", "--optimizer.lr", "3e-3",
                    "--lr_scheduler.warmup_steps", "2", "--checkpoint.interval", str(TRAIN_STEPS)],
                   check=True, stdout=subprocess.DEVNULL)
    hf = os.path.join(folder, "hf")
    subprocess.run([program("FLAME_CONVERT", "flame-convert"), "to-hf", "--checkpoint",
                    os.path.join(run, "checkpoint", f"step-{TRAIN_STEPS}"), "--output", hf],
                   check=True, stdout=subprocess.DEVNULL)
    return hf


def flame_logits(hf, tokens, out, device, load_file):
    """flame's logits and loss; None on CUDA when this build or machine has none"""
    r = subprocess.run([program("LOGITS_TOOL", "tests/logits_tool"), "--arch", "based",
                        "--model.config", os.path.join(hf, "config.json"), "--weights",
                        os.path.join(hf, "model.safetensors"), "--tokens", tokens, "--output", out,
                        "--device", device], stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        if device == "cpu":
            raise AssertionError(f"logits_tool on the CPU exited {r.returncode}")
        return None
    from safetensors import safe_open
    with safe_open(out, framework="pt") as f:
        return load_file(out)["logits"].double(), float(f.metadata()["loss"])


def load_theirs(hf, hazy_based, load_file, torch, device):
    with open(os.path.join(hf, "config.json")) as f:
        config = json.load(f)
    model = hazy_based.build_model(config, pure=True, device=device, dtype=torch.float32).eval()
    weights = load_file(os.path.join(hf, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing != ["lm_head.weight"] or unexpected:
        raise AssertionError(f"keys: missing {missing}, unexpected {unexpected}")
    if model.lm_head.weight is not model.transformer.embeddings.word_embeddings.weight:
        raise AssertionError("HazyResearch's lm_head is not tied to the loaded embedding")
    return model


def their_logits(model, rows, torch, device, bf16):
    ids = torch.tensor(rows, device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        logits = model(ids).logits.float()
    lp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    loss = float(-lp.gather(-1, ids[:, 1:, None]).mean())
    return logits.reshape(-1, logits.shape[-1]).double().cpu(), loss


def compare(label, ours, theirs, bound, torch):
    (a, a_loss), (b, b_loss) = ours, theirs
    e = float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))
    e_loss = abs(a_loss - b_loss) / abs(b_loss)
    ok = e < bound and e_loss < bound and math.isfinite(e)
    print(f"  {label:<44} logits rel.err {e:.3e}  loss rel.err {e_loss:.3e}  "
          f"(flame {a_loss:.6f}, theirs {b_loss:.6f}; bound {bound:g}) {'ok' if ok else 'FAIL'}",
          flush=True)
    return ok


def run_case(name, settings, scratch, torch, load_file, hazy_based, device):
    print(f"case {name}: {settings}")
    folder = os.path.join(scratch, name.replace(" ", "_"))
    os.makedirs(folder)
    text, ini, tokens, rows = write_inputs(folder, settings)
    hf = train_and_export(folder, text, ini)
    cpu = flame_logits(hf, tokens, os.path.join(folder, "cpu.safetensors"), "cpu", load_file)
    gpu = flame_logits(hf, tokens, os.path.join(folder, "cuda.safetensors"), "cuda", load_file) \
        if device == "cuda" else None
    model = load_theirs(hf, hazy_based, load_file, torch, device)
    fp32 = their_logits(model, rows, torch, device, bf16=False)
    bf16 = their_logits(model, rows, torch, device, bf16=True)
    results = [compare("fp32 / flame CPU", cpu, fp32, BOUND_FP32, torch),
               compare("bf16 autocast / flame CPU", cpu, bf16, BOUND_BF16, torch)]
    if gpu is not None:
        results.append(compare("bf16 autocast / flame CUDA", gpu, bf16, BOUND_BF16, torch))
    return results


def main():
    torch, load_file, hazy_based = imports()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"HazyResearch/based from {os.environ['BASED_PATH']}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, settings in CASES:
            results += run_case(name, settings, scratch, torch, load_file, hazy_based, device)
    failed = results.count(False)
    print(f"{failed} of {len(results)} comparisons over their bound")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
