/* The configuration store. Each declared option holds at most one value: its
 * text, its parsed form, where it came from and that source's priority. A value
 * replaces the held one only when its source ranks at least as high (defaults <
 * model file < job INI < command line), so the load order does not matter. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup */
#include "config.h"
#include "toml_reader.h"
#include "user_path.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

enum priority { PRIO_DEFAULT, PRIO_MODEL_FILE, PRIO_JOB_FILE, PRIO_COMMAND_LINE };

static const char COMMAND_LINE[] = "command line";

typedef union value {
    int64_t i;
    double f;
    int b;
} value;

typedef struct entry {
    const flame_option *opt;
    int has_value;
    int priority;
    char *text;         /* the value as written (booleans as true/false) */
    value v;
    const char *source; /* NULL (default), COMMAND_LINE or a file in cfg->sources */
    int line;           /* 0 when unknown */
} entry;

typedef struct section {
    char *name;
    entry *entries;
    int n, cap;
} section;

struct flame_config {
    section *sections;
    int n_sections, cap_sections;
    char **sources; /* file names the values point into */
    int n_sources, cap_sources;
};

/* ---- small helpers ---- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "flame: out of memory\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && err_len)
        vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* s in double quotes, control characters escaped (an error stays one line),
 * cut after 80 characters; n >= 16 */
static const char *quoted(const char *s, char *buf, size_t n)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 80 || o + 10 > n) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                        : c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
        if (esc)
            o += (size_t)snprintf(buf + o, n - o, "%s", esc);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* a key or name from the input as it is when it is plain printable text of
 * at most 80 characters, else quoted: an error stays one readable line */
static const char *shown(const char *s, char *buf, size_t n)
{
    size_t len = strlen(s);
    int plain = len <= 80;
    for (size_t i = 0; plain && i < len; i++)
        plain = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '"';
    if (plain) {
        snprintf(buf, n, "%s", s);
        return buf;
    }
    return quoted(s, buf, n);
}

/* "FILE:LINE", "FILE" or "command line" */
static const char *where(const char *source, int line, char *buf, size_t n)
{
    if (line > 0)
        snprintf(buf, n, "%s:%d", source, line);
    else
        snprintf(buf, n, "%s", source);
    return buf;
}

static const char *type_name(flame_type t)
{
    switch (t) {
    case FLAME_TYPE_INT: return "INT";
    case FLAME_TYPE_FLOAT: return "FLOAT";
    case FLAME_TYPE_BOOL: return "BOOL";
    default: return "STRING";
    }
}

static const char *expected(flame_type t)
{
    switch (t) {
    case FLAME_TYPE_INT: return "expected an integer";
    case FLAME_TYPE_FLOAT: return "expected a finite number";
    case FLAME_TYPE_BOOL: return "expected a boolean (true/false, 1/0, yes/no, on/off)";
    default: return "expected a string";
    }
}

/* optimal string alignment distance (edits and swaps of neighbours) */
static int edit_distance(const char *a, const char *b)
{
    enum { MAX = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAX || lb >= MAX)
        return MAX;
    int d[MAX + 1][MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* " (did you mean X?)" for the closest candidate within 2 edits, else "" */
static const char *suggestion(const char *name, const char *const *cands, int n, char *buf,
                              size_t len)
{
    int best = 3;
    const char *pick = NULL;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < best) {
            best = d;
            pick = cands[i];
        }
    }
    if (pick)
        snprintf(buf, len, " (did you mean %s?)", pick);
    else if (len)
        buf[0] = '\0';
    return buf;
}

/* ---- values ---- */

static int parse_bool_word(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* 0, or -1 when text is not of the type (the whole string must be the value) */
static int parse_value(flame_type type, const char *text, value *out)
{
    char *end;
    switch (type) {
    case FLAME_TYPE_INT: {
        if (!*text || isspace((unsigned char)*text))
            return -1;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (*end || errno == ERANGE)
            return -1;
        out->i = x;
        return 0;
    }
    case FLAME_TYPE_FLOAT: {
        if (!*text || isspace((unsigned char)*text))
            return -1;
        double x = strtod(text, &end);
        if (*end || !isfinite(x))
            return -1;
        out->f = x;
        return 0;
    }
    case FLAME_TYPE_BOOL:
        return parse_bool_word(text, &out->b);
    default:
        out->i = 0;
        return 0;
    }
}

static void store(entry *e, const char *text, value v, int priority, const char *source, int line)
{
    if (e->has_value && priority < e->priority)
        return;
    char *copy = xstrdup(e->opt->type == FLAME_TYPE_BOOL ? (v.b ? "true" : "false") : text);
    free(e->text);
    e->text = copy;
    e->v = v;
    e->has_value = 1;
    e->priority = priority;
    e->source = source;
    e->line = line;
}

/* validates text against the option's type, then stores it if its source
 * ranks high enough; a string starting with ~ is taken with it expanded (a
 * path in a config file or after --key= reaches no shell) */
static int set_text(section *sec, entry *e, const char *text, int priority, const char *source,
                    int line, char *err, size_t err_len)
{
    value v;
    if (parse_value(e->opt->type, text, &v)) {
        char w[4200], q[200];
        return fail(err, err_len, "%s: [%s] %s = %s: %s", where(source, line, w, sizeof w),
                    sec->name, e->opt->key, quoted(text, q, sizeof q), expected(e->opt->type));
    }
    char *expanded = e->opt->type == FLAME_TYPE_STRING ? user_path_expand(text) : NULL;
    store(e, expanded ? expanded : text, v, priority, source, line);
    free(expanded);
    return 0;
}

/* ---- declarations ---- */

static section *find_section(const flame_config *cfg, const char *name, size_t len)
{
    for (int i = 0; i < cfg->n_sections; i++)
        if (strlen(cfg->sections[i].name) == len && strncmp(cfg->sections[i].name, name, len) == 0)
            return &cfg->sections[i];
    return NULL;
}

static entry *find_entry(const section *sec, const char *key, size_t len)
{
    for (int i = 0; i < sec->n; i++)
        if (strlen(sec->entries[i].opt->key) == len &&
            strncmp(sec->entries[i].opt->key, key, len) == 0)
            return &sec->entries[i];
    return NULL;
}

static const char *section_suggestion(const flame_config *cfg, const char *name, char *buf,
                                      size_t len)
{
    const char **names = xrealloc(NULL, (size_t)cfg->n_sections * sizeof *names);
    for (int i = 0; i < cfg->n_sections; i++)
        names[i] = cfg->sections[i].name;
    suggestion(name, names, cfg->n_sections, buf, len);
    free(names);
    return buf;
}

static const char *key_suggestion(const section *sec, const char *key, char *buf, size_t len)
{
    const char **keys = xrealloc(NULL, (size_t)sec->n * sizeof *keys);
    for (int i = 0; i < sec->n; i++)
        keys[i] = sec->entries[i].opt->key;
    suggestion(key, keys, sec->n, buf, len);
    free(keys);
    return buf;
}

flame_config *config_create(void)
{
    flame_config *cfg = xrealloc(NULL, sizeof *cfg);
    memset(cfg, 0, sizeof *cfg);
    return cfg;
}

void config_destroy(flame_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < cfg->n_sections; i++) {
        for (int j = 0; j < cfg->sections[i].n; j++)
            free(cfg->sections[i].entries[j].text);
        free(cfg->sections[i].entries);
        free(cfg->sections[i].name);
    }
    free(cfg->sections);
    for (int i = 0; i < cfg->n_sources; i++)
        free(cfg->sources[i]);
    free(cfg->sources);
    free(cfg);
}

