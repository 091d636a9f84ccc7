#!/usr/bin/env python3
"""flame beside the Python stacks on one GPU, in one call, as a Markdown table.

  bench_compare.py --fla FLA_CHECKOUT [--flame-bench PATH] [--models gla,transformer]
                   [--batch_size 8] [--seq_len 2048] [--warmup_steps 3] [--steps 10]
                   [--out TABLE.md]

For each model it runs flame-bench with its config (below) and then fla's
benchmarks/benchmark_training_throughput.py (from the checkout given, its
fla/ package on PYTHONPATH) at the same batch and step counts:
  gla          configs/gla-340M.ini; fla's GLAForCausalLM from the same
               [model] settings
  transformer  configs/transformer-340M.ini; transformers' LlamaForCausalLM
               (SDPA) of the same shape, eager and under torch.compile (the
               script's --compile): fla's transformer needs flash-attn, and
               a Llama is what a transformer user compares with
  gpt2s, gpt2xl, gpt3-2.7B
               configs/NAME.ini (flame's gpt plugin); transformers'
               GPT2LMHeadModel (SDPA) of the same shape and padded
               vocabulary, without dropout as flame, eager and compiled
The config.json each Python run reads is written from the INI's [model]
section into a temporary folder. Every run's output is kept beside the
table (--out's folder, else the working directory) as bench_compare-*.log.

A run that fails, or prints no figures, is a row that says so; the exit
status is then 1. Bad arguments (an unknown model, a checkout without the
script, no flame-bench) are one line and exit 1 before anything runs."""
import argparse
import configparser
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)


# each model's flame plugin and config
MODELS = {
    "gla": ("gla", "gla-340M.ini"),
    "transformer": ("transformer", "transformer-340M.ini"),
    "gpt2s": ("gpt", "gpt2s.ini"),
    "gpt2xl": ("gpt", "gpt2xl.ini"),
    "gpt3-2.7B": ("gpt", "gpt3-2.7B.ini"),
}


def refuse(message):
    raise SystemExit(f"bench_compare.py: {message}")


def config_path(model):
    return os.path.join(SOURCE, "configs", MODELS[model][1])


def model_section(model):
    """the [model] settings of the model's config, typed as JSON values"""
    path = config_path(model)
    ini = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    if not ini.read(path) or "model" not in ini:
        refuse(f"{path}: missing, or without a [model] section")
    settings = {}
    for key, text in ini["model"].items():
        if text in ("true", "false"):
            settings[key] = text == "true"
        else:
            try:
                settings[key] = int(text)
            except ValueError:
                try:
                    settings[key] = float(text)
                except ValueError:
                    settings[key] = text
    return settings


