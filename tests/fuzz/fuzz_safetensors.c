/* safetensors_open on arbitrary bytes, then every tensor read back (as stored
 * and, for the float dtypes, as fp32). */
#define _POSIX_C_SOURCE 200809L
#include "formats/safetensors.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    safetensors st;
    if (safetensors_open(fuzz_file(".safetensors", data, size), &st, err, sizeof err) != 0)
        return 0;
    for (int i = 0; i < st.n; i++) {
        const safetensors_tensor *t = &st.tensors[i];
        if (safetensors_find(&st, t->name) == NULL)
            abort();
        if (t->nbytes > (1u << 20)) /* the header alone can claim any size: not read */
            continue;
        void *buf = malloc(t->nbytes + 1);
        float *f32 = malloc((t->numel + 1) * sizeof *f32);
        safetensors_read(&st, t, buf, t->nbytes, err, sizeof err);
        safetensors_read_f32(&st, t, f32, t->numel, err, sizeof err);
        free(buf);
        free(f32);
    }
    for (int i = 0; i < st.n_meta; i++)
        safetensors_metadata(&st, st.meta_keys[i]);
    safetensors_close(&st);
    return 0;
}
