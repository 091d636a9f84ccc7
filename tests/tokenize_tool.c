/* tokenize_tool: encodes a text file with a flame tokenizer and prints the ids,
 * for tests/tokenizer_parity.py and by hand.
 *
 *   tokenize_tool [options] TOKENIZER FILE
 *     TOKENIZER       "byte", a tokenizer.json, or a folder holding one
 *     --sep HEX       documents in FILE are separated by this byte (e.g. 1e);
 *                     default: the whole file is one document
 *     --decode OUT    write each document's decoded ids to OUT (same separator)
 *     --skip-special  decode with skip_special_tokens
 *     --repeat N      encode everything N times (the speed of the last pass is
 *                     also printed: the word cache is warm then)
 *     --quiet         print no ids
 * stdout: one line of space-separated ids per document.
 * stderr: sizes, encoding speed (MB/s), and how many documents decode to
 * themselves. Exit 0, or 1 on an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0)
            break;
        len += got;
    }
    fclose(f);
    *n = len;
    return buf;
}

int main(int argc, char **argv)
{
    int sep = -1, skip = 0, repeat = 1, quiet = 0;
    const char *decode_path = NULL, *args[2];
    int n_args = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sep") == 0 && i + 1 < argc)
            sep = (int)strtol(argv[++i], NULL, 16);
        else if (strcmp(argv[i], "--decode") == 0 && i + 1 < argc)
            decode_path = argv[++i];
        else if (strcmp(argv[i], "--skip-special") == 0)
            skip = 1;
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
        else if (n_args < 2 && argv[i][0] != '-')
            args[n_args++] = argv[i];
        else {
            fprintf(stderr, "usage: tokenize_tool [--sep HEX] [--decode OUT] [--skip-special] "
                            "[--repeat N] [--quiet] TOKENIZER FILE\n");
            return 1;
        }
    }
    if (n_args != 2) {
        fprintf(stderr, "usage: tokenize_tool [options] TOKENIZER FILE\n");
        return 1;
    }
    char err[1024];
    tokenizer tok;
    double t0 = now();
    if (tokenizer_open(&tok, args[0], err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t_open = now() - t0;
    size_t n;
    char *text = read_file(args[1], &n);
    if (!text) {
        perror(args[1]);
        return 1;
    }
    /* documents */
    size_t n_docs = 0, cap = 16, *start = malloc(cap * sizeof *start),
           *len = malloc(cap * sizeof *len);
    for (size_t i = 0; i <= n;) {
        const char *e = sep >= 0 ? memchr(text + i, sep, n - i) : NULL;
        size_t end = e ? (size_t)(e - text) : n;
        if (n_docs == cap) {
            start = realloc(start, (cap *= 2) * sizeof *start);
            len = realloc(len, cap * sizeof *len);
        }
        start[n_docs] = i, len[n_docs] = end - i;
        n_docs++;
        i = end + 1;
    }
    tokenizer_ids ids = {0};
    size_t *first = malloc((n_docs + 1) * sizeof *first);
    double pass = 0, t_first = 0;
    for (int r = 0; r < repeat; r++) {
        ids.n = 0;
        double t1 = now();
        for (size_t d = 0; d < n_docs; d++) {
            first[d] = ids.n;
            if (tokenizer_encode(&tok, text + start[d], len[d], &ids)) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
        }
        first[n_docs] = ids.n;
        pass = now() - t1;
        if (r == 0)
            t_first = pass;
    }
    fprintf(stderr,
            "tokenizer: vocab %d, bos %d, eos %d, opened in %.3f s\n"
            "encoded %zu bytes in %zu documents to %zu tokens: %.3f s, %.1f MB/s",
            tok.vocab_size, (int)tok.bos_id, (int)tok.eos_id, t_open, n, n_docs, ids.n,
            t_first, n / 1e6 / (t_first > 0 ? t_first : 1e-9));
    if (repeat > 1)
        fprintf(stderr, " (warm: %.1f MB/s)", n / 1e6 / (pass > 0 ? pass : 1e-9));
    fputc('\n', stderr);
    if (!quiet) {
        for (size_t d = 0; d < n_docs; d++) {
            for (size_t k = first[d]; k < first[d + 1]; k++)
                printf(k == first[d] ? "%d" : " %d", (int)ids.ids[k]);
            putchar('\n');
        }
    }
    /* decode: to a file, and check decode(encode(x)) == x */
    FILE *out = decode_path ? fopen(decode_path, "wb") : NULL;
    if (decode_path && !out) {
        perror(decode_path);
        return 1;
    }
    size_t same = 0;
    tokenizer_text dec = {0};
    for (size_t d = 0; d < n_docs; d++) {
        dec.n = 0;
        if (tokenizer_decode(&tok, ids.ids + first[d], first[d + 1] - first[d], skip, &dec)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        same += dec.n == len[d] && memcmp(dec.data, text + start[d], len[d]) == 0;
        if (out) {
            fwrite(dec.data, 1, dec.n, out);
            if (sep >= 0 && d + 1 < n_docs)
                fputc(sep, out);
        }
    }
    if (out)
        fclose(out);
    fprintf(stderr, "round trip: %zu of %zu documents decode to themselves\n", same, n_docs);
    free(dec.data);
    free(ids.ids);
    free(first);
    free(start);
    free(len);
    free(text);
    tokenizer_close(&tok);
    return 0;
}
