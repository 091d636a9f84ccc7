#include "data_source.h"
#include "array_grow.h"
#include "columnar_reader.h"
#include "rng.h"
#include "user_path.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

enum { FMT_TXT = 1, FMT_JSONL = 2, FMT_ROWS = 3 };
enum { MAX_BATCH_ROWS = 1 << 16 }; /* the columnar reader writes batches of 1024 */
enum { CONT_SINGLE, CONT_TAR, CONT_ZIP };
enum { OPEN_BLOCK = 1 << 18, MAX_DEPTH = 64 };

static const char KNOWN_TYPES[] =
    "known: .txt, .jsonl, .json, .parquet, .arrow, .txt and .jsonl compressed as .gz, .zst "
    "or .xz, and the archives "
    ".tar, .tar.gz, .tgz, .tar.zst, .tar.xz and .zip holding .txt and .jsonl files; "
    "a .flametok shard only as the whole dataset";

typedef struct file_kind {
    int container; /* CONT_* */
    int filter;    /* the ARCHIVE_FILTER_* the name promises */
    int inner;     /* FMT_* of a single stream */
    int columnar;  /* .parquet, .arrow, .json: rows from the columnar reader */
} file_kind;

typedef struct source_file {
    char *path;
    file_kind kind;
    int noted;    /* its skipped members have been reported */
    int verified; /* a gzip file: read through once, every member's CRC-32 right */
} source_file;

struct data_source {
    source_file *files;
    size_t n_files, cap_files;
    char *text_field;

    /* the order files are read in this epoch: order[i] is the i-th (NULL: as resolved) */
    size_t *order;
    uint64_t order_seed, epoch;

    /* position: file, documents passed in it, bytes handed out of the next */
    size_t fi;
    uint64_t doc, off;
    int from_start, yielded; /* this epoch began at the start; a piece came out */

    struct archive *a; /* the open file fi, or NULL */
    struct gz_reader *gz; /* what a feeds a of a gzip file fi, or NULL */
    columnar_reader *col; /* what feeds a of a columnar file fi, or NULL */
    int in_member, member_fmt, member_eof, txt_done;
    char *member;      /* its name inside an archive, NULL for a single stream */
    uint64_t skipped;  /* members of the archive that are neither .txt nor .jsonl */
    char *first_skipped;
    uint64_t line;     /* JSON lines read from the member */

    char *buf;       /* .txt: the window buf[0, blen); .jsonl: unread bytes buf[bpos, blen) */
    size_t blen, bpos, cut; /* cut: bytes of the window handed out by the last piece */
    char *lbuf;      /* the current JSON line, or row */
    size_t lcap;
    size_t *row_len, rows_cap, rows_left, row_i; /* the columnar reader's batch */
    json_t *json;    /* holds the text of the last JSON piece */
};

/* the index in files of the epoch's fi-th file */
static size_t file_at(const data_source *ds, size_t fi)
{
    return ds->order ? ds->order[fi] : fi;
}

