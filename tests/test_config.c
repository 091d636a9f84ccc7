/* The configuration store: defaults, INI and JSON files, the command line, their
 * priorities in any load order, one-line errors naming file:line, key and the
 * expected type, the written INI reading back to the same values, ignored options
 * reported once, and the plugin's view of [model]. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, open_memstream, fork */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_model_config.h"
#include "testing.h"

static char dir[256];
static int n_files;


/* writes text to a new file named NAME in the temporary folder; returns its path */
static const char *write_file(const char *name, const char *text)
{
    static char paths[64][512];
    char *p = paths[n_files++ % 64];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* each needle must be in err, which must be one line */
#define CHECK_ERR(rc, err, ...)                                                        \
    do {                                                                               \
        const char *needles_[] = {__VA_ARGS__};                                        \
        CHECK((rc) == -1, "expected an error, got rc %d", (rc));                       \
        CHECK(!strchr((err), '\n'), "error is not one line: %s", (err));               \
        for (size_t k_ = 0; k_ < sizeof needles_ / sizeof *needles_; k_++)             \
            CHECK(contains((err), needles_[k_]), "error \"%s\" lacks \"%s\"", (err),  \
                  needles_[k_]);                                                       \
    } while (0)

static int apply(flame_config *cfg, char *err, size_t n, int argc, const char **args)
{
    char *argv[32];
    argv[0] = "flame-run";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    return config_apply_args(cfg, argc + 1, argv, err, n);
}
#define APPLY(cfg, err, ...)                                                           \
    apply(cfg, err, sizeof err, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)), \
          (const char *[]){__VA_ARGS__})

static void test_defaults(void)
{
    flame_config *cfg = fake_model_config();
    CHECK(config_get_int(cfg, "training", "steps") == 10000, "steps default");
    CHECK(config_get_int(cfg, "training", "batch_size") == 8, "batch_size default");
    CHECK(config_get_float(cfg, "optimizer", "lr") == 8e-4, "lr default");
    CHECK(config_get_float(cfg, "lr_scheduler", "lr_min") == 0.0, "lr_min default");
    CHECK(str_eq(config_get_string(cfg, "job", "dump_folder"), "exp/flame"), "dump_folder");
    CHECK(str_eq(config_get_string(cfg, "optimizer", "name"), "AdamW"), "optimizer name");
    CHECK(config_get_bool(cfg, "job", "print_args") == 0, "print_args default");
    CHECK(!config_is_set(cfg, "training", "dataset"), "dataset unset");
    CHECK(config_get_string(cfg, "training", "dataset") == NULL, "unset string is NULL");
    CHECK(!config_is_set(cfg, "lr_scheduler", "decay_ratio"), "decay_ratio unset");
    CHECK(config_get_float(cfg, "lr_scheduler", "decay_ratio") == 0.0, "unset float is 0");
    CHECK(config_is_set(cfg, "model", "tokenizer_path"), "core [model] keys kept");
    CHECK(config_get_int(cfg, "model", "hidden_size") == 64, "plugin default");
    CHECK(config_get_bool(cfg, "model", "use_gk") == 1, "plugin bool default");
    CHECK(!config_is_set(cfg, "nosuch", "key") && !config_is_set(cfg, "model", "nosuch"),
          "undeclared is not set");
    config_destroy(cfg);
}

/* a line longer than inih's line buffer (200 bytes) is read whole, as a
 * dataset list of many files makes it, its comment after " ;" dropped */
static void test_long_line(void)
{
    char text[400], want[301];
    snprintf(text, sizeof text, "[training]\ndataset = %0300d  ; %s\nsteps = 7\n", 0, "a comment");
    memset(want, '0', 300);
    want[300] = '\0';
    const char *p = write_file("long.ini", text);
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    int rc = config_load_job_file(cfg, p, err, sizeof err);
    CHECK(rc == 0, "long line: %s", err);
    CHECK(str_eq(config_get_string(cfg, "training", "dataset"), want), "the long value whole");
    CHECK(config_get_int(cfg, "training", "steps") == 7, "the line after it");
    config_destroy(cfg);
}

