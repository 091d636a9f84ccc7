/* The CPU op table: what flame-run hands to the trainer and to plugins. */
#include "cpu_kernels.h"

const flame_ops flame_cpu_ops = {
    .backend = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .upload = cpu_upload,
    .download = cpu_download,
    .matmul_forward = matmul_forward_cpu,
    .matmul_backward = matmul_backward_cpu,
    .embedding_forward = embedding_forward_cpu,
    .embedding_backward = embedding_backward_cpu,
    .rmsnorm_forward = rmsnorm_forward_cpu,
    .rmsnorm_backward = rmsnorm_backward_cpu,
    .swiglu_forward = swiglu_forward_cpu,
    .swiglu_backward = swiglu_backward_cpu,
    .add = add_cpu,
    .scale = scale_cpu,
    .cross_entropy = cross_entropy_cpu,
    .sum_squares = sum_squares_cpu,
    .adamw = adamw_cpu,
};
