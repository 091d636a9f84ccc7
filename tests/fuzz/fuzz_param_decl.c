/* params_check_declared and params_create (core/params.h: what a plugin
 * declares of its parameters, outside input to the core) on arbitrary bytes
 * read as declarations. The first byte gives the count (0 to 16) and the
 * shards (1 to 3) this rank's store is cut into; each tensor then takes 9
 * bytes: its name's length (0 to 7), its number of dimensions (0 to 5), four
 * dimensions (a byte each: 0 to 254, 255 for 2^45), its init rule (0 to 4),
 * the name's first letter, and a byte whose bits say: weight decay, the std
 * negative, joined to the one before (param_joined).
 * A refused declaration says why in a line ended within err. An accepted one
 * whose values are few enough to allocate is laid out: every tensor inside
 * the buffers, none overlapping another, the decayed ones before
 * decayed_end and the others after it, a joined tensor right after the one
 * before it, every other on a boundary of 128 values, the shard inside the
 * padding. */
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"
#include "params.h"

#define MAX_TENSORS 16
#define RECORD 9

static flame_param_spec specs[MAX_TENSORS];
static int joined[MAX_TENSORS], n_specs;

static int n_params(const void *model) { (void)model; return n_specs; }
static const flame_param_spec *param(const void *model, int i)
{
    (void)model;
    return i >= 0 && i < n_specs ? &specs[i] : NULL;
}
static int param_joined(const void *model, int i)
{
    (void)model;
    return i >= 0 && i < n_specs && joined[i];
}

static const flame_plugin plugin = {.n_params = n_params, .param = param, .param_joined = param_joined};

/* the declarations of data (n bytes); returns the shards */
static int declare(const unsigned char *data, size_t n)
{
    memset(specs, 0, sizeof specs), memset(joined, 0, sizeof joined);
    n_specs = n ? data[0] % (MAX_TENSORS + 1) : 0;
    int shards = n ? 1 + data[0] / (MAX_TENSORS + 1) % 3 : 1;
    size_t at = 1;
    for (int i = 0; i < n_specs; i++, at += RECORD) {
        unsigned char r[RECORD] = {0};
        for (int b = 0; b < RECORD && at + b < n; b++)
            r[b] = data[at + b];
        flame_param_spec *s = &specs[i];
        int len = r[0] % 8;
        for (int c = 0; c < len; c++)
            s->name[c] = (char)('a' + (r[7] + c) % 26);
        s->ndim = r[1] % 6;
        for (int d = 0; d < 4; d++)
            s->shape[d] = r[2 + d] == 255 ? (int64_t)1 << 45 : r[2 + d];
        s->init = (flame_init_rule)(r[6] % 5);
        s->init_std = r[8] & 2 ? -1.0f : 0.02f;
        s->weight_decay = r[8] & 1;
        joined[i] = (r[8] & 4) != 0;
    }
    return shards;
}

static size_t numel(const flame_param_spec *s)
{
    size_t v = 1;
    for (int d = 0; d < s->ndim; d++)
        v *= (size_t)s->shape[d];
    return v;
}

/* the layout's promises; aborts (a finding) when one is broken */
static void check_layout(const param_store *ps)
{
    for (int i = 0; i < ps->n; i++) {
        size_t lo = ps->offset[i], hi = lo + ps->numel[i];
        if (hi > ps->total || ps->total > ps->padded || ps->numel[i] != numel(&specs[i]))
            abort();
        if ((specs[i].weight_decay != 0) != (hi <= ps->decayed_end) && ps->numel[i] > 0)
            abort();
        if (ps->joined[i] ? lo != ps->offset[i - 1] + ps->numel[i - 1] : lo % 128 != 0)
            abort();
        for (int j = 0; j < i; j++)
            if (lo < ps->offset[j] + ps->numel[j] && ps->offset[j] < hi)
                abort();
    }
    if (ps->shard_lo + ps->shard > ps->padded)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    int shards = declare(data, n);
    char err[256];
    memset(err, 'x', sizeof err);
    if (params_check_declared(&plugin, NULL, err, sizeof err)) {
        if (!memchr(err, '\0', sizeof err) || !err[0])
            abort();
        return 0;
    }
    size_t total = 0;
    for (int i = 0; i < n_specs; i++)
        total += numel(&specs[i]);
    if (total > ((size_t)1 << 20)) /* accepted, but more than a fuzzer should allocate */
        return 0;
    param_store ps;
    if (params_create(&ps, &plugin, NULL, &flame_cpu_ops, shards - 1, shards, err, sizeof err) == 0) {
        check_layout(&ps);
        params_destroy(&ps);
    }
    return 0;
}
