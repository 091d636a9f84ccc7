/* flame-generate: text from a checkpoint, one token at a time.
 *   flame-generate --checkpoint DIR/checkpoint/step-N|HF_DIR [--prompt TEXT] [...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint_args.h"
#include "config/cli.h"
#include "errors.h"
#include "generator.h"
#include "trainer.h"
#include "monotonic.h"

static const char usage[] =
    "usage: flame-generate --checkpoint DIR/checkpoint/step-N|HF_DIR [--prompt TEXT]\n"
    "                      [--max_new_tokens N] [--temperature T] [--top_k K] [--top_p P]\n"
    "                      [--seed N] [--num_samples B] [--training.device cpu|cuda]\n"
    "                      [--section.key VALUE ...]\n"
    "\n"
    "Continues the prompt (--prompt, else stdin) with the model of a flame-run\n"
    "checkpoint (its architecture, settings and tokenizer from DIR/config.ini)\n"
    "or of a Hugging Face folder (config.json, the weights, tokenizer.json if any;\n"
    "converted as flame-convert from-hf does, into a temporary folder),\n"
    "token by token through the plugin's decode path: a recurrent state, or a\n"
    "key and value cache. With one sample the text is printed as it comes;\n"
    "B samples (of the same prompt, decoded together) are printed in turn.\n"
    "Generation stops after max_new_tokens or at the tokenizer's EOS. Prefill\n"
    "and decode speeds go to stderr. Exit status: 0 done, 1 runtime failure,\n"
    "2 bad command line, configuration or missing file, 4 plugin not loadable.\n"
    "\n"
    "  --prompt TEXT       the text to continue (default: read from stdin)\n"
    "  --max_new_tokens N  tokens to generate per sample (default 128)\n"
    "  --temperature T     0, the default: greedy (the most likely token); else\n"
    "                      sample from softmax(logits / T)\n"
    "  --top_k K           sample among the K most likely tokens (0: all)\n"
    "  --top_p P           ... among the fewest most likely whose mass reaches P (1: all)\n"
    "  --seed N            the sampling's seed (default 0)\n"
    "  --num_samples B     sequences decoded together (default 1)\n"
    "  -h, --help          this help\n";

typedef struct gen_options {
    const char *prompt, *max_new, *temperature, *top_k, *top_p, *seed, *samples;
} gen_options;

typedef struct gen_settings {
    int max_new, B;
    sampling s;
    unsigned long long seed;
} gen_settings;

static int number(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = text ? strtod(text, &end) : 0;
    if (!text)
        return 0;
    if (end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "flame-generate: %s %s: expected a number from %g to %g\n", flag, text,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_settings(const gen_options *o, gen_settings *g)
{
    double max_new = 128, temperature = 0, top_k = 0, top_p = 1, seed = 0, samples = 1;
    if (number("--max_new_tokens", o->max_new, 1, 1 << 20, &max_new) ||
        number("--temperature", o->temperature, 0, 100, &temperature) ||
        number("--top_k", o->top_k, 0, 1 << 30, &top_k) ||
        number("--top_p", o->top_p, 1e-6, 1, &top_p) ||
        number("--seed", o->seed, 0, 9007199254740992.0, &seed) ||
        number("--num_samples", o->samples, 1, 4096, &samples))
        return FLAME_EXIT_CONFIG;
    *g = (gen_settings){(int)max_new, (int)samples, {temperature, (int)top_k, top_p},
                        (unsigned long long)seed};
    return FLAME_EXIT_OK;
}

/* the prompt: --prompt, else all of stdin (a final newline dropped) */
static char *read_prompt(const char *given)
{
    if (given)
        return strdup(given);
    size_t n = 0, cap = 4096;
    char *text = malloc(cap);
    size_t got;
    while (text && (got = fread(text + n, 1, cap - n - 1, stdin)) > 0)
        if ((n += got) == cap - 1)
            text = realloc(text, cap *= 2);
    if (!text)
        return NULL;
    if (n > 0 && text[n - 1] == '\n')
        n--;
    text[n] = '\0';
    return text;
}

/* one sample's text so far, printing what is new; a UTF-8 character cut by a
 * token boundary waits for the rest of it */
typedef struct text_out {
    tokenizer_ids ids;
    size_t printed;
} text_out;

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

