/* Memory of the CPU backend: host memory, so every transfer is a memcpy. */
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"

void *cpu_alloc(size_t bytes)
{
    /* calloc gives the zero fill the contract promises; ask for at least one
     * byte so that a NULL result always means "out of memory". */
    return calloc(1, bytes ? bytes : 1);
}

void cpu_free(void *ptr) { free(ptr); }

void cpu_zero(void *ptr, size_t bytes)
{
    if (bytes)
        memset(ptr, 0, bytes);
}

void cpu_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        memcpy(dst, src, bytes);
}

void cpu_upload(void *dst, const void *host_src, size_t bytes) { cpu_copy(dst, host_src, bytes); }

void cpu_download(void *host_dst, const void *src, size_t bytes) { cpu_copy(host_dst, src, bytes); }

void *cpu_borrow_scratch(size_t bytes)
{
    static void *buffer = NULL;
    static size_t size = 0;
    if (bytes > size || !buffer) { /* at least one byte: NULL always means out of memory */
        bytes = bytes ? bytes : 1;
        void *grown = realloc(buffer, bytes);
        if (!grown)
            return NULL;
        buffer = grown;
        size = bytes;
    }
    return buffer;
}
