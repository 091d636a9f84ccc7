#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dtypes ---- */

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},        [ST_U8] = {"U8", 1},
    [ST_I8] = {"I8", 1},            [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1},  [ST_F8_E8M0] = {"F8_E8M0", 1},
    [ST_I16] = {"I16", 2},          [ST_U16] = {"U16", 2},
    [ST_F16] = {"F16", 2},          [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},          [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},          [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},          [ST_F64] = {"F64", 8},
};

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    return (unsigned)dtype < ST_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

const char *safetensors_shape_text(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && at < len; d++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
    return buf;
}

size_t safetensors_dtype_size(safetensors_dtype dtype)
{
    return (unsigned)dtype < ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

int safetensors_dtype_parse(const char *name, safetensors_dtype *dtype)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *dtype = (safetensors_dtype)i;
            return 0;
        }
    return -1;
}

/* ---- errors ---- */

/* "<path>: <message>", kept on one line whatever the path, names or JSON hold */
static void seterr(char *err, size_t err_len, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void seterr(char *err, size_t err_len, const char *path, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    int k = snprintf(err, err_len, "%s: ", path ? path : "(null)");
    if (k >= 0 && (size_t)k < err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, err_len - (size_t)k, fmt, ap);
        va_end(ap);
    }
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* a tensor name or other string shortened for a message */
typedef struct {
    char s[96];
} shown;

static shown show(const char *name)
{
    shown r;
    size_t n = strlen(name);
    if (n < sizeof r.s)
        memcpy(r.s, name, n + 1);
    else
        snprintf(r.s, sizeof r.s, "%.*s...", (int)sizeof r.s - 4, name);
    return r;
}

/* a JSON value written compactly and shortened for a message */
static shown show_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    shown r = show(s ? s : "?");
    free(s);
    return r;
}

static shown show_shape(const int64_t *shape, int ndim)
{
    shown r;
    size_t k = 0;
    r.s[k++] = '[';
    for (int d = 0; d < ndim && k < sizeof r.s; d++)
        k += (size_t)snprintf(r.s + k, sizeof r.s - k, "%s%lld", d ? ", " : "",
                              (long long)shape[d]);
    if (k < sizeof r.s - 1) {
        r.s[k++] = ']';
        r.s[k] = 0;
    } else {
        strcpy(r.s + sizeof r.s - 5, "...]");
    }
    return r;
}

/* ---- low-level I/O ---- */

/* 0, 1 at end of file before len bytes, or -1 with errno */
static int pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
    char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t r = pread(fd, p, chunk, (off_t)offset);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            return 1;
        p += r;
        len -= (size_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t r = write(fd, p, chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* ---- reader ---- */

void safetensors_close(safetensors *st)
{
    if (st->fd >= 0)
        close(st->fd);
    for (int i = 0; i < st->n; i++)
        free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->by_name);
    free(st->path);
    memset(st, 0, sizeof *st);
    st->fd = -1;
}

/* a JSON integer in [0, INT64_MAX], or -1 */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t i = json_integer_value(v);
    return i < 0 ? -1 : (int64_t)i;
}

static int parse_metadata(safetensors *st, const json_t *meta, char *err, size_t err_len)
{
    if (!json_is_object(meta)) {
        seterr(err, err_len, st->path, "__metadata__ is not an object: %s", show_json(meta).s);
        return -1;
    }
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values)
        goto oom;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v)) {
            seterr(err, err_len, st->path, "__metadata__ %s: value %s is not a string",
                   show(key).s, show_json(v).s);
            return -1;
        }
        char *k = strdup(key), *s = strdup(json_string_value(v));
        if (!k || !s) {
            free(k);
            free(s);
            goto oom;
        }
        st->meta_keys[st->n_meta] = k;
        st->meta_values[st->n_meta] = s;
        st->n_meta++;
    }
    return 0;
oom:
    seterr(err, err_len, st->path, "out of memory reading __metadata__");
    return -1;
}

