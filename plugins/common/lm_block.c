/* The pre-norm block's parts every decoder-LM plugin shares (lm_parts.h): the
 * norms (RMSNorm, or LayerNorm with a bias), the MLP (SwiGLU, or GPT's GELU
 * with biases) and the backward of projections that read a normalized input. */
#include "lm_parts.h"

/* ------------------------------------------------------------------ norms */

void lm_norm_forward(const flame_ops *ops, void *out, float *mean, float *rstd, const void *x,
                     const void *weight, const void *bias, int n, int D, float eps, int f32)
{
    if (f32)
        ops->layernorm_forward_f32(out, mean, rstd, x, weight, bias, n, D, eps);
    else if (mean)
        ops->layernorm_forward(out, mean, rstd, x, weight, bias, n, D, eps);
    else
        ops->rmsnorm_forward(out, rstd, x, weight, n, D, eps);
}

void lm_norm_backward(const flame_ops *ops, void *dx, flame_grad_mode mode, void *dx_act, float *dweight,
                      float *dbias, const void *dout, const void *x, const void *weight, const float *mean,
                      const float *rstd, int n, int D)
{
    if (dx_act)
        ops->layernorm_backward_f32(dx, mode, dx_act, dweight, dbias, dout, x, weight, mean, rstd, n, D);
    else if (mean)
        ops->layernorm_backward(dx, mode, dweight, dbias, dout, x, weight, mean, rstd, n, D);
    else
        ops->rmsnorm_backward(dx, mode, dweight, dout, x, weight, rstd, n, D);
}

void lm_residual_product(const flame_ops *ops, void *out, const void *in, const void *weight, const void *bias,
                         const void *residual, int n, int K, int N, int f32)
{
    if (f32)
        ops->matmul_forward_f32(out, in, weight, bias, residual, n, K, N);
    else
        ops->matmul_forward(out, in, weight, bias, residual, n, K, N);
}

/* ------------------------------------------------------------------ MLP */

void lm_carve_norm_stats(float **mean, float **rstd, lm_carver *cv, size_t n, int layernorm)
{
    *mean = layernorm ? lm_take_floats(cv, n) : NULL;
    *rstd = lm_take_floats(cv, n);
}

void lm_mlp_carve(lm_mlp_acts *a, lm_carver *cv, size_t n, int D, int I, int layernorm, int gated,
                  lm_mlp_kept kept)
{
    lm_carve_norm_stats(&a->mean, &a->rstd, cv, n, layernorm);
    a->x = kept.norm_output ? lm_take_acts(cv, n * D) : NULL;
    a->gate_up = gated ? lm_take_acts(cv, n * 2 * I) : NULL;
    a->up = gated ? NULL : lm_take_acts(cv, n * I);
    a->act = !gated || kept.activation ? lm_take_acts(cv, n * I) : NULL;
}

void lm_mlp_scratch_carve(lm_mlp_scratch *s, lm_carver *cv, size_t n, int D, int I, int gated, lm_mlp_kept kept)
{
    s->x = kept.norm_output ? NULL : lm_take_scratch_acts(cv, n * D);
    s->act = gated ? lm_take_scratch_acts(cv, n * I) : NULL;
    s->dgate_up = gated ? lm_take_scratch_acts(cv, n * 2 * I) : NULL;
    s->dup = gated ? NULL : lm_take_scratch_acts(cv, n * I);
}

/* the gate's and up's columns of a [n,2I] product (or of its gradient) */
static void *gate_columns(const flame_ops *ops, const lm_mlp_params *p, const void *gate_up, int I)
{
    return lm_act_at(ops, gate_up, p->gate_second ? (size_t)I : 0);
}
static void *up_columns(const flame_ops *ops, const lm_mlp_params *p, const void *gate_up, int I)
{
    return lm_act_at(ops, gate_up, p->gate_second ? 0 : (size_t)I);
}

/* where the norm's output x lies: the layer's own, or the shared scratch */
static void *norm_output(const lm_mlp_acts *a, const lm_mlp_scratch *s) { return a->x ? a->x : s->x; }

/* where the activation lies (down's input): the layer's own, or the shared scratch */
static void *activation(const lm_mlp_acts *a, const lm_mlp_scratch *s) { return a->act ? a->act : s->act; }

