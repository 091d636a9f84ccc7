# Shared by the shell tests: where things are, a scratch folder, and checks
# that count failures. Source it, run checks, end with `finish`.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${CC:=cc}"
FLAME_RUN="$top_builddir/flame-run"
GLA_SO="$top_builddir/plugins/gla/.libs/gla.so"
CONFIGS="$top_srcdir/configs"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/flame-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_error STATUS PATTERN [--] COMMAND...: the command exits with STATUS,
# prints exactly one line on stderr, and that line matches the grep -E PATTERN.
expect_error() {
    local want=$1 pattern=$2; shift 2
    [ "$1" = -- ] && shift
    "$@" >"$SCRATCH/out" 2>"$SCRATCH/err"
    local got=$?
    local lines; lines=$(wc -l <"$SCRATCH/err")
    if [ "$got" != "$want" ]; then
        fail "exit $got, expected $want: $*"; sed 's/^/  stderr: /' "$SCRATCH/err" >&2
    elif ! grep -Eq -- "$pattern" "$SCRATCH/err"; then
        fail "stderr does not match /$pattern/: $*"; sed 's/^/  stderr: /' "$SCRATCH/err" >&2
    elif [ "$lines" != 1 ]; then
        fail "$lines lines on stderr, expected one: $*"; sed 's/^/  stderr: /' "$SCRATCH/err" >&2
    else
        echo "ok: exit $want: $(head -c 160 "$SCRATCH/err")"
    fi
}

# refuses_words COMMAND WORD...: the command, given these words, exits 2 with one line
refuses_words() {
    "$@" >"$SCRATCH/out" 2>&1
    local status=$?
    [ $status -eq 2 ] || fail "'$*': exit $status, expected 2"
    [ "$(wc -l <"$SCRATCH/out")" -eq 1 ] || fail "'$*': not one line: $(cat "$SCRATCH/out")"
}

# skips_without_gpu COMMAND...: with an nvidia-smi that fails first on PATH,
# the command says "skip: no GPU here" and exits 0
skips_without_gpu() {
    mkdir -p "$SCRATCH/nogpu"
    printf '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n' >"$SCRATCH/nogpu/nvidia-smi"
    chmod +x "$SCRATCH/nogpu/nvidia-smi"
    PATH="$SCRATCH/nogpu:$PATH" "$@" >"$SCRATCH/out" 2>&1
    local status=$?
    [ $status -eq 0 ] || fail "without a GPU: exit $status"
    grep -q '^skip: no GPU here' "$SCRATCH/out" || fail "without a GPU: $(cat "$SCRATCH/out")"
}

finish() {
    if [ "$failures" -ne 0 ]; then echo "$failures check(s) failed"; exit 1; fi
    exit 0
}

# write_sentences FILE SENTENCE...: 400 lines of the sentences in a shuffled
# order (line i holds sentence i·7 mod their count): learnable, yet more than one string
write_sentences() {
    local out=$1; shift
    local i
    for i in $(seq 1 400); do
        local k=$((i * 7 % $# + 1))
        echo "${!k}"
    done >"$out"
}

# loss_summary METRICS.jsonl K: "FIRST MEAN_OF_LAST_K ROWS" of a run's losses
loss_summary() {
    awk -v k="$2" '{ match($0, /"loss": [^,]*/); l[NR] = substr($0, RSTART + 8, RLENGTH - 8) }
        END { s = 0; for (i = NR - k + 1; i <= NR; i++) s += l[i]; print l[1], s / k, NR }' "$1"
}

# tiny_preset_learns PRESET TEXT PRINTED: trains configs/PRESET.ini (300
# steps) on TEXT with --job.print_args; its log shows the PRINTED line (a
# grep pattern: a preset key as --job.print_args prints it), and the mean loss
# of the last 20 steps falls below 60% of the first step's
tiny_preset_learns() {
    local run="$SCRATCH/run"
    if ! "$FLAME_RUN" --config "$CONFIGS/$1.ini" --training.dataset "$2" \
            --job.dump_folder "$run" --job.print_args >"$SCRATCH/log" 2>&1; then
        fail "training failed"; cat "$SCRATCH/log" >&2
        return
    fi
    local first last20 rows
    read -r first last20 rows < <(loss_summary "$run/metrics.jsonl" 20)
    echo "first loss $first, mean of the last 20: $last20, $rows rows"
    [ "$rows" = 300 ] || fail "expected 300 metrics rows, got $rows"
    grep -q "$3" "$SCRATCH/log" && grep -q "^\[optimizer\]" "$SCRATCH/log" ||
        fail "--job.print_args: no resolved configuration printed"
    awk -v a="$last20" -v b="$first" 'BEGIN { exit !(a < 0.6 * b) }' ||
        fail "loss did not fall below 60%: first $first, last 20 mean $last20"
}

# the English corpus of the README (Debian's fortunes), or skip
need_corpus() {
    CORPUS="$SCRATCH/english.txt"
    # tests run in parallel: one makes the corpus, the others wait for it
    if ! flock "$top_builddir/.corpus.lock" make -s -C "$top_builddir" corpus/english.txt >/dev/null 2>&1; then
        echo "SKIP: no English corpus: apt-get install fortunes"; exit 77
    fi
    cp "$top_builddir/corpus/english.txt" "$CORPUS"
}

# build_bigram OUT.so [CFLAGS...]: tests/bigram_plugin.c built the way a third
# party builds a plugin, from the installed headers and flame.pc alone
build_bigram() {
    local out=$1; shift
    local inst="$SCRATCH/root"
    if [ ! -d "$inst" ]; then
        make -s -C "$top_builddir" install-flameincludeHEADERS install-pkgconfigDATA DESTDIR="$inst" >/dev/null ||
            { fail "installing the plugin headers failed"; return 1; }
    fi
    local prefix pc_dir cflags
    prefix=$(pkg-config --variable=prefix "$top_builddir/flame.pc")
    pc_dir=$(dirname "$(find "$inst" -name flame.pc)")
    cflags=$(PKG_CONFIG_PATH="$pc_dir" pkg-config --define-variable=prefix="$inst$prefix" --cflags flame)
    $CC -shared -fPIC $cflags "$@" "$top_srcdir/tests/bigram_plugin.c" -o "$out" -lm ||
        { fail "the bigram plugin did not build with: $cflags $*"; return 1; }
    echo "bigram plugin built with pkg-config flags: $cflags $*"
}
