/* The protocol buffer wire format of the two Event messages flame writes
 * (field numbers of TensorFlow's event.proto and summary.proto):
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
 *             Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 * Varints for lengths and step, little-endian fixed64 / fixed32 for the
 * double and the float. */
#include <string.h>

#include "tensorboard.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

typedef struct pb {
    unsigned char *p;
    size_t n, cap;
    int overflow;
} pb;

static void put_byte(pb *b, unsigned char c)
{
    if (b->n < b->cap)
        b->p[b->n] = c;
    else
        b->overflow = 1;
    b->n++;
}

static void put_varint(pb *b, unsigned long long v)
{
    do {
        put_byte(b, (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}

static void put_key(pb *b, int field, int wire) { put_varint(b, (unsigned)(field << 3 | wire)); }

static void put_fixed(pb *b, unsigned long long bits, int bytes)
{
    for (int i = 0; i < bytes; i++)
        put_byte(b, (unsigned char)(bits >> (8 * i)));
}

static void put_double(pb *b, int field, double v)
{
    unsigned long long bits;
    memcpy(&bits, &v, sizeof bits);
    put_key(b, field, WIRE_FIXED64);
    put_fixed(b, bits, 8);
}

static void put_bytes(pb *b, int field, const void *data, size_t n)
{
    put_key(b, field, WIRE_BYTES);
    put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        put_byte(b, ((const unsigned char *)data)[i]);
}

/* Value { tag, simple_value } */
static size_t value_size(const tensorboard_scalar *s)
{
    size_t tag = strlen(s->tag);
    pb count = {NULL, 0, 0, 0};
    put_varint(&count, tag);
    return 1 + count.n + tag + 1 + 4;
}

static void put_value(pb *b, const tensorboard_scalar *s)
{
    float f = (float)s->value;
    unsigned bits;
    memcpy(&bits, &f, sizeof bits);
    put_key(b, 1, WIRE_BYTES);
    put_varint(b, value_size(s));
    put_bytes(b, 1, s->tag, strlen(s->tag));
    put_key(b, 2, WIRE_FIXED32);
    put_fixed(b, bits, 4);
}

size_t tensorboard_encode_scalars(unsigned char *out, size_t cap, double wall_time, long long step,
                         const tensorboard_scalar *scalars, int n)
{
    pb b = {out, 0, cap, 0};
    put_double(&b, 1, wall_time);
    put_key(&b, 2, WIRE_VARINT);
    put_varint(&b, (unsigned long long)step);
    size_t summary = 0;
    for (int i = 0; i < n; i++) {
        pb count = {NULL, 0, 0, 0};
        put_varint(&count, value_size(&scalars[i]));
        summary += 1 + count.n + value_size(&scalars[i]);
    }
    put_key(&b, 5, WIRE_BYTES);
    put_varint(&b, summary);
    for (int i = 0; i < n; i++)
        put_value(&b, &scalars[i]);
    return b.overflow ? 0 : b.n;
}

/* Event { wall_time, file_version } */
size_t tensorboard_encode_version(unsigned char *out, size_t cap, double wall_time)
{
    static const char version[] = "brain.Event:2";
    pb b = {out, 0, cap, 0};
    put_double(&b, 1, wall_time);
    put_bytes(&b, 3, version, sizeof version - 1);
    return b.overflow ? 0 : b.n;
}
