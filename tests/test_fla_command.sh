#!/usr/bin/env bash
# The training command of fla-org/flame's README runs with flame-run: `bash
# train.sh` becomes `flame-run --arch gla`, the hub names local paths (a small
# GLA in fla's JSON format, a tokenizer.json this test writes, JSON lines
# data), the sizes small. Flags meaningful only to the Python stack are
# accepted and each reported once as ignored, the parallel degrees of one
# process (1, and -1 for the shards) taken as flame's own; a hub name as
# tokenizer is refused.
. "$(dirname "$0")/lib.sh"

cat >"$SCRATCH/gla_tiny.json" <<'EOF'
{
  "attn_mode": "chunk",
  "bos_token_id": 1,
  "clamp_min": null,
  "eos_token_id": 2,
  "expand_k": 0.5,
  "expand_v": 1,
  "fuse_cross_entropy": true,
  "fuse_norm": true,
  "hidden_act": "swish",
  "hidden_ratio": 4,
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": null,
  "model_type": "gla",
  "num_heads": 2,
  "num_hidden_layers": 2,
  "norm_eps": 1e-06,
  "tie_word_embeddings": false,
  "use_cache": true,
  "vocab_size": 300
}
EOF

# a byte-level BPE tokenizer.json (GPT-2 family): the 256 byte symbols, a few
# merges and <|endoftext|>
mkdir -p "$SCRATCH/tokenizer"
python3 - "$SCRATCH/tokenizer/tokenizer.json" <<'EOF'
import json, sys
printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
symbols, extra = {}, 0
for b in range(256):
    if b in printable:
        symbols[b] = chr(b)
    else:
        symbols[b] = chr(256 + extra)
        extra += 1
vocab = {symbols[b]: b for b in range(256)}
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]
for a, b in merges:
    vocab[a + b] = len(vocab)
eos = len(vocab)
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": eos, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "ignore_merges": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
}
json.dump(tok, open(sys.argv[1], "w"), ensure_ascii=False)
EOF

for i in $(seq 60); do
    printf '{"id": %d, "text": "Document %d: the cat sat in the hat, and then the dog ran to the tree."}\n' "$i" "$i"
done >"$SCRATCH/data.jsonl"
printf '[job]\ndescription = the job file of a flame command line\n' >"$SCRATCH/job.ini"

dump="$SCRATCH/exp/gla-tiny/batch1.seqlen256.context64.warmup4.update2.steps12.lr1e-3.cosine"
fla_command() {
    "$FLAME_RUN" --arch gla \
        --job.config_file "$SCRATCH/job.ini" \
        --job.dump_folder "$dump" \
        --model.config "$SCRATCH/gla_tiny.json" \
        --model.tokenizer_path "$1" \
        --optimizer.name AdamW \
        --optimizer.eps 1e-15 \
        --optimizer.lr 1e-3 \
        --lr_scheduler.warmup_steps 4 \
        --lr_scheduler.lr_min 0.1 \
        --lr_scheduler.decay_type cosine \
        --training.batch_size 1 \
        --training.seq_len 256 \
        --training.context_len 64 \
        --training.varlen \
        --training.gradient_accumulation_steps 2 \
        --training.steps 12 \
        --training.max_norm 1.0 \
        --training.skip_nan_inf \
        --training.dataset "$SCRATCH/data.jsonl" \
        --training.dataset_name sample-100BT \
        --training.dataset_split train \
        --training.streaming \
        --training.num_workers 2 \
        --training.prefetch_factor 2 \
        --training.seed 42 \
        --training.compile \
        --training.data_parallel_replicate_degree 1 \
        --training.data_parallel_shard_degree -1 \
        --training.tensor_parallel_degree 1 \
        --training.disable_loss_parallel \
        --checkpoint.interval 6 \
        --checkpoint.load_step -1 \
        --checkpoint.keep_latest_k 2 \
        --metrics.log_freq 1
}

if ! fla_command "$SCRATCH/tokenizer" >"$SCRATCH/out" 2>"$SCRATCH/err"; then
    fail "the fla-style command failed"; cat "$SCRATCH/out" "$SCRATCH/err" >&2
else
    rows=$(wc -l <"$dump/metrics.jsonl")
    [ "$rows" = 12 ] || fail "expected 12 metrics rows, got $rows"
    [ "$(ls "$dump/checkpoint" | tr '\n' ' ')" = "step-12 step-6 " ] ||
        fail "checkpoints: $(ls "$dump/checkpoint" | tr '\n' ' ')"
    for key in training.compile training.dataset_name training.dataset_split training.streaming \
               training.disable_loss_parallel; do
        n=$(grep -c "ignoring \[${key%%.*}\] ${key#*.} " "$SCRATCH/out")
        [ "$n" = 1 ] || fail "$key reported $n times as ignored"
    done
    grep -q "vocab_size = 300" "$dump/config.ini" || fail "the JSON model config was not used"
    echo "ok: the fla-style command trained 12 steps; ignored: $(grep -c ignoring "$SCRATCH/out") flags"
fi

expect_error 2 "fla-hub/gla-1.3B-100B.*local" -- fla_command fla-hub/gla-1.3B-100B

finish
