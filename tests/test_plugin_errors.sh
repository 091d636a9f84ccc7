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

# a plugin built against another ABI version, the way a third party builds one
cat >"$SCRATCH/future.c" <<'C'
#include <flame/plugin.h>
static const flame_plugin future = {FLAME_ABI_VERSION + 41, "future", "from the future"};
const flame_plugin *flame_plugin_entry(void) { return &future; }
C
$CC -shared -fPIC -I"$top_srcdir/include" "$SCRATCH/future.c" -o "$SCRATCH/future.so"
abi=$(sed -n 's/^#define FLAME_ABI_VERSION \([0-9]*\)u$/\1/p' "$top_srcdir/include/flame/plugin.h")
expect_error 4 "future.so: plugin ABI version $((abi + 41)), but this flame speaks version $abi" -- \
    run "$SCRATCH/future.so"

# FLAME_PLUGIN_PATH is searched first
mkdir -p "$SCRATCH/plugins" && cp "$SCRATCH/future.so" "$SCRATCH/plugins/gla.so"
FLAME_PLUGIN_PATH="$SCRATCH/plugins" expect_error 4 "plugins/gla.so: plugin ABI version $((abi + 41))" -- run gla

finish
