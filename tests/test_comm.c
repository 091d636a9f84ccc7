/* The collectives (core/comm.h) with values each rank can check by itself:
 *  - 3 CPU ranks (Gloo), forked here with torchrun's variables: rank r holds
 *    x[i] = (r + 1)·(i + 1) (+ 0.5 for the doubles), so every sum is
 *    6·(i + 1) exactly; the gradients' reduction, started over three ranges
 *    that cut the ranks' thirds, leaves each rank its third of those sums
 *    (and every rank all of them with no owners), the all-gather gives every
 *    rank every rank's part, the broadcast rank 2's bytes; each child exits
 *    0 only if all held;
 *  - a CPU rank alone (no launcher): every collective the identity;
 *  - on a GPU, when the build and the machine have one, one NCCL rank under
 *    launcher variables: the same calls on device memory, the identity.
 * Without Gloo in the build the forked part is skipped with a line. */
#include <stdint.h>

#include "comm.h"
#include "cpu_kernels.h"
#include "ranks_testing.h"
#include "testing.h"
#ifdef FLAME_HAVE_CUDA
#include "cuda_kernels.h"
#endif

#define WORLD 3
#define SHARD 1000 /* floats of a rank's part */

/* 0 when every value is what a sum over WORLD ranks of (r + 1)·(i + 1) gives */
static int check_sums(const float *x, size_t from, size_t n, const char *what, int rank)
{
    for (size_t i = from; i < from + n; i++)
        if (x[i] != 6.0f * (float)(i + 1)) {
            fprintf(stderr, "FAIL rank %d: %s [%zu] = %g, expected %g\n", rank, what, i, x[i], 6.0 * (i + 1));
            return 1;
        }
    return 0;
}

/* what rank runs; the number of failed checks */
static int run_rank(int rank, int port)
{
    comm *c = ranks_join(rank, WORLD, port, "cpu");
    if (!c)
        return 1;
    char err[512] = "";
    int bad = comm_rank(c) != rank || comm_world(c) != WORLD;
    static float x[WORLD * SHARD];
    for (size_t i = 0; i < WORLD * SHARD; i++)
        x[i] = (float)(rank + 1) * (float)(i + 1);
    bad += comm_sum_floats(c, x, WORLD * SHARD, err, sizeof err) || check_sums(x, 0, WORLD * SHARD, "sum", rank);
    for (int owners = 1; owners >= 0; owners--) {
        for (size_t i = 0; i < WORLD * SHARD; i++)
            x[i] = (float)(rank + 1) * (float)(i + 1);
        static const size_t cuts[] = {0, 700, 2500, WORLD * SHARD};
        for (int k = 0; k < 3; k++)
            bad += comm_reduce_start(c, x, cuts[k], cuts[k + 1], owners ? SHARD : 0, err, sizeof err);
        bad += comm_reduce_wait(c, err, sizeof err);
        bad += owners ? check_sums(x, (size_t)rank * SHARD, SHARD, "reduction onto owners", rank)
                      : check_sums(x, 0, WORLD * SHARD, "reduction onto all", rank);
    }
    /* every rank's part is its summed third now (the rest of x undefined: set
     * to -1 here): gathered, they are all the sums */
    for (size_t i = 0; i < WORLD * SHARD; i++)
        if (i / SHARD != (size_t)rank)
            x[i] = -1.0f;
    bad += comm_all_gather(c, x, SHARD * sizeof(float), err, sizeof err) ||
           check_sums(x, 0, WORLD * SHARD, "all-gather", rank);
    double d[2] = {rank + 0.5, -(rank + 0.5)};
    bad += comm_sum_doubles(c, d, 2, err, sizeof err) || d[0] != 4.5 || d[1] != -4.5;
    char bytes[64];
    snprintf(bytes, sizeof bytes, "from rank %d", rank);
    bad += comm_broadcast(c, bytes, sizeof bytes, 2, err, sizeof err) || strcmp(bytes, "from rank 2") != 0;
    bad += comm_barrier(c, err, sizeof err);
    if (bad)
        fprintf(stderr, "FAIL rank %d: %d collectives wrong%s%s\n", rank, bad, *err ? ": " : "", err);
    comm_close(c);
    return bad;
}

