/* logits_tool: a model's logits on given tokens, for comparison with another
 * implementation (tests/fla_logits_parity.py compares them with fla's).
 *
 *   logits_tool --arch NAME|PATH.so --model.config CFG.json|CFG.ini
 *               --weights MODEL.safetensors --tokens TOKENS.txt --output LOGITS.safetensors
 *               [--device cpu|cuda] [--section.key VALUE ...]
 *
 * Builds the model the plugin describes from the configuration (the same
 * store and priorities as flame-run), loads every parameter by its name from
 * the weights file (fp32, bf16 or fp16, converted to fp32), refusing a missing
 * tensor, a tensor of another shape and a tensor the model does not have, and
 * runs one forward on the tokens: one row of a batch per line of TOKENS.txt,
 * whitespace-separated ids, every row of the same length T. The targets are
 * the next token of the same row (the last position of each row has none), as
 * Hugging Face models count the loss with labels = input ids.
 *
 * With --decode the logits come instead from the plugin's decode entries, the
 * rows fed position by position in lockstep (core/generator.h; the loss is
 * then NaN).
 *
 * Writes LOGITS.safetensors holding "logits", F32 [B*T, vocab_size] (row b*T+t
 * is position t of row b), with the mean loss, B, T and the backend in its
 * __metadata__, and prints "loss L" on stdout.
 * Exit status as flame-run: 0 done, 1 runtime failure, 2 bad command line,
 * configuration or a weights file of another model, 3 unreadable tokens or
 * weights, 4 plugin not loadable. Errors are one line on stderr. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config/cli.h"
#include "config/config.h"
#include "cpu_kernels.h"
#include "errors.h"
#include "generator.h"
#include "params.h"
#include "plugin_loader.h"
#include "formats/safetensors.h"
#ifdef FLAME_HAVE_CUDA
#include "cuda_kernels.h"
#endif

typedef struct tool_args {
    const char *arch, *weights, *tokens, *output, *device;
    int help;
    int decode; /* --decode: position by position through the plugin's decode entries */
    /* the arguments left for the configuration store: argv[0] and --section.key ... */
    int n_rest;
    char **rest;
} tool_args;

static const char usage[] =
    "usage: logits_tool --arch NAME|PATH.so --model.config CFG --weights MODEL.safetensors\n"
    "                   --tokens TOKENS.txt --output LOGITS.safetensors [--device cpu|cuda]\n"
    "                   [--decode] [--section.key VALUE ...]\n"
    "Runs the model's forward on the tokens (one row per line) with the weights and\n"
    "writes its logits [rows*T, vocab] as F32 \"logits\" into the output file.\n";

static int parse_args(tool_args *a, int argc, char **argv)
{
    static const char *const own[] = {"--arch", "--weights", "--tokens", "--output", "--device"};
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->rest = calloc((size_t)argc + 1, sizeof *a->rest);
    if (!a->rest)
        return -1;
    a->rest[a->n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            a->help = 1;
            continue;
        }
        if (strcmp(argv[i], "--decode") == 0) {
            a->decode = 1;
            continue;
        }
        const char **slot[] = {&a->arch, &a->weights, &a->tokens, &a->output, &a->device};
        int taken = 0;
        for (size_t k = 0; k < sizeof own / sizeof own[0] && !taken; k++) {
            size_t n = strlen(own[k]);
            if (strncmp(argv[i], own[k], n) != 0 || (argv[i][n] != '\0' && argv[i][n] != '='))
                continue;
            const char *v = cli_option_value(argc, argv, &i, own[k]);
            if (!v) {
                fprintf(stderr, "logits_tool: %s needs a value\n", own[k]);
                return -1;
            }
            *slot[k] = v;
            taken = 1;
        }
        if (!taken)
            a->rest[a->n_rest++] = argv[i];
    }
    const char *missing = !a->arch      ? "--arch"
                          : !a->weights ? "--weights"
                          : !a->tokens  ? "--tokens"
                          : !a->output  ? "--output"
                                        : NULL;
    if (missing && !a->help) {
        fprintf(stderr, "logits_tool: %s is required (-h for help)\n", missing);
        return -1;
    }
    return 0;
}

