/* Where a process stands in a multi-process run (core/dist_env.c), read from a
 * fake environment set per case: the layouts torchrun and srun give on one and
 * two nodes, the single-process default, and refusals that name the variable
 * at fault. Also the first host of Slurm node lists and NGPU. */
#include <string.h>

#include "dist_env.h"
#include "testing.h"

/* the fake environment: name, value pairs ending with a NULL name */
static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    for (const char *const *p = fake_env; p && *p; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

/* reads pairs, which must be accepted */
static dist_env read_ok(const char *const *pairs, const char *what)
{
    dist_env e;
    char err[256] = "";
    memset(&e, 0xff, sizeof e);
    fake_env = pairs;
    int rc = dist_env_read(&e, fake_getenv, err, sizeof err);
    CHECK(rc == 0, "%s: refused: %s", what, err);
    return e;
}

static void check_env(const dist_env *e, dist_launcher launcher, int rank, int world, int local_rank,
                      int local_world, const char *addr, int port, const char *what)
{
    CHECK(e->launcher == launcher, "%s: launcher %d, expected %d", what, e->launcher, launcher);
    CHECK(e->rank == rank && e->world == world, "%s: rank %d of %d, expected %d of %d", what, e->rank,
          e->world, rank, world);
    CHECK(e->local_rank == local_rank && e->local_world == local_world,
          "%s: local %d of %d, expected %d of %d", what, e->local_rank, e->local_world, local_rank,
          local_world);
    CHECK(strcmp(e->master_addr, addr) == 0 && e->master_port == port, "%s: master %.255s:%d, expected %s:%d",
          what, e->master_addr, e->master_port, addr, port);
}

static void test_torchrun(void)
{
    const char *one_node[] = {"RANK", "5", "WORLD_SIZE", "8", "LOCAL_RANK", "5", "LOCAL_WORLD_SIZE", "8",
                              "MASTER_ADDR", "10.1.2.3", "MASTER_PORT", "29501", NULL};
    dist_env e = read_ok(one_node, "torchrun, 8 processes");
    check_env(&e, DIST_TORCHRUN, 5, 8, 5, 8, "10.1.2.3", 29501, "torchrun, 8 processes");

    const char *two_nodes[] = {"RANK", "9", "WORLD_SIZE", "16", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "8",
                               "MASTER_ADDR", "node-a.cluster", "MASTER_PORT", "12355", NULL};
    e = read_ok(two_nodes, "torchrun, 2 nodes");
    check_env(&e, DIST_TORCHRUN, 9, 16, 1, 8, "node-a.cluster", 12355, "torchrun, 2 nodes");

    /* the local values default to the global ones; one process needs no master */
    const char *no_local[] = {"RANK", "3", "WORLD_SIZE", "4", "MASTER_ADDR", "h", "MASTER_PORT", "1", NULL};
    e = read_ok(no_local, "torchrun, no local values");
    check_env(&e, DIST_TORCHRUN, 3, 4, 3, 4, "h", 1, "torchrun, no local values");
    const char *alone[] = {"RANK", "0", "WORLD_SIZE", "1", NULL};
    e = read_ok(alone, "torchrun, 1 process");
    check_env(&e, DIST_TORCHRUN, 0, 1, 0, 1, "127.0.0.1", 29500, "torchrun, 1 process");

    /* leading zeros are still decimal, not octal */
    const char *padded[] = {"RANK", "010", "WORLD_SIZE", "0016", "MASTER_ADDR", "h", "MASTER_PORT", "65535",
                            NULL};
    e = read_ok(padded, "torchrun, zero padded");
    check_env(&e, DIST_TORCHRUN, 10, 16, 10, 16, "h", 65535, "torchrun, zero padded");

    /* torchrun started by srun: torchrun's variables win */
    const char *inside_slurm[] = {"SLURM_PROCID", "1", "SLURM_NTASKS", "2", "SLURM_JOB_NODELIST", "gpu[1-2]",
                                  "RANK", "12", "WORLD_SIZE", "16", "LOCAL_RANK", "4", "LOCAL_WORLD_SIZE",
                                  "8", "MASTER_ADDR", "gpu1", "MASTER_PORT", "29400", NULL};
    e = read_ok(inside_slurm, "torchrun inside Slurm");
    check_env(&e, DIST_TORCHRUN, 12, 16, 4, 8, "gpu1", 29400, "torchrun inside Slurm");
}

static void test_slurm(void)
{
    const char *job[] = {"SLURM_PROCID", "6", "SLURM_NTASKS", "8", "SLURM_LOCALID", "2",
                         "SLURM_TASKS_PER_NODE", "4(x2)", "SLURM_JOB_NODELIST", "gpu[03-04]", NULL};
    dist_env e = read_ok(job, "Slurm job");
    check_env(&e, DIST_SLURM, 6, 8, 2, 4, "gpu03", 29500, "Slurm job");

    const char *master_set[] = {"SLURM_PROCID", "6", "SLURM_NTASKS", "8", "SLURM_LOCALID", "2",
                                "SLURM_TASKS_PER_NODE", "4(x2)", "SLURM_JOB_NODELIST", "gpu[03-04]",
                                "MASTER_ADDR", "10.0.0.7", "MASTER_PORT", "23456", NULL};
    e = read_ok(master_set, "Slurm job, master set");
    check_env(&e, DIST_SLURM, 6, 8, 2, 4, "10.0.0.7", 23456, "Slurm job, master set");

    /* SLURM_NTASKS_PER_NODE before SLURM_TASKS_PER_NODE; SLURM_NODELIST when
     * SLURM_JOB_NODELIST is missing; uneven nodes give the first count */
    const char *per_node[] = {"SLURM_PROCID", "10", "SLURM_NTASKS", "11", "SLURM_LOCALID", "2",
                              "SLURM_NTASKS_PER_NODE", "3", "SLURM_TASKS_PER_NODE", "4(x2),3",
                              "SLURM_NODELIST", "a[7-9],b", NULL};
    e = read_ok(per_node, "Slurm, SLURM_NTASKS_PER_NODE");
    check_env(&e, DIST_SLURM, 10, 11, 2, 3, "a7", 29500, "Slurm, SLURM_NTASKS_PER_NODE");
    const char *uneven[] = {"SLURM_PROCID", "10", "SLURM_NTASKS", "11", "SLURM_LOCALID", "2",
                            "SLURM_TASKS_PER_NODE", "4(x2),3", "SLURM_JOB_NODELIST", "n[009-011]", NULL};
    e = read_ok(uneven, "Slurm, uneven nodes");
    check_env(&e, DIST_SLURM, 10, 11, 2, 4, "n009", 29500, "Slurm, uneven nodes");

    /* no local values at all: alone on its node as far as anyone can tell */
    const char *no_local[] = {"SLURM_PROCID", "1", "SLURM_NTASKS", "2", "SLURM_JOB_NODELIST", "x1,x2", NULL};
    e = read_ok(no_local, "Slurm, no local values");
    check_env(&e, DIST_SLURM, 1, 2, 0, 1, "x1", 29500, "Slurm, no local values");
    const char *one_task[] = {"SLURM_PROCID", "0", "SLURM_NTASKS", "1", NULL};
    e = read_ok(one_task, "Slurm, one task");
    check_env(&e, DIST_SLURM, 0, 1, 0, 1, "127.0.0.1", 29500, "Slurm, one task");
}

static void test_single(void)
{
    const char *nothing[] = {NULL};
    dist_env e = read_ok(nothing, "nothing set");
    check_env(&e, DIST_SINGLE, 0, 1, 0, 1, "127.0.0.1", 29500, "nothing set");
    /* Slurm's other variables without SLURM_PROCID (sbatch's own shell) */
    const char *batch_shell[] = {"SLURM_NTASKS", "8", "SLURM_JOB_NODELIST", "gpu[1-2]", "NGPU", "8", NULL};
    e = read_ok(batch_shell, "sbatch shell");
    check_env(&e, DIST_SINGLE, 0, 1, 0, 1, "127.0.0.1", 29500, "sbatch shell");
}

/* pairs must be refused with a one-line message holding needle, and leave e alone */
static void expect_refusal(const char *const *pairs, const char *needle)
{
    dist_env e, before;
    char err[256] = "";
    memset(&e, 0x5a, sizeof e);
    before = e;
    fake_env = pairs;
    int rc = dist_env_read(&e, fake_getenv, err, sizeof err);
    CHECK(rc == -1 && strstr(err, needle) && !strchr(err, '\n'), "expected a refusal with '%s', got %d '%s'",
          needle, rc, err);
    CHECK(memcmp(&e, &before, sizeof e) == 0, "a refusal with '%s' changed the result", needle);
}

#define REFUSED(needle, ...)                                   \
    do {                                                       \
        const char *pairs_[] = {__VA_ARGS__, NULL};            \
        expect_refusal(pairs_, needle);                        \
    } while (0)

static void test_torchrun_refusals(void)
{
    REFUSED("WORLD_SIZE is set but RANK is not (torchrun sets both)", "WORLD_SIZE", "8");
    REFUSED("RANK is set but WORLD_SIZE is not", "RANK", "0");
    REFUSED("RANK = 3 is not below WORLD_SIZE = 2", "RANK", "3", "WORLD_SIZE", "2", "MASTER_ADDR", "h",
            "MASTER_PORT", "1");
    REFUSED("MASTER_PORT = 99999: expected a port number in 1..65535", "RANK", "0", "WORLD_SIZE", "2",
            "MASTER_ADDR", "h", "MASTER_PORT", "99999");
    REFUSED("MASTER_PORT = 0", "RANK", "0", "WORLD_SIZE", "1", "MASTER_PORT", "0");
    REFUSED("RANK = -1", "RANK", "-1", "WORLD_SIZE", "1");
    REFUSED("RANK = +1", "RANK", "+1", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("RANK =  1", "RANK", " 1", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("RANK = 1x", "RANK", "1x", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("RANK = \"\"", "RANK", "", "WORLD_SIZE", "1");
    REFUSED("WORLD_SIZE = 99999999999999999999999", "RANK", "0", "WORLD_SIZE", "99999999999999999999999");
    REFUSED("WORLD_SIZE = 4294967297", "RANK", "0", "WORLD_SIZE", "4294967297");
    REFUSED("WORLD_SIZE = 0", "RANK", "0", "WORLD_SIZE", "0");
    REFUSED("WORLD_SIZE = 65537", "RANK", "0", "WORLD_SIZE", "65537", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("LOCAL_RANK = 0x1", "RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "0x1", "MASTER_ADDR", "h",
            "MASTER_PORT", "1");
    REFUSED("LOCAL_RANK = 8 is not below LOCAL_WORLD_SIZE = 8", "RANK", "8", "WORLD_SIZE", "16", "LOCAL_RANK",
            "8", "LOCAL_WORLD_SIZE", "8", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("LOCAL_WORLD_SIZE = 16 is above WORLD_SIZE = 8", "RANK", "0", "WORLD_SIZE", "8",
            "LOCAL_WORLD_SIZE", "16", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("RANK (LOCAL_RANK unset) = 9 is not below LOCAL_WORLD_SIZE = 8", "RANK", "9", "WORLD_SIZE", "16",
            "LOCAL_WORLD_SIZE", "8", "MASTER_ADDR", "h", "MASTER_PORT", "1");
    REFUSED("MASTER_ADDR is not set", "RANK", "0", "WORLD_SIZE", "8", "MASTER_PORT", "1");
    REFUSED("MASTER_PORT is not set", "RANK", "0", "WORLD_SIZE", "8", "MASTER_ADDR", "h");
    REFUSED("MASTER_ADDR is set but empty", "RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "",
            "MASTER_PORT", "1");
    char long_addr[300];
    memset(long_addr, 'h', sizeof long_addr - 1);
    long_addr[sizeof long_addr - 1] = '\0';
    REFUSED("MASTER_ADDR is 299 characters long", "RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", long_addr,
            "MASTER_PORT", "1");
    /* 255 characters still fit */
    long_addr[255] = '\0';
    const char *fits[] = {"RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", long_addr, "MASTER_PORT", "1", NULL};
    dist_env e = read_ok(fits, "255-character MASTER_ADDR");
    CHECK(strlen(e.master_addr) == 255, "MASTER_ADDR of %zu characters", strlen(e.master_addr));
    /* a newline in a value does not break the message's line */
    REFUSED("RANK = 1?2", "RANK", "1\n2", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1");
}

static void test_slurm_refusals(void)
{
    REFUSED("SLURM_PROCID is set but SLURM_NTASKS is not", "SLURM_PROCID", "0");
    REFUSED("SLURM_PROCID = 8 is not below SLURM_NTASKS = 8", "SLURM_PROCID", "8", "SLURM_NTASKS", "8");
    REFUSED("SLURM_PROCID = -2", "SLURM_PROCID", "-2", "SLURM_NTASKS", "8");
    REFUSED("SLURM_NTASKS = 8 tasks", "SLURM_PROCID", "0", "SLURM_NTASKS", "8 tasks");
    REFUSED("SLURM_LOCALID = 4 is not below SLURM_TASKS_PER_NODE = 4", "SLURM_PROCID", "4", "SLURM_NTASKS",
            "8", "SLURM_LOCALID", "4", "SLURM_TASKS_PER_NODE", "4(x2)", "SLURM_JOB_NODELIST", "a[1-2]");
    REFUSED("SLURM_NTASKS_PER_NODE = 9 is above SLURM_NTASKS = 8", "SLURM_PROCID", "4", "SLURM_NTASKS", "8",
            "SLURM_LOCALID", "0", "SLURM_NTASKS_PER_NODE", "9", "SLURM_JOB_NODELIST", "a[1-2]");
    const char *bad_counts[] = {"abc", "", "4(x2", "4(2)", "4(x0)", "0", "4,", ",4", "4(x2),", "4 (x2)"};
    for (size_t i = 0; i < sizeof bad_counts / sizeof *bad_counts; i++)
        REFUSED("SLURM_TASKS_PER_NODE = ", "SLURM_PROCID", "0", "SLURM_NTASKS", "8", "SLURM_LOCALID", "0",
                "SLURM_TASKS_PER_NODE", bad_counts[i], "SLURM_JOB_NODELIST", "a");
    REFUSED("SLURM_LOCALID is set but neither SLURM_NTASKS_PER_NODE nor SLURM_TASKS_PER_NODE", "SLURM_PROCID",
            "0", "SLURM_NTASKS", "8", "SLURM_LOCALID", "0", "SLURM_JOB_NODELIST", "a");
    REFUSED("SLURM_TASKS_PER_NODE is set but SLURM_LOCALID is not", "SLURM_PROCID", "0", "SLURM_NTASKS", "8",
            "SLURM_TASKS_PER_NODE", "8", "SLURM_JOB_NODELIST", "a");
    REFUSED("SLURM_JOB_NODELIST = gpu[: '[' without ']'", "SLURM_PROCID", "0", "SLURM_NTASKS", "2",
            "SLURM_JOB_NODELIST", "gpu[");
    REFUSED("SLURM_NODELIST = a]b", "SLURM_PROCID", "0", "SLURM_NTASKS", "2", "SLURM_NODELIST", "a]b");
    REFUSED("neither MASTER_ADDR nor SLURM_JOB_NODELIST", "SLURM_PROCID", "0", "SLURM_NTASKS", "2");
    REFUSED("MASTER_PORT = 65536", "SLURM_PROCID", "0", "SLURM_NTASKS", "2", "SLURM_JOB_NODELIST", "a",
            "MASTER_PORT", "65536");
}

static void expect_host(const char *list, const char *want)
{
    char out[256], err[256] = "";
    int rc = dist_slurm_first_host(list, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strcmp(out, want) == 0, "\"%s\": %d '%s', expected '%s' (%s)", list, rc, rc ? "" : out,
          want, err);
}

static void expect_bad_list(const char *list, size_t out_len, const char *needle)
{
    char out[256], err[256] = "";
    int rc = dist_slurm_first_host(list, out, out_len, err, sizeof err);
    CHECK(rc == -1 && strstr(err, needle) && !strchr(err, '\n'),
          "\"%s\": expected a refusal with '%s', got %d '%s'", list, needle, rc, err);
}

static void test_first_host(void)
{
    expect_host("gpu[01-04,07],cpu1", "gpu01");
    expect_host("node7,node8", "node7");
    expect_host("a[3]", "a3");
    expect_host("n[009-010]", "n009");
    expect_host("cpu1,gpu[1-2]", "cpu1");
    expect_host("rack[2-3]-n[05-06]", "rack2-n05");
    expect_host("x[7,1-3]", "x7");
    expect_host("n[9-10]", "n9");
    expect_host("host.example.org", "host.example.org");

    expect_bad_list("", 256, "the list is empty");
    expect_bad_list("a[", 256, "'[' without ']'");
    expect_bad_list("a[]", 256, "an empty range");
    expect_bad_list("a]b", 256, "']' without '['");
    expect_bad_list("a[1-]", 256, "an empty range");
    expect_bad_list("a[-3]", 256, "an empty range");
    expect_bad_list("a[1,]", 256, "an empty range");
    expect_bad_list("a[1-3", 256, "'[' without ']'");
    expect_bad_list("a[10-9]", 256, "the range 10-9 runs backwards");
    expect_bad_list("a[[1]]", 256, "'[' in brackets");
    expect_bad_list("a[x]", 256, "'x' in brackets");
    expect_bad_list("a,,b", 256, "an empty host name");
    expect_bad_list("a,", 256, "an empty host name");
    expect_bad_list(",a", 256, "an empty host name");
    expect_bad_list("a b", 256, "a blank");
    expect_bad_list("a,b[", 256, "'[' without ']'");
    /* the host and its terminator must fit out */
    char out[6], err[128] = "";
    int rc = dist_slurm_first_host("gpu[01-02]", out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strcmp(out, "gpu01") == 0, "gpu01 in 6 bytes: %s", err);
    expect_bad_list("gpu[01-02]", 5, "longer than 4 characters");
    expect_bad_list("gpu01", 5, "longer than 4 characters");
    expect_bad_list("a", 0, "longer than 0 characters");
    /* a short err is cut, not overrun, and NULL err is allowed */
    char small[8];
    CHECK(dist_slurm_first_host("a[", out, sizeof out, small, sizeof small) == -1 && strlen(small) == 7,
          "cut message '%s'", small);
    CHECK(dist_slurm_first_host("a[", out, sizeof out, NULL, 0) == -1, "NULL err");
}

static void test_ngpu(void)
{
    const char *unset[] = {NULL}, *eight[] = {"NGPU", "8", NULL}, *most[] = {"NGPU", "1024", NULL};
    int n = -1;
    char err[256] = "";
    fake_env = unset;
    CHECK(dist_env_ngpu(fake_getenv, &n, err, sizeof err) == 0 && n == 0, "NGPU unset: %d %s", n, err);
    fake_env = eight;
    CHECK(dist_env_ngpu(fake_getenv, &n, err, sizeof err) == 0 && n == 8, "NGPU 8: %d %s", n, err);
    fake_env = most;
    CHECK(dist_env_ngpu(fake_getenv, &n, err, sizeof err) == 0 && n == 1024, "NGPU 1024: %d %s", n, err);
    const char *bad[] = {"0", "abc", "9999", "1025", "-8", "8 ", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *pairs[] = {"NGPU", bad[i], NULL};
        fake_env = pairs;
        n = -1;
        err[0] = '\0';
        int rc = dist_env_ngpu(fake_getenv, &n, err, sizeof err);
        CHECK(rc == -1 && n == 0 && strstr(err, "NGPU = ") && strstr(err, "1..1024"),
              "NGPU '%s': %d n %d '%s'", bad[i], rc, n, err);
    }
}

int main(void)
{
    test_torchrun();
    test_slurm();
    test_single();
    test_torchrun_refusals();
    test_slurm_refusals();
    test_first_host();
    test_ngpu();
    return testing_result("test_dist_env");
}
