/* Small helpers shared by the C tests: deterministic random inputs, checks that
 * count failures, and a central finite-difference gradient.
 * A test program exits 0 when every check held, 1 otherwise (Automake's
 * convention; 77 means skipped). */
#ifndef FLAME_TESTING_H
#define FLAME_TESTING_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int testing_failures = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            testing_failures++;                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

static inline int testing_result(const char *name)
{
    printf("%s: %s\n", name, testing_failures ? "FAILED" : "ok");
    return testing_failures ? 1 : 0;
}

/* xorshift64*: reproducible across platforms, good enough for test inputs */
static uint64_t testing_rng_state = 0x9E3779B97F4A7C15ull;

static inline void testing_seed(uint64_t seed) { testing_rng_state = seed ? seed : 1; }

static inline double testing_uniform(void) /* in (0, 1) */
{
    testing_rng_state ^= testing_rng_state >> 12;
    testing_rng_state ^= testing_rng_state << 25;
    testing_rng_state ^= testing_rng_state >> 27;
    uint64_t r = testing_rng_state * 0x2545F4914F6CDD1Dull;
    return ((r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* uniform in [lo, hi), never exactly zero-filled */
static inline void testing_fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * testing_uniform());
}

static inline float *testing_random(size_t n, float lo, float hi)
{
    float *x = malloc(n * sizeof *x);
    testing_fill(x, n, lo, hi);
    return x;
}

/* x rounded to the nearest bf16 value, ties to even (NaN stays NaN) */
static inline float testing_round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* n random values in [lo, hi) that bf16 holds exactly, as fp32: the same
 * inputs for an fp32 reference and a bf16 kernel */
static inline float *testing_random_bf16(size_t n, float lo, float hi)
{
    float *x = testing_random(n, lo, hi);
    for (size_t i = 0; i < n; i++)
        x[i] = testing_round_bf16(x[i]);
    return x;
}

/* n bf16-exact values of magnitude in [lo, hi), either sign: never zero */
static inline float *testing_nonzero_bf16(size_t n, float lo, float hi)
{
    float *x = testing_random_bf16(n, lo, hi);
    for (size_t i = 0; i < n; i++)
        if (testing_uniform() < 0.5)
            x[i] = -x[i];
    return x;
}

/* ‖a − b‖ / ‖b‖ in double */
static inline double testing_rel_error(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* ‖a − b‖ / ‖b‖ against a double-precision reference */
static inline double testing_rel_error_d(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* a malloc'd copy of n floats */
static inline float *testing_copy(const float *x, size_t n)
{
    float *c = malloc(n * sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = x[i];
    return c;
}

/* Column blocks of wider rows (a joined projection's output, [n, q | k | v]):
 * packed rows of `width` values of x into columns [at, at + width) of n rows
 * `stride` apart, and whether those columns hold the packed rows of want,
 * value for value (a NaN, a value never written, differs from everything) */
static inline void testing_put_columns(float *dst, const float *x, size_t n, size_t stride, size_t at,
                                       size_t width)
{
    for (size_t r = 0; r < n; r++)
        memcpy(dst + r * stride + at, x + r * width, width * sizeof *x);
}

static inline size_t testing_columns_differ(const float *rows, size_t n, size_t stride, size_t at, size_t width,
                                            const float *want)
{
    size_t differ = 0;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < width; c++)
            differ += !(rows[r * stride + at + c] == want[r * width + c]);
    return differ;
}

/* Central finite differences of a scalar function f(ctx) with respect to each of
 * the n values of x: grad[i] = (f(x+h e_i) − f(x−h e_i)) / 2h. f reads x. */
typedef double (*testing_scalar_fn)(void *ctx);

static inline void testing_numeric_grad(double *grad, float *x, size_t n, float h,
                                        testing_scalar_fn f, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + h;
        double up = f(ctx);
        x[i] = saved - h;
        double down = f(ctx);
        x[i] = saved;
        grad[i] = (up - down) / (2.0 * (double)h);
    }
}

/* Central differences of f in one value of x, extrapolated (Richardson):
 * D(h) = (f(x+h) − f(x−h)) / 2h at h and 2h, (4·D(h) − D(2h)) / 3 cancels the
 * h² term. fp32 rounding of f (about 1e-7 of it) bounds h from below; the
 * step actually taken (after rounding x±h to float) is the one divided by. */
static inline double testing_central_difference(float *x, float h, testing_scalar_fn f, void *ctx)
{
    float saved = *x, hi = saved + h, lo = saved - h;
    *x = hi;
    double up = f(ctx);
    *x = lo;
    double down = f(ctx);
    *x = saved;
    return (up - down) / ((double)hi - lo);
}

static inline double testing_richardson(float *x, float h, testing_scalar_fn f, void *ctx)
{
    return (4 * testing_central_difference(x, h, f, ctx) - testing_central_difference(x, 2 * h, f, ctx)) / 3;
}

/* Compares an analytic gradient with a numeric one: relative error of the
 * whole vector under tol. Reports the worst element on failure. */
static inline int testing_grad_close(const char *what, const float *analytic,
                                     const double *numeric, size_t n, double tol)
{
    double num = 0, den = 0, worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double d = analytic[i] - numeric[i];
        num += d * d;
        den += numeric[i] * numeric[i];
        if (fabs(d) > worst) { worst = fabs(d); worst_i = i; }
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-30);
    int ok = rel < tol && den > 0;
    if (!ok) {
        testing_failures++;
        fprintf(stderr, "FAIL %s: relative error %.3g (tol %.3g), worst at %zu: analytic %.6g numeric %.6g\n",
                what, rel, tol, worst_i, analytic[worst_i], numeric[worst_i]);
    }
    return ok;
}

#endif
