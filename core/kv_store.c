/* The rendezvous key-value store (kv_store.h). The server is one thread that
 * polls non-blocking sockets, so a slow or broken client stalls nobody; it
 * answers each client's requests in order (a pending get holds back that
 * client's later requests), which keeps replies matched to requests. A get
 * has no server-side timeout: the client enforces its own and then drops
 * the connection, so that a late 'V' cannot be taken for the reply to a later
 * request. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "kv_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "monotonic.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define KV_MAX_REQUEST ((size_t)1 + 4 + KV_MAX_KEY + 4 + KV_MAX_VALUE)
/* a client's unsent replies past which its further requests wait: one that
 * never reads cannot make the server hold more than this */
#define KV_OUT_LIMIT (2 * (size_t)KV_MAX_VALUE)
#define KV_CHUNK 65536          /* bytes read at a time; buffers above it are freed when empty */
#define KV_SET_TIMEOUT 60.0     /* seconds a set waits for the server's 'K' */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* ---- the wire format ---- */

long kv_parse_request(const unsigned char *buf, size_t len, kv_request *req)
{
    if (len < 1)
        return 0;
    char op = (char)buf[0];
    if (op != 'S' && op != 'G')
        return -1;
    if (len < 5)
        return 0;
    uint32_t key_len = get_u32(buf + 1);
    if (key_len == 0 || key_len > KV_MAX_KEY)
        return -1;
    size_t used = 5 + (size_t)key_len;
    uint32_t value_len = 0;
    if (op == 'S') {
        if (len < used + 4)
            return 0;
        value_len = get_u32(buf + used);
        if (value_len > KV_MAX_VALUE)
            return -1;
        used += 4;
    }
    if (len < used || len - used < value_len)
        return 0;
    *req = (kv_request){.op = op, .key = buf + 5, .key_len = key_len,
                        .value = op == 'S' ? buf + used : NULL, .value_len = value_len};
    return (long)(used + value_len);
}

/* ---- the server ---- */

typedef struct kv_entry {
    unsigned char *key, *value; /* value: allocated even when empty */
    uint32_t key_len, value_len;
} kv_entry;

typedef struct kv_conn {
    int fd;
    unsigned char *in; /* received bytes; in[in_off, in_len) not yet parsed */
    size_t in_off, in_len, in_cap;
    unsigned char *out; /* replies; out[out_off, out_len) not yet sent */
    size_t out_off, out_len, out_cap;
    unsigned char wait_key[KV_MAX_KEY]; /* a get's key not yet set (copied: in moves) */
    uint32_t wait_len;                  /* 0: no get waits */
    int eof, dead;
} kv_conn;

struct kv_server {
    int listen_fd, wake[2], port;
    pthread_t thread;
    kv_conn **conns;
    size_t n_conns, conns_cap;
    kv_entry *entries;
    size_t n_entries, entries_cap;
    struct pollfd *fds; /* [0] the wake pipe, [1] the listener, then the clients */
    size_t fds_cap;
    double accept_resume; /* out of file descriptors: accept again after this time */
};

static kv_entry *find_entry(kv_server *s, const unsigned char *key, uint32_t key_len)
{
    for (size_t i = 0; i < s->n_entries; i++) {
        kv_entry *e = &s->entries[i];
        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    }
    return NULL;
}

/* A new entry for the request's key (or its existing one, whose value a
 * second set replaces). NULL when out of memory. */
