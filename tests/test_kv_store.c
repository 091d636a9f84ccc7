/* The rendezvous key-value store (core/kv_store.h): forked ranks exchanging
 * payloads through it, a get answered later, a get that times out, clients
 * that send bytes that can never be a request, a connect to nobody, and the
 * wire format's parser on its own. */
#include "kv_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monotonic.h"
#include "testing.h"

#define RANKS 4

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Rank r's payload: an NCCL-id-sized one, 64 KiB, one with zero bytes inside,
 * and the largest value there is. */
static unsigned char *payload(int rank, size_t *len)
{
    static const size_t lens[RANKS] = {128, 65536, 9, KV_MAX_VALUE};
    *len = lens[rank];
    unsigned char *p = malloc(*len);
    for (size_t i = 0; i < *len; i++)
        p[i] = (unsigned char)(i * 31 + (i >> 8) + (size_t)rank * 7 + 1);
    if (rank == 2)
        memcpy(p, "a\0b\0\0c\0d", 9);
    return p;
}

/* a client of the server at port (5 s to connect); NULL after a failed check naming `who` */
static kv_client *connected(int port, const char *who)
{
    char err[256] = "";
    kv_client *c = kv_client_connect("127.0.0.1", port, 5, err, sizeof err);
    CHECK(c, "%s: connect: %s", who, err);
    return c;
}

/* One rank as a child process: sets its key, reads every other rank's. */
static int rank_main(int port, int rank)
{
    char err[256], key[32];
    kv_client *c = connected(port, "a rank");
    if (!c)
        return 1;
    size_t len;
    unsigned char *mine = payload(rank, &len);
    snprintf(key, sizeof key, "rank-%d", rank);
    CHECK(kv_client_set(c, key, mine, len, err, sizeof err) == 0, "rank %d: set: %s", rank, err);
    free(mine);
    for (int r = 0; r < RANKS; r++) {
        if (r == rank)
            continue;
        void *got;
        size_t got_len, want_len;
        snprintf(key, sizeof key, "rank-%d", r);
        int rc = kv_client_get(c, key, &got, &got_len, 5, err, sizeof err);
        unsigned char *want = payload(r, &want_len);
        CHECK(rc == 0, "rank %d: get %s: %s", rank, key, err);
        CHECK(rc != 0 || (got_len == want_len && memcmp(got, want, want_len) == 0),
              "rank %d: %s holds %zu bytes, not the %zu set", rank, key, got_len, want_len);
        free(got);
        free(want);
    }
    kv_client_close(c);
    return testing_failures ? 1 : 0;
}

/* The ranks are forked before the server's thread starts (a child of a
 * threaded parent may inherit a lock held mid-malloc) and read the port from
 * a pipe once it listens. */
static void spawn_ranks(pid_t pids[RANKS], int *port_pipe)
{
    int fds[2];
    *port_pipe = -1;
    for (int r = 0; r < RANKS; r++)
        pids[r] = -1;
    if (pipe(fds) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < RANKS; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            int port = 0;
            close(fds[1]);
            testing_failures = 0; /* the child's own count */
            if (read(fds[0], &port, sizeof port) != (ssize_t)sizeof port)
                _exit(2);
            _exit(rank_main(port, r)); /* _exit: the parent's atexit work is not the child's */
        }
        CHECK(pids[r] > 0, "fork: %s", strerror(errno));
    }
    close(fds[0]);
    *port_pipe = fds[1];
}

/* Tells the ranks the port (none: they exit 2), then checks how they exited. */
static void join_ranks(const pid_t pids[RANKS], int port_pipe, int port)
{
    for (int r = 0; r < RANKS && port > 0; r++)
        CHECK(write(port_pipe, &port, sizeof port) == (ssize_t)sizeof port, "write: %s", strerror(errno));
    close(port_pipe);
    for (int r = 0; r < RANKS; r++) {
        int status = 0;
        if (pids[r] <= 0)
            continue;
        CHECK(waitpid(pids[r], &status, 0) == pids[r], "waitpid: %s", strerror(errno));
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank %d: exit status %#x", r, status);
    }
}

typedef struct late_setter {
    int port, rc;
    char err[256];
} late_setter;

static void *set_late(void *arg)
{
    late_setter *a = arg;
    kv_client *c = kv_client_connect("127.0.0.1", a->port, 5, a->err, sizeof a->err);
    a->rc = -1;
    if (c) {
        sleep_ms(200);
        a->rc = kv_client_set(c, "late", "arrived", 7, a->err, sizeof a->err);
        kv_client_close(c);
    }
    return NULL;
}

