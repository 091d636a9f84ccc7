/* Mixing data sources (core/data/doc_mix.h), on files written here whose
 * documents name themselves: source 0 is a .jsonl of 1,000 documents "a N",
 * source 1 a folder of a .jsonl of 36 documents "b N" and a .txt document
 * longer than two pieces. With weights 0.7 and 0.3:
 *  - over 10,000 documents, source 0's share is within 2 points of 70 %;
 *  - a long document's pieces follow each other, none of the other source between;
 *  - source 1 runs out again and again and starts over: each of its epochs
 *    holds each of its 37 documents exactly once;
 *  - the same seed gives the same sequence, another seed another;
 *  - a position told before a piece, given to a fresh mixer, gives exactly the
 *    rest of the sequence;
 *  - a count of weights that is not the count of sources, and a position of
 *    another count of sources, are refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/doc_mix.h"
#include "testing.h"

enum { A_DOCS = 1000, B_DOCS = 36, B_EPOCH = B_DOCS + 1, DOCUMENTS = 10000 };

static char dir[64], spec[256];

static void write_jsonl(const char *path, char name, int n)
{
    FILE *out = fopen(path, "w");
    for (int d = 0; d < n; d++)
        fprintf(out, "{\"text\": \"%c %d\"}\n", name, d);
    fclose(out);
}

static void write_files(void)
{
    char path[160];
    snprintf(path, sizeof path, "%s/a.jsonl", dir);
    write_jsonl(path, 'a', A_DOCS);
    snprintf(path, sizeof path, "%s/b", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/b/b.jsonl", dir);
    write_jsonl(path, 'b', B_DOCS);
    snprintf(path, sizeof path, "%s/b/long.txt", dir);
    FILE *out = fopen(path, "w");
    for (size_t i = 0; i < DATA_SOURCE_PIECE * 2 + 100; i++)
        fputc(i % 64 == 63 ? '\n' : 'a' + (int)(i % 26), out);
    fclose(out);
    snprintf(spec, sizeof spec, "%s/a.jsonl, %s/b", dir, dir);
}

typedef struct piece {
    int source, doc; /* doc: N of "a N" / "b N", B_DOCS for a piece of long.txt */
    int ends;
    uint64_t epoch;  /* of its source */
} piece;

static const double weights[2] = {0.7, 0.3};

static doc_mix *open_mix(uint64_t seed)
{
    doc_mix_options o = {spec, "text", weights, 2, 1, 16, seed};
    doc_mix *m;
    char err[512];
    CHECK(doc_mix_open(&m, &o, err, sizeof err) == 0, "open: %s", err);
    return m;
}

static void next_piece(doc_mix *m, piece *p)
{
    char err[512];
    mix_piece q;
    int rc;
    while ((rc = doc_mix_next(m, &q, err, sizeof err)) == 0)
        ;
    CHECK(rc == 1, "next: %s", err);
    p->source = q.source;
    p->ends = q.ends_document;
    p->epoch = q.before.epoch;
    char text[16] = "";
    if (q.len < sizeof text)
        memcpy(text, q.text, q.len);
    if (sscanf(text, "%*c %d", &p->doc) != 1 || p->doc < 0 || p->doc >= A_DOCS)
        p->doc = B_DOCS; /* a piece of long.txt */
}

/* pieces until `documents` documents have ended */
static piece *read_documents(uint64_t seed, int documents, int *n)
{
    piece *out = malloc(sizeof *out * (size_t)documents * 2);
    doc_mix *m = open_mix(seed);
    *n = 0;
    for (int ended = 0; ended < documents;) {
        next_piece(m, &out[*n]);
        ended += out[(*n)++].ends;
    }
    doc_mix_close(m);
    return out;
}

static void test_shares(const piece *p, int n)
{
    int from_a = 0, documents = 0, split = 0;
    for (int i = 0; i < n; i++) {
        documents += p[i].ends;
        from_a += p[i].ends && p[i].source == 0;
        if (!p[i].ends && i + 1 < n && p[i + 1].source != p[i].source)
            split++;
    }
    double share = (double)from_a / documents;
    printf("source 0: %d of %d documents (%.2f %%)\n", from_a, documents, 100 * share);
    CHECK(share > 0.68 && share < 0.72, "source 0's share %.4f, expected 0.70 +- 0.02", share);
    CHECK(split == 0, "%d long documents interrupted by the other source", split);
}

