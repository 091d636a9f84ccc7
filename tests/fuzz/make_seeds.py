#!/usr/bin/env python3
"""Writes the fuzz seed corpora, tests/fuzz/NAME/seeds/: small valid inputs of
each kind (the files are committed; rerun this after changing it). Needs the
zstd command for the .zst seeds."""
import gzip, io, json, lzma, os, struct, subprocess, tarfile, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(harness, name, data):
    d = os.path.join(HERE, harness, "seeds")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, meta=None):
    header, blobs, off = {}, b"", 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


put("safetensors", "f32_bf16", safetensors([
    ("embed.weight", "F32", [2, 3], struct.pack("<6f", 1, -2, 0.5, 3, 0, -0.25)),
    ("norm.weight", "BF16", [4], struct.pack("<4H", 0x3F80, 0xBF80, 0x7F80, 0x0001)),
], {"format": "pt", "step": "3"}))
put("safetensors", "f16_f64_scalar", safetensors([
    ("a", "F16", [], struct.pack("<H", 0x3C00)),
    ("b", "F64", [1, 2], struct.pack("<2d", 1.5, -2.0)),
    ("c", "I32", [0], b""),
]))

put("config_ini", "tiny.ini", """[job]
arch = gla
dump_folder = exp/x
[model]
hidden_size = 64
expand_k = 0.5
use_gk = false
attn_mode = chunk
[optimizer]
lr = 3e-3
[training]
steps = 10
seq_len = 16 ; a comment
[checkpoint]
interval = 1
""")
put("config_ini", "lists.ini", "[training]\ndataset = a.txt, b.jsonl\nbatch_size=2\n[metrics]\nlog_freq=1\n")
# a line longer than inih's 200-byte buffer, which the reader splits itself
put("config_ini", "long_line.ini", "[training]\ndataset = " +
    ", ".join(f"shard-{i:04d}.jsonl" for i in range(40)) + "  ; forty files\nsteps = 3\n")

put("config_toml", "job.toml", """[job]
dump_folder = "exp/x"   # a comment
print_args = true
[model]
hidden_size = 64
attn_mode = 'chunk'
[training]
dataset = ["a.txt", "b.jsonl"]
steps = 1_000
max_norm = 1.0
pin_memory = false
[checkpoint]
interval = 0x10
[activation_checkpoint]
mode = "none"
""")
put("config_toml", "nested.toml", "[training.inner]\nsteps = 3\n[job]\ndescription = \"\"\"two\nlines\"\"\"\n"
    "date = 1979-05-27T07:32:00Z\n")

# the columnar reader's rows format: a count line, a lengths line, the bytes
def rows_batch(rows):
    b = [r.encode() for r in rows]
    return f"{len(b)}\n{' '.join(str(len(x)) for x in b)}\n".encode() + b"".join(b)


put("columnar_rows", "two_batches", rows_batch(["hello", "", "caf\u00e9\nline"]) + rows_batch(["the end"]))
put("columnar_rows", "one_row", rows_batch(["x" * 3000]))

put("config_json", "gla.json", json.dumps({
    "model_type": "gla", "architectures": ["GLAForCausalLM"], "hidden_size": 64,
    "expand_k": 0.5, "use_gk": True, "attn_mode": "chunk", "clamp_min": None,
    "fuse_norm": True, "vocab_size": 257}))
put("config_json", "foreign.json", json.dumps({
    "model_type": "foreign", "architectures": ["ForeignForCausalLM"], "width": 32,
    "rope": {"theta": 10000.0, "kind": "plain"}, "bias": False, "dropout": 0.1}))

byte_level = {chr(c) if 33 <= c <= 126 else chr(256 + c): c for c in range(256)}
put("tokenizer", "gpt2.json", json.dumps({
    "added_tokens": [{"id": 260, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                "use_regex": True},
    "model": {"type": "BPE", "vocab": {**byte_level, "he": 256, "the": 257, "\u0120t": 258,
                                       "\u0120the": 259, "<|endoftext|>": 260},
              "merges": [["h", "e"], ["t", "he"], ["\u0120", "t"], ["\u0120t", "he"]]}}))
put("tokenizer", "llama.json", json.dumps({
    "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}
                     for i, c in enumerate(["<unk>", "<s>", "</s>"])],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing", "single": [
        {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, "a": 4, "b": 5, "c": 6,
                        "ab": 7, "bc": 8, "\u2581a": 9, "abc": 10, "<0xE2>": 11, "<0x82>": 12,
                        "<0xAC>": 13},
              "merges": ["b c", "a b", "\u2581 a", "a bc"]}}))

# data_source: the first byte picks the kind, in the order of fuzz_data_source.c's KINDS
TXT = "First line of a document.\nSecond line, caf\u00e9.\n".encode()
JSONL = b'{"text": "one document"}\n\n{"text": "two\\ndocuments \\u00e9", "id": 2}\n'


def tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in [("a.txt", TXT), ("b.jsonl", JSONL), ("c.bin", b"\0\1")]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()[:t.offset + 1024]  # the end-of-archive blocks, not the record padding


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(zipfile.ZipInfo("a.txt", (1980, 1, 1, 0, 0, 0)), TXT)
    z.writestr(zipfile.ZipInfo("b.jsonl", (1980, 1, 1, 0, 0, 0)), JSONL)
kinds = [TXT, JSONL, gzip.compress(TXT, mtime=0), gzip.compress(JSONL, mtime=0), zstd(JSONL),
         lzma.compress(TXT), tar(), zbuf.getvalue(), gzip.compress(tar(), mtime=0),
         gzip.compress(tar(), mtime=0), zstd(tar()), lzma.compress(tar())]
