/* The shuffled data order (core/data/doc_shuffle.h over data_source's
 * shuffled files), on JSON lines files written here whose documents name
 * themselves ("f2 d13") and a .txt document longer than a piece among them:
 *  - every epoch hands out every document exactly once, the long one whole
 *    and in order;
 *  - the order is not the files' order, is the same for the same seed, other
 *    for another seed, and other in the next epoch;
 *  - a cursor told before any piece, given to a fresh reader, gives exactly
 *    the rest of the stream (across the epoch's end), for every piece;
 *  - block_docs 1 is the files' order itself;
 *  - a cursor into a block past its end is refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_source.h"
#include "data/doc_shuffle.h"
#include "testing.h"

enum { N_FILES = 4, DOCS_PER_FILE = 40, BLOCK = 16, MAX_PIECES = 4096 };

static char dir[64];
static char spec[1024];
static size_t long_len; /* the .txt document */

static void write_files(void)
{
    size_t at = 0;
    for (int f = 0; f < N_FILES; f++) {
        char path[128];
        snprintf(path, sizeof path, "%s/part-%d.jsonl", dir, f);
        FILE *out = fopen(path, "w");
        for (int d = 0; d < DOCS_PER_FILE; d++)
            fprintf(out, "{\"text\": \"f%d d%d\"}\n", f, d);
        fclose(out);
        at += (size_t)snprintf(spec + at, sizeof spec - at, "%s%s", f ? "," : "", path);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/long.txt", dir);
    FILE *out = fopen(path, "w");
    long_len = DATA_SOURCE_PIECE * 2 + 100;
    for (size_t i = 0; i < long_len; i++)
        fputc(i % 64 == 63 ? '\n' : 'a' + (int)(i % 26), out);
    fclose(out);
    snprintf(spec + at, sizeof spec - at, ",%s", path);
}

typedef struct piece {
    char text[32]; /* a JSON document's text; "long" for a piece of long.txt */
    size_t len;
    int end;
    uint64_t epoch;
    data_cursor at;
} piece;

typedef struct reader {
    data_source *src;
    doc_shuffle *order;
    uint64_t epoch;
} reader;

static void open_reader(reader *r, uint64_t seed, size_t block)
{
    char err[512];
    CHECK(data_source_open(&r->src, spec, "text", err, sizeof err) == 0, "open: %s", err);
    CHECK(block <= 1 || data_source_shuffle_files(r->src, seed) == 0, "shuffle files");
    CHECK(doc_shuffle_open(&r->order, r->src, seed, block) == 0, "doc_shuffle_open");
    r->epoch = 0;
}

static void close_reader(reader *r)
{
    doc_shuffle_close(r->order);
    data_source_close(r->src);
}

/* the next piece, across epochs, as the token stream reads it */
static int next_piece(reader *r, piece *p)
{
    char err[512];
    for (;;) {
        doc_shuffle_tell(r->order, &p->at);
        const char *text;
        int rc = doc_shuffle_next(r->order, &text, &p->len, &p->end, err, sizeof err);
        CHECK(rc >= 0, "next: %s", err);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            doc_shuffle_rewind(r->order);
            r->epoch++;
            continue;
        }
        p->epoch = r->epoch;
        if (p->len < sizeof p->text && text[0] == 'f') {
            memcpy(p->text, text, p->len);
            p->text[p->len] = '\0';
        } else {
            strcpy(p->text, "long");
        }
        return 0;
    }
}

/* n pieces from a reader */
static piece *read_pieces(uint64_t seed, size_t block, int n)
{
    piece *out = calloc((size_t)n, sizeof *out);
    reader r;
    open_reader(&r, seed, block);
    for (int i = 0; i < n; i++)
        next_piece(&r, &out[i]);
    close_reader(&r);
    return out;
}

static int epoch_length(const piece *p, int n)
{
    int k = 0;
    while (k < n && p[k].epoch == 0)
        k++;
    return k;
}

