/* The data loader on a shard packed by flame-data and on the text it was
 * packed from: identical batches (rows, targets, varlen cu_seqlens, ranks,
 * across epochs), identical for any num_workers, exact resume from a cursor
 * on both, and clear errors for a shard of another tokenizer, a truncated or
 * corrupt shard, and a cursor of the other kind of dataset. Tokenizers: the
 * byte one, and a byte-level tokenizer.json written here with BOS and EOS and
 * an id above 65535 (so its shard stores uint32 tokens). The documents hold
 * one longer than a data source piece, so a document spans pieces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_loader.h"
#include "data/data_source.h"
#include "testing.h"
#include "data/token_shard.h"
#include "tokenizer/tokenizer_bpe.h"

static char dir[512];
static char text_dir[600], flame_data[1024];

/* ---- files ---- */

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n, "write %s", path);
    if (f)
        fclose(f);
}

static void write_documents(void)
{
    static const char *small[] = {
        "Hello, world.\n",
        "Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c! \xf0\x9f\x8c\x8d the theme\n",
        "", /* skipped */
        "The end, the start.",
    };
    char path[1024];
    snprintf(text_dir, sizeof text_dir, "%s/text", dir);
    CHECK(mkdir(text_dir, 0755) == 0, "mkdir %s", text_dir);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/a%d.txt", text_dir, i);
        write_file(path, small[i], strlen(small[i]));
    }
    /* longer than a piece: lines of words, some multi-byte */
    size_t cap = DATA_SOURCE_PIECE + DATA_SOURCE_PIECE / 2, n = 0;
    char *big = malloc(cap + 64);
    static const char *words[] = {"the ", "then ", "\xc3\xa9t\xc3\xa9 ", "\xe4\xb8\x96 ", "x\n"};
    testing_seed(5);
    while (n < cap) {
        const char *w = words[(int)(testing_uniform() * 5)];
        memcpy(big + n, w, strlen(w));
        n += strlen(w);
    }
    snprintf(path, sizeof path, "%s/b-long.txt", text_dir);
    write_file(path, big, n);
    free(big);
    /* many small JSON documents: runs of many pieces */
    snprintf(path, sizeof path, "%s/c.jsonl", text_dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 3000; i++)
        fprintf(f, "{\"text\": \"doc %d: the %.*s\\u00e9\"}\n", i, i % 37, "theththeththeththeththeththeththe");
    if (f)
        fclose(f);
}

/* byte level BPE: the 256 byte characters, two merges, <|end_of_text|> (EOS)
 * and <|begin_of_text|> (BOS) found by name, and an added token with id 70000 */
static void write_tokenizer(const char *path)
{
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"added_tokens\": ["
                          "{\"id\": 258, \"content\": \"<|end_of_text|>\", \"special\": true},"
                          "{\"id\": 259, \"content\": \"<|begin_of_text|>\", \"special\": true},"
                          "{\"id\": 70000, \"content\": \"<|far|>\", \"special\": true}],\n"
                          " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                          " \"trim_offsets\": true, \"use_regex\": true},\n"
                          " \"decoder\": {\"type\": \"ByteLevel\"},\n"
                          " \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (unsigned b = 0; b < 256; b++) {
        char c[8];
        c[tb_utf8_put(c, tb_byte_char(b))] = 0;
        n += (size_t)snprintf(s + n, cap - n, b == '"' || b == '\\' ? "\"\\%s\": %u, " : "\"%s\": %u, ",
                              c, b);
    }
    n += (size_t)snprintf(s + n, cap - n, "\"he\": 256, \"the\": 257, \"<|far|>\": 70000},\n"
                                          " \"merges\": [[\"h\", \"e\"], [\"t\", \"he\"]]}}\n");
    write_file(path, s, n);
    free(s);
}

static void pack(const char *tokenizer, const char *shard)
{
    char cmd[4096];
    /* the files' order: a shard repeats its order every epoch, the text reshuffles */
    snprintf(cmd, sizeof cmd, "'%s' pack --dataset '%s' --tokenizer '%s' --output '%s' "
             "--num_workers 3 --shuffle false >/dev/null", flame_data, text_dir, tokenizer, shard);
    CHECK(system(cmd) == 0, "%s", cmd);
}

/* ---- loaders ---- */

static data_loader_options options(const char *dataset, const char *tokenizer)
{
    return (data_loader_options){.dataset = dataset, .tokenizer_path = tokenizer,
                                 .batch_size = 3, .seq_len = 200, .rank = 1, .world_size = 2,
                                 .varlen = 1, .context_len = 150, .prefetch = 2};
}

static data_loader *open_loader(const data_loader_options *o, const json_t *cursor)
{
    data_loader *dl;
    char err[1024] = "";
    int rc = data_loader_open(&dl, o, cursor, err, sizeof err);
    CHECK(rc == 0, "open %s (%d workers): %s", o->dataset, o->num_workers, err);
    if (rc) {
        data_loader_close(dl);
        return NULL;
    }
    return dl;
}