/* ---- resolving the spec ---- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static int kind_of(const char *path, file_kind *k)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    k->container = CONT_SINGLE;
    k->filter = ARCHIVE_FILTER_NONE;
    k->inner = 0;
    k->columnar = columnar_is_path(base);
    if (k->columnar) {
        k->inner = FMT_ROWS;
        return 0;
    }
    if (ends_with(base, n, ".zip")) {
        k->container = CONT_ZIP;
        return 0;
    }
    if (ends_with(base, n, ".tgz")) {
        k->container = CONT_TAR;
        k->filter = ARCHIVE_FILTER_GZIP;
        return 0;
    }
    if (ends_with(base, n, ".gz")) {
        k->filter = ARCHIVE_FILTER_GZIP;
        n -= 3;
    } else if (ends_with(base, n, ".zst")) {
        k->filter = ARCHIVE_FILTER_ZSTD;
        n -= 4;
    } else if (ends_with(base, n, ".xz")) {
        k->filter = ARCHIVE_FILTER_XZ;
        n -= 3;
    }
    if (ends_with(base, n, ".tar"))
        k->container = CONT_TAR;
    else if (ends_with(base, n, ".txt"))
        k->inner = FMT_TXT;
    else if (ends_with(base, n, ".jsonl"))
        k->inner = FMT_JSONL;
    else
        return -1;
    return 0;
}

static int member_format(const char *name)
{
    size_t n = strlen(name);
    if (ends_with(name, n, ".txt"))
        return FMT_TXT;
    if (ends_with(name, n, ".jsonl"))
        return FMT_JSONL;
    return 0;
}

static int add_file(data_source *ds, const char *path, char *err, size_t err_len)
{
    file_kind k;
    char why[700];
    if (kind_of(path, &k)) {
        snprintf(err, err_len, "dataset file %s: unknown type (%s)", path, KNOWN_TYPES);
        return -1;
    }
    if (k.columnar && columnar_available(why, sizeof why)) {
        snprintf(err, err_len, "dataset file %s: %s", path, why);
        return -1;
    }
    if (ds->n_files == ds->cap_files) {
        size_t cap = ds->cap_files ? 2 * ds->cap_files : 16;
        source_file *files = realloc(ds->files, cap * sizeof *files);
        if (!files) {
            snprintf(err, err_len, "out of memory resolving the dataset");
            return -1;
        }
        ds->files = files;
        ds->cap_files = cap;
    }
    char *copy = strdup(path);
    if (!copy) {
        snprintf(err, err_len, "out of memory resolving the dataset");
        return -1;
    }
    ds->files[ds->n_files++] = (source_file){.path = copy, .kind = k};
    return 0;
}

static int walk(data_source *ds, const char *dir, int depth, char *err, size_t err_len)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, err_len, "dataset folder %s: nested more than %d deep (a link loop?)",
                 dir, MAX_DEPTH);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "dataset folder %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir);
        int slash = n > 0 && dir[n - 1] == '/';
        char *path = malloc(n + strlen(e->d_name) + 2);
        if (!path) {
            snprintf(err, err_len, "out of memory resolving the dataset");
            rc = -1;
            break;
        }
        sprintf(path, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat st;
        if (stat(path, &st)) {
            snprintf(err, err_len, "dataset file %s: %s", path, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode))
            rc = walk(ds, path, depth + 1, err, err_len);
        else if (S_ISREG(st.st_mode))
            rc = add_file(ds, path, err, err_len);
        free(path);
    }
    closedir(d);
    return rc;
}

/* A file, or a folder walked; what names it in messages is `what`. */
static int add_path(data_source *ds, const char *path, const char *what, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st)) {
        snprintf(err, err_len, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t before = ds->n_files;
        if (walk(ds, path, 0, err, err_len))
            return -1;
        if (ds->n_files == before) {
            snprintf(err, err_len, "dataset folder %s holds no files", path);
            return -1;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s %s: neither a file nor a folder", what, path);
        return -1;
    }
    return add_file(ds, path, err, err_len);
}

static int compare_paths(const void *x, const void *y)
{
    return strcmp(((const source_file *)x)->path, ((const source_file *)y)->path);
}

static int add_item(data_source *ds, const char *item, char *err, size_t err_len)
{
    size_t first = ds->n_files;
    if (strpbrk(item, "*?[")) {
        glob_t g;
        int r = glob(item, GLOB_NOSORT, NULL, &g);
        if (r == GLOB_NOMATCH || (r == 0 && g.gl_pathc == 0)) {
            globfree(&g);
            snprintf(err, err_len, "dataset pattern %s matches nothing", item);
            return -1;
        }
        if (r) {
            globfree(&g);
            snprintf(err, err_len, "dataset pattern %s: %s", item,
                     r == GLOB_NOSPACE ? "out of memory" : "read error");
            return -1;
        }
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (add_path(ds, g.gl_pathv[i], "dataset file", err, err_len)) {
                globfree(&g);
                return -1;
            }
        globfree(&g);
    } else if (user_path_is_hub_name(item) && access(item, F_OK) != 0) {
        snprintf(err, err_len,
                 "dataset %s: no such local path; flame reads local files: download the hub "
                 "dataset (huggingface-cli download --repo-type dataset %s --local-dir DIR) and "
                 "give DIR, or files in it, as training.dataset",
                 item, item);
        return -1;
    } else if (add_path(ds, item, "dataset path", err, err_len))
        return -1;
    qsort(ds->files + first, ds->n_files - first, sizeof *ds->files, compare_paths);
    return 0;
}

/* an item with ~ expanded (a config file's value reaches no shell) */
static int add_expanded_item(data_source *ds, const char *item, char *err, size_t err_len)
{
    char *path = user_path_expand(item);
    if (!path) {
        snprintf(err, err_len, "out of memory opening the dataset");
        return -1;
    }
    int rc = add_item(ds, path, err, err_len);
    free(path);
    return rc;
}

int data_source_open(data_source **out, const char *spec, const char *text_field,
                     char *err, size_t err_len)
{
    *out = NULL;
    data_source *ds = calloc(1, sizeof *ds);
    char *items = strdup(spec ? spec : "");
    if (ds)
        ds->text_field = strdup(text_field ? text_field : "text");
    if (!ds || !items || !ds->text_field) {
        snprintf(err, err_len, "out of memory opening the dataset");
        free(items);
        data_source_close(ds);
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(items, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t n = strlen(item);
        while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            item[--n] = '\0';
        if (n > 0)
            rc = add_expanded_item(ds, item, err, err_len);
    }
    free(items);
    if (rc == 0 && ds->n_files == 0) {
        snprintf(err, err_len, "the dataset names no file");
        rc = -1;
    }
    if (rc == 0) {
        ds->buf = malloc(DATA_SOURCE_PIECE);
        if (!ds->buf) {
            snprintf(err, err_len, "out of memory opening the dataset");
            rc = -1;
        }
    }
    if (rc) {
        data_source_close(ds);
        return -1;
    }
    ds->from_start = 1;
    *out = ds;
    return 0;
}

size_t data_source_file_count(const data_source *ds)
{
    return ds->n_files;
}

/* ---- gzip: inflated here, checked member by member ----
 *
 * libarchive's gzip filter (3.6 and before) never compares a member's CRC-32
 * and length with its trailer, so a damaged .gz decodes into wrong text
 * without an error. A gzip file is inflated here by zlib, which checks both at
 * the end of every member, and libarchive reads the result as a raw stream or
 * a tar. */

enum { GZIP_WINDOW = 15 + 16 }; /* zlib's window bits for a gzip wrapper */

typedef struct gz_reader {
    FILE *f;
    z_stream z;
    int z_ready, checked, at_eof, in_member;
    uint64_t members; /* whole members read */
    unsigned char in[OPEN_BLOCK], out[OPEN_BLOCK];
} gz_reader;

static void gz_free(gz_reader *g)
{
    if (!g)
        return;
    if (g->z_ready)
        inflateEnd(&g->z);
    if (g->f)
        fclose(g->f);
    free(g);
}

/* libarchive's read callback: the next inflated bytes, 0 at the end of the
 * file, -1 with the archive's error set (damaged, truncated, not gzip). */
static la_ssize_t gz_read(struct archive *a, void *ctx, const void **buf)
{
    gz_reader *g = ctx;
    for (;;) {
        if (g->z.avail_in == 0 && !g->at_eof) {
            size_t n = fread(g->in, 1, sizeof g->in, g->f);
            if (n == 0 && ferror(g->f)) {
                archive_set_error(a, errno, "read error: %s", strerror(errno));
                return -1;
            }
            g->at_eof = n == 0;
            g->z.next_in = g->in;
            g->z.avail_in = (unsigned)n;
            if (!g->checked && (n < 2 || g->in[0] != 0x1f || g->in[1] != 0x8b)) {
                archive_set_error(a, EINVAL, "not a gzip stream");
                return -1;
            }
            g->checked = 1;
            continue;
        }
        if (g->z.avail_in == 0) {
            if (g->in_member) {
                archive_set_error(a, EINVAL, "truncated gzip data");
                return -1;
            }
            return 0;
        }
        if (!g->in_member) { /* more bytes after a member: they must be another one */
            if (g->members > 0 && inflateReset(&g->z) != Z_OK) {
                archive_set_error(a, ENOMEM, "out of memory");
                return -1;
            }
            g->in_member = 1;
        }
        g->z.next_out = g->out;
        g->z.avail_out = sizeof g->out;
        int r = inflate(&g->z, Z_NO_FLUSH);
        if (r == Z_STREAM_END) { /* zlib has checked the member's CRC-32 and length */
            g->in_member = 0;
            g->members++;
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            char why[160]; /* archive_set_error formats no %llu */
            snprintf(why, sizeof why, "corrupt gzip data in member %llu (%s)",
                     (unsigned long long)g->members + 1, g->z.msg ? g->z.msg : "zlib error");
            archive_set_error(a, EINVAL, "%s", why);
            return -1;
        }
        size_t got = sizeof g->out - g->z.avail_out;
        if (got) {
            *buf = g->out;
            return (la_ssize_t)got;
        }
    }
}

static int gz_open(data_source *ds, char *err, size_t err_len);
static int columnar_start(data_source *ds, char *err, size_t err_len);

/* ---- reading ---- */

static void close_file(data_source *ds)
{
    if (ds->a)
        archive_read_free(ds->a);
    ds->a = NULL;
    gz_free(ds->gz);
    ds->gz = NULL;
    columnar_close(ds->col);
    ds->col = NULL;
    ds->rows_left = 0;
    ds->in_member = 0;
    free(ds->member);
    ds->member = NULL;
    ds->skipped = 0;
    free(ds->first_skipped);
    ds->first_skipped = NULL;
    if (ds->json)
        json_decref(ds->json);
    ds->json = NULL;
}

/* Opens the source at the start of file fi (lazily: nothing is read). */
static void reset(data_source *ds, size_t fi)
{
    close_file(ds);
    ds->fi = fi;
    ds->doc = ds->off = 0;
    ds->yielded = 0;
    ds->from_start = fi == 0;
}

void data_source_close(data_source *ds)
{
    if (!ds)
        return;
    close_file(ds);
    for (size_t i = 0; i < ds->n_files; i++)
        free(ds->files[i].path);
    free(ds->files);
    free(ds->order);
    free(ds->row_len);
    free(ds->text_field);
    free(ds->buf);
    free(ds->lbuf);
    free(ds);
}

/* The message after "file[:member][:line]: " (line 0: none). */
static void fail_at(data_source *ds, unsigned long long line, char *err, size_t err_len,
                    const char *fmt, ...)
{
    if (err_len == 0)
        return;
    char at[32] = "";
    if (line)
        snprintf(at, sizeof at, ":%llu", line);
    int n = snprintf(err, err_len, "%s%s%s%s: ", ds->files[file_at(ds, ds->fi)].path, ds->member ? ":" : "",
                     ds->member ? ds->member : "", at);
    if (n >= 0 && (size_t)n < err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, err_len - n, fmt, ap);
        va_end(ap);
    }
    /* libarchive ends some messages with a newline */
    for (size_t k = strlen(err); k > 0 && (err[k - 1] == '\n' || err[k - 1] == ' '); k--)
        err[k - 1] = '\0';
}

static const char *archive_message(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s && *s ? s : "corrupt or truncated data";
}

static const char *filter_name(int code)
{
    switch (code) {
    case ARCHIVE_FILTER_GZIP: return "gzip";
    case ARCHIVE_FILTER_ZSTD: return "zstd";
    case ARCHIVE_FILTER_XZ: return "xz";
    default: return "uncompressed";
    }
}

static int open_file(data_source *ds, char *err, size_t err_len)
{
    const file_kind *k = &ds->files[file_at(ds, ds->fi)].kind;
    struct archive *a = archive_read_new();
    if (!a) {
        fail_at(ds, 0, err, err_len, "out of memory");
        return -1;
    }
    ds->a = a;
    int gzip = k->filter == ARCHIVE_FILTER_GZIP; /* inflated by gz_read, for libarchive no filter */
    if (!gzip && (k->filter != ARCHIVE_FILTER_NONE || k->container != CONT_SINGLE))
        archive_read_support_filter_all(a);
    if (k->container == CONT_SINGLE) {
        archive_read_support_format_raw(a);
        archive_read_support_format_empty(a); /* raw wants a byte */
    }
    else if (k->container == CONT_TAR)
        archive_read_support_format_tar(a);
    else
        archive_read_support_format_zip(a);
    if (gzip)
        return gz_open(ds, err, err_len);
    if (k->columnar)
        return columnar_start(ds, err, err_len);
    if (archive_read_open_filename(a, ds->files[file_at(ds, ds->fi)].path, OPEN_BLOCK) != ARCHIVE_OK) {
        fail_at(ds, 0, err, err_len, "cannot read: %s", archive_message(a));
        return -1;
    }
    int code = archive_filter_code(a, 0);
    if (code != k->filter && k->filter != ARCHIVE_FILTER_NONE) {
        fail_at(ds, 0, err, err_len, "not a %s stream (it reads as %s)", filter_name(k->filter),
             archive_filter_name(a, 0));
        return -1;
    }
    return 0;
}

/* libarchive's read callback over the columnar reader: its error (the
 * helper's line on the file's damage) becomes the archive's */
static la_ssize_t columnar_archive_read(struct archive *a, void *ctx, const void **buf)
{
    char why[600];
    ssize_t n = columnar_read(ctx, buf, why, sizeof why);
    if (n < 0)
        archive_set_error(a, EIO, "%s", why);
    return n;
}

static int columnar_start(data_source *ds, char *err, size_t err_len)
{
    char why[600];
    if (columnar_open(&ds->col, ds->files[file_at(ds, ds->fi)].path, ds->text_field, why,
                      sizeof why)) {
        fail_at(ds, 0, err, err_len, "%s", why);
        return -1;
    }
    if (archive_read_open(ds->a, ds->col, NULL, columnar_archive_read, NULL) != ARCHIVE_OK) {
        fail_at(ds, 0, err, err_len, "%s", archive_message(ds->a));
        return -1;
    }
    return 0;
}

static int gz_open(data_source *ds, char *err, size_t err_len)
{
    gz_reader *g = calloc(1, sizeof *g);
    if (!g) {
        fail_at(ds, 0, err, err_len, "out of memory");
        return -1;
    }
    ds->gz = g;
    g->f = fopen(ds->files[file_at(ds, ds->fi)].path, "rb");
    if (!g->f) {
        fail_at(ds, 0, err, err_len, "cannot read: %s", strerror(errno));
        return -1;
    }
    if (inflateInit2(&g->z, GZIP_WINDOW) != Z_OK) {
        fail_at(ds, 0, err, err_len, "zlib %s cannot inflate gzip data", zlibVersion());
        return -1;
    }
    g->z_ready = 1;
    /* Damaged text must never reach training: a CRC comes only at the end of
     * a member, after its text, so the first time a gzip file is opened it is
     * inflated through once before anything of it is handed out. This costs a
     * second inflate of each file per run (zlib's few hundred MB/s, well above
     * tokenizing speed). */
    source_file *f = &ds->files[file_at(ds, ds->fi)];
    if (!f->verified) {
        const void *b;
        la_ssize_t n;
        while ((n = gz_read(ds->a, g, &b)) > 0)
            ;
        if (n < 0) {
            fail_at(ds, 0, err, err_len, "%s", archive_message(ds->a));
            return -1;
        }
        rewind(g->f);
        g->checked = g->at_eof = 0;
        g->members = 0;
        g->z.avail_in = 0;
        if (inflateReset(&g->z) != Z_OK) {
            fail_at(ds, 0, err, err_len, "out of memory");
            return -1;
        }
        f->verified = 1;
    }
    if (archive_read_open(ds->a, g, NULL, gz_read, NULL) != ARCHIVE_OK) {
        fail_at(ds, 0, err, err_len, "%s", archive_message(ds->a));
        return -1;
    }
    return 0;
}

/* An archive member flame cannot read (a README, or a text whose name lost
 * its extension) is skipped, but not silently: one line on stderr per archive,
 * the first time it is read through. */
static void note_skipped(data_source *ds)
{
    source_file *f = &ds->files[file_at(ds, ds->fi)];
    if (ds->skipped == 0 || f->noted)
        return;
    f->noted = 1;
    fprintf(stderr, "flame: note: %s: skipped %llu member%s neither .txt nor .jsonl (the first: "
            "%s)\n", f->path, (unsigned long long)ds->skipped, ds->skipped == 1 ? "" : "s",
            ds->first_skipped ? ds->first_skipped : "?");
}

/* 1: a member of a known format is open; 0: no more; -1: error */
static int next_member(data_source *ds, char *err, size_t err_len)
{
    const file_kind *k = &ds->files[file_at(ds, ds->fi)].kind;
    free(ds->member);
    ds->member = NULL;
    if (ds->json)
        json_decref(ds->json);
    ds->json = NULL;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(ds->a, &e);
        if (r == ARCHIVE_EOF) {
            note_skipped(ds);
            return 0;
        }
        if (r < ARCHIVE_WARN) {
            fail_at(ds, 0, err, err_len, "%s", archive_message(ds->a));
            return -1;
        }
        int fmt = k->inner;
        if (k->container != CONT_SINGLE) {
            if (archive_entry_filetype(e) != AE_IFREG)
                continue;
            const char *name = archive_entry_pathname(e);
            if (!name)
                name = archive_entry_pathname_utf8(e);
            if (!name || !(fmt = member_format(name))) {
                if (ds->skipped++ == 0)
                    ds->first_skipped = strdup(name ? name : "(unnamed)");
                continue;
            }
            ds->member = strdup(name);
            if (!ds->member) {
                fail_at(ds, 0, err, err_len, "out of memory");
                return -1;
            }
        }
        ds->in_member = 1;
        ds->member_fmt = fmt;
        ds->member_eof = ds->txt_done = 0;
        ds->blen = ds->bpos = ds->cut = 0;
        ds->line = 0;
        return 1;
    }
}