static void set_default(const char *section_name, entry *e)
{
    free(e->text);
    e->text = NULL;
    e->has_value = 0;
    e->priority = PRIO_DEFAULT;
    e->source = NULL;
    e->line = 0;
    if (!e->opt->default_value)
        return;
    value v;
    if (parse_value(e->opt->type, e->opt->default_value, &v)) {
        fprintf(stderr, "flame: internal error: default of [%s] %s (\"%s\") is not of type %s\n",
                section_name, e->opt->key, e->opt->default_value, type_name(e->opt->type));
        abort();
    }
    store(e, e->opt->default_value, v, PRIO_DEFAULT, NULL, 0);
}

const char *config_option_problem(const flame_option *opt)
{
    value v;
    if (!opt->key || !*opt->key || strnlen(opt->key, 128) == 128 ||
        strpbrk(opt->key, "=:;# \t\r\n[]."))
        return "its key is not usable as an INI key";
    if (opt->type < FLAME_TYPE_INT || opt->type > FLAME_TYPE_STRING)
        return "its type is none of int, float, bool, string";
    if (opt->default_value && (strnlen(opt->default_value, 4096) == 4096 ||
                               parse_value(opt->type, opt->default_value, &v)))
        return "its default is not of its type";
    return NULL;
}

void config_add_section(flame_config *cfg, const char *name, const flame_option *options,
                        int n_options)
{
    section *sec = find_section(cfg, name, strlen(name));
    if (!sec) {
        if (cfg->n_sections == cfg->cap_sections) {
            cfg->cap_sections = cfg->cap_sections ? 2 * cfg->cap_sections : 8;
            cfg->sections =
                xrealloc(cfg->sections, (size_t)cfg->cap_sections * sizeof *cfg->sections);
        }
        sec = &cfg->sections[cfg->n_sections++];
        memset(sec, 0, sizeof *sec);
        sec->name = xstrdup(name);
    }
    for (int i = 0; i < n_options; i++) {
        const flame_option *opt = &options[i];
        if (!opt->key || !*opt->key || strpbrk(opt->key, "=:;# \t[].")) {
            fprintf(stderr, "flame: internal error: [%s] option key \"%s\" is not usable\n", name,
                    opt->key ? opt->key : "(null)");
            abort();
        }
        /* a key declared again (a plugin redeclaring a core [model] key) takes the new
         * declaration, and its default unless a file or the command line set it */
        entry *e = find_entry(sec, opt->key, strlen(opt->key));
        if (!e) {
            if (sec->n == sec->cap) {
                sec->cap = sec->cap ? 2 * sec->cap : 16;
                sec->entries = xrealloc(sec->entries, (size_t)sec->cap * sizeof *sec->entries);
            }
            e = &sec->entries[sec->n++];
            memset(e, 0, sizeof *e);
        }
        e->opt = opt;
        if (e->priority == PRIO_DEFAULT)
            set_default(name, e);
    }
}

static const char *intern_source(flame_config *cfg, const char *path)
{
    for (int i = 0; i < cfg->n_sources; i++)
        if (strcmp(cfg->sources[i], path) == 0)
            return cfg->sources[i];
    if (cfg->n_sources == cfg->cap_sources) {
        cfg->cap_sources = cfg->cap_sources ? 2 * cfg->cap_sources : 4;
        cfg->sources = xrealloc(cfg->sources, (size_t)cfg->cap_sources * sizeof *cfg->sources);
    }
    return cfg->sources[cfg->n_sources++] = xstrdup(path);
}

/* ---- INI files ---- */

/* a key a file has set already, for "given twice" */
typedef struct seen_key {
    const void *entry;
    int line;
} seen_key;

typedef struct ini_ctx {
    flame_config *cfg;
    const char *source; /* interned path */
    int priority;
    int model_only;     /* a model config: only [model] is read */
    FILE *f;
    char *buf;
    size_t cap;
    int lineno;
    int stop;     /* an error was found: the reader ends the parse */
    int err_line; /* the line of that error, or 0 */
    int read_errno;
    char *err;
    size_t err_len;
    seen_key *seen; /* the keys this file has set, each once */
    int n_seen, cap_seen;
    char *section;  /* the section of the lines being read (for lines longer than inih takes) */
    /* the handler inih calls, for the lines handed to it here */
    int (*on_value)(void *user, const char *section, const char *key, const char *value);
    void *user;
} ini_ctx;

