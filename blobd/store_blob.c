/*
 * Blob records and blob files of a contract, and the durable upload
 * commit.
 *
 * Keys (see store.h for the families):
 *   'b' digest                 -> blob record (encoding below)
 *   'a' uid '\0' digest        -> empty: uid uploaded the blob
 *   'A' digest uid             -> empty: the same, by blob
 *   'z' be64(last_upload) digest -> empty: the blob has no references
 *
 * Blob record, 45 bytes plus the media type: be64 size, be64 refs,
 * be64 last_upload_ms, be64 created_ms, be32 width, be32 height, one byte
 * media type length, the media type.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "log.h"
#include "quota.h"

#define BLOB_FIXED_LEN 41
#define UID_MAX 47

static const char hexdigits[] = "0123456789abcdef";

void store_digest_hex(const unsigned char digest[STORE_DIGEST_LEN],
                      char hex[2 * STORE_DIGEST_LEN + 1])
{
    for (int i = 0; i < STORE_DIGEST_LEN; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    hex[2 * STORE_DIGEST_LEN] = '\0';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

bool store_digest_parse(const char *hex,
                        unsigned char digest[STORE_DIGEST_LEN])
{
    if (!hex || strlen(hex) != 2 * STORE_DIGEST_LEN)
        return false;
    for (int i = 0; i < STORE_DIGEST_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        digest[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

void store_blob_path(const struct store_contract *c,
                     const unsigned char digest[STORE_DIGEST_LEN],
                     char *path, size_t size)
{
    char hex[2 * STORE_DIGEST_LEN + 1];

    store_digest_hex(digest, hex);
    snprintf(path, size, "%s/blobs/%.2s/%.2s/%s", c->dir, hex, hex + 2, hex);
}

void store_blob_unlink(struct store_contract *c,
                       const unsigned char digest[STORE_DIGEST_LEN])
{
    char path[PATH_MAX];

    store_blob_path(c, digest, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("store", "unlink_failed", "path=%s error=\"%s\"", path,
                 strerror(errno));
}

static void be32_put(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t be32_get(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static size_t blob_encode(const struct store_blob *blob, unsigned char *buf)
{
    size_t mlen = strnlen(blob->media_type, STORE_MEDIA_TYPE_MAX - 1);

    store_be64_put(buf, blob->size);
    store_be64_put(buf + 8, blob->refs);
    store_be64_put(buf + 16, (uint64_t)blob->last_upload_ms);
    store_be64_put(buf + 24, (uint64_t)blob->created_ms);
    be32_put(buf + 32, blob->width);
    be32_put(buf + 36, blob->height);
    buf[40] = (unsigned char)mlen;
    memcpy(buf + BLOB_FIXED_LEN, blob->media_type, mlen);
    return BLOB_FIXED_LEN + mlen;
}

bool store_blob_decode(const char *val, size_t vlen, struct store_blob *out)
{
    const unsigned char *p = (const unsigned char *)val;
    size_t mlen;

    if (vlen < BLOB_FIXED_LEN)
        return false;
    mlen = p[40];
    if (vlen != BLOB_FIXED_LEN + mlen || mlen >= STORE_MEDIA_TYPE_MAX)
        return false;
    out->size = store_be64_get(p);
    out->refs = store_be64_get(p + 8);
    out->last_upload_ms = (int64_t)store_be64_get(p + 16);
    out->created_ms = (int64_t)store_be64_get(p + 24);
    out->width = be32_get(p + 32);
    out->height = be32_get(p + 36);
    memcpy(out->media_type, p + BLOB_FIXED_LEN, mlen);
    out->media_type[mlen] = '\0';
    return true;
}

static void blob_key(const unsigned char digest[STORE_DIGEST_LEN],
                     unsigned char key[1 + STORE_DIGEST_LEN])
{
    key[0] = 'b';
    memcpy(key + 1, digest, STORE_DIGEST_LEN);
}

static void unref_key(const struct store_blob *blob,
                      unsigned char key[9 + STORE_DIGEST_LEN])
{
    key[0] = 'z';
    store_be64_put(key + 1, (uint64_t)blob->last_upload_ms);
    memcpy(key + 9, blob->digest, STORE_DIGEST_LEN);
}

int store_blob_get(struct store_contract *c,
                   const unsigned char digest[STORE_DIGEST_LEN],
                   struct store_blob *out, struct blobd_error *err)
{
    unsigned char key[1 + STORE_DIGEST_LEN];
    char *val;
    size_t vlen;
    int rc;

    blob_key(digest, key);
    rc = store_get(c, key, sizeof(key), &val, &vlen, err);
    if (rc != BLOBD_OK) {
        if (rc == BLOBD_ENOTFOUND)
            blobd_fail(err, BLOBD_ENOTFOUND, "blob not found");
        return rc;
    }
    memset(out, 0, sizeof(*out));
    if (!store_blob_decode(val, vlen, out)) {
        free(val);
        return blobd_fail(err, BLOBD_EIO, "blob record is corrupt");
    }
    free(val);
    memcpy(out->digest, digest, STORE_DIGEST_LEN);
    return BLOBD_OK;
}

void store_batch_blob_put(struct store_batch *b, const struct store_blob *old,
                          const struct store_blob *blob)
{
    unsigned char key[1 + STORE_DIGEST_LEN];
    unsigned char zkey[9 + STORE_DIGEST_LEN];
    unsigned char val[BLOB_FIXED_LEN + STORE_MEDIA_TYPE_MAX];
    size_t vlen = blob_encode(blob, val);

    blob_key(blob->digest, key);
    rocksdb_writebatch_put(b->wb, (const char *)key, sizeof(key),
                           (const char *)val, vlen);
    if (old && old->refs == 0) {
        unref_key(old, zkey);
        rocksdb_writebatch_delete(b->wb, (const char *)zkey, sizeof(zkey));
    }
    if (blob->refs == 0) {
        unref_key(blob, zkey);
        rocksdb_writebatch_put(b->wb, (const char *)zkey, sizeof(zkey), "", 0);
        b->mark_sweep = true;
    }
    if (!old) {
        b->used_delta += (int64_t)blob->size;
        b->blobs_delta += 1;
    }
}

static void uploader_put(struct store_batch *b,
                         const unsigned char digest[STORE_DIGEST_LEN],
                         const char *uid)
{
    unsigned char key[2 + UID_MAX + STORE_DIGEST_LEN];
    size_t ulen = strnlen(uid, UID_MAX);

    key[0] = 'a';
    memcpy(key + 1, uid, ulen);
    key[1 + ulen] = '\0';
    memcpy(key + 2 + ulen, digest, STORE_DIGEST_LEN);
    rocksdb_writebatch_put(b->wb, (const char *)key,
                           2 + ulen + STORE_DIGEST_LEN, "", 0);
    key[0] = 'A';
    memcpy(key + 1, digest, STORE_DIGEST_LEN);
    memcpy(key + 1 + STORE_DIGEST_LEN, uid, ulen);
    rocksdb_writebatch_put(b->wb, (const char *)key,
                           1 + STORE_DIGEST_LEN + ulen, "", 0);
}

int store_batch_blob_delete(struct store_batch *b,
                            const struct store_blob *blob,
                            struct blobd_error *err)
{
    unsigned char key[2 + UID_MAX + STORE_DIGEST_LEN];
    unsigned char prefix[1 + STORE_DIGEST_LEN];
    struct store_iter *it;

    if (b->unlink_count == b->unlink_cap) {
        size_t cap = b->unlink_cap ? b->unlink_cap * 2 : 16;
        void *grown = realloc(b->unlink, cap * sizeof(*b->unlink));
        if (!grown)
            return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
        b->unlink = grown;
        b->unlink_cap = cap;
    }
    memcpy(b->unlink[b->unlink_count++], blob->digest, STORE_DIGEST_LEN);

    blob_key(blob->digest, key);
    rocksdb_writebatch_delete(b->wb, (const char *)key, 1 + STORE_DIGEST_LEN);
    if (blob->refs == 0) {
        unref_key(blob, key);
        rocksdb_writebatch_delete(b->wb, (const char *)key,
                                  9 + STORE_DIGEST_LEN);
    }

    prefix[0] = 'A';
    memcpy(prefix + 1, blob->digest, STORE_DIGEST_LEN);
    it = store_iter_new(b->c, prefix, sizeof(prefix));
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen, ulen;
        const char *ikey = store_iter_key(it, &klen);

        rocksdb_writebatch_delete(b->wb, ikey, klen);
        ulen = klen - sizeof(prefix);
        if (ulen > UID_MAX)
            continue;
        key[0] = 'a';
        memcpy(key + 1, ikey + sizeof(prefix), ulen);
        key[1 + ulen] = '\0';
        memcpy(key + 2 + ulen, blob->digest, STORE_DIGEST_LEN);
        rocksdb_writebatch_delete(b->wb, (const char *)key,
                                  2 + ulen + STORE_DIGEST_LEN);
    }
    store_iter_free(it);
    b->used_delta -= (int64_t)blob->size;
    b->blobs_delta -= 1;
    return BLOBD_OK;
}

int store_blob_open(struct store_contract *c,
                    const unsigned char digest[STORE_DIGEST_LEN], int *fd,
                    struct blobd_error *err)
{
    char path[PATH_MAX];

    store_blob_path(c, digest, path, sizeof(path));
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT)
            return blobd_fail(err, BLOBD_ENOTFOUND, "blob not found");
        return store_errno_fail(err, errno, "open", path);
    }
    return BLOBD_OK;
}

bool store_blob_uploaded_by(struct store_contract *c,
                            const unsigned char digest[STORE_DIGEST_LEN],
                            const char *uid)
{
    unsigned char key[2 + UID_MAX + STORE_DIGEST_LEN];
    size_t ulen = strnlen(uid, UID_MAX + 1);

    if (ulen == 0 || ulen > UID_MAX)
        return false;
    key[0] = 'a';
    memcpy(key + 1, uid, ulen);
    key[1 + ulen] = '\0';
    memcpy(key + 2 + ulen, digest, STORE_DIGEST_LEN);
    return store_exists(c, key, 2 + ulen + STORE_DIGEST_LEN);
}

int store_blob_sweep(struct store_contract *c, int64_t before_ms,
                     size_t limit, bool dry_run, uint64_t *blobs,
                     uint64_t *bytes, struct blobd_error *err)
{
    unsigned char end[9];
    struct store_iter *it;
    struct store_batch *b = NULL;
    size_t done = 0;
    int rc = BLOBD_OK;

    end[0] = 'z';
    store_be64_put(end + 1, (uint64_t)before_ms);
    if (!dry_run) {
        b = store_batch_new(c);
        store_contract_lock(c);
    }
    it = store_iter_new(c, "z", 1);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct store_blob blob;
        size_t klen;
        const char *key = store_iter_key(it, &klen);

        if (klen != 9 + STORE_DIGEST_LEN || memcmp(key, end, 9) >= 0)
            break;
        if (!dry_run && done == limit)
            break;
        if (store_blob_get(c, (const unsigned char *)key + 9, &blob,
                           NULL) != BLOBD_OK)
            continue;
        if (blob.refs != 0 || blob.last_upload_ms >= before_ms)
            continue;
        if (!dry_run) {
            rc = store_batch_blob_delete(b, &blob, err);
            if (rc != BLOBD_OK)
                break;
        }
        done++;
        *blobs += 1;
        *bytes += blob.size;
    }
    store_iter_free(it);
    if (!dry_run) {
        if (rc == BLOBD_OK && done > 0)
            rc = store_batch_commit(b, err);
        store_contract_unlock(c);
        store_batch_free(b);
    }
    return rc;
}

int store_tmp_create(struct store_contract *c, int *fd, char *path,
                     size_t path_size, struct blobd_error *err)
{
    unsigned char rnd[12];
    char hex[25];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return blobd_fail(err, BLOBD_EIO, "random source failed");
    for (size_t i = 0; i < sizeof(rnd); i++) {
        hex[2 * i] = hexdigits[rnd[i] >> 4];
        hex[2 * i + 1] = hexdigits[rnd[i] & 0xf];
    }
    hex[24] = '\0';
    snprintf(path, path_size, "%s/tmp/%s", c->dir, hex);
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return store_errno_fail(err, errno, "open", path);
    return BLOBD_OK;
}

int store_tmp_reserve(struct store_contract *c, int fd, uint64_t size,
                      struct blobd_error *err)
{
    uint64_t unallocated = 0;

    if (size > (uint64_t)INT64_MAX)
        return blobd_fail(err, BLOBD_ETOOLARGE, "upload too large");
    if (size > 0 && fallocate(fd, 0, 0, (off_t)size) < 0) {
        if (errno != EOPNOTSUPP)
            return store_errno_fail(err, errno, "fallocate", c->dir);
        /* Without fallocate, the check below counts the bytes to come. */
        unallocated = size;
    }
    return store_space_check(c->st, unallocated, true, err);
}

