/* flame-data: pre-tokenized shards for training.dataset.
 *   pack     tokenizes a data source into a shard (core/token_shard.h), the
 *            token stream the data loader builds from it for one epoch
 *   inspect  prints a shard's header and first tokens, after checking it
 * Exit statuses as every flame tool's (core/errors.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "data/token_shard.h"
#include "data/token_stream.h"
#include "tokenizer/tokenizer.h"
#include "monotonic.h"

enum { MAX_WORKERS = 256 };

static const char USAGE[] =
    "usage: flame-data pack --dataset SPEC --output FILE.flametok [options]\n"
    "       flame-data inspect FILE.flametok [--tokenizer PATH] [-n N]\n"
    "       flame-data COMMAND -h   (the options of a command)\n";

static const char PACK_HELP[] =
    "usage: flame-data pack --dataset SPEC --output FILE.flametok [options]\n"
    "\n"
    "Tokenizes every document of SPEC and writes the token stream training builds\n"
    "from it for one epoch (per document: BOS if the tokenizer has one, its tokens,\n"
    "EOS) into a shard that --training.dataset FILE.flametok memory-maps. SPEC is\n"
    "what training.dataset takes: files, folders, globs, comma lists of .txt and\n"
    ".jsonl, compressed (.gz .zst .xz) or in .tar/.tgz/.tar.*/.zip archives, and\n"
    ".parquet, .arrow and .json tables (read through pyarrow).\n"
    "\n"
    "  --dataset SPEC        (also --training.dataset) the documents\n"
    "  --output FILE         the shard; its name must end in .flametok. Written to\n"
    "                        FILE.tmp, renamed to FILE when complete\n"
    "  --tokenizer PATH      (also --model.tokenizer_path) \"byte\" (the default), a\n"
    "                        tokenizer.json or a folder holding one; training must\n"
    "                        use the same file (the shard records its hash)\n"
    "  --text_field NAME     (also --training.text_field) the JSON lines field,\n"
    "                        default \"text\"\n"
    "  --num_workers N       (also --training.num_workers) tokenizing threads,\n"
    "                        default: the number of CPUs, at most 16; the shard is\n"
    "                        the same for every N\n"
    "  --shuffle true|false  (also --training.shuffle) the data order of training's\n"
    "  --seed N              first epoch, with training's defaults (true, 42, 1024):\n"
    "  --shuffle_buffer N    files in a seeded order, documents shuffled in blocks of\n"
    "                        N; a shard is read in the order it was packed, every epoch\n"
    "\n"
    "Progress goes to stderr, a summary line to stdout.\n"
    "Exit status: 0 done; 1 write failure; 2 bad command line, missing file or\n"
    "tokenizer; 3 unreadable data.\n";

static const char INSPECT_HELP[] =
    "usage: flame-data inspect FILE.flametok [--tokenizer PATH] [-n N]\n"
    "\n"
    "Checks a shard (header, size, every token id below vocab_size, the data hash:\n"
    "it reads the whole file) and prints its header fields and first N tokens.\n"
    "\n"
    "  --tokenizer PATH      (also --model.tokenizer_path) decode the tokens with\n"
    "                        it, one per line, and say whether it is the tokenizer\n"
    "                        the shard was packed with; without it, ids only\n"
    "  -n N                  tokens to print, default 64\n"
    "\n"
    "Exit status: 0 a sound shard; 2 bad command line or missing file; 3 not a\n"
    "shard, corrupt or truncated.\n";

/* ---- command lines: --key VALUE or --key=VALUE ---- */

typedef struct option {
    const char *names[3]; /* the spellings, NULL-terminated */
    const char **value;
} option;

static int usage_error(const char *command, const char *fmt, const char *arg)
{
    fprintf(stderr, "flame-data %s: ", command);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (flame-data %s -h for help)\n", command);
    return FLAME_EXIT_CONFIG;
}

static const option *find_option(const option *opts, const char *key, size_t len)
{
    for (; opts->value; opts++)
        for (int i = 0; i < 3 && opts->names[i]; i++)
            if (strlen(opts->names[i]) == len && strncmp(opts->names[i], key, len) == 0)
                return opts;
    return NULL;
}

