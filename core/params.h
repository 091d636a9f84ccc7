/* The model's parameters as the core owns them: one flat fp32 buffer each for
 * the values, gradients and the two AdamW moments, cut into the tensors the
 * plugin declared (in its order), so the optimizer, the gradient norm and
 * checkpoints treat every architecture alike. */
#ifndef FLAME_PARAMS_H
#define FLAME_PARAMS_H

#include <stddef.h>

#include <flame/plugin.h>

#include "rng.h"

typedef struct param_store {
    const flame_ops *ops;
    int n;                     /* number of tensors */
    flame_param_spec *specs;   /* [n] */
    size_t *offset, *numel;    /* [n], in floats */
    size_t total;              /* floats in each flat buffer */
    float *values, *grads, *m, *v; /* backend memory */
    float **value_ptrs, **grad_ptrs; /* [n], handed to the plugin's bind() */
} param_store;

/* Reads the plugin's declarations and allocates. Returns 0, or -1 with err. */
int params_create(param_store *ps, const flame_plugin *plugin, void *model,
                  const flame_ops *ops, char *err, size_t err_len);
void params_destroy(param_store *ps);

/* Draws every tensor by its init rule, in declaration order. */
void params_init(param_store *ps, rng *r);

void params_zero_grads(param_store *ps);
/* sqrt(Σ grad²) over every tensor */
double params_grad_norm(const param_store *ps);

#endif
