/* A plugin built outside flame's tree, from the installed headers alone: a
 * bigram model (the logits of the next token are a row of one V×V table,
 * looked up by the current token). Its option nan_every = N makes every N-th
 * forward's loss and gradients NaN, for testing training.skip_nan_inf.
 * Built with -DBIGRAM_ABI_5_0 its vtable is the one a plugin built against ABI
 * 5.0 has (it ends at decode_step), placed right before an unreadable page, so
 * that a core reading past it crashes; with -DBIGRAM_ABI_NEXT it claims the
 * next major version; with -DBIGRAM_HUGE its table has 2^40 × 2^40 values.
 * With -DBIGRAM_OWN_INIT=1 it initializes its table itself (init_values: each
 * value 0.25 + u/2 of one uniform draw u), =2 that way but with a NaN, =3
 * declares FLAME_INIT_PLUGIN without init_values. With -DBIGRAM_JOINED it
 * declares its table joined to a parameter before it, which there is not. */
#include <math.h>
#include <stdlib.h>

#include <flame/plugin.h>

typedef struct bigram {
    const flame_ops *ops;
    int V, nan_every, forwards;
    flame_param_spec spec;
    const void *table;         /* the compute view, in the op table's activation type */
    float *dtable;
    void *logits, *dlogits;    /* [n, V] activations */
    float *losses;             /* [n] */
    const int32_t *tokens;
    int n, poisoned;
} bigram;

static const flame_option options[] = {
    {"vocab_size", FLAME_TYPE_INT, "257", "vocabulary size", 0},
    {"nan_every", FLAME_TYPE_INT, "0", "every N-th forward gives NaN; 0 never", 0},
};

static void *create(const flame_model_config *c, const flame_ops *ops, char *err, size_t n)
{
    (void)err, (void)n;
    bigram *m = calloc(1, sizeof *m);
    m->ops = ops;
    m->V = (int)c->get_int(c->ctx, "vocab_size");
    m->nan_every = (int)c->get_int(c->ctx, "nan_every");
    m->spec = (flame_param_spec){"model.bigram.weight", 2, {m->V, m->V}, FLAME_INIT_NORMAL, 0.02f, 0};
#ifdef BIGRAM_HUGE
    m->spec.shape[0] = m->spec.shape[1] = (int64_t)1 << 40; /* 2^80 values: no core may take it */
#endif
#ifdef BIGRAM_OWN_INIT
    m->spec.init = FLAME_INIT_PLUGIN;
#endif
    return m;
}

static void destroy(void *model)
{
    bigram *m = model;
    m->ops->free(m->logits);
    m->ops->free(m->dlogits);
    m->ops->free(m->losses);
    free(m);
}

static int n_params(const void *model) { (void)model; return 1; }
static const flame_param_spec *param(const void *model, int i) { (void)i; return &((const bigram *)model)->spec; }

static void bind(void *model, const void *const *params, float *const *grads)
{
    bigram *m = model;
    m->table = params[0];
    m->dtable = grads[0];
}

static int reserve(void *model, int B, int T, char *err, size_t n)
{
    (void)err, (void)n;
    bigram *m = model;
    size_t rows = (size_t)B * T;
    m->logits = m->ops->alloc(rows * m->V * m->ops->act_bytes);
    m->dlogits = m->ops->alloc(rows * m->V * m->ops->act_bytes);
    m->losses = m->ops->alloc(rows * sizeof(float));
    return m->logits && m->dlogits && m->losses ? 0 : -1;
}

static float forward(void *model, const flame_batch *b, float *logits_out)
{
    bigram *m = model;
    m->n = b->B * b->T;
    m->tokens = b->tokens;
    m->ops->embedding_forward(m->logits, b->tokens, m->table, m->n, m->V);
    if (logits_out)
        m->ops->from_act(logits_out, m->logits, (size_t)m->n * m->V);
    /* the mean over the targets the core counted (negative ones are not) */
    float per_target = b->counted ? 1.0f / b->counted : 0.0f;
    double sum = m->ops->cross_entropy(m->losses, m->dlogits, m->logits, b->targets, m->n, m->V,
                                       per_target);
    m->poisoned = m->nan_every > 0 && ++m->forwards % m->nan_every == 0;
    return m->poisoned ? NAN : (float)(sum * per_target);
}

static void backward(void *model)
{
    bigram *m = model;
    m->ops->embedding_backward(m->dtable, m->dlogits, m->tokens, m->n, m->V);
    if (m->poisoned)
        m->ops->scale(m->dtable, NAN, (size_t)m->V * m->V);
}

static double flops_per_token(const void *model, int T) { (void)T; return 6.0 * ((const bigram *)model)->V; }
static int64_t vocab_size(const void *model) { return ((const bigram *)model)->V; }

#if defined(BIGRAM_OWN_INIT) && BIGRAM_OWN_INIT != 3
static void init_values(const void *model, int index, float *values, size_t numel,
                        double (*uniform)(void *state), void *state)
{
    (void)model, (void)index;
    for (size_t j = 0; j < numel; j++)
        values[j] = (float)(0.25 + 0.5 * uniform(state));
    if (BIGRAM_OWN_INIT == 2)
        values[numel / 2] = NAN;
}
#endif

#ifdef BIGRAM_JOINED
static int param_joined(const void *model, int index) { (void)model, (void)index; return 1; }
#endif

/* its Hugging Face identity: flame-convert writes and reads it with no code of its own */
static const flame_hf_format formats[] = {{"bigram", "BigramForCausalLM", NULL, 0, NULL, 0}};

static const flame_plugin plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "bigram",
    .description = "next-token logits from a table indexed by the current token (a test plugin)",
    .options = options,
    .n_options = 2,
    .create = create,
    .destroy = destroy,
    .n_params = n_params,
    .param = param,
    .bind = bind,
    .reserve = reserve,
    .forward = forward,
    .backward = backward,
    .flops_per_token = flops_per_token,
    .vocab_size = vocab_size,
    .hf_formats = formats,
    .n_hf_formats = 1,
#if defined(BIGRAM_OWN_INIT) && BIGRAM_OWN_INIT != 3
    .init_values = init_values,
#endif
#ifdef BIGRAM_JOINED
    .param_joined = param_joined,
#endif
};

#if defined(BIGRAM_ABI_5_0)
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const flame_plugin *flame_plugin_entry(void)
{
    size_t size = offsetof(flame_plugin, decode_step) + sizeof plugin.decode_step;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED || mprotect(two + page, page, PROT_NONE))
        return NULL;
    flame_plugin *old = (flame_plugin *)(two + page - size);
    memcpy(old, &plugin, size);
    old->size = (uint32_t)size;
    return old;
}
#elif defined(BIGRAM_ABI_NEXT)
const flame_plugin *flame_plugin_entry(void)
{
    static flame_plugin next;
    next = plugin;
    next.abi_version = FLAME_ABI_VERSION + 1;
    return &next;
}
#else
const flame_plugin *flame_plugin_entry(void) { return &plugin; }
#endif
