#!/bin/bash
# flame-convert inspect on a file, a checkpoint-like folder and shards, and
# every damaged input refused with one line: exit 3 for bad data, 2 for a
# missing path.
. "$(dirname "$0")/lib.sh"
CONVERT="$top_builddir/flame-convert"
D="$SCRATCH"

# write_st FILE HEADER [DATA_BYTES]: a safetensors file with that JSON header
# (under 256 bytes) followed by DATA_BYTES zero bytes
write_st() {
    local n=${#2}
    { printf "\\x$(printf %02x "$n")\\0\\0\\0\\0\\0\\0\\0"; printf '%s' "$2"; head -c "${3:-0}" /dev/zero; } >"$1"
}

write_st "$D/good.safetensors" '{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}' 32
"$CONVERT" inspect "$D/good.safetensors" >"$D/out" || fail "inspect good.safetensors: exit $?"
grep -Eq '^a +F32 +\[2, 3\] +24$' "$D/out" || fail "inspect: no line for a F32 [2, 3] 24"
grep -Eq '^b +BF16 +\[4\] +8$' "$D/out" || fail "inspect: no line for b BF16 [4] 8"
grep -q '^total: 2 tensors, 10 elements, 32 bytes in 1 file$' "$D/out" || fail "inspect: wrong total: $(tail -1 "$D/out")"

# a flame checkpoint folder: model and optimizer
mkdir "$D/ckpt"
cp "$D/good.safetensors" "$D/ckpt/model.safetensors"
write_st "$D/ckpt/optimizer.safetensors" '{"a.exp_avg":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}' 24
"$CONVERT" inspect "$D/ckpt" >"$D/out" || fail "inspect checkpoint: exit $?"
grep -q '^total: 3 tensors, 16 elements, 56 bytes in 2 files$' "$D/out" || fail "inspect checkpoint: wrong total: $(tail -1 "$D/out")"

# shards listed by an index
mkdir "$D/sharded"
write_st "$D/sharded/s1.safetensors" '{"x":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}' 6
write_st "$D/sharded/s2.safetensors" '{"y":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}' 4
echo '{"metadata": {}, "weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}}' >"$D/sharded/model.safetensors.index.json"
"$CONVERT" inspect "$D/sharded" >"$D/out" || fail "inspect shards: exit $?"
grep -q '^total: 2 tensors, 4 elements, 10 bytes in 2 files$' "$D/out" || fail "inspect shards: wrong total: $(tail -1 "$D/out")"

# damaged files: exit 3, one line naming the problem
printf '\xff\xff\0\0\0\0\0\0{}' >"$D/long.safetensors"
expect_error 3 'long.safetensors' "$CONVERT" inspect "$D/long.safetensors"
write_st "$D/notjson.safetensors" 'hello, world'
expect_error 3 'notjson.safetensors' "$CONVERT" inspect "$D/notjson.safetensors"
write_st "$D/dtype.safetensors" '{"a":{"dtype":"F9","shape":[1],"data_offsets":[0,4]}}' 4
expect_error 3 'dtype.safetensors.*F9' "$CONVERT" inspect "$D/dtype.safetensors"
write_st "$D/short.safetensors" '{"a":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}' 40
expect_error 3 'short.safetensors' "$CONVERT" inspect "$D/short.safetensors"
printf '\x08\0\0' >"$D/tiny.safetensors"
expect_error 3 'tiny.safetensors' "$CONVERT" inspect "$D/tiny.safetensors"
rm "$D/sharded/s2.safetensors"
expect_error 3 'missing shard s2.safetensors' "$CONVERT" inspect "$D/sharded"
echo '{"weight_map": ' >"$D/sharded/model.safetensors.index.json"
expect_error 3 'model.safetensors.index.json' "$CONVERT" inspect "$D/sharded"

# missing inputs and bad command lines: exit 2
expect_error 2 'no-such-folder' "$CONVERT" inspect "$D/no-such-folder"
mkdir "$D/empty"
expect_error 2 'no model.safetensors' "$CONVERT" inspect "$D/empty"
expect_error 2 'no-such-folder' "$CONVERT" from-hf --model "$D/no-such-folder" --output "$D/out-dir"
expect_error 2 'step-9' "$CONVERT" to-hf --checkpoint "$D/no/checkpoint/step-9" --output "$D/hf" --config "$D/good.safetensors.ini"
expect_error 2 'unknown command' "$CONVERT" frobnicate
expect_error 2 '--dtype float16' "$CONVERT" to-hf --checkpoint "$D/ckpt" --output "$D/hf" --dtype float16
[ -e "$D/out-dir" ] && fail "from-hf created its output after an error"
finish
