/*
 * Unit tests of imgproc on generated images (made here with TurboJPEG and
 * libpng) and on a few files of the shared image corpus, which is found
 * through $BLOBD_CORPUS (default ../shared/corpus/images, relative to the
 * repository root). Corpus tests are skipped when the folder is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <turbojpeg.h>

#include "img.h"

/* Output of one img_process call. */
struct run {
    enum img_status status;
    struct img_result result;
    struct img_error err;
    unsigned char *out;
    size_t out_len;
};

static int memfd_with(const void *data, size_t len)
{
    int fd = memfd_create("img", 0);

    assert_true(fd >= 0);
    if (len > 0)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static void run_bytes(const void *data, size_t len,
                      const struct img_limits *limits, struct run *r)
{
    struct img_limits defaults;
    int in_fd = memfd_with(data, len);
    int out_fd = memfd_with(NULL, 0);
    off_t size;

    if (!limits) {
        img_limits_init(&defaults);
        limits = &defaults;
    }
    memset(r, 0, sizeof(*r));
    r->status = img_process(in_fd, out_fd, limits, &r->result, &r->err);
    size = lseek(out_fd, 0, SEEK_END);
    assert_true(size >= 0);
    r->out_len = (size_t)size;
    r->out = malloc(r->out_len + 1);
    assert_non_null(r->out);
    assert_int_equal(pread(out_fd, r->out, r->out_len, 0),
                     (ssize_t)r->out_len);
    close(in_fd);
    close(out_fd);
}

static void run_release(struct run *r)
{
    free(r->out);
    r->out = NULL;
}

/* Deterministic pseudo-random noise, so that images look photographic. */
static uint32_t noise_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 24;
}

/*
 * An RGB test picture: four quadrants of distinct colours (red top left,
 * green top right, blue bottom left, white bottom right) with mild noise,
 * so that orientation can be read back from the corners.
 */
static unsigned char *picture_rgb(int w, int h, int channels)
{
    static const unsigned char quad[4][3] = {
        { 220, 30, 30 }, { 30, 200, 40 }, { 30, 40, 210 }, { 240, 240, 240 },
    };
    unsigned char *px = malloc((size_t)w * h * channels);
    uint32_t seed = 12345;
    int x, y, c;

    assert_non_null(px);
    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {
            int q = (y >= h / 2) * 2 + (x >= w / 2);
            unsigned char *p = px + ((size_t)y * w + x) * channels;

            for (c = 0; c < 3 && c < channels; c++) {
                int v = quad[q][c] + (int)(noise_next(&seed) % 17) - 8;

                p[c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            if (channels == 4)
                p[3] = (unsigned char)(x < w / 8 ? 0 : 255);
        }
    }
    return px;
}

static unsigned char *jpeg_make(int w, int h, int progressive, size_t *len)
{
    tjhandle tj = tjInitCompress();
    unsigned char *px = picture_rgb(w, h, 3);
    unsigned char *jpeg = NULL;
    unsigned long jpeg_len = 0;
    unsigned char *copy;

    assert_non_null(tj);
    assert_int_equal(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpeg,
                                 &jpeg_len, TJSAMP_420, 90,
                                 progressive ? TJFLAG_PROGRESSIVE : 0), 0);
    copy = malloc(jpeg_len);
    assert_non_null(copy);
    memcpy(copy, jpeg, jpeg_len);
    *len = jpeg_len;
    tjFree(jpeg);
    tjDestroy(tj);
    free(px);
    return copy;
}

/* Options of jpeg_make_lib, for encodings TurboJPEG cannot produce. */
struct jpeg_options {
    int cmyk;                   /* Adobe CMYK (inverted), one flat colour */
    const unsigned char *cmyk_value;    /* C, M, Y, K ink levels */
    const unsigned char *icc;
    unsigned int icc_len;
    int arithmetic;
    int restart_interval;       /* in MCU rows; 0 for none */
};

