#include "token_shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'F', 'L', 'A', 'M', 'E', 'T', 'O', 'K'};
enum { WRITE_BUFFER = 1 << 20 };

int token_shard_is_path(const char *spec)
{
    size_t n = strlen(spec), k = strlen(TOKEN_SHARD_EXT);
    while (n > 0 && spec[n - 1] == ' ')
        n--;
    return n >= k && strncasecmp(spec + n - k, TOKEN_SHARD_EXT, k) == 0;
}

/* ---- little endian ---- */

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void encode_header(const token_shard_header *h, unsigned char out[TOKEN_SHARD_HEADER])
{
    memset(out, 0, TOKEN_SHARD_HEADER);
    memcpy(out, MAGIC, sizeof MAGIC);
    put_le(out + 8, h->version, 4);
    put_le(out + 12, h->token_bytes, 4);
    put_le(out + 16, h->n_tokens, 8);
    put_le(out + 24, h->n_documents, 8);
    put_le(out + 32, h->vocab_size, 4);
    put_le(out + 36, (uint32_t)h->bos_id, 4);
    put_le(out + 40, (uint32_t)h->eos_id, 4);
    put_le(out + 48, h->tokenizer_hash, 8);
    put_le(out + 56, h->data_hash, 8);
}

static void decode_header(const unsigned char *in, token_shard_header *h)
{
    h->version = (uint32_t)get_le(in + 8, 4);
    h->token_bytes = (uint32_t)get_le(in + 12, 4);
    h->n_tokens = get_le(in + 16, 8);
    h->n_documents = get_le(in + 24, 8);
    h->vocab_size = (uint32_t)get_le(in + 32, 4);
    h->bos_id = (int32_t)(uint32_t)get_le(in + 36, 4);
    h->eos_id = (int32_t)(uint32_t)get_le(in + 40, 4);
    h->tokenizer_hash = get_le(in + 48, 8);
    h->data_hash = get_le(in + 56, 8);
}

/* ---- hashing ---- */

static uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

void token_shard_hash_init(token_shard_hasher *hs)
{
    *hs = (token_shard_hasher){0x243F6A8885A308D3ull, 0, 0};
}

void token_shard_hash_update(token_shard_hasher *hs, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0 && hs->n % 8 != 0) { /* complete a word begun by the last call */
        hs->tail |= (uint64_t)*p++ << (8 * (hs->n % 8));
        n--;
        if (++hs->n % 8 == 0) {
            hs->h = mix(hs->h, hs->tail);
            hs->tail = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8, hs->n += 8)
        hs->h = mix(hs->h, get_le(p, 8));
    for (size_t i = 0; i < n; i++, hs->n++)
        hs->tail |= (uint64_t)p[i] << (8 * i);
}

uint64_t token_shard_hash_final(const token_shard_hasher *hs)
{
    uint64_t h = hs->h;
    if (hs->n % 8 != 0)
        h = mix(h, hs->tail);
    return mix(h, hs->n);
}

static int hash_file(const char *path, uint64_t *hash, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "tokenizer %s: %s", path, strerror(errno));
        return -1;
    }
    token_shard_hasher hs;
    token_shard_hash_init(&hs);
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        token_shard_hash_update(&hs, buf, got);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, err_len, "tokenizer %s: read error", path);
        return -1;
    }
    *hash = token_shard_hash_final(&hs);
    return 0;
}

