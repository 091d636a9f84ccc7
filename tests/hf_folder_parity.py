#!/usr/bin/env python3
"""The Hugging Face folder a run exports is one a user's tools take as it is:
AutoModelForCausalLM.from_pretrained (fla imported, so that its model types
are known) loads it with no missing, unexpected or mismatched tensor;
AutoTokenizer.from_pretrained reads its tokenizer, which encodes text as the
run's tokenizer did and whose EOS is config.json's eos_token_id; and the
model gives flame's logits on the same tokens:

    ||flame CPU fp32 - folder's model bf16|| / ||...||  <  1e-2
    ||flame CPU fp32 - folder's model fp32|| / ||...||  <  1e-4  (TRITON_F32_DEFAULT=ieee)
    ||flame CUDA bf16 - folder's model bf16|| is printed beside them where a GPU is.

  hf_folder_parity.py                       (make check) a tiny GLA and a tiny transformer,
                                            trained a few steps on the CPU with
                                            --checkpoint.export_hf, then the above
  hf_folder_parity.py RUN_DIR [RUN_DIR...]  runs already made (their hf/ and their
                                            last checkpoint), e.g. the 340M ones on a GPU

fla's transformer layer calls flash-attn; where that package is missing, its
attention gets tests/hf_llama_parity.py's SDPA stand-in and the line says so.
Needs torch, transformers and fla ($FLA_PATH or PYTHONPATH); exits 77 with
the reason otherwise. Programs: the build tree's unless $FLAME_RUN and
$LOGITS_TOOL name others; plugins also from $FLAME_PLUGIN_PATH."""
import configparser
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")  # before Triton is imported: IEEE fp32 in fla's kernels
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_llama_parity import fla_attention_note, rel  # noqa: E402

BOUND_FP32, BOUND_BF16 = 1e-4, 1e-2
B, T = 2, 128


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def programs():
    build = os.environ.get("top_builddir") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    return (os.environ.get("FLAME_RUN") or os.path.join(build, "flame-run"),
            os.environ.get("LOGITS_TOOL") or os.path.join(build, "tests", "logits_tool"))


def train_tiny(flame_run, tmp, arch):
    """a tiny run on a repeated sentence, exported at its end"""
    src = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    data = os.path.join(tmp, "data.txt")
    with open(data, "w") as f:
        f.write("a folder a user can hand to their tools. " * 400)
    run = os.path.join(tmp, arch)
    subprocess.run([flame_run, "--arch", arch, "--config", os.path.join(src, "configs", f"{arch}-tiny.ini"),
                    "--training.dataset", data, "--training.steps", "6", "--training.seq_len", "64",
                    "--training.device", "cpu", "--job.dump_folder", run, "--checkpoint.export_hf", "true"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def last_checkpoint(run):
    steps = [int(p.rsplit("-", 1)[1]) for p in glob.glob(os.path.join(run, "checkpoint", "step-*"))]
    return os.path.join(run, "checkpoint", f"step-{max(steps)}", "model.safetensors")


def flame_logits(logits_tool, run, tokens, out, device):
    cfg = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=(";", "#"))
    cfg.read(os.path.join(run, "config.ini"))
    r = subprocess.run([logits_tool, "--arch", cfg["job"]["arch"], "--model.config", os.path.join(run, "config.ini"),
                        "--weights", last_checkpoint(run), "--tokens", tokens, "--output", out, "--device", device],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    from safetensors.torch import load_file
    return load_file(out)["logits"].double(), ""


def check_folder(run, logits_tool, tmp, check):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = os.path.join(run, "hf")
    name = os.path.basename(os.path.normpath(run))
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    note = fla_attention_note() if config["model_type"] == "transformer" else ""
    tok = AutoTokenizer.from_pretrained(folder)
    text = "a folder, handed on"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    check(f"{name}: tokenizer encodes as bytes", ids == list(text.encode()), "ok" if ids == list(text.encode()) else ids)
    check(f"{name}: tokenizer EOS is config.json's", tok.eos_token_id == config.get("eos_token_id"),
          f"{tok.eos_token_id} / {config.get('eos_token_id')}")

    rnd = random.Random(7)
    rows = [[rnd.randrange(256) for _ in range(T)] for _ in range(B)]
    tokens = os.path.join(tmp, f"{name}-tokens.txt")
    with open(tokens, "w") as f:
        f.writelines(" ".join(map(str, r)) + "\n" for r in rows)
    ours, why = flame_logits(logits_tool, run, tokens, os.path.join(tmp, f"{name}-cpu.safetensors"), "cpu")
    if ours is None:
        check(f"{name}: logits_tool on the CPU", False, why)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    input_ids = torch.tensor(rows, device=device)
    results = {}
    for dtype, bound in ((torch.float32, BOUND_FP32), (torch.bfloat16, BOUND_BF16)):
        model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        if problems:
            check(f"{name}: from_pretrained {dtype}", False, problems)
            return
        model = model.to(device).eval()
        with torch.no_grad():
            theirs = model(input_ids=input_ids).logits.reshape(B * T, -1).double().cpu()
        results[dtype] = theirs
        e = rel(ours, theirs)
        check(f"{name}: flame CPU fp32 vs {type(model).__name__} {str(dtype)[6:]}{note}", e < bound,
              f"rel {e:.3e} bound {bound:.0e}")
    if device == "cuda":
        gpu, why = flame_logits(logits_tool, run, tokens, os.path.join(tmp, f"{name}-cuda.safetensors"), "cuda")
        if gpu is not None:
            e = rel(gpu, results[torch.bfloat16])
            check(f"{name}: flame CUDA bf16 vs the folder's bf16", e < BOUND_BF16, f"rel {e:.3e} bound {BOUND_BF16:.0e}")


def main():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        skip(f"torch or transformers is not importable ({e})")
    if os.environ.get("FLA_PATH"):
        sys.path.insert(0, os.environ["FLA_PATH"])
    try:
        import fla  # noqa: F401
    except Exception as e:
        skip(f"fla is not importable ({type(e).__name__}: {e})")
    flame_run, logits_tool = programs()
    failures = 0

    def check(what, ok, detail):
        nonlocal failures
        failures += not ok
        print(f"{'ok' if ok else 'FAIL'}: {what}: {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        runs = sys.argv[1:] or [train_tiny(flame_run, tmp, arch) for arch in ("gla", "transformer")]
        for run in runs:
            check_folder(run, logits_tool, tmp, check)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
