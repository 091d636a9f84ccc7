#!/usr/bin/env python3
"""flame's GLA, GSA and Mamba2 give fla's logits: a model trained a few steps by flame-run
(on the CPU), exported as the Hugging Face folder fla reads (config.json in fla's
format + the checkpoint's model.safetensors, whose names are already fla's), is
loaded by fla's GLAForCausalLM / GSAForCausalLM / Mamba2ForCausalLM.from_pretrained on the GPU with no missing,
unexpected or mismatched key and every tensor equal to the file's; the same
tokens go through flame (tests/logits_tool, CPU, fp32) and through fla, and

    ||flame - fla|| / ||fla||  <  1e-4  with fla in fp32,
                               <  1e-2  with fla in bf16 (weights and compute),

for the logits and for the loss (mean next-token cross-entropy, labels = the
input ids, as fla counts it). fla runs its 'chunk' kernels (the sequences are
longer than 64 tokens, below which fla switches to 'fused_recurrent') and, in
fp32, its 'fused_recurrent' kernels too. fla's Mamba2 has no kernels of its
own: without mamba_ssm (as here) it runs its PyTorch path, in fp32 and bf16.

fp32 and TF32: Triton computes an fp32 dot product in TF32 unless told
otherwise, and fla's GLA and GSA kernels do not say, so fla's 'chunk' fp32 logits carry
TF32 rounding (about 1e-3 relative). The test sets TRITON_F32_DEFAULT=ieee
before Triton is imported, so fla's fp32 is IEEE fp32 and 1e-4 is a fair bound;
when TRITON_F32_DEFAULT is already set to something else, fla's 'chunk' fp32
logits are held to 2e-3 instead (and the test says so).

Needs torch with CUDA and fla (importable from $FLA_PATH or PYTHONPATH); exits
77 (skipped) with the reason otherwise, so CI (no GPU) skips it. The flame
programs are the build tree's unless $FLAME_RUN, $LOGITS_TOOL and $FLAME_CONVERT
name others, and plugins are also searched in $FLAME_PLUGIN_PATH, as on a GPU
machine that runs a bundle built elsewhere. $FLA_PARITY_ARCHS (comma-separated,
e.g. "gsa") runs only those architectures' cases, $FLA_PARITY_RUNS (e.g.
"bf16 chunk") only those of fla's runs."""
import faulthandler
import json
import math
import os
import random
import subprocess
import sys
import tempfile

BOUND_FP32 = 1e-4
BOUND_FP32_TF32 = 2e-3
BOUND_BF16 = 1e-2
TRAIN_STEPS = 12
B, T = 2, 256
DEVICE = "cuda"  # where fla runs

# fla-format configs (keys of fla's GLAConfig and GSAConfig); vocab above 257 for
# the byte tokenizer. Each architecture: its plugin, fla's model class, its cases.
GLA_CASES = [
    ("fused norm", {
        "model_type": "gla", "architectures": ["GLAForCausalLM"], "hidden_size": 256,
        "num_hidden_layers": 3, "num_heads": 4, "expand_k": 0.5, "expand_v": 1,
        "hidden_ratio": 4, "intermediate_size": None, "vocab_size": 1024,
        "fuse_norm": True, "tie_word_embeddings": False, "use_short_conv": False,
        "attn_mode": "chunk", "use_gk": True, "use_gv": False, "use_output_gate": True,
        "hidden_act": "swish", "norm_eps": 1e-6, "initializer_range": 0.02,
        "gate_logit_normalizer": 16, "gate_low_rank_dim": 16, "clamp_min": None,
        "fuse_cross_entropy": True, "fuse_swiglu": True, "use_cache": False,
    }),
    ("separate norm", {
        "model_type": "gla", "architectures": ["GLAForCausalLM"], "hidden_size": 256,
        "num_hidden_layers": 2, "num_heads": 4, "expand_k": 0.5, "expand_v": 1,
        "vocab_size": 2048, "fuse_norm": False, "tie_word_embeddings": False,
        "use_short_conv": False, "attn_mode": "chunk", "use_cache": False,
    }),
]

