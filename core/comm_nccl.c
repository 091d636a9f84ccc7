#include "comm_nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "monotonic.h"

#define STAGING_BYTES 4096 /* host values of a collective: losses, flags, small broadcasts */

typedef struct nccl_comm {
    ncclComm_t comm;
    int rank, world;
    double timeout_s;
    void *staging; /* device memory */
    /* the gradients' sums (comm_reduce_start): their own stream, which waits
     * on the compute stream's work up to each start (the event) */
    cudaStream_t beside;
    cudaEvent_t computed;
} nccl_comm;

static const cudaStream_t default_stream = 0;

/* Waits for the communicator's pending work (its initialization, or what was
 * just enqueued) and for *stream's (NULL: none) for at most timeout_s,
 * asking NCCL for an error on the way. On an error or the timeout the
 * communicator is aborted (a peer gone or hung leaves it unusable) and -1
 * returned with err. */
static int finish(nccl_comm *c, const char *what, double timeout_s, const cudaStream_t *stream_waited, char *err,
                  size_t err_len)
{
    double until = monotonic_seconds() + timeout_s;
    for (;;) {
        ncclResult_t state;
        ncclResult_t asked = ncclCommGetAsyncError(c->comm, &state);
        cudaError_t stream = state != ncclSuccess ? cudaErrorNotReady
                             : stream_waited      ? cudaStreamQuery(*stream_waited)
                                                  : cudaSuccess;
        if (asked == ncclSuccess && state == ncclSuccess && stream == cudaSuccess)
            return 0;
        const char *why = asked != ncclSuccess ? ncclGetErrorString(asked)
                          : state != ncclSuccess && state != ncclInProgress ? ncclGetErrorString(state)
                          : stream != cudaSuccess && stream != cudaErrorNotReady ? cudaGetErrorString(stream)
                          : monotonic_seconds() > until ? "timed out"
                                                        : NULL;
        if (why) {
            snprintf(err, err_len, "%s failed: NCCL: %s (a peer stopped, or took longer than %g s: "
                     "comm.train_timeout_seconds)", what, why, timeout_s);
            ncclCommAbort(c->comm);
            c->comm = NULL;
            return -1;
        }
        usleep(50);
    }
}

/* An NCCL call's immediate result: in progress is fine for a non-blocking
 * communicator. Then waits for the call's work on *stream (NULL: for its
 * enqueueing alone). */
static int called(nccl_comm *c, ncclResult_t r, const cudaStream_t *stream, const char *what, char *err,
                  size_t err_len)
{
    if (r == ncclSuccess || r == ncclInProgress)
        return finish(c, what, c->timeout_s, stream, err, err_len);
    snprintf(err, err_len, "%s failed: NCCL: %s", what, ncclGetErrorString(r));
    return -1;
}

/* the call's work done on the default stream */
static int enqueued(nccl_comm *c, ncclResult_t r, const char *what, char *err, size_t err_len)
{
    return called(c, r, &default_stream, what, err, err_len);
}

/* rank 0's unique id, through the store */
static int share_id(kv_client *store, int rank, double timeout_s, ncclUniqueId *id, char *err, size_t err_len)
{
    if (rank == 0) {
        ncclResult_t r = ncclGetUniqueId(id);
        if (r != ncclSuccess) {
            snprintf(err, err_len, "NCCL: no unique id: %s", ncclGetErrorString(r));
            return -1;
        }
        return kv_client_set(store, "nccl-id", id, sizeof *id, err, err_len);
    }
    void *value;
    size_t len;
    if (kv_client_get(store, "nccl-id", &value, &len, timeout_s, err, err_len))
        return -1;
    int ok = len == sizeof *id;
    if (ok)
        memcpy(id, value, sizeof *id);
    else
        snprintf(err, err_len, "the store's nccl-id holds %zu bytes, not NCCL's %zu", len, sizeof *id);
    free(value);
    return ok ? 0 : -1;
}

static void close_comm(void *impl);

void *nccl_comm_open(kv_client *store, int rank, int world, double init_timeout_s, double timeout_s, char *err,
                     size_t err_len)
{
    nccl_comm *c = calloc(1, sizeof *c);
    ncclUniqueId id;
    if (!c || share_id(store, rank, init_timeout_s, &id, err, err_len)) {
        free(c);
        return NULL;
    }
    c->timeout_s = timeout_s, c->rank = rank, c->world = world;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* so that a missing peer is a timeout, not a hang */
    ncclResult_t r = ncclCommInitRankConfig(&c->comm, world, id, rank, &config);
    if ((r != ncclSuccess && r != ncclInProgress) || !c->comm) {
        snprintf(err, err_len, "NCCL: joining %d ranks failed: %s", world, ncclGetErrorString(r));
        free(c);
        return NULL;
    }
    if (finish(c, "joining the other ranks (NCCL)", init_timeout_s, &default_stream, err, err_len) ||
        cudaMalloc(&c->staging, STAGING_BYTES) != cudaSuccess ||
        cudaStreamCreateWithFlags(&c->beside, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->computed, cudaEventDisableTiming) != cudaSuccess) {
        if (c->comm)
            snprintf(err, err_len, "out of device memory for NCCL's staging buffer, stream and event");
        close_comm(c);
        return NULL;
    }
    return c;
}