/* Fills the options' values; a lone non-option argument goes to *positional
 * (NULL: none allowed). Returns 0, 1 for -h, or an exit status. */
static int parse(const char *command, int argc, char **argv, const option *opts,
                 const char **positional)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (a[0] != '-') {
            if (!positional || *positional)
                return usage_error(command, "unexpected argument %s", a);
            *positional = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const option *o = find_option(opts, a, len);
        if (!o)
            return usage_error(command, "unknown option %s", a);
        if (!eq && i + 1 == argc)
            return usage_error(command, "%s needs a value", a);
        *o->value = eq ? eq + 1 : argv[++i];
    }
    return 0;
}

static int parse_count(const char *command, const char *name, const char *text, long max,
                       long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < 0 || v > max) {
        fprintf(stderr, "flame-data %s: %s %s: expected a whole number from 0 to %ld\n",
                command, name, text, max);
        return FLAME_EXIT_CONFIG;
    }
    *out = v;
    return 0;
}

/* ---- pack ---- */

typedef struct pack_job {
    token_stream_options in;
    const char *output;
    token_stream *stream;
    token_shard_writer *writer;
    uint64_t bytes;
    double start, last_report;
    char err[1024];
} pack_job;

static void report_progress(pack_job *j, int final)
{
    int tty = isatty(STDERR_FILENO);
    double t = monotonic_seconds();
    if (!final && t - j->last_report < (tty ? 0.5 : 10.0))
        return;
    if (final && j->last_report == j->start)
        return; /* short work: the summary says it all */
    j->last_report = t;
    double mb = j->bytes / 1e6;
    fprintf(stderr, "%spack: %.1f MB of text, %.1f MB/s%s", tty ? "\r" : "", mb,
            mb / (t - j->start > 0 ? t - j->start : 1e-9), tty && !final ? "" : "\n");
}

static int open_pack(pack_job *j)
{
    if (token_stream_open(&j->stream, &j->in, j->err, sizeof j->err))
        return FLAME_EXIT_CONFIG;
    const tokenizer *tok = token_stream_tokenizer(j->stream);
    token_shard_header h = {.vocab_size = (uint32_t)tok->vocab_size,
                            .bos_id = tok->bos_id,
                            .eos_id = tok->eos_id};
    if (token_shard_tokenizer_hash(j->in.tokenizer_path, &h.tokenizer_hash, j->err,
                                   sizeof j->err) ||
        token_shard_create(&j->writer, j->output, &h, j->err, sizeof j->err))
        return FLAME_EXIT_CONFIG;
    return 0;
}

/* every piece of the first epoch into the shard */
static int pack_epoch(pack_job *j)
{
    for (;;) {
        token_piece p;
        if (token_stream_next(j->stream, &p, j->err, sizeof j->err))
            return FLAME_EXIT_DATA;
        if (p.at.source[0].epoch > 0)
            return 0;
        if (token_shard_write(j->writer, p.ids, p.n, p.end_of_document ? 1 : 0, j->err,
                              sizeof j->err))
            return FLAME_EXIT_RUNTIME;
        j->bytes += p.bytes;
        report_progress(j, 0);
    }
}

static int run_pack(pack_job *j)
{
    int rc = open_pack(j);
    if (rc == 0)
        rc = pack_epoch(j);
    report_progress(j, 1);
    token_shard_header h;
    if (rc == 0) {
        rc = token_shard_finish(j->writer, &h, j->err, sizeof j->err) ? FLAME_EXIT_RUNTIME : 0;
        j->writer = NULL;
    }
    token_shard_abort(j->writer);
    token_stream_close(j->stream);
    if (rc) {
        fprintf(stderr, "flame-data pack: %s\n", j->err);
        return rc;
    }
    double s = monotonic_seconds() - j->start;
    printf("packed %llu document%s, %.1f MB of text, into %llu tokens (uint%u) in %s: "
           "%.2f s, %.1f MB/s\n",
           (unsigned long long)h.n_documents, h.n_documents == 1 ? "" : "s", j->bytes / 1e6,
           (unsigned long long)h.n_tokens,
           8 * h.token_bytes, j->output, s, j->bytes / 1e6 / (s > 0 ? s : 1e-9));
    return 0;
}

