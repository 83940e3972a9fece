/*
 * JPEG through libjpeg-turbo: probe the header, then take one of three
 * paths. An image that fits, is upright and needs no colour conversion is
 * validated by entropy-decoding it and copied without its metadata
 * segments (jpeg_strip). One that only needs a turn is turned losslessly by
 * TurboJPEG when its size is a whole number of MCUs. Everything else is
 * decoded (with DCT scaling when it shrinks), converted to RGB or gray,
 * resampled, oriented and encoded again.
 *
 * libjpeg reports errors by calling error_exit, which must not return. So
 * each libjpeg call sequence runs inside one small function that calls
 * setjmp, and the handlers longjmp back there. Warnings that mean the data
 * is corrupt or cut short become errors too (jpeg_warning_is_fatal).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <lcms2.h>
#include <turbojpeg.h>

#include "img_int.h"

#define JPEG_APP1 (JPEG_APP0 + 1)
#define JPEG_APP2 (JPEG_APP0 + 2)
#define JPEG_APP13 (JPEG_APP0 + 13)
#define MARKER_SOS 0xda
#define MARKER_EOI 0xd9

/* How many times the target the DCT-scaled size must be at least. */
#define JPEG_SCALE_MARGIN 2

/* Decoded rows handed to the sink per jpeg_read_scanlines call at most. */
#define JPEG_ROWS_PER_READ 16

/* libjpeg error manager that longjmps back to the caller's setjmp. */
struct jpeg_guard {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    struct img_error *err;
};

/* Header facts that decide the path, read once. */
struct jpeg_probe {
    uint32_t width;
    uint32_t height;
    int components;
    J_COLOR_SPACE color_space;
    int adobe;                  /* an Adobe APP14 marker was seen */
    int progressive;
    int orientation;
    unsigned char *icc;         /* malloc'd by libjpeg, or NULL */
    unsigned int icc_len;
};

/* State of one decode; lives in the caller so that it survives longjmp. */
struct jpeg_decode {
    const struct img_input *in;
    const struct img_limits *limits;
    const struct jpeg_probe *probe;
    uint32_t target_width;      /* in stored orientation */
    uint32_t target_height;
    struct img_sink sink;
    cmsContext cms;
    cmsHTRANSFORM cmyk_to_rgb;  /* NULL: naive conversion */
};

struct jpeg_dest {
    struct jpeg_destination_mgr pub;
    struct img_writer *writer;
    unsigned char buf[IMG_WRITE_CHUNK];
};

/*
 * libjpeg-turbo only warns when data is missing or damaged and then fills
 * the rest with grey or garbage. These warnings mean the stored picture
 * would not be the uploaded one, so they fail the upload. Warnings about
 * harmless oddities (extraneous bytes before a marker, an unknown Adobe
 * transform or JFIF version, a bad ICC marker) are ignored.
 */
static int jpeg_warning_is_fatal(int code)
{
    switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_BOGUS_PROGRESSION:
        return 1;
    default:
        return 0;
    }
}

static enum img_status jpeg_error_status(int code)
{
    switch (code) {
    case JERR_IMAGE_TOO_BIG:
    case JERR_NO_BACKING_STORE:
        return IMG_ETOOLARGE;
    case JERR_OUT_OF_MEMORY:
        return IMG_ENOMEM;
    default:
        return IMG_EUNSUPPORTED;
    }
}

static void jpeg_fail(j_common_ptr cinfo, enum img_status status)
{
    struct jpeg_guard *guard = (struct jpeg_guard *)cinfo->err;
    char text[JMSG_LENGTH_MAX];

    (*cinfo->err->format_message)(cinfo, text);
    img_error_set(guard->err, status, "jpeg: %s", text);
    longjmp(guard->jump, 1);
}

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_fail(cinfo, jpeg_error_status(cinfo->err->msg_code));
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (jpeg_warning_is_fatal(cinfo->err->msg_code))
            jpeg_fail(cinfo, IMG_EUNSUPPORTED);
    }
}

