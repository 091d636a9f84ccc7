/* Checking CUDA kernels against the CPU backend (the oracle): device buffers
 * made from host arrays (fp32, or bf16 activations through the op table's
 * casts), outputs poisoned with NaN before a kernel writes them, results
 * brought back to the host, and the norm-relative error ‖gpu − cpu‖ / ‖cpu‖
 * against a tolerance. For the CUDA tests; include after testing.h, in a build
 * with CUDA. */
#ifndef FLAME_CUDA_TESTING_H
#define FLAME_CUDA_TESTING_H

#include <math.h>
#include <string.h>

#include "cpu_kernels.h"
#include "cuda_kernels.h"
#include "testing.h"

#define TOL_BF16 1e-2 /* a value that passes through bf16 */
#define TOL_FP32 1e-4 /* a value computed in fp32 from the same inputs */
/* fp32 values stored in bf16, against the CPU's rounded to bf16 (rounded_bf16) */
#define TOL_CHECKPOINTS 2e-3

static const flame_ops *const dev = &flame_cuda_ops;

/* 1 after a line naming the device; 0 after "SKIP: <why>" when there is no
 * usable one (the test then exits 77, Automake's "skipped") */
static inline int cuda_testing_device(void)
{
    char why[256];
    if (!flame_cuda_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 0;
    }
    printf("device: %s\n", why);
    return 1;
}

/* ‖x‖ and ‖a − b‖ in double: a gradient whose size is set by another (df
 * beside ds) is measured against that one's norm */
static inline double l2_norm(const float *x, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    return sqrt(ss);
}

static inline double l2_distance(const float *a, const float *b, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(ss);
}

/* ==================================================================== inputs */

/* A gradient's prefill: random values of the size (RMS) of the gradient, so
 * that a kernel that overwrites where it should add, or adds where it should
 * overwrite, shows as a large error, and bf16's rounding of a sum as a small
 * one. Of size 1 where the gradient is exactly 0. */
static inline float *prefill_like(const float *added, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)added[i] * added[i];
    float rms = ss > 0 ? (float)sqrt(ss / (double)n) : 1.0f;
    return testing_random_bf16(n, -rms, rms);
}

/* ==================================================================== memory */

static inline void *alloc_on(const flame_ops *ops, size_t bytes)
{
    void *p = ops->alloc(bytes);
    if (!p) {
        fprintf(stderr, "test: out of %s memory (%zu bytes)\n", ops->backend, bytes);
        exit(1);
    }
    return p;
}

static inline void *dev_alloc(size_t bytes) { return alloc_on(dev, bytes ? bytes : 1); }

/* a device copy of `bytes` host bytes */
static inline void *bytes_to_device(const void *host, size_t bytes)
{
    void *d = dev_alloc(bytes);
    dev->upload(d, host, bytes);
    return d;
}

static inline float *floats_to_device(const float *host, size_t n)
{
    return bytes_to_device(host, n * sizeof *host);
}

static inline int32_t *ints_to_device(const int32_t *host, size_t n)
{
    return bytes_to_device(host, n * sizeof *host);
}

/* n host floats as activations of ops' backend, cast there by its to_act */
static inline void *acts_on(const flame_ops *ops, const float *host, size_t n)
{
    float *staging = alloc_on(ops, n * sizeof *staging);
    void *a = alloc_on(ops, n * ops->act_bytes);
    ops->upload(staging, host, n * sizeof *staging);
    ops->to_act(a, staging, n);
    ops->free(staging);
    return a;
}

static inline void *acts_to_device(const float *host, size_t n) { return acts_on(dev, host, n); }

/* a device output of `bytes`, poisoned: bytes of all ones are NaN in fp32 and bf16 */
static inline void *dev_poisoned(size_t bytes)
{
    unsigned char *nan = malloc(bytes);
    memset(nan, 0xff, bytes);
    void *d = bytes_to_device(nan, bytes);
    free(nan);
    return d;
}

/* a copy of x[0, n) with each value rounded to bf16 (malloc'd) */
static inline float *rounded_bf16(const float *x, size_t n)
{
    float *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = testing_round_bf16(x[i]);
    return r;
}

static inline float *floats_to_host(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    dev->download(h, d, n * sizeof *h);
    return h;
}

/* n device activations widened by from_act */
static inline float *acts_to_host(const void *d, size_t n)
{
    float *staging = dev_alloc(n * sizeof *staging);
    dev->from_act(staging, d, n);
    float *h = floats_to_host(staging, n);
    dev->free(staging);
    return h;
}

/* ==================================================================== comparisons */

static inline void report(const char *what, const char *shape, double err, double tol, const char *note)
{
    printf("%-24s %-44s rel %.2e%s\n", what, shape, err, note);
    CHECK(err < tol, "%s %s: relative error %.3g (tolerance %g)", what, shape, err, tol);
}

/* the device's result, on the host (freed here), against the CPU's */
static inline void compare(const char *what, const char *shape, float *got, const float *want, size_t n,
                    double tol)
{
    report(what, shape, testing_rel_error(got, want, n), tol, "");
    free(got);
}

/* compare's measure with ‖want‖ taken at least `scale`: for outputs that
 * vanish in exact arithmetic on some inputs, where the CPU's is rounding
 * noise and a relative error means nothing */
static inline void compare_at_scale(const char *what, const char *shape, float *got, const float *want,
                                    size_t n, double tol, double scale)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d, den += (double)want[i] * want[i];
    }
    report(what, shape, sqrt(num) / fmax(sqrt(den), scale), tol, "");
    free(got);
}

/* the device's n rows of `stride` values (on the host, freed here) against
 * packed rows of want (freed here) in its columns at..: the same values,
 * element for element, as a joined layout must give its packed twin */
static inline void compare_columns(const char *what, const char *shape, float *got, size_t n, size_t stride,
                                   size_t at, size_t width, float *want)
{
    size_t differ = testing_columns_differ(got, n, stride, at, width, want);
    printf("%-24s %-44s %zu of %zu differ\n", what, shape, differ, n * width);
    CHECK(differ == 0, "%s %s: %zu values differ from the packed layout's", what, shape, differ);
    free(got), free(want);
}

/* a gradient the device kernel added into (on the host, freed here) against
 * pre + what the CPU kernel added */
static inline void compare_added(const char *what, const char *shape, float *got, const float *added,
                          const float *pre, size_t n, double tol)
{
    float *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++)
        want[i] = pre[i] + added[i];
    report(what, shape, testing_rel_error(got, want, n), tol, " (added)");
    free(got), free(want);
}

#endif