static void test_three_cpu_ranks(void)
{
#ifdef FLAME_HAVE_GLOO
    ranks_fork(WORLD, run_rank);
    printf("3 CPU ranks (Gloo): sum, reductions in ranges, all-gather, doubles, broadcast, barrier checked\n");
#else
    printf("3 CPU ranks: skipped, this build has no Gloo\n");
#endif
}

/* one process, no launcher: no engine, every collective returns its input */
static void test_alone(void)
{
    unsetenv("RANK"), unsetenv("WORLD_SIZE"), unsetenv("SLURM_PROCID");
    dist_env e;
    char err[512];
    CHECK(dist_env_read(&e, ranks_env, err, sizeof err) == 0, "%s", err);
    comm *c = comm_open(&e, "cpu", 1, 1, err, sizeof err);
    CHECK(c, "%s", err);
    if (!c)
        return;
    float x[4] = {1, 2, 3, 4};
    double d = 2.5;
    CHECK(comm_sum_floats(c, x, 4, err, sizeof err) == 0 && x[3] == 4, "sum alone");
    CHECK(comm_reduce_start(c, x, 1, 3, 4, err, sizeof err) == 0 && comm_reduce_wait(c, err, sizeof err) == 0 &&
              x[1] == 2,
          "reduction alone");
    CHECK(comm_all_gather(c, x, sizeof x, err, sizeof err) == 0 && x[2] == 3, "all-gather alone");
    CHECK(comm_sum_doubles(c, &d, 1, err, sizeof err) == 0 && d == 2.5, "doubles alone");
    comm_close(c);
    printf("one process alone: every collective the identity\n");
}

#ifdef FLAME_HAVE_CUDA
/* one NCCL rank on the GPU: the same calls on device memory leave the values as they were */
static void test_one_gpu_rank(void)
{
    char why[256];
    if (!flame_cuda_available(why, sizeof why)) {
        printf("one NCCL rank: skipped (%s)\n", why);
        return;
    }
    comm *c = ranks_join(0, 1, ranks_port() + 1, "cuda");
    if (!c)
        return;
    enum { N = 4096 };
    static float host[N], back[N];
    for (int i = 0; i < N; i++)
        host[i] = 0.25f * (float)(i + 1);
    float *x = flame_cuda_ops.alloc(N * sizeof(float));
    flame_cuda_ops.upload(x, host, sizeof host);
    char err[512] = "";
    double d = 1.5;
    char bytes[8] = "nccl";
    int bad = comm_sum_floats(c, x, N, err, sizeof err) || comm_reduce_start(c, x, 0, N / 3, N, err, sizeof err) ||
              comm_reduce_start(c, x, N / 3, N, 0, err, sizeof err) || comm_reduce_wait(c, err, sizeof err) ||
              comm_all_gather(c, x, N * sizeof(float), err, sizeof err) ||
              comm_sum_doubles(c, &d, 1, err, sizeof err) || comm_broadcast(c, bytes, sizeof bytes, 0, err, sizeof err) ||
              comm_barrier(c, err, sizeof err);
    flame_cuda_ops.download(back, x, sizeof back);
    CHECK(!bad, "NCCL collectives failed: %s", err);
    CHECK(memcmp(host, back, sizeof host) == 0 && d == 1.5 && strcmp(bytes, "nccl") == 0,
          "one NCCL rank changed the values");
    flame_cuda_ops.free(x);
    comm_close(c);
    printf("one NCCL rank: sum, reductions in ranges, all-gather, doubles, broadcast, barrier the identity\n");
}
#endif

int main(void)
{
    test_three_cpu_ranks();
    test_alone();
#ifdef FLAME_HAVE_CUDA
    test_one_gpu_rank();
#endif
    return testing_result("test_comm");
}
