/* The gradients' sums in buckets while the backward runs (core/grad_buckets.h),
 * on 3 CPU ranks (Gloo, whose sums are done when started) over a store of a
 * made-up plugin: an embedding, two layers of a norm and a matrix (layer
 * 1's two matrices joined, ABI 5.12), a final norm and lm_head, declared
 * with and without weight decay as a decoder's are. Rank r's gradient holds (r + 1)·(i + 1) at flat index i, so a summed
 * float is 6·(i + 1) and one not yet summed is (r + 1)·(i + 1). The plugin's
 * hook, called as a backward calls it (lm_head's index, the final norm's, each
 * layer's first, falling), must send with buckets of 0 bytes exactly the
 * tensors it names complete, no other (a call naming the second of a joined
 * run complete, not its first, sends none of the run), and finishing must leave this rank's
 * shard summed; with buckets larger than the model, the hook sends nothing
 * and the finish all. Without Gloo in the build: skipped with a line. */
#include "cpu_kernels.h"
#include "grad_buckets.h"
#include "ranks_testing.h"

#define WORLD 3
#define N_TENSORS 8

/* index: 0 embedding, 1-2 layer 0 (norm, matrix), 3-5 layer 1 (norm, two
 * matrices joined), 6 final norm, 7 lm_head */
static const struct {
    const char *name;
    int rows, cols, decayed, joined;
} tensors[N_TENSORS] = {{"embed", 40, 8, 0, 0},     {"l0.norm", 1, 8, 0, 0}, {"l0.w", 16, 8, 1, 0},
                        {"l1.norm", 1, 8, 0, 0},    {"l1.wa", 16, 8, 1, 0},  {"l1.wb", 8, 8, 1, 1},
                        {"final_norm", 1, 8, 0, 0}, {"lm_head", 40, 8, 1, 0}};

static flame_param_spec specs[N_TENSORS];
static void (*hook)(void *, int);
static void *hook_ctx;

static int n_params(const void *model) { (void)model; return N_TENSORS; }
static const flame_param_spec *param(const void *model, int i) { (void)model; return &specs[i]; }
static void watch(void *model, void (*ready)(void *, int), void *ctx) { (void)model; hook = ready, hook_ctx = ctx; }
static int joined(const void *model, int i) { (void)model; return tensors[i].joined; }

static const flame_plugin plugin = {.n_params = n_params, .param = param, .watch_gradients = watch,
                                    .param_joined = joined};

static void declare(void)
{
    for (int i = 0; i < N_TENSORS; i++) {
        flame_param_spec *s = &specs[i];
        snprintf(s->name, sizeof s->name, "%s", tensors[i].name);
        s->ndim = 2, s->shape[0] = tensors[i].rows, s->shape[1] = tensors[i].cols;
        s->init = FLAME_INIT_NORMAL, s->init_std = 0.02f, s->weight_decay = tensors[i].decayed;
    }
}

static void fill(param_store *ps, int rank)
{
    for (size_t i = 0; i < ps->padded; i++)
        ps->grads[i] = (float)(rank + 1) * (float)(i + 1);
}

/* tensor t's gradient summed (or, when summed is 0, still this rank's own) */
static int tensor_is(const param_store *ps, int t, int summed, int rank)
{
    for (size_t i = ps->offset[t]; i < ps->offset[t] + ps->numel[t]; i++) {
        float want = (float)(summed ? 6 : rank + 1) * (float)(i + 1);
        if (ps->grads[i] != want) {
            fprintf(stderr, "FAIL rank %d: %s[%zu] = %g, expected %g (%s)\n", rank, specs[t].name,
                    i - ps->offset[t], ps->grads[i], want, summed ? "summed" : "not sent yet");
            return 0;
        }
    }
    return 1;
}

/* after the hook said tensors from first on are complete: those summed, the rest not */
static int sent_from(const param_store *ps, int first, int rank)
{
    int ok = 1;
    for (int t = 0; t < N_TENSORS; t++)
        ok &= tensor_is(ps, t, t >= first, rank);
    return ok;
}

static int shard_summed(const param_store *ps, int rank)
{
    size_t end = ps->shard_lo + ps->shard < ps->total ? ps->shard_lo + ps->shard : ps->total;
    for (size_t i = ps->shard_lo; i < end; i++)
        if (ps->grads[i] != 6.0f * (float)(i + 1)) {
            fprintf(stderr, "FAIL rank %d: shard float %zu = %g after the finish\n", rank, i, ps->grads[i]);
            return 0;
        }
    return 1;
}

static int run_rank(int rank, int port)
{
    comm *c = ranks_join(rank, WORLD, port, "cpu");
    if (!c)
        return 1;
    param_store ps;
    char err[512] = "";
    int ok = params_create(&ps, &plugin, NULL, &flame_cpu_ops, rank, WORLD, err, sizeof err) == 0;
    grad_buckets g;
    grad_buckets_init(&g, &ps, c, 0);
    ok = ok && hook == grad_buckets_ready && hook_ctx == &g;
    /* a backward's calls: lm_head, the final norm, the second of layer 1's
     * joined pair (so: nothing more), layer 1, layer 0 */
    static const int firsts[] = {7, 6, 5, 3, 1}, sent[] = {7, 6, 6, 3, 1};
    fill(&ps, rank);
    grad_buckets_ready(&g, 7); /* not armed: an earlier micro-batch's backward */
    ok = ok && sent_from(&ps, N_TENSORS, rank);
    grad_buckets_arm(&g);
    for (int k = 0; k < 5 && ok; k++) {
        hook(hook_ctx, firsts[k]);
        ok = sent_from(&ps, sent[k], rank);
    }
    ok = ok && grad_buckets_finish(&g, err, sizeof err) == 0 && shard_summed(&ps, rank);
    /* buckets larger than the model: nothing before the finish */
    g.bucket = ps.padded + 1;
    fill(&ps, rank);
    grad_buckets_arm(&g);
    for (int k = 0; k < 5 && ok; k++) {
        hook(hook_ctx, firsts[k]);
        ok = sent_from(&ps, N_TENSORS, rank);
    }
    ok = ok && grad_buckets_finish(&g, err, sizeof err) == 0 && shard_summed(&ps, rank);
    if (!ok)
        fprintf(stderr, "FAIL rank %d%s%s\n", rank, *err ? ": " : "", err);
    params_destroy(&ps);
    comm_close(c);
    return !ok;
}

int main(void)
{
#ifdef FLAME_HAVE_GLOO
    declare();
    ranks_fork(WORLD, run_rank);
    printf("3 CPU ranks: each bucket sent as the backward completes it, the shards summed at the finish\n");
#else
    printf("3 CPU ranks: skipped, this build has no Gloo\n");
#endif
    return testing_result("test_grad_buckets");
}
