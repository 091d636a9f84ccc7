#!/usr/bin/env bash
# flame-data pack: the same documents as a folder of .txt files, one .jsonl, a
# .jsonl.zst, a .tar and a .zip of the .txt files give the same token stream,
# equal to one computed here independently: with the byte tokenizer (always),
# and with a tokenizer.json trained by the `tokenizers` library (when it can be
# imported). Then inspect, and the errors of both commands.
. "$(dirname "$0")/lib.sh"
FLAME_DATA="$top_builddir/flame-data"
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to write the documents"; exit 77; }

docs="$SCRATCH/docs"
mkdir -p "$docs"
# the documents, as .txt files and JSON lines; an empty one, which every form skips
python3 - "$SCRATCH" <<'EOF' || fail "writing the documents"
import json, random, sys
out = sys.argv[1]
docs = [
    "Hello, world.\n",
    "Grüße aus Köln: Straße, Maß, Öl.",
    "世界你好。这是一个测试文档，包含中文标点。",
    "Καλημέρα κόσμε — ελληνικά.\nΔεύτερη γραμμή.",
    "emoji 🌍🚀👩‍👩‍👧 and symbols ∑∫√ ≠ ≤",
    "مرحبا بالعالم",
    "",
    'def f(x):\n    return {"a": x, \'b\': "\\\\n"}  # quotes "and" backslashes \\\n',
    "tabs\tand\r\nCRLF\r\nlines\n\n\n",
    "   ",
]
rng = random.Random(7)
words = "the of and to in a is that for it as was with be by on not he this are".split()
docs.append(" ".join(rng.choice(words + ["naïve", "café", "日本", "😀"]) for _ in range(20000)))
for i, d in enumerate(docs):
    with open(f"{out}/docs/doc{i:02d}.txt", "w", encoding="utf-8", newline="") as f:
        f.write(d)
with open(f"{out}/docs.jsonl", "w", encoding="utf-8") as f:
    for d in docs:
        f.write(json.dumps({"id": 1, "text": d}, ensure_ascii=False) + "\n")
# the byte tokenizer's stream: each non-empty document's bytes, then EOS (256)
stream = bytearray()
for d in docs:
    b = d.encode()
    if b:
        stream += b"".join(x.to_bytes(2, "little") for x in list(b) + [256])
open(f"{out}/expected-byte.bin", "wb").write(stream)
with open(f"{out}/expected-byte.txt", "w") as f:
    f.write(f"{sum(len(d.encode()) + 1 for d in docs if d)} {sum(1 for d in docs if d)}\n")
EOF
read -r want_tokens want_docs <"$SCRATCH/expected-byte.txt"

# the other forms of the same documents, made by the usual tools (a missing
# one is reported, and its form left out: apt-get install zstd zip)
forms="$docs $SCRATCH/docs.jsonl"
make_form() { # make_form TOOL FILE COMMAND...
    local tool=$1 file=$2; shift 2
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP (this form): $tool is not installed: apt-get install $tool"
    elif "$@"; then
        forms="$forms $file"
    else
        fail "$tool could not make $file"
    fi
}
make_form zstd "$SCRATCH/docs.jsonl.zst" zstd -q "$SCRATCH/docs.jsonl" -o "$SCRATCH/docs.jsonl.zst"
make_form tar "$SCRATCH/docs.tar" tar -cf "$SCRATCH/docs.tar" -C "$docs" $(cd "$docs" && ls doc*.txt)
make_form zip "$SCRATCH/docs.zip" sh -c 'cd "$1" && zip -q -X "$2" doc*.txt' - "$docs" "$SCRATCH/docs.zip"

token_sha() { tail -c +65 "$1" | sha256sum | cut -d' ' -f1; }
field() { sed -n "s/^$2 *//p" "$1" | cut -d' ' -f1; }