static kv_entry *store_set(kv_server *s, const kv_request *r)
{
    unsigned char *value = malloc(r->value_len ? r->value_len : 1);
    if (!value)
        return NULL;
    if (r->value_len)
        memcpy(value, r->value, r->value_len);
    kv_entry *e = find_entry(s, r->key, r->key_len);
    if (!e) {
        if (s->n_entries == s->entries_cap) {
            size_t cap = s->entries_cap ? 2 * s->entries_cap : 64;
            kv_entry *grown = realloc(s->entries, cap * sizeof *grown);
            if (!grown) {
                free(value);
                return NULL;
            }
            s->entries = grown;
            s->entries_cap = cap;
        }
        unsigned char *key = malloc(r->key_len);
        if (!key) {
            free(value);
            return NULL;
        }
        memcpy(key, r->key, r->key_len);
        e = &s->entries[s->n_entries++];
        *e = (kv_entry){.key = key, .key_len = r->key_len};
    }
    free(e->value);
    e->value = value;
    e->value_len = r->value_len;
    return e;
}

/* n more bytes at the end of c's reply queue, or NULL when out of memory */
static unsigned char *out_reserve(kv_conn *c, size_t n)
{
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap - c->out_len < n)
            cap *= 2;
        unsigned char *p = realloc(c->out, cap);
        if (!p)
            return NULL;
        c->out = p;
        c->out_cap = cap;
    }
    c->out_len += n;
    return c->out + c->out_len - n;
}

static int reply_ok(kv_conn *c)
{
    unsigned char *p = out_reserve(c, 1);
    if (!p)
        return -1;
    *p = 'K';
    return 0;
}

static int reply_value(kv_conn *c, const kv_entry *e)
{
    unsigned char *p = out_reserve(c, 5 + (size_t)e->value_len);
    if (!p)
        return -1;
    p[0] = 'V';
    put_u32(p + 1, e->value_len);
    memcpy(p + 5, e->value, e->value_len);
    return 0;
}

/* Answers the gets that waited for e's key; their clients' later requests
 * are taken up by the next round of serve_all. */
static void wake_waiters(kv_server *s, const kv_entry *e)
{
    for (size_t i = 0; i < s->n_conns; i++) {
        kv_conn *c = s->conns[i];
        if (c->dead || c->wait_len != e->key_len || memcmp(c->wait_key, e->key, e->key_len) != 0)
            continue;
        c->wait_len = 0;
        if (reply_value(c, e))
            c->dead = 1;
    }
}

/* One parsed request of c. 0, or -1 when out of memory (c is then dropped). */
static int handle_request(kv_server *s, kv_conn *c, const kv_request *r)
{
    if (r->op == 'G') {
        const kv_entry *e = find_entry(s, r->key, r->key_len);
        if (e)
            return reply_value(c, e);
        memcpy(c->wait_key, r->key, r->key_len);
        c->wait_len = r->key_len;
        return 0;
    }
    kv_entry *e = store_set(s, r);
    if (!e || reply_ok(c))
        return -1;
    wake_waiters(s, e);
    return 0;
}

/* Answers c's buffered requests in order until one must wait (a get of a key
 * not yet set, or too many replies unsent). Whether it answered any. */
static int conn_serve(kv_server *s, kv_conn *c)
{
    int progress = 0;
    while (!c->dead && !c->wait_len && c->in_off < c->in_len && c->out_len - c->out_off < KV_OUT_LIMIT) {
        kv_request r;
        long n = kv_parse_request(c->in + c->in_off, c->in_len - c->in_off, &r);
        if (n == 0)
            break;
        if (n < 0 || handle_request(s, c, &r) != 0) {
            c->dead = 1;
            break;
        }
        c->in_off += (size_t)n;
        progress = 1;
    }
    if (c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
        if (c->in_cap > KV_CHUNK) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    return progress;
}

/* Reads what c's socket holds into room made by compacting and growing the
 * buffer, never past the largest request. -1: the connection failed. */
static int conn_read(kv_conn *c)
{
    if (c->in_off) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap - c->in_len < KV_CHUNK && c->in_cap < KV_MAX_REQUEST) {
        size_t cap = c->in_len + KV_CHUNK < KV_MAX_REQUEST ? c->in_len + KV_CHUNK : KV_MAX_REQUEST;
        unsigned char *p = realloc(c->in, cap);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = cap;
    }
    if (c->in_len == c->in_cap)
        return 0; /* a whole request waits to be served */
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (n > 0)
        c->in_len += (size_t)n;
    else if (n == 0)
        c->eof = 1;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    return 0;
}

