#include "dist_env.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIST_DEFAULT_ADDR "127.0.0.1"
#define DIST_DEFAULT_PORT 29500
#define DIST_MAX_WORLD 65536

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One line into err, and -1. The values quoted come from the environment and
 * may hold anything, newlines included: control characters become '?' so that
 * the message stays one line. */
static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if (iscntrl((unsigned char)*p))
            *p = '?';
    return -1;
}

/* an empty value would vanish from "NAME = value" */
static const char *shown(const char *v)
{
    return *v ? v : "\"\"";
}

/* The decimal number at p, which must start with a digit: strtol alone would
 * also take leading blanks and a sign. *end: where the digits stop. */
static int read_number(const char *p, const char **end, long *v)
{
    if (!isdigit((unsigned char)*p))
        return -1;
    char *stop;
    errno = 0;
    *v = strtol(p, &stop, 10);
    *end = stop;
    return errno == ERANGE ? -1 : 0;
}

/* all of value as a whole number in [lo, hi] (hi fits an int) */
static int parse_count(const char *name, const char *value, long lo, long hi, const char *what, int *out,
                       char *err, size_t err_len)
{
    const char *end;
    long v;
    if (read_number(value, &end, &v) || *end || v < lo || v > hi)
        return fail(err, err_len, "%s = %s: expected %s in %ld..%ld", name, shown(value), what, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_port(dist_env *e, const char *value, char *err, size_t err_len)
{
    return parse_count("MASTER_PORT", value, 1, 65535, "a port number", &e->master_port, err, err_len);
}

/* a host name as given: it must fit master_addr with its terminator */
static int set_addr(dist_env *e, const char *name, const char *value, char *err, size_t err_len)
{
    size_t n = strlen(value);
    if (!n)
        return fail(err, err_len, "%s is set but empty: expected a host name", name);
    if (n >= sizeof e->master_addr)
        return fail(err, err_len, "%s is %zu characters long: expected a host name of at most %zu", name, n,
                    sizeof e->master_addr - 1);
    memcpy(e->master_addr, value, n + 1);
    return 0;
}

/* the variables a layout's numbers came from, for the messages */
typedef struct layout_names {
    const char *rank, *world, *local_rank, *local_world;
} layout_names;

/* the relations between the numbers, each parsed alone before */
static int check_layout(const dist_env *e, const layout_names *n, char *err, size_t err_len)
{
    if (e->rank >= e->world)
        return fail(err, err_len, "%s = %d is not below %s = %d", n->rank, e->rank, n->world, e->world);
    if (e->local_world > e->world)
        return fail(err, err_len, "%s = %d is above %s = %d", n->local_world, e->local_world, n->world,
                    e->world);
    if (e->local_rank >= e->local_world)
        return fail(err, err_len, "%s = %d is not below %s = %d", n->local_rank, e->local_rank,
                    n->local_world, e->local_world);
    return 0;
}

/* ---- torchrun (and the launchers that copy its variables) ---- */

/* one process needs no rendezvous, so a bare RANK=0 WORLD_SIZE=1 works */
static int read_torchrun_master(dist_env *e, dist_getenv_fn get, char *err, size_t err_len)
{
    const char *addr = get("MASTER_ADDR"), *port = get("MASTER_PORT");
    if (e->world > 1 && (!addr || !port))
        return fail(err, err_len, "%s is not set: WORLD_SIZE = %d needs a rendezvous (torchrun sets it)",
                    addr ? "MASTER_PORT" : "MASTER_ADDR", e->world);
    if (addr && set_addr(e, "MASTER_ADDR", addr, err, err_len))
        return -1;
    return port ? parse_port(e, port, err, err_len) : 0;
}

static int read_torchrun(dist_env *e, dist_getenv_fn get, char *err, size_t err_len)
{
    const char *rank = get("RANK"), *world = get("WORLD_SIZE");
    if (!rank || !world)
        return fail(err, err_len, "%s is set but %s is not (torchrun sets both)",
                    rank ? "RANK" : "WORLD_SIZE", rank ? "WORLD_SIZE" : "RANK");
    e->launcher = DIST_TORCHRUN;
    if (parse_count("WORLD_SIZE", world, 1, DIST_MAX_WORLD, "a whole number", &e->world, err, err_len) ||
        parse_count("RANK", rank, 0, DIST_MAX_WORLD - 1, "a whole number", &e->rank, err, err_len))
        return -1;
    /* unset local values mean one node; the names say so when they are wrong */
    const char *lrank = get("LOCAL_RANK"), *lworld = get("LOCAL_WORLD_SIZE");
    layout_names n = {"RANK", "WORLD_SIZE", lrank ? "LOCAL_RANK" : "RANK (LOCAL_RANK unset)",
                      lworld ? "LOCAL_WORLD_SIZE" : "WORLD_SIZE (LOCAL_WORLD_SIZE unset)"};
    e->local_rank = e->rank;
    e->local_world = e->world;
    if ((lrank && parse_count("LOCAL_RANK", lrank, 0, DIST_MAX_WORLD - 1, "a whole number", &e->local_rank,
                              err, err_len)) ||
        (lworld && parse_count("LOCAL_WORLD_SIZE", lworld, 1, DIST_MAX_WORLD, "a whole number",
                               &e->local_world, err, err_len)) ||
        check_layout(e, &n, err, err_len))
        return -1;
    return read_torchrun_master(e, get, err, err_len);
}

/* ---- Slurm (srun) ---- */

/* one item of SLURM_TASKS_PER_NODE, "4" or "4(x2)": its count and the position
 * after it, or NULL */
static const char *task_item(const char *p, long *count)
{
    long times;
    if (read_number(p, &p, count) || *count < 1 || *count > DIST_MAX_WORLD)
        return NULL;
    if (*p != '(')
        return p;
    if (p[1] != 'x' || read_number(p + 2, &p, &times) || times < 1 || *p != ')')
        return NULL;
    return p + 1;
}

/* The first count of SLURM_TASKS_PER_NODE ("4(x2),3" gives 4), the tasks on
 * the first nodes; the rest is only checked. */
static int first_task_count(const char *value, int *out, char *err, size_t err_len)
{
    long first = 0, count;
    for (const char *p = value; (p = task_item(p, &count)); p++) {
        if (!first)
            first = count;
        if (!*p) {
            *out = (int)first;
            return 0;
        }
        if (*p != ',')
            break;
    }
    return fail(err, err_len, "SLURM_TASKS_PER_NODE = %s: expected task counts such as 4(x2),3",
                shown(value));
}

/* SLURM_LOCALID and this node's task count come together; with neither the
 * process is alone on its node as far as anyone can tell. */
static int read_slurm_local(dist_env *e, dist_getenv_fn get, const char **world_name, char *err,
                            size_t err_len)
{
    const char *id = get("SLURM_LOCALID"), *per_node = get("SLURM_NTASKS_PER_NODE");
    const char *tasks = get("SLURM_TASKS_PER_NODE");
    *world_name = per_node ? "SLURM_NTASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
    if (!id && !per_node && !tasks)
        return 0;
    if (!id)
        return fail(err, err_len, "%s is set but SLURM_LOCALID is not (srun sets both)", *world_name);
    if (!per_node && !tasks)
        return fail(err, err_len, "SLURM_LOCALID is set but neither SLURM_NTASKS_PER_NODE nor "
                                  "SLURM_TASKS_PER_NODE is: expected this node's task count");
    if (parse_count("SLURM_LOCALID", id, 0, DIST_MAX_WORLD - 1, "a whole number", &e->local_rank, err,
                    err_len))
        return -1;
    if (per_node)
        return parse_count("SLURM_NTASKS_PER_NODE", per_node, 1, DIST_MAX_WORLD, "a whole number",
                           &e->local_world, err, err_len);
    return first_task_count(tasks, &e->local_world, err, err_len);
}

static int first_host(const char *list, char *out, size_t out_len, char *why, size_t why_len);

/* an explicit MASTER_ADDR wins over the node list (a login node, another NIC) */
static int read_slurm_master(dist_env *e, dist_getenv_fn get, char *err, size_t err_len)
{
    const char *addr = get("MASTER_ADDR"), *port = get("MASTER_PORT");
    if (port && parse_port(e, port, err, err_len))
        return -1;
    if (addr)
        return set_addr(e, "MASTER_ADDR", addr, err, err_len);
    const char *name = get("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    const char *list = get(name);
    if (!list)
        return e->world == 1 ? 0
                             : fail(err, err_len, "neither MASTER_ADDR nor SLURM_JOB_NODELIST (or "
                                                  "SLURM_NODELIST) is set: SLURM_NTASKS = %d needs a "
                                                  "rendezvous", e->world);
    char why[96];
    if (first_host(list, e->master_addr, sizeof e->master_addr, why, sizeof why))
        return fail(err, err_len, "%s = %s: %s", name, shown(list), why);
    return 0;
}

static int read_slurm(dist_env *e, dist_getenv_fn get, char *err, size_t err_len)
{
    const char *procid = get("SLURM_PROCID"), *ntasks = get("SLURM_NTASKS");
    if (!ntasks)
        return fail(err, err_len, "SLURM_PROCID is set but SLURM_NTASKS is not (srun sets both)");
    e->launcher = DIST_SLURM;
    layout_names n = {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL};
    if (parse_count("SLURM_NTASKS", ntasks, 1, DIST_MAX_WORLD, "a whole number", &e->world, err, err_len) ||
        parse_count("SLURM_PROCID", procid, 0, DIST_MAX_WORLD - 1, "a whole number", &e->rank, err,
                    err_len) ||
        read_slurm_local(e, get, &n.local_world, err, err_len) || check_layout(e, &n, err, err_len))
        return -1;
    return read_slurm_master(e, get, err, err_len);
}

int dist_env_read(dist_env *e, dist_getenv_fn get, char *err, size_t err_len)
{
    /* filled aside and copied on success, so a failed read leaves *e alone */
    dist_env d = {.launcher = DIST_SINGLE, .world = 1, .local_world = 1,
                  .master_addr = DIST_DEFAULT_ADDR, .master_port = DIST_DEFAULT_PORT};
    int rc = 0;
    /* torchrun first: started inside a Slurm job it sees both, and its own
     * variables describe the processes it started */
    if (get("RANK") || get("WORLD_SIZE"))
        rc = read_torchrun(&d, get, err, err_len);
    else if (get("SLURM_PROCID"))
        rc = read_slurm(&d, get, err, err_len);
    if (rc == 0)
        *e = d;
    return rc;
}

/* ---- Slurm node lists: "gpu[01-04,07],cpu1" ---- */

static size_t digits(const char *p)
{
    size_t n = 0;
    while (isdigit((unsigned char)p[n]))
        n++;
    return n;
}

/* two runs of digits compared as numbers, of any length, leading zeros aside */
static int digits_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    for (; na > 1 && *a == '0'; na--)
        a++;
    for (; nb > 1 && *b == '0'; nb--)
        b++;
    if (na != nb)
        return na < nb ? -1 : 1;
    return memcmp(a, b, na);
}

/* why a bracket group stopped at the character at */
static const char *bad_group(const char *at, char *why, size_t why_len)
{
    if (!*at)
        fail(why, why_len, "'[' without ']'");
    else if (*at == ']' || *at == ',' || *at == '-')
        fail(why, why_len, "an empty range in brackets");
    else
        fail(why, why_len, "'%c' in brackets where a number was expected", *at);
    return NULL;
}

/* One bracket group, p just past its '[': ranges N or N-M (N <= M) split by
 * commas. *low: its first number as written, zero padding kept. Returns the
 * position after the ']', or NULL with why. */
static const char *read_group(const char *p, const char **low, size_t *low_len, char *why, size_t why_len)
{
    *low = p;
    *low_len = digits(p);
    for (;;) {
        size_t lo = digits(p);
        if (!lo)
            return bad_group(p, why, why_len);
        const char *q = p + lo;
        if (*q == '-') {
            size_t hi = digits(q + 1);
            if (!hi)
                return bad_group(q + 1, why, why_len);
            if (digits_cmp(p, lo, q + 1, hi) > 0) {
                fail(why, why_len, "the range %.*s runs backwards", (int)(lo + 1 + hi), p);
                return NULL;
            }
            q += 1 + hi;
        }
        if (*q == ']')
            return q + 1;
        if (*q != ',')
            return bad_group(q, why, why_len);
        p = q + 1;
    }
}

/* appends n characters to the host in out (len so far), if they fit */
static int append(char *out, size_t out_len, size_t *len, const char *s, size_t n, char *why, size_t why_len)
{
    if (*len + n >= out_len)
        return fail(why, why_len, "its first host is longer than %zu characters", out_len ? out_len - 1 : 0);
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return 0;
}

/* The first host into out; every item is read, so a list broken further on
 * is refused too. */
static int first_host(const char *list, char *out, size_t out_len, char *why, size_t why_len)
{
    size_t len = 0;
    const char *p = list;
    if (out_len)
        out[0] = '\0';
    for (int item = 0;; item++) {
        const char *start = p;
        while (*p && *p != ',') {
            const char *s = p;
            size_t n = 1;
            if (*p == ']')
                return fail(why, why_len, "']' without '['");
            if (!isgraph((unsigned char)*p))
                return fail(why, why_len, "a blank or control character in it");
            if (*p == '[') {
                if (!(p = read_group(p + 1, &s, &n, why, why_len)))
                    return -1;
            } else {
                p++;
            }
            if (item == 0 && append(out, out_len, &len, s, n, why, why_len))
                return -1;
        }
        if (p == start)
            return fail(why, why_len, *list ? "an empty host name" : "the list is empty");
        if (!*p)
            return 0;
        p++;
    }
}

int dist_slurm_first_host(const char *nodelist, char *out, size_t out_len, char *err, size_t err_len)
{
    char why[96];
    if (first_host(nodelist, out, out_len, why, sizeof why))
        return fail(err, err_len, "Slurm node list \"%s\": %s", nodelist, why);
    return 0;
}

int dist_env_ngpu(dist_getenv_fn get, int *n, char *err, size_t err_len)
{
    const char *v = get("NGPU");
    *n = 0;
    return v ? parse_count("NGPU", v, 1, 1024, "a whole number", n, err, err_len) : 0;
}