static void test_ini_values(void)
{
    const char *p = write_file("values.ini",
                               "\xef\xbb\xbf; a job\r\n"
                               "# another comment\n"
                               "[training]\r\n"
                               "steps = 300\n"
                               "  batch_size = 4   ; indented, with a comment\n"
                               "dataset: data/a b.txt\n"
                               "max_norm = 0.5\n"
                               "\n"
                               "[ optimizer ]\n"
                               "lr = 3e-3\n"
                               "[job]\n"
                               "print_args = YES\n"
                               "description = \"  spaced  \"\n"
                               "[model]\n"
                               "hidden_size = 128\n"
                               "use_gk = off\n"
                               "attn_mode = fused_chunk\n");
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    int rc = config_load_job_file(cfg, p, err, sizeof err);
    CHECK(rc == 0, "load: %s", err);
    CHECK(config_get_int(cfg, "training", "steps") == 300, "steps");
    CHECK(config_get_int(cfg, "training", "batch_size") == 4, "indented key with comment");
    CHECK(str_eq(config_get_string(cfg, "training", "dataset"), "data/a b.txt"), "key: value");
    CHECK(config_get_float(cfg, "training", "max_norm") == 0.5, "max_norm");
    CHECK(config_get_float(cfg, "optimizer", "lr") == 3e-3, "section name with blanks");
    CHECK(config_get_bool(cfg, "job", "print_args") == 1, "YES is true");
    CHECK(str_eq(config_get_string(cfg, "job", "description"), "  spaced  "), "quoted string");
    CHECK(config_get_int(cfg, "model", "hidden_size") == 128, "model key from job INI");
    CHECK(config_get_bool(cfg, "model", "use_gk") == 0, "off is false");
    CHECK(str_eq(config_get_string(cfg, "model", "attn_mode"), "fused_chunk"), "attn_mode");
    config_destroy(cfg);
}

/* priority: command line > job INI > model file > default, whatever the order */
static void test_priority(void)
{
    const char *model_ini = write_file("model.ini",
                                       "[model]\n"
                                       "hidden_size = 256\n"
                                       "expand_k = 0.25\n"
                                       "attn_mode = from_model\n"
                                       "use_gk = false\n"
                                       "[training]\n"
                                       "steps = 1\n"
                                       "[unknown_to_us]\n"
                                       "whatever = 1\n");
    const char *model_json = write_file("model.json",
                                        "{\n"
                                        "  \"hidden_size\": 256,\n"
                                        "  \"expand_k\": 0.25,\n"
                                        "  \"attn_mode\": \"from_model\",\n"
                                        "  \"use_gk\": false\n"
                                        "}\n");
    const char *job = write_file("job.ini",
                                 "[model]\n"
                                 "hidden_size = 128\n"
                                 "expand_k = 0.75\n"
                                 "[training]\n"
                                 "steps = 300\n"
                                 "seq_len = 64\n");
    const char *models[2] = {model_ini, model_json};
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int m = 0; m < 2; m++)
        for (int o = 0; o < 6; o++) {
            flame_config *cfg = fake_model_config();
            char err[1024] = "";
            for (int k = 0; k < 3; k++) {
                int rc = 0;
                switch (orders[o][k]) {
                case 0:
                    rc = config_load_model_file(cfg, models[m], FAKE_FORMATS, N_FAKE_FORMATS, err,
                                                sizeof err);
                    break;
                case 1: rc = config_load_job_file(cfg, job, err, sizeof err); break;
                case 2: rc = APPLY(cfg, err, "--model.hidden_size", "512", "--training.seq_len=32");
                        break;
                }
                CHECK(rc == 0, "model %d order %d step %d: %s", m, o, k, err);
            }
            CHECK(config_get_int(cfg, "model", "hidden_size") == 512, "CLI wins (%d,%d)", m, o);
            CHECK(config_get_int(cfg, "training", "seq_len") == 32, "CLI over job (%d,%d)", m, o);
            CHECK(config_get_float(cfg, "model", "expand_k") == 0.75, "job over model (%d,%d)", m,
                  o);
            CHECK(str_eq(config_get_string(cfg, "model", "attn_mode"), "from_model"),
                  "model over default (%d,%d)", m, o);
            CHECK(config_get_bool(cfg, "model", "use_gk") == 0, "model bool (%d,%d)", m, o);
            CHECK(config_get_int(cfg, "training", "steps") == 300,
                  "model INI's other sections ignored (%d,%d)", m, o);
            CHECK(config_get_int(cfg, "training", "batch_size") == 8, "default (%d,%d)", m, o);
            config_destroy(cfg);
        }
}

static void test_command_line(void)
{
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    int rc = APPLY(cfg, err, "--arch", "gla", "--config", "some/job.ini", "-h", "--job.print_args",
                   "--training.steps=7", "--model.use_gk", "off", "--optimizer.lr", "-1e-3",
                   "--training.dataset", "x.txt", "--training.compile");
    CHECK(rc == 0, "apply: %s", err);
    CHECK(config_get_bool(cfg, "job", "print_args") == 1, "bare bool before an option");
    CHECK(config_get_int(cfg, "training", "steps") == 7, "--k=v");
    CHECK(config_get_bool(cfg, "model", "use_gk") == 0, "bool word consumed");
    CHECK(config_get_float(cfg, "optimizer", "lr") == -1e-3, "negative value");
    CHECK(str_eq(config_get_string(cfg, "training", "dataset"), "x.txt"), "string");
    CHECK(config_get_bool(cfg, "training", "compile") == 1, "bare bool at the end");
    CHECK(str_eq(config_get_string(cfg, "job", "config_file"), "some/job.ini"),
          "--config recorded");
    rc = APPLY(cfg, err, "--job.config_file", "other.ini", "--job.print_args=no",
               "--training.dataset=a=b");
    CHECK(rc == 0, "apply: %s", err);
    CHECK(str_eq(config_get_string(cfg, "job", "config_file"), "other.ini"),
          "--job.config_file recorded");
    CHECK(config_get_bool(cfg, "job", "print_args") == 0, "--bool=no");
    CHECK(str_eq(config_get_string(cfg, "training", "dataset"), "a=b"), "= in value");
    config_destroy(cfg);
}

