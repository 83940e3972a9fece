/*
 * PNG through libpng. Every image is decoded once, with libpng's
 * transformations to 8-bit gray, gray + alpha, RGB or RGBA (palette and
 * tRNS expanded to alpha, 16-bit scaled), into the sink that resamples it
 * when it is larger than full HD. An image that fits, is upright and was
 * already 8-bit or less is then copied chunk by chunk without its metadata
 * (png_strip). Every other image is encoded again from the pixels.
 *
 * libpng reports errors by longjmp to the setjmp in png_jmpbuf: each small
 * function that calls libpng sets it first. Text chunks, tIME and eXIf are
 * never inflated or stored by libpng, so zlib bombs in zTXt or iTXt cost
 * nothing; the EXIF orientation is read from the raw eXIf chunk instead.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#include "img_int.h"

/* A chunk of the input: its type and data, with the CRC checked. */
struct png_chunk {
    uint32_t length;
    char type[5];
    const unsigned char *data;
    int crc_ok;
};

/* Colour metadata carried into a re-encoded PNG. */
struct png_color_info {
    int has_gama;
    png_fixed_point gama;
    int has_chrm;
    png_fixed_point chrm[8];
    int has_srgb;
    int srgb_intent;
    unsigned char *icc;         /* malloc'd copy, or NULL */
    png_uint_32 icc_len;
    char icc_name[80];
};

/* State of one decode; lives in the caller so that it survives longjmp. */
struct png_decode {
    const struct img_input *in;
    size_t pos;
    const struct img_limits *limits;
    struct img_error *err;
    png_structp png;
    png_infop info;
    uint32_t width;
    uint32_t height;
    int bit_depth;
    int color_type;
    int interlaced;
    uint32_t target_width;      /* in stored orientation */
    uint32_t target_height;
    unsigned channels;          /* after transformations */
    int palette_count;          /* PLTE entries, for palette images */
    int palette_overflow;       /* a pixel indexes past the palette */
    unsigned char palette[256][4];  /* RGBA; black beyond the PLTE */
    unsigned char *expanded;    /* one row of palette colours */
    png_uint_32 valid;          /* PNG_INFO_* chunks libpng accepted */
    struct png_color_info color;
    struct img_sink sink;
    unsigned char *rows;        /* one row, or the whole interlaced image */
};

static const unsigned char png_signature[8] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* Read the chunk at `*pos` and advance past it; 0 at the end of the data
 * or at a chunk that does not fit in it. */
static int chunk_next(const struct img_input *in, size_t *pos,
                      struct png_chunk *chunk)
{
    size_t p = *pos;
    uint32_t crc;

    if (in->len - p < 12)
        return 0;
    chunk->length = be32(in->data + p);
    if (chunk->length > in->len - p - 12)
        return 0;
    memcpy(chunk->type, in->data + p + 4, 4);
    chunk->type[4] = '\0';
    chunk->data = in->data + p + 8;
    crc = (uint32_t)crc32(0, in->data + p + 4, chunk->length + 4);
    chunk->crc_ok = crc == be32(chunk->data + chunk->length);
    *pos = p + 12 + chunk->length;
    return 1;
}

/* Orientation from the first intact eXIf chunk before the image data. */
static int png_orientation(const struct img_input *in)
{
    struct png_chunk chunk;
    size_t pos = sizeof(png_signature);

    while (chunk_next(in, &pos, &chunk)) {
        if (strcmp(chunk.type, "IDAT") == 0)
            break;
        if (strcmp(chunk.type, "eXIf") == 0 && chunk.crc_ok)
            return img_exif_orientation(chunk.data, chunk.length);
    }
    return 1;
}

/* Width and height from an intact IHDR at the start, for the pixel limit
 * that is checked before libpng runs; 0 when there is none. */
static int png_ihdr_size(const struct img_input *in, uint32_t *width,
                         uint32_t *height)
{
    struct png_chunk chunk;
    size_t pos = sizeof(png_signature);

    if (!chunk_next(in, &pos, &chunk) || strcmp(chunk.type, "IHDR") != 0 ||
        chunk.length != 13)
        return 0;
    *width = be32(chunk.data);
    *height = be32(chunk.data + 4);
    return 1;
}

