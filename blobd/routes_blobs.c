/*
 * Blob routes: the upload job (media type, image processing, the commit
 * with its quota decision) and downloads with Range and ETag.
 *
 * The upload body has already been streamed to a temporary file and
 * hashed by the HTTP layer; this file decides what is stored.
 */
#include "http_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <magic.h>
#include <openssl/evp.h>

#include "app.h"
#include "chat.h"
#include "img.h"
#include "log.h"

#define MAGIC_PROBE_BYTES (64 * 1024)

/* libmagic handles are not thread-safe: one per worker thread, closed
 * when the thread ends. */
static pthread_key_t magic_key;
static pthread_once_t magic_once = PTHREAD_ONCE_INIT;

static void magic_release(void *cookie)
{
    magic_close(cookie);
}

static void magic_key_init(void)
{
    pthread_key_create(&magic_key, magic_release);
}

static magic_t thread_magic(void)
{
    magic_t m;

    pthread_once(&magic_once, magic_key_init);
    m = pthread_getspecific(magic_key);
    if (m)
        return m;
    m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!m)
        return NULL;
    if (magic_load(m, NULL) != 0) {
        log_error("blobs", "magic_load_failed", "error=\"%s\"",
                  magic_error(m));
        magic_close(m);
        return NULL;
    }
    pthread_setspecific(magic_key, m);
    return m;
}

/* The media type that the first bytes of the file show. */
static void detect_media_type(int fd, char *out, size_t size)
{
    unsigned char *buf = malloc(MAGIC_PROBE_BYTES);
    magic_t m = thread_magic();
    const char *type = NULL;
    ssize_t n = buf ? pread(fd, buf, MAGIC_PROBE_BYTES, 0) : -1;

    if (m && n >= 0)
        type = magic_buffer(m, buf, (size_t)n);
    snprintf(out, size, "%s", type ? type : "application/octet-stream");
    free(buf);
}

static int hash_file(int fd, unsigned char digest[STORE_DIGEST_LEN],
                     uint64_t *size, struct blobd_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[64 * 1024];
    uint64_t total = 0;
    off_t off = 0;
    int rc = BLOBD_OK;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return blobd_fail(err, BLOBD_ENOMEM, "hash context failed");
    }
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = blobd_fail(err, BLOBD_EIO, "reading the processed image "
                            "failed: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += n;
        total += (uint64_t)n;
    }
    if (rc == BLOBD_OK)
        EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    *size = total;
    return rc;
}

static json_t *blob_view(const struct store_blob *blob,
                         uint64_t original_size)
{
    char hex[2 * STORE_DIGEST_LEN + 1];
    json_t *view;

    store_digest_hex(blob->digest, hex);
    view = json_pack("{s:s, s:I, s:s}", "id", hex, "size",
                     (json_int_t)blob->size, "media_type", blob->media_type);
    if (blob->width) {
        json_object_set_new(view, "width", json_integer(blob->width));
        json_object_set_new(view, "height", json_integer(blob->height));
    }
    json_object_set_new(view, "original_size",
                        json_integer((json_int_t)original_size));
    return view;
}

struct processed {
    int fd;
    char path[4096];
    struct img_result result;
};

/* Run imgproc on the upload into a second temporary file. */
static int process_image(struct route_request *req, struct upload_input *in,
                         struct processed *out, struct blobd_error *err)
{
    struct img_limits limits;
    struct img_error ierr;
    struct timespec t0, t1;
    enum img_status st;
    int rc;

    rc = store_tmp_create(req->caller.contract, &out->fd, out->path,
                          sizeof(out->path), err);
    if (rc != BLOBD_OK)
        return rc;
    img_limits_init(&limits);
    limits.max_pixels = req->app->cfg->limits.max_image_pixels;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = img_process(in->fd, out->fd, &limits, &out->result, &ierr);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    http_metrics.image_rescales++;
    http_metrics.image_rescale_us +=
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                   (t1.tv_nsec - t0.tv_nsec) / 1000);
    if (st == IMG_OK)
        return BLOBD_OK;

    close(out->fd);
    unlink(out->path);
    out->fd = -1;
    switch (st) {
    case IMG_EUNSUPPORTED:
    case IMG_ETOOLARGE:
        http_metrics.image_rejections++;
        return blobd_fail(err, BLOBD_EIMAGE, "the image cannot be stored: %s",
                          ierr.message);
    case IMG_EIO:
        if (ierr.sys_errno == ENOSPC || ierr.sys_errno == EDQUOT)
            return blobd_fail(err, BLOBD_ENOSPC, "the server's disk is full");
        return blobd_fail(err, BLOBD_EIO, "image processing failed: %s",
                          ierr.message);
    case IMG_ENOMEM:
        blobd_fail(err, BLOBD_EOVERLOAD,
                   "not enough memory to process the image");
        err->retry_after = 5;
        return BLOBD_EOVERLOAD;
    case IMG_OK:
        break;
    }
    return blobd_fail(err, BLOBD_EIO, "image processing failed");
}

