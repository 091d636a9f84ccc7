/* flame-convert inspect: every tensor of a file or folder, with a total. */
#include <inttypes.h>
#include <stdio.h>

#include "convert.h"
#include "errors.h"

static const char HELP[] =
    "usage: flame-convert inspect FILE_OR_DIR\n"
    "\n"
    "Lists the tensors (name, dtype, shape, bytes) of a .safetensors file, of a\n"
    "flame checkpoint folder (model.safetensors and optimizer.safetensors) or of a\n"
    "Hugging Face folder (model.safetensors, or the shards that\n"
    "model.safetensors.index.json lists), then a total line. Only the headers are read.\n"
    "Exit status: 0 done; 2 bad command line or nothing there; 3 a damaged file or a\n"
    "missing shard.\n";

static void print_tensor(const safetensors_tensor *t)
{
    char shape[256];
    int at = snprintf(shape, sizeof shape, "[");
    for (int d = 0; d < t->ndim; d++)
        at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%" PRId64, d ? ", " : "",
                       t->shape[d]);
    snprintf(shape + at, sizeof shape - (size_t)at, "]");
    printf("%-60s %-5s %-24s %" PRIu64 "\n", t->name, safetensors_dtype_name(t->dtype), shape,
           t->nbytes);
}

int convert_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int rc = convert_parse("inspect", HELP, argc, argv, NULL, &path);
    if (rc >= 0)
        return rc;
    if (!path)
        return convert_missing("inspect", "FILE_OR_DIR");
    tensor_set ts;
    char err[CONVERT_ERR_LEN];
    if ((rc = tensor_set_open(path, &ts, err, sizeof err))) {
        fprintf(stderr, "flame-convert inspect: %s\n", err);
        return rc;
    }
    uint64_t tensors = 0, bytes = 0, elements = 0;
    for (int f = 0; f < ts.n; f++) {
        printf("# %s: %d tensors\n", ts.files[f].path, ts.files[f].n);
        for (int i = 0; i < ts.files[f].n; i++) {
            const safetensors_tensor *t = &ts.files[f].tensors[i];
            print_tensor(t);
            tensors++;
            bytes += t->nbytes;
            elements += t->numel;
        }
    }
    printf("total: %" PRIu64 " tensors, %" PRIu64 " elements, %" PRIu64 " bytes in %d file%s\n",
           tensors, elements, bytes, ts.n, ts.n == 1 ? "" : "s");
    tensor_set_close(&ts);
    return FLAME_EXIT_OK;
}