static struct jpeg_error_mgr *jpeg_guard_init(struct jpeg_guard *guard,
                                              struct img_error *err)
{
    jpeg_std_error(&guard->pub);
    guard->pub.error_exit = jpeg_on_error;
    guard->pub.emit_message = jpeg_on_message;
    guard->err = err;
    return &guard->pub;
}

static void dest_init(j_compress_ptr cinfo)
{
    struct jpeg_dest *dest = (struct jpeg_dest *)cinfo->dest;

    dest->pub.next_output_byte = dest->buf;
    dest->pub.free_in_buffer = sizeof(dest->buf);
}

static boolean dest_empty(j_compress_ptr cinfo)
{
    struct jpeg_dest *dest = (struct jpeg_dest *)cinfo->dest;

    img_writer_put(dest->writer, dest->buf, sizeof(dest->buf));
    dest_init(cinfo);
    return TRUE;
}

static void dest_term(j_compress_ptr cinfo)
{
    struct jpeg_dest *dest = (struct jpeg_dest *)cinfo->dest;

    img_writer_put(dest->writer, dest->buf,
                   sizeof(dest->buf) - dest->pub.free_in_buffer);
}

/* Orientation from the first APP1 "Exif" segment that libjpeg saved. */
static int probe_orientation(j_decompress_ptr cinfo)
{
    jpeg_saved_marker_ptr m;

    for (m = cinfo->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return img_exif_orientation(m->data + 6, m->data_length - 6);
    }
    return 1;
}

static void decompress_setup(j_decompress_ptr cinfo,
                             const struct img_input *in,
                             const struct img_limits *limits)
{
    jpeg_create_decompress(cinfo);
    cinfo->mem->max_memory_to_use = (long)limits->max_memory_bytes;
    jpeg_mem_src(cinfo, in->data, (unsigned long)in->len);
}

/* Read the header and the metadata that decides the path. */
static enum img_status jpeg_probe_read(const struct img_input *in,
                                       const struct img_limits *limits,
                                       struct jpeg_probe *probe,
                                       struct img_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_guard guard;

    cinfo.err = jpeg_guard_init(&guard, err);
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return err->status;
    }
    decompress_setup(&cinfo, in, limits);
    jpeg_save_markers(&cinfo, JPEG_APP1, 0xffff);
    jpeg_save_markers(&cinfo, JPEG_APP2, 0xffff);
    jpeg_read_header(&cinfo, TRUE);

    probe->width = cinfo.image_width;
    probe->height = cinfo.image_height;
    probe->components = cinfo.num_components;
    probe->color_space = cinfo.jpeg_color_space;
    probe->adobe = cinfo.saw_Adobe_marker;
    probe->progressive = cinfo.progressive_mode;
    probe->orientation = probe_orientation(&cinfo);
    if (!jpeg_read_icc_profile(&cinfo, &probe->icc, &probe->icc_len)) {
        probe->icc = NULL;
        probe->icc_len = 0;
    }
    jpeg_destroy_decompress(&cinfo);
    return IMG_OK;
}

/* Entropy-decode the whole image without output, to find damaged or cut
 * data before it is copied unchanged. */
static enum img_status jpeg_validate(const struct img_input *in,
                                     const struct img_limits *limits,
                                     struct img_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_guard guard;

    cinfo.err = jpeg_guard_init(&guard, err);
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return err->status;
    }
    decompress_setup(&cinfo, in, limits);
    jpeg_read_header(&cinfo, TRUE);
    jpeg_read_coefficients(&cinfo);
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return IMG_OK;
}

/* 4-byte ICC colour space signature the profile must have to describe
 * pixels with this many channels. */
static const char *icc_space_for(int channels)
{
    switch (channels) {
    case 1:
        return "GRAY";
    case 3:
        return "RGB ";
    case 4:
        return "CMYK";
    default:
        return "";
    }
}

/* Whether `icc` is a plausible profile for pixels of `channels` channels:
 * a full 128-byte header, the 'acsp' tag and the matching colour space. */
