/*
 * `blobd check` (see check.h). The files under each contract's blobs/ and
 * tmp/ are listed, then the store is opened without start-up recovery, so
 * the check changes nothing in the data directory it reports on.
 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chat.h"
#include "store.h"

/* Files found under one contract directory before the store opened. */
struct contract_files {
    char cid[STORE_CID_MAX + 1];
    char **blobs;               /* "ab/cd/<name>", malloc'd */
    size_t nblobs, capblobs;
    size_t ntmp;
    bool in_registry;
};

struct check {
    const char *data_dir;
    FILE *report;
    int problems;
    struct contract_files *dirs;
    size_t ndirs;
    char **registry;            /* contract ids of the registry */
    size_t nregistry;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct check *ck, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(ck->report, fmt, ap);
    va_end(ap);
    fputc('\n', ck->report);
    ck->problems++;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p)
        abort();
    return p;
}

/* snprintf into a path buffer; false when the result does not fit. */
__attribute__((format(printf, 3, 4)))
static bool path_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

static void files_add(struct contract_files *f, const char *rel)
{
    if (f->nblobs == f->capblobs) {
        f->capblobs = f->capblobs ? 2 * f->capblobs : 64;
        f->blobs = realloc(f->blobs, f->capblobs * sizeof(*f->blobs));
        if (!f->blobs)
            abort();
    }
    f->blobs[f->nblobs++] = xstrdup(rel);
}

/* List blobs/ab/cd/<name> of one contract; anything else there is a
 * problem of its own. */
static void scan_blobs(struct check *ck, struct contract_files *f,
                       const char *dir)
{
    char top[PATH_MAX], mid[PATH_MAX], rel[PATH_MAX];
    struct dirent *e1, *e2, *e3;
    DIR *d1, *d2, *d3;

    if (!path_fmt(top, sizeof(top), "%s/blobs", dir))
        return;
    d1 = opendir(top);
    if (!d1)
        return;
    while ((e1 = readdir(d1)) != NULL) {
        if (e1->d_name[0] == '.')
            continue;
        if (!path_fmt(mid, sizeof(mid), "%s/%s", top, e1->d_name))
            continue;
        d2 = opendir(mid);
        if (!d2) {
            problem(ck, "contract %s: unexpected file blobs/%s", f->cid,
                    e1->d_name);
            continue;
        }
        while ((e2 = readdir(d2)) != NULL) {
            if (e2->d_name[0] == '.')
                continue;
            if (!path_fmt(rel, sizeof(rel), "%s/%s", mid, e2->d_name))
                continue;
            d3 = opendir(rel);
            if (!d3) {
                problem(ck, "contract %s: unexpected file blobs/%s/%s",
                        f->cid, e1->d_name, e2->d_name);
                continue;
            }
            while ((e3 = readdir(d3)) != NULL) {
                if (e3->d_name[0] == '.')
                    continue;
                if (path_fmt(rel, sizeof(rel), "%s/%s/%s", e1->d_name,
                             e2->d_name, e3->d_name))
                    files_add(f, rel);
            }
            closedir(d3);
        }
        closedir(d2);
    }
    closedir(d1);
}

static void scan_tmp(struct check *ck, struct contract_files *f,
                     const char *dir)
{
    char path[PATH_MAX];
    struct dirent *e;
    DIR *d;

    if (!path_fmt(path, sizeof(path), "%s/tmp", dir))
        return;
    d = opendir(path);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        f->ntmp++;
        problem(ck, "contract %s: leftover temporary file tmp/%s", f->cid,
                e->d_name);
    }
    closedir(d);
}

