/* The compute backend of a run (training.device): the CPU op table, or the
 * CUDA one when flame was built with CUDA and a GPU answers ("auto" takes the
 * GPU when there is one). Also what the metrics need of it: the peak that MFU
 * divides by and the memory in use. */
#ifndef FLAME_BACKEND_H
#define FLAME_BACKEND_H

#include <stddef.h>

#include <flame/ops.h>

typedef struct backend {
    const flame_ops *ops;
    int is_cuda;
    char device[256];   /* the GPU's name, or "cpu" */
    double peak_tflops; /* measured bf16 matmul peak; 0: unknown (the CPU) */
    double peak_memory_gib;
} backend;

/* device: auto, cuda or cpu; a GPU run takes GPU number gpu of this machine
 * (a rank's local index; 0 alone). Returns 0, or -1 with one line in err
 * (exit 2), also when the machine has GPUs but not that one. */
int backend_select(backend *b, const char *device, int gpu, char *err, size_t err_len);

/* Times the bf16 peak on a GPU (about a second); nothing on the CPU. */
void backend_measure_peak(backend *b);

/* Waits for the device to finish queued work (a timing point). */
void backend_synchronize(const backend *b);

/* Memory in use now (device memory on a GPU, the peak resident set on the
 * CPU), also kept as the peak seen so far. GiB. */
double backend_sample_memory(backend *b);

#endif
