/* The configuration store: sections of typed options, filled from (lowest to
 * highest priority) option defaults, the model config file (--model.config: fla
 * JSON or our INI), the job INI (--config / --job.config_file) and the command
 * line (--section.key value). Every value is validated against its option's
 * type when it is set; errors name the file, line and key. */
#ifndef FLAME_CORE_CONFIG_H
#define FLAME_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <flame/config.h>
#include <flame/plugin.h>

typedef struct flame_config flame_config;

typedef struct config_section {
    const char *name;
    const char *help;
    const flame_option *options;
    int n_options;
} config_section;

/* the core's sections (job, model, optimizer, lr_scheduler, training, metrics) */
extern const config_section core_sections[];
extern const int n_core_sections;

flame_config *config_create(void);
void config_destroy(flame_config *cfg);

/* Why an option's declaration cannot be used (its key, type or default), or
 * NULL: the plugin loader asks before config_add_section, which takes only
 * usable ones. */
const char *config_option_problem(const flame_option *opt);

/* Declares a section; a section declared twice (the core's [model] keys, then the
 * plugin's) takes the options of both. */
void config_add_section(flame_config *cfg, const char *section,
                        const flame_option *options, int n_options);

/* Each returns 0, or -1 with one line in err: "FILE:LINE: [section] key: what was expected".
 * A job file is INI, or TOML (core/config/toml_reader.h) when its name ends in .toml. */
int config_load_job_file(flame_config *cfg, const char *path, char *err, size_t err_len);
/* .json: fla/Hugging Face model config; anything else: an INI whose [model] section is read.
 * formats are the plugin's (plugin.h): the JSON's model_type must be one of
 * theirs, and that one's key map applies (a JSON without model_type is read
 * with the first's); with no formats model_type is not checked. */
int config_load_model_file(flame_config *cfg, const char *path, const flame_hf_format *formats,
                           int n_formats, char *err, size_t err_len);
/* --section.key VALUE, --section.key=VALUE, bare --section.key for booleans.
 * Arguments already consumed by the caller (--arch, --config) are skipped. */
int config_apply_args(flame_config *cfg, int argc, char **argv, char *err, size_t err_len);

/* Sets a value as the command line would (the tools record what they resolved,
 * e.g. [job] arch). Returns 0, or -1 with err when the text is not of its type. */
int config_set_string(flame_config *cfg, const char *section, const char *key, const char *text,
                      char *err, size_t err_len);
/* The value of [section] key in a job file (INI or TOML), read before the options that
 * would check it are known (flame-run's --config names its plugin). Returns 1
 * when the file has it, 0 otherwise (a file that cannot be read included: the
 * real load reports that). */
int config_peek_job_file(const char *path, const char *section, const char *key, char *out,
                    size_t out_len);

int config_is_set(const flame_config *cfg, const char *section, const char *key);
int64_t config_get_int(const flame_config *cfg, const char *section, const char *key);
double config_get_float(const flame_config *cfg, const char *section, const char *key);
int config_get_bool(const flame_config *cfg, const char *section, const char *key);
const char *config_get_string(const flame_config *cfg, const char *section, const char *key);

/* the [model] section as a plugin sees it */
flame_model_config config_model_view(const flame_config *cfg);

/* The resolved config as an INI file that --config accepts back. */
int config_write_ini(const flame_config *cfg, FILE *out);
/* Every option of every section with its type, default and help. */
void config_print_help(const flame_config *cfg, FILE *out);
/* One line per ignored option that was given a value, each once. */
void config_report_ignored(const flame_config *cfg, FILE *out);

#endif