/* List the files of every contract directory, before recovery runs. */
static void scan_all(struct check *ck)
{
    char path[PATH_MAX], dir[PATH_MAX];
    struct dirent *e;
    DIR *d;

    if (!path_fmt(path, sizeof(path), "%s/contracts", ck->data_dir))
        return;
    d = opendir(path);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        struct contract_files *f;

        if (e->d_name[0] == '.')
            continue;
        if (!store_cid_valid(e->d_name) ||
            !path_fmt(dir, sizeof(dir), "%s/%s", path, e->d_name)) {
            problem(ck, "unexpected entry contracts/%s", e->d_name);
            continue;
        }
        ck->dirs = realloc(ck->dirs, (ck->ndirs + 1) * sizeof(*ck->dirs));
        if (!ck->dirs)
            abort();
        f = &ck->dirs[ck->ndirs++];
        memset(f, 0, sizeof(*f));
        memcpy(f->cid, e->d_name, strlen(e->d_name) + 1);
        scan_blobs(ck, f, dir);
        scan_tmp(ck, f, dir);
    }
    closedir(d);
}

/* SHA-256 and size of a file; false when it cannot be read. */
static bool file_digest(const char *path, unsigned char digest[32],
                        uint64_t *size)
{
    unsigned char buf[65536];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = false;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *size = 0;
    if (fd < 0 || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            goto out;
        *size += (uint64_t)n;
    }
    ok = n == 0 && EVP_DigestFinal_ex(md, digest, NULL) == 1;
out:
    EVP_MD_CTX_free(md);
    if (fd >= 0)
        close(fd);
    return ok;
}

struct chat_report_ctx {
    struct check *ck;
    const char *cid;
};

static void chat_report(void *arg, const char *text)
{
    struct chat_report_ctx *ctx = arg;

    problem(ctx->ck, "contract %s: %s", ctx->cid, text);
}

/* Every blob record: its file, size, digest and refs. */
static void check_records(struct check *ck, struct store_contract *c,
                          const struct chat_refs *refs, uint64_t *bytes,
                          uint64_t *count)
{
    const char *cid = store_contract_id(c);
    struct store_iter *it = store_iter_new(c, "b", 1);
    char hex[2 * STORE_DIGEST_LEN + 1], path[PATH_MAX];

    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        unsigned char have[STORE_DIGEST_LEN];
        struct store_blob blob;
        uint64_t size, expected;
        size_t klen;
        const unsigned char *k =
            (const unsigned char *)store_iter_key(it, &klen);

        if (klen != 1 + STORE_DIGEST_LEN) {
            problem(ck, "contract %s: blob key of %zu bytes", cid, klen);
            continue;
        }
        store_digest_hex(k + 1, hex);
        if (store_blob_get(c, k + 1, &blob, NULL) != BLOBD_OK) {
            problem(ck, "contract %s: blob %s: corrupt record", cid, hex);
            continue;
        }
        *bytes += blob.size;
        *count += 1;
        if (!path_fmt(path, sizeof(path), "%s/contracts/%s/blobs/%.2s/%.2s/%s",
                      ck->data_dir, cid, hex, hex + 2, hex) ||
            !file_digest(path, have, &size))
            problem(ck, "contract %s: blob %s: file missing or unreadable",
                    cid, hex);
        else if (size != blob.size)
            problem(ck, "contract %s: blob %s: file has %llu bytes, record "
                    "says %llu", cid, hex, (unsigned long long)size,
                    (unsigned long long)blob.size);
        else if (memcmp(have, k + 1, STORE_DIGEST_LEN) != 0)
            problem(ck, "contract %s: blob %s: file content has another "
                    "SHA-256", cid, hex);
        expected = chat_refs_expected(refs, k + 1);
        if (blob.refs != expected)
            problem(ck, "contract %s: blob %s: refs is %llu, but %llu "
                    "messages reference it", cid, hex,
                    (unsigned long long)blob.refs,
                    (unsigned long long)expected);
    }
    store_iter_free(it);
}

/* Check that every file found under blobs/ has a record and sits in the
 * directories that its name gives. */
static void check_files(struct check *ck, struct store_contract *c,
                        const struct contract_files *f)
{
    unsigned char digest[STORE_DIGEST_LEN];
    struct store_blob blob;

    for (size_t i = 0; f && i < f->nblobs; i++) {
        const char *rel = f->blobs[i];
        const char *name = rel + 6;

        if (strlen(rel) != 6 + 2 * STORE_DIGEST_LEN ||
            !store_digest_parse(name, digest) ||
            memcmp(rel, name, 2) != 0 || memcmp(rel + 3, name + 2, 2) != 0) {
            problem(ck, "contract %s: unexpected file blobs/%s", f->cid, rel);
            continue;
        }
        if (store_blob_get(c, digest, &blob, NULL) != BLOBD_OK)
            problem(ck, "contract %s: file blobs/%s has no blob record",
                    f->cid, rel);
    }
}