static int ini_error(ini_ctx *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail(c->err, c->err_len, "%s:%d: %s", c->source, c->lineno, msg);
    c->stop = 1;
    c->err_line = c->lineno;
    return 0;
}

/* inih's own rule: the first of chars, or an inline ';' comment after whitespace */
static const char *chars_or_comment(const char *s, const char *chars)
{
    int was_space = 0;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Hands inih one line at a time, so that lineno is the line its handler is called
 * for. Leading blanks are removed (an indented line is not taken as a continuation
 * of the previous value), and section headers and malformed lines are checked here
 * so that the first error in the file is the one reported. */
/* A config line or a JSON config may be this long: longer is no config
 * (/dev/zero, say), and reading it all would exhaust the memory */
#define CONFIG_MAX_LINE (1 << 20)
#define CONFIG_MAX_FILE (16 << 20)

/* the next line into c->buf, at most CONFIG_MAX_LINE bytes; its length, or -1
 * at the end or after an error (then c->stop is set) */
static ssize_t next_line(ini_ctx *c)
{
    size_t n = 0;
    for (int ch; (ch = getc(c->f)) != EOF;) {
        if (ch == '\0') {
            ini_error(c, "NUL byte in line (not a text file?)");
            return -1;
        }
        if (n + 2 > c->cap) {
            if (c->cap >= CONFIG_MAX_LINE) {
                ini_error(c, "line longer than %d bytes (not a config file?)", CONFIG_MAX_LINE);
                return -1;
            }
            c->cap = c->cap ? 2 * c->cap : 256;
            c->buf = xrealloc(c->buf, c->cap);
        }
        c->buf[n++] = (char)ch;
        if (ch == '\n')
            break;
    }
    if (ferror(c->f))
        c->read_errno = errno ? errno : EIO;
    if (n == 0)
        return -1;
    c->buf[n] = '\0';
    return (ssize_t)n;
}

/* A key = value line longer than inih's line buffer: split here as inih
 * splits it (key and value trimmed, a ';' after a blank starting a comment)
 * and handed to on_ini_value; inih is given an empty line in its place. */
static char *long_value_line(ini_ctx *c, char *s, const char *eq, char *str)
{
    char *key_end = (char *)eq, *value = (char *)eq + 1;
    while (key_end > s && isspace((unsigned char)key_end[-1]))
        key_end--;
    *key_end = '\0';
    while (isspace((unsigned char)*value))
        value++;
    char *end = (char *)chars_or_comment(value, NULL);
    while (end > value && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    if (!c->on_value(c->user, c->section ? c->section : "", s, value) || c->stop)
        return NULL;
    strcpy(str, "\n");
    return str;
}

static char *read_ini_line(char *str, int num, void *stream)
{
    ini_ctx *c = stream;
    if (c->stop)
        return NULL;
    c->lineno++;
    if (next_line(c) < 0)
        return NULL;
    char *s = c->buf;
    if (c->lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF)
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    if (*s == ';' || *s == '#' || !*s) {
        strcpy(str, "\n"); /* a comment of any length */
        return str;
    }
    char q[200];
    const char *eq = NULL;
    if (*s == '[') {
        const char *close = chars_or_comment(s + 1, "]");
        if (*close != ']') {
            ini_error(c, "malformed section header %s: expected [section]", quoted(s, q, sizeof q));
            return NULL;
        }
        const char *a = s + 1, *b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (!c->model_only && !find_section(c->cfg, a, (size_t)(b - a))) {
            char *name = xstrndup(a, (size_t)(b - a)), hint[200];
            ini_error(c, "unknown section [%s]%s", shown(name, q, sizeof q),
                      section_suggestion(c->cfg, name, hint, sizeof hint));
            free(name);
            return NULL;
        }
        free(c->section);
        c->section = xstrndup(a, (size_t)(b - a));
    } else {
        eq = chars_or_comment(s, "=:");
        if ((*eq != '=' && *eq != ':') || eq == s) {
            ini_error(c, "malformed line %s: expected key = value, [section] or a ; comment",
                      quoted(s, q, sizeof q));
            return NULL;
        }
    }
    if (len + 2 > (size_t)num) {
        if (eq)
            return long_value_line(c, s, eq, str);
        ini_error(c, "section header longer than %d characters", num - 2);
        return NULL;
    }
    memcpy(str, s, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* The entry a job file's [section] key names; NULL with why (unknown
 * section or key, and the nearest known name) when there is none. */
static entry *file_entry(const flame_config *cfg, const char *sname, size_t slen, const char *key,
                         section **sec, char *why, size_t why_len)
{
    char hint[200], q[200];
    *sec = find_section(cfg, sname, slen);
    if (!*sec) {
        char *name = xstrndup(sname, slen);
        snprintf(why, why_len, "unknown section [%s]%s", shown(name, q, sizeof q),
                 section_suggestion(cfg, name, hint, sizeof hint));
        free(name);
        return NULL;
    }
    entry *e = find_entry(*sec, key, strlen(key));
    if (!e)
        snprintf(why, why_len, "unknown key [%s] %s%s", (*sec)->name, shown(key, q, sizeof q),
                 key_suggestion(*sec, key, hint, sizeof hint));
    return e;
}

static int on_ini_value(void *user, const char *section_name, const char *name, const char *raw)
{
    ini_ctx *c = user;
    if (c->stop)
        return 0;
    const char *a = section_name, *b = section_name + strlen(section_name);
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    size_t slen = (size_t)(b - a);
    if (c->model_only && !(slen == 5 && strncmp(a, "model", 5) == 0))
        return 1;
    if (slen == 0)
        return ini_error(c, "%s is outside any [section]", name);
    section *sec;
    char why[600];
    entry *e = file_entry(c->cfg, a, slen, name, &sec, why, sizeof why);
    if (!e)
        return ini_error(c, "%s", why);
    for (int i = 0; i < c->n_seen; i++)
        if (c->seen[i].entry == e)
            return ini_error(c, "[%s] %s given twice in this file (first on line %d)", sec->name,
                             e->opt->key, c->seen[i].line);
    if (c->n_seen == c->cap_seen) {
        c->cap_seen = c->cap_seen ? 2 * c->cap_seen : 16;
        c->seen = xrealloc(c->seen, (size_t)c->cap_seen * sizeof *c->seen);
    }
    c->seen[c->n_seen++] = (seen_key){e, c->lineno};
    /* a string may be written in double quotes (needed for surrounding blanks) */
    size_t vlen = strlen(raw);
    char *text = (e->opt->type == FLAME_TYPE_STRING && vlen >= 2 && raw[0] == '"' &&
                  raw[vlen - 1] == '"')
                     ? xstrndup(raw + 1, vlen - 2)
                     : xstrdup(raw);
    int rc = set_text(sec, e, text, c->priority, c->source, c->lineno, c->err, c->err_len);
    free(text);
    if (rc) {
        c->stop = 1;
        c->err_line = c->lineno;
        return 0;
    }
    return 1;
}

static int load_ini(flame_config *cfg, const char *path, int priority, int model_only, char *err,
                    size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    ini_ctx c = {.cfg = cfg, .source = intern_source(cfg, path), .priority = priority,
                 .model_only = model_only, .f = f, .err = err, .err_len = err_len,
                 .on_value = on_ini_value};
    c.user = &c;
    int rc = ini_parse_stream(read_ini_line, &c, on_ini_value, &c);
    free(c.buf);
    free(c.seen);
    free(c.section);
    fclose(f);
    if (rc > 0 && (!c.err_line || rc < c.err_line))
        return fail(err, err_len, "%s:%d: malformed line", path, rc);
    if (c.stop)
        return -1;
    if (rc == -2)
        return fail(err, err_len, "%s: out of memory", path);
    if (rc != 0)
        return fail(err, err_len, "%s: cannot parse", path);
    if (c.read_errno)
        return fail(err, err_len, "%s: cannot read: %s", path, strerror(c.read_errno));
    return 0;
}

/* ---- TOML job files (fla-org/flame's, torchtitan's) ---- */

typedef struct toml_ctx {
    flame_config *cfg;
    const char *source; /* interned path */
    char *err;
    size_t err_len;
} toml_ctx;

static int on_toml_value(void *user, const char *sname, const char *key, const char *text, int line)
{
    toml_ctx *t = user;
    section *sec;
    char why[600], w[4200];
    entry *e = file_entry(t->cfg, sname, strlen(sname), key, &sec, why, sizeof why);
    if (!e)
        return fail(t->err, t->err_len, "%s: %s", where(t->source, line, w, sizeof w), why);
    return set_text(sec, e, text, PRIO_JOB_FILE, t->source, line, t->err, t->err_len);
}

static int is_toml(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".toml") == 0;
}

int config_load_job_file(flame_config *cfg, const char *path, char *err, size_t err_len)
{
    if (!is_toml(path))
        return load_ini(cfg, path, PRIO_JOB_FILE, 0, err, err_len);
    toml_ctx t = {cfg, intern_source(cfg, path), err, err_len};
    return toml_read_file(path, on_toml_value, &t, err, err_len);
}

/* ---- fla / Hugging Face JSON model configs ---- */

/* the line of "key": in the text, or 0 */
static int json_key_line(const char *text, size_t n, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 2 <= n; i++) {
        if (text[i] != '"' || memcmp(text + i + 1, key, klen) != 0 || text[i + 1 + klen] != '"')
            continue;
        size_t j = i + klen + 2;
        while (j < n && isspace((unsigned char)text[j]))
            j++;
        if (j < n && text[j] == ':') {
            int line = 1;
            for (size_t k = 0; k < i; k++)
                line += text[k] == '\n';
            return line;
        }
    }
    return 0;
}

/* Python's json module (so every Hugging Face config.json) writes the
 * non-finite floats as the bare words Infinity, -Infinity and NaN, which JSON
 * has not (fla's Mamba2 saves dt_limit = [0.0, Infinity]). They are read as
 * the strings "Infinity", "-Infinity" and "NaN": a key that takes a number
 * refuses them, and a plugin can declare them as the one value accepted. */
static const char *const python_words[] = {"-Infinity", "Infinity", "NaN"};

static int word_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.'; }

/* the Python word at text[i] (outside strings, standing alone), or NULL */
static const char *python_word_at(const char *text, size_t n, size_t i)
{
    if (i > 0 && word_char(text[i - 1]))
        return NULL;
    for (size_t w = 0; w < sizeof python_words / sizeof *python_words; w++) {
        size_t len = strlen(python_words[w]);
        if (len <= n - i && memcmp(text + i, python_words[w], len) == 0 &&
            (i + len == n || !word_char(text[i + len])))
            return python_words[w];
    }
    return NULL;
}

/* JSON text parsed, the Python words quoted first; NULL with e on failure */
static json_t *json_parse(const char *text, size_t n, size_t flags, json_error_t *e)
{
    char *quoted = malloc(2 * n + 1); /* a word quoted grows by 2 of its ≥ 3 bytes */
    if (!quoted)
        return json_loadb(text, n, flags, e);
    size_t out = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        const char *word = in_string ? NULL : python_word_at(text, n, i);
        if (word) {
            out += (size_t)sprintf(quoted + out, "\"%s\"", word);
            i += strlen(word) - 1;
            continue;
        }
        if (text[i] == '"')
            in_string = !in_string;
        else if (in_string && text[i] == '\\' && i + 1 < n)
            quoted[out++] = text[i++]; /* an escape: the next byte cannot end the string */
        quoted[out++] = text[i];
    }
    json_t *root = json_loadb(quoted, out, flags, e);
    free(quoted);
    return root;
}

