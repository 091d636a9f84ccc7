/* `flame-run --nproc N` (and NGPU, as fla-org/flame's train.sh reads it):
 * N ranks of the same command on this machine, started as torchrun starts
 * them (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT in each one's environment), one process per rank. */
#ifndef FLAME_LAUNCH_H
#define FLAME_LAUNCH_H

/* The number of local ranks this command asks for: --nproc N or --nproc=N
 * (taken out of argv, *argc updated), else NGPU when no launcher has set this
 * process's rank already; 1 when neither. Returns -1 after one line on stderr
 * starting with prog for a bad value. */
int launch_ranks_wanted(int *argc, char **argv, const char *prog);

/* Runs argv (this program: /proc/self/exe) as n ranks and waits for them.
 * When one fails, the others are stopped (SIGTERM, then SIGKILL after 10 s)
 * and its exit status is returned (1 for a rank killed by a signal, said on
 * stderr); 0 when every rank succeeded. */
int launch_local_ranks(int n, char **argv, const char *prog);

#endif