/* the op table of --device, or NULL with a line on stderr and *status set */
static const flame_ops *pick_backend(const char *device, int *status)
{
    *status = FLAME_EXIT_CONFIG;
    if (strcmp(device, "cpu") == 0)
        return &flame_cpu_ops;
    if (strcmp(device, "cuda") == 0) {
#ifdef FLAME_HAVE_CUDA
        char why[512];
        if (!flame_cuda_available(why, sizeof why)) {
            fprintf(stderr, "logits_tool: --device cuda: %s\n", why);
            *status = FLAME_EXIT_RUNTIME;
            return NULL;
        }
        return &flame_cuda_ops;
#else
        fprintf(stderr, "logits_tool: --device cuda: this flame was built without CUDA\n");
        return NULL;
#endif
    }
    fprintf(stderr, "logits_tool: --device %s: expected cpu or cuda\n", device);
    return NULL;
}

/* ------------------------------------------------------------------ tokens */

typedef struct token_rows {
    int32_t *tokens, *targets; /* host [B*T] */
    int B, T;
} token_rows;

/* Reads rows of whitespace-separated ids, one row per non-empty line, all of
 * one length, each id in [0, vocab). Returns 0, or -1 with err. */
static int read_tokens(const char *path, int64_t vocab, token_rows *r, char *err, size_t err_len)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0, n = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int line_no = 0, rc = 0;
    while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
        line_no++;
        int in_row = 0;
        char *p = line;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                p++;
            if (!*p)
                break;
            char *end;
            errno = 0;
            long long id = strtoll(p, &end, 10);
            if (end == p || errno || id < 0 || id >= vocab ||
                (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')) {
                int len = (int)strcspn(p, " \t\r\n");
                snprintf(err, err_len, "%s:%d: expected token ids in [0, %lld), found \"%.*s\"",
                         path, line_no, (long long)vocab, len < 20 ? len : 20, p);
                rc = -1;
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 4096;
                int32_t *t = realloc(r->tokens, cap * sizeof *t);
                if (!t) {
                    snprintf(err, err_len, "%s: out of memory", path);
                    rc = -1;
                    break;
                }
                r->tokens = t;
            }
            r->tokens[n++] = (int32_t)id;
            in_row++;
            p = end;
        }
        if (rc || in_row == 0)
            continue;
        if (r->B == 0)
            r->T = in_row;
        else if (in_row != r->T) {
            snprintf(err, err_len, "%s:%d: %d tokens, but the first row has %d (rows must be of one length)",
                     path, line_no, in_row, r->T);
            rc = -1;
            break;
        }
        r->B++;
    }
    free(line);
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_len, "%s: read error", path);
        rc = -1;
    }
    fclose(f);
    if (rc == 0 && r->B == 0) {
        snprintf(err, err_len, "%s: no tokens", path);
        rc = -1;
    }
    if (rc == 0 && !(r->targets = malloc(n * sizeof *r->targets))) {
        snprintf(err, err_len, "%s: out of memory", path);
        rc = -1;
    }
    if (rc) {
        free(r->tokens);
        r->tokens = NULL;
        return -1;
    }
    for (int b = 0; b < r->B; b++)
        for (int t = 0; t < r->T; t++) {
            size_t i = (size_t)b * r->T + t;
            r->targets[i] = t + 1 < r->T ? r->tokens[i + 1] : -1;
        }
    return 0;
}

/* ------------------------------------------------------------------ weights */

/* Loads every parameter of ps from the file by name. Returns FLAME_EXIT_OK, or
 * FLAME_EXIT_CONFIG (a file of another model) or FLAME_EXIT_DATA (unreadable)
 * with err. */
