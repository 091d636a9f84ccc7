#include "params_shard.h"

#include <stdio.h>

static int one_shard(const param_store *ps) { return ps->shard == ps->padded; }

int params_grad_square_sum(param_store *ps, comm *c, double *sum, char *err, size_t err_len)
{
    *sum = ps->ops->sum_squares(ps->grads + ps->shard_lo, ps->shard);
    return one_shard(ps) ? 0 : comm_sum_doubles(c, sum, 1, err, err_len);
}

int params_gather_weights(param_store *ps, comm *c, char *err, size_t err_len)
{
    if (one_shard(ps))
        return 0;
    return comm_all_gather(c, ps->compute, ps->shard * ps->ops->act_bytes, err, err_len);
}

int params_whole_view(const param_store *ps, param_store *view, char *err, size_t err_len)
{
    *view = *ps;
    if (one_shard(ps))
        return 0;
    size_t bytes = ps->padded * sizeof(float);
    view->m = ps->ops->alloc(bytes);
    view->v = ps->ops->alloc(bytes);
    if (view->m && view->v)
        return 0;
    params_release_view(ps, view);
    snprintf(err, err_len, "out of memory for the whole optimizer state (%.1f MiB) of a checkpoint",
             2.0 * (double)bytes / 1048576.0);
    return -1;
}

void params_release_view(const param_store *ps, param_store *view)
{
    if (view->m && view->m != ps->m)
        ps->ops->free(view->m);
    if (view->v && view->v != ps->v)
        ps->ops->free(view->v);
    view->m = view->v = NULL;
}

/* the shard's floats at the rank's place in the whole buffer, then every rank's */
static int gather_moment(const param_store *ps, float *whole, const float *shard, comm *c, char *err,
                         size_t err_len)
{
    ps->ops->copy(whole + ps->shard_lo, shard, ps->shard * sizeof(float));
    return comm_all_gather(c, whole, ps->shard * sizeof(float), err, err_len);
}

int params_gather_state(param_store *ps, param_store *view, comm *c, char *err, size_t err_len)
{
    if (one_shard(ps))
        return 0;
    size_t bytes = ps->shard * sizeof(float);
    return gather_moment(ps, view->m, ps->m, c, err, err_len) || gather_moment(ps, view->v, ps->v, c, err, err_len) ||
           (ps->compute != ps->values && comm_all_gather(c, ps->values, bytes, err, err_len));
}

void params_keep_shard(param_store *ps, const param_store *view)
{
    if (one_shard(ps))
        return;
    ps->ops->copy(ps->m, view->m + ps->shard_lo, ps->shard * sizeof(float));
    ps->ops->copy(ps->v, view->v + ps->shard_lo, ps->shard * sizeof(float));
}
