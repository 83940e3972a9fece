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
 * What is stored: an image that already fits, is upright (EXIF orientation
 * 1 or none) and needs no conversion is copied without re-encoding; only
 * its metadata goes (JPEG APP1, APP13 and COM segments and anything after
 * EOI; PNG text, time, eXIf, APNG and private chunks). A JPEG that only
 * needs a turn is turned losslessly when its size is a whole number of
 * MCUs. Every other image is decoded (JPEG with DCT scaling), converted to
 * 8-bit gray, gray + alpha, RGB or RGBA, resampled with Lanczos-3, turned
 * upright and encoded in its own format: JPEG at quality 90 with 4:2:0
 * chroma, PNG at zlib level 3. CMYK and YCCK JPEGs become sRGB through
 * their embedded CMYK profile (lcms2), or by the naive formula
 * R = (1 - C)(1 - K) when there is none. An ICC profile is kept when its
 * colour space matches the stored pixels. PNG gAMA, cHRM, sRGB and iCCP
 * are carried over, never applied. docs/images.md has the details.
 *
 * Limits: the pixel count declared by the header is checked, in 64 bits,
 * against `max_pixels` before the decoder allocates image memory, and
 * libjpeg's working memory (progressive coefficient buffers) is capped at
 * `max_memory_bytes`, as is the whole-image buffer that an interlaced PNG
 * needs. Not decoded, so rejected with IMG_EUNSUPPORTED: 12-bit and
 * lossless JPEGs (libjpeg-turbo 2.1.5 has no API for them), truncated
 * files and files whose compressed data is damaged. An animated PNG is
 * stored as its static default image (libpng 1.6 reads no APNG frames).
 * EXIF orientation is read from JPEG APP1 and PNG eXIf only, never XMP.
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
    IMG_ETOOLARGE,          /* over max_pixels by its header, or needing
                               more than max_memory_bytes to decode or
                               resample: 415 */
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
