#include "launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dist_env.h"
#include "errors.h"

#define MAX_LOCAL_RANKS 1024
#define STOP_GRACE_S 10

static const char *env(const char *name) { return getenv(name); }

/* --nproc's value at argv[i] (or after its '='): a whole number in [1, MAX_LOCAL_RANKS] */
static int nproc_value(const char *text, const char *prog)
{
    char *end;
    errno = 0;
    long n = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || end == text || *end || n < 1 || n > MAX_LOCAL_RANKS) {
        fprintf(stderr, "%s: --nproc %s: expected a whole number of ranks in 1..%d\n", prog, text ? text : "(none)",
                MAX_LOCAL_RANKS);
        return -1;
    }
    return (int)n;
}

/* drops argv[i, i + count) */
static void take_out(int *argc, char **argv, int i, int count)
{
    memmove(argv + i, argv + i + count, (size_t)(*argc - i - count + 1) * sizeof *argv);
    *argc -= count;
}

int launch_ranks_wanted(int *argc, char **argv, const char *prog)
{
    for (int i = 1; i < *argc; i++) {
        int joined = strncmp(argv[i], "--nproc=", 8) == 0;
        if (!joined && strcmp(argv[i], "--nproc") != 0)
            continue;
        int n = nproc_value(joined ? argv[i] + 8 : (i + 1 < *argc ? argv[i + 1] : NULL), prog);
        if (n > 0)
            take_out(argc, argv, i, joined ? 1 : 2);
        return n;
    }
    /* NGPU starts the ranks only where no launcher has: in a rank, it is the launcher's */
    if (env("RANK") || env("WORLD_SIZE") || env("SLURM_PROCID"))
        return 1;
    int n;
    char err[256];
    if (dist_env_ngpu(env, &n, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    return n > 0 ? n : 1;
}

/* a port free on the loopback now (the kernel's pick), for rank 0's rendezvous store */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void set_int(const char *name, int value)
{
    char text[16];
    snprintf(text, sizeof text, "%d", value);
    setenv(name, text, 1);
}

/* the child: rank's variables, then this program again */
static void exec_rank(int rank, int n, int port, char **argv, const char *prog)
{
    set_int("RANK", rank);
    set_int("LOCAL_RANK", rank);
    set_int("WORLD_SIZE", n);
    set_int("LOCAL_WORLD_SIZE", n);
    set_int("MASTER_PORT", port);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    unsetenv("NGPU");
    execv("/proc/self/exe", argv);
    fprintf(stderr, "%s: rank %d: cannot start /proc/self/exe: %s\n", prog, rank, strerror(errno));
    _exit(FLAME_EXIT_RUNTIME);
}

/* the exit status a rank's wait status stands for */
static int rank_status(int rank, int wstatus, const char *prog)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    fprintf(stderr, "%s: rank %d was killed by signal %d (%s)\n", prog, rank, WTERMSIG(wstatus),
            strsignal(WTERMSIG(wstatus)));
    return FLAME_EXIT_RUNTIME;
}

/* SIGINT and SIGTERM to the launcher go on to every rank (each then ends its
 * step with a checkpoint, as a single flame-run does) */
static pid_t *forward_to;
static int forward_count;
static volatile sig_atomic_t stopping; /* the ranks were asked to stop: their failures are expected */

static void forward_signal(int sig)
{
    stopping = 1;
    for (int r = 0; r < forward_count; r++)
        if (forward_to[r] > 0)
            kill(forward_to[r], sig);
}

static void forward_stop_signals(pid_t *pids, int n)
{
    forward_to = pids, forward_count = n;
    struct sigaction sa = {0};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int rank_of(const pid_t *pids, int n, pid_t pid)
{
    for (int r = 0; r < n; r++)
        if (pids[r] == pid)
            return r;
    return -1;
}

/* SIGTERM to the ranks still running, SIGKILL to those left after the grace period */
static void stop_others(pid_t *pids, int n, int *running)
{
    for (int r = 0; r < n; r++)
        if (pids[r] > 0)
            kill(pids[r], SIGTERM);
    time_t until = time(NULL) + STOP_GRACE_S;
    while (*running > 0 && time(NULL) < until) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        int r = pid > 0 ? rank_of(pids, n, pid) : -1;
        if (r >= 0)
            pids[r] = 0, (*running)--;
        else
            usleep(50000);
    }
    for (int r = 0; r < n; r++)
        if (pids[r] > 0 && kill(pids[r], SIGKILL) == 0 && waitpid(pids[r], NULL, 0) > 0)
            pids[r] = 0, (*running)--;
}

int launch_local_ranks(int n, char **argv, const char *prog)
{
    int port = free_port();
    static pid_t pids[MAX_LOCAL_RANKS]; /* static: the signal handler reads it */
    if (port < 0) {
        fprintf(stderr, "%s: no free port on 127.0.0.1 for the ranks' rendezvous: %s\n", prog, strerror(errno));
        return FLAME_EXIT_RUNTIME;
    }
    fflush(NULL);
    int running = 0, status = FLAME_EXIT_OK;
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();
        if (pid == 0)
            exec_rank(r, n, port, argv, prog);
        if (pid < 0) {
            fprintf(stderr, "%s: cannot start rank %d: %s\n", prog, r, strerror(errno));
            stop_others(pids, n, &running);
            return FLAME_EXIT_RUNTIME;
        }
        pids[r] = pid, running++;
    }
    forward_stop_signals(pids, n);
    while (running > 0) {
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        int r = pid > 0 ? rank_of(pids, n, pid) : -1;
        if (r < 0)
            continue; /* EINTR, or no child of ours */
        pids[r] = 0, running--;
        int s = rank_status(r, ws, prog);
        if (s != FLAME_EXIT_OK && status == FLAME_EXIT_OK) {
            status = s;
            if (stopping)
                continue; /* every rank ends its step and stops by itself */
            fprintf(stderr, "%s: rank %d ended with exit status %d: stopping the other ranks\n", prog, r, s);
            stop_others(pids, n, &running);
        }
    }
    return status;
}
