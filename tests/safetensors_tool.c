/* A small driver of core/safetensors.c for tests/safetensors_interop.py:
 *   safetensors_tool dump FILE   prints "meta KEY VALUE" for each __metadata__
 *                                entry, then for each tensor in file order
 *                                "tensor NAME DTYPE [D0,D1,...] NBYTES RAWHASH F32HASH"
 *                                (FNV-1a 64 of the stored bytes and of the values
 *                                as little-endian fp32, "-" where not convertible)
 *   safetensors_tool write FILE  writes a fixed set of tensors (see below)
 * Errors go to stderr as one line; the exit status is 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define FNV0 0xcbf29ce484222325ull

static int dump(const char *path)
{
    char err[512];
    safetensors st;
    if (safetensors_open(path, &st, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (int i = 0; i < st.n_meta; i++)
        printf("meta %s %s\n", st.meta_keys[i], st.meta_values[i]);
    int rc = 0;
    for (int i = 0; i < st.n && !rc; i++) {
        const safetensors_tensor *t = &st.tensors[i];
        printf("tensor %s %s [", t->name, safetensors_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
        printf("] %llu", (unsigned long long)t->nbytes);
        unsigned char buf[65536];
        uint64_t h = FNV0;
        for (uint64_t off = 0; off < t->nbytes && !rc; off += sizeof buf) {
            size_t k = t->nbytes - off < sizeof buf ? (size_t)(t->nbytes - off) : sizeof buf;
            rc = safetensors_read_bytes(&st, t, off, buf, k, err, sizeof err);
            h = fnv(h, buf, k);
        }
        printf(" %016llx", (unsigned long long)h);
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64) {
            float f[4096];
            h = FNV0;
            for (uint64_t e = 0; e < t->numel && !rc; e += 4096) {
                size_t k = t->numel - e < 4096 ? (size_t)(t->numel - e) : 4096;
                rc = safetensors_read_f32_range(&st, t, e, k, f, err, sizeof err);
                for (size_t j = 0; j < k; j++) { /* little-endian bytes, whatever the host */
                    uint32_t u;
                    memcpy(&u, &f[j], 4);
                    unsigned char le[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                                           (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
                    h = fnv(h, le, 4);
                }
            }
            printf(" %016llx\n", (unsigned long long)h);
        } else {
            printf(" -\n");
        }
    }
    if (rc)
        fprintf(stderr, "%s\n", err);
    safetensors_close(&st);
    return rc ? 1 : 0;
}

/* The tensors safetensors_interop.py expects, in this order:
 *   f32   F32 [3,4]  (i - 5) * 0.375
 *   f16   F16 [6]    bits 3C00 C100 0001 7BFF 7C00 FC00
 *   f64   F64 []     -2.5e-300
 *   i64   I64 [2,3]  i * -1000000007
 *   i32   I32 [0]
 *   u8    U8  [1,5]  i * 50
 *   flags BOOL [3]   1 0 1
 *   i16   I16 [2]    -32768 32767
 * metadata: format=pt, origin=flame */
static int write_fixed(const char *path)
{
    safetensors_desc d[] = {
        {"f32", ST_F32, 2, {3, 4}}, {"f16", ST_F16, 1, {6}},   {"f64", ST_F64, 0, {0}},
        {"i64", ST_I64, 2, {2, 3}}, {"i32", ST_I32, 1, {0}},   {"u8", ST_U8, 2, {1, 5}},
        {"flags", ST_BOOL, 1, {3}}, {"i16", ST_I16, 1, {2}},
    };
    safetensors_kv meta[] = {{"format", "pt"}, {"origin", "flame"}};
    float f32[12];
    for (int i = 0; i < 12; i++)
        f32[i] = (float)(i - 5) * 0.375f;
    uint16_t f16[6] = {0x3C00, 0xC100, 0x0001, 0x7BFF, 0x7C00, 0xFC00};
    double f64 = -2.5e-300;
    int64_t i64[6];
    for (int i = 0; i < 6; i++)
        i64[i] = (int64_t)i * -1000000007;
    unsigned char u8[5] = {0, 50, 100, 150, 200}, flags[3] = {1, 0, 1};
    int16_t i16[2] = {-32768, 32767};
    const void *data[] = {f32, f16, &f64, i64, NULL, u8, flags, i16};
    size_t sizes[] = {sizeof f32, sizeof f16, 8, sizeof i64, 0, 5, 3, 4};
    char err[512];
    safetensors_writer w;
    if (safetensors_writer_begin(&w, path, d, 8, meta, 2, err, sizeof err))
        goto fail;
    for (int i = 0; i < 8; i++)
        if (safetensors_writer_write(&w, data[i], sizes[i], err, sizeof err)) {
            safetensors_writer_abort(&w);
            goto fail;
        }
    if (safetensors_writer_finish(&w, err, sizeof err))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "%s\n", err);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "dump"))
        return dump(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "write"))
        return write_fixed(argv[2]);
    fprintf(stderr, "usage: %s dump|write FILE\n", argv[0]);
    return 2;
}
