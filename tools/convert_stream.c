/* Tensors copied a slice at a time, so converting a model takes memory for
 * one slice, not for the model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "convert.h"
#include "params.h"

enum { SLICE = 1 << 20 }; /* elements per read */

uint16_t convert_f32_to_bf16(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it one, quiet */
        return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* F32 to F32: the bytes as stored, so the copy is exact whatever they hold */
static int copy_bytes(safetensors_writer *w, const safetensors *st, const safetensors_tensor *t,
                      void *buf, char *err, size_t err_len)
{
    for (uint64_t at = 0; at < t->nbytes; at += SLICE * sizeof(float)) {
        size_t len = t->nbytes - at < SLICE * sizeof(float) ? t->nbytes - at : SLICE * sizeof(float);
        if (safetensors_read_bytes(st, t, at, buf, len, err, err_len))
            return -1;
        if (safetensors_writer_write_part(w, buf, len, err, err_len))
            return -2;
    }
    return 0;
}

static int convert_values(safetensors_writer *w, const safetensors *st,
                          const safetensors_tensor *t, safetensors_dtype out, float *buf,
                          char *err, size_t err_len)
{
    uint16_t *half = (uint16_t *)buf; /* narrowed in place: element i only overwrites bytes of elements ≤ i */
    for (uint64_t first = 0; first < t->numel; first += SLICE) {
        size_t count = t->numel - first < SLICE ? (size_t)(t->numel - first) : SLICE;
        if (safetensors_read_f32_range(st, t, first, count, buf, err, err_len))
            return -1;
        if (out == ST_BF16)
            for (size_t i = 0; i < count; i++)
                half[i] = convert_f32_to_bf16(buf[i]);
        size_t len = count * safetensors_dtype_size(out);
        if (safetensors_writer_write_part(w, buf, len, err, err_len))
            return -2;
    }
    return 0;
}

/* the whole 2-D tensor [r, c] read, then written as [c, r] a row at a time */
static int write_transposed(safetensors_writer *w, const safetensors *st, const safetensors_tensor *t,
                            safetensors_dtype out, char *err, size_t err_len)
{
    size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1];
    float *all = malloc((size_t)t->numel * sizeof *all), *row = malloc((r ? r : 1) * sizeof *row);
    int rc = all && row ? 0 : -2;
    if (rc)
        snprintf(err, err_len, "%s: out of memory for %s", st->path, t->name);
    if (!rc && safetensors_read_f32_range(st, t, 0, (size_t)t->numel, all, err, err_len))
        rc = -1;
    uint16_t *half = (uint16_t *)row;
    for (size_t j = 0; !rc && j < c; j++) {
        for (size_t i = 0; i < r; i++)
            row[i] = all[i * c + j];
        if (out == ST_BF16)
            for (size_t i = 0; i < r; i++)
                half[i] = convert_f32_to_bf16(row[i]);
        if (safetensors_writer_write_part(w, row, r * safetensors_dtype_size(out), err, err_len))
            rc = -2;
    }
    free(all), free(row);
    return rc;
}

int convert_stream_tensor(safetensors_writer *w, const mapped *m, safetensors_dtype out, char *err,
                          size_t err_len)
{
    const safetensors *st = m->file;
    const safetensors_tensor *t = m->tensor;
    if (t->nbytes == 0)
        return safetensors_writer_write(w, "", 0, err, err_len) ? -2 : 0;
    if (m->transposed)
        return write_transposed(w, st, t, out, err, err_len);
    float *buf = malloc(SLICE * sizeof *buf);
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", st->path);
        return -2;
    }
    int rc = t->dtype == ST_F32 && out == ST_F32 ? copy_bytes(w, st, t, buf, err, err_len)
                                                 : convert_values(w, st, t, out, buf, err, err_len);
    free(buf);
    return rc;
}

/* the plugin's own initialization (FLAME_INIT_PLUGIN) draws a whole tensor */
static int write_plugin_drawn(safetensors_writer *w, const flame_plugin *plugin, const void *model,
                              int index, const flame_param_spec *s, size_t numel, rng *r,
                              char *err, size_t err_len)
{
    float *values = malloc((numel ? numel : 1) * sizeof *values);
    if (!values) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int rc = params_draw(plugin, model, index, s, values, numel, r, err, err_len) ||
             safetensors_writer_write(w, values, numel * sizeof *values, err, err_len) ? -1 : 0;
    free(values);
    return rc;
}

int convert_stream_init(safetensors_writer *w, const flame_plugin *plugin, const void *model,
                        int index, rng *r, char *err, size_t err_len)
{
    const flame_param_spec *s = plugin->param(model, index);
    uint64_t numel = 1;
    for (int d = 0; d < s->ndim; d++)
        numel *= (uint64_t)s->shape[d];
    if (s->init == FLAME_INIT_PLUGIN)
        return write_plugin_drawn(w, plugin, model, index, s, (size_t)numel, r, err, err_len);
    if (numel == 0)
        return safetensors_writer_write(w, "", 0, err, err_len);
    float *buf = malloc(SLICE * sizeof *buf);
    int rc = buf ? 0 : -1;
    if (!buf)
        snprintf(err, err_len, "out of memory");
    for (uint64_t first = 0; rc == 0 && first < numel; first += SLICE) {
        size_t count = numel - first < SLICE ? (size_t)(numel - first) : SLICE;
        for (size_t i = 0; i < count; i++)
            buf[i] = s->init == FLAME_INIT_NORMAL ? (float)(s->init_std * rng_normal(r))
                     : s->init == FLAME_INIT_ONES ? 1.0f : 0.0f;
        rc = safetensors_writer_write_part(w, buf, count * sizeof *buf, err, err_len);
    }
    free(buf);
    return rc;
}

int convert_stream_zeros(safetensors_writer *w, size_t nbytes, char *err, size_t err_len)
{
    static const char zeros[1 << 16];
    if (nbytes == 0)
        return safetensors_writer_write(w, zeros, 0, err, err_len);
    for (size_t at = 0; at < nbytes; at += sizeof zeros) {
        size_t len = nbytes - at < sizeof zeros ? nbytes - at : sizeof zeros;
        if (safetensors_writer_write_part(w, zeros, len, err, err_len))
            return -1;
    }
    return 0;
}