# GSA's differ in heads, slots, tying and the output norm's weight; the first
# has fla-org/flame's gsa_340M.json keys that change nothing in fla
GSA_CASES = [
    ("gsa 340M-like", {
        "model_type": "gsa", "architectures": ["GSAForCausalLM"], "hidden_size": 256,
        "num_hidden_layers": 2, "num_heads": 4, "num_slots": 64, "expand_k": 1, "expand_v": 1,
        "elementwise_affine": False, "feature_map": "swish", "gate_logit_normalizer": 4,
        "hidden_act": "swish", "hidden_ratio": 4, "intermediate_size": None, "vocab_size": 1024,
        "norm_eps": 1e-6, "tie_word_embeddings": False, "use_short_conv": False,
        "use_output_gate": True, "use_norm": True, "share_conv_kernel": True, "use_rope": False,
        "fuse_norm": True, "fuse_cross_entropy": True, "use_cache": False,
    }),
    ("gsa tied", {
        "model_type": "gsa", "architectures": ["GSAForCausalLM"], "hidden_size": 192,
        "num_hidden_layers": 2, "num_heads": 2, "num_slots": 32, "expand_k": 1, "expand_v": 1,
        "elementwise_affine": True, "gate_logit_normalizer": 8, "vocab_size": 2048,
        "tie_word_embeddings": True, "use_cache": False,
    }),
]
# Mamba2's differ in width, heads, tying, the convolution's kernel and bias;
# one group each: fla's PyTorch path gives head h the group h % G where
# mamba_ssm's kernels (and flame) give h / (H/G), the same only for G = 1
MAMBA2_CASES = [
    ("mamba2 340M-like", {
        "model_type": "mamba2", "architectures": ["Mamba2ForCausalLM"], "hidden_size": 128,
        "num_hidden_layers": 2, "expand": 2, "head_dim": 32, "state_size": 32, "n_groups": 1,
        "conv_kernel": 4, "use_conv_bias": True, "chunk_size": 256, "vocab_size": 1024,
        "norm_eps": 1e-5, "tie_word_embeddings": False, "rms_norm": True, "time_step_min": 0.001,
        "time_step_max": 0.1, "time_step_floor": 1e-4, "residual_in_fp32": True,
        "fuse_cross_entropy": True, "use_cache": False,
    }),
    ("mamba2 tied", {
        "model_type": "mamba2", "architectures": ["Mamba2ForCausalLM"], "hidden_size": 96,
        "num_hidden_layers": 2, "expand": 2, "head_dim": 16, "state_size": 16, "n_groups": 1,
        "conv_kernel": 3, "use_conv_bias": False, "vocab_size": 2048, "norm_eps": 1e-5,
        "tie_word_embeddings": True, "use_cache": False,
    }),
]

# fla's runs: a label, the dtype, the layers' attention mode (None: the model
# has none to choose) and the bound
LINEAR_ATTENTION_RUNS = [("fp32 chunk", "float32", "chunk", BOUND_FP32),
                         ("fp32 fused_recurrent", "float32", "fused_recurrent", BOUND_FP32),
                         ("bf16 chunk", "bfloat16", "chunk", BOUND_BF16)]
PLAIN_RUNS = [("fp32", "float32", None, BOUND_FP32), ("bf16", "bfloat16", None, BOUND_BF16)]
ARCHS = {"gla": ("GLAForCausalLM", GLA_CASES, LINEAR_ATTENTION_RUNS),
         "gsa": ("GSAForCausalLM", GSA_CASES, LINEAR_ATTENTION_RUNS),
         "mamba2": ("Mamba2ForCausalLM", MAMBA2_CASES, PLAIN_RUNS)}
if os.environ.get("FLA_PARITY_REVERSE") == "1":  # the last cases first
    ARCHS = {a: (cls, cases[::-1], runs) for a, (cls, cases, runs) in ARCHS.items()}