static int icc_matches(const unsigned char *icc, size_t len, int channels)
{
    if (!icc || len < 132 || memcmp(icc + 36, "acsp", 4) != 0)
        return 0;
    return memcmp(icc + 16, icc_space_for(channels), 4) == 0;
}

static int marker_is_icc(const unsigned char *seg, size_t len)
{
    return seg[1] == JPEG_APP2 && len >= 4 + 12 &&
           memcmp(seg + 4, "ICC_PROFILE", 12) == 0;
}

/* Whether a marker segment (starting at its FF byte) is metadata to drop:
 * APP1 (EXIF, XMP), APP13 (IPTC), COM, and ICC segments unless kept. */
static int marker_dropped(const unsigned char *seg, size_t len, int keep_icc)
{
    unsigned m = seg[1];

    if (m == JPEG_APP1 || m == JPEG_APP13 || m == JPEG_COM)
        return 1;
    return !keep_icc && marker_is_icc(seg, len);
}

/* Length of the entropy-coded data that starts at data[pos]: up to the
 * next FF that starts a marker other than RSTn (FF 00 is a stuffed byte,
 * FF FF fill). */
static size_t entropy_len(const unsigned char *data, size_t len, size_t pos)
{
    size_t i = pos;

    while (i + 1 < len) {
        if (data[i] == 0xff) {
            unsigned next = data[i + 1];

            if (next != 0x00 && next != 0xff &&
                !(next >= 0xd0 && next <= 0xd7))
                return i - pos;
        }
        i++;
    }
    return len - pos;
}

/*
 * Copy a JPEG without its metadata segments, up to and including the
 * first EOI; whatever follows EOI (thumbnails, gain maps) is dropped. Only
 * used on data that jpeg_validate accepted.
 */
static enum img_status jpeg_strip(const unsigned char *data, size_t len,
                                  int keep_icc, struct img_writer *out,
                                  struct img_error *err)
{
    size_t pos = 2;

    if (len < 4 || data[0] != 0xff || data[1] != 0xd8)
        goto bad;
    img_writer_put(out, data, 2);
    while (pos < len) {
        size_t seg_len;
        unsigned m;

        if (data[pos] != 0xff) {
            pos++;              /* garbage between segments: skipped */
            continue;
        }
        while (pos + 1 < len && data[pos + 1] == 0xff)
            pos++;
        if (pos + 1 >= len)
            break;
        m = data[pos + 1];
        if (m == MARKER_EOI) {
            img_writer_put(out, data + pos, 2);
            return IMG_OK;
        }
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01 || m == 0x00) {
            img_writer_put(out, data + pos, 2);
            pos += 2;
            continue;
        }
        if (pos + 4 > len)
            break;
        /* libjpeg reads a length below 2 as an empty segment. */
        seg_len = 2 + ((size_t)data[pos + 2] << 8 | data[pos + 3]);
        if (seg_len < 4)
            seg_len = 4;
        if (pos + seg_len > len)
            break;
        if (!marker_dropped(data + pos, seg_len, keep_icc))
            img_writer_put(out, data + pos, seg_len);
        pos += seg_len;
        if (m == MARKER_SOS) {
            size_t n = entropy_len(data, len, pos);

            img_writer_put(out, data + pos, n);
            pos += n;
        }
    }
bad:
    img_error_set(err, IMG_EUNSUPPORTED, "jpeg: malformed marker structure");
    return IMG_EUNSUPPORTED;
}

/* Turn a validated JPEG losslessly with TurboJPEG. When TurboJPEG rejects
 * the transform (as it does for a size that is not a whole number of
 * MCUs), set `*done` to 0 and write nothing, so the caller re-encodes. */