static void test_json(void)
{
    const char *p = write_file("gla.json",
                               "{\n"
                               "  \"architectures\": [\"GLAForCausalLM\"],\n"
                               "  \"attn_mode\": \"fused_recurrent\",\n"
                               "  \"clamp_min\": null,\n"
                               "  \"expand_k\": 1,\n"
                               "  \"hidden_size\": 1024.0,\n"
                               "  \"model_type\": \"gla\",\n"
                               "  \"torch_dtype\": \"bfloat16\",\n"
                               "  \"transformers_version\": \"4.45.0\",\n"
                               "  \"use_gk\": false,\n"
                               "  \"fuse_norm\": true,\n"
                               "  \"auto_map\": {\"AutoConfig\": \"x\"},\n"
                               "  \"_name_or_path\": \"fla-hub/gla\"\n"
                               "}\n");
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    int rc = APPLY(cfg, err, "--model.clamp_min", "-3.5");
    CHECK(rc == 0, "apply: %s", err);
    rc = config_load_model_file(cfg, p, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err);
    CHECK(rc == 0, "load json: %s", err);
    CHECK(config_get_int(cfg, "model", "hidden_size") == 1024, "integral real as INT");
    CHECK(config_get_float(cfg, "model", "expand_k") == 1.0, "integer as FLOAT");
    CHECK(config_get_bool(cfg, "model", "use_gk") == 0, "JSON false");
    CHECK(str_eq(config_get_string(cfg, "model", "attn_mode"), "fused_recurrent"), "string");
    CHECK(config_get_float(cfg, "model", "clamp_min") == -3.5, "null leaves the value");
    config_destroy(cfg);

    cfg = fake_model_config();
    rc = config_load_model_file(cfg, p, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err);
    CHECK(rc == 0 && !config_is_set(cfg, "model", "clamp_min"), "null leaves it unset");
    /* the path may be the store's own [model] config text */
    rc = APPLY(cfg, err, "--model.config", p);
    CHECK(rc == 0, "apply: %s", err);
    rc = config_load_model_file(cfg, config_get_string(cfg, "model", "config"), FAKE_FORMATS,
                                N_FAKE_FORMATS, err,
                                sizeof err);
    CHECK(rc == 0, "load from own value: %s", err);
    /* no formats: model_type is not checked */
    rc = config_load_model_file(cfg, p, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "no formats: %s", err);
    config_destroy(cfg);
}

/* one INI file with one bad line; returns config_load_job_file's result */
static int load_bad_ini(const char *name, const char *text, char *err, size_t n)
{
    const char *p = write_file(name, text);
    flame_config *cfg = fake_model_config();
    int rc = config_load_job_file(cfg, p, err, n);
    config_destroy(cfg);
    return rc;
}

static int load_bad_json(const char *name, const char *text, const flame_hf_format *formats,
                         char *err, size_t n)
{
    const char *p = write_file(name, text);
    flame_config *cfg = fake_model_config();
    int rc = config_load_model_file(cfg, p, formats, formats ? N_FAKE_FORMATS : 0, err, n);
    config_destroy(cfg);
    return rc;
}

/* a foreign format's config: renamed and nested keys set [model] keys; keys
 * that set none are passed over, or refused unless they hold the one value
 * accepted; a key of no format's map stays unknown */