/* each completed epoch of source 1 holds each of its documents once */
static void test_epochs(const piece *p, int n)
{
    int seen[B_EPOCH], epochs = 0, exact = 1;
    uint64_t epoch = 0;
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < n; i++) {
        if (p[i].source != 1 || !p[i].ends)
            continue;
        if (p[i].epoch != epoch) {
            for (int d = 0; d < B_EPOCH; d++)
                exact &= seen[d] == 1;
            CHECK(p[i].epoch == epoch + 1, "source 1 went from epoch %llu to %llu",
                  (unsigned long long)epoch, (unsigned long long)p[i].epoch);
            memset(seen, 0, sizeof seen);
            epoch = p[i].epoch;
            epochs++;
        }
        seen[p[i].doc]++;
    }
    printf("source 1: %d epochs completed\n", epochs);
    CHECK(epochs >= 70, "source 1 completed %d epochs, expected about 81", epochs);
    CHECK(exact, "every epoch of source 1 holds each of its documents exactly once");
}

static int same(const piece *a, const piece *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].source != b[i].source || a[i].doc != b[i].doc || a[i].epoch != b[i].epoch)
            return 0;
    return 1;
}

static void test_seeds(const piece *p, int n)
{
    int m, k;
    piece *again = read_documents(5, DOCUMENTS, &m), *other = read_documents(6, 2000, &k);
    CHECK(m == n && same(p, again, n), "the same seed gives the same sequence");
    CHECK(!same(p, other, k), "another seed gives another sequence");
    free(again);
    free(other);
}

/* from positions told along the way, fresh mixers give the rest exactly */
static void test_resume(const piece *whole, int n)
{
    doc_mix *m = open_mix(5);
    int exact = 1, checked = 0;
    for (int k = 0; k + 200 < n && exact; k++) {
        mix_position at;
        doc_mix_tell(m, &at);
        piece p;
        next_piece(m, &p);
        if (k % 101 != 0)
            continue;
        doc_mix *fresh = open_mix(5);
        char err[512];
        CHECK(doc_mix_seek(fresh, &at, err, sizeof err) == 0, "seek: %s", err);
        for (int i = k; i < k + 200 && exact; i++) {
            next_piece(fresh, &p);
            exact = same(&p, &whole[i], 1);
        }
        CHECK(exact, "resumed before piece %d: the rest differs", k);
        doc_mix_close(fresh);
        checked++;
    }
    doc_mix_close(m);
    printf("%d resumes, each giving the next 200 pieces exactly\n", checked);
}

static void test_refused(void)
{
    double three[3] = {1, 1, 1};
    doc_mix_options o = {spec, "text", three, 3, 1, 16, 5};
    doc_mix *m;
    char err[512] = "";
    CHECK(doc_mix_open(&m, &o, err, sizeof err) == -1 && strstr(err, "3 probabilities") &&
              strstr(err, "2 comma-separated sources"),
          "three weights for two sources: \"%s\"", err);
    doc_mix_close(m);

    o.n_probs = 0; /* the two items as one source */
    CHECK(doc_mix_open(&m, &o, err, sizeof err) == 0, "one source: %s", err);
    mix_position two;
    doc_mix *mixed = open_mix(5);
    doc_mix_tell(mixed, &two);
    CHECK(doc_mix_seek(m, &two, err, sizeof err) == -1 && strstr(err, "2 data sources"),
          "a position of two sources on one: \"%s\"", err);
    doc_mix_close(mixed);
    doc_mix_close(m);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/flame-mix-XXXXXX");
    if (!mkdtemp(dir))
        return 99;
    write_files();
    int n;
    piece *whole = read_documents(5, DOCUMENTS, &n);
    test_shares(whole, n);
    test_epochs(whole, n);
    test_seeds(whole, n);
    test_resume(whole, n);
    test_refused();
    free(whole);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return testing_result("test_doc_mix");
}
