/* Parameters a plugin joins (param_joined, ABI 5.12) in the core's store
 * (core/params.c), over a made-up plugin's declarations:
 *  - a run of joined tensors lies back to back in declaration order, values,
 *    gradients and the compute view alike, while the units around it keep
 *    their order (each kind in reverse order of declaration, each unit on a
 *    boundary of 128 values);
 *  - a joined tensor that is the first, or whose weight decay or shape past
 *    the first dimension differs from the one before, is refused with a line
 *    naming it (params_create's -2), nothing allocated. */
#include <string.h>

#include "cpu_kernels.h"
#include "params.h"
#include "testing.h"

#define MAX_TENSORS 8

typedef struct tensor {
    const char *name;
    int ndim, rows, cols, decayed, joined;
} tensor;

static const tensor *declared;
static int n_declared;
static flame_param_spec specs[MAX_TENSORS];

static int n_params(const void *model) { (void)model; return n_declared; }
static const flame_param_spec *param(const void *model, int i) { (void)model; return &specs[i]; }
static int param_joined(const void *model, int i) { (void)model; return declared[i].joined; }

static const flame_plugin plugin = {.n_params = n_params, .param = param, .param_joined = param_joined};

static void declare(const tensor *t, int n)
{
    declared = t, n_declared = n;
    for (int i = 0; i < n; i++) {
        flame_param_spec *s = &specs[i];
        snprintf(s->name, sizeof s->name, "%s", t[i].name);
        s->ndim = t[i].ndim, s->shape[0] = t[i].rows, s->shape[1] = t[i].cols;
        s->init = FLAME_INIT_NORMAL, s->init_std = 0.02f, s->weight_decay = t[i].decayed;
    }
}

/* an embedding, a layer of a norm and q, k, v joined, a second layer's
 * matrix, and lm_head */
static void test_layout(void)
{
    static const tensor t[] = {
        {"embed", 2, 40, 8, 0, 0}, {"l0.norm", 1, 8, 0, 0, 0}, {"l0.q", 2, 8, 8, 1, 0}, {"l0.k", 2, 5, 8, 1, 1},
        {"l0.v", 2, 5, 8, 1, 1},   {"l1.w", 2, 16, 8, 1, 0},   {"lm_head", 2, 40, 8, 1, 0},
    };
    enum { EMBED, NORM, Q, K, V, L1, HEAD, N };
    declare(t, N);
    param_store ps;
    char err[256] = "";
    int rc = params_create(&ps, &plugin, NULL, &flame_cpu_ops, 0, 1, err, sizeof err);
    CHECK(rc == 0, "params_create: %d %s", rc, err);
    if (rc)
        return;
    /* back to back, in declaration order, in every view */
    CHECK(ps.offset[K] == ps.offset[Q] + 64 && ps.offset[V] == ps.offset[K] + 40,
          "q, k, v at %zu, %zu, %zu: not back to back", ps.offset[Q], ps.offset[K], ps.offset[V]);
    CHECK(ps.grad_ptrs[V] == ps.grad_ptrs[Q] + 104 && ps.value_ptrs[K] == ps.value_ptrs[Q] + 64 &&
              (char *)ps.compute_ptrs[V] == (char *)ps.compute_ptrs[Q] + 104 * flame_cpu_ops.act_bytes,
          "the joined run's gradients, values or compute view are not back to back");
    /* the units keep their order: lm_head (320 values, to 384), layer 1's
     * matrix (128), the run (144, to 768); then the norm (8, to 896), the
     * embedding */
    CHECK(ps.offset[HEAD] == 0 && ps.offset[L1] == 384 && ps.offset[Q] == 512 && ps.decayed_end == 768,
          "decayed units at %zu (lm_head), %zu (l1.w), %zu (the run), ending %zu: expected 0, 384, 512, 768",
          ps.offset[HEAD], ps.offset[L1], ps.offset[Q], ps.decayed_end);
    CHECK(ps.offset[NORM] == 768 && ps.offset[EMBED] == 896, "undecayed units at %zu, %zu: expected 768, 896",
          ps.offset[NORM], ps.offset[EMBED]);
    printf("joined q, k, v at %zu, %zu, %zu: back to back, between l1.w (%zu) and the undecayed (%zu)\n",
           ps.offset[Q], ps.offset[K], ps.offset[V], ps.offset[L1], ps.decayed_end);
    params_destroy(&ps);
}

/* a declaration refused with a line holding `expected` */
static void refused(const char *what, const tensor *t, int n, const char *expected)
{
    declare(t, n);
    param_store ps;
    char err[256] = "";
    int rc = params_create(&ps, &plugin, NULL, &flame_cpu_ops, 0, 1, err, sizeof err);
    printf("%s: %s\n", what, err);
    CHECK(rc == -2 && strstr(err, expected), "%s: expected -2 and '%s', got %d '%s'", what, expected, rc, err);
    if (rc == 0)
        params_destroy(&ps);
}

static void test_refusals(void)
{
    static const tensor first[] = {{"a", 2, 4, 8, 1, 1}, {"b", 2, 4, 8, 1, 0}};
    refused("the first joined", first, 2, "plugin parameter a: joined to the one before it, but it is the first");
    static const tensor decay[] = {{"a", 2, 4, 8, 1, 0}, {"b", 1, 8, 0, 0, 1}};
    refused("weight decay differs", decay, 2, "plugin parameter b: joined to a, but its weight decay differs");
    static const tensor cols[] = {{"a", 2, 4, 8, 1, 0}, {"b", 2, 4, 6, 1, 1}};
    refused("columns differ", cols, 2, "plugin parameter b: joined to a, but its shape past the first dimension differs");
    static const tensor dims[] = {{"a", 2, 4, 8, 0, 0}, {"b", 1, 4, 0, 0, 1}};
    refused("dimensions differ", dims, 2, "plugin parameter b: joined to a, but its shape past the first dimension");
}

int main(void)
{
    test_layout();
    test_refusals();
    return testing_result("test_params_joined");
}