TEXT_WORDS = ("the gated linear attention layer keeps a matrix of state per head and decays "
              "it with a gate computed from the input so that recent tokens weigh more than "
              "old ones while the whole sequence is still summarized in constant memory").split()


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def one_config_per_kernel():
    """fla's kernels autotune over many Triton configs on first use, which takes
    minutes on a fresh machine; which config runs changes the speed, not the
    numbers this test compares, so each kernel keeps its first config only
    (FLA_PARITY_FULL_AUTOTUNE=1 keeps them all). Done before fla is imported,
    since its kernels are decorated at import."""
    if os.environ.get("FLA_PARITY_FULL_AUTOTUNE") == "1":
        return
    try:
        import triton
    except ImportError:
        return
    full = triton.autotune

    def first_config_only(configs, key, prune_configs_by=None, **kwargs):
        prune = (prune_configs_by or {}).get("early_config_prune")
        if prune is None:
            return full(configs=list(configs)[:1], key=key, prune_configs_by=prune_configs_by,
                        **kwargs)
        # a kernel that prunes by shape: the first config that survives its pruning
        first_kept = dict(prune_configs_by,
                          early_config_prune=lambda cs, args, **kw: list(prune(cs, args, **kw))[:1])
        return full(configs=configs, key=key, prune_configs_by=first_kept, **kwargs)

    triton.autotune = first_config_only


def import_fla():
    """torch, CUDA and fla, or skip. TRITON_F32_DEFAULT is set before Triton loads."""
    fla_path = os.environ.get("FLA_PATH")
    if fla_path:
        sys.path.insert(0, fla_path)
    os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
    try:
        import torch
    except ImportError as e:
        skip(f"torch is not importable ({e})")
    one_config_per_kernel()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        skip("torch sees no CUDA device")
    try:
        import fla.models
    except ImportError as e:
        skip(f"fla is not importable from FLA_PATH or PYTHONPATH ({e})")
    from safetensors.torch import load_file
    return torch, fla.models, load_file


def programs():
    top_srcdir = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    top_builddir = os.environ.get("top_builddir", top_srcdir)
    return (os.environ.get("FLAME_RUN", os.path.join(top_builddir, "flame-run")),
            os.environ.get("LOGITS_TOOL", os.path.join(top_builddir, "tests", "logits_tool")),
            os.environ.get("FLAME_CONVERT", os.path.join(top_builddir, "flame-convert")))


def make_text(path):
    rnd = random.Random(1)
    with open(path, "w") as f:
        for _ in range(400):
            f.write(" ".join(rnd.choice(TEXT_WORDS) for _ in range(rnd.randint(8, 30))) + ".\n")


def make_tokens(path, vocab):
    """row 0: bytes of text like the training text; row 1: ids drawn over the whole vocabulary"""
    rnd = random.Random(2)
    text = " ".join(rnd.choice(TEXT_WORDS) for _ in range(200)).encode()
    rows = [list(text[:T]), [rnd.randrange(vocab) for _ in range(T)]]
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join(map(str, row)) + "\n")
    return rows