void routes_blobs_upload(struct route_request *req, struct route_reply *rep,
                         struct upload_input *in)
{
    struct store_contract *c = req->caller.contract;
    struct processed img = {.fd = -1};
    struct store_upload up = {0};
    struct store_blob blob;
    struct blobd_error err;
    char media[STORE_MEDIA_TYPE_MAX];
    enum img_format fmt;
    bool created;
    int rc;

    http_metrics.upload_bytes += in->size;
    fmt = img_sniff(in->head, in->head_len);
    up.uploader = req->caller.uid;
    if (fmt != IMG_FORMAT_NONE) {
        rc = process_image(req, in, &img, &err);
        if (rc != BLOBD_OK) {
            route_reply_error(rep, &err);
            return;
        }
        rc = hash_file(img.fd, up.digest, &up.size, &err);
        if (rc != BLOBD_OK) {
            close(img.fd);
            unlink(img.path);
            route_reply_error(rep, &err);
            return;
        }
        up.tmp_path = img.path;
        up.tmp_fd = img.fd;
        up.media_type = fmt == IMG_FORMAT_JPEG ? "image/jpeg" : "image/png";
        up.width = img.result.width;
        up.height = img.result.height;
    } else {
        detect_media_type(in->fd, media, sizeof(media));
        up.tmp_path = in->tmp_path;
        up.tmp_fd = in->fd;
        memcpy(up.digest, in->digest, STORE_DIGEST_LEN);
        up.size = in->size;
        up.media_type = media;
    }
    up.now_ms = store_now_ms();

    rc = store_blob_commit(c, &up, &blob, &created, &err);
    if (img.fd >= 0)
        close(img.fd);
    if (rc != BLOBD_OK) {
        if (rc == BLOBD_EQUOTA)
            http_metrics.quota_rejections++;
        route_reply_error(rep, &err);
        return;
    }
    http_metrics.uploads++;
    if (!created)
        http_metrics.uploads_deduplicated++;
    route_reply_json(rep, 201, blob_view(&blob, in->size));
}

/* ---- downloads ---- */

static bool media_inline(const char *type)
{
    static const char *const inline_types[] = {
        "image/jpeg", "image/png", "image/gif", "image/webp",
        "application/pdf",
    };

    for (size_t i = 0; i < sizeof(inline_types) / sizeof(inline_types[0]);
         i++) {
        if (strcmp(type, inline_types[i]) == 0)
            return true;
    }
    return false;
}

static bool etag_matches(const char *header, const char *etag)
{
    const char *p = header;
    size_t len = strlen(etag);

    if (strcmp(header, "*") == 0)
        return true;
    while ((p = strstr(p, etag)) != NULL) {
        if (p[len] == '\0' || p[len] == ',' || p[len] == ' ')
            return true;
        p += len;
    }
    return false;
}

void routes_blobs_get(struct route_request *req, struct route_reply *rep)
{
    struct store_contract *c = req->caller.contract;
    unsigned char digest[STORE_DIGEST_LEN];
    char hex[2 * STORE_DIGEST_LEN + 1], etag[2 * STORE_DIGEST_LEN + 3];
    char value[96];
    struct store_blob blob;
    struct blobd_error err;
    uint64_t first = 0, last = 0;
    enum route_range_kind kind;
    int fd;

    if (!store_digest_parse(req->params[0], digest) ||
        (!store_blob_uploaded_by(c, digest, req->caller.uid) &&
         !chat_blob_readable(c, req->caller.uid, digest))) {
        route_reply_fail(rep, BLOBD_ENOTFOUND, "blob not found");
        return;
    }
    if (store_blob_get(c, digest, &blob, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    store_digest_hex(digest, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    route_reply_header(rep, "ETag", etag);
    route_reply_header(rep, "Cache-Control", "private, immutable");
    route_reply_header(rep, "X-Content-Type-Options", "nosniff");

    if (req->if_none_match && etag_matches(req->if_none_match, etag)) {
        route_reply_empty(rep, 304);
        return;
    }
    kind = route_range_parse(req->range, blob.size, &first, &last);
    if (kind == RANGE_UNSATISFIABLE) {
        snprintf(value, sizeof(value), "bytes */%llu",
                 (unsigned long long)blob.size);
        route_reply_header(rep, "Content-Range", value);
        route_reply_fail(rep, BLOBD_ERANGE,
                         "range %s is outside the %llu bytes of the blob",
                         req->range, (unsigned long long)blob.size);
        return;
    }
    if (store_blob_open(c, digest, &fd, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    route_reply_header(rep, "Content-Type", blob.media_type);
    route_reply_header(rep, "Content-Disposition",
                       media_inline(blob.media_type) ? "inline"
                                                     : "attachment");
    route_reply_header(rep, "Accept-Ranges", "bytes");
    rep->fd = fd;
    if (kind == RANGE_ONE) {
        snprintf(value, sizeof(value), "bytes %llu-%llu/%llu",
                 (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)blob.size);
        route_reply_header(rep, "Content-Range", value);
        rep->fd_offset = first;
        rep->fd_length = last - first + 1;
        rep->status = 206;
    } else {
        rep->fd_offset = 0;
        rep->fd_length = blob.size;
        rep->status = 200;
    }
}