static int load_weights(param_store *ps, const char *path, char *err, size_t err_len)
{
    safetensors st;
    if (safetensors_open(path, &st, err, err_len))
        return FLAME_EXIT_DATA;
    int status = FLAME_EXIT_OK;
    /* every tensor of the file must be a parameter of the model */
    for (int j = 0; j < st.n && status == FLAME_EXIT_OK; j++) {
        int found = 0;
        for (int i = 0; i < ps->n && !found; i++)
            found = strcmp(ps->specs[i].name, st.tensors[j].name) == 0;
        if (!found) {
            snprintf(err, err_len, "%s: tensor %s is not a parameter of this model (another "
                     "configuration?)", path, st.tensors[j].name);
            status = FLAME_EXIT_CONFIG;
        }
    }
    float *buf = NULL;
    size_t buf_len = 0;
    for (int i = 0; i < ps->n && status == FLAME_EXIT_OK; i++) {
        const flame_param_spec *s = &ps->specs[i];
        const safetensors_tensor *t = safetensors_find(&st, s->name);
        char want[160], got[160];
        safetensors_shape_text(want, sizeof want, s->ndim, s->shape);
        if (!t) {
            snprintf(err, err_len, "%s: no tensor %s (expected shape %s)", path, s->name, want);
            status = FLAME_EXIT_CONFIG;
            break;
        }
        int same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++)
            same = t->shape[d] == s->shape[d];
        if (!same) {
            safetensors_shape_text(got, sizeof got, t->ndim, t->shape);
            snprintf(err, err_len, "%s: tensor %s has shape %s, the model expects %s", path,
                     s->name, got, want);
            status = FLAME_EXIT_CONFIG;
            break;
        }
        if (ps->numel[i] > buf_len) {
            free(buf);
            buf_len = ps->numel[i];
            if (!(buf = malloc(buf_len * sizeof *buf))) {
                snprintf(err, err_len, "%s: out of memory reading %s", path, s->name);
                status = FLAME_EXIT_RUNTIME;
                break;
            }
        }
        if (safetensors_read_f32(&st, t, buf, buf_len, err, err_len)) {
            status = FLAME_EXIT_DATA;
            break;
        }
        ps->ops->upload(ps->value_ptrs[i], buf, ps->numel[i] * sizeof *buf);
    }
    free(buf);
    safetensors_close(&st);
    params_sync_compute(ps);
    return status;
}

/* ------------------------------------------------------------------ output */

static int write_logits(const char *path, const float *logits, int B, int T, int64_t V,
                        float loss, const char *backend, char *err, size_t err_len)
{
    safetensors_desc d = {.name = "logits", .dtype = ST_F32, .ndim = 2,
                          .shape = {(int64_t)B * T, V}};
    char loss_s[32], b_s[16], t_s[16];
    snprintf(loss_s, sizeof loss_s, "%.9g", loss);
    snprintf(b_s, sizeof b_s, "%d", B);
    snprintf(t_s, sizeof t_s, "%d", T);
    safetensors_kv meta[] = {{"loss", loss_s}, {"B", b_s}, {"T", t_s}, {"backend", backend}};
    safetensors_writer w;
    if (safetensors_writer_begin(&w, path, &d, 1, meta, 4, err, err_len))
        return -1;
    if (safetensors_writer_write(&w, logits, (size_t)B * T * (size_t)V * sizeof(float), err, err_len)) {
        safetensors_writer_abort(&w);
        return -1;
    }
    return safetensors_writer_finish(&w, err, err_len);
}

/* ------------------------------------------------------------------ main */

static flame_config *declare_options(const flame_plugin *plugin)
{
    flame_config *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    config_add_section(cfg, "model", plugin->options, plugin->n_options);
    return cfg;
}

typedef struct run_state {
    const flame_plugin *plugin;
    const flame_ops *ops;
    flame_config *cfg;
    void *model;
    param_store params;
    int have_params;
    token_rows rows;
    batch_stage batch;
    float *dev_logits, *host_logits;
} run_state;

static void release(run_state *s)
{
    if (s->ops) {
        batch_stage_close(&s->batch, s->ops);
        if (s->dev_logits)
            s->ops->free(s->dev_logits);
    }
    free(s->host_logits);
    free(s->rows.tokens);
    free(s->rows.targets);
    if (s->have_params)
        params_destroy(&s->params);
    if (s->model)
        s->plugin->destroy(s->model);
    if (s->cfg)
        config_destroy(s->cfg);
}

/* the rows fed column by column through a generator, each position's
 * logits where the forward puts them (row b·T + t) */
static int decode_logits(run_state *s, int B, int T, int64_t V, char *err, size_t err_len)
{
    generator *g;
    int32_t column[B];
    int rc = generator_open(&g, s->plugin, s->model, s->ops, B, T, err, err_len);
    for (int t = 0; rc == 0 && t < T; t++) {
        const float *logits;
        for (int b = 0; b < B; b++)
            column[b] = s->rows.tokens[(size_t)b * T + t];
        rc = generator_feed(g, column, &logits, err, err_len);
        for (int b = 0; rc == 0 && b < B; b++)
            memcpy(s->host_logits + ((size_t)b * T + t) * V, logits + (size_t)b * V,
                   (size_t)V * sizeof(float));
    }
    generator_close(g);
    return rc;
}