static int default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

static int cmd_pack(int argc, char **argv)
{
    const char *dataset = NULL, *output = NULL, *tok = "byte", *field = NULL, *workers = NULL,
               *shuffle = "true", *seed = "42", *buffer = "1024";
    const option opts[] = {
        {{"--dataset", "--training.dataset"}, &dataset},
        {{"--output"}, &output},
        {{"--tokenizer", "--model.tokenizer_path"}, &tok},
        {{"--text_field", "--training.text_field"}, &field},
        {{"--num_workers", "--training.num_workers"}, &workers},
        {{"--shuffle", "--training.shuffle"}, &shuffle},
        {{"--seed", "--training.seed"}, &seed},
        {{"--shuffle_buffer", "--training.shuffle_buffer"}, &buffer},
        {{NULL}, NULL}};
    int rc = parse("pack", argc, argv, opts, NULL);
    if (rc == 1) {
        fputs(PACK_HELP, stdout);
        return 0;
    }
    if (rc)
        return rc;
    if (!dataset || !output)
        return usage_error("pack", "%s is missing", dataset ? "--output FILE" : "--dataset SPEC");
    if (!token_shard_is_path(output))
        return usage_error("pack", "--output %s: a shard's name must end in .flametok", output);
    long n = default_workers();
    if (workers && (rc = parse_count("pack", "--num_workers", workers, MAX_WORKERS, &n)))
        return rc;
    long seed_value, buffer_docs;
    if ((rc = parse_count("pack", "--seed", seed, LONG_MAX, &seed_value)) ||
        (rc = parse_count("pack", "--shuffle_buffer", buffer, 1 << 24, &buffer_docs)))
        return rc;
    if (strcmp(shuffle, "true") && strcmp(shuffle, "false"))
        return usage_error("pack", "--shuffle %s: expected true or false", shuffle);
    pack_job j = {.in = {.dataset = dataset,
                         .text_field = field,
                         .tokenizer_path = tok,
                         .num_workers = (int)n,
                         .shuffle = strcmp(shuffle, "true") == 0,
                         .shuffle_buffer = (size_t)buffer_docs,
                         .seed = (uint64_t)seed_value},
                  .output = output};
    j.start = j.last_report = monotonic_seconds();
    return run_pack(&j);
}

/* ---- inspect ---- */

/* a token's text, quoted: control bytes and bytes outside valid UTF-8 escaped */
static void print_quoted(const unsigned char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                     : (c & 0xF8) == 0xF0 ? 4 : 0;
        for (size_t k = 1; len > 1 && k < len; k++)
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
                len = 0;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (len == 0 || c < 0x20 || c == 0x7F)
            printf("\\x%02x", c);
        else {
            fwrite(s + i, 1, len, stdout);
            i += len - 1;
        }
    }
    putchar('"');
}

static void print_header(const char *path, const token_shard_header *h)
{
    printf("file         %s\n", path);
    printf("format       version %u, uint%u tokens\n", h->version, 8 * h->token_bytes);
    printf("tokens       %llu\n", (unsigned long long)h->n_tokens);
    printf("documents    %llu\n", (unsigned long long)h->n_documents);
    printf("vocab_size   %u\n", h->vocab_size);
    printf(h->bos_id >= 0 ? "bos_id       %d\n" : "bos_id       none\n", (int)h->bos_id);
    printf(h->eos_id >= 0 ? "eos_id       %d\n" : "eos_id       none\n", (int)h->eos_id);
    printf("data hash    %016llx (verified)\n", (unsigned long long)h->data_hash);
}

static void print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%d%c", (int)ids[i], i % 16 == 15 || i + 1 == n ? '\n' : ' ');
}