static int parse_tensor(safetensors *st, const char *name, const json_t *v, safetensors_tensor *t,
                        char *err, size_t err_len)
{
    const char *path = st->path;
    if (!json_is_object(v)) {
        seterr(err, err_len, path, "tensor %s: entry is not an object: %s", show(name).s,
               show_json(v).s);
        return -1;
    }
    const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *off = json_object_get(v, "data_offsets");
    if (!dt || !shape || !off) {
        seterr(err, err_len, path, "tensor %s: no %s", show(name).s,
               !dt ? "dtype" : !shape ? "shape" : "data_offsets");
        return -1;
    }
    if (!json_is_string(dt) || safetensors_dtype_parse(json_string_value(dt), &t->dtype)) {
        seterr(err, err_len, path, "tensor %s: unknown dtype %s", show(name).s, show_json(dt).s);
        return -1;
    }
    if (!json_is_array(shape)) {
        seterr(err, err_len, path, "tensor %s: shape %s is not a list", show(name).s,
               show_json(shape).s);
        return -1;
    }
    if (json_array_size(shape) > SAFETENSORS_MAX_DIMS) {
        seterr(err, err_len, path, "tensor %s: shape %s has %zu dimensions, at most %d supported",
               show(name).s, show_json(shape).s, json_array_size(shape), SAFETENSORS_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        int64_t n = json_nonneg(json_array_get(shape, (size_t)d));
        if (n < 0) {
            seterr(err, err_len, path,
                   "tensor %s: shape %s: dimension %d is not a non-negative integer",
                   show(name).s, show_json(shape).s, d);
            return -1;
        }
        t->shape[d] = n;
        if (__builtin_mul_overflow(t->numel, (uint64_t)n, &t->numel)) {
            seterr(err, err_len, path, "tensor %s: shape %s has too many elements",
                   show(name).s, show_json(shape).s);
            return -1;
        }
    }
    if (__builtin_mul_overflow(t->numel, (uint64_t)safetensors_dtype_size(t->dtype), &t->nbytes)) {
        seterr(err, err_len, path, "tensor %s: shape %s has too many bytes", show(name).s,
               show_json(shape).s);
        return -1;
    }
    int64_t b = -1, e = -1;
    if (json_is_array(off) && json_array_size(off) == 2) {
        b = json_nonneg(json_array_get(off, 0));
        e = json_nonneg(json_array_get(off, 1));
    }
    if (b < 0 || e < 0) {
        seterr(err, err_len, path,
               "tensor %s: data_offsets %s is not two non-negative integers [begin, end]",
               show(name).s, show_json(off).s);
        return -1;
    }
    if (e < b) {
        seterr(err, err_len, path, "tensor %s: data_offsets [%lld, %lld] end before they begin",
               show(name).s, (long long)b, (long long)e);
        return -1;
    }
    if ((uint64_t)(e - b) != t->nbytes) {
        seterr(err, err_len, path, "tensor %s: data_offsets [%lld, %lld] but %s %s needs %llu bytes",
               show(name).s, (long long)b, (long long)e, dtypes[t->dtype].name,
               show_shape(t->shape, t->ndim).s, (unsigned long long)t->nbytes);
        return -1;
    }
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    return 0;
}

typedef struct {
    safetensors_tensor t;
    size_t order; /* position in the header */
} ordered_tensor;

static int by_offset(const void *pa, const void *pb)
{
    const ordered_tensor *a = pa, *b = pb;
    if (a->t.begin != b->t.begin)
        return a->t.begin < b->t.begin ? -1 : 1;
    if (a->t.end != b->t.end)
        return a->t.end < b->t.end ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

typedef struct {
    const char *name;
    int index;
} named;

static int by_name(const void *pa, const void *pb)
{
    return strcmp(((const named *)pa)->name, ((const named *)pb)->name);
}

/* the tensors in file order, checked for overlaps and against the file's size */
static int layout(safetensors *st, ordered_tensor *ot, size_t n, char *err, size_t err_len)
{
    qsort(ot, n, sizeof *ot, by_offset);
    const safetensors_tensor *last = NULL; /* the non-empty tensor reaching furthest */
    uint64_t covered = 0, max_end = 0;
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = &ot[i].t;
        if (t->nbytes == 0)
            continue;
        if (last && t->begin < last->end) {
            seterr(err, err_len, st->path,
                   "tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", show(last->name).s,
                   (unsigned long long)last->begin, (unsigned long long)last->end,
                   show(t->name).s, (unsigned long long)t->begin, (unsigned long long)t->end);
            return -1;
        }
        last = t;
        covered += t->nbytes;
        if (t->end > max_end)
            max_end = t->end;
    }
    uint64_t data_len = st->file_size - st->data_start;
    if (max_end > data_len && covered == max_end) { /* a consistent layout cut short */
        seterr(err, err_len, st->path, "truncated: header says %llu bytes of data, file has %llu",
               (unsigned long long)max_end, (unsigned long long)data_len);
        return -1;
    }
    for (size_t i = 0; i < n; i++) /* empty tensors included */
        if (ot[i].t.end > data_len) {
            seterr(err, err_len, st->path,
                   "tensor %s: data_offsets [%llu, %llu] beyond the %llu bytes of data",
                   show(ot[i].t.name).s, (unsigned long long)ot[i].t.begin,
                   (unsigned long long)ot[i].t.end, (unsigned long long)data_len);
            return -1;
        }
    return 0;
}

static int parse_header(safetensors *st, const char *text, size_t len, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        seterr(err, err_len, st->path, "header is not valid JSON: %s (line %d, column %d)",
               jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = -1;
    ordered_tensor *ot = NULL;
    size_t n = 0;
    if (!json_is_object(root)) {
        seterr(err, err_len, st->path, "header is not a JSON object but %s",
               json_is_array(root) ? "an array" : "a scalar");
        goto out;
    }
    size_t cap = json_object_size(root);
    ot = calloc(cap ? cap : 1, sizeof *ot);
    if (!ot) {
        seterr(err, err_len, st->path, "out of memory for %zu header entries", cap);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(st, v, err, err_len))
                goto out;
            continue;
        }
        ordered_tensor *o = &ot[n];
        o->order = n;
        if (parse_tensor(st, key, v, &o->t, err, err_len))
            goto out;
        if (!(o->t.name = strdup(key))) {
            seterr(err, err_len, st->path, "out of memory");
            goto out;
        }
        n++;
    }
    if (layout(st, ot, n, err, err_len))
        goto out;
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
    if (!st->tensors || !st->by_name) {
        seterr(err, err_len, st->path, "out of memory for %zu tensors", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        st->tensors[i] = ot[i].t;
        ot[i].t.name = NULL;
    }
    st->n = (int)n;
    named *names = malloc((n ? n : 1) * sizeof *names);
    if (!names) {
        seterr(err, err_len, st->path, "out of memory for %zu tensors", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        names[i] = (named){st->tensors[i].name, (int)i};
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++)
        st->by_name[i] = names[i].index;
    free(names);
    rc = 0;
out:
    if (ot)
        for (size_t i = 0; i < n; i++)
            free(ot[i].t.name);
    free(ot);
    json_decref(root);
    return rc;
}

int safetensors_open(const char *path, safetensors *st, char *err, size_t err_len)
{
    memset(st, 0, sizeof *st);
    st->fd = -1;
    if (!(st->path = strdup(path))) {
        seterr(err, err_len, path, "out of memory");
        return -1;
    }
    char *header = NULL;
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0) {
        seterr(err, err_len, path, "%s", strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(st->fd, &sb)) {
        seterr(err, err_len, path, "%s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        seterr(err, err_len, path, "not a regular file");
        goto fail;
    }
    st->file_size = (uint64_t)sb.st_size;
    if (st->file_size < 8) {
        seterr(err, err_len, path, "file is %llu bytes, too short for the 8-byte header length",
               (unsigned long long)st->file_size);
        goto fail;
    }
    unsigned char lenbuf[8];
    int r = pread_all(st->fd, lenbuf, 8, 0);
    if (r) {
        seterr(err, err_len, path, "reading the header length: %s",
               r > 0 ? "unexpected end of file" : strerror(errno));
        goto fail;
    }
    st->header_len = le64(lenbuf);
    if (st->header_len == 0) {
        seterr(err, err_len, path, "header length is 0");
        goto fail;
    }
    if (st->header_len > st->file_size - 8) {
        seterr(err, err_len, path, "header length %llu is larger than the %llu bytes that follow it",
               (unsigned long long)st->header_len, (unsigned long long)(st->file_size - 8));
        goto fail;
    }
    if (st->header_len > SAFETENSORS_MAX_HEADER) {
        seterr(err, err_len, path, "header length %llu is over the limit of %llu bytes",
               (unsigned long long)st->header_len, SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    st->data_start = 8 + st->header_len;
    header = malloc((size_t)st->header_len);
    if (!header) {
        seterr(err, err_len, path, "out of memory for a header of %llu bytes",
               (unsigned long long)st->header_len);
        goto fail;
    }
    r = pread_all(st->fd, header, (size_t)st->header_len, 8);
    if (r) {
        seterr(err, err_len, path, "reading the header: %s",
               r > 0 ? "unexpected end of file" : strerror(errno));
        goto fail;
    }
    if (parse_header(st, header, (size_t)st->header_len, err, err_len))
        goto fail;
    free(header);
    return 0;
fail:
    free(header);
    safetensors_close(st);
    return -1;
}

const safetensors_tensor *safetensors_find(const safetensors *st, const char *name)
{
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const safetensors_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *safetensors_metadata(const safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

int safetensors_read_bytes(const safetensors *st, const safetensors_tensor *t, uint64_t offset,
                           void *buf, size_t len, char *err, size_t err_len)
{
    if (offset > t->nbytes || len > t->nbytes - offset) {
        seterr(err, err_len, st->path, "tensor %s: bytes [%llu, %llu] out of its %llu",
               show(t->name).s, (unsigned long long)offset, (unsigned long long)offset + len,
               (unsigned long long)t->nbytes);
        return -1;
    }
    int r = pread_all(st->fd, buf, len, st->data_start + t->begin + offset);
    if (r) {
        seterr(err, err_len, st->path, "tensor %s: %s", show(t->name).s,
               r > 0 ? "unexpected end of file (did the file change?)" : strerror(errno));
        return -1;
    }
    return 0;
}

int safetensors_read(const safetensors *st, const safetensors_tensor *t, void *buf,
                     size_t buf_len, char *err, size_t err_len)
{
    if (buf_len < t->nbytes) {
        seterr(err, err_len, st->path, "tensor %s: buffer of %zu bytes for %llu", show(t->name).s,
               buf_len, (unsigned long long)t->nbytes);
        return -1;
    }
    return safetensors_read_bytes(st, t, 0, buf, (size_t)t->nbytes, err, err_len);
}

float safetensors_bf16_to_f32(uint16_t bits)
{
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float safetensors_f16_to_f32(uint16_t bits)
{
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exp = (bits >> 10) & 0x1fu, mant = bits & 0x3ffu, u;
    if (exp == 0) { /* zero or subnormal: mant × 2^-24, exact in fp32 */
        float f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31) /* infinity or NaN, payload kept */
        u = sign | 0x7f800000u | mant << 13;
    else
        u = sign | (exp + 112) << 23 | mant << 13;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void convert(safetensors_dtype dtype, const unsigned char *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case ST_BF16:
            dst[i] = safetensors_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
            break;
        case ST_F16:
            dst[i] = safetensors_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
            break;
        case ST_F32: {
            uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &u, sizeof u);
            break;
        }
        case ST_F64: {
            uint64_t u = le64(src + 8 * i);
            double d;
            memcpy(&d, &u, sizeof d);
            dst[i] = (float)d;
            break;
        }
        default:
            break;
        }
    }
}

int safetensors_read_f32_range(const safetensors *st, const safetensors_tensor *t,
                               uint64_t first, size_t count, float *out, char *err,
                               size_t err_len)
{
    safetensors_dtype dt = t->dtype;
    if (dt != ST_F32 && dt != ST_BF16 && dt != ST_F16 && dt != ST_F64) {
        seterr(err, err_len, st->path, "tensor %s: dtype %s cannot be read as F32",
               show(t->name).s, dtypes[dt].name);
        return -1;
    }
    if (first > t->numel || count > t->numel - first) {
        seterr(err, err_len, st->path, "tensor %s: elements [%llu, %llu] out of its %llu",
               show(t->name).s, (unsigned long long)first, (unsigned long long)first + count,
               (unsigned long long)t->numel);
        return -1;
    }
    size_t size = dtypes[dt].size;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (dt == ST_F32)
        return safetensors_read_bytes(st, t, first * 4, out, count * 4, err, err_len);
#endif
    unsigned char chunk[16384];
    size_t per = sizeof chunk / size;
    for (size_t done = 0; done < count;) {
        size_t k = count - done < per ? count - done : per;
        if (safetensors_read_bytes(st, t, (first + done) * size, chunk, k * size, err, err_len))
            return -1;
        convert(dt, chunk, out + done, k);
        done += k;
    }
    return 0;
}

int safetensors_read_f32(const safetensors *st, const safetensors_tensor *t, float *out,
                         size_t out_len, char *err, size_t err_len)
{
    if (out_len < t->numel) {
        seterr(err, err_len, st->path, "tensor %s: room for %zu floats, it has %llu",
               show(t->name).s, out_len, (unsigned long long)t->numel);
        return -1;
    }
    return safetensors_read_f32_range(st, t, 0, (size_t)t->numel, out, err, err_len);
}

/* ---- writer ---- */

static void writer_free(safetensors_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    for (int i = 0; i < w->n; i++)
        free(w->names[i]);
    free(w->names);
    free(w->nbytes);
    free(w->path);
    free(w->target);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

void safetensors_writer_abort(safetensors_writer *w)
{
    if (w->fd >= 0 && w->path)
        unlink(w->path);
    writer_free(w);
}

/* the header JSON for the tensors and metadata, or NULL with err */
static char *build_header(safetensors_writer *w, const safetensors_desc *tensors, int n,
                          const safetensors_kv *meta, int n_meta, char *err, size_t err_len)
{
    const char *path = w->target;
    char *text = NULL;
    json_t *root = json_object();
    if (!root)
        goto oom;
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m))
            goto oom;
        for (int i = 0; i < n_meta; i++) {
            const char *k = meta[i].key, *v = meta[i].value;
            if (!k || !v) {
                seterr(err, err_len, path, "metadata entry %d has no %s", i, !k ? "key" : "value");
                goto fail;
            }
            if (json_object_get(m, k)) {
                seterr(err, err_len, path, "metadata key %s given twice", show(k).s);
                goto fail;
            }
            json_t *s = json_string(v);
            if (!s || json_object_set_new(m, k, s)) {
                seterr(err, err_len, path, "metadata %s: key or value is not UTF-8", show(k).s);
                goto fail;
            }
        }
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const safetensors_desc *d = &tensors[i];
        if (!d->name || !d->name[0]) {
            seterr(err, err_len, path, "tensor %d has no name", i);
            goto fail;
        }
        const char *name = d->name;
        if (strcmp(name, "__metadata__") == 0 || json_object_get(root, name)) {
            seterr(err, err_len, path, "tensor name %s %s", show(name).s,
                   strcmp(name, "__metadata__") ? "given twice" : "is reserved");
            goto fail;
        }
        if ((unsigned)d->dtype >= ST_DTYPE_COUNT) {
            seterr(err, err_len, path, "tensor %s: dtype %d unknown", show(name).s, (int)d->dtype);
            goto fail;
        }
        if (d->ndim < 0 || d->ndim > SAFETENSORS_MAX_DIMS) {
            seterr(err, err_len, path, "tensor %s: %d dimensions", show(name).s, d->ndim);
            goto fail;
        }
        uint64_t numel = 1, nbytes, end;
        json_t *shape = json_array();
        json_t *entry = json_object();
        if (!shape || !entry) {
            json_decref(shape);
            json_decref(entry);
            goto oom;
        }
        json_object_set_new(entry, "dtype", json_string(dtypes[d->dtype].name));
        json_object_set_new(entry, "shape", shape);
        for (int k = 0; k < d->ndim; k++) {
            if (d->shape[k] < 0 || __builtin_mul_overflow(numel, (uint64_t)d->shape[k], &numel)) {
                seterr(err, err_len, path, "tensor %s: bad shape %s", show(name).s,
                       show_shape(d->shape, d->ndim).s);
                json_decref(entry);
                goto fail;
            }
            json_array_append_new(shape, json_integer((json_int_t)d->shape[k]));
        }
        if (__builtin_mul_overflow(numel, (uint64_t)dtypes[d->dtype].size, &nbytes) ||
            __builtin_add_overflow(offset, nbytes, &end) || end > (uint64_t)INT64_MAX) {
            seterr(err, err_len, path, "tensor %s: too large", show(name).s);
            json_decref(entry);
            goto fail;
        }
        json_t *off = json_array();
        json_object_set_new(entry, "data_offsets", off);
        json_array_append_new(off, json_integer((json_int_t)offset));
        json_array_append_new(off, json_integer((json_int_t)end));
        if (json_object_set_new(root, name, entry)) {
            seterr(err, err_len, path, "tensor name %s is not UTF-8", show(name).s);
            goto fail;
        }
        if (!(w->names[i] = strdup(name)))
            goto oom;
        w->n = i + 1;
        w->nbytes[i] = nbytes;
        offset = end;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto oom;
    json_decref(root);
    return text;
oom:
    seterr(err, err_len, path, "out of memory for the header");
fail:
    json_decref(root);
    return NULL;
}

int safetensors_writer_begin(safetensors_writer *w, const char *path, const safetensors_desc *tensors,
                             int n, const safetensors_kv *meta, int n_meta, char *err,
                             size_t err_len)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta)) {
        seterr(err, err_len, path, "bad tensor or metadata list");
        return -1;
    }
    size_t plen = strlen(path);
    w->target = strdup(path);
    w->path = malloc(plen + 5);
    w->names = calloc(n ? (size_t)n : 1, sizeof *w->names);
    w->nbytes = calloc(n ? (size_t)n : 1, sizeof *w->nbytes);
    if (!w->target || !w->path || !w->names || !w->nbytes) {
        seterr(err, err_len, path, "out of memory");
        writer_free(w);
        return -1;
    }
    memcpy(w->path, path, plen);
    memcpy(w->path + plen, ".tmp", 5);
    char *text = build_header(w, tensors, n, meta, n_meta, err, err_len);
    if (!text) {
        writer_free(w);
        return -1;
    }
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    unsigned char *buf = malloc(8 + padded);
    if (!buf) {
        free(text);
        seterr(err, err_len, path, "out of memory for the header");
        writer_free(w);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, text, len);
    memset(buf + 8 + len, ' ', padded - len);
    free(text);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        seterr(err, err_len, w->path, "%s", strerror(errno));
        free(buf);
        writer_free(w);
        return -1;
    }
    int rc = write_all(w->fd, buf, 8 + padded);
    free(buf);
    if (rc) {
        seterr(err, err_len, w->path, "writing the header: %s", strerror(errno));
        safetensors_writer_abort(w);
        return -1;
    }
    return 0;
}

static int writer_ready(safetensors_writer *w, size_t nbytes, char *err, size_t err_len)
{
    if (w->failed) {
        seterr(err, err_len, w->target, "an earlier write failed");
        return -1;
    }
    if (w->cur >= w->n) {
        seterr(err, err_len, w->target, "%zu bytes given after all %d tensors were written",
               nbytes, w->n);
        return -1;
    }
    return 0;
}

static int writer_put(safetensors_writer *w, const void *data, size_t nbytes, char *err,
                      size_t err_len)
{
    if (nbytes && write_all(w->fd, data, nbytes)) {
        seterr(err, err_len, w->path, "tensor %s: %s", show(w->names[w->cur]).s, strerror(errno));
        w->failed = 1;
        return -1;
    }
    w->cur_done += nbytes;
    if (w->cur_done == w->nbytes[w->cur]) {
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int safetensors_writer_write(safetensors_writer *w, const void *data, size_t nbytes, char *err,
                             size_t err_len)
{
    if (writer_ready(w, nbytes, err, err_len))
        return -1;
    const char *name = w->names[w->cur];
    if (w->cur_done) {
        seterr(err, err_len, w->target, "tensor %s: whole tensor given after %llu of its bytes",
               show(name).s, (unsigned long long)w->cur_done);
        return -1;
    }
    if (nbytes != w->nbytes[w->cur]) {
        seterr(err, err_len, w->target, "tensor %s: %zu bytes given, it has %llu", show(name).s,
               nbytes, (unsigned long long)w->nbytes[w->cur]);
        return -1;
    }
    return writer_put(w, data, nbytes, err, err_len);
}

int safetensors_writer_write_part(safetensors_writer *w, const void *data, size_t nbytes,
                                  char *err, size_t err_len)
{
    if (writer_ready(w, nbytes, err, err_len))
        return -1;
    uint64_t left = w->nbytes[w->cur] - w->cur_done;
    if (nbytes > left) {
        seterr(err, err_len, w->target,
               "tensor %s: %zu bytes given, only %llu of its %llu remain", show(w->names[w->cur]).s,
               nbytes, (unsigned long long)left, (unsigned long long)w->nbytes[w->cur]);
        return -1;
    }
    return writer_put(w, data, nbytes, err, err_len);
}

int safetensors_writer_finish(safetensors_writer *w, char *err, size_t err_len)
{
    if (w->fd < 0) {
        seterr(err, err_len, w->target, "writer not open");
        writer_free(w);
        return -1;
    }
    if (w->failed) {
        seterr(err, err_len, w->target, "not written: an earlier write failed");
        goto fail;
    }
    if (w->cur < w->n) {
        seterr(err, err_len, w->target,
               "only %d of %d tensors written (tensor %s has %llu of its %llu bytes)", w->cur, w->n,
               show(w->names[w->cur]).s, (unsigned long long)w->cur_done,
               (unsigned long long)w->nbytes[w->cur]);
        goto fail;
    }
    if (fsync(w->fd)) {
        seterr(err, err_len, w->path, "fsync: %s", strerror(errno));
        goto fail;
    }
    int rc = close(w->fd);
    w->fd = -1;
    if (rc) {
        seterr(err, err_len, w->path, "close: %s", strerror(errno));
        unlink(w->path);
        writer_free(w);
        return -1;
    }
    if (rename(w->path, w->target)) {
        seterr(err, err_len, w->target, "renaming %s: %s", w->path, strerror(errno));
        unlink(w->path);
        writer_free(w);
        return -1;
    }
    /* make the rename durable */
    char *slash = strrchr(w->target, '/');
    char *dir = slash ? strndup(w->target, (size_t)(slash - w->target) + (slash == w->target))
                      : strdup(".");
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    writer_free(w);
    return 0;
fail:
    safetensors_writer_abort(w);
    return -1;
}