/*
 * Create blobs/ab and blobs/ab/cd when missing, fsyncing each parent whose
 * entries changed, so that the renamed file's directory chain is durable.
 */
static int blob_dirs(struct store_contract *c, const char *hex,
                     char *dir, size_t size, struct blobd_error *err)
{
    char parent[PATH_MAX];

    snprintf(parent, sizeof(parent), "%s/blobs", c->dir);
    snprintf(dir, size, "%s/%.2s", parent, hex);
    for (int level = 0; level < 2; level++) {
        if (mkdir(dir, 0700) == 0) {
            if (store_fsync_dir(parent) < 0)
                return store_errno_fail(err, errno, "fsync", parent);
        } else if (errno != EEXIST) {
            return store_errno_fail(err, errno, "mkdir", dir);
        }
        if (level == 0) {
            snprintf(parent, sizeof(parent), "%s", dir);
            snprintf(dir, size, "%s/%.2s", parent, hex + 2);
        }
    }
    return BLOBD_OK;
}

static int commit_existing(struct store_contract *c,
                           const struct store_upload *up,
                           struct store_blob *blob, struct blobd_error *err)
{
    struct store_batch *b = store_batch_new(c);
    struct store_blob old = *blob;
    int rc;

    /* A fresh upload restarts the grace period of an unreferenced blob. */
    if (up->now_ms > blob->last_upload_ms)
        blob->last_upload_ms = up->now_ms;
    store_batch_blob_put(b, &old, blob);
    if (up->uploader)
        uploader_put(b, blob->digest, up->uploader);
    rc = store_batch_commit(b, err);
    store_batch_free(b);
    return rc;
}