static int print_decoded(const tokenizer *tok, const token_shard_header *h, const int32_t *ids,
                         size_t n)
{
    tokenizer_text text = {0};
    for (size_t i = 0; i < n; i++) {
        text.n = 0;
        if (tokenizer_decode(tok, ids + i, 1, 0, &text)) {
            free(text.data);
            return -1;
        }
        printf("%8zu %8d  ", i, (int)ids[i]);
        print_quoted((const unsigned char *)text.data, text.n);
        fputs(ids[i] == h->eos_id ? "  EOS\n" : ids[i] == h->bos_id ? "  BOS\n" : "\n", stdout);
    }
    free(text.data);
    return 0;
}

/* Opens the tokenizer to decode with; *same: whether the shard was packed with it. */
static int open_tokenizer(const char *path, const token_shard_header *h, tokenizer *tok,
                          int *same, char *err, size_t err_len)
{
    uint64_t hash;
    if (token_shard_tokenizer_hash(path, &hash, err, err_len) ||
        tokenizer_open(tok, path, err, err_len))
        return -1;
    *same = hash == h->tokenizer_hash;
    return 0;
}

static void print_tokenizer(const char *path, const token_shard_header *h, int same)
{
    printf("tokenizer    hash %016llx", (unsigned long long)h->tokenizer_hash);
    if (path)
        printf(same ? ", packed with %s" : ", NOT packed with %s: the decoding is wrong", path);
    putchar('\n');
}

static int show_shard(const token_shard *s, const char *tok_path, size_t n)
{
    char err[1024];
    tokenizer tok = {0};
    int same = 0;
    if (token_shard_verify(s, err, sizeof err)) {
        fprintf(stderr, "flame-data inspect: %s\n", err);
        return FLAME_EXIT_DATA;
    }
    if (tok_path && open_tokenizer(tok_path, &s->h, &tok, &same, err, sizeof err)) {
        fprintf(stderr, "flame-data inspect: %s\n", err);
        return FLAME_EXIT_CONFIG;
    }
    print_header(s->path, &s->h);
    print_tokenizer(tok_path, &s->h, same);
    n = n < s->h.n_tokens ? n : (size_t)s->h.n_tokens;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int rc = 0;
    printf("first %zu tokens:\n", n);
    /* the ids were checked by token_shard_verify: reading them cannot fail */
    if (!ids || token_shard_read(s, 0, n, ids, err, sizeof err) ||
        (tok_path ? print_decoded(&tok, &s->h, ids, n) : (print_ids(ids, n), 0))) {
        fprintf(stderr, "flame-data inspect: out of memory\n");
        rc = FLAME_EXIT_RUNTIME;
    }
    free(ids);
    tokenizer_close(&tok);
    return rc;
}

static int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL, *tok = NULL, *count = "64";
    const option opts[] = {{{"--tokenizer", "--model.tokenizer_path"}, &tok},
                           {{"-n"}, &count},
                           {{NULL}, NULL}};
    int rc = parse("inspect", argc, argv, opts, &path);
    if (rc == 1) {
        fputs(INSPECT_HELP, stdout);
        return 0;
    }
    if (rc)
        return rc;
    if (!path)
        return usage_error("inspect", "%s", "no shard file given");
    long n;
    if ((rc = parse_count("inspect", "-n", count, 1L << 30, &n)))
        return rc;
    token_shard s;
    char err[1024];
    int open_rc = token_shard_open(&s, path, err, sizeof err);
    if (open_rc)
        fprintf(stderr, "flame-data inspect: %s\n", err);
    else
        rc = show_shard(&s, tok, (size_t)n);
    token_shard_close(&s);
    return open_rc == -1 ? FLAME_EXIT_CONFIG : open_rc == -2 ? FLAME_EXIT_DATA : rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "flame-data: no command: pack or inspect (flame-data -h for help)\n");
        return FLAME_EXIT_CONFIG;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(argv[1], "pack") == 0)
        return cmd_pack(argc - 2, argv + 2);
    if (strcmp(argv[1], "inspect") == 0)
        return cmd_inspect(argc - 2, argv + 2);
    fprintf(stderr, "flame-data: unknown command %s: pack or inspect (flame-data -h for help)\n",
            argv[1]);
    return FLAME_EXIT_CONFIG;
}
