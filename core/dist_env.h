/* Where this process stands in a data-parallel run, read from the variables the
 * cluster launchers set (torchrun, srun), so that flame-run needs no flags of its
 * own for it. The environment comes through a getenv-like function so tests can
 * give their own. */
#ifndef FLAME_DIST_ENV_H
#define FLAME_DIST_ENV_H
#include <stddef.h>

/* how the variables were found */
typedef enum dist_launcher { DIST_SINGLE, DIST_TORCHRUN, DIST_SLURM } dist_launcher;

typedef struct dist_env {
    dist_launcher launcher;
    int rank, world;             /* 0 <= rank < world */
    int local_rank, local_world; /* on this node: 0 <= local_rank < local_world <= world */
    char master_addr[256];       /* the rendezvous host (rank 0's) */
    int master_port;             /* 1..65535 */
} dist_env;

/* a getenv: tests pass their own table */
typedef const char *(*dist_getenv_fn)(const char *name);

/* Reads the environment through get. torchrun's variables (RANK, WORLD_SIZE,
 * LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) when RANK or WORLD_SIZE
 * is set; else Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, and the local
 * world from SLURM_NTASKS_PER_NODE or, failing that, the first count of
 * SLURM_TASKS_PER_NODE such as "4(x2),3"; MASTER_ADDR if set, else the first
 * host of SLURM_JOB_NODELIST (or SLURM_NODELIST); MASTER_PORT if set, else
 * 29500) when SLURM_PROCID is set; else one process: rank 0 of 1, local 0 of 1,
 * master 127.0.0.1:29500, DIST_SINGLE. Returns 0, or -1 with one line in err
 * naming the variable, its value and what was expected. */
int dist_env_read(dist_env *e, dist_getenv_fn get, char *err, size_t err_len);

/* The first host of a Slurm node list: "gpu[01-04,07],cpu1" gives "gpu01",
 * "node7,node8" gives "node7", "a[3]" gives "a3", "n[009-010]" gives "n009"
 * (zero padding kept). Returns 0, or -1 with a line in err for a list it cannot read
 * (empty, unbalanced brackets, an empty range, a host longer than out_len - 1). */
int dist_slurm_first_host(const char *nodelist, char *out, size_t out_len, char *err, size_t err_len);

/* NGPU, as fla-org/flame's train.sh reads it (the number of local processes
 * to start): *n = its value, or 0 when unset. Returns 0, or -1 with a line in
 * err when set but not a whole number in [1, 1024]. */
int dist_env_ngpu(dist_getenv_fn get, int *n, char *err, size_t err_len);
#endif