static enum img_status jpeg_transform(const struct img_input *in,
                                      const struct jpeg_probe *probe,
                                      int keep_icc,
                                      struct img_writer *out, int *done,
                                      struct img_error *err)
{
    static const int ops[9] = {
        TJXOP_NONE, TJXOP_NONE, TJXOP_HFLIP, TJXOP_ROT180, TJXOP_VFLIP,
        TJXOP_TRANSPOSE, TJXOP_ROT90, TJXOP_TRANSVERSE, TJXOP_ROT270,
    };
    tjtransform xform;
    unsigned char *dst = NULL;
    unsigned long dst_len = 0;
    enum img_status status = IMG_OK;
    tjhandle handle = tjInitTransform();

    *done = 0;
    if (!handle) {
        img_error_set(err, IMG_ENOMEM, "jpeg: cannot create a transformer");
        return IMG_ENOMEM;
    }
    memset(&xform, 0, sizeof(xform));
    xform.op = ops[probe->orientation];
    xform.options = TJXOPT_PERFECT;
    if (probe->progressive)
        xform.options |= TJXOPT_PROGRESSIVE;
    if (tjTransform(handle, in->data, (unsigned long)in->len, 1, &dst,
                    &dst_len, &xform,
                    TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) == 0) {
        *done = 1;
        status = jpeg_strip(dst, dst_len, keep_icc, out, err);
    }
    tjFree(dst);
    tjDestroy(handle);
    return status;
}

/* Naive CMYK to RGB for images without a CMYK profile: each RGB channel is
 * the complement of its ink times the complement of black. Adobe CMYK
 * (APP14 present) stores inverted values, that is the complements. */
static void cmyk_naive(const unsigned char *in, unsigned char *out,
                       uint32_t width, int inverted)
{
    uint32_t x;

    for (x = 0; x < width; x++, in += 4, out += 3) {
        unsigned k = inverted ? in[3] : 255u - in[3];
        unsigned c;

        for (c = 0; c < 3; c++) {
            unsigned v = inverted ? in[c] : 255u - in[c];

            out[c] = (unsigned char)((v * k + 127) / 255);
        }
    }
}

static J_COLOR_SPACE decode_color_space(const struct jpeg_probe *probe)
{
    if (probe->color_space == JCS_GRAYSCALE)
        return JCS_GRAYSCALE;
    if (probe->color_space == JCS_CMYK || probe->color_space == JCS_YCCK)
        return JCS_CMYK;
    return JCS_RGB;
}

/*
 * Pick the DCT scaling (1/8, 1/4, 1/2 or none). libjpeg-turbo's reduced
 * IDCTs let fine detail alias, so a scale is used only while the decoded
 * size stays at least twice the target on both sides, and the Lanczos
 * filter does the rest. On a
 * 12 MP zone plate scaled to 1440x1080, decoding at 1/2 gave SSIM 0.77
 * against a full decode + Lanczos-3, and a full decode 0.99
 * (bench/imgproc/ssim.py).
 */
static void decode_pick_scale(j_decompress_ptr cinfo, uint32_t width,
                              uint32_t height)
{
    unsigned denom;

    cinfo->scale_num = 1;
    for (denom = 8; denom > 1; denom /= 2) {
        cinfo->scale_denom = denom;
        jpeg_calc_output_dimensions(cinfo);
        if (cinfo->output_width >= (uint64_t)width * JPEG_SCALE_MARGIN &&
            cinfo->output_height >= (uint64_t)height * JPEG_SCALE_MARGIN)
            return;
    }
    cinfo->scale_denom = 1;
}

/* Read every scanline, convert CMYK to RGB, and push the rows to the sink.
 * Runs under the caller's setjmp; buffers come from libjpeg's image pool. */
