#!/usr/bin/env bash
# A Hugging Face folder a user can hand to their tools, on the tiny GLA:
#  - checkpoint.export_hf writes DUMP/hf after the last step: the weights (the
#    last checkpoint's, bit for bit at float32), config.json with the byte
#    tokenizer's ids (eos 256, no bos, vocab_size 257) and its tokenizer files;
#  - that tokenizer.json gives each byte as its id and <|endoftext|> as 256,
#    read by flame's own reader and by the `tokenizers` library (when installed);
#  - to-hf of a run with a tokenizer.json copies it and the tokenizer_config.json
#    beside it, writes special_tokens_map.json from its BOS and EOS, and sets
#    config.json's ids to them;
#  - fla-org/flame's spelling --path DIR --step N writes DIR itself;
#  - a bad export_dtype is refused before training.
. "$(dirname "$0")/lib.sh"
CONVERT="$top_builddir/flame-convert"
TOKENIZE="$top_builddir/tests/tokenize_tool"

for i in $(seq 200); do echo "{\"text\": \"the fox $i jumps over the dog\"}"; done >"$SCRATCH/train.jsonl"
run() {
    "$FLAME_RUN" --arch gla --config "$CONFIGS/gla-tiny.ini" --training.dataset "$SCRATCH/train.jsonl" \
        --training.steps 3 --training.batch_size 2 --training.seq_len 32 "$@"
}
run --job.dump_folder "$SCRATCH/run" --checkpoint.export_hf >"$SCRATCH/log" 2>&1 ||
    { fail "the exporting run failed"; cat "$SCRATCH/log"; finish; }
hf="$SCRATCH/run/hf"
for f in model.safetensors config.json tokenizer.json tokenizer_config.json special_tokens_map.json; do
    [ -s "$hf/$f" ] || fail "export_hf wrote no $f"
done
cmp -s "$hf/model.safetensors" "$SCRATCH/run/checkpoint/step-3/model.safetensors" &&
    echo "ok: hf/model.safetensors is step-3's, bit for bit" || fail "hf/model.safetensors is not step-3's weights"
python3 - "$hf" <<'PY' || fail "config.json or the tokenizer files are wrong"
import json, sys
d = sys.argv[1]
c = json.load(open(f"{d}/config.json"))
ok = (c["eos_token_id"], c["bos_token_id"], c["vocab_size"], c["model_type"]) == (256, None, 257, "gla")
t = json.load(open(f"{d}/tokenizer_config.json"))
s = json.load(open(f"{d}/special_tokens_map.json"))
ok &= t["eos_token"] == "<|endoftext|>" and t["bos_token"] is None and s == {"eos_token": "<|endoftext|>"}
print(f"{'ok' if ok else 'FAIL'}: config.json eos {c['eos_token_id']} bos {c['bos_token_id']} "
      f"vocab {c['vocab_size']}; eos_token {t['eos_token']}")
sys.exit(0 if ok else 1)
PY

# the byte tokenizer's tokenizer.json: every byte its id, EOS 256
printf 'h\xc3\xa9llo w\xc3\xb6rld \x01\x7f\xc2\xa0 ~ end' >"$SCRATCH/text"
"$TOKENIZE" "$hf/tokenizer.json" "$SCRATCH/text" >"$SCRATCH/ids-json" 2>/dev/null &&
    "$TOKENIZE" byte "$SCRATCH/text" >"$SCRATCH/ids-byte" 2>/dev/null &&
    cmp -s "$SCRATCH/ids-json" "$SCRATCH/ids-byte" && echo "ok: flame reads the exported tokenizer.json as the byte tokenizer" ||
    fail "the exported tokenizer.json does not give the byte ids: $(cat "$SCRATCH/ids-json")"
if python3 -c "import tokenizers" 2>/dev/null; then
    python3 - "$hf" "$SCRATCH/text" <<'PY' || fail "tokenizers reads the exported tokenizer.json otherwise"
import sys
from tokenizers import Tokenizer
t = Tokenizer.from_file(f"{sys.argv[1]}/tokenizer.json")
text = open(sys.argv[2], "rb").read().decode()
ids = t.encode(text, add_special_tokens=False).ids
ok = ids == list(text.encode()) and t.encode("a<|endoftext|>b").ids == [97, 256, 98] and t.decode(ids) == text
print(f"{'ok' if ok else 'FAIL'}: tokenizers: {len(ids)} ids, each byte its own; <|endoftext|> is 256")
sys.exit(0 if ok else 1)
PY
else
    echo "note: the tokenizers library is not installed: its reading of the file not checked"
fi

# a tokenizer.json run: copied with the tokenizer_config.json beside it
if python3 -c "import tokenizers" 2>/dev/null; then
    mkdir -p "$SCRATCH/tok"
    python3 - "$SCRATCH/tok" "$SCRATCH/train.jsonl" <<'PY' || fail "making a tokenizer"
import json, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
out = sys.argv[1]
docs = [json.loads(l)["text"] for l in open(sys.argv[2])]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
    show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok.save(f"{out}/tokenizer.json")
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 2048,
           "bos_token": "<s>", "eos_token": "</s>"}, open(f"{out}/tokenizer_config.json", "w"))
PY
    run --job.dump_folder "$SCRATCH/bpe" --model.tokenizer_path "$SCRATCH/tok" --model.vocab_size 304 >"$SCRATCH/log" 2>&1 ||
        { fail "the tokenizer.json run failed"; cat "$SCRATCH/log"; }
    "$CONVERT" to-hf --path "$SCRATCH/bpe" --step 3 >"$SCRATCH/log" 2>&1 || { fail "to-hf --path --step failed"; cat "$SCRATCH/log"; }
    cmp -s "$SCRATCH/tok/tokenizer.json" "$SCRATCH/bpe/tokenizer.json" &&
        cmp -s "$SCRATCH/tok/tokenizer_config.json" "$SCRATCH/bpe/tokenizer_config.json" &&
        echo "ok: --path DIR --step 3 wrote DIR with the run's tokenizer.json and tokenizer_config.json" ||
        fail "to-hf --path did not copy the tokenizer's files into DIR"
    python3 - "$SCRATCH/bpe" <<'PY' || fail "config.json's ids are not the tokenizer's"
import json, sys
from tokenizers import Tokenizer
d = sys.argv[1]
t = Tokenizer.from_file(f"{d}/tokenizer.json")
c = json.load(open(f"{d}/config.json"))
s = json.load(open(f"{d}/special_tokens_map.json"))
# no post_processor: the reader finds BOS and EOS by name, <s> and </s>
ok = (c["bos_token_id"], c["eos_token_id"]) == (t.token_to_id("<s>"), t.token_to_id("</s>"))
ok &= s == {"bos_token": "<s>", "eos_token": "</s>"}
print(f"{'ok' if ok else 'FAIL'}: config.json bos {c['bos_token_id']} eos {c['eos_token_id']}, special_tokens_map {s}")
sys.exit(0 if ok else 1)
PY
else
    echo "note: the tokenizers library is not installed: a tokenizer.json run not exported"
fi

expect_error 2 "\[checkpoint\] export_dtype = \"float16\": expected float32 or bfloat16" \
    run --job.dump_folder "$SCRATCH/bad" --checkpoint.export_hf --checkpoint.export_dtype float16
expect_error 2 "export_hf is true but enable_checkpoint is false" \
    run --job.dump_folder "$SCRATCH/bad" --checkpoint.export_hf --checkpoint.enable_checkpoint false
expect_error 2 "--path DIR and --step N go together" "$CONVERT" to-hf --path "$SCRATCH/run"
finish
