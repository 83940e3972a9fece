/*
 * imgproc: decode, orient, rescale and encode JPEG (libjpeg-turbo) and PNG
 * (libpng) uploads so that they fit full HD.
 *
 * The module knows nothing of HTTP, contracts or quotas. It reads from and
 * writes to file descriptors that the caller hands in and does no other
 * I/O. Every function is reentrant: uploads are processed on several worker
 * threads at once, each with its own call.
 *
 * Fit rule: with W x H the size after EXIF orientation is applied,
 * s = min(1, 1920 / max(W, H), 1080 / min(W, H)) and the output is
 * round(W * s) x round(H * s), each side at least 1 pixel.
 *
 * Limits: the pixel count declared by the header is checked, in 64 bits,
 * against `max_pixels` before the decoder allocates image memory.
 */
#ifndef IMGPROC_IMG_H
#define IMGPROC_IMG_H

#include <stddef.h>
#include <stdint.h>

enum img_format {
    IMG_FORMAT_NONE = 0,    /* not a JPEG or PNG: stored byte for byte */
    IMG_FORMAT_JPEG,
    IMG_FORMAT_PNG,
};

enum img_status {
    IMG_OK = 0,
    IMG_EUNSUPPORTED,       /* corrupt, truncated or undecodable: 415 */
    IMG_ETOOLARGE,          /* header declares more than max_pixels: 415 */
    IMG_ENOMEM,             /* allocation failed */
    IMG_EIO,                /* reading the input or writing the output failed */
};

struct img_limits {
    uint64_t max_pixels;        /* from [limits] max_image_pixels */
    uint32_t max_long_side;     /* 1920 */
    uint32_t max_short_side;    /* 1080 */
    uint64_t max_memory_bytes;  /* cap on decoder working memory */
};

struct img_result {
    enum img_format format;
    uint32_t width;             /* stored size, upright */
    uint32_t height;
    int reencoded;              /* 0 when only metadata was removed */
};

struct img_error {
    enum img_status status;
    int sys_errno;              /* for IMG_EIO */
    char message[256];          /* lowercase, no final period */
};

/* Tell the format from the first bytes: FF D8 FF is JPEG, the 8-byte PNG
 * signature is PNG, anything else IMG_FORMAT_NONE. */
enum img_format img_sniff(const unsigned char *head, size_t len);

/* Fill `limits` with the defaults (100 MP, 1920 x 1080, 512 MiB). */
void img_limits_init(struct img_limits *limits);

/*
 * Process the image read from `in_fd` (positioned anywhere; the whole file
 * is read from offset 0) and write the bytes to store into `out_fd`, which
 * must be empty. The output is upright, fits the limits, has no EXIF, XMP
 * or comment metadata, keeps an ICC profile that describes its pixels, and
 * is a deterministic function of the input bytes. Returns IMG_OK or the
 * error status, with `err` filled; on error `out_fd` holds nothing useful.
 */
enum img_status img_process(int in_fd, int out_fd,
                            const struct img_limits *limits,
                            struct img_result *result, struct img_error *err);

/* Text for a status, for logs. */
const char *img_strerror(enum img_status status);

#endif
