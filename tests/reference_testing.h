/* Checking CPU kernels against naive references written in double: random
 * double inputs and their fp32 copies, gradient buffers a kernel must write
 * over or add into, and central finite differences taken on the double
 * reference. Include after testing.h. */
#ifndef FLAME_REFERENCE_TESTING_H
#define FLAME_REFERENCE_TESTING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static inline double *random_d(size_t n, double lo, double hi)
{
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * testing_uniform();
    return x;
}

static inline float *to_float(const double *x, size_t n)
{
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)x[i];
    return f;
}

/* a gradient buffer pre-filled with random values, and a copy of them */
static inline float *prefilled(size_t n, float **pre)
{
    float *g = testing_random(n, -1.0f, 1.0f);
    *pre = malloc(n * sizeof **pre);
    memcpy(*pre, g, n * sizeof *g);
    return g;
}

/* a gradient buffer the kernel must write over: large values, so that adding
 * to them fails the comparison */
static inline float *garbage(size_t n) { return testing_random(n, -1e3f, 1e3f); }

/* what the kernel added: g − pre, in place; frees pre */
static inline void remove_prefill(float *g, float *pre, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] -= pre[i];
    free(pre);
}

/* central differences, in double, of f with respect to each value of x */
typedef double (*loss_fn)(const void *ctx);

static inline void numeric_grad_d(double *grad, double *x, size_t n, double h, loss_fn f,
                                  const void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double saved = x[i];
        x[i] = saved + h;
        double up = f(ctx);
        x[i] = saved - h;
        double down = f(ctx);
        x[i] = saved;
        grad[i] = (up - down) / (2 * h);
    }
}

/* Σ r·y over n values: the loss whose gradient a test checks */
static inline double weighted(const double *r, const double *y, size_t n)
{
    double L = 0;
    for (size_t i = 0; i < n; i++)
        L += r[i] * y[i];
    return L;
}

/* an analytic gradient and the double input it is taken with respect to */
typedef struct grad_check {
    const char *what;
    double *x;
    const float *analytic;
    size_t n;
} grad_check;

/* each analytic gradient against central differences of f on its input */
static inline void check_grads(const char *name, const grad_check *g, int count, double h,
                               double tol, loss_fn f, const void *ctx)
{
    for (int i = 0; i < count; i++) {
        double *num = malloc(g[i].n * sizeof *num);
        numeric_grad_d(num, g[i].x, g[i].n, h, f, ctx);
        char what[128];
        snprintf(what, sizeof what, "%s: %s", name, g[i].what);
        testing_grad_close(what, g[i].analytic, num, g[i].n, tol);
        free(num);
    }
}

#endif
