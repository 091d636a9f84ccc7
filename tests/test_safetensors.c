/* The safetensors reader and writer: round trips of every kind of tensor, the
 * fp32 conversions against known bit patterns, and malformed files, each refused
 * with its one-line message (and, fuzzed, never a crash). */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "testing.h"

static char dir[256];
static char err[512];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* a file whose header says header_len bytes (or the text's length when
 * header_len is UINT64_MAX), then the text, then data_len bytes of data */
static const char *raw_file(const char *name, uint64_t header_len, const char *text,
                            size_t data_len)
{
    const char *path = tmp_path(name);
    size_t tlen = strlen(text);
    if (header_len == UINT64_MAX)
        header_len = tlen;
    unsigned char *buf = calloc(8 + tlen + data_len + 1, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(buf + 8, text, tlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + tlen + i] = (unsigned char)(i * 7);
    write_file(path, buf, 8 + tlen + data_len);
    free(buf);
    return path;
}

/* one line, starting with the path, containing want */
static void expect_refused(const char *path, const char *want)
{
    safetensors st;
    err[0] = 0;
    int rc = safetensors_open(path, &st, err, sizeof err);
    CHECK(rc == -1, "%s: opened, expected \"%s\"", path, want);
    if (rc == 0) {
        safetensors_close(&st);
        return;
    }
    CHECK(strncmp(err, path, strlen(path)) == 0 && strncmp(err + strlen(path), ": ", 2) == 0,
          "message does not start with the path: %s", err);
    CHECK(!strchr(err, '\n'), "message has a newline: %s", err);
    if (getenv("VERBOSE"))
        printf("%s\n", err);
    CHECK(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
    CHECK(st.fd == -1 && st.n == 0 && !st.tensors, "refused file left open");
    safetensors_close(&st); /* a no-op, must be harmless */
}

/* ---- round trip ---- */

enum { NT = 10 };

static void fill_bytes(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i * 17 + (i >> 3));
}

static void test_round_trip(void)
{
    safetensors_desc d[NT] = {
        {"model.embed_tokens.weight", ST_F32, 2, {3, 4}},
        {"scalar", ST_F64, 0, {0}},
        {"empty", ST_F32, 1, {0}},
        {"half", ST_F16, 1, {5}},
        {"brain", ST_BF16, 2, {2, 3}},
        {"ids", ST_I64, 3, {2, 2, 2}},
        {"mask", ST_BOOL, 1, {3}},
        {"i32", ST_I32, 1, {7}},
        {"bytes", ST_U8, 3, {1, 1, 5}},
        {"big.part.written", ST_F32, 2, {100, 37}},
    };
    safetensors_kv meta[] = {{"format", "pt"}, {"step", "123"}, {"note", "h\xc3\xa9llo \"q\"\n"}};
    unsigned char *data[NT];
    size_t sizes[NT];
    for (int i = 0; i < NT; i++) {
        size_t numel = 1;
        for (int k = 0; k < d[i].ndim; k++)
            numel *= (size_t)d[i].shape[k];
        sizes[i] = numel * safetensors_dtype_size(d[i].dtype);
        data[i] = malloc(sizes[i] + 1);
        fill_bytes(data[i], sizes[i], (unsigned)i);
    }
    /* real values where conversions are checked */
    float *emb = (float *)data[0];
    for (int i = 0; i < 12; i++)
        emb[i] = (float)i * 0.25f - 1.0f;
    double sc = -3.141592653589793;
    memcpy(data[1], &sc, 8);
    const char *path = tmp_path("round.safetensors");
    safetensors_writer w;
    int rc = safetensors_writer_begin(&w, path, d, NT, meta, 3, err, sizeof err);
    CHECK(rc == 0, "writer_begin: %s", err);
    if (rc)
        return;
    CHECK(access(path, F_OK) != 0, "target exists before finish");
    for (int i = 0; i < NT - 1; i++)
        CHECK(safetensors_writer_write(&w, data[i], sizes[i], err, sizeof err) == 0, "write %d: %s",
              i, err);
    /* the last one in uneven parts */
    size_t done = 0, step = 1;
    while (done < sizes[NT - 1]) {
        size_t k = sizes[NT - 1] - done < step ? sizes[NT - 1] - done : step;
        CHECK(safetensors_writer_write_part(&w, data[NT - 1] + done, k, err, sizeof err) == 0,
              "write_part: %s", err);
        done += k;
        step = step * 3 + 1;
    }
    CHECK(safetensors_writer_finish(&w, err, sizeof err) == 0, "finish: %s", err);
    CHECK(access(tmp_path("round.safetensors.tmp"), F_OK) != 0, ".tmp left behind");

    safetensors st;
    rc = safetensors_open(path, &st, err, sizeof err);
    CHECK(rc == 0, "open: %s", err);
    if (rc)
        goto out;
    CHECK(st.header_len % 8 == 0 && st.data_start % 8 == 0, "header length %llu not padded",
          (unsigned long long)st.header_len);
    CHECK(st.n == NT, "%d tensors", st.n);
    CHECK(st.n_meta == 3, "%d metadata", st.n_meta);
    for (int i = 0; i < 3 && i < st.n_meta; i++)
        CHECK(!strcmp(st.meta_keys[i], meta[i].key) && !strcmp(st.meta_values[i], meta[i].value),
              "metadata %d: %s=%s", i, st.meta_keys[i], st.meta_values[i]);
    CHECK(safetensors_metadata(&st, "step") && !strcmp(safetensors_metadata(&st, "step"), "123"),
          "metadata lookup");
    CHECK(!safetensors_metadata(&st, "nope"), "metadata lookup of a missing key");
    CHECK(!safetensors_find(&st, "nope") && !safetensors_find(&st, ""), "found a missing tensor");
    for (int i = 0; i < NT && i < st.n; i++) {
        const safetensors_tensor *t = &st.tensors[i];
        CHECK(!strcmp(t->name, d[i].name), "file order %d: %s", i, t->name);
        CHECK(safetensors_find(&st, d[i].name) == t, "find %s", d[i].name);
        CHECK(t->dtype == d[i].dtype && t->ndim == d[i].ndim, "%s: dtype/ndim", d[i].name);
        for (int k = 0; k < t->ndim; k++)
            CHECK(t->shape[k] == d[i].shape[k], "%s: shape[%d]", d[i].name, k);
        CHECK(t->nbytes == sizes[i], "%s: %llu bytes", d[i].name, (unsigned long long)t->nbytes);
        CHECK(t->numel * safetensors_dtype_size(t->dtype) == t->nbytes, "%s: numel", d[i].name);
        unsigned char *buf = malloc(sizes[i] + 1);
        CHECK(safetensors_read(&st, t, buf, sizes[i], err, sizeof err) == 0, "read %s: %s",
              d[i].name, err);
        CHECK(memcmp(buf, data[i], sizes[i]) == 0, "%s: bytes differ", d[i].name);
        free(buf);
    }
    const safetensors_tensor *t = safetensors_find(&st, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 8, "scalar");
    t = safetensors_find(&st, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->begin == t->end, "empty");
    if (t) {
        float f;
        CHECK(safetensors_read(&st, t, &f, 0, err, sizeof err) == 0, "read empty: %s", err);
        CHECK(safetensors_read_f32(&st, t, &f, 0, err, sizeof err) == 0, "read_f32 empty: %s", err);
    }

    /* fp32 reads */
    float f[3700];
    t = safetensors_find(&st, "model.embed_tokens.weight");
    CHECK(safetensors_read_f32(&st, t, f, 12, err, sizeof err) == 0 &&
              !memcmp(f, data[0], 48), "read_f32 F32: %s", err);
    CHECK(safetensors_read_f32_range(&st, t, 5, 3, f, err, sizeof err) == 0 &&
              f[0] == 0.25f && f[2] == 0.75f, "read_f32_range F32");
    CHECK(safetensors_read_f32_range(&st, t, 10, 3, f, err, sizeof err) == -1 &&
              strstr(err, "out of its 12"), "range past the end: %s", err);
    CHECK(safetensors_read_f32(&st, t, f, 11, err, sizeof err) == -1 && strstr(err, "room for 11"),
          "small buffer: %s", err);
    CHECK(safetensors_read(&st, t, f, 47, err, sizeof err) == -1, "small byte buffer");
    t = safetensors_find(&st, "scalar");
    CHECK(safetensors_read_f32(&st, t, f, 1, err, sizeof err) == 0 && f[0] == (float)sc,
          "read_f32 F64: %g", f[0]);
    t = safetensors_find(&st, "half");
    CHECK(safetensors_read_f32(&st, t, f, 5, err, sizeof err) == 0, "read_f32 F16: %s", err);
    for (int i = 0; i < 5; i++) {
        uint16_t b = (uint16_t)(data[3][2 * i] | data[3][2 * i + 1] << 8);
        float r = safetensors_f16_to_f32(b);
        CHECK(!memcmp(&f[i], &r, 4), "F16 element %d", i);
    }
    t = safetensors_find(&st, "brain");
    CHECK(safetensors_read_f32(&st, t, f, 6, err, sizeof err) == 0, "read_f32 BF16: %s", err);
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)(data[4][2 * i] | data[4][2 * i + 1] << 8) << 16;
        CHECK(!memcmp(&f[i], &u, 4), "BF16 element %d", i);
    }
    t = safetensors_find(&st, "big.part.written");
    CHECK(safetensors_read_f32(&st, t, f, 3700, err, sizeof err) == 0 &&
              !memcmp(f, data[NT - 1], sizes[NT - 1]), "read_f32 of a large F32: %s", err);
    unsigned char part[10];
    CHECK(safetensors_read_bytes(&st, t, 1000, part, 10, err, sizeof err) == 0 &&
              !memcmp(part, data[NT - 1] + 1000, 10), "read_bytes: %s", err);
    CHECK(safetensors_read_bytes(&st, t, sizes[NT - 1] - 5, part, 10, err, sizeof err) == -1,
          "read_bytes past the end");
    t = safetensors_find(&st, "ids");
    CHECK(safetensors_read_f32(&st, t, f, 8, err, sizeof err) == -1 &&
              strstr(err, "dtype I64 cannot be read as F32"), "I64 as F32: %s", err);
    safetensors_close(&st);
    safetensors_close(&st);
