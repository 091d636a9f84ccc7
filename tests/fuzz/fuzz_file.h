/* The readers under fuzzing take a path: each input is written to one
 * temporary file per process, named with the suffix that picks the format. */
#ifndef FLAME_FUZZ_FILE_H
#define FLAME_FUZZ_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the path of a file in a per-process temporary folder holding data[0, n) */
static const char *fuzz_file(const char *suffix, const unsigned char *data, size_t n)
{
    static char dir[64];
    static char path[128];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/flame-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror(dir);
            abort();
        }
    }
    snprintf(path, sizeof path, "%s/input%s", dir, suffix);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

#endif