static void test_late_get(int port)
{
    char err[256] = "";
    kv_client *c = connected(port, __func__);
    if (!c)
        return;
    late_setter a = {.port = port};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, set_late, &a) == 0, "pthread_create");
    double t0 = monotonic_seconds();
    void *v = NULL;
    size_t len = 0;
    int rc = kv_client_get(c, "late", &v, &len, 5, err, sizeof err);
    double waited = monotonic_seconds() - t0;
    pthread_join(t, NULL);
    CHECK(a.rc == 0, "late set: %s", a.err);
    CHECK(rc == 0, "get of 'late': %s", err);
    CHECK(rc != 0 || (len == 7 && memcmp(v, "arrived", 8) == 0), "'late' holds %zu bytes", len);
    CHECK(waited > 0.15 && waited < 3, "the get of 'late' returned after %.3f s, not after the set", waited);
    free(v);
    kv_client_close(c);
}

/* the timed-out get, then the same client again (it reconnects) */
static void test_get_timeout(int port)
{
    char err[256] = "";
    kv_client *c = connected(port, __func__);
    if (!c)
        return;
    void *v = (void *)1;
    size_t len = 1;
    double t0 = monotonic_seconds();
    int rc = kv_client_get(c, "never-set", &v, &len, 0.3, err, sizeof err);
    double waited = monotonic_seconds() - t0;
    CHECK(rc == -1 && v == NULL && len == 0, "get of a key never set: %d", rc);
    CHECK(waited >= 0.25 && waited < 1, "timed out after %.3f s, not 0.3 s", waited);
    CHECK(strstr(err, "timed out") && strstr(err, "'never-set'"), "message: %s", err);

    CHECK(kv_client_set(c, "after-timeout", "x", 1, err, sizeof err) == 0, "set after a timeout: %s", err);
    rc = kv_client_get(c, "after-timeout", &v, &len, 2, err, sizeof err);
    CHECK(rc == 0 && len == 1 && memcmp(v, "x", 1) == 0, "get after a timeout: %s", err);
    if (rc == 0)
        free(v);
    kv_client_close(c);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Sends bytes on a fresh connection; whether the server then closes it
 * (end of file or a reset) within 2 s. */
static int dropped_after(int port, const void *bytes, size_t len)
{
    int fd = raw_connect(port);
    if (fd < 0)
        return 0;
    int gone = 0;
    if (send(fd, bytes, len, MSG_NOSIGNAL) == (ssize_t)len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char b;
        ssize_t n = poll(&p, 1, 2000) == 1 ? recv(fd, &b, 1, 0) : 1;
        gone = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    close(fd);
    return gone;
}

static void test_bad_clients(int port)
{
    /* a client that stays connected half-way through a request holds nobody up */
    int idle = raw_connect(port);
    CHECK(idle >= 0 && send(idle, "S\x03\x00", 3, MSG_NOSIGNAL) == 3, "idle client");

    CHECK(dropped_after(port, "\xff\xff\xff\xff\xff\xff\xff\xff", 8), "garbage was not dropped");
    CHECK(dropped_after(port, "G\x00\x00\x00\x80", 5), "a key length of 2^31 was not dropped");
    CHECK(dropped_after(port, "G\x00\x00\x00\x00", 5), "a key length of 0 was not dropped");
    CHECK(dropped_after(port, "S\x01\x00\x00\x00k\x01\x00\x10\x00", 10),
          "a value over the limit was not dropped");

    char err[256] = "";
    kv_client *c = connected(port, "after the bad clients");
    if (!c)
        return;
    void *v = NULL;
    size_t len = 1;
    CHECK(kv_client_set(c, "empty", NULL, 0, err, sizeof err) == 0, "set of an empty value: %s", err);
    CHECK(kv_client_get(c, "empty", &v, &len, 2, err, sizeof err) == 0 && len == 0, "get of 'empty': %s",
          err);
    free(v);
    CHECK(kv_client_get(c, "rank-2", &v, &len, 2, err, sizeof err) == 0 && len == 9 &&
              memcmp(v, "a\0b\0\0c\0d", 9) == 0, "get of rank-2 after the bad clients: %s", err);
    free(v);
    char long_key[KV_MAX_KEY + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[KV_MAX_KEY + 1] = 0;
    CHECK(kv_client_set(c, long_key, "x", 1, err, sizeof err) == -1, "a key of 257 bytes was set");
    long_key[KV_MAX_KEY] = 0;
    CHECK(kv_client_set(c, long_key, "y", 1, err, sizeof err) == 0, "a key of 256 bytes: %s", err);
    CHECK(kv_client_get(c, long_key, &v, &len, 2, err, sizeof err) == 0 && len == 1 && memcmp(v, "y", 1) == 0,
          "get of a key of 256 bytes: %s", err);
    free(v);
    kv_client_close(c);

    struct pollfd p = {.fd = idle, .events = POLLIN};
    CHECK(idle >= 0 && poll(&p, 1, 0) == 0, "the idle client was dropped");
    if (idle >= 0)
        close(idle);
}

static void test_connect_refused(void)
{
    char err[256] = "", want[64];
    kv_server *s = kv_server_start(0, err, sizeof err);
    CHECK(s, "server: %s", err);
    if (!s)
        return;
    int port = kv_server_port(s);
    kv_server_stop(s);
    double t0 = monotonic_seconds();
    kv_client *c = kv_client_connect("127.0.0.1", port, 0.3, err, sizeof err);
    double waited = monotonic_seconds() - t0;
    CHECK(!c, "connected to a stopped server");
    kv_client_close(c);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CHECK(strstr(err, want), "message without %s: %s", want, err);
    CHECK(waited >= 0.25 && waited < 1.5, "gave up after %.3f s, not 0.3 s", waited);
}

/* 'S', key "k1", value "xyz\0w" */
static size_t valid_set(unsigned char *b)
{
    memcpy(b, "S\x02\x00\x00\x00k1\x05\x00\x00\x00xyz\0w", 16);
    return 16;
}

static void test_parse(void)
{
    unsigned char b[64];
    size_t n = valid_set(b);
    kv_request r;
    CHECK(kv_parse_request(b, n, &r) == (long)n, "valid set");
    CHECK(r.op == 'S' && r.key == b + 5 && r.key_len == 2 && r.value == b + 11 && r.value_len == 5 &&
              memcmp(r.value, "xyz\0w", 5) == 0, "fields of the valid set");
    for (size_t k = 0; k < n; k++)
        CHECK(kv_parse_request(b, k, &r) == 0, "prefix of %zu bytes: not 0", k);
    memcpy(b + n, "G\x01\x00\x00\x00z", 6); /* a second request behind: only the first is read */
    CHECK(kv_parse_request(b, n + 6, &r) == (long)n, "set followed by a get");
    CHECK(kv_parse_request(b + n, 6, &r) == 6 && r.op == 'G' && r.key_len == 1 && r.key[0] == 'z' &&
              r.value_len == 0, "valid get");

    static const struct { const char *bytes; size_t len; } bad[] = {
        {"X", 1}, {"\xff\xff", 2}, {"s\x01\x00\x00\x00k", 6},
        {"G\x00\x00\x00\x00", 5}, {"S\x00\x00\x00\x00", 5}, {"G\x01\x01\x00\x00", 5},
        {"G\x00\x00\x00\x80", 5}, {"S\x01\x00\x00\x00k\x01\x00\x10\x00", 10},
        {"S\x01\x00\x00\x00k\xff\xff\xff\xff", 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(kv_parse_request((const unsigned char *)bad[i].bytes, bad[i].len, &r) == -1, "bad case %zu", i);

    /* the limits themselves are valid: prefixes of requests still to come */
    CHECK(kv_parse_request((const unsigned char *)"G\x00\x01\x00\x00", 5, &r) == 0, "a key of 256 bytes");
    CHECK(kv_parse_request((const unsigned char *)"S\x01\x00\x00\x00k\x00\x00\x10\x00", 10, &r) == 0,
          "a value of KV_MAX_VALUE bytes");
}

int main(void)
{
    char err[256] = "";
    pid_t pids[RANKS];
    int port_pipe;
    test_parse();
    test_connect_refused();
    spawn_ranks(pids, &port_pipe);
    kv_server *s = kv_server_start(0, err, sizeof err);
    CHECK(s, "server: %s", err);
    int port = s ? kv_server_port(s) : 0;
    CHECK(!s || (port > 0 && port < 65536), "port %d", port);
    join_ranks(pids, port_pipe, port);
    if (!s)
        return testing_result("test_kv_store");
    CHECK(!kv_server_start(port, err, sizeof err) && strstr(err, "in use"), "a second server on port %d: %s",
          port, err);
    test_late_get(port);
    test_get_timeout(port);
    test_bad_clients(port);
    kv_server_stop(s);
    return testing_result("test_kv_store");
}