void lm_mlp_forward(const flame_ops *ops, lm_mlp_acts *a, const lm_mlp_params *p,
                    lm_mlp_scratch *s, const void *in, void *out, int n, int D, int I, float eps, int f32)
{
    void *x = norm_output(a, s), *act = activation(a, s);
    lm_norm_forward(ops, x, a->mean, a->rstd, in, p->norm, p->norm_bias, n, D, eps, f32);
    if (p->gate_up) {
        ops->matmul_forward(a->gate_up, x, p->gate_up, NULL, NULL, n, D, 2 * I);
        ops->swiglu_forward_strided(act, gate_columns(ops, p, a->gate_up, I), up_columns(ops, p, a->gate_up, I), n,
                                    I, 2 * I);
    } else {
        ops->matmul_gelu_forward(act, a->up, x, p->up, p->up_bias, n, D, I);
    }
    lm_residual_product(ops, out, act, p->down, p->down_bias, in, n, I, D, f32);
}

/* into s->dup: ∂loss/∂(up's output) of GPT's MLP, down's gradients added */
static void gelu_mlp_core_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                                   lm_mlp_scratch *s, const void *dout, int n, int D, int I)
{
    ops->matmul_backward(NULL, FLAME_GRAD_SET, p->ddown, p->ddown_bias, dout, a->act, p->down, n, I, D);
    ops->matmul_dgelu_backward(s->dup, dout, p->down, a->up, n, I, D);
}

/* into s->dgate_up: ∂loss/∂(gate's and up's outputs), down's gradient added */
static void swiglu_mlp_core_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                                     lm_mlp_scratch *s, const void *dout, int n, int D, int I)
{
    /* the activation's gradient; then the SwiGLU backward, which reads gate
     * and up once for both their gradients and, where the layer does not
     * keep the activation, makes it again over its gradient */
    ops->matmul_backward(s->act, FLAME_GRAD_SET, NULL, NULL, dout, NULL, p->down, n, I, D);
    ops->swiglu_backward_strided(gate_columns(ops, p, s->dgate_up, I), up_columns(ops, p, s->dgate_up, I),
                                 a->act ? NULL : s->act, s->act, gate_columns(ops, p, a->gate_up, I),
                                 up_columns(ops, p, a->gate_up, I), n, I, 2 * I);
    ops->matmul_backward(NULL, FLAME_GRAD_SET, p->ddown, NULL, dout, activation(a, s), p->down, n, I, D);
}

void lm_mlp_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                     lm_mlp_scratch *s, void *d_x, void *d_resid, void *d_resid_act, const void *in, int n,
                     int D, int I, float eps)
{
    const void *dout = d_resid_act ? d_resid_act : d_resid;
    int f32 = d_resid_act != NULL;
    if (p->gate_up)
        swiglu_mlp_core_backward(ops, a, p, s, dout, n, D, I);
    else
        gelu_mlp_core_backward(ops, a, p, s, dout, n, D, I);
    /* the forward's x, kept or made again (the statistics come out the same) */
    void *x = norm_output(a, s);
    if (!a->x)
        lm_norm_forward(ops, x, a->mean, a->rstd, in, p->norm, p->norm_bias, n, D, eps, f32);
    const lm_prenorm norm = {in, x, p->norm, p->dnorm, a->rstd, p->norm_bias, p->dnorm_bias, a->mean,
                             d_resid_act};
    const lm_projection projection = p->gate_up ? (lm_projection){p->gate_up, p->dgate_up, s->dgate_up, 2 * I, NULL}
                                                : (lm_projection){p->up, p->dup, s->dup, I, p->dup_bias};
    lm_prenorm_backward(ops, &norm, &projection, 1, d_x, d_resid, n, D);
}

void lm_prenorm_backward(const flame_ops *ops, const lm_prenorm *norm, const lm_projection *p,
                         int count, void *d_x, void *d_resid, int n, int D)
{
    for (int i = 0; i < count; i++)
        ops->matmul_backward(d_x, i ? FLAME_GRAD_ADD : FLAME_GRAD_SET, p[i].dweight, p[i].dbias, p[i].dout,
                             norm->a, p[i].weight, n, D, p[i].N);
    lm_norm_backward(ops, d_resid, FLAME_GRAD_ADD, norm->d_resid_act, norm->dweight, norm->dbias, d_x, norm->x,
                     norm->weight, norm->mean, norm->rstd, n, D);
}