/* every document once in an epoch; the long one's pieces in a row */
static void check_epoch(const piece *p, int n, const char *what)
{
    int seen[N_FILES][DOCS_PER_FILE] = {{0}};
    size_t long_bytes = 0;
    int long_runs = 0;
    for (int i = 0; i < n; i++) {
        int f, d;
        if (strcmp(p[i].text, "long") == 0) {
            long_bytes += p[i].len;
            long_runs += i == 0 || strcmp(p[i - 1].text, "long") != 0;
        } else if (sscanf(p[i].text, "f%d d%d", &f, &d) == 2 && f < N_FILES && d < DOCS_PER_FILE) {
            seen[f][d]++;
        }
    }
    int once = 1;
    for (int f = 0; f < N_FILES; f++)
        for (int d = 0; d < DOCS_PER_FILE; d++)
            once &= seen[f][d] == 1;
    CHECK(once, "%s: every document exactly once", what);
    CHECK(long_bytes == long_len && long_runs == 1, "%s: the long document whole and in one run "
          "(%zu of %zu bytes, %d runs)", what, long_bytes, long_len, long_runs);
}

static int same_order(const piece *a, const piece *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].text, b[i].text) != 0 || a[i].len != b[i].len)
            return 0;
    return 1;
}

static void test_order(void)
{
    int n = 2 * (N_FILES * DOCS_PER_FILE + 3) + 8;
    piece *a = read_pieces(7, BLOCK, n), *b = read_pieces(7, BLOCK, n),
          *c = read_pieces(8, BLOCK, n), *plain = read_pieces(7, 1, n);
    int len = epoch_length(a, n);
    CHECK(len == N_FILES * DOCS_PER_FILE + 3, "an epoch is %d pieces", len);
    check_epoch(a, len, "seed 7, epoch 0");
    check_epoch(a + len, len, "seed 7, epoch 1");
    check_epoch(plain, len, "unshuffled");
    CHECK(strcmp(plain[0].text, "f0 d0") == 0 && strcmp(plain[DOCS_PER_FILE].text, "f1 d0") == 0,
          "block 1: the files' order");
    CHECK(!same_order(a, plain, len), "shuffled differs from the files' order");
    CHECK(same_order(a, b, n), "the same seed, the same order");
    CHECK(!same_order(a, c, len), "another seed, another order");
    CHECK(!same_order(a, a + len, len), "the next epoch, another order");
    free(a);
    free(b);
    free(c);
    free(plain);
}

/* from every piece's cursor, a fresh reader gives the rest exactly */
static void test_resume(size_t block)
{
    int n = N_FILES * DOCS_PER_FILE + 3 + 20;
    piece *whole = read_pieces(3, block, n);
    int exact = 1;
    for (int k = 0; k < n; k++) {
        reader r;
        open_reader(&r, 3, block);
        char err[512];
        if (doc_shuffle_seek(r.order, whole[k].epoch, &whole[k].at, err, sizeof err)) {
            CHECK(0, "seek to piece %d: %s", k, err);
            close_reader(&r);
            break;
        }
        r.epoch = whole[k].epoch;
        for (int i = k; i < n && exact; i++) {
            piece p;
            next_piece(&r, &p);
            exact = strcmp(p.text, whole[i].text) == 0 && p.len == whole[i].len &&
                    p.epoch == whole[i].epoch;
            if (!exact)
                CHECK(0, "block %zu, resumed at piece %d: piece %d is \"%s\", expected \"%s\"",
                      block, k, i, p.text, whole[i].text);
        }
        close_reader(&r);
    }
    CHECK(exact, "block %zu: every resume gives the rest of the stream", block);
    free(whole);
}

static void test_bad_cursor(void)
{
    reader r;
    open_reader(&r, 3, BLOCK);
    char err[512] = "";
    data_cursor c = {0, 0, 0, BLOCK + 1};
    CHECK(doc_shuffle_seek(r.order, 0, &c, err, sizeof err) == -1 && strstr(err, "of a block of"),
          "a cursor past its block: %s", err);
    close_reader(&r);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_doc_shuffle.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    write_files();
    test_order();
    test_resume(BLOCK);
    test_resume(1);
    test_bad_cursor();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return testing_result("test_doc_shuffle");
}