/* Encode the test picture (or a flat CMYK colour) with plain libjpeg. */
static unsigned char *jpeg_make_lib(int w, int h,
                                    const struct jpeg_options *opt,
                                    size_t *len)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *px = picture_rgb(w, h, 3);
    unsigned char *row = malloc((size_t)w * 4);
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    unsigned char *copy;
    int x;

    assert_non_null(row);
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem, &mem_len);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = opt->cmyk ? 4 : 3;
    cinfo.in_color_space = opt->cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    cinfo.arith_code = opt->arithmetic ? TRUE : FALSE;
    cinfo.restart_in_rows = opt->restart_interval;
    jpeg_start_compress(&cinfo, TRUE);
    if (opt->icc)
        jpeg_write_icc_profile(&cinfo, opt->icc, opt->icc_len);
    for (x = 0; opt->cmyk && x < w; x++) {
        int c;

        /* Adobe CMYK stores 255 minus the ink level. */
        for (c = 0; c < 4; c++)
            row[x * 4 + c] = (unsigned char)(255 - opt->cmyk_value[c]);
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW r = opt->cmyk ? row
                   : px + (size_t)cinfo.next_scanline * w * 3;

        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    copy = malloc(mem_len);
    assert_non_null(copy);
    memcpy(copy, mem, mem_len);
    *len = mem_len;
    free(mem);
    free(row);
    free(px);
    return copy;
}

/* Insert a segment right after SOI. */
static unsigned char *jpeg_insert(unsigned char *jpeg, size_t *len,
                                  const unsigned char *seg, size_t seg_len)
{
    unsigned char *out = malloc(*len + seg_len);

    assert_non_null(out);
    memcpy(out, jpeg, 2);
    memcpy(out + 2, seg, seg_len);
    memcpy(out + 2 + seg_len, jpeg + 2, *len - 2);
    *len += seg_len;
    free(jpeg);
    return out;
}

/* APP1 Exif segment holding only an Orientation tag (big-endian TIFF). */
static size_t exif_segment(unsigned char *seg, int orientation)
{
    static const unsigned char head[] = {
        0xff, 0xe1, 0x00, 34, 'E', 'x', 'i', 'f', 0, 0,
        'M', 'M', 0, 42, 0, 0, 0, 8,
        0, 1,                   /* one entry */
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 0, 0,             /* no next IFD */
    };

    memcpy(seg, head, sizeof(head));
    seg[29] = (unsigned char)orientation;
    return sizeof(head);
}

static int jpeg_has_marker(const unsigned char *d, size_t len, int marker)
{
    size_t pos = 2;

    while (pos + 4 <= len && d[pos] == 0xff) {
        int m = d[pos + 1];

        if (m == marker)
            return 1;
        if (m == 0xda)
            return 0;
        pos += 2 + ((size_t)d[pos + 2] << 8 | d[pos + 3]);
    }
    return 0;
}

/* Decode a JPEG to RGB with TurboJPEG; caller frees. */
static unsigned char *jpeg_pixels(const unsigned char *d, size_t len, int *w,
                                  int *h)
{
    tjhandle tj = tjInitDecompress();
    int subsamp, colorspace;
    unsigned char *px;

    assert_non_null(tj);
    assert_int_equal(tjDecompressHeader3(tj, d, len, w, h, &subsamp,
                                         &colorspace), 0);
    px = malloc((size_t)*w * *h * 3);
    assert_non_null(px);
    assert_int_equal(tjDecompress2(tj, d, len, px, *w, 0, *h, TJPF_RGB, 0),
                     0);
    tjDestroy(tj);
    return px;
}

/* Colour of the pixel at (x, y) rounded to the nearest quadrant colour
 * index (0 red, 1 green, 2 blue, 3 white). */
