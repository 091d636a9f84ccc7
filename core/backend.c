#include "backend.h"

#include <stdio.h>
#include <string.h>

#include "../kernels/cpu_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "../kernels/cuda_kernels.h"
#endif

static void use_cpu(backend *b)
{
    memset(b, 0, sizeof *b);
    b->ops = &flame_cpu_ops;
    b->ops->device_name(b->device, sizeof b->device);
}

int backend_select(backend *b, const char *device, int gpu, char *err, size_t err_len)
{
    use_cpu(b);
    if (strcmp(device, "cpu") == 0)
        return 0;
    if (strcmp(device, "auto") != 0 && strcmp(device, "cuda") != 0) {
        snprintf(err, err_len, "[training] device = \"%s\": expected auto, cuda or cpu", device);
        return -1;
    }
    char why[256] = "flame was built without CUDA (configure found no nvcc)";
    int missing = 0; /* the machine has GPUs, but not this rank's */
    (void)gpu;
#ifdef FLAME_HAVE_CUDA
    if (flame_cuda_use_device(gpu, &missing, why, sizeof why) && flame_cuda_available(why, sizeof why)) {
        b->ops = &flame_cuda_ops;
        b->is_cuda = 1;
        b->ops->device_name(b->device, sizeof b->device);
        return 0;
    }
#endif
    if (strcmp(device, "cuda") == 0 || missing) {
        snprintf(err, err_len, "[training] device = %s: %s", device, why);
        return -1;
    }
    return 0;
}

void backend_measure_peak(backend *b) { b->peak_tflops = b->ops->peak_tflops(); }

void backend_synchronize(const backend *b) { b->ops->synchronize(); }

double backend_sample_memory(backend *b)
{
    double gib = b->ops->memory_in_use_gib();
    b->peak_memory_gib = b->ops->memory_peak_gib();
    return gib;
}
