#!/usr/bin/env python3
"""flame-convert from-hf and to-hf on tiny random Llama folders this test
writes (fp32, bf16, fp16 and fp32 in two shards): every tensor renamed to fla's
names with its values kept exactly (bf16 and fp16 widened exactly), zero
optimizer moments, trainer.json and config.ini as flame-run reads them; to-hf
with no flag but the checkpoint gives the same bits in fp32 and, in bf16, the nearest-even rounding (for a
bf16 source: the original bits). fla's own transformer folder (its names and
config keys) gives the same seed. With --config, a GLA and a GSA seed
checkpoint from the plugin's own parameter list: the tensors that match copied, the rest drawn by
the plugin's init rules, and flame-run trains on from it (as it does from the
transformer checkpoint once that plugin is built). Converting a model of
256 MiB both ways takes less than 32 MiB more peak memory than converting the
tiny one (tensors stream a slice at a time). Exit 0 pass, 1 fail, 77 skipped (numpy or
safetensors missing). The tool is $top_builddir/flame-convert."""
import configparser
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    print(f"convert_roundtrip: skipped: {e} (pip install safetensors numpy)")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
tool = os.path.join(os.environ.get("top_builddir", os.path.dirname(here)), "flame-convert")
failures = 0

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 16,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "intermediate_size": 24, "vocab_size": 257, "rms_norm_eps": 1e-5,
          "rope_theta": 500000.0, "max_position_embeddings": 128, "initializer_range": 0.02,
          "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32"}
# the same model as fla's own TransformerForCausalLM folder writes it (fla's keys)
FLA_CONFIG = {"model_type": "transformer", "architectures": ["TransformerForCausalLM"],
              "hidden_size": 16, "num_hidden_layers": 2, "num_heads": 4, "num_kv_heads": 2,
              "intermediate_size": 24, "hidden_ratio": 4, "vocab_size": 257, "norm_eps": 1e-5,
              "rope_theta": 500000.0, "max_position_embeddings": 128, "initializer_range": 0.02,
              "tie_word_embeddings": False, "hidden_act": "swish", "window_size": None,
              "qkv_bias": False, "qk_norm": False}
RENAME = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm",
          "self_attn": "attn"}


def flame_ini():
    """a reader of the INI files flame writes (a value may end in '  ; where it came from')"""
    return configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL {what}", file=sys.stderr)


def llama_tensors(rng):
    """HF name -> fp32 array, of the shapes CONFIG gives"""
    h, i, v, kv = 16, 24, 257, 2 * 4
    t = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for n in range(2):
        p = f"model.layers.{n}."
        t.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                  p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                  p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                  p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                  p + "mlp.down_proj.weight": (h, i)})
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in t.items()}


def fla_name(hf):
    parts = hf.split(".")
    if hf.startswith("model.embed_tokens."):
        return "model.embeddings." + ".".join(parts[2:])
    return ".".join(RENAME.get(p, p) for p in parts)


def bf16_bits(x):
    """fp32 -> bf16 bits, nearest even (no NaNs here)"""
    b = x.view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def widen_bf16(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_raw(path, tensors):
    """name -> (dtype, array of the stored bits): safetensors by hand, for bf16"""
    header, data = {}, b""
    for name, (dtype, a) in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def read_raw(path):
    """name -> (dtype, shape, bytes)"""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def make_folder(path, variant, weights, config=CONFIG):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    if variant == "bf16":
        write_raw(os.path.join(path, "model.safetensors"),
                  {k: ("BF16", bf16_bits(v)) for k, v in weights.items()})
    elif variant == "fp16":
        save_file({k: v.astype(np.float16) for k, v in weights.items()},
                  os.path.join(path, "model.safetensors"))
    elif variant == "sharded":
        names = sorted(weights)
        shards = {"model-00001-of-00002.safetensors": names[:7],
                  "model-00002-of-00002.safetensors": names[7:]}
        for shard, keys in shards.items():
            save_file({k: weights[k] for k in keys}, os.path.join(path, shard))
        index = {"metadata": {"total_size": 0},
                 "weight_map": {k: s for s, keys in shards.items() for k in keys}}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f)
    else:
        save_file(weights, os.path.join(path, "model.safetensors"))


