/* Column blocks of a bf16 array as arrays of their own, and back: the
 * functions of mamba2.h of the same names on device pointers. A thread moves
 * VEC neighbouring values of a row at once: 8 (16 bytes) where every width is
 * a multiple of 8 and every pointer aligned to 16 bytes, else 1. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "mamba2.h"
#include "mamba2_pointwise_cuda.h"

struct column_parts {
    act_t *p[MAMBA2_MAX_PARTS];
    int w[MAMBA2_MAX_PARTS];
    int n_parts, total;
};

/* TO_WHOLE: whole's columns ← the parts; else the parts ← whole's columns */
template <int VEC, bool TO_WHOLE>
static __global__ void copy_columns(act_t *whole, column_parts parts, int n)
{
    await_inputs();
    size_t per_row = parts.total / VEC, units = (size_t)n * per_row;
    GRID_STRIDE_LOOP(i, units) {
        size_t row = i / per_row;
        int col = (int)(i % per_row) * VEC, k = 0, start = 0;
        while (col >= start + parts.w[k])
            start += parts.w[k++];
        typedef packed<act_t, VEC> chunk;
        chunk *w = reinterpret_cast<chunk *>(whole + row * parts.total + col);
        chunk *p = reinterpret_cast<chunk *>(parts.p[k] + row * parts.w[k] + (col - start));
        if (TO_WHOLE)
            *w = *p;
        else
            *p = *w;
    }
}

static void copy_columns_cuda(void *whole, void *const *parts, const int *widths, int n_parts,
                              int n, bool to_whole)
{
    column_parts cp = {};
    bool vec = (uintptr_t)whole % 16 == 0;
    for (int i = 0; i < n_parts; i++) {
        cp.p[i] = static_cast<act_t *>(parts[i]);
        cp.w[i] = widths[i];
        cp.total += widths[i];
        vec = vec && widths[i] % 8 == 0 && (uintptr_t)parts[i] % 16 == 0;
    }
    cp.n_parts = n_parts;
    size_t units = (size_t)n * cp.total / (vec ? 8 : 1);
    if (units == 0)
        return;
    unsigned blocks = cuda_grid(units);
    act_t *w = static_cast<act_t *>(whole);
    if (vec && to_whole)
        launch_kernel(copy_columns<8, true>, blocks, CUDA_BLOCK, 0, w, cp, n);
    else if (vec)
        launch_kernel(copy_columns<8, false>, blocks, CUDA_BLOCK, 0, w, cp, n);
    else if (to_whole)
        launch_kernel(copy_columns<1, true>, blocks, CUDA_BLOCK, 0, w, cp, n);
    else
        launch_kernel(copy_columns<1, false>, blocks, CUDA_BLOCK, 0, w, cp, n);
}

void mamba2_split_columns_cuda(void *const *parts, const int *widths, int n_parts,
                               const void *whole, int n)
{
    copy_columns_cuda(const_cast<void *>(whole), parts, widths, n_parts, n, false);
}

void mamba2_join_columns_cuda(void *whole, const void *const *parts, const int *widths,
                              int n_parts, int n)
{
    copy_columns_cuda(whole, const_cast<void *const *>(parts), widths, n_parts, n, true);
}