/* the shortest %g form that reads back as x */
static void format_double(double x, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* keys every Hugging Face config.json may carry that describe no setting of
 * the model (the token ids are the tokenizer's: to-hf writes its own) */
static const char *const hf_generic_keys[] = {"architectures", "transformers_version",
                                              "torch_dtype",   "dtype",
                                              "_name_or_path", "auto_map",
                                              "model_type",    "bos_token_id",
                                              "eos_token_id",  "pad_token_id"};

static int is_generic_key(const char *key)
{
    for (size_t i = 0; i < sizeof hf_generic_keys / sizeof *hf_generic_keys; i++)
        if (strcmp(key, hf_generic_keys[i]) == 0)
            return 1;
    return 0;
}

/* A list of whole numbers (HazyResearch's alt_mixer_layers: [1, 6, 11]) as
 * the text a string option takes, "1, 6, 11"; 0 when v is another list. */
static int json_list_text(json_t *v, char *text, size_t n)
{
    size_t at = 0, i;
    json_t *item;
    text[0] = '\0';
    json_array_foreach(v, i, item) {
        if (!json_is_integer(item))
            return 0;
        int w = snprintf(text + at, n - at, "%s%lld", i ? ", " : "", (long long)json_integer_value(item));
        if (w < 0 || (size_t)w >= n - at)
            return 0;
        at += (size_t)w;
    }
    return 1;
}

static int json_set(section *sec, entry *e, json_t *v, const char *source, int line, char *err,
                    size_t err_len)
{
    char text[64], list[1024];
    value parsed;
    const char *t = text;
    int ok = 1;
    switch (e->opt->type) {
    case FLAME_TYPE_INT:
        if (json_is_integer(v)) {
            parsed.i = json_integer_value(v);
        } else if (json_is_real(v) && json_real_value(v) > -9.2e18 &&
                   json_real_value(v) < 9.2e18 &&
                   (double)(int64_t)json_real_value(v) == json_real_value(v)) {
            parsed.i = (int64_t)json_real_value(v); /* 1024.0 */
        } else {
            ok = 0;
            break;
        }
        snprintf(text, sizeof text, "%lld", (long long)parsed.i);
        break;
    case FLAME_TYPE_FLOAT:
        if (!json_is_number(v)) {
            ok = 0;
            break;
        }
        parsed.f = json_number_value(v);
        if (json_is_integer(v))
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        else
            format_double(parsed.f, text, sizeof text);
        break;
    case FLAME_TYPE_BOOL:
        if (!json_is_boolean(v)) {
            ok = 0;
            break;
        }
        parsed.b = json_is_true(v);
        t = parsed.b ? "true" : "false";
        break;
    default:
        parsed.i = 0;
        if (json_is_array(v)) {
            ok = json_list_text(v, list, sizeof list);
            t = list;
        } else if (!json_is_string(v)) {
            ok = 0;
        } else {
            t = json_string_value(v);
        }
        break;
    }
    if (!ok) {
        char w[4200];
        char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        char shown[120];
        snprintf(shown, sizeof shown, "%s", dump ? dump : "?");
        if (dump && strlen(dump) >= sizeof shown)
            memcpy(shown + sizeof shown - 4, "...", 4);
        for (char *p = shown; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        free(dump);
        return fail(err, err_len, "%s: [%s] %s = %s: %s", where(source, line, w, sizeof w),
                    sec->name, e->opt->key, shown,
                    e->opt->type == FLAME_TYPE_STRING ? "expected a string or a list of whole numbers"
                                                      : expected(e->opt->type));
    }
    store(e, t, parsed, PRIO_MODEL_FILE, source, line);
    return 0;
}

/* One JSON file being read into [model]: its text (for line numbers), the
 * section, and the format whose key map applies (NULL: keys as they are). */
typedef struct json_reader {
    const char *source, *text;
    size_t n;
    section *model;
    const flame_hf_format *format;
    char *err;
    size_t err_len;
} json_reader;

static const flame_hf_key *format_key(const flame_hf_format *f, const char *key)
{
    for (int i = 0; f && i < f->n_keys; i++)
        if (strcmp(f->keys[i].hf, key) == 0)
            return &f->keys[i];
    return NULL;
}

/* whether the format maps keys inside the object at key ("key.member") */
static int format_opens(const flame_hf_format *f, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; f && i < f->n_keys; i++)
        if (strncmp(f->keys[i].hf, key, n) == 0 && f->keys[i].hf[n] == '.')
            return 1;
    return 0;
}

/* a key that sets no [model] key: refused unless its value is the one accepted */
static int check_only(json_reader *r, const flame_hf_key *k, json_t *v, int line)
{
    if (!k->only || json_is_null(v))
        return 0;
    json_t *want = json_parse(k->only, strlen(k->only), JSON_DECODE_ANY, NULL);
    /* numbers by value: Python writes 0.0 where the only value says 0 */
    int same = want && (json_is_number(v) && json_is_number(want) ? json_number_value(v) == json_number_value(want)
                                                                   : json_equal(v, want));
    json_decref(want);
    if (same)
        return 0;
    char w[4200], shown[120];
    char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(shown, sizeof shown, "%s", dump ? dump : "?");
    free(dump);
    return fail(r->err, r->err_len, "%s: %s = %s: only %s is supported",
                where(r->source, line, w, sizeof w), k->hf, shown, k->only);
}

/* Sets e from v; two keys of the file that set the same [model] key (Based's
 * alt_mixer.feature_dim and its feature map's input_dim) must agree. */
static int set_once(json_reader *r, entry *e, json_t *v, const char *key, int line)
{
    int earlier = e->has_value && e->priority == PRIO_MODEL_FILE && e->source == r->source;
    char *before = earlier ? xstrdup(e->text) : NULL, w[4200], q[200], b[200];
    int rc = json_set(r->model, e, v, r->source, line, r->err, r->err_len);
    if (rc == 0 && before && strcmp(before, e->text) != 0)
        rc = fail(r->err, r->err_len, "%s: %s = %s, but an earlier key gave [model] %s = %s",
                  where(r->source, line, w, sizeof w), key, shown(e->text, q, sizeof q),
                  e->opt->key, shown(before, b, sizeof b));
    free(before);
    return rc;
}

static int read_json_object(json_reader *r, json_t *obj, const char *prefix)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char full[512], w[4200];
        snprintf(full, sizeof full, "%s%s", prefix, key);
        int line = json_key_line(r->text, r->n, key);
        if (!*prefix && is_generic_key(full))
            continue;
        const flame_hf_key *k = format_key(r->format, full);
        if (k && !k->model) {
            if (check_only(r, k, v, line))
                return -1;
            continue;
        }
        if (!k && json_is_object(v) && format_opens(r->format, full)) {
            char inner[520];
            snprintf(inner, sizeof inner, "%s.", full);
            if (read_json_object(r, v, inner))
                return -1;
            continue;
        }
        const char *target = k ? k->model : full;
        entry *e = r->model ? find_entry(r->model, target, strlen(target)) : NULL;
        if (!e) {
            char hint[200] = "";
            if (r->model)
                key_suggestion(r->model, full, hint, sizeof hint);
            char q[200];
            return fail(r->err, r->err_len, "%s: unknown key [model] %s%s",
                        where(r->source, line, w, sizeof w), shown(full, q, sizeof q), hint);
        }
        if (!json_is_null(v) && set_once(r, e, v, full, line))
            return -1;
    }
    return 0;
}