static void test_json_format_keys(void)
{
    const char *p = write_file("foreign.json",
                               "{\"model_type\": \"foreign\", \"width\": 96,\n"
                               " \"rope\": {\"theta\": 2.5, \"kind\": \"plain\"},\n"
                               " \"bias\": false, \"dropout\": 0.1, \"use_gk\": false, \"shift\": 0.0,\n"
                               " \"limit\": [0.0, Infinity], \"attn_mode\": \"NaN \\\"Infinity\\\\\"}\n");
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    int rc = config_load_model_file(cfg, p, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err);
    CHECK(rc == 0, "foreign format: %s", err);
    CHECK(config_get_int(cfg, "model", "hidden_size") == 96, "width read as hidden_size");
    CHECK(config_get_float(cfg, "model", "expand_k") == 2.5, "rope.theta read as expand_k");
    CHECK(config_get_bool(cfg, "model", "use_gk") == 0, "a key of the same name");
    /* Python's words for non-finite floats are read outside strings only */
    CHECK(strcmp(config_get_string(cfg, "model", "attn_mode"), "NaN \"Infinity\\") == 0,
          "a string holding the words, an escaped quote and a backslash: %s",
          config_get_string(cfg, "model", "attn_mode"));
    config_destroy(cfg);

    /* two names of one key that agree; a list of whole numbers into a string */
    p = write_file("lists.json", "{\"model_type\": \"foreign\", \"width\": 32, \"size\": {\"width\": 32},\n"
                                 " \"attn_mode\": [1, 6, 11]}\n");
    cfg = fake_model_config();
    rc = config_load_model_file(cfg, p, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err);
    CHECK(rc == 0, "two names that agree, a list: %s", err);
    CHECK(config_get_int(cfg, "model", "hidden_size") == 32, "width and size.width as hidden_size");
    CHECK(strcmp(config_get_string(cfg, "model", "attn_mode"), "1, 6, 11") == 0,
          "a list read as its numbers separated by commas: %s", config_get_string(cfg, "model", "attn_mode"));
    config_destroy(cfg);

    static const struct {
        const char *file, *text, *want1, *want2;
    } bad[] = {
        {"disagree.json", "{\"model_type\": \"foreign\", \"width\": 32,\n\"size\": {\"width\": 48}}",
         "disagree.json:", "size.width = 48, but an earlier key gave [model] hidden_size = 32"},
        {"words.json", "{\"model_type\": \"foreign\",\n\"attn_mode\": [1, \"two\"]}", "words.json:2:",
         "expected a string or a list of whole numbers"},
        {"only.json", "{\"model_type\": \"foreign\",\n\"bias\": true}", "only.json:2:",
         "bias = true: only false"},
        {"shift.json", "{\"model_type\": \"foreign\",\n\"shift\": 0.5}", "shift.json:2:",
         "shift = 0.5: only 0 is supported"},
        {"nested.json", "{\"model_type\": \"foreign\",\n\"rope\": {\"kind\": \"yarn\"}}",
         "nested.json:2:", "rope.kind = \"yarn\": only \"plain\""},
        {"inner.json", "{\"model_type\": \"foreign\",\n\"rope\": {\"scale\": 2}}", "inner.json:2:",
         "unknown key [model] rope.scale"},
        {"limit.json", "{\"model_type\": \"foreign\",\n\"limit\": [0.0, -Infinity]}", "limit.json:2:",
         "only [0.0, Infinity] is supported"},
        {"nan.json", "{\"model_type\": \"foreign\",\n\"width\": NaN}", "nan.json:2:",
         "expected an integer"},
        {"word.json", "{\"model_type\": \"foreign\",\n\"limit\": [0.0, Infinityx]}", "word.json:2:",
         "invalid JSON"},
        /* the plugin's own format has no map: the foreign names are unknown there */
        {"own.json", "{\"model_type\": \"gla\",\n\"width\": 96}", "own.json:2:",
         "unknown key [model] width"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = load_bad_json(bad[i].file, bad[i].text, FAKE_FORMATS, err, sizeof err);
        CHECK_ERR(rc, err, bad[i].want1, bad[i].want2);
    }
}

/* a TOML job file: typed values, arrays as comma lists, the line of each
 * value, and the errors of a file that is no TOML or names no setting */
static void test_toml(void)
{
    const char *p = write_file("job.toml", "# fla's style\n[training]\nsteps = 1_000\n"
                                           "dataset = [\"a.txt\", \"b.jsonl\"]\nmax_norm = 0.5\n"
                                           "varlen = true\n\n[model]\nattn_mode = 'fused'\n");
    flame_config *cfg = fake_model_config();
    char err[1024] = "", peek[64] = "";
    int rc = config_load_job_file(cfg, p, err, sizeof err);
    CHECK(rc == 0, "toml: %s", err);
    CHECK(config_get_int(cfg, "training", "steps") == 1000, "1_000 is 1000");
    CHECK(strcmp(config_get_string(cfg, "training", "dataset"), "a.txt,b.jsonl") == 0,
          "an array as its items separated by commas: %s", config_get_string(cfg, "training", "dataset"));
    CHECK(config_get_float(cfg, "training", "max_norm") == 0.5, "a float");
    CHECK(config_get_bool(cfg, "training", "varlen") == 1, "a boolean");
    CHECK(strcmp(config_get_string(cfg, "model", "attn_mode"), "fused") == 0, "a literal string");
    config_destroy(cfg);
    CHECK(config_peek_job_file(p, "model", "attn_mode", peek, sizeof peek) == 1 &&
              strcmp(peek, "fused") == 0, "peek into TOML: %s", peek);

    static const struct {
        const char *file, *text, *want1, *want2;
    } bad[] = {
        {"syntax.toml", "[training]\nsteps = 3\nseq_len = = 4\n", "syntax.toml:3:", "invalid TOML"},
        {"twice.toml", "[training]\nsteps = 3\nsteps = 4\n", "twice.toml:3:", "invalid TOML"},
        {"unknown.toml", "[training]\nsteps = 3\n\nstepz = 4\n", "unknown.toml:4:",
         "unknown key [training] stepz (did you mean steps?)"},
        {"section.toml", "[training]\nsteps = 3\n[trainin]\nseq_len = 4\n", "section.toml:4:",
         "unknown section [trainin]"},
        {"type.toml", "[training]\nsteps = \"ten\"\n", "type.toml:2:", "expected an integer"},
        {"outside.toml", "steps = 3\n", "outside.toml:1:", "steps is outside any [section]"},
        {"nested.toml", "[training]\nsteps = 3\n[training.inner]\nx = 1\n", "nested.toml:3:",
         "[training] inner: a table inside a table is no flame setting"},
        {"arrays.toml", "[training]\ndataset = [[\"a\"], [\"b\"]]\n", "arrays.toml:2:",
         "an array holding arrays or tables"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_file(bad[i].file, bad[i].text);
        cfg = fake_model_config();
        rc = config_load_job_file(cfg, p, err, sizeof err);
        config_destroy(cfg);
        CHECK_ERR(rc, err, bad[i].want1, bad[i].want2);
    }
}

static void test_errors(void)
{
    char err[1024];
    int rc;
    rc = load_bad_ini("int.ini", "; c\n[training]\nbatch_size = 4\nsteps = ten\n", err, sizeof err);
    CHECK_ERR(rc, err, "int.ini:4:", "[training] steps", "\"ten\"", "expected an integer");
    rc = load_bad_ini("big.ini", "[training]\nseed = 99999999999999999999\n", err, sizeof err);
    CHECK_ERR(rc, err, "big.ini:2:", "[training] seed", "99999999999999999999",
              "expected an integer");
    rc = load_bad_ini("frac.ini", "[training]\nsteps = 1.5\n", err, sizeof err);
    CHECK_ERR(rc, err, "frac.ini:2:", "steps", "expected an integer");
    rc = load_bad_ini("float.ini", "[optimizer]\n\nlr = fast\n", err, sizeof err);
    CHECK_ERR(rc, err, "float.ini:3:", "[optimizer] lr", "\"fast\"", "expected a finite number");
    rc = load_bad_ini("inf.ini", "[optimizer]\nlr = inf\n", err, sizeof err);
    CHECK_ERR(rc, err, "inf.ini:2:", "[optimizer] lr", "expected a finite number");
    rc = load_bad_ini("bool.ini", "[job]\nprint_args = maybe\n", err, sizeof err);
    CHECK_ERR(rc, err, "bool.ini:2:", "[job] print_args", "\"maybe\"", "expected a boolean");
    rc = load_bad_ini("ign.ini", "[training]\ncompile = sometimes\n", err, sizeof err);
    CHECK_ERR(rc, err, "ign.ini:2:", "[training] compile", "expected a boolean");
    rc = load_bad_ini("key.ini", "[training]\nsteps = 1\nstepz = 10\n", err, sizeof err);
    CHECK_ERR(rc, err, "key.ini:3:", "unknown key [training] stepz", "(did you mean steps?)");
    rc = load_bad_ini("key2.ini", "[training]\nzzzzzzzz = 10\n", err, sizeof err);
    CHECK_ERR(rc, err, "key2.ini:2:", "unknown key [training] zzzzzzzz");
    CHECK(!contains(err, "did you mean"), "no suggestion when nothing is close: %s", err);
    rc = load_bad_ini("sect.ini", "[training]\nsteps = 1\n\n[trainin]\n", err, sizeof err);
    CHECK_ERR(rc, err, "sect.ini:4:", "unknown section [trainin]", "did you mean training?");
    rc = load_bad_ini("mal.ini", "[training]\nsteps = 1\njust some words\nstepz = 1\n", err,
                      sizeof err);
    CHECK_ERR(rc, err, "mal.ini:3:", "malformed", "just some words");
    rc = load_bad_ini("hdr.ini", "[training\nsteps = 1\n", err, sizeof err);
    CHECK_ERR(rc, err, "hdr.ini:1:", "malformed");
    rc = load_bad_ini("top.ini", "; c\nsteps = 1\n[training]\n", err, sizeof err);
    CHECK_ERR(rc, err, "top.ini:2:", "steps", "outside any [section]");
    rc = load_bad_ini("twice.ini", "[training]\nsteps = 1\nseed = 2\nsteps = 3\n", err, sizeof err);
    CHECK_ERR(rc, err, "twice.ini:4:", "[training] steps given twice", "first on line 2");
    flame_config *cfg = fake_model_config();
    /* no config: an endless line of NUL bytes, and a JSON larger than any config */
    rc = config_load_job_file(cfg, "/dev/zero", err, sizeof err);
    CHECK_ERR(rc, err, "/dev/zero:1:", "NUL byte");
    char zero_json[600];
    snprintf(zero_json, sizeof zero_json, "%s/zero.json", dir);
    CHECK(symlink("/dev/zero", zero_json) == 0, "symlink %s", zero_json);
    rc = config_load_model_file(cfg, zero_json, NULL, 0, err, sizeof err);
    CHECK_ERR(rc, err, "zero.json", "larger than");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such.ini", dir);
    rc = config_load_job_file(cfg, missing, err, sizeof err);
    CHECK_ERR(rc, err, "no-such.ini: cannot open: No such file or directory");
    rc = config_load_model_file(cfg, missing, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "no-such.ini: cannot open:");

    /* the command line */
    rc = APPLY(cfg, err, "--training.steps", "ten");
    CHECK_ERR(rc, err, "command line", "[training] steps", "\"ten\"", "expected an integer");
    rc = APPLY(cfg, err, "--training.stepz", "10");
    CHECK_ERR(rc, err, "command line", "--training.stepz", "unknown key [training] stepz",
              "(did you mean steps?)");
    rc = APPLY(cfg, err, "--trainign.steps=10");
    CHECK_ERR(rc, err, "command line", "unknown section [trainign]", "did you mean training?");
    rc = APPLY(cfg, err, "--training.steps", "10", "stray");
    CHECK_ERR(rc, err, "command line", "\"stray\"");
    rc = APPLY(cfg, err, "--steps", "10");
    CHECK_ERR(rc, err, "command line", "--steps");
    rc = APPLY(cfg, err, "--training.steps");
    CHECK_ERR(rc, err, "command line", "--training.steps", "needs a value");
    rc = APPLY(cfg, err, "--training.steps", "--training.seq_len", "4");
    CHECK_ERR(rc, err, "--training.steps", "needs a value");
    rc = APPLY(cfg, err, "--job.print_args", "maybe");
    CHECK_ERR(rc, err, "\"maybe\"");
    rc = APPLY(cfg, err, "--job.print_args=maybe");
    CHECK_ERR(rc, err, "[job] print_args", "\"maybe\"", "expected a boolean");
    rc = APPLY(cfg, err, "--training.dataset", "a\nb", "--training.steps", "x\ny");
    CHECK_ERR(rc, err, "\"x\\ny\"");
    config_destroy(cfg);

    /* JSON */
    rc = load_bad_json("syntax.json", "{\n  \"hidden_size\": 12,\n  oops\n}\n", FAKE_FORMATS, err,
                       sizeof err);
    CHECK_ERR(rc, err, "syntax.json:3:", "invalid JSON");
    CHECK(contains(err, "syntax.json:3:3") || contains(err, "syntax.json:3:4") ||
              contains(err, "syntax.json:3:5") || contains(err, "syntax.json:3:6"),
          "line:column in %s", err);
    rc = load_bad_json("type.json", "{\n  \"model_type\": \"gla\",\n  \"hidden_size\": \"big\"\n}\n",
                       FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "type.json:3:", "[model] hidden_size", "\"big\"", "expected an integer");
    rc = load_bad_json("real.json", "{\"hidden_size\": 2.5}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "real.json", "[model] hidden_size", "2.5", "expected an integer");
    rc = load_bad_json("jbool.json", "{\n\"use_gk\": 1\n}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "jbool.json:2:", "[model] use_gk", "expected a boolean");
    rc = load_bad_json("jfloat.json", "{\n\"expand_k\": true\n}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "jfloat.json:2:", "[model] expand_k", "expected a finite number");
    rc = load_bad_json("jstr.json", "{\n\"attn_mode\": 3\n}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "jstr.json:2:", "[model] attn_mode", "expected a string");
    rc = load_bad_json("jkey.json", "{\n\"model_type\": \"gla\",\n\"hiden_size\": 1\n}", FAKE_FORMATS, err,
                       sizeof err);
    CHECK_ERR(rc, err, "jkey.json:3:", "unknown key [model] hiden_size",
              "(did you mean hidden_size?)");
    /* a key with a line break and a control byte stays on the error's one line, quoted */
    rc = load_bad_json("raw.json", "{\"a\\nb\\u0001\": 1}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "raw.json", "unknown key [model] \"a\\nb\\x01\"");
    rc = load_bad_json("jnull.json", "{\"nonsense_key_x\": null}", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "jnull.json", "unknown key [model] nonsense_key_x");
    rc = load_bad_json("mt.json", "{\n\"hidden_size\": 8,\n\"model_type\": \"retnet\"\n}", FAKE_FORMATS,
                       err, sizeof err);
    CHECK_ERR(rc, err, "mt.json:3:", "model_type", "\"retnet\"", "\"gla\"");
    rc = load_bad_json("arr.json", "[1, 2]", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "arr.json", "object");
    rc = load_bad_json("dup.json", "{\"hidden_size\": 1,\n\"hidden_size\": 2}", FAKE_FORMATS, err,
                       sizeof err);
    CHECK_ERR(rc, err, "dup.json:2:", "invalid JSON");
    rc = load_bad_json("minimodel.ini", "[model]\nhidden_size = wide\n", FAKE_FORMATS, err, sizeof err);
    CHECK_ERR(rc, err, "minimodel.ini:2:", "[model] hidden_size", "expected an integer");
    rc = load_bad_json("minikey.ini", "[job]\nfoo = 1\n[model]\nhiddn_size = 1\n", FAKE_FORMATS, err,
                       sizeof err);
    CHECK_ERR(rc, err, "minikey.ini:4:", "unknown key [model] hiddn_size", "hidden_size?");
}

static char *capture(void (*fn)(const flame_config *, FILE *), const flame_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(cfg, f);
    fclose(f);
    return buf;
}

static void write_ini_fn(const flame_config *cfg, FILE *f)
{
    CHECK(config_write_ini(cfg, f) == 0, "write_ini");
}

/* every declared option reads the same in a and b */
static void check_same(const flame_config *a, const flame_config *b)
{
    for (int s = 0; s <= n_core_sections; s++) {
        const char *sec = s < n_core_sections ? core_sections[s].name : "model";
        const flame_option *opts = s < n_core_sections ? core_sections[s].options : fake_model;
        int n = s < n_core_sections ? core_sections[s].n_options
                                    : (int)(sizeof fake_model / sizeof *fake_model);
        for (int i = 0; i < n; i++) {
            const char *k = opts[i].key;
            CHECK(config_is_set(a, sec, k) == config_is_set(b, sec, k), "[%s] %s set", sec, k);
            switch (opts[i].type) {
            case FLAME_TYPE_INT:
                CHECK(config_get_int(a, sec, k) == config_get_int(b, sec, k), "[%s] %s", sec, k);
                break;
            case FLAME_TYPE_FLOAT:
                CHECK(config_get_float(a, sec, k) == config_get_float(b, sec, k), "[%s] %s", sec,
                      k);
                break;
            case FLAME_TYPE_BOOL:
                CHECK(config_get_bool(a, sec, k) == config_get_bool(b, sec, k), "[%s] %s", sec, k);
                break;
            default:
                CHECK(str_eq(config_get_string(a, sec, k), config_get_string(b, sec, k)),
                      "[%s] %s: \"%s\" vs \"%s\"", sec, k, config_get_string(a, sec, k),
                      config_get_string(b, sec, k));
            }
        }
    }
}

static void test_round_trip(void)
{
    const char *job = write_file("rt.ini", "[optimizer]\nlr = 3e-4\neps = 1e-15\n"
                                           "[lr_scheduler]\ndecay_ratio = 0.2\n");
    flame_config *a = fake_model_config();
    char err[1024] = "";
    CHECK(config_load_job_file(a, job, err, sizeof err) == 0, "%s", err);
    CHECK(APPLY(a, err, "--training.dataset", " lead and trail ", "--job.description",
                "\"quoted\"", "--job.dump_folder", "", "--training.compile",
                "--optimizer.weight_decay", "0.1000000000000000055511151231257827",
                "--model.hidden_size", "-0042", "--model.use_gk", "no", "--training.seed",
                "9223372036854775807", "--model.attn_mode", "a ; not a comment?x",
                "--training.dataset_name", "#hash", "--training.dataset_split", ";semi",
                "--training.mixed_precision_param", "x;y ") == 0,
          "%s", err);
    char *text = capture(write_ini_fn, a);
    CHECK(contains(text, "; clamp_min =\n"), "unset option commented out:\n%s", text);
    CHECK(contains(text, "[training]\n"), "sections written");
    const char *p = write_file("written.ini", text);
    flame_config *b = fake_model_config();
    CHECK(config_load_job_file(b, p, err, sizeof err) == 0, "read back: %s\n%s", err, text);
    /* "a ; x" cannot survive an INI inline comment: every other value must */
    CHECK(APPLY(a, err, "--model.attn_mode", "plain") == 0 &&
              APPLY(b, err, "--model.attn_mode", "plain") == 0,
          "%s", err);
    check_same(a, b);
    CHECK(str_eq(config_get_string(b, "training", "dataset"), " lead and trail "), "blanks kept");
    CHECK(str_eq(config_get_string(b, "job", "description"), "\"quoted\""), "quotes kept");
    /* and again: the written file is stable */
    char *text2 = capture(write_ini_fn, b);
    flame_config *c = fake_model_config();
    p = write_file("written2.ini", text2);
    CHECK(config_load_job_file(c, p, err, sizeof err) == 0, "read back: %s", err);
    check_same(b, c);
    free(text);
    free(text2);
    config_destroy(a);
    config_destroy(b);
    config_destroy(c);
}

static void report_fn(const flame_config *cfg, FILE *f) { config_report_ignored(cfg, f); }
static void help_fn(const flame_config *cfg, FILE *f) { config_print_help(cfg, f); }

static int count(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

static void test_ignored(void)
{
    const char *job = write_file("ign-ok.ini", "[training]\ncompile = true\n"
                                               "[metrics]\nenable_wandb = false\n");
    const char *model = write_file("ign.json", "{\"fuse_norm\": true}");
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    CHECK(config_load_job_file(cfg, job, err, sizeof err) == 0, "%s", err);
    CHECK(config_load_model_file(cfg, model, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err) == 0, "%s", err);
    CHECK(APPLY(cfg, err, "--training.compile", "--training.compile=false") == 0, "%s", err);
    char *out = capture(report_fn, cfg);
    CHECK(count(out, "flame-run: ignoring [training] compile (torch.compile)\n") == 1,
          "compile once:\n%s", out);
    CHECK(count(out, "ignoring [metrics] enable_wandb") == 1, "enable_wandb once:\n%s", out);
    CHECK(count(out, "ignoring [model] fuse_norm") == 1, "plugin's ignored key:\n%s", out);
    CHECK(count(out, "\n") == 3, "nothing else:\n%s", out);
    free(out);
    config_destroy(cfg);
    cfg = fake_model_config();
    out = capture(report_fn, cfg);
    CHECK(out[0] == '\0', "nothing given, nothing reported: %s", out);
    free(out);
    config_destroy(cfg);
}

static void test_model_view_and_help(void)
{
    flame_config *cfg = fake_model_config();
    char err[1024] = "";
    CHECK(APPLY(cfg, err, "--model.hidden_size", "96", "--model.expand_k", "2") == 0, "%s", err);
    flame_model_config v = config_model_view(cfg);
    CHECK(v.get_int(v.ctx, "hidden_size") == 96, "view int");
    CHECK(v.get_float(v.ctx, "expand_k") == 2.0, "view float");
    CHECK(v.get_bool(v.ctx, "use_gk") == 1, "view bool");
    CHECK(str_eq(v.get_string(v.ctx, "attn_mode"), "chunk"), "view string");
    CHECK(str_eq(v.get_string(v.ctx, "tokenizer_path"), "byte"), "core [model] key in view");
    CHECK(!v.is_set(v.ctx, "clamp_min") && v.get_float(v.ctx, "clamp_min") == 0.0, "unset");
    CHECK(!v.is_set(v.ctx, "nope") && v.get_int(v.ctx, "nope") == 0 &&
              v.get_float(v.ctx, "nope") == 0.0 && v.get_bool(v.ctx, "nope") == 0 &&
              v.get_string(v.ctx, "nope") == NULL,
          "undeclared reads as zero");

    char *help = capture(help_fn, cfg);
    CHECK(contains(help, "[training]"), "section header");
    CHECK(contains(help, "  --training.steps INT (default: 10000)"), "option line:\n%s", help);
    CHECK(contains(help, "  --optimizer.lr FLOAT (default: 8e-4)"), "float default");
    CHECK(contains(help, "  --training.dataset STRING (default: none)"), "no default");
    CHECK(contains(help, "  --model.hidden_size INT (default: 64)  width"), "plugin key");
    CHECK(contains(help, "--training.compile BOOL (ignored)"), "ignored marked");
    int longest = 0, cur = 0;
    for (const char *p = help; *p; p++) {
        cur = *p == '\n' ? 0 : cur + 1;
        if (cur > longest)
            longest = cur;
    }
    CHECK(longest <= 100, "help lines wrapped (longest %d)", longest);
    free(help);
    config_destroy(cfg);
}

/* a programming error: getting an undeclared key or a key of another type aborts */
static void expect_abort(int which)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        flame_config *cfg = fake_model_config();
        if (which == 0)
            config_get_int(cfg, "training", "stepz");
        else if (which == 1)
            config_get_string(cfg, "nosection", "x");
        else
            config_get_int(cfg, "training", "dataset");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "getter %d should abort", which);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    test_defaults();
    test_ini_values();
    test_long_line();
    test_priority();
    test_command_line();
    test_json();
    test_json_format_keys();
    test_toml();
    test_errors();
    test_round_trip();
    test_ignored();
    test_model_view_and_help();
    for (int i = 0; i < 3; i++)
        expect_abort(i);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return testing_result("test_config");
}
