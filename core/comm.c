#include "comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm_backend.h"
#include "kv_store.h"
#ifdef FLAME_HAVE_GLOO
#include "comm_gloo.h"
#endif
#ifdef FLAME_HAVE_NCCL
#include "comm_nccl.h"
#endif

struct comm {
    int rank, world;
    kv_server *server; /* rank 0's rendezvous store */
    kv_client *store;
    const comm_backend *engine; /* Gloo's or NCCL's; NULL for one process alone */
    void *impl;                 /* the engine's state */
};

/* The store's port: MASTER_PORT, but one past it under torchrun, whose agent
 * serves its own store there (it tells its workers so in
 * TORCHELASTIC_USE_AGENT_STORE). */
static int store_port(const dist_env *e)
{
    const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
    int shifted = agent && strcmp(agent, "True") == 0 && e->master_port < 65535;
    return e->master_port + shifted;
}

/* Where the peers reach this rank: the loopback address when the run is on
 * one machine (its master is this machine's loopback), else this host's name. */
static void own_address(const dist_env *e, char *host, size_t len)
{
    if (strncmp(e->master_addr, "127.", 4) == 0 || strcmp(e->master_addr, "localhost") == 0 ||
        gethostname(host, len) != 0)
        snprintf(host, len, "127.0.0.1");
    host[len - 1] = '\0';
}

/* rank 0 serves the store; every rank connects to it */
static int join_store(comm *c, const dist_env *e, double timeout_s, char *err, size_t err_len)
{
    int port = store_port(e);
    if (c->rank == 0 && !(c->server = kv_server_start(port, err, err_len)))
        return -1;
    c->store = kv_client_connect(e->master_addr, port, timeout_s, err, err_len);
    return c->store ? 0 : -1;
}

/* the CPU's collectives: Gloo's, or a line saying this build has none */
static int open_gloo(comm *c, const dist_env *e, double init_timeout_s, double timeout_s, char *err,
                     size_t err_len)
{
#ifdef FLAME_HAVE_GLOO
    char host[256];
    own_address(e, host, sizeof host);
    if (join_store(c, e, init_timeout_s, err, err_len))
        return -1;
    c->impl = gloo_comm_open(c->store, c->rank, c->world, host, init_timeout_s, timeout_s, err, err_len);
    c->engine = c->impl ? &gloo_comm_backend : NULL;
    return c->impl ? 0 : -1;
#else
    (void)c, (void)e, (void)init_timeout_s, (void)timeout_s, (void)join_store, (void)own_address;
    snprintf(err, err_len, "a run of %d ranks on the CPU needs Gloo, which this build lacks (Debian: apt-get "
             "install libgloo-dev, then configure again)", e->world);
    return -1;
#endif
}

/* the GPU's collectives: NCCL's, or a line saying this build has none */
static int open_nccl(comm *c, const dist_env *e, double init_timeout_s, double timeout_s, char *err,
                     size_t err_len)
{
#ifdef FLAME_HAVE_NCCL
    if (join_store(c, e, init_timeout_s, err, err_len))
        return -1;
    c->impl = nccl_comm_open(c->store, c->rank, c->world, init_timeout_s, timeout_s, err, err_len);
    c->engine = c->impl ? &nccl_comm_backend : NULL;
    return c->impl ? 0 : -1;
#else
    (void)c, (void)init_timeout_s, (void)timeout_s;
    snprintf(err, err_len, "a run of %d ranks on the GPU needs NCCL, which this build lacks (configure found "
             "none beside CUDA)", e->world);
    return -1;
#endif
}

comm *comm_open(const dist_env *e, const char *backend, double init_timeout_s, double timeout_s, char *err,
                size_t err_len)
{
    comm *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    c->rank = e->rank, c->world = e->world;
    /* a launcher's rank joins even alone (torchrun --nproc_per_node 1): the same path as many */
    if (e->launcher == DIST_SINGLE)
        return c;
    int rc = strcmp(backend, "cpu") == 0 ? open_gloo(c, e, init_timeout_s, timeout_s, err, err_len)
                                         : open_nccl(c, e, init_timeout_s, timeout_s, err, err_len);
    if (rc == 0)
        return c;
    comm_close(c);
    return NULL;
}

int comm_rank(const comm *c) { return c->rank; }
int comm_world(const comm *c) { return c->world; }
int comm_engaged(const comm *c) { return c->engine != NULL; }

/* one process alone: every collective is the identity */
int comm_sum_floats(comm *c, float *x, size_t n, char *err, size_t err_len)
{
    return c->engine ? c->engine->sum_floats(c->impl, x, n, err, err_len) : 0;
}

int comm_sum_doubles(comm *c, double *x, size_t n, char *err, size_t err_len)
{
    return c->engine ? c->engine->sum_doubles(c->impl, x, n, err, err_len) : 0;
}

int comm_broadcast(comm *c, void *bytes, size_t n, int root, char *err, size_t err_len)
{
    return c->engine ? c->engine->broadcast(c->impl, bytes, n, root, err, err_len) : 0;
}

int comm_barrier(comm *c, char *err, size_t err_len)
{
    return c->engine ? c->engine->barrier(c->impl, err, err_len) : 0;
}

int comm_reduce_start(comm *c, float *x, size_t lo, size_t hi, size_t shard, char *err, size_t err_len)
{
    return c->engine ? c->engine->reduce_start(c->impl, x, lo, hi, shard, err, err_len) : 0;
}

int comm_reduce_wait(comm *c, char *err, size_t err_len)
{
    return c->engine && c->engine->reduce_wait ? c->engine->reduce_wait(c->impl, err, err_len) : 0;
}

int comm_all_gather(comm *c, void *x, size_t shard_bytes, char *err, size_t err_len)
{
    return c->engine ? c->engine->all_gather(c->impl, x, shard_bytes, err, err_len) : 0;
}

void comm_close(comm *c)
{
    if (!c)
        return;
    if (c->engine)
        c->engine->close(c->impl);
    if (c->store)
        kv_client_close(c->store);
    if (c->server)
        kv_server_stop(c->server);
    free(c);
}