# pack_all NAME TOKENIZER EXPECTED.bin: every form packs to EXPECTED's tokens
pack_all() {
    local name=$1 tok=$2 want; want=$(sha256sum <"$3" | cut -d' ' -f1)
    local i=0
    for form in $forms; do
        i=$((i + 1))
        local shard="$SCRATCH/$name-$i.flametok"
        if ! "$FLAME_DATA" pack --dataset "$form" --tokenizer "$tok" --output "$shard" \
            --num_workers $((i % 3 + 1)) --shuffle false >"$SCRATCH/pack.out" 2>"$SCRATCH/pack.err"; then
            fail "pack $name $form: $(cat "$SCRATCH/pack.err")"
            continue
        fi
        [ -e "$shard.tmp" ] && fail "pack $name $form left $shard.tmp"
        local got; got=$(token_sha "$shard")
        if [ "$got" = "$want" ]; then
            echo "ok: $name $(basename "$form"): tokens sha256 $got"
        else
            fail "$name $(basename "$form"): tokens sha256 $got, expected $want"
        fi
    done
}

# ---- the byte tokenizer ----
pack_all byte byte "$SCRATCH/expected-byte.bin"
shard="$SCRATCH/byte-1.flametok"
size=$(stat -c %s "$shard")
[ "$size" = $((64 + 2 * want_tokens)) ] || fail "shard size $size, expected 64 + 2 * $want_tokens"
grep -q "^packed $want_docs documents, .* into $want_tokens tokens (uint16)" "$SCRATCH/pack.out" ||
    fail "pack summary: $(cat "$SCRATCH/pack.out")"
"$FLAME_DATA" inspect "$shard" -n 8 >"$SCRATCH/inspect" || fail "inspect $shard"
[ "$(field "$SCRATCH/inspect" tokens)" = "$want_tokens" ] || fail "inspect: tokens, expected $want_tokens"
[ "$(field "$SCRATCH/inspect" documents)" = "$want_docs" ] || fail "inspect: documents, expected $want_docs"
[ "$(field "$SCRATCH/inspect" vocab_size)" = 257 ] || fail "inspect: vocab_size"
[ "$(field "$SCRATCH/inspect" eos_id)" = 256 ] || fail "inspect: eos_id"
[ "$(field "$SCRATCH/inspect" bos_id)" = none ] || fail "inspect: bos_id"
# "Hello, world.\n" then EOS, as ids
sed -n '/^first 8 tokens:/{n;p}' "$SCRATCH/inspect" | grep -qx "72 101 108 108 111 44 32 119" ||
    fail "inspect ids: $(cat "$SCRATCH/inspect")"
"$FLAME_DATA" inspect "$shard" --tokenizer byte -n 15 >"$SCRATCH/inspect" || fail "inspect --tokenizer"
grep -q "packed with byte" "$SCRATCH/inspect" || fail "inspect: the tokenizer should match"
grep -Eq '^ +13 +10  "\\n"$' "$SCRATCH/inspect" || fail "inspect: token 13 is a newline"
grep -Eq '^ +14 +256  ""  EOS$' "$SCRATCH/inspect" || fail "inspect: token 14 is EOS"
cat "$SCRATCH/inspect"
echo "ok: byte: $want_tokens tokens, $want_docs documents, $size bytes"

# ---- a tokenizer.json trained by `tokenizers`: BOS and EOS, byte-level BPE ----
if python3 -c "import tokenizers" 2>/dev/null; then
    python3 - "$SCRATCH" <<'EOF' || fail "training the tokenizer"