/* Sends what the socket takes now. -1: the connection failed. */
static int conn_flush(kv_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > KV_CHUNK) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 0;
}

static void conn_free(kv_conn *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Room for one more client in conns and fds. -1 when out of memory. */
static int reserve_conn(kv_server *s)
{
    if (s->n_conns == s->conns_cap) {
        size_t cap = s->conns_cap ? 2 * s->conns_cap : 16;
        kv_conn **p = realloc(s->conns, cap * sizeof *p);
        if (!p)
            return -1;
        s->conns = p;
        s->conns_cap = cap;
    }
    if (s->fds_cap < s->n_conns + 3) {
        size_t cap = 2 * (s->n_conns + 3);
        struct pollfd *p = realloc(s->fds, cap * sizeof *p);
        if (!p)
            return -1;
        s->fds = p;
        s->fds_cap = cap;
    }
    return 0;
}

static void accept_all(kv_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) /* out of fds: the listener would spin */
                s->accept_resume = monotonic_seconds() + 0.1;
            return;
        }
        kv_conn *c = reserve_conn(s) ? NULL : calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        set_nodelay(fd);
        s->conns[s->n_conns++] = c;
    }
}

/* Fills fds for this round; the number of them. */
static size_t build_pollfds(kv_server *s, int *timeout_ms)
{
    int paused = s->accept_resume > monotonic_seconds();
    *timeout_ms = paused ? 100 : -1;
    s->fds[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    s->fds[1] = (struct pollfd){.fd = paused ? -1 : s->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < s->n_conns; i++) {
        const kv_conn *c = s->conns[i];
        short events = 0;
        if (c->in_len - c->in_off < KV_MAX_REQUEST)
            events |= POLLIN;
        if (c->out_off < c->out_len)
            events |= POLLOUT;
        s->fds[i + 2] = (struct pollfd){.fd = c->fd, .events = events};
    }
    return s->n_conns + 2;
}

static void handle_events(kv_server *s, size_t n_fds)
{
    for (size_t i = 2; i < n_fds; i++) {
        kv_conn *c = s->conns[i - 2];
        short re = s->fds[i].revents;
        if (re & (POLLERR | POLLNVAL)) {
            c->dead = 1;
            continue;
        }
        if ((re & (POLLIN | POLLHUP)) && conn_read(c))
            c->dead = 1;
        if (re & POLLHUP) /* nothing more will come: serve what came, then drop */
            c->eof = 1;
        if ((re & POLLOUT) && conn_flush(c))
            c->dead = 1;
    }
}

/* Serves every client until none can go further, sends what the sockets take,
 * and drops the clients that are gone or broke the rules. */
static void serve_all(kv_server *s)
{
    int progress = 1;
    while (progress) {
        progress = 0;
        for (size_t i = 0; i < s->n_conns; i++)
            progress |= conn_serve(s, s->conns[i]);
    }
    size_t kept = 0;
    for (size_t i = 0; i < s->n_conns; i++) {
        kv_conn *c = s->conns[i];
        if (!c->dead && !c->eof && conn_flush(c))
            c->dead = 1;
        if (c->dead || c->eof)
            conn_free(c);
        else
            s->conns[kept++] = c;
    }
    s->n_conns = kept;
}

static void *server_main(void *arg)
{
    kv_server *s = arg;
    for (;;) {
        int timeout_ms;
        size_t n = build_pollfds(s, &timeout_ms);
        if (poll(s->fds, n, timeout_ms) < 0)
            continue; /* EINTR; anything else has no remedy but trying again */
        if (s->fds[0].revents)
            return NULL;
        if (s->fds[1].revents & POLLIN)
            accept_all(s);
        handle_events(s, n);
        serve_all(s);
    }
}

/* A listening socket on all interfaces of family at port. 0, or an errno. */
static int listen_on(int family, int port, int *fd_out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        /* one socket for IPv4 and IPv6 clients alike */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons((uint16_t)port);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        a->sin_port = htons((uint16_t)port);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    *fd_out = fd;
    return 0;
}

static int open_listener(kv_server *s, int port, char *err, size_t err_len)
{
    int e = listen_on(AF_INET6, port, &s->listen_fd);
    if (e && e != EADDRINUSE && e != EACCES) /* a host without IPv6 */
        e = listen_on(AF_INET, port, &s->listen_fd);
    if (e) {
        set_err(err, err_len, "cannot listen on port %d: %s", port, strerror(e));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &len) != 0) {
        set_err(err, err_len, "cannot read the port listened on: %s", strerror(errno));
        return -1;
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void server_free(kv_server *s)
{
    for (size_t i = 0; i < s->n_conns; i++)
        conn_free(s->conns[i]);
    for (size_t i = 0; i < s->n_entries; i++) {
        free(s->entries[i].key);
        free(s->entries[i].value);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    free(s->conns);
    free(s->entries);
    free(s->fds);
    free(s);
}

/* The server's thread takes no signals: a SIGINT or SIGTERM goes to a thread
 * of the run, whose blocking calls it interrupts. 0, or an errno. */
static int start_thread(kv_server *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&s->thread, NULL, server_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e;
}

kv_server *kv_server_start(int port, char *err, size_t err_len)
{
    if (port < 0 || port > 65535) {
        set_err(err, err_len, "port %d is not in 0..65535", port);
        return NULL;
    }
    kv_server *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, err_len, "out of memory");
        return NULL;
    }
    s->listen_fd = s->wake[0] = s->wake[1] = -1;
    if (open_listener(s, port, err, err_len) != 0)
        goto fail;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0 || reserve_conn(s) != 0) {
        set_err(err, err_len, "cannot start the key-value server: %s", strerror(errno));
        goto fail;
    }
    int e = start_thread(s);
    if (e) {
        set_err(err, err_len, "cannot start the key-value server's thread: %s", strerror(e));
        goto fail;
    }
    return s;
fail:
    server_free(s);
    return NULL;
}