static int quadrant_at(const unsigned char *px, int w, int x, int y)
{
    const unsigned char *p = px + ((size_t)y * w + x) * 3;

    if (p[0] > 180 && p[1] > 180)
        return 3;
    if (p[0] > 150)
        return 0;
    if (p[1] > 150)
        return 1;
    return 2;
}

static void jpeg_rescaled_baseline(void **state)
{
    size_t len;
    unsigned char *jpeg = jpeg_make(4000, 3000, 0, &len);
    struct run r;
    int w, h;
    unsigned char *px;

    (void)state;
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.format, IMG_FORMAT_JPEG);
    assert_int_equal(r.result.width, 1440);
    assert_int_equal(r.result.height, 1080);
    assert_true(r.result.reencoded);
    assert_int_equal(img_sniff(r.out, r.out_len), IMG_FORMAT_JPEG);
    px = jpeg_pixels(r.out, r.out_len, &w, &h);
    assert_int_equal(w, 1440);
    assert_int_equal(h, 1080);
    assert_int_equal(quadrant_at(px, w, 10, 10), 0);
    assert_int_equal(quadrant_at(px, w, w - 10, h - 10), 3);
    free(px);
    run_release(&r);
    free(jpeg);
}

static void jpeg_rescaled_progressive(void **state)
{
    size_t len;
    unsigned char *jpeg = jpeg_make(2000, 4000, 1, &len);
    struct run r;

    (void)state;
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.width, 960);
    assert_int_equal(r.result.height, 1920);
    run_release(&r);
    free(jpeg);
}

static void jpeg_deterministic(void **state)
{
    size_t len;
    unsigned char *jpeg = jpeg_make(3000, 2000, 0, &len);
    struct run a, b;

    (void)state;
    run_bytes(jpeg, len, NULL, &a);
    run_bytes(jpeg, len, NULL, &b);
    assert_int_equal(a.status, IMG_OK);
    assert_int_equal(a.out_len, b.out_len);
    assert_memory_equal(a.out, b.out, a.out_len);
    run_release(&a);
    run_release(&b);
    free(jpeg);
}

/*
 * For each EXIF orientation, the quadrant that must end up at the top left
 * of the upright image (stored picture: 0 top left, 1 top right, 2 bottom
 * left, 3 bottom right).
 */
static const int upright_top_left[9] = { 0, 0, 1, 3, 2, 0, 2, 3, 1 };

static void orientation_check(int w, int h, int orientation)
{
    size_t len, seg_len;
    unsigned char seg[64];
    unsigned char *jpeg = jpeg_make(w, h, 0, &len);
    struct run r;
    int ow, oh, up_w, up_h;
    unsigned char *px;

    seg_len = exif_segment(seg, orientation);
    jpeg = jpeg_insert(jpeg, &len, seg, seg_len);
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    up_w = orientation >= 5 ? h : w;
    up_h = orientation >= 5 ? w : h;
    px = jpeg_pixels(r.out, r.out_len, &ow, &oh);
    assert_int_equal((uint32_t)ow, r.result.width);
    assert_int_equal((uint32_t)oh, r.result.height);
    assert_int_equal(ow > oh, up_w > up_h);
    assert_int_equal(quadrant_at(px, ow, 4, 4),
                     upright_top_left[orientation]);
    assert_int_equal(quadrant_at(px, ow, ow - 5, oh - 5),
                     3 - upright_top_left[orientation]);
    assert_false(jpeg_has_marker(r.out, r.out_len, 0xe1));
    free(px);
    run_release(&r);
    free(jpeg);
}

static void jpeg_orientations_resized(void **state)
{
    int o;

    (void)state;
    for (o = 1; o <= 8; o++)
        orientation_check(2400, 1600, o);
}

static void jpeg_orientations_small(void **state)
{
    int o;

    (void)state;
    /* 320x240 is MCU-aligned (lossless turn); 300x200 is not. */
    for (o = 1; o <= 8; o++) {
        orientation_check(320, 240, o);
        orientation_check(300, 200, o);
    }
}

