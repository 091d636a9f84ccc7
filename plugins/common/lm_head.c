/* The LM head every decoder-LM plugin shares (lm_parts.h): the final norm,
 * lm_head and the cross-entropy, a chunk of logits at a time. */
#include "lm_parts.h"

/* the bytes of logits a chunk may hold. A batch whose logits fit in one chunk
 * has them made once: its backward takes the gradient the forward made of
 * them. 4 GiB holds 8×2048 tokens over a 128 K vocabulary in bf16, or GPT-2's
 * 32×1024 over its 50 K (at 1 GiB, in four chunks made twice, GPT-2 small's
 * step took 71.7 ms on an H200, 66.9 at 4 GiB); larger batches and
 * vocabularies go in chunks, each made twice. */
size_t lm_head_chunk_bytes = (size_t)4 << 30;

void lm_head_carve(lm_head *hd, lm_carver *cv, size_t n, int D, int V, int layernorm)
{
    size_t rows = lm_head_chunk_bytes / ((size_t)V * cv->act_bytes);
    hd->rows = (int)(rows < 1 ? 1 : rows < n ? rows : n);
    lm_carve_norm_stats(&hd->mean, &hd->rstd, cv, n, layernorm);
    hd->x = lm_take_acts(cv, n * D);
    hd->row_scale = lm_take_floats(cv, n);
    hd->logits = lm_take_logits(cv, (size_t)hd->rows * V);
}

/* the logits of rows [r0, r0 + rows) into hd->logits */
static void chunk_logits(const flame_ops *ops, const lm_head *hd, const lm_head_params *p, int r0,
                         int rows, int D, int V)
{
    ops->matmul_forward(hd->logits, lm_act_at(ops, hd->x, (size_t)r0 * D), p->head, NULL, NULL, rows,
                        D, V);
}

static int chunk_rows(const lm_head *hd, int r0, int n) { return n - r0 < hd->rows ? n - r0 : hd->rows; }

/* ∂(mean loss)/∂(loss of a counted row) */
static float loss_scale(const lm_batch *lb) { return lb->counted ? 1.0f / (float)lb->counted : 0.0f; }

/* the summed loss of rows [r0, r0 + rows); hd->logits and the rows' row_scale
 * receive their gradient (lm_head_loss) */
static double chunk_loss(const flame_ops *ops, const lm_head *hd, const lm_head_params *p, const lm_batch *lb,
                         int r0, int rows, int D, int V)
{
    return ops->lm_head_loss(hd->logits, hd->row_scale + r0, lm_act_at(ops, hd->x, (size_t)r0 * D), p->head,
                             lb->targets + r0, rows, D, V, loss_scale(lb));
}

float lm_head_forward(const flame_ops *ops, lm_head *hd, const lm_head_params *p, const void *h,
                      const lm_batch *lb, float *logits_out, int D, int V, float eps, int f32)
{
    int n = lb->n;
    lm_norm_forward(ops, hd->x, hd->mean, hd->rstd, h, p->norm, p->norm_bias, n, D, eps, f32);
    /* a batch of one chunk keeps its logits' gradient for the backward; the
     * logits themselves, where asked for, come from a product of their own */
    hd->whole = n <= hd->rows && !logits_out;
    double sum = 0;
    for (int r0 = 0; r0 < n; r0 += hd->rows) {
        int rows = chunk_rows(hd, r0, n);
        if (logits_out) {
            chunk_logits(ops, hd, p, r0, rows, D, V);
            ops->from_act(logits_out + (size_t)r0 * V, hd->logits, (size_t)rows * V);
            sum += ops->cross_entropy(NULL, NULL, hd->logits, lb->targets + r0, rows, V, loss_scale(lb));
        } else {
            sum += chunk_loss(ops, hd, p, lb, r0, rows, D, V);
        }
    }
    return lb->counted ? (float)(sum / lb->counted) : 0.0f;
}

/* dlogits = row_scale ⊙ logits (lm_head_loss), so the products take the
 * scale on x for the head's gradient and on their result for x's; d_x holds
 * the scaled x until the head's gradient has read it */
void lm_head_backward(const flame_ops *ops, lm_head *hd, const lm_head_params *p,
                      const void *h, const lm_batch *lb, void *d_x, void *d_resid, void *d_resid_act, int D,
                      int V)
{
    int n = lb->n;
    for (int r0 = 0; r0 < n; r0 += hd->rows) {
        int rows = chunk_rows(hd, r0, n);
        if (!hd->whole) /* the chunk's gradient again */
            chunk_loss(ops, hd, p, lb, r0, rows, D, V);
        void *dx = lm_act_at(ops, d_x, (size_t)r0 * D);
        const float *scale = hd->row_scale + r0;
        ops->scale_rows(dx, lm_act_at(ops, hd->x, (size_t)r0 * D), scale, rows, D);
        ops->matmul_backward(NULL, FLAME_GRAD_SET, p->dhead, NULL, hd->logits, dx, p->head, rows, D, V);
        ops->matmul_backward(dx, FLAME_GRAD_SET, NULL, NULL, hd->logits, NULL, p->head, rows, D, V);
        ops->scale_rows(dx, dx, scale, rows, D);
    }
    /* the layers' backward overwrites the scratch the logits lie over: a
     * second backward of the same forward makes them again */
    hd->whole = 0;
    lm_norm_backward(ops, d_resid, FLAME_GRAD_SET, d_resid_act, p->dnorm, p->dnorm_bias, d_x, h, p->norm, hd->mean,
                     hd->rstd, n, D);
}
