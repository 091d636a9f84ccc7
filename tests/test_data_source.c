/* Document sources: the same documents as a folder of .txt files, as JSON
 * lines (plain, .gz, .zst, .xz), inside .tar/.tgz/.tar.zst/.zip archives and
 * mixed must all read as the same sequence; globs and comma lists; exact
 * resume from a cursor; errors naming file[:member][:line]. The files are
 * written here with libarchive's write API, so no external tool is needed. */
#define _GNU_SOURCE /* nftw */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_source.h"
#include "testing.h"

static char dir[64];

/* ---- the documents ---- */

enum { N_DOCS = 7, LONG_DOC = 5 };
static char *docs[N_DOCS];
static size_t doc_len[N_DOCS];

static void make_docs(void)
{
    const char *fixed[N_DOCS] = {
        "Hello, world.\n",
        "Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c! \xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 \xf0\x9f\x8c\x8d\nline two",
        "", /* empty: skipped */
        " ", /* empty-ish */
        NULL, /* with a NUL byte: below */
        NULL, /* the long one */
        "The end.",
    };
    static const char quoted[] = "\"quoted\" \\ back\tslash\r\nNUL:\0: \x01 ctrl";
    for (int i = 0; i < N_DOCS; i++) {
        if (i == LONG_DOC)
            continue;
        if (i == 4)
            fixed[i] = quoted;
        doc_len[i] = i == 4 ? sizeof quoted - 1 : strlen(fixed[i]);
        docs[i] = malloc(doc_len[i] + 1);
        memcpy(docs[i], fixed[i], doc_len[i] + 1);
    }
    /* bigger than two read buffers: a long run without newlines, of
     * characters of 1 to 4 bytes (the cut lands inside some of them), then
     * lines */
    size_t cap = 3 * DATA_SOURCE_PIECE, n = 0;
    char *s = malloc(cap);
    static const char *chars[] = {"a", "\xc3\xa9", "\xe4\xb8\x96", "\xf0\x9f\x8c\x8d", " "};
    testing_seed(42);
    while (n < DATA_SOURCE_PIECE + DATA_SOURCE_PIECE / 3) {
        const char *c = chars[(int)(testing_uniform() * 5)];
        memcpy(s + n, c, strlen(c));
        n += strlen(c);
    }
    for (int line = 0; n < 2 * DATA_SOURCE_PIECE + DATA_SOURCE_PIECE / 2; line++)
        n += (size_t)sprintf(s + n, "\nline %d: the quick brown fox \xe2\x80\x94 %g", line,
                             testing_uniform());
    docs[LONG_DOC] = s;
    doc_len[LONG_DOC] = n;
}

/* ---- writing the forms ---- */

static char *path_of(const char *fmt, ...)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    int n = snprintf(p, 512, "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p + n, 512 - n, fmt, ap);
    va_end(ap);
    return p;
}