static void check_contract(struct check *ck, struct store *st,
                           const char *cid)
{
    struct chat_report_ctx ctx = { .ck = ck, .cid = cid };
    struct store_contract_info info;
    struct store_contract *c = NULL;
    struct contract_files *f = NULL;
    struct chat_refs *refs = NULL;
    struct blobd_error err;
    uint64_t bytes = 0, count = 0;

    for (size_t i = 0; i < ck->ndirs; i++) {
        if (!strcmp(ck->dirs[i].cid, cid)) {
            f = &ck->dirs[i];
            f->in_registry = true;
        }
    }
    blobd_error_clear(&err);
    if (store_contract_acquire(st, cid, &c, &err) != BLOBD_OK) {
        problem(ck, "contract %s: cannot open its database: %s", cid,
                err.message);
        return;
    }
    chat_check(c, chat_report, &ctx, &refs);
    check_records(ck, c, refs, &bytes, &count);
    check_files(ck, c, f);
    store_contract_info(c, &info);
    if (info.used_bytes != bytes)
        problem(ck, "contract %s: used_bytes is %llu, but its blobs hold "
                "%llu bytes", cid, (unsigned long long)info.used_bytes,
                (unsigned long long)bytes);
    if (info.blob_count != count)
        problem(ck, "contract %s: blob_count is %llu, but %llu blobs are "
                "recorded", cid, (unsigned long long)info.blob_count,
                (unsigned long long)count);
    chat_refs_free(refs);
    store_contract_release(c);
}

static int collect_id(const struct store_contract_info *info, void *arg)
{
    struct check *ck = arg;

    ck->registry = realloc(ck->registry,
                           (ck->nregistry + 1) * sizeof(*ck->registry));
    if (!ck->registry)
        abort();
    ck->registry[ck->nregistry++] = xstrdup(info->id);
    return 0;
}

static void check_free(struct check *ck)
{
    for (size_t i = 0; i < ck->ndirs; i++) {
        for (size_t k = 0; k < ck->dirs[i].nblobs; k++)
            free(ck->dirs[i].blobs[k]);
        free(ck->dirs[i].blobs);
    }
    free(ck->dirs);
    for (size_t i = 0; i < ck->nregistry; i++)
        free(ck->registry[i]);
    free(ck->registry);
}

int check_run(const char *data_dir, const struct quota_plans *plans,
              FILE *report)
{
    struct check ck = { .data_dir = data_dir, .report = report };
    struct store_options opts = {
        .data_dir = data_dir,
        .plans = plans,
        .skip_recovery = true,
    };
    struct store *st = NULL;
    struct blobd_error err;
    struct stat sb;

    if (stat(data_dir, &sb) != 0) {
        problem(&ck, "data directory %s: %s", data_dir, strerror(errno));
        return ck.problems;
    }
    if (!S_ISDIR(sb.st_mode)) {
        problem(&ck, "data directory %s: not a directory", data_dir);
        return ck.problems;
    }
    scan_all(&ck);
    blobd_error_clear(&err);
    if (store_open(&st, &opts, &err) != BLOBD_OK) {
        problem(&ck, "data directory %s: cannot open the store: %s",
                data_dir, err.message);
        check_free(&ck);
        return ck.problems;
    }
    if (store_contract_foreach(st, collect_id, &ck, &err) != BLOBD_OK)
        problem(&ck, "registry: cannot list contracts: %s", err.message);
    for (size_t i = 0; i < ck.nregistry; i++)
        check_contract(&ck, st, ck.registry[i]);
    for (size_t i = 0; i < ck.ndirs; i++) {
        if (!ck.dirs[i].in_registry)
            problem(&ck, "directory contracts/%s belongs to no contract of "
                    "the registry", ck.dirs[i].cid);
    }
    store_close(st);
    check_free(&ck);
    return ck.problems;
}