/* the format of the file's model_type among formats (the first when it names
 * none; NULL when there are no formats); -1 with err when it names another */
static int pick_format(json_reader *r, json_t *root, const flame_hf_format *formats,
                       int n_formats)
{
    json_t *type = json_object_get(root, "model_type");
    char w[4200];
    int line = json_key_line(r->text, r->n, "model_type");
    r->format = n_formats > 0 ? &formats[0] : NULL;
    if (!type || n_formats == 0)
        return 0;
    if (!json_is_string(type))
        return fail(r->err, r->err_len, "%s: model_type: expected a string",
                    where(r->source, line, w, sizeof w));
    for (int i = 0; i < n_formats; i++)
        if (strcmp(json_string_value(type), formats[i].model_type) == 0) {
            r->format = &formats[i];
            return 0;
        }
    char q[200], reads[600] = "";
    for (int i = 0; i < n_formats; i++) {
        size_t at = strlen(reads);
        snprintf(reads + at, sizeof reads - at, "%s\"%s\"", i ? " or " : "",
                 formats[i].model_type);
    }
    return fail(r->err, r->err_len, "%s: model_type is %s but the architecture reads %s",
                where(r->source, line, w, sizeof w),
                quoted(json_string_value(type), q, sizeof q), reads);
}

/* the whole file, or NULL with err */
static char *read_text(const char *source, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(source, "rb");
    if (!f) {
        fail(err, err_len, "%s: cannot open: %s", source, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap && cap >= CONFIG_MAX_FILE) {
            free(text);
            fclose(f);
            fail(err, err_len, "%s: larger than %d bytes (not a config file?)", source,
                 CONFIG_MAX_FILE);
            return NULL;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            text = xrealloc(text, cap);
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int read_failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (read_failed) {
        free(text);
        fail(err, err_len, "%s: cannot read: %s", source, strerror(saved ? saved : EIO));
        return NULL;
    }
    *len = n;
    return text;
}

static int load_json(flame_config *cfg, const char *source, const flame_hf_format *formats,
                     int n_formats, char *err, size_t err_len)
{
    size_t n = 0;
    char *text = read_text(source, &n, err, err_len);
    if (!text)
        return -1;
    json_error_t jerr;
    json_t *root = json_parse(text, n, JSON_REJECT_DUPLICATES, &jerr);
    json_reader r = {source, text, n, find_section(cfg, "model", 5), NULL, err, err_len};
    int rc;
    if (!root)
        rc = fail(err, err_len, "%s:%d:%d: invalid JSON: %s", source, jerr.line, jerr.column,
                  jerr.text);
    else if (!json_is_object(root))
        rc = fail(err, err_len, "%s: expected a JSON object of model settings", source);
    else
        rc = pick_format(&r, root, formats, n_formats) ? -1 : read_json_object(&r, root, "");
    json_decref(root);
    free(text);
    return rc;
}

int config_load_model_file(flame_config *cfg, const char *path, const flame_hf_format *formats,
                           int n_formats, char *err, size_t err_len)
{
    /* path may be this store's own [model] config text: take a stable copy first */
    const char *source = intern_source(cfg, path);
    if (user_path_is_hub_name(source) && access(source, F_OK) != 0)
        return fail(err, err_len,
                    "%s: not a local file; flame does not download: fetch the model's "
                    "config.json (huggingface-cli download %s config.json --local-dir DIR) and "
                    "pass DIR/config.json",
                    source, source);
    size_t len = strlen(source);
    if (len >= 5 && strcasecmp(source + len - 5, ".json") == 0)
        return load_json(cfg, source, formats, n_formats, err, err_len);
    return load_ini(cfg, source, PRIO_MODEL_FILE, 1, err, err_len);
}

/* ---- the command line ---- */

/* argv[*i] is --name or --name=VALUE: its value (the next argument, consumed, for
 * the first form), NULL when absent; *matched tells whether it was --name at all */
static const char *named_value(int argc, char **argv, int *i, const char *name, int *matched)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    *matched = 0;
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
        return NULL;
    *matched = 1;
    if (a[n] == '=')
        return a + n + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static int set_from_command_line(flame_config *cfg, const char *section_name, const char *key,
                                 const char *text, char *err, size_t err_len)
{
    section *sec = find_section(cfg, section_name, strlen(section_name));
    entry *e = sec ? find_entry(sec, key, strlen(key)) : NULL;
    if (!e || !text)
        return 0;
    return set_text(sec, e, text, PRIO_COMMAND_LINE, COMMAND_LINE, 0, err, err_len);
}

static int record_job_file(flame_config *cfg, const char *path, char *err, size_t err_len)
{
    return set_from_command_line(cfg, "job", "config_file", path, err, err_len);
}

int config_set_string(flame_config *cfg, const char *section_name, const char *key,
                      const char *text, char *err, size_t err_len)
{
    return set_from_command_line(cfg, section_name, key, text, err, err_len);
}

typedef struct peek {
    const char *section, *key;
    char *out;
    size_t out_len;
    int found;
} peek;

static int on_peek(void *user, const char *section_name, const char *key, const char *value)
{
    peek *p = user;
    if (strcmp(section_name, p->section) == 0 && strcmp(key, p->key) == 0) {
        snprintf(p->out, p->out_len, "%s", value);
        p->found = 1;
    }
    return 1;
}

static int on_toml_peek(void *user, const char *section_name, const char *key, const char *value,
                        int line)
{
    (void)line;
    return !on_peek(user, section_name, key, value);
}

int config_peek_job_file(const char *path, const char *section_name, const char *key, char *out,
                         size_t out_len)
{
    peek p = {section_name, key, out, out_len, 0};
    if (is_toml(path)) {
        char unused[256];
        toml_read_file(path, on_toml_peek, &p, unused, sizeof unused);
        return p.found;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char unused[256];
    /* model_only: the reader checks no section names against a store */
    ini_ctx c = {.source = path, .model_only = 1, .f = f, .err = unused, .err_len = sizeof unused,
                 .on_value = on_peek, .user = &p};
    ini_parse_stream(read_ini_line, &c, on_peek, &p);
    free(c.buf);
    free(c.seen);
    free(c.section);
    fclose(f);
    return p.found;
}

int config_apply_args(flame_config *cfg, int argc, char **argv, char *err, size_t err_len)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        char q[200], hint[200];
        int matched;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            continue;
        named_value(argc, argv, &i, "--arch", &matched);
        if (matched)
            continue;
        v = named_value(argc, argv, &i, "--config", &matched);
        if (!matched)
            v = named_value(argc, argv, &i, "--job.config_file", &matched);
        if (matched) {
            if (record_job_file(cfg, v, err, err_len))
                return -1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return fail(err, err_len,
                        "command line: unexpected argument %s (options are --section.key VALUE)",
                        quoted(a, q, sizeof q));
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char *dot = memchr(name, '.', name_len);
        if (!dot) {
            char *opt = xstrndup(a, name_len + 2);
            fail(err, err_len, "command line: unknown option %s (options are --section.key VALUE)",
                 quoted(opt, q, sizeof q));
            free(opt);
            return -1;
        }
        section *sec = find_section(cfg, name, (size_t)(dot - name));
        if (!sec) {
            char *sname = xstrndup(name, (size_t)(dot - name));
            char *opt = xstrndup(a, name_len + 2);
            fail(err, err_len, "command line: %s: unknown section [%s]%s", opt, sname,
                 section_suggestion(cfg, sname, hint, sizeof hint));
            free(sname);
            free(opt);
            return -1;
        }
        const char *key = dot + 1;
        size_t key_len = name_len - (size_t)(key - name);
        entry *e = find_entry(sec, key, key_len);
        if (!e) {
            char *kname = xstrndup(key, key_len);
            char *opt = xstrndup(a, name_len + 2);
            fail(err, err_len, "command line: %s: unknown key [%s] %s%s", opt, sec->name, kname,
                 key_suggestion(sec, kname, hint, sizeof hint));
            free(kname);
            free(opt);
            return -1;
        }
        int bool_word;
        if (eq)
            v = eq + 1;
        else if (e->opt->type == FLAME_TYPE_BOOL)
            v = i + 1 < argc && parse_bool_word(argv[i + 1], &bool_word) == 0 ? argv[++i] : "true";
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            v = argv[++i];
        else
            return fail(err, err_len, "command line: %s needs a value (or use --%s.%s=VALUE)", a,
                        sec->name, e->opt->key);
        if (set_text(sec, e, v, PRIO_COMMAND_LINE, COMMAND_LINE, 0, err, err_len))
            return -1;
    }
    return 0;
}

/* ---- getters ---- */

static const entry *lookup(const flame_config *cfg, const char *section_name, const char *key)
{
    const section *sec = find_section(cfg, section_name, strlen(section_name));
    return sec ? find_entry(sec, key, strlen(key)) : NULL;
}

static const entry *typed_lookup(const flame_config *cfg, const char *section_name,
                                 const char *key, flame_type type, const char *caller,
                                 int must_exist)
{
    const entry *e = lookup(cfg, section_name, key);
    if (!e) {
        if (!must_exist)
            return NULL;
        fprintf(stderr, "flame: internal error: %s: no option [%s] %s is declared\n", caller,
                section_name, key);
        abort();
    }
    if (e->opt->type != type && !(type == FLAME_TYPE_FLOAT && e->opt->type == FLAME_TYPE_INT)) {
        fprintf(stderr, "flame: internal error: %s: [%s] %s is of type %s\n", caller,
                section_name, key, type_name(e->opt->type));
        abort();
    }
    return e;
}

int config_is_set(const flame_config *cfg, const char *section_name, const char *key)
{
    const entry *e = lookup(cfg, section_name, key);
    return e && e->has_value;
}

static int64_t get_int(const flame_config *cfg, const char *s, const char *key, int must_exist)
{
    const entry *e = typed_lookup(cfg, s, key, FLAME_TYPE_INT, "get_int", must_exist);
    return e && e->has_value ? e->v.i : 0;
}

static double get_float(const flame_config *cfg, const char *s, const char *key, int must_exist)
{
    const entry *e = typed_lookup(cfg, s, key, FLAME_TYPE_FLOAT, "get_float", must_exist);
    if (!e || !e->has_value)
        return 0.0;
    return e->opt->type == FLAME_TYPE_INT ? (double)e->v.i : e->v.f;
}

static int get_bool(const flame_config *cfg, const char *s, const char *key, int must_exist)
{
    const entry *e = typed_lookup(cfg, s, key, FLAME_TYPE_BOOL, "get_bool", must_exist);
    return e && e->has_value ? e->v.b : 0;
}

static const char *get_string(const flame_config *cfg, const char *s, const char *key,
                              int must_exist)
{
    const entry *e = typed_lookup(cfg, s, key, FLAME_TYPE_STRING, "get_string", must_exist);
    return e && e->has_value ? e->text : NULL;
}

int64_t config_get_int(const flame_config *cfg, const char *section_name, const char *key)
{
    return get_int(cfg, section_name, key, 1);
}

double config_get_float(const flame_config *cfg, const char *section_name, const char *key)
{
    return get_float(cfg, section_name, key, 1);
}

int config_get_bool(const flame_config *cfg, const char *section_name, const char *key)
{
    return get_bool(cfg, section_name, key, 1);
}

const char *config_get_string(const flame_config *cfg, const char *section_name, const char *key)
{
    return get_string(cfg, section_name, key, 1);
}

/* ---- the plugin's view of [model]: unset or undeclared keys read as 0/NULL ---- */

static int model_is_set(const void *ctx, const char *key)
{
    return config_is_set(ctx, "model", key);
}

static int64_t model_get_int(const void *ctx, const char *key)
{
    return get_int(ctx, "model", key, 0);
}

static double model_get_float(const void *ctx, const char *key)
{
    return get_float(ctx, "model", key, 0);
}

static int model_get_bool(const void *ctx, const char *key)
{
    return get_bool(ctx, "model", key, 0);
}

static const char *model_get_string(const void *ctx, const char *key)
{
    return get_string(ctx, "model", key, 0);
}

flame_model_config config_model_view(const flame_config *cfg)
{
    flame_model_config view = {cfg,           model_is_set,   model_get_int,
                               model_get_float, model_get_bool, model_get_string};
    return view;
}

/* ---- output ---- */

/* a string that would not read back unchanged is written in double quotes */
static int needs_quotes(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return 1; /* "key =" then a comment would read the comment */
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]) || s[0] == ';')
        return 1; /* blanks would be stripped; " ;" starts a comment */
    return n >= 2 && s[0] == '"' && s[n - 1] == '"';
}