static void write_plain(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void mkdirs(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    for (char *s = p + strlen(dir) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

/* JSON lines of docs[lo, hi) under field (and "text" holding something else
 * when field is not "text"), with a blank line, a CRLF line and extra keys */
static char *jsonl_of(int lo, int hi, const char *field, size_t *len)
{
    size_t cap = 4 * DATA_SOURCE_PIECE, n = 0;
    char *out = malloc(cap);
    for (int i = lo; i < hi; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(i));
        json_object_set_new(o, field, json_stringn(docs[i], doc_len[i]));
        if (strcmp(field, "text"))
            json_object_set_new(o, "text", json_string("not this"));
        char *line = json_dumps(o, JSON_COMPACT);
        size_t k = strlen(line);
        memcpy(out + n, line, k);
        n += k;
        if (i == lo + 1) {
            memcpy(out + n, "\r\n  \n\n", 6); /* CRLF, then blank lines */
            n += 6;
        } else if (i + 1 < hi)
            out[n++] = '\n';
        free(line);
        json_decref(o);
    }
    *len = n;
    return out;
}

static void check_archive(struct archive *a, int r, const char *what)
{
    if (r != ARCHIVE_OK) {
        fprintf(stderr, "libarchive %s: %s\n", what, archive_error_string(a));
        exit(1);
    }
}

static void add_filter(struct archive *a, int filter)
{
    int r = ARCHIVE_OK;
    if (filter == ARCHIVE_FILTER_GZIP)
        r = archive_write_add_filter_gzip(a);
    else if (filter == ARCHIVE_FILTER_ZSTD)
        r = archive_write_add_filter_zstd(a);
    else if (filter == ARCHIVE_FILTER_XZ)
        r = archive_write_add_filter_xz(a);
    check_archive(a, r, "add filter (is this libarchive built with it?)");
    if (filter != ARCHIVE_FILTER_NONE) /* fast: the test is about reading */
        check_archive(a, archive_write_set_options(a, "compression-level=1"), "set level");
}

typedef struct member {
    const char *name;
    const char *data;
    size_t len;
    int dir;
} member;

/* format: ARCHIVE_FORMAT_RAW (one stream), _TAR_USTAR or _ZIP */
static void write_archive(const char *path, int format, int filter, const member *m, int n)
{
    struct archive *a = archive_write_new();
    add_filter(a, filter);
    check_archive(a, archive_write_set_format(a, format), "set format");
    check_archive(a, archive_write_open_filename(a, path), "open");
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, m[i].dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, m[i].dir ? 0 : (la_int64_t)m[i].len);
        archive_entry_set_mtime(e, 1700000000, 0);
        check_archive(a, archive_write_header(a, e), "write header");
        for (size_t done = 0; done < m[i].len;) {
            la_ssize_t w = archive_write_data(a, m[i].data + done, m[i].len - done);
            if (w <= 0)
                check_archive(a, ARCHIVE_FATAL, "write data");
            done += (size_t)w;
        }
        archive_entry_free(e);
    }
    check_archive(a, archive_write_close(a), "close");
    archive_write_free(a);
}

static void write_single(const char *path, int filter, const char *data, size_t len)
{
    member m = {"data", data, len, 0};
    write_archive(path, ARCHIVE_FORMAT_RAW, filter, &m, 1);
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *p = malloc(*len + 1);
    if (fread(p, 1, *len, f) != *len)
        exit(1);
    fclose(f);
    return p;
}