names = ["txt", "jsonl", "txt.gz", "jsonl.gz", "jsonl.zst", "txt.xz", "tar", "zip", "tar.gz",
         "tgz", "tar.zst", "tar.xz"]
for i, (name, data) in enumerate(zip(names, kinds)):
    put("data_source", "%02d.%s" % (i, name), bytes([i]) + data)


def shard_hash(data):
    h, mask = 0x243F6A8885A308D3, (1 << 64) - 1

    def step(h, w):
        h = ((h ^ w) * 0x9E3779B97F4A7C15) & mask
        return h ^ (h >> 32)
    for i in range(0, len(data), 8):
        h = step(h, int.from_bytes(data[i:i + 8].ljust(8, b"\0"), "little"))
    return step(h, len(data))


def shard(tokens, width, vocab, bos, eos, docs):
    data = b"".join(t.to_bytes(width, "little") for t in tokens)
    head = b"FLAMETOK" + struct.pack("<IIQQIiiIQQ", 1, width, len(tokens), docs, vocab, bos, eos, 0,
                                     shard_hash(b"byte"), shard_hash(data))
    return head + data


put("token_shard", "byte", shard([72, 105, 256, 104, 256], 2, 257, -1, 256, 2))
put("token_shard", "wide", shard([1, 70000, 5, 2], 4, 70001, 1, 2, 1))

put("data_cursor", "text", json.dumps({"epoch": 1, "file": 2, "document": 30, "offset": 0,
                                      "index": 4, "token": 17}))
put("data_cursor", "text_unshuffled", json.dumps({"epoch": 0, "file": 0, "document": 3,
                                                 "offset": 1048576, "token": 0}))
put("data_cursor", "mixed", json.dumps({
    "sources": [{"epoch": 0, "file": 0, "document": 0, "offset": 0, "index": 63},
                {"epoch": 4, "file": 1, "document": 2, "offset": 0, "index": 0}],
    "documents": 93, "current": -1, "token": 8}))
put("data_cursor", "shard", json.dumps({"epoch": 2, "shard_token": 123456}))

put("metrics_row", "row", '{"step": 10, "tokens": 5120, "loss": 4.33356524, "lr": 0.0015, '
    '"grad_norm": 2.39995147, "tokens_per_s": 2154.81, "mfu": null, "mem_gib": 0.1562, '
    '"skipped": 0, "val_loss": 4.1924544, "val_perplexity": 66.1850362, "data_epochs": [0, 3]}\n')
put("metrics_row", "skipped", '{"step": 3, "tokens": 384, "loss": null, "lr": 0.0003, '
    '"grad_norm": null, "skipped": 1}\n')


def u32(n):
    return struct.pack("<I", n)


def kv_set(key, value):
    return b"S" + u32(len(key)) + key + u32(len(value)) + value


def kv_get(key):
    return b"G" + u32(len(key)) + key


put("kv_request", "set_then_get", kv_set(b"nccl-id", bytes([1, 2, 0, 4, 5, 0, 7, 8])) + kv_get(b"nccl-id"))
put("kv_request", "empty_value_then_cut", kv_set(b"empty", b"") + b"S" + u32(1) + b"k" + kv_get(b"k")[:4])
put("kv_request", "garbage", b"\xff" * 8)
put("kv_request", "huge_key_length", b"G" + u32(0x80000000))
put("kv_request", "value_over_limit", b"S" + u32(1) + b"k" + u32(0x00100001) + b"xyz")

put("dist_env", "torchrun", "RANK=1\nWORLD_SIZE=4\nLOCAL_RANK=1\nLOCAL_WORLD_SIZE=2\nMASTER_ADDR=node7\n"
    "MASTER_PORT=29500\n")
put("dist_env", "slurm", "SLURM_PROCID=5\nSLURM_NTASKS=8\nSLURM_LOCALID=1\nSLURM_TASKS_PER_NODE=4(x2)\n"
    "SLURM_JOB_NODELIST=gpu[03-04,07],cpu1\n")
put("dist_env", "slurm_bad_list", "SLURM_PROCID=0\nSLURM_NTASKS=2\nSLURM_NODELIST=n[009-010\nNGPU=two\n")
put("dist_env", "ngpu", "NGPU=8\nRANK=0\nWORLD_SIZE=1\n")


def param(name_len, dims, init=0, decay=1, joined=0, negative_std=0):
    """One tensor of fuzz_param_decl's declarations: 9 bytes."""
    shape = list(dims) + [1] * (4 - len(dims))
    return bytes([name_len, len(dims)] + shape + [init, 7, decay | negative_std << 1 | joined << 2])


def declarations(shards, tensors):
    return bytes([len(tensors) + 17 * (shards - 1)]) + b"".join(tensors)


# an embedding, q, k, v joined, a norm, lm_head; one shard and three
decoder = [param(3, [40, 8], decay=0), param(2, [8, 8]), param(2, [4, 8], joined=1), param(2, [4, 8], joined=1),
           param(4, [8], init=2, decay=0), param(5, [40, 8])]
put("param_decl", "decoder", declarations(1, decoder))
put("param_decl", "decoder_3_shards", declarations(3, decoder))
put("param_decl", "no_name", declarations(1, [param(0, [4, 8])]))
put("param_decl", "negative_std", declarations(1, [param(2, [4, 8], negative_std=1)]))
put("param_decl", "first_joined", declarations(1, [param(2, [4, 8], joined=1)]))
put("param_decl", "joined_decay_differs", declarations(1, [param(2, [4, 8]), param(2, [8], decay=0, joined=1)]))
put("param_decl", "huge", declarations(1, [param(2, [255, 255])]))
