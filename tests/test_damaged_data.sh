#!/usr/bin/env bash
# Damaged data is refused with exit 3 and one line naming the file, by both
# flame-data pack and flame-run (issue 12): a gzip member whose CRC or length
# is wrong (libarchive's gzip reader does not check them), a truncated .gz, a
# .tar.gz with a wrong CRC, a .flametok shard whose tokens no longer match its
# data hash. An archive member that is neither .txt nor .jsonl is skipped with
# one note on stderr naming the archive and the member.
. "$(dirname "$0")/lib.sh"
FLAME_DATA="$top_builddir/flame-data"
for tool in python3 gzip tar zip; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is needed to make the damaged files"; exit 77; }
done

mkdir -p "$SCRATCH/docs"
python3 - "$SCRATCH/docs" <<'PY' || fail "writing the documents"
import random, sys
rng = random.Random(12)
words = "the of and to in a is that for it as was with be by on not he this are".split()
for i in range(2):
    with open(f"{sys.argv[1]}/doc{i}.txt", "w") as f:
        f.write(" ".join(rng.choice(words) for _ in range(200000)))
PY
gzip -c "$SCRATCH/docs/doc0.txt" >"$SCRATCH/good.txt.gz"
tar -czf "$SCRATCH/good.tar.gz" -C "$SCRATCH/docs" doc0.txt doc1.txt

# damage FROM TO OFFSET: TO is FROM with the byte at OFFSET (negative: from the
# end) flipped; TRUNCATE FROM TO N: TO is FROM less its last N bytes
damage() {
    python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[int(sys.argv[3])] ^= 0x55; open(sys.argv[2], "wb").write(d)' "$@" ||
        fail "damaging $1"
}
truncate_by() { head -c -"$3" "$1" >"$2"; }

damage "$SCRATCH/good.txt.gz" "$SCRATCH/bad-crc.txt.gz" -8      # the trailer's CRC-32
damage "$SCRATCH/good.txt.gz" "$SCRATCH/bad-size.txt.gz" -2     # the trailer's length
damage "$SCRATCH/good.tar.gz" "$SCRATCH/bad-crc.tar.gz" -7
truncate_by "$SCRATCH/good.txt.gz" "$SCRATCH/short.txt.gz" 4
for f in bad-crc.txt.gz bad-size.txt.gz bad-crc.tar.gz short.txt.gz; do
    gzip -t "$SCRATCH/$f" 2>/dev/null && fail "gzip -t accepts $f: the test damaged nothing"
done
cp "$SCRATCH/good.txt.gz" "$SCRATCH/two-members.txt.gz"
gzip -c "$SCRATCH/docs/doc1.txt" >>"$SCRATCH/two-members.txt.gz"

pack() { "$FLAME_DATA" pack --dataset "$1" --tokenizer byte --output "$SCRATCH/out.flametok"; }
train() {
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$1" \
        --job.dump_folder "$SCRATCH/run" --training.steps 2 --lr_scheduler.warmup_steps 1
}

# whole files pack; the two members are both read
for f in good.txt.gz good.tar.gz two-members.txt.gz; do
    pack "$SCRATCH/$f" >"$SCRATCH/pack.out" 2>"$SCRATCH/pack.err" ||
        fail "pack $f: $(cat "$SCRATCH/pack.err")"
done
want=$(( $(cat "$SCRATCH/docs/doc0.txt" "$SCRATCH/docs/doc1.txt" | wc -c) + 1 ))
grep -q "into $want tokens" "$SCRATCH/pack.out" ||
    fail "two-members.txt.gz: expected $want tokens: $(cat "$SCRATCH/pack.out")"

expect_error 3 "bad-crc.txt.gz: corrupt gzip data in member 1 \(incorrect data check\)" -- \
    pack "$SCRATCH/bad-crc.txt.gz"
expect_error 3 "bad-size.txt.gz: corrupt gzip data in member 1 \(incorrect length check\)" -- \
    pack "$SCRATCH/bad-size.txt.gz"
expect_error 3 "bad-crc.tar.gz: corrupt gzip data in member 1 \(incorrect data check\)" -- \
    pack "$SCRATCH/bad-crc.tar.gz"
expect_error 3 "short.txt.gz: truncated gzip data" -- pack "$SCRATCH/short.txt.gz"
expect_error 3 "flame-run: .*bad-crc.txt.gz: corrupt gzip data" -- train "$SCRATCH/bad-crc.txt.gz"
expect_error 3 "flame-run: .*bad-crc.tar.gz: corrupt gzip data" -- train "$SCRATCH/bad-crc.tar.gz"

# a shard with one token changed: inspect and flame-run refuse it alike
pack "$SCRATCH/docs/doc0.txt" >/dev/null 2>&1 && cp "$SCRATCH/out.flametok" "$SCRATCH/good.flametok" ||
    fail "packing doc0.txt"
damage "$SCRATCH/good.flametok" "$SCRATCH/bad.flametok" 5000
expect_error 3 "bad.flametok: the tokens hash to [0-9a-f]+, the header says [0-9a-f]+: corrupt shard" -- \
    "$FLAME_DATA" inspect "$SCRATCH/bad.flametok"
expect_error 3 "flame-run: .*bad.flametok: the tokens hash to [0-9a-f]+, the header says [0-9a-f]+: corrupt shard" -- \
    train "$SCRATCH/bad.flametok"

# a zip member whose name lost its extension: skipped, with one note
cp "$SCRATCH/docs/doc1.txt" "$SCRATCH/docs/doc1"
(cd "$SCRATCH/docs" && zip -q -X ../notes.zip doc0.txt doc1) || fail "zip"
if pack "$SCRATCH/notes.zip" >"$SCRATCH/pack.out" 2>"$SCRATCH/pack.err"; then
    notes=$(grep -c "note:" "$SCRATCH/pack.err")
    grep -q "^flame: note: .*notes.zip: skipped 1 member neither .txt nor .jsonl (the first: doc1)$" \
        "$SCRATCH/pack.err" && [ "$notes" = 1 ] ||
        fail "notes.zip: expected one note naming doc1: $(cat "$SCRATCH/pack.err")"
    want=$(( $(wc -c <"$SCRATCH/docs/doc0.txt") + 1 ))
    grep -q "into $want tokens" "$SCRATCH/pack.out" || fail "notes.zip: $(cat "$SCRATCH/pack.out")"
else
    fail "pack notes.zip: $(cat "$SCRATCH/pack.err")"
fi
finish
