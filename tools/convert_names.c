/* Tensor names between a Hugging Face format and the plugin (the format's
 * tensor entries, "*" a layer number on both sides), and the tensors a format
 * stores transposed. */
#include <stdio.h>
#include <string.h>

#include "convert.h"

/* the length of name's start that pattern matches ('*' standing for a layer
 * number, copied into *layer), or 0 */
static size_t match_start(const char *pattern, const char *name, const char **layer, size_t *layer_len)
{
    const char *n = name;
    for (const char *p = pattern; *p; p++) {
        if (*p != '*') {
            if (*n++ != *p)
                return 0;
            continue;
        }
        size_t digits = strspn(n, "0123456789");
        if (!digits)
            return 0;
        *layer = n, *layer_len = digits;
        n += digits;
    }
    return (size_t)(n - name);
}

/* `to` with its '*' replaced by the layer, then the rest of the name */
static void rewrite(const char *to, const char *layer, size_t layer_len, const char *rest, char *out,
                    size_t out_len)
{
    const char *star = strchr(to, '*');
    if (star)
        snprintf(out, out_len, "%.*s%.*s%s%s", (int)(star - to), to, (int)layer_len, layer, star + 1, rest);
    else
        snprintf(out, out_len, "%s%s", to, rest);
}

int convert_plugin_name(const flame_hf_format *f, const char *hf, char *out, size_t out_len)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const char *layer = "";
        size_t layer_len = 0, n = match_start(f->tensors[i].hf, hf, &layer, &layer_len);
        if (!n)
            continue;
        if (!f->tensors[i].flame)
            return 0;
        rewrite(f->tensors[i].flame, layer, layer_len, hf + n, out, out_len);
        return 1;
    }
    snprintf(out, out_len, "%s", hf);
    return 1;
}

void convert_hf_name(const flame_hf_format *f, const char *name, char *out, size_t out_len)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const char *layer = "";
        size_t layer_len = 0, n = f->tensors[i].flame ? match_start(f->tensors[i].flame, name, &layer, &layer_len) : 0;
        if (n) {
            rewrite(f->tensors[i].hf, layer, layer_len, name + n, out, out_len);
            return;
        }
    }
    snprintf(out, out_len, "%s", name);
}

int convert_hf_transposed(const flame_plugin *p, const flame_hf_format *f, const char *hf)
{
    for (int i = 0; i < p->n_hf_transposed; i++) {
        const char *layer = "";
        size_t layer_len = 0;
        if (strcmp(p->hf_transposed[i].model_type, f->model_type) == 0 &&
            match_start(p->hf_transposed[i].hf, hf, &layer, &layer_len) == strlen(hf))
            return 1;
    }
    return 0;
}

void convert_mark_transposed(mapped *m, const flame_plugin *p, const flame_hf_format *f, const char *hf)
{
    if (m->ndim != 2 || !convert_hf_transposed(p, f, hf))
        return;
    m->transposed = 1;
    int64_t rows = m->shape[0];
    m->shape[0] = m->shape[1], m->shape[1] = rows;
}