static void print_new(const tokenizer *tok, text_out *t, int final)
{
    tokenizer_text text = {0};
    if (tokenizer_decode(tok, t->ids.ids, t->ids.n, 1, &text) == 0) {
        size_t end = text.n;
        while (!final && end > t->printed && end - t->printed < 4 && end > 0 &&
               ((unsigned char)text.data[end - 1] >= 0xC0 ||
                is_continuation((unsigned char)text.data[end - 1])))
            end--; /* hold back a character that may not be whole yet */
        if (end > t->printed)
            fwrite(text.data + t->printed, 1, end - t->printed, stdout);
        t->printed = end > t->printed ? end : t->printed;
        fflush(stdout);
    }
    free(text.data);
}

typedef struct gen_run {
    generator *g;
    const tokenizer *tok;
    int vocab;
    gen_settings set;
    tokenizer_ids prompt;
    text_out *out; /* [B] */
    int32_t *next; /* [B] */
    int *done;     /* [B]: reached EOS */
    double prefill_s, decode_s;
    int generated;
    int steps; /* decode's passes: the first new token comes with the prefill's last logits */
} gen_run;

/* the prompt's tokens through the model; the first new tokens from the last logits */
static int prefill(gen_run *r, rng *draws, char *err, size_t err_len)
{
    double start = monotonic_seconds();
    const float *logits = NULL;
    int32_t column[r->set.B];
    for (size_t t = 0; t < r->prompt.n; t++) {
        for (int b = 0; b < r->set.B; b++)
            column[b] = r->prompt.ids[t];
        if (generator_feed(r->g, column, &logits, err, err_len))
            return -1;
    }
    for (int b = 0; b < r->set.B; b++)
        r->next[b] = sample_token(logits + (size_t)b * r->vocab, r->vocab, &r->set.s, draws);
    r->prefill_s = monotonic_seconds() - start;
    return 0;
}

/* appends each live sample's next token (a sample whose next is EOS ends);
 * returns the samples still live */
static int append_next(gen_run *r, int live, char *err, size_t err_len)
{
    for (int b = 0; b < r->set.B; b++) {
        if (r->done[b])
            continue;
        if (r->next[b] == r->tok->eos_id) {
            r->done[b] = 1, live--;
            continue;
        }
        tokenizer_ids *ids = &r->out[b].ids;
        int32_t *grown = realloc(ids->ids, (ids->n + 1) * sizeof *grown);
        if (!grown) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        ids->ids = grown;
        ids->ids[ids->n++] = r->next[b];
        if (r->set.B == 1)
            print_new(r->tok, &r->out[b], 0);
    }
    return live;
}

/* new tokens until max_new_tokens or every sample's EOS */
static int decode(gen_run *r, rng *draws, char *err, size_t err_len)
{
    double start = monotonic_seconds();
    int live = r->set.B;
    while ((live = append_next(r, live, err, err_len)) > 0) {
        if (++r->generated == r->set.max_new)
            break;
        const float *logits;
        if (generator_feed(r->g, r->next, &logits, err, err_len))
            return -1;
        r->steps++;
        for (int b = 0; b < r->set.B; b++)
            r->next[b] = sample_token(logits + (size_t)b * r->vocab, r->vocab, &r->set.s, draws);
    }
    r->decode_s = monotonic_seconds() - start;
    return live < 0 ? -1 : 0;
}

static int tokenize_prompt(gen_run *r, const char *text, char *err, size_t err_len)
{
    if (r->tok->bos_id >= 0) {
        r->prompt.ids = malloc(sizeof *r->prompt.ids);
        if (!r->prompt.ids) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        r->prompt.ids[r->prompt.n++] = r->tok->bos_id;
        r->prompt.cap = 1;
    }
    if (tokenizer_encode(r->tok, text, strlen(text), &r->prompt)) {
        snprintf(err, err_len, "out of memory tokenizing the prompt");
        return -1;
    }
    if (r->prompt.n == 0) {
        snprintf(err, err_len, "the prompt is empty and the tokenizer has no BOS to start from: "
                 "give --prompt TEXT");
        return -1;
    }
    return 0;
}