/* Reads up to n bytes of the member into p: the count, or -1 with err. */
static long long read_member(data_source *ds, char *p, size_t n, char *err, size_t err_len)
{
    la_ssize_t r = archive_read_data(ds->a, p, n);
    if (r < 0) {
        fail_at(ds, 0, err, err_len, "%s", archive_message(ds->a));
        return -1;
    }
    if (r == 0)
        ds->member_eof = 1;
    return r;
}

/* Where a piece of a full window ends: just after the last newline in the
 * second half, else on a UTF-8 character boundary; always before the end, so
 * the last piece of a document is never empty. */
static size_t cut_point(const char *b, size_t n)
{
    for (size_t i = n - 1; i-- > n / 2;)
        if (b[i] == '\n')
            return i + 1;
    size_t c = n - 1;
    while (c > n - 4 && ((unsigned char)b[c] & 0xC0) == 0x80)
        c--;
    return ((unsigned char)b[c] & 0xC0) == 0x80 ? n - 1 : c;
}

static int txt_next(data_source *ds, const char **text, size_t *len, int *eod,
                    char *err, size_t err_len)
{
    if (ds->cut) {
        memmove(ds->buf, ds->buf + ds->cut, ds->blen - ds->cut);
        ds->blen -= ds->cut;
        ds->cut = 0;
    }
    if (ds->txt_done)
        return 0;
    while (ds->blen < DATA_SOURCE_PIECE && !ds->member_eof) {
        long long r = read_member(ds, ds->buf + ds->blen, DATA_SOURCE_PIECE - ds->blen, err,
                                  err_len);
        if (r < 0)
            return -1;
        ds->blen += (size_t)r;
    }
    if (ds->member_eof) {
        ds->txt_done = 1;
        ds->doc++;
        ds->off = 0;
        if (ds->blen == 0)
            return 0; /* an empty document */
        *text = ds->buf;
        *len = ds->cut = ds->blen;
        *eod = 1;
        return 1;
    }
    size_t c = cut_point(ds->buf, ds->blen);
    *text = ds->buf;
    *len = ds->cut = c;
    *eod = 0;
    ds->off += c;
    return 1;
}

