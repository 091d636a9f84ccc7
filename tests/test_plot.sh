#!/usr/bin/env bash
# flame-plot on two runs' metrics.jsonl written here ("alpha", and "beta" with
# validation rows): the PNG is 1200 x 900, mostly white, with the pixels of
# both runs' line colours (gnuplot's first two: 9400d3 and 009e73) in it,
# decoded here with Python's zlib; the SVG names both runs and the validation
# curve; --x tokens draws too; a missing folder, a damaged row, a missing -o and
# a missing gnuplot are one line each. Skips without gnuplot.
. "$(dirname "$0")/lib.sh"
PLOT="$top_builddir/flame-plot"
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed"; exit 77; }

mkdir -p "$SCRATCH/alpha" "$SCRATCH/beta"
for s in $(seq 1 50); do
    awk -v s=$s 'BEGIN { printf "{\"step\": %d, \"tokens\": %d, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.4f, \"skipped\": 0}\n",
        s, s * 512, 5 * exp(-s / 20) + 1, 3e-3 * (s < 10 ? s / 10 : 1), 2 + sin(s / 5) }' >>"$SCRATCH/alpha/metrics.jsonl"
    awk -v s=$s 'BEGIN { v = (s % 10 == 0) ? sprintf(", \"val_loss\": %.6f", 4 * exp(-s / 25) + 1.2) : "";
        printf "{\"step\": %d, \"tokens\": %d, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.4f%s}\n",
        s, s * 512, 4 * exp(-s / 25) + 1.1, 1e-3, 1.5 + cos(s / 7), v }' >>"$SCRATCH/beta/metrics.jsonl"
done
"$PLOT" "$SCRATCH/alpha" "$SCRATCH/beta" -o "$SCRATCH/loss.png" >"$SCRATCH/out" 2>&1 ||
    { fail "flame-plot png failed: $(cat "$SCRATCH/out")"; finish; }
python3 - "$SCRATCH/loss.png" <<'PY' || fail "the PNG is not the plot"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
channels = {2: 3, 6: 4}[ctype]
assert depth == 8 and interlace == 0
raw, stride = zlib.decompress(idat), w * channels
prev, pixels = bytearray(stride), []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - channels] if i >= channels else 0
        b, c = prev[i], prev[i - channels] if i >= channels else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    pixels += [tuple(line[i:i + 3]) for i in range(0, stride, channels)]
    prev = line
inked = sum(p != (255, 255, 255) for p in pixels) / len(pixels)
purple, green = pixels.count((0x94, 0x00, 0xd3)), pixels.count((0x00, 0x9e, 0x73))
ok = (w, h) == (1200, 900) and 0.01 < inked < 0.5 and purple > 300 and green > 300
print(f"{'ok' if ok else 'FAIL'}: {w} x {h}, {100 * inked:.1f} % inked, {purple} and {green} pixels of the two runs' colours")
sys.exit(0 if ok else 1)
PY
"$PLOT" "$SCRATCH/alpha" "$SCRATCH/beta" -o "$SCRATCH/loss.svg" --x tokens >"$SCRATCH/out" 2>&1 ||
    fail "flame-plot svg failed: $(cat "$SCRATCH/out")"
grep -q "<svg" "$SCRATCH/loss.svg" && grep -q ">alpha<" "$SCRATCH/loss.svg" && grep -q ">beta (validation)<" "$SCRATCH/loss.svg" &&
    grep -q ">tokens<" "$SCRATCH/loss.svg" && echo "ok: the SVG names both runs, beta's validation and the tokens axis" ||
    fail "the SVG lacks a run's name, the validation curve or the axis label"

expect_error 2 "flame-plot: $SCRATCH/nope/metrics.jsonl: No such file or directory" "$PLOT" "$SCRATCH/nope" -o "$SCRATCH/x.png"
mkdir -p "$SCRATCH/bad" && printf '{"step": 1, "loss": 2}\n{"step": \n' >"$SCRATCH/bad/metrics.jsonl"
expect_error 3 "flame-plot: $SCRATCH/bad/metrics.jsonl:2: not a metrics row" "$PLOT" "$SCRATCH/bad" -o "$SCRATCH/x.png"
expect_error 2 "-o FILE.png or FILE.svg is required; got none" "$PLOT" "$SCRATCH/alpha"
FLAME_GNUPLOT=/nonexistent/gnuplot expect_error 2 "/nonexistent/gnuplot not found" "$PLOT" "$SCRATCH/alpha" -o "$SCRATCH/x.png"
finish
