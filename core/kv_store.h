/* The rendezvous of a multi-process run: rank 0 serves a small TCP key-value
 * store, every rank connects to it as a client and the ranks exchange small
 * byte strings (an NCCL unique id, addresses, "rank k is ready"). Keys are set
 * once and read many times; a get of a key not yet set waits for it.
 * A kv_client is for one thread at a time; after a timeout or a lost
 * connection it closes its socket and reconnects on its next call. */
#ifndef FLAME_KV_STORE_H
#define FLAME_KV_STORE_H
#include <stddef.h>
#include <stdint.h>

#define KV_MAX_KEY 256              /* bytes of a key */
#define KV_MAX_VALUE (1u << 20)     /* bytes of a value */

typedef struct kv_server kv_server;
/* Listens on all interfaces at port (0: any free port) and serves clients
 * from a thread until kv_server_stop. NULL with a line in err (the port is
 * taken, ...). */
kv_server *kv_server_start(int port, char *err, size_t err_len);
int kv_server_port(const kv_server *s);   /* the port it listens on */
void kv_server_stop(kv_server *s);        /* closes every connection, joins the thread, frees */

typedef struct kv_client kv_client;
/* Connects to host:port (a name or a numeric address), trying again every
 * 100 ms until timeout_s has passed (the server may start after the client).
 * NULL with a line in err naming host:port and the last error. */
kv_client *kv_client_connect(const char *host, int port, double timeout_s, char *err, size_t err_len);
/* Sets key (NUL-terminated, 1..KV_MAX_KEY bytes) to len bytes of value. 0, or -1 with err. */
int kv_client_set(kv_client *c, const char *key, const void *value, size_t len, char *err, size_t err_len);
/* Waits until key is set (at most timeout_s seconds), then *value (malloc'ed,
 * the caller frees; a NUL byte follows its len bytes) and *len. 0, or -1 with err:
 * "timed out after 30 s waiting for key 'nccl-id'", or the connection lost. */
int kv_client_get(kv_client *c, const char *key, void **value, size_t *len, double timeout_s, char *err,
                  size_t err_len);
void kv_client_close(kv_client *c);

/* The wire format's parser, exposed for the fuzz harness: one request is
 *   1 byte op ('S' set, 'G' get), u32 key length, key bytes, and for 'S' a u32
 *   value length and the value bytes (u32s little-endian);
 * a reply to G is 'V' + u32 length + bytes, to S 'K'. kv_parse_request reads one request from buf[0, len):
 * returns the bytes it used (> 0) with *op, key (pointer into buf) and key_len,
 * value and value_len filled; 0 when buf holds only a prefix of a valid request (read more);
 * -1 when the bytes can never be a valid request (unknown op, key length 0 or > KV_MAX_KEY,
 * value length > KV_MAX_VALUE): the server then drops that connection. */
typedef struct kv_request {
    char op;
    const unsigned char *key, *value;
    uint32_t key_len, value_len;
} kv_request;
long kv_parse_request(const unsigned char *buf, size_t len, kv_request *req);
#endif
