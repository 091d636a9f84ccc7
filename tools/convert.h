/* flame-convert's parts: the subcommands, the tensor files they read and the
 * streaming copy they share. Exit statuses as every flame tool's (core/errors.h). */
#ifndef FLAME_CONVERT_H
#define FLAME_CONVERT_H

#include <stddef.h>

#include <flame/plugin.h>

#include "config/config.h"
#include "rng.h"
#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"

enum { CONVERT_PATH_LEN = 4096, CONVERT_ERR_LEN = 4400 };

int convert_inspect(int argc, char **argv);

/* to-hf without its command line, as flame-run's checkpoint.export_hf calls it */
typedef struct to_hf_args {
    const char *checkpoint; /* DIR/checkpoint/step-N */
    const char *output;     /* the folder to write */
    const char *dtype;      /* float32, else bfloat16 */
    const char *config;     /* NULL: DIR/config.ini, the run's */
    const char *arch;       /* NULL: as config names it */
    const char *tokenizer;  /* NULL: the run's model.tokenizer_path when config is NULL,
                               else none; "none": no tokenizer files */
    const char *format;     /* the model_type to write, one of the plugin's hf_formats;
                               NULL: its own (the first) */
} to_hf_args;
/* Returns an exit status, with err. */
int convert_to_hf_folder(const to_hf_args *a, char *err, size_t err_len);
int convert_to_hf(int argc, char **argv);
int convert_from_hf(int argc, char **argv);
/* from-hf without its command line: the Hugging Face folder `model` into a
 * seed checkpoint, output/checkpoint/step-0, and output/config.ini (the
 * plugin the one that reads its model_type). Returns an exit status, with err. */
int convert_from_hf_folder(const char *model, const char *output, char *err, size_t err_len);

/* ---- command lines: --name VALUE or --name=VALUE ---- */

typedef struct convert_option {
    const char *name;   /* "--output" */
    const char **value; /* set when given */
} convert_option;

/* Fills the options (a table ended by a NULL name); a lone non-option argument
 * goes to *positional (NULL: none allowed). Prints help for -h. Returns -1 to go
 * on, or an exit status (0 after -h, FLAME_EXIT_CONFIG with a line on stderr). */
int convert_parse(const char *command, const char *help, int argc, char **argv,
                  const convert_option *opts, const char **positional);
/* "flame-convert COMMAND: --name is required" and FLAME_EXIT_CONFIG */
int convert_missing(const char *command, const char *name);

/* ---- the tensors of a file or folder ---- */

typedef struct tensor_set {
    int n;                /* files */
    safetensors *files;   /* [n], open */
} tensor_set;

/* path is a .safetensors file; or a folder holding model.safetensors.index.json
 * (the shards it lists), or model.safetensors (and optimizer.safetensors when
 * there is one, as in a flame checkpoint). Returns FLAME_EXIT_OK, or
 * FLAME_EXIT_CONFIG (nothing there) or FLAME_EXIT_DATA (damaged, missing
 * shard) with err; ts is then empty. */
int tensor_set_open(const char *path, tensor_set *ts, char *err, size_t err_len);
void tensor_set_close(tensor_set *ts);

/* ---- from-hf's plan: each tensor of the checkpoint and where it comes from ---- */

typedef struct mapped {
    const safetensors *file;          /* the source; NULL: initialized */
    const safetensors_tensor *tensor;
    char name[512];                   /* fla's name */
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int index;                        /* initialized: the model's parameter it is */
    int transposed;                   /* a 2-D source written transposed (shape is the written one) */
} mapped;

typedef struct plan {
    int n;
    mapped *tensors;                  /* [n], in the order they are written */
} plan;

/* ---- names (convert_names.c) ---- */

/* The plugin's name of the folder's tensor hf into out, by format f's first
 * tensor entry that starts it (none: the same name); 0 when the entry drops it. */
int convert_plugin_name(const flame_hf_format *f, const char *hf, char *out, size_t out_len);
/* the folder's name under format f of the plugin's tensor `name` (the reverse) */
void convert_hf_name(const flame_hf_format *f, const char *name, char *out, size_t out_len);
/* whether format f stores the folder's tensor hf transposed (the plugin's hf_transposed) */
int convert_hf_transposed(const flame_plugin *p, const flame_hf_format *f, const char *hf);
/* m, a tensor of the folder's name hf, marked transposed (its shape turned) when f stores it so */
void convert_mark_transposed(mapped *m, const flame_plugin *p, const flame_hf_format *f, const char *hf);

/* ---- the model: its plugin, resolved [model] settings and parameters ---- */

typedef struct convert_model {
    const flame_plugin *plugin;
    char arch[CONVERT_PATH_LEN]; /* what [job] arch records */
    flame_config *cfg;           /* the core's sections and the plugin's [model] */
    void *model;                 /* built on the CPU op table: parameters declared, nothing reserved */
} convert_model;

/* The plugin arch names (a name or a path); else the one that reads
 * model_type; else the one config_path names (an INI's [job] arch, a JSON's
 * model_type); and the model it builds from config_path (a flame INI's
 * [model], or a JSON of one of the plugin's formats). Returns an exit status,
 * with err; close the model either way. */
int convert_model_open(convert_model *m, const char *arch, const char *model_type,
                       const char *config_path, char *err, size_t err_len);
void convert_model_close(convert_model *m);

/* Replaces the plan (the source's tensors under the plugin's names) by the
 * model's parameters, each the source tensor of its name. strict: every
 * parameter must have one of its shape and every source tensor a place
 * (FLAME_EXIT_DATA naming the first that does not); otherwise a parameter
 * without one is initialized by the plugin's rule, the source's extra tensors
 * dropped, and a table printed of what is copied, initialized and dropped,
 * and why. Returns an exit status, with err. */
int plan_retarget(plan *p, const convert_model *m, int strict, char *err, size_t err_len);

/* ---- streaming ---- */

/* Writes m's source tensor into w converted to out (ST_F32 or ST_BF16; an F32
 * source to F32 is copied byte for byte, bf16 rounds to nearest even), a
 * slice at a time; transposed when m says so (the whole tensor read first).
 * Returns 0, -1 with err when reading fails (damaged data), -2 when writing
 * fails. */
int convert_stream_tensor(safetensors_writer *w, const mapped *m, safetensors_dtype out, char *err,
                          size_t err_len);
/* Writes parameter `index` of the plugin's model drawn by its init rule from
 * r, the draws the core's params_init takes. Returns 0 or -1 with err. */
int convert_stream_init(safetensors_writer *w, const flame_plugin *plugin, const void *model,
                        int index, rng *r, char *err, size_t err_len);
/* Writes nbytes of zeros as the writer's current tensor. Returns 0 or -1 with err. */
int convert_stream_zeros(safetensors_writer *w, size_t nbytes, char *err, size_t err_len);

/* Writes the tokenizer at path (as model.tokenizer_path names it) into dir as
 * a Hugging Face folder holds it (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json), opening it into tok (closed by the caller). Returns
 * an exit status, with err. */
int convert_write_tokenizer(const char *path, const char *dir, tokenizer *tok, char *err,
                            size_t err_len);

/* fp32 to bf16, rounding to nearest even; NaNs stay NaN */
uint16_t convert_f32_to_bf16(float x);

#endif
