/* dist_env_read, dist_slurm_first_host and dist_env_ngpu (core/dist_env.h: the
 * launchers' variables, outside input) on arbitrary bytes read as lines
 * NAME=VALUE, the environment the reader sees (the last line of a name wins).
 * A read that succeeds gives a rank inside its world, a local rank inside a
 * local world no larger than the world, a port in 1..65535 and a master host
 * ended inside its buffer; one that fails says why in a line; the first host
 * of any node list fits the buffer it was given, or is refused. */
#include <stdlib.h>
#include <string.h>

#include "dist_env.h"

#define MAX_VARS 64

static char *names[MAX_VARS], *values[MAX_VARS];
static int n_vars;

static const char *lookup(const char *name)
{
    for (int i = n_vars - 1; i >= 0; i--)
        if (strcmp(names[i], name) == 0)
            return values[i];
    return NULL;
}

/* text's lines NAME=VALUE into names and values (text is cut in place) */
static void read_lines(char *text)
{
    n_vars = 0;
    for (char *line = text; line && n_vars < MAX_VARS;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            names[n_vars] = line, values[n_vars] = eq + 1;
            n_vars++;
        }
        line = next;
    }
}

static void said_why(const char *err, size_t len)
{
    if (err[0] == '\0' || memchr(err, '\0', len) == NULL)
        abort();
}

static void check_read(void)
{
    dist_env e;
    char err[512] = "";
    if (dist_env_read(&e, lookup, err, sizeof err) != 0) {
        said_why(err, sizeof err);
        return;
    }
    if (e.world < 1 || e.rank < 0 || e.rank >= e.world || e.local_world < 1 || e.local_rank < 0 ||
        e.local_rank >= e.local_world || e.local_world > e.world || e.master_port < 1 || e.master_port > 65535 ||
        memchr(e.master_addr, '\0', sizeof e.master_addr) == NULL || e.master_addr[0] == '\0')
        abort();
}

static void check_first_host(const char *list, size_t out_len)
{
    char out[64], err[512] = "";
    memset(out, 'x', sizeof out);
    if (dist_slurm_first_host(list, out, out_len, err, sizeof err) != 0) {
        said_why(err, sizeof err);
        return;
    }
    size_t n = strnlen(out, sizeof out);
    if (n == 0 || n >= out_len)
        abort();
}

static void check_ngpu(void)
{
    int n = -1;
    char err[512] = "";
    if (dist_env_ngpu(lookup, &n, err, sizeof err) != 0)
        said_why(err, sizeof err);
    else if (n < 0 || n > 1024)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    check_first_host(text, 8); /* the whole input as one node list, into a small buffer */
    check_first_host(text, 64);
    read_lines(text);
    check_read();
    check_ngpu();
    free(text);
    return 0;
}
