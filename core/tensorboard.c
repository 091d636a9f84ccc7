#include "tensorboard.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* CRC-32C, bit by bit over a table of the reflected polynomial 0x82F63B78 */
unsigned tensorboard_crc32c(const void *data, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ ((const unsigned char *)data)[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* TFRecord's masking of a stored CRC */
static uint32_t masked_crc(const void *data, size_t n)
{
    uint32_t crc = tensorboard_crc32c(data, n);
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

static void little_endian(unsigned char *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static int write_record(tensorboard_writer *w, const unsigned char *data, size_t n, char *err,
                        size_t err_len)
{
    unsigned char head[12], tail[4];
    little_endian(head, n, 8);
    little_endian(head + 8, masked_crc(head, 8), 4);
    little_endian(tail, masked_crc(data, n), 4);
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(data, 1, n, w->f) != n ||
        fwrite(tail, 1, 4, w->f) != 4 || fflush(w->f) != 0) {
        snprintf(err, err_len, "%s: cannot write: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

static double wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

static int make_folders(const char *dir, char *err, size_t err_len)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            snprintf(err, err_len, "%s: cannot create folder: %s", buf, strerror(errno));
            return -1;
        }
        if (!(*p = c))
            return 0;
    }
}

int tensorboard_open(tensorboard_writer *w, const char *dir, char *err, size_t err_len)
{
    *w = (tensorboard_writer){0};
    if (make_folders(dir, err, err_len))
        return -1;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    double now = wall_time();
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s", dir, (long long)now, host);
    w->f = fopen(w->path, "ab");
    if (!w->f) {
        snprintf(err, err_len, "%s: cannot create: %s", w->path, strerror(errno));
        return -1;
    }
    unsigned char event[64];
    size_t n = tensorboard_encode_version(event, sizeof event, now);
    return write_record(w, event, n, err, err_len);
}

int tensorboard_write_scalars(tensorboard_writer *w, long long step, const tensorboard_scalar *scalars, int n, char *err,
                     size_t err_len)
{
    unsigned char event[4096];
    size_t len = tensorboard_encode_scalars(event, sizeof event, wall_time(), step, scalars, n);
    if (len == 0) {
        snprintf(err, err_len, "%s: %d scalars do not fit one event", w->path, n);
        return -1;
    }
    return write_record(w, event, len, err, err_len);
}

void tensorboard_close(tensorboard_writer *w)
{
    if (w->f)
        fclose(w->f);
    w->f = NULL;
}