out:
    for (int i = 0; i < NT; i++)
        free(data[i]);
}

/* a file with no tensors, only metadata, and one with nothing at all */
static void test_no_tensors(void)
{
    safetensors_writer w;
    safetensors st;
    safetensors_kv kv = {"k", "v"};
    const char *path = tmp_path("none.safetensors");
    CHECK(safetensors_writer_begin(&w, path, NULL, 0, &kv, 1, err, sizeof err) == 0 &&
              safetensors_writer_finish(&w, err, sizeof err) == 0, "no tensors: %s", err);
    CHECK(safetensors_open(path, &st, err, sizeof err) == 0, "open: %s", err);
    CHECK(st.n == 0 && st.n_meta == 1, "no tensors: %d %d", st.n, st.n_meta);
    safetensors_close(&st);
    CHECK(safetensors_writer_begin(&w, path, NULL, 0, NULL, 0, err, sizeof err) == 0 &&
              safetensors_writer_finish(&w, err, sizeof err) == 0, "nothing: %s", err);
    CHECK(safetensors_open(path, &st, err, sizeof err) == 0 && st.n == 0 && st.n_meta == 0,
          "open nothing: %s", err);
    safetensors_close(&st);
}

static void test_writer_errors(void)
{
    safetensors_writer w;
    const char *path = tmp_path("w.safetensors");
    safetensors_desc two[] = {{"a", ST_F32, 1, {4}}, {"a", ST_F16, 0, {0}}};
    CHECK(safetensors_writer_begin(&w, path, two, 2, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "tensor name a given twice"), "duplicate name: %s", err);
    safetensors_desc res[] = {{"__metadata__", ST_F32, 1, {4}}};
    CHECK(safetensors_writer_begin(&w, path, res, 1, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "reserved"), "reserved name: %s", err);
    safetensors_desc neg[] = {{"n", ST_F32, 2, {4, -1}}};
    CHECK(safetensors_writer_begin(&w, path, neg, 1, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "tensor n: bad shape [4, -1]"), "negative shape: %s", err);
    safetensors_desc bad_utf8[] = {{"\xff\xfe", ST_F32, 0, {0}}};
    CHECK(safetensors_writer_begin(&w, path, bad_utf8, 1, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "not UTF-8"), "bad UTF-8: %s", err);
    safetensors_kv kv[] = {{"k", "1"}, {"k", "2"}};
    CHECK(safetensors_writer_begin(&w, path, NULL, 0, kv, 2, err, sizeof err) == -1 &&
              strstr(err, "metadata key k given twice"), "duplicate metadata: %s", err);
    CHECK(access(path, F_OK) != 0 && access(tmp_path("w.safetensors.tmp"), F_OK) != 0,
          "refused writer left a file");

    safetensors_desc d[] = {{"x", ST_F32, 1, {4}}, {"e", ST_F32, 1, {0}}, {"y", ST_I8, 1, {3}}};
    float x[4] = {1, 2, 3, 4};
    CHECK(safetensors_writer_begin(&w, path, d, 3, NULL, 0, err, sizeof err) == 0, "begin: %s", err);
    CHECK(safetensors_writer_write(&w, x, 12, err, sizeof err) == -1 &&
              strstr(err, "tensor x: 12 bytes given, it has 16"), "short write: %s", err);
    CHECK(safetensors_writer_write_part(&w, x, 20, err, sizeof err) == -1 &&
              strstr(err, "tensor x: 20 bytes given, only 16 of its 16 remain"), "long part: %s",
          err);
    CHECK(safetensors_writer_write_part(&w, x, 8, err, sizeof err) == 0, "part: %s", err);
    CHECK(safetensors_writer_write(&w, x, 8, err, sizeof err) == -1 &&
              strstr(err, "after 8 of its bytes"), "whole after part: %s", err);
    CHECK(safetensors_writer_write_part(&w, x + 2, 8, err, sizeof err) == 0, "part: %s", err);
    CHECK(safetensors_writer_write(&w, NULL, 0, err, sizeof err) == 0, "empty: %s", err);
    CHECK(safetensors_writer_finish(&w, err, sizeof err) == -1 &&
              strstr(err, "only 2 of 3 tensors written (tensor y has 0 of its 3 bytes)"),
          "early finish: %s", err);
    CHECK(access(path, F_OK) != 0 && access(tmp_path("w.safetensors.tmp"), F_OK) != 0,
          "unfinished writer left a file");

    CHECK(safetensors_writer_begin(&w, path, d, 3, NULL, 0, err, sizeof err) == 0, "begin: %s", err);
    CHECK(safetensors_writer_write(&w, x, 16, err, sizeof err) == 0 &&
              safetensors_writer_write(&w, NULL, 0, err, sizeof err) == 0 &&
              safetensors_writer_write(&w, "abc", 3, err, sizeof err) == 0, "writes: %s", err);
    CHECK(safetensors_writer_write(&w, "z", 1, err, sizeof err) == -1 &&
              strstr(err, "after all 3 tensors"), "extra write: %s", err);
    CHECK(safetensors_writer_finish(&w, err, sizeof err) == 0, "finish: %s", err);

    CHECK(safetensors_writer_begin(&w, path, d, 3, NULL, 0, err, sizeof err) == 0, "begin: %s", err);
    safetensors_writer_abort(&w);
    CHECK(access(tmp_path("w.safetensors.tmp"), F_OK) != 0, "abort left the .tmp");
    safetensors st;
    CHECK(safetensors_open(path, &st, err, sizeof err) == 0 && st.n == 3,
          "an aborted writer touched the finished file: %s", err);
    safetensors_close(&st);

    CHECK(safetensors_writer_begin(&w, "/nonexistent/dir/x.safetensors", d, 3, NULL, 0, err,
                                   sizeof err) == -1 &&
              strstr(err, "/nonexistent/dir/x.safetensors.tmp: No such file"),
          "unwritable: %s", err);
}

