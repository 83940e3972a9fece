/*
 * Streaming Lanczos-3 resampler. Decoded rows arrive top to bottom; a ring
 * of as many rows as the vertical filter has taps keeps the rows that
 * later output rows still need, so the full decoded image is never stored.
 * Each output row is filtered vertically first (into 16-bit intermediates
 * with 6 fraction bits) and then horizontally. Colour rows are padded to 4
 * channels in the ring, so that both passes use SSE2 multiply-adds on
 * pairs of taps (pmaddwd) without shuffling channels.
 *
 * All arithmetic is integer with 14-bit filter coefficients, so the output
 * is a function of the input bytes alone. Alpha is premultiplied before
 * filtering and divided out after, so that transparent pixels do not bleed
 * their colour into the edges of opaque ones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "img_int.h"

#define COEF_BITS 14
#define COEF_ONE (1 << COEF_BITS)
/* Fraction bits of the 16-bit values between the two passes. */
#define MID_BITS 6
#define LANCZOS_A 3.0

/* Most filter coefficients (both directions) the resampler computes. A
 * 100 Mpx photo needs about 130,000. Only extreme aspect ratios come near:
 * 1 x 3,000,000 pixels needs 18 million, which took 2 s to compute. */
#define MAX_COEFFICIENTS (1u << 22)

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
    unsigned mid_channels;      /* 1 for gray, else 4 (padded) */
    size_t ring_row_len;        /* in_width * mid_channels */
    unsigned char *ring;        /* vertical.taps rows of ring_row_len */
    const unsigned char **taps; /* ring rows of the current output row */
    int32_t *acc;               /* ring_row_len */
    int16_t *mid;               /* in_width + taps pixels, zero padded */
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
    if (lo > 0) {
        memmove(coef, coef + lo, (hi - lo) * sizeof(*coef));
        memset(coef + (hi - lo), 0, lo * sizeof(*coef));
    }
    *first += lo;
    *count = hi - lo;
}

/* Width of the coefficient rows of a filter from in_len to out_len: every
 * input within the Lanczos support, made even so that the passes can take
 * taps in pairs (the extra coefficient is zero). */
static uint32_t filter_taps(uint32_t in_len, uint32_t out_len)
{
    double scale = (double)in_len / out_len;
    double support = LANCZOS_A * (scale > 1.0 ? scale : 1.0);
    double taps = ceil(2.0 * support) + 2;
    uint32_t n = taps < in_len ? (uint32_t)taps : in_len;

    return n + (n & 1);
}