import glob, sys
from tokenizers import Tokenizer, Regex, decoders, models, pre_tokenizers, processors, trainers
out = sys.argv[1]
docs = [open(p, encoding="utf-8", newline="").read() for p in sorted(glob.glob(f"{out}/docs/*.txt"))]
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(docs, trainers.BpeTrainer(
    vocab_size=600, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
bos, eos = tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|end_of_text|>")
tok.post_processor = processors.TemplateProcessing(
    single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
tok.save(f"{out}/tokenizer.json")
ids = []
for d in docs:
    if d:
        ids += [bos] + tok.encode(d, add_special_tokens=False).ids + [eos]
open(f"{out}/expected-bpe.bin", "wb").write(b"".join(i.to_bytes(2, "little") for i in ids))
EOF
    pack_all bpe "$SCRATCH/tokenizer.json" "$SCRATCH/expected-bpe.bin"
    "$FLAME_DATA" inspect "$SCRATCH/bpe-2.flametok" --tokenizer "$SCRATCH/tokenizer.json" -n 3 \
        >"$SCRATCH/inspect" || fail "inspect bpe"
    grep -Eq '^ +0 +0  "<\|begin_of_text\|>"  BOS$' "$SCRATCH/inspect" || fail "inspect: BOS first"
    [ "$(field "$SCRATCH/inspect" documents)" = "$want_docs" ] || fail "bpe: documents"
    "$FLAME_DATA" inspect "$SCRATCH/bpe-2.flametok" --tokenizer byte >"$SCRATCH/inspect" ||
        fail "inspect bpe with byte"
    grep -q "NOT packed with byte" "$SCRATCH/inspect" || fail "inspect: a tokenizer mismatch"
else
    echo "SKIP (this half): the Python package tokenizers cannot be imported"
fi

# ---- errors: one line, naming the file and the problem ----
expect_error 2 "pack: --dataset SPEC is missing" -- "$FLAME_DATA" pack --output "$SCRATCH/x.flametok"
expect_error 2 "must end in .flametok" -- "$FLAME_DATA" pack --dataset "$docs" --output "$SCRATCH/x.bin"
expect_error 2 "unknown option --bogus" -- "$FLAME_DATA" pack --bogus 1
expect_error 2 "missing.txt.*No such file" -- \
    "$FLAME_DATA" pack --training.dataset "$SCRATCH/missing.txt" --output "$SCRATCH/x.flametok"
expect_error 2 "nope.json" -- "$FLAME_DATA" pack --dataset "$docs" \
    --model.tokenizer_path "$SCRATCH/nope.json" --output "$SCRATCH/x.flametok"
expect_error 2 "no-folder/x.flametok.tmp: No such file" -- \
    "$FLAME_DATA" pack --dataset "$docs" --output "$SCRATCH/no-folder/x.flametok"
printf '{"text": "fine"}\n{"text": broken\n' >"$SCRATCH/bad.jsonl"
expect_error 3 "bad.jsonl:2" -- "$FLAME_DATA" pack --dataset "$SCRATCH/bad.jsonl" --output "$SCRATCH/bad.flametok"
[ -e "$SCRATCH/bad.flametok" ] || [ -e "$SCRATCH/bad.flametok.tmp" ] && fail "a failed pack left a file"
expect_error 2 "missing.flametok: No such file" -- "$FLAME_DATA" inspect "$SCRATCH/missing.flametok"
expect_error 2 "unknown command" -- "$FLAME_DATA" unpack
expect_error 2 "-n x: expected a whole number" -- "$FLAME_DATA" inspect "$shard" -n x
# truncated: the last token cut in half; corrupt: magic, token width, a token's bytes
head -c $((size - 1)) "$shard" >"$SCRATCH/cut.flametok"
expect_error 3 "cut.flametok: truncated" -- "$FLAME_DATA" inspect "$SCRATCH/cut.flametok"
head -c 40 "$shard" >"$SCRATCH/short.flametok"
expect_error 3 "short.flametok: truncated" -- "$FLAME_DATA" inspect "$SCRATCH/short.flametok"
corrupt() { # corrupt NAME OFFSET HEXBYTES
    cp "$shard" "$SCRATCH/$1.flametok"
    printf "$3" | dd of="$SCRATCH/$1.flametok" bs=1 seek="$2" conv=notrunc status=none
    echo "$SCRATCH/$1.flametok"
}
expect_error 3 "magic.flametok: not a flame token shard" -- "$FLAME_DATA" inspect "$(corrupt magic 0 'X')"
expect_error 3 "width.flametok: token width 3" -- "$FLAME_DATA" inspect "$(corrupt width 12 '\003')"
expect_error 3 "version.flametok: shard format version 9" -- "$FLAME_DATA" inspect "$(corrupt version 8 '\011')"
expect_error 3 "id.flametok: token 3 is 65535, not below vocab_size 257" -- \
    "$FLAME_DATA" inspect "$(corrupt id $((64 + 6)) '\377\377')"
expect_error 3 "flip.flametok: the tokens hash to" -- "$FLAME_DATA" inspect "$(corrupt flip 64 'h')"

# -h tells what each command does, on stdout, exit 0
"$FLAME_DATA" -h | grep -q "flame-data pack" || fail "flame-data -h"
"$FLAME_DATA" pack -h | grep -q -- "--num_workers" || fail "flame-data pack -h"
"$FLAME_DATA" inspect -h | grep -q -- "-n N" || fail "flame-data inspect -h"

finish