/* The next line of the member into lbuf (no newline, no CR before it): 1, or
 * 0 at its end, or -1 with err. */
/* lbuf holds at least need bytes: 0, or -1 with err */
static int lbuf_room(data_source *ds, size_t need, char *err, size_t err_len)
{
    if (array_grow((void **)&ds->lbuf, &ds->lcap, need, 1)) {
        fail_at(ds, ds->line + 1, err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

static int read_line(data_source *ds, size_t *len, char *err, size_t err_len)
{
    size_t n = 0;
    int any = 0;
    for (;;) {
        if (ds->bpos == ds->blen) {
            if (ds->member_eof)
                break;
            long long r = read_member(ds, ds->buf, DATA_SOURCE_PIECE, err, err_len);
            if (r < 0)
                return -1;
            ds->bpos = 0;
            ds->blen = (size_t)r;
            continue;
        }
        any = 1;
        char *start = ds->buf + ds->bpos;
        char *nl = memchr(start, '\n', ds->blen - ds->bpos);
        size_t take = nl ? (size_t)(nl - start) : ds->blen - ds->bpos;
        if (lbuf_room(ds, n + take + 1, err, err_len))
            return -1;
        memcpy(ds->lbuf + n, start, take);
        n += take;
        ds->bpos += take + (nl != NULL);
        if (nl)
            break;
    }
    if (!any)
        return 0;
    if (n > 0 && ds->lbuf[n - 1] == '\r')
        n--;
    ds->lbuf[n] = '\0';
    ds->line++;
    *len = n;
    return 1;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            return 0;
    return 1;
}

/* lbuf holds n bytes of the member: 1, 0 when it ends first, -1 with err.
 * lbuf grows with the bytes that come, not with n: a length that lies meets
 * the end of the data, not an allocation of its size. */
static int read_exact(data_source *ds, size_t n, char *err, size_t err_len)
{
    if (lbuf_room(ds, 1, err, err_len))
        return -1;
    for (size_t got = 0; got < n;) {
        if (ds->bpos == ds->blen) {
            long long r = ds->member_eof ? 0 : read_member(ds, ds->buf, DATA_SOURCE_PIECE, err, err_len);
            if (r < 0)
                return -1;
            if (r == 0)
                return 0;
            ds->bpos = 0;
            ds->blen = (size_t)r;
        }
        size_t take = ds->blen - ds->bpos < n - got ? ds->blen - ds->bpos : n - got;
        if (lbuf_room(ds, got + take + 1, err, err_len))
            return -1;
        memcpy(ds->lbuf + got, ds->buf + ds->bpos, take);
        ds->bpos += take;
        got += take;
    }
    ds->lbuf[n] = '\0';
    return 1;
}

/* The columnar reader's next batch header: a line with the row count, a line
 * with each row's length in bytes. 1, 0 at the end, -1 with err. */
static int read_batch_header(data_source *ds, char *err, size_t err_len)
{
    size_t n;
    int r = read_line(ds, &n, err, err_len);
    if (r <= 0)
        return r;
    char *end;
    unsigned long long rows = strtoull(ds->lbuf, &end, 10);
    if (end == ds->lbuf || *end || rows > MAX_BATCH_ROWS) {
        fail_at(ds, 0, err, err_len, "the columnar reader wrote a bad batch header");
        return -1;
    }
    if (rows > ds->rows_cap) {
        size_t *p = realloc(ds->row_len, rows * sizeof *p);
        if (!p) {
            fail_at(ds, 0, err, err_len, "out of memory");
            return -1;
        }
        ds->row_len = p;
        ds->rows_cap = rows;
    }
    if (read_line(ds, &n, err, err_len) < 0)
        return -1;
    const char *p = ds->lbuf;
    for (size_t i = 0; i < rows; i++) {
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v > ((size_t)1 << 40)) {
            fail_at(ds, 0, err, err_len, "the columnar reader wrote bad row lengths");
            return -1;
        }
        ds->row_len[i] = (size_t)v;
        p = end;
    }
    ds->rows_left = rows;
    ds->row_i = 0;
    return 1;
}

/* the next row into lbuf[0, *len): 1, 0 at the end of the member, -1 with err */
static int next_row(data_source *ds, size_t *len, char *err, size_t err_len)
{
    while (ds->rows_left == 0) {
        int r = read_batch_header(ds, err, err_len);
        if (r <= 0)
            return r;
    }
    *len = ds->row_len[ds->row_i++];
    ds->rows_left--;
    int r = read_exact(ds, *len, err, err_len);
    if (r == 0)
        fail_at(ds, 0, err, err_len, "the columnar reader's rows end early");
    return r == 0 ? -1 : r;
}

/* rows of a columnar file: each one document, empty ones skipped */
static int rows_next(data_source *ds, const char **text, size_t *len, int *eod, char *err,
                     size_t err_len)
{
    for (;;) {
        int r = next_row(ds, len, err, err_len);
        if (r <= 0)
            return r;
        ds->doc++;
        if (*len == 0)
            continue;
        *text = ds->lbuf;
        *eod = 1;
        return 1;
    }
}

static int jsonl_next(data_source *ds, const char **text, size_t *len, int *eod,
                      char *err, size_t err_len)
{
    for (;;) {
        size_t n;
        int r = read_line(ds, &n, err, err_len);
        if (r <= 0)
            return r;
        if (blank(ds->lbuf, n))
            continue;
        json_error_t je;
        json_t *root = json_loadb(ds->lbuf, n, JSON_ALLOW_NUL, &je);
        unsigned long long line = (unsigned long long)ds->line;
        if (!root) {
            fail_at(ds, line, err, err_len, "bad JSON at column %d: %s", je.column, je.text);
            return -1;
        }
        if (!json_is_object(root)) {
            json_decref(root);
            fail_at(ds, line, err, err_len, "not a JSON object");
            return -1;
        }
        json_t *field = json_object_get(root, ds->text_field);
        if (!json_is_string(field)) {
            json_decref(root);
            fail_at(ds, line, err, err_len, "no string field \"%s\"", ds->text_field);
            return -1;
        }
        ds->doc++;
        if (json_string_length(field) == 0) {
            json_decref(root);
            continue;
        }
        ds->json = root;
        *text = json_string_value(field);
        *len = json_string_length(field);
        *eod = 1;
        return 1;
    }
}

int data_source_next(data_source *ds, const char **text, size_t *len, int *end_of_document,
                     char *err, size_t err_len)
{
    if (ds->json)
        json_decref(ds->json);
    ds->json = NULL;
    for (;;) {
        if (!ds->a) {
            if (ds->fi >= ds->n_files) {
                if (ds->from_start && !ds->yielded) {
                    snprintf(err, err_len, "the dataset (%zu file%s, first %s) holds no text",
                             ds->n_files, ds->n_files == 1 ? "" : "s", ds->files[0].path);
                    return -1;
                }
                return 0;
            }
            if (open_file(ds, err, err_len))
                return -1;
        }
        if (!ds->in_member) {
            int r = next_member(ds, err, err_len);
            if (r < 0)
                return -1;
            if (r == 0) {
                close_file(ds);
                ds->fi++;
                ds->doc = ds->off = 0;
                continue;
            }
        }
        int r = ds->member_fmt == FMT_TXT    ? txt_next(ds, text, len, end_of_document, err, err_len)
                : ds->member_fmt == FMT_ROWS ? rows_next(ds, text, len, end_of_document, err, err_len)
                                             : jsonl_next(ds, text, len, end_of_document, err, err_len);
        if (r > 0) {
            ds->yielded = 1;
            return 1;
        }
        if (r < 0)
            return -1;
        ds->in_member = 0;
    }
}

/* The epoch's file order: a Fisher-Yates shuffle drawn from (seed, epoch). */
static void shuffle_order(data_source *ds)
{
    rng r = {ds->order_seed ^ (ds->epoch * 0xD1B54A32D192ED03ull)};
    for (size_t i = 0; i < ds->n_files; i++)
        ds->order[i] = i;
    for (size_t i = ds->n_files; i > 1; i--) {
        size_t j = (size_t)(rng_next(&r) % i), t = ds->order[i - 1];
        ds->order[i - 1] = ds->order[j];
        ds->order[j] = t;
    }
}

int data_source_shuffle_files(data_source *ds, uint64_t seed)
{
    free(ds->order);
    ds->order = malloc((ds->n_files + 1) * sizeof *ds->order);
    if (!ds->order)
        return -1;
    ds->order_seed = seed;
    shuffle_order(ds);
    return 0;
}

void data_source_set_epoch(data_source *ds, uint64_t epoch)
{
    ds->epoch = epoch;
    if (ds->order)
        shuffle_order(ds);
    reset(ds, 0);
}

uint64_t data_source_epoch(const data_source *ds) { return ds->epoch; }

void data_source_rewind(data_source *ds)
{
    data_source_set_epoch(ds, ds->epoch + 1);
}

void data_source_tell(const data_source *ds, data_cursor *c)
{
    c->file = ds->fi;
    c->document = ds->doc;
    c->offset = ds->off;
    c->index = 0;
}

static int seek_fail(data_source *ds, char *err, size_t err_len, const data_cursor *c,
                     const char *why)
{
    if (why)
        fail_at(ds, 0, err, err_len, "cannot resume at document %llu, byte %llu: %s",
             (unsigned long long)c->document, (unsigned long long)c->offset, why);
    reset(ds, 0);
    return -1;
}

int data_source_seek(data_source *ds, const data_cursor *c, char *err, size_t err_len)
{
    if (c->file > ds->n_files || (c->file == ds->n_files && (c->document || c->offset))) {
        reset(ds, 0);
        snprintf(err, err_len, "cannot resume at file %llu of a dataset of %zu files",
                 (unsigned long long)c->file, ds->n_files);
        return -1;
    }
    reset(ds, (size_t)c->file);
    ds->from_start = c->file == 0 && c->document == 0 && c->offset == 0;
    if (c->file == ds->n_files || (c->document == 0 && c->offset == 0))
        return 0;
    if (open_file(ds, err, err_len))
        return seek_fail(ds, err, err_len, c, NULL);
    while (ds->doc < c->document) {
        if (!ds->in_member) {
            int r = next_member(ds, err, err_len);
            if (r < 0)
                return seek_fail(ds, err, err_len, c, NULL);
            if (r == 0)
                return seek_fail(ds, err, err_len, c, "the file holds fewer documents");
        }
        if (ds->member_fmt == FMT_TXT) {
            ds->doc++;
            ds->in_member = 0; /* the next header skips its data */
            continue;
        }
        size_t n;
        int r = ds->member_fmt == FMT_ROWS ? next_row(ds, &n, err, err_len)
                                           : read_line(ds, &n, err, err_len);
        if (r < 0)
            return seek_fail(ds, err, err_len, c, NULL);
        if (r == 0)
            ds->in_member = 0;
        else if (ds->member_fmt == FMT_ROWS || !blank(ds->lbuf, n))
            ds->doc++;
    }
    if (c->offset == 0)
        return 0;
    /* the next document must be a .txt one */
    for (;;) {
        if (!ds->in_member) {
            int r = next_member(ds, err, err_len);
            if (r < 0)
                return seek_fail(ds, err, err_len, c, NULL);
            if (r == 0)
                return seek_fail(ds, err, err_len, c, "the file holds fewer documents");
        }
        if (ds->member_fmt == FMT_TXT)
            break;
        if (ds->member_fmt == FMT_ROWS)
            return seek_fail(ds, err, err_len, c, "an offset inside a row");
        size_t n;
        int r = read_line(ds, &n, err, err_len);
        if (r < 0)
            return seek_fail(ds, err, err_len, c, NULL);
        if (r == 0)
            ds->in_member = 0;
        else if (!blank(ds->lbuf, n))
            return seek_fail(ds, err, err_len, c, "an offset inside a JSON line");
    }
    for (uint64_t left = c->offset; left > 0;) {
        size_t n = left < DATA_SOURCE_PIECE ? (size_t)left : DATA_SOURCE_PIECE;
        long long r = read_member(ds, ds->buf, n, err, err_len);
        if (r < 0)
            return seek_fail(ds, err, err_len, c, NULL);
        if (r == 0)
            return seek_fail(ds, err, err_len, c, "the document is shorter");
        left -= (uint64_t)r;
    }
    ds->off = c->offset;
    return 0;
}
