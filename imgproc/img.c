/*
 * The public entry points of imgproc: format sniffing, default limits, the
 * fit rule, reading the input file and writing the output file. The codecs
 * live in jpeg.c and png.c; this file owns no image data of its own.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img.h"
#include "img_int.h"

static const unsigned char png_signature[8] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
};

/* Input files are read whole; this is the size of the first read buffer
 * when the descriptor is not a regular file and has no known size. */
#define IMG_READ_INITIAL 65536

enum img_format img_sniff(const unsigned char *head, size_t len)
{
    if (len >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
        return IMG_FORMAT_JPEG;
    if (len >= sizeof(png_signature) &&
        memcmp(head, png_signature, sizeof(png_signature)) == 0)
        return IMG_FORMAT_PNG;
    return IMG_FORMAT_NONE;
}

void img_limits_init(struct img_limits *limits)
{
    limits->max_pixels = 100000000;
    limits->max_long_side = 1920;
    limits->max_short_side = 1080;
    limits->max_memory_bytes = (uint64_t)512 << 20;
}

const char *img_strerror(enum img_status status)
{
    switch (status) {
    case IMG_OK:
        return "success";
    case IMG_EUNSUPPORTED:
        return "corrupt, truncated or unsupported image";
    case IMG_ETOOLARGE:
        return "image too large";
    case IMG_ENOMEM:
        return "out of memory";
    case IMG_EIO:
        return "input/output error";
    }
    return "unknown image error";
}

void img_error_set(struct img_error *err, enum img_status status,
                   const char *fmt, ...)
{
    va_list ap;

    err->status = status;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/*
 * Compute the stored size for an upright image of width x height:
 * s = min(1, long / max(w, h), short / min(w, h)), each side rounded to the
 * nearest integer and at least 1. Computed in double, which holds every
 * product of 32-bit sides exactly.
 */
void img_fit_compute(const struct img_limits *limits, uint32_t width,
                     uint32_t height, uint32_t *out_width,
                     uint32_t *out_height)
{
    uint32_t long_side = width > height ? width : height;
    uint32_t short_side = width > height ? height : width;
    double s = 1.0;
    double w, h;

    if (long_side > limits->max_long_side)
        s = (double)limits->max_long_side / long_side;
    if (short_side > limits->max_short_side &&
        (double)limits->max_short_side / short_side < s)
        s = (double)limits->max_short_side / short_side;
    if (s >= 1.0) {
        *out_width = width;
        *out_height = height;
        return;
    }
    w = floor(width * s + 0.5);
    h = floor(height * s + 0.5);
    *out_width = w < 1.0 ? 1 : (uint32_t)w;
    *out_height = h < 1.0 ? 1 : (uint32_t)h;
}

/* Orientations 5 to 8 turn the image by a quarter: width and height swap. */
int img_orientation_swaps(int orientation)
{
    return orientation >= 5 && orientation <= 8;
}

void img_writer_init(struct img_writer *writer, int fd)
{
    writer->fd = fd;
    writer->failed = 0;
    writer->saved_errno = 0;
    writer->used = 0;
}

static void writer_drain(struct img_writer *writer)
{
    size_t done = 0;

    while (done < writer->used && !writer->failed) {
        ssize_t n = write(writer->fd, writer->buf + done,
                          writer->used - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            writer->failed = 1;
            writer->saved_errno = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    writer->used = 0;
}

void img_writer_put(struct img_writer *writer, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0 && !writer->failed) {
        size_t room = sizeof(writer->buf) - writer->used;
        size_t n = len < room ? len : room;

        memcpy(writer->buf + writer->used, p, n);
        writer->used += n;
        p += n;
        len -= n;
        if (writer->used == sizeof(writer->buf))
            writer_drain(writer);
    }
}

enum img_status img_writer_flush(struct img_writer *writer,
                                 struct img_error *err)
{
    writer_drain(writer);
    if (writer->failed) {
        err->sys_errno = writer->saved_errno;
        img_error_set(err, IMG_EIO, "writing the output failed: %s",
                      strerror(writer->saved_errno));
        return IMG_EIO;
    }
    return IMG_OK;
}

/* Read the whole file behind `fd` from offset 0 into a malloc'd buffer that
 * the caller frees. */
static enum img_status input_read(int fd, struct img_input *in,
                                  struct img_error *err)
{
    struct stat st;
    unsigned char *data = NULL;
    size_t cap = IMG_READ_INITIAL;
    size_t len = 0;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    data = malloc(cap);
    if (!data) {
        img_error_set(err, IMG_ENOMEM, "cannot allocate %zu input bytes",
                      cap);
        return IMG_ENOMEM;
    }
    for (;;) {
        ssize_t n;

        if (len == cap) {
            unsigned char *bigger = realloc(data, cap * 2);

            if (!bigger) {
                free(data);
                img_error_set(err, IMG_ENOMEM,
                              "cannot allocate %zu input bytes", cap * 2);
                return IMG_ENOMEM;
            }
            data = bigger;
            cap *= 2;
        }
        n = pread(fd, data + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err->sys_errno = errno;
            img_error_set(err, IMG_EIO, "reading the input failed: %s",
                          strerror(errno));
            free(data);
            return IMG_EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    in->data = data;
    in->len = len;
    return IMG_OK;
}

enum img_status img_process(int in_fd, int out_fd,
                            const struct img_limits *limits,
                            struct img_result *result, struct img_error *err)
{
    struct img_input in = { NULL, 0 };
    struct img_writer *out = NULL;
    enum img_status status;

    memset(result, 0, sizeof(*result));
    err->status = IMG_OK;
    err->sys_errno = 0;
    err->message[0] = '\0';

    status = input_read(in_fd, &in, err);
    if (status != IMG_OK)
        return status;

    out = malloc(sizeof(*out));
    if (!out) {
        status = IMG_ENOMEM;
        img_error_set(err, status, "cannot allocate the output buffer");
        goto out;
    }
    img_writer_init(out, out_fd);

    result->format = img_sniff(in.data, in.len);
    switch (result->format) {
    case IMG_FORMAT_JPEG:
        status = img_jpeg_process(&in, out, limits, result, err);
        break;
    case IMG_FORMAT_PNG:
        status = img_png_process(&in, out, limits, result, err);
        break;
    default:
        status = IMG_EUNSUPPORTED;
        img_error_set(err, status, "input is neither a jpeg nor a png");
        break;
    }
    if (status == IMG_OK)
        status = img_writer_flush(out, err);

out:
    free(out);
    free((void *)in.data);
    return status;
}
