/*
 * Private interface between the files of imgproc: the input buffer, the
 * output writer, 8-bit pixel buffers, the streaming resampler, EXIF
 * orientation and the two codecs. Nothing here is visible to the daemon.
 */
#ifndef IMGPROC_IMG_INT_H
#define IMGPROC_IMG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "img.h"

/* Bytes written to the output in one write(2) call at most. */
#define IMG_WRITE_CHUNK 65536

/* JPEG output quality. At 85 the encoding alone already scored SSIM 0.974
 * on a noisy 12 MP photo stored at 1440x1080; at 90 it scored 0.980. */
#define IMG_JPEG_QUALITY 90

/* zlib level of PNG output: level 3 is several times faster than the
 * default 6 on photographs and screenshots and costs a few per cent of
 * size. */
#define IMG_PNG_ZLIB_LEVEL 3

/* Largest ancillary PNG chunk libpng may allocate (its own default). */
#define IMG_PNG_CHUNK_MAX 8000000u

/* Most ancillary chunks of one kind (sPLT, unknown) libpng may keep. */
#define IMG_PNG_CHUNK_CACHE 128u

/* The whole input file, read into memory by img_process. */
struct img_input {
    const unsigned char *data;
    size_t len;
};

/* Buffered writer to the output file descriptor. After the first failed
 * write every further call does nothing and `failed` stays set. */
struct img_writer {
    int fd;
    int failed;
    int saved_errno;
    size_t used;
    unsigned char buf[IMG_WRITE_CHUNK];
};

/* An 8-bit image with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
 * interleaved channels; `data` is owned and freed by img_pixels_release. */
struct img_pixels {
    uint32_t width;
    uint32_t height;
    unsigned channels;
    size_t stride;
    unsigned char *data;
};

struct img_resampler;

/* Receives the decoded rows of an image in stored orientation, top to
 * bottom, and builds the output image of the target size from them:
 * resampled with Lanczos-3 when the size differs, copied otherwise.
 * img_sink_init fails with IMG_ETOOLARGE when the resampler would need
 * more than `max_bytes`. */
struct img_sink {
    struct img_pixels out;
    struct img_resampler *resampler;    /* NULL when sizes are equal */
    uint32_t in_width;
    uint32_t in_height;
    uint32_t rows_pushed;
};

/* img.c */
void img_error_set(struct img_error *err, enum img_status status,
                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void img_fit_compute(const struct img_limits *limits, uint32_t width,
                     uint32_t height, uint32_t *out_width,
                     uint32_t *out_height);
int img_orientation_swaps(int orientation);

void img_writer_init(struct img_writer *writer, int fd);
void img_writer_put(struct img_writer *writer, const void *data, size_t len);
enum img_status img_writer_flush(struct img_writer *writer,
                                 struct img_error *err);

/* pixels.c */
enum img_status img_pixels_alloc(struct img_pixels *pixels, uint32_t width,
                                 uint32_t height, unsigned channels,
                                 struct img_error *err);
void img_pixels_release(struct img_pixels *pixels);
enum img_status img_pixels_orient(struct img_pixels *pixels,
                                  int orientation, struct img_error *err);

/* resample.c */
enum img_status img_sink_init(struct img_sink *sink, uint32_t in_width,
                              uint32_t in_height, uint32_t out_width,
                              uint32_t out_height, unsigned channels,
                              int has_alpha, uint64_t max_bytes,
                              struct img_error *err);
void img_sink_push(struct img_sink *sink, const unsigned char *row);
void img_sink_release(struct img_sink *sink);

/* exif.c: orientation 1..8 from a TIFF structure (the payload of a JPEG
 * APP1 "Exif" segment after its 6-byte header, or of a PNG eXIf chunk);
 * 1 when the data is absent, unreadable or out of range. */
int img_exif_orientation(const unsigned char *tiff, size_t len);

/* jpeg.c and png.c */
enum img_status img_jpeg_process(const struct img_input *in,
                                 struct img_writer *out,
                                 const struct img_limits *limits,
                                 struct img_result *result,
                                 struct img_error *err);
enum img_status img_png_process(const struct img_input *in,
                                struct img_writer *out,
                                const struct img_limits *limits,
                                struct img_result *result,
                                struct img_error *err);

#endif