static void decode_rows(struct jpeg_decode *dec, j_decompress_ptr cinfo)
{
    int cmyk = cinfo->out_color_space == JCS_CMYK;
    JSAMPARRAY rows;
    JSAMPROW rgb = NULL;

    rows = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE,
                                       cinfo->output_width *
                                       cinfo->output_components,
                                       JPEG_ROWS_PER_READ);
    if (cmyk)
        rgb = (*cinfo->mem->alloc_large)((j_common_ptr)cinfo, JPOOL_IMAGE,
                                         (size_t)cinfo->output_width * 3);
    while (cinfo->output_scanline < cinfo->output_height) {
        JDIMENSION n = jpeg_read_scanlines(cinfo, rows, JPEG_ROWS_PER_READ);
        JDIMENSION i;

        for (i = 0; i < n; i++) {
            if (!cmyk) {
                img_sink_push(&dec->sink, rows[i]);
                continue;
            }
            if (dec->cmyk_to_rgb)
                cmsDoTransform(dec->cmyk_to_rgb, rows[i], rgb,
                               cinfo->output_width);
            else
                cmyk_naive(rows[i], rgb, cinfo->output_width,
                           dec->probe->adobe);
            img_sink_push(&dec->sink, rgb);
        }
    }
}

static enum img_status jpeg_decode_run(struct jpeg_decode *dec,
                                       struct img_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_guard guard;

    cinfo.err = jpeg_guard_init(&guard, err);
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return err->status;
    }
    decompress_setup(&cinfo, dec->in, dec->limits);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = decode_color_space(dec->probe);
    cinfo.dct_method = JDCT_ISLOW;
    decode_pick_scale(&cinfo, dec->target_width, dec->target_height);
    jpeg_start_decompress(&cinfo);
    if (img_sink_init(&dec->sink, cinfo.output_width, cinfo.output_height,
                      dec->target_width, dec->target_height,
                      cinfo.out_color_space == JCS_CMYK
                          ? 3 : (unsigned)cinfo.output_components,
                      0, dec->limits->max_memory_bytes, err) != IMG_OK)
        longjmp(guard.jump, 1);
    decode_rows(dec, &cinfo);
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return IMG_OK;
}

/* A transform from the embedded CMYK profile to sRGB, or NULL when there
 * is no usable profile. */
static cmsHTRANSFORM cmyk_transform_new(cmsContext cms,
                                        const struct jpeg_probe *probe)
{
    cmsHPROFILE src, srgb;
    cmsHTRANSFORM xform = NULL;

    if (!cms || !icc_matches(probe->icc, probe->icc_len, 4))
        return NULL;
    src = cmsOpenProfileFromMemTHR(cms, probe->icc, probe->icc_len);
    srgb = cmsCreate_sRGBProfileTHR(cms);
    if (src && srgb && cmsGetColorSpace(src) == cmsSigCmykData)
        xform = cmsCreateTransformTHR(cms, src,
                                      probe->adobe ? TYPE_CMYK_8_REV
                                                   : TYPE_CMYK_8,
                                      srgb, TYPE_RGB_8,
                                      INTENT_RELATIVE_COLORIMETRIC,
                                      cmsFLAGS_BLACKPOINTCOMPENSATION);
    if (src)
        cmsCloseProfile(src);
    if (srgb)
        cmsCloseProfile(srgb);
    return xform;
}

static enum img_status jpeg_encode(const struct img_pixels *px,
                                   const unsigned char *icc,
                                   unsigned int icc_len,
                                   struct img_writer *out,
                                   struct img_error *err)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_guard guard;
    struct jpeg_dest *dest;
    JSAMPROW row;

    dest = malloc(sizeof(*dest));
    if (!dest) {
        img_error_set(err, IMG_ENOMEM, "jpeg: cannot allocate the encoder");
        return IMG_ENOMEM;
    }
    cinfo.err = jpeg_guard_init(&guard, err);
    if (setjmp(guard.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(dest);
        return err->status;
    }
    jpeg_create_compress(&cinfo);
    dest->writer = out;
    dest->pub.init_destination = dest_init;
    dest->pub.empty_output_buffer = dest_empty;
    dest->pub.term_destination = dest_term;
    cinfo.dest = &dest->pub;

    cinfo.image_width = px->width;
    cinfo.image_height = px->height;
    cinfo.input_components = (int)px->channels;
    cinfo.in_color_space = px->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, IMG_JPEG_QUALITY, TRUE);
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.optimize_coding = TRUE;
    jpeg_start_compress(&cinfo, TRUE);
    if (icc)
        jpeg_write_icc_profile(&cinfo, icc, icc_len);
    while (cinfo.next_scanline < cinfo.image_height) {
        row = px->data + (size_t)cinfo.next_scanline * px->stride;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(dest);
    return IMG_OK;
}

