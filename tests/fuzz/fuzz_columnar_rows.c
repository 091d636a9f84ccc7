/* The data source's rows format (what the columnar reader's helper writes for
 * .parquet, .arrow and .json: per batch a count line, a lengths line, the
 * bytes) on arbitrary bytes: the helper is replaced by a shell script that
 * copies the input file, so the format's parser (counts, lengths that lie,
 * rows cut short) sees every input. Reads it, then seeks back to a cursor
 * taken halfway through. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "data/data_source.h"
#include "fuzz_file.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char script[160];
    const char *tmp = getenv("TMPDIR");
    snprintf(script, sizeof script, "%s/flame-fuzz-rows-%ld.sh", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    FILE *f = fopen(script, "w");
    if (!f || fputs("[ \"$1\" = --check ] && exit 0\nexec cat \"$1\"\n", f) < 0 || fclose(f)) {
        perror(script);
        abort();
    }
    setenv("FLAME_PYTHON", "/bin/sh", 1);
    setenv("FLAME_COLUMNAR_HELPER", script, 1);
    return 0;
}

static long read_all(data_source *ds, long limit, char *err, size_t err_len)
{
    const char *text;
    size_t len;
    int eod;
    long n = 0;
    for (; n < limit; n++) {
        int rc = data_source_next(ds, &text, &len, &eod, err, err_len);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (len == 0 || !eod) /* a row is one document of at least a byte */
            abort();
        volatile char ends = (char)(text[0] ^ text[len - 1]);
        (void)ends;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    data_source *ds;
    const char *path = fuzz_file(".parquet", data, size);
    if (data_source_open(&ds, path, "text", err, sizeof err) != 0)
        abort(); /* the file exists and the stand-in helper runs */
    long n = read_all(ds, 1000, err, sizeof err);
    if (n > 0) {
        data_source_rewind(ds);
        read_all(ds, n / 2, err, sizeof err);
        data_cursor c;
        data_source_tell(ds, &c);
        if (data_source_seek(ds, &c, err, sizeof err) == 0)
            read_all(ds, 1000, err, sizeof err);
    }
    data_source_close(ds);
    return 0;
}