/* the samples after the first's stream (B > 1: each in turn), then the speeds */
static void report(const gen_run *r, const char *prompt)
{
    for (int b = 0; r->set.B > 1 && b < r->set.B; b++) {
        text_out t = r->out[b];
        t.printed = 0;
        printf("--- sample %d ---\n%s", b + 1, prompt);
        print_new(r->tok, &t, 1);
        putchar('\n');
    }
    if (r->set.B == 1) {
        text_out t = r->out[0];
        print_new(r->tok, &t, 1);
        putchar('\n');
    }
    fprintf(stderr, "flame-generate: prefill %zu tokens x %d in %.3f s (%.1f tokens/s); decode "
            "%d steps x %d in %.3f s (%.1f tokens/s)\n", r->prompt.n, r->set.B, r->prefill_s,
            r->prompt.n * r->set.B / (r->prefill_s > 0 ? r->prefill_s : 1e-9), r->steps, r->set.B,
            r->decode_s, (double)r->steps * r->set.B / (r->decode_s > 0 ? r->decode_s : 1e-9));
}

static int generate(const trainer_model *m, const gen_settings *set, const char *text)
{
    char err[1024];
    gen_run r = {.tok = m->tok, .vocab = (int)m->plugin->vocab_size(m->model), .set = *set};
    rng draws = {set->seed};
    r.out = calloc((size_t)set->B, sizeof *r.out);
    r.next = calloc((size_t)set->B, sizeof *r.next);
    r.done = calloc((size_t)set->B, sizeof *r.done);
    int rc = r.out && r.next && r.done ? 0 : -1;
    if (rc)
        snprintf(err, sizeof err, "out of memory");
    if (rc == 0)
        rc = tokenize_prompt(&r, text, err, sizeof err);
    int status = rc ? FLAME_EXIT_CONFIG : FLAME_EXIT_OK;
    if (rc == 0 && generator_open(&r.g, m->plugin, m->model, m->ops, set->B,
                                  (int)r.prompt.n + set->max_new, err, sizeof err))
        rc = -1, status = FLAME_EXIT_CONFIG;
    if (rc == 0 && set->B == 1)
        fputs(text, stdout); /* the continuation streams after it */
    if (rc == 0 && (prefill(&r, &draws, err, sizeof err) || decode(&r, &draws, err, sizeof err)))
        rc = -1, status = FLAME_EXIT_RUNTIME;
    if (rc == 0)
        report(&r, text);
    else
        fprintf(stderr, "flame-generate: %s\n", err);
    generator_close(r.g);
    for (int b = 0; r.out && b < set->B; b++)
        free(r.out[b].ids.ids);
    free(r.out);
    free(r.next);
    free(r.done);
    free(r.prompt.ids);
    return status;
}

int main(int argc, char **argv)
{
    int status = checkpoint_args_help(argc, argv, usage);
    if (status >= 0)
        return status;
    gen_options o = {0};
    const checkpoint_flag flags[] = {
        {"--prompt", NULL, &o.prompt},        {"--max_new_tokens", NULL, &o.max_new},
        {"--temperature", NULL, &o.temperature}, {"--top_k", NULL, &o.top_k},
        {"--top_p", NULL, &o.top_p},          {"--seed", NULL, &o.seed},
        {"--num_samples", NULL, &o.samples}};
    static checkpoint_args a;
    gen_settings set;
    argv[0] = "flame-generate";
    status = checkpoint_args_parse(&a, argc, argv, flags, sizeof flags / sizeof flags[0],
                                       NULL, 0);
    if (status != FLAME_EXIT_OK || (status = read_settings(&o, &set)) != FLAME_EXIT_OK)
        return status;
    /* activations for one token of each sample; no validation data */
    char batch[16];
    snprintf(batch, sizeof batch, "%d", set.B);
    const char *shape[] = {"--training.batch_size", batch, "--training.seq_len", "1",
                           "--validation.enable", "false"};
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++)
        if (checkpoint_args_add(&a, shape[i]))
            return FLAME_EXIT_CONFIG;
    const cli_program prog = {"flame-generate", usage, NULL, 0};
    const flame_plugin *plugin;
    flame_config *cfg;
    if ((status = cli_load(&prog, a.argc, a.argv, &plugin, &cfg)) != FLAME_EXIT_OK || !cfg)
        return status;
    trainer *t = trainer_open(plugin, cfg, TRAINER_GENERATE, &status);
    char *text = t ? read_prompt(o.prompt) : NULL;
    if (t && !text)
        fprintf(stderr, "flame-generate: out of memory reading the prompt\n"), status = 1;
    if (text) {
        trainer_model m = trainer_get_model(t);
        status = generate(&m, &set, text);
    }
    free(text);
    trainer_close(t);
    config_destroy(cfg);
    return status;
}
