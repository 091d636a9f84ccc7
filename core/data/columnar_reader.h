/* .parquet, .arrow and .json dataset files, read through pyarrow by a Python
 * helper (tools/flame_columnar.py, installed beside the configs) that streams
 * each row's text field to flame in batches (a line with the row count, a
 * line with the rows' byte lengths, the rows' bytes): the data source reads
 * them as documents, with no JSON to encode or decode on either side. Why a helper: Apache Arrow's C and C++
 * libraries are not in Debian, pyarrow (PyPI) bundles them and is what the
 * `datasets` library that writes these files uses, and a pipe keeps flame's
 * build free of C++ ABI ties to a wheel.
 *
 * The helper is $FLAME_COLUMNAR_HELPER, else the installed one, else the build
 * tree's; the interpreter $FLAME_PYTHON, else python3. */
#ifndef FLAME_COLUMNAR_READER_H
#define FLAME_COLUMNAR_READER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct columnar_reader columnar_reader;

/* whether name ends in .parquet, .arrow or .json */
int columnar_is_path(const char *name);

/* 0 when python3 and pyarrow can be run (asked once per process), else -1
 * with one line in err saying what to install */
int columnar_available(char *err, size_t err_len);

/* Starts the helper on path. Returns 0, or -1 with err. */
int columnar_open(columnar_reader **r, const char *path, const char *text_field, char *err,
                  size_t err_len);

/* The next bytes of the helper's output: > 0 bytes at *buf, 0 at the
 * end, -1 with err when the helper failed (its own line: the file's damage). */
ssize_t columnar_read(columnar_reader *r, const void **buf, char *err, size_t err_len);

/* Stops the helper (if still running) and frees r. */
void columnar_close(columnar_reader *r);

#endif
