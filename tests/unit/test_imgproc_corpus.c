/*
 * Data-driven test of imgproc over the shared image corpus: one cmocka test
 * per row of tests/corpus/expected.tsv (format documented at its top). The
 * corpus folder is $BLOBD_CORPUS (default ../shared/corpus/images) and the
 * table is $BLOBD_CORPUS_TABLE (default tests/corpus/expected.tsv), both
 * relative to the repository root. Every test is skipped when the corpus
 * folder is missing.
 *
 * For each file: img_sniff must agree with the table; an image must get the
 * expected status, stored size (+-1 px), format and alpha, carry no EXIF,
 * XMP or text metadata, and give the same bytes on a second run. Where the
 * table names a reference, the stored picture must match the reference's
 * stored picture under `ref_orient` better than under any other
 * orientation of the same shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>

#include "img.h"

#define MAX_ROWS 1024
/* Largest mean absolute difference (0-255 per channel) between a stored
 * picture and its reference; JPEG generations of one photo stay far
 * below it, a wrong orientation or a colour negative goes far above. */
#define MAX_REFERENCE_DIFF 30.0

struct row {
    char file[256];
    char outcome[16];
    char error[16];
    char format[8];
    long width;
    long height;
    char alpha[4];
    char reference[256];
    int ref_orient;
};

/* Bytes of a file, or of one img_process output. */
struct blob {
    unsigned char *data;
    size_t len;
};

/* RGBA pixels decoded from a stored output. */
struct picture {
    int width;
    int height;
    unsigned char *rgba;
};

static struct row rows[MAX_ROWS];
static size_t row_count;

static const char *env_or(const char *name, const char *fallback)
{
    const char *value = getenv(name);

    return value && *value ? value : fallback;
}

static const char *corpus_dir(void)
{
    return env_or("BLOBD_CORPUS", "../shared/corpus/images");
}

static int corpus_present(void)
{
    struct stat st;

    return stat(corpus_dir(), &st) == 0 && S_ISDIR(st.st_mode);
}

static void field_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static long field_number(const char *s)
{
    return strcmp(s, "-") == 0 ? -1 : strtol(s, NULL, 10);
}

/* Load the table; returns the number of rows, or -1 when it is missing. */
static int table_load(void)
{
    const char *path = env_or("BLOBD_CORPUS_TABLE",
                              "tests/corpus/expected.tsv");
    FILE *f = fopen(path, "r");
    char line[2048];
    int header_seen = 0;

    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f) && row_count < MAX_ROWS) {
        char *fields[10];
        char *save = NULL, *tok;
        int n = 0;
        struct row *r = &rows[row_count];

        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (!header_seen) {
            header_seen = 1;
            continue;
        }
        for (tok = strtok_r(line, "\t", &save); tok && n < 10;
             tok = strtok_r(NULL, "\t", &save))
            fields[n++] = tok;
        if (n < 9) {
            fprintf(stderr, "%s: short line for %s\n", path, fields[0]);
            continue;
        }
        field_copy(r->file, sizeof(r->file), fields[0]);
        field_copy(r->outcome, sizeof(r->outcome), fields[1]);
        field_copy(r->error, sizeof(r->error), fields[2]);
        field_copy(r->format, sizeof(r->format), fields[3]);
        r->width = field_number(fields[4]);
        r->height = field_number(fields[5]);
        field_copy(r->alpha, sizeof(r->alpha), fields[6]);
        field_copy(r->reference, sizeof(r->reference), fields[7]);
        r->ref_orient = (int)field_number(fields[8]);
        row_count++;
    }
    fclose(f);
    return (int)row_count;
}

static struct blob file_read(const char *name)
{
    char path[4096];
    struct blob b = { NULL, 0 };
    FILE *f;
    long len;

    snprintf(path, sizeof(path), "%s/%s", corpus_dir(), name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    b.data = malloc((size_t)len + 1);
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, (size_t)len, f), (size_t)len);
    b.len = (size_t)len;
    fclose(f);
    return b;
}