int token_shard_tokenizer_hash(const char *name, uint64_t *hash, char *err, size_t err_len)
{
    if (strcmp(name, "byte") == 0) {
        token_shard_hasher hs;
        token_shard_hash_init(&hs);
        token_shard_hash_update(&hs, name, 4);
        *hash = token_shard_hash_final(&hs);
        return 0;
    }
    struct stat st;
    if (stat(name, &st) != 0) {
        snprintf(err, err_len, "tokenizer %s: %s", name, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return hash_file(name, hash, err, err_len);
    /* a folder: its tokenizer.json, as tokenizer_open reads it */
    size_t n = strlen(name) + sizeof "/tokenizer.json";
    char *path = malloc(n);
    if (!path) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(path, n, "%s/tokenizer.json", name);
    int rc = hash_file(path, hash, err, err_len);
    free(path);
    return rc;
}

/* ---- writing ---- */

struct token_shard_writer {
    FILE *f;
    char *path, *tmp;
    token_shard_header h;
    token_shard_hasher hash;
    unsigned char *buf;
    size_t n; /* bytes in buf */
};

static int flush_buffer(token_shard_writer *w, char *err, size_t err_len)
{
    token_shard_hash_update(&w->hash, w->buf, w->n);
    if (fwrite(w->buf, 1, w->n, w->f) != w->n) {
        snprintf(err, err_len, "%s: write error: %s", w->tmp, strerror(errno));
        return -1;
    }
    w->n = 0;
    return 0;
}

int token_shard_create(token_shard_writer **out, const char *path, const token_shard_header *h,
                       char *err, size_t err_len)
{
    token_shard_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + sizeof ".tmp";
    *out = NULL;
    if (w) {
        w->path = strdup(path);
        w->tmp = malloc(n);
        w->buf = malloc(WRITE_BUFFER);
    }
    if (!w || !w->path || !w->tmp || !w->buf) {
        snprintf(err, err_len, "out of memory");
        token_shard_abort(w);
        return -1;
    }
    snprintf(w->tmp, n, "%s.tmp", path);
    w->h = *h;
    w->h.version = TOKEN_SHARD_VERSION;
    w->h.token_bytes = h->vocab_size <= 65536 ? 2 : 4;
    w->h.n_tokens = w->h.n_documents = w->h.data_hash = 0;
    token_shard_hash_init(&w->hash);
    w->f = fopen(w->tmp, "wb");
    /* the header is written last, once the counts are known */
    unsigned char zero[TOKEN_SHARD_HEADER] = {0};
    if (!w->f || fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
        snprintf(err, err_len, "%s: %s", w->tmp, strerror(errno));
        token_shard_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

int token_shard_write(token_shard_writer *w, const int32_t *ids, size_t n, uint64_t documents,
                      char *err, size_t err_len)
{
    int width = (int)w->h.token_bytes;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= w->h.vocab_size) {
            snprintf(err, err_len, "%s: token id %d outside the vocabulary of %u", w->path,
                     (int)ids[i], w->h.vocab_size);
            return -1;
        }
        if (w->n + (size_t)width > WRITE_BUFFER && flush_buffer(w, err, err_len))
            return -1;
        put_le(w->buf + w->n, (uint32_t)ids[i], width);
        w->n += (size_t)width;
    }
    w->h.n_tokens += n;
    w->h.n_documents += documents;
    return 0;
}

int token_shard_finish(token_shard_writer *w, token_shard_header *h, char *err, size_t err_len)
{
    if (flush_buffer(w, err, err_len)) {
        token_shard_abort(w);
        return -1;
    }
    w->h.data_hash = token_shard_hash_final(&w->hash);
    unsigned char header[TOKEN_SHARD_HEADER];
    encode_header(&w->h, header);
    int bad = fseek(w->f, 0, SEEK_SET) != 0 || fwrite(header, 1, sizeof header, w->f) != sizeof header ||
              fflush(w->f) != 0 || fsync(fileno(w->f)) != 0;
    bad |= fclose(w->f) != 0;
    w->f = NULL;
    if (bad || rename(w->tmp, w->path) != 0) {
        snprintf(err, err_len, "%s: %s", bad ? w->tmp : w->path, strerror(errno));
        token_shard_abort(w);
        return -1;
    }
    *h = w->h;
    free(w->tmp);
    w->tmp = NULL;
    token_shard_abort(w);
    return 0;
}

void token_shard_abort(token_shard_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp)
        unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->buf);
    free(w);
}

/* ---- reading ---- */

/* the header's promises that reading relies on; "" when they hold */
static const char *header_problem(const token_shard_header *h, uint64_t file_size,
                                  char *why, size_t why_len)
{
    uint64_t room = (file_size - TOKEN_SHARD_HEADER);
    if (h->token_bytes != 2 && h->token_bytes != 4)
        snprintf(why, why_len, "token width %u is neither 2 nor 4: corrupt", h->token_bytes);
    else if (h->vocab_size == 0 || (h->token_bytes == 2 && h->vocab_size > 65536))
        snprintf(why, why_len, "vocab_size %u does not fit a width of %u bytes: corrupt",
                 h->vocab_size, h->token_bytes);
    else if (h->bos_id < -1 || h->eos_id < -1 || h->bos_id >= (int64_t)h->vocab_size ||
             h->eos_id >= (int64_t)h->vocab_size)
        snprintf(why, why_len, "bos_id %d or eos_id %d outside the vocabulary of %u: corrupt",
                 (int)h->bos_id, (int)h->eos_id, h->vocab_size);
    else if (h->n_tokens > room / h->token_bytes)
        snprintf(why, why_len, "truncated: the header promises %llu tokens, the file holds %llu",
                 (unsigned long long)h->n_tokens, (unsigned long long)(room / h->token_bytes));
    else if (h->n_tokens * h->token_bytes != room)
        snprintf(why, why_len, "%llu bytes after the %llu tokens the header promises: corrupt",
                 (unsigned long long)(room - h->n_tokens * h->token_bytes),
                 (unsigned long long)h->n_tokens);
    else
        return "";
    return why;
}

