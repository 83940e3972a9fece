/*
 * 8-bit pixel buffers: allocation and the eight EXIF orientations. The
 * buffers here are at most the output size (full HD), so orienting copies
 * the whole image once.
 */
#include <stdlib.h>
#include <string.h>

#include "img_int.h"

enum img_status img_pixels_alloc(struct img_pixels *pixels, uint32_t width,
                                 uint32_t height, unsigned channels,
                                 struct img_error *err)
{
    size_t stride = (size_t)width * channels;
    size_t size;

    pixels->width = width;
    pixels->height = height;
    pixels->channels = channels;
    pixels->stride = stride;
    pixels->data = NULL;
    if (height != 0 && stride > SIZE_MAX / height)
        goto fail;
    size = stride * height;
    pixels->data = malloc(size > 0 ? size : 1);
    if (pixels->data)
        return IMG_OK;
fail:
    img_error_set(err, IMG_ENOMEM, "cannot allocate a %ux%u image",
                  (unsigned)width, (unsigned)height);
    return IMG_ENOMEM;
}

void img_pixels_release(struct img_pixels *pixels)
{
    free(pixels->data);
    pixels->data = NULL;
}

/*
 * Find the stored pixel shown at upright position (x, y). `w` and `h` are
 * the stored width and height. Orientation 6 means the stored image must
 * turn 90 degrees clockwise to stand upright, 8 counter-clockwise, 5 is a
 * transpose and 7 a transverse (the TIFF 6.0 definitions).
 */
static void orient_source(int orientation, uint32_t w, uint32_t h,
                          uint32_t x, uint32_t y, uint32_t *sx, uint32_t *sy)
{
    switch (orientation) {
    case 2:
        *sx = w - 1 - x;
        *sy = y;
        break;
    case 3:
        *sx = w - 1 - x;
        *sy = h - 1 - y;
        break;
    case 4:
        *sx = x;
        *sy = h - 1 - y;
        break;
    case 5:
        *sx = y;
        *sy = x;
        break;
    case 6:
        *sx = y;
        *sy = h - 1 - x;
        break;
    case 7:
        *sx = w - 1 - y;
        *sy = h - 1 - x;
        break;
    case 8:
        *sx = w - 1 - y;
        *sy = x;
        break;
    default:
        *sx = x;
        *sy = y;
        break;
    }
}

enum img_status img_pixels_orient(struct img_pixels *pixels,
                                  int orientation, struct img_error *err)
{
    struct img_pixels upright;
    unsigned c = pixels->channels;
    uint32_t w = pixels->width, h = pixels->height;
    uint32_t uw = w, uh = h, x, y;
    enum img_status status;

    if (orientation < 2 || orientation > 8)
        return IMG_OK;
    if (img_orientation_swaps(orientation)) {
        uw = h;
        uh = w;
    }
    status = img_pixels_alloc(&upright, uw, uh, c, err);
    if (status != IMG_OK)
        return status;

    for (y = 0; y < uh; y++) {
        unsigned char *dst = upright.data + (size_t)y * upright.stride;

        for (x = 0; x < uw; x++) {
            uint32_t sx, sy;

            orient_source(orientation, w, h, x, y, &sx, &sy);
            memcpy(dst + (size_t)x * c,
                   pixels->data + (size_t)sy * pixels->stride +
                   (size_t)sx * c, c);
        }
    }
    img_pixels_release(pixels);
    *pixels = upright;
    return IMG_OK;
}
