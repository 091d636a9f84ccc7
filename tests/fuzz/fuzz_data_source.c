/* A data source over one file: the input's first byte picks its kind (the
 * name's extension), the rest is the file. Reads two epochs, seeking back to a
 * cursor taken halfway through the first; then the same through the shuffled
 * order (blocks of 3 documents). */
#define _POSIX_C_SOURCE 200809L
#include "data/data_source.h"
#include "data/doc_shuffle.h"
#include "fuzz_file.h"

static const char *const KINDS[] = {".txt",      ".jsonl",    ".txt.gz", ".jsonl.gz",
                                    ".jsonl.zst", ".txt.xz", ".tar",    ".zip",
                                    ".tar.gz",   ".tgz",      ".tar.zst", ".tar.xz"};
#define N_KINDS (sizeof KINDS / sizeof *KINDS)

/* pieces read until the end, an error or the limit; -1 on an error; through
 * the shuffled order when order is not NULL */
static long read_all(data_source *ds, doc_shuffle *order, long limit, char *err, size_t err_len)
{
    const char *text;
    size_t len;
    int eod;
    long n = 0;
    for (; n < limit; n++) {
        int rc = order ? doc_shuffle_next(order, &text, &len, &eod, err, err_len)
                       : data_source_next(ds, &text, &len, &eod, err, err_len);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (len == 0) /* every piece holds a byte */
            abort();
        volatile char ends = (char)(text[0] ^ text[len - 1]); /* both in the buffer */
        (void)ends;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[512];
    data_source *ds;
    const char *path = fuzz_file(KINDS[data[0] % N_KINDS], data + 1, size - 1);
    if (data_source_open(&ds, path, "text", err, sizeof err) != 0)
        abort(); /* the file exists and its extension is known */
    long n = read_all(ds, NULL, 1000, err, sizeof err);
    if (n > 0) {
        data_source_rewind(ds);
        read_all(ds, NULL, n / 2, err, sizeof err);
        data_cursor c;
        data_source_tell(ds, &c);
        if (data_source_seek(ds, &c, err, sizeof err) == 0)
            read_all(ds, NULL, 1000, err, sizeof err);
    }
    doc_shuffle *order;
    if (n > 0 && data_source_shuffle_files(ds, 1) == 0 && doc_shuffle_open(&order, ds, 1, 3) == 0) {
        data_source_set_epoch(ds, 0);
        read_all(ds, order, n / 2, err, sizeof err);
        data_cursor c;
        doc_shuffle_tell(order, &c);
        if (doc_shuffle_seek(order, 0, &c, err, sizeof err) == 0)
            read_all(ds, order, 1000, err, sizeof err);
        doc_shuffle_close(order);
    }
    data_source_close(ds);
    return 0;
}