static int commit_new(struct store_contract *c, const struct store_upload *up,
                      struct store_blob *blob, struct blobd_error *err)
{
    char hex[2 * STORE_DIGEST_LEN + 1];
    char dir[PATH_MAX], path[PATH_MAX];
    uint64_t quota = store_contract_quota_locked(c);
    struct store_batch *b;
    int rc;

    if (quota_check(quota, c->used_bytes, up->size) != QUOTA_OK) {
        rc = blobd_fail(err, BLOBD_EQUOTA,
                        "upload of %llu bytes exceeds the quota: %llu of "
                        "%llu bytes used", (unsigned long long)up->size,
                        (unsigned long long)c->used_bytes,
                        (unsigned long long)quota);
        err->used_bytes = c->used_bytes;
        err->quota_bytes = quota;
        err->needed_bytes = up->size;
        return rc;
    }
    store_digest_hex(up->digest, hex);
    rc = blob_dirs(c, hex, dir, sizeof(dir), err);
    if (rc != BLOBD_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, hex);
    if (rename(up->tmp_path, path) < 0)
        return store_errno_fail(err, errno, "rename", path);
    if (store_fsync_dir(dir) < 0) {
        rc = store_errno_fail(err, errno, "fsync", dir);
        unlink(path);
        return rc;
    }