def expected_values(variant, weights):
    """what the fp32 checkpoint must hold: the stored values, widened exactly"""
    if variant == "bf16":
        return {k: widen_bf16(bf16_bits(v)) for k, v in weights.items()}
    if variant == "fp16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()}
    return weights


def run(*args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def check_checkpoint(variant, out, want):
    step0 = os.path.join(out, "checkpoint", "step-0")
    model = load_file(os.path.join(step0, "model.safetensors"))
    raw = read_raw(os.path.join(step0, "model.safetensors"))
    check(sorted(model) == sorted(fla_name(k) for k in want),
          f"{variant}: tensor names {sorted(model)}")
    for hf, values in want.items():
        got = model.get(fla_name(hf))
        check(raw.get(fla_name(hf), ("",))[0] == "F32", f"{variant}: {fla_name(hf)} is not F32")
        check(got is not None and got.shape == values.shape and
              np.array_equal(got.view(np.uint32), values.view(np.uint32)),
              f"{variant}: {hf} -> {fla_name(hf)} values differ")
    opt = load_file(os.path.join(step0, "optimizer.safetensors"))
    names = [fla_name(k) + s for s in (".exp_avg", ".exp_avg_sq") for k in want]
    check(sorted(opt) == sorted(names), f"{variant}: optimizer tensor names")
    check(all(not v.any() and v.shape == want_shape
              for v, want_shape in ((opt.get(n, np.ones(1)), model[n.rsplit(".", 1)[0]].shape)
                                    for n in names)), f"{variant}: optimizer moments not zero")
    with open(os.path.join(step0, "trainer.json")) as f:
        check(json.load(f) == {"step": 0, "rng_state": "0000000000000000", "skipped": 0,
                               "config_hash": "", "data_cursor": None}, f"{variant}: trainer.json")
    ini = flame_ini()
    ini.read(os.path.join(out, "config.ini"))
    m = ini["model"]
    check((m.getint("hidden_size"), m.getint("num_hidden_layers"), m.getint("num_heads"),
           m.getint("num_kv_heads"), m.getint("intermediate_size"), m.getint("vocab_size"),
           m.getint("max_position_embeddings"), m.getboolean("tie_word_embeddings"))
          == (16, 2, 4, 2, 24, 257, 128, False), f"{variant}: config.ini sizes {dict(m)}")
    check((m.getfloat("norm_eps"), m.getfloat("rope_theta"), m.getfloat("initializer_range"))
          == (1e-5, 500000.0, 0.02), f"{variant}: config.ini floats {dict(m)}")
    return model


def check_to_hf(variant, out, model, source_bits, tmp):
    step0 = os.path.join(out, "checkpoint", "step-0")
    for dtype in ("float32", "bfloat16"):
        hf = os.path.join(tmp, f"{variant}-hf-{dtype}")
        rc, _, err = run("to-hf", "--checkpoint", step0, "--output", hf, "--dtype", dtype)
        check(rc == 0, f"{variant}: to-hf --dtype {dtype}: exit {rc}: {err}")
        if rc:
            continue
        back = read_raw(os.path.join(hf, "model.safetensors"))
        check(sorted(back) == sorted(model), f"{variant}: to-hf {dtype}: tensor names")
        for name, values in model.items():
            st_dtype, shape, data = back[name]
            want = values.tobytes() if dtype == "float32" else bf16_bits(values).tobytes()
            check(st_dtype == ("F32" if dtype == "float32" else "BF16") and
                  shape == list(values.shape) and data == want,
                  f"{variant}: to-hf {dtype}: {name} not bit-exact")
            if source_bits is not None and dtype == "bfloat16":
                check(data == source_bits[name], f"{variant}: bf16 round trip of {name} changed bits")
        with open(os.path.join(hf, "config.json")) as f:
            cfg = json.load(f)
        check(cfg.get("model_type") == "transformer" and
              cfg.get("architectures") == ["TransformerForCausalLM"] and
              cfg.get("torch_dtype") == dtype and cfg.get("hidden_size") == 16 and
              cfg.get("num_kv_heads") == 2 and cfg.get("rope_theta") == 500000.0 and
              cfg.get("tie_word_embeddings") is False and cfg.get("norm_eps") == 1e-5 and
              cfg.get("hidden_act") == "swish",
              f"{variant}: to-hf {dtype}: config.json {cfg}")


GLA_INI = """[model]
tokenizer_path = byte
hidden_size = 16
num_hidden_layers = 2
num_heads = 4
expand_k = 0.5
expand_v = 1.0
intermediate_size = 24
vocab_size = 257
"""
# GLA's tensors whose names and shapes match the Llama's (k_proj: expand_k 0.5
# gives the Llama's 2 kv heads × 4 dims)
GLA_COPIED = {"embeddings", "attn_norm", "mlp_norm", "norm", "lm_head", "k_proj", "o_proj",
              "gate_proj", "up_proj", "down_proj"}
# GSA's, as fla's convert_from_llama.py makes a GSA of a Mistral: q_proj and
# o_proj (the Llama's 4 heads × 4 dims), not k_proj and v_proj (its 2 kv heads)
GSA_INI = """[model]
tokenizer_path = byte
hidden_size = 16
num_hidden_layers = 2
num_heads = 4
num_slots = 4
elementwise_affine = true
intermediate_size = 24
vocab_size = 257
"""
GSA_COPIED = {"embeddings", "attn_norm", "mlp_norm", "norm", "lm_head", "q_proj", "o_proj",
              "gate_proj", "up_proj", "down_proj"}


def train_on(arch, config, dump, tmp):
    """flame-run starts from the seed checkpoint and trains 50 steps; the loss falls"""
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("the quick brown fox jumps over the lazy dog\n" * 50)
    r = subprocess.run([os.path.join(os.path.dirname(tool), "flame-run"), "--arch", arch,
                        "--model.config", config, "--model.tokenizer_path", "byte",
                        "--job.dump_folder", dump, "--checkpoint.load_step", "0",
                        "--training.steps", "50", "--training.batch_size", "2",
                        "--training.seq_len", "16", "--training.dataset", text,
                        "--optimizer.lr", "3e-3", "--lr_scheduler.warmup_steps", "5"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and os.path.isdir(os.path.join(dump, "checkpoint", "step-50")),
          f"flame-run --arch {arch} from the seed: exit {r.returncode}: {r.stderr}")
    if r.returncode:
        return
    with open(os.path.join(dump, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    last = sum(losses[-10:]) / 10
    check(len(losses) == 50 and last < 0.8 * losses[0],
          f"{arch} from the seed: {len(losses)} steps, loss {losses[0]:.4f} -> {last:.4f}")
    print(f"{arch}: 50 steps from the converted seed, loss {losses[0]:.4f} -> {last:.4f} (last 10)")


def check_seed(arch, ini_text, copied, weights, tmp):
    """from-hf --config of another architecture: the table, the copies, the inits, training on"""
    src, out = os.path.join(tmp, "fp32"), os.path.join(tmp, arch + "-flame")
    ini = os.path.join(tmp, arch + ".ini")
    with open(ini, "w") as f:
        f.write(ini_text)
    rc, table, err = run("from-hf", "--model", src, "--output", out, "--config", ini, "--arch", arch)
    check(rc == 0, f"{arch}: from-hf --config: exit {rc}: {err}")
    if rc:
        return
    model = load_file(os.path.join(out, "checkpoint", "step-0", "model.safetensors"))
    by_fla = {fla_name(k): v for k, v in weights.items()}
    rows = {line.split()[1]: line.split()[0] for line in table.splitlines()
            if line.split()[0] in ("copy", "initialize")}
    check(sorted(rows) == sorted(model), f"{arch}: the table lists every tensor written")
    for name, value in model.items():
        role = "norm" if name == "model.norm.weight" else name.split(".")[-2]
        if role in copied:
            check(rows.get(name) == "copy" and np.array_equal(value, by_fla[name]),
                  f"{arch}: {name} not copied")
        elif "norm" in role:
            check(rows.get(name) == "initialize" and (value == 1).all(), f"{arch}: {name} not ones")
        elif name.endswith(".bias"):
            check(rows.get(name) == "initialize" and not value.any(), f"{arch}: {name} not zeros")
        else:
            check(rows.get(name) == "initialize" and abs(value.mean()) < 0.01 and
                  0.014 < value.std() < 0.026, f"{arch}: {name}: mean {value.mean()} std {value.std()}")
    check("shape differs" in table and "missing in the source" in table, f"{arch}: the table says why")
    train_on(arch, ini, out, tmp)
    print(f"ok: {arch}: {len(model)} tensors, {sum(r == 'copy' for r in rows.values())} copied")


def check_mistral(weights, tmp):
    """a Mistral's sliding_window reaches config.ini as window_size, and flame-run trains with
    it at a seq_len inside the window and past it"""
    src, out = os.path.join(tmp, "mistral"), os.path.join(tmp, "mistral-flame")
    os.makedirs(src)
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump(dict(CONFIG, model_type="mistral", architectures=["MistralForCausalLM"],
                       sliding_window=12), f)
    save_file(weights, os.path.join(src, "model.safetensors"))
    rc, _, err = run("from-hf", "--model", src, "--output", out)
    check(rc == 0, f"mistral: from-hf: exit {rc}: {err}")
    if rc:
        return
    ini = flame_ini()
    ini.read(os.path.join(out, "config.ini"))
    check(ini.get("model", "window_size", fallback=None) == "12",
          f"mistral: config.ini window_size {ini.get('model', 'window_size', fallback=None)}")
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("the quick brown fox jumps over the lazy dog\n" * 50)
    for seq_len in (12, 16):
        r = subprocess.run([os.path.join(os.path.dirname(tool), "flame-run"), "--arch", "transformer",
                            "--model.config", os.path.join(out, "config.ini"),
                            "--model.tokenizer_path", "byte", "--job.dump_folder",
                            os.path.join(tmp, f"mistral-run-{seq_len}"), "--training.steps", "3",
                            "--training.batch_size", "2", "--training.seq_len", str(seq_len),
                            "--training.dataset", text], capture_output=True, text=True)
        check(r.returncode == 0, f"mistral: seq_len {seq_len}: exit {r.returncode}: {r.stderr}")
    print("ok: mistral: sliding_window 12 -> window_size 12; seq_len 12 and 16 train")


def peak_kib(*args):
    """exit status and peak resident memory (KiB) of the tool run alone in a fresh process"""
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    rc, kib = subprocess.run([sys.executable, "-c", probe, tool, *args], capture_output=True,
                             text=True).stdout.split()
    return int(rc), int(kib)


def convert_both_ways(src, tmp, name):
    """from-hf then to-hf of src: the larger of their peak memories, in KiB"""
    out, hf = os.path.join(tmp, name + "-flame"), os.path.join(tmp, name + "-hf")
    rc1, kib1 = peak_kib("from-hf", "--model", src, "--output", out)
    rc2, kib2 = peak_kib("to-hf", "--checkpoint", os.path.join(out, "checkpoint", "step-0"),
                         "--output", hf)
    check(rc1 == 0 and rc2 == 0, f"{name}: from-hf exit {rc1}, to-hf exit {rc2}")
    return max(kib1, kib2)


def check_fla_folder(weights, tmp):
    """fla's own TransformerForCausalLM folder (fla's names and keys) gives the seed
    a Llama folder of the same weights gives; fla's hidden_ratio and window_size
    carry over; what flame's transformer lacks (qk_norm) is refused"""
    fla_weights = {fla_name(k): v for k, v in weights.items()}
    src, out = os.path.join(tmp, "fla"), os.path.join(tmp, "fla-flame")
    make_folder(src, "fp32", fla_weights, FLA_CONFIG)
    rc, _, err = run("from-hf", "--model", src, "--output", out)
    check(rc == 0, f"fla folder: from-hf: exit {rc}: {err}")
    if rc == 0:
        check_checkpoint("fla folder", out, weights)
    src = os.path.join(tmp, "fla-ratio")
    # fla's MLP width from hidden_ratio 4: int(16 * 4 * 2 / 3) rounded up to 256
    wide = {k: (np.ones((256, 16), np.float32) if k.endswith(("gate_proj.weight", "up_proj.weight"))
                else np.ones((16, 256), np.float32) if k.endswith("down_proj.weight") else v)
            for k, v in fla_weights.items()}
    make_folder(src, "fp32", wide, dict(FLA_CONFIG, intermediate_size=None, window_size=12))
    rc, _, err = run("from-hf", "--model", src, "--output", src + "-flame")
    ini = flame_ini()
    ini.read(os.path.join(src + "-flame", "config.ini"))
    m = ini["model"] if ini.has_section("model") else {}
    check(rc == 0 and "intermediate_size" not in m and m.get("hidden_ratio") == "4" and
          m.get("window_size") == "12", f"fla folder, hidden_ratio: exit {rc}: {err} {dict(m)}")
    src = os.path.join(tmp, "fla-qk-norm")
    make_folder(src, "fp32", fla_weights, dict(FLA_CONFIG, qk_norm=True))
    rc, _, err = run("from-hf", "--model", src, "--output", src + "-flame")
    check(rc == 2 and err.count("\n") == 1 and "qk_norm" in err, f"fla qk_norm: exit {rc}: {err}")
    print("ok: fla folder: fla's names and keys into the same seed; qk_norm refused")


def check_streaming(weights, tmp):
    """a 256 MiB model (embeddings and head of 2^21 rows) against the tiny one: the
    difference in peak memory is what the tool holds of the model"""
    rows = 1 << 21
    rng = np.random.default_rng(11)
    big = dict(weights)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        big[name] = rng.standard_normal((rows, CONFIG["hidden_size"]), dtype=np.float32)
    model_mib = sum(a.nbytes for a in big.values()) / 2**20
    make_folder(os.path.join(tmp, "big"), "fp32", big, dict(CONFIG, vocab_size=rows))
    del big
    small_kib = convert_both_ways(os.path.join(tmp, "fp32"), tmp, "small")
    big_kib = convert_both_ways(os.path.join(tmp, "big"), tmp, "big")
    extra_mib = (big_kib - small_kib) / 1024
    check(extra_mib < 32, f"streaming: a {model_mib:.0f} MiB model took {extra_mib:.1f} MiB more "
                          "peak memory than the tiny one")
    print(f"ok: streaming: a {model_mib:.0f} MiB model both ways in {extra_mib:.1f} MiB more "
          f"peak memory than the tiny one ({small_kib / 1024:.0f} MiB)")


def main():
    if not os.access(tool, os.X_OK):
        print(f"convert_roundtrip: FAILED: no tool at {tool}", file=sys.stderr)
        return 1
    weights = llama_tensors(np.random.default_rng(7))
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("fp32", "bf16", "fp16", "sharded"):
            src, out = os.path.join(tmp, variant), os.path.join(tmp, variant + "-flame")
            make_folder(src, variant, weights)
            rc, _, err = run("from-hf", "--model", src, "--output", out)
            check(rc == 0, f"{variant}: from-hf: exit {rc}: {err}")
            if rc:
                continue
            want = expected_values(variant, weights)
            model = check_checkpoint(variant, out, want)
            source_bits = ({fla_name(k): bf16_bits(v).tobytes() for k, v in weights.items()}
                           if variant == "bf16" else None)
            check_to_hf(variant, out, model, source_bits, tmp)
            rc, listing, _ = run("inspect", src)
            check(rc == 0 and f"total: {len(weights)} tensors" in listing.splitlines()[-1],
                  f"{variant}: inspect: {listing.splitlines()[-1:]}")
            print(f"ok: {variant}: {len(weights)} tensors renamed, values and round trip exact")
        check_seed("gla", GLA_INI, GLA_COPIED, weights, tmp)
        check_seed("gsa", GSA_INI, GSA_COPIED, weights, tmp)
        check_streaming(weights, tmp)
        check_fla_folder(weights, tmp)
        if os.path.exists(os.path.join(os.path.dirname(tool), "plugins", "transformer", ".libs",
                                       "transformer.so")):
            out = os.path.join(tmp, "fp32-flame")
            train_on("transformer", os.path.join(out, "config.ini"), out, tmp)
            print("ok: transformer: flame-run trains on from the from-hf seed")
            check_mistral(weights, tmp)
        else:
            print("note: no transformer plugin built: flame-run on its seed not tried")
        bad = os.path.join(tmp, "bloom")  # a model_type no plugin reads
        os.makedirs(bad)
        with open(os.path.join(bad, "config.json"), "w") as f:
            json.dump({"model_type": "bloom"}, f)
        rc, _, err = run("from-hf", "--model", bad, "--output", os.path.join(tmp, "x"))
        check(rc == 4 and err.count("\n") == 1 and 'model_type "bloom"' in err, f"bloom: exit {rc}: {err}")
        gelu = os.path.join(tmp, "gelu")
        make_folder(gelu, "fp32", weights, dict(CONFIG, hidden_act="gelu"))
        rc, _, err = run("from-hf", "--model", gelu, "--output", os.path.join(tmp, "z"))
        check(rc == 2 and err.count("\n") == 1 and 'hidden_act = "gelu": only "silu"' in err,
              f"gelu Llama: exit {rc}: {err}")
        # half a model is no seed: a folder without lm_head, or with no tensors at all
        headless = os.path.join(tmp, "headless")
        make_folder(headless, "fp32", {k: v for k, v in weights.items() if k != "lm_head.weight"})
        rc, _, err = run("from-hf", "--model", headless, "--output", os.path.join(tmp, "h"))
        check(rc == 3 and err.count("\n") == 1 and "lm_head.weight" in err and "missing" in err
              and not os.path.exists(os.path.join(tmp, "h")), f"no lm_head: exit {rc}: {err}")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        with open(os.path.join(empty, "config.json"), "w") as f:
            json.dump(CONFIG, f)
        with open(os.path.join(empty, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", 2) + b"{}")
        rc, _, err = run("from-hf", "--model", empty, "--output", os.path.join(tmp, "e"))
        check(rc == 3 and err.count("\n") == 1 and "missing in the source" in err,
              f"header {{}}: exit {rc}: {err}")
        odd = os.path.join(tmp, "odd")
        make_folder(odd, "fp32", dict(weights, **{"model.layers.0.mystery.weight": np.ones(3, np.float32)}))
        rc, _, err = run("from-hf", "--model", odd, "--output", os.path.join(tmp, "y"))
        check(rc == 3 and err.count("\n") == 1 and "mystery" in err, f"unknown tensor: exit {rc}: {err}")
    if failures:
        print(f"{failures} check(s) failed")
        return 1
    return 0


sys.exit(main())
