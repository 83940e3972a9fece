/*
 * Streaming Lanczos-3 resampler. Decoded rows arrive top to bottom; a ring
 * of as many rows as the vertical filter has taps holds the rows that
 * later output rows still need, so the full decoded image is never held.
 * Each output row is filtered vertically first (into 16-bit intermediates
 * with 6 fraction bits) and then horizontally.
 *
 * All arithmetic is integer with 14-bit filter coefficients, so the output
 * is a function of the input bytes alone. Alpha is premultiplied before
 * filtering and divided out after, so that transparent pixels do not bleed
 * their colour into the edges of opaque ones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "img_int.h"

#define COEF_BITS 14
#define COEF_ONE (1 << COEF_BITS)
/* Fraction bits of the 16-bit values between the two passes. */
#define MID_BITS 6
#define LANCZOS_A 3.0

/* GCC's -O2 does not vectorize loops of unknown length; the two filter
 * passes are most of the time spent on a large image. */
#if defined(__GNUC__) && !defined(__clang__)
#define HOT_LOOP __attribute__((optimize("O3")))
#else
#define HOT_LOOP
#endif

/* The coefficients of one direction: output i takes `count[i]` inputs
 * starting at `start[i]`, weighted by coef[i * taps ...]. */
struct img_filter {
    uint32_t out_len;
    uint32_t taps;
    uint32_t *start;
    uint32_t *count;
    int16_t *coef;
};

struct img_resampler {
    struct img_filter horizontal;
    struct img_filter vertical;
    unsigned channels;
    int has_alpha;
    size_t in_row_len;          /* in_width * channels */
    unsigned char *ring;        /* vertical.taps rows of in_row_len */
    int32_t *acc;               /* in_row_len */
    int16_t *mid;               /* in_row_len */
    uint32_t next_out;
};

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos3(double x)
{
    if (x <= -LANCZOS_A || x >= LANCZOS_A)
        return 0.0;
    return sinc(x) * sinc(x / LANCZOS_A);
}

static void filter_release(struct img_filter *f)
{
    free(f->start);
    free(f->count);
    free(f->coef);
}

/* Convert one output's weights to integers that add up to COEF_ONE exactly
 * and drop zero taps at both ends. */
static void filter_quantize(const double *w, uint32_t n, uint32_t *first,
                            uint32_t *count, int16_t *coef)
{
    double sum = 0.0;
    int32_t total = 0;
    uint32_t i, best = 0, lo = 0, hi = n;

    for (i = 0; i < n; i++)
        sum += w[i];
    for (i = 0; i < n; i++) {
        double v = sum != 0.0 ? w[i] / sum : (i == n / 2);

        coef[i] = (int16_t)lrint(v * COEF_ONE);
        total += coef[i];
        if (coef[i] > coef[best])
            best = i;
    }
    coef[best] = (int16_t)(coef[best] + COEF_ONE - total);

    while (lo + 1 < hi && coef[lo] == 0)
        lo++;
    while (hi - 1 > lo && coef[hi - 1] == 0)
        hi--;
    if (lo > 0)
        memmove(coef, coef + lo, (hi - lo) * sizeof(*coef));
    *first += lo;
    *count = hi - lo;
}

