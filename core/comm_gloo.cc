// Gloo's collectives behind comm_gloo.h. Gloo finds its peers through a
// rendezvous::Store; ours is the run's kv_store, so the CPU and the GPU
// runs meet the same way. Gloo reports failures (a peer gone, a timeout) by
// throwing: each entry catches and returns -1 with the message.
#include "comm_gloo.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

namespace {

// Gloo's Store over the run's kv_store client; a key that does not come
// within the timeout is an error Gloo passes on.
class KvStore : public gloo::rendezvous::Store {
  public:
    KvStore(kv_client *client, double timeout_s) : client_(client), timeout_s_(timeout_s) {}

    void set(const std::string &key, const std::vector<char> &data) override
    {
        char err[512];
        if (kv_client_set(client_, key.c_str(), data.data(), data.size(), err, sizeof err))
            throw std::runtime_error(err);
    }

    std::vector<char> get(const std::string &key) override
    {
        void *value;
        size_t len;
        char err[512];
        if (kv_client_get(client_, key.c_str(), &value, &len, timeout_s_, err, sizeof err))
            throw std::runtime_error(err);
        std::vector<char> out(static_cast<char *>(value), static_cast<char *>(value) + len);
        free(value);
        return out;
    }

    void wait(const std::vector<std::string> &keys) override
    {
        for (const std::string &key : keys)
            get(key);
    }

    void wait(const std::vector<std::string> &keys, const std::chrono::milliseconds &) override { wait(keys); }

  private:
    kv_client *client_;
    double timeout_s_;
};

std::chrono::milliseconds millis(double seconds) { return std::chrono::milliseconds((long long)(seconds * 1000)); }

template <typename T> void sum(void *out, const void *a, const void *b, size_t n)
{
    gloo::sum<T>(out, a, b, n);
}

} // namespace

struct gloo_comm {
    std::shared_ptr<gloo::rendezvous::Context> context;
};

// runs f, turning Gloo's exceptions into -1 and a line in err
template <typename F> static int guarded(const char *what, F f, char *err, size_t err_len)
{
    try {
        f();
        return 0;
    } catch (const std::exception &e) {
        snprintf(err, err_len, "%s failed: %s (a peer stopped, or took longer than comm.train_timeout_seconds)",
                 what, e.what());
        return -1;
    }
}

extern "C" void *gloo_comm_open(kv_client *store, int rank, int world, const char *host, double init_timeout_s,
                                double timeout_s, char *err, size_t err_len)
{
    gloo_comm *g = new gloo_comm{nullptr};
    try {
        KvStore kv(store, init_timeout_s);
        gloo::rendezvous::PrefixStore prefixed("gloo", kv);
        gloo::transport::tcp::attr attr(host);
        auto device = gloo::transport::tcp::CreateDevice(attr);
        g->context = std::make_shared<gloo::rendezvous::Context>(rank, world);
        g->context->setTimeout(millis(init_timeout_s));
        g->context->connectFullMesh(prefixed, device);
        g->context->setTimeout(millis(timeout_s));
        return g;
    } catch (const std::exception &e) {
        snprintf(err, err_len, "joining the other %d ranks (Gloo, this rank at %s) failed: %s", world - 1, host,
                 e.what());
        delete g;
        return nullptr;
    }
}

template <typename T> static int sum_all(void *impl, T *x, size_t n, char *err, size_t err_len)
{
    gloo_comm *g = static_cast<gloo_comm *>(impl);
    if (n == 0)
        return 0;
    return guarded("a sum over the ranks", [&] {
        gloo::AllreduceOptions opts(g->context);
        opts.setOutput(x, n);
        opts.setReduceFunction(gloo::AllreduceOptions::Func(&sum<T>));
        gloo::allreduce(opts);
    }, err, err_len);
}

static int sum_floats(void *impl, float *x, size_t n, char *err, size_t err_len)
{
    return sum_all(impl, x, n, err, err_len);
}

static int sum_doubles(void *impl, double *x, size_t n, char *err, size_t err_len)
{
    return sum_all(impl, x, n, err, err_len);
}

static int broadcast(void *impl, void *bytes, size_t n, int root, char *err, size_t err_len)
{
    gloo_comm *g = static_cast<gloo_comm *>(impl);
    if (n == 0)
        return 0;
    return guarded("a broadcast", [&] {
        gloo::BroadcastOptions opts(g->context);
        opts.setOutput(static_cast<unsigned char *>(bytes), n);
        opts.setRoot(root);
        gloo::broadcast(opts);
    }, err, err_len);
}

static int barrier(void *impl, char *err, size_t err_len)
{
    gloo_comm *g = static_cast<gloo_comm *>(impl);
    return guarded("a barrier", [&] {
        gloo::BarrierOptions opts(g->context);
        gloo::barrier(opts);
    }, err, err_len);
}

// the whole sum, done on return, of which each rank keeps its part: twice a
// reduce-scatter's traffic, which on the CPU (the backend that tests the
// sharding) costs little
static int reduce_start(void *impl, float *x, size_t lo, size_t hi, size_t shard, char *err, size_t err_len)
{
    (void)shard;
    return sum_all(impl, x + lo, hi - lo, err, err_len);
}

static int all_gather(void *impl, void *x, size_t shard_bytes, char *err, size_t err_len)
{
    gloo_comm *g = static_cast<gloo_comm *>(impl);
    if (shard_bytes == 0)
        return 0;
    unsigned char *parts = static_cast<unsigned char *>(x);
    return guarded("a gathering of the ranks' parts", [&] {
        gloo::AllgatherOptions opts(g->context); // no input: this rank's part of the output is it
        opts.setOutput(parts, shard_bytes * (size_t)g->context->size);
        gloo::allgather(opts);
    }, err, err_len);
}

static void close_comm(void *impl) { delete static_cast<gloo_comm *>(impl); }

extern "C" const comm_backend gloo_comm_backend = {sum_floats, sum_doubles, broadcast,  barrier,
                                                  reduce_start, nullptr,   all_gather, close_comm};