static int run(run_state *s, const tool_args *a)
{
    char err[4200] = "";
    s->cfg = declare_options(s->plugin);
    if (config_apply_args(s->cfg, a->n_rest, a->rest, err, sizeof err) ||
        (config_is_set(s->cfg, "model", "config") &&
         config_load_model_file(s->cfg, config_get_string(s->cfg, "model", "config"),
                                s->plugin->hf_formats, s->plugin->n_hf_formats, err,
                                sizeof err))) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return FLAME_EXIT_CONFIG;
    }
    flame_model_config view = config_model_view(s->cfg);
    s->model = s->plugin->create(&view, s->ops, err, sizeof err);
    if (!s->model) {
        fprintf(stderr, "logits_tool: %s: %s\n", s->plugin->name, err);
        return FLAME_EXIT_CONFIG;
    }
    if (params_create(&s->params, s->plugin, s->model, s->ops, 0, 1, err, sizeof err)) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return FLAME_EXIT_RUNTIME;
    }
    s->have_params = 1;
    s->plugin->bind(s->model, (const void *const *)s->params.compute_ptrs, s->params.grad_ptrs);
    int status = load_weights(&s->params, a->weights, err, sizeof err);
    if (status != FLAME_EXIT_OK) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return status;
    }
    int64_t V = s->plugin->vocab_size(s->model);
    if (read_tokens(a->tokens, V, &s->rows, err, sizeof err)) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return FLAME_EXIT_DATA;
    }
    int B = s->rows.B, T = s->rows.T;
    size_t n = (size_t)B * T, logits_bytes = n * (size_t)V * sizeof(float);
    int rc = s->plugin->reserve(s->model, B, T, err, sizeof err);
    if (rc) {
        fprintf(stderr, "logits_tool: %s: %s\n", s->plugin->name, err);
        return rc == -2 ? FLAME_EXIT_CONFIG : FLAME_EXIT_RUNTIME;
    }
    s->dev_logits = s->ops->alloc(logits_bytes);
    s->host_logits = malloc(logits_bytes);
    if (!s->dev_logits || !s->host_logits) {
        fprintf(stderr, "logits_tool: out of memory for %zu logits\n", n * (size_t)V);
        return FLAME_EXIT_RUNTIME;
    }
    flame_batch batch;
    if (batch_stage_open(&s->batch, s->ops, B, T, err, sizeof err) ||
        batch_stage_load(&s->batch, s->ops, s->rows.tokens, s->rows.targets, NULL, 0, V, &batch,
                         err, sizeof err)) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return FLAME_EXIT_RUNTIME;
    }
    float loss = NAN;
    if (a->decode) {
        if (decode_logits(s, B, T, V, err, sizeof err)) {
            fprintf(stderr, "logits_tool: %s\n", err);
            return FLAME_EXIT_RUNTIME;
        }
    } else {
        loss = s->plugin->forward(s->model, &batch, s->dev_logits);
        s->ops->download(s->host_logits, s->dev_logits, logits_bytes);
    }
    if (write_logits(a->output, s->host_logits, B, T, V, loss, s->ops->backend, err, sizeof err)) {
        fprintf(stderr, "logits_tool: %s\n", err);
        return FLAME_EXIT_RUNTIME;
    }
    printf("loss %.9g\n", loss);
    printf("logits [%d*%d, %lld] written to %s (%s)\n", B, T, (long long)V, a->output,
           s->ops->backend);
    return FLAME_EXIT_OK;
}

int main(int argc, char **argv)
{
    tool_args a;
    if (parse_args(&a, argc, argv)) {
        free(a.rest);
        return FLAME_EXIT_CONFIG;
    }
    if (a.help) {
        fputs(usage, stdout);
        free(a.rest);
        return FLAME_EXIT_OK;
    }
    run_state s = {0};
    int status;
    char path[4096], err[4200];
    s.ops = pick_backend(a.device, &status);
    if (s.ops && !(s.plugin = plugin_load(a.arch, path, sizeof path, err, sizeof err))) {
        fprintf(stderr, "logits_tool: %s\n", err);
        status = FLAME_EXIT_PLUGIN;
    } else if (s.ops)
        status = run(&s, &a);
    release(&s);
    free(a.rest);
    return status;
}