static int filter_build(struct img_filter *f, uint32_t in_len,
                        uint32_t out_len)
{
    double scale = (double)in_len / out_len;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = LANCZOS_A * fscale;
    double *w = NULL;
    uint32_t taps = (uint32_t)ceil(2.0 * support) + 2;
    uint32_t i;

    if (taps > in_len)
        taps = in_len;
    f->out_len = out_len;
    f->taps = taps;
    f->start = calloc(out_len, sizeof(*f->start));
    f->count = calloc(out_len, sizeof(*f->count));
    f->coef = calloc((size_t)out_len * taps, sizeof(*f->coef));
    w = calloc(taps, sizeof(*w));
    if (!f->start || !f->count || !f->coef || !w) {
        free(w);
        filter_release(f);
        return -1;
    }

    for (i = 0; i < out_len; i++) {
        double center = (i + 0.5) * scale;
        double lo = floor(center - support + 0.5);
        double hi = floor(center + support + 0.5);
        uint32_t first, n, k;

        if (lo < 0.0)
            lo = 0.0;
        if (hi > in_len)
            hi = in_len;
        first = (uint32_t)lo;
        n = (uint32_t)(hi - lo);
        if (n > taps)
            n = taps;
        if (n == 0) {
            /* Cannot happen for out_len <= in_len * 2; keep one tap. */
            first = (uint32_t)(center < in_len ? center : in_len - 1);
            n = 1;
        }
        for (k = 0; k < n; k++)
            w[k] = lanczos3((first + k + 0.5 - center) / fscale);
        f->start[i] = first;
        filter_quantize(w, n, &f->start[i], &f->count[i],
                        f->coef + (size_t)i * taps);
    }
    free(w);
    return 0;
}

static void row_premultiply(unsigned char *row, size_t pixels,
                            unsigned channels)
{
    size_t i;
    unsigned c;

    for (i = 0; i < pixels; i++) {
        unsigned char *p = row + i * channels;
        unsigned a = p[channels - 1];

        for (c = 0; c + 1 < channels; c++)
            p[c] = (unsigned char)((p[c] * a + 127) / 255);
    }
}

static void row_unpremultiply(unsigned char *row, size_t pixels,
                              unsigned channels)
{
    size_t i;
    unsigned c;

    for (i = 0; i < pixels; i++) {
        unsigned char *p = row + i * channels;
        unsigned a = p[channels - 1];

        for (c = 0; c + 1 < channels; c++) {
            unsigned v = a ? (p[c] * 255u + a / 2) / a : 0;

            p[c] = (unsigned char)(v > 255 ? 255 : v);
        }
    }
}