int config_write_ini(const flame_config *cfg, FILE *out)
{
    fprintf(out, "; flame: the resolved configuration (every option; unset ones commented out).\n"
                 "; Read it back with --config FILE.\n");
    for (int i = 0; i < cfg->n_sections; i++) {
        const section *sec = &cfg->sections[i];
        fprintf(out, "\n[%s]\n", sec->name);
        for (int j = 0; j < sec->n; j++) {
            const entry *e = &sec->entries[j];
            if (!e->has_value) {
                fprintf(out, "; %s =\n", e->opt->key);
                continue;
            }
            int q = e->opt->type == FLAME_TYPE_STRING && needs_quotes(e->text);
            fprintf(out, "%s = %s%s%s", e->opt->key, q ? "\"" : "", e->text, q ? "\"" : "");
            if (e->source && !strpbrk(e->source, "\n\r")) {
                if (e->line > 0)
                    fprintf(out, "  ; %s:%d", e->source, e->line);
                else
                    fprintf(out, "  ; %s", e->source);
            }
            fputc('\n', out);
        }
    }
    return ferror(out) ? -1 : 0;
}

static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    fprintf(out, "%*s", indent, "");
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        int wl = (int)(p - w);
        if (col > indent && col + 1 + wl > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        }
        if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fwrite(w, 1, (size_t)wl, out);
        col += wl;
    }
    fputc('\n', out);
}