/* ---- conversions ---- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_conversions(void)
{
    CHECK(safetensors_f16_to_f32(0x3C00) == 1.0f, "f16 1.0");
    CHECK(safetensors_f16_to_f32(0xC100) == -2.5f, "f16 -2.5");
    CHECK(safetensors_f16_to_f32(0x0001) == 0x1p-24f, "f16 smallest subnormal");
    CHECK(safetensors_f16_to_f32(0x8001) == -0x1p-24f, "f16 negative subnormal");
    CHECK(safetensors_f16_to_f32(0x03FF) == 1023 * 0x1p-24f, "f16 largest subnormal");
    CHECK(safetensors_f16_to_f32(0x0400) == 0x1p-14f, "f16 smallest normal");
    CHECK(safetensors_f16_to_f32(0x7BFF) == 65504.0f, "f16 65504");
    CHECK(bits_of(safetensors_f16_to_f32(0x0000)) == 0, "f16 +0");
    CHECK(bits_of(safetensors_f16_to_f32(0x8000)) == 0x80000000u, "f16 -0");
    CHECK(safetensors_f16_to_f32(0x7C00) == INFINITY, "f16 inf");
    CHECK(safetensors_f16_to_f32(0xFC00) == -INFINITY, "f16 -inf");
    CHECK(isnan(safetensors_f16_to_f32(0x7E00)), "f16 nan");
    CHECK(bits_of(safetensors_f16_to_f32(0x7E00)) == 0x7FC00000u, "f16 nan bits");
    CHECK(isnan(safetensors_f16_to_f32(0xFE01)), "f16 negative nan");

    CHECK(safetensors_bf16_to_f32(0x3F80) == 1.0f, "bf16 1.0");
    CHECK(safetensors_bf16_to_f32(0xC020) == -2.5f, "bf16 -2.5");
    CHECK(safetensors_bf16_to_f32(0x0001) == 0x1p-133f, "bf16 smallest subnormal");
    CHECK(safetensors_bf16_to_f32(0x477F) == 65280.0f, "bf16 65280");
    CHECK(safetensors_bf16_to_f32(0x7F7F) == 0x1.FEp127f, "bf16 largest finite");
    CHECK(safetensors_bf16_to_f32(0x7F80) == INFINITY, "bf16 inf");
    CHECK(safetensors_bf16_to_f32(0xFF80) == -INFINITY, "bf16 -inf");
    CHECK(isnan(safetensors_bf16_to_f32(0x7FC0)), "bf16 nan");
    CHECK(bits_of(safetensors_bf16_to_f32(0x8000)) == 0x80000000u, "bf16 -0");

    /* every f16 against its definition */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        double want = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
        if (s)
            want = -want;
        float got = safetensors_f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) || (bits_of(got) >> 31) != (unsigned)s
                        : bits_of(got) != bits_of((float)want))
            bad++;
    }
    CHECK(bad == 0, "%d f16 values convert wrongly", bad);
    CHECK(safetensors_dtype_size(ST_BF16) == 2 && safetensors_dtype_size(ST_F64) == 8 &&
              safetensors_dtype_size(ST_DTYPE_COUNT) == 0, "dtype sizes");
    safetensors_dtype dt;
    CHECK(safetensors_dtype_parse("BF16", &dt) == 0 && dt == ST_BF16, "parse BF16");
    CHECK(safetensors_dtype_parse("bf16", &dt) == -1, "dtype names are case-sensitive");
    CHECK(!strcmp(safetensors_dtype_name(ST_F8_E4M3), "F8_E4M3"), "dtype name");
}