static void write_forms(void)
{
    /* a folder, nested, with hidden things to skip */
    static const char *txt_names[N_DOCS] = {"txt/a.txt", "txt/b/c.txt", "txt/b/d.txt",
                                            "txt/b/e/f.txt", "txt/g.txt", "txt/h.txt",
                                            "txt/i.txt"};
    mkdirs("txt/b/e");
    mkdirs("txt/.git");
    for (int i = 0; i < N_DOCS; i++)
        write_plain(path_of("%s", txt_names[i]), docs[i], doc_len[i]);
    write_plain(path_of("txt/.hidden"), "x", 1);
    write_plain(path_of("txt/.git/config"), "x", 1);

    size_t jl;
    char *jsonl = jsonl_of(0, N_DOCS, "text", &jl);
    write_plain(path_of("plain.jsonl"), jsonl, jl);
    write_single(path_of("data.jsonl.gz"), ARCHIVE_FILTER_GZIP, jsonl, jl);
    write_single(path_of("data.jsonl.zst"), ARCHIVE_FILTER_ZSTD, jsonl, jl);
    write_single(path_of("data.jsonl.xz"), ARCHIVE_FILTER_XZ, jsonl, jl);
    write_single(path_of("long.txt.gz"), ARCHIVE_FILTER_GZIP, docs[LONG_DOC],
                 doc_len[LONG_DOC]);
    /* the truncated copy, and a .gz that is not gzip */
    size_t gl;
    char *gz = read_whole(path_of("data.jsonl.gz"), &gl);
    write_plain(path_of("trunc.jsonl.gz"), gz, gl / 2);
    free(gz);
    write_plain(path_of("fake.jsonl.gz"), jsonl, jl);

    size_t cl;
    char *custom = jsonl_of(0, N_DOCS, "content", &cl);
    write_plain(path_of("custom.jsonl"), custom, cl);
    free(custom);

    member m[N_DOCS + 3];
    int n = 0;
    m[n++] = (member){"docs/", NULL, 0, 1};
    m[n++] = (member){"README.md", "skip me", 7, 0};
    static const char *names[N_DOCS] = {"docs/0.txt", "docs/1.TXT", "docs/2.txt", "docs/3.txt",
                                        "docs/4.txt", "docs/5.txt", "docs/6.txt"};
    for (int i = 0; i < N_DOCS; i++) {
        m[n++] = (member){names[i], docs[i], doc_len[i], 0};
        if (i == 2)
            m[n++] = (member){"docs/notes.csv", "a,b", 3, 0};
    }
    write_archive(path_of("docs.tar"), ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, n);
    write_archive(path_of("docs.tgz"), ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, m, n);
    write_archive(path_of("docs.tar.zst"), ARCHIVE_FORMAT_TAR_PAX_RESTRICTED,
                  ARCHIVE_FILTER_ZSTD, m, n);
    write_archive(path_of("docs.zip"), ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, m, n);

    /* mixed: the first three as JSON lines, then .txt members, one more
     * jsonl member holding only blank lines */
    size_t hl;
    char *head = jsonl_of(0, 3, "text", &hl);
    member mixed[] = {{"part1.jsonl", head, hl, 0}, {"3.txt", docs[3], doc_len[3], 0},
                      {"blank.jsonl", "\n \n", 3, 0},  {"4.txt", docs[4], doc_len[4], 0},
                      {"5.txt", docs[5], doc_len[5], 0}, {"6.txt", docs[6], doc_len[6], 0}};
    write_archive(path_of("mixed.tar.xz"), ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_XZ, mixed,
                  6);
    free(head);

    /* a corrupt zip: bytes in the middle of the long member overwritten */
    size_t zl;
    char *zip = read_whole(path_of("docs.zip"), &zl);
    for (size_t i = zl / 2; i < zl / 2 + 64; i++)
        zip[i] ^= 0x5A;
    write_plain(path_of("bad.zip"), zip, zl);
    free(zip);

    /* bad JSON lines */
    const char *nofield = "{\"text\": \"one\"}\n\n{\"other\": 1}\n";
    write_plain(path_of("nofield.jsonl"), nofield, strlen(nofield));
    write_plain(path_of("notobj.jsonl"), "[1, 2]\n", 7);
    write_plain(path_of("badjson.jsonl"), "{\"text\": \"one\"}\n{\"text\": \"abc\n", 30);
    write_plain(path_of("nonstring.jsonl"), "{\"text\": 5}\n", 12);
    member inner[] = {{"inner.jsonl", "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n", 27, 0}};
    write_archive(path_of("badmember.tar"), ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE,
                  inner, 1);
    mkdirs("unknown");
    write_plain(path_of("unknown/a.txt"), "a", 1);
    write_plain(path_of("unknown/notes.md"), "a", 1);
    write_plain(path_of("x.csv"), "a,b\n", 4);
    mkdirs("emptydocs");
    write_plain(path_of("emptydocs/a.txt"), "", 0);
    write_plain(path_of("emptydocs/b.jsonl"), "{\"text\": \"\"}\n\n", 14);
    mkdirs("nofiles/.hidden");
    free(jsonl);
}

/* ---- reading ---- */

typedef struct digest {
    uint64_t hash;
    long docs, pieces;
    size_t bytes;
} digest;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ s[i]) * 0x100000001b3ull;
}

/* over the bytes of each document and its length at its end */
static void digest_doc(digest *d, const char *text, size_t len, int eod, size_t *doc_bytes)
{
    mix(&d->hash, text, len);
    *doc_bytes += len;
    d->bytes += len;
    d->pieces++;
    if (eod) {
        unsigned char mark[9] = {0xFF};
        memcpy(mark + 1, doc_bytes, sizeof(uint64_t));
        mix(&d->hash, mark, sizeof mark);
        d->docs++;
        *doc_bytes = 0;
    }
}

static digest expected(const int *which, int n)
{
    digest d = {0xcbf29ce484222325ull, 0, 0, 0};
    size_t b = 0;
    for (int i = 0; i < n; i++)
        if (doc_len[which[i]])
            digest_doc(&d, docs[which[i]], doc_len[which[i]], 1, &b);
    d.pieces = 0;
    return d;
}

/* reads one epoch; checks the piece contract on the way. Returns -1 with err
 * on an error. */
