/* The CUDA op table, and the check that this machine can run it. */
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "cuda_kernels.h"

const flame_ops flame_cuda_ops = {
    .size = sizeof(flame_ops),
    .backend = "cuda",
    .act_bytes = 2, /* bf16 */
    .alloc = cuda_alloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .copy = cuda_copy,
    .upload = cuda_upload,
    .download = cuda_download,
    .to_act = to_act_cuda,
    .from_act = from_act_cuda,
    .matmul_forward = matmul_forward_cuda,
    .matmul_backward = matmul_backward_cuda,
    .embedding_forward = embedding_forward_cuda,
    .embedding_backward = embedding_backward_cuda,
    .rmsnorm_forward = rmsnorm_forward_cuda,
    .rmsnorm_backward = rmsnorm_backward_cuda,
    .layernorm_forward = layernorm_forward_cuda,
    .layernorm_backward = layernorm_backward_cuda,
    .gelu_forward = gelu_forward_cuda,
    .gelu_backward = gelu_backward_cuda,
    .add = add_cuda,
    .matmul_gelu_forward = matmul_gelu_forward_cuda,
    .matmul_dgelu_backward = matmul_dgelu_backward_cuda,
    .matmul_forward_f32 = matmul_forward_f32_cuda,
    .layernorm_forward_f32 = layernorm_forward_f32_cuda,
    .layernorm_backward_f32 = layernorm_backward_f32_cuda,
    .swiglu_forward = swiglu_forward_cuda,
    .swiglu_backward = swiglu_backward_cuda,
    .scale = scale_cuda,
    .cross_entropy = cross_entropy_cuda,
    .sum_squares = sum_squares_cuda,
    .adamw = adamw_cuda,
    .synchronize = cuda_synchronize,
    .device_name = cuda_device_name,
    .memory_in_use_gib = cuda_memory_in_use_gib,
    .memory_peak_gib = cuda_memory_peak_gib,
    .peak_tflops = cuda_bf16_peak_tflops,
    .borrow_scratch = cuda_borrow_scratch,
    .memory_available = cuda_memory_available,
    .conv1d_forward = conv1d_forward_cuda,
    .conv1d_backward = conv1d_backward_cuda,
    .conv1d_step = conv1d_step_cuda,
    .swiglu_forward_strided = swiglu_forward_strided_cuda,
    .swiglu_backward_strided = swiglu_backward_strided_cuda,
    .lm_head_loss = lm_head_loss_cuda,
    .scale_rows = scale_rows_cuda,
};

/* Asks the runtime, which never exits here: a machine without a driver or a
 * device is an answer, not an error. */
int flame_cuda_use_device(int index, int *missing, char *why, size_t n)
{
    int driver = 0, devices = 0;
    cudaDriverGetVersion(&driver);
    if (driver == 0) {
        snprintf(why, n, "no CUDA driver found");
        return 0;
    }
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        snprintf(why, n, "no usable CUDA device (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        cudaGetLastError();
        return 0;
    }
    if (index >= devices) {
        snprintf(why, n, "this rank's GPU is number %d (LOCAL_RANK), but the machine has %d", index, devices);
        *missing = 1;
        return 0;
    }
    err = cudaSetDevice(index);
    if (err != cudaSuccess) {
        snprintf(why, n, "GPU %d: %s", index, cudaGetErrorString(err));
        cudaGetLastError();
        return 0;
    }
    return 1;
}

int flame_cuda_available(char *why, size_t n)
{
    int driver = 0, runtime = 0, devices = 0, current = 0;
    struct cudaDeviceProp prop;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (driver == 0) {
        snprintf(why, n, "no CUDA driver found");
        return 0;
    }
    if (driver / 1000 < runtime / 1000) { /* minor versions are compatible within a major */
        snprintf(why, n, "the CUDA driver (%d.%d) is older than the runtime flame was built with (%d.%d)",
                 driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return 0;
    }
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err == cudaSuccess && devices == 0)
        err = cudaErrorNoDevice;
    if (err == cudaSuccess)
        err = cudaFree(NULL); /* creates the context: the device really answers */
    if (err == cudaSuccess)
        err = cudaGetDevice(&current);
    if (err == cudaSuccess)
        err = cudaGetDeviceProperties(&prop, current);
    if (err != cudaSuccess) {
        snprintf(why, n, "no usable CUDA device (%s)", cudaGetErrorString(err));
        cudaGetLastError(); /* clear it for later calls */
        return 0;
    }
    snprintf(why, n, "%s, compute capability %d.%d (%d device%s)", prop.name, prop.major,
             prop.minor, devices, devices > 1 ? "s" : "");
    return 1;
}
