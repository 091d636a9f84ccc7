/* The gradients summed over the ranks in buckets while the backward runs
 * (DESIGN.md: data parallel), so that the sums of the last layers' gradients
 * travel while the first layers' are computed.
 *
 * The plugin's backward says, through its watch_gradients hook, when every
 * tensor from some index on is complete. The flat buffers hold each kind
 * (decayed, then not) in reverse order of declaration (params.c), so what is
 * complete is a prefix of each kind's part; each time the prefixes have grown
 * by a bucket, the growth is sent off (comm_reduce_start: ZeRO-1's pieces to
 * their owners, or to every replica), and grad_buckets_finish sends the rest
 * and waits. Only the last micro-batch's backward sends: before it the
 * gradients are still accumulating. A plugin without the hook sends
 * everything at the finish; a process alone, not a launcher's rank, sends
 * nothing (comm_engaged). */
#ifndef FLAME_GRAD_BUCKETS_H
#define FLAME_GRAD_BUCKETS_H

#include <stddef.h>

#include "comm.h"
#include "params.h"

typedef struct grad_buckets {
    param_store *ps;
    comm *c;
    size_t bucket;     /* floats a send waits for */
    int armed;         /* the current backward's gradients are the step's */
    size_t sent[2];    /* per kind (decayed, not): the prefix sent so far, as an offset */
    size_t complete[2]; /* the prefix complete */
    int failed;        /* a send failed: err says why, nothing more is sent */
    char err[512];
} grad_buckets;

/* Binds buckets of bucket_bytes to the store and the ranks, and to the
 * plugin's backward when it has the hook and the ranks an engine. */
void grad_buckets_init(grad_buckets *g, param_store *ps, comm *c, size_t bucket_bytes);
/* the next backward is the step's last micro-batch's: its gradients go */
void grad_buckets_arm(grad_buckets *g);
/* the plugin's hook: tensors from index first on are complete */
void grad_buckets_ready(void *g, int first);
/* After the armed backward: sends what is left and waits for every sum;
 * this rank's shard of the gradients is then summed over the ranks. 0, or -1
 * with err. */
int grad_buckets_finish(grad_buckets *g, char *err, size_t err_len);

#endif
