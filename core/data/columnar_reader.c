#define _GNU_SOURCE /* pipe2 */
#include "columnar_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FLAME_DATA_DIR
#define FLAME_DATA_DIR "/usr/local/share/flame"
#endif
#ifndef FLAME_BUILD_DIR
#define FLAME_BUILD_DIR "."
#endif

extern char **environ;

enum { HELPER_EXIT_NO_PYARROW = 2 };

struct columnar_reader {
    pid_t pid;
    int out, err; /* the helper's stdout and stderr */
    char buf[1 << 20];
    int done;
};

int columnar_is_path(const char *name)
{
    size_t n = strlen(name);
    static const char *const suffixes[] = {".parquet", ".arrow", ".json"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcasecmp(name + n - k, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

static const char *helper_path(void)
{
    static char path[4096];
    const char *env = getenv("FLAME_COLUMNAR_HELPER");
    if (env && *env)
        return env;
    snprintf(path, sizeof path, "%s/flame_columnar.py", FLAME_DATA_DIR);
    if (access(path, R_OK) == 0)
        return path;
    snprintf(path, sizeof path, "%s/tools/flame_columnar.py", FLAME_BUILD_DIR);
    return path;
}

static const char *python(void)
{
    const char *env = getenv("FLAME_PYTHON");
    return env && *env ? env : "python3";
}

/* Starts the helper with args, its stdout and stderr on pipes. */
static int spawn(columnar_reader *r, char *const args[], char *err, size_t err_len)
{
    int out[2], errp[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
        snprintf(err, err_len, "cannot start the columnar reader: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, errp[1], STDERR_FILENO);
    int rc = posix_spawnp(&r->pid, python(), &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(errp[1]);
    fcntl(out[0], F_SETPIPE_SZ, 1 << 20); /* fewer hand-overs; the default 64 KiB also works */
    r->out = out[0];
    r->err = errp[0];
    if (rc) {
        snprintf(err, err_len, "cannot run %s for the columnar reader: %s", python(), strerror(rc));
        close(r->out);
        close(r->err);
        r->out = r->err = -1;
        r->pid = 0;
        return -1;
    }
    return 0;
}

/* the helper's exit status once it ended (its stderr's first line into msg) */
static int reap(columnar_reader *r, char *msg, size_t msg_len)
{
    size_t n = 0;
    ssize_t got;
    while (n + 1 < msg_len && (got = read(r->err, msg + n, msg_len - 1 - n)) > 0)
        n += (size_t)got;
    msg[n] = '\0';
    msg[strcspn(msg, "\n")] = '\0';
    int status = 0;
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int columnar_available(char *err, size_t err_len)
{
    static int known = 0, ok = 0;
    static char why[512];
    if (!known) {
        columnar_reader r = {.out = -1, .err = -1};
        char *args[] = {(char *)python(), (char *)helper_path(), "--check", NULL};
        if (spawn(&r, args, why, sizeof why) == 0) {
            char msg[400];
            int status = reap(&r, msg, sizeof msg);
            close(r.out);
            close(r.err);
            ok = status == 0;
            if (!ok)
                snprintf(why, sizeof why, "%s",
                         status == HELPER_EXIT_NO_PYARROW ? msg : "the columnar reader does not run");
        }
        known = 1;
    }
    if (!ok)
        snprintf(err, err_len, "%s (.parquet, .arrow and .json are read through pyarrow: "
                               "pip install pyarrow)", why);
    return ok ? 0 : -1;
}

int columnar_open(columnar_reader **out, const char *path, const char *text_field, char *err,
                  size_t err_len)
{
    columnar_reader *r = calloc(1, sizeof *r);
    *out = r;
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    r->out = r->err = -1;
    char *args[] = {(char *)python(), (char *)helper_path(), (char *)path, (char *)text_field,
                    NULL};
    return spawn(r, args, err, err_len);
}

ssize_t columnar_read(columnar_reader *r, const void **buf, char *err, size_t err_len)
{
    if (r->done)
        return 0;
    ssize_t n;
    while ((n = read(r->out, r->buf, sizeof r->buf)) < 0 && errno == EINTR)
        ;
    if (n > 0) {
        *buf = r->buf;
        return n;
    }
    r->done = 1;
    char msg[600];
    int status = reap(r, msg, sizeof msg);
    if (n == 0 && status == 0)
        return 0;
    snprintf(err, err_len, "%s", *msg ? msg : "the columnar reader failed");
    return -1;
}

void columnar_close(columnar_reader *r)
{
    if (!r)
        return;
    if (r->out >= 0)
        close(r->out); /* a helper still writing gets EPIPE and ends */
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (r->err >= 0)
        close(r->err);
    free(r);
}