static int same_batch(const data_batch *a, const data_batch *b, const data_loader_options *o)
{
    size_t n = (size_t)o->batch_size * o->seq_len;
    return memcmp(a->inputs, b->inputs, n * sizeof(int32_t)) == 0 &&
           memcmp(a->targets, b->targets, n * sizeof(int32_t)) == 0 && a->n_seqs == b->n_seqs &&
           memcmp(a->cu_seqlens, b->cu_seqlens, (a->n_seqs + 1) * sizeof(int32_t)) == 0;
}

/* steps batches of two loaders, equal one by one; returns how many were */
static int compare(const char *what, data_loader *a, data_loader *b, const data_loader_options *o,
                   int steps)
{
    char err[1024];
    int same = 0;
    for (int i = 0; a && b && i < steps; i++) {
        const data_batch *x, *y;
        if (data_loader_next(a, &x, err, sizeof err) || data_loader_next(b, &y, err, sizeof err)) {
            CHECK(0, "%s: step %d: %s", what, i, err);
            break;
        }
        if (!same_batch(x, y, o)) {
            CHECK(0, "%s: batches differ at step %d", what, i);
            break;
        }
        same++;
    }
    printf("%s: %d of %d batches identical\n", what, same, steps);
    return same;
}

/* the steps that read `epochs` epochs of the shard's tokens */
static int steps_for(const char *shard, const data_loader_options *o, double epochs)
{
    token_shard s;
    char err[1024];
    CHECK(token_shard_open(&s, shard, err, sizeof err) == 0, "%s", err);
    uint64_t row = (uint64_t)o->seq_len + 1, per_step = row * o->batch_size * o->world_size;
    int steps = (int)(s.h.n_tokens * epochs / per_step);
    printf("%s: %llu tokens (%u-byte), %llu documents: %.3f epochs in %d steps\n", shard,
           (unsigned long long)s.h.n_tokens, s.h.token_bytes, (unsigned long long)s.h.n_documents,
           epochs, steps);
    token_shard_close(&s);
    return steps;
}

static void test_shard_equals_text(const char *tokenizer, const char *shard, int steps)
{
    data_loader_options t = options(text_dir, tokenizer), s = options(shard, tokenizer);
    for (int rank = 0; rank < 2; rank++) {
        t.rank = s.rank = rank;
        data_loader *a = open_loader(&t, NULL), *b = open_loader(&s, NULL);
        char what[1500];
        snprintf(what, sizeof what, "%s: text vs shard, rank %d of 2", tokenizer, rank);
        CHECK(compare(what, a, b, &t, steps) == steps, "%s", what);
        data_loader_close(a);
        data_loader_close(b);
    }
}

static void test_workers(const char *tokenizer, int steps)
{
    data_loader_options one = options(text_dir, tokenizer), four = one;
    one.num_workers = 1;
    four.num_workers = 4;
    data_loader *a = open_loader(&one, NULL), *b = open_loader(&four, NULL);
    char what[1500];
    snprintf(what, sizeof what, "%s: num_workers 1 vs 4", tokenizer);
    CHECK(compare(what, a, b, &one, steps) == steps, "%s", what);
    data_loader_close(a);
    data_loader_close(b);
}

/* a run interrupted after `at` batches and resumed from its cursor sees the
 * batches an uninterrupted run sees */
static void test_resume(const data_loader_options *o, int at, int steps)
{
    data_loader *whole = open_loader(o, NULL), *first = open_loader(o, NULL);
    char err[1024];
    const data_batch *b;
    for (int i = 0; whole && first && i < at; i++)
        CHECK(data_loader_next(whole, &b, err, sizeof err) == 0 &&
                  data_loader_next(first, &b, err, sizeof err) == 0, "resume: %s", err);
    json_t *cursor = first ? data_loader_cursor(first) : NULL;
    char *text = cursor ? json_dumps(cursor, JSON_COMPACT) : NULL;
    data_loader_close(first);
    data_loader *resumed = cursor ? open_loader(o, cursor) : NULL;
    char what[512];
    snprintf(what, sizeof what, "%s, %d workers: resumed after %d at %s", o->dataset,
             o->num_workers, at, text ? text : "?");
    CHECK(compare(what, whole, resumed, o, steps - at) == steps - at, "%s", what);
    data_loader_close(whole);
    data_loader_close(resumed);
    json_decref(cursor);
    free(text);
}

/* ---- errors ---- */

static void expect_open_error(const data_loader_options *o, const json_t *cursor, int rc,
                              const char *want)
{
    data_loader *dl;
    char err[1024] = "";
    int got = data_loader_open(&dl, o, cursor, err, sizeof err);
    CHECK(got == rc && strstr(err, want), "open %s: %d \"%s\", expected %d \"%s\"", o->dataset,
          got, err, rc, want);
    printf("error as expected: %s\n", err);
    data_loader_close(dl);
}