static int filter_build(struct img_filter *f, uint32_t in_len,
                        uint32_t out_len)
{
    double scale = (double)in_len / out_len;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = LANCZOS_A * fscale;
    double *w = NULL;
    uint32_t taps = filter_taps(in_len, out_len);
    uint32_t i;

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

/* Premultiply a row of `pixels` pixels spaced `stride` bytes apart. */
static void row_premultiply(unsigned char *row, size_t pixels,
                            unsigned channels, unsigned stride)
{
    size_t i;
    unsigned c;

    for (i = 0; i < pixels; i++) {
        unsigned char *p = row + i * stride;
        unsigned a = p[channels - 1];

        if (a == 255)
            continue;
        /* Rounds p * a / 255 exactly for 8-bit p and a. */
        for (c = 0; c + 1 < channels; c++) {
            unsigned x = p[c] * a + 128;

            p[c] = (unsigned char)((x + (x >> 8)) >> 8);
        }
    }
}

/* Copy a row of `channels` channels into the ring, spacing pixels
 * `stride` bytes apart; the padding bytes stay zero. */
static void row_pad(unsigned char *restrict dst,
                    const unsigned char *restrict src, size_t pixels,
                    unsigned channels, unsigned stride)
{
    size_t i;
    unsigned c;

    if (channels == stride) {
        memcpy(dst, src, pixels * channels);
    } else if (channels == 3) {
        for (i = 0; i < pixels; i++, dst += stride, src += 3) {
            dst[0] = src[0];
            dst[1] = src[1];
            dst[2] = src[2];
        }
    } else if (channels == 2) {
        for (i = 0; i < pixels; i++, dst += stride, src += 2) {
            dst[0] = src[0];
            dst[1] = src[1];
        }
    } else {
        for (i = 0; i < pixels; i++)
            for (c = 0; c < channels; c++)
                dst[i * stride + c] = src[i * channels + c];
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

        if (a == 255)
            continue;
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

static inline int16_t mid_value(int32_t acc)
{
    return (int16_t)((acc + (1 << (COEF_BITS - MID_BITS - 1))) >>
                     (COEF_BITS - MID_BITS));
}

#ifdef __SSE2__
/* Add two taps of 16 bytes each to four accumulators of 4 int32. */
static inline void vertical_pair(__m128i acc[4], const unsigned char *a,
                                 const unsigned char *b, __m128i c)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i ra = _mm_loadu_si128((const __m128i *)a);
    __m128i rb = _mm_loadu_si128((const __m128i *)b);
    __m128i alo = _mm_unpacklo_epi8(ra, zero), ahi = _mm_unpackhi_epi8(ra, zero);
    __m128i blo = _mm_unpacklo_epi8(rb, zero), bhi = _mm_unpackhi_epi8(rb, zero);

    acc[0] = _mm_add_epi32(acc[0], _mm_madd_epi16(_mm_unpacklo_epi16(alo, blo), c));
    acc[1] = _mm_add_epi32(acc[1], _mm_madd_epi16(_mm_unpackhi_epi16(alo, blo), c));
    acc[2] = _mm_add_epi32(acc[2], _mm_madd_epi16(_mm_unpacklo_epi16(ahi, bhi), c));
    acc[3] = _mm_add_epi32(acc[3], _mm_madd_epi16(_mm_unpackhi_epi16(ahi, bhi), c));
}
#endif

/*
 * Weighted sum of the ring rows that output row `j` needs, into `mid`.
 * The SSE2 loop does 16 bytes at a time with every tap, so its sums stay
 * in registers; the plain C loop does the rest and gives the same values.
 */
HOT_LOOP static void pass_vertical(struct img_resampler *rs, uint32_t j)
{
    const struct img_filter *f = &rs->vertical;
    const int16_t *coef = f->coef + (size_t)j * f->taps;
    const unsigned char **rows = rs->taps;
    uint32_t count = f->count[j], t;
    int32_t *restrict acc = rs->acc;
    int16_t *restrict mid = rs->mid;
    size_t n = rs->ring_row_len, x = 0;

    for (t = 0; t < count; t++)
        rows[t] = rs->ring + ((f->start[j] + t) % f->taps) * n;
    /* An odd count pairs its last tap with a zero coefficient. */
    rows[count] = rows[0];

#ifdef __SSE2__
    for (; x + 16 <= n; x += 16) {
        const __m128i round = _mm_set1_epi32(1 << (COEF_BITS - MID_BITS - 1));
        __m128i sum[4] = { round, round, round, round };

        for (t = 0; t < count; t += 2) {
            __m128i c = _mm_set1_epi32((int32_t)((uint32_t)(uint16_t)coef[t] |
                                       (uint32_t)(uint16_t)coef[t + 1] << 16));

            vertical_pair(sum, rows[t] + x, rows[t + 1] + x, c);
        }
        for (t = 0; t < 4; t++)
            sum[t] = _mm_srai_epi32(sum[t], COEF_BITS - MID_BITS);
        _mm_storeu_si128((__m128i *)(mid + x), _mm_packs_epi32(sum[0], sum[1]));
        _mm_storeu_si128((__m128i *)(mid + x + 8),
                         _mm_packs_epi32(sum[2], sum[3]));
    }
#endif
    if (x == n)
        return;
    memset(acc + x, 0, (n - x) * sizeof(*acc));
    for (t = 0; t < count; t++) {
        const unsigned char *restrict src = rows[t];
        int32_t c = coef[t];
        size_t k;

        for (k = x; k < n; k++)
            acc[k] += src[k] * c;
    }
    for (; x < n; x++)
        mid[x] = mid_value(acc[x]);
}

/* Horizontal pass of a gray row. */
HOT_LOOP static void pass_horizontal_gray(const struct img_filter *f,
                                          const int16_t *restrict mid,
                                          unsigned char *restrict out)
{
    uint32_t i, t;

    for (i = 0; i < f->out_len; i++) {
        const int16_t *coef = f->coef + (size_t)i * f->taps;
        const int16_t *src = mid + f->start[i];
        int32_t acc = 1 << (COEF_BITS + MID_BITS - 1);

        for (t = 0; t < f->count[i]; t++)
            acc += src[t] * coef[t];
        out[i] = clamp_u8(acc >> (COEF_BITS + MID_BITS));
    }
}

/*
 * Horizontal pass of a row padded to 4 channels, writing `channels` (2, 3
 * or 4) per output pixel. Taps go in pairs; an odd count reads one pixel
 * more, which the zero coefficient cancels and the padding of `mid` keeps
 * in bounds. The SSE2 and the plain C loops compute the same integers.
 */
HOT_LOOP static void pass_horizontal_quad(const struct img_filter *f,
                                          const int16_t *restrict mid,
                                          unsigned char *restrict out,
                                          unsigned channels)
{
    const int32_t round = 1 << (COEF_BITS + MID_BITS - 1);
    uint32_t i, t;

    for (i = 0; i < f->out_len; i++, out += channels) {
        const int16_t *coef = f->coef + (size_t)i * f->taps;
        const int16_t *src = mid + (size_t)f->start[i] * 4;
        unsigned char px[4];
#ifdef __SSE2__
        __m128i acc = _mm_set1_epi32(round);
        __m128i packed;
        uint32_t v;

        for (t = 0; t < f->count[i]; t += 2, src += 8) {
            __m128i two = _mm_loadu_si128((const __m128i *)src);
            /* r0 r1 g0 g1 b0 b1 a0 a1: each 32-bit lane gets a pair. */
            __m128i pairs = _mm_unpacklo_epi16(two, _mm_srli_si128(two, 8));
            __m128i c = _mm_set1_epi32((int32_t)((uint32_t)(uint16_t)coef[t] |
                                       (uint32_t)(uint16_t)coef[t + 1] << 16));

            acc = _mm_add_epi32(acc, _mm_madd_epi16(pairs, c));
        }
        acc = _mm_srai_epi32(acc, COEF_BITS + MID_BITS);
        packed = _mm_packs_epi32(acc, acc);
        packed = _mm_packus_epi16(packed, packed);
        v = (uint32_t)_mm_cvtsi128_si32(packed);
        px[0] = (unsigned char)v;
        px[1] = (unsigned char)(v >> 8);
        px[2] = (unsigned char)(v >> 16);
        px[3] = (unsigned char)(v >> 24);
#else
        int32_t acc[4] = { round, round, round, round };
        unsigned c;

        for (t = 0; t < f->count[i]; t++, src += 4)
            for (c = 0; c < 4; c++)
                acc[c] += src[c] * coef[t];
        for (c = 0; c < 4; c++)
            px[c] = clamp_u8(acc[c] >> (COEF_BITS + MID_BITS));
#endif
        out[0] = px[0];
        out[1] = px[1];
        if (channels > 2)
            out[2] = px[2];
        if (channels > 3)
            out[3] = px[3];
    }
}

static void pass_horizontal(const struct img_resampler *rs,
                            unsigned char *out)
{
    if (rs->mid_channels == 1)
        pass_horizontal_gray(&rs->horizontal, rs->mid, out);
    else
        pass_horizontal_quad(&rs->horizontal, rs->mid, out, rs->channels);
}

static void resampler_free(struct img_resampler *rs)
{
    if (!rs)
        return;
    filter_release(&rs->horizontal);
    filter_release(&rs->vertical);
    free(rs->ring);
    free(rs->taps);
    free(rs->acc);
    free(rs->mid);
    free(rs);
}

/*
 * Bytes the resampler will allocate, computed before anything is. An
 * extreme aspect ratio (say 1 x 100,000,000 pixels) needs a filter with
 * millions of taps per output pixel; this lets img_sink_init reject it
 * instead of allocating and computing that filter. UINT64_MAX when the
 * filters would have more than MAX_COEFFICIENTS coefficients.
 */
static uint64_t resampler_bytes(uint32_t in_width, uint32_t in_height,
                                uint32_t out_width, uint32_t out_height,
                                unsigned channels)
{
    uint64_t h_taps = filter_taps(in_width, out_width);
    uint64_t v_taps = filter_taps(in_height, out_height);
    uint64_t row = (uint64_t)in_width * (channels == 1 ? 1 : 4);

    if (h_taps * out_width + v_taps * out_height > MAX_COEFFICIENTS)
        return UINT64_MAX;
    return (h_taps * out_width + v_taps * out_height) * 2 +
           (uint64_t)(out_width + out_height) * 8 +
           v_taps * row + row * 4 + (in_width + h_taps + 1) * 4 * 2;
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
    rs->mid_channels = channels == 1 ? 1 : 4;
    rs->ring_row_len = (size_t)in_width * rs->mid_channels;
    if (filter_build(&rs->horizontal, in_width, out_width) != 0 ||
        filter_build(&rs->vertical, in_height, out_height) != 0)
        goto fail;
    rs->ring = calloc(rs->vertical.taps, rs->ring_row_len);
    rs->taps = calloc(rs->vertical.taps + 1, sizeof(*rs->taps));
    rs->acc = malloc(rs->ring_row_len * sizeof(*rs->acc));
    rs->mid = calloc(((size_t)in_width + rs->horizontal.taps + 1) *
                     rs->mid_channels, sizeof(*rs->mid));
    if (!rs->ring || !rs->taps || !rs->acc || !rs->mid)
        goto fail;
    return rs;
fail:
    resampler_free(rs);
    return NULL;
}

enum img_status img_sink_init(struct img_sink *sink, uint32_t in_width,
                              uint32_t in_height, uint32_t out_width,
                              uint32_t out_height, unsigned channels,
                              int has_alpha, uint64_t max_bytes,
                              struct img_error *err)
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
    if (resampler_bytes(in_width, in_height, out_width, out_height,
                        channels) > max_bytes) {
        img_pixels_release(&sink->out);
        img_error_set(err, IMG_ETOOLARGE, "resampling %ux%u to %ux%u needs "
                      "more than %llu bytes or %u filter coefficients",
                      (unsigned)in_width, (unsigned)in_height,
                      (unsigned)out_width, (unsigned)out_height,
                      (unsigned long long)max_bytes, MAX_COEFFICIENTS);
        return IMG_ETOOLARGE;
    }
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

    slot = rs->ring + (size_t)(r % rs->vertical.taps) * rs->ring_row_len;
    row_pad(slot, row, sink->in_width, rs->channels, rs->mid_channels);
    if (rs->has_alpha)
        row_premultiply(slot, sink->in_width, rs->channels,
                        rs->mid_channels);

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
