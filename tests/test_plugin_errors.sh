#!/usr/bin/env bash
# Plugins that cannot be used get one clear line and exit status 4.
. "$(dirname "$0")/lib.sh"

data="$SCRATCH/data.txt"
echo "A little text." >"$data"
run() { "$FLAME_RUN" --arch "$1" --config "$CONFIGS/gla-tiny.ini" --training.dataset "$data" \
        --job.dump_folder "$SCRATCH/out" --training.steps 1; }

expect_error 4 "plugin 'nosuch' not found" -- run nosuch
expect_error 4 "missing.so: plugin not found" -- run "$SCRATCH/missing.so"

echo "not a library" >"$SCRATCH/text.so"
expect_error 4 "text.so: cannot load plugin" -- run "$SCRATCH/text.so"

# a real shared library without the entry point
echo 'int unrelated(void) { return 1; }' >"$SCRATCH/noentry.c"
$CC -shared -fPIC "$SCRATCH/noentry.c" -o "$SCRATCH/noentry.so"
expect_error 4 "noentry.so: not a flame plugin: no symbol flame_plugin_entry" -- run "$SCRATCH/noentry.so"

# a plugin built against the next major version, the way a third party builds one
build_bigram "$SCRATCH/future.so" -DBIGRAM_ABI_NEXT || finish
major=$(sed -n 's/^#define FLAME_ABI_VERSION \([0-9]*\)u.*$/\1/p' "$top_srcdir/include/flame/plugin.h")
minor=$(sed -n 's/^#define FLAME_ABI_MINOR \([0-9]*\)u.*$/\1/p' "$top_srcdir/include/flame/plugin.h")
expect_error 4 "future.so: plugin ABI version $((major + 1)), but this flame speaks version $major \($major.$minor\)" -- \
    run "$SCRATCH/future.so"

# one built against ABI 5.0: its vtable ends at decode_step, right before a
# page the core cannot read; it loads and trains (the later entries count as NULL)
build_bigram "$SCRATCH/old.so" -DBIGRAM_ABI_5_0 || finish
if "$FLAME_RUN" --arch "$SCRATCH/old.so" --training.dataset "$data" --job.dump_folder "$SCRATCH/old" \
    --training.batch_size 1 --training.seq_len 8 --training.steps 3 >"$SCRATCH/old.out" 2>&1; then
    echo "ok: a plugin of ABI $major.0 (a shorter vtable) trains"
else
    fail "the ABI $major.0 plugin did not train: $(tail -n 3 "$SCRATCH/old.out")"
fi

# what a vtable declares is checked before it is used: each refused, naming the field
vtable_plugin() { # NAME BODY: a plugin whose vtable is BODY after the header
    printf '#include <flame/plugin.h>\n%s\nstatic const flame_plugin p = {FLAME_PLUGIN_HEADER, %s};\nconst flame_plugin *flame_plugin_entry(void) { return &p; }\n' \
        "${3:-}" "$2" >"$SCRATCH/$1.c"
    $CC -shared -fPIC -I"$top_srcdir/include" "$SCRATCH/$1.c" -o "$SCRATCH/$1.so"
}
vtable_plugin nofns '.name = "nofns"'
expect_error 4 "nofns.so: plugin vtable: a required function .* is NULL" -- run "$SCRATCH/nofns.so"
vtable_plugin noname '.description = "no name"'
expect_error 4 "noname.so: plugin vtable: name is not usable" -- run "$SCRATCH/noname.so"
vtable_plugin badopt '.name = "badopt", .options = opts, .n_options = 2' \
    'static const flame_option opts[] = {{"a", FLAME_TYPE_INT, "1", "", 0}, {0}};'
expect_error 4 "badopt.so: plugin vtable: option 1 \(\?\): its key is not usable" -- run "$SCRATCH/badopt.so"
vtable_plugin baddefault '.name = "baddefault", .options = opts, .n_options = 1' \
    'static const flame_option opts[] = {{"width", FLAME_TYPE_INT, "wide", "", 0}};'
expect_error 4 "baddefault.so: plugin vtable: option 0 \(width\): its default is not of its type" -- \
    run "$SCRATCH/baddefault.so"
vtable_plugin badfmt '.name = "badfmt", .hf_formats = f, .n_hf_formats = 1' \
    'static const flame_hf_format f[] = {{"badfmt", NULL, NULL, 0, NULL, 0}};'
expect_error 4 "badfmt.so: plugin vtable: a format's model_type or architecture is not usable" -- \
    run "$SCRATCH/badfmt.so"
vtable_plugin badturn '.name = "badturn", .hf_formats = f, .n_hf_formats = 1, .hf_transposed = t, .n_hf_transposed = 1' \
    'static const flame_hf_format f[] = {{"badturn", "X", NULL, 0, NULL, 0}};
     static const flame_hf_transposed t[] = {{"gpt2", "h.*.w"}};'
expect_error 4 "badturn.so: plugin vtable: a transposed tensor names a model_type of no format" -- \
    run "$SCRATCH/badturn.so"
vtable_plugin noturns '.name = "noturns", .n_hf_transposed = 2'
expect_error 4 "noturns.so: plugin vtable: hf_transposed / n_hf_transposed do not describe an array" -- \
    run "$SCRATCH/noturns.so"

# what a model declares of its parameters is checked before anything is allocated
build_bigram "$SCRATCH/huge.so" -DBIGRAM_HUGE || finish
expect_error 4 "plugin parameter model.bigram.weight: dimension 1 is 1099511627776 \(too many values\)" -- \
    "$FLAME_RUN" --arch "$SCRATCH/huge.so" --training.dataset "$data" --job.dump_folder "$SCRATCH/huge" \
    --training.steps 1
build_bigram "$SCRATCH/joined.so" -DBIGRAM_JOINED || finish
expect_error 4 "plugin parameter model.bigram.weight: joined to the one before it, but it is the first" -- \
    "$FLAME_RUN" --arch "$SCRATCH/joined.so" --training.dataset "$data" --job.dump_folder "$SCRATCH/joined" \
    --training.steps 1

# FLAME_PLUGIN_PATH is searched first
mkdir -p "$SCRATCH/plugins" && cp "$SCRATCH/future.so" "$SCRATCH/plugins/gla.so"
FLAME_PLUGIN_PATH="$SCRATCH/plugins" expect_error 4 "plugins/gla.so: plugin ABI version $((major + 1))" -- run gla

finish