/* Decode, convert, resample, orient and encode again. */
static enum img_status jpeg_reencode(const struct img_input *in,
                                     const struct img_limits *limits,
                                     const struct jpeg_probe *probe,
                                     uint32_t width, uint32_t height,
                                     struct img_writer *out,
                                     struct img_error *err)
{
    struct jpeg_decode dec;
    const unsigned char *icc = NULL;
    enum img_status status;
    int swap = img_orientation_swaps(probe->orientation);
    int cmyk = decode_color_space(probe) == JCS_CMYK;

    memset(&dec, 0, sizeof(dec));
    dec.in = in;
    dec.limits = limits;
    dec.probe = probe;
    dec.target_width = swap ? height : width;
    dec.target_height = swap ? width : height;
    if (cmyk) {
        dec.cms = cmsCreateContext(NULL, NULL);
        dec.cmyk_to_rgb = cmyk_transform_new(dec.cms, probe);
    }

    status = jpeg_decode_run(&dec, err);
    if (status != IMG_OK)
        goto out;
    status = img_pixels_orient(&dec.sink.out, probe->orientation, err);
    if (status != IMG_OK)
        goto out;
    /* A CMYK source ends up as sRGB, which needs no profile. */
    if (!cmyk && icc_matches(probe->icc, probe->icc_len,
                             (int)dec.sink.out.channels))
        icc = probe->icc;
    status = jpeg_encode(&dec.sink.out, icc, icc ? probe->icc_len : 0, out,
                         err);
out:
    img_sink_release(&dec.sink);
    if (dec.cmyk_to_rgb)
        cmsDeleteTransform(dec.cmyk_to_rgb);
    if (dec.cms)
        cmsDeleteContext(dec.cms);
    return status;
}

enum img_status img_jpeg_process(const struct img_input *in,
                                 struct img_writer *out,
                                 const struct img_limits *limits,
                                 struct img_result *result,
                                 struct img_error *err)
{
    struct jpeg_probe probe;
    uint32_t up_w, up_h, width, height;
    int keep_icc, convert, done;
    enum img_status status;

    memset(&probe, 0, sizeof(probe));
    status = jpeg_probe_read(in, limits, &probe, err);
    if (status != IMG_OK)
        goto out;
    if ((uint64_t)probe.width * probe.height > limits->max_pixels) {
        status = IMG_ETOOLARGE;
        img_error_set(err, status, "jpeg: %ux%u is more than %llu pixels",
                      (unsigned)probe.width, (unsigned)probe.height,
                      (unsigned long long)limits->max_pixels);
        goto out;
    }

    up_w = img_orientation_swaps(probe.orientation) ? probe.height
                                                    : probe.width;
    up_h = img_orientation_swaps(probe.orientation) ? probe.width
                                                    : probe.height;
    img_fit_compute(limits, up_w, up_h, &width, &height);
    result->width = width;
    result->height = height;
    convert = probe.components != 1 && probe.components != 3;
    keep_icc = icc_matches(probe.icc, probe.icc_len, probe.components);

    if (width == up_w && height == up_h && !convert) {
        status = jpeg_validate(in, limits, err);
        if (status != IMG_OK)
            goto out;
        if (probe.orientation == 1) {
            status = jpeg_strip(in->data, in->len, keep_icc, out, err);
            goto out;
        }
        status = jpeg_transform(in, &probe, keep_icc, out, &done, err);
        if (status != IMG_OK || done)
            goto out;
    }
    result->reencoded = 1;
    status = jpeg_reencode(in, limits, &probe, width, height, out, err);
out:
    free(probe.icc);
    return status;
}
