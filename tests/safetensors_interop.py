#!/usr/bin/env python3
"""core/safetensors.c against the reference safetensors library (numpy API):
files the library writes are read by tests/safetensors_tool, and the file the
tool writes is read by the library. Exit 0 pass, 1 fail, 77 skipped (library
missing). The tool is argv[1], else $SAFETENSORS_TOOL, else
$top_builddir/tests/safetensors_tool."""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    print(f"safetensors_interop: skipped: {e} (pip install safetensors numpy)")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
tool = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SAFETENSORS_TOOL")
        or os.path.join(os.environ.get("top_builddir", os.path.dirname(here)),
                        "tests", "safetensors_tool"))
if not os.access(tool, os.X_OK):
    print(f"safetensors_interop: FAILED: no tool at {tool}", file=sys.stderr)
    sys.exit(1)

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL {what}", file=sys.stderr)


def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


ST_NAME = {np.dtype(k): v for k, v in {
    "float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "uint16": "U16", "uint32": "U32",
    "uint64": "U64", "bool": "BOOL"}.items()}


def dump(path):
    r = subprocess.run([tool, "dump", path], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"dump {path}: exit {r.returncode}: {r.stderr.strip()}")
        return {}, []
    meta, tensors = {}, []
    for line in r.stdout.splitlines():
        parts = line.split(" ")
        if parts[0] == "meta":
            meta[parts[1]] = " ".join(parts[2:])
        else:
            _, name, dtype, shape, nbytes, raw, f32 = parts
            dims = tuple(int(x) for x in shape[1:-1].split(",") if x)
            tensors.append((name, dtype, dims, int(nbytes), raw, f32))
    return meta, tensors


with tempfile.TemporaryDirectory() as tmp:
    # library writes, C reads
    rng = np.random.default_rng(3)
    f16 = np.array([0x3C00, 0xC100, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x8000],
                   dtype=np.uint16).view(np.float16)
    arrays = {
        "model.layers.0.weight": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "half": f16,
        "double": np.array(np.pi),  # 0-d
        "large": rng.standard_normal((70, 100)).astype(np.float32),
        "empty": np.zeros((0,), dtype=np.int32),
        "empty2d": np.zeros((3, 0), dtype=np.float32),
        "ids": np.array([1, -2, 2**40], dtype=np.int64),
        "bytes": np.arange(7, dtype=np.uint8),
        "mask": np.array([True, False, True, True]),
        "small": np.array([-128, 127], dtype=np.int8),
        "u16": np.array([65535, 1, 2], dtype=np.uint16),
        "f64v": rng.standard_normal(33),
    }
    meta = {"format": "np", "note": "written by the safetensors library"}
    path = os.path.join(tmp, "py.safetensors")
    save_file(arrays, path, metadata=meta)
    got_meta, got = dump(path)
    check(got_meta == meta, f"metadata {got_meta}")
    check(sorted(t[0] for t in got) == sorted(arrays), f"names {[t[0] for t in got]}")
    for name, dtype, dims, nbytes, raw, f32 in got:
        a = arrays.get(name)
        if a is None:
            continue
        le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        check(dtype == ST_NAME[a.dtype], f"{name}: dtype {dtype}")
        check(dims == a.shape, f"{name}: shape {dims} != {a.shape}")
        check(nbytes == a.nbytes, f"{name}: {nbytes} bytes")
        check(raw == fnv(le.tobytes()), f"{name}: bytes differ")
        if a.dtype.kind == "f":
            want = fnv(a.astype("<f4").tobytes())
            check(f32 == want, f"{name}: fp32 conversion differs")
        else:
            check(f32 == "-", f"{name}: converted an integer tensor")

    # C writes, library reads
    cpath = os.path.join(tmp, "c.safetensors")
    r = subprocess.run([tool, "write", cpath], capture_output=True, text=True)
    check(r.returncode == 0, f"write: {r.stderr.strip()}")
    if r.returncode == 0:
        want = {
            "f32": ((np.arange(12) - 5) * 0.375).astype(np.float32).reshape(3, 4),
            "f16": np.array([0x3C00, 0xC100, 0x0001, 0x7BFF, 0x7C00, 0xFC00],
                            dtype=np.uint16).view(np.float16),
            "f64": np.array(-2.5e-300),
            "i64": (np.arange(6, dtype=np.int64) * -1000000007).reshape(2, 3),
            "i32": np.zeros((0,), dtype=np.int32),
            "u8": (np.arange(5, dtype=np.uint8) * 50).reshape(1, 5),
            "flags": np.array([True, False, True]),
            "i16": np.array([-32768, 32767], dtype=np.int16),
        }
        loaded = load_file(cpath)
        check(sorted(loaded) == sorted(want), f"library sees {sorted(loaded)}")
        for name, w in want.items():
            a = loaded.get(name)
            ok = (a is not None and a.dtype == w.dtype and a.shape == w.shape
                  and a.tobytes() == w.tobytes())
            check(ok, f"{name}: library read {a!r}, expected {w!r}")
        with safe_open(cpath, framework="np") as f:
            check(f.metadata() == {"format": "pt", "origin": "flame"}, f"metadata {f.metadata()}")
            check(list(f.keys()) == sorted(want), f"keys {list(f.keys())}")
        with open(cpath, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            check(n % 8 == 0, f"header length {n} not a multiple of 8")

print(f"safetensors_interop: {'FAILED' if failures else 'ok'}")
sys.exit(1 if failures else 0)