static void copy_with(const char *from, const char *to, long cut, long at, int byte)
{
    FILE *f = fopen(from, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f) - cut;
    char *data = malloc((size_t)n);
    fseek(f, 0, SEEK_SET);
    CHECK(fread(data, 1, (size_t)n, f) == (size_t)n, "read %s", from);
    fclose(f);
    if (at >= 0)
        data[at] = (char)byte;
    write_file(to, data, (size_t)n);
    free(data);
}

static void test_errors(const char *byte_shard, const char *tokenizer_json)
{
    char path[1100];
    data_loader_options o = options(byte_shard, tokenizer_json);
    expect_open_error(&o, NULL, -1, "packed with another tokenizer");
    o.tokenizer_path = "byte";
    json_t *text_cursor = json_pack("{s:i, s:i, s:i, s:i, s:i}", "epoch", 0, "file", 0,
                                    "document", 1, "offset", 0, "token", 0);
    expect_open_error(&o, text_cursor, -2, "saved for text, but dataset");
    json_t *far = json_pack("{s:i, s:I}", "epoch", 0, "shard_token", (json_int_t)1 << 40);
    expect_open_error(&o, far, -2, "beyond the");
    data_loader_options t = options(text_dir, "byte");
    expect_open_error(&t, far, -2, "saved for a pre-tokenized shard");
    json_decref(text_cursor);
    json_decref(far);

    snprintf(path, sizeof path, "%s/cut.flametok", dir);
    copy_with(byte_shard, path, 1, -1, 0);
    o.dataset = path;
    expect_open_error(&o, NULL, -2, "truncated");
    snprintf(path, sizeof path, "%s/magic.flametok", dir);
    copy_with(byte_shard, path, 0, 0, 'f');
    expect_open_error(&o, NULL, -2, "not a flame token shard");
    o.dataset = "missing.flametok";
    expect_open_error(&o, NULL, -1, "missing.flametok");
    o.dataset = "a.txt, b.flametok";
    expect_open_error(&o, NULL, -1, "must be the whole dataset");
    snprintf(path, sizeof path, "  %s ", byte_shard);
    o.dataset = path;
    data_loader_close(open_loader(&o, NULL)); /* spaces around the path are no part of it */

    /* an id outside the vocabulary, and a token changed inside it: refused
     * when the shard is opened, before a batch is made of it */
    snprintf(path, sizeof path, "%s/id.flametok", dir);
    copy_with(byte_shard, path, 0, TOKEN_SHARD_HEADER + 2 * 1100 + 1, 0x7f);
    o.dataset = path;
    expect_open_error(&o, NULL, -2, "id.flametok: token 1100 is");
    snprintf(path, sizeof path, "%s/hash.flametok", dir);
    copy_with(byte_shard, path, 0, TOKEN_SHARD_HEADER + 2 * 1100, 0); /* no NUL in the text */
    o.dataset = path;
    expect_open_error(&o, NULL, -2, "hash.flametok: the tokens hash to");
}

int main(void)
{
    const char *top = getenv("top_builddir");
    snprintf(flame_data, sizeof flame_data, "%s/flame-data", top ? top : ".");
    if (access(flame_data, X_OK) != 0) {
        printf("FAIL: %s is not built\n", flame_data);
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/flame-shard-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    write_documents();
    char json[1024], byte_shard[1024], bpe_shard[1024];
    snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    snprintf(byte_shard, sizeof byte_shard, "%s/byte.flametok", dir);
    snprintf(bpe_shard, sizeof bpe_shard, "%s/bpe.flametok", dir);
    write_tokenizer(json);
    pack("byte", byte_shard);
    pack(json, bpe_shard);

    const char *toks[2] = {"byte", json}, *shards[2] = {byte_shard, bpe_shard};
    for (int k = 0; k < 2; k++) {
        data_loader_options o = options(shards[k], toks[k]);
        int steps = steps_for(shards[k], &o, 2.5) + 1;
        test_shard_equals_text(toks[k], shards[k], steps);
        test_workers(toks[k], steps);
        test_resume(&o, steps / 2, steps);
        /* text, in the second epoch: inside the long document's first and
         * second pieces, among the JSON lines at the end */
        o.dataset = text_dir;
        o.num_workers = 4;
        test_resume(&o, steps_for(shards[k], &o, 1.3), steps);
        test_resume(&o, steps_for(shards[k], &o, 1.8), steps);
        o.num_workers = 0;
        test_resume(&o, steps_for(shards[k], &o, 1.98), steps);
    }
    test_errors(byte_shard, json);

    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    return testing_result("test_shard_loader");
}