void config_print_help(const flame_config *cfg, FILE *out)
{
    enum { WIDTH = 79 };
    for (int i = 0; i < cfg->n_sections; i++) {
        const section *sec = &cfg->sections[i];
        const char *help = NULL;
        for (int k = 0; k < n_core_sections; k++)
            if (strcmp(core_sections[k].name, sec->name) == 0)
                help = core_sections[k].help;
        if (i)
            fputc('\n', out);
        if (help)
            fprintf(out, "[%s]  %s\n", sec->name, help);
        else
            fprintf(out, "[%s]\n", sec->name);
        for (int j = 0; j < sec->n; j++) {
            const flame_option *o = sec->entries[j].opt;
            char head[512], dflt[300];
            if (o->default_value)
                snprintf(dflt, sizeof dflt, "%s",
                         *o->default_value ? o->default_value : "\"\"");
            else
                snprintf(dflt, sizeof dflt, "none");
            if (o->ignored && !o->default_value)
                snprintf(head, sizeof head, "  --%s.%s %s (ignored)", sec->name, o->key,
                         type_name(o->type));
            else
                snprintf(head, sizeof head, "  --%s.%s %s (default: %s)%s", sec->name, o->key,
                         type_name(o->type), dflt, o->ignored ? " (ignored)" : "");
            if (!o->help || !*o->help) {
                fprintf(out, "%s\n", head);
            } else if (strlen(head) + 2 + strlen(o->help) <= WIDTH) {
                fprintf(out, "%s  %s\n", head, o->help);
            } else {
                fprintf(out, "%s\n", head);
                print_wrapped(out, o->help, 8, WIDTH);
            }
        }
    }
}

void config_report_ignored(const flame_config *cfg, FILE *out)
{
    for (int i = 0; i < cfg->n_sections; i++) {
        const section *sec = &cfg->sections[i];
        for (int j = 0; j < sec->n; j++) {
            const entry *e = &sec->entries[j];
            if (e->opt->ignored && e->has_value && e->priority > PRIO_DEFAULT)
                fprintf(out, "flame-run: ignoring [%s] %s (%s)\n", sec->name, e->opt->key,
                        e->opt->help);
        }
    }
}
