/*
 * EXIF orientation: the one tag of EXIF that imgproc reads. Every read is
 * bounds-checked against the TIFF data handed in; any damage gives 1 (no
 * transform), because metadata problems never fail an upload.
 */
#include <stddef.h>
#include <stdint.h>

#include "img_int.h"

#define TIFF_TAG_ORIENTATION 0x0112
#define TIFF_TYPE_SHORT 3

static uint32_t read_u16(const unsigned char *p, int big_endian)
{
    return big_endian ? (uint32_t)p[0] << 8 | p[1]
                      : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t read_u32(const unsigned char *p, int big_endian)
{
    return big_endian
        ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
          (uint32_t)p[2] << 8 | p[3]
        : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
          (uint32_t)p[1] << 8 | p[0];
}

int img_exif_orientation(const unsigned char *tiff, size_t len)
{
    int big_endian;
    uint32_t ifd, count, i;

    if (!tiff || len < 8)
        return 1;
    if (tiff[0] == 'M' && tiff[1] == 'M')
        big_endian = 1;
    else if (tiff[0] == 'I' && tiff[1] == 'I')
        big_endian = 0;
    else
        return 1;
    if (read_u16(tiff + 2, big_endian) != 42)
        return 1;

    /* IFD0 holds the orientation of the primary image. */
    ifd = read_u32(tiff + 4, big_endian);
    if (ifd > len - 2)
        return 1;
    count = read_u16(tiff + ifd, big_endian);
    if (count > (len - ifd - 2) / 12)
        return 1;
    for (i = 0; i < count; i++) {
        const unsigned char *entry = tiff + ifd + 2 + (size_t)i * 12;
        uint32_t value;

        if (read_u16(entry, big_endian) != TIFF_TAG_ORIENTATION)
            continue;
        if (read_u16(entry + 2, big_endian) != TIFF_TYPE_SHORT ||
            read_u32(entry + 4, big_endian) != 1)
            return 1;
        /* A single SHORT sits left-aligned in the 4-byte value field. */
        value = read_u16(entry + 8, big_endian);
        return value >= 1 && value <= 8 ? (int)value : 1;
    }
    return 1;
}