def train_flame(flame_run, arch, config_json, text, folder):
    cmd = [flame_run, "--arch", arch, "--model.config", config_json, "--training.device", "cpu",
           "--training.dataset", text, "--job.dump_folder", folder,
           "--training.steps", str(TRAIN_STEPS), "--training.batch_size", "4",
           "--training.seq_len", "128", "--optimizer.lr", "3e-3",
           "--lr_scheduler.warmup_steps", "2", "--checkpoint.interval", str(TRAIN_STEPS)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    print(f"  flame-run: {TRAIN_STEPS} steps on the CPU, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return os.path.join(folder, "checkpoint", f"step-{TRAIN_STEPS}", "model.safetensors")


def flame_logits(logits_tool, arch, config_json, weights, tokens, out, torch, device="cpu"):
    """flame's logits and loss; on CUDA, None when this build or machine cannot"""
    r = subprocess.run([logits_tool, "--arch", arch, "--model.config", config_json,
                        "--weights", weights, "--tokens", tokens, "--output", out,
                        "--device", device], stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        if device == "cpu":
            raise AssertionError(f"logits_tool on the CPU exited {r.returncode}")
        return None, None
    from safetensors import safe_open
    with safe_open(out, framework="pt") as f:
        return f.get_tensor("logits").double(), float(f.metadata()["loss"])


def tie_for_transformers_5(model_class):
    """fla declares its tied head as a list, transformers 4's form; transformers 5
    wants {tied: source} and fails on the list while building a tied model. The
    same tie in 5's form (the weights and the math are fla's own)."""
    import transformers
    tied = getattr(model_class, "_tied_weights_keys", None)
    if isinstance(tied, list) and int(transformers.__version__.split(".")[0]) >= 5:
        model_class._tied_weights_keys = {"lm_head.weight": f"{model_class.base_model_prefix}.embeddings.weight"}


def load_fla(model_class, folder, weights, load_file, torch):
    """from_pretrained, strict: no key missing, unexpected or mismatched, every value the file's"""
    tie_for_transformers_5(model_class)
    model, info = model_class.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise AssertionError(f"fla's from_pretrained reported {problems}")
    model = model.to(device=DEVICE, dtype=torch.float32).eval()
    state, want = model.state_dict(), load_file(weights)
    if model.config.tie_word_embeddings:  # fla lists the tied head; the file holds the embedding once
        if not torch.equal(state.pop("lm_head.weight"), state[f"{model.base_model_prefix}.embeddings.weight"]):
            raise AssertionError("fla's tied lm_head is not its embedding")
    if set(state) != set(want):
        raise AssertionError(f"keys differ: only fla {sorted(set(state) - set(want))}, "
                             f"only flame {sorted(set(want) - set(state))}")
    for name, t in want.items():
        if not torch.equal(state[name].cpu(), t):
            raise AssertionError(f"{name}: fla holds other values than the file")
    return model


def fla_forward(model, ids, torch):
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        loss = model(input_ids=ids, labels=ids).loss
    return logits.reshape(-1, logits.shape[-1]).double().cpu(), float(loss)


def next_token_loss(logits, rows, torch):
    """mean cross-entropy of position t predicting token t+1, in float64"""
    ids = torch.tensor(rows)
    lp = torch.log_softmax(logits.reshape(len(rows), T, -1)[:, :-1], dim=-1)
    return float(-lp.gather(-1, ids[:, 1:, None]).mean())


def rel(a, b, torch):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def main():
    # on the GPU machine fla's first forward has been seen running for minutes:
    # every so often, print where each thread is, so a slow or stuck run says why
    faulthandler.dump_traceback_later(int(os.environ.get("FLA_PARITY_TRACEBACK_EVERY", "60")),
                                      repeat=True)
    torch, fla_models, load_file = import_fla()
    flame_run, logits_tool, convert = programs()
    archs = os.environ.get("FLA_PARITY_ARCHS", ",".join(ARCHS)).split(",")
    ieee = os.environ["TRITON_F32_DEFAULT"] == "ieee"
    if not ieee:
        print(f"TRITON_F32_DEFAULT={os.environ['TRITON_F32_DEFAULT']}: fla's fp32 chunk kernels round "
              f"dot products (TF32); their bound is {BOUND_FP32_TF32:g} instead of {BOUND_FP32:g}")
    print(f"fla from {os.path.dirname(os.path.dirname(sys.modules['fla'].__file__))}, "
          f"torch {torch.__version__}, {torch.cuda.get_device_name() if DEVICE == 'cuda' else DEVICE}")
    rows_out, failures = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        text = os.path.join(scratch, "text.txt")
        make_text(text)
        for arch, name, config in [(a, n, c) for a in archs for n, c in ARCHS[a][1]]:
            print(f"case {name}: {json.dumps({k: v for k, v in config.items() if k != 'architectures'})}")
            case_dir = os.path.join(scratch, name.replace(" ", "_"))
            os.makedirs(case_dir)
            config_json = os.path.join(case_dir, "config.json")
            with open(config_json, "w") as f:
                json.dump(config, f, indent=2)
            ckpt = train_flame(flame_run, arch, config_json, text, os.path.join(case_dir, "run"))
            hf = os.path.join(case_dir, "hf")
            subprocess.run([convert, "to-hf", "--checkpoint", os.path.dirname(ckpt), "--output", hf],
                           check=True, stdout=subprocess.DEVNULL)
            weights = os.path.join(hf, "model.safetensors")
            tokens = os.path.join(case_dir, "tokens.txt")
            rows = make_tokens(tokens, config["vocab_size"])
            ours, our_loss = flame_logits(logits_tool, arch, config_json, weights, tokens,
                                          os.path.join(case_dir, "logits.safetensors"), torch)
            print(f"  flame (CPU, fp32): loss {our_loss:.6f} (float64 from its logits "
                  f"{next_token_loss(ours, rows, torch):.6f})")
            on_gpu, gpu_loss = flame_logits(logits_tool, arch, config_json, weights, tokens,
                                            os.path.join(case_dir, "logits_cuda.safetensors"), torch,
                                            "cuda")
            print("  flame (CUDA, bf16): " + (f"loss {gpu_loss:.6f}" if on_gpu is not None
                                               else "not run (no CUDA in this build or machine)"))
            model = load_fla(getattr(fla_models, ARCHS[arch][0]), hf, weights, load_file, torch)
            print("  fla: the to-hf folder through from_pretrained, strict, every tensor equal to the file's")
            ids = torch.tensor(rows, device=DEVICE)
            runs = [(label, getattr(torch, dtype), mode,
                     BOUND_FP32_TF32 if mode == "chunk" and dtype == "float32" and not ieee else bound)
                    for label, dtype, mode, bound in ARCHS[arch][2]]
            only = os.environ.get("FLA_PARITY_RUNS")  # e.g. "bf16 chunk": fewer Triton compilations
            runs = [r for r in runs if not only or r[0] in only.split(",")]
            for label, dtype, mode, bound in runs:
                model = model.to(dtype)
                for layer in (model.model.layers if mode else []):
                    layer.attn.mode = mode
                theirs, their_loss = fla_forward(model, ids, torch)
                e_logits = rel(ours, theirs, torch)
                e_loss = abs(our_loss - their_loss) / abs(their_loss)
                same_top = float((ours.argmax(-1) == theirs.argmax(-1)).double().mean())
                ok = e_logits < bound and e_loss < bound and math.isfinite(e_logits)
                failures += not ok
                rows_out.append((name, label, e_logits, e_loss, our_loss, their_loss, same_top, bound, ok))
                print(f"  fla {label}: logits rel.err {e_logits:.3e}, loss rel.err {e_loss:.3e} "
                      f"(bound {bound:g}) {'ok' if ok else 'FAIL'}", flush=True)
                if dtype == torch.bfloat16 and on_gpu is not None:
                    e_gpu = rel(on_gpu, theirs, torch)
                    e_gpu_loss = abs(gpu_loss - their_loss) / abs(their_loss)
                    top_gpu = float((on_gpu.argmax(-1) == theirs.argmax(-1)).double().mean())
                    ok = e_gpu < BOUND_BF16 and e_gpu_loss < BOUND_BF16 and math.isfinite(e_gpu)
                    failures += not ok
                    rows_out.append((name, label + " / flame CUDA", e_gpu, e_gpu_loss, gpu_loss,
                                     their_loss, top_gpu, BOUND_BF16, ok))
                    print(f"  fla {label} / flame CUDA: logits rel.err {e_gpu:.3e}, loss rel.err "
                          f"{e_gpu_loss:.3e} (bound {BOUND_BF16:g}) {'ok' if ok else 'FAIL'}", flush=True)
            del model
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    print()
    print(f"{'case':<14} {'fla run':<33} {'logits rel.err':>14} {'loss rel.err':>12} "
          f"{'flame loss':>10} {'fla loss':>10} {'argmax eq':>9} {'bound':>7}")
    for name, label, e_logits, e_loss, ol, tl, top, bound, ok in rows_out:
        print(f"{name:<14} {label:<33} {e_logits:>14.3e} {e_loss:>12.3e} {ol:>10.6f} {tl:>10.6f} "
              f"{top:>9.4f} {bound:>7.0e} {'ok' if ok else 'FAIL'}")
    print(f"{failures} of {len(rows_out)} comparisons over their bound")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