int kv_server_port(const kv_server *s) { return s->port; }

void kv_server_stop(kv_server *s)
{
    if (!s)
        return;
    ssize_t n;
    do
        n = write(s->wake[1], "x", 1);
    while (n < 0 && errno == EINTR);
    pthread_join(s->thread, NULL);
    server_free(s);
}

/* ---- the client ---- */

struct kv_client {
    int fd; /* -1 after a timeout or a lost connection: the next call reconnects */
    char *host;
    int port;
    double connect_timeout;
};

enum { IO_OK = 0, IO_TIMEOUT = 1, IO_LOST = -1, IO_BAD = -2 };

static int ms_until(double deadline)
{
    double ms = (deadline - monotonic_seconds()) * 1e3;
    return ms <= 0 ? 0 : ms >= INT_MAX ? INT_MAX : (int)ms + 1;
}

/* Waits until fd is ready for events: IO_OK, IO_TIMEOUT or IO_LOST (errno set) */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms_until(deadline));
        if (n > 0)
            return IO_OK;
        if (n == 0 && monotonic_seconds() >= deadline)
            return IO_TIMEOUT;
        if (n < 0 && errno != EINTR)
            return IO_LOST;
    }
}

/* The socket stays blocking; MSG_DONTWAIT keeps a full socket from
 * outlasting the deadline. */
static int send_all(int fd, const unsigned char *buf, size_t len, double deadline)
{
    while (len) {
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc != IO_OK)
            return rc;
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return IO_LOST;
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    return IO_OK;
}

