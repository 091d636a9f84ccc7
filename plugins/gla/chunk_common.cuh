/* What the chunked recurrences on the GPU (GLA's, gla_chunk.cu, and GSA's slot
 * pass over the same states, gsa_slots_chunk.cu) both use: a chunk of one
 * sequence, sizes in `work`, the activations' pointers, the fast exponential
 * and the addressing of [n, H, width] tensors and of the checkpointed states. */
#ifndef FLAME_CHUNK_COMMON_CUH
#define FLAME_CHUNK_COMMON_CUH

#include <cstddef>

#include "cuda_launch.cuh"
#include "gla.h"

/* tokens [t0, t1) of one sequence, and whether they are its first / last chunk */
typedef struct chunk {
    int t0, t1, first, last;
} chunk;

static inline size_t align4(size_t floats) { return (floats + 3) / 4 * 4; }

/* floats that hold `count` bf16 values, a multiple of 4 (16 bytes) */
static inline size_t bf16_floats(size_t count) { return align4((count + 1) / 2); }

static __host__ __device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* the entry points' void pointers: activations of the CUDA op table */
static inline const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static inline act_t *act(void *p) { return static_cast<act_t *>(p); }

static __device__ __forceinline__ float exp2_fast(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* offset of token t, head h in a [n, H, width] tensor */
static __device__ __forceinline__ size_t at(int t, int h, int H, int width)
{
    return ((size_t)t * H + h) * width;
}

/* the rows×cols state of head h before token t0 (a chunk start, not a
 * sequence's first): slot t0/GLA_CHUNK − 1, as gla_recurrence_cpu.c keeps it */
static __device__ __forceinline__ size_t state_at(int t0, int h, int H, int rows, int cols)
{
    return ((size_t)(t0 / GLA_CHUNK - 1) * H + h) * rows * cols;
}

#endif