static int memfd_with(const void *data, size_t len)
{
    int fd = memfd_create("corpus", 0);

    assert_true(fd >= 0);
    if (len > 0)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static enum img_status process(const struct blob *in, struct blob *out,
                               struct img_result *result,
                               struct img_error *err)
{
    struct img_limits limits;
    int in_fd = memfd_with(in->data, in->len);
    int out_fd = memfd_with(NULL, 0);
    enum img_status status;
    off_t size;

    img_limits_init(&limits);
    status = img_process(in_fd, out_fd, &limits, result, err);
    size = lseek(out_fd, 0, SEEK_END);
    assert_true(size >= 0);
    out->len = (size_t)size;
    out->data = malloc(out->len + 1);
    assert_non_null(out->data);
    assert_int_equal(pread(out_fd, out->data, out->len, 0),
                     (ssize_t)out->len);
    close(in_fd);
    close(out_fd);
    return status;
}

/* Whether a JPEG has a metadata segment (APP1, APP13 or COM) anywhere up to
 * its first scan. */
static int jpeg_has_metadata(const struct blob *b)
{
    size_t pos = 2;

    while (pos + 4 <= b->len && b->data[pos] == 0xff) {
        int m = b->data[pos + 1];

        if (m == 0xe1 || m == 0xed || m == 0xfe)
            return 1;
        if (m == 0xda)
            return 0;
        pos += 2 + ((size_t)b->data[pos + 2] << 8 | b->data[pos + 3]);
    }
    return 0;
}

static int png_has_chunk(const struct blob *b, const char *type)
{
    size_t pos = 8;

    while (pos + 12 <= b->len) {
        const unsigned char *p = b->data + pos;
        uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                     (uint32_t)p[2] << 8 | p[3];

        if (memcmp(p + 4, type, 4) == 0)
            return 1;
        pos += 12 + (size_t)n;
    }
    return 0;
}

static int png_has_metadata(const struct blob *b)
{
    return png_has_chunk(b, "eXIf") || png_has_chunk(b, "tEXt") ||
           png_has_chunk(b, "zTXt") || png_has_chunk(b, "iTXt") ||
           png_has_chunk(b, "tIME");
}

static int png_has_alpha(const struct blob *b)
{
    /* IHDR colour type is byte 25 of the file. */
    return b->len > 25 && ((b->data[25] & 4) || png_has_chunk(b, "tRNS"));
}

static void jpeg_on_error(j_common_ptr cinfo)
{
    char text[JMSG_LENGTH_MAX];

    (*cinfo->err->format_message)(cinfo, text);
    fail_msg("decoding the stored jpeg failed: %s", text);
}

/* Decode with plain libjpeg, which takes any sampling (TurboJPEG's
 * tjDecompressHeader3 rejects unusual ones). */
static void jpeg_rgba_decode(const struct blob *b, struct picture *pic)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *rgb;
    int x;

    cinfo.err = jpeg_std_error(&jerr);
    jerr.error_exit = jpeg_on_error;
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, b->data, (unsigned long)b->len);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    pic->width = (int)cinfo.output_width;
    pic->height = (int)cinfo.output_height;
    pic->rgba = malloc((size_t)pic->width * pic->height * 4);
    rgb = malloc((size_t)pic->width * 3);
    assert_non_null(pic->rgba);
    assert_non_null(rgb);
    while (cinfo.output_scanline < cinfo.output_height) {
        unsigned char *dst = pic->rgba +
                             (size_t)cinfo.output_scanline * pic->width * 4;

        jpeg_read_scanlines(&cinfo, &rgb, 1);
        for (x = 0; x < pic->width; x++) {
            memcpy(dst + x * 4, rgb + x * 3, 3);
            dst[x * 4 + 3] = 255;
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(rgb);
}

static struct picture picture_decode(const struct blob *b)
{
    struct picture pic = { 0, 0, NULL };

    if (img_sniff(b->data, b->len) == IMG_FORMAT_JPEG) {
        jpeg_rgba_decode(b, &pic);
    } else {
        png_image image;

        memset(&image, 0, sizeof(image));
        image.version = PNG_IMAGE_VERSION;
        assert_true(png_image_begin_read_from_memory(&image, b->data,
                                                     b->len));
        image.format = PNG_FORMAT_RGBA;
        pic.width = (int)image.width;
        pic.height = (int)image.height;
        pic.rgba = malloc(PNG_IMAGE_SIZE(image));
        assert_non_null(pic.rgba);
        assert_true(png_image_finish_read(&image, NULL, pic.rgba, 0, NULL));
    }
    return pic;
}

/* The stored pixel that shows at upright (x, y) under EXIF orientation o
 * (TIFF 6.0 definitions), for a stored image of w x h. */
static void orient_source(int o, int w, int h, int x, int y, int *sx,
                          int *sy)
{
    static const int map[9][2] = {
        { 0, 0 }, { 0, 0 }, { 1, 0 }, { 1, 1 }, { 0, 1 },
        { 0, 0 }, { 0, 1 }, { 1, 1 }, { 1, 0 },
    };
    int a = o >= 5 ? y : x;     /* stored x before mirroring */
    int b = o >= 5 ? x : y;     /* stored y before mirroring */

    *sx = map[o][0] ? w - 1 - a : a;
    *sy = map[o][1] ? h - 1 - b : b;
}

/* Mean absolute RGB difference between `pic` and `ref` seen under
 * orientation o; -1 when the shapes differ. Transparent pixels count as
 * black so that colour hidden under alpha does not matter. */
static double picture_diff(const struct picture *pic,
                           const struct picture *ref, int o)
{
    int up_w = o >= 5 ? ref->height : ref->width;
    int up_h = o >= 5 ? ref->width : ref->height;
    double sum = 0.0;
    int x, y, c;

    if (up_w != pic->width || up_h != pic->height)
        return -1.0;
    for (y = 0; y < up_h; y++) {
        for (x = 0; x < up_w; x++) {
            int sx, sy;
            const unsigned char *p, *q;

            orient_source(o, ref->width, ref->height, x, y, &sx, &sy);
            p = pic->rgba + ((size_t)y * pic->width + x) * 4;
            q = ref->rgba + ((size_t)sy * ref->width + sx) * 4;
            for (c = 0; c < 3; c++)
                sum += abs(p[c] * p[3] / 255 - q[c] * q[3] / 255);
        }
    }
    return sum / ((double)up_w * up_h * 3);
}

static void reference_check(const struct row *r, const struct blob *out)
{
    struct blob ref_in = file_read(r->reference), ref_out;
    struct img_result result;
    struct img_error err;
    struct picture pic, ref;
    double want, other;
    int o;

    assert_int_equal(process(&ref_in, &ref_out, &result, &err), IMG_OK);
    pic = picture_decode(out);
    ref = picture_decode(&ref_out);
    want = picture_diff(&pic, &ref, r->ref_orient);
    if (want < 0 || want > MAX_REFERENCE_DIFF)
        fail_msg("%s differs from %s by %.1f", r->file, r->reference, want);
    for (o = 1; o <= 8; o++) {
        if (o == r->ref_orient)
            continue;
        other = picture_diff(&pic, &ref, o);
        if (other >= 0 && other <= want)
            fail_msg("%s matches %s under orientation %d (%.1f) at least "
                     "as well as under %d (%.1f)", r->file, r->reference, o,
                     other, r->ref_orient, want);
    }
    free(pic.rgba);
    free(ref.rgba);
    free(ref_in.data);
    free(ref_out.data);
}

static void image_check(const struct row *r, const struct blob *in,
                        const struct blob *out,
                        const struct img_result *result)
{
    enum img_format format = strcmp(r->format, "png") == 0
                             ? IMG_FORMAT_PNG : IMG_FORMAT_JPEG;
    struct picture pic;

    if (labs((long)result->width - r->width) > 1 ||
        labs((long)result->height - r->height) > 1)
        fail_msg("%s: stored %ux%u, expected %ldx%ld", r->file,
                 (unsigned)result->width, (unsigned)result->height,
                 r->width, r->height);
    assert_int_equal(result->format, format);
    assert_int_equal(img_sniff(out->data, out->len), format);

    pic = picture_decode(out);
    assert_int_equal(pic.width, (int)result->width);
    assert_int_equal(pic.height, (int)result->height);
    free(pic.rgba);

    if (format == IMG_FORMAT_JPEG) {
        if (jpeg_has_metadata(out))
            fail_msg("%s: metadata segment left in the output", r->file);
    } else {
        if (png_has_metadata(out))
            fail_msg("%s: metadata chunk left in the output", r->file);
        if (png_has_alpha(out) != (strcmp(r->alpha, "yes") == 0))
            fail_msg("%s: alpha %s, expected %s", r->file,
                     png_has_alpha(out) ? "yes" : "no", r->alpha);
    }
    if (!result->reencoded && out->len > in->len + 1024)
        fail_msg("%s: copied output is larger than the input", r->file);
}

static void corpus_file(void **state)
{
    const struct row *r = *state;
    struct blob in, out, again;
    struct img_result result, result2;
    struct img_error err;
    enum img_status status, expected;

    if (!corpus_present())
        skip();
    in = file_read(r->file);
    if (strcmp(r->outcome, "bytes") == 0) {
        assert_int_equal(img_sniff(in.data, in.len), IMG_FORMAT_NONE);
        free(in.data);
        return;
    }
    assert_int_not_equal(img_sniff(in.data, in.len), IMG_FORMAT_NONE);

    status = process(&in, &out, &result, &err);
    expected = strcmp(r->outcome, "ok") == 0 ? IMG_OK
             : strcmp(r->error, "too_large") == 0 ? IMG_ETOOLARGE
             : IMG_EUNSUPPORTED;
    if (status != expected)
        fail_msg("%s: status %s (%s), expected %s", r->file,
                 img_strerror(status), err.message, img_strerror(expected));
    if (status == IMG_OK) {
        image_check(r, &in, &out, &result);
        assert_int_equal(process(&in, &again, &result2, &err), IMG_OK);
        assert_int_equal(again.len, out.len);
        assert_memory_equal(again.data, out.data, out.len);
        free(again.data);
        if (strcmp(r->reference, "-") != 0)
            reference_check(r, &out);
    }
    free(out.data);
    free(in.data);
}

int main(void)
{
    static struct CMUnitTest tests[MAX_ROWS];
    int n = table_load(), i;

    if (n <= 0)
        return 1;
    for (i = 0; i < n; i++) {
        tests[i].name = rows[i].file;
        tests[i].test_func = corpus_file;
        tests[i].initial_state = &rows[i];
    }
    return _cmocka_run_group_tests("imgproc_corpus", tests, (size_t)n,
                                   NULL, NULL);
}