static int sum_floats(void *impl, float *x, size_t n, char *err, size_t err_len)
{
    nccl_comm *c = impl;
    if (n == 0)
        return 0;
    return enqueued(c, ncclAllReduce(x, x, n, ncclFloat32, ncclSum, c->comm, 0), "a sum over the ranks", err,
                    err_len);
}

/* host bytes through the staging buffer, in chunks of its size */
typedef ncclResult_t (*staged_fn)(nccl_comm *c, size_t count, int root);

static ncclResult_t sum_staged_doubles(nccl_comm *c, size_t count, int root)
{
    (void)root;
    return ncclAllReduce(c->staging, c->staging, count, ncclFloat64, ncclSum, c->comm, 0);
}

static ncclResult_t broadcast_staged_bytes(nccl_comm *c, size_t count, int root)
{
    return ncclBroadcast(c->staging, c->staging, count, ncclUint8, root, c->comm, 0);
}

static int staged(nccl_comm *c, void *host, size_t n, size_t size, staged_fn fn, int root, const char *what,
                  char *err, size_t err_len)
{
    size_t per_chunk = STAGING_BYTES / size;
    for (size_t at = 0; at < n; at += per_chunk) {
        size_t count = n - at < per_chunk ? n - at : per_chunk;
        char *p = (char *)host + at * size;
        if (cudaMemcpy(c->staging, p, count * size, cudaMemcpyHostToDevice) != cudaSuccess ||
            enqueued(c, fn(c, count, root), what, err, err_len) ||
            cudaMemcpy(p, c->staging, count * size, cudaMemcpyDeviceToHost) != cudaSuccess) {
            if (c->comm)
                snprintf(err, err_len, "%s failed: a copy to or from the device failed", what);
            return -1;
        }
    }
    return 0;
}

static int sum_doubles(void *impl, double *x, size_t n, char *err, size_t err_len)
{
    return staged(impl, x, n, sizeof *x, sum_staged_doubles, 0, "a sum over the ranks", err, err_len);
}

static int broadcast(void *impl, void *bytes, size_t n, int root, char *err, size_t err_len)
{
    return staged(impl, bytes, n, 1, broadcast_staged_bytes, root, "a broadcast", err, err_len);
}

static int barrier(void *impl, char *err, size_t err_len)
{
    double one = 1;
    return sum_doubles(impl, &one, 1, err, err_len);
}

static void close_comm(void *impl)
{
    nccl_comm *c = impl;
    if (!c)
        return;
    if (c->comm)
        ncclCommDestroy(c->comm);
    if (c->staging)
        cudaFree(c->staging);
    if (c->beside)
        cudaStreamDestroy(c->beside);
    if (c->computed)
        cudaEventDestroy(c->computed);
    free(c);
}

/* Each owner's piece of x[lo, hi) reduced onto it in place, in one group,
 * on the stream beside the compute stream: the backward runs on meanwhile. */
static ncclResult_t reduce_pieces(nccl_comm *c, float *x, size_t lo, size_t hi, size_t shard)
{
    if (shard == 0)
        return ncclAllReduce(x + lo, x + lo, hi - lo, ncclFloat32, ncclSum, c->comm, c->beside);
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess)
        return r;
    for (size_t owner = lo / shard; owner < (size_t)c->world && owner * shard < hi && r == ncclSuccess; owner++) {
        size_t a = owner * shard > lo ? owner * shard : lo, b = (owner + 1) * shard < hi ? (owner + 1) * shard : hi;
        r = ncclReduce(x + a, x + a, b - a, ncclFloat32, ncclSum, (int)owner, c->comm, c->beside);
    }
    ncclResult_t ended = ncclGroupEnd();
    return r != ncclSuccess ? r : ended;
}

static int reduce_start(void *impl, float *x, size_t lo, size_t hi, size_t shard, char *err, size_t err_len)
{
    nccl_comm *c = impl;
    if (hi <= lo)
        return 0;
    if (cudaEventRecord(c->computed, 0) != cudaSuccess || cudaStreamWaitEvent(c->beside, c->computed, 0) != cudaSuccess) {
        snprintf(err, err_len, "a sum of gradients over the ranks failed: CUDA could not order it after the backward");
        return -1;
    }
    return called(c, reduce_pieces(c, x, lo, hi, shard), NULL, "a sum of gradients over the ranks", err,
                  err_len);
}

static int reduce_wait(void *impl, char *err, size_t err_len)
{
    nccl_comm *c = impl;
    return finish(c, "a sum of gradients over the ranks", c->timeout_s, &c->beside, err, err_len);
}

/* in place: this rank's part of x is NCCL's send buffer */
static int all_gather(void *impl, void *x, size_t shard_bytes, char *err, size_t err_len)
{
    nccl_comm *c = impl;
    if (shard_bytes == 0)
        return 0;
    char *parts = x;
    return enqueued(c, ncclAllGather(parts + (size_t)c->rank * shard_bytes, parts, shard_bytes, ncclUint8, c->comm,
                                     0),
                    "a gathering of the ranks' parts", err, err_len);
}

const comm_backend nccl_comm_backend = {sum_floats,  sum_doubles, broadcast,  barrier,
                                        reduce_start, reduce_wait, all_gather, close_comm};