def mlp_width(m):
    """flame's and fla's MLP width when intermediate_size is unset"""
    if "intermediate_size" in m:
        return m["intermediate_size"]
    width = int(m["hidden_size"] * m.get("hidden_ratio", 4) * 2 / 3)
    return 256 * ((width + 255) // 256)


def python_configs(model):
    """(label, config.json contents, extra script arguments) of the Python rows"""
    m = model_section(model)
    if model == "gla":
        return [("fla GLAForCausalLM", dict(m, model_type="gla"), [])]
    if model == "transformer":
        llama = {
            "model_type": "llama", "hidden_size": m["hidden_size"], "intermediate_size": mlp_width(m),
            "num_hidden_layers": m["num_hidden_layers"], "num_attention_heads": m["num_heads"],
            "num_key_value_heads": m.get("num_kv_heads", m["num_heads"]), "vocab_size": m["vocab_size"],
            "rms_norm_eps": m["norm_eps"], "max_position_embeddings": m.get("max_position_embeddings", 2048),
            "tie_word_embeddings": m["tie_word_embeddings"], "hidden_act": "silu",
            "attn_implementation": "sdpa",
        }
        return [("transformers LlamaForCausalLM (SDPA), eager", llama, []),
                ("transformers LlamaForCausalLM (SDPA), torch.compile", llama, ["--compile"])]
    multiple = m.get("pad_vocab_size_multiple", 1)
    gpt2 = {
        "model_type": "gpt2", "n_embd": m["n_embd"], "n_layer": m["n_layer"], "n_head": m["n_head"],
        "n_positions": m.get("n_positions", 1024), "n_inner": m.get("n_inner"),
        "vocab_size": -(-m["vocab_size"] // multiple) * multiple,
        "activation_function": m.get("activation_function", "gelu_new"),
        "layer_norm_epsilon": m.get("layer_norm_epsilon", 1e-5),
        "scale_attn_by_inverse_layer_idx": m.get("scale_attn_by_inverse_layer_idx", False),
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "attn_implementation": "sdpa",
    }
    return [("transformers GPT2LMHeadModel (SDPA), eager", gpt2, []),
            ("transformers GPT2LMHeadModel (SDPA), torch.compile", gpt2, ["--compile"])]


def run(command, log, env=None):
    """the command's output, or None when it failed; written to log as it
    comes, so that a run cut short (a time limit) shows how far it got"""
    print(f"running {' '.join(command)} (output in {log})", flush=True)
    with open(log, "w") as f:
        r = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env)
    with open(log) as f:
        out = f.read()
    return out if r.returncode == 0 else None


def flame_row(args, model, logs):
    out = run([args.flame_bench, "--arch", MODELS[model][0], "--model.config", config_path(model),
               "--training.batch_size",
               str(args.batch_size), "--training.seq_len", str(args.seq_len), "--bench.warmup_steps",
               str(args.warmup_steps), "--bench.steps", str(args.steps)],
              os.path.join(logs, f"bench_compare-flame-{model}.log"))
    tokens = re.search(r"^tokens/s: ([0-9.]+)", out or "", re.M)
    memory = re.search(r"^peak memory: ([0-9.]+) GiB", out or "", re.M)
    return (float(tokens.group(1)), float(memory.group(1))) if tokens and memory else None


def python_row(args, label, config, extra, logs, index):
    folder = tempfile.mkdtemp(prefix="bench_compare-")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [args.fla, os.environ.get("PYTHONPATH")])))
    out = run([sys.executable, os.path.join(args.fla, "benchmarks", "benchmark_training_throughput.py"),
               "--name", folder, "--batch_size", str(args.batch_size), "--seq_len", str(args.seq_len),
               "--warmup_steps", str(args.warmup_steps), "--steps", str(args.steps)] + extra,
              os.path.join(logs, f"bench_compare-python-{index}.log"), env)
    tokens = re.search(r"throughput: ([0-9.]+) tokens/s", out or "")
    memory = re.search(r"peak memory: ([0-9.]+)(Gi|Mi)B", out or "")
    if not tokens or not memory:
        return None
    gib = float(memory.group(1)) / (1024 if memory.group(2) == "Mi" else 1)
    return float(tokens.group(1)), gib


def cell(row):
    return f"{row[0] / 1e3:.1f} K, {row[1]:.1f} GiB" if row else "failed (see its log)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fla", required=True, help="a checkout of fla-org/flash-linear-attention")
    parser.add_argument("--flame-bench", default=os.path.join(SOURCE, "flame-bench"))
    parser.add_argument("--models", default="gla,transformer")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=2048)
    parser.add_argument("--warmup_steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", help="write the table here too")
    args = parser.parse_args()
    models = args.models.split(",")
    for model in models:
        if model not in MODELS:
            refuse(f"--models: {model!r} is not one of {', '.join(MODELS)}")
    script = os.path.join(args.fla, "benchmarks", "benchmark_training_throughput.py")
    if not os.path.isfile(script):
        refuse(f"--fla {args.fla}: no benchmarks/benchmark_training_throughput.py there")
    if not os.access(args.flame_bench, os.X_OK):
        refuse(f"--flame-bench {args.flame_bench}: not an executable file")
    logs = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
    os.makedirs(logs, exist_ok=True)

    lines = [f"bf16, batch {args.batch_size} × {args.seq_len}, {args.warmup_steps} warm-up + {args.steps} "
             "timed steps; tokens/s and peak memory (flame: device memory in use; the Python stack: "
             "torch.cuda.max_memory_allocated)", "",
             "| model | flame | Python stack | flame ÷ Python |", "| --- | ---: | --- | ---: |"]
    failed = False
    index = 0
    for model in models:
        ours = flame_row(args, model, logs)
        failed |= ours is None
        for label, config, extra in python_configs(model):
            index += 1
            theirs = python_row(args, label, config, extra, logs, index)
            failed |= theirs is None
            ratio = f"{ours[0] / theirs[0]:.2f}×" if ours and theirs else "—"
            lines.append(f"| {MODELS[model][1][:-4]} | {cell(ours)} | {label}: {cell(theirs)} | {ratio} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