    memset(blob, 0, sizeof(*blob));
    memcpy(blob->digest, up->digest, STORE_DIGEST_LEN);
    blob->size = up->size;
    snprintf(blob->media_type, sizeof(blob->media_type), "%s",
             up->media_type ? up->media_type : "application/octet-stream");
    blob->width = up->width;
    blob->height = up->height;
    blob->last_upload_ms = up->now_ms;
    blob->created_ms = up->now_ms;
    b = store_batch_new(c);
    store_batch_blob_put(b, NULL, blob);
    if (up->uploader)
        uploader_put(b, blob->digest, up->uploader);
    rc = store_batch_commit(b, err);
    store_batch_free(b);
    if (rc != BLOBD_OK)
        unlink(path);   /* no record was written: drop the file */
    return rc;
}

int store_blob_commit(struct store_contract *c, const struct store_upload *up,
                      struct store_blob *out, bool *created,
                      struct blobd_error *err)
{
    struct store_blob blob;
    int rc;

    *created = false;
    /* The file's bytes are made durable before the lock is taken, so that
     * uploads of one contract do not wait for each other's fsync. */
    if (fsync(up->tmp_fd) < 0) {
        rc = store_errno_fail(err, errno, "fsync", up->tmp_path);
        unlink(up->tmp_path);
        return rc;
    }

    store_contract_lock(c);
    rc = store_blob_get(c, up->digest, &blob, err);
    if (rc == BLOBD_OK) {
        rc = commit_existing(c, up, &blob, err);
    } else if (rc == BLOBD_ENOTFOUND) {
        rc = commit_new(c, up, &blob, err);
        *created = rc == BLOBD_OK;
    }
    store_contract_unlock(c);

    if (!*created)
        unlink(up->tmp_path);
    if (rc == BLOBD_OK && out)
        *out = blob;
    return rc;
}

bool store_blob_unreferenced_exist(struct store_contract *c)
{
    struct store_iter *it = store_iter_new(c, "z", 1);
    bool any;

    store_iter_seek_first(it);
    any = store_iter_valid(it);
    store_iter_free(it);
    return any;
}