static void png_on_error(png_structp png, png_const_charp message)
{
    struct png_decode *dec = png_get_error_ptr(png);

    img_error_set(dec->err, IMG_EUNSUPPORTED, "png: %s", message);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static void png_on_read(png_structp png, png_bytep data, size_t len)
{
    struct png_decode *dec = png_get_io_ptr(png);

    if (dec->in->len - dec->pos < len)
        png_error(png, "unexpected end of data");
    memcpy(data, dec->in->data + dec->pos, len);
    dec->pos += len;
}

/* Chunks that libpng must skip without reading them: text (where zlib
 * bombs hide), time and EXIF. */
static const png_byte png_ignored_chunks[] =
    "tEXt\0zTXt\0iTXt\0tIME\0eXIf";

static enum img_status png_header_read(struct png_decode *dec)
{
    png_uint_32 side = dec->limits->max_pixels > PNG_UINT_31_MAX
                       ? PNG_UINT_31_MAX
                       : (png_uint_32)dec->limits->max_pixels;

    if (setjmp(png_jmpbuf(dec->png)))
        return dec->err->status;
    png_set_read_fn(dec->png, dec, png_on_read);
    png_set_user_limits(dec->png, side, side);
    png_set_chunk_malloc_max(dec->png, IMG_PNG_CHUNK_MAX);
    png_set_chunk_cache_max(dec->png, IMG_PNG_CHUNK_CACHE);
    png_set_keep_unknown_chunks(dec->png, PNG_HANDLE_CHUNK_NEVER,
                                png_ignored_chunks, 5);
    png_read_info(dec->png, dec->info);
    dec->width = png_get_image_width(dec->png, dec->info);
    dec->height = png_get_image_height(dec->png, dec->info);
    dec->bit_depth = png_get_bit_depth(dec->png, dec->info);
    dec->color_type = png_get_color_type(dec->png, dec->info);
    dec->interlaced = png_get_interlace_type(dec->png, dec->info) !=
                      PNG_INTERLACE_NONE;
    return IMG_OK;
}

/* Copy the colour chunks that libpng accepted, for a re-encoded output. */
static void png_color_read(struct png_decode *dec)
{
    struct png_color_info *color = &dec->color;
    png_charp name = NULL;
    png_bytep icc = NULL;
    png_uint_32 icc_len = 0;
    int compression;
    png_fixed_point *c = color->chrm;

    color->has_gama = png_get_gAMA_fixed(dec->png, dec->info,
                                         &color->gama) != 0;
    color->has_chrm = png_get_cHRM_fixed(dec->png, dec->info, &c[0], &c[1],
                                         &c[2], &c[3], &c[4], &c[5], &c[6],
                                         &c[7]) != 0;
    color->has_srgb = png_get_sRGB(dec->png, dec->info,
                                   &color->srgb_intent) != 0;
    if (png_get_iCCP(dec->png, dec->info, &name, &compression, &icc,
                     &icc_len) && icc && icc_len > 0) {
        color->icc = malloc(icc_len);
        if (color->icc) {
            memcpy(color->icc, icc, icc_len);
            color->icc_len = icc_len;
            snprintf(color->icc_name, sizeof(color->icc_name), "%s",
                     name && name[0] ? name : "icc");
        }
    }
}

/* Look-up table for palette images. Indices past the end of PLTE show
 * opaque black, as in most viewers; such images are always re-encoded. */
static void palette_load(struct png_decode *dec)
{
    png_colorp plte = NULL;
    png_bytep trns = NULL;
    png_color_16p trns_color = NULL;
    int count = 0, trns_count = 0, i;

    memset(dec->palette, 0, sizeof(dec->palette));
    png_get_PLTE(dec->png, dec->info, &plte, &count);
    png_get_tRNS(dec->png, dec->info, &trns, &trns_count, &trns_color);
    for (i = 0; i < 256; i++) {
        dec->palette[i][3] = 255;
        if (i < count) {
            dec->palette[i][0] = plte[i].red;
            dec->palette[i][1] = plte[i].green;
            dec->palette[i][2] = plte[i].blue;
        }
        if (trns && i < trns_count)
            dec->palette[i][3] = trns[i];
    }
    dec->palette_count = count;
}

static void row_push(struct png_decode *dec, const unsigned char *row)
{
    uint32_t x;
    unsigned c, ch = dec->channels;

    if (dec->color_type != PNG_COLOR_TYPE_PALETTE) {
        img_sink_push(&dec->sink, row);
        return;
    }
    for (x = 0; x < dec->width; x++) {
        if (row[x] >= dec->palette_count)
            dec->palette_overflow = 1;
        for (c = 0; c < ch; c++)
            dec->expanded[(size_t)x * ch + c] = dec->palette[row[x]][c];
    }
    img_sink_push(&dec->sink, dec->expanded);
}

/* Set libpng's transformations: everything to 8 bits per channel, tRNS to
 * alpha; palette images stay indices (one byte each) for row_push. */
static void png_transforms_set(struct png_decode *dec)
{
    if (dec->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_packing(dec->png);
        palette_load(dec);
    } else {
        png_set_expand(dec->png);
    }
    if (dec->bit_depth == 16)
        png_set_scale_16(dec->png);
}

/* Decode every row into the sink, then read the chunks after the image
 * data, so that damage anywhere up to IEND is found. */
static enum img_status png_pixels_read(struct png_decode *dec)
{
    size_t row_len;
    uint32_t y;
    int passes, pass;

    if (setjmp(png_jmpbuf(dec->png)))
        return dec->err->status;
    png_transforms_set(dec);
    passes = png_set_interlace_handling(dec->png);
    png_read_update_info(dec->png, dec->info);
    row_len = png_get_rowbytes(dec->png, dec->info);
    dec->channels = png_get_channels(dec->png, dec->info);
    if (dec->color_type == PNG_COLOR_TYPE_PALETTE) {
        dec->channels = png_get_valid(dec->png, dec->info, PNG_INFO_tRNS)
                        ? 4 : 3;
        dec->expanded = malloc((size_t)dec->width * dec->channels);
        if (!dec->expanded)
            png_error(dec->png, "cannot allocate a row");
    }

    if (img_sink_init(&dec->sink, dec->width, dec->height,
                      dec->target_width, dec->target_height, dec->channels,
                      dec->channels == 2 || dec->channels == 4,
                      dec->limits->max_memory_bytes, dec->err) != IMG_OK)
        png_longjmp(dec->png, 1);

    if (!dec->interlaced) {
        dec->rows = malloc(row_len);
        if (!dec->rows)
            png_error(dec->png, "cannot allocate a row");
        for (y = 0; y < dec->height; y++) {
            png_read_row(dec->png, dec->rows, NULL);
            row_push(dec, dec->rows);
        }
    } else {
        /* Adam7 spreads every row over seven passes: hold the image. */
        if ((uint64_t)row_len * dec->height >
            dec->limits->max_memory_bytes) {
            img_error_set(dec->err, IMG_ETOOLARGE,
                          "png: interlaced %ux%u needs more than %llu bytes",
                          (unsigned)dec->width, (unsigned)dec->height,
                          (unsigned long long)dec->limits->max_memory_bytes);
            png_longjmp(dec->png, 1);
        }
        dec->rows = calloc(dec->height, row_len);
        if (!dec->rows)
            png_error(dec->png, "cannot allocate the interlaced image");
        for (pass = 0; pass < passes; pass++)
            for (y = 0; y < dec->height; y++)
                png_read_row(dec->png, dec->rows + (size_t)y * row_len,
                             NULL);
        for (y = 0; y < dec->height; y++)
            row_push(dec, dec->rows + (size_t)y * row_len);
    }
    png_read_end(dec->png, dec->info);
    dec->valid = png_get_valid(dec->png, dec->info, 0xffffffffu);
    png_color_read(dec);
    return IMG_OK;
}

/* Whether the lossless copy keeps a chunk: the critical ones and the
 * colour and layout chunks that libpng accepted, before the image data.
 * Text, time, EXIF, animation (acTL, fcTL, fdAT) and private chunks go. */
static int chunk_kept(const struct png_chunk *chunk, png_uint_32 valid,
                      int before_idat)
{
    static const struct {
        const char *type;
        png_uint_32 flag;
    } ancillary[] = {
        { "tRNS", PNG_INFO_tRNS }, { "gAMA", PNG_INFO_gAMA },
        { "cHRM", PNG_INFO_cHRM }, { "sRGB", PNG_INFO_sRGB },
        { "iCCP", PNG_INFO_iCCP }, { "sBIT", PNG_INFO_sBIT },
        { "bKGD", PNG_INFO_bKGD }, { "hIST", PNG_INFO_hIST },
        { "pHYs", PNG_INFO_pHYs }, { "sPLT", PNG_INFO_sPLT },
    };
    size_t i;

    if (strcmp(chunk->type, "IHDR") == 0 || strcmp(chunk->type, "PLTE") == 0 ||
        strcmp(chunk->type, "IDAT") == 0 || strcmp(chunk->type, "IEND") == 0)
        return 1;
    if (!before_idat || !chunk->crc_ok)
        return 0;
    for (i = 0; i < sizeof(ancillary) / sizeof(ancillary[0]); i++)
        if (strcmp(chunk->type, ancillary[i].type) == 0)
            return (valid & ancillary[i].flag) != 0;
    return 0;
}

static void chunk_write(struct img_writer *out, const struct png_chunk *chunk)
{
    unsigned char head[8], tail[4];
    uLong crc;

    head[0] = (unsigned char)(chunk->length >> 24);
    head[1] = (unsigned char)(chunk->length >> 16);
    head[2] = (unsigned char)(chunk->length >> 8);
    head[3] = (unsigned char)chunk->length;
    memcpy(head + 4, chunk->type, 4);
    crc = crc32(0, head + 4, 4);
    crc = crc32(crc, chunk->data, chunk->length);
    tail[0] = (unsigned char)(crc >> 24);
    tail[1] = (unsigned char)(crc >> 16);
    tail[2] = (unsigned char)(crc >> 8);
    tail[3] = (unsigned char)crc;
    img_writer_put(out, head, sizeof(head));
    img_writer_put(out, chunk->data, chunk->length);
    img_writer_put(out, tail, sizeof(tail));
}

/* Copy a PNG that libpng decoded without error, keeping only the chunks
 * chunk_kept allows (one of each kind but sPLT), up to IEND. */
static enum img_status png_strip(const struct img_input *in, png_uint_32 valid,
                                 struct img_writer *out,
                                 struct img_error *err)
{
    struct png_chunk chunk;
    size_t pos = sizeof(png_signature);
    int before_idat = 1;
    char seen[16][5];
    size_t n_seen = 0, i;

    img_writer_put(out, png_signature, sizeof(png_signature));
    while (chunk_next(in, &pos, &chunk)) {
        int dup = 0;

        if (strcmp(chunk.type, "IDAT") == 0)
            before_idat = 0;
        if (!chunk_kept(&chunk, valid, before_idat))
            continue;
        if (strcmp(chunk.type, "IDAT") != 0 &&
            strcmp(chunk.type, "sPLT") != 0) {
            for (i = 0; i < n_seen; i++)
                dup |= strcmp(seen[i], chunk.type) == 0;
            if (dup)
                continue;
            if (n_seen < 16)
                memcpy(seen[n_seen++], chunk.type, 5);
        }
        chunk_write(out, &chunk);
        if (strcmp(chunk.type, "IEND") == 0)
            return IMG_OK;
    }
    img_error_set(err, IMG_EUNSUPPORTED, "png: no IEND chunk");
    return IMG_EUNSUPPORTED;
}

static void png_on_write(png_structp png, png_bytep data, size_t len)
{
    img_writer_put(png_get_io_ptr(png), data, len);
}

static void png_on_flush(png_structp png)
{
    (void)png;
}

static const int png_color_types[5] = {
    0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
    PNG_COLOR_TYPE_RGB_ALPHA,
};

static enum img_status png_encode_run(png_structp png, png_infop info,
                                      const struct img_pixels *px,
                                      const struct png_color_info *color,
                                      struct img_writer *out,
                                      struct img_error *err)
{
    const png_fixed_point *c = color->chrm;
    uint32_t y;

    if (setjmp(png_jmpbuf(png)))
        return err->status;
    png_set_write_fn(png, out, png_on_write, png_on_flush);
    png_set_benign_errors(png, 1);
    png_set_compression_level(png, IMG_PNG_ZLIB_LEVEL);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
    png_set_IHDR(png, info, px->width, px->height, 8,
                 png_color_types[px->channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    if (color->has_gama)
        png_set_gAMA_fixed(png, info, color->gama);
    if (color->has_chrm)
        png_set_cHRM_fixed(png, info, c[0], c[1], c[2], c[3], c[4], c[5],
                           c[6], c[7]);
    if (color->icc)
        png_set_iCCP(png, info, color->icc_name, PNG_COMPRESSION_TYPE_BASE,
                     color->icc, color->icc_len);
    else if (color->has_srgb)
        png_set_sRGB(png, info, color->srgb_intent);
    png_write_info(png, info);
    for (y = 0; y < px->height; y++)
        png_write_row(png, px->data + (size_t)y * px->stride);
    png_write_end(png, info);
    return IMG_OK;
}

static enum img_status png_encode(const struct img_pixels *px,
                                  const struct png_color_info *color,
                                  struct img_writer *out,
                                  struct img_error *err)
{
    struct png_decode ctx;      /* only its error record is used */
    png_structp png;
    png_infop info = NULL;
    enum img_status status;

    ctx.err = err;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                  png_on_warning);
    if (png)
        info = png_create_info_struct(png);
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        img_error_set(err, IMG_ENOMEM, "png: cannot create the encoder");
        return IMG_ENOMEM;
    }
    status = png_encode_run(png, info, px, color, out, err);
    png_destroy_write_struct(&png, &info);
    return status;
}

static enum img_status png_decode_open(struct png_decode *dec)
{
    dec->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, dec,
                                      png_on_error, png_on_warning);
    if (dec->png)
        dec->info = png_create_info_struct(dec->png);
    if (!dec->png || !dec->info) {
        img_error_set(dec->err, IMG_ENOMEM, "png: cannot create the decoder");
        return IMG_ENOMEM;
    }
    return IMG_OK;
}