/* ---- malformed files ---- */

static void test_bad_files(void)
{
    char msg[128];
    write_file(tmp_path("short.safetensors"), "\x10\0\0\0\0", 5);
    expect_refused(tmp_path("short.safetensors"), "file is 5 bytes, too short");
    write_file(tmp_path("zero.safetensors"), "", 0);
    expect_refused(tmp_path("zero.safetensors"), "file is 0 bytes");
    expect_refused(raw_file("hl_big.safetensors", 1000, "{}      ", 2),
                   "header length 1000 is larger than the 10 bytes that follow it");
    expect_refused(raw_file("hl_huge.safetensors", UINT64_MAX - 1, "{}      ", 0),
                   "header length 18446744073709551614 is larger");
    expect_refused(raw_file("hl_zero.safetensors", 0, "{}      ", 0), "header length is 0");
    expect_refused(raw_file("notjson.safetensors", UINT64_MAX, "{\"a\": nope}", 0),
                   "header is not valid JSON");
    expect_refused(raw_file("garbage.safetensors", UINT64_MAX, "\x01\x02\xff\xfe\0\0\0\0", 0),
                   "header is not valid JSON");
    expect_refused(raw_file("array.safetensors", UINT64_MAX, "[1, 2]  ", 0),
                   "header is not a JSON object but an array");
    expect_refused(raw_file("entry.safetensors", UINT64_MAX, "{\"w\": 5}", 0),
                   "tensor w: entry is not an object: 5");
    expect_refused(raw_file("dtype.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16),
                   "tensor w: unknown dtype \"F128\"");
    expect_refused(raw_file("dtype2.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,16]}}", 16),
                   "tensor w: unknown dtype 4");
    expect_refused(raw_file("nodtype.safetensors", UINT64_MAX,
                            "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                   "tensor w: no dtype");
    expect_refused(raw_file("nooff.safetensors", UINT64_MAX, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
                   "tensor w: no data_offsets");
    expect_refused(raw_file("neg.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4),
                   "tensor w: shape [2,-1]: dimension 1 is not a non-negative integer");
    expect_refused(raw_file("frac.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4),
                   "tensor w: shape [1.5]: dimension 0 is not a non-negative integer");
    expect_refused(raw_file("shapestr.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", 16),
                   "tensor w: shape \"4\" is not a list");
    expect_refused(raw_file("dims.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                            "\"data_offsets\":[0,1]}}", 1),
                   "has 9 dimensions, at most 8 supported");
    expect_refused(raw_file("overflow.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                            "\"data_offsets\":[0,4]}}", 4),
                   "tensor w: shape [4294967296,4294967296] has too many elements");
    expect_refused(raw_file("overflow2.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],"
                            "\"data_offsets\":[0,4]}}", 4),
                   "has too many bytes");
    expect_refused(raw_file("size.safetensors", UINT64_MAX,
                            "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],"
                            "\"data_offsets\":[0,12]}}", 16),
                   "tensor model.norm.weight: data_offsets [0, 12] but F32 [4] needs 16 bytes");
    expect_refused(raw_file("size2.safetensors", UINT64_MAX,
                            "{\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4),
                   "tensor s: data_offsets [0, 4] but BF16 [] needs 2 bytes");
    expect_refused(raw_file("offneg.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4),
                   "tensor w: data_offsets [-4,0] is not two non-negative integers");
    expect_refused(raw_file("offthree.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8),
                   "is not two non-negative integers");
    expect_refused(raw_file("backwards.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
                   "tensor w: data_offsets [8, 4] end before they begin");
    expect_refused(raw_file("range.safetensors", UINT64_MAX,
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[100,104]}}", 12),
                   "tensor b: data_offsets [100, 104] beyond the 12 bytes of data");
    expect_refused(raw_file("range_empty.safetensors", UINT64_MAX,
                            "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[50,50]}}", 8),
                   "tensor e: data_offsets [50, 50] beyond the 8 bytes of data");
    expect_refused(raw_file("overlap.safetensors", UINT64_MAX,
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
                   "tensors a [0, 8] and b [4, 12] overlap");
    expect_refused(raw_file("same.safetensors", UINT64_MAX,
                            "{\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "tensors b [0, 8] and a [0, 8] overlap");
    expect_refused(raw_file("trunc.safetensors", UINT64_MAX,
                            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]}}",
                            100),
                   "truncated: header says 4096 bytes of data, file has 100");
    expect_refused(raw_file("meta.safetensors", UINT64_MAX, "{\"__metadata__\":{\"a\":1}}", 0),
                   "__metadata__ a: value 1 is not a string");
    expect_refused(raw_file("meta2.safetensors", UINT64_MAX, "{\"__metadata__\":[\"a\"]}", 0),
                   "__metadata__ is not an object");
    expect_refused(raw_file("dup.safetensors", UINT64_MAX,
                            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                            "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2),
                   "duplicate object key");
    expect_refused(raw_file("ctrl.safetensors", UINT64_MAX,
                            "{\"x\\ny\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,3]}}", 4),
                   "tensor x?y: data_offsets [0, 3]");
    expect_refused(tmp_path("missing.safetensors"), "No such file or directory");
    expect_refused(dir, "not a regular file");

    /* a header over the limit, in a sparse file */
    const char *big = tmp_path("bighdr.safetensors");
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unsigned char len[8] = {0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}; /* 100000000 */
    len[0] = 0x01; /* 100000001 */
    CHECK(fd >= 0 && write(fd, len, 8) == 8 && ftruncate(fd, 8 + 100000008) == 0, "sparse file");
    close(fd);
    snprintf(msg, sizeof msg, "header length 100000001 is over the limit of %llu bytes",
             SAFETENSORS_MAX_HEADER);
    expect_refused(big, msg);
    unlink(big);

    /* valid oddities: holes, spaces around the JSON, unknown keys, empty tensors sharing an offset */
    safetensors st;
    const char *ok = raw_file("odd.safetensors", UINT64_MAX,
                              "  {\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8],\"x\":1},"
                              "\"e1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                              "\"e2\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                              "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}     ",
                              9);
    CHECK(safetensors_open(ok, &st, err, sizeof err) == 0, "odd but valid: %s", err);
    if (st.n == 4)
        CHECK(!strcmp(st.tensors[0].name, "e1") && !strcmp(st.tensors[1].name, "e2") &&
                  !strcmp(st.tensors[2].name, "a") && !strcmp(st.tensors[3].name, "b"),
              "file order by offset");
    safetensors_close(&st);
}

/* random damage to a valid file never crashes, and what opens reads */
static void test_fuzz(void)
{
    const char *path = tmp_path("round.safetensors");
    FILE *f = fopen(path, "rb");
    if (!f) {
        CHECK(0, "no round-trip file to fuzz");
        return;
    }
    static unsigned char orig[65536];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    static unsigned char buf[65536];
    static unsigned char data[65536];
    const char *fz = tmp_path("fuzz.safetensors");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | orig[i];
    int opened = 0, refused = 0;
    testing_seed(7);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int kind = iter % 4;
        if (kind == 0) { /* truncate */
            len = (size_t)(testing_uniform() * (double)n);
        } else { /* flip bytes, mostly in the header */
            int k = 1 + (int)(testing_uniform() * 4);
            for (int j = 0; j < k; j++) {
                size_t at = kind == 3 ? (size_t)(testing_uniform() * 8)
                                      : 8 + (size_t)(testing_uniform() * (double)hl);
                buf[at] = (unsigned char)(testing_uniform() * 256);
            }
        }
        write_file(fz, buf, len);
        safetensors st;
        err[0] = 0;
        if (safetensors_open(fz, &st, err, sizeof err) == 0) {
            opened++;
            for (int i = 0; i < st.n; i++) {
                const safetensors_tensor *t = &st.tensors[i];
                if (t->nbytes <= sizeof data)
                    CHECK(safetensors_read(&st, t, data, sizeof data, err, sizeof err) == 0,
                          "fuzz %d: validated tensor unreadable: %s", iter, err);
            }
            safetensors_close(&st);
        } else {
            refused++;
            CHECK(err[0] && !strchr(err, '\n') && !strncmp(err, fz, strlen(fz)),
                  "fuzz %d: bad message: %s", iter, err);
        }
    }
    CHECK(refused > 1000 && opened > 10, "fuzz: %d opened, %d refused", opened, refused);
    for (size_t cut = 0; cut < n; cut += cut < 512 ? 1 : 97) {
        write_file(fz, orig, cut);
        safetensors st;
        CHECK(safetensors_open(fz, &st, err, sizeof err) == -1, "cut at %zu opened", cut);
        if (cut > 8 + hl)
            CHECK(strstr(err, "truncated: header says"), "cut at %zu: %s", cut, err);
    }
}

static void remove_dir(void)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(dp);
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/flame-st.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_conversions();
    test_round_trip();
    test_no_tensors();
    test_writer_errors();
    test_bad_files();
    test_fuzz();
    remove_dir();
    return testing_result("test_safetensors");
}
