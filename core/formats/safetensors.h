/* The safetensors file format: an 8-byte little-endian header length N, N bytes
 * of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}} (padded with spaces), then the tensors' bytes,
 * little-endian, at offsets relative to the byte after the header.
 *
 * The reader validates the header only and reads tensors one at a time with
 * pread, so a file of many gigabytes is never held in memory; the writer streams
 * tensors in the order they were declared, so neither is a checkpoint.
 * Every error is one line, "<path>: <what is wrong>", written into err. */
#ifndef FLAME_SAFETENSORS_H
#define FLAME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
/* headers larger than this are refused (the reference implementation's limit) */
#define SAFETENSORS_MAX_HEADER 100000000ull

typedef enum safetensors_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_F8_E8M0,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_I64,
    ST_U64,
    ST_F64,
    ST_DTYPE_COUNT
} safetensors_dtype;

/* "F32", "BF16", ...; NULL for a value out of range */
const char *safetensors_dtype_name(safetensors_dtype dtype);
/* a shape as "[a, b]" into buf (cut to len), for messages; returns buf */
const char *safetensors_shape_text(char *buf, size_t len, int ndim, const int64_t *shape);
/* bytes per element; 0 for a value out of range */
size_t safetensors_dtype_size(safetensors_dtype dtype);
/* 0 and *dtype set, or -1 for a name that is not a known dtype */
int safetensors_dtype_parse(const char *name, safetensors_dtype *dtype);

typedef struct safetensors_tensor {
    char *name;
    safetensors_dtype dtype;
    int ndim;                               /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t numel;                         /* product of shape; 1 for a scalar */
    uint64_t nbytes;                        /* numel × dtype size */
    uint64_t begin, end;                    /* data_offsets, relative to the data section */
} safetensors_tensor;

typedef struct safetensors {
    int fd;
    char *path;
    uint64_t file_size;
    uint64_t header_len;                    /* N */
    uint64_t data_start;                    /* 8 + N: file offset of the data section */
    int n;                                  /* tensors */
    safetensors_tensor *tensors;            /* [n], in file order: ascending offsets */
    int n_meta;
    char **meta_keys, **meta_values;        /* [n_meta], __metadata__ in header order */
    int *by_name;                           /* [n]: indices into tensors, sorted by name */
} safetensors;

/* Opens path and validates its header (nothing else is read): header length
 * within the file, a JSON object, every tensor with a known dtype, a shape of
 * non-negative integers and offsets that match its size, lie in the data section
 * and overlap no other tensor; __metadata__, if present, of string values.
 * Returns 0, or -1 with err (st is then left closed: safetensors_close is a no-op). */
int safetensors_open(const char *path, safetensors *st, char *err, size_t err_len);
void safetensors_close(safetensors *st);

/* the tensor of that name, or NULL */
const safetensors_tensor *safetensors_find(const safetensors *st, const char *name);
/* the __metadata__ value of that key, or NULL */
const char *safetensors_metadata(const safetensors *st, const char *key);

/* Reads the whole tensor's bytes (little-endian, as stored) into buf, which
 * holds buf_len bytes (at least t->nbytes). Returns 0, or -1 with err. */
int safetensors_read(const safetensors *st, const safetensors_tensor *t, void *buf,
                     size_t buf_len, char *err, size_t err_len);
/* Reads bytes [offset, offset + len) of the tensor's data, for tensors too
 * large to read at once. Returns 0, or -1 with err. */
int safetensors_read_bytes(const safetensors *st, const safetensors_tensor *t, uint64_t offset,
                           void *buf, size_t len, char *err, size_t err_len);

/* Reads the tensor converted to fp32 into out, which holds out_len floats (at
 * least t->numel). F32, BF16 and F16 convert exactly (F16 subnormals, infinities
 * and NaNs included); F64 rounds to nearest. Other dtypes are refused.
 * Returns 0, or -1 with err. */
int safetensors_read_f32(const safetensors *st, const safetensors_tensor *t, float *out,
                         size_t out_len, char *err, size_t err_len);
/* the same for elements [first, first + count) */
int safetensors_read_f32_range(const safetensors *st, const safetensors_tensor *t,
                               uint64_t first, size_t count, float *out, char *err,
                               size_t err_len);

/* exact conversions of one element's bits */
float safetensors_bf16_to_f32(uint16_t bits);
float safetensors_f16_to_f32(uint16_t bits);

/* ---- writer ---- */

typedef struct safetensors_desc {
    const char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
} safetensors_desc;

typedef struct safetensors_kv {
    const char *key, *value;
} safetensors_kv;

typedef struct safetensors_writer {
    int fd;
    char *path;                 /* the file being written: "<target>.tmp" */
    char *target;               /* renamed to this by finish */
    int n;                      /* tensors declared */
    char **names;               /* [n] */
    uint64_t *nbytes;           /* [n] */
    int cur;                    /* the tensor being written */
    uint64_t cur_done;          /* bytes of it written so far */
    int failed;                 /* an error happened: only finish/abort remain */
} safetensors_writer;

/* Creates "<path>.tmp" and writes the header: the tensors' names in the order
 * given, their offsets laid out back to back in that order, the metadata as
 * __metadata__ (may be NULL with n_meta 0), padded with spaces so the data
 * starts at a multiple of 8 bytes. Names must be unique, non-empty UTF-8 and not
 * "__metadata__". Returns 0, or -1 with err (nothing is left on disk). */
int safetensors_writer_begin(safetensors_writer *w, const char *path, const safetensors_desc *tensors,
                             int n, const safetensors_kv *meta, int n_meta, char *err,
                             size_t err_len);
/* Writes the whole of the next tensor: nbytes must be its size exactly (a
 * tensor of 0 bytes takes a call with nbytes 0). Returns 0, or -1 with err. */
int safetensors_writer_write(safetensors_writer *w, const void *data, size_t nbytes, char *err,
                             size_t err_len);
/* Writes part of the current tensor (it may not run past its end); the next
 * tensor begins once the current one is complete. Returns 0, or -1 with err. */
int safetensors_writer_write_part(safetensors_writer *w, const void *data, size_t nbytes,
                                  char *err, size_t err_len);
/* Checks every tensor was written in full, fsyncs, renames "<path>.tmp" to path
 * and fsyncs its directory. Always releases the writer; on failure the partial
 * file is removed. Returns 0, or -1 with err. */
int safetensors_writer_finish(safetensors_writer *w, char *err, size_t err_len);
/* Gives up: closes and removes the partial file. */
void safetensors_writer_abort(safetensors_writer *w);

#endif