static void jpeg_fit_after_orientation(void **state)
{
    size_t len, seg_len;
    unsigned char seg[64];
    unsigned char *jpeg = jpeg_make(1800, 1200, 0, &len);
    struct run r;

    (void)state;
    seg_len = exif_segment(seg, 6);
    jpeg = jpeg_insert(jpeg, &len, seg, seg_len);
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.width, 1080);
    assert_int_equal(r.result.height, 1620);
    run_release(&r);
    free(jpeg);
}

static void jpeg_metadata_stripped(void **state)
{
    static const unsigned char com[] = {
        0xff, 0xfe, 0x00, 0x07, 'h', 'e', 'l', 'l', 'o',
    };
    size_t len, seg_len;
    unsigned char seg[64];
    unsigned char *jpeg = jpeg_make(640, 480, 0, &len);
    struct run r;

    (void)state;
    jpeg = jpeg_insert(jpeg, &len, com, sizeof(com));
    seg_len = exif_segment(seg, 1);
    jpeg = jpeg_insert(jpeg, &len, seg, seg_len);
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_false(r.result.reencoded);
    assert_int_equal(r.result.width, 640);
    assert_false(jpeg_has_marker(r.out, r.out_len, 0xe1));
    assert_false(jpeg_has_marker(r.out, r.out_len, 0xfe));
    /* Only the two segments are gone; the image data is untouched. */
    assert_int_equal(r.out_len, len - seg_len - sizeof(com));
    run_release(&r);
    free(jpeg);
}

static void jpeg_trailing_data_dropped(void **state)
{
    size_t len, extra_len;
    unsigned char *jpeg = jpeg_make(320, 240, 0, &len);
    unsigned char *extra = jpeg_make(64, 64, 0, &extra_len);
    unsigned char *both = malloc(len + extra_len);
    struct run r;

    (void)state;
    assert_non_null(both);
    memcpy(both, jpeg, len);
    memcpy(both + len, extra, extra_len);
    run_bytes(both, len + extra_len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.out_len, len);
    run_release(&r);
    free(both);
    free(extra);
    free(jpeg);
}

