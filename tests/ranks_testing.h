/* Ranks for the C tests of the collectives: forked processes that join as
 * torchrun's ranks do (its variables set by hand), meeting at a loopback port. */
#ifndef FLAME_RANKS_TESTING_H
#define FLAME_RANKS_TESTING_H

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm.h"
#include "testing.h"

static const char *ranks_env(const char *name) { return getenv(name); }

/* a port on the loopback for one test process's rendezvous */
static int ranks_port(void) { return 20000 + (int)(getpid() % 20000); }

/* this process as rank of world, its rendezvous at port; NULL after a failed check */
static comm *ranks_join(int rank, int world, int port, const char *backend)
{
    char text[16];
    snprintf(text, sizeof text, "%d", rank);
    setenv("RANK", text, 1);
    setenv("LOCAL_RANK", text, 1);
    snprintf(text, sizeof text, "%d", world);
    setenv("WORLD_SIZE", text, 1);
    setenv("LOCAL_WORLD_SIZE", text, 1);
    snprintf(text, sizeof text, "%d", port);
    setenv("MASTER_PORT", text, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    dist_env e;
    char err[512];
    comm *c = NULL;
    if (dist_env_read(&e, ranks_env, err, sizeof err) == 0)
        c = comm_open(&e, backend, 30, 30, err, sizeof err);
    CHECK(c, "rank %d of %d (%s): %s", rank, world, backend, err);
    return c;
}

/* run(rank, port) in world forked processes, which exit 0 when it returns 0;
 * a failed check for each that did not */
static void ranks_fork(int world, int (*run)(int rank, int port))
{
    int port = ranks_port();
    pid_t pids[64];
    for (int r = 0; r < world && r < 64; r++) {
        pids[r] = fork();
        if (pids[r] == 0)
            _exit(run(r, port) ? 1 : 0);
    }
    for (int r = 0; r < world && r < 64; r++) {
        int status;
        waitpid(pids[r], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank %d of %d failed (status %d)", r, world, status);
    }
}

#endif