static void png_decode_close(struct png_decode *dec)
{
    if (dec->png)
        png_destroy_read_struct(&dec->png, &dec->info, NULL);
    img_sink_release(&dec->sink);
    free(dec->rows);
    free(dec->expanded);
    free(dec->color.icc);
}

enum img_status img_png_process(const struct img_input *in,
                                struct img_writer *out,
                                const struct img_limits *limits,
                                struct img_result *result,
                                struct img_error *err)
{
    struct png_decode dec;
    uint32_t up_w, up_h, width, height;
    int orientation, swap;
    enum img_status status;

    memset(&dec, 0, sizeof(dec));
    dec.in = in;
    dec.limits = limits;
    dec.err = err;
    if (png_ihdr_size(in, &up_w, &up_h) &&
        (uint64_t)up_w * up_h > limits->max_pixels) {
        img_error_set(err, IMG_ETOOLARGE, "png: %ux%u is more than %llu "
                      "pixels", (unsigned)up_w, (unsigned)up_h,
                      (unsigned long long)limits->max_pixels);
        return IMG_ETOOLARGE;
    }

    status = png_decode_open(&dec);
    if (status != IMG_OK)
        goto out;
    status = png_header_read(&dec);
    if (status != IMG_OK)
        goto out;
    if ((uint64_t)dec.width * dec.height > limits->max_pixels) {
        status = IMG_ETOOLARGE;
        img_error_set(err, status, "png: %ux%u is more than %llu pixels",
                      (unsigned)dec.width, (unsigned)dec.height,
                      (unsigned long long)limits->max_pixels);
        goto out;
    }

    orientation = png_orientation(in);
    swap = img_orientation_swaps(orientation);
    up_w = swap ? dec.height : dec.width;
    up_h = swap ? dec.width : dec.height;
    img_fit_compute(limits, up_w, up_h, &width, &height);
    result->width = width;
    result->height = height;
    dec.target_width = swap ? height : width;
    dec.target_height = swap ? width : height;

    status = png_pixels_read(&dec);
    if (status != IMG_OK)
        goto out;
    if (width == up_w && height == up_h && orientation == 1 &&
        dec.bit_depth <= 8 && !dec.palette_overflow) {
        status = png_strip(in, dec.valid, out, err);
        goto out;
    }

    result->reencoded = 1;
    status = img_pixels_orient(&dec.sink.out, orientation, err);
    if (status == IMG_OK)
        status = png_encode(&dec.sink.out, &dec.color, out, err);
out:
    png_decode_close(&dec);
    return status;
}