static int read_epoch(data_source *ds, digest *d, char *err, size_t err_len)
{
    *d = (digest){0xcbf29ce484222325ull, 0, 0, 0};
    size_t b = 0;
    const char *text;
    size_t len;
    int eod, r, prev_eod = 1;
    while ((r = data_source_next(ds, &text, &len, &eod, err, err_len)) == 1) {
        CHECK(len >= 1, "an empty piece");
        if (!prev_eod)
            CHECK(((unsigned char)text[0] & 0xC0) != 0x80,
                  "a piece starts inside a UTF-8 character");
        if (!eod)
            CHECK(len <= DATA_SOURCE_PIECE, "a partial piece of %zu bytes", len);
        prev_eod = eod;
        digest_doc(d, text, len, eod, &b);
    }
    CHECK(r != 0 || prev_eod, "the epoch ended inside a document");
    return r;
}

static void same_as(const char *spec, const char *field, const int *which, int n)
{
    data_source *ds;
    char err[1024];
    if (data_source_open(&ds, spec, field, err, sizeof err)) {
        CHECK(0, "%s: %s", spec, err);
        return;
    }
    digest want = expected(which, n), got;
    for (int epoch = 0; epoch < 2; epoch++) {
        int r = read_epoch(ds, &got, err, sizeof err);
        CHECK(r == 0, "%s: %s", spec, r ? err : "");
        CHECK(got.hash == want.hash && got.docs == want.docs && got.bytes == want.bytes,
              "%s (epoch %d): %ld documents, %zu bytes, hash %016llx; want %ld, %zu, %016llx",
              spec, epoch, got.docs, got.bytes, (unsigned long long)got.hash, want.docs,
              want.bytes, (unsigned long long)want.hash);
        const char *t;
        size_t l;
        int e;
        CHECK(data_source_next(ds, &t, &l, &e, err, sizeof err) == 0, "%s: 0 again", spec);
        data_source_rewind(ds);
    }
    data_source_close(ds);
}

static const int ALL[N_DOCS] = {0, 1, 2, 3, 4, 5, 6};