static int map_file(token_shard *s, int fd, uint64_t size, char *err, size_t err_len)
{
    s->map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        snprintf(err, err_len, "%s: cannot map: %s", s->path, strerror(errno));
        return -1;
    }
    s->map_len = size;
    madvise(s->map, size, MADV_SEQUENTIAL); /* training reads it front to back */
    s->tokens = (const unsigned char *)s->map + TOKEN_SHARD_HEADER;
    return 0;
}

static int check_header(token_shard *s, char *err, size_t err_len)
{
    const unsigned char *p = s->map;
    if (memcmp(p, MAGIC, sizeof MAGIC) != 0) {
        snprintf(err, err_len, "%s: not a flame token shard (no FLAMETOK magic)", s->path);
        return -2;
    }
    decode_header(p, &s->h);
    if (s->h.version != TOKEN_SHARD_VERSION) {
        snprintf(err, err_len, "%s: shard format version %u, this flame reads version %d",
                 s->path, s->h.version, TOKEN_SHARD_VERSION);
        return -2;
    }
    char why[256];
    const char *problem = header_problem(&s->h, s->map_len, why, sizeof why);
    if (*problem) {
        snprintf(err, err_len, "%s: %s", s->path, problem);
        return -2;
    }
    return 0;
}

int token_shard_open(token_shard *s, const char *path, char *err, size_t err_len)
{
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    int fd = open(path, O_RDONLY);
    if (!s->path || fd < 0) {
        snprintf(err, err_len, "%s: %s", path, s->path ? strerror(errno) : "out of memory");
        return -1;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s: not a regular file", path);
        rc = -1;
    } else if ((uint64_t)st.st_size < TOKEN_SHARD_HEADER) {
        snprintf(err, err_len, "%s: truncated: %lld bytes, less than the %d-byte shard header",
                 path, (long long)st.st_size, TOKEN_SHARD_HEADER);
        rc = -2;
    } else if (map_file(s, fd, (uint64_t)st.st_size, err, err_len)) {
        rc = -1;
    } else {
        rc = check_header(s, err, err_len);
    }
    close(fd); /* the mapping stays valid */
    return rc;
}

void token_shard_close(token_shard *s)
{
    if (s->map)
        munmap(s->map, s->map_len);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static int bad_token(const token_shard *s, uint64_t at, uint64_t id, char *err, size_t err_len)
{
    snprintf(err, err_len, "%s: token %llu is %llu, not below vocab_size %u: corrupt shard",
             s->path, (unsigned long long)at, (unsigned long long)id, s->h.vocab_size);
    return -1;
}

int token_shard_read(const token_shard *s, uint64_t first, size_t n, int32_t *out, char *err,
                     size_t err_len)
{
    int width = (int)s->h.token_bytes;
    const unsigned char *p = s->tokens + first * (uint64_t)width;
    for (size_t i = 0; i < n; i++, p += width) {
        uint64_t id = get_le(p, width);
        if (id >= s->h.vocab_size)
            return bad_token(s, first + i, id, err, err_len);
        out[i] = (int32_t)id;
    }
    return 0;
}

int token_shard_verify(const token_shard *s, char *err, size_t err_len)
{
    enum { CHUNK = 1 << 16 }; /* tokens checked and hashed at a time: stays in cache */
    int32_t *ids = malloc(CHUNK * sizeof *ids);
    if (!ids) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    token_shard_hasher hs;
    token_shard_hash_init(&hs);
    uint64_t n = s->h.n_tokens;
    int rc = 0;
    for (uint64_t first = 0; first < n && rc == 0; first += CHUNK) {
        size_t k = n - first < CHUNK ? (size_t)(n - first) : CHUNK;
        rc = token_shard_read(s, first, k, ids, err, err_len);
        token_shard_hash_update(&hs, s->tokens + first * s->h.token_bytes, k * s->h.token_bytes);
    }
    free(ids);
    uint64_t h = token_shard_hash_final(&hs);
    if (rc == 0 && h != s->h.data_hash) {
        snprintf(err, err_len, "%s: the tokens hash to %016llx, the header says %016llx: corrupt "
                 "shard", s->path, (unsigned long long)h, (unsigned long long)s->h.data_hash);
        rc = -1;
    }
    return rc;
}
