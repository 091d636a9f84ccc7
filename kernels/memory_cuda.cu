/* Memory of the CUDA backend: device memory, transfers on the default stream. */
#include "cuda_check.h"
#include "cuda_kernels.h"

void *cuda_alloc(size_t bytes)
{
    /* at least one byte, so that NULL always means "out of memory" */
    void *ptr = NULL;
    cudaError_t err = cudaMalloc(&ptr, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clear it: running out of memory is the caller's to handle */
        return NULL;
    }
    CUDA_CHECK(err);
    CUDA_CHECK(cudaMemset(ptr, 0, bytes));
    return ptr;
}

void cuda_free(void *ptr) { CUDA_CHECK(cudaFree(ptr)); }

void cuda_zero(void *ptr, size_t bytes)
{
    if (bytes)
        CUDA_CHECK(cudaMemset(ptr, 0, bytes));
}

void cuda_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

void cuda_upload(void *dst, const void *host_src, size_t bytes)
{
    if (bytes)
        CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

void cuda_download(void *host_dst, const void *src, size_t bytes)
{
    if (bytes)
        CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

/* a buffer that grows to the largest size asked; NULL when out of memory */
typedef struct growing_buffer {
    void *ptr;
    size_t size;
} growing_buffer;

static void *grow(growing_buffer *b, size_t bytes)
{
    if (bytes <= b->size && b->ptr)
        return b->ptr;
    bytes = bytes ? bytes : 1; /* at least one byte: NULL always means out of memory */
    /* cudaFree waits for the kernels still using the old buffer */
    CUDA_CHECK(cudaFree(b->ptr));
    b->ptr = NULL;
    b->size = 0;
    cudaError_t err = cudaMalloc(&b->ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return NULL;
    }
    CUDA_CHECK(err);
    b->size = bytes;
    return b->ptr;
}

void *cuda_scratch(size_t bytes)
{
    static growing_buffer ops_scratch;
    void *p = grow(&ops_scratch, bytes);
    if (!p && bytes) {
        fprintf(stderr, "flame: out of device memory for %zu bytes of an op's scratch\n", bytes);
        exit(1);
    }
    return p;
}

void *cuda_borrow_scratch(size_t bytes)
{
    static growing_buffer plugin_scratch;
    return grow(&plugin_scratch, bytes);
}