static void test_forms(void)
{
    static const char *forms[] = {"txt",           "txt/",         "plain.jsonl",
                                  "data.jsonl.gz", "data.jsonl.zst", "data.jsonl.xz",
                                  "docs.tar",      "docs.tgz",     "docs.tar.zst",
                                  "docs.zip",      "mixed.tar.xz"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        same_as(path_of("%s", forms[i]), NULL, ALL, N_DOCS);
    same_as(path_of("custom.jsonl"), "content", ALL, N_DOCS);
    int long_doc = LONG_DOC;
    same_as(path_of("long.txt.gz"), NULL, &long_doc, 1);

    /* the long document as .txt comes in pieces that join up */
    data_source *ds;
    char err[1024];
    if (data_source_open(&ds, path_of("txt/h.txt"), NULL, err, sizeof err) == 0) {
        const char *text;
        size_t len, at = 0;
        int eod = 0, pieces = 0, newline_cuts = 0;
        while (!eod && data_source_next(ds, &text, &len, &eod, err, sizeof err) == 1) {
            CHECK(at + len <= doc_len[LONG_DOC] && !memcmp(text, docs[LONG_DOC] + at, len),
                  "piece %d differs", pieces);
            newline_cuts += !eod && text[len - 1] == '\n';
            at += len;
            pieces++;
        }
        CHECK(at == doc_len[LONG_DOC] && pieces == 3 && newline_cuts == 1,
              "long document: %zu of %zu bytes in %d pieces, %d cut after a newline", at,
              doc_len[LONG_DOC], pieces, newline_cuts);
        CHECK(data_source_file_count(ds) == 1, "one file");
        data_source_close(ds);
    } else
        CHECK(0, "%s", err);
}

static void test_lists(void)
{
    char spec[2048];
    /* a glob does not recurse by itself, but folders among its matches do */
    static const int top[] = {0, 4, 5, 6};
    same_as(path_of("txt/*.txt"), NULL, top, 4);
    same_as(path_of("txt/*"), NULL, ALL, N_DOCS);
    same_as(path_of("t?t/[a-h].txt"), NULL, top, 3);
    /* comma lists keep their order; spaces around items and empty items go */
    static const int list[] = {6, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6};
    snprintf(spec, sizeof spec, " %s/txt/i.txt ,%s/txt/a.txt,, %s/txt/b,%s/data.jsonl.zst,", dir,
             dir, dir, dir);
    same_as(spec, NULL, list, 12);
    data_source *ds;
    char err[1024];
    if (data_source_open(&ds, spec, NULL, err, sizeof err) == 0) {
        CHECK(data_source_file_count(ds) == 6, "6 files, not %zu", data_source_file_count(ds));
        data_source_close(ds);
    }
}

/* ---- resume ---- */

typedef struct piece {
    char *text;
    size_t len;
    int eod;
    data_cursor at;
} piece;

static void test_resume(void)
{
    char spec[2048], err[1024];
    snprintf(spec, sizeof spec, "%s/txt,%s/data.jsonl.zst,%s/mixed.tar.xz,%s/docs.zip,%s/long.txt.gz",
             dir, dir, dir, dir, dir);
    data_source *ds;
    if (data_source_open(&ds, spec, NULL, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    piece *p = NULL;
    int n = 0, r;
    const char *text;
    size_t len;
    int eod;
    for (;;) {
        p = realloc(p, (n + 2) * sizeof *p);
        data_source_tell(ds, &p[n].at);
        if ((r = data_source_next(ds, &text, &len, &eod, err, sizeof err)) != 1)
            break;
        p[n].text = malloc(len);
        memcpy(p[n].text, text, len);
        p[n].len = len;
        p[n].eod = eod;
        n++;
    }
    CHECK(r == 0, "%s", err);
    data_cursor end;
    data_source_tell(ds, &end);
    CHECK(end.file == 11 && end.document == 0 && end.offset == 0, "the cursor at the end");
    p[n + 1].at = end;
    data_source_close(ds);

    /* resume at the start, every cursor inside a document, a few others,
     * the end */
    int mid = 0;
    for (int k = 0; k <= n + 1; k++) {
        int i = k <= n ? k : n; /* k == n + 1: the cursor after the end */
        const data_cursor *at = &p[k].at;
        int inside = at->offset > 0;
        mid += inside;
        if (!(i == 0 || i == n || inside || i % 5 == 3))
            continue;
        if (data_source_open(&ds, spec, NULL, err, sizeof err)) {
            CHECK(0, "%s", err);
            break;
        }
        if (data_source_seek(ds, at, err, sizeof err)) {
            CHECK(0, "seek to piece %d: %s", i, err);
            data_source_close(ds);
            continue;
        }
        int j = i, bad = 0;
        for (;;) {
            data_cursor now; /* the cursors go on as in the first run */
            data_source_tell(ds, &now);
            if (j < n && memcmp(&now, &p[j].at, sizeof now)) {
                bad = 1;
                break;
            }
            if ((r = data_source_next(ds, &text, &len, &eod, err, sizeof err)) != 1)
                break;
            if (j >= n || len != p[j].len || eod != p[j].eod || memcmp(text, p[j].text, len)) {
                bad = 1;
                break;
            }
            j++;
        }
        CHECK(!bad && r == 0 && j == n, "resumed at piece %d (file %llu, document %llu, byte %llu): "
              "differs at piece %d (r %d)", i, (unsigned long long)at->file,
              (unsigned long long)at->document, (unsigned long long)at->offset, j, r);
        data_source_close(ds);
    }
    CHECK(mid >= 6, "only %d cursors inside a document", mid);

    /* cursors beyond the data */
    if (data_source_open(&ds, spec, NULL, err, sizeof err) == 0) {
        data_cursor c = {0, 7, 0, 0};
        CHECK(data_source_seek(ds, &c, err, sizeof err) == -1 && strstr(err, "txt"),
              "seek past the documents of a folder file: %s", err);
        c = (data_cursor){7, 6, 0, 0}; /* the last document of data.jsonl.zst */
        CHECK(data_source_seek(ds, &c, err, sizeof err) == 0, "%s", err);
        c = (data_cursor){7, 99, 0, 0};
        CHECK(data_source_seek(ds, &c, err, sizeof err) == -1 && strstr(err, "data.jsonl.zst"),
              "seek past the documents of a file: %s", err);
        c = (data_cursor){7, 0, 3, 0};
        CHECK(data_source_seek(ds, &c, err, sizeof err) == -1 && strstr(err, "JSON line"),
              "an offset inside a JSON line: %s", err);
        c = (data_cursor){12, 0, 0, 0};
        CHECK(data_source_seek(ds, &c, err, sizeof err) == -1, "seek past the files");
        /* left rewound: the first piece again */
        CHECK(data_source_next(ds, &text, &len, &eod, err, sizeof err) == 1 &&
              len == p[0].len && !memcmp(text, p[0].text, len), "rewound after a failed seek");
        data_source_close(ds);
    }
    for (int i = 0; i < n; i++)
        free(p[i].text);
    free(p);
}

/* ---- errors ---- */

static void open_fails(const char *spec, const char *want1, const char *want2)
{
    data_source *ds;
    char err[1024] = "";
    int r = data_source_open(&ds, spec, NULL, err, sizeof err);
    CHECK(r == -1 && ds == NULL && strstr(err, want1) && (!want2 || strstr(err, want2)),
          "open %s: %d, \"%s\"", spec, r, err);
    if (r == 0)
        data_source_close(ds);
}

static void read_fails(const char *spec, const char *want1, const char *want2)
{
    data_source *ds;
    char err[1024] = "";
    if (data_source_open(&ds, spec, NULL, err, sizeof err)) {
        CHECK(0, "open %s: %s", spec, err);
        return;
    }
    digest d;
    int r = read_epoch(ds, &d, err, sizeof err);
    CHECK(r == -1 && strstr(err, want1) && (!want2 || strstr(err, want2)), "read %s: %d, \"%s\"",
          spec, r, err);
    data_source_close(ds);
}

static void test_errors(void)
{
    char spec[2048];
    open_fails(path_of("nope.txt"), "nope.txt", "No such file");
    snprintf(spec, sizeof spec, "%s/plain.jsonl,%s/gone", dir, dir);
    open_fails(spec, "gone", NULL);
    open_fails(path_of("*.nothing"), "*.nothing", "matches nothing");
    open_fails("", "no file", NULL);
    open_fails(" , ", "no file", NULL);
    open_fails(path_of("x.csv"), "x.csv", ".jsonl");
    open_fails(path_of("unknown"), "notes.md", ".zip");
    open_fails(path_of("nofiles"), "nofiles", "no files");

    read_fails(path_of("trunc.jsonl.gz"), "trunc.jsonl.gz", NULL);
    read_fails(path_of("fake.jsonl.gz"), "fake.jsonl.gz", "not a gzip stream");
    read_fails(path_of("bad.zip"), "bad.zip", NULL);
    read_fails(path_of("nofield.jsonl"), "nofield.jsonl:3:", "\"text\"");
    read_fails(path_of("notobj.jsonl"), "notobj.jsonl:1:", "not a JSON object");
    read_fails(path_of("badjson.jsonl"), "badjson.jsonl:2:", NULL);
    read_fails(path_of("nonstring.jsonl"), "nonstring.jsonl:1:", "\"text\"");
    read_fails(path_of("badmember.tar"), "badmember.tar:inner.jsonl:2:", NULL);
    read_fails(path_of("emptydocs"), "holds no text", NULL);
    /* a file that goes away after open */
    write_plain(path_of("vanishing.txt"), "x", 1);
    data_source *ds;
    char err[1024];
    if (data_source_open(&ds, path_of("vanishing.txt"), NULL, err, sizeof err) == 0) {
        unlink(path_of("vanishing.txt"));
        const char *t;
        size_t l;
        int e;
        CHECK(data_source_next(ds, &t, &l, &e, err, sizeof err) == -1 && strstr(err, "vanishing"),
              "a vanished file: %s", err);
        data_source_close(ds);
    }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path))
        fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
    return 0;
}

int main(void)
{
    strcpy(dir, "/tmp/flame-data-source-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_docs();
    write_forms();
    test_forms();
    test_lists();
    test_resume();
    test_errors();
    if (!testing_failures)
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "files kept in %s\n", dir);
    for (int i = 0; i < N_DOCS; i++)
        free(docs[i]);
    return testing_result("test_data_source");
}