static unsigned char clamp_u8(int32_t v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Weighted sum of the ring rows that output row `j` needs, into `mid`. */
HOT_LOOP static void pass_vertical(struct img_resampler *rs, uint32_t j)
{
    const struct img_filter *f = &rs->vertical;
    const int16_t *coef = f->coef + (size_t)j * f->taps;
    int32_t *restrict acc = rs->acc;
    int16_t *restrict mid = rs->mid;
    size_t n = rs->in_row_len, x;
    uint32_t t;

    memset(acc, 0, n * sizeof(*acc));
    for (t = 0; t < f->count[j]; t++) {
        const unsigned char *restrict src =
            rs->ring + ((f->start[j] + t) % f->taps) * n;
        int32_t c = coef[t];

        for (x = 0; x < n; x++)
            acc[x] += src[x] * c;
    }
    for (x = 0; x < n; x++)
        mid[x] = (int16_t)((acc[x] + (1 << (COEF_BITS - MID_BITS - 1))) >>
                           (COEF_BITS - MID_BITS));
}

/* Horizontal pass for a fixed channel count, so that the compiler unrolls
 * the channel loop. */
HOT_LOOP static inline void pass_horizontal_n(const struct img_filter *f,
                                     const int16_t *restrict mid,
                                     unsigned char *restrict out,
                                     unsigned channels)
{
    const int32_t round = 1 << (COEF_BITS + MID_BITS - 1);
    uint32_t i, t;
    unsigned c;

    for (i = 0; i < f->out_len; i++) {
        const int16_t *coef = f->coef + (size_t)i * f->taps;
        const int16_t *src = mid + (size_t)f->start[i] * channels;
        int32_t acc[4] = { round, round, round, round };

        for (t = 0; t < f->count[i]; t++) {
            for (c = 0; c < channels; c++)
                acc[c] += src[c] * coef[t];
            src += channels;
        }
        for (c = 0; c < channels; c++)
            out[c] = clamp_u8(acc[c] >> (COEF_BITS + MID_BITS));
        out += channels;
    }
}

HOT_LOOP static void pass_horizontal(const struct img_resampler *rs,
                            unsigned char *out)
{
    const struct img_filter *f = &rs->horizontal;

    switch (rs->channels) {
    case 1:
        pass_horizontal_n(f, rs->mid, out, 1);
        break;
    case 2:
        pass_horizontal_n(f, rs->mid, out, 2);
        break;
    case 3:
        pass_horizontal_n(f, rs->mid, out, 3);
        break;
    default:
        pass_horizontal_n(f, rs->mid, out, 4);
        break;
    }
}

static void resampler_free(struct img_resampler *rs)
{
    if (!rs)
        return;
    filter_release(&rs->horizontal);
    filter_release(&rs->vertical);
    free(rs->ring);
    free(rs->acc);
    free(rs->mid);
    free(rs);
}

static struct img_resampler *resampler_new(uint32_t in_width,
                                           uint32_t in_height,
                                           uint32_t out_width,
                                           uint32_t out_height,
                                           unsigned channels, int has_alpha)
{
    struct img_resampler *rs = calloc(1, sizeof(*rs));

    if (!rs)
        return NULL;
    rs->channels = channels;
    rs->has_alpha = has_alpha;
    rs->in_row_len = (size_t)in_width * channels;
    if (filter_build(&rs->horizontal, in_width, out_width) != 0 ||
        filter_build(&rs->vertical, in_height, out_height) != 0)
        goto fail;
    rs->ring = malloc(rs->in_row_len * rs->vertical.taps);
    rs->acc = malloc(rs->in_row_len * sizeof(*rs->acc));
    rs->mid = malloc(rs->in_row_len * sizeof(*rs->mid));
    if (!rs->ring || !rs->acc || !rs->mid)
        goto fail;
    return rs;
fail:
    resampler_free(rs);
    return NULL;
}

enum img_status img_sink_init(struct img_sink *sink, uint32_t in_width,
                              uint32_t in_height, uint32_t out_width,
                              uint32_t out_height, unsigned channels,
                              int has_alpha, struct img_error *err)
{
    enum img_status status;

    memset(sink, 0, sizeof(*sink));
    sink->in_width = in_width;
    sink->in_height = in_height;
    status = img_pixels_alloc(&sink->out, out_width, out_height, channels,
                              err);
    if (status != IMG_OK)
        return status;
    if (in_width == out_width && in_height == out_height)
        return IMG_OK;
    sink->resampler = resampler_new(in_width, in_height, out_width,
                                    out_height, channels, has_alpha);
    if (!sink->resampler) {
        img_pixels_release(&sink->out);
        img_error_set(err, IMG_ENOMEM, "cannot allocate the resampler");
        return IMG_ENOMEM;
    }
    return IMG_OK;
}

void img_sink_push(struct img_sink *sink, const unsigned char *row)
{
    struct img_resampler *rs = sink->resampler;
    uint32_t r = sink->rows_pushed;
    unsigned char *slot;

    if (r >= sink->in_height)
        return;
    sink->rows_pushed++;
    if (!rs) {
        memcpy(sink->out.data + (size_t)r * sink->out.stride, row,
               sink->out.stride);
        return;
    }

    slot = rs->ring + (size_t)(r % rs->vertical.taps) * rs->in_row_len;
    memcpy(slot, row, rs->in_row_len);
    if (rs->has_alpha)
        row_premultiply(slot, sink->in_width, rs->channels);

    while (rs->next_out < rs->vertical.out_len &&
           rs->vertical.start[rs->next_out] +
           rs->vertical.count[rs->next_out] <= r + 1) {
        unsigned char *out = sink->out.data +
                             (size_t)rs->next_out * sink->out.stride;

        pass_vertical(rs, rs->next_out);
        pass_horizontal(rs, out);
        if (rs->has_alpha)
            row_unpremultiply(out, sink->out.width, rs->channels);
        rs->next_out++;
    }
}

void img_sink_release(struct img_sink *sink)
{
    resampler_free(sink->resampler);
    sink->resampler = NULL;
    img_pixels_release(&sink->out);
}