static void jpeg_truncated_rejected(void **state)
{
    size_t len, small_len;
    unsigned char *jpeg = jpeg_make(2000, 1500, 0, &len);
    unsigned char *small = jpeg_make(320, 240, 1, &small_len);
    struct run r;

    (void)state;
    run_bytes(jpeg, len / 2, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    run_bytes(small, small_len - 100, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    run_bytes(jpeg, 3, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    free(small);
    free(jpeg);
}

static void resample_memory_limit(void **state)
{
    size_t len;
    unsigned char *jpeg = jpeg_make(4000, 3000, 0, &len);
    struct img_limits limits;
    struct run r;

    (void)state;
    img_limits_init(&limits);
    limits.max_memory_bytes = 128 << 10;
    run_bytes(jpeg, len, &limits, &r);
    assert_int_equal(r.status, IMG_ETOOLARGE);
    run_release(&r);
    free(jpeg);
}

static void jpeg_arithmetic_restarts(void **state)
{
    struct jpeg_options opt = { 0, NULL, NULL, 0, 1, 2 };
    size_t len;
    unsigned char *jpeg = jpeg_make_lib(2400, 1800, &opt, &len);
    struct run r;
    int w, h;
    unsigned char *px;

    (void)state;
    run_bytes(jpeg, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.width, 1440);
    assert_int_equal(r.result.height, 1080);
    px = jpeg_pixels(r.out, r.out_len, &w, &h);
    assert_int_equal(quadrant_at(px, w, 10, 10), 0);
    assert_int_equal(quadrant_at(px, w, w - 10, h - 10), 3);
    free(px);
    run_release(&r);
    run_bytes(jpeg, len - 2000, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    free(jpeg);
}

/* Adobe CMYK for pure red ink (M + Y) must come out red, not as a
 * negative, with and without an embedded CMYK profile. */
static void cmyk_check(const unsigned char *icc, unsigned int icc_len,
                       int min_red, int max_other)
{
    static const unsigned char red_ink[4] = { 0, 255, 255, 0 };
    struct jpeg_options opt = { 1, red_ink, icc, icc_len, 0, 0 };
    int sizes[2][2] = { { 64, 48 }, { 2400, 1600 } };
    int i;

    for (i = 0; i < 2; i++) {
        size_t len;
        unsigned char *jpeg = jpeg_make_lib(sizes[i][0], sizes[i][1], &opt,
                                            &len);
        struct run r;
        unsigned char *px;
        int w, h;

        run_bytes(jpeg, len, NULL, &r);
        assert_int_equal(r.status, IMG_OK);
        assert_true(r.result.reencoded);
        px = jpeg_pixels(r.out, r.out_len, &w, &h);
        if (px[0] < min_red || px[1] > max_other || px[2] > max_other)
            fail_msg("cmyk red came out as %d,%d,%d", px[0], px[1], px[2]);
        /* The output is sRGB: no CMYK profile may be left in it. */
        assert_false(jpeg_has_marker(r.out, r.out_len, 0xe2));
        free(px);
        run_release(&r);
        free(jpeg);
    }
}

static void cmyk_naive_converted(void **state)
{
    (void)state;
    cmyk_check(NULL, 0, 240, 15);
}

static void cmyk_profile_converted(void **state)
{
    const char *path = "/usr/share/color/icc/ghostscript/default_cmyk.icc";
    FILE *f = fopen(path, "rb");
    unsigned char *icc;
    long len;

    (void)state;
    if (!f)
        skip();
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    rewind(f);
    icc = malloc((size_t)len);
    assert_non_null(icc);
    assert_int_equal(fread(icc, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    /* A press profile maps full magenta + yellow to a duller red. */
    cmyk_check(icc, (unsigned int)len, 180, 110);
    free(icc);
}

static void jpeg_pixel_limit(void **state)
{
    size_t len;
    unsigned char *jpeg = jpeg_make(320, 240, 0, &len);
    struct img_limits limits;
    struct run r;

    (void)state;
    img_limits_init(&limits);
    limits.max_pixels = 320 * 240 - 1;
    run_bytes(jpeg, len, &limits, &r);
    assert_int_equal(r.status, IMG_ETOOLARGE);
    run_release(&r);
    limits.max_pixels = 320 * 240;
    run_bytes(jpeg, len, &limits, &r);
    assert_int_equal(r.status, IMG_OK);
    run_release(&r);
    free(jpeg);
}

/* In-memory PNG writer for generated test images. */
struct png_mem {
    unsigned char *data;
    size_t len;
};

static void png_mem_write(png_structp png, png_bytep data, size_t len)
{
    struct png_mem *m = png_get_io_ptr(png);

    m->data = realloc(m->data, m->len + len);
    assert_non_null(m->data);
    memcpy(m->data + m->len, data, len);
    m->len += len;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

/* An RGBA (or RGB) PNG of the test picture, with a tEXt chunk and an eXIf
 * chunk holding `orientation` (none when 0). */
static unsigned char *png_make(int w, int h, int channels, int orientation,
                               size_t *len)
{
    struct png_mem m = { NULL, 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned char *px = picture_rgb(w, h, channels);
    png_text text;
    unsigned char exif[64];
    int y;

    assert_non_null(info);
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE,
                 PNG_FILTER_TYPE_BASE);
    memset(&text, 0, sizeof(text));
    text.compression = PNG_TEXT_COMPRESSION_NONE;
    text.key = "Comment";
    text.text = "secret location";
    png_set_text(png, info, &text, 1);
    if (orientation) {
        size_t n = exif_segment(exif, orientation);

        png_set_eXIf_1(png, info, (png_uint_32)(n - 10), exif + 10);
    }
    png_write_info(png, info);
    for (y = 0; y < h; y++)
        png_write_row(png, px + (size_t)y * w * channels);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(px);
    *len = m.len;
    return m.data;
}

/* A PNG of one flat colour: `channels` 1 (gray) or 2 (gray + alpha), with
 * gray level `gray` and alpha `alpha`. */
static unsigned char *png_flat(int w, int h, int channels, int gray,
                               int alpha, size_t *len)
{
    struct png_mem m = { NULL, 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned char *row = malloc((size_t)w * channels);
    int x, y;

    assert_non_null(info);
    assert_non_null(row);
    for (x = 0; x < w; x++) {
        row[x * channels] = (unsigned char)gray;
        if (channels == 2)
            row[x * channels + 1] = (unsigned char)alpha;
    }
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                               : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE,
                 PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    for (y = 0; y < h; y++)
        png_write_row(png, row);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    *len = m.len;
    return m.data;
}

static int png_has_chunk(const unsigned char *d, size_t len, const char *type)
{
    size_t pos = 8;

    while (pos + 12 <= len) {
        uint32_t n = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 |
                     (uint32_t)d[pos + 2] << 8 | d[pos + 3];

        if (memcmp(d + pos + 4, type, 4) == 0)
            return 1;
        pos += 12 + (size_t)n;
    }
    return 0;
}

/* Decode a PNG to RGBA with libpng's simplified API; caller frees. */
static unsigned char *png_pixels(const unsigned char *d, size_t len,
                                 png_imagep image)
{
    unsigned char *px;

    memset(image, 0, sizeof(*image));
    image->version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(image, d, len));
    image->format = PNG_FORMAT_RGBA;
    px = malloc(PNG_IMAGE_SIZE(*image));
    assert_non_null(px);
    assert_true(png_image_finish_read(image, NULL, px, 0, NULL));
    return px;
}

/* Flat gray and gray + alpha images keep their values through the
 * resampler (one channel, and two padded to four). */
static void png_gray_resized(void **state)
{
    static const int channels[2] = { 1, 2 };
    int i;

    (void)state;
    for (i = 0; i < 2; i++) {
        size_t len;
        unsigned char *png = png_flat(3001, 2001, channels[i], 100, 128,
                                      &len);
        png_image image;
        unsigned char *px;
        struct run r;

        run_bytes(png, len, NULL, &r);
        assert_int_equal(r.status, IMG_OK);
        assert_int_equal(r.result.width, 1620);
        assert_int_equal(r.result.height, 1080);
        /* IHDR colour type: 0 gray, 4 gray + alpha. */
        assert_int_equal(r.out[25], channels[i] == 2 ? 4 : 0);
        px = png_pixels(r.out, r.out_len, &image);
        assert_int_equal(px[(500 * 1620 + 700) * 4], 100);
        assert_int_equal(px[(500 * 1620 + 700) * 4 + 3],
                         channels[i] == 2 ? 128 : 255);
        free(px);
        run_release(&r);
        free(png);
    }
}

static void png_screenshot_alpha(void **state)
{
    size_t len;
    unsigned char *png = png_make(2560, 1440, 4, 0, &len);
    png_image image;
    unsigned char *px;
    struct run r;

    (void)state;
    run_bytes(png, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.format, IMG_FORMAT_PNG);
    assert_int_equal(r.result.width, 1920);
    assert_int_equal(r.result.height, 1080);
    assert_true(r.result.reencoded);
    assert_false(png_has_chunk(r.out, r.out_len, "tEXt"));
    px = png_pixels(r.out, r.out_len, &image);
    assert_int_equal(image.width, 1920);
    assert_true(image.format & PNG_FORMAT_FLAG_ALPHA);
    /* The left eighth is transparent, the rest opaque. */
    assert_int_equal(px[(100 * 1920 + 10) * 4 + 3], 0);
    assert_int_equal(px[(100 * 1920 + 1000) * 4 + 3], 255);
    free(px);
    run_release(&r);
    free(png);
}

static void png_metadata_stripped(void **state)
{
    size_t len;
    unsigned char *png = png_make(300, 200, 3, 1, &len);
    struct run r;

    (void)state;
    assert_true(png_has_chunk(png, len, "eXIf"));
    run_bytes(png, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_false(r.result.reencoded);
    assert_false(png_has_chunk(r.out, r.out_len, "tEXt"));
    assert_false(png_has_chunk(r.out, r.out_len, "eXIf"));
    assert_true(png_has_chunk(r.out, r.out_len, "IDAT"));
    run_release(&r);
    free(png);
}

static void png_exif_orientation(void **state)
{
    size_t len;
    unsigned char *png = png_make(300, 200, 3, 6, &len);
    png_image image;
    unsigned char *px;
    struct run r;

    (void)state;
    run_bytes(png, len, NULL, &r);
    assert_int_equal(r.status, IMG_OK);
    assert_int_equal(r.result.width, 200);
    assert_int_equal(r.result.height, 300);
    assert_false(png_has_chunk(r.out, r.out_len, "eXIf"));
    px = png_pixels(r.out, r.out_len, &image);
    /* Turned clockwise: the stored bottom left (blue) is now top left. */
    assert_true(px[2] > 150 && px[0] < 100);
    free(px);
    run_release(&r);
    free(png);
}

static void png_truncated_rejected(void **state)
{
    size_t len;
    unsigned char *png = png_make(400, 300, 3, 0, &len);
    struct run r;

    (void)state;
    run_bytes(png, len / 2, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    png[40] ^= 0x55;            /* inside IHDR: CRC error */
    run_bytes(png, len, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    free(png);
}

static void sniff_formats(void **state)
{
    static const unsigned char jpeg[] = { 0xff, 0xd8, 0xff, 0xe0 };
    static const unsigned char png[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
    };
    static const unsigned char gif[] = { 'G', 'I', 'F', '8', '9', 'a' };
    static const unsigned char not_jpeg[] = { 0xff, 0xd8, 0x07 };

    (void)state;
    assert_int_equal(img_sniff(jpeg, sizeof(jpeg)), IMG_FORMAT_JPEG);
    assert_int_equal(img_sniff(png, sizeof(png)), IMG_FORMAT_PNG);
    assert_int_equal(img_sniff(gif, sizeof(gif)), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff(not_jpeg, sizeof(not_jpeg)), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff(png, 7), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff(NULL, 0), IMG_FORMAT_NONE);
}

static void not_an_image_rejected(void **state)
{
    struct run r;

    (void)state;
    run_bytes("hello", 5, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
    run_bytes("", 0, NULL, &r);
    assert_int_equal(r.status, IMG_EUNSUPPORTED);
    run_release(&r);
}

/* One worker of concurrent_calls_match: process `input` and keep the
 * output. */
struct worker {
    const unsigned char *input;
    size_t input_len;
    struct run run;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    run_bytes(w->input, w->input_len, NULL, &w->run);
    return NULL;
}

static void concurrent_calls_match(void **state)
{
    enum { WORKERS = 4 };
    size_t jpeg_len, png_len;
    unsigned char *jpeg = jpeg_make(2600, 1800, 1, &jpeg_len);
    unsigned char *png = png_make(2200, 1400, 4, 6, &png_len);
    struct run jpeg_ref, png_ref;
    struct worker workers[WORKERS];
    pthread_t threads[WORKERS];
    int i;

    (void)state;
    run_bytes(jpeg, jpeg_len, NULL, &jpeg_ref);
    run_bytes(png, png_len, NULL, &png_ref);
    for (i = 0; i < WORKERS; i++) {
        workers[i].input = i % 2 ? png : jpeg;
        workers[i].input_len = i % 2 ? png_len : jpeg_len;
        assert_int_equal(pthread_create(&threads[i], NULL, worker_main,
                                        &workers[i]), 0);
    }
    for (i = 0; i < WORKERS; i++) {
        const struct run *ref = i % 2 ? &png_ref : &jpeg_ref;

        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].run.status, IMG_OK);
        assert_int_equal(workers[i].run.out_len, ref->out_len);
        assert_memory_equal(workers[i].run.out, ref->out, ref->out_len);
        run_release(&workers[i].run);
    }
    run_release(&jpeg_ref);
    run_release(&png_ref);
    free(png);
    free(jpeg);
}

static const char *corpus_dir(void)
{
    const char *dir = getenv("BLOBD_CORPUS");

    return dir && *dir ? dir : "../shared/corpus/images";
}

/* Process one corpus file; returns 0 when the corpus is not there. */
static int run_corpus(const char *name, struct run *r)
{
    char path[4096];
    FILE *f;
    unsigned char *data;
    long len;

    snprintf(path, sizeof(path), "%s/%s", corpus_dir(), name);
    f = fopen(path, "rb");
    if (!f)
        return 0;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    data = malloc((size_t)len + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    run_bytes(data, (size_t)len, NULL, r);
    free(data);
    return 1;
}

static void corpus_samples(void **state)
{
    static const struct {
        const char *name;
        enum img_status status;
        uint32_t width, height;
    } cases[] = {
        { "exif_portrait_6_full_1800x1200.jpg", IMG_OK, 1080, 1620 },
        { "huge_real_jpeg_9643x10328.jpg", IMG_OK, 1080, 1157 },
        { "rgba_2048x1536_idot.png", IMG_OK, 1440, 1080 },
        { "truncated_baseline_2725x2225.jpg", IMG_EUNSUPPORTED, 0, 0 },
        { "truncated_png_640x480.png", IMG_EUNSUPPORTED, 0, 0 },
        { "bomb_png_16384x16384_32KB.png", IMG_ETOOLARGE, 0, 0 },
        { "bomb_jpeg_65535x65535_186B.jpg", IMG_ETOOLARGE, 0, 0 },
    };
    size_t i;
    struct run r;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!run_corpus(cases[i].name, &r))
            skip();
        if (r.status != cases[i].status)
            fail_msg("%s: status %d (%s), expected %d", cases[i].name,
                     r.status, r.err.message, cases[i].status);
        if (r.status == IMG_OK) {
            assert_int_equal(r.result.width, cases[i].width);
            assert_int_equal(r.result.height, cases[i].height);
        }
        run_release(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sniff_formats),
        cmocka_unit_test(not_an_image_rejected),
        cmocka_unit_test(jpeg_rescaled_baseline),
        cmocka_unit_test(jpeg_rescaled_progressive),
        cmocka_unit_test(jpeg_deterministic),
        cmocka_unit_test(jpeg_orientations_resized),
        cmocka_unit_test(jpeg_orientations_small),
        cmocka_unit_test(jpeg_fit_after_orientation),
        cmocka_unit_test(jpeg_metadata_stripped),
        cmocka_unit_test(jpeg_trailing_data_dropped),
        cmocka_unit_test(jpeg_truncated_rejected),
        cmocka_unit_test(jpeg_pixel_limit),
        cmocka_unit_test(jpeg_arithmetic_restarts),
        cmocka_unit_test(cmyk_naive_converted),
        cmocka_unit_test(cmyk_profile_converted),
        cmocka_unit_test(resample_memory_limit),
        cmocka_unit_test(png_screenshot_alpha),
        cmocka_unit_test(png_metadata_stripped),
        cmocka_unit_test(png_exif_orientation),
        cmocka_unit_test(png_truncated_rejected),
        cmocka_unit_test(png_gray_resized),
        cmocka_unit_test(concurrent_calls_match),
        cmocka_unit_test(corpus_samples),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