/* IO_LOST with errno 0 when the server closed the connection */
static int recv_all(int fd, void *buf, size_t len, double deadline)
{
    unsigned char *p = buf;
    while (len) {
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc != IO_OK)
            return rc;
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n == 0) {
            errno = 0;
            return IO_LOST;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return IO_LOST;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    return IO_OK;
}

/* One try at each address of host:port, each bounded by the deadline. The
 * socket, or -1 with why in last. */
static int connect_once(const kv_client *c, double deadline, char *last, size_t last_len)
{
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int e = getaddrinfo(c->host, port, &hints, &ai);
    if (e) {
        snprintf(last, last_len, "%s", e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (const struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(last, last_len, "%s", strerror(errno));
            continue;
        }
        int rc = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? IO_OK : IO_LOST;
        if (rc != IO_OK && errno == EINPROGRESS)
            rc = wait_fd(fd, POLLOUT, deadline);
        socklen_t len = sizeof e;
        if (rc == IO_OK && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e) {
            errno = e;
            rc = IO_LOST;
        }
        if (rc != IO_OK) {
            snprintf(last, last_len, "%s", rc == IO_TIMEOUT ? "no answer" : strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        set_nodelay(fd);
    }
    return fd;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int client_connect(kv_client *c, char *err, size_t err_len)
{
    double deadline = monotonic_seconds() + c->connect_timeout;
    char last[160] = "no address";
    for (;;) {
        c->fd = connect_once(c, deadline, last, sizeof last);
        if (c->fd >= 0)
            return 0;
        double left = deadline - monotonic_seconds();
        if (left <= 0)
            break;
        sleep_seconds(left < 0.1 ? left : 0.1);
    }
    set_err(err, err_len, "cannot connect to the key-value store at %s:%d within %g s: %s", c->host, c->port,
            c->connect_timeout, last);
    return -1;
}

kv_client *kv_client_connect(const char *host, int port, double timeout_s, char *err, size_t err_len)
{
    kv_client *c = calloc(1, sizeof *c);
    if (c)
        c->host = strdup(host ? host : "");
    if (!c || !c->host) {
        set_err(err, err_len, "out of memory");
        kv_client_close(c);
        return NULL;
    }
    c->fd = -1;
    c->port = port;
    c->connect_timeout = timeout_s > 0 ? timeout_s : 0;
    if (client_connect(c, err, err_len) != 0) {
        kv_client_close(c);
        return NULL;
    }
    return c;
}

void kv_client_close(kv_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->host);
    free(c);
}

static int check_key(const char *key, size_t *key_len, char *err, size_t err_len)
{
    *key_len = key ? strlen(key) : 0;
    if (*key_len == 0 || *key_len > KV_MAX_KEY) {
        set_err(err, err_len, "a key has 1 to %d bytes, not %zu", KV_MAX_KEY, *key_len);
        return -1;
    }
    return 0;
}

/* The request's bytes, malloc'ed: op, key and (for 'S') the value */
static unsigned char *build_request(char op, const char *key, size_t key_len, const void *value, size_t len,
                                    size_t *size)
{
    *size = 5 + key_len + (op == 'S' ? 4 + len : 0);
    unsigned char *p = malloc(*size);
    if (!p)
        return NULL;
    p[0] = (unsigned char)op;
    put_u32(p + 1, (uint32_t)key_len);
    memcpy(p + 5, key, key_len);
    if (op == 'S') {
        put_u32(p + 5 + key_len, (uint32_t)len);
        if (len)
            memcpy(p + 9 + key_len, value, len);
    }
    return p;
}

/* Sends the request, reconnecting first if an earlier call dropped the connection. */
static int send_request(kv_client *c, unsigned char *req, size_t size, double deadline, char *err,
                        size_t err_len)
{
    if (!req) {
        set_err(err, err_len, "out of memory");
        return IO_BAD;
    }
    int rc = IO_BAD;
    if (c->fd >= 0 || client_connect(c, err, err_len) == 0)
        rc = send_all(c->fd, req, size, deadline);
    int saved = errno; /* for client_fail's message */
    free(req);
    errno = saved;
    return rc;
}

/* Closes the connection after a failed call (a reply may still be on its way)
 * and says why in err, unless rc is IO_BAD (err says it already). */
static int client_fail(kv_client *c, int rc, const char *doing, const char *key, double timeout_s, char *err,
                       size_t err_len)
{
    const char *why = errno ? strerror(errno) : "closed by the server";
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (rc == IO_TIMEOUT)
        set_err(err, err_len, "timed out after %g s %s key '%s'", timeout_s, doing, key);
    else if (rc == IO_LOST)
        set_err(err, err_len, "connection to the key-value store at %s:%d lost %s key '%s': %s", c->host,
                c->port, doing, key, why);
    return -1;
}

int kv_client_set(kv_client *c, const char *key, const void *value, size_t len, char *err, size_t err_len)
{
    size_t key_len, size;
    if (check_key(key, &key_len, err, err_len) != 0)
        return -1;
    if (len > KV_MAX_VALUE || (len && !value)) {
        set_err(err, err_len, "the value of key '%s' (%zu bytes) is missing or over %u bytes", key, len,
                KV_MAX_VALUE);
        return -1;
    }
    double deadline = monotonic_seconds() + KV_SET_TIMEOUT;
    unsigned char *req = build_request('S', key, key_len, value, len, &size);
    int rc = send_request(c, req, size, deadline, err, err_len);
    unsigned char reply = 0;
    if (rc == IO_OK)
        rc = recv_all(c->fd, &reply, 1, deadline);
    if (rc == IO_OK && reply != 'K') {
        set_err(err, err_len, "the key-value store at %s:%d answered '%c' to a set of key '%s'", c->host,
                c->port, reply, key);
        rc = IO_BAD;
    }
    return rc == IO_OK ? 0 : client_fail(c, rc, "setting", key, KV_SET_TIMEOUT, err, err_len);
}

/* The 'V' reply's length and bytes (NUL-terminated) */
static int recv_value(kv_client *c, void **value, size_t *len, double deadline, char *err, size_t err_len)
{
    unsigned char head[4];
    int rc = recv_all(c->fd, head, 4, deadline);
    if (rc != IO_OK)
        return rc;
    uint32_t n = get_u32(head);
    unsigned char *p = n <= KV_MAX_VALUE ? malloc((size_t)n + 1) : NULL;
    if (!p) {
        set_err(err, err_len, "cannot take a value of %u bytes", n);
        return IO_BAD;
    }
    rc = recv_all(c->fd, p, n, deadline);
    if (rc != IO_OK) {
        free(p);
        return rc;
    }
    p[n] = 0;
    *value = p;
    *len = n;
    return IO_OK;
}

int kv_client_get(kv_client *c, const char *key, void **value, size_t *len, double timeout_s, char *err,
                  size_t err_len)
{
    size_t key_len, size;
    *value = NULL;
    *len = 0;
    if (check_key(key, &key_len, err, err_len) != 0)
        return -1;
    double deadline = monotonic_seconds() + (timeout_s > 0 ? timeout_s : 0);
    unsigned char *req = build_request('G', key, key_len, NULL, 0, &size);
    int rc = send_request(c, req, size, deadline, err, err_len);
    unsigned char reply = 0;
    if (rc == IO_OK)
        rc = recv_all(c->fd, &reply, 1, deadline);
    if (rc == IO_OK && reply == 'V')
        rc = recv_value(c, value, len, deadline, err, err_len);
    else if (rc == IO_OK) {
        set_err(err, err_len, "the key-value store at %s:%d answered '%c' to a get of key '%s'", c->host,
                c->port, reply, key);
        rc = IO_BAD;
    }
    return rc == IO_OK ? 0 : client_fail(c, rc, "waiting for", key, timeout_s, err, err_len);
}
