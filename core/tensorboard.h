/* TensorBoard event files: DIR/events.out.tfevents.TIME.HOST, records as
 * TensorFlow's TFRecord framing holds them (a little-endian uint64 length,
 * its masked CRC-32C, the bytes, their masked CRC-32C), each an Event
 * protocol buffer: the first the file version, then one per logged step with
 * a Summary of scalars (tag, simple_value), which TensorBoard and its
 * EventAccumulator read. The few fields are encoded here (tensorboard_pb.c)
 * rather than through a protobuf library: two messages of fixed shape need
 * no code generator and no library the GPU machines lack. */
#ifndef FLAME_TENSORBOARD_H
#define FLAME_TENSORBOARD_H

#include <stddef.h>
#include <stdio.h>

typedef struct tensorboard_writer {
    FILE *f; /* NULL: closed */
    char path[4400];
} tensorboard_writer;

typedef struct tensorboard_scalar {
    const char *tag;
    double value;
} tensorboard_scalar;

/* Creates DIR (and its parents) and a new events file in it, with the file
 * version event. Returns 0, or -1 with err. */
int tensorboard_open(tensorboard_writer *w, const char *dir, char *err, size_t err_len);
/* One event at step: n scalars, flushed. Returns 0, or -1 with err. */
int tensorboard_write_scalars(tensorboard_writer *w, long long step, const tensorboard_scalar *scalars, int n, char *err,
                     size_t err_len);
void tensorboard_close(tensorboard_writer *w);

/* the pieces, for tests: CRC-32C (Castagnoli) of n bytes, and the Event of one
 * step's scalars into out (returns its length, or 0 when it does not fit) */
unsigned tensorboard_crc32c(const void *data, size_t n);
size_t tensorboard_encode_scalars(unsigned char *out, size_t cap, double wall_time, long long step,
                         const tensorboard_scalar *scalars, int n);
/* the Event that starts a file: its wall time and file version */
size_t tensorboard_encode_version(unsigned char *out, size_t cap, double wall_time);

#endif
